//! TLS and the fleet ACL against a real mosquitto configured here: a CA, a server certificate
//! for 127.0.0.1/localhost and client certificates made with the `openssl` CLI, passwords with
//! `mosquitto_passwd`, and exactly the ACL file of docs/mosquitto-acl.md. A device cannot publish
//! for another or read another's commands; the hub decodes over mqtts:// with a password or a
//! client certificate; a wrong CA, a missing client certificate and a wrong password end the hub
//! with an error that says so. Fails (never skips) when openssl or mosquitto is missing.

mod common;

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use common::*;
use edge_hub::testkit::{JsonHub, PrivateBroker, free_port};
use serde_json::{Value, json};

fn acl_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/mosquitto-acl.conf")
}

/// A broker with a password listener (`tls`) and a client-certificate listener (`mtls`).
struct Fleet {
    dir: tempfile::TempDir,
    broker: PrivateBroker,
    tls: u16,
    mtls: u16,
}

impl Fleet {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        make_pki(dir.path());
        let (tls, mtls) = (free_port().expect("port"), free_port().expect("port"));
        let p = dir.path().display();
        let tls_files =
            format!("cafile {p}/ca.pem\ncertfile {p}/server.pem\nkeyfile {p}/server.key");
        let broker = PrivateBroker::start_with(&format!(
            "allow_anonymous false\npassword_file {p}/passwd\nacl_file {}\n\
             listener {tls} 127.0.0.1\n{tls_files}\n\
             listener {mtls} 127.0.0.1\n{tls_files}\nrequire_certificate true\nuse_identity_as_username true\n",
            acl_file().display()
        ))
        .expect("mosquitto");
        let deadline = Instant::now() + WAIT;
        for port in [tls, mtls] {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "no listener on {port}:\n{}",
                    broker.log()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Self {
            dir,
            broker,
            tls,
            mtls,
        }
    }

    fn file(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `mosquitto_pub` over TLS as `user` (password `<user>-pw`).
    fn publish_as(&self, user: &str, topic: &str, payload: &[u8]) {
        let pw = format!("{user}-pw");
        let ca = self.file("ca.pem");
        publish_args(
            self.tls,
            topic,
            payload,
            &["--cafile", &ca, "-u", user, "-P", &pw],
        );
    }

    /// The hub's arguments for the password listener.
    fn hub_password_args(&self) -> Vec<String> {
        ["--ca-file", &self.file("ca.pem"), "--username", "hub"]
            .iter()
            .map(|s| s.to_string())
            .chain(["--password-file".into(), self.file("hub.password")])
            .collect()
    }
}

/// The PKI and the password file, made with the real tools.
fn make_pki(dir: &Path) {
    let script = r#"
        ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        openssl req -x509 $ec -days 2 -subj /CN=edge-test-ca -keyout ca.key -out ca.pem
        openssl req -x509 $ec -days 2 -subj /CN=some-other-ca -keyout other-ca.key -out other-ca.pem
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' > server.ext
        printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' > client.ext
        openssl req $ec -subj /CN=localhost -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.pem
        for who in hub pi-a; do
            openssl req $ec -subj /CN=$who -keyout $who.key -out $who.csr
            openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile client.ext -out $who.pem
        done
        mosquitto_passwd -b -c passwd hub hub-pw
        mosquitto_passwd -b passwd pi-a pi-a-pw
        mosquitto_passwd -b passwd pi-b pi-b-pw
        printf 'hub-pw\n' > hub.password
        printf 'wrong\n' > wrong.password
        chmod 0600 hub.password wrong.password
        chmod 0644 server.key passwd
    "#;
    for tool in ["openssl", "mosquitto_passwd"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .expect("sh");
        assert!(
            found.success(),
            "{tool} is missing (scripts/setup.sh installs it)"
        );
    }
    let out = Command::new("sh")
        .args(["-ec", script])
        .current_dir(dir)
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "making the PKI failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_record(hub: &JsonHub, seen: &mut Vec<Value>, what: &str, pred: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        match hub.next_timeout(deadline.saturating_duration_since(Instant::now())) {
            Some((_, v)) => {
                let hit = pred(&v);
                seen.push(v);
                if hit {
                    return;
                }
            }
            None => panic!("never saw {what}; saw {seen:#?}\nstderr:\n{}", hub.stderr()),
        }
    }
}

/// Runs `hub args...`, killed after `limit`; it must have exited on its own.
fn hub_exits(args: &[String], limit: Duration) -> Output {
    let mut child = Command::new(hub_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hub");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("wait");
            panic!(
                "hub {args:?} still running after {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("wait")
}

fn last_stderr_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn the_document_shows_the_acl_file_the_tests_use() {
    let acl = std::fs::read_to_string(acl_file()).expect("docs/mosquitto-acl.conf");
    let doc = std::fs::read_to_string(acl_file().with_extension("md")).expect("the doc");
    assert!(
        doc.contains(&format!("```\n{acl}```\n")),
        "docs/mosquitto-acl.md must quote docs/mosquitto-acl.conf whole"
    );
}

#[test]
fn a_device_cannot_publish_for_another_and_the_hub_decodes_over_mqtts() {
    let f = Fleet::start();
    let url = format!("mqtts://127.0.0.1:{}", f.tls);
    let args = f.hub_password_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (hub, _) =
        JsonHub::start_with_args(hub_bin(), &url, &args, WAIT).unwrap_or_else(|e| panic!("{e}"));
    // pi-a forges a batch from pi-b on pi-b's topic: the broker drops it.
    f.publish_as(
        "pi-a",
        "edge/pi-b/events",
        &batch("pi-b", "b", 1, 0, &[66], &[]),
    );
    f.publish_as("pi-a", "edge/pi-b/status", b"\x02\x01");
    // Its own batch arrives, decoded.
    f.publish_as(
        "pi-a",
        "edge/pi-a/events",
        &batch("pi-a", "a", 1, 0, &[7], &[]),
    );
    let mut seen = Vec::new();
    wait_record(&hub, &mut seen, "pi-a's event", |v| v["type"] == "event");
    let (st, rest) = hub.terminate(WAIT).expect("terminate");
    assert!(st.success(), "{st}");
    seen.extend(rest);
    assert!(
        !seen.iter().any(|v| v.to_string().contains("pi-b")),
        "pi-b's topics got through: {seen:#?}"
    );
    assert_eq!(seen[0]["event"]["Exit"]["how"]["Code"], 7);
    assert_eq!(
        seen[1..],
        [
            json!({"type": "totals", "device": "pi-a", "delivered_events": 1, "drops": {}, "missing_batches": 0, "duplicate_batches": 0, "batches": 1}),
            json!({"type": "hub_totals", "accepted": 1, "duplicates": 0, "ignored": 0, "rejected": {}, "rejected_total": 0}),
        ]
    );
}

#[test]
fn a_device_reads_only_its_own_commands() {
    let f = Fleet::start();
    let sub = Proc::spawn(Command::new("mosquitto_sub").args([
        "-h",
        "127.0.0.1",
        "-p",
        &f.tls.to_string(),
        "--cafile",
        &f.file("ca.pem"),
        "-u",
        "pi-a",
        "-P",
        "pi-a-pw",
        "-q",
        "1",
        "-t",
        "edge/+/cmd/#",
        "-F",
        "%t",
    ]));
    let mut hub_args = f.hub_password_args();
    hub_args.extend([
        "--broker".into(),
        format!("mqtts://127.0.0.1:{}", f.tls),
        "rebirth".into(),
    ]);
    let rebirth = |device: &str| {
        let mut args = hub_args.clone();
        args.push(device.into());
        let out = hub_exits(&args, WAIT);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // The hub may write every device's commands; pi-a reads only its own. mosquitto_sub does
    // not say when it has subscribed, so ask until it saw one: pi-b's always goes first.
    let deadline = Instant::now() + WAIT;
    let first = loop {
        rebirth("pi-b");
        rebirth("pi-a");
        if let Some(l) = sub.next_line(Duration::from_millis(300)) {
            break l;
        }
        assert!(Instant::now() < deadline, "pi-a never got its command");
    };
    assert_eq!(first, "edge/pi-a/cmd/rebirth");
    rebirth("pi-b");
    rebirth("pi-a");
    let mut next = Vec::new();
    while let Some(l) = sub.next_line(Duration::from_millis(500)) {
        next.push(l);
    }
    assert!(
        next.iter().all(|l| l == "edge/pi-a/cmd/rebirth") && !next.is_empty(),
        "{next:?}"
    );
    // A device may not send commands to another.
    f.publish_as("pi-b", "edge/pi-a/cmd/rebirth", b"");
    assert_eq!(sub.next_line(Duration::from_millis(500)), None);
}

#[test]
fn the_hub_connects_with_a_client_certificate() {
    let f = Fleet::start();
    let url = format!("mqtts://127.0.0.1:{}", f.mtls);
    let (ca, cert, key) = (f.file("ca.pem"), f.file("hub.pem"), f.file("hub.key"));
    let args = [
        "--ca-file",
        &ca,
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ];
    let (hub, _) =
        JsonHub::start_with_args(hub_bin(), &url, &args, WAIT).unwrap_or_else(|e| panic!("{e}"));
    f.publish_as(
        "pi-a",
        "edge/pi-a/events",
        &batch("pi-a", "a", 1, 0, &[9], &[]),
    );
    let mut seen = Vec::new();
    wait_record(&hub, &mut seen, "pi-a's event over mutual TLS", |v| {
        v["type"] == "event" && v["device"] == "pi-a"
    });

    // The same listener without a client certificate: refused, and the hub says what to add.
    let out = hub_exits(
        &["--broker".into(), url.clone(), "--ca-file".into(), ca],
        WAIT,
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "hub: {url}: TLS failed: received fatal alert: CertificateRequired (the broker wants a client certificate: --client-cert and --client-key)"
        )
    );
}

#[test]
fn a_wrong_ca_or_password_ends_the_hub_with_a_clear_error() {
    let f = Fleet::start();
    let url = format!("mqtts://127.0.0.1:{}", f.tls);
    let mut args = f.hub_password_args();
    args.extend(["--broker".into(), url.clone()]);
    let wrong_ca: Vec<String> = args
        .iter()
        .map(|a| {
            if a.ends_with("/ca.pem") {
                f.file("other-ca.pem")
            } else {
                a.clone()
            }
        })
        .collect();
    let out = hub_exits(&wrong_ca, WAIT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "hub: {url}: TLS failed: invalid peer certificate: UnknownIssuer (is the broker's certificate signed by --ca-file, and made for this host name or address?)"
        )
    );
    // The same for `hub rebirth`.
    let mut rebirth = wrong_ca.clone();
    rebirth.extend(["rebirth".into(), "pi-a".into()]);
    let out = hub_exits(&rebirth, WAIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(last_stderr_line(&out).contains("invalid peer certificate: UnknownIssuer"));

    let wrong_pw: Vec<String> = args
        .iter()
        .map(|a| {
            if a.ends_with("hub.password") {
                f.file("wrong.password")
            } else {
                a.clone()
            }
        })
        .collect();
    let out = hub_exits(&wrong_pw, WAIT);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        last_stderr_line(&out),
        format!(
            "hub: {url}: the broker refused the connection: not authorised (check --username and the password)"
        )
    );
    // Plain MQTT on the plain listener needs a password too (allow_anonymous false).
    let out = hub_exits(&["--broker".into(), f.broker.url()], WAIT);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        last_stderr_line(&out).contains("not authorised"),
        "{}",
        last_stderr_line(&out)
    );
}
