//! The agent's eBPF probes: tracepoints with field offsets from user space (no BTF, no CO-RE;
//! see `firmware_agent_common::TracepointOffsets`), plus the TCP byte counters, which no
//! tracepoint carries: fentry/fexit where the kernel has BTF, kprobes where it does not (the
//! agent picks at start-up). One module per hook family; every program is a thin wrapper that
//! counts its `try_` function's failures by reason in `COUNTERS`. Records leave through the
//! transport the object is built for: ring buffers by default, perf buffers with the `perf`
//! feature (`out_ringbuf`, `out_perf`; the agent embeds both objects and picks at start-up).
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so core's atomic types lack `fetch_add`; the
// intrinsic lowers to the BPF atomic add instruction (see `maps::atomic_add`).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod bind;
mod lifecycle;
mod maps;
mod oom;
#[cfg(feature = "perf")]
mod out_perf;
#[cfg(not(feature = "perf"))]
mod out_ringbuf;
mod storage;
mod tcp;
mod tcp_bytes;

use firmware_agent_common::{Failure, Program};

/// Why a probe gave up on one hit; the program returns 0 either way.
#[derive(Clone, Copy)]
pub(crate) enum ProbeError {
    /// A helper failed (unreadable field or pointer, map update refused, ...).
    Helper,
    /// A hash map had no room for a new entry.
    MapFull,
    /// The ring buffer was full (also counted as a drop of the record's kind).
    RingFull,
    /// Nothing to do for this hit (a thread, not a process; no pending entry; ...): not counted.
    Ignored,
}

/// `-E2BIG`: what a full hash map answers to an insert.
const E2BIG: i64 = 7;

impl From<i32> for ProbeError {
    fn from(e: i32) -> Self {
        Self::from(i64::from(e))
    }
}

impl From<i64> for ProbeError {
    fn from(e: i64) -> Self {
        if e == -E2BIG {
            Self::MapFull
        } else {
            Self::Helper
        }
    }
}

pub(crate) type ProbeResult = Result<(), ProbeError>;

/// Counts a failed hit of `program` by reason; the value every program returns.
#[inline(always)]
pub(crate) fn finish(program: Program, result: ProbeResult) -> u32 {
    let failure = match result {
        Ok(()) | Err(ProbeError::Ignored) => return 0,
        Err(ProbeError::Helper) => Failure::Helper,
        Err(ProbeError::MapFull) => Failure::MapFull,
        Err(ProbeError::RingFull) => Failure::RingFull,
    };
    maps::bump(program.error_slot(failure));
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
