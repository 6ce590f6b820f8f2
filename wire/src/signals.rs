//! Events of the OOM, TCP and storage families: an OOM kill as it happens, and per-interval
//! summaries of TCP flows, page-cache writers and block I/O per disk.

use alloc::vec::Vec;

use crate::{Name, PathStr, Task};

/// A task killed by the OOM killer.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OomKill {
    pub age_us: u64,
    /// The victim: its thread id, its process when known (else the thread id again), its comm.
    pub task: Task,
    /// The task that ran the kill (whose allocation failed), when it is not the victim.
    pub killed_by: Option<Task>,
    /// The victim's memory at the kill, on kernels whose tracepoint carries it.
    pub memory: Option<OomMemory>,
    /// The memory cgroup (path under its hierarchy), when it could be found.
    pub cgroup: Option<PathStr>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OomMemory {
    pub total_vm_kib: u64,
    pub anon_rss_kib: u64,
    pub file_rss_kib: u64,
    pub shmem_rss_kib: u64,
    pub pgtables_kib: u64,
    pub uid: u32,
    pub oom_score_adj: i32,
}

/// An IP address.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum IpAddr {
    V4([u8; 4]),
    V6([u8; 16]),
}

/// Who opened a connection.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Direction {
    /// connect() by this process; `port` is the peer's.
    Outbound,
    /// accepted by this process's listener; `port` is the local (listening) one.
    Inbound,
}

/// TCP traffic over one interval, per (process, peer, port, direction).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpSummary {
    pub age_us: u64,
    /// The interval's length.
    pub interval_ms: u32,
    /// The busiest flows (by bytes), at most `summaries.tcp_max_flows`.
    pub flows: Vec<TcpFlow>,
    /// Everything in the flows past the cap, summed.
    pub rest: Option<TcpRest>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpFlow {
    /// The process (`pid` = `tgid`); tgid 0 and an empty comm when no owner was seen.
    pub task: Task,
    pub direction: Direction,
    pub peer: IpAddr,
    pub port: u16,
    pub counts: TcpCounts,
}

/// What happened on a set of connections during the interval.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpCounts {
    /// Connections opened (connect()) or accepted.
    pub opened: u32,
    pub closed: u32,
    /// Outbound connections closed without ever being established (refused, timed out).
    pub failed: u32,
    /// Bytes the processes sent and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub retransmits: u32,
    /// Lifetimes of the connections closed, summed, and the longest.
    pub closed_ms_total: u64,
    pub closed_ms_max: u64,
}

/// The flows past the cap.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TcpRest {
    pub flows: u32,
    pub counts: TcpCounts,
}

/// Storage over one interval: who wrote into the page cache, and the block I/O per disk.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StorageSummary {
    pub age_us: u64,
    pub interval_ms: u32,
    /// The biggest writers, at most `summaries.max_writers`.
    pub writers: Vec<Writer>,
    /// Writers past the cap: how many, and their bytes.
    pub rest_writers: u32,
    pub rest_bytes: u64,
    /// Disks that completed requests in the interval.
    pub disks: Vec<DiskIo>,
}

/// Bytes a process wrote into the page cache of a filesystem on `device`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Writer {
    /// The process (`pid` = `tgid`).
    pub task: Task,
    /// The filesystem's block device (`mmcblk0p2`), or `major:minor` if it has no name.
    pub device: Name,
    pub bytes: u64,
}

/// One disk's completed block requests.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskIo {
    pub disk: Name,
    pub reads: u64,
    pub read_bytes: u64,
    pub writes: u64,
    pub write_bytes: u64,
    /// Flushes, discards, ...
    pub others: u64,
    /// Issue-to-completion latency of every request.
    pub latency: Log2Hist,
}

/// A histogram with fixed log2 buckets of microseconds: bucket 0 counts 0-1 µs, bucket i >= 1
/// counts [2^i, 2^(i+1)) µs; `counts[k]` is bucket `first + k`. Empty buckets before the first
/// and after the last non-empty one are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Log2Hist {
    pub first: u8,
    pub counts: Vec<u64>,
}

impl Log2Hist {
    /// From every bucket's count, trimming empty ends.
    pub fn from_buckets(buckets: &[u64]) -> Self {
        let Some(first) = buckets.iter().position(|&c| c > 0) else {
            return Self::default();
        };
        let last = buckets.iter().rposition(|&c| c > 0).unwrap_or(first);
        Self {
            first: first as u8,
            counts: buckets[first..=last].to_vec(),
        }
    }

    /// Requests counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The lower bound in µs of bucket `i` (absolute index).
    pub fn bucket_floor_us(i: usize) -> u64 {
        if i == 0 { 0 } else { 1u64 << i }
    }
}
