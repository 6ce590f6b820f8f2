//! Bad config files stop the agent with exit status 2 and a message naming the key, before
//! it touches the kernel. The documented example config is valid.

mod common;

use std::process::Command;

use common::{agent_bin, example_config, write_config};

fn run(text: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write_config(dir.path(), "agent.toml", text);
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(&cfg)
        .args(["--card-config", "/nonexistent"])
        .output()
        .expect("run agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_configs_exit_2_naming_the_key() {
    for (text, key) in [
        (
            "[ring_buffers]\nwatch_events = 0\n",
            "ring_buffers.watch_events",
        ),
        (
            "[ring_buffers]\nproc_events = 2147483648\n",
            "ring_buffers.proc_events",
        ),
        ("[mqtt]\nurl = \"tcp://broker\"\n", "mqtt.url"),
        ("[batch]\nmax_bites = 1\n", "max_bites"),
        ("[metrics]\ninterval_s = \"often\"\n", "interval_s"),
        ("device_id = \"has/slash\"\n", "device_id"),
        (
            "[probes]\ndisabled = [\"kprobe_everything\"]\n",
            "probes.disabled",
        ),
        ("[probes]\ntransport = \"netlink\"\n", "probes.transport"),
        ("not toml at all [", "agent.toml"),
    ] {
        let (code, stderr) = run(text);
        assert_eq!(code, Some(2), "{text:?} -> {stderr}");
        assert!(
            stderr.contains(key),
            "{text:?}: stderr should name {key:?}: {stderr}"
        );
    }
}

#[test]
fn missing_explicit_config_is_an_error_and_the_example_is_valid() {
    let out = Command::new(agent_bin())
        .args(["--config", "/nonexistent/agent.toml", "--check-config"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/agent.toml"));
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(example_config())
        .args(["--card-config", "/nonexistent", "--check-config"])
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn environment_overrides_are_validated_too() {
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(example_config())
        .args(["--card-config", "/nonexistent", "--check-config"])
        .env("FIRMWARE_AGENT_BROKER_URL", "http://nope")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mqtt.url"));
}
