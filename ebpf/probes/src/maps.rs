//! Maps, the read-only offsets global, and the helpers every probe uses to read tracepoint
//! fields, write records to the right ring, and count what it loses.

use aya_ebpf::{
    Global,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, generated},
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf, ring_buf::RingBufEntry},
    programs::TracePointContext,
};
use firmware_agent_common::{
    BlockKey, BlockStart, COMM_LEN, COUNTER_SLOTS, DiskStats, EventHeader, ExitInfo, Field,
    PendingBind, Record, Ring, SockInfo, SockOwner, TracepointOffsets, WAKE_AFTER_NS,
    WAKE_FILL_SHIFT, WriteKey, WriteStat,
};

use crate::ProbeError;

/// Set by the loader from tracefs `format` files.
#[unsafe(no_mangle)]
pub static OFFSETS: Global<TracepointOffsets> = Global::new(TracepointOffsets::UNKNOWN);

// Ring buffer sizes are always set by the loader from the running kernel's page size; the ELF
// says 0 so a loader that forgot fails loudly instead of using a 4 KiB placeholder.
/// bind() events (named after the map that would not load on a 16 KiB-page Pi 5).
#[map]
pub static WATCH_EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);
/// exec, exit and OOM-kill events.
#[map]
pub static PROC_EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);
/// TCP closes, for the agent's TCP summariser.
#[map]
pub static NET_EVENTS: RingBuf = RingBuf::with_byte_size(0, 0);

/// CLOCK_MONOTONIC ns of each published ring's last forced wake-up, by `Ring` index (see
/// `firmware_agent_common::WAKE_AFTER_NS`); the reader reads it to know how long it may sleep.
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

#[inline(always)]
fn ring(ring: Ring) -> &'static RingBuf {
    match ring {
        Ring::Watch => &WATCH_EVENTS,
        Ring::Proc => &PROC_EVENTS,
        Ring::Net => &NET_EVENTS,
    }
}

/// Reserves a `T` in its kind's ring; a full ring is counted as a drop of that kind.
#[inline(always)]
pub fn reserve<T: Record>() -> Result<RingBufEntry<T>, ProbeError> {
    match ring(T::KIND.ring()).reserve::<T>(0) {
        Some(entry) => Ok(entry),
        None => {
            bump(T::KIND.drop_slot());
            Err(ProbeError::RingFull)
        }
    }
}

/// Submits a filled record. Published rings wake their reader only when the ring is a quarter
/// full or the last wake-up is `WAKE_AFTER_NS` old (`firmware_agent_common::WAKE_AFTER_NS`);
/// other rings keep the kernel's default (wake a reader that has caught up).
#[inline(always)]
pub fn submit<T: Record>(mut entry: RingBufEntry<T>) {
    let kind = T::KIND.ring();
    if !kind.published() {
        entry.submit(0);
        return;
    }
    // SAFETY: every `Record` starts with an `EventHeader`, filled by `fill_header` before this.
    let now = unsafe { (*entry.as_mut_ptr().cast::<EventHeader>()).ts_ns };
    let rb = ring(kind);
    let flags = match WAKES.get_ptr_mut(kind as u32) {
        // SAFETY: a map value, valid during this run. Another CPU may race this read-modify-
        // write: the worst case is one extra wake-up, or a later deadline by a few ns.
        Some(last) => unsafe {
            if now.wrapping_sub(*last) >= WAKE_AFTER_NS
                || rb.query(BPF_RB_AVAIL_DATA as u64)
                    >= rb.query(BPF_RB_RING_SIZE as u64) >> WAKE_FILL_SHIFT
            {
                *last = now;
                BPF_RB_FORCE_WAKEUP
            } else {
                BPF_RB_NO_WAKEUP
            }
        },
        None => 0,
    };
    entry.submit(flags as u64);
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
