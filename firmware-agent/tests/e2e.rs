//! End to end on the real kernel: the agent loads its probes, a real mosquitto carries the
//! batches, the real hub decodes them. Run as root (CI does).

mod common;

use std::{process::Command, time::Duration};

use common::{lifecycle::*, *};
use firmware_agent::{kernel::page_size, ringbuf::choose_size};

#[test]
fn bind_exec_and_exit_arrive_decoded_at_the_hub() {
    let round = bind_exec_exit_round(&example_config(), "e2e");
    let page = page_size();
    // The default transport on this kernel (5.8+): ring buffers, sized in bytes.
    assert!(
        round
            .log
            .contains("transport: ring buffers (the kernel creates them)"),
        "{}",
        round.log
    );
    for (name, requested) in [("WATCH_EVENTS", 65536u64), ("PROC_EVENTS", 262144)] {
        let ring = round.birth["body"]["ring_buffers"]
            .as_array()
            .expect("rings")
            .iter()
            .find(|r| r["name"] == name)
            .cloned()
            .expect(name);
        assert_eq!(ring["requested"], requested);
        assert_eq!(ring["chosen"], choose_size(requested, page).expect("size"));
        assert_eq!(ring["chosen"].as_u64().expect("u64") % page, 0);
        assert_eq!(ring["transport"], "RingBuf");
    }
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
