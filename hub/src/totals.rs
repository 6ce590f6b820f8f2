//! Per-device delivery totals, kept per stream (`boot_id`, `run_id`): distinct batches, events
//! delivered (once per distinct `(boot_id, run_id, seq)`), reported drops by source (the highest total per source over
//! distinct batches only), duplicate batches and missing seqs
//! (`(max - min + 1) - distinct` per stream, so a late replay fills its gap back in). Batches
//! may arrive in any order: a replayed backlog interleaves with live batches.
//!
//! Memory is bounded: seqs are kept as ranges ([`SeqSet`]); a device keeps its
//! [`MAX_STREAMS`] most recently active streams, older ones are folded into a summary; a stream
//! tracks at most [`MAX_DROP_SOURCES`] drop sources, the rest are summed under `other`.

use std::collections::BTreeMap;

use edge_wire::EventBatch;

use crate::seqset::SeqSet;

/// Streams kept per device before the least recently active is folded into the summary.
pub const MAX_STREAMS: usize = 16;
/// Distinct drop sources kept per stream.
pub const MAX_DROP_SOURCES: usize = 32;
/// Where drops from sources past [`MAX_DROP_SOURCES`] are summed.
pub const OTHER_SOURCE: &str = "other";

/// Batches missing between the highest seq seen so far and one that just arrived. Provisional:
/// the missing batches may still arrive (a replay), and then they are no longer missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub expected: u32,
    pub got: u32,
    pub lost: u32,
}

/// What a batch is, given the ones seen before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Not seen before; `gap` if it jumped ahead of the highest seq of its stream.
    New { gap: Option<Gap> },
    /// This `(boot_id, run_id, seq)` was seen already.
    Duplicate,
}

/// Totals of one device (or one stream).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Distinct batches received.
    pub batches: u64,
    pub delivered_events: u64,
    /// Events reported lost, by source.
    pub drops: BTreeMap<String, u64>,
    pub missing_batches: u64,
    pub duplicate_batches: u64,
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.batches += other.batches;
        self.delivered_events += other.delivered_events;
        self.missing_batches += other.missing_batches;
        self.duplicate_batches += other.duplicate_batches;
        for (source, n) in &other.drops {
            *self.drops.entry(source.clone()).or_default() += n;
        }
    }
}

/// A stream: the batches of one agent run on one boot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamKey {
    pub boot_id: String,
    pub run_id: u64,
}

#[derive(Debug)]
struct Stream {
    key: StreamKey,
    seqs: SeqSet,
    totals: Summary,
    /// When it last received a batch (the device's arrival counter).
    last_active: u64,
}

impl Stream {
    fn summary(&self) -> Summary {
        Summary {
            missing_batches: self.seqs.missing(),
            ..self.totals.clone()
        }
    }
}

#[derive(Debug, Default)]
struct Device {
    streams: Vec<Stream>,
    /// Streams folded away to bound memory.
    retired: Summary,
    arrivals: u64,
}

/// Totals for every device seen.
#[derive(Debug, Default)]
pub struct Totals {
    devices: BTreeMap<String, Device>,
}

impl Totals {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one events batch from `device` (its topic's device) and says whether it is new.
    pub fn record(&mut self, device: &str, batch: &EventBatch) -> Arrival {
        let dev = match self.devices.get_mut(device) {
            Some(d) => d,
            None => self.devices.entry(device.to_owned()).or_default(),
        };
        dev.arrivals += 1;
        let now = dev.arrivals;
        let found = dev
            .streams
            .iter()
            .position(|s| s.key.run_id == batch.run_id && s.key.boot_id == batch.boot_id.as_str());
        let i = match found {
            Some(i) => i,
            None => {
                if dev.streams.len() >= MAX_STREAMS {
                    retire_oldest(dev);
                }
                dev.streams.push(Stream {
                    key: StreamKey {
                        boot_id: batch.boot_id.as_str().to_owned(),
                        run_id: batch.run_id,
                    },
                    seqs: SeqSet::new(),
                    totals: Summary::default(),
                    last_active: now,
                });
                dev.streams.len() - 1
            }
        };
        let stream = &mut dev.streams[i];
        stream.last_active = now;
        let highest = stream.seqs.max();
        if !stream.seqs.insert(batch.seq) {
            stream.totals.duplicate_batches += 1;
            return Arrival::Duplicate;
        }
        let t = &mut stream.totals;
        t.batches += 1;
        t.delivered_events += batch.events.len() as u64;
        // Counts are the run's totals so far: the highest seen is the total (a lost or late
        // batch cannot make it wrong, a later one carries at least as much). Sources past the
        // bound are summed within the batch, then treated the same way.
        let mut other = 0u64;
        for d in &batch.drops {
            let source = d.source.as_str();
            if t.drops.contains_key(source) || t.drops.len() < MAX_DROP_SOURCES {
                let total = t.drops.entry(source.to_owned()).or_default();
                *total = (*total).max(d.count);
            } else {
                other += d.count;
            }
        }
        if other > 0 {
            let total = t.drops.entry(OTHER_SOURCE.to_owned()).or_default();
            *total = (*total).max(other);
        }
        let gap = highest
            .filter(|&hi| batch.seq > hi.saturating_add(1))
            .map(|hi| Gap {
                expected: hi + 1,
                got: batch.seq,
                lost: batch.seq - hi - 1,
            });
        Arrival::New { gap }
    }

    /// Forgets `device` (`hub forget`): its streams and counts start again from nothing if it
    /// comes back. False if it never sent a batch.
    pub fn forget(&mut self, device: &str) -> bool {
        self.devices.remove(device).is_some()
    }

    /// The devices seen, in id order.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    /// A device's totals over all its streams, or `None` if it never sent a batch.
    pub fn device(&self, device: &str) -> Option<Summary> {
        let dev = self.devices.get(device)?;
        let mut sum = dev.retired.clone();
        for s in &dev.streams {
            sum.add(&s.summary());
        }
        Some(sum)
    }

    /// A device's streams still tracked one by one, in key order.
    pub fn streams(&self, device: &str) -> Vec<(StreamKey, Summary)> {
        let mut out: Vec<_> = self
            .devices
            .get(device)
            .map(|d| {
                d.streams
                    .iter()
                    .map(|s| (s.key.clone(), s.summary()))
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

fn retire_oldest(dev: &mut Device) {
    if let Some(i) = (0..dev.streams.len()).min_by_key(|&i| dev.streams[i].last_active) {
        let s = dev.streams.swap_remove(i);
        log::info!(
            "hub: stream boot {} run {:016x} idle: its totals are kept in summary only",
            crate::escape(&s.key.boot_id),
            s.key.run_id
        );
        dev.retired.add(&s.summary());
    }
}

#[cfg(test)]
mod tests;
