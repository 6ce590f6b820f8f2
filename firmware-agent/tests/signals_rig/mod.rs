//! The signals suite's rig (a private mosquitto, the hub, the agent with one-second summaries)
//! and the helpers that set up or measure what the tests cause: a memory cgroup with a limit,
//! the kernel's TCP_INFO byte counts, the filesystem type, flow sums over TCP summaries.

use std::{
    net::TcpStream,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::common::*;

pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub const CONFIG: &str =
    "[summaries]\ninterval_s = 1\n[metrics]\ninterval_s = 1\n[batch]\nmax_age_ms = 100\n";

pub struct Rig {
    _broker: PrivateBroker,
    pub hub: Hub,
    pub agent: Agent,
    pub device: String,
    _dir: tempfile::TempDir,
}

pub fn rig(name: &str, extra_config: &str) -> Rig {
    require_root();
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "agent.toml", &format!("{CONFIG}{extra_config}"));
    let device = format!("{name}-{}", std::process::id());
    let agent = Agent::start(&broker, &device, &cfg);
    hub.wait_for("the birth", |v| {
        v["type"] == "online" && v["device"] == device
    });
    Rig {
        _broker: broker,
        hub,
        agent,
        device,
        _dir: dir,
    }
}

impl Rig {
    pub fn birth(&mut self) -> Value {
        let device = self.device.clone();
        self.hub.wait_for("the birth", |v| {
            v["type"] == "online" && v["device"] == device
        })
    }

    pub fn probe(&mut self, name: &str) -> Value {
        self.birth()["body"]["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no probe {name}"))
    }

    pub fn assert_attached(&mut self, names: &[&str]) {
        for name in names {
            let p = self.probe(name);
            assert_eq!(p["state"], "Attached", "{p}; log:\n{}", self.agent.log());
        }
    }

    /// Waits until `done` holds over every event of this device (checked as records arrive).
    pub fn wait_events(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let device = self.device.clone();
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.hub.events(&device, |_| true);
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never arrived; agent log:\n{}\nhub:\n{}",
                self.agent.log(),
                self.hub.dump()
            );
            self.hub.settle(Duration::from_millis(200));
        }
    }
}

/// Where this process's memory cgroup can get a child with a memory limit: (directory, the
/// limit file). cgroup v2 when its root offers the memory controller, else the v1 hierarchy.
pub fn memory_cgroup_for(name: &str) -> (PathBuf, &'static str, String) {
    let v2_root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .map(Path::new)
        .find(|p| {
            std::fs::read_to_string(p.join("cgroup.controllers"))
                .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
        });
    if let Some(root) = v2_root {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("create v2 cgroup");
        let _ = std::fs::write(dir.join("memory.swap.max"), "0");
        return (dir, "memory.max", format!("/{name}"));
    }
    // v1: a child of our own memory cgroup (it inherits our limits).
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    let rel = own
        .lines()
        .find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, ctl, path) = (p.next()?, p.next()?, p.next()?);
            ctl.split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        })
        .expect("no memory cgroup on v2 or v1: the OOM test needs one");
    let v1 = Path::new("/sys/fs/cgroup/memory");
    assert!(
        v1.is_dir(),
        "memory controller on v1 but not at {}",
        v1.display()
    );
    let path = format!("{}/{name}", rel.trim_end_matches('/'));
    let dir = v1.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(&dir).expect("create v1 memory cgroup");
    (dir, "memory.limit_in_bytes", path)
}

/// The kernel's own count of this socket's bytes: (acked by the peer, received).
pub fn tcp_info(s: &TcpStream) -> (u64, u64) {
    // SAFETY: a zeroed tcp_info is valid; getsockopt writes at most `len` bytes into it.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: valid fd, buffer and length.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&raw mut info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    (info.tcpi_bytes_acked, info.tcpi_bytes_received)
}

/// Sums the counts of every flow matching `(direction, port)` of this process.
pub fn flow_totals(events: &[Value], me: u32, direction: &str, port: u16) -> (u64, u64, u64, u64) {
    let mut t = (0, 0, 0, 0);
    for f in events
        .iter()
        .filter_map(|e| e["Tcp"]["flows"].as_array())
        .flatten()
        .filter(|f| {
            f["task"]["tgid"] == me
                && f["direction"] == direction
                && f["port"] == port
                && f["peer"]["V4"] == serde_json::json!([127, 0, 0, 1])
        })
    {
        let c = &f["counts"];
        let n = |k: &str| c[k].as_u64().unwrap_or(0);
        t.0 += n("bytes_sent");
        t.1 += n("bytes_received");
        t.2 += n("opened");
        t.3 += n("closed");
    }
    t
}

/// Whether `path` is on ext4 (the storage probes' write attribution is ext4's).
pub fn on_ext4(path: &Path) -> bool {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).expect("path");
    // SAFETY: a zeroed statfs is valid; statfs writes into it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and buffer.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type == 0xEF53
}
