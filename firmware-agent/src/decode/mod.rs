//! Kernel record -> wire event: the one place that knows both shapes.

use edge_wire::{Bind, Comm, Event, Exec, Exit, ExitHow, PathStr, SockAddr, Task, bounded};
use firmware_agent_common::{
    BindEvent, EventHeader, ExecEvent, ExitEvent, FLAG_ADDR_UNREADABLE, FLAG_EXIT_CODE,
    FLAG_EXIT_SIGNAL, FLAG_PPID_KNOWN, FLAG_TRUNCATED, Kind, SOCKADDR_LEN, read_record,
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
        Kind::OomKill | Kind::TcpClose => return Err(DecodeError::Summarised { kind }),
    };
    Ok((header.ts_ns, event))
}

/// Sets an event's age relative to the batch's monotonic clock.
pub fn set_age(event: &mut Event, ts_ns: u64, batch_mono_ns: u64) {
    event.set_age_us(batch_mono_ns.saturating_sub(ts_ns) / 1000);
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
mod tests {
    use firmware_agent_common::{COMM_LEN, FILENAME_LEN};

    use super::*;

    fn bytes<T: aya::Pod>(v: &T) -> Vec<u8> {
        // SAFETY: Pod records without padding.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
    }

    fn header(kind: Kind, flags: u32) -> EventHeader {
        let mut comm = [0u8; COMM_LEN];
        comm[..5].copy_from_slice(b"nginx");
        EventHeader {
            kind: kind as u32,
            flags,
            ts_ns: 5_000_000,
            pid: 101,
            tgid: 100,
            comm,
        }
    }

    #[test]
    fn bind_v4_and_v6() {
        let mut addr = [0u8; SOCKADDR_LEN];
        addr[..2].copy_from_slice(&AF_INET.to_ne_bytes());
        addr[2..4].copy_from_slice(&8080u16.to_be_bytes());
        addr[4..8].copy_from_slice(&[127, 0, 0, 1]);
        let rec = BindEvent {
            header: header(Kind::Bind, 0),
            ret: 0,
            fd: 3,
            addrlen: 16,
            addr,
            ..Default::default()
        };
        let (ts, ev) = decode(&bytes(&rec), |_| None).expect("decode");
        assert_eq!(ts, 5_000_000);
        let Event::Bind(b) = ev else {
            panic!("not a bind")
        };
        assert_eq!(
            b.addr,
            SockAddr::V4 {
                ip: [127, 0, 0, 1],
                port: 8080
            }
        );
        assert_eq!(b.task.comm.as_str(), "nginx");

        let mut addr = [0u8; SOCKADDR_LEN];
        addr[..2].copy_from_slice(&AF_INET6.to_ne_bytes());
        addr[2..4].copy_from_slice(&443u16.to_be_bytes());
        addr[23] = 1;
        let rec = BindEvent {
            header: header(Kind::Bind, 0),
            ret: -98,
            addrlen: 28,
            addr,
            ..Default::default()
        };
        let Event::Bind(b) = decode(&bytes(&rec), |_| None).expect("decode").1 else {
            panic!()
        };
        assert_eq!(b.ret, -98);
        assert!(matches!(b.addr, SockAddr::V6 { port: 443, ip, .. } if ip[15] == 1));
    }

    /// Decodes a bind of an AF_UNIX address whose `sun_path` bytes are `path`.
    fn unix_bind(path: &[u8], addrlen: u32) -> SockAddr {
        let mut addr = [0u8; SOCKADDR_LEN];
        addr[..2].copy_from_slice(&AF_UNIX.to_ne_bytes());
        addr[2..2 + path.len()].copy_from_slice(path);
        let rec = BindEvent {
            header: header(Kind::Bind, 0),
            addrlen,
            addr,
            ..Default::default()
        };
        let Event::Bind(b) = decode(&bytes(&rec), |_| None).expect("decode").1 else {
            panic!("not a bind")
        };
        b.addr
    }

    #[test]
    fn bind_unix_and_unreadable() {
        let abstract_name = unix_bind(b"\0sock1", 8);
        assert_eq!(
            abstract_name,
            SockAddr::Unix {
                path: bounded("@sock1")
            }
        );
        let rec = BindEvent {
            header: header(Kind::Bind, FLAG_ADDR_UNREADABLE),
            ..Default::default()
        };
        let Event::Bind(b) = decode(&bytes(&rec), |_| None).expect("decode").1 else {
            panic!()
        };
        assert_eq!(b.addr, SockAddr::Unreadable);
    }

    #[test]
    fn bind_unix_keeps_a_whole_sun_path() {
        let path = "/run/user/1000/some-daemon/a-socket-path-much-longer-than-28-bytes.sock";
        let got = unix_bind(path.as_bytes(), (2 + path.len() + 1) as u32);
        assert_eq!(
            got,
            SockAddr::Unix {
                path: bounded(path)
            }
        );
    }

    #[test]
    fn exec_uses_proc_when_parent_unknown() {
        let mut filename = [0u8; FILENAME_LEN];
        filename[..9].copy_from_slice(b"/bin/true");
        let rec = ExecEvent {
            header: header(Kind::Exec, 0),
            ppid: 0,
            filename_len: 9,
            filename,
        };
        let Event::Exec(e) = decode(&bytes(&rec), |pid| (pid == 100).then_some(1))
            .expect("decode")
            .1
        else {
            panic!()
        };
        assert_eq!(
            (e.ppid, e.filename.as_str(), e.truncated),
            (1, "/bin/true", false)
        );
        let rec = ExecEvent {
            header: header(Kind::Exec, FLAG_PPID_KNOWN | FLAG_TRUNCATED),
            ppid: 7,
            filename_len: 9,
            filename,
        };
        let Event::Exec(e) = decode(&bytes(&rec), |_| Some(1)).expect("decode").1 else {
            panic!()
        };
        assert_eq!((e.ppid, e.truncated), (7, true));
    }

    #[test]
    fn exit_code_signal_unknown() {
        for (flags, want) in [
            (FLAG_EXIT_CODE, ExitHow::Code(3)),
            (FLAG_EXIT_SIGNAL, ExitHow::Signal(11)),
            (0, ExitHow::Unknown),
        ] {
            let rec = ExitEvent {
                header: header(Kind::Exit, flags),
                exit_code: 3,
                signal: 11,
                ..Default::default()
            };
            let Event::Exit(e) = decode(&bytes(&rec), |_| None).expect("decode").1 else {
                panic!()
            };
            assert_eq!(e.how, want);
        }
    }

    #[test]
    fn short_and_unknown_records_are_errors() {
        let rec = ExecEvent {
            header: header(Kind::Exec, 0),
            ..Default::default()
        };
        assert!(matches!(
            decode(&bytes(&rec)[..100], |_| None),
            Err(DecodeError::Short { kind: 2, .. })
        ));
        assert!(matches!(
            decode(&[0u8; 8], |_| None),
            Err(DecodeError::Short { .. })
        ));
        let mut h = header(Kind::Bind, 0);
        h.kind = 99;
        assert_eq!(
            decode(&bytes(&h), |_| None).err(),
            Some(DecodeError::UnknownKind { kind: 99 })
        );
    }

    #[test]
    fn ages_are_relative_to_the_batch() {
        let rec = ExitEvent {
            header: header(Kind::Exit, 0),
            ..Default::default()
        };
        let (ts, mut ev) = decode(&bytes(&rec), |_| None).expect("decode");
        set_age(&mut ev, ts, ts + 2_500_000);
        assert_eq!(ev.age_us(), 2500);
    }
}
