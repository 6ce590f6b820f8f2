//! The record format and the pure segment scanner: encoding one record header, decoding and
//! verifying one, and `scan`, which walks a whole segment's bytes, resynchronises after damage
//! and reports every damaged region. Nothing here touches the file system, and nothing here
//! panics or allocates in proportion to a length it has not verified.

/// First four bytes of every record: `b"EDSP"` read as a little-endian u32.
pub const MAGIC: u32 = u32::from_le_bytes(*b"EDSP");
/// Size of the fixed record header, in bytes.
pub const HEADER_LEN: usize = 32;
/// Largest payload a record may carry (16 MiB); a header claiming more is corrupt.
pub const MAX_PAYLOAD: u32 = 16 << 20;
/// Bytes of the header covered by `header_crc` (everything before it).
const HEADER_CRC_COVERS: usize = 24;

/// A record header that passed its magic, reserved-bytes, length-cap and CRC checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub len: u32,
    pub id: u64,
    pub events: u32,
    pub kind: u8,
    pub payload_crc: u32,
}

/// Appends one record (header then payload) to `out`. The caller has checked that the
/// payload is at most `MAX_PAYLOAD` bytes.
pub(crate) fn encode_record(out: &mut Vec<u8>, id: u64, kind: u8, events: u32, payload: &[u8]) {
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&events.to_le_bytes());
    out.push(kind);
    out.extend_from_slice(&[0, 0, 0]);
    let header_crc = out.get(start..).map_or(0, crc32fast::hash);
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Reads fixed-size fields off the front of a byte slice without any panicking index.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, tail) = self.0.split_first_chunk::<N>()?;
        self.0 = tail;
        Some(*head)
    }
}

/// Decodes the header at the start of `bytes` if it verifies: magic, zero reserved bytes,
/// header CRC and the payload-length cap. `None` for anything else, including too few bytes.
pub(crate) fn decode_header(bytes: &[u8]) -> Option<Header> {
    let covered = bytes.get(..HEADER_CRC_COVERS)?;
    let mut f = Fields(bytes);
    let magic = u32::from_le_bytes(f.take()?);
    let len = u32::from_le_bytes(f.take()?);
    let id = u64::from_le_bytes(f.take()?);
    let events = u32::from_le_bytes(f.take()?);
    let [kind] = f.take::<1>()?;
    let reserved = f.take::<3>()?;
    let header_crc = u32::from_le_bytes(f.take()?);
    let payload_crc = u32::from_le_bytes(f.take()?);
    let ok = magic == MAGIC
        && reserved == [0, 0, 0]
        && len <= MAX_PAYLOAD
        && crc32fast::hash(covered) == header_crc;
    ok.then_some(Header {
        len,
        id,
        events,
        kind,
        payload_crc,
    })
}

/// A verified record found by [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    /// Offset of the record's header in the segment.
    pub offset: u64,
    /// Payload length (the record occupies `HEADER_LEN + len` bytes).
    pub len: u32,
    pub id: u64,
    pub kind: u8,
    pub events: u32,
}

/// Bytes [`scan`] skipped because they did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorruptRegion {
    pub offset: u64,
    pub bytes: u64,
    /// The event count of an intact header whose payload is torn, fails its CRC, or whose id
    /// does not increase; `None` when no header in the region verified.
    pub events: Option<u32>,
}

/// What [`scan`] found in one segment, both lists in offset order, never overlapping.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<RecordMeta>,
    pub corrupt: Vec<CorruptRegion>,
}

/// Walks one segment's bytes. A record is live when its header verifies, its whole payload
/// is present and matches `payload_crc`, and its id is greater than the previous live
/// record's. A header that does not verify starts a region that runs to the next offset
/// where a header verifies (or to the end); a verified header with a torn or failing
/// payload, or a non-increasing id, is one region of its own carrying its event count.
pub fn scan(buf: &[u8]) -> Scan {
    let mut out = Scan::default();
    let mut pos = 0usize;
    let mut last_id: Option<u64> = None;
    while pos < buf.len() {
        let rest = buf.get(pos..).unwrap_or_default();
        let Some(h) = decode_header(rest) else {
            let next = resync(buf, pos + 1);
            out.corrupt.push(region(pos, next - pos, None));
            pos = next;
            continue;
        };
        let total = HEADER_LEN + h.len as usize;
        let Some(payload) = rest.get(HEADER_LEN..total) else {
            // Torn tail: the header made it to disk, the whole payload did not.
            out.corrupt.push(region(pos, rest.len(), Some(h.events)));
            break;
        };
        let in_order = last_id.is_none_or(|last| h.id > last);
        if crc32fast::hash(payload) == h.payload_crc && in_order {
            out.records.push(RecordMeta {
                offset: pos as u64,
                len: h.len,
                id: h.id,
                kind: h.kind,
                events: h.events,
            });
            last_id = Some(h.id);
        } else {
            out.corrupt.push(region(pos, total, Some(h.events)));
        }
        pos += total;
    }
    out
}

/// The first offset at or after `from` where a header verifies, or `buf.len()`.
fn resync(buf: &[u8], from: usize) -> usize {
    let magic = MAGIC.to_le_bytes();
    let mut at = from;
    while let Some(window) = buf.get(at..) {
        if window.len() < HEADER_LEN {
            break;
        }
        if window.starts_with(&magic) && decode_header(window).is_some() {
            return at;
        }
        at += 1;
    }
    buf.len()
}

fn region(offset: usize, bytes: usize, events: Option<u32>) -> CorruptRegion {
    CorruptRegion {
        offset: offset as u64,
        bytes: bytes as u64,
        events,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, events: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_record(&mut v, id, 7, events, payload);
        v
    }

    #[test]
    fn header_is_32_bytes_and_round_trips() {
        let v = record(9, 3, b"abc");
        assert_eq!(v.len(), 32 + 3);
        let h = decode_header(&v).unwrap();
        assert_eq!((h.len, h.id, h.events, h.kind), (3, 9, 3, 7));
    }

    #[test]
    fn empty_and_tiny_buffers_scan_cleanly() {
        assert_eq!(scan(&[]), Scan::default());
        let s = scan(&[1, 2, 3]);
        assert!(s.records.is_empty());
        assert_eq!(s.corrupt, vec![region(0, 3, None)]);
    }

    #[test]
    fn oversized_length_is_a_bad_header() {
        let mut v = record(1, 1, b"x");
        v[4..8].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
        let crc = crc32fast::hash(&v[..24]);
        v[24..28].copy_from_slice(&crc.to_le_bytes());
        let s = scan(&v);
        assert_eq!(s.corrupt, vec![region(0, v.len(), None)]);
    }

    #[test]
    fn non_increasing_id_is_a_region_with_events() {
        let mut v = record(5, 1, b"a");
        v.extend(record(5, 2, b"b"));
        v.extend(record(6, 3, b"c"));
        let s = scan(&v);
        let ids: Vec<u64> = s.records.iter().map(|r| r.id).collect();
        assert_eq!(ids, vec![5, 6]);
        assert_eq!(s.corrupt, vec![region(33, 33, Some(2))]);
    }
}
