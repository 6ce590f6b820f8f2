//! TCP connections: sock:inet_sock_set_state (open, accept, close, with addresses and ports)
//! and tcp:tcp_retransmit_skb. Each socket seen opening is tracked in `SOCKS` until it closes;
//! its close is written to `NET_EVENTS` with the socket's totals, and the agent reads the
//! sockets from the map each interval. A socket reaches CLOSE while data may still wait to be
//! read (the peer's FIN after ours, a reset): it stays in the map marked closed, so those reads
//! count, until the agent forgets it. Listening ports remember their owner, so a connection
//! accepted in softirq context is attributed to the process that listens.

use aya_ebpf::{helpers::bpf_get_current_comm, macros::tracepoint, programs::TracePointContext};
use firmware_agent_common::{
    Program, SOCK_CLOSED, SOCK_ESTABLISHED, SOCK_OUTBOUND, SOCK_OWNER_KNOWN, SockInfo, SockOwner,
    TcpCloseEvent, TracepointOffsets,
};

use crate::{
    ProbeError, ProbeResult, finish,
    maps::{
        LISTENERS, SOCKS, atomic_add, current_tgid, fill_header, offsets, read, reserve, submit,
    },
};

const IPPROTO_TCP: u16 = 6;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const TCP_ESTABLISHED: i32 = 1;
const TCP_SYN_SENT: i32 = 2;
const TCP_SYN_RECV: i32 = 3;
const TCP_CLOSE: i32 = 7;
const TCP_LISTEN: i32 = 10;

#[tracepoint]
pub fn tcp_state(ctx: TracePointContext) -> u32 {
    finish(Program::TcpState, try_tcp_state(&ctx))
}

fn try_tcp_state(ctx: &TracePointContext) -> ProbeResult {
    let off = offsets();
    if read(ctx, off.sock_protocol)? != IPPROTO_TCP {
        return Err(ProbeError::Ignored);
    }
    let sk = read(ctx, off.sock_skaddr)?;
    let old = read(ctx, off.sock_oldstate)?;
    let new = read(ctx, off.sock_newstate)?;
    match (old, new) {
        (_, TCP_LISTEN) => {
            let port = u32::from(read(ctx, off.sock_sport)?);
            let owner = SockOwner {
                tgid: current_tgid(),
                _pad: 0,
                comm: bpf_get_current_comm().unwrap_or([0; 16]),
            };
            LISTENERS.insert(&port, &owner, 0)?;
            Ok(())
        }
        (TCP_LISTEN, TCP_CLOSE) => {
            let port = u32::from(read(ctx, off.sock_sport)?);
            let _ = LISTENERS.remove(&port);
            Ok(())
        }
        // connect(): runs in the connecting task.
        (_, TCP_SYN_SENT) => {
            let mut info = sock_info(ctx, &off)?;
            info.flags = SOCK_OUTBOUND | SOCK_OWNER_KNOWN;
            info.tgid = current_tgid();
            info.comm = bpf_get_current_comm().unwrap_or([0; 16]);
            SOCKS.insert(&sk, &info, 0)?;
            Ok(())
        }
        (TCP_SYN_SENT, TCP_ESTABLISHED) => match SOCKS.get_ptr_mut(&sk) {
            // SAFETY: map value pointer valid during this program run.
            Some(p) => {
                unsafe { (*p).flags |= SOCK_ESTABLISHED };
                Ok(())
            }
            None => Err(ProbeError::Ignored),
        },
        // A connection accepted by a listener: softirq context, so the owner is the listener's.
        (TCP_SYN_RECV, TCP_ESTABLISHED) => {
            let mut info = sock_info(ctx, &off)?;
            info.flags = SOCK_ESTABLISHED;
            if let Some(owner) = LISTENERS.get_ptr(&u32::from(info.local_port)) {
                // SAFETY: map value pointer valid during this program run.
                let owner = unsafe { *owner };
                info.tgid = owner.tgid;
                info.comm = owner.comm;
                info.flags |= SOCK_OWNER_KNOWN;
            }
            SOCKS.insert(&sk, &info, 0)?;
            Ok(())
        }
        (_, TCP_CLOSE) => close(ctx, sk),
        _ => Err(ProbeError::Ignored),
    }
}

/// The socket's addresses and ports from the tracepoint, opened now.
#[inline(always)]
fn sock_info(ctx: &TracePointContext, off: &TracepointOffsets) -> Result<SockInfo, ProbeError> {
    let family = read(ctx, off.sock_family)?;
    let mut info = SockInfo {
        // SAFETY: helper without preconditions.
        start_ns: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
        family,
        local_port: read(ctx, off.sock_sport)?,
        remote_port: read(ctx, off.sock_dport)?,
        ..Default::default()
    };
    match family {
        AF_INET => {
            let (l, r) = (read(ctx, off.sock_saddr)?, read(ctx, off.sock_daddr)?);
            info.local_addr[..4].copy_from_slice(&l);
            info.remote_addr[..4].copy_from_slice(&r);
        }
        AF_INET6 => {
            info.local_addr = read(ctx, off.sock_saddr_v6)?;
            info.remote_addr = read(ctx, off.sock_daddr_v6)?;
        }
        _ => return Err(ProbeError::Ignored),
    }
    Ok(info)
}

/// A tracked socket reached CLOSE: its totals go to the ring, and it stays in `SOCKS` marked
/// closed: data queued before the close (after the peer's FIN while ours was out, or before a
/// reset) can still be read, and those reads count. The agent removes it once it has seen it
/// closed for a while; a new socket at the same address (only possible once the process has
/// released this one) replaces it.
#[inline(always)]
fn close(ctx: &TracePointContext, sk: u64) -> ProbeResult {
    let Some(p) = SOCKS.get_ptr_mut(&sk) else {
        return Err(ProbeError::Ignored);
    };
    // SAFETY: map value pointer valid during this program run.
    let info = unsafe {
        (*p).end_ns = aya_ebpf::helpers::bpf_ktime_get_ns();
        (*p).flags |= SOCK_CLOSED;
        *p
    };
    let mut entry = reserve::<TcpCloseEvent>()?;
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` points at a reserved, exclusively owned record of the right size.
    unsafe {
        fill_header(ev, 0);
        // The close may run in softirq or another task: the record names the owner.
        (*ev).header.pid = info.tgid;
        (*ev).header.tgid = info.tgid;
        (*ev).header.comm = info.comm;
        (*ev).sk = sk;
        (*ev).sock = info;
    }
    submit(ctx, entry)
}

#[tracepoint]
pub fn tcp_retransmit(ctx: TracePointContext) -> u32 {
    finish(Program::TcpRetransmit, try_tcp_retransmit(&ctx))
}

fn try_tcp_retransmit(ctx: &TracePointContext) -> ProbeResult {
    let sk = read(ctx, offsets().retransmit_skaddr)?;
    let Some(p) = SOCKS.get_ptr_mut(&sk) else {
        return Err(ProbeError::Ignored);
    };
    // SAFETY: map value pointer valid during this program run.
    unsafe { atomic_add(&raw mut (*p).retransmits, 1) };
    Ok(())
}
