//! The system sampler: CPU, memory, load, temperatures and uptime every `metrics.interval_s`,
//! board health (`health`) and the top processes (`procs`), plus the agent's own counters,
//! published on `<prefix>/<device>/metrics`.

use std::{
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use edge_wire::{
    AgentStats, DropCount, Message, Metrics, Name, ProbeErrors, Temperature, bounded, encode,
};
use sysinfo::{Components, System};

/// Counters shared by the pipeline's tasks.
#[derive(Default)]
pub struct Stats {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    /// All ring buffers' drops, as last read from the kernel.
    pub ring_drops: AtomicU64,
    /// Events in batches that could not be encoded.
    pub encoding_drops: AtomicU64,
    /// Records each perf buffer ring lost, as its reader learnt (`PERF_RECORD_LOST`), by
    /// `Ring` index (0 with ring buffers).
    pub perf_lost: [std::sync::Arc<AtomicU64>; firmware_agent_common::Ring::ALL.len()],
    /// Probe failures by program, as last read from the kernel, and when.
    probe_errors: Mutex<(Option<Instant>, Vec<ProbeErrors>)>,
}

/// Reading every program's failure counters takes one syscall per counter: at most this often.
const PROBE_ERRORS_EVERY: Duration = Duration::from_secs(1);

impl Stats {
    /// Re-reads the probe failure counters with `read` if the last reading is stale.
    pub fn refresh_probe_errors(&self, read: impl FnOnce() -> Vec<ProbeErrors>) {
        let Ok(mut last) = self.probe_errors.lock() else {
            return;
        };
        if last.0.is_none_or(|t| t.elapsed() >= PROBE_ERRORS_EVERY) {
            *last = (Some(Instant::now()), read());
        }
    }

    pub fn probe_errors(&self) -> Vec<ProbeErrors> {
        self.probe_errors
            .lock()
            .map(|l| l.1.clone())
            .unwrap_or_default()
    }
}

pub struct Sampler {
    system: System,
    /// None where the platform has no sensors interface.
    components: Option<Components>,
    device: Name,
    boot_id: Name,
    board: crate::health::BoardReader,
    /// None when `metrics.top_n` is 0.
    top: Option<crate::procs::TopProcs>,
}

impl Sampler {
    pub fn new(device: &str, boot_id: &str, cfg: &crate::config::MetricsConfig) -> Option<Self> {
        let mut system = System::new().ok()?;
        // The first CPU reading is a baseline; usage is the change since the previous one.
        system.refresh_cpu_usage();
        let board = crate::health::BoardReader::discover(&cfg.sysfs_root, &cfg.proc_root);
        log::info!("{}", board.summary());
        let top = (cfg.top_n > 0).then(|| crate::procs::TopProcs::new(&cfg.proc_root, cfg.top_n));
        match top {
            Some(_) => log::info!(
                "top processes: {} by CPU and by memory per sample, from {}",
                cfg.top_n,
                cfg.proc_root.display()
            ),
            None => log::info!("top processes: off (metrics.top_n = 0)"),
        }
        Some(Self {
            system,
            components: Components::new_with_refreshed_list().ok(),
            device: bounded(device),
            boot_id: bounded(boot_id),
            board,
            top,
        })
    }

    /// A sample, with the agent's counters: `drops` cumulative by source, the outbox's depth.
    pub fn sample(
        &mut self,
        stats: &Stats,
        drops: Vec<DropCount>,
        depth: crate::outbox::Depth,
        metrics_dropped: u64,
    ) -> Metrics {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let load = System::load_average().ok();
        let temperatures = self
            .components
            .iter_mut()
            .flat_map(|c| {
                c.refresh(false);
                c.iter()
            })
            .filter_map(|c| {
                c.temperature().map(|t| Temperature {
                    label: bounded(c.label()),
                    celsius: t,
                })
            })
            .take(16)
            .collect();
        let board = self.board.sample();
        let (top_cpu, top_mem) = self.top.as_mut().map(|t| t.sample()).unwrap_or_default();
        Metrics {
            device: self.device.clone(),
            boot_id: self.boot_id.clone(),
            unix_ms: crate::batch::unix_ms(),
            uptime_s: System::uptime().unwrap_or(0),
            cpu_percent: self.system.global_cpu_usage(),
            mem_total_kib: self.system.total_memory() / 1024,
            mem_used_kib: self.system.used_memory() / 1024,
            load: load.map_or([0.0; 3], |l| {
                [l.one as f32, l.five as f32, l.fifteen as f32]
            }),
            temperatures,
            board,
            top_cpu,
            top_mem,
            agent: AgentStats {
                rss_kib: crate::kernel::self_rss_kib(),
                events: stats.events.load(Ordering::Relaxed),
                batches: stats.batches.load(Ordering::Relaxed),
                drops,
                queued: depth.queued,
                queued_bytes: depth.queued_bytes,
                spooled_bytes: depth.spooled_bytes,
                spool_written_bytes: depth.spool_written_bytes,
                spool_appends: depth.spool_appends,
                metrics_dropped,
                probe_errors: stats.probe_errors(),
            },
        }
    }

    pub fn encode(sample: &Metrics) -> Option<Vec<u8>> {
        encode(&Message::Metrics(sample.clone()))
            .inspect_err(|e| log::error!("metrics: encoding failed: {e}"))
            .ok()
    }
}
