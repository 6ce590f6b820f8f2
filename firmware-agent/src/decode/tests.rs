//! Record decoding tests: binds (v4, v6, unix, unreadable), execs, exits, OOM kills, short
//! and unknown records.

use firmware_agent_common::{COMM_LEN, FILENAME_LEN, OomKillEvent};

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

struct FakeSystem;

impl OomLookup for FakeSystem {
    fn tgid(&self, pid: u32) -> Option<u32> {
        (pid == 300).then_some(299)
    }
    fn memcg(&self, pid: u32) -> Option<String> {
        (pid == 300).then(|| "/jobs/batch".to_owned())
    }
    fn memcg_by_v2_id(&self, id: u64) -> Option<String> {
        (id == 77).then(|| "/system.slice/app.service".to_owned())
    }
}

fn oom(rec: &OomKillEvent) -> edge_wire::OomKill {
    match decode_with(&bytes(rec), |_| None, &FakeSystem)
        .expect("decode")
        .1
    {
        Event::OomKill(e) => e,
        other => panic!("not an OOM kill: {other:?}"),
    }
}

#[test]
fn oom_kill_of_itself_with_details_and_v2_cgroup() {
    use firmware_agent_common::{FLAG_OOM_COMM, FLAG_OOM_DETAILS};
    let mut victim_comm = [0u8; COMM_LEN];
    victim_comm[..4].copy_from_slice(b"hogg");
    let rec = OomKillEvent {
        header: header(Kind::OomKill, FLAG_OOM_COMM | FLAG_OOM_DETAILS),
        victim_pid: 101,
        anon_rss_kib: 32512,
        cgroup_id: 77,
        oom_score_adj: -100,
        victim_comm,
        ..Default::default()
    };
    let e = oom(&rec);
    assert_eq!(
        (e.task.pid, e.task.tgid, e.task.comm.as_str()),
        (101, 100, "hogg")
    );
    assert_eq!(e.killed_by, None);
    let m = e.memory.expect("details");
    assert_eq!((m.anon_rss_kib, m.oom_score_adj), (32512, -100));
    assert_eq!(e.cgroup.as_deref(), Some("/system.slice/app.service"));
}

#[test]
fn oom_kill_by_another_task_on_an_old_kernel() {
    let rec = OomKillEvent {
        header: header(Kind::OomKill, 0),
        victim_pid: 300,
        cgroup_id: 77,
        ..Default::default()
    };
    let e = oom(&rec);
    assert_eq!(
        (e.task.pid, e.task.tgid, e.task.comm.as_str()),
        (300, 299, "")
    );
    let k = e.killed_by.expect("killer");
    assert_eq!((k.tgid, k.comm.as_str()), (100, "nginx"));
    assert_eq!(e.memory, None);
    assert_eq!(
        e.cgroup.as_deref(),
        Some("/jobs/batch"),
        "the victim's own memcg"
    );
}
