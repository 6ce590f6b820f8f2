//! The probe-family contract shared by the probes and the agent: record kinds, ring buffers,
//! programs and the families they belong to, and the slots of the per-CPU counters.
//!
//! Every list here is a `#[repr(u32)]` enum with an `ALL` table and exhaustive `match`es, so
//! adding a family is one variant per enum, and anything that forgets it (the decoder, the
//! program catalogue, a ring's config key) fails to build. The agent's unit tests check the
//! built object against these lists (every program present with the right type, every map).

/// `EventHeader::kind`: what a ring buffer record is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// [`crate::BindEvent`].
    Bind = 1,
    /// [`crate::ExecEvent`].
    Exec = 2,
    /// [`crate::ExitEvent`].
    Exit = 3,
    /// [`crate::OomKillEvent`].
    OomKill = 4,
    /// [`crate::TcpCloseEvent`].
    TcpClose = 5,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Self::Bind,
        Self::Exec,
        Self::Exit,
        Self::OomKill,
        Self::TcpClose,
    ];

    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Bind),
            2 => Some(Self::Exec),
            3 => Some(Self::Exit),
            4 => Some(Self::OomKill),
            5 => Some(Self::TcpClose),
            _ => None,
        }
    }

    /// Short name; `ring:<name>` is the drop source of records of this kind.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Exec => "exec",
            Self::Exit => "exit",
            Self::OomKill => "oom_kill",
            Self::TcpClose => "tcp_close",
        }
    }

    /// The drop source of records of this kind lost to a full ring.
    pub const fn drop_source(self) -> &'static str {
        match self {
            Self::Bind => "ring:bind",
            Self::Exec => "ring:exec",
            Self::Exit => "ring:exit",
            Self::OomKill => "ring:oom_kill",
            Self::TcpClose => "ring:tcp_close",
        }
    }

    /// The ring buffer records of this kind are written to.
    pub const fn ring(self) -> Ring {
        match self {
            Self::Bind => Ring::Watch,
            Self::Exec | Self::Exit | Self::OomKill => Ring::Proc,
            Self::TcpClose => Ring::Net,
        }
    }

    /// Index in `COUNTERS` of the records lost because the ring was full.
    pub const fn drop_slot(self) -> u32 {
        self as u32 - 1
    }
}

/// Number of per-kind drop counters at the start of `COUNTERS`.
pub const DROP_SLOTS: u32 = Kind::ALL.len() as u32;

/// The ring buffers in the object.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ring {
    /// bind() events.
    Watch = 0,
    /// exec, exit and OOM-kill events.
    Proc = 1,
    /// TCP connection closes (read by the TCP summariser, not published one by one).
    Net = 2,
}

impl Ring {
    pub const ALL: [Ring; 3] = [Self::Watch, Self::Proc, Self::Net];

    /// The map's name in the object.
    pub const fn map_name(self) -> &'static str {
        match self {
            Self::Watch => "WATCH_EVENTS",
            Self::Proc => "PROC_EVENTS",
            Self::Net => "NET_EVENTS",
        }
    }

    /// The config key of its requested size in bytes.
    pub const fn config_key(self) -> &'static str {
        match self {
            Self::Watch => "ring_buffers.watch_events",
            Self::Proc => "ring_buffers.proc_events",
            Self::Net => "ring_buffers.net_events",
        }
    }

    /// The drop source of records the reader learns were lost without the probes having
    /// counted them by kind (perf buffers on kernels before 5.5, whose output helper does not
    /// report a full buffer): the kind's own source when the ring carries one kind, else the
    /// ring's.
    pub const fn lost_source(self) -> &'static str {
        match self {
            Self::Watch => Kind::Bind.drop_source(),
            Self::Proc => "ring:proc_events",
            Self::Net => Kind::TcpClose.drop_source(),
        }
    }

    /// True when every record is published as a wire event by the generic reader; false when
    /// a summariser owns the ring.
    pub const fn published(self) -> bool {
        match self {
            Self::Watch | Self::Proc => true,
            Self::Net => false,
        }
    }
}

/// How the records of every ring reach user space. One object is built per transport (the
/// probes crate's `perf` feature selects the output path), so an object never holds the other
/// transport's maps; the ring map names, record layouts and drop slots are the same in both.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// `BPF_MAP_TYPE_RINGBUF` (kernel 5.8+): one buffer shared by all CPUs, sized in bytes.
    RingBuf = 0,
    /// `BPF_MAP_TYPE_PERF_EVENT_ARRAY` (any kernel the agent supports): one buffer per CPU,
    /// sized in pages; records are built in a per-CPU scratch map and copied out.
    Perf = 1,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Self::RingBuf, Self::Perf];

    /// The name in config (`probes.transport`), logs and the birth message.
    pub const fn name(self) -> &'static str {
        match self {
            Self::RingBuf => "ringbuf",
            Self::Perf => "perf",
        }
    }
}

/// Name of the perf object's per-CPU scratch map (one `[u64; MAX_RECORD_BYTES / 8]` slot),
/// where a record is built before `bpf_perf_event_output` copies it out.
pub const SCRATCH_MAP: &str = "SCRATCH";

/// Probe families: what an operator turns on or off as a whole (`probes.disabled`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Bind = 0,
    Lifecycle = 1,
    Oom = 2,
    Tcp = 3,
    Storage = 4,
}

impl Family {
    pub const ALL: [Family; 5] = [
        Self::Bind,
        Self::Lifecycle,
        Self::Oom,
        Self::Tcp,
        Self::Storage,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Self::Bind => "bind",
            Self::Lifecycle => "lifecycle",
            Self::Oom => "oom",
            Self::Tcp => "tcp",
            Self::Storage => "storage",
        }
    }
}

/// Every BPF program in the object; the name is the program's (function's) name in the ELF.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Program {
    Fork = 0,
    BindEnter,
    BindExit,
    Exec,
    ExitGroup,
    SignalGenerate,
    SignalDeliver,
    Exit,
    OomMarkVictim,
    TcpState,
    TcpRetransmit,
    TcpSendLength,
    TcpRecvLength,
    TcpSendmsgFexit,
    TcpRecvmsgFexit,
    TcpSendmsgKprobe,
    TcpSendmsgKretprobe,
    TcpRecvmsgKprobe,
    TcpRecvmsgKretprobe,
    Ext4DaWriteEnd,
    Ext4WriteEnd,
    Ext4JournalledWriteEnd,
    BlockRqIssue,
    BlockRqComplete,
}

impl Program {
    pub const ALL: [Program; 24] = [
        Self::Fork,
        Self::BindEnter,
        Self::BindExit,
        Self::Exec,
        Self::ExitGroup,
        Self::SignalGenerate,
        Self::SignalDeliver,
        Self::Exit,
        Self::OomMarkVictim,
        Self::TcpState,
        Self::TcpRetransmit,
        Self::TcpSendLength,
        Self::TcpRecvLength,
        Self::TcpSendmsgFexit,
        Self::TcpRecvmsgFexit,
        Self::TcpSendmsgKprobe,
        Self::TcpSendmsgKretprobe,
        Self::TcpRecvmsgKprobe,
        Self::TcpRecvmsgKretprobe,
        Self::Ext4DaWriteEnd,
        Self::Ext4WriteEnd,
        Self::Ext4JournalledWriteEnd,
        Self::BlockRqIssue,
        Self::BlockRqComplete,
    ];

    pub const COUNT: u32 = Self::ALL.len() as u32;

    pub const fn name(self) -> &'static str {
        match self {
            Self::Fork => "fork",
            Self::BindEnter => "bind_enter",
            Self::BindExit => "bind_exit",
            Self::Exec => "exec",
            Self::ExitGroup => "exit_group",
            Self::SignalGenerate => "signal_generate",
            Self::SignalDeliver => "signal_deliver",
            Self::Exit => "exit",
            Self::OomMarkVictim => "oom_mark_victim",
            Self::TcpState => "tcp_state",
            Self::TcpRetransmit => "tcp_retransmit",
            Self::TcpSendLength => "tcp_send_length",
            Self::TcpRecvLength => "tcp_recv_length",
            Self::TcpSendmsgFexit => "tcp_sendmsg_fexit",
            Self::TcpRecvmsgFexit => "tcp_recvmsg_fexit",
            Self::TcpSendmsgKprobe => "tcp_sendmsg_kprobe",
            Self::TcpSendmsgKretprobe => "tcp_sendmsg_kretprobe",
            Self::TcpRecvmsgKprobe => "tcp_recvmsg_kprobe",
            Self::TcpRecvmsgKretprobe => "tcp_recvmsg_kretprobe",
            Self::Ext4DaWriteEnd => "ext4_da_write_end",
            Self::Ext4WriteEnd => "ext4_write_end",
            Self::Ext4JournalledWriteEnd => "ext4_journalled_write_end",
            Self::BlockRqIssue => "block_rq_issue",
            Self::BlockRqComplete => "block_rq_complete",
        }
    }

    pub const fn family(self) -> Family {
        match self {
            Self::BindEnter | Self::BindExit => Family::Bind,
            Self::Fork
            | Self::Exec
            | Self::ExitGroup
            | Self::SignalGenerate
            | Self::SignalDeliver
            | Self::Exit => Family::Lifecycle,
            Self::OomMarkVictim => Family::Oom,
            Self::TcpState
            | Self::TcpRetransmit
            | Self::TcpSendLength
            | Self::TcpRecvLength
            | Self::TcpSendmsgFexit
            | Self::TcpRecvmsgFexit
            | Self::TcpSendmsgKprobe
            | Self::TcpSendmsgKretprobe
            | Self::TcpRecvmsgKprobe
            | Self::TcpRecvmsgKretprobe => Family::Tcp,
            Self::Ext4DaWriteEnd
            | Self::Ext4WriteEnd
            | Self::Ext4JournalledWriteEnd
            | Self::BlockRqIssue
            | Self::BlockRqComplete => Family::Storage,
        }
    }

    /// Index in `COUNTERS` of this program's count of `failure`.
    pub const fn error_slot(self, failure: Failure) -> u32 {
        DROP_SLOTS + self as u32 * Failure::ALL.len() as u32 + failure as u32
    }
}

/// Why a probe hit was lost (counted per program in `COUNTERS`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Failure {
    /// A helper failed: an unreadable field or pointer, a map operation that failed.
    Helper = 0,
    /// A hash map had no room for a new entry.
    MapFull = 1,
    /// The ring buffer had no room for the record.
    RingFull = 2,
}

impl Failure {
    pub const ALL: [Failure; 3] = [Self::Helper, Self::MapFull, Self::RingFull];
}

/// Name of the per-CPU `u64` array of counters: `DROP_SLOTS` drops by kind, then
/// `Failure::ALL.len()` failures for each program.
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Number of slots in `COUNTERS`.
pub const COUNTER_SLOTS: u32 = DROP_SLOTS + Program::COUNT * Failure::ALL.len() as u32;

/// Wake-up policy of the published rings (`Ring::published`): a record is submitted without
/// waking the reader, unless the ring then holds a quarter of its size (`WAKE_FILL_SHIFT`)
/// or `WAKE_AFTER_NS` passed since the ring's last wake-up. Under load the reader wakes once per
/// quarter ring or per interval instead of once per record (each wake-up costs the traced task
/// an interrupt and the reader a scheduler round trip); an idle reader still wakes on the first
/// record. The time of each forced wake-up is kept in `map_names::WAKES` so the reader knows
/// how long records may sit unannounced, and sleeps without a timeout only past that.
pub const WAKE_AFTER_NS: u64 = 20_000_000;
/// See [`WAKE_AFTER_NS`]: wake when the unread data reaches ring size >> this.
pub const WAKE_FILL_SHIFT: u32 = 2;

/// Names of the maps user space reads besides the rings and `COUNTERS` (the BPF side declares
/// them under these names; the agent's tests check each one's key and value sizes).
pub mod map_names {
    /// `u32` (`Ring` index) -> `u64`: CLOCK_MONOTONIC ns of the ring's last forced wake-up.
    pub const WAKES: &str = "WAKES";
    /// `u64` (struct sock address) -> `SockInfo`.
    pub const SOCKS: &str = "SOCKS";
    /// `WriteKey` -> `WriteStat`.
    pub const WRITES: &str = "WRITES";
    /// `u32` (device) -> `DiskStats`.
    pub const DISKS: &str = "DISKS";
    /// `u32` (child tgid) -> `u32` (parent tgid).
    pub const PARENTS: &str = "PARENTS";
}

/// A record written to a ring buffer: its kind, and so its ring and drop slot.
pub trait Record: Copy + 'static {
    const KIND: Kind;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_list_every_variant_in_order() {
        for (i, k) in Kind::ALL.iter().enumerate() {
            assert_eq!(Kind::from_u32(*k as u32), Some(*k));
            assert_eq!(k.drop_slot(), i as u32);
        }
        assert_eq!(Kind::from_u32(0), None);
        for k in Kind::ALL {
            assert_eq!(k.drop_source().strip_prefix("ring:"), Some(k.name()));
        }
        for (i, p) in Program::ALL.iter().enumerate() {
            assert_eq!(*p as usize, i);
        }
        for (i, r) in Ring::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        for (i, t) in Transport::ALL.iter().enumerate() {
            assert_eq!(*t as usize, i);
        }
        for (i, f) in Family::ALL.iter().enumerate() {
            assert_eq!(*f as usize, i);
        }
        for r in Ring::ALL {
            let kinds: [Kind; 5] = Kind::ALL;
            let mut own = kinds.iter().filter(|k| k.ring() == r);
            match (own.next(), own.next()) {
                (Some(k), None) => assert_eq!(r.lost_source(), k.drop_source(), "{r:?}"),
                _ => assert!(kinds.iter().all(|k| k.drop_source() != r.lost_source())),
            }
        }
        let last = Program::ALL[Program::ALL.len() - 1];
        assert_eq!(last.error_slot(Failure::RingFull) + 1, COUNTER_SLOTS);
    }
}
