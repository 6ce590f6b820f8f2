//! The assertions of the QEMU cells, as pure functions over what a cell produced: the hub's
//! JSON records and the guest's serial console. `main.rs` runs the guests; this file decides
//! pass/fail, so the rules are unit-tested without QEMU.

use serde_json::Value;

pub mod memory;
pub mod outcome;
pub mod report;
pub mod signals;

pub use outcome::{CRASH_MARKS, EXITS};

/// Port the guest's busybox `httpd` binds on 0.0.0.0 (hw-tests/init.sh, `trigger_events`).
pub const BIND_PORT: u64 = 4242;
/// Port the guest's `nc -l -p` binds: `[::]` on a kernel with IPv6, else 0.0.0.0.
pub const NC_PORT: u64 = 4243;
/// The exec trigger (a `#!/bin/sh` script put in the initramfs by mkinitramfs.sh).
pub const MARKER: &str = "/usr/bin/hwtest-marker";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Agent up, bind + exec triggered, SIGTERM.
    E2e,
    /// The same with /sys/kernel/btf/vmlinux hidden.
    NoBtf,
    /// `firmware-agent selftest-ringbuf`.
    RingbufNegative,
    /// E2e with the TCP byte counters forced onto kprobes and a TCP transfer of known size.
    Kprobe,
    /// The same with the byte counters forced onto fexit.
    Fentry,
    /// E2e with the records forced through perf buffers (`probes.transport = "perf"`).
    Perf,
}

impl Scenario {
    pub fn guest_name(self) -> &'static str {
        match self {
            Self::E2e => "e2e",
            Self::NoBtf => "nobtf",
            Self::RingbufNegative => "ringbuf-negative",
            Self::Kprobe => "kprobe",
            Self::Fentry => "fentry",
            Self::Perf => "perf",
        }
    }
}

/// `<scenario>-<16k|4k|64k|510>`, e.g. `e2e-16k`; `510` is Debian bullseye's 5.10 kernel (4K
/// pages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub name: String,
    pub scenario: Scenario,
    /// "16k", "4k", "64k" or "510": which kernel.
    pub pages: String,
    pub page_size: u64,
}

impl Cell {
    pub fn parse(name: &str) -> Result<Self, String> {
        let (scen, pages) = name
            .rsplit_once('-')
            .ok_or_else(|| format!("cell {name:?}: want SCENARIO-PAGES, e.g. e2e-16k"))?;
        let scenario = match scen {
            "e2e" => Scenario::E2e,
            "nobtf" => Scenario::NoBtf,
            "ringbuf-negative" => Scenario::RingbufNegative,
            "kprobe" => Scenario::Kprobe,
            "fentry" => Scenario::Fentry,
            "perf" => Scenario::Perf,
            _ => return Err(format!("cell {name:?}: unknown scenario {scen:?}")),
        };
        let page_size = match pages {
            "4k" | "510" => 4096,
            "16k" => 16384,
            "64k" => 65536,
            _ => {
                return Err(format!(
                    "cell {name:?}: the kernel must be 4k, 16k, 64k or 510"
                ));
            }
        };
        Ok(Self {
            name: name.to_owned(),
            scenario,
            pages: pages.to_owned(),
            page_size,
        })
    }

    pub fn device(&self) -> String {
        format!("hwtest-{}", self.name)
    }
}

/// What a cell measured, for the summary table.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// QEMU start to /init's first line (host wall clock, from boot.sh).
    pub boot_s: Option<f64>,
    /// Console line "agent started" to the birth at the hub (host wall clock).
    pub startup_s: Option<f64>,
    /// Agent start to its "mqtt: connected; publishing birth" log line (guest /proc/uptime,
    /// as init.sh's polling loop sees it).
    pub startup_guest_s: Option<f64>,
    /// VmRSS of the agent in kB when ready and just before SIGTERM.
    pub rss_ready_kb: Option<u64>,
    pub rss_end_kb: Option<u64>,
    /// VmRSS after `memory::IDLE_S` idle (e2e and perf cells).
    pub rss_idle_kb: Option<u64>,
    /// init.sh's `HWTEST-MEM:` samples (ready, idle, before-stop).
    pub mem: Vec<memory::MemSample>,
    /// `NAME requested->chosen`, one per ring.
    pub rings: Vec<String>,
    /// Whole cell, host wall clock.
    pub total_s: f64,
}

/// A value from a `KEY=VALUE` (optionally with a unit suffix `s`) in boot.sh's output.
pub fn boot_figure(boot_out: &str, key: &str) -> Option<f64> {
    let pat = format!("{key}=");
    boot_out.lines().find_map(|l| {
        let rest = &l[l.find(&pat)? + pat.len()..];
        let v = rest.split_whitespace().next()?.trim_end_matches('s');
        v.parse().ok()
    })
}

/// `HWTEST-RSS: <kB> phase=<phase>` from init.sh.
pub fn rss_kb(console: &str, phase: &str) -> Option<u64> {
    console.lines().find_map(|l| {
        let rest = l.trim_end_matches('\r').strip_prefix("HWTEST-RSS: ")?;
        let (kb, ph) = rest.split_once(" phase=")?;
        (ph == phase).then(|| kb.parse().ok()).flatten()
    })
}

/// Guest seconds from agent start to readiness: the `uptime=` of init.sh's
/// "HWTEST-INFO: agent started pid=.. uptime=Xs" and "HWTEST-INFO: agent ready (..) uptime=Ys".
pub fn guest_ready_s(console: &str) -> Option<f64> {
    let up = |prefix: &str| {
        console.lines().find_map(|l| {
            let l = l.trim_end_matches('\r').strip_prefix(prefix)?;
            let v = l.split(" uptime=").nth(1)?.split_whitespace().next()?;
            v.trim_end_matches('s').parse::<f64>().ok()
        })
    };
    Some(up("HWTEST-INFO: agent ready ")? - up("HWTEST-INFO: agent started ")?)
}

/// The last `HWTEST-RESULT:` line's text.
pub fn result_line(console: &str) -> Option<&str> {
    console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("HWTEST-RESULT: "))
        .next_back()
}

fn has_line(console: &str, needle: &str) -> bool {
    console.lines().any(|l| l.contains(needle))
}

/// `NAME requested->chosen` for the summary (`/cpu[<pages>p x<cpus>]` after perf buffers).
pub fn ring_summary(birth: &Value) -> Vec<String> {
    birth["body"]["ring_buffers"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    let perf = &r["transport"]["Perf"];
                    let how = if perf.is_null() {
                        String::new()
                    } else {
                        format!("/cpu[{}p x{}]", perf["pages_per_cpu"], perf["cpus"])
                    };
                    format!(
                        "{} {}->{}{how}",
                        r["name"].as_str().unwrap_or("?"),
                        r["requested"],
                        r["chosen"]
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The birth of `device` among the hub's records.
pub fn find_birth<'a>(records: &'a [Value], device: &str) -> Option<&'a Value> {
    records
        .iter()
        .find(|v| v["type"] == "online" && v["device"] == device)
}

/// Checks a birth message; returns the failures.
pub fn check_birth(birth: &Value, page_size: u64, expect_btf: bool) -> Vec<String> {
    check_birth_on(birth, page_size, expect_btf, "")
}

/// `check_birth` for a cell on the kernel `pages` (the 64k one has no ext4 and no block layer).
pub fn check_birth_on(birth: &Value, page_size: u64, expect_btf: bool, pages: &str) -> Vec<String> {
    let mut f = Vec::new();
    let body = &birth["body"];
    if body["page_size"] != page_size {
        f.push(format!(
            "birth page_size {} != {page_size}",
            body["page_size"]
        ));
    }
    if body["arch"] != "aarch64" {
        f.push(format!("birth arch {} != \"aarch64\"", body["arch"]));
    }
    if body["kernel_btf"] != expect_btf {
        f.push(format!(
            "birth kernel_btf {} != {expect_btf}",
            body["kernel_btf"]
        ));
    }
    match body["ring_buffers"].as_array() {
        Some(rs) if !rs.is_empty() => {
            for r in rs {
                let (name, req, chosen) =
                    (&r["name"], r["requested"].as_u64(), r["chosen"].as_u64());
                match (req, chosen) {
                    (Some(req), Some(chosen)) => {
                        if chosen % page_size != 0 {
                            f.push(format!(
                                "ring {name}: chosen {chosen} not a multiple of {page_size}"
                            ));
                        }
                        if !chosen.is_power_of_two() {
                            f.push(format!("ring {name}: chosen {chosen} not a power of two"));
                        }
                        if chosen < req {
                            f.push(format!("ring {name}: chosen {chosen} < requested {req}"));
                        }
                    }
                    _ => f.push(format!("ring {name}: bad sizes in {r}")),
                }
            }
        }
        _ => f.push(format!("birth has no ring_buffers: {body}")),
    }
    match body["probes"].as_array() {
        Some(ps) if !ps.is_empty() => {
            for p in ps
                .iter()
                .filter(|p| p["state"] != "Attached" && !signals::may_skip(pages, p))
            {
                f.push(format!("probe {} not attached: {}", p["name"], p["state"]));
            }
        }
        _ => f.push(format!("birth has no probes: {body}")),
    }
    f
}

pub(crate) fn events<'a>(
    records: &'a [Value],
    device: &'a str,
) -> impl Iterator<Item = &'a Value> + 'a {
    records
        .iter()
        .filter(move |v| v["type"] == "event" && v["device"] == device)
        .map(|v| &v["event"])
}

/// Everything an e2e/nobtf/perf cell asserts (hub records + console); `cpus`: the guest's.
pub fn check_e2e(
    cell: &Cell,
    records: &[Value],
    console: &str,
    expect_btf: bool,
    cpus: u64,
) -> Vec<String> {
    let device = cell.device();
    let mut f = Vec::new();
    match find_birth(records, &device) {
        Some(b) => {
            f.extend(check_birth_on(b, cell.page_size, expect_btf, &cell.pages));
            f.extend(outcome::check_transport(b, cell, cpus));
        }
        None => f.push(format!("no birth from {device} at the hub")),
    }
    f.extend(outcome::check_exits(records, &device));
    f.extend(outcome::check_no_crash(console));
    let bind_addrs = || {
        events(records, &device)
            .filter(|e| !e["Bind"].is_null())
            .map(|e| e["Bind"]["addr"].to_string())
            .collect::<Vec<_>>()
    };
    let port_of = |e: &Value| {
        let a = &e["Bind"]["addr"];
        if a["V4"].is_null() {
            a["V6"]["port"].clone()
        } else {
            a["V4"]["port"].clone()
        }
    };
    // 0.0.0.0:4242 by httpd: must decode as V4.
    let v4: Vec<&Value> = events(records, &device)
        .filter(|e| e["Bind"]["addr"]["V4"]["port"] == BIND_PORT)
        .collect();
    match v4.as_slice() {
        [] => f.push(format!(
            "no Bind event with addr V4 port {BIND_PORT} (binds seen: {:?})",
            bind_addrs()
        )),
        [b] => {
            if b["Bind"]["task"]["comm"] != "httpd"
                || b["Bind"]["ret"] != 0
                || b["Bind"]["addr"]["V4"]["ip"] != serde_json::json!([0, 0, 0, 0])
            {
                f.push(format!(
                    "bind on {BIND_PORT} not a successful 0.0.0.0 bind by httpd: {b}"
                ));
            }
        }
        more => f.push(format!(
            "{} Bind events for port {BIND_PORT}, want 1",
            more.len()
        )),
    }
    // `nc -l -p 4243`: V6 [::] or V4, one successful bind by nc.
    let nc: Vec<&Value> = events(records, &device)
        .filter(|e| !e["Bind"].is_null() && port_of(e) == NC_PORT)
        .collect();
    match nc.as_slice() {
        [b] if b["Bind"]["task"]["comm"] == "nc" && b["Bind"]["ret"] == 0 => {}
        other => f.push(format!(
            "want one successful Bind by nc on port {NC_PORT}, got {other:?} (binds seen: {:?})",
            bind_addrs()
        )),
    }
    let execs = events(records, &device)
        .filter(|e| {
            e["Exec"]["filename"]
                .as_str()
                .is_some_and(|s| s.ends_with("/hwtest-marker"))
        })
        .count();
    if execs != 1 {
        f.push(format!("{execs} Exec events of {MARKER}, want 1"));
    }
    if !records.iter().any(|v| {
        v["type"] == "offline" && v["device"] == device && v["body"]["cause"] == "Shutdown"
    }) {
        f.push("no offline record with cause Shutdown".into());
    }
    if let Some(g) = records
        .iter()
        .find(|v| v["type"] == "gap" && v["device"] == device)
    {
        f.push(format!("sequence gap: {g}"));
    }
    if !console.lines().any(|l| {
        l == "HWTEST-RESULT: agent-exit=0" || l.starts_with("HWTEST-RESULT: agent-exit=0 ")
    }) {
        f.push(format!(
            "console result {:?}, want agent-exit=0",
            result_line(console)
        ));
    }
    if cell.scenario == Scenario::NoBtf && !has_line(console, "HWTEST-INFO: btf-hidden=yes") {
        f.push("console lacks 'btf-hidden=yes': BTF was not hidden".into());
    }
    f
}

/// The ringbuf-negative cell: the selftest's own lines, exact.
pub fn check_ringbuf_negative(cell: &Cell, console: &str) -> Vec<String> {
    let p = cell.page_size;
    let chosen = p.max(4096);
    let raw = if p == 4096 { "ok" } else { "EINVAL" };
    let mut f = Vec::new();
    for want in [
        format!("raw_ringbuf bytes=4096 result={raw}"),
        format!("sized_ringbuf requested=4096 chosen={chosen} max_entries={chosen} result=ok"),
        "selftest-ringbuf PASS".to_owned(),
    ] {
        if !has_line(console, &want) {
            f.push(format!("console lacks {want:?}"));
        }
    }
    if !result_line(console).is_some_and(|r| r.starts_with("selftest-exit=0 ")) {
        f.push(format!(
            "console result {:?}, want selftest-exit=0",
            result_line(console)
        ));
    }
    f
}

#[cfg(test)]
mod tests;
