//! `hub serve`: one process that subscribes and decodes ([`ingest`]), stores the history in
//! batched transactions on its own thread ([`writer`]), serves the web view, the JSON API and
//! the Prometheus exporter ([`http`], [`auth`], [`live`]) on the same runtime, and bridges JSON
//! ([`super::bridge`]). The state the parts share is [`Shared`].

mod auth;
mod http;
mod ingest;
mod live;
mod writer;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use anyhow::Context as _;
use edge_hub::{
    Hub,
    exporter::HubStats,
    fleet::Fleet,
    store::{Retention, SqliteStore, Store},
};
use rumqttc::MqttOptions;
use serde_json::json;
use tokio::{runtime::Runtime, sync::broadcast};

use super::{
    cli::{ServeArgs, check_listen},
    output::{Printer, hub_state},
};

/// The database file under --data-dir.
pub const DB_FILE: &str = "hub.sqlite";
/// Live items kept for slow browsers before they miss some.
const LIVE_BACKLOG: usize = 4096;

/// What `hub serve` runs with, from the command line.
pub struct Config {
    pub broker: String,
    pub prefix: String,
    pub json: bool,
    pub bridge: Option<String>,
    /// Home Assistant discovery through the bridge (None with --no-ha or --no-bridge).
    pub ha: Option<edge_hub::ha::Settings>,
    pub token: Option<String>,
    pub data_dir: PathBuf,
    pub retention: Retention,
    pub flush: Duration,
}

impl Config {
    pub fn new(
        args: ServeArgs,
        broker: String,
        prefix: String,
        json: bool,
    ) -> anyhow::Result<Self> {
        let token = args.token(std::env::var(super::cli::TOKEN_ENV).ok())?;
        check_listen(args.listen, token.is_some(), args.insecure_listen)?;
        let bridge = (!args.no_bridge).then(|| {
            args.bridge_prefix
                .clone()
                .unwrap_or_else(|| format!("{prefix}-json"))
        });
        let ha = match &bridge {
            Some(b) => args.ha.settings(b)?,
            None => None,
        };
        Ok(Self {
            broker,
            bridge,
            ha,
            token,
            json,
            data_dir: args.data_dir,
            retention: Retention {
                max_age_ms: (args.retain_days > 0.0)
                    .then_some((args.retain_days * 86_400_000.0) as i64),
                max_bytes: (args.retain_mb > 0.0).then_some((args.retain_mb * 1_000_000.0) as u64),
            },
            flush: Duration::from_millis(args.flush_ms),
            prefix,
        })
    }
}

/// The hub's decoding state and the fleet, updated together by the ingest loop.
pub struct State {
    pub hub: Hub,
    pub fleet: Fleet,
}

/// One item for the live streams: a device's record, metrics sample or changed row.
pub struct Live {
    pub device: String,
    /// The SSE event name: `record`, `metrics` or `device`.
    pub event: &'static str,
    pub data: String,
}

/// Counters of the hub's own work, for `/metrics`.
#[derive(Default)]
pub struct Stats {
    pub history_bytes: AtomicU64,
    pub store_writes: AtomicU64,
    pub store_rows: AtomicU64,
    pub store_errors: AtomicU64,
    pub bridge_dropped: AtomicU64,
    pub live_lagged: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> HubStats {
        HubStats {
            history_bytes: self.history_bytes.load(Relaxed),
            store_writes: self.store_writes.load(Relaxed),
            store_rows: self.store_rows.load(Relaxed),
            store_errors: self.store_errors.load(Relaxed),
            bridge_dropped: self.bridge_dropped.load(Relaxed),
            live_lagged: self.live_lagged.load(Relaxed),
        }
    }
}

/// What the ingest loop, the writer and the web server share.
pub struct Shared {
    state: Mutex<State>,
    pub store: Arc<dyn Store>,
    pub live: broadcast::Sender<Arc<Live>>,
    pub stats: Stats,
    pub token: Option<String>,
}

impl Shared {
    /// The state; never held across an await.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs `hub serve` until SIGINT/SIGTERM; everything received is stored before it returns.
pub fn run(
    rt: &Runtime,
    opts: MqttOptions,
    listen: std::net::SocketAddr,
    cfg: Config,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("--data-dir {}", cfg.data_dir.display()))?;
    let db = cfg.data_dir.join(DB_FILE);
    let store = SqliteStore::open(&db)?;
    let saved = store.device_states()?;
    let bytes = store.usage()?.bytes;
    log::info!(
        "hub: history in {} ({} devices known, {bytes} bytes); keeping {} days, {} MB",
        db.display(),
        saved.len(),
        cfg.retention
            .max_age_ms
            .map_or("all".into(), |ms| format!("{}", ms as f64 / 86_400_000.0)),
        cfg.retention
            .max_bytes
            .map_or("unlimited".into(), |b| format!("{}", b as f64 / 1e6)),
    );
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            hub: Hub::new(&cfg.prefix),
            fleet: Fleet::load(saved),
        }),
        store: Arc::new(store),
        live: broadcast::channel(LIVE_BACKLOG).0,
        stats: Stats::default(),
        token: cfg.token.clone(),
    });
    shared.stats.history_bytes.store(bytes, Relaxed);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| format!("--listen {listen}"))?;
    let url = format!("http://{}/", listener.local_addr().context("--listen")?);
    log::info!("hub: serving the fleet view on {url}");
    Printer::new(cfg.json).either(
        format!("SERVING {url} (history in {})", db.display()),
        hub_state("serving", json!({"url": url, "database": db})),
    )?;
    let (tx, writer) =
        writer::spawn(shared.clone(), cfg.retention).context("starting the history writer")?;
    let result = rt.block_on(async {
        let app = http::router(shared.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                log::error!("hub: web server stopped: {e}");
            }
        });
        ingest::run(opts, &cfg, shared.clone(), tx).await
    });
    // The ingest loop gave its last rows to the writer and dropped its end of the channel.
    if writer.join().is_err() {
        log::error!("hub: the history writer panicked");
    }
    result
}
