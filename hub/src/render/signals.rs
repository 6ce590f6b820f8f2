//! Text lines for the OOM, TCP and storage events (not escaped here: `text` escapes every line
//! it returns).

use std::{fmt::Write as _, net::IpAddr as StdIp};

use edge_wire::{Direction, IpAddr, Log2Hist, OomKill, StorageSummary, TcpCounts, TcpSummary};

/// `<device> [tgid] comm OOM-KILLED ...`.
pub fn oom_line(device: &str, e: &OomKill) -> String {
    let t = &e.task;
    let mut s = format!(
        "{device} [{}] {} OOM-KILLED (pid {})",
        t.tgid, t.comm, t.pid
    );
    if let Some(m) = &e.memory {
        let _ = write!(
            s,
            " anon-rss {} KiB file-rss {} KiB shmem-rss {} KiB total-vm {} KiB pgtables {} KiB uid {} oom_score_adj {}",
            m.anon_rss_kib,
            m.file_rss_kib,
            m.shmem_rss_kib,
            m.total_vm_kib,
            m.pgtables_kib,
            m.uid,
            m.oom_score_adj
        );
    }
    if let Some(cg) = &e.cgroup {
        let _ = write!(s, " cgroup {cg}");
    }
    if let Some(k) = &e.killed_by {
        let _ = write!(s, " (kill run by [{}] {})", k.tgid, k.comm);
    }
    s
}

fn ip(a: &IpAddr) -> String {
    match a {
        IpAddr::V4(b) => StdIp::from(*b).to_string(),
        IpAddr::V6(b) => format!("[{}]", StdIp::from(*b)),
    }
}

fn counts(c: &TcpCounts) -> String {
    let mut s = format!(
        "opened {} closed {} sent {} B received {} B",
        c.opened, c.closed, c.bytes_sent, c.bytes_received
    );
    if c.failed > 0 {
        let _ = write!(s, " failed {}", c.failed);
    }
    if c.retransmits > 0 {
        let _ = write!(s, " retransmits {}", c.retransmits);
    }
    if c.closed > 0 {
        let _ = write!(
            s,
            " lifetime {} ms total, {} ms max",
            c.closed_ms_total, c.closed_ms_max
        );
    }
    s
}

/// One line per flow, then one for the flows past the cap.
pub fn tcp_lines(device: &str, e: &TcpSummary) -> Vec<String> {
    let mut lines: Vec<String> = e
        .flows
        .iter()
        .map(|f| {
            let (dir, what) = match f.direction {
                Direction::Outbound => ("->", "to"),
                Direction::Inbound => ("<-", "from"),
            };
            format!(
                "{device} [{}] {} tcp {dir} {what} {} port {} over {} ms: {}",
                f.task.tgid,
                f.task.comm,
                ip(&f.peer),
                f.port,
                e.interval_ms,
                counts(&f.counts)
            )
        })
        .collect();
    if let Some(r) = &e.rest {
        lines.push(format!(
            "{device} tcp {} more flows over {} ms: {}",
            r.flows,
            e.interval_ms,
            counts(&r.counts)
        ));
    }
    lines
}

/// `512us:2 2ms:7 ...`: each non-empty bucket by its lower bound.
pub fn histogram(h: &Log2Hist) -> String {
    let mut s = String::new();
    for (k, &n) in h.counts.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let us = Log2Hist::bucket_floor_us(usize::from(h.first) + k);
        let floor = if us >= 1_000_000 {
            format!("{}s", us / 1_000_000)
        } else if us >= 1000 {
            format!("{}ms", us / 1000)
        } else {
            format!("{us}us")
        };
        let _ = write!(s, " {floor}+:{n}");
    }
    s
}

/// One line per writer, one for the writers past the cap, one per disk.
pub fn storage_lines(device: &str, e: &StorageSummary) -> Vec<String> {
    let mut lines: Vec<String> = e
        .writers
        .iter()
        .map(|w| {
            format!(
                "{device} [{}] {} wrote {} B to {} over {} ms",
                w.task.tgid, w.task.comm, w.bytes, w.device, e.interval_ms
            )
        })
        .collect();
    if e.rest_writers > 0 {
        lines.push(format!(
            "{device} {} more writers wrote {} B over {} ms",
            e.rest_writers, e.rest_bytes, e.interval_ms
        ));
    }
    for d in &e.disks {
        lines.push(format!(
            "{device} disk {}: reads {} ({} B) writes {} ({} B) others {} over {} ms; latency{}",
            d.disk,
            d.reads,
            d.read_bytes,
            d.writes,
            d.write_bytes,
            d.others,
            e.interval_ms,
            histogram(&d.latency)
        ));
    }
    lines
}
