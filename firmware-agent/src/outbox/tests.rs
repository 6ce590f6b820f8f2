//! Unit tests of the outbox: caps and drop accounting, acknowledgement, replay order after a
//! reconnect, the backlog/live interleave, the spool (spill, restart, corrupt records) and
//! what happens at exit.

use super::*;

fn payload(n: usize, tag: u8) -> Vec<u8> {
    vec![tag; n]
}

fn take(ob: &Outbox) -> Option<Entry> {
    match ob.lock().next(BACKLOG_PER_LIVE) {
        Next::Send(e) => Some(e),
        _ => None,
    }
}

fn ids(ob: &Outbox, n: usize) -> Vec<u64> {
    (0..n).filter_map(|_| take(ob).map(|e| e.id)).collect()
}

#[test]
fn over_the_ram_cap_without_spool_the_oldest_events_are_dropped_and_counted() {
    // 400-byte payloads cost 400 + ENTRY_OVERHEAD: two fit in 1200, a third does not.
    let ob = Outbox::new(1200, None).expect("outbox");
    // 3 x 400 bytes: the third push drops the first (its 5 events).
    assert_eq!(ob.push(Leaf::Events, 5, payload(400, 0)), Some(0));
    assert_eq!(ob.push(Leaf::Events, 7, payload(400, 1)), Some(0));
    assert_eq!(ob.push(Leaf::Events, 9, payload(400, 2)), Some(5));
    assert_eq!(ob.push(Leaf::Metrics, 0, payload(400, 3)), Some(7));
    let d = ob.drops();
    assert_eq!(d.events(DropSource::Queue), 12);
    assert_eq!(d.metrics, 0);
    assert_eq!(ob.len(), 2);
    assert_eq!(ids(&ob, 3), vec![2, 3]);
}

#[test]
fn a_message_that_was_sent_is_never_dropped_by_a_cap() {
    let ob = Outbox::new(1200, None).expect("outbox");
    ob.push(Leaf::Events, 1, payload(400, 0));
    assert_eq!(ids(&ob, 1), vec![0]);
    ob.push(Leaf::Events, 2, payload(400, 1));
    // Over the cap: id 0 may have reached the broker, so id 1 goes instead.
    assert_eq!(ob.push(Leaf::Events, 3, payload(400, 2)), Some(2));
    ob.rewind();
    assert_eq!(ids(&ob, 5), vec![0, 2]);
}

#[test]
fn unacknowledged_messages_are_sent_again_in_order_after_a_rewind() {
    let ob = Outbox::new(1 << 20, None).expect("outbox");
    for i in 0..5 {
        ob.push(Leaf::Events, 1, payload(10, i));
    }
    assert_eq!(ids(&ob, 3), vec![0, 1, 2]);
    ob.ack(1);
    ob.rewind();
    assert_eq!(ids(&ob, 10), vec![0, 2, 3, 4]);
    for id in [0, 2, 3, 4] {
        ob.ack(id);
    }
    assert!(ob.is_empty());
    ob.close();
    assert!(matches!(ob.lock().next(BACKLOG_PER_LIVE), Next::Settled));
}

#[test]
fn after_a_reconnect_the_backlog_goes_oldest_first_with_live_messages_interleaved() {
    let ob = Outbox::new(1 << 20, None).expect("outbox");
    for i in 0..10 {
        ob.push(Leaf::Events, 1, payload(10, i));
    }
    ob.rewind();
    for i in 10..13 {
        ob.push(Leaf::Events, 1, payload(10, i));
    }
    assert_eq!(
        ids(&ob, 13),
        vec![0, 1, 2, 3, 10, 4, 5, 6, 7, 11, 8, 9, 12],
        "4 backlog, then 1 live"
    );
}

#[test]
fn closing_settles_only_once_everything_is_acknowledged() {
    let ob = Outbox::new(1 << 20, None).expect("outbox");
    ob.push(Leaf::Events, 1, payload(10, 0));
    ob.close();
    assert_eq!(ob.push(Leaf::Events, 1, payload(10, 1)), None, "closed");
    let e = take(&ob).expect("entry");
    assert!(matches!(ob.lock().next(BACKLOG_PER_LIVE), Next::Wait));
    ob.ack(e.id);
    assert!(matches!(smol::block_on(ob.next()), Ready::Settled));
}

#[test]
fn the_spool_takes_the_overflow_in_large_appends_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spool = || {
        Some(SpoolConfig {
            dir: dir.path().join("spool"),
            max_bytes: 1 << 20,
        })
    };
    {
        let ob = Outbox::new(10_000, spool()).expect("outbox");
        for i in 0..30u8 {
            assert_eq!(
                ob.push(Leaf::Events, u32::from(i), payload(1000, i)),
                Some(0)
            );
        }
        let d = ob.depth();
        assert_eq!(d.queued, 30);
        assert_eq!(ob.drops().total_events(), 0);
        // Every spill takes RAM down to half its cap: 6 messages per append after the first.
        assert!(d.spool_appends >= 3 && d.spool_appends <= 6, "{d:?}");
        assert!(d.spool_written_bytes >= 20 * 1000, "{d:?}");
        // Messages 0.. are on disk, in order, and read back.
        let e = take(&ob).expect("first");
        assert_eq!((e.id, e.events, e.payload[0]), (0, 0, 0));
        ob.ack(0);
        // A clean exit during an outage: everything left goes to the spool.
        let left = ob.abandon();
        assert_eq!(
            (left.messages, left.spooled_messages, left.dropped_events),
            (29, 29, 0)
        );
    }
    // Acknowledged records are forgotten in memory; the file that holds them is deleted once
    // all of its records are. So message 0, acknowledged but sharing a segment with
    // unacknowledged ones, is sent again after a restart: a duplicate (same run and seq) that
    // the hub discards. Nothing is lost.
    let ob = Outbox::new(10_000, spool()).expect("reopen");
    assert_eq!(ob.len(), 30);
    let got: Vec<(u64, u8)> = (0..30)
        .filter_map(|_| take(&ob).map(|e| (e.id, e.payload[0])))
        .collect();
    let want: Vec<(u64, u8)> = (0..30).map(|i| (i, i as u8)).collect();
    assert_eq!(got, want);
    // New messages continue after the recovered ids.
    ob.push(Leaf::Events, 1, payload(10, 99));
    assert_eq!(take(&ob).map(|e| e.id), Some(30));
}

#[test]
fn without_a_spool_what_is_left_at_exit_is_counted_as_shutdown_drops() {
    let ob = Outbox::new(1 << 20, None).expect("outbox");
    ob.push(Leaf::Events, 4, payload(10, 0));
    ob.push(Leaf::Events, 6, payload(10, 1));
    ob.push(Leaf::Metrics, 0, payload(10, 2));
    let left = ob.abandon();
    assert_eq!(
        (
            left.messages,
            left.events,
            left.spooled_messages,
            left.dropped_events
        ),
        (3, 10, 0, 10)
    );
    assert_eq!(ob.drops().events(DropSource::Shutdown), 10);
    assert_eq!(ob.drops().metrics, 1);
}

#[test]
fn a_spool_over_its_cap_drops_its_oldest_and_counts_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ob = Outbox::new(
        64 << 10,
        Some(SpoolConfig {
            dir: dir.path().to_owned(),
            max_bytes: 256 << 10,
        }),
    )
    .expect("outbox");
    // 100 x 10 KiB = ~1 MiB through 64 KiB of RAM and 256 KiB of spool, 3 events each.
    let mut dropped_by_push = 0;
    for i in 0..100u8 {
        dropped_by_push += ob
            .push(Leaf::Events, 3, payload(10 << 10, i))
            .expect("open");
    }
    let d = ob.drops();
    assert_eq!(d.events(DropSource::Spool), dropped_by_push);
    assert_eq!(d.events(DropSource::Queue), 0);
    let kept = ob.len() as u64;
    assert_eq!(
        kept * 3 + dropped_by_push,
        300,
        "every event kept or counted"
    );
    assert!(ob.depth().spooled_bytes <= 256 << 10);
    // What is kept is the newest, still in order.
    let first = take(&ob).expect("entry").id;
    assert_eq!(first, 100 - kept);
}

#[test]
fn a_torn_spool_record_is_counted_and_the_rest_replays() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Some(SpoolConfig {
        dir: dir.path().to_owned(),
        max_bytes: 1 << 20,
    });
    {
        let ob = Outbox::new(64 << 10, cfg.clone()).expect("outbox");
        for i in 0..10u8 {
            ob.push(Leaf::Events, 2, payload(1000, i));
        }
        ob.abandon();
    }
    let seg = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "spool"))
        .expect("a segment");
    let len = std::fs::metadata(&seg).expect("meta").len();
    // Cut the last record mid-payload, as a power cut during the write would.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .and_then(|f| f.set_len(len - 500))
        .expect("truncate");
    let ob = Outbox::new(64 << 10, cfg).expect("reopen");
    assert_eq!(ob.len(), 9);
    let d = ob.drops();
    assert_eq!(
        d.events(DropSource::SpoolCorrupt),
        2,
        "the torn record's events"
    );
    assert_eq!(d.corrupt_regions, 1);
    assert_eq!(ids(&ob, 20), (0..9).collect::<Vec<_>>());
}
