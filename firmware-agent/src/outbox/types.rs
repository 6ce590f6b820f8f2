//! The outbox's public value types: leaves, entries, the spool's settings, and what was left
//! undelivered at exit.

use std::path::PathBuf;

use bytes::Bytes;

/// Heap bytes a queued message costs beside its payload (index node share, slot, allocator
/// header), so the RAM cap bounds memory, not just payload bytes.
pub const ENTRY_OVERHEAD: usize = 128;

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
    pub(crate) fn kind(self) -> u8 {
        match self {
            Self::Events => 0,
            Self::Metrics => 1,
        }
    }

    pub(crate) fn from_kind(kind: u8) -> Option<Self> {
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
