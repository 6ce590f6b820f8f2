//! `hub rebirth <device>` against a real mosquitto: it publishes an empty, non-retained QoS 1
//! message on `<prefix>/<device>/cmd/rebirth` (seen by mosquitto_sub) and exits 0 after the
//! PUBACK; with no broker it gives up within its `--timeout` and says why.

mod common;

use std::{
    process::Command,
    time::{Duration, Instant},
};

use common::*;
use edge_hub::testkit::{PrivateBroker, free_port};

fn rebirth(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(hub_bin())
        .args(["--broker", url, "rebirth"])
        .args(args)
        .output()
        .expect("hub rebirth")
}

#[test]
fn rebirth_publishes_an_empty_qos1_message_on_the_cmd_topic() {
    let broker = PrivateBroker::start().expect("mosquitto");
    // topic, QoS, retain flag, payload length.
    let sub = Proc::spawn(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-q",
        "1",
        "-t",
        "edge/+/cmd/#",
        "-F",
        "%t %q %r %l",
    ]));
    // mosquitto_sub does not say when it has subscribed: ask again until it has seen one.
    let deadline = Instant::now() + WAIT;
    let line = loop {
        let out = rebirth(&broker.url(), &["dev1"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "REBIRTH requested from dev1 on edge/dev1/cmd/rebirth (acknowledged by the broker)\n"
        );
        if let Some(l) = sub.next_line(Duration::from_millis(300)) {
            break l;
        }
        assert!(
            Instant::now() < deadline,
            "mosquitto_sub never saw the request"
        );
    };
    assert_eq!(line, "edge/dev1/cmd/rebirth 1 0 0");

    // JSON mode and another prefix.
    let out = rebirth(&broker.url(), &["dev2", "--json", "--prefix", "fleet"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON record");
    assert_eq!(
        v,
        serde_json::json!({"type": "rebirth", "device": "dev2", "topic": "fleet/dev2/cmd/rebirth", "acknowledged": true})
    );

    // Not retained: a new subscriber gets nothing.
    let late = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &broker.port.to_string()])
        .args(["-t", "edge/dev1/cmd/#", "-C", "1", "-W", "1"])
        .output()
        .expect("mosquitto_sub");
    assert!(late.stdout.is_empty(), "{:?}", late.stdout);
}

#[test]
fn rebirth_gives_up_within_its_timeout_when_the_broker_is_unreachable() {
    let port = free_port().expect("port");
    let url = format!("mqtt://127.0.0.1:{port}");
    let started = Instant::now();
    let out = rebirth(&url, &["dev1", "--timeout", "1"]);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1));
    assert!(took < Duration::from_secs(10), "took {took:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "hub: {url}: no acknowledgement for edge/dev1/cmd/rebirth within 1s (broker unreachable: I/O: Connection refused (os error 111))"
        )
    );
    assert!(out.stdout.is_empty());

    // Flags are checked before any connection.
    let out = rebirth(&url, &["dev1", "--totals-every", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("--totals-every applies to monitoring, not to `hub rebirth`")
    );
    let out = rebirth(&url, &["a/b"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'a/b' for '<DEVICE>'"));
}
