//! What the outbox lost, by source: events (kernel records) in dropped event batches, and
//! dropped metrics samples apart, since those are not records a probe produced.

/// Where the outbox lost events; the names are the wire's `DropCount::source`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropSource {
    /// The RAM queue was over its cap and there was no spool to take the overflow.
    Queue,
    /// The spool was over its cap.
    Spool,
    /// A spooled record failed its checksum (a torn write, a bad sector).
    SpoolCorrupt,
    /// Still undelivered when the agent stopped, with no spool to keep it.
    Shutdown,
}

impl DropSource {
    pub const ALL: [DropSource; 4] = [Self::Queue, Self::Spool, Self::SpoolCorrupt, Self::Shutdown];

    pub fn name(self) -> &'static str {
        match self {
            Self::Queue => "queue",
            Self::Spool => "spool",
            Self::SpoolCorrupt => "spool:corrupt",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Totals since the agent started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    events: [u64; 4],
    /// Metrics samples dropped (any source).
    pub metrics: u64,
    /// Spooled regions that failed their checksum (whatever they held).
    pub corrupt_regions: u64,
}

impl Drops {
    pub fn add(&mut self, source: DropSource, events: u64) {
        self.events[source as usize] += events;
    }

    pub fn events(&self, source: DropSource) -> u64 {
        self.events[source as usize]
    }

    /// `(source name, events)` for every source, zero or not.
    pub fn by_source(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropSource::ALL
            .into_iter()
            .map(|s| (s.name(), self.events(s)))
    }

    pub fn total_events(&self) -> u64 {
        self.events.iter().sum()
    }
}
