//! Fuzzes `edge_spool::scan` (what the agent runs over every segment file at start-up) with
//! arbitrary bytes. Beyond "never panics": records and corrupt regions lie inside the buffer,
//! in order, without overlapping, and together cover it exactly; live ids increase; and each
//! record, cut out on its own, scans back as exactly that record.
#![no_main]

use edge_spool::{HEADER_LEN, MAX_PAYLOAD, scan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let found = scan(data);
    let len = data.len() as u64;

    let mut spans: Vec<(u64, u64)> = Vec::new();
    let mut last_id = None;
    for r in &found.records {
        assert!(r.len <= MAX_PAYLOAD, "record over the payload cap: {r:?}");
        assert!(
            last_id.is_none_or(|last| r.id > last),
            "ids do not increase: {r:?}"
        );
        last_id = Some(r.id);
        let end = r.offset + HEADER_LEN as u64 + u64::from(r.len);
        assert!(end <= len, "record past the end: {r:?} (buffer {len})");
        spans.push((r.offset, end));

        let alone = scan(&data[r.offset as usize..end as usize]);
        assert!(
            alone.corrupt.is_empty(),
            "a live record alone is corrupt: {r:?}"
        );
        assert_eq!(alone.records.len(), 1);
        let again = alone.records[0];
        assert_eq!((again.offset, again.len, again.id), (0, r.len, r.id));
        assert_eq!((again.kind, again.events), (r.kind, r.events));
    }
    for c in &found.corrupt {
        assert!(c.bytes > 0, "empty corrupt region: {c:?}");
        let end = c.offset + c.bytes;
        assert!(end <= len, "region past the end: {c:?} (buffer {len})");
        spans.push((c.offset, end));
    }
    for pair in found.records.windows(2) {
        assert!(pair[0].offset < pair[1].offset, "records out of order");
    }
    for pair in found.corrupt.windows(2) {
        assert!(pair[0].offset < pair[1].offset, "regions out of order");
    }
    spans.sort_unstable();
    let mut at = 0;
    for (start, end) in spans {
        assert_eq!(start, at, "gap or overlap at {at}");
        at = end;
    }
    assert_eq!(at, len, "scan did not account for every byte");
});
