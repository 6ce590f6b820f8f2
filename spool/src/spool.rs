//! The live spool: an in-memory index of live records over the segment files, appending
//! (one write + fdatasync per call, rolling segments, enforcing the byte cap), reading back
//! with re-verification, and removing (deleting a segment file once nothing in it is live).
//! `open()` and recovery live in `recover.rs`, `read()` in `read.rs`.

use std::{
    collections::BTreeMap,
    fs::{self, File, OpenOptions},
    io::Write as _,
    path::{Path, PathBuf},
};

use crate::{
    Limits, Meta, Record, SpoolError,
    format::{HEADER_LEN, MAX_PAYLOAD, encode_record},
};

/// Where a live record is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub seg: u64,
    pub offset: u64,
    pub len: u32,
    pub kind: u8,
    pub events: u32,
}

impl Entry {
    pub fn bytes(&self) -> u64 {
        HEADER_LEN as u64 + u64::from(self.len)
    }

    fn meta(&self, id: u64) -> Meta {
        Meta {
            id,
            kind: self.kind,
            events: self.events,
            bytes: self.bytes(),
        }
    }
}

/// One segment file with at least one live record.
#[derive(Debug)]
pub(crate) struct Segment {
    pub path: PathBuf,
    pub live: usize,
}

/// The segment being appended to (created by this `Spool`, so it has no torn tail).
#[derive(Debug)]
pub(crate) struct Current {
    pub seg: u64,
    pub file: File,
    pub size: u64,
}

/// The spool. Segments are keyed by an internal number; records by id.
#[derive(Debug)]
pub struct Spool {
    pub(crate) dir: PathBuf,
    limits: Limits,
    pub(crate) segments: BTreeMap<u64, Segment>,
    pub(crate) index: BTreeMap<u64, Entry>,
    /// The highest id held since open (live, removed or dropped): new ids must exceed it.
    pub(crate) floor: Option<u64>,
    pub(crate) live_bytes: u64,
    pub(crate) current: Option<Current>,
    /// The last segment read from, kept open for sequential draining.
    pub(crate) reader: Option<(u64, File)>,
    next_seg: u64,
    written_bytes: u64,
    appends: u64,
}

impl Spool {
    pub(crate) fn empty(dir: &Path, limits: Limits) -> Self {
        Self {
            dir: dir.to_path_buf(),
            limits,
            segments: BTreeMap::new(),
            index: BTreeMap::new(),
            floor: None,
            live_bytes: 0,
            current: None,
            reader: None,
            next_seg: 0,
            written_bytes: 0,
            appends: 0,
        }
    }

    /// Registers a segment file and returns its key.
    pub(crate) fn add_segment(&mut self, path: PathBuf) -> u64 {
        let seg = self.next_seg;
        self.next_seg += 1;
        self.segments.insert(seg, Segment { path, live: 0 });
        seg
    }

    /// Appends `records` (ids strictly increasing and greater than every id held since open;
    /// else [`SpoolError::IdOrder`] and nothing is written) to the current segment in one
    /// write followed by fdatasync, first starting a new segment file when the current one
    /// would pass `segment_bytes`. Then, while live bytes exceed `max_bytes`, drops the oldest
    /// live records for which `may_drop(id)` is true and returns them, oldest first. An empty
    /// `records` writes nothing but still enforces the cap.
    pub fn append(
        &mut self,
        records: &[Record<'_>],
        may_drop: impl Fn(u64) -> bool,
    ) -> Result<Vec<Meta>, SpoolError> {
        if !records.is_empty() {
            self.check(records)?;
            self.write(records)?;
        }
        Ok(self.enforce_cap(may_drop))
    }

    fn check(&self, records: &[Record<'_>]) -> Result<(), SpoolError> {
        let mut floor = self.floor;
        for r in records {
            if let Some(floor) = floor
                && r.id <= floor
            {
                return Err(SpoolError::IdOrder { id: r.id, floor });
            }
            if r.payload.len() > MAX_PAYLOAD as usize {
                return Err(SpoolError::TooLarge {
                    id: r.id,
                    len: r.payload.len(),
                    max: MAX_PAYLOAD,
                });
            }
            floor = Some(r.id);
        }
        Ok(())
    }

    fn write(&mut self, records: &[Record<'_>]) -> Result<(), SpoolError> {
        let total: usize = records.iter().map(|r| HEADER_LEN + r.payload.len()).sum();
        let mut buf = Vec::with_capacity(total);
        let mut offsets = Vec::with_capacity(records.len());
        for r in records {
            offsets.push(buf.len() as u64);
            encode_record(&mut buf, r.id, r.kind, r.events, r.payload);
        }
        let total = buf.len() as u64;
        let roll = self
            .current
            .as_ref()
            .is_none_or(|c| c.size > 0 && c.size.saturating_add(total) > self.limits.segment_bytes);
        if roll {
            let first = records.first().map_or(0, |r| r.id);
            self.start_segment(first)?;
        }
        let Some(cur) = self.current.as_mut() else {
            return Ok(()); // start_segment either set it or returned an error
        };
        let (seg, base) = (cur.seg, cur.size);
        let written = cur.file.write_all(&buf).and_then(|()| cur.file.sync_data());
        if let Err(source) = written {
            // How much reached the disk is unknown: never append after it again.
            self.current = None;
            let path = self.segment_path(seg);
            if self.segments.get(&seg).is_some_and(|s| s.live == 0) {
                self.forget_segment(seg);
            }
            log::warn!("spool: write to {} failed: {source}", path.display());
            return Err(SpoolError::Io {
                op: "write",
                path,
                source,
            });
        }
        cur.size += total;
        for (r, offset) in records.iter().zip(offsets) {
            let entry = Entry {
                seg,
                offset: base + offset,
                len: r.payload.len() as u32,
                kind: r.kind,
                events: r.events,
            };
            self.live_bytes += entry.bytes();
            self.index.insert(r.id, entry);
        }
        if let Some(s) = self.segments.get_mut(&seg) {
            s.live += records.len();
        }
        self.floor = records.last().map(|r| r.id).or(self.floor);
        self.written_bytes += total;
        self.appends += 1;
        Ok(())
    }

    /// Creates `<first>.spool` (never an existing file) and makes its name durable.
    fn start_segment(&mut self, first: u64) -> Result<(), SpoolError> {
        self.current = None;
        let path = self.dir.join(format!("{first:016x}.spool"));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(SpoolError::io("create", &path))?;
        if let Err(source) = File::open(&self.dir).and_then(|d| d.sync_all()) {
            let _ = fs::remove_file(&path);
            return Err(SpoolError::Io {
                op: "sync directory",
                path: self.dir.clone(),
                source,
            });
        }
        log::debug!("spool: started segment {}", path.display());
        let seg = self.add_segment(path);
        self.current = Some(Current { seg, file, size: 0 });
        Ok(())
    }

    fn enforce_cap(&mut self, may_drop: impl Fn(u64) -> bool) -> Vec<Meta> {
        let max = self.limits.max_bytes;
        let mut over = self.live_bytes.saturating_sub(max);
        let mut victims = Vec::new();
        for (&id, e) in &self.index {
            if over == 0 {
                break;
            }
            if may_drop(id) {
                victims.push(id);
                over = over.saturating_sub(e.bytes());
            }
        }
        let dropped: Vec<Meta> = victims
            .into_iter()
            .filter_map(|id| self.remove(id))
            .collect();
        if !dropped.is_empty() {
            let events: u64 = dropped.iter().map(|m| u64::from(m.events)).sum();
            let bytes: u64 = dropped.iter().map(|m| m.bytes).sum();
            log::warn!(
                "spool: over its {max}-byte cap, dropped the {} oldest records ({events} events, {bytes} bytes)",
                dropped.len()
            );
        }
        dropped
    }

    /// Live ids, oldest first.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.index.keys().copied()
    }

    /// Live records' metadata, oldest first (what the outbox indexes at start-up).
    pub fn metas(&self) -> impl Iterator<Item = Meta> + '_ {
        self.index.iter().map(|(id, e)| e.meta(*id))
    }

    pub fn contains(&self, id: u64) -> bool {
        self.index.contains_key(&id)
    }

    pub fn first_id(&self) -> Option<u64> {
        self.index.keys().next().copied()
    }

    pub(crate) fn segment_path(&self, seg: u64) -> PathBuf {
        self.segments
            .get(&seg)
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    /// Forgets a live record (delivered, or dropped by the caller). When that leaves its
    /// segment with no live record the file is deleted; if it was the segment being appended
    /// to, the next append starts a fresh one.
    pub fn remove(&mut self, id: u64) -> Option<Meta> {
        let e = self.index.remove(&id)?;
        self.live_bytes = self.live_bytes.saturating_sub(e.bytes());
        let now_empty = self.segments.get_mut(&e.seg).is_some_and(|s| {
            s.live = s.live.saturating_sub(1);
            s.live == 0
        });
        if now_empty {
            self.forget_segment(e.seg);
        }
        Some(e.meta(id))
    }

    /// Closes and deletes a segment that has no live record.
    pub(crate) fn forget_segment(&mut self, seg: u64) {
        if self.current.as_ref().is_some_and(|c| c.seg == seg) {
            self.current = None;
        }
        if self.reader.as_ref().is_some_and(|(s, _)| *s == seg) {
            self.reader = None;
        }
        if let Some(s) = self.segments.remove(&seg) {
            match fs::remove_file(&s.path) {
                Ok(()) => log::debug!("spool: deleted segment {}", s.path.display()),
                Err(err) => log::warn!("spool: could not delete {}: {err}", s.path.display()),
            }
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Bytes of live records (headers included): what `max_bytes` caps.
    pub fn live_bytes(&self) -> u64 {
        self.live_bytes
    }

    /// Bytes written since open.
    pub fn written_bytes(&self) -> u64 {
        self.written_bytes
    }

    /// Successful appends (each one write + fdatasync) since open.
    pub fn appends(&self) -> u64 {
        self.appends
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Segment files currently holding live records.
    pub fn segments(&self) -> usize {
        self.segments.len()
    }
}
