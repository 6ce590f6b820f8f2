//! The monitoring modes (`hub`, `hub bridge`): the one owner of rumqttc's event loop. It
//! subscribes to `<prefix>/+/#` on every connect, hands each message to the library's `Hub`,
//! prints what comes out, bridges decoded messages as JSON, prints the totals every
//! `--totals-every` and on SIGINT/SIGTERM, and reconnects with backoff while the broker is
//! away. A refused login or a failed TLS handshake ends it: retrying cannot fix those.
//! In bridge mode the [`Bridge`] also announces the devices to Home Assistant: its topics are
//! subscribed with the fleet's, and its will (the hub's availability `offline`) is the
//! connection's. An empty retained status (`hub forget`) makes the hub forget the device: it is
//! not a rejected payload.

use std::time::Duration;

use anyhow::Context as _;
use edge_hub::{Hub, Outcome, escape, ha};
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS, SubscribeFilter, SubscribeReasonCode,
};
use serde_json::json;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, interval_at, sleep_until},
};

use super::{
    bridge::{Bridge, hub_will},
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
    /// Home Assistant discovery (bridge mode only).
    pub ha: Option<ha::Settings>,
    pub totals_every: Option<Duration>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub async fn run(mut opts: MqttOptions, m: Monitor) -> anyhow::Result<()> {
    if let (Some(_), Some(ha)) = (&m.bridge, &m.ha) {
        opts.set_last_will(hub_will(ha));
    }
    let mut bridge = m.bridge.clone().map(|p| Bridge::new(p, m.ha.clone()));
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let filter = format!("{}/+/#", m.prefix);
    let extra = bridge.as_ref().map(Bridge::filters).unwrap_or_default();
    let mut hub = Hub::new(&m.prefix);
    let mut out = Printer::new(m.json);
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    // Without --totals-every the ticker exists but its branch is disabled.
    let period = m.totals_every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = interval_at(Instant::now() + period, period);
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    loop {
        // Each event may have made room in the client's queue for waiting discovery messages.
        if let Some(b) = &mut bridge {
            b.flush(&client);
        }
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
                    .subscribe_many(
                        std::iter::once(&filter)
                            .chain(&extra)
                            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
                    )
                    .await
                    .context("subscribing")?;
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let refused = |i: usize| {
                    matches!(ack.return_codes.get(i), Some(SubscribeReasonCode::Failure))
                };
                if refused(0) {
                    anyhow::bail!(
                        "{} refused the subscription to {filter} (does the ACL let this user read it?)",
                        m.broker
                    );
                }
                for (_, t) in extra.iter().enumerate().filter(|(i, _)| refused(i + 1)) {
                    log::warn!(
                        "ha: {} refused the subscription to {t}: discovery configs are re-sent on reconnect only, not when Home Assistant starts (let the hub read {t}, or --no-ha)",
                        m.broker
                    );
                }
                log::info!("hub: subscribed to {filter} on {}", m.broker);
                out.state(hub_state("subscribed", json!({"filter": filter})))?;
                if let Some(b) = &mut bridge {
                    b.on_connect(&client);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(b) = &mut bridge
                    && !p.topic.starts_with(&format!("{}/", m.prefix))
                    && b.on_other(&client, &p.topic, &p.payload)
                {
                    continue;
                }
                if let Some(device) = ha::cleared_status(&m.prefix, &p.topic, &p.payload) {
                    // `hub forget`: not a rejected payload.
                    if let Some(b) = &mut bridge {
                        b.on_cleared(&client, device);
                    }
                    out.either(
                        escape(&format!(
                            "FORGOTTEN {device} (its retained status was cleared)"
                        ))
                        .into_owned(),
                        json!({"type": "forgotten", "device": device}),
                    )?;
                    continue;
                }
                let outcome = hub.handle(&p.topic, &p.payload);
                note(&outcome);
                if let (
                    Some(b),
                    Outcome::Accepted {
                        device, message, ..
                    },
                ) = (&mut bridge, &outcome)
                {
                    b.on_accepted(&client, device, message);
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
