//! The OOM, TCP and storage families and the lifecycle fixes end to end on the real kernel: each
//! signal is caused here (an OOM kill in a memory cgroup, a loopback TCP transfer, a file write
//! with fsync, signal 64, threads), and asserted at a hub subscriber or in the kernel's maps.
//! Run as root (CI does). One test at a time: each loads probes that see the whole system.

mod common;
#[path = "signals_rig/mod.rs"]
mod rig;

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use rig::*;
use serde_json::Value;

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

/// One connection on loopback: the client sends `up` bytes, the server answers `down` and
/// shuts its side down (FIN after the data). With `half_close` the client shuts its sending side
/// down first and reads only once the answer and the FIN are there. Returns the server's port
/// and the kernel's (acked, received) of client and server, read once everything is read.
fn transfer(up: usize, down: usize, half_close: bool) -> (u16, (u64, u64), (u64, u64)) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; up];
        s.read_exact(&mut buf).expect("read up");
        s.write_all(&vec![7u8; down]).expect("write down");
        s.shutdown(std::net::Shutdown::Write)
            .expect("server shutdown");
        let mut end = [0u8; 1];
        assert_eq!(s.read(&mut end).expect("eof"), 0);
        s
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    c.write_all(&vec![1u8; up]).expect("write up");
    if half_close {
        c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        // Let the answer and the server's FIN arrive before reading.
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut back = vec![0u8; down];
    c.read_exact(&mut back).expect("read down");
    let client = tcp_info(&c);
    drop(c);
    let s = server.join().expect("server");
    std::thread::sleep(Duration::from_millis(100));
    let server = tcp_info(&s);
    (port, client, server)
}

#[test]
fn tcp_bytes_on_loopback_are_summarised_per_flow_within_the_kernel_accounting() {
    const UP: usize = 3_000_000;
    const DOWN: usize = 250_000;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut r = rig("tcp", "");
    r.assert_attached(&["tcp_state", "tcp_send", "tcp_recv", "tcp_retransmit"]);
    let method = r.probe("tcp_send")["method"].clone();
    let me = std::process::id();
    // Closed by the client after reading everything; then half-closed by the client before it
    // reads (the server's data and FIN arrive while the client's socket is in FIN_WAIT2, so the
    // kernel moves it to CLOSE with the data still queued: the reads after CLOSE must count).
    let (port, client_kernel, server_kernel) = transfer(UP, DOWN, false);
    let (half_port, half_client, half_server) = transfer(UP, DOWN, true);
    // The kernel counts the SYN and the FIN as one sequence byte each.
    let near = |kernel: u64, bytes: usize| (bytes as u64..=bytes as u64 + 2).contains(&kernel);
    for (who, (acked, received), (sent, got)) in [
        ("client", client_kernel, (UP, DOWN)),
        ("server", server_kernel, (DOWN, UP)),
        ("half-closed client", half_client, (UP, DOWN)),
        ("half-closed server", half_server, (DOWN, UP)),
    ] {
        assert!(
            near(acked, sent) && near(received, got),
            "kernel, {who}: acked {acked} received {received}"
        );
    }
    let want_out = (UP as u64, DOWN as u64, 1, 1);
    let want_in = (DOWN as u64, UP as u64, 1, 1);
    let events = r.wait_events("four flows, closed, with every byte", |evs| {
        [port, half_port].iter().all(|&p| {
            flow_totals(evs, me, "Outbound", p) == want_out
                && flow_totals(evs, me, "Inbound", p) == want_in
        })
    });
    // Settle: nothing more may be added to these flows.
    r.hub.settle(Duration::from_secs(2));
    let events_after = r.hub.events(&r.device, |_| true);
    for p in [port, half_port] {
        assert_eq!(flow_totals(&events_after, me, "Outbound", p), want_out);
        assert_eq!(flow_totals(&events_after, me, "Inbound", p), want_in);
    }
    let n = events.iter().filter(|e| e.get("Tcp").is_some()).count();
    println!(
        "FIGURES tcp: method {method}, {n} summaries until the four flows were complete; kernel (acked, received) client {client_kernel:?} server {server_kernel:?}, half-closed client {half_client:?} server {half_server:?}; agent exactly {UP}/{DOWN}"
    );
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
