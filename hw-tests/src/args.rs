//! The hw-tests runner's command line: which agent and hub, the kernel directory for each page
//! size, where the logs go, the per-boot timeout, and the cells to run (checked here, before
//! anything boots).

use std::{collections::HashMap, path::PathBuf};

use hw_tests::Cell;

pub const USAGE: &str = "usage: hw-tests --agent PATH --kernel PAGES=DIR [--kernel ...] [--hub PATH] [--out DIR] [--timeout S] CELL...\n  CELL: e2e-16k e2e-4k nobtf-16k ringbuf-negative-16k ringbuf-negative-4k e2e-64k e2e-510 perf-510 perf-16k ...";

pub struct Args {
    pub agent: PathBuf,
    pub kernels: HashMap<String, PathBuf>,
    pub hub: PathBuf,
    pub out: PathBuf,
    pub timeout_s: u64,
    pub cells: Vec<Cell>,
}

pub fn parse_args() -> Result<Args, String> {
    let mut agent = None;
    let mut kernels = HashMap::new();
    let mut hub = None;
    let mut out = PathBuf::from("target/hw-tests");
    let mut timeout_s = 240;
    let mut cells = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--agent" => agent = Some(PathBuf::from(it.next().ok_or("--agent needs a path")?)),
            "--kernel" => {
                let kv = it.next().ok_or("--kernel needs PAGES=DIR")?;
                let (k, v) = kv.split_once('=').ok_or("--kernel needs PAGES=DIR")?;
                kernels.insert(k.to_owned(), PathBuf::from(v));
            }
            "--hub" => hub = Some(PathBuf::from(it.next().ok_or("--hub needs a path")?)),
            "--out" => out = PathBuf::from(it.next().ok_or("--out needs a dir")?),
            "--timeout" => {
                timeout_s = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--timeout needs seconds")?
            }
            "-h" | "--help" => return Err(String::new()),
            c => cells.push(Cell::parse(c)?),
        }
    }
    let agent = agent.ok_or("--agent is required")?;
    if !agent.is_file() {
        return Err(format!("agent {} not found", agent.display()));
    }
    if cells.is_empty() {
        return Err("no cells given".into());
    }
    for c in &cells {
        if !kernels.contains_key(&c.pages) {
            return Err(format!("cell {} needs --kernel {}=DIR", c.name, c.pages));
        }
    }
    let hub = match hub {
        Some(h) => h,
        None => std::env::current_exe()
            .map_err(|e| e.to_string())?
            .with_file_name("hub"),
    };
    if !hub.is_file() {
        return Err(format!(
            "hub binary {} not found (cargo build -p edge-hub)",
            hub.display()
        ));
    }
    Ok(Args {
        agent,
        kernels,
        hub,
        out,
        timeout_s,
        cells,
    })
}
