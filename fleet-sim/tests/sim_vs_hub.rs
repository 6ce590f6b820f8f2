//! The simulator against a real mosquitto and the real hub (`hub --json --totals-every 1`):
//! 20 devices with outages and restarts, each on its own connection (real wills) and then on
//! 4 shared ones (wills published by the simulator). The hub's per-device totals (batches,
//! delivered events, drops) equal what the simulator says the broker acknowledged, exactly,
//! with nothing missing or duplicated; each device's births, wills and shutdowns reach the hub
//! as online and offline records, an outage as `ConnectionLost` followed by an `online` one
//! session higher; and the same seed makes the same fleet whatever the connections.

use std::{
    collections::BTreeMap,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use edge_hub::testkit::{JsonHub, PrivateBroker};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);

fn sim(url: &str, prefix: &str, extra: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_fleet-sim"))
        .args([
            "--broker", url, "--prefix", prefix, "--json", "--seed", "42",
        ])
        .args(["--devices", "20", "--rate", "20", "--duration", "4"])
        .args([
            "--outage-every",
            "2",
            "--outage-for",
            "0.5",
            "--restart-every",
            "3",
        ])
        .args([
            "--metrics-every",
            "1",
            "--drop-chance",
            "0.2",
            "--drain",
            "20",
        ])
        .args(extra)
        .output()
        .expect("fleet-sim");
    assert!(
        out.status.success(),
        "fleet-sim failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("summary JSON")
}

/// Records of the hub until its totals match `expected` (device -> (batches, events, drops)),
/// or panics after WAIT showing the last totals.
fn until_totals(hub: &JsonHub, expected: &BTreeMap<String, (u64, u64, Value)>) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    let mut records = Vec::new();
    let mut last: BTreeMap<String, (u64, u64, Value)> = BTreeMap::new();
    loop {
        let Some((_, v)) = hub.next_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            panic!("hub totals never matched:\nhub {last:#?}\nsim {expected:#?}");
        };
        if v["type"] == "totals" {
            assert_eq!(v["missing_batches"], 0, "{v}");
            assert_eq!(v["duplicate_batches"], 0, "{v}");
            let d = v["device"].as_str().unwrap_or_default().to_owned();
            let t = (
                v["batches"].as_u64().unwrap_or(0),
                v["delivered_events"].as_u64().unwrap_or(0),
                v["drops"].clone(),
            );
            last.insert(d, t);
            if last == *expected {
                return records;
            }
        }
        records.push(v);
    }
}

/// (device -> (batches, events, drops)) from the simulator's summary.
fn expected(summary: &Value) -> BTreeMap<String, (u64, u64, Value)> {
    summary["per_device"]
        .as_object()
        .expect("per_device")
        .iter()
        .map(|(d, t)| {
            let totals = (
                t["batches"].as_u64().unwrap_or(0),
                t["events"].as_u64().unwrap_or(0),
                t["drops"].clone(),
            );
            (d.clone(), totals)
        })
        .collect()
}

/// The (kind, session, cause) status records of each device, in arrival order.
fn statuses(records: &[Value]) -> BTreeMap<String, Vec<(String, u64, String)>> {
    let mut out: BTreeMap<String, Vec<(String, u64, String)>> = BTreeMap::new();
    for v in records {
        let kind = v["type"].as_str().unwrap_or_default();
        if kind == "online" || kind == "offline" {
            out.entry(v["device"].as_str().unwrap_or_default().to_owned())
                .or_default()
                .push((
                    kind.to_owned(),
                    v["body"]["session"].as_u64().unwrap_or(0),
                    v["body"]["cause"].as_str().unwrap_or_default().to_owned(),
                ));
        }
    }
    out
}

fn check_statuses(summary: &Value, records: &[Value]) {
    let seen = statuses(records);
    let mut lost_then_online = 0;
    for (d, t) in summary["per_device"].as_object().expect("per_device") {
        let s = seen.get(d).cloned().unwrap_or_default();
        let count = |kind: &str, cause: &str| {
            s.iter().filter(|(k, _, c)| k == kind && c == cause).count() as u64
        };
        assert_eq!(
            Some(count("online", "")),
            t["births"].as_u64(),
            "{d}: {s:?}"
        );
        assert_eq!(
            Some(count("offline", "Shutdown")),
            t["deaths_shutdown"].as_u64(),
            "{d}"
        );
        assert_eq!(
            Some(count("offline", "ConnectionLost")),
            t["outages"].as_u64(),
            "{d}: {s:?}"
        );
        for w in s.windows(2) {
            if w[0].0 == "offline" && w[0].2 == "ConnectionLost" {
                assert_eq!(w[1].0, "online", "{d}: {s:?}");
                assert_eq!(w[1].1, w[0].1 + 1, "{d}: the next session: {s:?}");
                lost_then_online += 1;
            }
        }
    }
    assert!(
        lost_then_online >= 10,
        "outages happened: {lost_then_online}"
    );
}

#[test]
fn the_hub_counts_exactly_what_the_simulator_published() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let hub_bin = Path::new(env!("CARGO_BIN_EXE_fleet-sim"))
        .with_file_name("hub")
        .to_path_buf();
    let (hub, _) =
        JsonHub::start_with_args(&hub_bin, &broker.url(), &["--totals-every", "1"], WAIT)
            .unwrap_or_else(|e| panic!("{e} (build the hub first: cargo build -p edge-hub)"));

    let own = sim(&broker.url(), "edge", &[]);
    assert_eq!(
        (own["connections"].as_u64(), own["own_links"].as_bool()),
        (Some(20), Some(true))
    );
    assert_eq!(own["unacknowledged"], 0);
    assert_eq!(own["connection_errors"], 0);
    let fleet = &own["fleet"];
    assert!(fleet["events"].as_u64().unwrap_or(0) > 1000, "{fleet}");
    assert!(
        fleet["drops"].as_object().is_some_and(|d| !d.is_empty()),
        "{fleet}"
    );
    let want = expected(&own);
    let records = until_totals(&hub, &want);
    check_statuses(&own, &records);

    // The same seed over 4 shared connections: the same devices, runs and events.
    let (hub2, _) = JsonHub::start_with_args(
        &hub_bin,
        &broker.url(),
        &["--prefix", "edge2", "--totals-every", "1"],
        WAIT,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let shared = sim(&broker.url(), "edge2", &["--connections", "4"]);
    assert_eq!(
        (
            shared["connections"].as_u64(),
            shared["own_links"].as_bool()
        ),
        (Some(4), Some(false))
    );
    assert_eq!(expected(&shared), want, "a seed makes the same fleet");
    for (d, t) in shared["per_device"].as_object().expect("per_device") {
        assert_eq!(
            t["deaths_connection_lost"], t["outages"],
            "{d}: wills published by the simulator"
        );
        assert_eq!(t["run_id"], own["per_device"][d]["run_id"], "{d}");
    }
    let records = until_totals(&hub2, &want);
    check_statuses(&shared, &records);
}
