//! Maps and the read-only offsets global shared by all probes.

use aya_ebpf::{
    Global,
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::map,
    maps::{LruHashMap, PerCpuArray, RingBuf},
};
use firmware_agent_common::{DROP_SLOTS, EventHeader, ExitInfo, PendingBind, TracepointOffsets};

/// Set by the loader from tracefs `format` files.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<TracepointOffsets> = Global::new(TracepointOffsets {
    bind_fd: 0,
    bind_addr: 0,
    bind_addrlen: 0,
    bind_ret: 0,
    exec_filename: 0,
    exit_group_code: 0,
    signal_sig: 0,
    signal_handler: 0,
    fork_child_pid: 0,
    _pad: 0,
});

// Ring buffer sizes are always set by the loader from the running kernel's page size; the ELF
// says 0 so a loader that forgot fails loudly instead of using a 4 KiB placeholder.
/// bind() events (named after the map that would not load on a 16 KiB-page Pi 5).
#[map]
pub static WATCH_EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);
/// exec and exit events.
#[map]
pub static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);

/// Per-CPU count of records that did not fit in their ring buffer, by `DROP_*` index.
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(DROP_SLOTS, 0);

/// bind() entries waiting for their sys_exit_bind, by pid_tgid.
#[map]
pub static PENDING_BIND: LruHashMap<u64, PendingBind> = LruHashMap::with_max_entries(4096, 0);

/// Parent tgid of each process forked since the probes loaded, by child tgid.
#[map]
pub static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(16384, 0);

/// How each process is ending (exit code or fatal signal), by tgid.
#[map]
pub static EXITING: LruHashMap<u32, ExitInfo> = LruHashMap::with_max_entries(4096, 0);

#[inline(always)]
pub fn offsets() -> TracepointOffsets {
    OFFSETS.load()
}

/// Counts one record lost because ring buffer `slot` was full.
#[inline(always)]
pub fn count_drop(slot: u32) {
    if let Some(counter) = DROPS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *counter += 1 };
    }
}

/// Fills the header every record starts with, for the current task.
#[inline(always)]
pub fn fill_header(h: &mut EventHeader, kind: u32, flags: u32) {
    let pid_tgid = bpf_get_current_pid_tgid();
    h.kind = kind;
    h.flags = flags;
    // SAFETY: helper without preconditions.
    h.ts_ns = unsafe { bpf_ktime_get_ns() };
    h.pid = pid_tgid as u32;
    h.tgid = (pid_tgid >> 32) as u32;
    h.comm = bpf_get_current_comm().unwrap_or([0; 16]);
}
