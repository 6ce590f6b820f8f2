//! A real headless Chromium (Debian's `chromium` and `chromium-driver`), driven through
//! chromedriver's W3C WebDriver HTTP API: navigate, run a script, take a screenshot. Fails
//! (never skips) when either is missing. Each browser gets a fresh profile directory and the
//! flags that keep it from calling out (no background networking, component updates, sync).

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use base64::Engine as _;
use serde_json::{Value, json};

use super::http;
use crate::common::WAIT;

/// chromedriver, killed when dropped (also when the start fails half way).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub struct Browser {
    driver: Driver,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

fn chromium() -> PathBuf {
    for p in ["/usr/lib/chromium/chromium", "/usr/bin/chromium"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "chromium is missing (apt-get install chromium chromium-driver; scripts/setup.sh installs it)"
    );
}

impl Browser {
    pub fn start() -> Self {
        let binary = chromium();
        let port = edge_hub::testkit::free_port().expect("free port");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("starting chromedriver (apt-get install chromium-driver): {e}")
            });
        let driver = Driver(driver);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http::request("GET", &format!("{base}/status"), &[], None)
                && r.status == 200
                && r.json()["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().expect("profile dir");
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-default-apps".into(),
            "--disable-extensions".into(),
            "--no-first-run".into(),
            "--no-default-browser-check".into(),
            "--window-size=1400,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": args}
        }}});
        let r = http::post_json(&format!("{base}/session"), &caps);
        let v = r.json();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        let mut b = Self {
            driver,
            base,
            session,
            _profile: profile,
        };
        b.base = format!("{}/session/{}", b.base, b.session);
        b
    }

    fn post(&self, path: &str, body: Value) -> Value {
        let r = http::post_json(&format!("{}{path}", self.base), &body);
        let v = r.json();
        assert_eq!(r.status, 200, "WebDriver {path}: {v}");
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url}));
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    pub fn eval(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []}))
    }

    /// Evaluates `script` until it returns true.
    pub fn wait_true(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        while self.eval(script) != Value::Bool(true) {
            assert!(Instant::now() < deadline, "browser: never {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the window as `dir/name.png` and prints the path.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let r = http::get(&format!("{}/screenshot", self.base));
        let b64 = r.json()["value"]
            .as_str()
            .expect("screenshot data")
            .to_owned();
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("screenshot base64");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        println!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = http::delete(&self.base);
    }
}
