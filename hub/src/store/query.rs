//! The history's SELECTs: records and metrics samples by device, time range and kind, the
//! newest `limit` matches returned oldest first. Device ids are looked up first, so a device
//! never seen selects nothing without scanning.

use rusqlite::{Connection, OptionalExtension as _, Row, params_from_iter, types::Value as Sql};
use serde_json::Value;

use super::{BatchRef, MetricSample, Query, Record};

/// The `WHERE` clause and its parameters for `q` on a table aliased `t`, or `None` when the
/// device is unknown (nothing can match).
fn conditions(
    c: &Connection,
    q: &Query,
    kinds: bool,
) -> rusqlite::Result<Option<(String, Vec<Sql>)>> {
    let mut sql = String::from(" WHERE 1");
    let mut args = Vec::new();
    if let Some(name) = &q.device {
        let id: Option<i64> = c
            .query_row("SELECT id FROM devices WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        sql.push_str(" AND t.dev = ?");
        args.push(Sql::Integer(id));
    }
    if let Some(since) = q.since_ms {
        sql.push_str(" AND t.ts >= ?");
        args.push(Sql::Integer(since));
    }
    if let Some(until) = q.until_ms {
        sql.push_str(" AND t.ts <= ?");
        args.push(Sql::Integer(until));
    }
    if kinds && !q.kinds.is_empty() {
        let marks = vec!["?"; q.kinds.len()].join(", ");
        sql.push_str(&format!(" AND t.kind IN ({marks})"));
        args.extend(q.kinds.iter().map(|k| Sql::Text(k.clone())));
    }
    Ok(Some((sql, args)))
}

fn limit(q: &Query) -> i64 {
    i64::try_from(q.limit).unwrap_or(i64::MAX)
}

fn json(raw: String) -> Value {
    serde_json::from_str(&raw).unwrap_or(Value::String(raw))
}

pub fn records(c: &Connection, q: &Query) -> rusqlite::Result<Vec<Record>> {
    let Some((cond, mut args)) = conditions(c, q, true)? else {
        return Ok(Vec::new());
    };
    args.push(Sql::Integer(limit(q)));
    let sql = format!(
        "SELECT d.name, t.ts, t.kind, s.boot_id, s.run_id, t.seq, t.detail
         FROM records t JOIN devices d ON d.id = t.dev LEFT JOIN streams s ON s.id = t.stream
         {cond} ORDER BY t.ts DESC, t.id DESC LIMIT ?"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(args), record)?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}

fn record(r: &Row) -> rusqlite::Result<Record> {
    let boot_id: Option<String> = r.get(3)?;
    let run_id: Option<i64> = r.get(4)?;
    let seq: Option<u32> = r.get(5)?;
    let batch = match (boot_id, run_id, seq) {
        (Some(boot_id), Some(run), Some(seq)) => Some(BatchRef {
            boot_id,
            // Stored bit for bit (see the writer).
            run_id: run as u64,
            seq,
        }),
        _ => None,
    };
    Ok(Record {
        device: r.get(0)?,
        ts_ms: r.get(1)?,
        kind: r.get(2)?,
        batch,
        detail: json(r.get(6)?),
    })
}

pub fn metrics(c: &Connection, q: &Query) -> rusqlite::Result<Vec<MetricSample>> {
    let Some((cond, mut args)) = conditions(c, q, false)? else {
        return Ok(Vec::new());
    };
    args.push(Sql::Integer(limit(q)));
    let sql = format!(
        "SELECT d.name, t.ts, t.cpu, t.mem_used, t.mem_total, t.load1, t.temp, t.rss, t.detail
         FROM metrics t JOIN devices d ON d.id = t.dev
         {cond} ORDER BY t.ts DESC, t.id DESC LIMIT ?"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map(params_from_iter(args), |r| {
        Ok(MetricSample {
            device: r.get(0)?,
            ts_ms: r.get(1)?,
            cpu_percent: r.get(2)?,
            mem_used_kib: r.get::<_, i64>(3)? as u64,
            mem_total_kib: r.get::<_, i64>(4)? as u64,
            load1: r.get(5)?,
            temp_c: r.get(6)?,
            agent_rss_kib: r.get::<_, i64>(7)? as u64,
            detail: json(r.get(8)?),
        })
    })?;
    let mut out = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    out.reverse();
    Ok(out)
}
