//! Test support: the real agent and hub binaries, a private mosquitto, and a JSON-lines
//! reader over the hub's stdout.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

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
        let (hub, seen) = JsonHub::start(&hub_bin(), url, WAIT).unwrap_or_else(|e| panic!("{e}"));
        Self { hub, seen }
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
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write config");
    p
}
