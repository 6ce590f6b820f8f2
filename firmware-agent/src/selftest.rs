//! `firmware-agent selftest-ringbuf`: reproduces the original failure on purpose. It asks the
//! kernel for a raw ring buffer of exactly 4096 bytes (EINVAL on 16 KiB and 64 KiB pages),
//! then for one sized by our rule, and reads max_entries back from the kernel.

use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};

use crate::{kernel::page_size, ringbuf::choose_size};

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_TYPE_RINGBUF: u32 = 27;

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a zeroed 128-byte bpf_attr with the fields `cmd` reads filled in.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            size_of::<[u64; 16]>() as u32,
        )
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Creates a BPF ring buffer map of exactly `bytes`, with no rounding.
pub fn create_raw_ringbuf(bytes: u32) -> std::io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    // map_type, key_size (0), value_size (0), max_entries: four u32s.
    attr[0] = u64::from(BPF_MAP_TYPE_RINGBUF);
    attr[1] = u64::from(bytes) << 32;
    let fd = bpf(BPF_MAP_CREATE, &mut attr)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// max_entries of a map, as the kernel reports it.
pub fn map_max_entries(fd: &OwnedFd) -> std::io::Result<u32> {
    let mut info = [0u32; 20];
    let mut attr = [0u64; 16];
    // bpf_fd, info_len, info pointer.
    attr[0] = fd.as_raw_fd() as u64 | ((size_of::<[u32; 20]>() as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    // struct bpf_map_info { type, id, key_size, value_size, max_entries, ... }
    Ok(info[4])
}

/// Runs the check, prints one line per step, returns whether both results are as expected.
pub fn run() -> bool {
    let page = page_size();
    println!("page_size={page}");
    let raw = create_raw_ringbuf(4096);
    let raw_ok = match &raw {
        Ok(_) => {
            println!("raw_ringbuf bytes=4096 result=ok");
            page == 4096
        }
        Err(e) => {
            println!("raw_ringbuf bytes=4096 result={} ({e})", errno_name(e));
            page != 4096 && e.raw_os_error() == Some(libc::EINVAL)
        }
    };
    let sized_ok = match choose_size(4096, page) {
        Ok(chosen) => match create_raw_ringbuf(chosen as u32).and_then(|fd| map_max_entries(&fd)) {
            Ok(max) => {
                println!(
                    "sized_ringbuf requested=4096 chosen={chosen} max_entries={max} result=ok"
                );
                u64::from(max) == chosen && chosen.is_multiple_of(page)
            }
            Err(e) => {
                println!(
                    "sized_ringbuf requested=4096 chosen={chosen} result={} ({e})",
                    errno_name(&e)
                );
                false
            }
        },
        Err(e) => {
            println!("sized_ringbuf requested=4096 result=error ({e})");
            false
        }
    };
    let pass = raw_ok && sized_ok;
    println!("selftest-ringbuf {}", if pass { "PASS" } else { "FAIL" });
    pass
}

fn errno_name(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::EPERM) => "EPERM",
        Some(libc::ENOMEM) => "ENOMEM",
        _ => "error",
    }
}
