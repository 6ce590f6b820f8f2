//! Helpers shared by the spool's integration tests: fixed limits, record builders and a look
//! at which segment files a spool directory holds.

#![allow(dead_code, reason = "each test file uses a different subset")]

use std::path::{Path, PathBuf};

use edge_spool::{Limits, Owned, Record, Spool};

/// The record header size, fixed by the format (docs/spool-format.md).
pub const HEADER: u64 = 32;

pub const ROOMY: Limits = Limits {
    max_bytes: 1 << 20,
    segment_bytes: 1 << 16,
};

/// A record whose payload is `len` copies of its id's low byte, `events` = id * 10.
pub fn payload(id: u64, len: usize) -> Vec<u8> {
    vec![id as u8; len]
}

pub fn rec(id: u64, payload: &[u8]) -> Record<'_> {
    Record {
        id,
        kind: (id % 3) as u8,
        events: (id * 10) as u32,
        payload,
    }
}

pub fn owned(id: u64, len: usize) -> Owned {
    Owned {
        id,
        kind: (id % 3) as u8,
        events: (id * 10) as u32,
        payload: payload(id, len),
    }
}

/// Appends each id as its own append (its own write), `len`-byte payloads, never dropping.
pub fn append_each(spool: &mut Spool, ids: &[u64], len: usize) {
    for &id in ids {
        let p = payload(id, len);
        spool.append(&[rec(id, &p)], |_| false).unwrap();
    }
}

/// The `*.spool` file names in `dir`, sorted.
pub fn segment_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".spool"))
        .collect();
    names.sort();
    names
}

pub fn segment(dir: &Path, first_id: u64) -> PathBuf {
    dir.join(format!("{first_id:016x}.spool"))
}
