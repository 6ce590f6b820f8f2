//! The binary's resident pages after start-up.
//!
//! Start-up runs code and reads data the steady state never touches again (config and
//! tracefs parsing, the embedded eBPF objects, loading and attaching), and the kernel maps
//! more than what is touched: every fault on a file page also maps the cached pages around it
//! (fault-around, 64 KiB), and read-around fills the cache ahead. So once the agent runs, it
//! tells the kernel its binary is read at random (no read-around) and asks it to reclaim the
//! binary's pages (`MADV_PAGEOUT`, Linux 5.4): the pages leave RAM (clean file pages; nothing
//! is written), and the steady state faults back, one page at a time, only what it uses. A
//! page needed again later (an outage's code path) is read back from the disk or card then.
//! Pages other processes map too are left alone by the kernel.

use std::{io, path::Path};

/// The read-only mappings of `path` in `/proc/self/maps`: start and end addresses. Writable
/// ones (data, relocations) hold private copies, which reclaim would swap, so they are left.
fn mappings_of(maps: &str, path: &Path) -> Vec<(usize, usize)> {
    let Some(path) = path.to_str() else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            // offset, dev, inode, then the path (which may hold spaces).
            let rest: Vec<&str> = f.skip(3).collect();
            if perms.contains('w') || rest.join(" ") != path {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

/// Advises the kernel as above on every mapping of the running binary; returns the bytes
/// advised. Errors: reading `/proc/self/maps` or the executable's path, or `madvise`
/// (EINVAL on kernels before 5.4, which have no `MADV_PAGEOUT`).
pub fn release_startup_pages() -> io::Result<usize> {
    let exe = std::fs::read_link("/proc/self/exe")?;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut bytes = 0;
    for (start, end) in mappings_of(&maps, &exe) {
        let len = end - start;
        for advice in [libc::MADV_RANDOM, libc::MADV_PAGEOUT] {
            // SAFETY: advice only, on a range of our own mappings: no memory changes meaning
            // (file-backed pages are read back on the next access; written private pages
            // are kept or swapped, never dropped).
            if unsafe { libc::madvise(start as *mut libc::c_void, len, advice) } != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        bytes += len;
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_binarys_read_only_mappings_are_taken() {
        let maps = "\
5555aaa00000-5555aab00000 r--p 00000000 fd:01 123 /usr/bin/firmware-agent
5555aab00000-5555aac80000 r-xp 00100000 fd:01 123 /usr/bin/firmware-agent
5555aac80000-5555aac90000 rw-p 00280000 fd:01 123 /usr/bin/firmware-agent
5555aac90000-5555aad00000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000010000 r--s 00000000 00:0e 99 anon_inode:bpf-map
7f0000020000-7f0000030000 r--p 00000000 fd:01 124 /usr/bin/firmware-agent-old
7f0000040000-7f0000050000 r--p 00000000 fd:01 125 /opt/my dir/firmware-agent
";
        assert_eq!(
            mappings_of(maps, Path::new("/usr/bin/firmware-agent")),
            vec![
                (0x5555aaa00000, 0x5555aab00000),
                (0x5555aab00000, 0x5555aac80000),
            ]
        );
        assert_eq!(
            mappings_of(maps, Path::new("/opt/my dir/firmware-agent")),
            vec![(0x7f0000040000, 0x7f0000050000)]
        );
    }
}
