//! Telling TLS failures apart from an unreachable broker: rumqttc reports a refused
//! certificate, or an alert from the broker (it wants a client certificate, or refused ours),
//! as an I/O error somewhere inside its own error types, sometimes only after the handshake
//! (TLS 1.3 client authentication). [`tls_failure`] digs the rustls error out, so a program can
//! stop retrying what retrying cannot fix and say why.

use std::error::Error;

use rumqttc::ConnectionError;

/// The rustls error behind `e`, if a TLS failure is what `e` is.
pub fn tls_failure(e: &ConnectionError) -> Option<&rustls::Error> {
    let mut cur: Option<&(dyn Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An io::Error's `source` skips the error it wraps: look at that one too.
        if let Some(tls) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        cur = err.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::io::{self, ErrorKind};

    use rumqttc::{StateError, TlsError, mqttbytes};
    use rustls::{AlertDescription, CertificateError};

    use super::*;

    fn wrapped(e: rustls::Error) -> io::Error {
        io::Error::new(ErrorKind::InvalidData, e)
    }

    #[test]
    fn finds_the_rustls_error_wherever_rumqttc_put_it() {
        let unknown_ca = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let e = ConnectionError::Tls(TlsError::Io(wrapped(unknown_ca.clone())));
        assert_eq!(tls_failure(&e), Some(&unknown_ca));

        // TLS 1.3: the broker's refusal of a missing client certificate comes after the
        // handshake, while reading the first MQTT packet.
        let alert = rustls::Error::AlertReceived(AlertDescription::CertificateRequired);
        let e = ConnectionError::MqttState(StateError::Deserialization(mqttbytes::Error::Io(
            wrapped(alert.clone()),
        )));
        assert_eq!(tls_failure(&e), Some(&alert));
        assert_eq!(
            alert.to_string(),
            "received fatal alert: CertificateRequired"
        );

        let e = ConnectionError::Tls(TlsError::TLS(unknown_ca.clone()));
        assert_eq!(tls_failure(&e), Some(&unknown_ca));
    }

    #[test]
    fn other_failures_are_not_tls() {
        for e in [
            ConnectionError::Io(io::Error::from(ErrorKind::ConnectionRefused)),
            ConnectionError::MqttState(StateError::Io(io::Error::from(ErrorKind::ConnectionReset))),
            ConnectionError::Tls(TlsError::Io(io::Error::from(ErrorKind::UnexpectedEof))),
            ConnectionError::NetworkTimeout,
        ] {
            assert_eq!(tls_failure(&e), None, "{e}");
        }
    }
}
