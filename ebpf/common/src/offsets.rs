//! Tracepoint field offsets, read by user space from tracefs `format` files at start-up and
//! handed to the probes as one read-only global, so one object works on every kernel version
//! and architecture without BTF.
//!
//! Each slot is a [`Field<T>`]: the type the probe reads the field as is part of the slot, so
//! the size the agent checks against the `format` file is `size_of::<T>()` of that same type.

use core::marker::PhantomData;

/// Name of the global the probes read their offsets from.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";

/// Where a tracepoint field of type `T` sits in the raw record. Offset 0 means "not known"
/// (offset 0 is the common header, never a probe's field): the program does not run, or for an
/// optional field, goes without it.
#[repr(transparent)]
#[cfg_attr(
    feature = "user",
    derive(serde::Serialize, serde::Deserialize),
    serde(transparent)
)]
pub struct Field<T> {
    pub offset: u32,
    #[cfg_attr(feature = "user", serde(skip))]
    _type: PhantomData<T>,
}

impl<T> Field<T> {
    pub const UNKNOWN: Self = Self::at(0);
    /// Bytes the probe reads.
    pub const SIZE: u32 = core::mem::size_of::<T>() as u32;

    pub const fn at(offset: u32) -> Self {
        Self {
            offset,
            _type: PhantomData,
        }
    }

    pub const fn known(&self) -> bool {
        self.offset != 0
    }

    /// `Self::SIZE`, for a value at hand (lets a macro get the size from a slot's name).
    pub const fn size(&self) -> u32 {
        Self::SIZE
    }
}

impl<T> Clone for Field<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Field<T> {}
impl<T> PartialEq for Field<T> {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
    }
}
impl<T> Eq for Field<T> {}
impl<T> Default for Field<T> {
    fn default() -> Self {
        Self::UNKNOWN
    }
}
impl<T> core::fmt::Debug for Field<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.offset)
    }
}

/// A `__data_loc` word: low 16 bits the offset of the data in the record, high 16 its length.
pub type DataLoc = u32;

/// Byte offsets of the fields each probe reads from its tracepoint's raw record. Syscall
/// arguments are 64-bit words in every syscall tracepoint, whatever the C type.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct TracepointOffsets {
    /// syscalls:sys_enter_bind `fd`, `umyaddr`, `addrlen`.
    pub bind_fd: Field<u64>,
    pub bind_addr: Field<u64>,
    pub bind_addrlen: Field<u64>,
    /// syscalls:sys_exit_bind `ret`.
    pub bind_ret: Field<i64>,
    /// sched:sched_process_exec `filename`.
    pub exec_filename: Field<DataLoc>,
    /// syscalls:sys_enter_exit_group `error_code`.
    pub exit_group_code: Field<u64>,
    /// signal:signal_generate `sig`, `pid` (the target), `result`.
    pub generate_sig: Field<i32>,
    pub generate_pid: Field<i32>,
    pub generate_result: Field<i32>,
    /// signal:signal_deliver `sig`, `sa_handler`.
    pub signal_sig: Field<i32>,
    pub signal_handler: Field<u64>,
    /// task:task_newtask `pid`, `clone_flags`.
    pub fork_pid: Field<i32>,
    pub fork_clone_flags: Field<u64>,
    /// oom:mark_victim `pid`; the rest are optional (added in kernel 6.8-ish).
    pub oom_pid: Field<i32>,
    pub oom_comm: Field<DataLoc>,
    pub oom_total_vm: Field<u64>,
    pub oom_anon_rss: Field<u64>,
    pub oom_file_rss: Field<u64>,
    pub oom_shmem_rss: Field<u64>,
    pub oom_uid: Field<u32>,
    pub oom_pgtables: Field<u64>,
    pub oom_score_adj: Field<i16>,
    /// sock:inet_sock_set_state.
    pub sock_skaddr: Field<u64>,
    pub sock_oldstate: Field<i32>,
    pub sock_newstate: Field<i32>,
    pub sock_sport: Field<u16>,
    pub sock_dport: Field<u16>,
    pub sock_family: Field<u16>,
    pub sock_protocol: Field<u16>,
    pub sock_saddr: Field<[u8; 4]>,
    pub sock_daddr: Field<[u8; 4]>,
    pub sock_saddr_v6: Field<[u8; 16]>,
    pub sock_daddr_v6: Field<[u8; 16]>,
    /// tcp:tcp_retransmit_skb `skaddr`.
    pub retransmit_skaddr: Field<u64>,
    /// sock:sock_send_length / sock_recv_length (one layout; kernel 6.3+).
    pub sock_len_sk: Field<u64>,
    pub sock_len_protocol: Field<u16>,
    pub sock_len_ret: Field<i32>,
    pub sock_len_flags: Field<i32>,
    /// ext4:ext4_da_write_end / ext4_write_end / ext4_journalled_write_end (one layout).
    pub ext4_dev: Field<u32>,
    pub ext4_copied: Field<u32>,
    /// block:block_rq_issue / block_rq_complete `dev`, `sector` (one layout).
    pub block_dev: Field<u32>,
    pub block_sector: Field<u64>,
    /// block:block_rq_issue `bytes`, `rwbs`.
    pub block_bytes: Field<u32>,
    pub block_rwbs: Field<[u8; 8]>,
    pub _pad: u32,
}

impl TracepointOffsets {
    /// Every offset unknown (the value in the object before the loader fills it).
    pub const UNKNOWN: Self = Self {
        bind_fd: Field::UNKNOWN,
        bind_addr: Field::UNKNOWN,
        bind_addrlen: Field::UNKNOWN,
        bind_ret: Field::UNKNOWN,
        exec_filename: Field::UNKNOWN,
        exit_group_code: Field::UNKNOWN,
        generate_sig: Field::UNKNOWN,
        generate_pid: Field::UNKNOWN,
        generate_result: Field::UNKNOWN,
        signal_sig: Field::UNKNOWN,
        signal_handler: Field::UNKNOWN,
        fork_pid: Field::UNKNOWN,
        fork_clone_flags: Field::UNKNOWN,
        oom_pid: Field::UNKNOWN,
        oom_comm: Field::UNKNOWN,
        oom_total_vm: Field::UNKNOWN,
        oom_anon_rss: Field::UNKNOWN,
        oom_file_rss: Field::UNKNOWN,
        oom_shmem_rss: Field::UNKNOWN,
        oom_uid: Field::UNKNOWN,
        oom_pgtables: Field::UNKNOWN,
        oom_score_adj: Field::UNKNOWN,
        sock_skaddr: Field::UNKNOWN,
        sock_oldstate: Field::UNKNOWN,
        sock_newstate: Field::UNKNOWN,
        sock_sport: Field::UNKNOWN,
        sock_dport: Field::UNKNOWN,
        sock_family: Field::UNKNOWN,
        sock_protocol: Field::UNKNOWN,
        sock_saddr: Field::UNKNOWN,
        sock_daddr: Field::UNKNOWN,
        sock_saddr_v6: Field::UNKNOWN,
        sock_daddr_v6: Field::UNKNOWN,
        retransmit_skaddr: Field::UNKNOWN,
        sock_len_sk: Field::UNKNOWN,
        sock_len_protocol: Field::UNKNOWN,
        sock_len_ret: Field::UNKNOWN,
        sock_len_flags: Field::UNKNOWN,
        ext4_dev: Field::UNKNOWN,
        ext4_copied: Field::UNKNOWN,
        block_dev: Field::UNKNOWN,
        block_sector: Field::UNKNOWN,
        block_bytes: Field::UNKNOWN,
        block_rwbs: Field::UNKNOWN,
        _pad: 0,
    };
}
