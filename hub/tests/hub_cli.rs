//! The hub binary against a real mosquitto: malformed and unknown-version payloads are
//! rejected and counted while good ones still decode; gaps are reported; the bridge
//! republishes JSON.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use edge_hub::testkit::PrivateBroker;
use edge_wire::{EventBatch, Message, bounded, encode};
use serde_json::Value;

struct Proc {
    child: Child,
    rx: mpsc::Receiver<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self { child, rx }
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if pred(&l) => return l,
                Ok(l) => seen.push(l),
                Err(_) => panic!("never saw {what}; saw:\n{}", seen.join("\n")),
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn publish(broker: &PrivateBroker, topic: &str, payload: &[u8]) {
    publish_to(broker.port, topic, payload);
}

fn publish_to(port: u16, topic: &str, payload: &[u8]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("payload");
    std::fs::write(&f, payload).expect("write");
    let st = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-f",
        ])
        .arg(&f)
        .status()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(st.success());
}

fn batch(seq: u32) -> Vec<u8> {
    encode(&Message::Events(EventBatch {
        device: bounded("pi7"),
        boot_id: bounded("b"),
        run_id: 1,
        seq,
        unix_ms: 1,
        mono_ns: 1,
        drops: vec![],
        events: vec![],
    }))
    .expect("encode")
}

fn hub(broker: &PrivateBroker, extra: &[&str]) -> Proc {
    let p = Proc::spawn(
        Command::new(env!("CARGO_BIN_EXE_hub"))
            .args(["--broker", &broker.url(), "--json"])
            .args(extra),
    );
    p.wait_for("subscribed", |l| l.contains("\"subscribed\""));
    p
}

#[test]
fn malformed_payloads_are_rejected_counted_and_the_hub_keeps_going() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let h = hub(&broker, &[]);
    publish(&broker, "edge/pi7/events", b"\x02\xff\xff\xff\xff\xff\xff");
    let mut future = batch(0);
    future[0] = 7;
    publish(&broker, "edge/pi7/events", &future);
    publish(&broker, "edge/pi7/events", &batch(0));
    let l1 = h.wait_for("first rejection", |l| l.contains("\"rejected\""));
    let v1: Value = serde_json::from_str(&l1).expect("json");
    assert_eq!(v1["rejected_total"], 1);
    assert!(
        v1["reason"].as_str().expect("reason").contains("malformed"),
        "{v1}"
    );
    let l2 = h.wait_for("second rejection", |l| l.contains("\"rejected\""));
    let v2: Value = serde_json::from_str(&l2).expect("json");
    assert_eq!(v2["rejected_total"], 2);
    assert!(
        v2["reason"]
            .as_str()
            .expect("reason")
            .contains("unknown schema version 7"),
        "{v2}"
    );
    // Still alive and decoding: a good batch after the bad ones, then a gap is reported.
    publish(&broker, "edge/pi7/events", &batch(1));
    publish(&broker, "edge/pi7/events", &batch(4));
    let gap: Value =
        serde_json::from_str(&h.wait_for("gap", |l| l.contains("\"gap\""))).expect("json");
    assert_eq!(
        (
            gap["expected"].as_u64(),
            gap["got"].as_u64(),
            gap["lost"].as_u64()
        ),
        (Some(2), Some(4), Some(2))
    );
}

#[test]
fn bridge_republishes_json() {
    let broker = PrivateBroker::start().expect("mosquitto");
    let _h = hub(&broker, &["bridge"]);
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
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let (stop, port) = (stop.clone(), broker.port);
        std::thread::spawn(move || {
            let mut seq = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && seq < 150 {
                publish_to(port, "edge/pi7/events", &batch(seq));
                seq += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let line = sub.wait_for("bridged batch", |l| l.starts_with("edge-json/pi7/events "));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = publisher.join();
    let v: Value =
        serde_json::from_str(line.split_once(' ').expect("topic payload").1).expect("json");
    assert_eq!(v["type"], "events");
    assert_eq!(v["device"], "pi7");
    assert!(v["body"]["seq"].is_u64(), "{v}");
}
