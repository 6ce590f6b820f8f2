//! The ingest loop of `hub serve`, the one owner of rumqttc's event loop: subscribes to
//! `<prefix>/+/#` on every connect, hands each message to the library's `Hub` and `Fleet`,
//! collects the rows it leaves for the history (handed to the writer every --flush-ms, or
//! sooner when many are waiting), feeds the live streams and the bridge. It reconnects with
//! backoff while the broker is away; a refused login or failed TLS handshake ends it. On
//! SIGINT/SIGTERM the rows still waiting are handed over before it returns.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use edge_hub::{
    Outcome,
    fleet::{DeviceView, StatusChange},
    history::record_json,
    store::{WriteBatch, rows_of},
    timespec, web,
};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, SubscribeFilter, SubscribeReasonCode};
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
    time::{Instant, MissedTickBehavior, interval},
};

use super::{Config, Live, Shared};
use crate::app::{
    bridge::Bridge,
    broker::{describe, is_fatal},
    monitor::{next_event, note},
};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Rows that make the loop hand a batch to the writer before the flush interval is up.
const MAX_PENDING_ROWS: usize = 5_000;
/// How often the changed devices' states (counts, last birth and sample) are saved; the
/// records themselves go with every flush, and every state is saved when the hub stops.
const STATES_EVERY: Duration = Duration::from_secs(5);

pub async fn run(
    opts: MqttOptions,
    cfg: &Config,
    shared: Arc<Shared>,
    writer: mpsc::Sender<WriteBatch>,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(opts, 1024);
    let filter = format!("{}/+/#", cfg.prefix);
    let mut bridge = cfg.bridge.clone().map(|p| Bridge::new(p, cfg.ha.clone()));
    let extra = bridge.as_ref().map(Bridge::filters).unwrap_or_default();
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut flush = interval(cfg.flush);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pending = WriteBatch::default();
    let mut states_saved = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut retry_at: Option<Instant> = None;
    let outcome = loop {
        // Each event may have made room in the client's queue for waiting discovery messages.
        if let Some(b) = &mut bridge {
            b.flush(&client);
        }
        let event = tokio::select! {
            ev = next_event(&mut eventloop, retry_at) => ev,
            _ = interrupt.recv() => break Ok(()),
            _ = terminate.recv() => break Ok(()),
            _ = flush.tick() => {
                let states = states_saved.elapsed() >= STATES_EVERY;
                if states {
                    states_saved = Instant::now();
                }
                hand_over(&shared, &writer, &mut pending, states).await;
                continue;
            }
        };
        retry_at = None;
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = FIRST_BACKOFF;
                log::info!("hub: connected to {}", cfg.broker);
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
                // The fleet's filter comes first; the bridge's (Home Assistant's status) are
                // not worth stopping for.
                if matches!(ack.return_codes.first(), Some(SubscribeReasonCode::Failure)) {
                    break Err(anyhow::anyhow!(
                        "{} refused the subscription to {filter} (does the ACL let this user read it?)",
                        cfg.broker
                    ));
                }
                log::info!("hub: subscribed to {filter} on {}", cfg.broker);
                if let Some(b) = &mut bridge {
                    b.on_connect(&client);
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if let Some(b) = &mut bridge
                    && !p.topic.starts_with(&format!("{}/", cfg.prefix))
                    && b.on_other(&client, &p.topic, &p.payload)
                {
                    continue;
                }
                if let (Some(b), Some(device)) = (
                    &mut bridge,
                    edge_hub::ha::cleared_status(&cfg.prefix, &p.topic, &p.payload),
                ) {
                    b.on_cleared(&client, device);
                }
                let outcome = take(&shared, &p.topic, &p.payload, p.retain, &mut pending);
                note(&outcome);
                if let (
                    Some(b),
                    Outcome::Accepted {
                        device, message, ..
                    },
                ) = (&mut bridge, &outcome)
                {
                    b.on_accepted(&client, device, message);
                    shared
                        .stats
                        .bridge_dropped
                        .store(b.dropped(), std::sync::atomic::Ordering::Relaxed);
                }
                if pending.len() >= MAX_PENDING_ROWS {
                    hand_over(&shared, &writer, &mut pending, false).await;
                }
            }
            Ok(_) => {}
            Err(e) if is_fatal(&e) => {
                break Err(anyhow::anyhow!("{}: {}", cfg.broker, describe(&e)));
            }
            Err(e) => {
                log::warn!(
                    "hub: broker {} unreachable ({}); retrying in {backoff:?}",
                    cfg.broker,
                    describe(&e)
                );
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    hand_over(&shared, &writer, &mut pending, true).await;
    let c = shared.state().hub.counters.clone();
    log::info!(
        "hub: stopping; accepted {} duplicates {} ignored {} rejected {}",
        c.accepted,
        c.duplicates,
        c.ignored,
        c.rejected_total()
    );
    outcome
}

/// Decodes one message into the shared state, its rows into `pending`, and tells the live
/// streams.
fn take(
    shared: &Shared,
    topic: &str,
    payload: &[u8],
    retained: bool,
    pending: &mut WriteBatch,
) -> Outcome {
    let now = timespec::now_ms();
    let (outcome, records, sample, change, view) = {
        let mut st = shared.state();
        let st = &mut *st;
        let outcome = st.hub.handle(topic, payload);
        let (records, sample) = rows_of(&outcome, now);
        let change = st
            .fleet
            .apply(&outcome, &records, &st.hub.totals, now, retained);
        let view = match (&outcome, &change) {
            (Outcome::Accepted { device, .. }, Some(_)) => {
                st.fleet.device(device).map(|d| DeviceView::of(d, now))
            }
            _ => None,
        };
        (outcome, records, sample, change, view)
    };
    match (&change, &outcome) {
        (Some(StatusChange::StaleWill { session, current }), Outcome::Accepted { device, .. }) => {
            log::info!(
                "hub: {} stale will of session {session} ignored (session {current} is online)",
                edge_hub::escape(device)
            );
        }
        (Some(StatusChange::Offline { cause }), Outcome::Accepted { device, .. }) => {
            log::info!("hub: {} offline ({cause})", edge_hub::escape(device));
        }
        _ => {}
    }
    if shared.live.receiver_count() > 0 {
        let send = |device: &str, event, data: String| {
            let _ = shared.live.send(Arc::new(Live {
                device: device.to_owned(),
                event,
                data,
            }));
        };
        for r in &records {
            send(&r.device, "record", record_json(r).to_string());
        }
        if let Some(s) = &sample {
            send(
                &s.device,
                "metrics",
                serde_json::to_string(s).unwrap_or_default(),
            );
        }
        if let Some(v) = &view {
            send(
                &v.device,
                "device",
                web::fleet::row_json(v, now).to_string(),
            );
        }
    }
    pending.records.extend(records);
    pending.metrics.extend(sample);
    outcome
}

/// Gives the rows waiting (and, with `states`, the device states changed) to the writer;
/// waits while the writer is busy with earlier ones.
async fn hand_over(
    shared: &Shared,
    writer: &mpsc::Sender<WriteBatch>,
    pending: &mut WriteBatch,
    states: bool,
) {
    if states {
        pending.devices = shared.state().fleet.take_dirty();
    }
    if pending.is_empty() {
        return;
    }
    let batch = std::mem::take(pending);
    if writer.send(batch).await.is_err() {
        log::error!("hub: the history writer has stopped; rows are no longer stored");
    }
}
