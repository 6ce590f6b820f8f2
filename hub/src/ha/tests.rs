//! Unit tests of the Home Assistant discovery: what each message publishes (checked against the
//! documented schema), the re-send on Home Assistant's birth, reconnects, forgetting.

use edge_wire::{
    AgentStats, Bind, Birth, DeathCause, DropCount, Event, EventBatch, Exit, ExitHow, Metrics,
    QueueInfo, SockAddr, Task, Temperature, bounded,
};
use serde_json::{Value, json};

use super::*;

fn settings() -> Settings {
    Settings::new("homeassistant", "edge-json").expect("settings")
}

fn birth(device: &str, session: u32) -> Message {
    Message::Online(Birth {
        device: bounded(device),
        boot_id: bounded("b1"),
        session,
        run_id: 7,
        unix_ms: 1,
        agent_version: bounded("0.1.0"),
        schema_version: 2,
        kernel_release: bounded("6.12.0-rpi-2712"),
        arch: bounded("aarch64"),
        page_size: 16384,
        kernel_btf: false,
        ring_buffers: vec![],
        probes: vec![],
        queue: QueueInfo {
            ram_bytes: 1,
            spool_bytes: 0,
        },
    })
}

fn offline(device: &str) -> Message {
    Message::Offline(edge_wire::Death {
        device: bounded(device),
        boot_id: bounded("b1"),
        session: 1,
        cause: DeathCause::ConnectionLost,
    })
}

fn metrics(device: &str, temps: &[(&str, f32)]) -> Message {
    Message::Metrics(Metrics {
        device: bounded(device),
        boot_id: bounded("b1"),
        unix_ms: 1,
        uptime_s: 60,
        cpu_percent: 12.25,
        mem_total_kib: 4_000_000,
        mem_used_kib: 1_500_000,
        load: [0.5, 0.25, 0.125],
        temperatures: temps
            .iter()
            .map(|&(label, celsius)| Temperature {
                label: bounded(label),
                celsius,
            })
            .collect(),
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
        board: Default::default(),
        top_cpu: vec![],
        top_mem: vec![],
    })
}

fn task(comm: &str) -> Task {
    Task {
        pid: 10,
        tgid: 10,
        comm: bounded(comm),
    }
}

fn bind(comm: &str, addr: SockAddr, ret: i32) -> Event {
    Event::Bind(Bind {
        age_us: 0,
        task: task(comm),
        fd: 3,
        ret,
        addr,
    })
}

fn exit(how: ExitHow) -> Event {
    Event::Exit(Exit {
        age_us: 0,
        task: task("worker"),
        ppid: 1,
        how,
    })
}

fn events(device: &str, events: Vec<Event>) -> Message {
    Message::Events(EventBatch {
        device: bounded(device),
        boot_id: bounded("b1"),
        run_id: 7,
        seq: 0,
        unix_ms: 1,
        mono_ns: 1,
        drops: vec![],
        events,
    })
}

fn v4(port: u16) -> SockAddr {
    SockAddr::V4 {
        ip: [0, 0, 0, 0],
        port,
    }
}

fn json_of(p: &Publication) -> Value {
    serde_json::from_slice(&p.payload).expect("JSON payload")
}

fn topics(ps: &[Publication]) -> Vec<&str> {
    ps.iter().map(|p| p.topic.as_str()).collect()
}

#[test]
fn first_birth_announces_the_device_with_its_facts() {
    let mut d = Discovery::new(settings());
    let out = d.on_message("pi5-0042", &birth("pi5-0042", 1));
    assert_eq!(
        topics(&out),
        [
            "edge-json/pi5-0042/availability",
            "homeassistant/device/pi5-0042/config",
            "edge-json/pi5-0042/summary",
        ]
    );
    assert!(out.iter().all(|p| p.retain));
    assert_eq!(out[0].payload, b"online");
    let v = json_of(&out[1]);
    config::tests::check_schema(&out[1].topic, &v);
    assert_eq!(
        v["dev"],
        json!({"ids": ["edge_pi5-0042"], "name": "pi5-0042", "mf": "firmware-agent",
               "sn": "pi5-0042", "mdl": "aarch64", "sw": "0.1.0",
               "hw": "kernel 6.12.0-rpi-2712, 16 KiB pages, BTF no"})
    );
    assert_eq!(
        v["o"],
        json!({"name": "edge-hub", "sw": env!("CARGO_PKG_VERSION")})
    );
    assert_eq!(
        v["availability"],
        json!([
            {"topic": "edge-json/pi5-0042/availability", "payload_available": "online", "payload_not_available": "offline"},
            {"topic": "edge-json/availability", "payload_available": "online", "payload_not_available": "offline"},
        ])
    );
    assert_eq!(v["availability_mode"], "all");
    let keys: Vec<&String> = v["cmps"].as_object().expect("cmps").keys().collect();
    assert_eq!(
        keys,
        [
            "agent_rss",
            "cpu",
            "crashes",
            "drops",
            "memory",
            "new_listen_ports"
        ]
    );
    assert_eq!(
        v["cmps"]["cpu"],
        json!({"p": "sensor", "name": "CPU", "unique_id": "edge_pi5-0042_cpu",
               "default_entity_id": "sensor.pi5_0042_cpu",
               "state_topic": "edge-json/pi5-0042/metrics",
               "value_template": "{{ value_json.body.cpu_percent | round(1) }}",
               "unit_of_measurement": "%", "state_class": "measurement", "icon": "mdi:cpu-64-bit"})
    );
    assert_eq!(
        v["cmps"]["crashes"]["state_topic"],
        "edge-json/pi5-0042/summary"
    );
    assert_eq!(
        json_of(&out[2]),
        json!({"crashes": 0, "new_listen_ports": 0, "last_new_port": null,
               "throttled": null, "under_voltage": null})
    );
}

#[test]
fn the_same_birth_again_only_repeats_availability() {
    let mut d = Discovery::new(settings());
    d.on_message("pi1", &birth("pi1", 1));
    let again = d.on_message("pi1", &birth("pi1", 2));
    assert_eq!(topics(&again), ["edge-json/pi1/availability"]);
    let off = d.on_message("pi1", &offline("pi1"));
    assert_eq!(topics(&off), ["edge-json/pi1/availability"]);
    assert_eq!(off[0].payload, b"offline");
}

#[test]
fn metrics_add_one_temperature_entity_per_safe_label() {
    let mut d = Discovery::new(settings());
    d.on_message("pi1", &birth("pi1", 1));
    let out = d.on_message(
        "pi1",
        &metrics(
            "pi1",
            &[("cpu_thermal", 51.5), ("rp1_adc", 40.0), ("bad'}}", 1.0)],
        ),
    );
    assert_eq!(topics(&out), ["homeassistant/device/pi1/config"]);
    let v = json_of(&out[0]);
    config::tests::check_schema(&out[0].topic, &v);
    let t = &v["cmps"]["temp_cpu_thermal"];
    assert_eq!(t["name"], "Temperature cpu_thermal");
    assert_eq!(t["device_class"], "temperature");
    assert_eq!(t["unit_of_measurement"], "°C");
    assert_eq!(
        t["value_template"],
        "{% set t = value_json.body.temperatures | selectattr('label', 'eq', 'cpu_thermal') | list %}{{ (t[0].celsius | round(1)) if t else none }}"
    );
    assert_eq!(
        v["cmps"]["temp_rp1_adc"]["default_entity_id"],
        "sensor.pi1_temp_rp1_adc"
    );
    assert_eq!(v["cmps"].as_object().map(|m| m.len()), Some(8));
    // The same labels again: nothing new to announce.
    assert!(
        d.on_message("pi1", &metrics("pi1", &[("cpu_thermal", 52.0)]))
            .is_empty()
    );
}

#[test]
fn signal_exits_and_new_listening_ports_are_counted_once() {
    let mut d = Discovery::new(settings());
    d.on_message("pi1", &birth("pi1", 1));
    let out = d.on_message(
        "pi1",
        &events(
            "pi1",
            vec![
                exit(ExitHow::Signal(11)),
                exit(ExitHow::Code(0)),
                exit(ExitHow::Signal(6)),
                exit(ExitHow::Unknown),
                bind("nginx", v4(80), 0),
                bind("nginx", v4(80), 0),
                bind("curl", v4(0), 0),
                bind("nginx", v4(443), -98),
                bind(
                    "nginx",
                    SockAddr::V6 {
                        ip: [0; 16],
                        port: 80,
                        scope_id: 0,
                    },
                    0,
                ),
                bind(
                    "app",
                    SockAddr::Unix {
                        path: bounded("/run/app.sock"),
                    },
                    0,
                ),
            ],
        ),
    );
    assert_eq!(topics(&out), ["edge-json/pi1/summary"]);
    assert_eq!(
        json_of(&out[0]),
        json!({"crashes": 2, "new_listen_ports": 2,
               "last_new_port": {"port": 80, "comm": "nginx"},
               "throttled": null, "under_voltage": null})
    );
    // Nothing new: nothing published.
    let quiet = d.on_message("pi1", &events("pi1", vec![bind("nginx", v4(80), 0)]));
    assert!(quiet.is_empty(), "{quiet:?}");
}

#[test]
fn home_assistant_birth_resends_every_config() {
    let mut d = Discovery::new(settings());
    d.on_message("pi1", &birth("pi1", 1));
    d.on_message("pi2", &metrics("pi2", &[]));
    let out = d.on_ha_status(b"online");
    assert_eq!(
        topics(&out),
        [
            "homeassistant/device/pi1/config",
            "homeassistant/device/pi2/config",
        ]
    );
    assert!(out.iter().all(|p| p.retain && !p.payload.is_empty()));
    assert!(d.on_ha_status(b"offline").is_empty());
}

#[test]
fn reconnect_republishes_hub_availability_and_devices() {
    let mut d = Discovery::new(settings());
    assert_eq!(
        d.hub_will(),
        Publication {
            topic: "edge-json/availability".into(),
            payload: b"offline".to_vec(),
            retain: true
        }
    );
    let first = d.on_connect();
    assert_eq!(topics(&first), ["edge-json/availability"]);
    assert_eq!(first[0].payload, b"online");
    d.on_message("pi1", &birth("pi1", 1));
    assert_eq!(
        topics(&d.on_connect()),
        [
            "edge-json/availability",
            "homeassistant/device/pi1/config",
            "edge-json/pi1/availability",
            "edge-json/pi1/summary",
        ]
    );
}

#[test]
fn forget_clears_every_retained_topic_and_the_device() {
    let mut d = Discovery::new(settings());
    d.on_message("pi1", &birth("pi1", 1));
    let out = d.forget("pi1");
    assert_eq!(
        topics(&out),
        [
            "homeassistant/device/pi1/config",
            "edge-json/pi1/availability",
            "edge-json/pi1/summary",
            "edge-json/pi1/status",
        ]
    );
    assert!(out.iter().all(|p| p.retain && p.payload.is_empty()));
    assert_eq!(d.devices().count(), 0);
    assert!(d.on_ha_status(b"online").is_empty());
}

#[test]
fn a_cleared_status_names_its_device() {
    assert_eq!(cleared_status("edge", "edge/pi1/status", b""), Some("pi1"));
    assert_eq!(cleared_status("edge", "edge/pi1/status", b"x"), None);
    assert_eq!(cleared_status("edge", "edge/pi1/metrics", b""), None);
    assert_eq!(cleared_status("edge", "other/pi1/status", b""), None);
    assert_eq!(cleared_status("edge", "edge//status", b""), None);
}

#[test]
fn prefixes_must_be_one_topic_level() {
    assert_eq!(
        Settings::new("home/assistant", "edge-json"),
        Err(SettingsError {
            setting: "discovery prefix",
            value: "home/assistant".into(),
            reason: "must be one plain topic level (no /, +, # or control characters)",
        })
    );
    assert!(Settings::new("homeassistant", "").is_err());
}

/// `metrics` with the firmware's throttling word `raw` and the under-voltage alarm.
fn board_metrics(device: &str, raw: Option<u32>, alarm: Option<bool>) -> Message {
    let Message::Metrics(mut m) = metrics(device, &[]) else {
        unreachable!("metrics() makes metrics")
    };
    m.board.throttled = raw.map(edge_wire::Throttled::from_raw);
    m.board.under_voltage_alarm = alarm;
    Message::Metrics(m)
}

#[test]
fn board_health_from_metrics_adds_binary_sensors_and_their_state() {
    let mut d = Discovery::new(settings());
    d.on_message("pi1", &birth("pi1", 1));
    // Not a Raspberry Pi: no word, no alarm, no entities.
    assert!(
        d.on_message("pi1", &board_metrics("pi1", None, None))
            .is_empty()
    );
    // Throttled since boot only (bit 18), under-voltage alarm off: both entities, both OFF.
    let out = d.on_message("pi1", &board_metrics("pi1", Some(0x4_0000), Some(false)));
    assert_eq!(
        topics(&out),
        ["homeassistant/device/pi1/config", "edge-json/pi1/summary"]
    );
    let cmps = json_of(&out[0])["cmps"].clone();
    assert_eq!(cmps["throttled"]["p"], "binary_sensor");
    assert_eq!(
        cmps["under_voltage"]["default_entity_id"],
        "binary_sensor.pi1_under_voltage"
    );
    let summary = json_of(&out[1]);
    assert_eq!(
        (
            summary["throttled"].clone(),
            summary["under_voltage"].clone()
        ),
        (json!(false), json!(false))
    );
    // Capped frequency and under-voltage now (bits 0 and 1): the state changes, not the config.
    let out = d.on_message("pi1", &board_metrics("pi1", Some(0x3), Some(false)));
    assert_eq!(topics(&out), ["edge-json/pi1/summary"]);
    let summary = json_of(&out[0]);
    assert_eq!(
        (
            summary["throttled"].clone(),
            summary["under_voltage"].clone()
        ),
        (json!(true), json!(true))
    );
    // The alarm alone says under-voltage too.
    let out = d.on_message("pi1", &board_metrics("pi1", Some(0), Some(true)));
    let summary = json_of(&out[0]);
    assert_eq!(
        (
            summary["throttled"].clone(),
            summary["under_voltage"].clone()
        ),
        (json!(false), json!(true))
    );
}
