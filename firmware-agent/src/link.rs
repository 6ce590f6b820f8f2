//! The broker connection's options (address, keep-alive, credentials, TLS) from `[mqtt]`.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use rumqttc::{MqttOptions, Transport};

use crate::config::MqttConfig;

pub fn options(cfg: &MqttConfig, client_id: &str) -> anyhow::Result<MqttOptions> {
    let broker = cfg
        .broker()
        .map_err(|reason| anyhow::anyhow!("mqtt.url: {reason}"))?;
    let mut opts = MqttOptions::new(client_id, broker.host, broker.port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    opts.set_max_packet_size(1 << 20, 2 << 20);
    if let Some(user) = &cfg.username {
        opts.set_credentials(user, cfg.password.clone().unwrap_or_default());
    }
    if broker.tls {
        let ca = cfg
            .ca_file
            .as_ref()
            .context("mqtt.ca_file is required for mqtts://")?;
        opts.set_transport(Transport::tls_with_config(
            rumqttc::TlsConfiguration::Rustls(Arc::new(tls_config(ca)?)),
        ));
    }
    Ok(opts)
}
fn tls_config(ca: &std::path::Path) -> anyhow::Result<rustls::ClientConfig> {
    use rustls::pki_types::{CertificateDer, pem::PemObject as _};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading mqtt.ca_file {}", ca.display()))?
    {
        let cert = cert.with_context(|| format!("parsing mqtt.ca_file {}", ca.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("adding a CA from {}", ca.display()))?;
    }
    anyhow::ensure!(
        !roots.is_empty(),
        "mqtt.ca_file {} holds no certificate",
        ca.display()
    );
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
