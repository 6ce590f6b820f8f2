//! Shared by the Home Assistant tests: the messages of one device `pi-a` (birth, will,
//! metrics with board health, a batch with a crash and a new listening port), retained and live reads with
//! mosquitto_sub, the documented discovery schema check, and `hub bridge` as a child.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::{collections::BTreeMap, process::Command, time::Instant};

use edge_hub::testkit::{JsonHub, PrivateBroker};
use edge_wire::{
    AgentStats, Bind, Birth, Death, DeathCause, DropCount, Event, EventBatch, Exit, ExitHow,
    Message, Metrics, QueueInfo, SockAddr, Task, Temperature, bounded, encode,
};
use serde_json::Value;

use crate::common::{Proc, WAIT, hub_bin};

pub const DEV: &str = "pi-a";
pub const CONFIG: &str = "homeassistant/device/pi-a/config";

pub fn birth() -> Vec<u8> {
    encode(&Message::Online(Birth {
        device: bounded(DEV),
        boot_id: bounded("b1"),
        session: 1,
        run_id: 9,
        unix_ms: 1_764_000_000_000,
        agent_version: bounded("0.1.0"),
        schema_version: 2,
        kernel_release: bounded("6.12.0-rpi-2712"),
        arch: bounded("aarch64"),
        page_size: 16384,
        kernel_btf: false,
        ring_buffers: vec![],
        probes: vec![],
        queue: QueueInfo {
            ram_bytes: 262_144,
            spool_bytes: 0,
        },
    }))
    .expect("encode")
}

pub fn death() -> Vec<u8> {
    encode(&Message::Offline(Death {
        device: bounded(DEV),
        boot_id: bounded("b1"),
        session: 1,
        cause: DeathCause::ConnectionLost,
    }))
    .expect("encode")
}

pub fn metrics() -> Vec<u8> {
    encode(&Message::Metrics(Metrics {
        device: bounded(DEV),
        boot_id: bounded("b1"),
        unix_ms: 1_764_000_000_000,
        uptime_s: 600,
        cpu_percent: 12.3,
        mem_total_kib: 4_000_000,
        mem_used_kib: 1_500_000,
        load: [0.5, 0.25, 0.125],
        temperatures: vec![Temperature {
            label: bounded("cpu_thermal"),
            celsius: 51.5,
        }],
        agent: AgentStats {
            rss_kib: 7400,
            drops: vec![
                DropCount {
                    source: bounded("ring:bind"),
                    count: 3,
                },
                DropCount {
                    source: bounded("queue"),
                    count: 2,
                },
            ],
            ..Default::default()
        },
        // A Pi 5 throttled and under-volted right now (bits 0 and 2, and since boot).
        board: edge_wire::BoardHealth {
            throttled: Some(edge_wire::Throttled::from_raw(0x5_0005)),
            under_voltage_alarm: Some(true),
            ..Default::default()
        },
        top_cpu: vec![],
        top_mem: vec![],
    }))
    .expect("encode")
}

/// A batch with a crash (SIGSEGV), a clean exit and a bind of a new listening port.
pub fn events() -> Vec<u8> {
    let task = |comm: &str| Task {
        pid: 42,
        tgid: 42,
        comm: bounded(comm),
    };
    let exit = |how| {
        Event::Exit(Exit {
            age_us: 5,
            task: task("worker"),
            ppid: 1,
            how,
        })
    };
    encode(&Message::Events(EventBatch {
        device: bounded(DEV),
        boot_id: bounded("b1"),
        run_id: 9,
        seq: 0,
        unix_ms: 1_764_000_000_000,
        mono_ns: 1,
        drops: vec![],
        events: vec![
            exit(ExitHow::Signal(11)),
            exit(ExitHow::Code(0)),
            Event::Bind(Bind {
                age_us: 5,
                task: task("nginx"),
                fd: 6,
                ret: 0,
                addr: SockAddr::V4 {
                    ip: [0, 0, 0, 0],
                    port: 8080,
                },
            }),
        ],
    }))
    .expect("encode")
}

/// The retained messages under `filters`, read back from the broker (topic -> payload).
pub fn retained(port: u16, filters: &[&str]) -> BTreeMap<String, String> {
    retained_as(port, &[], filters)
}

/// [`retained`] with extra mosquitto_sub arguments (`-u USER -P PASSWORD`).
pub fn retained_as(port: u16, auth: &[&str], filters: &[&str]) -> BTreeMap<String, String> {
    let mut cmd = Command::new("mosquitto_sub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(auth)
        .args(["-v", "--retained-only", "-W", "1"]);
    for f in filters {
        cmd.args(["-t", f]);
    }
    let out = cmd
        .output()
        .expect("mosquitto_sub (apt-get install mosquitto-clients)");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let (t, p) = l.split_once(' ').unwrap_or((l, ""));
            (t.to_owned(), p.to_owned())
        })
        .collect()
}

/// Reads the retained messages again until `ok` holds for them (the hub publishes
/// asynchronously), or fails showing the last read.
pub fn retained_until(
    port: u16,
    filters: &[&str],
    what: &str,
    ok: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    retained_until_as(port, &[], filters, what, ok)
}

/// [`retained_until`] with extra mosquitto_sub arguments.
pub fn retained_until_as(
    port: u16,
    auth: &[&str],
    filters: &[&str],
    what: &str,
    ok: impl Fn(&BTreeMap<String, String>) -> bool,
) -> BTreeMap<String, String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = retained_as(port, auth, filters);
        if ok(&got) {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what}; last read {got:#?}"
        );
    }
}

/// A live subscriber (`mosquitto_sub -d -v`, line-buffered so its debug lines arrive as they
/// happen) that has received its SUBACK.
pub fn live(port: u16, filter: &str) -> Proc {
    live_as(port, &[], filter)
}

/// [`live`] with extra mosquitto_sub arguments.
pub fn live_as(port: u16, auth: &[&str], filter: &str) -> Proc {
    let p = Proc::spawn(
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub", "-h", "127.0.0.1"])
            .args(["-p", &port.to_string()])
            .args(auth)
            .args(["-d", "-v", "-R", "-q", "1", "-t", filter]),
    );
    p.wait_for("SUBACK", |l| l.contains("SUBACK"));
    p
}

/// The documented device-based discovery schema.
pub fn check_schema(topic: &str, v: &Value) {
    let parts: Vec<&str> = topic.split('/').collect();
    assert_eq!(parts.len(), 4, "{topic}");
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("homeassistant", "device", "config")
    );
    assert!(
        parts[2]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    );
    assert!(
        v["dev"]["ids"].as_array().is_some_and(|a| !a.is_empty()),
        "{v}"
    );
    assert!(v["o"]["name"].is_string(), "origin name is required: {v}");
    for a in v["availability"].as_array().expect("availability") {
        assert!(a["topic"].is_string(), "{a}");
    }
    let cmps = v["cmps"].as_object().expect("cmps");
    let mut ids: Vec<&str> = Vec::new();
    for (key, c) in cmps {
        let p = c["p"].as_str().expect("p");
        assert!(["sensor", "binary_sensor"].contains(&p), "{key}: {p}");
        let default_id = c["default_entity_id"].as_str().expect("default_entity_id");
        assert!(
            default_id.starts_with(&format!("{p}.")),
            "{key}: {default_id}"
        );
        assert!(
            c.get("object_id").is_none() && c.get("obj_id").is_none(),
            "{key}"
        );
        assert!(
            c["state_topic"].is_string() && c["value_template"].is_string(),
            "{key}"
        );
        ids.push(c["unique_id"].as_str().expect("unique_id"));
    }
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "unique ids must be unique: {v}");
}

pub fn bridge(broker: &PrivateBroker) -> JsonHub {
    JsonHub::start_with_args(hub_bin(), &broker.url(), &["bridge"], WAIT)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

pub fn wait_record(hub: &JsonHub, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    loop {
        match hub.next_timeout(deadline.saturating_duration_since(Instant::now())) {
            Some((_, v)) if pred(&v) => return v,
            Some((_, v)) => seen.push(v),
            None => panic!("never saw {what}; saw {seen:#?}\nstderr:\n{}", hub.stderr()),
        }
    }
}
