//! Home Assistant discovery from `hub bridge` against a real mosquitto: the device-based
//! config is published retained and read back, checked against the documented schema (topic
//! shape, `dev`, `o`, `cmps` with `p`, unique `unique_id`s, `default_entity_id` and no
//! `object_id`, availability bound to the device's status and the hub's will); Home
//! Assistant's `online` on `homeassistant/status` makes the hub send it again; `hub forget`
//! clears every retained topic of the device and the running bridge forgets it; all of it
//! also works under the fleet ACL of docs/mosquitto-acl.conf; `--no-ha` publishes none of it;
//! `hub serve` announces devices through the same bridge.

mod common;
mod ha_support;
mod serve_kit;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use edge_hub::testkit::{JsonHub, PrivateBroker};
use ha_support::*;
use serde_json::{Value, json};

#[test]
fn discovery_is_retained_resent_for_home_assistant_and_forgotten() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let port = broker.port;
    let hub = bridge(&broker);
    publish_args(port, "edge/pi-a/status", &birth(), &["-r"]);
    publish(port, "edge/pi-a/metrics", &metrics());
    publish(port, "edge/pi-a/events", &events());

    let all = ["homeassistant/#", "edge-json/#", "edge/#"];
    let got = retained_until(port, &all, "config with temperature and summary", |r| {
        r.get(CONFIG)
            .is_some_and(|c| c.contains("temp_cpu_thermal"))
            && r.get("edge-json/pi-a/summary")
                .is_some_and(|s| s.contains("\"crashes\":1"))
    });
    let config: Value = serde_json::from_str(&got[CONFIG]).expect("config is JSON");
    check_schema(CONFIG, &config);
    let keys: Vec<&String> = config["cmps"].as_object().expect("cmps").keys().collect();
    assert_eq!(
        keys,
        [
            "agent_rss",
            "cpu",
            "crashes",
            "drops",
            "memory",
            "new_listen_ports",
            "temp_cpu_thermal",
            "throttled",
            "under_voltage"
        ]
    );
    assert_eq!(config["dev"]["mdl"], "aarch64");
    assert_eq!(config["dev"]["sw"], "0.1.0");
    assert_eq!(
        config["dev"]["hw"],
        "kernel 6.12.0-rpi-2712, 16 KiB pages, BTF no"
    );
    assert_eq!(
        config["cmps"]["cpu"]["default_entity_id"],
        "sensor.pi_a_cpu"
    );
    assert_eq!(
        config["availability"]
            .as_array()
            .map(|a| a.iter().map(|x| x["topic"].clone()).collect::<Vec<_>>()),
        Some(vec![
            json!("edge-json/pi-a/availability"),
            json!("edge-json/availability")
        ])
    );
    assert_eq!(got["edge-json/pi-a/availability"], "online");
    assert_eq!(got["edge-json/availability"], "online");
    assert_eq!(
        serde_json::from_str::<Value>(&got["edge-json/pi-a/summary"]).expect("summary"),
        json!({"crashes": 1, "new_listen_ports": 1, "last_new_port": {"port": 8080, "comm": "nginx"},
               "throttled": true, "under_voltage": true})
    );

    // Home Assistant starts: every config is sent again (live, not only retained).
    let sub = live(port, "homeassistant/device/+/config");
    publish(port, "homeassistant/status", b"online");
    let (line, _) = sub.wait_for("the config again", |l| l.starts_with(CONFIG));
    assert_eq!(line, format!("{CONFIG} {}", got[CONFIG]));
    drop(sub);

    // The device's will: availability follows its status.
    publish_args(port, "edge/pi-a/status", &death(), &["-r"]);
    retained_until(port, &all, "availability offline", |r| {
        r.get("edge-json/pi-a/availability").map(String::as_str) == Some("offline")
    });

    // Decommissioned: every retained topic of pi-a is cleared, and the bridge forgets it.
    let out = Command::new(hub_bin())
        .args(["--broker", &broker.url(), "forget", DEV])
        .stderr(Stdio::inherit())
        .output()
        .expect("hub forget");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "FORGOTTEN pi-a: cleared homeassistant/device/pi-a/config edge-json/pi-a/availability \
         edge-json/pi-a/summary edge-json/pi-a/status edge/pi-a/status (acknowledged by the broker)"
    );
    wait_record(&hub, "forgotten", |v| {
        v["type"] == "forgotten" && v["device"] == DEV
    });
    let left = retained_until(port, &all, "pi-a cleared", |r| {
        !r.keys().any(|t| t.contains("pi-a"))
    });
    assert_eq!(left.keys().collect::<Vec<_>>(), ["edge-json/availability"]);
    let sub = live(port, "homeassistant/device/#");
    publish(port, "homeassistant/status", b"online");
    while let Some(l) = sub.next_line(Duration::from_secs(2)) {
        assert!(
            !l.starts_with("homeassistant/device/"),
            "pi-a came back: {l}"
        );
    }
    let (status, rest) = hub.terminate(WAIT).expect("stop hub");
    assert!(status.success());
    assert!(!rest.iter().any(|v| v["type"] == "rejected"), "{rest:#?}");
}

#[test]
fn the_hub_will_makes_every_entity_unavailable() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let hub = bridge(&broker);
    retained_until(
        broker.port,
        &["edge-json/availability"],
        "hub online",
        |r| r.get("edge-json/availability").map(String::as_str) == Some("online"),
    );
    drop(hub); // SIGKILL: no goodbye, so the broker publishes the will.
    retained_until(
        broker.port,
        &["edge-json/availability"],
        "hub offline",
        |r| r.get("edge-json/availability").map(String::as_str) == Some("offline"),
    );
}

#[test]
fn no_ha_publishes_no_discovery() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let hub = JsonHub::start_with_args(hub_bin(), &broker.url(), &["bridge", "--no-ha"], WAIT)
        .unwrap_or_else(|e| panic!("{e}"))
        .0;
    publish_args(broker.port, "edge/pi-a/status", &birth(), &["-r"]);
    retained_until(broker.port, &["edge-json/#"], "bridged status", |r| {
        r.contains_key("edge-json/pi-a/status")
    });
    let got = retained(broker.port, &["homeassistant/#", "edge-json/#"]);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["edge-json/pi-a/status"]);
    drop(hub);
}

/// The fleet ACL (docs/mosquitto-acl.conf) with users `hub`, `pi-a` and `homeassistant`.
#[test]
fn discovery_works_under_the_fleet_acl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = dir.path().join("passwd");
    for (i, user) in ["hub", "pi-a", "homeassistant"].iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg(&passwd)
            .args([*user, &format!("{user}-pw")])
            .status()
            .expect("mosquitto_passwd");
        assert!(ok.success());
    }
    std::fs::write(dir.path().join("hub.password"), "hub-pw\n").expect("write");
    let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/mosquitto-acl.conf");
    let broker = PrivateBroker::start_with(&format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        passwd.display(),
        acl.display()
    ))
    .expect("mosquitto");
    let port = broker.port;
    let pw_file = dir.path().join("hub.password");
    let hub_auth = [
        "--username",
        "hub",
        "--password-file",
        pw_file.to_str().expect("utf-8"),
    ];
    let ha = ["-u", "homeassistant", "-P", "homeassistant-pw"];
    let hub = JsonHub::start_with_args(
        hub_bin(),
        &broker.url(),
        &[&hub_auth[..], &["bridge"]].concat(),
        WAIT,
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .0;
    publish_args(
        port,
        "edge/pi-a/status",
        &birth(),
        &["-r", "-u", "pi-a", "-P", "pi-a-pw"],
    );
    let got = retained_until_as(
        port,
        &ha,
        &["homeassistant/#", "edge-json/#"],
        "config",
        |r| {
            r.contains_key(CONFIG)
                && r.get("edge-json/pi-a/availability")
                    .is_some_and(|a| a == "online")
        },
    );
    let sub = live_as(port, &ha, "homeassistant/device/+/config");
    publish_args(port, "homeassistant/status", b"online", &ha);
    let (line, _) = sub.wait_for("the config again", |l| l.starts_with(CONFIG));
    assert_eq!(line, format!("{CONFIG} {}", got[CONFIG]));
    let out = Command::new(hub_bin())
        .args(["--broker", &broker.url()])
        .args(hub_auth)
        .args(["forget", DEV])
        .output()
        .expect("hub forget");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_record(&hub, "forgotten", |v| {
        v["type"] == "forgotten" && v["device"] == DEV
    });
    let hub_read = ["-u", "hub", "-P", "hub-pw"];
    retained_until_as(port, &hub_read, &["edge/#"], "agent status cleared", |r| {
        r.is_empty()
    });
    retained_until_as(
        port,
        &ha,
        &["homeassistant/#", "edge-json/#"],
        "pi-a cleared",
        |r| !r.keys().any(|t| t.contains("pi-a")),
    );
}

#[test]
fn hub_serve_announces_devices_through_the_same_bridge() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let port = broker.port;
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = serve_kit::ServeHub::start(&broker.url(), dir.path(), &[]);
    publish_args(port, "edge/pi-a/status", &birth(), &["-r"]);
    publish(port, "edge/pi-a/metrics", &metrics());
    let got = retained_until(port, &["homeassistant/#", "edge-json/#"], "config", |r| {
        r.get(CONFIG)
            .is_some_and(|c| c.contains("temp_cpu_thermal"))
    });
    check_schema(CONFIG, &serde_json::from_str(&got[CONFIG]).expect("config"));
    assert_eq!(got["edge-json/availability"], "online");
    assert_eq!(got["edge-json/pi-a/availability"], "online");
    let sub = live(port, "homeassistant/device/+/config");
    publish(port, "homeassistant/status", b"online");
    let (line, _) = sub.wait_for("the config again", |l| l.starts_with(CONFIG));
    assert_eq!(line, format!("{CONFIG} {}", got[CONFIG]));
    let (status, _) = hub.stop();
    assert!(status.success());
}
