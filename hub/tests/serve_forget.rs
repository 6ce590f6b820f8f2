//! `hub forget` against a running `hub serve` (real mosquitto, bridge and Home Assistant on):
//! the cleared retained status is a deletion, not a rejected payload; the device leaves the
//! fleet view and the API, its stored history is deleted (also for `hub query`), and it stays
//! gone after a hub restart, while the other device keeps everything. A malformed status
//! payload is still rejected and counted.

mod common;
mod serve_kit;

use common::WAIT;
use edge_hub::testkit::PrivateBroker;
use serde_json::{Value, json};
use serve_kit::{
    ServeHub,
    fleet::{Publisher, T0_MS, batch, birth, exit, metrics},
    hub_run,
};

fn len(v: &Value) -> usize {
    v.as_array().map_or(0, Vec::len)
}

fn device_ids(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(|d| d["device"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn hub_forget_removes_the_device_and_its_history_without_a_rejection() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = ServeHub::start(&broker.url(), dir.path(), &[]);
    let mut sim = Publisher::connect(broker.port, "sim-forget");
    for d in ["pi-f", "pi-k"] {
        sim.publish(&format!("edge/{d}/status"), birth(d, 1), true);
        sim.publish(
            &format!("edge/{d}/events"),
            batch(d, 0, vec![exit(10, 0), exit(11, 1)], &[]),
            false,
        );
        sim.publish(
            &format!("edge/{d}/metrics"),
            metrics(d, T0_MS, 10.0, 40.0),
            false,
        );
    }
    sim.wait_acked(WAIT);
    for d in ["pi-f", "pi-k"] {
        hub.wait_json(
            &format!("/api/events?device={d}"),
            "a status and 2 exits stored",
            |v| len(v) == 3,
        );
        hub.wait_json(&format!("/api/metrics?device={d}"), "a sample", |v| {
            len(v) == 1
        });
    }

    let (st, out, err) = hub_run(&["--broker", &broker.url(), "forget", "pi-f"]);
    assert!(st.success(), "{out}{err}");
    // Published after the broker acknowledged the cleared status, so taken in after it.
    sim.publish(
        "edge/pi-k/metrics",
        metrics("pi-k", T0_MS + 1000, 77.0, 40.0),
        false,
    );
    hub.wait_json("/api/devices/pi-k", "pi-k's second sample", |v| {
        v["device"]["cpu_percent"] == 77.0
    });
    assert_eq!(
        hub.get("/api/hub").json()["rejected"],
        json!({}),
        "a cleared status is not a rejected payload"
    );
    let devices = hub.wait_json("/api/devices", "pi-f gone", |v| len(v) == 1);
    assert_eq!(device_ids(&devices), ["pi-k"]);
    hub.wait_json("/api/events?device=pi-f", "pi-f's records deleted", |v| {
        v == &json!([])
    });
    assert_eq!(hub.get("/api/metrics?device=pi-f").json(), json!([]));
    assert_eq!(hub.get("/api/devices/pi-f").status, 404);
    hub.wait_stderr("hub: pi-f forgotten: its 6 stored rows deleted");
    assert_eq!(len(&hub.get("/api/events?device=pi-k").json()), 3);

    // A real malformed status is still rejected and counted.
    common::publish(
        broker.port,
        "edge/pi-k/status",
        b"\x02\xff\xff\xff\xff\xff\xff",
    );
    hub.wait_json("/api/hub", "one malformed payload counted", |v| {
        v["rejected"] == json!({"malformed": 1})
    });
    assert_eq!(hub.get("/api/hub").json()["devices"], 1);
    let (status, log) = hub.stop();
    assert!(status.success(), "{log}");

    // Gone after a restart too, and for `hub query`; pi-k keeps its history.
    let hub = ServeHub::start(&broker.url(), dir.path(), &[]);
    assert_eq!(device_ids(&hub.get("/api/devices").json()), ["pi-k"]);
    // pi-k's retained birth comes again and is stored after its first three records.
    hub.wait_json("/api/events?device=pi-k", "pi-k's birth again", |v| {
        len(v) == 4
    });
    let data = dir.path().to_str().expect("utf-8 path");
    let (st, out, err) = hub_run(&["query", "--data-dir", data, "--device", "pi-f", "--json"]);
    assert!(st.success(), "{err}");
    assert_eq!(out, "");
    let (st, out, err) = hub_run(&["query", "--data-dir", data, "--device", "pi-k", "--json"]);
    assert!(st.success(), "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    let (status, log) = hub.stop();
    assert!(status.success(), "{log}");
}
