//! Event batches and the events they carry.

use alloc::vec::Vec;

use crate::{Comm, Name, OomKill, PathStr, StorageSummary, TcpSummary};

/// Kernel events grouped by size or time, as published on `events`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventBatch {
    pub device: Name,
    pub boot_id: Name,
    /// Random per agent process: batches of one run share it, and `seq` restarts at 0 for each
    /// run. A batch spooled to disk keeps the run (and boot) it was made in, so batches replayed
    /// after a restart or a reboot are told apart from the new run's.
    pub run_id: u64,
    /// Per-batch sequence number, +1 per batch from 0 for each run: a gap means loss.
    pub seq: u32,
    /// Wall clock when the batch was closed, Unix epoch milliseconds.
    pub unix_ms: u64,
    /// CLOCK_MONOTONIC when the batch was closed; event times are ages before this.
    pub mono_ns: u64,
    /// What was lost since the previous batch, by source (only non-zero counts).
    pub drops: Vec<DropCount>,
    pub events: Vec<Event>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DropCount {
    /// Where the records were lost: `ring:<kind>` (a full kernel ring buffer), `queue` (the
    /// RAM queue over its cap with no spool to take the overflow), `spool` (the spool over its
    /// cap), `spool:corrupt` (a spooled record that failed its checksum), `encoding` (a batch
    /// that could not be encoded), `shutdown` (undelivered at exit with no spool).
    pub source: Name,
    /// Kernel records (events) lost.
    pub count: u64,
}

/// Who did it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Task {
    pub pid: u32,
    pub tgid: u32,
    pub comm: Comm,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "bounded, inline strings keep the type no_std-decodable without an allocator"
)]
pub enum Event {
    Bind(Bind),
    Exec(Exec),
    Exit(Exit),
    OomKill(OomKill),
    /// TCP flows over one interval.
    Tcp(TcpSummary),
    /// Page-cache writers and block I/O over one interval.
    Storage(StorageSummary),
}

impl Event {
    /// The task the event is about; summaries are about many (none here).
    pub fn task(&self) -> Option<&Task> {
        match self {
            Self::Bind(e) => Some(&e.task),
            Self::Exec(e) => Some(&e.task),
            Self::Exit(e) => Some(&e.task),
            Self::OomKill(e) => Some(&e.task),
            Self::Tcp(_) | Self::Storage(_) => None,
        }
    }

    /// Microseconds between the event (a summary's end) and the batch's `mono_ns`.
    pub fn age_us(&self) -> u64 {
        match self {
            Self::Bind(e) => e.age_us,
            Self::Exec(e) => e.age_us,
            Self::Exit(e) => e.age_us,
            Self::OomKill(e) => e.age_us,
            Self::Tcp(e) => e.age_us,
            Self::Storage(e) => e.age_us,
        }
    }

    /// Sets `age_us`.
    pub fn set_age_us(&mut self, age_us: u64) {
        match self {
            Self::Bind(e) => e.age_us = age_us,
            Self::Exec(e) => e.age_us = age_us,
            Self::Exit(e) => e.age_us = age_us,
            Self::OomKill(e) => e.age_us = age_us,
            Self::Tcp(e) => e.age_us = age_us,
            Self::Storage(e) => e.age_us = age_us,
        }
    }
}

/// A bind() call and its result.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Bind {
    pub age_us: u64,
    pub task: Task,
    pub fd: i32,
    /// 0, or the negative errno bind() returned.
    pub ret: i32,
    pub addr: SockAddr,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "bounded, inline strings keep the type no_std-decodable without an allocator"
)]
pub enum SockAddr {
    V4 {
        ip: [u8; 4],
        port: u16,
    },
    V6 {
        ip: [u8; 16],
        port: u16,
        scope_id: u32,
    },
    Unix {
        path: PathStr,
    },
    /// Another address family (netlink, packet, ...), by number.
    Other {
        family: u16,
    },
    /// The address could not be read from the caller's memory.
    Unreadable,
}

/// A successful exec.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exec {
    pub age_us: u64,
    pub task: Task,
    /// 0 when unknown (the process is gone before its parent could be looked up).
    pub ppid: u32,
    pub filename: PathStr,
    /// The filename was cut to fit.
    pub truncated: bool,
}

/// A process ended.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    pub age_us: u64,
    pub task: Task,
    pub ppid: u32,
    pub how: ExitHow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ExitHow {
    /// exit()/exit_group() with this status.
    Code(i32),
    /// Killed by this signal (a crash: SIGSEGV 11, SIGABRT 6, ...; or SIGKILL 9).
    Signal(u32),
    /// Ended without either being seen (e.g. the agent started mid-exit).
    Unknown,
}
