//! Unit tests of the sysfs parsers and of the board health reader against the trees in
//! `tests/fixtures` (a Pi 5, a throttled and under-volted Pi 5, an x86 VM), fixed values.

use std::path::{Path, PathBuf};

use edge_wire::{CpuFreq, Fan, ThrottleFlags, Throttled, ZoneTemp, bounded};

use super::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

const NO_PROC: &str = "/nonexistent/proc";

#[test]
fn temperatures_are_signed_millidegrees() {
    assert_eq!(parse::millicelsius("62350\n"), Some(62_350));
    assert_eq!(parse::millicelsius("-5000\n"), Some(-5_000));
    assert_eq!(parse::millicelsius("0"), Some(0));
    assert_eq!(parse::millicelsius("62.3\n"), None);
    assert_eq!(parse::millicelsius("\n"), None);
    assert_eq!(parse::millicelsius("99999999999\n"), None);
}

#[test]
fn get_throttled_is_hex_with_or_without_0x() {
    assert_eq!(parse::throttled("50005\n"), Some(0x5_0005));
    assert_eq!(parse::throttled("0\n"), Some(0));
    assert_eq!(parse::throttled("0x80008\n"), Some(0x8_0008));
    assert_eq!(parse::throttled("e000e"), Some(0xe_000e));
    assert_eq!(parse::throttled("throttled=0x0"), None);
    assert_eq!(parse::throttled("123456789"), None);
    assert_eq!(parse::throttled(""), None);
}

#[test]
fn the_throttling_word_decodes_into_now_and_since_boot() {
    let t = Throttled::from_raw(0x5_0005);
    assert_eq!(
        t.now,
        ThrottleFlags {
            under_voltage: true,
            freq_capped: false,
            throttled: true,
            soft_temp_limit: false,
        }
    );
    assert_eq!(t.since_boot, t.now);
    let t = Throttled::from_raw(0x8_0000);
    assert!(!t.now.any());
    assert_eq!(
        t.since_boot,
        ThrottleFlags {
            soft_temp_limit: true,
            ..ThrottleFlags::default()
        }
    );
    // Unknown bits stay in `raw` only.
    let t = Throttled::from_raw(0x100_0010);
    assert!(!t.now.any() && !t.since_boot.any());
    assert_eq!(t.raw, 0x100_0010);
}

#[test]
fn alarms_pwm_and_counts_accept_only_their_range() {
    assert_eq!(parse::alarm("1\n"), Some(true));
    assert_eq!(parse::alarm("0\n"), Some(false));
    assert_eq!(parse::alarm("2\n"), None);
    assert_eq!(parse::pwm("125\n"), Some(125));
    assert_eq!(parse::pwm("256\n"), None);
    assert_eq!(parse::unsigned("2400000\n"), Some(2_400_000));
    assert_eq!(parse::unsigned("-1\n"), None);
    assert_eq!(parse::label(" pwm-fan\n"), Some("pwm-fan"));
    assert_eq!(parse::label("\n"), None);
    assert_eq!(parse::numbered("thermal_zone12", "thermal_zone"), Some(12));
    assert_eq!(parse::numbered("thermal_zone", "thermal_zone"), None);
    assert_eq!(parse::numbered("policy0x", "policy"), None);
    assert_eq!(parse::numbered("hwmon3", "policy"), None);
}

fn pi5_fan(rpm: u32, pwm: u8, state: u32) -> Fan {
    Fan {
        name: bounded("pwmfan"),
        rpm: Some(rpm),
        pwm: Some(pwm),
        state: Some(state),
        max_state: Some(4),
    }
}

#[test]
fn a_healthy_pi5_reads_as_recorded() {
    let mut r = BoardReader::discover(&fixture("pi5-sys"), Path::new(NO_PROC));
    let b = r.sample();
    assert_eq!(
        b.temperatures,
        vec![ZoneTemp {
            zone: bounded("cpu-thermal"),
            millicelsius: 62_350,
        }]
    );
    assert_eq!(
        b.cpu_freqs,
        vec![CpuFreq {
            policy: 0,
            cur_khz: 2_400_000,
            max_khz: Some(2_400_000),
        }]
    );
    assert_eq!(b.throttled, Some(Throttled::from_raw(0)));
    assert_eq!(b.under_voltage_alarm, Some(false));
    // One fan: the pwmfan hwmon and the pwm-fan cooling device are the same device.
    assert_eq!(b.fans, vec![pi5_fan(3536, 125, 2)]);
    let root = fixture("pi5-sys").canonicalize().expect("fixture");
    assert_eq!(
        r.summary(),
        format!(
            "board health under {}: temperatures cpu-thermal; cpufreq policy0; throttling {}/devices/platform/soc@107c000000/soc@107c000000:firmware/get_throttled; under-voltage alarm rpi_volt in0_lcrit_alarm; fans pwmfan(rpm,pwm,state)",
            fixture("pi5-sys").display(),
            root.display()
        )
    );
}

#[test]
fn a_throttled_and_under_volted_pi5_says_so_now_and_since_boot() {
    let b = BoardReader::discover(&fixture("pi5-throttled-sys"), Path::new(NO_PROC)).sample();
    assert_eq!(b.temperatures[0].millicelsius, 85_250);
    assert_eq!(b.cpu_freqs[0].cur_khz, 1_500_000);
    let t = b.throttled.expect("get_throttled");
    assert_eq!(t.raw, 0x5_0005);
    assert!(t.now.under_voltage && t.now.throttled);
    assert!(t.since_boot.under_voltage && t.since_boot.throttled);
    assert!(!t.now.freq_capped && !t.now.soft_temp_limit);
    assert_eq!(b.under_voltage_alarm, Some(true));
    assert_eq!(b.fans, vec![pi5_fan(4975, 250, 4)]);
}

#[test]
fn an_x86_vm_has_no_sensors_and_none_are_made_up() {
    let mut r = BoardReader::discover(&fixture("x86-vm-sys"), Path::new(NO_PROC));
    assert_eq!(r.sample(), edge_wire::BoardHealth::default());
    assert!(r.summary().ends_with(
        "temperatures none; cpufreq none; throttling none (no get_throttled); under-voltage alarm none (no rpi_volt hwmon); fans none"
    ));
    // Empty class directories (as on the VM itself) are the same as missing ones.
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["class/thermal", "class/hwmon", "devices/system/cpu/cpufreq"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("mkdir");
    }
    let b = BoardReader::discover(dir.path(), Path::new(NO_PROC)).sample();
    assert_eq!(b, edge_wire::BoardHealth::default());
}

/// A writable copy of a fixture (symlinks kept).
fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ok = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", fixture(name).display()))
        .arg(dir.path())
        .status()
        .expect("cp");
    assert!(ok.success());
    dir
}

#[test]
fn a_sensor_that_fails_or_vanishes_is_left_out_of_that_sample_only() {
    let dir = copy_of("pi5-sys");
    let root = dir.path();
    let mut r = BoardReader::discover(root, Path::new(NO_PROC));
    let tz = root.join("devices/virtual/thermal/thermal_zone0/temp");
    std::fs::write(&tz, "garbage\n").expect("write");
    std::fs::remove_file(root.join("devices/platform/cooling_fan/hwmon/hwmon2/fan1_input"))
        .expect("rm");
    let b = r.sample();
    assert!(b.temperatures.is_empty());
    assert_eq!(b.fans[0].rpm, None);
    assert_eq!(b.fans[0].pwm, Some(125));
    std::fs::write(&tz, "48000\n").expect("write");
    assert_eq!(r.sample().temperatures[0].millicelsius, 48_000);
}

#[test]
fn get_throttled_is_found_on_older_boards_and_skipped_when_a_warning_would_panic() {
    // A Pi 4 layout: soc/soc:firmware, no rpi_volt hwmon to lead there.
    let dir = tempfile::tempdir().expect("tempdir");
    let fw = dir.path().join("devices/platform/soc/soc:firmware");
    std::fs::create_dir_all(&fw).expect("mkdir");
    std::fs::write(fw.join("get_throttled"), "80008\n").expect("write");
    let b = BoardReader::discover(dir.path(), Path::new(NO_PROC)).sample();
    assert_eq!(b.throttled, Some(Throttled::from_raw(0x8_0008)));
    assert_eq!(b.under_voltage_alarm, None);

    let proc = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(proc.path().join("sys/kernel")).expect("mkdir");
    std::fs::write(proc.path().join("sys/kernel/panic_on_warn"), "1\n").expect("write");
    let b = BoardReader::discover(&fixture("pi5-throttled-sys"), proc.path()).sample();
    assert_eq!(b.throttled, None);
    assert_eq!(b.under_voltage_alarm, Some(true));
}

#[test]
fn get_throttled_is_found_beside_the_rpi_volt_hwmons_parent() {
    // Every hwmon links its parent as `device` (the fixtures leave these links out: they loop,
    // and cargo warns about loops in a package). With the link, the firmware device is found
    // through the rpi_volt hwmon even where its name does not start with `soc`.
    let dir = copy_of("pi5-throttled-sys");
    let platform = dir.path().join("devices/platform");
    std::fs::rename(platform.join("soc@107c000000"), platform.join("axi")).expect("mv");
    let hwmon = platform.join("axi/soc@107c000000:firmware/raspberrypi-hwmon/hwmon/hwmon1");
    std::os::unix::fs::symlink("../../../raspberrypi-hwmon", hwmon.join("device")).expect("ln");
    std::fs::remove_file(dir.path().join("class/hwmon/hwmon1")).expect("rm");
    std::os::unix::fs::symlink(
        "../../devices/platform/axi/soc@107c000000:firmware/raspberrypi-hwmon/hwmon/hwmon1",
        dir.path().join("class/hwmon/hwmon1"),
    )
    .expect("ln");
    let r = BoardReader::discover(dir.path(), Path::new(NO_PROC));
    assert!(
        r.summary()
            .contains("axi/soc@107c000000:firmware/get_throttled;"),
        "{}",
        r.summary()
    );
    let mut r = r;
    assert_eq!(r.sample().throttled, Some(Throttled::from_raw(0x5_0005)));
    // Without the link (and no soc* device) there is no get_throttled: it is not guessed.
    std::fs::remove_file(hwmon.join("device")).expect("rm");
    let mut r = BoardReader::discover(dir.path(), Path::new(NO_PROC));
    assert_eq!(r.sample().throttled, None);
}

#[test]
fn a_fan_cooling_device_without_a_tachometer_is_a_fan_with_a_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cd = dir.path().join("class/thermal/cooling_device3");
    std::fs::create_dir_all(&cd).expect("mkdir");
    std::fs::write(cd.join("type"), "Fan\n").expect("write");
    std::fs::write(cd.join("cur_state"), "1\n").expect("write");
    std::fs::write(cd.join("max_state"), "3\n").expect("write");
    let other = dir.path().join("class/thermal/cooling_device0");
    std::fs::create_dir_all(&other).expect("mkdir");
    std::fs::write(other.join("type"), "Processor\n").expect("write");
    std::fs::write(other.join("cur_state"), "0\n").expect("write");
    let b = BoardReader::discover(dir.path(), Path::new(NO_PROC)).sample();
    assert_eq!(
        b.fans,
        vec![Fan {
            name: bounded("Fan"),
            rpm: None,
            pwm: None,
            state: Some(1),
            max_state: Some(3),
        }]
    );
}
