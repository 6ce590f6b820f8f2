//! Kernel event records: one header shared by all, then one body per event kind, and the
//! values the lifecycle and bind probes keep in maps between hooks.

use crate::{Kind, Record};

/// Length of a task's `comm`, as in the kernel's TASK_COMM_LEN.
pub const COMM_LEN: usize = 16;
/// Bytes of the exec'd filename kept (the rest is cut, and `FLAG_TRUNCATED` set).
pub const FILENAME_LEN: usize = 256;
/// Bytes of the `struct sockaddr` copied from the bind() caller: a whole `sockaddr_un` (110),
/// rounded up to keep records 8-byte aligned; `sockaddr_in6` needs 28.
pub const SOCKADDR_LEN: usize = 112;

/// Header flag: a string field was cut to fit its buffer.
pub const FLAG_TRUNCATED: u32 = 1 << 0;
/// Header flag: the bind() address could not be read from user memory.
pub const FLAG_ADDR_UNREADABLE: u32 = 1 << 1;
/// Header flag: the exit record carries an exit code from exit()/exit_group().
pub const FLAG_EXIT_CODE: u32 = 1 << 2;
/// Header flag: the exit record carries the fatal signal that killed the process.
pub const FLAG_EXIT_SIGNAL: u32 = 1 << 3;
/// Header flag: the parent was recorded at fork by the probe (else user space looks it up).
pub const FLAG_PPID_KNOWN: u32 = 1 << 4;

/// Starts every record, so a reader can dispatch on `kind` before knowing the body.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct EventHeader {
    /// A [`Kind`], as its `u32` (any bit pattern must be a valid header).
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// Thread id.
    pub pid: u32,
    /// Process id (thread group id).
    pub tgid: u32,
    /// The task's command name, NUL-padded.
    pub comm: [u8; COMM_LEN],
}

/// One bind() call and its result (sys_enter_bind paired with sys_exit_bind).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct BindEvent {
    pub header: EventHeader,
    /// The syscall's return value: 0, or a negative errno.
    pub ret: i32,
    pub fd: i32,
    /// `addrlen` as the caller passed it.
    pub addrlen: u32,
    pub _pad: u32,
    /// The first `SOCKADDR_LEN` bytes of the caller's `struct sockaddr`.
    #[cfg_attr(feature = "user", serde(with = "crate::user::byte_array"))]
    pub addr: [u8; SOCKADDR_LEN],
}

/// A successful execve (sched:sched_process_exec).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct ExecEvent {
    pub header: EventHeader,
    /// Parent tgid when `FLAG_PPID_KNOWN`, else 0.
    pub ppid: u32,
    /// Bytes used in `filename`, without the NUL.
    pub filename_len: u32,
    #[cfg_attr(feature = "user", serde(with = "crate::user::byte_array"))]
    pub filename: [u8; FILENAME_LEN],
}

/// A process (thread group leader) ended (sched:sched_process_exit).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct ExitEvent {
    pub header: EventHeader,
    /// Parent tgid when `FLAG_PPID_KNOWN`, else 0.
    pub ppid: u32,
    /// Exit status passed to exit()/exit_group(), when `FLAG_EXIT_CODE`.
    pub exit_code: i32,
    /// The fatal signal, when `FLAG_EXIT_SIGNAL`.
    pub signal: u32,
    pub _pad: u32,
}

/// What the lifecycle probes remember about a process until it exits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitInfo {
    /// `FLAG_EXIT_CODE` or `FLAG_EXIT_SIGNAL`: whichever came last wins.
    pub flags: u32,
    pub exit_code: i32,
    pub signal: u32,
    pub _pad: u32,
}

/// A bind() seen on entry, waiting for its result.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingBind {
    pub fd: i32,
    pub addrlen: u32,
    pub flags: u32,
    pub _pad: u32,
    pub addr: [u8; SOCKADDR_LEN],
}

impl Default for ExecEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            ppid: 0,
            filename_len: 0,
            filename: [0; FILENAME_LEN],
        }
    }
}

impl Default for BindEvent {
    fn default() -> Self {
        Self {
            header: EventHeader::default(),
            ret: 0,
            fd: 0,
            addrlen: 0,
            _pad: 0,
            addr: [0; SOCKADDR_LEN],
        }
    }
}

impl Record for BindEvent {
    const KIND: Kind = Kind::Bind;
}
impl Record for ExecEvent {
    const KIND: Kind = Kind::Exec;
}
impl Record for ExitEvent {
    const KIND: Kind = Kind::Exit;
}

/// The largest record any ring carries: the size of the perf object's scratch slot.
pub const MAX_RECORD_BYTES: usize = {
    let sizes = [
        core::mem::size_of::<BindEvent>(),
        core::mem::size_of::<ExecEvent>(),
        core::mem::size_of::<ExitEvent>(),
        core::mem::size_of::<crate::OomKillEvent>(),
        core::mem::size_of::<crate::TcpCloseEvent>(),
    ];
    let mut max = 0;
    let mut i = 0;
    while i < sizes.len() {
        if sizes[i] > max {
            max = sizes[i];
        }
        i += 1;
    }
    max
};

// Layout is a contract with the BPF side: any change here must be deliberate.
const _: () = {
    assert!(core::mem::size_of::<EventHeader>() == 40);
    assert!(core::mem::size_of::<BindEvent>() == 168);
    assert!(core::mem::size_of::<ExecEvent>() == 304);
    assert!(core::mem::size_of::<ExitEvent>() == 56);
    assert!(core::mem::size_of::<ExitInfo>() == 16);
    assert!(core::mem::size_of::<PendingBind>() == 128);
    assert!(MAX_RECORD_BYTES == 304 && MAX_RECORD_BYTES.is_multiple_of(8));
    // Every record starts with its header (the probes fill it through a header pointer).
    assert!(core::mem::offset_of!(BindEvent, header) == 0);
    assert!(core::mem::offset_of!(ExecEvent, header) == 0);
    assert!(core::mem::offset_of!(ExitEvent, header) == 0);
};
