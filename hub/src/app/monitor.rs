//! The monitoring modes (`hub`, `hub bridge`): the one owner of rumqttc's event loop. It
//! subscribes to `<prefix>/+/#` on every connect, hands each message to the library's `Hub`,
//! prints what comes out, bridges decoded messages as JSON, prints the totals every
//! `--totals-every` and on SIGINT/SIGTERM, and reconnects with backoff while the broker is
//! away. A refused login or a failed TLS handshake ends it: retrying cannot fix those.

use std::time::Duration;

use anyhow::Context as _;
use edge_hub::{Hub, Outcome, escape, render};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::json;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, interval_at, sleep_until},
};

use super::{
    broker::{describe, is_fatal},
    output::{Printer, hub_state},
};

/// What to monitor and how to show it.
pub struct Monitor {
    /// The broker URL, for messages.
    pub broker: String,
    pub prefix: String,
    pub json: bool,
    /// Republish decoded messages as JSON under this prefix.
    pub bridge: Option<String>,
    pub totals_every: Option<Duration>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub async fn run(opts: MqttOptions, m: Monitor) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let filter = format!("{}/+/#", m.prefix);
    let mut hub = Hub::new(&m.prefix);
    let mut out = Printer::new(m.json);
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    // Without --totals-every the ticker exists but its branch is disabled.
    let period = m.totals_every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = interval_at(Instant::now() + period, period);
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let mut bridge_dropped = 0u64;
    loop {
        let event = tokio::select! {
            ev = next_event(&mut eventloop, retry_at) => ev,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = ticker.tick(), if m.totals_every.is_some() => {
                out.totals(&hub)?;
                continue;
            }
        };
        retry_at = None;
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = FIRST_BACKOFF;
                log::info!("hub: connected to {}", m.broker);
                client
                    .subscribe(&filter, QoS::AtLeastOnce)
                    .await
                    .context("subscribing")?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    anyhow::bail!(
                        "{} refused the subscription to {filter} (does the ACL let this user read it?)",
                        m.broker
                    );
                }
                log::info!("hub: subscribed to {filter} on {}", m.broker);
                out.state(hub_state("subscribed", json!({"filter": filter})))?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let outcome = hub.handle(&p.topic, &p.payload);
                note(&outcome);
                if let (
                    Some(bridge),
                    Outcome::Accepted {
                        device, message, ..
                    },
                ) = (&m.bridge, &outcome)
                {
                    let topic = format!("{bridge}/{device}/{}", message.topic_leaf());
                    let retain = message.topic_leaf() == "status";
                    let body = serde_json::to_vec(&render::message_json(device, message))?;
                    if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, retain, body) {
                        bridge_dropped += 1;
                        log::warn!(
                            "hub: not bridged ({e}); {bridge_dropped} messages not bridged so far"
                        );
                    }
                }
                out.outcome(&outcome)?;
            }
            Ok(_) => {}
            Err(e) if is_fatal(&e) => {
                anyhow::bail!("{}: {}", m.broker, describe(&e));
            }
            Err(e) => {
                log::warn!(
                    "hub: broker {} unreachable ({}); retrying in {backoff:?}",
                    m.broker,
                    describe(&e)
                );
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    out.totals(&hub)?;
    let c = &hub.counters;
    log::info!(
        "hub: stopping; accepted {} duplicates {} ignored {} rejected {}",
        c.accepted,
        c.duplicates,
        c.ignored,
        c.rejected_total()
    );
    Ok(())
}

/// The next connection event, after the backoff if one is pending (so signals and the totals
/// ticker are still served while waiting to reconnect).
#[allow(
    clippy::result_large_err,
    reason = "rumqttc's own error type, one per poll, handled at once"
)]
pub async fn next_event(
    eventloop: &mut EventLoop,
    retry_at: Option<Instant>,
) -> Result<Event, rumqttc::ConnectionError> {
    if let Some(at) = retry_at {
        sleep_until(at).await;
    }
    eventloop.poll().await
}

/// Logs what the operator should know about one outcome.
pub fn note(outcome: &Outcome) {
    match outcome {
        Outcome::Rejected {
            topic,
            reason,
            total,
            ..
        } => log::warn!(
            "hub: rejected payload on {}: {} ({total} rejected so far)",
            escape(topic),
            escape(reason)
        ),
        Outcome::Duplicate {
            device,
            boot_id,
            run_id,
            seq,
        } => log::debug!(
            "hub: duplicate batch {seq} of {} (boot {}, run {run_id:016x}) not shown again",
            escape(device),
            escape(boot_id)
        ),
        Outcome::Ignored { topic } => log::debug!("hub: ignored command on {}", escape(topic)),
        Outcome::Accepted { .. } => {}
    }
}
