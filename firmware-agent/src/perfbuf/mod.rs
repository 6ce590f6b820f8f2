//! Perf buffers, the transport for kernels without BPF ring buffers (before 5.8): each ring is a
//! `BPF_MAP_TYPE_PERF_EVENT_ARRAY` holding one `PERF_COUNT_SW_BPF_OUTPUT` event per CPU, each
//! with its own mmap'd buffer, read here.
//!
//! Sizing: a perf buffer is a power-of-two number of pages per CPU. The config asks for bytes,
//! so the page count comes from the running kernel's page size (a count right for 4 KiB pages
//! would be 4x the memory on 16 KiB pages and 16x on 64 KiB ones): the same rule as the ring
//! buffers (`ringbuf::choose_size`), applied per CPU.
//!
//! Wake-ups: each buffer wakes the reader when a quarter of it is unread (`wakeup_watermark`),
//! never per record; below that, the reader looks by itself every `poll` (a fraction of the
//! batch age), so records still reach a batch in time. A perf buffer cannot be woken on demand
//! the way the ring-buffer probes do it.
//!
//! Losses: a record the kernel could not fit is reported to the reader as `PERF_RECORD_LOST`
//! with a count; the reader adds it to the ring's lost total (see `counters::ring_drops`).

mod buffer;

use std::{
    os::fd::AsFd,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use aya::maps::{MapData, MapError, PerfEventArray};

pub use self::buffer::{Item, PerfBuffer};
use crate::{
    ringbuf::{SizeError, choose_size},
    wakeups::EdgeSet,
};

/// Pages per CPU for `requested` bytes on a kernel with `page_size`: a power of two, so that
/// pages x page size is the smallest power of two >= max(requested, page size).
pub fn pages_per_cpu(requested: u64, page_size: u64) -> Result<u64, SizeError> {
    Ok(choose_size(requested, page_size)? / page_size)
}

#[derive(Debug, thiserror::Error)]
pub enum PerfError {
    #[error("perf_event_open (bpf output) on CPU {cpu}: {source}")]
    Open { cpu: u32, source: std::io::Error },
    #[error("mmap of {bytes} B perf buffer on CPU {cpu}: {source}")]
    Mmap {
        cpu: u32,
        bytes: usize,
        source: std::io::Error,
    },
    #[error("putting CPU {cpu}'s perf buffer into the map: {source}")]
    Set { cpu: u32, source: MapError },
    #[error("epoll for the perf buffers: {0}")]
    Epoll(std::io::Error),
}

/// One ring's perf buffers, one per online CPU, behind one epoll set (edge-triggered: it
/// becomes readable when a buffer crosses its watermark).
pub struct PerfRing {
    buffers: Vec<PerfBuffer>,
    epoll: EdgeSet,
    /// The map the buffers are set in: the kernel empties a perf event array when its last
    /// user-space handle closes, so the reader keeps it.
    _map: Option<PerfEventArray<MapData>>,
}

impl PerfRing {
    /// Opens a buffer of `pages` pages for each of `cpus` and puts it into `map` at the CPU's
    /// index (where `bpf_perf_event_output(.., BPF_F_CURRENT_CPU, ..)` writes).
    pub fn open(
        map: &mut PerfEventArray<MapData>,
        cpus: &[u32],
        pages: usize,
        page: usize,
    ) -> Result<Self, PerfError> {
        let epoll = EdgeSet::new().map_err(PerfError::Epoll)?;
        // A quarter of the buffer, like the ring buffers' wake-up threshold.
        let watermark = u32::try_from((pages * page) >> firmware_agent_common::WAKE_FILL_SHIFT)
            .unwrap_or(u32::MAX)
            .max(1);
        let mut buffers = Vec::with_capacity(cpus.len());
        for &cpu in cpus {
            let buf = PerfBuffer::open(cpu, pages, page, watermark)?;
            map.set(cpu, &buf)
                .map_err(|source| PerfError::Set { cpu, source })?;
            epoll
                .add(buf.as_fd(), u64::from(cpu))
                .map_err(PerfError::Epoll)?;
            buffers.push(buf);
        }
        Ok(Self {
            buffers,
            epoll,
            _map: None,
        })
    }

    /// Keeps `map` (the one the buffers were set in) open as long as this ring.
    pub fn holding(mut self, map: PerfEventArray<MapData>) -> Self {
        self._map = Some(map);
        self
    }
}

/// Like `ringbuf::drain`, for perf buffers: awaits the watermark wake-ups or `poll`, decodes
/// every sample with `decode` and sends it on `tx`, adds lost counts to `lost`, until `stop`
/// resolves; then drains once more and returns.
pub async fn drain<T, F, S>(
    mut ring: PerfRing,
    poll: Duration,
    lost: &AtomicU64,
    mut decode: F,
    tx: crate::queue::Sender<T>,
    stop: S,
) -> std::io::Result<()>
where
    F: FnMut(&[u8]) -> Option<T>,
    S: std::future::Future<Output = ()>,
{
    let wake = crate::wakeups::Readable::new(ring.epoll.try_clone()?)?;
    let mut stop = std::pin::pin!(stop);
    loop {
        ring.epoll.take()?;
        if !forward(&mut ring, &mut decode, lost, &tx).await {
            return Ok(());
        }
        let woke = wake.wait(Some(poll), stop.as_mut()).await?;
        if !woke {
            forward(&mut ring, &mut decode, lost, &tx).await;
            return Ok(());
        }
    }
}

/// Sends every record now in the buffers; false once the receiver is gone.
async fn forward<T>(
    ring: &mut PerfRing,
    decode: &mut impl FnMut(&[u8]) -> Option<T>,
    lost: &AtomicU64,
    tx: &crate::queue::Sender<T>,
) -> bool {
    for i in 0..ring.buffers.len() {
        loop {
            // Decode (the record is already released to the kernel), then wait on the channel.
            let v = match ring.buffers[i].read_next() {
                None => break,
                Some(Item::Lost(n)) => {
                    lost.fetch_add(n, Ordering::Relaxed);
                    continue;
                }
                Some(Item::Sample([])) => continue,
                Some(Item::Sample(bytes)) => decode(bytes),
            };
            if let Some(v) = v
                && !tx.put(v).await
            {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_become_a_power_of_two_page_count_per_cpu() {
        // (page size, requested bytes, pages per CPU): the same bytes on every page size,
        // never 4x or 16x the request because the pages are bigger.
        let cases: &[(u64, u64, u64)] = &[
            (4096, 1, 1),
            (4096, 4096, 1),
            (4096, 5000, 2),
            (4096, 65536, 16),
            (4096, 100_000, 32),
            (4096, 262_144, 64),
            (16384, 1, 1),
            (16384, 4096, 1),
            (16384, 65536, 4),
            (16384, 100_000, 8),
            (16384, 262_144, 16),
            (65536, 4096, 1),
            (65536, 65536, 1),
            (65536, 100_000, 2),
            (65536, 262_144, 4),
        ];
        for &(page, req, want) in cases {
            assert_eq!(
                pages_per_cpu(req, page),
                Ok(want),
                "page {page} request {req}"
            );
        }
        assert_eq!(pages_per_cpu(0, 4096), Err(SizeError::Zero));
        assert_eq!(
            pages_per_cpu(10, 12288),
            Err(SizeError::BadPageSize { page_size: 12288 })
        );
    }
}
