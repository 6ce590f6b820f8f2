//! Reading a live record back: one pread of header and payload from the segment (the
//! segment being appended to, or the last one read, kept open), re-verified before it is
//! returned. A record that no longer verifies leaves the index as `SpoolError::Corrupt`.

use std::{fs::File, io::ErrorKind, os::unix::fs::FileExt as _};

use crate::{
    Owned, SpoolError,
    format::{HEADER_LEN, decode_header},
    spool::Spool,
};

impl Spool {
    /// Reads one live record back (pread), re-verifying both checksums and that the header
    /// still says what the index does. A record that no longer verifies (or whose segment
    /// file is gone or cut short) is removed from the index and reported as
    /// [`SpoolError::Corrupt`], so the caller can count its events; any other I/O error
    /// leaves it live.
    pub fn read(&mut self, id: u64) -> Result<Owned, SpoolError> {
        let e = *self.index.get(&id).ok_or(SpoolError::NotFound { id })?;
        let mut buf = vec![0u8; HEADER_LEN + e.len as usize];
        let got = self
            .file_for(e.seg)
            .and_then(|f| f.read_exact_at(&mut buf, e.offset));
        let reason = match got {
            Err(err) if matches!(err.kind(), ErrorKind::UnexpectedEof | ErrorKind::NotFound) => {
                "segment file missing or cut short"
            }
            Err(source) => {
                return Err(SpoolError::Io {
                    op: "read",
                    path: self.segment_path(e.seg),
                    source,
                });
            }
            Ok(()) => match decode_header(&buf) {
                None => "header no longer verifies",
                Some(h) if (h.id, h.len, h.kind, h.events) != (id, e.len, e.kind, e.events) => {
                    "header does not match the index"
                }
                Some(h) => {
                    let payload = buf.split_off(HEADER_LEN);
                    if crc32fast::hash(&payload) == h.payload_crc {
                        return Ok(Owned {
                            id,
                            kind: e.kind,
                            events: e.events,
                            payload,
                        });
                    }
                    "payload checksum mismatch"
                }
            },
        };
        let segment = self.segment_path(e.seg);
        log::warn!(
            "spool: record {id} in {} at offset {} is corrupt ({reason}): {} events lost",
            segment.display(),
            e.offset,
            e.events
        );
        self.remove(id);
        Err(SpoolError::Corrupt {
            id,
            segment,
            offset: e.offset,
            bytes: e.bytes(),
            events: e.events,
            kind: e.kind,
            reason,
        })
    }

    fn file_for(&mut self, seg: u64) -> std::io::Result<&File> {
        if let Some(cur) = self.current.as_ref().filter(|c| c.seg == seg) {
            return Ok(&cur.file);
        }
        if self.reader.as_ref().is_none_or(|(s, _)| *s != seg) {
            let file = File::open(self.segment_path(seg))?;
            self.reader = Some((seg, file));
        }
        match &self.reader {
            Some((_, file)) => Ok(file),
            None => Err(ErrorKind::NotFound.into()),
        }
    }
}
