//! Writes the spool fuzz target's seed corpus: real segment files made through the public API
//! (a valid three-record segment, and the same one torn mid-payload), into the directory named
//! by the first argument. `cargo run -p edge-spool --example seed_segment -- fuzz/corpus/spool_scan`

use std::{error::Error, fs, path::PathBuf};

use edge_spool::{Limits, Record, Spool};

fn main() -> Result<(), Box<dyn Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: seed_segment OUT_DIR")?,
    );
    fs::create_dir_all(&out)?;
    let dir = tempfile::tempdir()?;
    let limits = Limits {
        max_bytes: 1 << 20,
        segment_bytes: 1 << 20,
    };
    let (mut spool, _) = Spool::open(dir.path(), limits)?;
    let payloads: [&[u8]; 3] = [b"\x02\x02hello", b"", &[0x5a; 40]];
    let records: Vec<Record<'_>> = (1u64..)
        .zip(payloads)
        .map(|(id, payload)| Record {
            id,
            kind: (id % 2) as u8,
            events: id as u32 * 3,
            payload,
        })
        .collect();
    spool.append(&records, |_| false)?;
    let bytes = fs::read(dir.path().join(format!("{:016x}.spool", 1)))?;
    fs::write(out.join("seed-valid-3-records"), &bytes)?;
    let torn = bytes
        .get(..bytes.len().saturating_sub(7))
        .unwrap_or_default();
    fs::write(out.join("seed-torn-last-payload"), torn)?;
    println!("wrote 2 seeds ({} bytes) to {}", bytes.len(), out.display());
    Ok(())
}
