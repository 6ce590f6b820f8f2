//! Start-up and the running pipeline: kernel facts -> ring sizes -> probes -> readers ->
//! batcher -> outbox -> publisher, and the orderly shutdown that flushes everything.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray},
};
use edge_wire::{Birth, ProbeInfo, ProbeState, QueueInfo, RingBufferInfo, SCHEMA_VERSION, bounded};
use firmware_agent_common::{COUNTERS_MAP, Ring, Transport, map_names};

use crate::{
    batch::Stamped,
    config::Config,
    kernel::KernelInfo,
    metrics::Stats,
    outbox::{Outbox, SpoolConfig},
    pipeline::{BatchLoop, MetricsLoop, Origin, read_ring},
    probes::{self, PROBES},
    publish::{self, Closing, Ended, Topics},
    ringbuf::WakeTimes,
    tracefs::Tracefs,
    transport::{self, Waits},
};

/// Decoded events waiting for the batcher, at most; when full, readers wait and the kernel
/// counts drops in the ring buffer instead. Slots are allocated as events come (`queue`).
const EVENT_QUEUE: usize = 1024;

/// The probes, loaded and attached, with everything the pipeline needs from them.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub kernel: KernelInfo,
    pub rings: Vec<RingBufferInfo>,
    pub probes: Vec<ProbeInfo>,
}

/// The ring buffers whose records the generic readers publish as events (the others are read
/// by the summarisers).
const RINGS: [Ring; 2] = [Ring::Watch, Ring::Proc];
const _: () = assert!(Ring::Watch.published() && Ring::Proc.published() && !Ring::Net.published());

/// The requested size of `ring` (its `Ring::config_key`).
pub fn ring_request(cfg: &Config, ring: Ring) -> u64 {
    transport::request(cfg, ring)
}

/// Everything before the pipeline: kernel facts, tracefs, ring sizes, probes.
pub fn load(cfg: &Config) -> anyhow::Result<Loaded> {
    let kernel = KernelInfo::read();
    log::info!(
        "kernel {} on {}: page size {} B, BTF {} (tracepoint probes take offsets from tracefs; kernel-function probes use fentry/fexit with BTF, kprobes without)",
        kernel.release,
        kernel.arch,
        kernel.page_size,
        if kernel.btf { "present" } else { "absent" }
    );
    if !crate::kernel::raise_memlock() {
        log::info!(
            "RLIMIT_MEMLOCK not raised ({}); fine on kernels >= 5.11, which charge BPF memory to the cgroup",
            std::io::Error::last_os_error()
        );
    }
    let tracefs = Tracefs::open_or_mount()?;
    log::info!("tracefs at {}", tracefs.root().display());
    let transport = transport::choose(cfg.probes.transport, kernel.page_size);
    let ring_plans = transport::plan(cfg, kernel.page_size, transport)?;
    let cpus = match transport {
        Transport::RingBuf => 0,
        Transport::Perf => transport::perf_cpus()?.len(),
    };
    let plan = probes::plan(&tracefs, &cfg.probes, kernel.btf);
    let (ebpf, report) = probes::load_and_attach(plan, &ring_plans, transport)
        .map_err(|e| anyhow::anyhow!("loading the eBPF object: {}", probes::error_chain(&e)))?;
    let producing = PROBES
        .iter()
        .zip(&report)
        .filter(|(spec, info)| spec.produces_events && info.state == ProbeState::Attached)
        .count();
    if producing == 0 {
        let reasons: Vec<String> = report
            .iter()
            .map(|p| format!("{}: {:?}", p.name, p.state))
            .collect();
        anyhow::bail!("no event probe could run:\n  {}", reasons.join("\n  "));
    }
    let rings = ring_plans
        .iter()
        .map(|plan| transport::info(&ebpf, plan, transport, kernel.page_size, cpus))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Loaded {
        ebpf,
        kernel,
        rings,
        probes: report,
    })
}

/// Runs the agent until `stop` fires (SIGINT/SIGTERM), then flushes, says offline, detaches.
pub fn run(cfg: &Config, device: &str, stop: async_channel::Receiver<()>) -> anyhow::Result<()> {
    let spool = cfg.queue.spool_dir.as_ref().map(|dir| SpoolConfig {
        dir: dir.clone(),
        max_bytes: cfg.queue.spool_bytes,
    });
    // Opened before the probes: a spool that cannot be opened stops the agent with the reason.
    let outbox = Arc::new(
        Outbox::new(cfg.queue.ram_bytes as usize, spool)
            .context("opening the spool (queue.spool_dir)")?,
    );
    let Loaded {
        mut ebpf,
        kernel,
        rings,
        probes,
    } = load(cfg)?;
    let summaries = crate::summary::Summaries::take(
        &mut ebpf,
        &cfg.summaries,
        &probes,
        &rings,
        kernel.page_size,
    )?;
    let origin = Origin {
        device: device.to_owned(),
        boot_id: kernel.boot_id.clone(),
        run_id: crate::kernel::random_u64(),
    };
    let birth = Birth {
        device: bounded(device),
        boot_id: bounded(&kernel.boot_id),
        session: 0,
        run_id: origin.run_id,
        unix_ms: 0,
        agent_version: bounded(env!("CARGO_PKG_VERSION")),
        schema_version: SCHEMA_VERSION,
        kernel_release: bounded(&kernel.release),
        arch: bounded(&kernel.arch),
        page_size: kernel.page_size as u32,
        kernel_btf: kernel.btf,
        ring_buffers: rings.clone(),
        probes,
        queue: QueueInfo {
            ram_bytes: cfg.queue.ram_bytes,
            spool_bytes: cfg
                .queue
                .spool_dir
                .as_ref()
                .map_or(0, |_| cfg.queue.spool_bytes),
        },
    };
    let client_id = cfg
        .mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("firmware-agent-{device}"));
    let topics = Topics::new(&cfg.mqtt.topic_prefix, device);
    log::info!(
        "publishing to {} as {client_id} under {}/ (run {:016x}); queue: {} B in RAM, {}",
        cfg.mqtt.url,
        topics.base,
        origin.run_id,
        cfg.queue.ram_bytes,
        match &cfg.queue.spool_dir {
            Some(d) => format!(
                "then up to {} B spooled in {}",
                cfg.queue.spool_bytes,
                d.display()
            ),
            None => "no spool (queue.spool_dir unset): overflow is dropped and counted".into(),
        }
    );
    let closing = Closing::default();
    let publisher = publish::spawn(
        cfg.mqtt
            .link(&client_id)
            .options()
            .context("mqtt settings")?,
        topics,
        birth,
        outbox.clone(),
        closing.clone(),
        Duration::from_millis(cfg.queue.shutdown_timeout_ms),
    )?;

    let sources = RINGS
        .into_iter()
        .map(|ring| {
            Ok((
                ring,
                transport::take(&mut ebpf, ring, &rings, kernel.page_size)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let wakes: WakeTimes = Arc::new(
        ebpf.take_map(map_names::WAKES)
            .context("WAKES map missing")?
            .try_into()
            .context("WAKES map type")?,
    );
    let drops: Arc<PerCpuArray<MapData, u64>> = Arc::new(
        ebpf.take_map(COUNTERS_MAP)
            .context("COUNTERS map missing")?
            .try_into()
            .context("COUNTERS map type")?,
    );
    let stats = Arc::new(Stats::default());
    let perf_poll = transport::perf_poll(Duration::from_millis(cfg.batch.max_age_ms));

    // Every pipeline task runs on this thread, which also waits on their fds and timers itself:
    // a wake-up is this one thread waking (async-io's block_on hands its reactor to a helper
    // thread after 500 us of waiting, so each wake-up there was two threads and a futex).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the pipeline's runtime")?;
    rt.block_on(async {
        let (tx, rx) = crate::queue::bounded::<Stamped>(EVENT_QUEUE);
        let readers: Vec<_> = sources
            .into_iter()
            .map(|(which, ring)| {
                let waits = Waits {
                    policy: Some((which, wakes.clone())),
                    perf_poll,
                    perf_lost: stats.perf_lost[which as usize].clone(),
                };
                tokio::spawn(read_ring(
                    which,
                    ring,
                    waits,
                    tx.clone(),
                    stats.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let summariser = summaries.spawn(
            Waits {
                policy: None,
                perf_poll,
                perf_lost: stats.perf_lost[Ring::Net as usize].clone(),
            },
            tx.clone(),
            stats.clone(),
            stop.clone(),
        );
        drop(tx);
        // Aborted if the agent stops first.
        let settled = tokio::spawn(async {
            tokio::time::sleep(STARTUP_SETTLE).await;
            release_startup_pages();
        });
        let batcher = tokio::spawn(
            BatchLoop {
                origin: origin.clone(),
                max_bytes: cfg.batch.max_bytes,
                max_age: Duration::from_millis(cfg.batch.max_age_ms),
                rx,
                drops: drops.clone(),
                outbox: outbox.clone(),
                stats: stats.clone(),
            }
            .run(),
        );
        let sampler = (cfg.metrics.interval_s > 0).then(|| {
            tokio::spawn(
                MetricsLoop {
                    every: Duration::from_secs(cfg.metrics.interval_s),
                    config: cfg.metrics.clone(),
                    origin: origin.clone(),
                    drops: drops.clone(),
                    outbox: outbox.clone(),
                    stats: stats.clone(),
                    stop: stop.clone(),
                }
                .run(),
            )
        });
        // A task's only error is a panic, and panics abort this binary.
        for r in readers {
            let _ = r.await;
        }
        let _ = summariser.await;
        let _ = batcher.await;
        if let Some(s) = sampler {
            let _ = s.await;
        }
        settled.abort();
    });
    drop(rt);
    log::info!(
        "shutting down: pipeline flushed; {} messages still queued for the broker",
        outbox.len()
    );
    outbox.close();
    closing.close();
    let ended = publisher
        .join()
        .map_err(|_| anyhow::anyhow!("the mqtt thread panicked"))?;
    drop(ebpf);
    match ended {
        Ended::Clean => log::info!("probes detached; everything delivered; bye"),
        Ended::TimedOut(left) => log::info!(
            "probes detached; {} messages undelivered ({} spooled, {} events counted as dropped); bye",
            left.messages,
            left.spooled_messages,
            left.dropped_events
        ),
    }
    Ok(())
}

/// How long after the readers start the binary's start-up pages are released.
const STARTUP_SETTLE: Duration = Duration::from_secs(5);

/// `residency::release_startup_pages`, with one log line saying what happened.
fn release_startup_pages() {
    match crate::residency::release_startup_pages() {
        Ok(bytes) => log::info!(
            "memory: start-up over; the binary's pages ({} kB mapped) handed back to the kernel, \
             the steady state reads back only what it runs",
            bytes / 1024
        ),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => log::info!(
            "memory: this kernel cannot reclaim the binary's start-up pages (MADV_PAGEOUT, Linux 5.4); they stay resident"
        ),
        Err(e) => log::warn!("memory: releasing the binary's start-up pages: {e}"),
    }
}
