//! Tracepoint field offsets, read by user space from tracefs `format` files at start-up and
//! handed to the probes as one read-only global, so one object works on every kernel version
//! and architecture without BTF.

/// Name of the global the probes read their offsets from.
pub const OFFSETS_GLOBAL: &str = "OFFSETS";

/// Byte offsets of the fields each probe reads from its tracepoint's raw record.
/// A zero means "not known": the program using it is not attached.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "user", derive(serde::Serialize, serde::Deserialize))]
pub struct TracepointOffsets {
    /// syscalls:sys_enter_bind `fd`.
    pub bind_fd: u32,
    /// syscalls:sys_enter_bind `umyaddr`.
    pub bind_addr: u32,
    /// syscalls:sys_enter_bind `addrlen`.
    pub bind_addrlen: u32,
    /// syscalls:sys_exit_bind `ret`.
    pub bind_ret: u32,
    /// sched:sched_process_exec `filename` (a `__data_loc` word).
    pub exec_filename: u32,
    /// syscalls:sys_enter_exit_group `error_code`.
    pub exit_group_code: u32,
    /// signal:signal_deliver `sig`.
    pub signal_sig: u32,
    /// signal:signal_deliver `sa_handler`.
    pub signal_handler: u32,
    /// sched:sched_process_fork `child_pid`.
    pub fork_child_pid: u32,
    pub _pad: u32,
}
