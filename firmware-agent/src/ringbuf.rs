//! Ring buffers: sizing from the running kernel, and awaiting records through the map's fd.
//!
//! The kernel requires a ring buffer's size to be a power of two and a page multiple; a
//! 16 KiB-page kernel refuses 4096 with EINVAL. We choose the smallest power of two that is
//! >= max(requested, page size): page sizes are powers of two, so that is a page multiple too.

use std::os::fd::AsFd as _;

use aya::maps::{MapData, RingBuf};

use crate::config::MAX_RING_BYTES;

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

/// Awaits `ring`'s fd on the current executor, turns every record into a `T` with `decode`
/// and sends it on `tx` (waiting when the consumer is behind: the kernel then counts drops),
/// until `stop` resolves; then drains what is left once and returns.
pub async fn drain<T, F, S>(
    mut ring: RingBuf<MapData>,
    mut decode: F,
    tx: async_channel::Sender<T>,
    stop: S,
) -> std::io::Result<()>
where
    F: FnMut(&[u8]) -> Option<T>,
    S: std::future::Future<Output = ()>,
{
    let fd = smol::Async::new(ring.as_fd().try_clone_to_owned()?)?;
    let mut stop = std::pin::pin!(stop);
    loop {
        // Take what is there, then sleep on epoll until the kernel says there is more.
        if !forward(&mut ring, &mut decode, &tx).await {
            return Ok(());
        }
        let woke = futures_lite::future::or(async { fd.readable().await.map(|()| true) }, async {
            stop.as_mut().await;
            Ok(false)
        })
        .await?;
        if !woke {
            forward(&mut ring, &mut decode, &tx).await;
            return Ok(());
        }
    }
}

/// Sends every record now in `ring`; false once the receiver is gone.
async fn forward<T>(
    ring: &mut RingBuf<MapData>,
    decode: &mut impl FnMut(&[u8]) -> Option<T>,
    tx: &async_channel::Sender<T>,
) -> bool {
    while let Some(item) = ring.next() {
        // Decode, then release the record before waiting on the channel.
        let v = decode(&item);
        drop(item);
        if let Some(v) = v
            && tx.send(v).await.is_err()
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
