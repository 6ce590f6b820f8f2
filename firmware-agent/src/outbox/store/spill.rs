//! Spilling to the disk spool: opening it (and counting what an earlier run left corrupt),
//! moving the oldest RAM messages there in one append, and what is left at exit.

use edge_spool::{Limits, Record, Spool, SpoolError};

use super::{Leaf, Place, Slot, SpoolConfig, Store, Undelivered};
use crate::outbox::drops::DropSource;

impl Store {
    pub(super) fn open_spool(&mut self, cfg: &SpoolConfig) -> Result<(), SpoolError> {
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

    /// Moves `ids` (oldest RAM messages, in order) to the spool in one append.
    pub(super) fn spill(&mut self, ids: &[u64]) -> Result<(), SpoolError> {
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
}
