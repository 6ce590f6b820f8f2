//! The Prometheus exporter's page (`/metrics`, OpenMetrics text, `prometheus-client`): made
//! fresh on every scrape from a snapshot of the fleet, so per-device ages are current and a
//! forgotten device disappears. Per device: online state, last-seen age, CPU, memory, load,
//! temperatures, the agent's own RSS and counters, events by kind, reported drops by source,
//! missing (gaps) and duplicate batches. The hub's own: messages accepted, rejected by reason,
//! duplicates, commands ignored, and its storage and bridge counters.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use serde_json::Value;

use crate::{Counters, fleet::DeviceView};

/// The page's content type.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type GaugeF = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterU = Family<Labels, Counter<u64>>;

/// The hub's own figures besides the message counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Bytes the history uses.
    pub history_bytes: u64,
    /// Transactions written, and rows in them.
    pub store_writes: u64,
    pub store_rows: u64,
    pub store_errors: u64,
    /// Bridge messages that could not be queued for the broker.
    pub bridge_dropped: u64,
    /// Live-feed messages a slow browser missed.
    pub live_lagged: u64,
}

/// Registers and fills a labelled gauge or counter family.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn gauge(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, f64)>) {
        let family = GaugeF::default();
        for (labels, v) in rows {
            family.get_or_create(&labels).set(v);
        }
        self.registry.register(name, help, family);
    }

    fn counter(&mut self, name: &str, help: &str, rows: impl IntoIterator<Item = (Labels, u64)>) {
        let family = CounterU::default();
        for (labels, v) in rows {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    fn gauge1(&mut self, name: &str, help: &str, v: f64) {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(v);
        self.registry.register(name, help, g);
    }

    fn counter1(&mut self, name: &str, help: &str, v: u64) {
        let c = Counter::<u64>::default();
        c.inc_by(v);
        self.registry.register(name, help, c);
    }
}

/// A label value escaped as OpenMetrics wants (backslash, double quote, line feed):
/// prometheus-client writes values as given, and a device string could otherwise end a label
/// or a line and break the whole scrape.
pub fn label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str(r"\\"),
            '"' => out.push_str(r#"\""#),
            '\n' => out.push_str(r"\n"),
            c => out.push(c),
        }
    }
    out
}

fn dev(d: &DeviceView) -> Labels {
    vec![("device".into(), label(&d.device))]
}

fn with(d: &DeviceView, key: &str, value: &str) -> Labels {
    vec![
        ("device".into(), label(&d.device)),
        (key.into(), label(value)),
    ]
}

/// Per-device values, for the devices that have one.
fn each<'a>(
    devices: &'a [DeviceView],
    f: impl Fn(&DeviceView) -> Option<f64> + 'a,
) -> impl Iterator<Item = (Labels, f64)> + 'a {
    devices
        .iter()
        .filter_map(move |d| f(d).map(|v| (dev(d), v)))
}

/// The OpenMetrics page for `devices` (with their last metrics sample as JSON, for the
/// agent's counters), the hub's `counters` and `stats`.
pub fn page(
    devices: &[(DeviceView, Option<Value>)],
    counters: &Counters,
    stats: &HubStats,
) -> String {
    let views: Vec<DeviceView> = devices.iter().map(|(v, _)| v.clone()).collect();
    let mut b = Builder {
        registry: Registry::with_prefix("edge"),
    };
    let vs = &views;
    b.gauge(
        "device_online",
        "1 if the device's retained status is online, 0 if offline",
        vs.iter()
            .filter(|d| d.status != "unknown")
            .map(|d| (dev(d), f64::from(u8::from(d.status == "online")))),
    );
    b.gauge(
        "device_last_seen_age_seconds",
        "Seconds since the hub last received a live message from the device",
        each(vs, |d| d.last_seen_age_s),
    );
    b.gauge(
        "device_cpu_percent",
        "CPU use of the board",
        each(vs, |d| d.cpu_percent),
    );
    b.gauge(
        "device_memory_used_bytes",
        "Memory in use on the board",
        each(vs, |d| d.mem_used_kib.map(|k| k as f64 * 1024.0)),
    );
    b.gauge(
        "device_memory_total_bytes",
        "Memory of the board",
        each(vs, |d| d.mem_total_kib.map(|k| k as f64 * 1024.0)),
    );
    b.gauge(
        "device_load",
        "Load average of the board",
        vs.iter().flat_map(|d| {
            d.load.into_iter().flat_map(move |l| {
                [("1m", l[0]), ("5m", l[1]), ("15m", l[2])].map(|(p, v)| (with(d, "period", p), v))
            })
        }),
    );
    b.gauge(
        "device_temperature_celsius",
        "Temperature by sensor",
        vs.iter().flat_map(|d| {
            d.temperatures
                .iter()
                .map(move |(s, c)| (with(d, "sensor", s), *c))
        }),
    );
    b.gauge(
        "device_throttled",
        "1 while the board's firmware reports this throttling flag (get_throttled, bits 0-3)",
        devices.iter().flat_map(|(d, m)| {
            let now = m.as_ref().map(|m| m["board"]["throttled"]["now"].clone());
            let now = now.filter(Value::is_object);
            now.into_iter().flat_map(move |now| {
                [
                    "under_voltage",
                    "freq_capped",
                    "throttled",
                    "soft_temp_limit",
                ]
                .map(|f| (with(d, "flag", f), f64::from(u8::from(now[f] == true))))
            })
        }),
    );
    b.gauge(
        "device_under_voltage_alarm",
        "1 while the kernel's rpi_volt under-voltage alarm is raised",
        devices.iter().filter_map(|(d, m)| {
            let alarm = m.as_ref()?["board"]["under_voltage_alarm"].as_bool()?;
            Some((dev(d), f64::from(u8::from(alarm))))
        }),
    );
    b.gauge(
        "agent_rss_bytes",
        "Resident memory of the agent process",
        each(vs, |d| d.agent_rss_kib.map(|k| k as f64 * 1024.0)),
    );
    let agent = |key: &'static str| {
        devices
            .iter()
            .filter_map(move |(d, m)| Some((dev(d), m.as_ref()?["agent"][key].as_u64()?)))
    };
    b.counter(
        "agent_events",
        "Events the agent read since it started",
        agent("events"),
    );
    b.counter(
        "agent_batches",
        "Batches the agent made since it started",
        agent("batches"),
    );
    b.counter(
        "agent_metrics_dropped",
        "Metrics samples the agent dropped (queue full)",
        agent("metrics_dropped"),
    );
    b.gauge(
        "agent_queued_messages",
        "Messages waiting for the broker's acknowledgement",
        agent("queued").map(|(l, v)| (l, v as f64)),
    );
    b.gauge(
        "agent_spooled_bytes",
        "Bytes of the agent's queue on disk",
        agent("spooled_bytes").map(|(l, v)| (l, v as f64)),
    );
    b.counter(
        "agent_drops",
        "Events the agent counted as lost since it started, by source",
        devices.iter().flat_map(|(d, m)| {
            let drops = m
                .as_ref()
                .and_then(|m| m["agent"]["drops"].as_array().cloned());
            drops.unwrap_or_default().into_iter().filter_map(move |x| {
                Some((
                    with(d, "source", x["source"].as_str()?),
                    x["count"].as_u64()?,
                ))
            })
        }),
    );
    b.counter(
        "device_events",
        "Events the hub received (distinct batches), by kind",
        vs.iter().flat_map(|d| {
            d.events_by_kind
                .iter()
                .map(move |(k, n)| (with(d, "kind", k), *n))
        }),
    );
    b.counter(
        "device_drops",
        "Events reported lost in the device's batches, by source",
        vs.iter()
            .flat_map(|d| d.drops.iter().map(move |(s, n)| (with(d, "source", s), *n))),
    );
    b.gauge(
        "device_missing_batches",
        "Batches missing from the device's sequence (gaps; a late replay fills them back)",
        each(vs, |d| Some(d.missing_batches as f64)),
    );
    b.counter(
        "device_duplicate_batches",
        "Batches received more than once",
        vs.iter().map(|d| (dev(d), d.duplicate_batches)),
    );
    hub_metrics(&mut b, vs.len(), counters, stats);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = encode(&mut out, &b.registry);
    out
}

fn hub_metrics(b: &mut Builder, devices: usize, c: &Counters, s: &HubStats) {
    b.gauge1("hub_devices", "Devices known to the hub", devices as f64);
    b.counter1(
        "hub_messages_accepted",
        "Messages decoded and accepted",
        c.accepted,
    );
    b.counter1(
        "hub_messages_duplicate",
        "Batches received again",
        c.duplicates,
    );
    b.counter1(
        "hub_messages_ignored",
        "Commands seen on cmd/ topics",
        c.ignored,
    );
    b.counter(
        "hub_messages_rejected",
        "Messages refused, by reason",
        crate::Rejection::ALL.iter().map(|r| {
            let n = c.rejected.get(r).copied().unwrap_or(0);
            (vec![("reason".into(), r.name().into())], n)
        }),
    );
    b.gauge1(
        "hub_history_bytes",
        "Bytes the history database uses",
        s.history_bytes as f64,
    );
    b.counter1(
        "hub_store_writes",
        "Transactions written to the history",
        s.store_writes,
    );
    b.counter1(
        "hub_store_rows",
        "Rows written to the history",
        s.store_rows,
    );
    b.counter1("hub_store_errors", "Failed history writes", s.store_errors);
    b.counter1(
        "hub_bridge_dropped",
        "Messages not bridged (client queue full)",
        s.bridge_dropped,
    );
    b.counter1(
        "hub_live_lagged",
        "Live-feed messages a slow browser missed",
        s.live_lagged,
    );
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{Rejection, fleet::DeviceState};

    #[test]
    fn page_has_per_device_and_hub_series() {
        let st = DeviceState {
            device: "pi\"1\n".into(),
            online: Some(false),
            last_seen_ms: 1000,
            events_by_kind: [("exit".to_owned(), 3)].into(),
            drops: [("queue".to_owned(), 2)].into(),
            missing_batches: 4,
            metrics: Some(
                json!({"cpu_percent": 12.5, "mem_used_kib": 1, "mem_total_kib": 2,
                "load": [0.5, 0.25, 0.125], "temperatures": [{"label": "cpu_thermal", "celsius": 51.5}],
                "agent": {"rss_kib": 7, "events": 10, "batches": 2, "queued": 0, "spooled_bytes": 0,
                          "metrics_dropped": 0, "drops": [{"source": "ring:exec", "count": 5}]},
                "board": {"throttled": {"raw": 0x0009_0005_u32,
                    "now": {"under_voltage": true, "freq_capped": false, "throttled": true, "soft_temp_limit": false},
                    "since_boot": {"under_voltage": true, "freq_capped": false, "throttled": false, "soft_temp_limit": true}},
                    "under_voltage_alarm": false}}),
            ),
            ..DeviceState::default()
        };
        let v = DeviceView::of(&st, 3500);
        assert_eq!(
            v.throttled.as_deref(),
            Some(
                "under-voltage, throttled now (since boot: under-voltage, soft temperature limit)"
            )
        );
        let mut c = Counters {
            accepted: 9,
            ..Counters::default()
        };
        c.rejected.insert(Rejection::Malformed, 2);
        let page = page(&[(v, st.metrics.clone())], &c, &HubStats::default());
        for line in [
            "edge_device_online{device=\"pi\\\"1\\n\"} 0.0",
            "edge_device_last_seen_age_seconds{device=\"pi\\\"1\\n\"} 2.5",
            "edge_device_cpu_percent{device=\"pi\\\"1\\n\"} 12.5",
            "edge_device_memory_total_bytes{device=\"pi\\\"1\\n\"} 2048.0",
            "edge_device_load{device=\"pi\\\"1\\n\",period=\"5m\"} 0.25",
            "edge_device_temperature_celsius{device=\"pi\\\"1\\n\",sensor=\"cpu_thermal\"} 51.5",
            "edge_agent_rss_bytes{device=\"pi\\\"1\\n\"} 7168.0",
            "edge_agent_events_total{device=\"pi\\\"1\\n\"} 10",
            "edge_agent_drops_total{device=\"pi\\\"1\\n\",source=\"ring:exec\"} 5",
            "edge_device_events_total{device=\"pi\\\"1\\n\",kind=\"exit\"} 3",
            "edge_device_drops_total{device=\"pi\\\"1\\n\",source=\"queue\"} 2",
            "edge_device_missing_batches{device=\"pi\\\"1\\n\"} 4.0",
            "edge_device_throttled{device=\"pi\\\"1\\n\",flag=\"under_voltage\"} 1.0",
            "edge_device_throttled{device=\"pi\\\"1\\n\",flag=\"freq_capped\"} 0.0",
            "edge_device_under_voltage_alarm{device=\"pi\\\"1\\n\"} 0.0",
            "edge_hub_messages_accepted_total 9",
            "edge_hub_messages_rejected_total{reason=\"malformed\"} 2",
            "edge_hub_messages_rejected_total{reason=\"wrong_device\"} 0",
            "edge_hub_devices 1.0",
            "# EOF",
        ] {
            assert!(page.lines().any(|l| l == line), "no {line:?} in\n{page}");
        }
    }
}
