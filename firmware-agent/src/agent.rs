//! Start-up and the running pipeline: kernel facts -> ring sizes -> probes -> readers ->
//! batcher -> outbox -> publisher, and the orderly shutdown that flushes everything.

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{Map, MapData, PerCpuArray, RingBuf},
};
use edge_wire::{Birth, ProbeInfo, ProbeState, RingBufferInfo, SCHEMA_VERSION, bounded};
use firmware_agent_common::{DROP_BIND, DROP_EXEC, DROP_EXIT};
use futures_lite::future;

use crate::{
    batch::{Batcher, DropDelta, Stamped},
    config::Config,
    kernel::{KernelInfo, proc_ppid},
    metrics::{Sampler, Stats},
    outbox::{Leaf, Outbox, Outgoing},
    probes::{self, PROGRAMS},
    publish::{self, Topics},
    ringbuf::{RingPlan, choose_size},
    tracefs::Tracefs,
};

/// Decoded events waiting for the batcher; when full, readers wait and the kernel counts
/// drops in the ring buffer instead.
const EVENT_QUEUE: usize = 8192;

/// The probes, loaded and attached, with everything the pipeline needs from them.
pub struct Loaded {
    pub ebpf: Ebpf,
    pub kernel: KernelInfo,
    pub rings: Vec<RingBufferInfo>,
    pub probes: Vec<ProbeInfo>,
}

/// The ring buffers in the eBPF object: map name, and the config key of its requested size.
const RINGS: [(&str, &str); 2] = [
    ("WATCH_EVENTS", "ring_buffers.watch_events"),
    ("PROC_EVENTS", "ring_buffers.proc_events"),
];

/// Plans each ring buffer's size from the config and the page size, logging the choice.
pub fn plan_rings(cfg: &Config, page_size: u64) -> anyhow::Result<Vec<RingPlan>> {
    let requests = [cfg.ring_buffers.watch_events, cfg.ring_buffers.proc_events];
    RINGS
        .into_iter()
        .zip(requests)
        .map(|((map, key), requested)| {
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
        "kernel {} on {}: page size {} B, BTF {} (not needed: probes are tracepoints with offsets from tracefs)",
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
    let plan = probes::plan(&tracefs, &cfg.probes);
    let (ebpf, report) = probes::load_and_attach(plan, &ring_plans)
        .map_err(|e| anyhow::anyhow!("loading the eBPF object: {}", probes::error_chain(&e)))?;
    let producing = PROGRAMS
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
    let Loaded {
        mut ebpf,
        kernel,
        rings,
        probes,
    } = load(cfg)?;
    let birth = Birth {
        device: bounded(device),
        boot_id: bounded(&kernel.boot_id),
        session: 0,
        unix_ms: 0,
        agent_version: bounded(env!("CARGO_PKG_VERSION")),
        schema_version: SCHEMA_VERSION,
        kernel_release: bounded(&kernel.release),
        arch: bounded(&kernel.arch),
        page_size: kernel.page_size as u32,
        kernel_btf: kernel.btf,
        ring_buffers: rings,
        probes,
    };
    let outbox = Arc::new(Outbox::new(cfg.mqtt.outbox_batches));
    let client_id = cfg
        .mqtt
        .client_id
        .clone()
        .unwrap_or_else(|| format!("firmware-agent-{device}"));
    let topics = Topics::new(&cfg.mqtt.topic_prefix, device);
    log::info!(
        "publishing to {} as {client_id} under {}/",
        cfg.mqtt.url,
        topics.base
    );
    let publisher = publish::spawn(&cfg.mqtt, client_id, topics, birth, outbox.clone())?;

    let rings = RINGS
        .iter()
        .map(|&(map, _)| Ok((map, take_ring(&mut ebpf, map)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let drops: PerCpuArray<MapData, u64> = ebpf
        .take_map("DROPS")
        .context("DROPS map missing")?
        .try_into()
        .context("DROPS map type")?;
    let stats = Arc::new(Stats::default());

    smol::block_on(async {
        let (tx, rx) = async_channel::bounded::<Stamped>(EVENT_QUEUE);
        let readers: Vec<_> = rings
            .into_iter()
            .map(|(name, ring)| {
                smol::spawn(read_ring(
                    name,
                    ring,
                    tx.clone(),
                    stats.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        drop(tx);
        let batcher = smol::spawn(batch_loop(
            cfg.clone(),
            device.to_owned(),
            kernel.boot_id.clone(),
            rx,
            drops,
            outbox.clone(),
            stats.clone(),
        ));
        let sampler = (cfg.metrics.interval_s > 0).then(|| {
            smol::spawn(metrics_loop(
                Duration::from_secs(cfg.metrics.interval_s),
                device.to_owned(),
                kernel.boot_id.clone(),
                outbox.clone(),
                stats.clone(),
                stop.clone(),
            ))
        });
        for r in readers {
            r.await;
        }
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
    publisher
        .join()
        .map_err(|_| anyhow::anyhow!("the mqtt thread panicked"))?;
    drop(ebpf);
    log::info!("probes detached; bye");
    Ok(())
}

fn take_ring(ebpf: &mut Ebpf, name: &str) -> anyhow::Result<RingBuf<MapData>> {
    ebpf.take_map(name)
        .with_context(|| format!("{name} map missing"))?
        .try_into()
        .with_context(|| format!("{name} is not a ring buffer"))
}

async fn read_ring(
    name: &'static str,
    ring: RingBuf<MapData>,
    tx: async_channel::Sender<Stamped>,
    stats: Arc<Stats>,
    stop: async_channel::Receiver<()>,
) {
    let decode = |bytes: &[u8]| match crate::decode::decode(bytes, proc_ppid) {
        Ok(ev) => {
            stats
                .events
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Some(ev)
        }
        Err(e) => {
            log::warn!("{name}: undecodable record: {e}");
            None
        }
    };
    let stopped = async {
        let _ = stop.recv().await;
    };
    if let Err(e) = crate::ringbuf::drain(ring, decode, tx, stopped).await {
        log::error!("{name}: reader stopped: {e}");
    }
}

fn read_drops(drops: &PerCpuArray<MapData, u64>) -> [(&'static str, u64); 3] {
    let sum = |slot: u32| drops.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0);
    [
        ("ring:bind", sum(DROP_BIND)),
        ("ring:exec", sum(DROP_EXEC)),
        ("ring:exit", sum(DROP_EXIT)),
    ]
}

async fn batch_loop(
    cfg: Config,
    device: String,
    boot_id: String,
    rx: async_channel::Receiver<Stamped>,
    drops: PerCpuArray<MapData, u64>,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
) {
    let mut batcher = Batcher::new(
        &device,
        &boot_id,
        cfg.batch.max_bytes,
        Duration::from_millis(cfg.batch.max_age_ms),
    );
    let mut delta = DropDelta::default();
    let mut flush = |batcher: &mut Batcher| {
        let ring = read_drops(&drops);
        let ring_total: u64 = ring.iter().map(|(_, n)| n).sum();
        stats
            .ring_drops
            .store(ring_total, std::sync::atomic::Ordering::Relaxed);
        let counters = [ring[0], ring[1], ring[2], ("outbox", outbox.dropped())];
        if let Some((seq, n, payload)) = batcher.flush(delta.delta(&counters)) {
            stats
                .batches
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            log::debug!("batch {seq}: {n} events, {} bytes", payload.len());
            outbox.push(Outgoing {
                leaf: Leaf::Events,
                payload,
            });
        }
    };
    loop {
        let step = match batcher.deadline() {
            None => rx.recv().await.map_or(Step::Closed, Step::Event),
            Some(deadline) => {
                future::or(
                    async { rx.recv().await.map_or(Step::Closed, Step::Event) },
                    async {
                        smol::Timer::at(deadline).await;
                        Step::Due
                    },
                )
                .await
            }
        };
        match step {
            Step::Event(ev) => {
                if batcher.push(ev) {
                    flush(&mut batcher);
                }
            }
            Step::Due => flush(&mut batcher),
            Step::Closed => {
                flush(&mut batcher);
                return;
            }
        }
    }
}

#[allow(clippy::large_enum_variant, reason = "short-lived, moved once")]
enum Step {
    Event(Stamped),
    Due,
    Closed,
}

async fn metrics_loop(
    every: Duration,
    device: String,
    boot_id: String,
    outbox: Arc<Outbox>,
    stats: Arc<Stats>,
    stop: async_channel::Receiver<()>,
) {
    let Some(mut sampler) = Sampler::new(&device, &boot_id) else {
        log::warn!("metrics: sysinfo cannot read this system; no metrics will be published");
        return;
    };
    let mut timer = smol::Timer::interval(every);
    loop {
        let tick = future::or(
            async { futures_lite::StreamExt::next(&mut timer).await.is_some() },
            async {
                let _ = stop.recv().await;
                false
            },
        )
        .await;
        if !tick {
            return;
        }
        if let Some(payload) = sampler.encode(&stats, outbox.dropped()) {
            outbox.push(Outgoing {
                leaf: Leaf::Metrics,
                payload,
            });
        }
    }
}
