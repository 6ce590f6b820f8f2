//! A broker slow to accept (its CONNACK held back 600 ms by a loopback proxy, as a loaded
//! broker or a slow TLS handshake would): `hub serve` (flushing every 250 ms) and `hub --json
//! --totals-every 0.25` still connect, on their first connection, and take in what the fleet
//! publishes. Before the hub's event loop had one owner, the 250 ms timer cancelled every
//! connection attempt half way and the hub never connected.

mod common;
mod serve_kit;

use std::time::{Duration, Instant};

use common::{WAIT, hub_bin, proxy::SlowProxy};
use edge_hub::testkit::{JsonHub, PrivateBroker};
use serve_kit::{
    ServeHub,
    fleet::{Publisher, batch, birth, exit},
};

const CONNACK_DELAY: Duration = Duration::from_millis(600);

#[test]
fn serve_connects_to_a_broker_slow_to_accept_and_records_data() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let proxy = SlowProxy::start(broker.port, CONNACK_DELAY);
    let dir = tempfile::tempdir().expect("tempdir");
    // Waits (30 s at most) for "subscribed to" in the hub's log.
    let hub = ServeHub::start(
        &proxy.url(),
        dir.path(),
        &["--no-bridge", "--flush-ms", "250"],
    );
    let mut sim = Publisher::connect(broker.port, "sim-slow");
    sim.publish("edge/pi-s/status", birth("pi-s", 1), true);
    sim.publish(
        "edge/pi-s/events",
        batch("pi-s", 0, vec![exit(10, 0), exit(11, 3)], &[]),
        false,
    );
    sim.wait_acked(WAIT);
    let devices = hub.wait_json("/api/devices", "pi-s with 2 events", |v| {
        v[0]["device"] == "pi-s" && v[0]["events"] == 2
    });
    assert_eq!(devices[0]["status"], "online");
    let stored = hub.wait_json("/api/events?device=pi-s&kind=exit", "2 stored exits", |v| {
        v.as_array().is_some_and(|a| a.len() == 2)
    });
    assert_eq!(stored[1]["detail"]["Exit"]["how"]["Code"], 3);
    assert_eq!(proxy.connections(), 1, "one connection, never abandoned");
    let (status, log) = hub.stop();
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("hub: connected to").count(), 1, "{log}");
}

#[test]
fn the_monitor_connects_to_a_broker_slow_to_accept() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let proxy = SlowProxy::start(broker.port, CONNACK_DELAY);
    let started = Instant::now();
    let (hub, _) =
        JsonHub::start_with_args(hub_bin(), &proxy.url(), &["--totals-every", "0.25"], WAIT)
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(started.elapsed() >= CONNACK_DELAY);
    common::publish(
        broker.port,
        "edge/pi-m/events",
        &common::batch("pi-m", "b", 1, 0, &[0, 1, 2], &[]),
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (_, v) = hub
            .next_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|| panic!("no totals for pi-m; stderr:\n{}", hub.stderr()));
        if v["type"] == "totals" && v["device"] == "pi-m" {
            assert_eq!(
                (v["batches"].as_u64(), v["delivered_events"].as_u64()),
                (Some(1), Some(3))
            );
            break;
        }
    }
    assert_eq!(proxy.connections(), 1, "one connection, never abandoned");
    let (status, _) = hub.terminate(WAIT).expect("stop hub");
    assert!(status.success());
}
