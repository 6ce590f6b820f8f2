//! Records and map values of the OOM, TCP and storage families. Same rules as `records`:
//! `#[repr(C)]`, explicit padding, ring records start with the [`EventHeader`].

use crate::{COMM_LEN, EventHeader, Kind, Record};

/// OOM header flag: `total_vm_kib` .. `pgtables_kib`, `uid` and `oom_score_adj` are filled
/// (kernels whose `oom:mark_victim` carries them).
pub const FLAG_OOM_DETAILS: u32 = 1 << 5;
/// OOM header flag: `victim_comm` came from the tracepoint.
pub const FLAG_OOM_COMM: u32 = 1 << 6;

/// A task chosen and killed by the OOM killer (oom:mark_victim). The header is the task that
/// ran the kill (whose allocation failed): for a memory cgroup OOM, a task of that cgroup, often
/// the victim itself.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct OomKillEvent {
    pub header: EventHeader,
    /// The victim's thread id.
    pub victim_pid: u32,
    pub uid: u32,
    pub total_vm_kib: u64,
    pub anon_rss_kib: u64,
    pub file_rss_kib: u64,
    pub shmem_rss_kib: u64,
    pub pgtables_kib: u64,
    /// cgroup v2 id (kernfs inode) of the task that ran the kill.
    pub cgroup_id: u64,
    pub oom_score_adj: i32,
    pub _pad: u32,
    pub victim_comm: [u8; COMM_LEN],
}

impl Record for OomKillEvent {
    const KIND: Kind = Kind::OomKill;
}

/// `SockInfo::flags`: the socket was opened by connect() (else accepted from a listener).
pub const SOCK_OUTBOUND: u32 = 1 << 0;
/// `SockInfo::flags`: the connection reached ESTABLISHED.
pub const SOCK_ESTABLISHED: u32 = 1 << 1;
/// `SockInfo::flags`: `tgid` and `comm` are known.
pub const SOCK_OWNER_KNOWN: u32 = 1 << 2;
/// `SockInfo::flags`: the connection reached CLOSE. Data may still be queued for the process
/// to read, so the socket stays in `SOCKS` (counting those reads) until the agent forgets it.
pub const SOCK_CLOSED: u32 = 1 << 3;

/// What the TCP probes know about one socket, from its open to its close (map `SOCKS`, keyed
/// by the kernel's `struct sock` address). Addresses are in network byte order; IPv4 ones use
/// the first 4 bytes. Ports are in host order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct SockInfo {
    /// When the connection was opened (SYN sent, or accepted), CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    /// When it reached CLOSE (0 while open).
    pub end_ns: u64,
    /// Bytes tcp_sendmsg() took and tcp_recvmsg() returned for this socket.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub tgid: u32,
    pub retransmits: u32,
    /// `SOCK_*` bits.
    pub flags: u32,
    /// AF_INET or AF_INET6.
    pub family: u16,
    pub local_port: u16,
    pub remote_port: u16,
    pub _pad: [u16; 3],
    pub comm: [u8; COMM_LEN],
    pub local_addr: [u8; 16],
    pub remote_addr: [u8; 16],
}

/// A tracked TCP socket reached CLOSE: its last totals. The header's task is the socket's owner
/// (the close itself may run in softirq context).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct TcpCloseEvent {
    pub header: EventHeader,
    /// The `SOCKS` key the socket had.
    pub sk: u64,
    pub sock: SockInfo,
}

impl Record for TcpCloseEvent {
    const KIND: Kind = Kind::TcpClose;
}

/// A listening socket's owner (map `LISTENERS`, keyed by local port), so connections accepted
/// in softirq context are attributed to the process that listens.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockOwner {
    pub tgid: u32,
    pub _pad: u32,
    pub comm: [u8; COMM_LEN],
}

/// Key of `WRITES`: bytes a process wrote into the page cache of one filesystem's device.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WriteKey {
    pub tgid: u32,
    /// The filesystem's device, kernel encoding (major << 20 | minor).
    pub dev: u32,
}

/// Value of `WRITES`: totals since the probes loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteStat {
    pub bytes: u64,
    /// write_end calls (one per page-cache chunk written).
    pub chunks: u64,
    pub comm: [u8; COMM_LEN],
}

/// Block request operations, as indexes of `DiskStats` arrays.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOp {
    Read = 0,
    Write = 1,
    /// Flush, discard, ...
    Other = 2,
}

/// Log2 latency buckets per disk: bucket 0 holds 0-1 µs, bucket i (i >= 1) holds
/// [2^i, 2^(i+1)) µs, the last one everything from 2^(LATENCY_BUCKETS-1) µs (~8.4 s) up.
pub const LATENCY_BUCKETS: usize = 24;

/// The bucket of a latency in microseconds (loop-free, for the verifier).
#[inline(always)]
pub const fn latency_bucket(us: u64) -> usize {
    if us < 2 {
        return 0;
    }
    // Binary search for the highest set bit: plain shifts and compares, no loop.
    let (mut v, mut b) = (us, 0usize);
    if v >= 1 << 32 {
        v >>= 32;
        b += 32;
    }
    if v >= 1 << 16 {
        v >>= 16;
        b += 16;
    }
    if v >= 1 << 8 {
        v >>= 8;
        b += 8;
    }
    if v >= 1 << 4 {
        v >>= 4;
        b += 4;
    }
    if v >= 1 << 2 {
        v >>= 2;
        b += 2;
    }
    if v >= 1 << 1 {
        b += 1;
    }
    if b >= LATENCY_BUCKETS {
        LATENCY_BUCKETS - 1
    } else {
        b
    }
}

/// Key of `BLOCK_STARTS`: a request in flight.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockKey {
    pub dev: u32,
    pub _pad: u32,
    pub sector: u64,
}

/// Value of `BLOCK_STARTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockStart {
    pub ts_ns: u64,
    pub bytes: u32,
    /// A [`BlockOp`] as `u32`.
    pub op: u32,
}

/// Value of `DISKS` (keyed by device, kernel encoding): totals since the probes loaded.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskStats {
    /// Completed requests and their bytes, by [`BlockOp`].
    pub requests: [u64; 3],
    pub bytes: [u64; 3],
    /// Issue-to-complete latency of every completed request.
    pub latency: [u64; LATENCY_BUCKETS],
}

const _: () = {
    assert!(core::mem::size_of::<OomKillEvent>() == 120);
    assert!(core::mem::size_of::<SockInfo>() == 104);
    assert!(core::mem::size_of::<TcpCloseEvent>() == 152);
    assert!(core::mem::size_of::<SockOwner>() == 24);
    assert!(core::mem::size_of::<WriteKey>() == 8);
    assert!(core::mem::size_of::<WriteStat>() == 32);
    assert!(core::mem::size_of::<BlockKey>() == 16);
    assert!(core::mem::size_of::<BlockStart>() == 16);
    assert!(core::mem::size_of::<DiskStats>() == 8 * (6 + LATENCY_BUCKETS));
    assert!(core::mem::offset_of!(OomKillEvent, header) == 0);
    assert!(core::mem::offset_of!(TcpCloseEvent, header) == 0);
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_log2_and_capped() {
        for (us, b) in [
            (0, 0),
            (1, 0),
            (2, 1),
            (3, 1),
            (4, 2),
            (1023, 9),
            (1024, 10),
            (1 << 23, 23),
            (u64::MAX, 23),
        ] {
            assert_eq!(latency_bucket(us), b, "{us} µs");
        }
    }
}
