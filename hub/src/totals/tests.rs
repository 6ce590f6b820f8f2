//! Unit tests of the per-device totals: a scripted interleaving of live and replayed batches
//! with duplicates, gaps that a late replay fills, drop sums over distinct batches, and the
//! memory bounds (streams per device, drop sources per stream).

use edge_wire::{Bind, DropCount, Event, EventBatch, SockAddr, Task, bounded};

use super::*;

fn event() -> Event {
    Event::Bind(Bind {
        age_us: 1,
        task: Task {
            pid: 1,
            tgid: 1,
            comm: bounded("x"),
        },
        fd: 3,
        ret: 0,
        addr: SockAddr::Unreadable,
    })
}

fn batch(boot: &str, run_id: u64, seq: u32, events: usize, drops: &[(&str, u64)]) -> EventBatch {
    EventBatch {
        device: bounded("pi1"),
        boot_id: bounded(boot),
        run_id,
        seq,
        unix_ms: 1,
        mono_ns: 1,
        drops: drops
            .iter()
            .map(|&(source, count)| DropCount {
                source: bounded(source),
                count,
            })
            .collect(),
        events: (0..events).map(|_| event()).collect(),
    }
}

fn new(gap: Option<(u32, u32, u32)>) -> Arrival {
    Arrival::New {
        gap: gap.map(|(expected, got, lost)| Gap {
            expected,
            got,
            lost,
        }),
    }
}

fn drops(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(s, n)| (s.to_owned(), n)).collect()
}

#[test]
fn a_replayed_backlog_interleaved_with_live_batches() {
    let mut t = Totals::new();
    let live = |seq, events, d: &[(&str, u64)]| batch("b2", 22, seq, events, d);
    let old = |seq, events, d: &[(&str, u64)]| batch("b1", 11, seq, events, d);
    // (batch, expected arrival)
    let script = [
        (live(0, 2, &[("ring:bind", 3)]), new(None)),
        (live(1, 1, &[]), new(None)),
        // Live jumps ahead: 2 and 3 are missing for now.
        (live(4, 1, &[("queue", 5)]), new(Some((2, 4, 2)))),
        // QoS 1 redelivery: neither its events nor its drops count again.
        (live(1, 1, &[]), Arrival::Duplicate),
        // The previous run's spool replays, out of order, between live batches.
        (old(7, 3, &[("spool", 2)]), new(None)),
        (old(5, 1, &[]), new(None)),
        // Totals: the run has lost 4 ring records by now.
        (live(2, 4, &[("ring:bind", 4)]), new(None)),
        (old(6, 0, &[("spool:corrupt", 1)]), new(None)),
        (old(7, 3, &[("spool", 2)]), Arrival::Duplicate),
        (live(6, 1, &[]), new(Some((5, 6, 1)))),
    ];
    for (i, (b, want)) in script.iter().enumerate() {
        assert_eq!(t.record("pi1", b), *want, "step {i}: seq {}", b.seq);
    }
    assert_eq!(
        t.streams("pi1"),
        vec![
            (
                StreamKey {
                    boot_id: "b1".into(),
                    run_id: 11
                },
                Summary {
                    batches: 3,
                    delivered_events: 4,
                    drops: drops(&[("spool", 2), ("spool:corrupt", 1)]),
                    missing_batches: 0,
                    duplicate_batches: 1,
                }
            ),
            (
                StreamKey {
                    boot_id: "b2".into(),
                    run_id: 22
                },
                Summary {
                    batches: 5,
                    delivered_events: 9,
                    drops: drops(&[("queue", 5), ("ring:bind", 4)]),
                    // 3 and 5 never came.
                    missing_batches: 2,
                    duplicate_batches: 1,
                }
            ),
        ]
    );
    assert_eq!(
        t.device("pi1"),
        Some(Summary {
            batches: 8,
            delivered_events: 13,
            drops: drops(&[
                ("queue", 5),
                ("ring:bind", 4),
                ("spool", 2),
                ("spool:corrupt", 1)
            ]),
            missing_batches: 2,
            duplicate_batches: 2,
        })
    );
    // The late ones arrive: nothing missing any more, and no gap line for a fill.
    assert_eq!(t.record("pi1", &live(3, 0, &[])), new(None));
    assert_eq!(t.record("pi1", &live(5, 0, &[])), new(None));
    assert_eq!(t.device("pi1").map(|s| s.missing_batches), Some(0));
    assert_eq!(t.device("pi9"), None);
    assert_eq!(t.devices().collect::<Vec<_>>(), vec!["pi1"]);
}

#[test]
fn the_same_run_id_on_another_boot_is_another_stream() {
    let mut t = Totals::new();
    assert_eq!(t.record("pi1", &batch("b1", 5, 3, 1, &[])), new(None));
    assert_eq!(t.record("pi1", &batch("b2", 5, 3, 1, &[])), new(None));
    assert_eq!(t.record("pi2", &batch("b1", 5, 3, 1, &[])), new(None));
    assert_eq!(t.streams("pi1").len(), 2);
    assert_eq!(
        t.device("pi1").map(|s| (s.batches, s.duplicate_batches)),
        Some((2, 0))
    );
    assert_eq!(t.device("pi2").map(|s| s.batches), Some(1));
}

#[test]
fn old_streams_fold_into_the_device_summary() {
    let mut t = Totals::new();
    // Each run: seqs 0 and 2 (one missing), 1 event each, 1 ring drop before each (totals 1, 2).
    for run in 0..(MAX_STREAMS as u64 + 4) {
        for seq in [0, 2] {
            let lost = u64::from(seq) / 2 + 1;
            t.record("pi1", &batch("b", run, seq, 1, &[("ring:exec", lost)]));
        }
    }
    let n = MAX_STREAMS as u64 + 4;
    assert_eq!(t.streams("pi1").len(), MAX_STREAMS);
    assert_eq!(
        t.device("pi1"),
        Some(Summary {
            batches: 2 * n,
            delivered_events: 2 * n,
            drops: drops(&[("ring:exec", 2 * n)]),
            missing_batches: n,
            duplicate_batches: 0,
        })
    );
    // The least recently active went: run 0 is gone, the newest runs stay.
    let runs: Vec<u64> = t.streams("pi1").iter().map(|(k, _)| k.run_id).collect();
    assert!(!runs.contains(&0) && runs.contains(&(n - 1)), "{runs:?}");
}

#[test]
fn drop_sources_are_bounded() {
    let mut t = Totals::new();
    let names: Vec<String> = (0..MAX_DROP_SOURCES + 3)
        .map(|i| format!("ring:p{i:02}"))
        .collect();
    let pairs: Vec<(&str, u64)> = names.iter().map(|n| (n.as_str(), 1)).collect();
    t.record("pi1", &batch("b", 1, 0, 0, &pairs));
    let d = t.device("pi1").expect("device").drops;
    assert_eq!(d.len(), MAX_DROP_SOURCES + 1);
    assert_eq!(d.get(OTHER_SOURCE), Some(&3));
    assert_eq!(d.values().sum::<u64>(), MAX_DROP_SOURCES as u64 + 3);
}
