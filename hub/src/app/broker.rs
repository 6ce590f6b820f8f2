//! What a failed connection attempt means for the hub: worth retrying (the broker is down or
//! restarting) or not (the TLS handshake failed, or the broker refused these credentials), and
//! how to say it to the operator.

use rumqttc::{ConnectReturnCode, ConnectionError};

/// True when trying again cannot help: a certificate problem or a refusal of the client.
pub fn is_fatal(e: &ConnectionError) -> bool {
    match e {
        // rustls reports certificate and handshake failures as InvalidData I/O errors.
        ConnectionError::Tls(rumqttc::TlsError::Io(io)) => {
            io.kind() == std::io::ErrorKind::InvalidData
        }
        ConnectionError::Tls(_) => true,
        ConnectionError::ConnectionRefused(code) => !matches!(
            code,
            ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::Success
        ),
        _ => false,
    }
}

/// `e` for a person: the refusal codes spelled out, TLS errors with a hint.
pub fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => "bad user name or password",
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
        ConnectionError::Tls(t) => format!(
            "TLS handshake failed: {t} (is the broker's certificate signed by --ca-file, and made for this host name or address?)"
        ),
        other => other.to_string(),
    }
}
