//! The one queue between the pipeline and the broker. Every encoded message waits here until
//! the broker has acknowledged it: in RAM up to `queue.ram_bytes`, then (when a spool
//! directory is configured) on disk up to `queue.spool_bytes`, oldest first. Over a cap the
//! oldest are dropped and counted by source, never silently.
//!
//! Delivery state lives here too, so a lost connection loses nothing: the publisher takes
//! entries with [`Outbox::next`], they stay queued until [`Outbox::ack`], and
//! [`Outbox::rewind`] (on every new connection) makes everything unacknowledged sendable again,
//! in order. After a reconnect the backlog (what was queued before it) goes out oldest first,
//! interleaved with the live stream ([`BACKLOG_PER_LIVE`] backlog messages per live one) so
//! fresh events are not starved while a long outage drains.

mod drops;
mod store;
#[cfg(test)]
mod tests;
mod types;

use std::sync::{Mutex, MutexGuard};

pub use drops::{DropSource, Drops};
use store::{Next, Store};
pub use types::{ENTRY_OVERHEAD, Entry, Leaf, SpoolConfig, Undelivered};

/// Backlog messages sent per live message while both are waiting.
pub const BACKLOG_PER_LIVE: u32 = 4;

/// What the publisher gets from [`Outbox::next`].
#[derive(Debug)]
pub enum Ready {
    /// Send this (it stays queued until acknowledged).
    Send(Entry),
    /// Closed, and every message was acknowledged: time to say goodbye.
    Settled,
}

pub struct Outbox {
    store: Mutex<Store>,
    ready: event_listener::Event,
}

/// Queue sizes for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    pub queued: u64,
    pub queued_bytes: u64,
    pub spooled_bytes: u64,
    pub spool_written_bytes: u64,
    pub spool_appends: u64,
}

impl Outbox {
    /// An outbox holding up to `ram_bytes` in memory, and then up to the spool's cap on disk.
    /// Opening the spool replays what an earlier run left in it (reported in the log).
    pub fn new(
        ram_bytes: usize,
        spool: Option<SpoolConfig>,
    ) -> Result<Self, edge_spool::SpoolError> {
        Ok(Self {
            store: Mutex::new(Store::new(ram_bytes, spool)?),
            ready: event_listener::Event::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic elsewhere cannot leave the store inconsistent mid-update: keep going.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a message holding `events` kernel records. Returns the events this push caused to
    /// be dropped (oldest first) to stay within the caps, so the caller can report them soon.
    /// A closed outbox refuses (`None`).
    pub fn push(&self, leaf: Leaf, events: u32, payload: Vec<u8>) -> Option<u64> {
        let dropped = self.lock().push(leaf, events, payload)?;
        self.ready.notify(usize::MAX);
        Some(dropped)
    }

    /// Waits for the next message to send (or for the outbox to settle after `close`).
    pub async fn next(&self) -> Ready {
        loop {
            let listener = self.ready.listen();
            match self.lock().next(BACKLOG_PER_LIVE) {
                Next::Send(e) => return Ready::Send(e),
                Next::Settled => return Ready::Settled,
                Next::Wait => {}
            }
            listener.await;
        }
    }

    /// The broker acknowledged message `id`: it leaves the queue for good.
    pub fn ack(&self, id: u64) {
        self.lock().ack(id);
        self.ready.notify(usize::MAX);
    }

    /// A new connection: everything not acknowledged is sent again, oldest first; what is
    /// queued now is the backlog, what comes later is live.
    pub fn rewind(&self) {
        self.lock().rewind();
        self.ready.notify(usize::MAX);
    }

    /// No more pushes; `next` settles once everything queued was acknowledged.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify(usize::MAX);
    }

    /// At exit with messages still unacknowledged: moves them to the spool (one append) or,
    /// without one, counts them as dropped (`shutdown`). Says what happened to them.
    pub fn abandon(&self) -> Undelivered {
        self.lock().abandon()
    }

    /// Drop totals since start, by source.
    pub fn drops(&self) -> Drops {
        self.lock().drops
    }

    pub fn depth(&self) -> Depth {
        self.lock().depth()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
