//! A [`Link`] is everything needed to reach the broker (URL, client id, credentials, TLS files,
//! keep-alive); [`Link::options`] checks it and turns it into `rumqttc::MqttOptions`, with
//! rustls (ring provider) for `mqtts://`: the CA bundle from a PEM file (required, the system's
//! roots are not used) and, for mutual TLS, a client certificate and key from PEM files.
//! Every error names the setting it is about, by the field name of [`Link`]; a program that
//! spells its settings differently (a `--ca-file` flag, an `mqtt.ca_file` key) maps
//! [`LinkError::setting`] to its own name.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

use crate::{Broker, UrlError, parse_url};

/// The largest MQTT packet sent or accepted (a batch is far smaller).
pub const MAX_PACKET_BYTES: usize = 2 << 20;
/// Keep-alive when none is chosen.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(30);
/// The longest client id accepted (MQTT 3.1.1 brokers may accept fewer; mosquitto takes this).
pub const MAX_CLIENT_ID: usize = 128;

/// How to reach the broker. `Debug` does not show the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Link {
    /// `mqtt://host[:port]` or `mqtts://host[:port]` (see [`parse_url`]).
    pub url: String,
    pub client_id: String,
    pub username: Option<String>,
    /// Only with `username`.
    pub password: Option<String>,
    /// PEM CA bundle the broker's certificate must chain to; required for `mqtts://`.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Zero turns keep-alive off; otherwise at least a second.
    pub keep_alive: Duration,
}

/// A setting of [`Link`], for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Url,
    ClientId,
    Username,
    Password,
    CaFile,
    ClientCert,
    ClientKey,
    KeepAlive,
}

impl Setting {
    /// The field name in [`Link`].
    pub const fn name(self) -> &'static str {
        match self {
            Self::Url => "url",
            Self::ClientId => "client_id",
            Self::Username => "username",
            Self::Password => "password",
            Self::CaFile => "ca_file",
            Self::ClientCert => "client_cert",
            Self::ClientKey => "client_key",
            Self::KeepAlive => "keep_alive",
        }
    }
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a [`Link`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("url {0}")]
    Url(#[from] UrlError),
    #[error("client_id {client_id:?}: {reason}")]
    ClientId {
        client_id: String,
        reason: &'static str,
    },
    #[error("password is set without username")]
    PasswordWithoutUsername,
    #[error("keep_alive {keep_alive:?} is under a second (zero turns it off)")]
    KeepAlive { keep_alive: Duration },
    #[error("ca_file is required for mqtts:// (a PEM CA bundle)")]
    CaFileRequired,
    #[error("{given} is set without {missing}")]
    ClientPair { given: Setting, missing: Setting },
    #[error("{setting} {}: {source}", path.display())]
    Read {
        setting: Setting,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{setting} {}: not valid PEM: {source}", path.display())]
    Pem {
        setting: Setting,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{setting} {}: no certificate", path.display())]
    NoCertificate { setting: Setting, path: PathBuf },
    #[error("client_key {}: no private key", path.display())]
    NoKey { path: PathBuf },
    #[error("ca_file {}: a certificate is not usable as a CA: {source}", path.display())]
    BadCa {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("client_key {} does not fit client_cert {}: {source}", key.display(), cert.display())]
    ClientAuth {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("TLS setup: {source}")]
    Tls {
        #[source]
        source: rustls::Error,
    },
}

impl LinkError {
    /// The setting to fix.
    pub fn setting(&self) -> Setting {
        match self {
            Self::Url(_) => Setting::Url,
            Self::ClientId { .. } => Setting::ClientId,
            Self::PasswordWithoutUsername => Setting::Password,
            Self::KeepAlive { .. } => Setting::KeepAlive,
            Self::CaFileRequired | Self::BadCa { .. } | Self::Tls { .. } => Setting::CaFile,
            Self::ClientPair { missing, .. } => *missing,
            Self::Read { setting, .. }
            | Self::Pem { setting, .. }
            | Self::NoCertificate { setting, .. } => *setting,
            Self::NoKey { .. } | Self::ClientAuth { .. } => Setting::ClientKey,
        }
    }
}

impl Link {
    /// A plain link with no credentials and the default keep-alive.
    pub fn new(url: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client_id: client_id.into(),
            username: None,
            password: None,
            ca_file: None,
            client_cert: None,
            client_key: None,
            keep_alive: DEFAULT_KEEP_ALIVE,
        }
    }

    /// Where `url` points.
    pub fn broker(&self) -> Result<Broker, UrlError> {
        parse_url(&self.url)
    }

    /// Checks every setting and builds the client options: clean session, the keep-alive,
    /// [`MAX_PACKET_BYTES`] both ways, the credentials, and TLS for `mqtts://`. TLS files are
    /// read here, so a missing or unusable file is reported now rather than at connect time.
    /// The caller adds what is its own (a last will, the in-flight window).
    pub fn options(&self) -> Result<MqttOptions, LinkError> {
        let broker = self.broker()?;
        self.check_plain_settings()?;
        let mut opts = MqttOptions::new(&self.client_id, &broker.host, broker.port);
        opts.set_keep_alive(self.keep_alive);
        opts.set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES);
        opts.set_clean_session(true);
        if let Some(user) = &self.username {
            opts.set_credentials(user, self.password.clone().unwrap_or_default());
        }
        let client = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (Some(_), None) => {
                return Err(LinkError::ClientPair {
                    given: Setting::ClientCert,
                    missing: Setting::ClientKey,
                });
            }
            (None, Some(_)) => {
                return Err(LinkError::ClientPair {
                    given: Setting::ClientKey,
                    missing: Setting::ClientCert,
                });
            }
            (None, None) => None,
        };
        if broker.tls {
            let ca = self.ca_file.as_deref().ok_or(LinkError::CaFileRequired)?;
            let config = tls_config(ca, client)?;
            opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(config),
            )));
        } else if self.ca_file.is_some() || client.is_some() {
            log::warn!(
                "{} is a plain mqtt:// URL: the TLS files (ca_file, client_cert, client_key) are not used",
                self.url
            );
        }
        Ok(opts)
    }

    fn check_plain_settings(&self) -> Result<(), LinkError> {
        let id = &self.client_id;
        let bad_id = |reason| LinkError::ClientId {
            client_id: id.clone(),
            reason,
        };
        if id.is_empty() || id.chars().count() > MAX_CLIENT_ID {
            return Err(bad_id("must be 1 to 128 characters"));
        }
        if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad_id("must not hold spaces or control characters"));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(LinkError::PasswordWithoutUsername);
        }
        if !self.keep_alive.is_zero() && self.keep_alive < Duration::from_secs(1) {
            return Err(LinkError::KeepAlive {
                keep_alive: self.keep_alive,
            });
        }
        Ok(())
    }
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// A rustls client config (ring provider, safe default protocol versions) trusting only the
/// CAs in `ca_file`, presenting `client = (cert, key)` when given.
pub fn tls_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<rustls::ClientConfig, LinkError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(Setting::CaFile, ca_file)? {
        roots.add(cert).map_err(|source| LinkError::BadCa {
            path: ca_file.to_owned(),
            source,
        })?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|source| LinkError::Tls { source })?
        .with_root_certificates(roots);
    let Some((cert, key)) = client else {
        return Ok(builder.with_no_client_auth());
    };
    let chain = certificates(Setting::ClientCert, cert)?;
    let bytes = read(Setting::ClientKey, key)?;
    let key_der = PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => LinkError::NoKey {
            path: key.to_owned(),
        },
        source => LinkError::Pem {
            setting: Setting::ClientKey,
            path: key.to_owned(),
            source,
        },
    })?;
    builder
        .with_client_auth_cert(chain, key_der)
        .map_err(|source| LinkError::ClientAuth {
            cert: cert.to_owned(),
            key: key.to_owned(),
            source,
        })
}

/// Every certificate in a PEM file; at least one.
fn certificates(setting: Setting, path: &Path) -> Result<Vec<CertificateDer<'static>>, LinkError> {
    let bytes = read(setting, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| LinkError::Pem {
            setting,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(LinkError::NoCertificate {
            setting,
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read(setting: Setting, path: &Path) -> Result<Vec<u8>, LinkError> {
    std::fs::read(path).map_err(|source| LinkError::Read {
        setting,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
