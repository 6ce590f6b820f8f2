//! The wire contract: what the agent publishes and the hub decodes. See docs/wire-format.md.
//!
//! Every MQTT payload is `varint(u16 schema version)` followed by a postcard-encoded
//! [`Message`]. Strings whose size is bounded use `heapless` so a microcontroller hub could
//! decode the same bytes; the crate is `no_std` + `alloc` without the `std` feature.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod batch_writer;
mod codec;
mod event;
mod host;
mod signals;
mod status;

pub use batch_writer::{BatchHead, BatchWriter, EncodedEvent, WriteError};
pub use codec::{DecodeError, decode, encode, encode_into};
pub use event::*;
pub use host::*;
pub use signals::*;
pub use status::*;

/// The schema version this build writes and accepts. Bump it on any incompatible change.
pub const SCHEMA_VERSION: u16 = 2;

/// A process command name (the kernel's 16-byte `comm`).
pub type Comm = heapless::String<16>;
/// A path (exec'd filename, unix socket path), cut to 256 bytes.
pub type PathStr = heapless::String<256>;
/// A short identifier: device id, probe, ring buffer or counter name.
pub type Name = heapless::String<64>;
/// A human-readable reason (why a probe was skipped, why offline).
pub type Reason = heapless::String<192>;

/// One MQTT payload.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Message {
    /// Birth: published retained on `<prefix>/<device>/status` at every connect.
    Online(Birth),
    /// Death: the MQTT will, and the last message of a clean shutdown, on the same topic.
    Offline(Death),
    /// A batch of kernel events on `<prefix>/<device>/events`.
    Events(EventBatch),
    /// A system sample on `<prefix>/<device>/metrics`.
    Metrics(Metrics),
}

impl Message {
    /// The topic leaf this message belongs on.
    pub fn topic_leaf(&self) -> &'static str {
        match self {
            Self::Online(_) | Self::Offline(_) => "status",
            Self::Events(_) => "events",
            Self::Metrics(_) => "metrics",
        }
    }
}

/// Copies `s` into a bounded string, cutting at a character boundary if it does not fit.
pub fn bounded<const N: usize>(s: &str) -> heapless::String<N> {
    let mut end = s.len().min(N);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = heapless::String::new();
    // Cannot fail: `end <= N`.
    let _ = out.push_str(&s[..end]);
    out
}
