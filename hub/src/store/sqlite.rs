//! The embedded [`Store`]: one SQLite file (WAL journal, so readers never wait for the writer),
//! one writing connection and a few reading ones. Every error names the file; a locked file and
//! a file that is not a database are told apart from other failures.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension as _};
use serde_json::Value;

use super::{
    MetricSample, Pruned, Query, Record, Retention, Store, StoreError, Usage, WriteBatch, schema,
    write::{Ids, Writer},
};

/// How long a statement waits for a lock held by another connection before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Reading connections kept open between queries.
const IDLE_READERS: usize = 4;

pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Mutex<Vec<Connection>>,
    read_only: bool,
}

impl SqliteStore {
    /// Opens (creating if needed) the history at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = connect(path, OpenFlags::default())?;
        let c = |what, e| classify(path, what, e);
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| c("setting the WAL journal", e))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| c("setting synchronous", e))?;
        // 16 MiB of page cache for the writer: the indexes' recent pages stay in memory.
        conn.pragma_update(None, "cache_size", -16_384)
            .map_err(|e| c("setting the cache size", e))?;
        let found = schema::migrate(&conn).map_err(|e| c("creating the tables", e))?;
        check_version(path, found)?;
        Ok(Self::with(path, conn, false))
    }

    /// Opens an existing history for reading only (`hub query`).
    pub fn open_read_only(path: &Path) -> Result<Self, StoreError> {
        if !path.exists() {
            return Err(StoreError::Open {
                path: path.to_owned(),
                reason: "no such file (nothing stored yet, or another --data-dir?)".into(),
            });
        }
        let conn = connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let found = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .map_err(|e| classify(path, "reading the schema version", e))?;
        check_version(path, found)?;
        Ok(Self::with(path, conn, true))
    }

    fn with(path: &Path, conn: Connection, read_only: bool) -> Self {
        Self {
            path: path.to_owned(),
            writer: Mutex::new(Writer {
                conn,
                ids: Ids::default(),
            }),
            readers: Mutex::new(Vec::new()),
            read_only,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        move |e| classify(&self.path, what, e)
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on a reading connection (the writer's own one for a read-only store).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> rusqlite::Result<T> {
        if self.read_only {
            return f(&self.writer().conn);
        }
        let idle = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(&self.path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
                c.busy_timeout(BUSY_TIMEOUT)?;
                c
            }
        };
        let out = f(&conn);
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        out
    }
}

fn connect(path: &Path, flags: OpenFlags) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, flags).map_err(|e| StoreError::Open {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| classify(path, "setting the busy timeout", e))?;
    // The first read of the file: garbage or a held lock shows here.
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .map_err(|e| classify(path, "reading the schema", e))?;
    Ok(conn)
}

fn check_version(path: &Path, found: i64) -> Result<(), StoreError> {
    if found > schema::VERSION {
        return Err(StoreError::Schema {
            path: path.to_owned(),
            found,
            known: schema::VERSION,
        });
    }
    Ok(())
}

/// `e` as a [`StoreError`] naming `path`.
fn classify(path: &Path, what: &'static str, e: rusqlite::Error) -> StoreError {
    let path = path.to_owned();
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked { path, source: e }
        }
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path, source: e }
        }
        _ => StoreError::Sql {
            path,
            what,
            source: e,
        },
    }
}

/// Bytes in pages that hold data.
fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pragma = |name: &str| conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, i64>(0));
    let used = pragma("page_count")? - pragma("freelist_count")?;
    Ok(u64::try_from(used * pragma("page_size")?).unwrap_or(0))
}

/// Deletes records and samples up to these ids, and the transactions wholly before them.
fn delete_upto(conn: &Connection, records: i64, metrics: i64) -> rusqlite::Result<u64> {
    let mut n = conn.execute("DELETE FROM records WHERE id <= ?1", [records])?;
    n += conn.execute("DELETE FROM metrics WHERE id <= ?1", [metrics])?;
    conn.execute(
        "DELETE FROM writes WHERE records_hi <= ?1 AND metrics_hi <= ?2",
        [records, metrics],
    )?;
    Ok(n as u64)
}

/// The id below which `fraction` of a table's rows lie (ids grow with insertion).
fn cut(conn: &Connection, table: &str, fraction: f64) -> rusqlite::Result<i64> {
    let (lo, hi): (Option<i64>, Option<i64>) =
        conn.query_row(&format!("SELECT min(id), max(id) FROM {table}"), [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    Ok(match (lo, hi) {
        (Some(lo), Some(hi)) => lo + ((hi - lo + 1) as f64 * fraction).ceil() as i64 - 1,
        _ => 0,
    })
}

impl Store for SqliteStore {
    fn write(&self, batch: &WriteBatch) -> Result<(), StoreError> {
        self.writer()
            .write(batch, crate::timespec::now_ms())
            .map_err(self.err("writing"))
    }

    fn forget(&self, device: &str) -> Result<u64, StoreError> {
        self.writer()
            .forget(device)
            .map_err(self.err("forgetting a device"))
    }

    fn records(&self, q: &Query) -> Result<Vec<Record>, StoreError> {
        self.read(|c| super::query::records(c, q))
            .map_err(self.err("querying records"))
    }

    fn metrics(&self, q: &Query) -> Result<Vec<MetricSample>, StoreError> {
        self.read(|c| super::query::metrics(c, q))
            .map_err(self.err("querying metrics"))
    }

    fn device_states(&self) -> Result<Vec<(String, Value)>, StoreError> {
        self.read(|c| {
            let mut st =
                c.prepare("SELECT name, state FROM devices WHERE state IS NOT NULL ORDER BY name")?;
            let rows = st.query_map([], |r| {
                let raw: String = r.get(1)?;
                Ok((r.get(0)?, serde_json::from_str(&raw).unwrap_or(Value::Null)))
            })?;
            rows.collect()
        })
        .map_err(self.err("reading device states"))
    }

    fn prune(&self, policy: &Retention, now_ms: i64) -> Result<Pruned, StoreError> {
        let w = self.writer();
        let conn = &w.conn;
        let run = || -> rusqlite::Result<Pruned> {
            let bytes_before = used_bytes(conn)?;
            let mut rows = 0;
            if let Some(age) = policy.max_age_ms {
                let last_old: Option<(i64, i64)> = conn
                    .query_row(
                        "SELECT records_hi, metrics_hi FROM writes WHERE at < ?1
                         ORDER BY id DESC LIMIT 1",
                        [now_ms.saturating_sub(age)],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((r, m)) = last_old {
                    rows += delete_upto(conn, r, m)?;
                }
            }
            if let Some(max) = policy.max_bytes {
                // Down to 90 % of the cap, so the next writes do not prune again at once.
                for _ in 0..32 {
                    conn.execute_batch("PRAGMA incremental_vacuum;")?;
                    let used = used_bytes(conn)?;
                    if used <= max {
                        break;
                    }
                    let fraction = ((used - max * 9 / 10) as f64 / used as f64).clamp(0.05, 1.0);
                    let (r, m) = (
                        cut(conn, "records", fraction)?,
                        cut(conn, "metrics", fraction)?,
                    );
                    let n = delete_upto(conn, r, m)?;
                    if n == 0 {
                        break;
                    }
                    rows += n;
                }
            }
            conn.execute_batch("PRAGMA incremental_vacuum;")?;
            Ok(Pruned {
                rows,
                bytes_before,
                bytes_after: used_bytes(conn)?,
            })
        };
        run().map_err(self.err("pruning"))
    }

    fn usage_bytes(&self) -> Result<u64, StoreError> {
        self.read(used_bytes).map_err(self.err("measuring"))
    }

    fn usage(&self) -> Result<Usage, StoreError> {
        self.read(|c| {
            Ok(Usage {
                bytes: used_bytes(c)?,
                records: c.query_row("SELECT count(*) FROM records", [], |r| r.get::<_, i64>(0))?
                    as u64,
            })
        })
        .map_err(self.err("measuring"))
    }
}
