//! Test support shared by the agent's, the hub's and the emulated boards' tests and benches:
//! a private mosquitto on a free loopback port, and the `hub --json` binary as a stream of
//! decoded records. Not part of the hub's function.

use std::{
    io::{BufRead as _, BufReader},
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use serde_json::Value;

pub struct PrivateBroker {
    pub port: u16,
    child: Child,
    _dir: std::path::PathBuf,
}

impl PrivateBroker {
    /// Starts `mosquitto` on 127.0.0.1 with a port the OS picked. Fails (never skips) when
    /// mosquitto is missing.
    pub fn start() -> std::io::Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts `mosquitto` on 127.0.0.1:`port` (e.g. one a client was told about earlier).
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("edge-broker-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
        )?;
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("starting mosquitto (apt-get install mosquitto): {e}"),
                )
            })?;
        let broker = Self {
            port,
            child,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "mosquitto did not listen on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// A loopback port the kernel just handed out (and that we released again).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn mosquitto() -> &'static str {
    if std::path::Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self._dir);
    }
}

/// `hub --json` as a child process: its records, parsed and stamped with their arrival time.
/// A line that is not JSON arrives as a `Value::String` saying so.
pub struct JsonHub {
    child: Child,
    rx: mpsc::Receiver<(Instant, Value)>,
}

impl JsonHub {
    /// Starts `bin --broker url --json` and waits until it has subscribed. Returns the hub and
    /// the records it printed up to then.
    pub fn start(bin: &Path, url: &str, timeout: Duration) -> Result<(Self, Vec<Value>), String> {
        let mut child = Command::new(bin)
            .args(["--broker", url, "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let out = child.stdout.take().ok_or("hub has no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|e| Value::String(format!("non-JSON hub line {line:?}: {e}")));
                if tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        });
        let hub = Self { child, rx };
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            match hub.next_timeout(deadline.saturating_duration_since(Instant::now())) {
                Some((_, v)) => {
                    let subscribed = v["type"] == "hub" && v["state"] == "subscribed";
                    seen.push(v);
                    if subscribed {
                        return Ok((hub, seen));
                    }
                }
                None => return Err(format!("hub never subscribed; it printed {seen:?}")),
            }
        }
    }

    /// The next record, waiting at most `d`.
    pub fn next_timeout(&self, d: Duration) -> Option<(Instant, Value)> {
        self.rx.recv_timeout(d).ok()
    }

    /// The next record if one has arrived.
    pub fn try_next(&self) -> Option<(Instant, Value)> {
        self.rx.try_recv().ok()
    }
}

impl Drop for JsonHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
