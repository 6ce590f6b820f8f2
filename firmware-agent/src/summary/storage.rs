//! Storage per interval: page-cache bytes written per process (from the kernel's `WRITES`
//! totals) and block requests per disk with their latency histogram (`DISKS` totals). Each
//! interval turns the growth of every total into a `StorageSummary`.

use std::collections::HashMap;

use edge_wire::{DiskIo, Log2Hist, Name, StorageSummary, Task, Writer, bounded};
use firmware_agent_common::{BlockOp, DiskStats, LATENCY_BUCKETS, WriteKey, WriteStat};

use crate::decode::comm_of;

/// Block device names by kernel `dev_t` (major << 20 | minor), from /sys/dev/block.
#[derive(Default)]
pub struct DeviceNames {
    known: HashMap<u32, Name>,
}

impl DeviceNames {
    pub fn name(&mut self, dev: u32) -> Name {
        self.known
            .entry(dev)
            .or_insert_with(|| {
                let (major, minor) = (dev >> 20, dev & 0xf_ffff);
                std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/uevent"))
                    .ok()
                    .and_then(|u| {
                        u.lines()
                            .find_map(|l| l.strip_prefix("DEVNAME=").map(bounded))
                    })
                    .unwrap_or_else(|| bounded(&format!("{major}:{minor}")))
            })
            .clone()
    }
}

/// What the previous interval ended with.
pub struct Storage {
    max_writers: usize,
    writes: HashMap<WriteKey, u64>,
    disks: HashMap<u32, DiskStats>,
    pub names: DeviceNames,
}

impl Storage {
    pub fn new(max_writers: usize) -> Self {
        Self {
            max_writers,
            writes: HashMap::new(),
            disks: HashMap::new(),
            names: DeviceNames::default(),
        }
    }

    /// The interval's summary from the current totals (None if nothing was written or done).
    pub fn summarise(
        &mut self,
        writes: &[(WriteKey, WriteStat)],
        disks: &[(u32, DiskStats)],
        interval_ms: u32,
    ) -> Option<StorageSummary> {
        let mut writers: Vec<Writer> = Vec::new();
        for (k, v) in writes {
            let before = self.writes.insert(*k, v.bytes).unwrap_or(0);
            let bytes = v.bytes.saturating_sub(before);
            if bytes > 0 {
                writers.push(Writer {
                    task: Task {
                        pid: k.tgid,
                        tgid: k.tgid,
                        comm: comm_of(&v.comm),
                    },
                    device: self.names.name(k.dev),
                    bytes,
                });
            }
        }
        writers.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.task.tgid.cmp(&b.task.tgid)));
        let rest = writers.split_off(self.max_writers.min(writers.len()));
        let mut io = Vec::new();
        for (dev, now) in disks {
            let before = self.disks.insert(*dev, *now).unwrap_or_default();
            let d = |a: &[u64], b: &[u64], i: usize| a[i].saturating_sub(b[i]);
            let (r, w, o) = (
                BlockOp::Read as usize,
                BlockOp::Write as usize,
                BlockOp::Other as usize,
            );
            let requests = d(&now.requests, &before.requests, r)
                + d(&now.requests, &before.requests, w)
                + d(&now.requests, &before.requests, o);
            if requests == 0 {
                continue;
            }
            let buckets: Vec<u64> = (0..LATENCY_BUCKETS)
                .map(|i| d(&now.latency, &before.latency, i))
                .collect();
            io.push(DiskIo {
                disk: self.names.name(*dev),
                reads: d(&now.requests, &before.requests, r),
                read_bytes: d(&now.bytes, &before.bytes, r),
                writes: d(&now.requests, &before.requests, w),
                write_bytes: d(&now.bytes, &before.bytes, w),
                others: d(&now.requests, &before.requests, o),
                latency: Log2Hist::from_buckets(&buckets),
            });
        }
        io.sort_by(|a, b| a.disk.cmp(&b.disk));
        if writers.is_empty() && rest.is_empty() && io.is_empty() {
            return None;
        }
        Some(StorageSummary {
            age_us: 0,
            interval_ms,
            writers,
            rest_writers: rest.len() as u32,
            rest_bytes: rest.iter().map(|w| w.bytes).sum(),
            disks: io,
        })
    }

    /// Forgets a writer whose process is gone (after its last growth was counted).
    pub fn forget(&mut self, key: &WriteKey) {
        self.writes.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(bytes: u64) -> WriteStat {
        let mut comm = [0u8; 16];
        comm[..2].copy_from_slice(b"dd");
        WriteStat {
            bytes,
            chunks: 1,
            comm,
        }
    }

    #[test]
    fn writers_are_the_growth_biggest_first_capped() {
        let mut s = Storage::new(1);
        let k = |tgid| WriteKey { tgid, dev: 8 << 20 };
        let first = s
            .summarise(&[(k(1), stat(4096)), (k(2), stat(100))], &[], 1000)
            .expect("summary");
        assert_eq!(first.writers.len(), 1);
        assert_eq!(
            (first.writers[0].task.tgid, first.writers[0].bytes),
            (1, 4096)
        );
        assert_eq!((first.rest_writers, first.rest_bytes), (1, 100));
        let second = s
            .summarise(&[(k(1), stat(4096)), (k(2), stat(150))], &[], 1000)
            .expect("summary");
        assert_eq!(
            (second.writers[0].task.tgid, second.writers[0].bytes),
            (2, 50)
        );
        assert!(s.summarise(&[(k(1), stat(4096))], &[], 1000).is_none());
    }

    #[test]
    fn disks_report_the_growth_and_a_trimmed_histogram() {
        let mut s = Storage::new(4);
        let mut d = DiskStats::default();
        d.requests[BlockOp::Write as usize] = 3;
        d.bytes[BlockOp::Write as usize] = 12288;
        d.latency[9] = 1;
        d.latency[11] = 2;
        s.summarise(&[], &[(1, d)], 1000).expect("first");
        d.requests[BlockOp::Write as usize] = 4;
        d.bytes[BlockOp::Write as usize] = 16384;
        d.latency[12] = 1;
        let sum = s.summarise(&[], &[(1, d)], 1000).expect("second");
        let io = &sum.disks[0];
        assert_eq!((io.writes, io.write_bytes, io.reads), (1, 4096, 0));
        assert_eq!(
            io.latency,
            Log2Hist {
                first: 12,
                counts: vec![1]
            }
        );
        assert_eq!(io.disk.as_str(), "0:1", "no such device: major:minor");
    }
}
