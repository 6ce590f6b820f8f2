//! Start-up and the running pipeline: kernel facts -> ring sizes -> probes -> readers ->
//! batcher -> outbox -> publisher, and the orderly shutdown that flushes everything.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Map, MapData, PerCpuArray, RingBuf},
};
use edge_wire::{Birth, ProbeInfo, ProbeState, QueueInfo, RingBufferInfo, SCHEMA_VERSION, bounded};
use firmware_agent_common::{COUNTERS_MAP, Ring, map_names};

use crate::{
    batch::Stamped,
    config::Config,
    kernel::KernelInfo,
    metrics::Stats,
    outbox::{Outbox, SpoolConfig},
    pipeline::{BatchLoop, MetricsLoop, Origin, read_ring},
    probes::{self, PROBES},
    publish::{self, Closing, Ended, Topics},
    ringbuf::{RingPlan, WakeTimes, choose_size},
    tracefs::Tracefs,
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
    match ring {
        Ring::Watch => cfg.ring_buffers.watch_events,
        Ring::Proc => cfg.ring_buffers.proc_events,
        Ring::Net => cfg.ring_buffers.net_events,
    }
}

/// Plans each ring buffer's size from the config and the page size, logging the choice.
pub fn plan_rings(cfg: &Config, page_size: u64) -> anyhow::Result<Vec<RingPlan>> {
    Ring::ALL
        .into_iter()
        .map(|ring| (ring.map_name(), ring.config_key(), ring_request(cfg, ring)))
        .map(|(map, key, requested)| {
            let chosen = choose_size(requested, page_size)
                .with_context(|| format!("config key `{key}`"))?;
            log::info!(
                "ring buffer {map}: page size {page_size} B, requested {requested} B ({key}), chosen {chosen} B (smallest power of two >= both)"
            );
            Ok(RingPlan {
                map,
                key,
                requested,
                chosen,
            })
        })
        .collect()
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
    let ring_plans = plan_rings(cfg, kernel.page_size)?;
    let plan = probes::plan(&tracefs, &cfg.probes, kernel.btf);
    let (ebpf, report) = probes::load_and_attach(plan, &ring_plans)
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
    let mut rings = Vec::new();
    for plan in &ring_plans {
        let kernel_size = match ebpf.map(plan.map) {
            Some(Map::RingBuf(data)) => data
                .info()
                .map(|i| u64::from(i.max_entries()))
                .with_context(|| format!("reading {} info", plan.map))?,
            _ => anyhow::bail!("ring buffer {} missing from the eBPF object", plan.map),
        };
        if kernel_size != plan.chosen {
            log::warn!(
                "ring buffer {}: kernel reports {kernel_size} B, we chose {} B",
                plan.map,
                plan.chosen
            );
        }
        rings.push(RingBufferInfo {
            name: bounded(plan.map),
            requested: plan.requested,
            chosen: kernel_size,
        });
    }
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
    let summaries = crate::summary::Summaries::take(&mut ebpf, &cfg.summaries, &probes)?;
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
        ring_buffers: rings,
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

    let rings = RINGS
        .into_iter()
        .map(|ring| Ok((ring, take_ring(&mut ebpf, ring.map_name())?)))
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

    smol::block_on(async {
        let (tx, rx) = crate::queue::bounded::<Stamped>(EVENT_QUEUE);
        let readers: Vec<_> = rings
            .into_iter()
            .map(|(which, ring)| {
                smol::spawn(read_ring(
                    which,
                    ring,
                    wakes.clone(),
                    tx.clone(),
                    stats.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        let summariser = summaries.spawn(tx.clone(), stop.clone());
        drop(tx);
        let batcher = smol::spawn(
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
            smol::spawn(
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
        for r in readers {
            r.await;
        }
        summariser.await;
        batcher.await;
        if let Some(s) = sampler {
            s.await;
        }
    });
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

fn take_ring(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<RingBuf<MapData>> {
    ebpf.take_map(name)
        .with_context(|| format!("{name} map missing"))?
        .try_into()
        .with_context(|| format!("{name} is not a ring buffer"))
}
