//! `hub query`: prints stored history from the database of `hub serve` (read-only; the server
//! may be running): records by device, kind and time (text lines escaped for the terminal, or
//! `--json` lines as the API returns them), or `--metrics` samples.

use std::io::Write as _;

use anyhow::Context as _;
use edge_hub::{
    escape,
    history::{describe, record_json},
    store::{Query, SqliteStore, Store},
    timespec,
};

use super::{cli::QueryArgs, serve::DB_FILE};

pub fn run(args: &QueryArgs, json: bool) -> anyhow::Result<()> {
    let now = timespec::now_ms();
    let time = |flag: &str, v: &Option<String>| {
        v.as_deref()
            .map(|s| timespec::parse(s, now).with_context(|| flag.to_owned()))
            .transpose()
    };
    let q = Query {
        device: args.device.clone(),
        kinds: args.kind.clone(),
        since_ms: time("--since", &args.since)?,
        until_ms: time("--until", &args.until)?,
        limit: args.limit,
    };
    let store = SqliteStore::open_read_only(&args.data_dir.join(DB_FILE))?;
    let mut out = std::io::stdout().lock();
    if args.metrics {
        for s in store.metrics(&q)? {
            if json {
                writeln!(out, "{}", serde_json::to_string(&s)?)?;
            } else {
                writeln!(
                    out,
                    "{} {} metrics: cpu {:.1}% mem {}/{} MiB load {:.2} temp {} agent rss {} KiB",
                    timespec::format(s.ts_ms),
                    escape(&s.device),
                    s.cpu_percent,
                    s.mem_used_kib / 1024,
                    s.mem_total_kib / 1024,
                    s.load1,
                    s.temp_c.map_or_else(|| "-".into(), |t| format!("{t:.1}")),
                    s.agent_rss_kib
                )?;
            }
        }
        return Ok(());
    }
    for r in store.records(&q)? {
        if json {
            writeln!(out, "{}", record_json(&r))?;
        } else {
            let line = format!(
                "{} {} {} {}",
                timespec::format(r.ts_ms),
                r.device,
                r.kind,
                describe(&r)
            );
            writeln!(out, "{}", escape(&line))?;
        }
    }
    Ok(())
}
