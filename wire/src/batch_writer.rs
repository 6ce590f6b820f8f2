//! An `Events` message written event by event: each event is encoded as it arrives, so an open
//! batch holds its ~50 encoded bytes per event instead of the in-memory `Event` (a few hundred
//! bytes, moved again on every hand-over), and the payload is assembled once at the close.
//!
//! What makes that possible is the layout the golden vectors fix: `events` is the last field
//! of `EventBatch` (an empty list is the single byte 0x00 at the end of the message), and every
//! event is its variant index followed by `age_us`, which is only known at the close (ages
//! count back from the batch's clock). So each event is encoded with age 0 (one 0x00 byte
//! after its one-byte index) and that byte is replaced by the real age when the batch closes.
//! `tests/golden.rs` checks the result against the golden bytes.
//!
//! An event can also be encoded ahead, where it is decoded (`EncodedEvent`: inline up to
//! `INLINE` bytes, a bind or an exit usually is), so what travels from a reader to the batch is
//! ~60 bytes, not the in-memory `Event`.

use alloc::vec::Vec;

use postcard::ser_flavors::Flavor;

use crate::{DropCount, Event, EventBatch, Message, Name, encode_into};

/// Why an event or a batch could not be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// postcard refused a value (cannot happen with bounded strings; kept honest).
    Encode(postcard::Error),
    /// The encoding did not have the layout this writer relies on (see the module notes).
    Layout,
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Encode(e) => write!(f, "postcard: {e}"),
            Self::Layout => write!(f, "unexpected event layout"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WriteError {}

/// The batch's fields other than its events, known when it closes.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchHead {
    pub device: Name,
    pub boot_id: Name,
    pub run_id: u64,
    pub seq: u32,
    pub unix_ms: u64,
    /// The batch's clock: every event's age is `mono_ns - its timestamp`, in microseconds.
    pub mono_ns: u64,
    pub drops: Vec<DropCount>,
}

/// The open batch's encoded events.
#[derive(Debug, Default)]
pub struct BatchWriter {
    body: Vec<u8>,
    /// Per event: where its age byte is in `body`, and its CLOCK_MONOTONIC timestamp.
    ages: Vec<(usize, u64)>,
}

impl BatchWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends `event`, stamped `ts_ns` (CLOCK_MONOTONIC). Its `age_us` is set at the close;
    /// the value it carries is replaced by 0 here. On error nothing is appended.
    pub fn push(&mut self, ts_ns: u64, event: &mut Event) -> Result<(), WriteError> {
        self.push_encoded(ts_ns, &EncodedEvent::new(event)?);
        Ok(())
    }

    /// Appends an event encoded ahead, stamped `ts_ns` (CLOCK_MONOTONIC).
    pub fn push_encoded(&mut self, ts_ns: u64, event: &EncodedEvent) {
        let start = self.body.len();
        self.body.extend_from_slice(event.as_bytes());
        // `EncodedEvent::new` checked it: a one-byte variant index, then the age byte.
        self.ages.push((start + 1, ts_ns));
    }

    /// Events in the open batch.
    pub fn len(&self) -> usize {
        self.ages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ages.is_empty()
    }

    /// Bytes the open batch's events take so far (the payload is this plus the head).
    pub fn encoded_len(&self) -> usize {
        self.body.len()
    }

    /// Writes the framed message (schema version, then `Message::Events`) to `out`, which is
    /// cleared first, and empties the writer for the next batch (keeping its room).
    pub fn finish(&mut self, head: BatchHead, out: &mut Vec<u8>) -> Result<(), WriteError> {
        let mono_ns = head.mono_ns;
        let msg = Message::Events(EventBatch {
            device: head.device,
            boot_id: head.boot_id,
            run_id: head.run_id,
            seq: head.seq,
            unix_ms: head.unix_ms,
            mono_ns,
            drops: head.drops,
            events: Vec::new(),
        });
        out.clear();
        let framed = encode_into(&msg, out).map_err(WriteError::Encode);
        let result = framed.and_then(|()| {
            // The empty event list: replaced by the count and the events.
            if out.pop() != Some(0) {
                return Err(WriteError::Layout);
            }
            out.reserve(self.body.len() + 5 * self.ages.len() + 10);
            varint(out, self.ages.len() as u64);
            let mut from = 0;
            for &(at, ts_ns) in &self.ages {
                out.extend_from_slice(&self.body[from..at]);
                varint(out, mono_ns.saturating_sub(ts_ns) / 1000);
                from = at + 1;
            }
            out.extend_from_slice(&self.body[from..]);
            Ok(())
        });
        self.body.clear();
        self.ages.clear();
        result
    }
}

/// Bytes an `EncodedEvent` holds without an allocation.
pub const INLINE: usize = 46;

/// One event, encoded for a batch with its age left to the close (see the module notes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedEvent(Repr);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Vec<u8>),
}

impl EncodedEvent {
    /// Encodes `event` with age 0 (its `age_us` is set to 0 here).
    pub fn new(event: &mut Event) -> Result<Self, WriteError> {
        event.set_age_us(0);
        let mut buf = [0u8; INLINE];
        let repr = match postcard::to_slice(&*event, &mut buf) {
            Ok(used) => Repr::Inline {
                len: used.len() as u8,
                buf,
            },
            Err(postcard::Error::SerializeBufferFull) => {
                let mut heap = Vec::new();
                postcard::serialize_with_flavor(&*event, Append(&mut heap))
                    .map_err(WriteError::Encode)?;
                Repr::Heap(heap)
            }
            Err(e) => return Err(WriteError::Encode(e)),
        };
        let encoded = Self(repr);
        match encoded.as_bytes() {
            [index, 0, ..] if *index < 0x80 => Ok(encoded),
            _ => Err(WriteError::Layout),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, buf } => &buf[..usize::from(*len)],
            Repr::Heap(v) => v,
        }
    }

    /// Whether it needed an allocation (more than `INLINE` bytes).
    pub fn is_heap(&self) -> bool {
        matches!(self.0, Repr::Heap(_))
    }
}

/// postcard's unsigned varint (LEB128), as it writes lengths and integers wider than a byte.
fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends to a borrowed vector (postcard's own flavors take theirs by value).
struct Append<'a>(&'a mut Vec<u8>);

impl Flavor for Append<'_> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_postcards() {
        for (v, want) in [
            (0u64, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (300, &[0xac, 0x02]),
            (
                u64::MAX,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            varint(&mut out, v);
            assert_eq!(out, want, "{v}");
        }
    }
}
