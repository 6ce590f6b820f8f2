//! TCP bytes per socket. Kernels 6.3+ have tracepoints for it (sock:sock_send_length and
//! sock_recv_length: socket, protocol, bytes moved); older ones carry it in no tracepoint, only
//! in what tcp_sendmsg() and tcp_recvmsg() return. So three ways, chosen by the agent at start-up,
//! all ending in the same `account`: the tracepoints; fexit on the functions (BTF kernels: the
//! socket is an argument, the result the return value); or kprobe + kretprobe (no BTF: the
//! entry remembers the socket by thread, the return adds the result). Only sockets tracked in
//! `SOCKS` (seen opening) are counted.

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid},
    macros::{fexit, kprobe, kretprobe, tracepoint},
    programs::{FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use firmware_agent_common::{Program, SOCK_OWNER_KNOWN};

use crate::{
    ProbeError, ProbeResult, finish,
    maps::{PENDING_SK, SOCKS, atomic_add, current_tgid, offsets, read},
};

const IPPROTO_TCP: u16 = 6;
/// recv flag: the data stays queued (read again later), so it is not counted now.
const MSG_PEEK: i32 = 2;

#[derive(Clone, Copy)]
enum Way {
    Sent,
    Received,
}

#[tracepoint]
pub fn tcp_send_length(ctx: TracePointContext) -> u32 {
    finish(Program::TcpSendLength, on_length(&ctx, Way::Sent))
}

#[tracepoint]
pub fn tcp_recv_length(ctx: TracePointContext) -> u32 {
    finish(Program::TcpRecvLength, on_length(&ctx, Way::Received))
}

#[inline(always)]
fn on_length(ctx: &TracePointContext, way: Way) -> ProbeResult {
    let off = offsets();
    if read(ctx, off.sock_len_protocol)? != IPPROTO_TCP {
        return Err(ProbeError::Ignored);
    }
    if matches!(way, Way::Received) && read(ctx, off.sock_len_flags)? & MSG_PEEK != 0 {
        return Err(ProbeError::Ignored);
    }
    account(
        read(ctx, off.sock_len_sk)?,
        way,
        read(ctx, off.sock_len_ret)?,
    )
}

#[fexit(function = "tcp_sendmsg")]
pub fn tcp_sendmsg_fexit(ctx: FExitContext) -> i32 {
    finish(Program::TcpSendmsgFexit, on_fexit(&ctx, Way::Sent)) as i32
}

#[fexit(function = "tcp_recvmsg")]
pub fn tcp_recvmsg_fexit(ctx: FExitContext) -> i32 {
    finish(Program::TcpRecvmsgFexit, on_fexit(&ctx, Way::Received)) as i32
}

#[inline(always)]
fn on_fexit(ctx: &FExitContext, way: Way) -> ProbeResult {
    // Both take the socket first and return an int: bytes moved, or a negative errno.
    let sk: u64 = ctx.arg(0);
    let ret: i32 = ctx.ret().map_err(|_| ProbeError::Helper)?;
    account(sk, way, ret)
}

#[kprobe]
pub fn tcp_sendmsg_kprobe(ctx: ProbeContext) -> u32 {
    finish(Program::TcpSendmsgKprobe, remember_sock(&ctx))
}

#[kretprobe]
pub fn tcp_sendmsg_kretprobe(ctx: RetProbeContext) -> u32 {
    finish(Program::TcpSendmsgKretprobe, on_return(&ctx, Way::Sent))
}

#[kprobe]
pub fn tcp_recvmsg_kprobe(ctx: ProbeContext) -> u32 {
    finish(Program::TcpRecvmsgKprobe, remember_sock(&ctx))
}

#[kretprobe]
pub fn tcp_recvmsg_kretprobe(ctx: RetProbeContext) -> u32 {
    finish(Program::TcpRecvmsgKretprobe, on_return(&ctx, Way::Received))
}

#[inline(always)]
fn remember_sock(ctx: &ProbeContext) -> ProbeResult {
    let sk: u64 = ctx.arg(0).ok_or(ProbeError::Helper)?;
    PENDING_SK.insert(&bpf_get_current_pid_tgid(), &sk, 0)?;
    Ok(())
}

#[inline(always)]
fn on_return(ctx: &RetProbeContext, way: Way) -> ProbeResult {
    let key = bpf_get_current_pid_tgid();
    let sk = match PENDING_SK.get_ptr(&key) {
        // SAFETY: map value pointer valid during this program run.
        Some(p) => unsafe { *p },
        None => return Err(ProbeError::Ignored),
    };
    let _ = PENDING_SK.remove(&key);
    let ret: i32 = ctx.ret();
    account(sk, way, ret)
}

/// Adds `ret` bytes (when positive) to a tracked socket; the first process to move bytes on a
/// socket whose owner is unknown (accepted on a port whose listener predates the probes)
/// becomes its owner.
#[inline(always)]
fn account(sk: u64, way: Way, ret: i32) -> ProbeResult {
    if ret <= 0 {
        return Err(ProbeError::Ignored);
    }
    let Some(p) = SOCKS.get_ptr_mut(&sk) else {
        return Err(ProbeError::Ignored);
    };
    // SAFETY: map value pointer valid during this program run.
    unsafe {
        let counter = match way {
            Way::Sent => &raw mut (*p).bytes_sent,
            Way::Received => &raw mut (*p).bytes_received,
        };
        atomic_add(counter, ret as u64);
        if (*p).flags & SOCK_OWNER_KNOWN == 0 {
            (*p).tgid = current_tgid();
            (*p).comm = bpf_get_current_comm().unwrap_or([0; 16]);
            (*p).flags |= SOCK_OWNER_KNOWN;
        }
    }
    Ok(())
}
