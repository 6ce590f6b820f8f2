//! The live streams (server-sent events). `/api/stream?device=ID`: the device's current row
//! first, then its records, metrics samples and row changes as the ingest loop takes them in.
//! `/api/fleet/stream?since=VERSION`: every second, the rows of the devices changed since the
//! page was made (its version) or since the last push. A browser that falls behind misses
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
    let now = timespec::now_ms();
    let first = shared
        .state()
        .fleet
        .device(&p.device)
        .map(|d| web::fleet::row_json(&DeviceView::of(d, now), now).to_string());
    let first = first.map(|data| Ok(Event::default().event("device").data(data)));
    let rest = stream::unfold(
        (rx, shared, p.device),
        |(mut rx, shared, device)| async move {
            loop {
                match rx.recv().await {
                    Ok(item) if item.device == device => {
                        let ev = event(&item);
                        return Some((Ok(ev), (rx, shared, device)));
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(n)) => {
                        shared.stats.live_lagged.fetch_add(n, Relaxed);
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        },
    );
    Sse::new(futures_util::StreamExt::chain(stream::iter(first), rest))
        .keep_alive(KeepAlive::default())
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
                let rows: Vec<serde_json::Value> = {
                    let st = shared.state();
                    let rows = st
                        .fleet
                        .changed_since(since)
                        .map(|d| web::fleet::row_json(&DeviceView::of(d, now), now))
                        .collect();
                    since = st.fleet.version();
                    rows
                };
                if !rows.is_empty() {
                    let ev = Event::default()
                        .event("devices")
                        .data(serde_json::Value::Array(rows).to_string());
                    return Some((Ok(ev), (ticker, shared, since)));
                }
            }
        },
    );
    Sse::new(s).keep_alive(KeepAlive::default())
}
