//! Unit tests of the SQLite history: what goes in comes back (after reopening too), filters by
//! device, kind and time, limits keep the newest, retention by age and by size deletes the
//! oldest, and a corrupt or locked file is a clear error naming it.

use edge_wire::{
    Death, DeathCause, DropCount, Event, EventBatch, Exit, ExitHow, Message, Task, bounded, encode,
};
use serde_json::json;

use super::*;
use crate::Hub;

fn exit_batch(device: &str, seq: u32, codes: &[i32], drops: &[(&str, u64)]) -> Vec<u8> {
    encode(&Message::Events(EventBatch {
        device: bounded(device),
        boot_id: bounded("boot"),
        run_id: u64::MAX - 1,
        seq,
        unix_ms: 1_000_000 + u64::from(seq) * 1000,
        mono_ns: 1,
        drops: drops
            .iter()
            .map(|&(s, count)| DropCount {
                source: bounded(s),
                count,
            })
            .collect(),
        events: codes
            .iter()
            .map(|&c| {
                Event::Exit(Exit {
                    age_us: 0,
                    task: Task {
                        pid: 7,
                        tgid: 7,
                        comm: bounded("sh"),
                    },
                    ppid: 1,
                    how: ExitHow::Code(c),
                })
            })
            .collect(),
    }))
    .expect("encode")
}

fn offline(device: &str) -> Vec<u8> {
    encode(&Message::Offline(Death {
        device: bounded(device),
        boot_id: bounded("boot"),
        session: 3,
        cause: DeathCause::Shutdown,
    }))
    .expect("encode")
}

/// A batch of rows from these (topic, payload) messages, received at `at`.
fn rows(hub: &mut Hub, msgs: &[(&str, Vec<u8>)], at: i64) -> WriteBatch {
    let mut b = WriteBatch::default();
    for (topic, payload) in msgs {
        b.add(&hub.handle(topic, payload), at);
    }
    b
}

fn all() -> Query {
    Query {
        limit: 1000,
        ..Query::default()
    }
}

fn codes(records: &[Record]) -> Vec<i64> {
    records
        .iter()
        .filter_map(|r| r.detail["Exit"]["how"]["Code"].as_i64())
        .collect()
}

#[test]
fn records_come_back_filtered_and_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sqlite");
    let mut hub = Hub::new("edge");
    {
        let store = SqliteStore::open(&path).expect("open");
        let b = rows(
            &mut hub,
            &[
                ("edge/pi1/events", exit_batch("pi1", 0, &[1, 2], &[])),
                ("edge/pi2/events", exit_batch("pi2", 0, &[9], &[])),
                (
                    "edge/pi1/events",
                    exit_batch("pi1", 3, &[3], &[("ring:exit", 5)]),
                ),
                ("edge/pi1/events", exit_batch("pi1", 3, &[3], &[])),
                ("edge/pi1/status", offline("pi1")),
            ],
            5_000_000,
        );
        store.write(&b).expect("write");
        store
            .write(&WriteBatch {
                devices: vec![("pi1".into(), json!({"online": false}))],
                ..WriteBatch::default()
            })
            .expect("write state");
    }
    let store = SqliteStore::open(&path).expect("reopen");
    let got = store.records(&all()).expect("records");
    let kinds: Vec<&str> = got.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["exit", "exit", "exit", "drops", "exit", "gap", "status"]
    );
    assert_eq!(codes(&got), [1, 2, 9, 3]);
    let first = &got[0];
    assert_eq!((first.device.as_str(), first.ts_ms), ("pi1", 1_000_000));
    assert_eq!(
        first.batch,
        Some(BatchRef {
            boot_id: "boot".into(),
            run_id: u64::MAX - 1,
            seq: 0
        })
    );
    assert_eq!(got[3].detail, json!({"source": "ring:exit", "count": 5}));
    assert_eq!(got[5].detail, json!({"expected": 1, "got": 3, "lost": 2}));
    assert_eq!(got[6].detail["state"], "offline");
    assert_eq!(got[6].ts_ms, 5_000_000);

    let pi1_exits = Query {
        device: Some("pi1".into()),
        kinds: vec!["exit".into()],
        ..all()
    };
    assert_eq!(codes(&store.records(&pi1_exits).expect("q")), [1, 2, 3]);
    let late = Query {
        since_ms: Some(1_001_000),
        until_ms: Some(1_003_000),
        ..pi1_exits.clone()
    };
    assert_eq!(codes(&store.records(&late).expect("q")), [3]);
    let newest_two = Query {
        limit: 2,
        ..pi1_exits
    };
    assert_eq!(codes(&store.records(&newest_two).expect("q")), [2, 3]);
    let nobody = Query {
        device: Some("pi9".into()),
        ..all()
    };
    assert!(store.records(&nobody).expect("q").is_empty());
    assert_eq!(
        store.device_states().expect("states"),
        vec![("pi1".to_owned(), json!({"online": false}))]
    );
}

#[test]
fn retention_by_age_deletes_whole_old_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("h.sqlite")).expect("open");
    let mut hub = Hub::new("edge");
    for seq in 0..3 {
        let b = rows(
            &mut hub,
            &[(
                "edge/pi1/events",
                exit_batch("pi1", seq, &[seq as i32], &[]),
            )],
            0,
        );
        store.write(&b).expect("write");
    }
    let policy = Retention {
        max_age_ms: Some(60_000),
        max_bytes: None,
    };
    // Every write is "now": nothing is older than a minute.
    let now = crate::timespec::now_ms();
    assert_eq!(store.prune(&policy, now).expect("prune").rows, 0);
    assert_eq!(codes(&store.records(&all()).expect("q")), [0, 1, 2]);
    // Two minutes later all of it is.
    assert_eq!(store.prune(&policy, now + 120_000).expect("prune").rows, 3);
    assert!(store.records(&all()).expect("q").is_empty());
}

#[test]
fn retention_by_size_deletes_the_oldest_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("h.sqlite")).expect("open");
    let mut hub = Hub::new("edge");
    let codes_per_batch: Vec<i32> = (0..100).collect();
    for seq in 0..60 {
        let b = rows(
            &mut hub,
            &[(
                "edge/pi1/events",
                exit_batch("pi1", seq, &codes_per_batch, &[]),
            )],
            0,
        );
        store.write(&b).expect("write");
    }
    let before = store.usage().expect("usage");
    assert_eq!(before.records, 6000);
    let cap = before.bytes / 2;
    let p = store
        .prune(
            &Retention {
                max_age_ms: None,
                max_bytes: Some(cap),
            },
            0,
        )
        .expect("prune");
    let after = store.usage().expect("usage");
    assert!(p.bytes_after <= cap, "{p:?} cap {cap}");
    assert_eq!(after.records, 6000 - p.rows);
    let left = store.records(&all()).expect("q");
    let seqs: Vec<u32> = left
        .iter()
        .filter_map(|r| r.batch.as_ref().map(|b| b.seq))
        .collect();
    let oldest = seqs[0];
    assert!(oldest > 0, "the oldest batches went first");
    assert_eq!(seqs.last(), Some(&59), "the newest stayed");
    assert!(seqs.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn a_file_that_is_not_a_database_is_named_in_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sqlite");
    std::fs::write(
        &path,
        b"this is not a database, just some garbage bytes".repeat(100),
    )
    .expect("write");
    let e = SqliteStore::open(&path).err().expect("refused");
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "history database {} is not a usable SQLite database (corrupt or not a database: file is not a database); move it away to start a new history",
            path.display()
        )
    );
}

#[test]
fn a_locked_file_is_named_in_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sqlite");
    drop(SqliteStore::open(&path).expect("create"));
    let holder = rusqlite::Connection::open(&path).expect("open");
    holder
        .execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("lock");
    let e = SqliteStore::open(&path).err().expect("refused");
    assert!(matches!(e, StoreError::Locked { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "history database {} is locked by another process or connection (database is locked)",
            path.display()
        )
    );
}

#[test]
fn forgetting_a_device_deletes_its_rows_and_state_and_a_return_starts_afresh() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("hub.sqlite")).expect("open");
    let mut hub = Hub::new("edge");
    let mut b = rows(
        &mut hub,
        &[
            ("edge/pi1/events", exit_batch("pi1", 0, &[1, 2], &[])),
            ("edge/pi2/events", exit_batch("pi2", 0, &[9], &[])),
            ("edge/pi1/status", offline("pi1")),
        ],
        5_000_000,
    );
    b.devices = vec![
        ("pi1".into(), json!({"events": 2})),
        ("pi2".into(), json!({"events": 1})),
    ];
    store.write(&b).expect("write");
    // Two exits and a status record, the stream and the device row.
    assert_eq!(store.forget("pi1").expect("forget"), 5);
    assert_eq!(store.forget("pi1").expect("forget again"), 0);
    let got = store.records(&all()).expect("records");
    assert_eq!(
        got.iter().map(|r| r.device.as_str()).collect::<Vec<_>>(),
        ["pi2"]
    );
    assert_eq!(
        store.device_states().expect("states"),
        vec![("pi2".to_owned(), json!({"events": 1}))]
    );
    // The same device and stream again: stored under a new device row, found by its name.
    let mut hub = Hub::new("edge");
    store
        .write(&rows(
            &mut hub,
            &[("edge/pi1/events", exit_batch("pi1", 0, &[7], &[]))],
            6_000_000,
        ))
        .expect("write again");
    let pi1 = Query {
        device: Some("pi1".into()),
        ..all()
    };
    assert_eq!(codes(&store.records(&pi1).expect("q")), [7]);
}
