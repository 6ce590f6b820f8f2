//! A real Prometheus (Debian's `prometheus` package) on a free loopback port, scraping one
//! target every second, with its data in a temporary directory; queried over its HTTP API.
//! Fails (never skips) when prometheus is missing.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use super::http;
use crate::common::WAIT;

pub struct Prometheus {
    child: Child,
    pub url: String,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`host:port`) at `/metrics` every second.
    pub fn start(target: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: edge-hub\n    metrics_path: /metrics\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("config");
        let port = edge_hub::testkit::free_port().expect("free port");
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting prometheus (apt-get install prometheus): {e}"));
        let p = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + WAIT;
        while !http::request("GET", &format!("{}/-/ready", p.url), &[], None)
            .is_ok_and(|r| r.status == 200)
        {
            assert!(
                Instant::now() < deadline,
                "prometheus not ready:\n{}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `/api/v1/query?query=Q`: the result vector.
    pub fn query(&self, q: &str) -> Vec<Value> {
        let r = http::get(&format!("{}/api/v1/query?query={}", self.url, http::enc(q)));
        let v = r.json();
        assert_eq!(v["status"], "success", "query {q}: {v}");
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Queries until the result has exactly one series whose value is `want`.
    pub fn wait_value(&self, q: &str, want: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let res = self.query(q);
            if res.len() == 1 && res[0]["value"][1] == want {
                return res[0].clone();
            }
            assert!(
                Instant::now() < deadline,
                "prometheus: {q} never gave the one value {want}; last {res:?}\ntargets: {}\nlog:\n{}",
                http::get(&format!("{}/api/v1/targets", self.url)).text(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = edge_hub::testkit::terminate(&mut self.child, Duration::from_secs(10));
    }
}
