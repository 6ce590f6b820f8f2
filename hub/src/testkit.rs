//! Test support shared by the agent's, the hub's and the emulated boards' tests and benches
//! (cargo feature `testkit`, off by default; not part of the hub's function): a private
//! mosquitto on a loopback port (extra config lines, stop and restart on the same port for
//! outage tests), and the `hub --json` binary as a stream of decoded records.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read as _},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use serde_json::Value;

/// How long mosquitto gets to listen, and to exit after SIGTERM.
const BROKER_WAIT: Duration = Duration::from_secs(10);

/// A mosquitto of our own: `listener <port> 127.0.0.1`, `allow_anonymous true`,
/// `persistence false`, then the caller's extra lines (a repeated option takes the last value,
/// so extra lines may override these). Killed when dropped.
pub struct PrivateBroker {
    pub port: u16,
    child: Option<Child>,
    dir: PathBuf,
}

impl PrivateBroker {
    /// Starts `mosquitto` on 127.0.0.1 with a port the OS picked. Fails (never skips) when
    /// mosquitto is missing.
    pub fn start() -> std::io::Result<Self> {
        Self::start_on(free_port()?)
    }

    /// Starts `mosquitto` on 127.0.0.1:`port` (e.g. one a client was told about earlier).
    pub fn start_on(port: u16) -> std::io::Result<Self> {
        Self::start_on_with(port, "")
    }

    /// Like [`start`](Self::start), with extra `mosquitto.conf` lines (another listener with
    /// TLS, `password_file`, `acl_file`, `allow_anonymous false`, ...).
    pub fn start_with(conf_extra: &str) -> std::io::Result<Self> {
        Self::start_on_with(free_port()?, conf_extra)
    }

    /// Like `start_on`, with extra config lines after the defaults (later lines win); `{dir}`
    /// in them stands for the broker's private directory (e.g. `persistence_location {dir}/`).
    pub fn start_on_with(port: u16, conf_extra: &str) -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("edge-broker-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{}\n",
                conf_extra.replace("{dir}", &dir.display().to_string())
            ),
        )?;
        let mut broker = Self {
            port,
            child: None,
            dir,
        };
        broker.launch()?;
        Ok(broker)
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.join("mosquitto.log"))?;
        let child = Command::new(mosquitto())
            .arg("-c")
            .arg(self.dir.join("mosquitto.conf"))
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("starting mosquitto (apt-get install mosquitto): {e}"),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + BROKER_WAIT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                return Err(std::io::Error::other(format!(
                    "mosquitto exited ({status}) instead of listening on port {}:\n{}",
                    self.port,
                    self.log()
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!(
                    "mosquitto did not listen on port {}:\n{}",
                    self.port,
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops mosquitto (SIGTERM, then waits for it to exit; SIGKILL after 10 s). Clients see
    /// the broker go away; [`restart`](Self::restart) brings it back on the same port.
    pub fn stop(&mut self) -> std::io::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        terminate(&mut child, BROKER_WAIT).map(|_| ())
    }

    /// Stops mosquitto if it runs, and starts it again on the same port with the same config.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop()?;
        self.launch()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// The broker's own directory (its config and log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What mosquitto logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback port the kernel just handed out (and that we released again).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn mosquitto() -> &'static str {
    if Path::new("/usr/sbin/mosquitto").exists() {
        "/usr/sbin/mosquitto"
    } else {
        "mosquitto"
    }
}

/// SIGTERM to a child, then wait up to `grace` for it to exit; SIGKILL after that.
pub fn terminate(child: &mut Child, grace: Duration) -> std::io::Result<ExitStatus> {
    let pid = libc::pid_t::try_from(child.id()).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) on our own child's pid; it has not been waited for, so the pid is still
    // ours (a zombie at worst).
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let deadline = Instant::now() + grace;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if Instant::now() > deadline {
            child.kill()?;
            return child.wait();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `hub --json` as a child process: its records, parsed and stamped with their arrival time.
/// A line that is not JSON arrives as a `Value::String` saying so. Its stderr is kept.
pub struct JsonHub {
    child: Child,
    rx: mpsc::Receiver<(Instant, Value)>,
    stderr: Arc<Mutex<String>>,
}

impl JsonHub {
    /// Starts `bin --broker url --json` and waits until it has subscribed. Returns the hub and
    /// the records it printed up to then.
    pub fn start(bin: &Path, url: &str, timeout: Duration) -> Result<(Self, Vec<Value>), String> {
        Self::start_with_args(bin, url, &[], timeout)
    }

    /// Like [`start`](Self::start), with more arguments (`--totals-every 1`, `bridge`, TLS
    /// flags, ...).
    pub fn start_with_args(
        bin: &Path,
        url: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<(Self, Vec<Value>), String> {
        let mut child = Command::new(bin)
            .args(["--broker", url, "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let out = child.stdout.take().ok_or("hub has no stdout")?;
        let mut err = child.stderr.take().ok_or("hub has no stderr")?;
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
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                if let Ok(mut s) = sink.lock() {
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            }
        });
        let hub = Self { child, rx, stderr };
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
                None => {
                    return Err(format!(
                        "hub never subscribed; it printed {seen:?}; stderr:\n{}",
                        hub.stderr()
                    ));
                }
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

    /// What the hub wrote to stderr so far (its log).
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// SIGTERM, then every record printed until the hub exited (its totals come last), and
    /// its exit status. Killed if it takes longer than `timeout`.
    pub fn terminate(mut self, timeout: Duration) -> Result<(ExitStatus, Vec<Value>), String> {
        let status =
            terminate(&mut self.child, timeout).map_err(|e| format!("stopping hub: {e}"))?;
        let mut rest = Vec::new();
        // The reader ends at EOF: the hub has exited, so this does not wait long.
        while let Some((_, v)) = self.next_timeout(timeout) {
            rest.push(v);
        }
        Ok((status, rest))
    }
}

impl Drop for JsonHub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
