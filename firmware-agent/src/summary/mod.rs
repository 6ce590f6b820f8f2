//! The per-interval summaries: TCP flows and storage. They own the maps they read (and the
//! TCP close ring), and every `summaries.interval_s` push one summary event per family into the
//! same channel as the kernel events, so summaries are batched, numbered and spooled like any
//! event. At shutdown they publish the partial interval.

mod storage;
mod tcp;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{HashMap as BpfHashMap, MapData},
};
use edge_wire::{Event, ProbeInfo, ProbeState, RingBufferInfo};
use firmware_agent_common::{
    DiskStats, Family, Kind, Ring, SockInfo, TcpCloseEvent, WriteKey, WriteStat, map_names,
    read_record,
};
use futures_lite::future;

pub use self::{storage::Storage, tcp::TcpFlows};
use crate::{
    batch::{Stamped, monotonic_ns, stamp},
    config::SummariesConfig,
    metrics::Stats,
    probes::PROBES,
    transport::{Source, Waits},
};

/// Entries read from one map at most per scan (bounds a scan racing deletions).
const MAX_SCAN: usize = 65_536;

struct TcpSide {
    socks: BpfHashMap<MapData, u64, SockInfo>,
    flows: Arc<Mutex<TcpFlows>>,
}

impl TcpSide {
    fn tick(&mut self, interval_ms: u32) -> Option<edge_wire::TcpSummary> {
        let now_ns = monotonic_ns();
        let mut flows = lock(&self.flows);
        let mut seen = HashSet::new();
        let mut done = Vec::new();
        for (sk, info) in self.socks.iter().take(MAX_SCAN).flatten() {
            if seen.insert(sk) && flows.live(sk, &info, now_ns) {
                done.push(sk);
            }
        }
        for sk in done {
            let _ = self.socks.remove(&sk);
        }
        flows.end_scan();
        flows.flush(interval_ms)
    }
}

struct StorageSide {
    writes: BpfHashMap<MapData, WriteKey, WriteStat>,
    disks: BpfHashMap<MapData, u32, DiskStats>,
    state: Storage,
}

impl StorageSide {
    fn tick(&mut self, interval_ms: u32) -> Option<edge_wire::StorageSummary> {
        let writes: Vec<(WriteKey, WriteStat)> =
            self.writes.iter().take(MAX_SCAN).flatten().collect();
        let disks: Vec<(u32, DiskStats)> = self.disks.iter().take(MAX_SCAN).flatten().collect();
        let summary = self.state.summarise(&writes, &disks, interval_ms);
        // Writers whose process is gone had their last growth counted just now: forget them,
        // so the map keeps room for the living.
        for (key, _) in &writes {
            if !std::path::Path::new(&format!("/proc/{}", key.tgid)).exists() {
                let _ = self.writes.remove(key);
                self.state.forget(key);
            }
        }
        summary
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A close record from the ring, into the flows.
fn on_close(flows: &Mutex<TcpFlows>, bytes: &[u8]) {
    match read_record::<TcpCloseEvent>(bytes) {
        Some(ev) if ev.header.kind == Kind::TcpClose as u32 => lock(flows).closed(&ev),
        _ => log::warn!(
            "{}: undecodable record of {} bytes",
            Ring::Net.map_name(),
            bytes.len()
        ),
    }
}

/// The summarisers of the families whose probes attached.
pub struct Summaries {
    every: Duration,
    tcp: Option<TcpSide>,
    tcp_ring: Option<Source>,
    storage: Option<StorageSide>,
}

fn attached(probes: &[ProbeInfo], family: Family) -> bool {
    PROBES.iter().zip(probes).any(|(spec, info)| {
        spec.family() == family && spec.produces_events && info.state == ProbeState::Attached
    })
}

fn take<K: aya::Pod, V: aya::Pod>(
    ebpf: &mut Ebpf,
    name: &str,
) -> anyhow::Result<BpfHashMap<MapData, K, V>> {
    ebpf.take_map(name)
        .with_context(|| format!("{name} map missing"))?
        .try_into()
        .with_context(|| format!("{name} map type"))
}

impl Summaries {
    /// Takes the maps of the families whose event-producing probes attached.
    pub fn take(
        ebpf: &mut Ebpf,
        cfg: &SummariesConfig,
        probes: &[ProbeInfo],
        rings: &[RingBufferInfo],
        page_size: u64,
    ) -> anyhow::Result<Self> {
        let (tcp, tcp_ring) = if attached(probes, Family::Tcp) {
            let ring = crate::transport::take(ebpf, Ring::Net, rings, page_size)?;
            let side = TcpSide {
                socks: take(ebpf, map_names::SOCKS)?,
                flows: Arc::new(Mutex::new(TcpFlows::new(cfg.tcp_max_flows))),
            };
            log::info!(
                "tcp summary every {} s, at most {} flows (the rest summed)",
                cfg.interval_s,
                cfg.tcp_max_flows
            );
            (Some(side), Some(ring))
        } else {
            log::info!("tcp summary off: no tcp probe attached");
            (None, None)
        };
        let storage = if attached(probes, Family::Storage) {
            log::info!(
                "storage summary every {} s, at most {} writers (the rest summed)",
                cfg.interval_s,
                cfg.max_writers
            );
            Some(StorageSide {
                writes: take(ebpf, map_names::WRITES)?,
                disks: take(ebpf, map_names::DISKS)?,
                state: Storage::new(cfg.max_writers),
            })
        } else {
            log::info!("storage summary off: no storage probe attached");
            None
        };
        Ok(Self {
            every: Duration::from_secs(cfg.interval_s),
            tcp,
            tcp_ring,
            storage,
        })
    }

    /// Spawns the interval loop (and the TCP close reader inside it); it ends after `stop`
    /// fires, with a last summary of the partial interval.
    pub fn spawn(
        self,
        waits: Waits,
        tx: crate::queue::Sender<Stamped>,
        stats: Arc<Stats>,
        stop: async_channel::Receiver<()>,
    ) -> tokio::task::JoinHandle<()> {
        let reader = match (self.tcp_ring, &self.tcp) {
            (Some(ring), Some(side)) => {
                let flows = side.flows.clone();
                let stop = stop.clone();
                Some(tokio::spawn(async move {
                    // Nothing is sent from here: closes go into the flows.
                    let (none_tx, _none_rx) = crate::queue::bounded::<()>(1);
                    let decode = |bytes: &[u8]| {
                        on_close(&flows, bytes);
                        None
                    };
                    let stopped = async {
                        let _ = stop.recv().await;
                    };
                    if let Err(e) =
                        crate::transport::drain(ring, waits, decode, none_tx, stopped).await
                    {
                        log::error!("{}: reader stopped: {e}", Ring::Net.map_name());
                    }
                }))
            }
            _ => None,
        };
        let ticker = Ticker {
            every: self.every,
            tcp: self.tcp,
            storage: self.storage,
            reader,
            tx,
            stats,
            stop,
        };
        tokio::spawn(ticker.run())
    }
}

struct Ticker {
    every: Duration,
    tcp: Option<TcpSide>,
    storage: Option<StorageSide>,
    reader: Option<tokio::task::JoinHandle<()>>,
    tx: crate::queue::Sender<Stamped>,
    /// Where a summary that cannot be encoded is counted.
    stats: Arc<Stats>,
    stop: async_channel::Receiver<()>,
}

impl Ticker {
    async fn run(mut self) {
        if self.tcp.is_none() && self.storage.is_none() {
            return;
        }
        let mut began = Instant::now();
        loop {
            let stopped = future::or(
                async {
                    tokio::time::sleep(self.every).await;
                    false
                },
                async {
                    let _ = self.stop.recv().await;
                    true
                },
            )
            .await;
            if stopped && let Some(reader) = self.reader.take() {
                // Its last drain first, so the final summary has every close.
                let _ = reader.await;
            }
            let interval_ms = u32::try_from(began.elapsed().as_millis()).unwrap_or(u32::MAX);
            began = Instant::now();
            let mut events = Vec::new();
            if let Some(t) = self.tcp.as_mut() {
                events.extend(t.tick(interval_ms).map(Event::Tcp));
            }
            if let Some(s) = self.storage.as_mut() {
                events.extend(s.tick(interval_ms).map(Event::Storage));
            }
            for mut ev in events {
                let Some(stamped) = stamp(monotonic_ns(), &mut ev, &self.stats.encoding_drops)
                else {
                    continue;
                };
                if self.tx.send(stamped).await.is_err() {
                    return;
                }
            }
            if stopped {
                return;
            }
        }
    }
}
