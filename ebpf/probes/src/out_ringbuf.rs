//! The ring-buffer transport (kernel 5.8+, the default object): one `BPF_MAP_TYPE_RINGBUF` per
//! `Ring`, records reserved and filled in place, submitted under the wake-up policy of
//! `firmware_agent_common::WAKE_AFTER_NS`. A failed reserve is a drop of the record's kind.

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, BPF_RB_RING_SIZE},
    macros::map,
    maps::{RingBuf, ring_buf::RingBufEntry},
};
use firmware_agent_common::{EventHeader, Record, Ring, WAKE_AFTER_NS, WAKE_FILL_SHIFT};

use crate::{
    ProbeError,
    maps::{WAKES, bump},
};

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

/// Submits a filled record (`_ctx` is the perf transport's; the signature is shared). Published
/// rings wake their reader only when the ring is a quarter full or the last wake-up is
/// `WAKE_AFTER_NS` old; other rings keep the kernel's default (wake a reader that has caught
/// up). Never fails: the record is already in the ring.
#[inline(always)]
pub fn submit<T: Record, C: EbpfContext>(
    _ctx: &C,
    mut entry: RingBufEntry<T>,
) -> Result<(), ProbeError> {
    let kind = T::KIND.ring();
    if !kind.published() {
        entry.submit(0);
        return Ok(());
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
    Ok(())
}
