//! The perf-buffer transport (the `perf` feature: kernels without ring buffers, before 5.8, or
//! forced by config): one `BPF_MAP_TYPE_PERF_EVENT_ARRAY` per `Ring`, under the same map names,
//! with one buffer per CPU opened by the agent. A record is built in this CPU's slot of the
//! `SCRATCH` per-CPU array (records are up to 304 bytes; the stack has 512) and copied out by
//! `bpf_perf_event_output`. The records' layout is the same as on the ring-buffer path.
//!
//! One scratch slot per CPU is enough: the kernel runs at most one tracepoint or kprobe program
//! per CPU at a time (`bpf_prog_active`), and every record is built and sent in one run.
//! A record the kernel could not fit is counted twice, like a failed reserve: as a drop of its
//! kind (kernels that return -ENOSPC from the helper, 5.5+), and as a failed hit of the program.
//! Older kernels report such losses only to the reader (PERF_RECORD_LOST), which the agent
//! counts against the ring.

use aya_ebpf::{
    EbpfContext,
    bindings::BPF_F_CURRENT_CPU,
    helpers::generated::bpf_perf_event_output,
    macros::map,
    maps::{PerCpuArray, PerfEventByteArray},
};
use firmware_agent_common::{MAX_RECORD_BYTES, Record, Ring};

use crate::{ProbeError, maps::bump};

// max_entries 0: the loader sets it to the number of possible CPUs.
/// bind() events.
#[map]
pub static WATCH_EVENTS: PerfEventByteArray = PerfEventByteArray::new(0);
/// exec, exit and OOM-kill events.
#[map]
pub static PROC_EVENTS: PerfEventByteArray = PerfEventByteArray::new(0);
/// TCP closes, for the agent's TCP summariser.
#[map]
pub static NET_EVENTS: PerfEventByteArray = PerfEventByteArray::new(0);

/// Where each CPU builds the record it is about to send (`SCRATCH_MAP`).
#[map]
pub static SCRATCH: PerCpuArray<[u64; MAX_RECORD_BYTES / 8]> = PerCpuArray::with_max_entries(1, 0);

#[inline(always)]
fn ring(ring: Ring) -> &'static PerfEventByteArray {
    match ring {
        Ring::Watch => &WATCH_EVENTS,
        Ring::Proc => &PROC_EVENTS,
        Ring::Net => &NET_EVENTS,
    }
}

/// A record being built in this CPU's scratch slot.
pub struct Slot<T> {
    ptr: *mut T,
}

impl<T> Slot<T> {
    #[inline(always)]
    pub fn as_mut_ptr(&mut self) -> *mut T {
        self.ptr
    }
}

/// Hands out this CPU's scratch slot for a `T` (the fields it does not set hold the previous
/// record's bytes: every probe writes each field of its record).
#[inline(always)]
pub fn reserve<T: Record>() -> Result<Slot<T>, ProbeError> {
    const { assert!(size_of::<T>() <= MAX_RECORD_BYTES && align_of::<T>() <= 8) };
    match SCRATCH.get_ptr_mut(0) {
        Some(p) => Ok(Slot { ptr: p.cast() }),
        None => Err(ProbeError::Helper),
    }
}

/// Sends the record to this CPU's buffer of its kind's ring. The reader is woken by the
/// buffer's watermark (set by the agent), not per record.
#[inline(always)]
pub fn submit<T: Record, C: EbpfContext>(ctx: &C, slot: Slot<T>) -> Result<(), ProbeError> {
    let map: *const PerfEventByteArray = ring(T::KIND.ring());
    // SAFETY: `map` is a map definition the loader relocates (the helper takes the map's
    // address, as aya's own `output` passes it); `slot.ptr` is a map value of at least
    // `size_of::<T>()` bytes, valid during this program run.
    let ret = unsafe {
        bpf_perf_event_output(
            ctx.as_ptr(),
            map.cast_mut().cast(),
            BPF_F_CURRENT_CPU,
            slot.ptr.cast(),
            size_of::<T>() as u64,
        )
    };
    if ret < 0 {
        bump(T::KIND.drop_slot());
        return Err(ProbeError::RingFull);
    }
    Ok(())
}
