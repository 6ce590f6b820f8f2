//! The live streams (server-sent events). `/api/stream?device=ID`: the device's current row
//! and page facts first, then its records, metrics samples and status changes as the ingest
//! loop takes them in, and its row and facts again (at most every second) whenever anything
//! else about it changed: a new birth, a sample, counts, last seen.
//! `/api/fleet/stream?since=VERSION`: every second, the ids of the devices forgotten (`gone`)
//! and the rows of the devices changed (`devices`) since the page was made (its version) or
//! since the last push. A browser that falls behind misses
//! items (counted) rather than holding the hub's memory.

use std::{convert::Infallible, sync::Arc, sync::atomic::Ordering::Relaxed, time::Duration};

use axum::{
    extract::{Query, State},
    response::sse::{Event, KeepAlive, Sse},
};
use edge_hub::{fleet::DeviceView, timespec, web};
use futures_util::{Stream, stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::MissedTickBehavior;

use super::{Live, Shared};

const FLEET_PUSH_EVERY: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
pub struct DeviceParams {
    device: String,
}

pub async fn device(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<DeviceParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Subscribed before the current row is read, so nothing falls between the two.
    let rx = shared.live.subscribe();
    let (first, seen) = current(&shared, &p.device, None).unzip();
    let first = first.map(|data| Ok(Event::default().event("device").data(data)));
    let mut ticker = tokio::time::interval(FLEET_PUSH_EVERY);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let start = (rx, shared, p.device, ticker, seen);
    let rest = stream::unfold(
        start,
        |(mut rx, shared, device, mut ticker, mut seen)| async move {
            loop {
                tokio::select! {
                    item = rx.recv() => match item {
                        Ok(item) if item.device == device => {
                            let ev = event(&item);
                            return Some((Ok(ev), (rx, shared, device, ticker, seen)));
                        }
                        Ok(_) => {}
                        Err(RecvError::Lagged(n)) => {
                            shared.stats.live_lagged.fetch_add(n, Relaxed);
                        }
                        Err(RecvError::Closed) => return None,
                    },
                    _ = ticker.tick() => {
                        if let Some((data, version)) = current(&shared, &device, seen) {
                            seen = Some(version);
                            let ev = Event::default().event("device").data(data);
                            return Some((Ok(ev), (rx, shared, device, ticker, seen)));
                        }
                    }
                }
            }
        },
    );
    Sse::new(futures_util::StreamExt::chain(stream::iter(first), rest))
        .keep_alive(KeepAlive::default())
}

/// The device's page data ([`web::device::live_json`]) and its version, if it changed after
/// version `seen` (if known at all with `None`).
fn current(shared: &Shared, device: &str, seen: Option<u64>) -> Option<(String, u64)> {
    let now = timespec::now_ms();
    let st = shared.state();
    let version = st
        .fleet
        .device_version(device)
        .filter(|&v| seen.is_none_or(|s| v > s))?;
    let d = st.fleet.device(device)?;
    Some((web::device::live_json(d, now).to_string(), version))
}

fn event(item: &Live) -> Event {
    Event::default().event(item.event).data(item.data.as_str())
}

#[derive(Deserialize)]
pub struct FleetParams {
    #[serde(default)]
    since: u64,
}

pub async fn fleet(
    State(shared): State<Arc<Shared>>,
    Query(p): Query<FleetParams>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let ticker = tokio::time::interval(FLEET_PUSH_EVERY);
    let s = stream::unfold(
        (ticker, shared, p.since),
        |(mut ticker, shared, mut since)| async move {
            loop {
                ticker.tick().await;
                let now = timespec::now_ms();
                let (gone, rows) = {
                    let st = shared.state();
                    let gone: Vec<&str> = st.fleet.forgotten_since(since).collect();
                    let gone = (!gone.is_empty()).then(|| serde_json::json!(gone).to_string());
                    let rows: Vec<serde_json::Value> = st
                        .fleet
                        .changed_since(since)
                        .map(|d| web::fleet::row_json(&DeviceView::of(d, now), now))
                        .collect();
                    since = st.fleet.version();
                    let rows =
                        (!rows.is_empty()).then(|| serde_json::Value::Array(rows).to_string());
                    (gone, rows)
                };
                // Forgotten devices first: one that came back since is in the rows again.
                let events: Vec<Result<Event, Infallible>> = [("gone", gone), ("devices", rows)]
                    .into_iter()
                    .filter_map(|(name, data)| Some(Ok(Event::default().event(name).data(data?))))
                    .collect();
                if !events.is_empty() {
                    return Some((stream::iter(events), (ticker, shared, since)));
                }
            }
        },
    );
    Sse::new(futures_util::StreamExt::flatten(s)).keep_alive(KeepAlive::default())
}
