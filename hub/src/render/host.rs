//! Text for what a metrics sample says about the board and its busiest processes: a short
//! health summary for the metrics line (temperature, frequency, fans, the throttling word with
//! THROTTLED / UNDERVOLT / ... when set now, what happened since boot otherwise) and one line
//! per top-N list. Callers escape the lines (process names are device strings).

use std::fmt::Write as _;

use edge_wire::{BoardHealth, ProcUse, ThrottleFlags};

/// `cpu-thermal 62.4C, policy0 2400/2400 MHz, fan pwmfan 3536 rpm pwm 125 state 2/4,
/// throttled=0x0`, or `no sensors`.
pub fn board_summary(b: &BoardHealth) -> String {
    let mut parts: Vec<String> = Vec::new();
    for t in &b.temperatures {
        parts.push(format!(
            "{} {:.1}C",
            t.zone,
            f64::from(t.millicelsius) / 1000.0
        ));
    }
    for f in &b.cpu_freqs {
        let mut s = format!("policy{} {}", f.policy, f.cur_khz / 1000);
        if let Some(max) = f.max_khz {
            let _ = write!(s, "/{}", max / 1000);
        }
        s.push_str(" MHz");
        parts.push(s);
    }
    for f in &b.fans {
        let mut s = format!("fan {}", f.name);
        if let Some(rpm) = f.rpm {
            let _ = write!(s, " {rpm} rpm");
        }
        if let Some(pwm) = f.pwm {
            let _ = write!(s, " pwm {pwm}");
        }
        match (f.state, f.max_state) {
            (Some(st), Some(max)) => {
                let _ = write!(s, " state {st}/{max}");
            }
            (Some(st), None) => {
                let _ = write!(s, " state {st}");
            }
            _ => {}
        }
        parts.push(s);
    }
    let alarm = b.under_voltage_alarm == Some(true);
    let now = b.throttled.map(|t| t.now).unwrap_or_default();
    let mut power = String::new();
    if let Some(t) = b.throttled {
        let _ = write!(power, "throttled=0x{:x}", t.raw);
    }
    for word in flag_words(&now, true, alarm) {
        power.push(' ');
        power.push_str(word);
    }
    if let Some(t) = b.throttled {
        // What happened since boot but is not happening now.
        let past = ThrottleFlags {
            under_voltage: t.since_boot.under_voltage && !now.under_voltage && !alarm,
            freq_capped: t.since_boot.freq_capped && !now.freq_capped,
            throttled: t.since_boot.throttled && !now.throttled,
            soft_temp_limit: t.since_boot.soft_temp_limit && !now.soft_temp_limit,
        };
        let words = flag_words(&past, false, false);
        if !words.is_empty() {
            let _ = write!(power, " (since boot: {})", words.join(" "));
        }
    }
    if !power.is_empty() {
        parts.push(power.trim_start().to_owned());
    }
    if parts.is_empty() {
        return "no sensors".into();
    }
    parts.join(", ")
}

/// The set flags as words: capitals for now, lower case for the past.
fn flag_words(f: &ThrottleFlags, now: bool, alarm: bool) -> Vec<&'static str> {
    let table = [
        (f.under_voltage || alarm, "UNDERVOLT", "undervolt"),
        (f.freq_capped, "FREQ-CAPPED", "freq-capped"),
        (f.throttled, "THROTTLED", "throttled"),
        (f.soft_temp_limit, "SOFT-TEMP-LIMIT", "soft-temp-limit"),
    ];
    table
        .into_iter()
        .filter(|(set, ..)| *set)
        .map(|(_, upper, lower)| if now { upper } else { lower })
        .collect()
}

/// `<device> top cpu: [4242] nginx 97.5%, ...` (None for an empty list).
pub fn top_cpu_line(device: &str, list: &[ProcUse]) -> Option<String> {
    top_line(device, "cpu", list, |p| {
        format!("{}.{}%", p.cpu_permille / 10, p.cpu_permille % 10)
    })
}

/// `<device> top mem: [880] postgres 256.0 MiB, ...` (None for an empty list).
pub fn top_mem_line(device: &str, list: &[ProcUse]) -> Option<String> {
    top_line(device, "mem", list, |p| {
        format!("{:.1} MiB", p.rss_kib as f64 / 1024.0)
    })
}

fn top_line(
    device: &str,
    what: &str,
    list: &[ProcUse],
    value: impl Fn(&ProcUse) -> String,
) -> Option<String> {
    if list.is_empty() {
        return None;
    }
    let items: Vec<String> = list
        .iter()
        .map(|p| format!("[{}] {} {}", p.pid, p.comm, value(p)))
        .collect();
    Some(format!("{device} top {what}: {}", items.join(", ")))
}
