//! Facts about the running kernel and board: page size, release, arch, BTF, boot id and the
//! default device id. Read once at start-up.

use crate::config::sanitize_device_id;

#[derive(Clone, Debug)]
pub struct KernelInfo {
    pub page_size: u64,
    pub release: String,
    pub arch: String,
    pub btf: bool,
    pub boot_id: String,
}

impl KernelInfo {
    pub fn read() -> Self {
        let (release, arch) = uname();
        Self {
            page_size: page_size(),
            release,
            arch,
            // An empty file (bind-mounted over it to mimic a kernel without BTF) is no BTF.
            btf: std::fs::metadata("/sys/kernel/btf/vmlinux").is_ok_and(|m| m.len() > 0),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id")
                .unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The kernel's page size, from sysconf(_SC_PAGESIZE).
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a utsname.
    if unsafe { libc::uname(&mut u) } != 0 {
        return ("unknown".into(), std::env::consts::ARCH.into());
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&u.release), field(&u.machine))
}

fn read_trimmed(path: &str) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_owned())
}

/// Default device id: the board serial (device tree), else /etc/machine-id, else the hostname.
pub fn default_device_id() -> (String, &'static str) {
    for (path, what) in [
        ("/proc/device-tree/serial-number", "board serial"),
        ("/etc/machine-id", "machine-id"),
        ("/proc/sys/kernel/hostname", "hostname"),
    ] {
        if let Some(raw) = read_trimmed(path) {
            let id = sanitize_device_id(&raw);
            if !id.is_empty() {
                return (id, what);
            }
        }
    }
    ("unknown-device".into(), "fallback")
}

/// This process's resident set size in KiB (VmRSS), 0 if unknown.
pub fn self_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Parent of `pid` from /proc (for processes forked before the probes loaded).
pub fn proc_ppid(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Raises RLIMIT_MEMLOCK so map creation works on kernels before memcg accounting (< 5.11).
pub fn raise_memlock() -> bool {
    let lim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: valid rlimit pointer.
    unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) == 0 }
}

/// A random 64-bit number from the kernel (getrandom), for run ids. Falls back to the clock
/// and pid mixed together if the call fails (it does not block after early boot).
pub fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    // SAFETY: writes at most 8 bytes into `buf`.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 8 {
        return u64::from_le_bytes(buf);
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    t ^ (u64::from(std::process::id()) << 32) ^ crate::batch::monotonic_ns()
}
