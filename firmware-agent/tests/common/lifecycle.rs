//! The bind/exec/exit round trip shared by the ring-buffer and perf-buffer end-to-end tests,
//! and the helpers they use: the birth, a probe's state, a bind to a known port.

use std::{net::TcpListener, path::Path, process::Command};

use firmware_agent::kernel::page_size;
use serde_json::Value;

use super::*;

pub fn birth(hub: &mut Hub, device: &str) -> Value {
    hub.wait_for("the birth message", |v| {
        v["type"] == "online" && v["device"] == device
    })
}

pub fn probe_state(birth: &Value, name: &str) -> Value {
    birth["body"]["probes"]
        .as_array()
        .expect("probes")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no probe {name} in {birth}"))["state"]
        .clone()
}

/// The calling thread's id (the `pid` of the events it causes).
pub fn this_thread() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Binds a listener to an explicit, just-freed port (so the bind event names it) and returns
/// the port. Another test or an outgoing connection may grab the port between the two binds:
/// then try another one.
pub fn bind_once() -> u16 {
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

/// What a round saw: the birth and the agent's log.
pub struct Round {
    pub birth: Value,
    pub log: String,
}

/// The agent with `config` against a private mosquitto and the real hub: its lifecycle probes
/// attach, then one bind (TCP, and a unix socket with a long path) and three processes ending
/// three ways (code 0, code 3, SIGSEGV) arrive decoded with their exact content, once each,
/// with no gap; the agent stops cleanly and says offline. The same assertions serve every
/// transport: the records are the same bytes.
pub fn bind_exec_exit_round(config: &Path, device_prefix: &str) -> Round {
    require_root();
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let device = format!("{device_prefix}-{}", std::process::id());
    let agent = Agent::start(&broker, &device, config);

    let b = birth(&mut hub, &device);
    let body = &b["body"];
    assert_eq!(body["page_size"], page_size(), "birth page size");
    assert_eq!(body["schema_version"], edge_wire::SCHEMA_VERSION);
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
    Round { birth: b, log }
}
