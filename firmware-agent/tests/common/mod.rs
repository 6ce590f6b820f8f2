//! Test support: the real agent and hub binaries, a private mosquitto, and a JSON-lines
//! reader over the hub's stdout.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

pub mod lifecycle;

use edge_hub::testkit::JsonHub;
pub use edge_hub::testkit::PrivateBroker;
use serde_json::Value;

/// Generous: the e2e tests wait for events, they never assert how fast they come.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc_geteuid() },
        0,
        "these tests load eBPF programs and must run as root (CI runs them as root)"
    );
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_firmware-agent"))
}

pub fn hub_bin() -> PathBuf {
    let p = agent_bin().with_file_name("hub");
    assert!(
        p.exists(),
        "{} missing: build the workspace first (cargo build --workspace)",
        p.display()
    );
    p
}

pub fn example_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("agent.example.toml")
}

/// The hub binary in `--json` mode, with every record seen kept for later checks.
pub struct Hub {
    hub: JsonHub,
    pub seen: Vec<Value>,
}

impl Hub {
    pub fn start(broker: &PrivateBroker) -> Self {
        Self::start_url(&broker.url())
    }

    pub fn start_url(url: &str) -> Self {
        Self::start_args(url, &[])
    }

    /// The hub with extra arguments (e.g. `--session NAME`).
    pub fn start_args(url: &str, args: &[&str]) -> Self {
        let (hub, seen) =
            JsonHub::start_with_args(&hub_bin(), url, args, WAIT).unwrap_or_else(|e| panic!("{e}"));
        Self { hub, seen }
    }

    /// Waits until `n` records match `pred`, then takes what else arrives for a second (so a
    /// duplicate would be seen); returns how many matched in the end.
    pub fn wait_count(&mut self, what: &str, n: u64, pred: impl Fn(&Value) -> bool) -> u64 {
        let mut count = self.seen.iter().filter(|v| pred(v)).count() as u64;
        let deadline = Instant::now() + WAIT * 4;
        while count < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.hub.next_timeout(left) {
                Some((_, v)) => {
                    count += u64::from(pred(&v));
                    self.seen.push(v);
                }
                None => panic!(
                    "hub printed {count} of {n} {what}; the last records:\n{}",
                    self.dump()
                ),
            }
        }
        let before = self.seen.len();
        self.settle(Duration::from_secs(1));
        count + self.seen[before..].iter().filter(|v| pred(v)).count() as u64
    }

    /// Waits for a record matching `pred` (checking those already seen first).
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.hub.next_timeout(left) {
                Some((_, v)) => {
                    assert!(!v.is_string(), "hub printed non-JSON: {v}");
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                None => panic!("hub never printed {what}; it printed:\n{}", self.dump()),
            }
        }
    }

    /// Like `wait_for`, but only records from index `from` of `seen` on count; returns the
    /// match and the index after it (to continue from).
    pub fn wait_for_from(
        &mut self,
        from: usize,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> (Value, usize) {
        if let Some(i) = self.seen.iter().skip(from).position(&pred) {
            return (self.seen[from + i].clone(), from + i + 1);
        }
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.hub.next_timeout(left) {
                Some((_, v)) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return (v, self.seen.len());
                    }
                }
                None => panic!("hub never printed {what}; it printed:\n{}", self.dump()),
            }
        }
    }

    /// Takes whatever else arrives within `d` (to check nothing unexpected came).
    pub fn settle(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Some((_, v)) = self
            .hub
            .next_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(v);
        }
    }

    pub fn dump(&self) -> String {
        self.seen
            .iter()
            .rev()
            .take(60)
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Events from `device` matching `pred`.
    pub fn events(&self, device: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|v| v["type"] == "event" && v["device"] == device && pred(&v["event"]))
            .map(|v| v["event"].clone())
            .collect()
    }
}

/// The agent binary, with stderr kept for failure messages.
pub struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    pub fn start(broker: &PrivateBroker, device: &str, config: &Path) -> Self {
        Self::start_url(&broker.url(), device, config)
    }

    pub fn start_url(url: &str, device: &str, config: &Path) -> Self {
        let log = std::env::temp_dir().join(format!("agent-{device}-{}.log", std::process::id()));
        let child = Command::new(agent_bin())
            .args(["--config"])
            .arg(config)
            .args(["--card-config", "/nonexistent/card.toml"])
            .env("FIRMWARE_AGENT_BROKER_URL", url)
            .env("FIRMWARE_AGENT_DEVICE_ID", device)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("agent log"))
            .spawn()
            .expect("start agent");
        Self { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no goodbye, so the broker publishes the will.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(st) = self.child.try_wait().expect("wait agent") {
                return (st, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("agent did not stop after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes a config file for a test.
/// A config file only its owner can read (mode 0600), as the agent requires of a file that
/// holds `mqtt.password`.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
    p
}

/// Sum, kB, of `field` ("Rss:", "Size:") over `pid`'s mappings (`/proc/<pid>/smaps`; "self"
/// for this process) whose header line satisfies `which`.
pub fn smaps_kib(pid: &str, field: &str, which: impl Fn(&str) -> bool) -> u64 {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let mut total = 0;
    let mut counted = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            counted = which(line);
        } else if counted && first == field {
            total += line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}
