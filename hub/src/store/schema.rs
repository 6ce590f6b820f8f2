//! The SQLite schema of the history and its version. One `records` table holds events, status
//! changes, gaps and drops (kind in a column, the rest as JSON), `metrics` the samples with the
//! charted figures in columns; devices and streams are stored once and referenced by number,
//! which keeps a stored event small. `writes` has one row per transaction (when, and the
//! highest row ids it wrote), so retention by age deletes whole transactions by id range
//! without an index on the receive time.

use rusqlite::{Connection, OptionalExtension as _};

/// Bump on any change to the tables below; an older hub refuses a newer file.
pub const VERSION: i64 = 1;

pub const CREATE: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS devices (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, state TEXT);
CREATE TABLE IF NOT EXISTS streams (
    id INTEGER PRIMARY KEY, dev INTEGER NOT NULL, boot_id TEXT NOT NULL, run_id INTEGER NOT NULL,
    UNIQUE (dev, boot_id, run_id));
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY, dev INTEGER NOT NULL, ts INTEGER NOT NULL, kind TEXT NOT NULL,
    stream INTEGER, seq INTEGER, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS records_dev_ts ON records (dev, ts);
CREATE INDEX IF NOT EXISTS records_ts ON records (ts);
CREATE TABLE IF NOT EXISTS metrics (
    id INTEGER PRIMARY KEY, dev INTEGER NOT NULL, ts INTEGER NOT NULL, cpu REAL NOT NULL,
    mem_used INTEGER NOT NULL, mem_total INTEGER NOT NULL, load1 REAL NOT NULL, temp REAL,
    rss INTEGER NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS metrics_dev_ts ON metrics (dev, ts);
CREATE TABLE IF NOT EXISTS writes (
    id INTEGER PRIMARY KEY, at INTEGER NOT NULL, records_hi INTEGER NOT NULL,
    metrics_hi INTEGER NOT NULL);
";

/// Creates the tables if needed and returns the file's schema version (ours for a new file).
pub fn migrate(conn: &Connection) -> rusqlite::Result<i64> {
    // Must precede the first table so freed pages can be given back (PRAGMA incremental_vacuum).
    conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")?;
    conn.execute_batch(CREATE)?;
    let found: Option<i64> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .optional()?;
    match found {
        Some(v) => Ok(v),
        None => {
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                [VERSION],
            )?;
            Ok(VERSION)
        }
    }
}
