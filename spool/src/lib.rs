//! `edge-spool`: the agent's store-and-forward disk spool. When the MQTT broker is away the
//! outbox keeps encoded batches in RAM up to a byte cap and hands the overflow (oldest first)
//! to this crate, which keeps it on disk up to its own byte cap, across agent restarts and
//! power cuts, and gives it back record by record once the broker returns. This crate owns the
//! spool directory and everything in it; it knows nothing of MQTT or of what a payload means.
//!
//! # On-disk format (also in docs/spool-format.md)
//!
//! The spool directory holds segment files named by the id of their first record as 16
//! lower-case hex digits plus `.spool` (`00000000000004d2.spool`). Other files are ignored.
//! A segment is a sequence of records, each a fixed 32-byte little-endian header then the
//! payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"EDSP"` (u32 0x50534445) |
//! | 4 | 4 | payload_len (at most 16 MiB) |
//! | 8 | 8 | id |
//! | 16 | 4 | events |
//! | 20 | 1 | kind |
//! | 21 | 3 | reserved, zero |
//! | 24 | 4 | header_crc: CRC-32 (IEEE) of bytes 0..24 |
//! | 28 | 4 | payload_crc: CRC-32 of the payload |
//!
//! Two checksums, so a record whose payload is torn or damaged still tells how many events it
//! held. Ids increase strictly within a segment and from one segment (in name order) to the
//! next.
//!
//! # Durability
//!
//! One `append` is one `write_all` of every record it carries (a single write(2) on a
//! regular file) followed by `fdatasync`; a new segment's directory entry is synced before
//! its first write. An SD card therefore sees one write per batch, never a few bytes at a
//! time. A segment is only ever appended to by the `Spool` that created it: after `open`
//! (which may have found a torn tail) or after a failed write, the next append starts a new
//! segment. Removal only edits the in-memory index (deleting a segment file once none of its
//! records is live), so after a crash removed records still sitting in a segment with live
//! ones come back: delivery from the spool is at-least-once.

mod error;
mod format;
mod read;
mod recover;
mod spool;

use std::path::PathBuf;

pub use error::SpoolError;
pub use format::{CorruptRegion, HEADER_LEN, MAGIC, MAX_PAYLOAD, RecordMeta, Scan, scan};
pub use spool::Spool;

/// The spool's byte caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Live bytes (headers included) the spool may hold; `append` drops the oldest beyond it.
    pub max_bytes: u64,
    /// A segment file is closed and a new one started when an append would take it past
    /// this size (a single append larger than this gets a segment of its own).
    pub segment_bytes: u64,
}

/// One record to append (borrowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub id: u64,
    pub kind: u8,
    pub events: u32,
    pub payload: &'a [u8],
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned {
    pub id: u64,
    pub kind: u8,
    pub events: u32,
    pub payload: Vec<u8>,
}

/// What a cap drop or a removal took out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub id: u64,
    pub kind: u8,
    pub events: u32,
    /// On-disk bytes, header included.
    pub bytes: u64,
}

/// What `open()` found: live records, plus regions that failed their checksum (skipped, never
/// a panic).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Live records, their events and their bytes (headers included).
    pub records: u64,
    pub events: u64,
    pub bytes: u64,
    /// The highest live id; new ids must be greater.
    pub max_id: Option<u64>,
    pub corrupt: Vec<Corrupt>,
}

/// A damaged region of a segment file, found by `open()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corrupt {
    pub segment: PathBuf,
    pub offset: u64,
    pub bytes: u64,
    /// Events from an intact header whose payload failed; None when the header itself was bad.
    pub events: Option<u32>,
}
