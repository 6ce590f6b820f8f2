//! History: what `hub serve` keeps of the fleet's messages (events, metrics samples, status
//! changes, gaps and drops, and each device's last known state), behind one small [`Store`]
//! trait so a server database can replace the embedded SQLite ([`SqliteStore`]) for fleets
//! that outgrow one machine. Rows arrive in a [`WriteBatch`]: one transaction per batch, never
//! one per event. Queries select by device, time range and kind.

mod query;
mod rows;
mod schema;
mod sqlite;
mod write;

use std::path::PathBuf;

use serde::Serialize;
use serde_json::Value;

pub use rows::{WriteBatch, kind_of, rows_of};
pub use sqlite::SqliteStore;

/// Record kinds that are not events: status changes, sequence gaps and reported drops.
pub const STATUS: &str = "status";
pub const GAP: &str = "gap";
pub const DROPS: &str = "drops";

/// Why the history failed; always names the database file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("history database {path}: {reason}")]
    Open { path: PathBuf, reason: String },
    #[error("history database {path} is locked by another process or connection ({source})")]
    Locked {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "history database {path} is not a usable SQLite database (corrupt or not a database: {source}); move it away to start a new history"
    )]
    Corrupt {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("history database {path}: {what}: {source}")]
    Sql {
        path: PathBuf,
        what: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "history database {path} has schema version {found}, this hub knows {known} (a newer hub wrote it?)"
    )]
    Schema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
}

/// One stored record: an event (`kind` is its kind: `bind`, `exec`, `exit`, ...), a status
/// change ([`STATUS`]), a gap ([`GAP`]) or reported drops ([`DROPS`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    pub kind: String,
    pub device: String,
    /// Event time by the device's clock (events, drops), or when the hub received it (status
    /// changes, gaps).
    pub ts_ms: i64,
    /// `boot_id`, `run_id`, `seq` where the record came from a batch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchRef>,
    /// The event as the hub's JSON output shows it, or the record's fields.
    pub detail: Value,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchRef {
    pub boot_id: String,
    pub run_id: u64,
    pub seq: u32,
}

/// One metrics sample (the figures the charts need; `detail` is the whole sample).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MetricSample {
    pub device: String,
    pub ts_ms: i64,
    pub cpu_percent: f64,
    pub mem_used_kib: u64,
    pub mem_total_kib: u64,
    pub load1: f64,
    /// The hottest sensor, if any.
    pub temp_c: Option<f64>,
    pub agent_rss_kib: u64,
    pub detail: Value,
}

/// What to select. `None` means no condition; times are inclusive unix milliseconds; `kinds`
/// empty means every kind. The newest `limit` matches are returned, oldest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Query {
    pub device: Option<String>,
    pub kinds: Vec<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

/// How much history to keep: records received longer ago than `max_age_ms`, and the oldest
/// records while the database holds more than `max_bytes`, are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    pub max_age_ms: Option<i64>,
    pub max_bytes: Option<u64>,
}

/// What one pruning removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// Size figures of the history.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Bytes in use (pages holding data).
    pub bytes: u64,
    /// Stored records (events, status changes, gaps, drops).
    pub records: u64,
}

/// The history's storage. Implementations are shared between the writer and the readers.
pub trait Store: Send + Sync {
    /// Stores everything in `batch` in one transaction: all of it or none.
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError>;
    /// Deletes everything stored of `device` (`hub forget`): its records, metrics samples and
    /// saved state, in one transaction. Returns the rows deleted (0 for an unknown device); a
    /// device that comes back later starts a new history.
    fn forget(&self, device: &str) -> Result<u64, StoreError>;
    /// Events, status changes, gaps and drops matching `q`.
    fn records(&self, q: &Query) -> Result<Vec<Record>, StoreError>;
    /// Metrics samples matching `q` (`kinds` is ignored).
    fn metrics(&self, q: &Query) -> Result<Vec<MetricSample>, StoreError>;
    /// Every device's last saved state (as [`WriteBatch::devices`] gave it), by device id.
    fn device_states(&self) -> Result<Vec<(String, Value)>, StoreError>;
    /// Applies `policy`, oldest first; `now_ms` is the hub's clock.
    fn prune(&self, policy: &Retention, now_ms: i64) -> Result<Pruned, StoreError>;
    /// Bytes in use and records stored (counts every record: for reports, not every write).
    fn usage(&self) -> Result<Usage, StoreError>;
    /// Bytes in use (cheap).
    fn usage_bytes(&self) -> Result<u64, StoreError>;
}

#[cfg(test)]
mod tests;
