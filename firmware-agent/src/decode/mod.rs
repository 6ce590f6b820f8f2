//! Kernel record -> wire event: the one place that knows both shapes.

mod oom;

pub use oom::{OomLookup, System};

use edge_wire::{Bind, Comm, Event, Exec, Exit, ExitHow, PathStr, SockAddr, Task, bounded};
use firmware_agent_common::{
    BindEvent, EventHeader, ExecEvent, ExitEvent, FLAG_ADDR_UNREADABLE, FLAG_EXIT_CODE,
    FLAG_EXIT_SIGNAL, FLAG_PPID_KNOWN, FLAG_TRUNCATED, Kind, OomKillEvent, SOCKADDR_LEN,
    read_record,
};

const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is too short for its kind {kind}")]
    Short { kind: u32, len: usize },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u32 },
    #[error("record kind {kind:?} is summarised, not published one by one")]
    Summarised { kind: Kind },
}

/// Decodes one ring buffer record. `now_ns` is CLOCK_MONOTONIC at decode time (ages are
/// fixed later against the batch's clock); `lookup_ppid` finds parents the probe did not see.
pub fn decode(
    bytes: &[u8],
    lookup_ppid: impl Fn(u32) -> Option<u32>,
) -> Result<(u64, Event), DecodeError> {
    decode_with(bytes, lookup_ppid, &System)
}

/// `decode`, with the OOM lookups given (tests).
pub fn decode_with(
    bytes: &[u8],
    lookup_ppid: impl Fn(u32) -> Option<u32>,
    oom_lookup: &impl OomLookup,
) -> Result<(u64, Event), DecodeError> {
    let header: EventHeader = read_record(bytes).ok_or(DecodeError::Short {
        kind: 0,
        len: bytes.len(),
    })?;
    let short = || DecodeError::Short {
        kind: header.kind,
        len: bytes.len(),
    };
    let task = Task {
        pid: header.pid,
        tgid: header.tgid,
        comm: comm(&header.comm),
    };
    let ppid = |known: u32| {
        if header.flags & FLAG_PPID_KNOWN != 0 {
            known
        } else {
            lookup_ppid(header.tgid).unwrap_or(0)
        }
    };
    let Some(kind) = Kind::from_u32(header.kind) else {
        return Err(DecodeError::UnknownKind { kind: header.kind });
    };
    let event = match kind {
        Kind::Bind => {
            let r: BindEvent = read_record(bytes).ok_or_else(short)?;
            let addr = if r.header.flags & FLAG_ADDR_UNREADABLE != 0 {
                SockAddr::Unreadable
            } else {
                sockaddr(&r.addr, r.addrlen)
            };
            Event::Bind(Bind {
                age_us: 0,
                task,
                fd: r.fd,
                ret: r.ret,
                addr,
            })
        }
        Kind::Exec => {
            let r: ExecEvent = read_record(bytes).ok_or_else(short)?;
            let len = (r.filename_len as usize).min(r.filename.len());
            let (filename, cut) = text::<256>(&r.filename[..len]);
            Event::Exec(Exec {
                age_us: 0,
                task,
                ppid: ppid(r.ppid),
                filename,
                truncated: cut || r.header.flags & FLAG_TRUNCATED != 0,
            })
        }
        Kind::Exit => {
            let r: ExitEvent = read_record(bytes).ok_or_else(short)?;
            let how = if r.header.flags & FLAG_EXIT_SIGNAL != 0 {
                ExitHow::Signal(r.signal)
            } else if r.header.flags & FLAG_EXIT_CODE != 0 {
                ExitHow::Code(r.exit_code)
            } else {
                ExitHow::Unknown
            };
            // The process is gone: /proc cannot help with its parent.
            let ppid = if r.header.flags & FLAG_PPID_KNOWN != 0 {
                r.ppid
            } else {
                0
            };
            Event::Exit(Exit {
                age_us: 0,
                task,
                ppid,
                how,
            })
        }
        Kind::OomKill => {
            let r: OomKillEvent = read_record(bytes).ok_or_else(short)?;
            Event::OomKill(oom::oom_kill(&header, &r, oom_lookup))
        }
        Kind::TcpClose => return Err(DecodeError::Summarised { kind }),
    };
    Ok((header.ts_ns, event))
}

/// A kernel `comm` (NUL-padded) as a wire string.
pub fn comm_of(raw: &[u8]) -> Comm {
    comm(raw)
}

fn comm(raw: &[u8]) -> Comm {
    text::<16>(raw).0
}

/// Bytes up to the first NUL, as UTF-8 (lossy), cut to N. Returns whether it was cut.
fn text<const N: usize>(raw: &[u8]) -> (heapless::String<N>, bool) {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let s = String::from_utf8_lossy(&raw[..end]);
    let out = bounded::<N>(&s);
    let cut = out.len() < s.len();
    (out, cut)
}

/// Parses the copied `struct sockaddr`.
fn sockaddr(raw: &[u8; SOCKADDR_LEN], addrlen: u32) -> SockAddr {
    let family = u16::from_ne_bytes([raw[0], raw[1]]);
    let port = u16::from_be_bytes([raw[2], raw[3]]);
    match family {
        AF_INET => SockAddr::V4 {
            ip: [raw[4], raw[5], raw[6], raw[7]],
            port,
        },
        AF_INET6 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&raw[8..24]);
            let scope_id = u32::from_ne_bytes([raw[24], raw[25], raw[26], raw[27]]);
            SockAddr::V6 { ip, port, scope_id }
        }
        AF_UNIX => {
            // sun_path; abstract sockets start with NUL: shown with a leading '@'.
            let len = (addrlen as usize).saturating_sub(2).min(raw.len() - 2);
            let path = &raw[2..2 + len];
            let shown: PathStr = match path.split_first() {
                Some((0, rest)) => bounded(&format!("@{}", text::<255>(rest).0)),
                _ => text::<256>(path).0,
            };
            SockAddr::Unix { path: shown }
        }
        family => SockAddr::Other { family },
    }
}

#[cfg(test)]
mod tests;
