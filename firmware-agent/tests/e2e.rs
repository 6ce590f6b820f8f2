//! End to end on the real kernel: the agent loads its probes, a real mosquitto carries the
//! batches, the real hub decodes them. Run as root (CI does).

mod common;

use std::{net::TcpListener, process::Command, time::Duration};

use common::*;
use firmware_agent::{kernel::page_size, ringbuf::choose_size};
use serde_json::Value;

fn birth(hub: &mut Hub, device: &str) -> Value {
    hub.wait_for("the birth message", |v| {
        v["type"] == "online" && v["device"] == device
    })
}

fn probe_state(birth: &Value, name: &str) -> Value {
    birth["body"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no probe {name} in {birth}"))["state"]
        .clone()
}

/// The calling thread's id (the `pid` of the events it causes).
fn this_thread() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Binds a listener to an explicit, just-freed port (so the bind event names it) and returns
/// the port. Another test or an outgoing connection may grab the port between the two binds:
/// then try another one.
fn bind_once() -> u16 {
    for _ in 0..100 {
        let probe = TcpListener::bind("127.0.0.1:0").expect("free port");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(l) => {
                drop(l);
                return port;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(e) => panic!("bind 127.0.0.1:{port}: {e}"),
        }
    }
    panic!("no free loopback port in 100 tries");
}

#[test]
fn bind_exec_and_exit_arrive_decoded_at_the_hub() {
    require_root();
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let device = format!("e2e-{}", std::process::id());
    let agent = Agent::start(&broker, &device, &example_config());

    let b = birth(&mut hub, &device);
    let body = &b["body"];
    let page = page_size();
    assert_eq!(body["page_size"], page, "birth page size");
    assert_eq!(body["schema_version"], edge_wire::SCHEMA_VERSION);
    for (name, requested) in [("WATCH_EVENTS", 65536u64), ("PROC_EVENTS", 262144)] {
        let ring = body["ring_buffers"]
            .as_array()
            .expect("rings")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .expect(name);
        assert_eq!(ring["requested"], requested);
        assert_eq!(ring["chosen"], choose_size(requested, page).expect("size"));
        assert_eq!(ring["chosen"].as_u64().expect("u64") % page, 0);
    }
    for p in [
        "fork",
        "bind_enter",
        "bind_exit",
        "exec",
        "exit_group",
        "signal_deliver",
        "exit",
    ] {
        assert_eq!(
            probe_state(&b, p),
            "Attached",
            "probe {p}; agent log:\n{}",
            agent.log()
        );
    }

    // Trigger: one bind, three processes that end three ways.
    let port = bind_once();
    // A unix socket with a path far longer than a sockaddr_in6: the whole path must arrive.
    let sock_dir = tempfile::tempdir().expect("tempdir");
    let sock_path = sock_dir
        .path()
        .join("a-rather-long-unix-socket-name-for-the-e2e-test.sock");
    drop(std::os::unix::net::UnixListener::bind(&sock_path).expect("unix bind"));
    let ok = Command::new("/bin/true").spawn().expect("true");
    let ok_pid = ok.id();
    let mut ok = ok;
    assert!(ok.wait().expect("wait").success());
    let mut three = Command::new("/bin/sh")
        .args(["-c", "exit 3"])
        .spawn()
        .expect("sh");
    let three_pid = three.id();
    let _ = three.wait();
    let mut segv = Command::new("/bin/sh")
        .args(["-c", "kill -SEGV $$"])
        .spawn()
        .expect("sh");
    let segv_pid = segv.id();
    let _ = segv.wait();

    let me = std::process::id();
    // Tests run as threads of one process: our binds are the ones from this thread.
    let tid = this_thread();
    let is_bind = |e: &Value| {
        e["Bind"]["task"]["tgid"] == me
            && e["Bind"]["task"]["pid"] == tid
            && e["Bind"]["addr"]["V4"]["port"] == port
    };
    hub.wait_for("our bind", |v| {
        v["device"] == device && is_bind(&v["event"])
    });
    let unix = sock_path.to_str().expect("utf-8 path");
    hub.wait_for("our unix bind with its whole path", |v| {
        v["device"] == device
            && v["event"]["Bind"]["task"]["tgid"] == me
            && v["event"]["Bind"]["addr"]["Unix"]["path"] == unix
    });
    for (pid, how) in [
        (ok_pid, serde_json::json!({"Code": 0})),
        (three_pid, serde_json::json!({"Code": 3})),
        (segv_pid, serde_json::json!({"Signal": 11})),
    ] {
        hub.wait_for("an exit", |v| {
            v["device"] == device
                && v["event"]["Exit"]["task"]["tgid"] == pid
                && v["event"]["Exit"]["how"] == how
        });
    }
    let exec = hub.wait_for("the exec of /bin/true", |v| {
        v["device"] == device && v["event"]["Exec"]["task"]["tgid"] == ok_pid
    });
    let exec = &exec["event"]["Exec"];
    assert!(
        exec["filename"]
            .as_str()
            .expect("filename")
            .ends_with("true"),
        "{exec}"
    );
    assert_eq!(exec["ppid"], me, "parent of our child is us");
    assert_eq!(exec["task"]["comm"], "true");

    let (status, log) = agent.terminate();
    hub.wait_for("offline on shutdown", |v| {
        v["type"] == "offline" && v["device"] == device && v["body"]["cause"] == "Shutdown"
    });
    assert!(status.success(), "agent exit {status:?}; log:\n{log}");
    // Exactly the events we caused, once each.
    assert_eq!(
        hub.events(&device, is_bind).len(),
        1,
        "one bind to port {port}:\n{}",
        hub.dump()
    );
    assert_eq!(
        hub.events(&device, |e| e["Exec"]["task"]["tgid"] == ok_pid)
            .len(),
        1
    );
    assert_eq!(
        hub.events(&device, |e| e["Exit"]["task"]["tgid"] == segv_pid)
            .len(),
        1
    );
    for line in [
        "page size",
        "chosen",
        "probe exec: attached",
        "mqtt: connected",
        "probes detached",
    ] {
        assert!(log.contains(line), "agent log lacks {line:?}:\n{log}");
    }
    // Batches were numbered from 0 with no gap.
    assert!(
        !hub.seen
            .iter()
            .any(|v| v["type"] == "gap" && v["device"] == device),
        "{}",
        hub.dump()
    );
}

#[test]
fn a_probe_on_a_missing_tracepoint_is_skipped_and_the_rest_deliver() {
    require_root();
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        "agent.toml",
        "[probes.tracepoints]\nexec = \"sched:no_such_tracepoint\"\n",
    );
    let device = format!("skip-{}", std::process::id());
    let agent = Agent::start(&broker, &device, &cfg);
    let b = birth(&mut hub, &device);
    let state = probe_state(&b, "exec");
    let reason = state["Skipped"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("exec not skipped: {state}"));
    assert!(
        reason.contains("sched:no_such_tracepoint") && reason.contains("not found"),
        "{reason}"
    );
    assert_eq!(probe_state(&b, "bind_exit"), "Attached");
    assert!(
        agent.log().contains("probe exec: skipped"),
        "{}",
        agent.log()
    );

    let port = bind_once();
    let tid = this_thread();
    hub.wait_for("a bind while exec is skipped", |v| {
        v["device"] == device
            && v["event"]["Bind"]["task"]["pid"] == tid
            && v["event"]["Bind"]["addr"]["V4"]["port"] == port
    });
    let (status, _) = agent.terminate();
    assert!(status.success());
    assert!(
        hub.events(&device, |e| e.get("Exec").is_some()).is_empty(),
        "no exec events once exec is skipped"
    );
}

#[test]
fn ring_requests_of_4096_and_5000_make_working_maps_of_the_right_size() {
    require_root();
    let mut cfg = firmware_agent::config::Config::default();
    cfg.ring_buffers.watch_events = 4096;
    cfg.ring_buffers.proc_events = 5000;
    let loaded = firmware_agent::agent::load(&cfg).expect("load probes");
    let page = page_size();
    let sizes: Vec<(String, u64, u64)> = loaded
        .rings
        .iter()
        .map(|r| (r.name.to_string(), r.requested, r.chosen))
        .collect();
    assert_eq!(
        sizes,
        vec![
            (
                "WATCH_EVENTS".into(),
                4096,
                choose_size(4096, page).expect("size")
            ),
            (
                "PROC_EVENTS".into(),
                5000,
                choose_size(5000, page).expect("size")
            ),
            (
                "NET_EVENTS".into(),
                262144,
                choose_size(262144, page).expect("size")
            )
        ],
        "chosen sizes as read back from the kernel (max_entries)"
    );
    // And they work: a bind lands in the 4 KiB ring.
    let mut ebpf = loaded.ebpf;
    let mut ring: aya::maps::RingBuf<aya::maps::MapData> = ebpf
        .take_map("WATCH_EVENTS")
        .expect("map")
        .try_into()
        .expect("ringbuf");
    let port = bind_once();
    let me = std::process::id();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(item) = ring.next() {
            let (_, ev) = firmware_agent::decode::decode(&item, |_| None).expect("decode");
            if let edge_wire::Event::Bind(b) = ev
                && b.task.tgid == me
                && b.addr
                    == (edge_wire::SockAddr::V4 {
                        ip: [127, 0, 0, 1],
                        port,
                    })
            {
                break;
            }
            continue;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no bind record in the 4096-byte ring"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn with_no_event_probe_able_to_run_the_agent_exits_non_zero_with_the_reasons() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(
        dir.path(),
        "agent.toml",
        "[probes]\ndisabled = [\"exit\", \"oom\", \"tcp\", \"storage\"]\n[probes.tracepoints]\nexec = \"sched:gone\"\nbind_exit = \"syscalls:gone_too\"\n",
    );
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["--card-config", "/nonexistent"])
        .env("FIRMWARE_AGENT_BROKER_URL", "mqtt://127.0.0.1:9")
        .output()
        .expect("run agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in [
        "no event probe could run",
        "sched:gone",
        "syscalls:gone_too",
        "exit: Disabled",
    ] {
        assert!(
            stderr.contains(needle),
            "stderr lacks {needle:?}:\n{stderr}"
        );
    }
}

#[test]
fn a_killed_agent_is_declared_offline_by_its_will() {
    require_root();
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let device = format!("will-{}", std::process::id());
    let agent = Agent::start(&broker, &device, &example_config());
    let b = birth(&mut hub, &device);
    assert_eq!(b["body"]["session"], 1);
    agent.kill();
    let death = hub.wait_for("the will", |v| {
        v["type"] == "offline" && v["device"] == device
    });
    assert_eq!(death["body"]["cause"], "ConnectionLost");
    assert_eq!(
        death["body"]["session"], 1,
        "the will names the session it ended"
    );
}
