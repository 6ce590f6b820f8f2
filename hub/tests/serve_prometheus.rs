//! A real Prometheus (Debian's package) scrapes `hub serve` every second; its HTTP API returns
//! the series of a simulated device (online state, last-seen age, CPU, memory, load,
//! temperature, the agent's RSS and counters, events by kind, drops by source, missing
//! batches) and the hub's own counters (accepted, rejected by reason).

mod common;
mod serve_kit;

use common::WAIT;
use edge_hub::testkit::PrivateBroker;
use serve_kit::{
    ServeHub,
    fleet::{Publisher, T0_MS, batch, birth, exec, exit, metrics},
    prometheus::Prometheus,
};

#[test]
fn prometheus_scrapes_the_fleet_from_the_hub() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = ServeHub::start(&broker.url(), dir.path(), &["--no-bridge"]);
    let mut sim = Publisher::connect(broker.port, "sim-prom");
    sim.publish("edge/pi-p/status", birth("pi-p", 1), true);
    sim.publish(
        "edge/pi-p/metrics",
        metrics("pi-p", T0_MS, 42.5, 55.25),
        false,
    );
    let events = vec![exit(1, 0), exit(2, 1), exec(3, "sh", "/bin/sh")];
    sim.publish(
        "edge/pi-p/events",
        batch("pi-p", 0, events, &[("ring:exec", 3)]),
        false,
    );
    sim.publish("edge/pi-p/events", batch("pi-p", 2, vec![], &[]), false);
    sim.publish("edge/pi-p/events", b"\x02\xff\xff\xff\xff".to_vec(), false);
    sim.wait_acked(WAIT);
    hub.wait_json("/api/devices/pi-p", "the batches counted", |v| {
        v["device"]["events"] == 3
    });

    let target = hub.url.trim_start_matches("http://").to_owned();
    let prom = Prometheus::start(&target);
    prom.wait_value("up{job=\"edge-hub\"}", "1");
    let d = "device=\"pi-p\"";
    for (q, want) in [
        (format!("edge_device_online{{{d}}}"), "1"),
        (format!("edge_device_cpu_percent{{{d}}}"), "42.5"),
        (
            format!("edge_device_memory_used_bytes{{{d}}}"),
            "2048000000",
        ),
        (
            format!("edge_device_memory_total_bytes{{{d}}}"),
            "8192000000",
        ),
        (format!("edge_device_load{{{d},period=\"1m\"}}"), "0.5"),
        (
            format!("edge_device_temperature_celsius{{{d},sensor=\"cpu_thermal\"}}"),
            "55.25",
        ),
        (format!("edge_agent_rss_bytes{{{d}}}"), "6291456"),
        (format!("edge_agent_events_total{{{d}}}"), "1000"),
        (
            format!("edge_agent_drops_total{{{d},source=\"ring:exec\"}}"),
            "4",
        ),
        (
            format!("edge_device_events_total{{{d},kind=\"exit\"}}"),
            "2",
        ),
        (
            format!("edge_device_events_total{{{d},kind=\"exec\"}}"),
            "1",
        ),
        (
            format!("edge_device_drops_total{{{d},source=\"ring:exec\"}}"),
            "3",
        ),
        (format!("edge_device_missing_batches{{{d}}}"), "1"),
        (format!("edge_device_duplicate_batches_total{{{d}}}"), "0"),
        (
            format!("count(edge_device_last_seen_age_seconds{{{d}}} >= 0)"),
            "1",
        ),
        ("edge_hub_messages_accepted_total".into(), "4"),
        (
            "edge_hub_messages_rejected_total{reason=\"malformed\"}".into(),
            "1",
        ),
        (
            "edge_hub_messages_rejected_total{reason=\"wrong_device\"}".into(),
            "0",
        ),
        ("edge_hub_devices".into(), "1"),
    ] {
        prom.wait_value(&q, want);
    }
    // The series carry the scrape target's labels too.
    let cpu = prom.wait_value(&format!("edge_device_cpu_percent{{{d}}}"), "42.5");
    assert_eq!(cpu["metric"]["job"], "edge-hub");
    assert_eq!(cpu["metric"]["instance"], target.as_str());
    drop(prom);
    let (status, log) = hub.stop();
    assert!(status.success(), "{log}");
}
