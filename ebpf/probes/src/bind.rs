//! Listening-socket watch: bind() via syscalls:sys_enter_bind / sys_exit_bind.
//! Entry copies the caller's sockaddr (user memory is only safely readable there); exit adds
//! the result and writes one `BindEvent` to `WATCH_EVENTS`.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user_buf},
    macros::tracepoint,
    programs::TracePointContext,
};
use firmware_agent_common::{
    BindEvent, DROP_BIND, FLAG_ADDR_UNREADABLE, KIND_BIND, PendingBind, SOCKADDR_LEN,
};

use crate::{
    ProbeError, ProbeResult,
    maps::{PENDING_BIND, WATCH_EVENTS, count_drop, fill_header, offsets},
};

#[tracepoint]
pub fn bind_enter(ctx: TracePointContext) -> u32 {
    let _ = try_bind_enter(&ctx);
    0
}

fn try_bind_enter(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    // Syscall tracepoint args are stored as 64-bit words.
    // SAFETY: offsets come from this tracepoint's format file.
    let fd: u64 = unsafe { ctx.read_at(off.bind_fd as usize)? };
    let uaddr: u64 = unsafe { ctx.read_at(off.bind_addr as usize)? };
    let addrlen: u64 = unsafe { ctx.read_at(off.bind_addrlen as usize)? };
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
    let _ = try_bind_exit(&ctx);
    0
}

fn try_bind_exit(ctx: &TracePointContext) -> ProbeResult {
    let key = bpf_get_current_pid_tgid();
    let pending = match PENDING_BIND.get_ptr(&key) {
        // SAFETY: map value pointer valid during this program run.
        Some(p) => unsafe { *p },
        None => return Err(ProbeError::Ignored),
    };
    let _ = PENDING_BIND.remove(&key);
    // SAFETY: offset from this tracepoint's format file.
    let ret: i64 = unsafe { ctx.read_at(offsets().bind_ret as usize)? };
    let Some(mut entry) = WATCH_EVENTS.reserve::<BindEvent>(0) else {
        count_drop(DROP_BIND);
        return Err(ProbeError::Full);
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size.
    unsafe {
        fill_header(&mut (*ev).header, KIND_BIND, pending.flags);
        (*ev).ret = ret as i32;
        (*ev).fd = pending.fd;
        (*ev).addrlen = pending.addrlen;
        (*ev)._pad = 0;
        (*ev).addr = pending.addr;
    }
    entry.submit(0);
    Ok(())
}
