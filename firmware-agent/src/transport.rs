//! How records travel from the probes to the readers: BPF ring buffers (kernel 5.8+) or, where
//! the kernel has none or the config says so, perf buffers (`perfbuf`). Chosen once at start-up
//! (`choose`), which also picks the matching probe object (`probes::object`). Each ring is
//! sized from its `ring_buffers.*` request in bytes and the page size (`plan`); the birth
//! reports the transport and the size (per CPU for perf) of every ring (`RingBufferInfo`).
//! Readers get a `Source` and `drain` it whatever the transport.

use std::{
    sync::{Arc, atomic::AtomicU64},
    time::Duration,
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, PerfEventArray},
};
use edge_wire::{RingBufferInfo, RingTransport};
use firmware_agent_common::{Ring, Transport, WAKE_AFTER_NS};

use crate::{
    config::{Config, TransportChoice},
    perfbuf::{PerfRing, pages_per_cpu},
    ringbuf::{MappedRing, RingPlan, WakeTimes, choose_size},
};

/// Picks the transport: forced by `probes.transport`, or for `auto` ring buffers if the kernel
/// creates one (a kernel before 5.8 refuses the map type with EINVAL), else perf buffers.
pub fn choose(choice: TransportChoice, page_size: u64) -> Transport {
    match choice {
        TransportChoice::Ringbuf => {
            log::info!("transport: ring buffers (probes.transport = \"ringbuf\")");
            Transport::RingBuf
        }
        TransportChoice::Perf => {
            log::info!("transport: perf buffers (probes.transport = \"perf\")");
            Transport::Perf
        }
        TransportChoice::Auto => {
            let bytes = u32::try_from(page_size).unwrap_or(u32::MAX);
            match crate::selftest::create_raw_ringbuf(bytes) {
                Ok(_) => {
                    log::info!("transport: ring buffers (the kernel creates them)");
                    Transport::RingBuf
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    log::info!(
                        "transport: perf buffers (this kernel refuses a {bytes} B BPF ring buffer: {e}; ring buffers need 5.8+)"
                    );
                    Transport::Perf
                }
                Err(e) => {
                    // Not a missing map type (no privilege, no memory): loading will say more.
                    log::warn!(
                        "transport: ring buffers, though a probe ring buffer failed ({e}); the object load will tell"
                    );
                    Transport::RingBuf
                }
            }
        }
    }
}

/// The requested size of `ring` (its `Ring::config_key`).
pub fn request(cfg: &Config, ring: Ring) -> u64 {
    match ring {
        Ring::Watch => cfg.ring_buffers.watch_events,
        Ring::Proc => cfg.ring_buffers.proc_events,
        Ring::Net => cfg.ring_buffers.net_events,
    }
}

/// Plans each ring's size from the config and the page size for `transport`, logging the
/// choice: for ring buffers the buffer's size, for perf buffers the size of each CPU's buffer.
pub fn plan(cfg: &Config, page_size: u64, transport: Transport) -> anyhow::Result<Vec<RingPlan>> {
    Ring::ALL
        .into_iter()
        .map(|ring| {
            let (map, key, requested) = (ring.map_name(), ring.config_key(), request(cfg, ring));
            let chosen = choose_size(requested, page_size)
                .with_context(|| format!("config key `{key}`"))?;
            match transport {
                Transport::RingBuf => log::info!(
                    "ring buffer {map}: page size {page_size} B, requested {requested} B ({key}), chosen {chosen} B (smallest power of two >= both)"
                ),
                Transport::Perf => {
                    let pages = pages_per_cpu(requested, page_size)
                        .with_context(|| format!("config key `{key}`"))?;
                    log::info!(
                        "perf buffer {map}: page size {page_size} B, requested {requested} B per CPU ({key}), chosen {pages} pages = {chosen} B per CPU (power-of-two pages, >= the request)"
                    );
                }
            }
            Ok(RingPlan {
                map,
                key,
                requested,
                chosen,
            })
        })
        .collect()
}

/// The CPUs that get a perf buffer: the online ones (a record written on an offline CPU
/// cannot happen; one written where no buffer is set fails in the probe and is counted).
pub fn perf_cpus() -> anyhow::Result<Vec<u32>> {
    aya::util::online_cpus().map_err(|(path, e)| anyhow::anyhow!("reading {path}: {e}"))
}

/// What the birth says about a ring once the object is loaded. Ring buffers: the size the
/// kernel reports; perf buffers: the planned pages per CPU and the CPU count.
pub fn info(
    ebpf: &Ebpf,
    plan: &RingPlan,
    transport: Transport,
    page_size: u64,
    cpus: usize,
) -> anyhow::Result<RingBufferInfo> {
    let (chosen, transport) = match transport {
        Transport::RingBuf => {
            let kernel_size = match ebpf.map(plan.map) {
                Some(aya::maps::Map::RingBuf(data)) => data
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
            (kernel_size, RingTransport::RingBuf)
        }
        Transport::Perf => {
            match ebpf.map(plan.map) {
                Some(aya::maps::Map::PerfEventArray(_)) => {}
                _ => anyhow::bail!("perf event array {} missing from the eBPF object", plan.map),
            }
            let pages = plan.chosen / page_size;
            (
                plan.chosen,
                RingTransport::Perf {
                    pages_per_cpu: u32::try_from(pages).context("pages per CPU")?,
                    cpus: u32::try_from(cpus).context("CPU count")?,
                },
            )
        }
    };
    Ok(RingBufferInfo {
        name: edge_wire::bounded(plan.map),
        requested: plan.requested,
        chosen,
        transport,
    })
}

/// A ring's records, ready to be read.
pub enum Source {
    Ring(MappedRing),
    Perf(PerfRing),
}

/// Takes `ring`'s map from the object and opens it the way `rings` (the birth's list) says.
pub fn take(
    ebpf: &mut Ebpf,
    ring: Ring,
    rings: &[RingBufferInfo],
    page_size: u64,
) -> anyhow::Result<Source> {
    let name = ring.map_name();
    let info = rings
        .iter()
        .find(|r| r.name.as_str() == name)
        .with_context(|| format!("{name} not among the planned rings"))?;
    let map = ebpf
        .take_map(name)
        .with_context(|| format!("{name} map missing"))?;
    match info.transport {
        RingTransport::RingBuf => {
            let aya::maps::Map::RingBuf(data) = map else {
                anyhow::bail!("{name} is not a ring buffer");
            };
            let size = usize::try_from(info.chosen).context("ring size")?;
            let page = usize::try_from(page_size).context("page size")?;
            Ok(Source::Ring(
                MappedRing::new(data, size, page)
                    .with_context(|| format!("mapping {name} ({size} B)"))?,
            ))
        }
        RingTransport::Perf { pages_per_cpu, .. } => {
            let mut array: PerfEventArray<MapData> = map
                .try_into()
                .with_context(|| format!("{name} is not a perf event array"))?;
            let page = usize::try_from(page_size).context("page size")?;
            let ring = PerfRing::open(&mut array, &perf_cpus()?, pages_per_cpu as usize, page)
                .with_context(|| format!("opening {name}'s perf buffers"))?;
            Ok(Source::Perf(ring.holding(array)))
        }
    }
}

/// How a reader waits: the ring-buffer wake-up policy (published rings), and for perf buffers
/// how often to look below the watermark and where to count lost records.
pub struct Waits {
    pub policy: Option<(Ring, WakeTimes)>,
    pub perf_poll: Duration,
    pub perf_lost: Arc<AtomicU64>,
}

/// How often a perf reader looks without a wake-up: a quarter of the batch age, at least the
/// ring buffers' own deadline, so a record waits at most that long before it is batched.
pub fn perf_poll(batch_max_age: Duration) -> Duration {
    (batch_max_age / 4).max(Duration::from_nanos(WAKE_AFTER_NS))
}

/// Reads `source` until `stop`, like `ringbuf::drain` (see there and `perfbuf::drain`).
pub async fn drain<T, F, S>(
    source: Source,
    waits: Waits,
    decode: F,
    tx: crate::queue::Sender<T>,
    stop: S,
) -> std::io::Result<()>
where
    F: FnMut(&[u8]) -> Option<T>,
    S: std::future::Future<Output = ()>,
{
    match source {
        Source::Ring(ring) => crate::ringbuf::drain(ring, waits.policy, decode, tx, stop).await,
        Source::Perf(ring) => {
            crate::perfbuf::drain(ring, waits.perf_poll, &waits.perf_lost, decode, tx, stop).await
        }
    }
}
