//! One CPU's perf buffer: the `PERF_COUNT_SW_BPF_OUTPUT` event opened with a watermark, its
//! mmap'd ring (a header page, then a power of two of data pages), and the records read off it
//! one at a time, each copied out (it may wrap around the end) before the tail moves past it.

use std::{
    os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU64, Ordering},
};

use super::PerfError;

// include/uapi/linux/perf_event.h
const PERF_TYPE_SOFTWARE: u32 = 1;
const PERF_COUNT_SW_BPF_OUTPUT: u64 = 10;
const PERF_SAMPLE_RAW: u64 = 1 << 10;
const PERF_ATTR_FLAG_WATERMARK: u64 = 1 << 14;
const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
const PERF_RECORD_LOST: u32 = 2;
const PERF_RECORD_SAMPLE: u32 = 9;
/// `struct perf_event_mmap_page`: offsets of `data_head` and `data_tail`.
const DATA_HEAD: usize = 1024;
const DATA_TAIL: usize = 1032;

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER5` (Linux 4.1), all a BPF output event
/// needs; kernels accept any size they know, newer fields being zero.
#[repr(C)]
#[derive(Default)]
struct PerfEventAttr {
    type_: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    flags: u64,
    wakeup_watermark: u32,
    bp_type: u32,
    config1: u64,
    config2: u64,
    branch_sample_type: u64,
    sample_regs_user: u64,
    sample_stack_user: u32,
    clockid: i32,
    sample_regs_intr: u64,
    aux_watermark: u32,
    sample_max_stack: u16,
    reserved: u16,
}
const _: () = assert!(size_of::<PerfEventAttr>() == 112);

/// One CPU's perf buffer: the event's fd and its mapping (a header page, then the data pages).
pub struct PerfBuffer {
    fd: OwnedFd,
    base: NonNull<u8>,
    map_len: usize,
    page: usize,
    data_len: usize,
    /// A record copied out of the buffer (it may wrap around the end).
    scratch: Vec<u8>,
}

// SAFETY: the mapping is owned by this value and only touched through `&mut self`.
unsafe impl Send for PerfBuffer {}

/// What a buffer yields.
pub enum Item<'a> {
    Sample(&'a [u8]),
    Lost(u64),
}

impl PerfBuffer {
    /// Opens the BPF output event of `cpu` with `pages` data pages of `page` bytes, waking
    /// readers once `watermark` bytes are unread.
    pub fn open(cpu: u32, pages: usize, page: usize, watermark: u32) -> Result<Self, PerfError> {
        let attr = PerfEventAttr {
            type_: PERF_TYPE_SOFTWARE,
            size: size_of::<PerfEventAttr>() as u32,
            config: PERF_COUNT_SW_BPF_OUTPUT,
            sample_period: 1,
            sample_type: PERF_SAMPLE_RAW,
            flags: PERF_ATTR_FLAG_WATERMARK,
            wakeup_watermark: watermark,
            ..Default::default()
        };
        // SAFETY: a valid attr; pid -1 with a cpu = every task on that CPU; no group.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_perf_event_open,
                &attr as *const PerfEventAttr,
                -1 as libc::pid_t,
                cpu as libc::c_int,
                -1 as libc::c_int,
                PERF_FLAG_FD_CLOEXEC,
            )
        };
        if fd < 0 {
            let source = std::io::Error::last_os_error();
            return Err(PerfError::Open { cpu, source });
        }
        // SAFETY: a new fd nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let map_len = (pages + 1) * page;
        // SAFETY: a fresh shared mapping of the event's buffer, unmapped in Drop.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            let source = std::io::Error::last_os_error();
            return Err(PerfError::Mmap {
                cpu,
                bytes: map_len,
                source,
            });
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or(PerfError::Mmap {
            cpu,
            bytes: map_len,
            source: std::io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self {
            fd,
            base,
            map_len,
            page,
            data_len: pages * page,
            scratch: Vec::new(),
        })
    }

    fn word(&self, offset: usize) -> &AtomicU64 {
        // SAFETY: `offset` is DATA_HEAD or DATA_TAIL, inside the header page, 8-aligned; the
        // kernel and this reader share those words, so they are accessed atomically.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// Copies `len` bytes at data position `pos` (wrapping) into `scratch`.
    fn copy_out(&mut self, pos: u64, len: usize) {
        self.scratch.clear();
        let start = (pos % self.data_len as u64) as usize;
        let first = len.min(self.data_len - start);
        // SAFETY: both ranges are inside the data pages (first <= data_len - start, and the
        // rest < data_len since a record is smaller than the buffer); the kernel does not
        // write them until the tail moves past.
        unsafe {
            let data = self.base.as_ptr().add(self.page);
            self.scratch
                .extend_from_slice(std::slice::from_raw_parts(data.add(start), first));
            self.scratch
                .extend_from_slice(std::slice::from_raw_parts(data, len - first));
        }
    }

    /// The next record, copied out, with the buffer's tail moved past it; None when empty.
    pub fn read_next(&mut self) -> Option<Item<'_>> {
        let head = self.word(DATA_HEAD).load(Ordering::Acquire);
        let tail = self.word(DATA_TAIL).load(Ordering::Relaxed);
        if head == tail {
            return None;
        }
        // struct perf_event_header { u32 type; u16 misc; u16 size; }
        self.copy_out(tail, 8);
        let kind = u32::from_ne_bytes([
            self.scratch[0],
            self.scratch[1],
            self.scratch[2],
            self.scratch[3],
        ]);
        let size = u16::from_ne_bytes([self.scratch[6], self.scratch[7]]) as usize;
        if size < 8 || size > self.data_len || tail + size as u64 > head {
            // A torn or impossible header: skip everything there is, and say so.
            log::warn!("perf buffer: bad record header (type {kind}, size {size}); skipping");
            self.word(DATA_TAIL).store(head, Ordering::Release);
            return None;
        }
        self.copy_out(tail, size);
        let item_end = tail + size as u64;
        let item = match kind {
            // header, u32 size, raw bytes (padded to 8).
            PERF_RECORD_SAMPLE if size >= 12 => {
                let n = u32::from_ne_bytes([
                    self.scratch[8],
                    self.scratch[9],
                    self.scratch[10],
                    self.scratch[11],
                ]) as usize;
                let n = n.min(size - 12);
                self.scratch.copy_within(12..12 + n, 0);
                self.scratch.truncate(n);
                Some(true)
            }
            // header, u64 id, u64 lost.
            PERF_RECORD_LOST if size >= 24 => None,
            _ => Some(false),
        };
        // Everything needed is copied out: the kernel may reuse the space.
        self.word(DATA_TAIL).store(item_end, Ordering::Release);
        match item {
            Some(true) => Some(Item::Sample(&self.scratch)),
            None => {
                let mut lost = [0u8; 8];
                lost.copy_from_slice(&self.scratch[16..24]);
                Some(Item::Lost(u64::from_ne_bytes(lost)))
            }
            // Another record type (none is asked for): skipped, as an empty sample.
            Some(false) => Some(Item::Sample(&[])),
        }
    }
}

impl AsFd for PerfBuffer {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for PerfBuffer {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `open`, not used after this.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.map_len) };
    }
}
