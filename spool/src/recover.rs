//! `Spool::open`: lists the segment files, scans each (in name order) with `format::scan`,
//! indexes the live records and reports the damaged regions. A segment left with no live
//! record (empty, or all damaged) is deleted once reported; the others are only read, and
//! never appended to again.

use std::{
    ffi::OsStr,
    fs,
    path::{Path, PathBuf},
};

use crate::{
    Corrupt, Limits, Recovered, SpoolError,
    format::{HEADER_LEN, scan},
    spool::{Entry, Spool},
};

impl Spool {
    /// Creates `dir` if needed, scans every `*.spool` file in it (in name order) and indexes
    /// the live records in memory. Damaged regions are skipped and reported, never fatal; a
    /// record whose id is not greater than every id before it (in this segment or an earlier
    /// one) counts as damaged. The caps are not enforced here: the next `append` does.
    pub fn open(dir: &Path, limits: Limits) -> Result<(Spool, Recovered), SpoolError> {
        fs::create_dir_all(dir).map_err(SpoolError::io("create directory", dir))?;
        let mut paths = Vec::new();
        for entry in fs::read_dir(dir).map_err(SpoolError::io("list", dir))? {
            let entry = entry.map_err(SpoolError::io("list", dir))?;
            let path = entry.path();
            if path.extension() != Some(OsStr::new("spool")) {
                continue;
            }
            let file_type = entry.file_type().map_err(SpoolError::io("stat", &path))?;
            if file_type.is_file() {
                paths.push(path);
            }
        }
        paths.sort();

        let mut spool = Spool::empty(dir, limits);
        let mut recovered = Recovered::default();
        for path in paths {
            load_segment(&mut spool, path, &mut recovered)?;
        }
        recovered.records = spool.len() as u64;
        recovered.events = spool.index.values().map(|e| u64::from(e.events)).sum();
        recovered.bytes = spool.live_bytes;
        recovered.max_id = spool.floor;
        log::info!(
            "spool: opened {} with {} records ({} events, {} bytes) in {} segments; {} corrupt regions skipped",
            dir.display(),
            recovered.records,
            recovered.events,
            recovered.bytes,
            spool.segments.len(),
            recovered.corrupt.len()
        );
        Ok((spool, recovered))
    }
}

fn load_segment(
    spool: &mut Spool,
    path: PathBuf,
    recovered: &mut Recovered,
) -> Result<(), SpoolError> {
    let bytes = fs::read(&path).map_err(SpoolError::io("read", &path))?;
    let found = scan(&bytes);
    let mut corrupt: Vec<Corrupt> = found
        .corrupt
        .iter()
        .map(|r| Corrupt {
            segment: path.clone(),
            offset: r.offset,
            bytes: r.bytes,
            events: r.events,
        })
        .collect();
    let seg = spool.add_segment(path.clone());
    let mut live = 0;
    for r in &found.records {
        if spool.floor.is_some_and(|floor| r.id <= floor) {
            // Verified, but out of order with an earlier segment: the index must stay in
            // file order, so it is skipped like damage.
            corrupt.push(Corrupt {
                segment: path.clone(),
                offset: r.offset,
                bytes: HEADER_LEN as u64 + u64::from(r.len),
                events: Some(r.events),
            });
            continue;
        }
        let entry = Entry {
            seg,
            offset: r.offset,
            len: r.len,
            kind: r.kind,
            events: r.events,
        };
        spool.live_bytes += entry.bytes();
        spool.index.insert(r.id, entry);
        spool.floor = Some(r.id);
        live += 1;
    }
    corrupt.sort_by_key(|c| c.offset);
    for c in &corrupt {
        match c.events {
            Some(n) => log::warn!(
                "spool: skipped a corrupt record in {} at offset {} ({} bytes, {n} events lost)",
                c.segment.display(),
                c.offset,
                c.bytes
            ),
            None => log::warn!(
                "spool: skipped a corrupt region in {} at offset {} ({} bytes, no intact header)",
                c.segment.display(),
                c.offset,
                c.bytes
            ),
        }
    }
    recovered.corrupt.extend(corrupt);
    if let Some(s) = spool.segments.get_mut(&seg) {
        s.live = live;
    }
    if live == 0 {
        log::info!(
            "spool: deleting {} ({} bytes, no live record)",
            path.display(),
            bytes.len()
        );
        spool.forget_segment(seg);
    }
    Ok(())
}
