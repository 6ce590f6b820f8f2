//! The running pipeline's tasks: one reader per ring buffer, the batch loop (events -> batches
//! -> outbox, stamping every batch with the drops since the previous one), and the metrics
//! loop. Drop accounting is here: every source's cumulative count, in events.

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use aya::maps::{MapData, PerCpuArray};
use edge_wire::{DropCount, bounded};
use firmware_agent_common::Ring;
use futures_lite::future;

use crate::{
    batch::{Batcher, DropReport, Flush, Stamped},
    kernel::proc_ppid,
    metrics::{Sampler, Stats},
    outbox::{Leaf, Outbox},
    transport::{Source, Waits},
};

/// Who the batches are from.
#[derive(Clone)]
pub struct Origin {
    pub device: String,
    pub boot_id: String,
    pub run_id: u64,
}

pub async fn read_ring(
    which: Ring,
    ring: Source,
    waits: Waits,
    tx: crate::queue::Sender<Stamped>,
    stats: Arc<Stats>,
    stop: async_channel::Receiver<()>,
) {
    let name = which.map_name();
    let decode = |bytes: &[u8]| match crate::decode::decode(bytes, proc_ppid) {
        Ok((ts, mut ev)) => {
            stats.events.fetch_add(1, Ordering::Relaxed);
            crate::batch::stamp(ts, &mut ev, &stats.encoding_drops)
        }
        Err(e) => {
            log::warn!("{name}: undecodable record: {e}");
            None
        }
    };
    let stopped = async {
        let _ = stop.recv().await;
    };
    if let Err(e) = crate::transport::drain(ring, waits, decode, tx, stopped).await {
        log::error!("{name}: reader stopped: {e}");
    }
}

/// Every drop source's total since start, in events, in a fixed order.
pub fn drop_totals(
    drops: &PerCpuArray<MapData, u64>,
    outbox: &Outbox,
    stats: &Stats,
) -> Vec<(&'static str, u64)> {
    let lost = std::array::from_fn(|i| stats.perf_lost[i].load(Ordering::Relaxed));
    let mut totals = crate::counters::ring_drops(drops, lost);
    stats.refresh_probe_errors(|| crate::counters::probe_errors(drops));
    let ring: u64 = totals.iter().map(|(_, n)| n).sum();
    stats.ring_drops.store(ring, Ordering::Relaxed);
    totals.extend(outbox.drops().by_source());
    totals.push(("encoding", stats.encoding_drops.load(Ordering::Relaxed)));
    totals
}

/// The non-zero totals, as carried in metrics.
pub fn nonzero(totals: &[(&str, u64)]) -> Vec<DropCount> {
    totals
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| DropCount {
            source: bounded(name),
            count: *n,
        })
        .collect()
}

pub struct BatchLoop {
    pub origin: Origin,
    pub max_bytes: usize,
    pub max_age: Duration,
    pub rx: crate::queue::Receiver<Stamped>,
    pub drops: Arc<PerCpuArray<MapData, u64>>,
    pub outbox: Arc<Outbox>,
    pub stats: Arc<Stats>,
}

impl BatchLoop {
    pub async fn run(self) {
        let mut batcher = Batcher::new(
            &self.origin.device,
            &self.origin.boot_id,
            self.origin.run_id,
            self.max_bytes,
            self.max_age,
        );
        let mut report = DropReport::default();
        // Losses found at start-up (a corrupt spool record) are news before any event comes.
        if drop_totals(&self.drops, &self.outbox, &self.stats)
            .iter()
            .any(|(_, n)| *n > 0)
        {
            batcher.arm();
        }
        // One timer for the open batch, moved only when its deadline changes (a batch opens or
        // closes): a timer made per received event cost a timer update per event.
        let timer = tokio::time::sleep(Duration::ZERO);
        let mut timer = std::pin::pin!(timer);
        let mut armed = None;
        loop {
            let deadline = batcher.deadline();
            if deadline != armed {
                if let Some(at) = deadline {
                    timer.as_mut().reset(at.into());
                }
                armed = deadline;
            }
            let step = if armed.is_none() {
                self.rx.ready().await.then_some(Step::Queued)
            } else {
                future::or(
                    async { self.rx.ready().await.then_some(Step::Queued) },
                    async {
                        timer.as_mut().await;
                        Some(Step::Due)
                    },
                )
                .await
            };
            match step.unwrap_or(Step::Closed) {
                Step::Queued => {
                    // Everything queued in one go, moved straight into the batch: one wake-up,
                    // many events, and each event moved once.
                    let full = self.rx.take_while(|ev| !batcher.push(ev));
                    if full {
                        self.flush(&mut batcher, &mut report);
                    }
                }
                Step::Due => self.flush(&mut batcher, &mut report),
                Step::Closed => {
                    self.flush(&mut batcher, &mut report);
                    // Drops caused by that last push still go out in a batch of their own.
                    self.flush(&mut batcher, &mut report);
                    return;
                }
            }
        }
    }

    fn flush(&self, batcher: &mut Batcher, report: &mut DropReport) {
        let totals = drop_totals(&self.drops, &self.outbox, &self.stats);
        match batcher.flush(report.carry(!batcher.is_empty(), &totals)) {
            Flush::Nothing => {}
            Flush::Batch {
                seq,
                events,
                payload,
            } => {
                self.stats.batches.fetch_add(1, Ordering::Relaxed);
                log::debug!("batch {seq}: {events} events, {} bytes", payload.len());
                // A push that made room by dropping older batches: report that soon.
                if self.outbox.push(Leaf::Events, events as u32, payload) != Some(0) {
                    batcher.arm();
                }
            }
            Flush::Failed { events, .. } => {
                self.stats
                    .encoding_drops
                    .fetch_add(events as u64, Ordering::Relaxed);
                batcher.arm();
            }
        }
    }
}

enum Step {
    Queued,
    Due,
    Closed,
}

pub struct MetricsLoop {
    pub every: Duration,
    pub config: crate::config::MetricsConfig,
    pub origin: Origin,
    pub drops: Arc<PerCpuArray<MapData, u64>>,
    pub outbox: Arc<Outbox>,
    pub stats: Arc<Stats>,
    pub stop: async_channel::Receiver<()>,
}

impl MetricsLoop {
    pub async fn run(self) {
        let Some(mut sampler) =
            Sampler::new(&self.origin.device, &self.origin.boot_id, &self.config)
        else {
            log::warn!("metrics: sysinfo cannot read this system; no metrics will be published");
            return;
        };
        let mut timer =
            tokio::time::interval_at(tokio::time::Instant::now() + self.every, self.every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let tick = future::or(
                async {
                    timer.tick().await;
                    true
                },
                async {
                    let _ = self.stop.recv().await;
                    false
                },
            )
            .await;
            if !tick {
                return;
            }
            let totals = drop_totals(&self.drops, &self.outbox, &self.stats);
            let sample = sampler.sample(
                &self.stats,
                nonzero(&totals),
                self.outbox.depth(),
                self.outbox.drops().metrics,
            );
            if let Some(payload) = Sampler::encode(&sample) {
                self.outbox.push(Leaf::Metrics, 0, payload);
            }
        }
    }
}
