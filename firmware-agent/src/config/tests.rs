//! Config tests: defaults, key-naming errors, layering, queue caps, password file modes.
use super::*;

const PROGS: &[&str] = &["exec", "bind_enter"];

fn err_key(text: &str) -> String {
    match Config::from_toml(text, PROGS) {
        Err(ConfigError::Invalid { key, .. }) => key,
        Err(e) => e.to_string(),
        Ok(_) => panic!("{text:?} was accepted"),
    }
}

#[test]
fn defaults_are_valid() {
    Config::default().validate(PROGS).expect("defaults");
}

#[test]
fn bad_values_name_their_key() {
    assert_eq!(
        err_key("[ring_buffers]\nwatch_events = 0"),
        "ring_buffers.watch_events"
    );
    assert_eq!(
        err_key("[ring_buffers]\nproc_events = 1073741825"),
        "ring_buffers.proc_events"
    );
    assert_eq!(err_key("[mqtt]\nurl = \"http://x\""), "mqtt.url");
    assert_eq!(err_key("[mqtt]\nurl = \"mqtt://h:notaport\""), "mqtt.url");
    assert_eq!(err_key("device_id = \"a/b\""), "device_id");
    assert_eq!(
        err_key("[mqtt]\ntopic_prefix = \"edge/#\""),
        "mqtt.topic_prefix"
    );
    assert_eq!(err_key("[batch]\nmax_age_ms = 0"), "batch.max_age_ms");
    assert_eq!(
        err_key("[probes]\ndisabled = [\"nope\"]"),
        "probes.disabled"
    );
    assert_eq!(
        err_key("[probes.tracepoints]\nexec = \"../../x\""),
        "probes.tracepoints.exec"
    );
    assert_eq!(err_key("[mqtt]\nurl = \"mqtts://h:8883\""), "mqtt.ca_file");
}

#[test]
fn metrics_keys_are_validated_and_named() {
    let m = Config::default().metrics;
    assert_eq!(
        (m.top_n, m.sysfs_root.as_path(), m.proc_root.as_path()),
        (5, Path::new("/sys"), Path::new("/proc"))
    );
    assert_eq!(err_key("[metrics]\ntop_n = 65"), "metrics.top_n");
    assert_eq!(
        err_key("[metrics]\nsysfs_root = \"relative/sys\""),
        "metrics.sysfs_root"
    );
    assert_eq!(
        err_key("[metrics]\nsysfs_root = \"/nonexistent/sys\""),
        "metrics.sysfs_root"
    );
    assert_eq!(
        err_key("[metrics]\nproc_root = \"/proc/version\""),
        "metrics.proc_root"
    );
    let cfg = Config::from_toml(
        "[metrics]\ntop_n = 0\nsysfs_root = \"/\"\nproc_root = \"/proc\"",
        PROGS,
    )
    .expect("valid");
    assert_eq!(cfg.metrics.top_n, 0);
}

#[test]
fn unknown_keys_and_types_are_named() {
    let e = err_key("[batch]\nmax_bites = 3");
    assert!(e.contains("max_bites"), "{e}");
    let e = err_key("[batch]\nmax_bytes = \"big\"");
    assert!(e.contains("max_bytes") || e.contains("invalid type"), "{e}");
}

#[test]
fn layers_merge_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let main = dir.path().join("agent.toml");
    let card = dir.path().join("card.toml");
    std::fs::write(
        &main,
        "device_id = \"main\"\n[mqtt]\nurl = \"mqtt://a:1\"\ntopic_prefix = \"fleet\"\n",
    )
    .expect("write");
    std::fs::write(&card, "device_id = \"card-7\"\n").expect("write");
    let cfg = Config::load(Some(&main), Some(&card), PROGS).expect("load");
    assert_eq!(cfg.device_id.as_deref(), Some("card-7"));
    assert_eq!(cfg.mqtt.url, "mqtt://a:1");
    assert_eq!(cfg.mqtt.topic_prefix, "fleet");
    assert_eq!(cfg.batch, BatchConfig::default());
    let mut cfg = cfg;
    cfg.apply_env(|k| (k == ENV_BROKER_URL).then(|| "mqtt://env:2".to_owned()));
    assert_eq!(cfg.mqtt.url, "mqtt://env:2");
}

#[test]
fn a_password_in_a_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("agent.toml");
    std::fs::write(&p, "[mqtt]\nusername = \"u\"\npassword = \"s3cret\"\n").expect("write");
    for (mode, ok) in [
        (0o600, true),
        (0o400, true),
        (0o640, false),
        (0o644, false),
        (0o604, false),
    ] {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        match Config::load(Some(&p), None, PROGS) {
            Ok(_) => assert!(ok, "mode {mode:o} accepted"),
            Err(ConfigError::InsecurePassword { path, mode: m }) => {
                assert!(!ok, "mode {mode:o} refused");
                assert_eq!((path, m), (p.clone(), mode));
            }
            Err(e) => panic!("{e}"),
        }
    }
    // Without a password any mode is fine.
    std::fs::write(&p, "[mqtt]\nusername = \"u\"\n").expect("write");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    Config::load(Some(&p), None, PROGS).expect("no secret");
}

#[test]
fn queue_caps_are_validated() {
    assert_eq!(err_key("[queue]\nram_bytes = 1000"), "queue.ram_bytes");
    assert_eq!(err_key("[queue]\nspool_bytes = 10"), "queue.spool_bytes");
    assert_eq!(
        err_key("[queue]\nshutdown_timeout_ms = 0"),
        "queue.shutdown_timeout_ms"
    );
    assert_eq!(err_key("[queue]\nspool_dir = \"\""), "queue.spool_dir");
}

#[test]
fn the_broker_url_is_parsed_by_the_shared_mqtt_crate() {
    let cfg = MqttConfig {
        url: "mqtts://h".into(),
        ..Default::default()
    };
    let b = cfg.broker().expect("parses");
    assert_eq!((b.tls, b.host.as_str(), b.port), (true, "h", 8883));
    assert_eq!(cfg.link("c").client_id, "c");
}

#[test]
fn device_ids_are_sanitized() {
    assert_eq!(sanitize_device_id("10000000abcdef\0"), "10000000abcdef");
    assert_eq!(sanitize_device_id(" pi 5/#\n"), "pi-5--");
}

#[test]
fn the_transport_is_auto_by_default_and_forceable() {
    assert_eq!(
        Config::default().probes.transport,
        super::TransportChoice::Auto
    );
    for (value, want) in [
        ("auto", super::TransportChoice::Auto),
        ("ringbuf", super::TransportChoice::Ringbuf),
        ("perf", super::TransportChoice::Perf),
    ] {
        let cfg =
            Config::from_toml(&format!("[probes]\ntransport = \"{value}\"\n"), PROGS).expect(value);
        assert_eq!(cfg.probes.transport, want);
    }
    for bad in ["\"Perf\"", "\"ring\"", "3"] {
        let e = Config::from_toml(&format!("[probes]\ntransport = {bad}\n"), PROGS)
            .expect_err(bad)
            .to_string();
        assert!(e.contains("transport"), "{bad}: {e}");
    }
    let e = err_key("[probes]\ntransport = \"ring\"\n");
    assert!(
        e.contains(
            "probes.transport: unknown transport \"ring\" (expected \"auto\", \"ringbuf\" or \"perf\")"
        ),
        "{e}"
    );
}
