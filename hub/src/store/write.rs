//! The writing side of the embedded store: the one writing connection and the row ids of
//! devices and streams it already stored, the transaction that stores a [`WriteBatch`], and
//! forgetting a device (`hub forget`), which deletes its rows and drops its cached ids.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension as _, params};

use super::{BatchRef, WriteBatch};

pub(super) struct Writer {
    pub(super) conn: Connection,
    pub(super) ids: Ids,
}

/// Row ids of devices and streams already stored.
#[derive(Default)]
pub(super) struct Ids {
    devices: HashMap<String, i64>,
    /// By (device, run id): boot id and stream id (a run id is random, so the list holds one).
    streams: HashMap<(i64, u64), Vec<(String, i64)>>,
}

impl Ids {
    fn device_id(&mut self, tx: &Connection, name: &str) -> rusqlite::Result<i64> {
        if let Some(&id) = self.devices.get(name) {
            return Ok(id);
        }
        tx.prepare_cached("INSERT INTO devices (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?
            .execute([name])?;
        let id = tx
            .prepare_cached("SELECT id FROM devices WHERE name = ?1")?
            .query_row([name], |r| r.get(0))?;
        self.devices.insert(name.to_owned(), id);
        Ok(id)
    }

    fn stream_id(&mut self, tx: &Connection, dev: i64, b: &BatchRef) -> rusqlite::Result<i64> {
        let known = self.streams.entry((dev, b.run_id)).or_default();
        if let Some((_, id)) = known.iter().find(|(boot, _)| *boot == b.boot_id) {
            return Ok(*id);
        }
        // run_id is a u64 stored bit for bit in SQLite's i64.
        let run = b.run_id as i64;
        tx.prepare_cached(
            "INSERT INTO streams (dev, boot_id, run_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![dev, b.boot_id, run])?;
        let id = tx
            .prepare_cached(
                "SELECT id FROM streams WHERE dev = ?1 AND boot_id = ?2 AND run_id = ?3",
            )?
            .query_row(params![dev, b.boot_id, run], |r| r.get(0))?;
        known.push((b.boot_id.clone(), id));
        Ok(id)
    }
}

impl Writer {
    pub(super) fn write(&mut self, b: &WriteBatch, now_ms: i64) -> rusqlite::Result<()> {
        let result = self.write_tx(b, now_ms);
        if result.is_err() {
            // Ids handed out in a rolled-back transaction do not exist.
            self.ids = Ids::default();
        }
        result
    }

    fn write_tx(&mut self, b: &WriteBatch, now_ms: i64) -> rusqlite::Result<()> {
        let Self { conn, ids } = self;
        let tx = conn.unchecked_transaction()?;
        for (name, state) in &b.devices {
            tx.prepare_cached(
                "INSERT INTO devices (name, state) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET state = excluded.state",
            )?
            .execute(params![name, state.to_string()])?;
        }
        for r in &b.records {
            let dev = ids.device_id(&tx, &r.device)?;
            let stream = match &r.batch {
                Some(b) => Some((ids.stream_id(&tx, dev, b)?, b.seq)),
                None => None,
            };
            tx.prepare_cached(
                "INSERT INTO records (dev, ts, kind, stream, seq, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                dev,
                r.ts_ms,
                r.kind,
                stream.map(|s| s.0),
                stream.map(|s| s.1),
                r.detail.to_string()
            ])?;
        }
        for m in &b.metrics {
            let dev = ids.device_id(&tx, &m.device)?;
            tx.prepare_cached(
                "INSERT INTO metrics (dev, ts, cpu, mem_used, mem_total, load1, temp, rss, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                dev,
                m.ts_ms,
                m.cpu_percent,
                m.mem_used_kib as i64,
                m.mem_total_kib as i64,
                m.load1,
                m.temp_c,
                m.agent_rss_kib as i64,
                m.detail.to_string()
            ])?;
        }
        tx.execute(
            "INSERT INTO writes (at, records_hi, metrics_hi) VALUES (?1,
             coalesce((SELECT max(id) FROM records), 0), coalesce((SELECT max(id) FROM metrics), 0))",
            [now_ms],
        )?;
        tx.commit()
    }
}

impl Writer {
    /// Deletes everything stored of `device` (records, samples, streams, saved state) in one
    /// transaction; the number of rows deleted (0 for a device never stored).
    pub(super) fn forget(&mut self, device: &str) -> rusqlite::Result<u64> {
        let tx = self.conn.unchecked_transaction()?;
        let id: Option<i64> = tx
            .query_row("SELECT id FROM devices WHERE name = ?1", [device], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(id) = id else {
            return Ok(0);
        };
        let mut rows = 0;
        for table in ["records", "metrics", "streams"] {
            rows += tx.execute(&format!("DELETE FROM {table} WHERE dev = ?1"), [id])?;
        }
        rows += tx.execute("DELETE FROM devices WHERE id = ?1", [id])?;
        tx.commit()?;
        self.ids.devices.remove(device);
        self.ids.streams.retain(|(dev, _), _| *dev != id);
        Ok(rows as u64)
    }
}
