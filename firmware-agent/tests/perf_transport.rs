//! The perf-buffer transport on the real kernel (forced with `probes.transport = "perf"`; this
//! kernel has ring buffers): the same bind/exec/exit round as the ring-buffer e2e test, with
//! the same expected content, and a birth that says perf with the size per CPU; and a flood
//! into one-page buffers whose losses arrive counted as `ring:bind`. Run as root.

mod common;

use std::{net::TcpListener, path::PathBuf};

use common::{lifecycle::*, *};
use firmware_agent::kernel::page_size;
use serde_json::{Value, json};

/// The example config with the transport forced to perf (and `extra` appended).
fn perf_config(dir: &std::path::Path, extra: &str) -> PathBuf {
    let example = std::fs::read_to_string(example_config()).expect("example config");
    let forced = example.replace("transport = \"auto\"", "transport = \"perf\"");
    assert_ne!(forced, example, "the example config sets probes.transport");
    write_config(dir, "agent.toml", &format!("{forced}{extra}"))
}

fn ring<'a>(birth: &'a Value, name: &str) -> &'a Value {
    birth["body"]["ring_buffers"]
        .as_array()
        .expect("rings")
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no ring {name} in {birth}"))
}

fn online_cpus() -> u64 {
    aya::util::online_cpus().expect("online cpus").len() as u64
}

#[test]
fn forced_perf_buffers_deliver_the_same_events_and_the_birth_says_perf_per_cpu() {
    let dir = tempfile::tempdir().expect("tempdir");
    let round = bind_exec_exit_round(&perf_config(dir.path(), ""), "perf");
    // The example config asks for 64 KiB (watch) and 256 KiB (proc, net) per CPU.
    let pages = match page_size() {
        4096 => [16, 64, 64],
        16384 => [4, 16, 16],
        65536 => [1, 4, 4],
        other => panic!("no expected page counts for {other}-byte pages"),
    };
    let cpus = online_cpus();
    for ((name, requested, key), pages) in [
        ("WATCH_EVENTS", 65536u64, "ring_buffers.watch_events"),
        ("PROC_EVENTS", 262144, "ring_buffers.proc_events"),
        ("NET_EVENTS", 262144, "ring_buffers.net_events"),
    ]
    .into_iter()
    .zip(pages)
    {
        let r = ring(&round.birth, name);
        assert_eq!(r["requested"], requested, "{name}");
        assert_eq!(r["chosen"], requested, "{name}: bytes per CPU");
        assert_eq!(
            r["transport"],
            json!({"Perf": {"pages_per_cpu": pages, "cpus": cpus}}),
            "{name}"
        );
        let line = format!(
            "perf buffer {name}: page size {} B, requested {requested} B per CPU ({key}), chosen {pages} pages = {requested} B per CPU",
            page_size()
        );
        assert!(
            round.log.contains(&line),
            "log lacks {line:?}:\n{}",
            round.log
        );
    }
    assert!(
        round
            .log
            .contains("transport: perf buffers (probes.transport = \"perf\")"),
        "{}",
        round.log
    );
}

/// Binds made while the agent is stopped.
const FLOOD: u64 = 500;

#[test]
fn perf_buffer_losses_are_counted_as_drops_of_their_kind() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    // One page per CPU for bind records (about 22 of them); metrics every second.
    let cfg = write_config(
        dir.path(),
        "agent.toml",
        "[probes]\ntransport = \"perf\"\n[ring_buffers]\nwatch_events = 4096\n[metrics]\ninterval_s = 1\n",
    );
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let device = format!("perflost-{}", std::process::id());
    let agent = Agent::start(&broker, &device, &cfg);
    let b = birth(&mut hub, &device);
    let w = ring(&b, "WATCH_EVENTS");
    assert_eq!(
        (w["requested"].as_u64(), w["chosen"].as_u64()),
        (Some(4096), Some(page_size()))
    );
    assert_eq!(probe_state(&b, "bind_exit"), "Attached");
    // Stop the agent's reader, overflow the one-page buffers, let it go.
    let pid = agent.pid().to_string();
    let signal = |sig: &str| {
        let st = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(st.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let tid = this_thread();
    for _ in 0..FLOOD {
        drop(TcpListener::bind("127.0.0.1:0").expect("bind"));
    }
    signal("-CONT");
    let m = hub.wait_for("metrics with ring:bind drops", |v| {
        v["type"] == "metrics"
            && v["device"] == device.as_str()
            && v["body"]["agent"]["drops"]
                .as_array()
                .is_some_and(|a| a.iter().any(|d| d["source"] == "ring:bind"))
    });
    let agent_stats = &m["body"]["agent"];
    let source = |name: &str| {
        agent_stats["drops"]
            .as_array()
            .expect("drops")
            .iter()
            .find(|d| d["source"] == name)
            .and_then(|d| d["count"].as_u64())
    };
    let dropped = source("ring:bind").expect("ring:bind");
    let errors = agent_stats["probe_errors"]
        .as_array()
        .expect("errors")
        .iter()
        .find(|e| e["program"] == "bind_exit")
        .expect("bind_exit errors")["ring_full"]
        .as_u64();
    // The kernel (5.5+) reports each loss to the probe, which counts it by kind and by
    // program; the reader's PERF_RECORD_LOST counts add nothing on top.
    assert_eq!(errors, Some(dropped), "{agent_stats}");
    assert_eq!(source("ring:proc_events"), None, "{agent_stats}");
    hub.settle(std::time::Duration::from_secs(1));
    let delivered = hub
        .events(&device, |e| e["Bind"]["task"]["pid"] == tid)
        .len() as u64;
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    assert!(
        dropped >= 400,
        "{FLOOD} binds into one page per CPU: {dropped} dropped"
    );
    // Other processes' binds count too: at least ours add up, none went uncounted.
    assert!(
        delivered + dropped >= FLOOD,
        "{delivered} delivered + {dropped} counted < {FLOOD}"
    );
    println!(
        "FIGURES perf flood: {FLOOD} binds, {delivered} delivered, {dropped} counted as ring:bind"
    );
}
