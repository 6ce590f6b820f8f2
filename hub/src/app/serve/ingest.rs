//! The ingest loop of `hub serve`, on the hub's MQTT [`Session`] (which owns the connection,
//! subscribes to `<prefix>/+/#` on every connect and reconnects with backoff): hands each
//! message to the library's `Hub` and `Fleet`, collects the rows it leaves for the history
//! (handed to the writer every --flush-ms, or sooner when many are waiting), feeds the live
//! streams and the bridge. A cleared retained status (`hub forget`, a removed device) is not a
//! rejected payload: the device is forgotten, in the fleet and in the history. A refused login
//! or failed TLS handshake ends it. On SIGINT/SIGTERM the rows still waiting are handed over
//! before it returns.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use edge_hub::{
    Outcome,
    fleet::StatusChange,
    history::record_json,
    store::{WriteBatch, rows_of},
    timespec, web,
};
use rumqttc::MqttOptions;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
    time::{Instant, MissedTickBehavior, interval},
};

use super::{Config, Live, Shared};
use crate::app::{
    bridge::Bridge,
    monitor::{Route, handled, route, stopping},
    session::{Next, Session},
};

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
    let mut bridge = cfg.bridge.clone().map(|p| Bridge::new(p, cfg.ha.clone()));
    let extra = bridge.as_ref().map(Bridge::filters).unwrap_or_default();
    let filter = format!("{}/+/#", cfg.prefix);
    let mut session = Session::start(opts, 1024, &cfg.broker, filter, extra);
    let client = session.client.clone();
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut flush = interval(cfg.flush);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut pending = WriteBatch::default();
    let mut states_saved = Instant::now();
    let outcome = loop {
        // Each event may have made room in the client's queue for waiting discovery messages.
        if let Some(b) = &mut bridge {
            b.flush(&client);
        }
        let next = tokio::select! {
            next = session.next() => next,
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
        let p = match next {
            Err(e) => break Err(e),
            Ok(Next::Subscribed) => {
                if let Some(b) = &mut bridge {
                    b.on_connect(&client);
                }
                continue;
            }
            Ok(Next::Room) => continue,
            Ok(Next::Message(p)) => p,
        };
        match route(&mut bridge, &client, &cfg.prefix, &p.topic, &p.payload) {
            Route::Taken => continue,
            Route::Cleared(device) => {
                forget(&shared, device, &mut pending);
                // Rows taken in after this belong to a device that came back: a later batch.
                hand_over(&shared, &writer, &mut pending, false).await;
                continue;
            }
            Route::Fleet => {}
        }
        let outcome = take(&shared, &p.topic, &p.payload, p.retain, &mut pending);
        handled(&mut bridge, &client, &outcome);
        if let Some(b) = &bridge {
            shared
                .stats
                .bridge_dropped
                .store(b.dropped(), std::sync::atomic::Ordering::Relaxed);
        }
        if pending.len() >= MAX_PENDING_ROWS {
            hand_over(&shared, &writer, &mut pending, false).await;
        }
    };
    hand_over(&shared, &writer, &mut pending, true).await;
    stopping(&shared.state().hub.counters);
    outcome
}

/// `device`'s retained status was cleared: it leaves the fleet (and its counts), and its
/// history is deleted once the rows before this are stored.
fn forget(shared: &Shared, device: &str, pending: &mut WriteBatch) {
    let known = {
        let mut st = shared.state();
        st.hub.totals.forget(device);
        st.fleet.forget(device)
    };
    log::info!(
        "hub: {} forgotten (its retained status was cleared){}",
        edge_hub::escape(device),
        if known {
            ""
        } else {
            "; it was not in the fleet"
        }
    );
    pending.forget.push(device.to_owned());
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
        // A status change goes to the device's page at once (other changes within a second).
        let view = match (&outcome, &change) {
            (Outcome::Accepted { device, .. }, Some(_)) if shared.live.receiver_count() > 0 => st
                .fleet
                .device(device)
                .map(|d| (d.device.clone(), web::device::live_json(d, now))),
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
        if let Some((device, v)) = &view {
            send(device, "device", v.to_string());
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
