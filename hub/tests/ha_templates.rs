//! The `value_template` of every discovered entity rendered with Jinja2 (the template engine
//! of Home Assistant; Debian's python3-jinja2) against the JSON that `hub bridge` really
//! published on the entity's state topic, with the expected values.

mod common;
mod ha_support;

use std::process::{Command, Stdio};

use common::*;
use edge_hub::testkit::PrivateBroker;
use ha_support::*;
use serde_json::{Value, json};

/// Renders each component's template with Jinja2 (the engine Home Assistant uses) against
/// the state the bridge published on its state topic.
#[test]
fn value_templates_render_the_bridged_state() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let port = broker.port;
    let _hub = bridge(&broker);
    let sub = live(port, "edge-json/pi-a/metrics");
    publish_args(port, "edge/pi-a/status", &birth(), &["-r"]);
    publish(port, "edge/pi-a/metrics", &metrics());
    publish(port, "edge/pi-a/events", &events());
    let (line, _) = sub.wait_for("bridged metrics", |l| {
        l.starts_with("edge-json/pi-a/metrics ")
    });
    let metrics_json = line
        .split_once(' ')
        .map(|(_, p)| p.to_owned())
        .unwrap_or_default();
    let got = retained_until(
        port,
        &["homeassistant/#", "edge-json/#"],
        "full config",
        |r| {
            r.get(CONFIG)
                .is_some_and(|c| c.contains("temp_cpu_thermal"))
                && r.get("edge-json/pi-a/summary")
                    .is_some_and(|s| s.contains("\"crashes\":1"))
        },
    );
    let config: Value = serde_json::from_str(&got[CONFIG]).expect("config");
    let mut jobs = serde_json::Map::new();
    for (key, c) in config["cmps"].as_object().expect("cmps") {
        let state = match c["state_topic"].as_str() {
            Some("edge-json/pi-a/metrics") => metrics_json.clone(),
            Some(t) => got
                .get(t)
                .cloned()
                .unwrap_or_else(|| panic!("{t} not retained")),
            None => panic!("{key} has no state topic"),
        };
        jobs.insert(
            key.clone(),
            json!({"template": c["value_template"], "payload": state}),
        );
    }
    let rendered = jinja(&Value::Object(jobs));
    assert_eq!(
        rendered,
        json!({"agent_rss": "7400", "cpu": "12.3", "crashes": "1", "drops": "5",
               "memory": "37.5", "new_listen_ports": "1", "temp_cpu_thermal": "51.5",
               "throttled": "ON", "under_voltage": "ON"})
    );
}

/// `{key: {template, payload}}` -> `{key: rendered}` with `value_json` the parsed payload.
fn jinja(jobs: &Value) -> Value {
    const SCRIPT: &str = "import json, sys, jinja2\n\
        env = jinja2.Environment()\n\
        jobs = json.load(sys.stdin)\n\
        print(json.dumps({k: env.from_string(j['template']).render(value=j['payload'], \
        value_json=json.loads(j['payload'])).strip() for k, j in jobs.items()}))\n";
    // Debian's python3-jinja2 is installed for the system interpreter.
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(jobs.to_string().as_bytes())
            .expect("write jobs");
    }
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "rendering failed (apt-get install python3-jinja2): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("rendered JSON")
}
