//! The monitoring modes (`hub`, `hub bridge`): the one owner of rumqttc's event loop. It
//! subscribes to `<prefix>/+/#` on every connect, hands each message to the library's `Hub`,
//! prints what comes out, bridges decoded messages as JSON, prints the totals every
//! `--totals-every` and on SIGINT/SIGTERM, and reconnects with backoff while the broker is
//! away. A refused login or a failed TLS handshake ends it: retrying cannot fix those.
//! With Home Assistant discovery (bridge mode) it also subscribes to Home Assistant's status,
//! drives `edge_hub::ha::Discovery` and publishes what it returns, and registers the hub's
//! availability `offline` as its MQTT will. An empty retained status (`hub forget`) makes it
//! forget the device: not a rejected payload.

use std::{collections::VecDeque, time::Duration};

use anyhow::Context as _;
use edge_hub::{
    Hub, Outcome, escape,
    ha::{self, Discovery, Publication},
    render,
};
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
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
    /// Home Assistant discovery (bridge mode only).
    pub ha: Option<ha::Settings>,
    pub totals_every: Option<Duration>,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Discovery publications waiting for room in the client's queue; past this the oldest are
/// dropped (the next connect re-sends every config anyway).
const MAX_PENDING: usize = 8192;

pub async fn run(mut opts: MqttOptions, m: Monitor) -> anyhow::Result<()> {
    let mut discovery = m.ha.clone().map(Discovery::new);
    if let Some(d) = &discovery {
        let will = d.hub_will();
        opts.set_last_will(LastWill::new(
            will.topic,
            will.payload,
            QoS::AtLeastOnce,
            will.retain,
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(opts, 256);
    let filter = format!("{}/+/#", m.prefix);
    let ha_status = discovery.as_ref().map(|d| d.settings().status_topic());
    let mut pending = Pending::default();
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
        // Each event may have made room in the client's queue, or new discovery messages.
        pending.flush(&client);
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
                let mut filters = vec![SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce)];
                if let Some(t) = &ha_status {
                    filters.push(SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                }
                client
                    .subscribe_many(filters)
                    .await
                    .context("subscribing")?;
                if let Some(d) = &mut discovery {
                    pending.extend(d.on_connect());
                }
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
                if let Some(t) = ha_status.as_ref().filter(|_| refused(1)) {
                    log::warn!(
                        "ha: {} refused the subscription to {t}: discovery configs are re-sent on reconnect only, not when Home Assistant starts (let the hub read {t}, or --no-ha)",
                        m.broker
                    );
                }
                log::info!("hub: subscribed to {filter} on {}", m.broker);
                out.state(hub_state("subscribed", json!({"filter": filter})))?;
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let (Some(d), Some(t)) = (&mut discovery, &ha_status)
                    && p.topic == *t
                {
                    pending.extend(d.on_ha_status(&p.payload));
                    continue;
                }
                if let Some(device) = ha::cleared_status(&m.prefix, &p.topic, &p.payload) {
                    log::info!(
                        "hub: the retained status of {} was cleared (hub forget): device forgotten",
                        escape(device)
                    );
                    if let Some(d) = &mut discovery {
                        pending.extend(d.forget(device));
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
                if let (
                    Some(d),
                    Outcome::Accepted {
                        device, message, ..
                    },
                ) = (&mut discovery, &outcome)
                {
                    pending.extend(d.on_message(device, message));
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

/// Discovery publications not yet handed to the client (its queue was full).
#[derive(Default)]
struct Pending {
    queue: VecDeque<Publication>,
    dropped: u64,
}

impl Pending {
    fn extend(&mut self, pubs: Vec<Publication>) {
        self.queue.extend(pubs);
        while self.queue.len() > MAX_PENDING {
            self.queue.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                log::warn!(
                    "ha: {} discovery messages dropped so far (the broker is not taking them)",
                    self.dropped
                );
            }
        }
    }

    /// Hands the client as many as its queue takes, in order.
    fn flush(&mut self, client: &AsyncClient) {
        while let Some(p) = self.queue.pop_front() {
            if client
                .try_publish(
                    p.topic.clone(),
                    QoS::AtLeastOnce,
                    p.retain,
                    p.payload.clone(),
                )
                .is_err()
            {
                self.queue.push_front(p);
                break;
            }
        }
    }
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
