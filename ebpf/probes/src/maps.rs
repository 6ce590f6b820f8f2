//! Maps, the read-only offsets global, and the helpers every probe uses to read tracepoint
//! fields, fill record headers and count what it loses. The rings and the `reserve`/`submit`
//! pair that writes records to them are the transport's (`out_ringbuf` or, with the `perf`
//! feature, `out_perf`), re-exported here so the probes do not depend on which.

use aya_ebpf::{
    Global,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray},
    programs::TracePointContext,
};
use firmware_agent_common::{
    BlockKey, BlockStart, COMM_LEN, COUNTER_SLOTS, DiskStats, EventHeader, ExitInfo, Field,
    PendingBind, Record, Ring, SockInfo, SockOwner, TracepointOffsets, WriteKey, WriteStat,
};

use crate::ProbeError;
#[cfg(feature = "perf")]
pub use crate::out_perf::{reserve, submit};
#[cfg(not(feature = "perf"))]
pub use crate::out_ringbuf::{reserve, submit};

/// Set by the loader from tracefs `format` files.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<TracepointOffsets> = Global::new(TracepointOffsets::UNKNOWN);

/// CLOCK_MONOTONIC ns of each published ring's last forced wake-up, by `Ring` index (see
/// `firmware_agent_common::WAKE_AFTER_NS`); the reader reads it to know how long it may sleep.
/// Written by the ring-buffer transport only (a perf buffer cannot be woken on demand).
#[map]
pub static WAKES: Array<u64> = Array::with_max_entries(Ring::ALL.len() as u32, 0);

/// Per-CPU counters: records lost to a full ring by kind, then failures by program and reason
/// (slots from `firmware_agent_common::{Kind, Program}`).
#[map]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// bind() entries waiting for their sys_exit_bind, by pid_tgid.
#[map]
pub static PENDING_BIND: LruHashMap<u64, PendingBind> = LruHashMap::with_max_entries(4096, 0);

/// Parent tgid of each process forked since the probes loaded, by child tgid (processes only:
/// threads are never recorded).
#[map]
pub static PARENTS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(16384, 0);

/// The last signal sent to each task (by thread id) that the kernel queued.
#[map]
pub static SENT_SIGNALS: LruHashMap<u32, u32> = LruHashMap::with_max_entries(4096, 0);

/// How each process is ending (exit code or fatal signal), by tgid.
#[map]
pub static EXITING: LruHashMap<u32, ExitInfo> = LruHashMap::with_max_entries(4096, 0);

/// Open TCP sockets seen opening since the probes loaded, by `struct sock` address. A plain
/// hash: when full, new sockets are not tracked and `MapFull` is counted.
#[map]
pub static SOCKS: HashMap<u64, SockInfo> = HashMap::with_max_entries(8192, 0);

/// Owner of each listening port.
#[map]
pub static LISTENERS: LruHashMap<u32, SockOwner> = LruHashMap::with_max_entries(1024, 0);

/// The socket of a tcp_sendmsg/tcp_recvmsg in progress (kprobe path), by pid_tgid.
#[map]
pub static PENDING_SK: LruHashMap<u64, u64> = LruHashMap::with_max_entries(4096, 0);

/// Page-cache bytes written per process and filesystem device.
#[map]
pub static WRITES: HashMap<WriteKey, WriteStat> = HashMap::with_max_entries(4096, 0);

/// Block requests in flight: issue time, size and operation.
#[map]
pub static BLOCK_STARTS: LruHashMap<BlockKey, BlockStart> = LruHashMap::with_max_entries(8192, 0);

/// Per-disk request counts, bytes and latency histogram.
#[map]
pub static DISKS: HashMap<u32, DiskStats> = HashMap::with_max_entries(64, 0);

#[inline(always)]
pub fn offsets() -> TracepointOffsets {
    OFFSETS.load()
}

/// Reads a tracepoint field at the offset the loader found, as the type its slot declares.
#[inline(always)]
pub fn read<T>(ctx: &TracePointContext, field: Field<T>) -> Result<T, ProbeError> {
    // SAFETY: the offset and size come from this tracepoint's format file (checked against
    // `T` by the loader); the read goes through the checked helper.
    unsafe { ctx.read_at::<T>(field.offset as usize) }.map_err(|_| ProbeError::Helper)
}

/// Adds one to counter `slot` of this CPU.
#[inline(always)]
pub fn bump(slot: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, only this CPU writes it while this program runs.
        unsafe { *counter += 1 };
    }
}

/// Fills the header `record` starts with for the current task, with `T`'s kind.
///
/// # Safety
/// `record` must be valid for writes; every `Record` starts with an `EventHeader` (asserted in
/// firmware-agent-common).
#[inline(always)]
pub unsafe fn fill_header<T: Record>(record: *mut T, flags: u32) {
    let h = record.cast::<EventHeader>();
    let pid_tgid = bpf_get_current_pid_tgid();
    // SAFETY: the caller's guarantee; the header is at offset 0.
    unsafe {
        (*h).kind = T::KIND as u32;
        (*h).flags = flags;
        // bpf_ktime_get_ns has no preconditions.
        (*h).ts_ns = bpf_ktime_get_ns();
        (*h).pid = pid_tgid as u32;
        (*h).tgid = (pid_tgid >> 32) as u32;
        // Straight into the record (the helper zero-fills it on failure).
        generated::bpf_get_current_comm((*h).comm.as_mut_ptr().cast(), COMM_LEN as u32);
    }
}

/// The current thread group id.
#[inline(always)]
pub fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

/// Adds `n` to `*dst` atomically (other CPUs may update the same map value).
///
/// # Safety
/// `dst` must point into a map value valid during this program run.
#[inline(always)]
pub unsafe fn atomic_add<T: Copy>(dst: *mut T, n: T) {
    use core::intrinsics::{AtomicOrdering, atomic_xadd};
    // SAFETY: the caller's guarantee.
    unsafe { atomic_xadd::<T, T, { AtomicOrdering::Relaxed }>(dst, n) };
}
