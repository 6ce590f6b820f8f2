//! The batcher: groups decoded events and flushes at a size or an age, stamping each batch
//! with device, boot id, sequence number, clocks and the drop counters since the last one.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use edge_wire::{BatchHead, BatchWriter, DropCount, EncodedEvent, Event, Name, bounded};

/// A decoded event, encoded for its batch where it was decoded (so ~60 bytes travel to the
/// batcher, not the few hundred of an `Event`), and its kernel timestamp (CLOCK_MONOTONIC ns).
pub type Stamped = (u64, EncodedEvent);

/// Encodes a decoded event for its batch. One that cannot be encoded (bounded strings and
/// plain numbers: it cannot happen) is logged and counted in `encoding_drops`, not lost silently.
pub fn stamp(ts_ns: u64, event: &mut Event, encoding_drops: &AtomicU64) -> Option<Stamped> {
    match EncodedEvent::new(event) {
        Ok(encoded) => Some((ts_ns, encoded)),
        Err(e) => {
            log::error!("an event could not be encoded ({e}): counted as lost (encoding)");
            encoding_drops.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

/// What closing a batch produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Flush {
    /// Nothing to say: no events and no drops.
    Nothing,
    Batch {
        seq: u32,
        events: usize,
        payload: Vec<u8>,
    },
    /// The batch could not be encoded; its events are lost and must be counted (`encoding`).
    Failed { seq: u32, events: usize },
}

pub struct Batcher {
    device: Name,
    boot_id: Name,
    run_id: u64,
    seq: u32,
    max_bytes: usize,
    max_age: Duration,
    /// The open batch, encoded as its events come (ages are fixed when it closes): it holds
    /// what the payload will (~50 bytes an event), not the decoded events (a few hundred each).
    writer: BatchWriter,
    opened: Option<Instant>,
    /// Reused payload buffer: each payload is then one exact-size allocation, so what the
    /// queue's byte cap counts is what the heap holds, without growth slack or fragments.
    scratch: Vec<u8>,
}

impl Batcher {
    pub fn new(
        device: &str,
        boot_id: &str,
        run_id: u64,
        max_bytes: usize,
        max_age: Duration,
    ) -> Self {
        Self {
            device: bounded(device),
            boot_id: bounded(boot_id),
            run_id,
            seq: 0,
            max_bytes,
            max_age,
            writer: BatchWriter::new(),
            opened: None,
            scratch: Vec::new(),
        }
    }

    /// Adds an event; true when the batch should be flushed for size (its events' encoded
    /// bytes reached `max_bytes`).
    pub fn push(&mut self, (ts, ev): Stamped) -> bool {
        self.writer.push_encoded(ts, &ev);
        self.opened.get_or_insert_with(Instant::now);
        self.writer.encoded_len() >= self.max_bytes
    }

    /// When the open batch must be flushed for age, if one is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|t| t + self.max_age)
    }

    pub fn is_empty(&self) -> bool {
        self.writer.is_empty()
    }

    /// Makes the next flush due within the batch age even with no event open (so drops that
    /// happened after the last batch are reported soon).
    pub fn arm(&mut self) {
        self.opened.get_or_insert_with(Instant::now);
    }

    /// Closes the batch into an encoded message.
    pub fn flush(&mut self, drops: Vec<DropCount>) -> Flush {
        if self.writer.is_empty() && drops.is_empty() {
            self.opened = None;
            return Flush::Nothing;
        }
        let count = self.writer.len();
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        self.opened = None;
        let head = BatchHead {
            device: self.device.clone(),
            boot_id: self.boot_id.clone(),
            run_id: self.run_id,
            seq,
            unix_ms: unix_ms(),
            mono_ns: monotonic_ns(),
            drops,
        };
        match self.writer.finish(head, &mut self.scratch) {
            Ok(()) => Flush::Batch {
                seq,
                events: count,
                payload: self.scratch.as_slice().to_vec(),
            },
            Err(e) => {
                // Only bounded strings and plain numbers: encoding cannot fail; if it ever
                // does, say so and count the loss rather than lose the batch silently.
                log::error!("batch {seq}: encoding failed ({e}); {count} events lost");
                Flush::Failed { seq, events: count }
            }
        }
    }
}

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Decides which drop totals a batch carries: the run's non-zero totals whenever the batch has
/// events or the totals changed since the last batch that carried them (so a drops-only batch
/// is sent only when there is news).
#[derive(Default)]
pub struct DropReport {
    last: Vec<DropCount>,
}

impl DropReport {
    pub fn carry(&mut self, has_events: bool, totals: &[(&str, u64)]) -> Vec<DropCount> {
        let now: Vec<DropCount> = totals
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| DropCount {
                source: bounded(name),
                count: *n,
            })
            .collect();
        if !has_events && now == self.last {
            return Vec::new();
        }
        self.last.clone_from(&now);
        now
    }
}

#[cfg(test)]
mod tests {
    use edge_wire::{Exit, ExitHow, Message, Task, decode};

    use super::*;

    fn exit(pid: u32) -> Stamped {
        let task = Task {
            pid,
            tgid: pid,
            comm: bounded("sh"),
        };
        let mut ev = Event::Exit(Exit {
            age_us: 0,
            task,
            ppid: 1,
            how: ExitHow::Code(0),
        });
        (monotonic_ns(), EncodedEvent::new(&mut ev).expect("encodes"))
    }

    #[test]
    fn flushes_on_size_and_numbers_batches() {
        let mut b = Batcher::new("dev", "boot", 9, 100, Duration::from_secs(60));
        let mut pushes = 0;
        while !b.push(exit(pushes)) {
            pushes += 1;
        }
        assert!(pushes > 1, "several events fit in 100 bytes");
        let Flush::Batch {
            seq,
            events: n,
            payload: bytes,
        } = b.flush(vec![])
        else {
            panic!("batch")
        };
        assert_eq!((seq, n), (0, pushes as usize + 1));
        assert!(b.is_empty() && b.deadline().is_none());
        let Message::Events(batch) = decode(&bytes).expect("decodes") else {
            panic!("not events")
        };
        assert_eq!(batch.events.len(), n);
        assert_eq!(batch.device.as_str(), "dev");
        assert_eq!(batch.run_id, 9);
        b.push(exit(1));
        assert!(matches!(b.flush(vec![]), Flush::Batch { seq: 1, .. }));
    }

    #[test]
    fn empty_batches_only_carry_drops() {
        let mut b = Batcher::new("dev", "boot", 1, 1000, Duration::from_millis(5));
        b.arm();
        assert!(b.deadline().is_some(), "armed for drops");
        assert_eq!(b.flush(vec![]), Flush::Nothing);
        assert!(b.deadline().is_none());
        let drops = vec![DropCount {
            source: bounded("ring:exec"),
            count: 4,
        }];
        let Flush::Batch {
            events: n,
            payload: bytes,
            ..
        } = b.flush(drops.clone())
        else {
            panic!("drops are news")
        };
        assert_eq!(n, 0);
        let Message::Events(batch) = decode(&bytes).expect("decodes") else {
            panic!()
        };
        assert_eq!(batch.drops, drops);
    }

    #[test]
    fn batches_carry_drop_totals_and_drops_alone_only_when_they_change() {
        let mut r = DropReport::default();
        assert!(r.carry(false, &[("a", 0), ("b", 0)]).is_empty());
        let three = vec![DropCount {
            source: bounded("a"),
            count: 3,
        }];
        assert_eq!(r.carry(false, &[("a", 3), ("b", 0)]), three, "news");
        assert!(r.carry(false, &[("a", 3), ("b", 0)]).is_empty(), "no news");
        assert_eq!(
            r.carry(true, &[("a", 3), ("b", 0)]),
            three,
            "with events: the totals"
        );
        assert_eq!(r.carry(false, &[("a", 3), ("b", 1)]).len(), 2);
    }
}
