//! What a failed connection attempt means for the hub: worth retrying (the broker is down or
//! restarting) or not (a TLS failure, or the broker refused these credentials), and how to say
//! it to the operator, with a hint at the flag to check.

use edge_mqtt::tls_failure;
use rumqttc::{ConnectReturnCode, ConnectionError};
use rustls::{AlertDescription, Error as Tls};

/// True when trying again cannot help: a certificate problem or a refusal of the client.
pub fn is_fatal(e: &ConnectionError) -> bool {
    tls_failure(e).is_some()
        // Not an I/O error: a bad host name for TLS, no usable CA, ...
        || matches!(e, ConnectionError::Tls(t) if !matches!(t, rumqttc::TlsError::Io(_)))
        || matches!(
            e,
            ConnectionError::ConnectionRefused(code)
                if !matches!(code, ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::Success)
        )
}

/// `e` for a person: TLS failures and refusals spelled out with what to check.
pub fn describe(e: &ConnectionError) -> String {
    if let Some(tls) = tls_failure(e) {
        let hint = match tls {
            Tls::InvalidCertificate(_) => {
                "is the broker's certificate signed by --ca-file, and made for this host name or address?"
            }
            Tls::AlertReceived(AlertDescription::CertificateRequired) => {
                "the broker wants a client certificate: --client-cert and --client-key"
            }
            Tls::AlertReceived(
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnsupportedCertificate,
            ) => "the broker refused our client certificate (--client-cert)",
            _ => "check --broker, --ca-file and the broker's TLS listener",
        };
        return format!("TLS failed: {tls} ({hint})");
    }
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => {
                    "bad user name or password (--username, --password-file)"
                }
                ConnectReturnCode::NotAuthorized => {
                    "not authorised (check --username and the password)"
                }
                ConnectReturnCode::BadClientId => "client id refused (--client-id)",
                ConnectReturnCode::RefusedProtocolVersion => "MQTT 3.1.1 refused",
                ConnectReturnCode::ServiceUnavailable => "service unavailable",
                ConnectReturnCode::Success => "success",
            };
            format!("the broker refused the connection: {why}")
        }
        ConnectionError::Tls(t) => format!("TLS failed: {t} (check --broker and --ca-file)"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, ErrorKind};

    use rumqttc::{StateError, TlsError, mqttbytes};
    use rustls::CertificateError;

    use super::*;

    fn tls_io(e: Tls) -> io::Error {
        io::Error::new(ErrorKind::InvalidData, e)
    }

    #[test]
    fn tls_failures_and_refusals_are_final_outages_are_not() {
        let unknown_ca = ConnectionError::Tls(TlsError::Io(tls_io(Tls::InvalidCertificate(
            CertificateError::UnknownIssuer,
        ))));
        assert!(is_fatal(&unknown_ca));
        assert_eq!(
            describe(&unknown_ca),
            "TLS failed: invalid peer certificate: UnknownIssuer (is the broker's certificate signed by --ca-file, and made for this host name or address?)"
        );
        let no_cert =
            ConnectionError::MqttState(StateError::Deserialization(mqttbytes::Error::Io(tls_io(
                Tls::AlertReceived(AlertDescription::CertificateRequired),
            ))));
        assert!(is_fatal(&no_cert));
        assert_eq!(
            describe(&no_cert),
            "TLS failed: received fatal alert: CertificateRequired (the broker wants a client certificate: --client-cert and --client-key)"
        );
        let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert!(is_fatal(&refused));
        assert_eq!(
            describe(&refused),
            "the broker refused the connection: not authorised (check --username and the password)"
        );
        for e in [
            ConnectionError::Io(io::Error::from(ErrorKind::ConnectionRefused)),
            ConnectionError::ConnectionRefused(ConnectReturnCode::ServiceUnavailable),
            ConnectionError::MqttState(StateError::Io(io::Error::from(ErrorKind::BrokenPipe))),
            ConnectionError::NetworkTimeout,
            // The broker went away in the middle of a handshake.
            ConnectionError::Tls(TlsError::Io(io::Error::from(ErrorKind::UnexpectedEof))),
        ] {
            assert!(!is_fatal(&e), "{e}");
        }
    }
}
