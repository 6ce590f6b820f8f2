//! The hub binary against a real mosquitto: malformed and unknown-version payloads are
//! rejected and counted while good ones still decode; commands on `cmd/` are ignored; gaps are
//! reported; duplicates are not shown again; the totals printed on SIGTERM (text and JSON) and
//! every `--totals-every` are exact for a scripted sequence; the hub rides out a broker restart;
//! the bridge republishes JSON.

mod common;

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use common::*;
use edge_hub::testkit::{JsonHub, PrivateBroker};
use serde_json::{Value, json};

fn json_hub(broker: &PrivateBroker, args: &[&str]) -> JsonHub {
    JsonHub::start_with_args(hub_bin(), &broker.url(), args, WAIT)
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// The next record matching `pred`; the ones skipped on the way are appended to `seen`.
fn wait_record(
    hub: &JsonHub,
    seen: &mut Vec<Value>,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        match hub.next_timeout(deadline.saturating_duration_since(Instant::now())) {
            Some((_, v)) if pred(&v) => return v,
            Some((_, v)) => seen.push(v),
            None => panic!("never saw {what}; saw {seen:#?}\nstderr:\n{}", hub.stderr()),
        }
    }
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|v| v["type"] == t).collect()
}

#[test]
fn malformed_payloads_are_rejected_counted_and_the_hub_keeps_going() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let h = json_hub(&broker, &[]);
    let mut seen = Vec::new();
    publish(
        broker.port,
        "edge/pi7/events",
        b"\x02\xff\xff\xff\xff\xff\xff",
    );
    let mut future = batch("pi7", "b", 1, 0, &[], &[]);
    future[0] = 7;
    publish(broker.port, "edge/pi7/events", &future);
    publish(
        broker.port,
        "edge/pi7/events",
        &batch("pi7", "b", 1, 0, &[], &[]),
    );
    let v1 = wait_record(&h, &mut seen, "first rejection", |v| {
        v["type"] == "rejected"
    });
    assert_eq!(
        (v1["rejected_total"].as_u64(), v1["kind"].as_str()),
        (Some(1), Some("malformed"))
    );
    let v2 = wait_record(&h, &mut seen, "second rejection", |v| {
        v["type"] == "rejected"
    });
    assert_eq!(v2["rejected_total"], 2);
    assert_eq!(
        v2["reason"],
        "unknown schema version 7 (this build knows 2)"
    );
    // Still alive and decoding: good batches after the bad ones, then a gap is reported.
    publish(
        broker.port,
        "edge/pi7/events",
        &batch("pi7", "b", 1, 1, &[], &[]),
    );
    publish(
        broker.port,
        "edge/pi7/events",
        &batch("pi7", "b", 1, 4, &[], &[]),
    );
    let gap = wait_record(&h, &mut seen, "gap", |v| v["type"] == "gap");
    assert_eq!(
        gap,
        json!({"type": "gap", "device": "pi7", "expected": 2, "got": 4, "lost": 2})
    );
}

#[test]
fn commands_for_the_agents_are_ignored_not_rejected() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let h = json_hub(&broker, &[]);
    publish(broker.port, "edge/pi7/cmd/rebirth", b"");
    publish(broker.port, "edge/pi7/cmd/other", b"not a wire payload");
    publish(
        broker.port,
        "edge/pi7/events",
        &batch("pi7", "b", 1, 0, &[5], &[]),
    );
    let mut seen = Vec::new();
    wait_record(&h, &mut seen, "the batch's event", |v| v["type"] == "event");
    let (st, rest) = h.terminate(WAIT).expect("terminate");
    assert!(st.success(), "{st}");
    seen.extend(rest);
    assert!(of_type(&seen, "rejected").is_empty(), "{seen:#?}");
    assert_eq!(
        of_type(&seen, "hub_totals"),
        vec![
            &json!({"type": "hub_totals", "accepted": 1, "duplicates": 0, "ignored": 2, "rejected": {}, "rejected_total": 0})
        ]
    );
}

#[test]
fn duplicates_are_not_shown_again_and_the_totals_on_sigterm_are_exact() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let jh = json_hub(&broker, &[]);
    let text = Proc::spawn(
        Command::new(hub_bin())
            .args(["--broker", &broker.url()])
            .env("RUST_LOG", "info"),
    );
    // The text hub says nothing on stdout when subscribed: it logs it.
    let deadline = Instant::now() + WAIT;
    while !text.stderr().contains("subscribed to edge/+/#") {
        assert!(
            Instant::now() < deadline,
            "text hub never subscribed:\n{}",
            text.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A live run (2) and the replayed spool of the previous run (1), interleaved; exit codes
    // name each event so a repeat would show.
    let live = |seq, codes: &[i32], drops: &[(&str, u64)]| batch("pi7", "b", 2, seq, codes, drops);
    let old = |seq, codes: &[i32], drops: &[(&str, u64)]| batch("pi7", "b", 1, seq, codes, drops);
    let script = [
        live(0, &[1, 2], &[("ring:bind", 3)]),
        live(1, &[3], &[]),
        live(1, &[3], &[]),
        live(4, &[4], &[("queue", 2)]),
        old(9, &[90, 91], &[("spool", 1)]),
        old(8, &[80], &[]),
        live(2, &[5], &[]),
        old(9, &[90, 91], &[("spool", 1)]),
    ];
    for payload in &script {
        publish(broker.port, "edge/pi7/events", payload);
    }
    // A last batch from another device: once a hub shows it, it has handled everything before.
    publish(
        broker.port,
        "edge/pi8/events",
        &batch("pi8", "c", 3, 0, &[8], &[]),
    );
    let mut seen = Vec::new();
    let last = wait_record(&jh, &mut seen, "pi8's event", |v| {
        v["type"] == "event" && v["device"] == "pi8"
    });
    seen.push(last);
    let (st, rest) = jh.terminate(WAIT).expect("terminate");
    assert!(st.success(), "{st}");
    seen.extend(rest);
    let mut codes: Vec<i64> = of_type(&seen, "event")
        .iter()
        .filter_map(|v| v["event"]["Exit"]["how"]["Code"].as_i64())
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        vec![1, 2, 3, 4, 5, 8, 80, 90, 91],
        "each event exactly once"
    );
    assert_eq!(
        of_type(&seen, "duplicate"),
        vec![
            &json!({"type": "duplicate", "device": "pi7", "boot_id": "b", "run_id": 2, "seq": 1}),
            &json!({"type": "duplicate", "device": "pi7", "boot_id": "b", "run_id": 1, "seq": 9}),
        ]
    );
    assert_eq!(
        of_type(&seen, "gap"),
        vec![&json!({"type": "gap", "device": "pi7", "expected": 2, "got": 4, "lost": 2})]
    );
    assert_eq!(
        of_type(&seen, "drops").len(),
        3,
        "drops of distinct batches only"
    );
    assert_eq!(
        of_type(&seen, "totals"),
        vec![
            &json!({
                "type": "totals",
                "device": "pi7",
                "delivered_events": 8,
                "drops": {"queue": 2, "ring:bind": 3, "spool": 1},
                "missing_batches": 1,
                "duplicate_batches": 2,
                "batches": 6,
            }),
            &json!({"type": "totals", "device": "pi8", "delivered_events": 1, "drops": {}, "missing_batches": 0, "duplicate_batches": 0, "batches": 1}),
        ]
    );
    assert_eq!(
        of_type(&seen, "hub_totals"),
        vec![
            &json!({"type": "hub_totals", "accepted": 7, "duplicates": 2, "ignored": 0, "rejected": {}, "rejected_total": 0})
        ]
    );

    // The text hub saw the same: every event line once, one GAP line, the same totals.
    let (sentinel, mut lines) = text.wait_for("pi8's event", |l| l.starts_with("pi8 "));
    lines.push(sentinel);
    let (st, rest) = text.terminate();
    assert!(st.success(), "{st}");
    lines.extend(rest);
    let exits: Vec<&String> = lines.iter().filter(|l| l.contains(" exit code ")).collect();
    assert_eq!(exits.len(), 9, "{lines:#?}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("GAP "))
            .collect::<Vec<_>>(),
        vec!["GAP pi7: expected batch 2 got 4 (2 batches lost)"]
    );
    assert_eq!(
        lines[lines.len() - 3..],
        [
            "TOTALS pi7: batches 6 delivered events 8 missing batches 1 duplicate batches 2 drops queue=2 ring:bind=3 spool=1",
            "TOTALS pi8: batches 1 delivered events 1 missing batches 0 duplicate batches 0 drops none",
            "HUB accepted 7 duplicates 2 ignored 0 rejected 0",
        ]
    );
}

#[test]
fn totals_every_prints_totals_while_running() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let h = json_hub(&broker, &["--totals-every", "0.3"]);
    publish(
        broker.port,
        "edge/pi7/events",
        &batch("pi7", "b", 1, 0, &[1, 2], &[]),
    );
    let mut seen = Vec::new();
    let t = wait_record(&h, &mut seen, "periodic totals with the batch", |v| {
        v["type"] == "totals" && v["batches"] == 1
    });
    assert_eq!(
        t,
        json!({"type": "totals", "device": "pi7", "delivered_events": 2, "drops": {}, "missing_batches": 0, "duplicate_batches": 0, "batches": 1})
    );
    // The hub-wide record follows each report, and the reports keep coming.
    wait_record(&h, &mut seen, "hub totals", |v| v["type"] == "hub_totals");
    wait_record(&h, &mut seen, "another report", |v| v["type"] == "totals");
}

#[test]
fn the_hub_resubscribes_after_a_broker_restart() {
    let mut broker = PrivateBroker::start().expect("mosquitto");
    let port = broker.port;
    let h = json_hub(&broker, &[]);
    broker.stop().expect("stop");
    assert!(!broker.is_running());
    broker.restart().expect("restart on the same port");
    assert_eq!(broker.port, port);
    let mut seen = Vec::new();
    wait_record(&h, &mut seen, "subscribed again", |v| {
        v["type"] == "hub" && v["state"] == "subscribed"
    });
    publish(port, "edge/pi7/events", &batch("pi7", "b", 1, 0, &[7], &[]));
    let ev = wait_record(&h, &mut seen, "the event after the restart", |v| {
        v["type"] == "event"
    });
    assert_eq!(ev["event"]["Exit"]["how"]["Code"], 7);
}

#[test]
fn bridge_republishes_json() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let _h = json_hub(&broker, &["bridge"]);
    let sub = Proc::spawn(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &broker.port.to_string(),
        "-t",
        "edge-json/#",
        "-v",
    ]));
    // mosquitto_sub says nothing when it has subscribed: publish until it sees one (a message
    // sent before its subscription is simply not delivered to it).
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (stop, port) = (stop.clone(), broker.port);
        std::thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) && seq < 150 {
                publish(
                    port,
                    "edge/pi7/events",
                    &batch("pi7", "b", 1, seq, &[], &[]),
                );
                seq += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let (line, _) = sub.wait_for("bridged batch", |l| l.starts_with("edge-json/pi7/events "));
    stop.store(true, Ordering::Relaxed);
    let _ = publisher.join();
    let v: Value =
        serde_json::from_str(line.split_once(' ').expect("topic payload").1).expect("json");
    assert_eq!(v["type"], "events");
    assert_eq!(v["device"], "pi7");
    assert_eq!(v["body"]["run_id"], 1);
    assert!(v["body"]["seq"].is_u64(), "{v}");
}
