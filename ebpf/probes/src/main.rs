//! The agent's eBPF probes: tracepoint programs only (no BTF, no CO-RE, no kprobes), so they
//! load on kernels such as the stock Raspberry Pi 5 one. Field offsets come from user space
//! (see `firmware_agent_common::TracepointOffsets`). One module per hook family.
#![no_std]
#![no_main]

mod bind;
mod lifecycle;
mod maps;

/// Why a probe gave up on one hit; the program returns 0 either way (tracepoints ignore it).
#[derive(Clone, Copy)]
pub(crate) enum ProbeError {
    /// A helper failed (bad pointer, missing map slot, ...).
    Helper,
    /// Nothing to do for this hit (not a process leader, no pending entry, ...).
    Ignored,
    /// The ring buffer was full: counted in `DROPS`.
    Full,
}

impl From<i32> for ProbeError {
    fn from(_: i32) -> Self {
        Self::Helper
    }
}

impl From<i64> for ProbeError {
    fn from(_: i64) -> Self {
        Self::Helper
    }
}

pub(crate) type ProbeResult = Result<(), ProbeError>;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
