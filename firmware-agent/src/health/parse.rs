//! Pure parsers for the sysfs files board health reads. Each takes the file's text and returns
//! the value or `None` for anything malformed; the units are the kernel's:
//! * thermal zone `temp`: millidegrees Celsius, signed (Documentation/ABI/testing/sysfs-class-thermal);
//! * cpufreq `scaling_cur_freq` / `cpuinfo_max_freq`: kHz (Documentation/admin-guide/pm/cpufreq.rst);
//! * `get_throttled`: the firmware word printed with `%x` (raspberrypi/linux,
//!   drivers/firmware/raspberrypi.c), so lowercase hex without `0x`;
//! * hwmon `in0_lcrit_alarm`: `0` or `1`; `fan1_input`: RPM; `pwm1`: 0-255
//!   (Documentation/ABI/testing/sysfs-class-hwmon);
//! * cooling device `cur_state` / `max_state`: unsigned integers.

/// The text of a sysfs attribute without its trailing newline (and any NULs some drivers pad with).
fn trimmed(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_ascii_whitespace() || c == '\0')
}

/// A thermal zone's `temp`: millidegrees Celsius.
pub fn millicelsius(text: &str) -> Option<i32> {
    trimmed(text).parse().ok()
}

/// An unsigned decimal attribute (kHz, RPM, a cooling state).
pub fn unsigned(text: &str) -> Option<u32> {
    trimmed(text).parse().ok()
}

/// The firmware's `get_throttled`: hex, with or without a `0x` prefix.
pub fn throttled(text: &str) -> Option<u32> {
    let t = trimmed(text);
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.is_empty() || digits.len() > 8 {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// A hwmon alarm: `0` or `1`, nothing else.
pub fn alarm(text: &str) -> Option<bool> {
    match trimmed(text) {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// A hwmon `pwm1`: 0-255.
pub fn pwm(text: &str) -> Option<u8> {
    trimmed(text).parse().ok()
}

/// A short identifying attribute (`type`, `name`): trimmed, non-empty.
pub fn label(text: &str) -> Option<&str> {
    let t = trimmed(text);
    (!t.is_empty()).then_some(t)
}

/// The number in a numbered sysfs directory name (`thermal_zone3`, `policy0`, `hwmon12`).
pub fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}
