//! Damaged segment files on real disk: a torn last payload, a torn header, garbage in the
//! middle, a flipped payload byte. Each must be reported (never a panic), the intact records
//! must read back, and nothing is ever appended after damage.

mod common;

use std::fs;

use common::*;
use edge_spool::{Corrupt, Spool, SpoolError};

/// A spool with records 1, 2, 3 (20-byte payloads, 52 bytes each) in one segment.
fn three_records(dir: &std::path::Path) -> std::path::PathBuf {
    let (mut spool, _) = Spool::open(dir, ROOMY).unwrap();
    append_each(&mut spool, &[1, 2, 3], 20);
    let path = segment(dir, 1);
    assert_eq!(fs::metadata(&path).unwrap().len(), 3 * (HEADER + 20));
    path
}

#[test]
fn a_payload_torn_short_reports_its_events_and_the_next_append_starts_a_new_segment() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_records(dir.path());
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(3 * (HEADER + 20) - 10).unwrap();
    drop(file);

    let (mut spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(
        recovered.corrupt,
        vec![Corrupt {
            segment: path.clone(),
            offset: 2 * (HEADER + 20),
            bytes: HEADER + 20 - 10,
            events: Some(30),
        }]
    );
    assert_eq!((recovered.records, recovered.max_id), (2, Some(2)));
    assert_eq!(spool.read(1).unwrap(), owned(1, 20));
    assert_eq!(spool.read(2).unwrap(), owned(2, 20));
    // The torn id may be used again: it never became live. It goes to a new file.
    append_each(&mut spool, &[3], 7);
    assert_eq!(
        segment_names(dir.path()),
        vec!["0000000000000001.spool", "0000000000000003.spool"]
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), 3 * (HEADER + 20) - 10);
    assert_eq!(spool.read(3).unwrap(), owned(3, 7));
}

#[test]
fn a_header_torn_short_is_a_region_without_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_records(dir.path());
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(2 * (HEADER + 20) + 10).unwrap();
    drop(file);

    let (mut spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(
        recovered.corrupt,
        vec![Corrupt {
            segment: path,
            offset: 2 * (HEADER + 20),
            bytes: 10,
            events: None,
        }]
    );
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(spool.read(2).unwrap(), owned(2, 20));
}

#[test]
fn garbage_in_the_middle_is_skipped_and_the_records_after_it_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_records(dir.path());
    let mut bytes = fs::read(&path).unwrap();
    // 40 bytes of junk after record 1, holding a false magic that must not fool the resync.
    let mut junk = vec![0xAB_u8; 40];
    junk[8..12].copy_from_slice(b"EDSP");
    let at = (HEADER + 20) as usize;
    bytes.splice(at..at, junk);
    fs::write(&path, &bytes).unwrap();

    let (mut spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(
        recovered.corrupt,
        vec![Corrupt {
            segment: path,
            offset: HEADER + 20,
            bytes: 40,
            events: None,
        }]
    );
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    for id in 1..=3 {
        assert_eq!(spool.read(id).unwrap(), owned(id, 20));
    }
}

#[test]
fn a_flipped_payload_byte_fails_read_and_is_reported_by_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut spool, _) = Spool::open(dir.path(), ROOMY).unwrap();
    append_each(&mut spool, &[1, 2, 3], 20);
    let path = segment(dir.path(), 1);
    let mut bytes = fs::read(&path).unwrap();
    let at = (HEADER + 20 + HEADER + 5) as usize; // 6th payload byte of record 2
    bytes[at] ^= 0x01;
    fs::write(&path, &bytes).unwrap();

    match spool.read(2) {
        Err(SpoolError::Corrupt {
            id,
            segment,
            offset,
            bytes,
            events,
            ..
        }) => {
            assert_eq!(
                (id, offset, bytes, events),
                (2, HEADER + 20, HEADER + 20, 20)
            );
            assert_eq!(segment, path);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Removed from the index so the caller counts it once.
    assert!(!spool.contains(2));
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(spool.live_bytes(), 2 * (HEADER + 20));
    assert_eq!(spool.read(1).unwrap(), owned(1, 20));
    assert_eq!(spool.read(3).unwrap(), owned(3, 20));
    drop(spool);

    let (spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(
        recovered.corrupt,
        vec![Corrupt {
            segment: path,
            offset: HEADER + 20,
            bytes: HEADER + 20,
            events: Some(20),
        }]
    );
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 3]);
}

#[test]
fn open_ignores_other_files_and_deletes_segments_with_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"not a segment").unwrap();
    fs::write(segment(dir.path(), 0), b"").unwrap();
    fs::write(segment(dir.path(), 1), [0x55_u8; 100]).unwrap();
    let (spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert!(spool.is_empty());
    assert_eq!(
        recovered.corrupt,
        vec![Corrupt {
            segment: segment(dir.path(), 1),
            offset: 0,
            bytes: 100,
            events: None,
        }]
    );
    assert!(segment_names(dir.path()).is_empty());
    assert!(dir.path().join("notes.txt").exists());
}

#[test]
fn a_later_segment_repeating_an_earlier_id_is_reported_not_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let path = three_records(dir.path());
    // A copy named as if it started at 9 but holding ids 1..3 again.
    let copy = segment(dir.path(), 9);
    fs::copy(&path, &copy).unwrap();
    let (spool, recovered) = Spool::open(dir.path(), ROOMY).unwrap();
    assert_eq!(spool.ids().collect::<Vec<_>>(), vec![1, 2, 3]);
    let offsets: Vec<(u64, Option<u32>)> = recovered
        .corrupt
        .iter()
        .map(|c| (c.offset, c.events))
        .collect();
    assert_eq!(
        offsets,
        vec![(0, Some(10)), (52, Some(20)), (104, Some(30))]
    );
    assert!(recovered.corrupt.iter().all(|c| c.segment == copy));
    assert!(!copy.exists());
}
