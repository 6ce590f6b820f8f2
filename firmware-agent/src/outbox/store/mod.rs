//! The outbox's storage and delivery state: one ordered index of every queued message (in RAM
//! or in the spool), the RAM byte cap with spill-to-spool in large appends, the cap drops, and
//! the two delivery cursors (backlog and live) that `rewind` resets on every connection.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use edge_spool::{Spool, SpoolError};

use super::drops::{DropSource, Drops};
pub use super::types::*;

mod spill;

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
    /// Times the RAM cap made the queue drop (for rate-limited logging).
    shed_events: u64,
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
            shed_events: 0,
            closed: false,
            drops: Drops::default(),
        };
        if let Some(cfg) = spool {
            store.open_spool(&cfg)?;
        }
        Ok(store)
    }

    pub fn push(&mut self, leaf: Leaf, events: u32, mut payload: Vec<u8>) -> Option<u64> {
        if self.closed {
            return None;
        }
        // What the cap counts is what the heap holds.
        payload.shrink_to_fit();
        let id = self.next_id;
        self.next_id += 1;
        let bytes = payload.len() + ENTRY_OVERHEAD;
        self.ram_bytes += bytes;
        self.slots.insert(
            id,
            Slot {
                leaf,
                events,
                bytes,
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
            self.shed_events += 1;
        }
        // One line per doubling: an outage does not flood the log.
        if dropped.0 > 0 && self.shed_events.is_power_of_two() {
            log::warn!(
                "queue over its {} B RAM cap{}: dropped the {} oldest messages ({} events); {} times so far, totals in metrics",
                self.ram_cap,
                if self.spool.is_some() {
                    " and the spool failed"
                } else {
                    " (no spool)"
                },
                dropped.0,
                dropped.1,
                self.shed_events
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
                let read = self.spool.as_mut()?.read(id);
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
