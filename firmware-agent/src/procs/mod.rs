//! The top N processes by CPU and by memory, from `/proc` (under `metrics.proc_root`).
//!
//! One file per process per sample: `/proc/<pid>/stat` holds the command name, `utime` and
//! `stime` (CPU time in clock ticks, all threads) and `rss` (resident pages), see proc(5). CPU
//! use is the change of `utime + stime` since the previous sample, divided by the elapsed time
//! (from `/proc/uptime`, the clock `starttime` uses) and the clock tick rate; a pid whose
//! `starttime` changed is a new process, counted from its start. The buffers (path, file text,
//! the two pid tables, the two candidate lists) are reused, so a sample allocates nothing that
//! grows beyond the busiest moment, and nothing per process except std's directory entries.

#[cfg(test)]
mod tests;

use std::{
    collections::HashMap,
    ffi::OsStr,
    fs::File,
    io::{Read as _, Write as _},
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    time::Instant,
};

use edge_wire::{ProcUse, bounded};

/// The fields of `/proc/<pid>/stat` this module uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat<'a> {
    pub pid: u32,
    /// The command name between the parentheses, raw bytes (may hold spaces and parentheses).
    pub comm: &'a [u8],
    /// Field 14 `utime` + field 15 `stime`, clock ticks.
    pub cpu_ticks: u64,
    /// Field 22 `starttime`, clock ticks after boot.
    pub start: u64,
    /// Field 24 `rss`, pages.
    pub rss_pages: u64,
}

/// Parses one `/proc/<pid>/stat` line: `pid (comm) state ppid ...`. The command name may
/// contain anything, including `)`, so it ends at the last `)`.
pub fn parse_stat(text: &[u8]) -> Option<Stat<'_>> {
    let open = text.iter().position(|&b| b == b'(')?;
    let close = text.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let pid = std::str::from_utf8(&text[..open])
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let rest = std::str::from_utf8(text.get(close + 1..)?).ok()?;
    // Field 3 (state) is index 0 here: field k is index k - 3.
    let mut fields = rest.split_ascii_whitespace();
    let mut nth = |skip: usize| -> Option<u64> { fields.nth(skip)?.parse().ok() };
    let utime = nth(11)?; // field 14
    let stime = nth(0)?; // 15
    let start = nth(6)?; // 22
    let rss_pages = nth(1)?; // 24
    Some(Stat {
        pid,
        comm: &text[open + 1..close],
        cpu_ticks: utime.checked_add(stime)?,
        start,
        rss_pages,
    })
}

/// `/proc/uptime`'s first field (seconds since boot, two decimals) in hundredths of a second.
pub fn parse_uptime_cs(text: &str) -> Option<u64> {
    let first = text.split_ascii_whitespace().next()?;
    let (secs, frac) = first.split_once('.').unwrap_or((first, "0"));
    let frac: String = frac.chars().chain("00".chars()).take(2).collect();
    secs.parse::<u64>()
        .ok()?
        .checked_mul(100)?
        .checked_add(frac.parse().ok()?)
}

/// CPU use over an interval in thousandths of one CPU: `ticks / hz` seconds of CPU over
/// `elapsed_cs / 100` seconds of wall time.
pub fn cpu_permille(ticks: u64, hz: u64, elapsed_cs: u64) -> u32 {
    if hz == 0 || elapsed_cs == 0 {
        return 0;
    }
    let v = u128::from(ticks) * 100_000 / (u128::from(hz) * u128::from(elapsed_cs));
    u32::try_from(v).unwrap_or(u32::MAX)
}

#[derive(Clone, Copy)]
struct Times {
    start: u64,
    ticks: u64,
}

/// A candidate for a top list: no heap, until it makes the list and the list is published.
#[derive(Clone, Copy)]
struct Candidate {
    pid: u32,
    comm: [u8; 16],
    comm_len: u8,
    cpu_permille: u32,
    rss_kib: u64,
}

impl Candidate {
    fn to_wire(self) -> ProcUse {
        let raw = &self.comm[..usize::from(self.comm_len)];
        ProcUse {
            pid: self.pid,
            comm: bounded(&String::from_utf8_lossy(raw)),
            cpu_permille: self.cpu_permille,
            rss_kib: self.rss_kib,
        }
    }
}

/// Keeps the `n` largest by `key` (ties: lower pid first), largest first.
fn offer(list: &mut Vec<Candidate>, n: usize, c: Candidate, key: fn(&Candidate) -> u64) {
    let rank = |x: &Candidate| (std::cmp::Reverse(key(x)), x.pid);
    let at = list.partition_point(|x| rank(x) < rank(&c));
    if at < n {
        if list.len() == n {
            list.pop();
        }
        list.insert(at, c);
    }
}

/// The sampler; `sample` returns the top lists since the previous call (or since `new`).
pub struct TopProcs {
    root: PathBuf,
    n: usize,
    hz: u64,
    page_kib: u64,
    prev: HashMap<u32, Times>,
    cur: HashMap<u32, Times>,
    /// `/proc/uptime` at the previous scan, and when (the fallback clock).
    prev_uptime_cs: Option<u64>,
    prev_at: Instant,
    path: Vec<u8>,
    text: Vec<u8>,
    by_cpu: Vec<Candidate>,
    by_mem: Vec<Candidate>,
    logged: bool,
}

impl TopProcs {
    /// Takes the baseline scan; `n` is `metrics.top_n` (at least 1).
    pub fn new(proc_root: &Path, n: usize) -> Self {
        Self::with_units(
            proc_root,
            n,
            clock_ticks(),
            crate::kernel::page_size() / 1024,
        )
    }

    /// `new` with the clock tick rate and page size given (for a recorded `/proc`).
    pub fn with_units(proc_root: &Path, n: usize, hz: u64, page_kib: u64) -> Self {
        let mut t = Self {
            root: proc_root.into(),
            n,
            hz,
            page_kib,
            prev: HashMap::new(),
            cur: HashMap::new(),
            prev_uptime_cs: None,
            prev_at: Instant::now(),
            path: Vec::with_capacity(64),
            text: Vec::with_capacity(512),
            by_cpu: Vec::with_capacity(n + 1),
            by_mem: Vec::with_capacity(n + 1),
            logged: false,
        };
        let uptime = t.uptime_cs();
        t.scan(None, uptime);
        t
    }

    /// The top `n` by CPU since the previous sample and by resident memory now.
    pub fn sample(&mut self) -> (Vec<ProcUse>, Vec<ProcUse>) {
        let uptime = self.uptime_cs();
        let elapsed_cs = match (uptime, self.prev_uptime_cs) {
            (Some(now), Some(then)) => now.saturating_sub(then),
            _ => u64::try_from(self.prev_at.elapsed().as_millis() / 10).unwrap_or(u64::MAX),
        };
        self.scan(Some(elapsed_cs), uptime);
        let wire = |l: &[Candidate]| l.iter().map(|c| c.to_wire()).collect();
        (wire(&self.by_cpu), wire(&self.by_mem))
    }

    fn uptime_cs(&mut self) -> Option<u64> {
        self.set_path(None, "uptime");
        let text = self.read_path()?;
        parse_uptime_cs(std::str::from_utf8(text).ok()?)
    }

    /// Reads every process; with `elapsed_cs` (not on the baseline) fills the top lists.
    /// `uptime` is `/proc/uptime` read just before.
    fn scan(&mut self, elapsed_cs: Option<u64>, uptime: Option<u64>) {
        let boot_ticks_then = self.prev_uptime_cs.map(|cs| cs * self.hz / 100);
        self.by_cpu.clear();
        self.by_mem.clear();
        self.cur.clear();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) => {
                if !self.logged {
                    self.logged = true;
                    log::warn!("top processes: cannot list {}: {e}", self.root.display());
                }
                return;
            }
        };
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            self.set_path(Some(pid), "stat");
            // A process may exit between the listing and the read: then it is simply skipped.
            let Some(text) = self.read_path() else {
                continue;
            };
            let Some(st) = parse_stat(text) else {
                continue;
            };
            let mut comm = [0u8; 16];
            let comm_len = st.comm.len().min(16);
            comm[..comm_len].copy_from_slice(&st.comm[..comm_len]);
            let (ticks, start, rss_pages) = (st.cpu_ticks, st.start, st.rss_pages);
            self.cur.insert(pid, Times { start, ticks });
            let Some(elapsed) = elapsed_cs else {
                continue;
            };
            let used = match self.prev.get(&pid) {
                Some(p) if p.start == start => ticks.saturating_sub(p.ticks),
                // New since the previous scan (started after it): all its time is in the interval.
                _ if boot_ticks_then.is_some_and(|t| start >= t) => ticks,
                _ => 0,
            };
            let c = Candidate {
                pid,
                comm,
                comm_len: comm_len as u8,
                cpu_permille: cpu_permille(used, self.hz, elapsed),
                rss_kib: rss_pages.saturating_mul(self.page_kib),
            };
            if c.cpu_permille > 0 {
                offer(&mut self.by_cpu, self.n, c, |c| u64::from(c.cpu_permille));
            }
            if c.rss_kib > 0 {
                offer(&mut self.by_mem, self.n, c, |c| c.rss_kib);
            }
        }
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.prev_uptime_cs = uptime;
        self.prev_at = Instant::now();
    }

    /// `<root>/<pid>/<leaf>` or `<root>/<leaf>` into the reused path buffer.
    fn set_path(&mut self, pid: Option<u32>, leaf: &str) {
        self.path.clear();
        self.path
            .extend_from_slice(self.root.as_os_str().as_bytes());
        if let Some(pid) = pid {
            let _ = write!(self.path, "/{pid}");
        }
        self.path.push(b'/');
        self.path.extend_from_slice(leaf.as_bytes());
    }

    fn read_path(&mut self) -> Option<&[u8]> {
        self.text.clear();
        let path = Path::new(OsStr::from_bytes(&self.path));
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.text))
            .ok()?;
        Some(&self.text)
    }
}

/// sysconf(_SC_CLK_TCK): the unit of `utime`, `stime` and `starttime` (100 on Linux).
fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}
