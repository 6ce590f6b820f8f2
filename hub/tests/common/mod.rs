//! Helpers for the hub's integration tests: a child process read line by line (the text hub,
//! mosquitto_sub), publishing with mosquitto_pub, and schema-2 payloads built with edge_wire.
#![allow(dead_code, reason = "each test file uses a different part")]

pub mod proxy;

use std::{
    io::{BufRead as _, BufReader, Read as _},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use edge_wire::{DropCount, Event, EventBatch, Exit, ExitHow, Message, Task, bounded, encode};

/// Generous: tests wait for messages, they never assert how fast they come.
pub const WAIT: Duration = Duration::from_secs(30);

pub fn hub_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_hub"))
}

/// A child whose stdout arrives line by line; stderr is kept.
pub struct Proc {
    pub child: Child,
    rx: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let out = child.stdout.take().expect("stdout");
        let mut err = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                if let Ok(mut all) = sink.lock() {
                    all.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        Self { child, rx, stderr }
    }

    /// The first line matching `pred`; the lines before it are returned too.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> (String, Vec<String>) {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match self
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(l) if pred(&l) => return (l, seen),
                Ok(l) => seen.push(l),
                Err(_) => panic!("never saw {what}; saw:\n{}", seen.join("\n")),
            }
        }
    }

    /// The next line if one comes within `d`.
    pub fn next_line(&self, d: Duration) -> Option<String> {
        self.rx.recv_timeout(d).ok()
    }

    /// SIGTERM, then every line printed until the exit, and the exit status.
    pub fn terminate(mut self) -> (ExitStatus, Vec<String>) {
        let st = edge_hub::testkit::terminate(&mut self.child, WAIT).expect("terminate");
        let mut rest = Vec::new();
        while let Ok(l) = self.rx.recv_timeout(WAIT) {
            rest.push(l);
        }
        (st, rest)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_pub -q 1` (it returns once the broker acknowledged): messages published one
/// after another reach a subscriber in that order.
pub fn publish(port: u16, topic: &str, payload: &[u8]) {
    publish_args(port, topic, payload, &[]);
}

pub fn publish_args(port: u16, topic: &str, payload: &[u8], extra: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("payload");
    std::fs::write(&f, payload).expect("write");
    let out = Command::new("mosquitto_pub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
        ])
        .args(extra)
        .arg("-f")
        .arg(&f)
        .output()
        .expect("mosquitto_pub (apt-get install mosquitto-clients)");
    assert!(
        out.status.success(),
        "mosquitto_pub {topic}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A schema-2 batch from `device` whose events are exits with codes `codes`.
pub fn batch(
    device: &str,
    boot: &str,
    run_id: u64,
    seq: u32,
    codes: &[i32],
    drops: &[(&str, u64)],
) -> Vec<u8> {
    encode(&Message::Events(EventBatch {
        device: bounded(device),
        boot_id: bounded(boot),
        run_id,
        seq,
        unix_ms: 1_764_000_000_000,
        mono_ns: 1,
        drops: drops
            .iter()
            .map(|&(source, count)| DropCount {
                source: bounded(source),
                count,
            })
            .collect(),
        events: codes
            .iter()
            .map(|&code| {
                Event::Exit(Exit {
                    age_us: 0,
                    task: Task {
                        pid: 100,
                        tgid: 100,
                        comm: bounded("worker"),
                    },
                    ppid: 1,
                    how: ExitHow::Code(code),
                })
            })
            .collect(),
    }))
    .expect("encode")
}
