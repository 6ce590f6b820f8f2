//! Unit tests of the intake: gaps and duplicates per stream, restarts and reboots, rejections
//! counted by reason, commands ignored.

use edge_wire::{EventBatch, bounded, encode};

use super::*;

fn batch(device: &str, boot: &str, run_id: u64, seq: u32) -> Vec<u8> {
    encode(&Message::Events(EventBatch {
        device: bounded(device),
        boot_id: bounded(boot),
        run_id,
        seq,
        unix_ms: 1,
        mono_ns: 2,
        drops: vec![],
        events: vec![],
    }))
    .expect("encode")
}

fn gap(o: &Outcome) -> Option<(u32, u32, u32)> {
    match o {
        Outcome::Accepted { gap, .. } => gap.map(|g| (g.expected, g.got, g.lost)),
        other => panic!("not accepted: {other:?}"),
    }
}

#[test]
fn detects_gaps_and_tolerates_restarts_and_duplicates() {
    let mut hub = Hub::new("edge");
    let t = "edge/pi1/events";
    assert_eq!(gap(&hub.handle(t, &batch("pi1", "b1", 1, 0))), None);
    assert_eq!(gap(&hub.handle(t, &batch("pi1", "b1", 1, 1))), None);
    assert_eq!(
        gap(&hub.handle(t, &batch("pi1", "b1", 1, 5))),
        Some((2, 5, 3))
    );
    assert_eq!(
        hub.handle(t, &batch("pi1", "b1", 1, 5)),
        Outcome::Duplicate {
            device: "pi1".into(),
            boot_id: "b1".into(),
            run_id: 1,
            seq: 5
        }
    );
    // A late arrival fills the gap: no line.
    assert_eq!(gap(&hub.handle(t, &batch("pi1", "b1", 1, 3))), None);
    // A restart (new run) and a reboot (new boot) start new streams at any seq.
    assert_eq!(gap(&hub.handle(t, &batch("pi1", "b1", 2, 0))), None);
    assert_eq!(gap(&hub.handle(t, &batch("pi1", "b2", 3, 7))), None);
    assert_eq!(gap(&hub.handle(t, &batch("pi1", "b2", 3, 8))), None);
    assert_eq!(hub.counters.accepted, 7);
    assert_eq!(hub.counters.duplicates, 1);
    let s = hub.totals.device("pi1").expect("pi1");
    assert_eq!(
        (s.batches, s.missing_batches, s.duplicate_batches),
        (7, 2, 1)
    );
}

#[test]
fn commands_are_ignored_not_rejected() {
    let mut hub = Hub::new("edge");
    for topic in ["edge/pi1/cmd/rebirth", "edge/pi1/cmd", "edge/pi1/cmd/x/y"] {
        assert_eq!(
            hub.handle(topic, b""),
            Outcome::Ignored {
                topic: topic.into()
            }
        );
    }
    assert_eq!(hub.counters.ignored, 3);
    assert_eq!(hub.counters.rejected_total(), 0);
    // Only a whole `cmd` level is a command.
    assert!(matches!(
        hub.handle("edge/pi1/cmdx", b""),
        Outcome::Rejected {
            kind: Rejection::Empty,
            ..
        }
    ));
}

#[test]
fn rejects_and_counts_bad_payloads_by_reason() {
    let mut hub = Hub::new("edge");
    let good = batch("pi1", "b", 1, 0);
    let mut future = good.clone();
    future[0] = 9;
    let cases: Vec<(&str, Vec<u8>, Rejection, &str)> = vec![
        ("edge/pi1/events", vec![], Rejection::Empty, "empty"),
        (
            "edge/pi1/events",
            b"{\"json\":1}".to_vec(),
            Rejection::UnknownVersion,
            "unknown schema version 123",
        ),
        (
            "edge/pi1/events",
            future,
            Rejection::UnknownVersion,
            "unknown schema version 9",
        ),
        (
            "edge/pi1/events",
            good[..good.len() - 1].to_vec(),
            Rejection::Malformed,
            "malformed",
        ),
        (
            "edge/pi1/events",
            [good.as_slice(), &[0]].concat(),
            Rejection::TrailingBytes,
            "1 trailing bytes",
        ),
        (
            "edge/pi1/events",
            vec![0xff; 4],
            Rejection::BadVersion,
            "schema version",
        ),
        (
            "edge/pi1/status",
            good.clone(),
            Rejection::WrongLeaf,
            "on a status topic",
        ),
        (
            "edge/pi2/events",
            good.clone(),
            Rejection::WrongDevice,
            "payload says device pi1, topic says pi2",
        ),
        (
            "other/pi1/events",
            good.clone(),
            Rejection::Topic,
            "not under edge/",
        ),
        ("edge/pi1", good.clone(), Rejection::Topic, "no device/leaf"),
        (
            "edge//events",
            good.clone(),
            Rejection::Topic,
            "no device/leaf",
        ),
    ];
    for (i, (topic, payload, want_kind, want)) in cases.into_iter().enumerate() {
        match hub.handle(topic, &payload) {
            Outcome::Rejected {
                kind,
                reason,
                total,
                ..
            } => {
                assert_eq!(kind, want_kind, "{topic}: {reason}");
                assert!(reason.contains(want), "{reason:?} should mention {want:?}");
                assert_eq!(total, i as u64 + 1);
            }
            other => panic!("{topic} accepted: {other:?}"),
        }
    }
    assert_eq!(hub.counters.accepted, 0);
    let by_name: Vec<(&str, u64)> = hub
        .counters
        .rejected
        .iter()
        .map(|(k, n)| (k.name(), *n))
        .collect();
    assert_eq!(
        by_name,
        vec![
            ("topic", 3),
            ("empty", 1),
            ("bad_version", 1),
            ("unknown_version", 2),
            ("malformed", 1),
            ("trailing_bytes", 1),
            ("wrong_leaf", 1),
            ("wrong_device", 1),
        ]
    );
}
