//! The spool's normal life on real files in a temporary directory: round trip across a
//! reopen, one write per append, segment rollover, the byte cap, removal deleting segment
//! files, and refused ids.

mod common;

use common::*;
use edge_spool::{Limits, Meta, Record, Spool, SpoolError};

#[test]
fn append_then_reopen_round_trips_ids_kinds_events_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(recovered.records, 0);
    assert_eq!(recovered.max_id, None);
    let (p1, p2, p3) = (payload(1, 10), payload(2, 0), payload(3, 300));
    spool
        .append(&[rec(1, &p1), rec(2, &p2)], |_| false)
        .unwrap();
    spool.append(&[rec(3, &p3)], |_| false).unwrap();
    assert_eq!(spool.read(2).unwrap(), owned(2, 0));
    drop(spool);

    let (mut spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(recovered.records, 3);
    assert_eq!(recovered.events, 10 + 20 + 30);
    assert_eq!(recovered.bytes, 3 * HEADER + 10 + 300);
    assert_eq!(recovered.max_id, Some(3));
    assert!(recovered.corrupt.is_empty());
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(spool.first_id(), Some(1));
    assert!(spool.contains(3) && !spool.contains(4));
    assert_eq!((spool.len(), spool.is_empty()), (3, false));
    assert_eq!(spool.live_bytes(), 3 * HEADER + 10 + 300);
    assert_eq!(spool.read(1).unwrap(), owned(1, 10));
    assert_eq!(spool.read(2).unwrap(), owned(2, 0));
    assert_eq!(spool.read(3).unwrap(), owned(3, 300));
    assert!(matches!(spool.read(9), Err(SpoolError::NotFound { id: 9 })));
    // Nothing was written since this open.
    assert_eq!((spool.appends(), spool.written_bytes()), (0, 0));
}

#[test]
fn one_append_is_one_write_of_exactly_the_record_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), ROOMY).unwrap();
    let (a, b, c) = (payload(1, 10), payload(2, 3), payload(3, 100));
    spool
        .append(&[rec(1, &a), rec(2, &b), rec(3, &c)], |_| false)
        .unwrap();
    assert_eq!(spool.appends(), 1);
    assert_eq!(spool.written_bytes(), 3 * HEADER + 10 + 3 + 100);
    let d = payload(4, 5);
    spool.append(&[rec(4, &d)], |_| false).unwrap();
    assert_eq!(spool.appends(), 2);
    assert_eq!(spool.written_bytes(), 4 * HEADER + 10 + 3 + 100 + 5);
    // The bytes on disk are exactly those.
    let on_disk = std::fs::metadata(segment(dir.path(), 1)).unwrap().len();
    assert_eq!(on_disk, 4 * HEADER + 118);
    // An empty append writes nothing.
    spool.append(&[], |_| false).unwrap();
    assert_eq!(
        (spool.appends(), spool.written_bytes()),
        (2, 4 * HEADER + 118)
    );
}

#[test]
fn a_new_segment_starts_when_the_current_one_would_pass_segment_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // Each record is 32 + 18 = 50 bytes: two fit in 100, the third rolls over.
    let limits = Limits {
        max_bytes: 1 << 20,
        segment_bytes: 100,
    };
    let (mut spool, _) = Spool::open(dir.path(), limits).unwrap();
    append_each(&mut spool, &[1, 2, 3, 4, 5], 18);
    assert_eq!(
        segment_names(dir.path()),
        vec![
            "0000000000000001.spool",
            "0000000000000003.spool",
            "0000000000000005.spool"
        ]
    );
    assert_eq!(
        std::fs::metadata(segment(dir.path(), 1)).unwrap().len(),
        100
    );
    // One append bigger than a segment gets a segment of its own.
    let big = payload(6, 500);
    spool.append(&[rec(6, &big)], |_| false).unwrap();
    assert_eq!(
        std::fs::metadata(segment(dir.path(), 6)).unwrap().len(),
        HEADER + 500
    );
    drop(spool);
    let (mut spool, recovered) = Spool::open(dir.path(), limits).unwrap();
    assert_eq!(recovered.records, 6);
    for id in 1..=5 {
        assert_eq!(spool.read(id).unwrap(), owned(id, 18));
    }
    assert_eq!(spool.read(6).unwrap(), owned(6, 500));
}

#[test]
fn the_cap_drops_the_oldest_droppable_records_first() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 200,
        segment_bytes: 1 << 20,
    };
    let (mut spool, _) = Spool::open(dir.path(), limits).unwrap();
    let keep_1 = |id: u64| id != 1;
    // Four 50-byte records: exactly at the cap, nothing dropped.
    append_each(&mut spool, &[1, 2, 3, 4], 18);
    assert_eq!(spool.live_bytes(), 200);
    let p5 = payload(5, 18);
    let dropped = spool.append(&[rec(5, &p5)], keep_1).unwrap();
    assert_eq!(
        dropped,
        vec![Meta {
            id: 2,
            kind: 2,
            events: 20,
            bytes: 50
        }]
    );
    let (p6, p7) = (payload(6, 18), payload(7, 18));
    let dropped = spool.append(&[rec(6, &p6), rec(7, &p7)], keep_1).unwrap();
    assert_eq!(dropped.iter().map(|m| m.id).collect::<Vec<_>>(), vec![3, 4]);
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 5, 6, 7]);
    assert_eq!(spool.live_bytes(), 200);
    // Nothing droppable: the spool stays over its cap rather than drop what it may not.
    let p8 = payload(8, 18);
    assert!(spool.append(&[rec(8, &p8)], |_| false).unwrap().is_empty());
    assert_eq!(spool.live_bytes(), 250);
    // The dropped records stay gone after a reopen only while their segment is gone too;
    // here it still holds live records, so they come back (at-least-once), but the next
    // append drops them again.
    drop(spool);
    let (_, recovered) = Spool::open(dir.path(), limits).unwrap();
    assert_eq!(recovered.records, 8);
}

#[test]
fn remove_deletes_a_segment_file_once_none_of_its_records_is_live() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_bytes: 1 << 20,
        segment_bytes: 100,
    };
    let (mut spool, _) = Spool::open(dir.path(), limits).unwrap();
    append_each(&mut spool, &[1, 2, 3], 18);
    assert_eq!(spool.segments(), 2);
    assert_eq!(
        spool.remove(1),
        Some(Meta {
            id: 1,
            kind: 1,
            events: 10,
            bytes: 50
        })
    );
    assert!(segment(dir.path(), 1).exists());
    assert_eq!(spool.remove(1), None);
    assert_eq!(spool.remove(2).map(|m| m.id), Some(2));
    assert!(!segment(dir.path(), 1).exists());
    // The segment being appended to goes too once empty; the next append starts a fresh one.
    assert_eq!(spool.remove(3).map(|m| m.id), Some(3));
    assert!(segment_names(dir.path()).is_empty());
    assert!(spool.is_empty());
    assert_eq!(spool.live_bytes(), 0);
    append_each(&mut spool, &[4], 18);
    assert_eq!(segment_names(dir.path()), vec!["0000000000000004.spool"]);
    assert_eq!(spool.read(4).unwrap(), owned(4, 18));
}

#[test]
fn append_refuses_ids_that_do_not_increase() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), ROOMY).unwrap();
    let p = payload(0, 4);
    let r = |id| Record {
        id,
        kind: 0,
        events: 1,
        payload: &p,
    };
    let refused = |res: Result<Vec<Meta>, SpoolError>| match res {
        Err(SpoolError::IdOrder { id, floor }) => (id, floor),
        other => panic!("expected IdOrder, got {other:?}"),
    };
    assert_eq!(refused(spool.append(&[r(5), r(5)], |_| true)), (5, 5));
    assert_eq!(refused(spool.append(&[r(5), r(4)], |_| true)), (4, 5));
    assert_eq!((spool.appends(), spool.written_bytes()), (0, 0));
    assert!(segment_names(dir.path()).is_empty());
    spool.append(&[r(5)], |_| true).unwrap();
    assert_eq!(refused(spool.append(&[r(5)], |_| true)), (5, 5));
    assert_eq!(refused(spool.append(&[r(3)], |_| true)), (3, 5));
    spool.append(&[r(6)], |_| true).unwrap();
    // A removed id is still below the floor: ids never go back within one open.
    spool.remove(6);
    assert_eq!(refused(spool.append(&[r(6)], |_| true)), (6, 6));
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![5]);
    assert_eq!(spool.appends(), 2);
}
