//! Listening-socket watch: bind() via syscalls:sys_enter_bind / sys_exit_bind.
//! Entry copies the caller's sockaddr (user memory is only safely readable there); exit adds
//! the result and writes one `BindEvent` to its ring.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_buf},
    macros::tracepoint,
    programs::TracePointContext,
};
use firmware_agent_common::{BindEvent, FLAG_ADDR_UNREADABLE, PendingBind, Program, SOCKADDR_LEN};

use crate::{
    ProbeError, ProbeResult, finish,
    maps::{PENDING_BIND, fill_header, offsets, read, reserve, submit},
};

#[tracepoint]
pub fn bind_enter(ctx: TracePointContext) -> u32 {
    finish(Program::BindEnter, try_bind_enter(&ctx))
}

fn try_bind_enter(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    let fd = read(ctx, off.bind_fd)?;
    let uaddr = read(ctx, off.bind_addr)?;
    let addrlen = read(ctx, off.bind_addrlen)?;
    let mut pending = PendingBind {
        fd: fd as i32,
        addrlen: addrlen as u32,
        flags: 0,
        _pad: 0,
        addr: [0; SOCKADDR_LEN],
    };
    // The whole sockaddr_un if readable; a shorter sockaddr can end a mapping, so fall back to
    // sockaddr_in6, then sockaddr_in. Sizes stay constants for the verifier.
    // SAFETY: the helper checks the user pointer; a fault is an error, not a crash.
    let src = uaddr as *const u8;
    if unsafe { bpf_probe_read_user_buf(src, &mut pending.addr) }.is_err() {
        pending.addr = [0; SOCKADDR_LEN];
        // SAFETY: as above.
        if unsafe { bpf_probe_read_user_buf(src, &mut pending.addr[..28]) }.is_err() {
            pending.addr = [0; SOCKADDR_LEN];
            // SAFETY: as above.
            if unsafe { bpf_probe_read_user_buf(src, &mut pending.addr[..16]) }.is_err() {
                pending.flags |= FLAG_ADDR_UNREADABLE;
            }
        }
    }
    PENDING_BIND.insert(&bpf_get_current_pid_tgid(), &pending, 0)?;
    Ok(())
}

#[tracepoint]
pub fn bind_exit(ctx: TracePointContext) -> u32 {
    finish(Program::BindExit, try_bind_exit(&ctx))
}

fn try_bind_exit(ctx: &TracePointContext) -> ProbeResult {
    let key = bpf_get_current_pid_tgid();
    let Some(pending) = PENDING_BIND.get_ptr(&key) else {
        return Err(ProbeError::Ignored);
    };
    // The record is filled straight from the map value, which is removed only afterwards:
    // the sockaddr is copied once (map -> ring), not into a stack copy first.
    let filled = fill_bind(ctx, pending);
    let _ = PENDING_BIND.remove(&key);
    filled
}

#[inline(always)]
fn fill_bind(ctx: &TracePointContext, pending: *const PendingBind) -> ProbeResult {
    let ret = read(ctx, offsets().bind_ret)?;
    let mut entry = reserve::<BindEvent>()?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size; `pending`
    // is this thread's map value, valid during this program run (removed only after this).
    unsafe {
        fill_header(ev, (*pending).flags);
        (*ev).ret = ret as i32;
        (*ev).fd = (*pending).fd;
        (*ev).addrlen = (*pending).addrlen;
        (*ev)._pad = 0;
        core::ptr::copy_nonoverlapping(
            (*pending).addr.as_ptr(),
            (*ev).addr.as_mut_ptr(),
            SOCKADDR_LEN,
        );
    }
    submit(ctx, entry)
}
