//! The OOM, TCP and storage families and the lifecycle fixes end to end on the real kernel: each
//! signal is caused here (an OOM kill in a memory cgroup, a loopback TCP transfer, a file write
//! with fsync, signal 64, threads), and asserted at a hub subscriber or in the kernel's maps.
//! Run as root (CI does). One test at a time: each loads probes that see the whole system.

mod common;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::Mutex,
    time::{Duration, Instant},
};

use common::*;
use serde_json::Value;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const CONFIG: &str =
    "[summaries]\ninterval_s = 1\n[metrics]\ninterval_s = 1\n[batch]\nmax_age_ms = 100\n";

struct Rig {
    _broker: PrivateBroker,
    hub: Hub,
    agent: Agent,
    device: String,
    _dir: tempfile::TempDir,
}

fn rig(name: &str, extra_config: &str) -> Rig {
    require_root();
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "agent.toml", &format!("{CONFIG}{extra_config}"));
    let device = format!("{name}-{}", std::process::id());
    let agent = Agent::start(&broker, &device, &cfg);
    hub.wait_for("the birth", |v| {
        v["type"] == "online" && v["device"] == device
    });
    Rig {
        _broker: broker,
        hub,
        agent,
        device,
        _dir: dir,
    }
}

impl Rig {
    fn birth(&mut self) -> Value {
        let device = self.device.clone();
        self.hub.wait_for("the birth", |v| {
            v["type"] == "online" && v["device"] == device
        })
    }

    fn probe(&mut self, name: &str) -> Value {
        self.birth()["body"]["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no probe {name}"))
    }

    fn assert_attached(&mut self, names: &[&str]) {
        for name in names {
            let p = self.probe(name);
            assert_eq!(p["state"], "Attached", "{p}; log:\n{}", self.agent.log());
        }
    }

    /// Waits until `done` holds over every event of this device (checked as records arrive).
    fn wait_events(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let device = self.device.clone();
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.hub.events(&device, |_| true);
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never arrived; agent log:\n{}\nhub:\n{}",
                self.agent.log(),
                self.hub.dump()
            );
            self.hub.settle(Duration::from_millis(200));
        }
    }
}

/// Signals whose default action ends the process, as the exit reports them: 64 (the last one,
/// once ignored by the probe) and 15; the kernel delivers both as SIGKILL to the group, the
/// signal as sent is what counts. 11 dumps core and is delivered as itself.
#[test]
fn fatal_signals_are_reported_as_sent_signal_64_included() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = rig("sig", "");
    r.assert_attached(&["signal_generate", "signal_deliver", "exit"]);
    use std::os::unix::process::ExitStatusExt as _;
    for sig in [64, 15, 11, 9] {
        let mut child = Command::new("/bin/sh")
            .args(["-c", &format!("kill -{sig} $$")])
            .spawn()
            .expect("sh");
        let pid = child.id();
        let status = child.wait().expect("wait");
        assert_eq!(status.signal(), Some(sig), "sh died of signal {sig}");
        r.wait_events(&format!("the exit by signal {sig}"), |evs| {
            evs.iter()
                .any(|e| e["Exit"]["task"]["tgid"] == pid && e["Exit"]["how"]["Signal"] == sig)
        });
    }
}

#[test]
fn threads_are_not_recorded_as_processes_in_the_parent_map() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    require_root();
    let loaded =
        firmware_agent::agent::load(&firmware_agent::config::Config::default()).expect("load");
    let mut ebpf = loaded.ebpf;
    let parents: aya::maps::HashMap<_, u32, u32> = ebpf
        .take_map(firmware_agent_common::map_names::PARENTS)
        .expect("PARENTS")
        .try_into()
        .expect("hash map");
    // 64 threads (each a clone with CLONE_THREAD) and one child process.
    let tids: Vec<u32> = (0..64)
        .map(|_| {
            std::thread::spawn(|| {
                // SAFETY: gettid has no preconditions.
                unsafe { libc::gettid() as u32 }
            })
            .join()
            .expect("thread")
        })
        .collect();
    let mut child = Command::new("/bin/sleep")
        .arg("0.2")
        .spawn()
        .expect("sleep");
    let child_pid = child.id();
    let me = std::process::id();
    assert_eq!(
        parents.get(&child_pid, 0).ok(),
        Some(me),
        "a new process is recorded with its parent"
    );
    let recorded: Vec<u32> = tids
        .iter()
        .copied()
        .filter(|t| parents.get(t, 0).is_ok())
        .collect();
    assert!(
        recorded.is_empty(),
        "threads recorded as processes: {recorded:?}"
    );
    let _ = child.wait();
}

/// Where this process's memory cgroup can get a child with a memory limit: (directory, the
/// limit file). cgroup v2 when its root offers the memory controller, else the v1 hierarchy.
fn memory_cgroup_for(name: &str) -> (PathBuf, &'static str, String) {
    let v2_root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|p| {
            std::fs::read_to_string(p.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        });
    if let Some(root) = v2_root {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create v2 cgroup");
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        return (dir, "memory.max", format!("/{name}"));
    }
    // v1: a child of our own memory cgroup (it inherits our limits).
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let rel = own
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctl, path) = (p.next()?, p.next()?, p.next()?);
            ctl.split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })
        .expect("no memory cgroup on v2 or v1: the OOM test needs one");
    let v1 = Path::new("/sys/fs/cgroup/memory");
    assert!(
        v1.is_dir(),
        "memory controller on v1 but not at {}",
        v1.display()
    );
    let path = format!("{}/{name}", rel.trim_end_matches('/'));
    let dir = v1.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).expect("create v1 memory cgroup");
    (dir, "memory.limit_in_bytes", path)
}

#[test]
fn an_oom_kill_in_a_memory_cgroup_reaches_the_hub() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = rig("oom", "");
    r.assert_attached(&["oom_mark_victim"]);
    let (dir, limit_file, cg_path) = memory_cgroup_for(&format!("fa-oom-{}", std::process::id()));
    std::fs::write(dir.join(limit_file), (32u64 << 20).to_string()).expect("set limit");
    // The child joins the cgroup, then `tail` keeps all of /dev/zero (one endless line).
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec tail /dev/zero",
        dir.display()
    );
    let mut child = Command::new("/bin/sh")
        .args(["-c", &script])
        .stderr(Stdio::null())
        .spawn()
        .expect("sh");
    let pid = child.id();
    let events = r.wait_events("the OOM kill", |evs| {
        evs.iter().any(|e| e["OomKill"]["task"]["pid"] == pid)
    });
    let status = child.wait().expect("wait");
    let _ = std::fs::remove_dir(&dir);
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(status.signal(), Some(9), "the child was SIGKILLed");
    let oom = events
        .iter()
        .find(|e| e["OomKill"]["task"]["pid"] == pid)
        .map(|e| &e["OomKill"])
        .expect("oom");
    assert_eq!(oom["task"]["comm"], "tail", "{oom}");
    assert_eq!(oom["task"]["tgid"], pid, "{oom}");
    assert_eq!(
        oom["killed_by"],
        Value::Null,
        "tail ran its own kill: {oom}"
    );
    let anon = oom["memory"]["anon_rss_kib"]
        .as_u64()
        .expect("memory figures");
    assert!(
        (16 << 10..=40 << 10).contains(&anon),
        "anon rss {anon} KiB near the 32 MiB limit"
    );
    // The cgroup is only reported when it is known for sure: then it must be ours.
    if !oom["cgroup"].is_null() {
        assert_eq!(oom["cgroup"], cg_path.as_str(), "{oom}");
    }
    // The exit says how: killed by SIGKILL.
    r.wait_events("the victim's exit", |evs| {
        evs.iter()
            .any(|e| e["Exit"]["task"]["tgid"] == pid && e["Exit"]["how"]["Signal"] == 9)
    });
    println!("FIGURES oom event: {oom}");
}

/// The kernel's own count of this socket's bytes: (acked by the peer, received).
fn tcp_info(s: &TcpStream) -> (u64, u64) {
    // SAFETY: a zeroed tcp_info is valid; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid fd, buffer and length.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    (info.tcpi_bytes_acked, info.tcpi_bytes_received)
}

/// Sums the counts of every flow matching `(direction, port)` of this process.
fn flow_totals(events: &[Value], me: u32, direction: &str, port: u16) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for f in events
        .iter()
        .filter_map(|e| e["Tcp"]["flows"].as_array())
        .flatten()
        .filter(|f| {
            f["task"]["tgid"] == me
                && f["direction"] == direction
                && f["port"] == port
                && f["peer"]["V4"] == serde_json::json!([127, 0, 0, 1])
        })
    {
        let c = &f["counts"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        t.0 += n("bytes_sent");
        t.1 += n("bytes_received");
        t.2 += n("opened");
        t.3 += n("closed");
    }
    t
}

#[test]
fn tcp_bytes_on_loopback_are_summarised_per_flow_within_the_kernel_accounting() {
    const UP: usize = 3_000_000;
    const DOWN: usize = 250_000;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = rig("tcp", "");
    r.assert_attached(&["tcp_state", "tcp_send", "tcp_recv", "tcp_retransmit"]);
    let method = r.probe("tcp_send")["method"].clone();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; UP];
        s.read_exact(&mut buf).expect("read up");
        s.write_all(&vec![7u8; DOWN]).expect("write down");
        s.flush().expect("flush");
        let mut end = [0u8; 1];
        // The client closes after reading everything.
        assert_eq!(s.read(&mut end).expect("eof"), 0);
        tcp_info(&s)
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(&vec![1u8; UP]).expect("write up");
    let mut back = vec![0u8; DOWN];
    c.read_exact(&mut back).expect("read down");
    let client_kernel = tcp_info(&c);
    drop(c);
    let server_kernel = server.join().expect("server");
    // The kernel counts the SYN (and a received FIN) as one sequence byte each.
    let near = |kernel: u64, bytes: usize| (bytes as u64..=bytes as u64 + 1).contains(&kernel);
    assert!(
        near(client_kernel.0, UP) && near(client_kernel.1, DOWN),
        "kernel, client: {client_kernel:?}"
    );
    assert!(
        near(server_kernel.0, DOWN) && near(server_kernel.1, UP),
        "kernel, server: {server_kernel:?}"
    );
    let me = std::process::id();
    let events = r.wait_events("both flows, closed, with every byte", |evs| {
        flow_totals(evs, me, "Outbound", port) == (UP as u64, DOWN as u64, 1, 1)
            && flow_totals(evs, me, "Inbound", port) == (DOWN as u64, UP as u64, 1, 1)
    });
    // Settle: nothing more may be added to these flows.
    r.hub.settle(Duration::from_secs(2));
    let events_after = r.hub.events(&r.device, |_| true);
    assert_eq!(
        flow_totals(&events_after, me, "Outbound", port),
        (UP as u64, DOWN as u64, 1, 1)
    );
    let n = events.iter().filter(|e| e.get("Tcp").is_some()).count();
    println!(
        "FIGURES tcp: method {method}, {n} summaries until both flows were complete; kernel (acked, received) client {client_kernel:?} server {server_kernel:?}, agent exact {UP}/{DOWN}"
    );
}

/// Whether `path` is on ext4 (the storage probes' write attribution is ext4's).
fn on_ext4(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a zeroed statfs is valid; statfs writes into it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and buffer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type == 0xEF53
}

#[test]
fn a_file_write_of_known_size_is_attributed_to_its_writer() {
    const BYTES: u64 = 1 << 20;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = rig("storage", "");
    r.assert_attached(&["ext4_da_write_end", "block_rq_issue", "block_rq_complete"]);
    // On the repository's filesystem, not /tmp (which may be tmpfs).
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    assert!(
        on_ext4(dir.path()),
        "{} is not on ext4; the write attribution test needs ext4",
        dir.path().display()
    );
    let file = dir.path().join("written.bin");
    let mut child = Command::new("dd")
        .args(["if=/dev/zero", "bs=65536", "count=16", "conv=fsync"])
        .arg(format!("of={}", file.display()))
        .stderr(Stdio::null())
        .spawn()
        .expect("dd");
    let pid = child.id();
    assert!(child.wait().expect("dd").success());
    assert_eq!(std::fs::metadata(&file).expect("file").len(), BYTES);
    let written = |evs: &[Value]| -> u64 {
        evs.iter()
            .filter_map(|e| e["Storage"]["writers"].as_array())
            .flatten()
            .filter(|w| w["task"]["tgid"] == pid)
            .filter_map(|w| w["bytes"].as_u64())
            .sum()
    };
    let disk_writes = |evs: &[Value]| -> u64 {
        evs.iter()
            .filter_map(|e| e["Storage"]["disks"].as_array())
            .flatten()
            .filter_map(|d| d["writes"].as_u64())
            .sum()
    };
    let events = r.wait_events("dd's bytes and the disk writes", |evs| {
        written(evs) >= BYTES && disk_writes(evs) > 0
    });
    r.hub.settle(Duration::from_secs(2));
    let all = r.hub.events(&r.device, |_| true);
    assert_eq!(written(&all), BYTES, "dd wrote exactly this much");
    let writer = events
        .iter()
        .filter_map(|e| e["Storage"]["writers"].as_array())
        .flatten()
        .find(|w| w["task"]["tgid"] == pid)
        .expect("writer");
    assert_eq!(writer["task"]["comm"], "dd");
    let hist: u64 = all
        .iter()
        .filter_map(|e| e["Storage"]["disks"].as_array())
        .flatten()
        .flat_map(|d| {
            d["latency"]["counts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|c| c.as_u64())
        .sum();
    assert!(hist > 0, "the latency histograms count the requests");
    println!("FIGURES storage: writer {writer}");
}

#[test]
fn a_full_ring_is_counted_as_probe_errors_in_metrics() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = rig("perr", "[ring_buffers]\nwatch_events = 4096\n");
    r.assert_attached(&["bind_exit"]);
    // Stop the agent's readers, overflow the one-page bind ring, let them go.
    let agent_pid = r.agent.pid().to_string();
    assert!(
        Command::new("kill")
            .args(["-STOP", &agent_pid])
            .status()
            .expect("kill")
            .success()
    );
    for _ in 0..500 {
        drop(TcpListener::bind("127.0.0.1:0").expect("bind"));
    }
    assert!(
        Command::new("kill")
            .args(["-CONT", &agent_pid])
            .status()
            .expect("kill")
            .success()
    );
    let device = r.device.clone();
    let m = r
        .hub
        .wait_for("metrics with bind_exit ring-full errors", |v| {
            v["type"] == "metrics"
                && v["device"] == device
                && v["body"]["agent"]["probe_errors"]
                    .as_array()
                    .is_some_and(|a| {
                        a.iter().any(|e| {
                            e["program"] == "bind_exit" && e["ring_full"].as_u64() > Some(0)
                        })
                    })
        });
    let agent = &m["body"]["agent"];
    let errors = agent["probe_errors"]
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["program"] == "bind_exit")
        .expect("bind_exit")
        .clone();
    let drops = agent["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .find(|d| d["source"] == "ring:bind")
        .expect("ring:bind drops")["count"]
        .as_u64();
    // The same losses, counted by kind (drops) and by program (errors).
    assert_eq!(errors["ring_full"].as_u64(), drops, "{agent}");
    assert!(
        drops >= Some(400),
        "500 binds into a ring of ~20 records: {agent}"
    );
}
