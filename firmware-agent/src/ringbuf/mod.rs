//! Ring buffers: sizing from the running kernel, and awaiting records through the map's fd.
//!
//! The kernel requires a ring buffer's size to be a power of two and a page multiple; a
//! 16 KiB-page kernel refuses 4096 with EINVAL. We choose the smallest power of two that is
//! >= max(requested, page size): page sizes are powers of two, so that is a page multiple too.
//!
//! The probes submit most records without waking the reader (`firmware_agent_common::
//! WAKE_AFTER_NS`): it is woken when its ring is a quarter full or its last wake-up is that
//! old. So the reader waits on its ring through an edge-triggered epoll set of its own
//! (`wakeups::EdgeSet`), and sleeps with a timeout while records may sit unannounced.
//! The records are read through `mapped`, which maps each data page once.

mod mapped;

pub use mapped::{MappedRing, RingError};

use std::{os::fd::AsFd, time::Duration};

use aya::maps::{Array, MapData};
use firmware_agent_common::{Ring, WAKE_AFTER_NS};

use crate::{
    batch::monotonic_ns,
    config::MAX_RING_BYTES,
    wakeups::{EdgeSet, Readable},
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SizeError {
    #[error("0 bytes is not a ring buffer size")]
    Zero,
    #[error("{requested} bytes is more than the 1 GiB limit")]
    TooLarge { requested: u64 },
    #[error("page size {page_size} is not a power of two")]
    BadPageSize { page_size: u64 },
}

/// The size to create a ring buffer with, for `requested` bytes on a kernel with `page_size`.
pub fn choose_size(requested: u64, page_size: u64) -> Result<u64, SizeError> {
    if requested == 0 {
        return Err(SizeError::Zero);
    }
    if requested > MAX_RING_BYTES {
        return Err(SizeError::TooLarge { requested });
    }
    if !page_size.is_power_of_two() {
        return Err(SizeError::BadPageSize { page_size });
    }
    Ok(requested.max(page_size).next_power_of_two())
}

/// A ring buffer as asked for and as made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingPlan {
    /// The map's name in the eBPF object.
    pub map: &'static str,
    /// The config key it comes from.
    pub key: &'static str,
    pub requested: u64,
    pub chosen: u64,
}

/// When each published ring was last woken by its probes (the `WAKES` map), shared by readers.
pub type WakeTimes = std::sync::Arc<Array<MapData, u64>>;

/// How long a reader that last read `last_wake_ns` (before draining at `now_ns`) may sleep
/// before looking again without being woken: None (until woken) once no record can be
/// waiting unannounced, else until the probes' deadline has passed.
pub fn unannounced_for(now_ns: u64, last_wake_ns: u64) -> Option<Duration> {
    let since = now_ns.saturating_sub(last_wake_ns);
    // 1 ms of slack: the timer may fire a hair early against the probes' clock.
    (since < WAKE_AFTER_NS).then(|| Duration::from_nanos(WAKE_AFTER_NS - since + 1_000_000))
}

/// Awaits `ring` on the current executor, turns every record into a `T` with `decode` and
/// sends it on `tx` (waiting when the consumer is behind: the kernel then counts drops), until
/// `stop` resolves; then drains what is left once and returns. `policy`: the published ring
/// this is and where its wake-ups are recorded, for rings whose probes batch wake-ups; None
/// for rings with the kernel's default (wake a reader that caught up).
pub async fn drain<T, F, S>(
    mut ring: MappedRing,
    policy: Option<(Ring, WakeTimes)>,
    mut decode: F,
    tx: crate::queue::Sender<T>,
    stop: S,
) -> std::io::Result<()>
where
    F: FnMut(&[u8]) -> Option<T>,
    S: std::future::Future<Output = ()>,
{
    let set = EdgeSet::new()?;
    set.add(ring.as_fd(), 0)?;
    let wakeups = Readable::new(set)?;
    let mut stop = std::pin::pin!(stop);
    loop {
        // The order matters: take the edge, read the last wake-up, then drain. A record
        // submitted after the drain without a wake-up implies a wake-up after that read,
        // which the edge keeps; or it is younger than the deadline the timer waits for.
        wakeups.get_ref().take()?;
        let now = monotonic_ns();
        let last = policy.as_ref().map(|(which, wakes)| {
            // Unreadable (never seen): assume a wake-up just now, so the timer bounds the wait.
            wakes.get(&(*which as u32), 0).unwrap_or(now)
        });
        if !forward(&mut ring, &mut decode, &tx).await {
            return Ok(());
        }
        let nap = last.and_then(|last| unannounced_for(now, last));
        let woke = wakeups.wait(nap, stop.as_mut()).await?;
        if !woke {
            forward(&mut ring, &mut decode, &tx).await;
            return Ok(());
        }
    }
}

/// Sends every record now in `ring`; false once the receiver is gone.
async fn forward<T>(
    ring: &mut MappedRing,
    decode: &mut impl FnMut(&[u8]) -> Option<T>,
    tx: &crate::queue::Sender<T>,
) -> bool {
    // Decode, and release the record, before waiting on the channel.
    while let Some(v) = ring.read_next(&mut *decode) {
        if let Some(v) = v
            && !tx.put(v).await
        {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_power_of_two_page_multiples() {
        let cases: &[(u64, u64, u64)] = &[
            (4096, 1, 4096),
            (4096, 4096, 4096),
            (4096, 5000, 8192),
            (4096, 16384, 16384),
            (4096, 65537, 131072),
            (16384, 1, 16384),
            (16384, 4096, 16384),
            (16384, 5000, 16384),
            (16384, 16384, 16384),
            (16384, 65537, 131072),
            (65536, 1, 65536),
            (65536, 4096, 65536),
            (65536, 5000, 65536),
            (65536, 16384, 65536),
            (65536, 65537, 131072),
        ];
        for &(page, req, want) in cases {
            let got = choose_size(req, page).expect("valid");
            assert_eq!(got, want, "page {page} request {req}");
            assert!(got.is_power_of_two() && got.is_multiple_of(page) && got >= req);
        }
    }

    #[test]
    fn readers_sleep_unbounded_only_past_the_wake_deadline() {
        let ms = 1_000_000;
        assert_eq!(unannounced_for(1_000 * ms, 0), None, "no wake-up for ages");
        assert_eq!(
            unannounced_for(WAKE_AFTER_NS, 0),
            None,
            "exactly at the deadline"
        );
        let d = unannounced_for(100 * ms, 95 * ms).expect("woken 5 ms ago");
        assert_eq!(d, Duration::from_nanos(WAKE_AFTER_NS - 5 * ms + ms));
        let d = unannounced_for(50 * ms, 60 * ms).expect("wake-up read after now");
        assert_eq!(d, Duration::from_nanos(WAKE_AFTER_NS + ms));
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(choose_size(0, 4096), Err(SizeError::Zero));
        assert_eq!(
            choose_size((1 << 30) + 1, 4096),
            Err(SizeError::TooLarge {
                requested: (1 << 30) + 1
            })
        );
        assert_eq!(choose_size(1 << 30, 65536), Ok(1 << 30));
        assert_eq!(
            choose_size(10, 12288),
            Err(SizeError::BadPageSize { page_size: 12288 })
        );
    }
}
