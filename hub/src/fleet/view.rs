//! One row of the fleet table, as the web page, the JSON API (`/api/devices`) and the live
//! fleet stream show it: the device's state flattened into the columns people read (status,
//! last seen, kernel, page size, BTF, probe states, CPU, memory, temperature, throttling,
//! drops, gaps). Values a device never sent are `None`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::DeviceState;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProbeView {
    pub name: String,
    /// `attached`, `disabled` or `skipped`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceView {
    pub device: String,
    /// `online`, `offline` or `unknown`.
    pub status: &'static str,
    pub status_since_ms: i64,
    pub offline_cause: Option<String>,
    pub last_seen_ms: i64,
    /// Seconds since `last_seen_ms` (`None` if never heard from live).
    pub last_seen_age_s: Option<f64>,
    pub agent_version: Option<String>,
    pub kernel: Option<String>,
    pub arch: Option<String>,
    pub page_size: Option<u64>,
    pub btf: Option<bool>,
    pub probes: Vec<ProbeView>,
    pub cpu_percent: Option<f64>,
    pub mem_used_kib: Option<u64>,
    pub mem_total_kib: Option<u64>,
    pub load: Option<[f64; 3]>,
    /// The hottest sensor.
    pub temperature_c: Option<f64>,
    pub temperatures: BTreeMap<String, f64>,
    /// The firmware's throttling word in words (`no`, `under-voltage, throttled now`, with
    /// what happened since boot), or the under-voltage alarm; `None` if the board reports
    /// neither.
    pub throttled: Option<String>,
    pub agent_rss_kib: Option<u64>,
    pub events: u64,
    pub events_by_kind: BTreeMap<String, u64>,
    pub drops: BTreeMap<String, u64>,
    pub drops_total: u64,
    pub missing_batches: u64,
    pub duplicate_batches: u64,
}

impl DeviceView {
    pub fn of(st: &DeviceState, now_ms: i64) -> Self {
        let birth = st.birth.as_ref().unwrap_or(&Value::Null);
        let m = st.metrics.as_ref().unwrap_or(&Value::Null);
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let temperatures: BTreeMap<String, f64> = m["temperatures"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| Some((t["label"].as_str()?.to_owned(), t["celsius"].as_f64()?)))
                    .collect()
            })
            .unwrap_or_default();
        let load = m["load"].as_array().and_then(|l| {
            Some([
                l.first()?.as_f64()?,
                l.get(1)?.as_f64()?,
                l.get(2)?.as_f64()?,
            ])
        });
        Self {
            device: st.device.clone(),
            status: match st.online {
                Some(true) => "online",
                Some(false) => "offline",
                None => "unknown",
            },
            status_since_ms: st.status_since_ms,
            offline_cause: st.offline_cause.clone(),
            last_seen_ms: st.last_seen_ms,
            last_seen_age_s: (st.last_seen_ms > 0)
                .then(|| (now_ms - st.last_seen_ms).max(0) as f64 / 1000.0),
            agent_version: text(&birth["agent_version"]),
            kernel: text(&birth["kernel_release"]),
            arch: text(&birth["arch"]),
            page_size: birth["page_size"].as_u64(),
            btf: birth["kernel_btf"].as_bool(),
            probes: birth["probes"]
                .as_array()
                .map(|ps| ps.iter().map(probe).collect())
                .unwrap_or_default(),
            cpu_percent: m["cpu_percent"].as_f64(),
            mem_used_kib: m["mem_used_kib"].as_u64(),
            mem_total_kib: m["mem_total_kib"].as_u64(),
            load,
            temperature_c: temperatures.values().copied().reduce(f64::max),
            temperatures,
            throttled: throttling(&m["board"]),
            agent_rss_kib: m["agent"]["rss_kib"].as_u64(),
            events: st.events,
            events_by_kind: st.events_by_kind.clone(),
            drops_total: st.drops.values().sum(),
            drops: st.drops.clone(),
            missing_batches: st.missing_batches,
            duplicate_batches: st.duplicate_batches,
        }
    }

    /// `attached 5 / skipped 1`-style summary of the probe states.
    pub fn probe_summary(&self) -> String {
        let mut by: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &self.probes {
            *by.entry(p.state.as_str()).or_default() += 1;
        }
        by.iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// The flags of one half of the throttling word that are set, in words.
pub fn throttle_flags(half: &Value) -> Vec<&'static str> {
    [
        ("under_voltage", "under-voltage"),
        ("freq_capped", "frequency capped"),
        ("throttled", "throttled"),
        ("soft_temp_limit", "soft temperature limit"),
    ]
    .into_iter()
    .filter(|(k, _)| half[*k] == true)
    .map(|(_, words)| words)
    .collect()
}

fn throttling(board: &Value) -> Option<String> {
    let word = &board["throttled"];
    if word.is_object() {
        let now = throttle_flags(&word["now"]);
        let past = throttle_flags(&word["since_boot"]);
        let mut s = if now.is_empty() {
            "no".to_owned()
        } else {
            format!("{} now", now.join(", "))
        };
        if !past.is_empty() {
            s.push_str(&format!(" (since boot: {})", past.join(", ")));
        }
        return Some(s);
    }
    board["under_voltage_alarm"]
        .as_bool()
        .map(|alarm| if alarm { "under-voltage alarm" } else { "no" }.to_owned())
}

/// `{"name":..,"state":"Attached"}` or `{"state":{"Skipped":{"reason":..}}}` as a view.
fn probe(p: &Value) -> ProbeView {
    let (state, reason) = match &p["state"] {
        Value::String(s) => (s.to_ascii_lowercase(), None),
        Value::Object(o) => match o.iter().next() {
            Some((k, v)) => (
                k.to_ascii_lowercase(),
                v["reason"].as_str().map(str::to_owned),
            ),
            None => ("unknown".into(), None),
        },
        _ => ("unknown".into(), None),
    };
    ProbeView {
        name: p["name"].as_str().unwrap_or("?").to_owned(),
        state,
        reason,
    }
}
