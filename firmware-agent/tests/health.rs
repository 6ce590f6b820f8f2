//! Board health and the top processes end to end on the real kernel: the agent (probes and
//! all) reads board health from a recorded sysfs tree (`metrics.sysfs_root`), the real /proc
//! for its top-N lists, and publishes metrics through a real mosquitto to the real hub, whose
//! JSON the test reads. Run as root (CI does).

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use common::*;
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A config sampling every second, board health from the fixture `tree`.
fn config(dir: &Path, tree: &str, top_n: usize) -> PathBuf {
    let sysfs = fixture(tree);
    write_config(
        dir,
        &format!("{tree}.toml"),
        &format!(
            "[metrics]\ninterval_s = 1\ntop_n = {top_n}\nsysfs_root = \"{}\"\nproc_root = \"/proc\"\n",
            sysfs.display()
        ),
    )
}

/// The body of the first metrics sample from `device`.
fn first_metrics(hub: &mut Hub, device: &str) -> Value {
    hub.wait_for("a metrics sample", |v| {
        v["type"] == "metrics" && v["device"] == device
    })["body"]
        .clone()
}

#[test]
fn board_health_from_the_recorded_pi5_tree_reaches_the_hub() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);

    let hot = format!("health-pi5-{}", std::process::id());
    let agent = Agent::start(&broker, &hot, &config(dir.path(), "pi5-throttled-sys", 3));
    let body = first_metrics(&mut hub, &hot);
    assert_eq!(
        body["board"],
        json!({
            "temperatures": [{"zone": "cpu-thermal", "millicelsius": 85250}],
            "cpu_freqs": [{"policy": 0, "cur_khz": 1500000, "max_khz": 2400000}],
            "throttled": {
                "raw": 0x50005,
                "now": {"under_voltage": true, "freq_capped": false, "throttled": true, "soft_temp_limit": false},
                "since_boot": {"under_voltage": true, "freq_capped": false, "throttled": true, "soft_temp_limit": false},
            },
            "under_voltage_alarm": true,
            "fans": [{"name": "pwmfan", "rpm": 4975, "pwm": 250, "state": 4, "max_state": 4}],
        })
    );
    let (status, log) = agent.terminate();
    assert!(status.success(), "agent failed:\n{log}");
    assert!(
        log.contains(
            "temperatures cpu-thermal; cpufreq policy0; throttling /"
        ) && log.contains("soc@107c000000:firmware/get_throttled; under-voltage alarm rpi_volt in0_lcrit_alarm; fans pwmfan(rpm,pwm,state)"),
        "the start-up log names the sensors found:\n{log}"
    );

    // A machine without any of these sensors (this VM's own tree): nothing is made up.
    let vm = format!("health-vm-{}", std::process::id());
    let agent = Agent::start(&broker, &vm, &config(dir.path(), "x86-vm-sys", 3));
    let body = first_metrics(&mut hub, &vm);
    assert_eq!(
        body["board"],
        json!({"temperatures": [], "cpu_freqs": [], "throttled": null, "under_voltage_alarm": null, "fans": []})
    );
    let (_, log) = agent.terminate();
    assert!(
        log.contains("temperatures none; cpufreq none; throttling none (no get_throttled); under-voltage alarm none (no rpi_volt hwmon); fans none"),
        "{log}"
    );
}

/// Child processes the test started, killed however the test ends.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(cmd: &str, args: &[&str]) -> Child {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {cmd}: {e}"))
}

/// The entry for `pid` in a top list, if any.
fn entry(list: &Value, pid: u32) -> Option<Value> {
    list.as_array()?.iter().find(|p| p["pid"] == pid).cloned()
}

#[test]
fn a_cpu_hog_and_a_memory_hog_started_by_the_test_are_in_the_top_lists() {
    require_root();
    let dir = tempfile::tempdir().expect("tempdir");
    let kids = Children(vec![
        spawn("sh", &["-c", "while :; do :; done"]),
        // perl is Essential on Debian: 192 MiB held, no CPU.
        spawn("perl", &["-e", "$x = 'a' x (192 * 1024 * 1024); sleep 300"]),
    ]);
    let (hog, fat) = (kids.0[0].id(), kids.0[1].id());
    let broker = PrivateBroker::start().expect("mosquitto");
    let mut hub = Hub::start(&broker);
    let device = format!("health-top-{}", std::process::id());
    // 20 per list: other builds and tests share this machine's two cores.
    let agent = Agent::start(&broker, &device, &config(dir.path(), "pi5-sys", 20));

    let m = hub.wait_for("the CPU hog among the top processes by CPU", |v| {
        v["type"] == "metrics"
            && v["device"] == device
            && entry(&v["body"]["top_cpu"], hog)
                .is_some_and(|e| e["cpu_permille"].as_u64().unwrap_or(0) >= 200)
    });
    let e = entry(&m["body"]["top_cpu"], hog).expect("hog");
    assert_eq!(e["comm"], "sh", "{e}");
    let list = m["body"]["top_cpu"].as_array().expect("list");
    assert!(list.len() <= 20);
    let cpu: Vec<u64> = list
        .iter()
        .map(|p| p["cpu_permille"].as_u64().expect("u64"))
        .collect();
    assert!(
        cpu.windows(2).all(|w| w[0] >= w[1]),
        "busiest first: {cpu:?}"
    );

    let m = hub.wait_for("the memory hog among the top processes by memory", |v| {
        v["type"] == "metrics"
            && v["device"] == device
            && entry(&v["body"]["top_mem"], fat)
                .is_some_and(|e| e["rss_kib"].as_u64().unwrap_or(0) >= 190 * 1024)
    });
    let e = entry(&m["body"]["top_mem"], fat).expect("perl");
    assert_eq!(e["comm"], "perl", "{e}");
    let (status, log) = agent.terminate();
    assert!(status.success(), "agent failed:\n{log}");
    assert!(
        log.contains("top processes: 20 by CPU and by memory per sample, from /proc"),
        "{log}"
    );
    drop(kids);
}
