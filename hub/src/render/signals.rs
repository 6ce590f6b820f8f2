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

#[cfg(test)]
mod tests {
    use edge_wire::{DiskIo, OomMemory, Task, TcpFlow, TcpRest, Writer, bounded};

    use super::*;

    fn task(tgid: u32, comm: &str) -> Task {
        Task {
            pid: tgid,
            tgid,
            comm: bounded(comm),
        }
    }

    #[test]
    fn oom_tcp_and_storage_lines() {
        let oom = OomKill {
            age_us: 0,
            task: task(41, "tail"),
            killed_by: None,
            memory: Some(OomMemory {
                total_vm_kib: 35476,
                anon_rss_kib: 32640,
                file_rss_kib: 1588,
                shmem_rss_kib: 0,
                pgtables_kib: 108,
                uid: 0,
                oom_score_adj: 0,
            }),
            cgroup: Some(bounded("/jobs/a")),
        };
        assert_eq!(
            oom_line("pi1", &oom),
            "pi1 [41] tail OOM-KILLED (pid 41) anon-rss 32640 KiB file-rss 1588 KiB shmem-rss 0 KiB total-vm 35476 KiB pgtables 108 KiB uid 0 oom_score_adj 0 cgroup /jobs/a"
        );
        let tcp = TcpSummary {
            age_us: 0,
            interval_ms: 1000,
            flows: vec![TcpFlow {
                task: task(7, "curl"),
                direction: Direction::Outbound,
                peer: IpAddr::V6([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                port: 443,
                counts: TcpCounts {
                    opened: 1,
                    closed: 1,
                    bytes_sent: 10,
                    bytes_received: 20,
                    retransmits: 2,
                    closed_ms_total: 5,
                    closed_ms_max: 5,
                    ..Default::default()
                },
            }],
            rest: Some(TcpRest {
                flows: 2,
                counts: TcpCounts {
                    opened: 2,
                    ..Default::default()
                },
            }),
        };
        assert_eq!(
            tcp_lines("pi1", &tcp),
            [
                "pi1 [7] curl tcp -> to [::1] port 443 over 1000 ms: opened 1 closed 1 sent 10 B received 20 B retransmits 2 lifetime 5 ms total, 5 ms max",
                "pi1 tcp 2 more flows over 1000 ms: opened 2 closed 0 sent 0 B received 0 B",
            ]
        );
        let storage = StorageSummary {
            age_us: 0,
            interval_ms: 1000,
            writers: vec![Writer {
                task: task(9, "dd"),
                device: bounded("mmcblk0p2"),
                bytes: 1_048_576,
            }],
            rest_writers: 0,
            rest_bytes: 0,
            disks: vec![DiskIo {
                disk: bounded("mmcblk0"),
                reads: 1,
                read_bytes: 4096,
                writes: 3,
                write_bytes: 1_052_672,
                others: 1,
                latency: Log2Hist {
                    first: 9,
                    counts: vec![1, 0, 3],
                },
            }],
        };
        assert_eq!(
            storage_lines("pi1", &storage),
            [
                "pi1 [9] dd wrote 1048576 B to mmcblk0p2 over 1000 ms",
                "pi1 disk mmcblk0: reads 1 (4096 B) writes 3 (1052672 B) others 1 over 1000 ms; latency 512us+:1 2ms+:3",
            ]
        );
    }
}
