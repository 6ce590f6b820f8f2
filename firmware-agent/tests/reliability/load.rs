//! The reliability tests' rig: a mosquitto that keeps the hub's session across restarts (so
//! the hub, like a real dashboard with a persistent session, misses nothing while it
//! reconnects; the agent itself uses clean sessions and relies on its own queue), the hub with
//! that session, the agent; bind generators; and readers of what arrived.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::common::*;

pub struct Rig {
    pub broker: PrivateBroker,
    pub hub: Hub,
    pub agent: Agent,
    pub device: String,
    pub config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rig {
    /// A persistent-session broker, the hub subscribed with a persistent session, and the
    /// agent (config `extra`) online.
    pub fn start(name: &str, extra: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = PrivateBroker::start_with(
            "user root\npersistence true\npersistence_location {dir}/\nautosave_interval 0\nmax_queued_messages 0\nmax_queued_bytes 0\n",
        )
        .expect("mosquitto");
        let device = format!("{name}-{}", std::process::id());
        let client_id = format!("hub-{device}");
        let mut hub = Hub::start_args(
            &broker.url(),
            &[
                "--client-id",
                &client_id,
                "--persistent-session",
                "--totals-every",
                "1",
            ],
        );
        let config = write_config(dir.path(), "agent.toml", extra);
        let agent = Agent::start(&broker, &device, &config);
        hub.wait_for("the birth", |v| is_status(v, &device, "online", 1));
        Self {
            broker,
            hub,
            agent,
            device,
            config,
            _dir: dir,
        }
    }
}

/// A status record of `kind` (`online`/`offline`) from `device` for connection `session`.
pub fn is_status(v: &Value, device: &str, kind: &str, session: u64) -> bool {
    v["type"] == kind && v["device"] == device && v["body"]["session"] == session
}

/// The drops the hub counted for `device` (every source), from its latest totals record
/// (printed every second): per stream the highest total each batch carried, summed.
pub fn reported_drops(hub: &Hub, device: &str) -> u64 {
    latest_drops(hub, device)
        .values()
        .filter_map(Value::as_u64)
        .sum()
}

pub fn reported_drops_from(hub: &Hub, device: &str, source: &str) -> u64 {
    latest_drops(hub, device)
        .get(source)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn latest_drops(hub: &Hub, device: &str) -> serde_json::Map<String, Value> {
    hub.seen
        .iter()
        .rev()
        .find(|v| v["type"] == "totals" && v["device"] == device)
        .and_then(|v| v["drops"].as_object().cloned())
        .unwrap_or_default()
}

/// Polls `cond` until it holds (failing after a generous bound).
pub fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT * 2;
    while !cond() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A thread calling bind() `rate` times a second until stopped.
pub struct Generator {
    pub tid: u32,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl Generator {
    pub fn start(rate: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let _ = tx.send(unsafe { libc::gettid() } as u32);
            let period = Duration::from_secs(1) / rate;
            let start = Instant::now();
            let mut n = 0u64;
            while !flag.load(Ordering::Relaxed) {
                drop(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"));
                n += 1;
                if let Some(wait) =
                    (start + period * n as u32).checked_duration_since(Instant::now())
                {
                    std::thread::sleep(wait);
                }
            }
            n
        });
        let tid = rx.recv().expect("generator tid");
        Self {
            tid,
            stop,
            handle: Some(handle),
        }
    }

    /// Stops it; how many binds it made.
    pub fn stop(&mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .map_or(0, |h| h.join().expect("generator"))
    }

    /// A hub record carrying one of this generator's binds.
    pub fn is_ours(&self, v: &Value) -> bool {
        v["type"] == "event" && self.matches(&v["event"])
    }

    pub fn matches(&self, e: &Value) -> bool {
        e["Bind"]["task"]["pid"] == self.tid
    }
}

/// `n` binds as fast as one thread can: (thread id, binds made).
pub fn burst(n: u64) -> (u32, u64) {
    std::thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::gettid() } as u32;
        for _ in 0..n {
            drop(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"));
        }
        (tid, n)
    })
    .join()
    .expect("burst")
}

pub fn spool_segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "spool"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

pub fn spool_bytes(dir: &Path) -> u64 {
    spool_segments(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Cuts the newest segment's last record in the middle of its payload, as a power cut during
/// the write would; returns how many events that record held (its header survives).
pub fn tear_last_record(dir: &Path) -> u64 {
    let last = spool_segments(dir).pop().expect("a spool segment");
    let bytes = std::fs::read(&last).expect("read segment");
    let scan = edge_spool::scan(&bytes);
    let rec = scan.records.last().expect("a record in the last segment");
    assert!(rec.len > 2, "record too small to tear");
    let cut = rec.offset + (bytes.len() as u64 - rec.offset) - u64::from(rec.len) / 2;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .and_then(|f| f.set_len(cut))
        .expect("truncate");
    u64::from(rec.events)
}

/// Binds by thread `tid` in the spool's intact records, decoded by the test itself.
pub fn spooled_binds(dir: &Path, tid: u32) -> u64 {
    let mut n = 0;
    for seg in spool_segments(dir) {
        let bytes = std::fs::read(&seg).expect("read segment");
        for rec in edge_spool::scan(&bytes).records {
            let start = rec.offset as usize + edge_spool::HEADER_LEN;
            let payload = &bytes[start..start + rec.len as usize];
            if let Ok(edge_wire::Message::Events(b)) = edge_wire::decode(payload) {
                n += b
                    .events
                    .iter()
                    .filter(|e| matches!(e, edge_wire::Event::Bind(x) if x.task.pid == tid))
                    .count() as u64;
            }
        }
    }
    n
}

/// BPF programs and links loaded in the kernel right now.
pub fn bpf_objects() -> (usize, usize) {
    (
        aya::programs::loaded_programs()
            .filter(Result::is_ok)
            .count(),
        aya::programs::loaded_links().filter(Result::is_ok).count(),
    )
}

/// One `/proc/<pid>/status` memory field in KiB: `VmRSS` (everything resident, code pages
/// included) or `RssAnon` (private memory: the heap, where the queue lives).
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("{field} of {pid}"))
}
