//! The publisher: the single owner of rumqttc's event loop, on a dedicated thread with a
//! current-thread tokio runtime. It publishes the retained birth on every connect, registers
//! the death as the MQTT will, forwards the outbox with QoS 1, and on shutdown publishes
//! the offline status and disconnects cleanly.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use edge_wire::{Birth, Death, DeathCause, Message, encode};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport,
};

use crate::{config::MqttConfig, outbox::Outbox};

/// How long a shutting-down agent keeps trying to deliver what is queued.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub struct Topics {
    pub status: String,
    pub base: String,
}

impl Topics {
    pub fn new(prefix: &str, device: &str) -> Self {
        let base = format!("{prefix}/{device}");
        Self {
            status: format!("{base}/status"),
            base,
        }
    }
}

/// Starts the publisher thread. It returns when the outbox is closed and drained (or the
/// grace period after closing ran out), having published the offline status.
pub fn spawn(
    cfg: &MqttConfig,
    client_id: String,
    topics: Topics,
    birth: Birth,
    outbox: Arc<Outbox>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let mut opts = options(cfg, &client_id)?;
    // The will carries the session of the connection it is registered with: the first is 1.
    opts.set_last_will(will(&topics.status, &birth, 1)?);
    std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("mqtt: cannot start its runtime: {e}");
                    return;
                }
            };
            rt.block_on(run(opts, topics, birth, outbox));
        })
        .context("spawning the mqtt thread")
}

/// The offline status of `birth`'s agent at the end of connection `session`.
fn death(birth: &Birth, session: u32, cause: DeathCause) -> Message {
    Message::Offline(Death {
        device: birth.device.clone(),
        boot_id: birth.boot_id.clone(),
        session,
        cause,
    })
}

/// The death certificate the broker publishes if connection `session` is lost.
fn will(status: &str, birth: &Birth, session: u32) -> anyhow::Result<LastWill> {
    let payload =
        encode(&death(birth, session, DeathCause::ConnectionLost)).context("encoding the will")?;
    Ok(LastWill::new(status, payload, QoS::AtLeastOnce, true))
}

fn options(cfg: &MqttConfig, client_id: &str) -> anyhow::Result<MqttOptions> {
    let broker = cfg
        .broker()
        .map_err(|reason| anyhow::anyhow!("mqtt.url: {reason}"))?;
    let mut opts = MqttOptions::new(client_id, broker.host, broker.port);
    opts.set_keep_alive(Duration::from_secs(cfg.keep_alive_s));
    opts.set_max_packet_size(1 << 20, 2 << 20);
    opts.set_clean_session(true);
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

async fn run(opts: MqttOptions, topics: Topics, mut birth: Birth, outbox: Arc<Outbox>) {
    let (client, mut eventloop) = AsyncClient::new(opts, 64);
    let closing = Arc::new(AtomicBool::new(false));
    let session = Arc::new(AtomicU32::new(0));
    let forward = tokio::spawn(forward(
        client.clone(),
        topics.base.clone(),
        topics.status.clone(),
        birth.clone(),
        outbox,
        closing.clone(),
        session.clone(),
    ));
    poll(
        &mut eventloop,
        &client,
        &topics.status,
        &mut birth,
        &closing,
        &session,
    )
    .await;
    forward.abort();
}

/// Drives the connection: birth on every ConnAck, reconnect with backoff on errors, stop once
/// our own Disconnect went out (or the broker stays away past the grace period on shutdown).
async fn poll(
    eventloop: &mut EventLoop,
    client: &AsyncClient,
    status: &str,
    birth: &mut Birth,
    closing: &AtomicBool,
    session: &AtomicU32,
) {
    let mut backoff = Duration::from_millis(500);
    let mut grace_until: Option<tokio::time::Instant> = None;
    loop {
        if closing.load(Ordering::Acquire) {
            let until =
                *grace_until.get_or_insert_with(|| tokio::time::Instant::now() + SHUTDOWN_GRACE);
            if tokio::time::Instant::now() > until {
                log::warn!("mqtt: shutdown grace period over; giving up on undelivered messages");
                return;
            }
        }
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(500);
                birth.session += 1;
                session.store(birth.session, Ordering::Release);
                // Register the next connection's will now, numbered like its birth will be.
                match will(status, birth, birth.session + 1) {
                    Ok(w) => {
                        eventloop.mqtt_options.set_last_will(w);
                    }
                    Err(e) => log::error!("mqtt: {e:#}"),
                }
                birth.unix_ms = crate::batch::unix_ms();
                log::info!(
                    "mqtt: connected ({:?}); publishing birth, session {}",
                    ack.code,
                    birth.session
                );
                match encode(&Message::Online(birth.clone())) {
                    Ok(bytes) => {
                        if let Err(e) = client.try_publish(status, QoS::AtLeastOnce, true, bytes) {
                            log::warn!("mqtt: could not queue the birth message: {e}");
                        }
                    }
                    Err(e) => log::error!("mqtt: encoding the birth message failed: {e}"),
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                log::info!("mqtt: disconnected cleanly");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                if closing.load(Ordering::Acquire)
                    && grace_until.is_some_and(|u| tokio::time::Instant::now() > u)
                {
                    return;
                }
                log::warn!("mqtt: broker unreachable ({e}); retrying in {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Moves the outbox to the client; when the outbox closes, publishes offline and disconnects.
async fn forward(
    client: AsyncClient,
    base: String,
    status: String,
    birth: Birth,
    outbox: Arc<Outbox>,
    closing: Arc<AtomicBool>,
    session: Arc<AtomicU32>,
) {
    while let Some(item) = outbox.pop().await {
        let topic = format!("{base}/{}", item.leaf.as_str());
        if let Err(e) = client
            .publish(topic, QoS::AtLeastOnce, false, item.payload)
            .await
        {
            log::warn!("mqtt: publish failed: {e}");
        }
    }
    closing.store(true, Ordering::Release);
    let bye = death(
        &birth,
        session.load(Ordering::Acquire),
        DeathCause::Shutdown,
    );
    match encode(&bye) {
        Ok(bytes) => {
            if let Err(e) = client.publish(status, QoS::AtLeastOnce, true, bytes).await {
                log::warn!("mqtt: could not publish offline status: {e}");
            }
        }
        Err(e) => log::error!("mqtt: encoding the offline status failed: {e}"),
    }
    if let Err(e) = client.disconnect().await {
        log::warn!("mqtt: disconnect failed: {e}");
    }
}
