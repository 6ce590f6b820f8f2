//! The web server's routes: the pages (`/`, `/device/{id}`, `/events`), the JSON API
//! (`/api/devices`, `/api/devices/{id}`, `/api/events`, `/api/metrics`, `/api/hub`, and the
//! live streams),
//! the Prometheus exporter (`/metrics`) and the embedded assets. History queries run on the
//! blocking pool; a bad parameter is a 400 naming it, a storage failure a 500 naming the file.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Path, Query as Params, State},
    http::{StatusCode, header},
    middleware::{from_fn, from_fn_with_state},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use edge_hub::{
    exporter,
    fleet::DeviceView,
    history::record_json,
    store::{Query, STATUS},
    timespec,
    web::{self, Ctx},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Shared, auth, live};

const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 100_000;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", get(fleet_page))
        .route("/device/{id}", get(device_page))
        .route("/events", get(events_page))
        .route("/api/devices", get(api_devices))
        .route("/api/devices/{id}", get(api_device))
        .route("/api/events", get(api_events))
        .route("/api/metrics", get(api_metrics))
        .route("/api/stream", get(live::device))
        .route("/api/fleet/stream", get(live::fleet))
        .route("/api/hub", get(api_hub))
        .route("/metrics", get(metrics))
        .route("/assets/{file}", get(asset))
        .layer(from_fn_with_state(shared.clone(), auth::require))
        .layer(from_fn(auth::headers))
        .with_state(shared)
}

/// The query parameters any page or API call may carry (empty means absent).
#[derive(Debug, Default, Deserialize)]
pub struct P {
    device: Option<String>,
    kind: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    status: Option<String>,
    token: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl P {
    /// The store query these parameters ask for, or what is wrong with one of them.
    fn query(&self) -> Result<Query, String> {
        let now = timespec::now_ms();
        let time = |name: &str, v: &Option<String>| {
            given(v)
                .map(|s| timespec::parse(s, now).map_err(|e| format!("{name}: {e}")))
                .transpose()
        };
        let limit = match given(&self.limit) {
            None => DEFAULT_LIMIT,
            Some(s) => match s.parse::<usize>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
                _ => {
                    return Err(format!(
                        "limit: {s:?} is not a number from 1 to {MAX_LIMIT}"
                    ));
                }
            },
        };
        Ok(Query {
            device: given(&self.device).map(str::to_owned),
            kinds: given(&self.kind)
                .map(|k| {
                    k.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            since_ms: time("since", &self.since)?,
            until_ms: time("until", &self.until)?,
            limit,
        })
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx {
            token: given(&self.token),
            now_ms: timespec::now_ms(),
        }
    }
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({"error": msg.into()}))).into_response()
}

/// Runs a history query off the runtime's thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, edge_hub::store::StoreError> + Send + 'static,
) -> Result<T, String> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            log::error!("hub: {e}");
            Err(e.to_string())
        }
        Err(e) => Err(format!("query task failed: {e}")),
    }
}

fn views(shared: &Shared, p: &P) -> (Vec<DeviceView>, u64) {
    let now = timespec::now_ms();
    let st = shared.state();
    let filter = given(&p.device).unwrap_or("");
    let status = given(&p.status);
    let views = st
        .fleet
        .devices()
        .filter(|d| d.device.contains(filter))
        .map(|d| DeviceView::of(d, now))
        .filter(|v| status.is_none_or(|s| v.status == s))
        .collect();
    (views, st.fleet.version())
}

async fn fleet_page(State(shared): State<Arc<Shared>>, Params(p): Params<P>) -> Html<String> {
    let (views, version) = views(&shared, &p);
    Html(web::fleet::page(
        &p.ctx(),
        &views,
        given(&p.device).unwrap_or(""),
        version,
    ))
}

async fn device_page(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Params(p): Params<P>,
) -> Response {
    let Some(state) = shared.state().fleet.device(&id).cloned() else {
        let page = web::layout(
            &p.ctx(),
            "Unknown device",
            "missing",
            &[],
            "<p>No such device.</p>",
        );
        return (StatusCode::NOT_FOUND, Html(page)).into_response();
    };
    let store = shared.store.clone();
    let q = Query {
        device: Some(id),
        limit: 100,
        ..Query::default()
    };
    match blocking(move || store.records(&q)).await {
        Ok(recent) => Html(web::device::page(&p.ctx(), &state, &recent)).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn events_page(State(shared): State<Arc<Shared>>, Params(p): Params<P>) -> Html<String> {
    let form = web::events::Form {
        device: given(&p.device).unwrap_or("").to_owned(),
        kind: given(&p.kind).unwrap_or("").to_owned(),
        since: given(&p.since).unwrap_or("").to_owned(),
        until: given(&p.until).unwrap_or("").to_owned(),
        limit: given(&p.limit).unwrap_or("").to_owned(),
    };
    let result = match p.query() {
        Ok(q) => {
            let store = shared.store.clone();
            blocking(move || store.records(&q)).await
        }
        Err(e) => Err(e),
    };
    Html(web::events::page(&p.ctx(), &form, &result))
}

async fn api_devices(
    State(shared): State<Arc<Shared>>,
    Params(p): Params<P>,
) -> Json<Vec<DeviceView>> {
    Json(views(&shared, &p).0)
}

async fn api_device(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let now = timespec::now_ms();
    let found = {
        let st = shared.state();
        st.fleet.device(&id).map(|d| {
            let streams: Vec<Value> = st
                .hub
                .totals
                .streams(&id)
                .into_iter()
                .map(|(k, s)| {
                    json!({"boot_id": k.boot_id, "run_id": k.run_id,
                           "totals": edge_hub::report::device_json(&id, &s)})
                })
                .collect();
            json!({"device": DeviceView::of(d, now), "birth": d.birth, "metrics": d.metrics,
                   "streams": streams})
        })
    };
    let Some(mut v) = found else {
        return error(StatusCode::NOT_FOUND, format!("no device {id:?}"));
    };
    let store = shared.store.clone();
    let q = Query {
        device: Some(id),
        kinds: vec![STATUS.into()],
        limit: 20,
        ..Query::default()
    };
    match blocking(move || store.records(&q)).await {
        Ok(status) => {
            v["status_changes"] = status.iter().map(record_json).collect();
            Json(v).into_response()
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_events(State(shared): State<Arc<Shared>>, Params(p): Params<P>) -> Response {
    let q = match p.query() {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = shared.store.clone();
    match blocking(move || store.records(&q)).await {
        Ok(records) => Json(records.iter().map(record_json).collect::<Vec<_>>()).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn api_metrics(State(shared): State<Arc<Shared>>, Params(p): Params<P>) -> Response {
    let q = match p.query() {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e),
    };
    let store = shared.store.clone();
    match blocking(move || store.metrics(&q)).await {
        Ok(samples) => Json(samples).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The hub's own counters (cheap: no per-device work).
async fn api_hub(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let (c, devices) = {
        let st = shared.state();
        (st.hub.counters.clone(), st.fleet.len())
    };
    let rejected: serde_json::Map<String, Value> = c
        .rejected
        .iter()
        .map(|(k, n)| (k.name().to_owned(), json!(n)))
        .collect();
    let s = shared.stats.snapshot();
    Json(json!({
        "devices": devices, "accepted": c.accepted, "duplicates": c.duplicates,
        "ignored": c.ignored, "rejected": rejected, "history_bytes": s.history_bytes,
        "store_writes": s.store_writes, "store_rows": s.store_rows,
        "store_errors": s.store_errors, "bridge_dropped": s.bridge_dropped,
        "live_lagged": s.live_lagged,
    }))
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let now = timespec::now_ms();
    let (devices, counters) = {
        let st = shared.state();
        let devices: Vec<(DeviceView, Option<Value>)> = st
            .fleet
            .devices()
            .map(|d| (DeviceView::of(d, now), d.metrics.clone()))
            .collect();
        (devices, st.hub.counters.clone())
    };
    let page = exporter::page(&devices, &counters, &shared.stats.snapshot());
    ([(header::CONTENT_TYPE, exporter::CONTENT_TYPE)], page).into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    let path = format!("/assets/{file}");
    match web::ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no asset {file:?}")),
    }
}
