//! The outbox's storage and delivery state: one ordered index of every queued message (in RAM
//! or in the spool), the RAM byte cap with spill-to-spool in large appends, the cap drops, and
//! the two delivery cursors (backlog and live) that `rewind` resets on every connection.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use bytes::Bytes;
use edge_spool::{Limits, Record, Spool, SpoolError};

use super::drops::{DropSource, Drops};

/// Which topic a message goes to, under `<prefix>/<device>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    Events,
    Metrics,
}

impl Leaf {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Metrics => "metrics",
        }
    }

    /// The spool record's `kind` byte.
    fn kind(self) -> u8 {
        match self {
            Self::Events => 0,
            Self::Metrics => 1,
        }
    }

    fn from_kind(kind: u8) -> Option<Self> {
        match kind {
            0 => Some(Self::Events),
            1 => Some(Self::Metrics),
            _ => None,
        }
    }
}

/// A message to send; it stays queued until acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub id: u64,
    pub leaf: Leaf,
    pub events: u32,
    pub payload: Bytes,
}

/// Where the overflow goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// What was still unacknowledged when the agent gave up at exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Undelivered {
    pub messages: u64,
    pub events: u64,
    /// Of those, kept in the spool for the next start.
    pub spooled_messages: u64,
    /// Events counted as dropped (`shutdown`: no spool, or the spool failed).
    pub dropped_events: u64,
}

enum Place {
    Ram(Bytes),
    Spool,
}

struct Slot {
    leaf: Leaf,
    events: u32,
    bytes: usize,
    place: Place,
}

pub(super) enum Next {
    Send(Entry),
    Settled,
    Wait,
}

pub(super) struct Store {
    slots: BTreeMap<u64, Slot>,
    next_id: u64,
    ram_bytes: usize,
    ram_cap: usize,
    /// Every id below this is in the spool or gone (spilling takes the oldest RAM messages).
    ram_from: u64,
    spool: Option<Spool>,
    /// Sent on the current connection and not acknowledged yet.
    handed: BTreeSet<u64>,
    /// Sent at least once, so possibly delivered: a cap never drops these (a drop must never
    /// count a message the hub may have), and there are at most the in-flight window of them.
    ever_handed: BTreeSet<u64>,
    live_from: u64,
    backlog_cursor: u64,
    live_cursor: u64,
    since_live: u32,
    spool_errors: u64,
    pub closed: bool,
    pub drops: Drops,
}

impl Store {
    pub fn new(ram_cap: usize, spool: Option<SpoolConfig>) -> Result<Self, SpoolError> {
        let mut store = Self {
            slots: BTreeMap::new(),
            next_id: 0,
            ram_bytes: 0,
            ram_cap: ram_cap.max(1),
            ram_from: 0,
            spool: None,
            handed: BTreeSet::new(),
            ever_handed: BTreeSet::new(),
            live_from: 0,
            backlog_cursor: 0,
            live_cursor: 0,
            since_live: 0,
            spool_errors: 0,
            closed: false,
            drops: Drops::default(),
        };
        if let Some(cfg) = spool {
            store.open_spool(&cfg)?;
        }
        Ok(store)
    }

    fn open_spool(&mut self, cfg: &SpoolConfig) -> Result<(), SpoolError> {
        let segment_bytes = (cfg.max_bytes / 4).clamp(64 << 10, 4 << 20);
        let limits = Limits {
            max_bytes: cfg.max_bytes,
            segment_bytes,
        };
        let (spool, recovered) = Spool::open(&cfg.dir, limits)?;
        for region in &recovered.corrupt {
            let events = region.events.unwrap_or(0);
            log::warn!(
                "spool: {} at offset {}: {} bytes failed their checksum (skipped; {})",
                region.segment.display(),
                region.offset,
                region.bytes,
                match region.events {
                    Some(n) => format!("{n} events lost"),
                    None =>
                        "its header was unreadable, so how many events it held is unknown".into(),
                }
            );
            self.drops.add(DropSource::SpoolCorrupt, u64::from(events));
            self.drops.corrupt_regions += 1;
        }
        for meta in spool.metas() {
            let Some(leaf) = Leaf::from_kind(meta.kind) else {
                log::warn!(
                    "spool: record {} has unknown kind {}; skipped",
                    meta.id,
                    meta.kind
                );
                self.drops.corrupt_regions += 1;
                continue;
            };
            self.slots.insert(
                meta.id,
                Slot {
                    leaf,
                    events: meta.events,
                    bytes: meta.bytes as usize,
                    place: Place::Spool,
                },
            );
        }
        let unknown: Vec<u64> = spool
            .metas()
            .filter(|m| !self.slots.contains_key(&m.id))
            .map(|m| m.id)
            .collect();
        let mut spool = spool;
        for id in unknown {
            spool.remove(id);
        }
        self.next_id = recovered.max_id.map_or(0, |m| m + 1);
        self.ram_from = self.next_id;
        self.live_from = self.next_id;
        self.live_cursor = self.next_id;
        log::info!(
            "spool {}: cap {} B; {} messages ({} events, {} B) left by an earlier run will be sent first",
            cfg.dir.display(),
            cfg.max_bytes,
            recovered.records,
            recovered.events,
            recovered.bytes
        );
        self.spool = Some(spool);
        Ok(())
    }

    pub fn push(&mut self, leaf: Leaf, events: u32, mut payload: Vec<u8>) -> Option<u64> {
        if self.closed {
            return None;
        }
        // What the cap counts is what the heap holds.
        payload.shrink_to_fit();
        let id = self.next_id;
        self.next_id += 1;
        self.ram_bytes += payload.len();
        self.slots.insert(
            id,
            Slot {
                leaf,
                events,
                bytes: payload.len(),
                place: Place::Ram(Bytes::from(payload)),
            },
        );
        let before = self.drops.total_events();
        if self.ram_bytes > self.ram_cap {
            self.shed();
        }
        Some(self.drops.total_events() - before)
    }

    /// Brings RAM under its cap: spill the oldest half to the spool in one append, else drop
    /// the oldest (never one that may have been delivered).
    fn shed(&mut self) {
        if self.spool.is_some() {
            let ids = self.oldest_in_ram(self.ram_bytes.saturating_sub(self.ram_cap / 2));
            if let Err(e) = self.spill(&ids) {
                self.spool_errors += 1;
                if self.spool_errors.is_power_of_two() {
                    log::error!(
                        "spool: append failed ({e}); dropping from RAM instead ({} failures so far)",
                        self.spool_errors
                    );
                }
            }
        }
        let mut dropped = (0u64, 0u64);
        while self.ram_bytes > self.ram_cap {
            let Some(id) = self
                .slots
                .range(self.ram_from..)
                .find(|(id, s)| matches!(s.place, Place::Ram(_)) && !self.ever_handed.contains(id))
                .map(|(id, _)| *id)
            else {
                break;
            };
            if let Some(slot) = self.slots.remove(&id) {
                self.ram_bytes -= slot.bytes;
                dropped.0 += 1;
                dropped.1 += u64::from(slot.events);
                self.count_drop(DropSource::Queue, slot.leaf, slot.events);
            }
        }
        if dropped.0 > 0 {
            log::warn!(
                "queue over its {} B RAM cap{}: dropped the {} oldest messages ({} events)",
                self.ram_cap,
                if self.spool.is_some() {
                    " and the spool failed"
                } else {
                    " (no spool)"
                },
                dropped.0,
                dropped.1
            );
        }
    }

    fn count_drop(&mut self, source: DropSource, leaf: Leaf, events: u32) {
        match leaf {
            Leaf::Events => self.drops.add(source, u64::from(events)),
            Leaf::Metrics => self.drops.metrics += 1,
        }
    }

    /// The oldest RAM messages whose bytes add up to at least `bytes`.
    fn oldest_in_ram(&self, bytes: usize) -> Vec<u64> {
        let mut sum = 0;
        let mut ids = Vec::new();
        for (id, slot) in self.slots.range(self.ram_from..) {
            if sum >= bytes {
                break;
            }
            if matches!(slot.place, Place::Ram(_)) {
                sum += slot.bytes;
                ids.push(*id);
            }
        }
        ids
    }

    /// Moves `ids` (oldest RAM messages, in order) to the spool in one append.
    fn spill(&mut self, ids: &[u64]) -> Result<(), SpoolError> {
        let Some(spool) = self.spool.as_mut() else {
            return Ok(());
        };
        if ids.is_empty() {
            return Ok(());
        }
        let records: Vec<Record<'_>> = ids
            .iter()
            .filter_map(|id| {
                let slot = self.slots.get(id)?;
                let Place::Ram(payload) = &slot.place else {
                    return None;
                };
                Some(Record {
                    id: *id,
                    kind: slot.leaf.kind(),
                    events: slot.events,
                    payload,
                })
            })
            .collect();
        let ever_handed = &self.ever_handed;
        let dropped = spool.append(&records, |id| !ever_handed.contains(&id))?;
        drop(records);
        for id in ids {
            if let Some(slot) = self.slots.get_mut(id) {
                slot.place = Place::Spool;
                self.ram_bytes -= slot.bytes;
            }
        }
        if let Some(last) = ids.last() {
            self.ram_from = self.ram_from.max(last + 1);
        }
        let (mut n, mut events) = (0, 0);
        for meta in dropped {
            if let Some(slot) = self.slots.remove(&meta.id) {
                n += 1;
                events += u64::from(slot.events);
                self.count_drop(DropSource::Spool, slot.leaf, slot.events);
            }
        }
        if n > 0 {
            log::warn!("spool over its cap: dropped the {n} oldest messages ({events} events)");
        }
        Ok(())
    }

    pub fn next(&mut self, backlog_per_live: u32) -> Next {
        loop {
            let backlog = self
                .slots
                .range(self.backlog_cursor..self.live_from)
                .next()
                .map(|(id, _)| *id);
            let live = self
                .slots
                .range(self.live_cursor.max(self.live_from)..)
                .next()
                .map(|(id, _)| *id);
            let pick = match (backlog, live) {
                (Some(_), Some(l)) if self.since_live >= backlog_per_live => {
                    self.since_live = 0;
                    self.live_cursor = l + 1;
                    l
                }
                (Some(b), _) => {
                    self.since_live += 1;
                    self.backlog_cursor = b + 1;
                    b
                }
                (None, Some(l)) => {
                    self.since_live = 0;
                    self.live_cursor = l + 1;
                    l
                }
                (None, None) => {
                    return if self.closed && self.slots.is_empty() {
                        Next::Settled
                    } else {
                        Next::Wait
                    };
                }
            };
            if let Some(entry) = self.materialize(pick) {
                self.handed.insert(pick);
                self.ever_handed.insert(pick);
                return Next::Send(entry);
            }
        }
    }

    /// The entry for `id`, reading it back from the spool if it is there. A spooled record that
    /// no longer verifies is dropped and counted here.
    fn materialize(&mut self, id: u64) -> Option<Entry> {
        let slot = self.slots.get(&id)?;
        let (leaf, events) = (slot.leaf, slot.events);
        let payload = match &slot.place {
            Place::Ram(b) => b.clone(),
            Place::Spool => {
                let read = match self.spool.as_mut() {
                    Some(spool) => spool.read(id),
                    None => return None,
                };
                match read {
                    Ok(rec) => Bytes::from(rec.payload),
                    Err(e) => {
                        log::warn!(
                            "spool: message {id} unreadable ({e}); dropped, {events} events lost"
                        );
                        self.slots.remove(&id);
                        if let Some(spool) = self.spool.as_mut() {
                            spool.remove(id);
                        }
                        self.drops.corrupt_regions += 1;
                        self.count_drop(DropSource::SpoolCorrupt, leaf, events);
                        return None;
                    }
                }
            }
        };
        Some(Entry {
            id,
            leaf,
            events,
            payload,
        })
    }

    pub fn ack(&mut self, id: u64) {
        self.handed.remove(&id);
        self.ever_handed.remove(&id);
        if let Some(slot) = self.slots.remove(&id) {
            match slot.place {
                Place::Ram(_) => self.ram_bytes -= slot.bytes,
                Place::Spool => {
                    if let Some(spool) = self.spool.as_mut() {
                        spool.remove(id);
                    }
                }
            }
        }
    }

    pub fn rewind(&mut self) {
        self.handed.clear();
        self.live_from = self.next_id;
        self.live_cursor = self.next_id;
        self.backlog_cursor = 0;
        self.since_live = 0;
    }

    pub fn abandon(&mut self) -> Undelivered {
        let mut out = Undelivered {
            messages: self.slots.len() as u64,
            events: self.slots.values().map(|s| u64::from(s.events)).sum(),
            ..Default::default()
        };
        // Nothing is in flight any more: whatever is left may be spooled or dropped.
        self.handed.clear();
        self.ever_handed.clear();
        let in_ram = self.oldest_in_ram(usize::MAX);
        if self.spool.is_some()
            && let Err(e) = self.spill(&in_ram)
        {
            log::error!("spool: append at exit failed ({e})");
        }
        let ram: Vec<u64> = self
            .slots
            .range(self.ram_from..)
            .filter(|(_, s)| matches!(s.place, Place::Ram(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in ram {
            if let Some(slot) = self.slots.remove(&id) {
                self.ram_bytes -= slot.bytes;
                out.dropped_events += u64::from(slot.events);
                self.count_drop(DropSource::Shutdown, slot.leaf, slot.events);
            }
        }
        out.spooled_messages = self.slots.len() as u64;
        out
    }

    pub fn depth(&self) -> super::Depth {
        let spooled = self.spool.as_ref().map_or(0, Spool::live_bytes);
        super::Depth {
            queued: self.slots.len() as u64,
            queued_bytes: self.ram_bytes as u64 + spooled,
            spooled_bytes: spooled,
            spool_written_bytes: self.spool.as_ref().map_or(0, Spool::written_bytes),
            spool_appends: self.spool.as_ref().map_or(0, Spool::appends),
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }
}
