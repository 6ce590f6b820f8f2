//! Test kit of the `hub serve` tests: the server as a child process on a free loopback port
//! ([`ServeHub`]), a simulated fleet ([`fleet`]), a small HTTP client ([`http`]), a headless
//! Chromium driven through chromedriver ([`browser`]) and a Prometheus ([`prometheus`]).
#![allow(dead_code, reason = "each test file uses a different part")]

pub mod browser;
pub mod fleet;
pub mod http;
pub mod prometheus;

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::common::{Proc, WAIT, hub_bin};

/// Where tests keep what a person may want to look at (screenshots), under target/.
pub fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-artefacts");
    std::fs::create_dir_all(&dir).expect("artefacts dir");
    dir
}

/// `hub serve` as a child: its URL (port picked by the OS) once it has subscribed.
pub struct ServeHub {
    pub proc: Proc,
    pub url: String,
    pub data_dir: PathBuf,
}

impl ServeHub {
    /// Starts `hub --broker BROKER serve --listen 127.0.0.1:0 --data-dir DIR EXTRA`, with
    /// `--flush-ms 50` unless EXTRA sets it.
    pub fn start(broker: &str, data_dir: &Path, extra: &[&str]) -> Self {
        let mut cmd = Command::new(hub_bin());
        cmd.args(["--broker", broker, "serve", "--listen", "127.0.0.1:0"]);
        if !extra.contains(&"--flush-ms") {
            cmd.args(["--flush-ms", "50"]);
        }
        cmd.arg("--data-dir").arg(data_dir).args(extra);
        let proc = Proc::spawn(cmd.env("RUST_LOG", "info"));
        let (line, _) = proc.wait_for("SERVING line", |l| l.starts_with("SERVING "));
        let url = line
            .split(' ')
            .nth(1)
            .expect("URL in SERVING line")
            .trim_end_matches('/')
            .to_owned();
        let hub = Self {
            proc,
            url,
            data_dir: data_dir.to_owned(),
        };
        hub.wait_stderr("subscribed to");
        hub
    }

    /// Waits until the hub logged a line containing `what`.
    pub fn wait_stderr(&self, what: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.proc.stderr().contains(what) {
            assert!(
                Instant::now() < deadline,
                "hub never logged {what:?}:\n{}",
                self.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn get(&self, path: &str) -> http::Response {
        http::get(&format!("{}{path}", self.url))
    }

    /// GETs `path` (JSON) until `pred` holds, and returns that answer.
    pub fn wait_json(&self, path: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let r = self.get(path);
            let v = if r.status == 200 {
                r.json()
            } else {
                Value::Null
            };
            if pred(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "never {what}; last answer to {path}: {} {}\nhub log:\n{}",
                r.status,
                r.text(),
                self.proc.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM; its exit status and log.
    pub fn stop(mut self) -> (ExitStatus, String) {
        let status =
            edge_hub::testkit::terminate(&mut self.proc.child, WAIT).expect("terminate hub");
        // Its stderr reader reaches EOF right after the exit.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.proc.stderr())
    }
}

/// Runs `hub ARGS` to completion: exit status, stdout, stderr.
pub fn hub_run(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(hub_bin())
        .args(args)
        .output()
        .expect("running hub");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
