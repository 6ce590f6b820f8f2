//! MQTT over TLS (rustls, CA file) with username/password, against a real mosquitto that
//! refuses anonymous clients on that listener. The hub listens on a second, plain listener.

mod common;

use std::{
    net::{TcpListener, TcpStream},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("port")
        .local_addr()
        .expect("addr")
        .port()
}

fn sh(dir: &Path, script: &str) {
    let st = Command::new("sh")
        .arg("-ec")
        .arg(script)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sh");
    assert!(st.success(), "failed: {script}");
}

/// The test's mosquitto, stopped however the test ends (a failed assertion included).
struct Broker(std::process::Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A CA, a server certificate for 127.0.0.1 signed by it, and a password file.
fn make_pki(dir: &Path) {
    sh(
        dir,
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem
         openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr
         printf 'subjectAltName=IP:127.0.0.1\\n' > san.ext
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem
         mosquitto_passwd -b -c passwd fleet s3cret
         chmod 0644 server.key passwd",
    );
}

#[test]
fn agent_publishes_over_tls_with_credentials() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    make_pki(d);
    let (tls_port, plain_port) = (free_port(), free_port());
    let conf = format!(
        "per_listener_settings true\npersistence false\n\
         listener {tls_port} 127.0.0.1\ncafile {p}/ca.pem\ncertfile {p}/server.pem\nkeyfile {p}/server.key\nallow_anonymous false\npassword_file {p}/passwd\n\
         listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
        p = d.display()
    );
    std::fs::write(d.join("mosquitto.conf"), conf).expect("conf");
    let _mosq = Broker(
        Command::new("mosquitto")
            .arg("-c")
            .arg(d.join("mosquitto.conf"))
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto"),
    );
    let deadline = Instant::now() + WAIT;
    while TcpStream::connect(("127.0.0.1", plain_port)).is_err()
        || TcpStream::connect(("127.0.0.1", tls_port)).is_err()
    {
        assert!(Instant::now() < deadline, "mosquitto did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let plain = PlainPort(plain_port);
    let mut hub = Hub::start_url(&plain.url());

    let agent_cfg = |password: &str| {
        format!(
            "[mqtt]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nca_file = \"{}/ca.pem\"\nusername = \"fleet\"\npassword = \"{password}\"\n",
            d.display()
        )
    };
    let good = write_config(d, "good.toml", &agent_cfg("s3cret"));
    let bad = write_config(d, "bad.toml", &agent_cfg("wrong"));
    let device = format!("tls-{}", std::process::id());
    let agent = Agent::start_url(&format!("mqtts://127.0.0.1:{tls_port}"), &device, &good);
    hub.wait_for("birth over TLS", |v| {
        v["type"] == "online" && v["device"] == device
    });
    let (st, log) = agent.terminate();
    assert!(st.success(), "{log}");
    hub.wait_for("offline over TLS", |v| {
        v["type"] == "offline" && v["device"] == device
    });

    // Wrong password: refused by the broker, and the agent says why and keeps retrying.
    let refused = format!("tls-bad-{}", std::process::id());
    let agent = Agent::start_url(&format!("mqtts://127.0.0.1:{tls_port}"), &refused, &bad);
    let deadline = Instant::now() + WAIT;
    while !agent.log().contains("broker unreachable") {
        assert!(
            Instant::now() < deadline,
            "no retry logged:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(agent);
    hub.settle(Duration::from_millis(300));
    assert!(
        !hub.seen.iter().any(|v| v["device"] == refused),
        "a refused client published"
    );
}

struct PlainPort(u16);

impl PlainPort {
    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.0)
    }
}
