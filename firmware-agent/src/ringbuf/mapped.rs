//! One BPF ring buffer read through a single mapping of its data pages.
//!
//! The kernel maps a ring's data pages twice in a row, so that a record wrapping past the end
//! reads as one slice; a reader that maps the whole (aya's `RingBuf`, libbpf) has every data
//! page twice in its page tables, and VmRSS counts each twice: 1.15 MB for the default 576 KiB
//! of rings. This reader maps the consumer page (read-write) and the producer page plus the
//! data pages once (read-only), and copies out the rare record that wraps. The protocol is the
//! kernel's (kernel/bpf/ringbuf.c): an 8-byte header per record (length with a busy and a
//! discard bit, then a page offset), records 8-byte aligned, positions as `unsigned long`s the
//! producer publishes with release and the consumer with release.

use std::{
    os::fd::{AsFd, AsRawFd as _, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, AtomicUsize, Ordering, fence},
};

use aya::maps::MapData;

const HDR: usize = 8;
const BUSY: u32 = 1 << 31;
const DISCARD: u32 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum RingError {
    #[error("ring buffer of {size} B with {page} B pages: not a power-of-two page multiple")]
    BadSize { size: usize, page: usize },
    #[error("mapping {what} of the ring buffer ({bytes} B)")]
    Mmap {
        what: &'static str,
        bytes: usize,
        #[source]
        source: std::io::Error,
    },
}

/// A mapping unmapped on drop.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(
        fd: BorrowedFd<'_>,
        len: usize,
        prot: libc::c_int,
        offset: usize,
        what: &'static str,
    ) -> Result<Self, RingError> {
        let err = |source| RingError::Mmap {
            what,
            bytes: len,
            source,
        };
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| err(std::io::Error::from(std::io::ErrorKind::InvalidInput)))?;
        // SAFETY: a fresh shared mapping of the map's fd, owned by the value, unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(err(std::io::Error::last_os_error()));
        }
        let base = NonNull::new(base.cast::<u8>())
            .ok_or_else(|| err(std::io::Error::other("mmap returned NULL")))?;
        Ok(Self { base, len })
    }

    fn position(&self) -> &AtomicUsize {
        // SAFETY: offset 0 of a page-aligned mapping of at least a page: aligned and in
        // bounds; the kernel and this reader share the word, so it is accessed atomically.
        unsafe { &*self.base.as_ptr().cast::<AtomicUsize>() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`, not used after this.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A ring buffer map and its reader's mappings.
pub struct MappedRing {
    consumer: Mapping,
    /// The producer page, then the data pages once.
    producer: Mapping,
    page: usize,
    size: usize,
    /// A record that wraps around the end, copied out.
    scratch: Vec<u8>,
    wrapped: u64,
    /// The producer position last read: reloaded only once the reader has caught up with it,
    /// so a busy ring does not pull the producer's cache line over for every record.
    prod: usize,
    map: MapData,
}

// SAFETY: the mappings are owned by this value and only read or written through `&mut self`.
unsafe impl Send for MappedRing {}

impl MappedRing {
    /// Maps `map`, a ring buffer of `size` data bytes on a kernel with `page`-byte pages.
    pub fn new(map: MapData, size: usize, page: usize) -> Result<Self, RingError> {
        if !page.is_power_of_two() || !size.is_power_of_two() || size < page {
            return Err(RingError::BadSize { size, page });
        }
        let fd = map.fd().as_fd();
        let consumer = Mapping::new(
            fd,
            page,
            libc::PROT_READ | libc::PROT_WRITE,
            0,
            "the consumer page",
        )?;
        let producer = Mapping::new(
            fd,
            page + size,
            libc::PROT_READ,
            page,
            "the producer and data pages",
        )?;
        let prod = producer.position().load(Ordering::Acquire);
        Ok(Self {
            consumer,
            producer,
            page,
            size,
            scratch: Vec::new(),
            wrapped: 0,
            prod,
            map,
        })
    }

    fn data(&self, pos: usize) -> *const u8 {
        // SAFETY: `pos & (size - 1)` < size, inside the data pages after the producer page.
        unsafe {
            self.producer
                .base
                .as_ptr()
                .add(self.page + (pos & (self.size - 1)))
        }
    }

    /// Calls `f` with the next committed record and then releases it to the kernel; None when
    /// the ring holds no committed record (it may hold one still being written).
    pub fn read_next<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        loop {
            let cons = self.consumer.position().load(Ordering::Relaxed);
            if cons == self.prod {
                self.prod = self.producer.position().load(Ordering::Acquire);
            }
            if cons == self.prod {
                // Caught up: order our last release of space before looking again, so either
                // this sees a record committed meanwhile or its producer sees the new consumer
                // position and wakes us (the kernel's default policy).
                fence(Ordering::SeqCst);
                self.prod = self.producer.position().load(Ordering::Acquire);
                if cons == self.prod {
                    return None;
                }
            }
            let prod = self.prod;
            // SAFETY: records are 8-byte aligned and the data size a multiple of 8, so the
            // header never wraps; the kernel commits it with a fully ordered exchange.
            let header = unsafe { &*self.data(cons).cast::<AtomicU32>() }.load(Ordering::Acquire);
            if header & BUSY != 0 {
                return None;
            }
            let len = (header & !(BUSY | DISCARD)) as usize;
            if len > self.size - HDR {
                // The kernel never writes this: give back everything there is, and say so.
                log::warn!("ring buffer: impossible record length {len}; skipping to the producer");
                self.consumer.position().store(prod, Ordering::Release);
                return None;
            }
            let next = cons.wrapping_add((len + HDR + 7) & !7);
            if header & DISCARD != 0 {
                self.consumer.position().store(next, Ordering::Release);
                continue;
            }
            let start = cons.wrapping_add(HDR) & (self.size - 1);
            let out = if start + len <= self.size {
                // SAFETY: inside the data pages; the kernel does not reuse the record's space
                // until the consumer position moves past it, below.
                f(unsafe { std::slice::from_raw_parts(self.data(cons.wrapping_add(HDR)), len) })
            } else {
                let first = self.size - start;
                self.scratch.clear();
                // SAFETY: [start, size) and [0, len - first) are both inside the data pages.
                unsafe {
                    let data = self.producer.base.as_ptr().add(self.page);
                    self.scratch
                        .extend_from_slice(std::slice::from_raw_parts(data.add(start), first));
                    self.scratch
                        .extend_from_slice(std::slice::from_raw_parts(data, len - first));
                }
                self.wrapped += 1;
                f(&self.scratch)
            };
            self.consumer.position().store(next, Ordering::Release);
            return Some(out);
        }
    }
}

impl MappedRing {
    /// How many records wrapped around the ring's end and were copied out.
    pub fn wrapped_records(&self) -> u64 {
        self.wrapped
    }
}

impl AsFd for MappedRing {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd().as_fd()
    }
}
