//! What the simulator tells at the end: per device, what the broker acknowledged (messages,
//! bytes, births, deaths by cause, metrics, batches, events, drops by source) with the device's
//! outages, restarts and last run, and fleet-wide sums; as text lines or one JSON document
//! (`--json`), so a test can compare them with the hub's totals.

use std::collections::BTreeMap;

use edge_wire::DeathCause;
use serde::Serialize;
use serde_json::{Value, json};

use crate::device::{Device, Tally};

/// Acknowledged by the broker, for one device (or summed over the fleet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub messages: u64,
    pub bytes: u64,
    pub births: u64,
    pub deaths_connection_lost: u64,
    pub deaths_shutdown: u64,
    pub metrics: u64,
    pub batches: u64,
    pub events: u64,
    pub drops: BTreeMap<String, u64>,
}

impl Totals {
    /// Counts one acknowledged publication of `bytes` bytes.
    pub fn count(&mut self, tally: &Tally, bytes: usize) {
        self.messages += 1;
        self.bytes += bytes as u64;
        match tally {
            Tally::Birth => self.births += 1,
            Tally::Death(DeathCause::ConnectionLost) => self.deaths_connection_lost += 1,
            Tally::Death(DeathCause::Shutdown) => self.deaths_shutdown += 1,
            Tally::Metrics => self.metrics += 1,
            Tally::Batch { events, drops } => {
                self.batches += 1;
                self.events += events;
                for (source, n) in drops {
                    *self.drops.entry(source.clone()).or_default() += n;
                }
            }
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.births += other.births;
        self.deaths_connection_lost += other.deaths_connection_lost;
        self.deaths_shutdown += other.deaths_shutdown;
        self.metrics += other.metrics;
        self.batches += other.batches;
        self.events += other.events;
        for (s, n) in &other.drops {
            *self.drops.entry(s.clone()).or_default() += n;
        }
    }
}

/// The run as a whole.
pub struct Report {
    pub seed: u64,
    pub connections: usize,
    pub own_links: bool,
    pub duration_s: f64,
    pub elapsed_s: f64,
    /// (device, its acknowledged totals), in id order.
    pub devices: Vec<(Device, Totals)>,
    pub errors: u64,
    pub unacked: u64,
    pub late_ticks: u64,
}

impl Report {
    pub fn fleet(&self) -> Totals {
        let mut t = Totals::default();
        for (_, d) in &self.devices {
            t.add(d);
        }
        t
    }

    pub fn json(&self) -> Value {
        let fleet = self.fleet();
        let per_device: serde_json::Map<String, Value> = self
            .devices
            .iter()
            .map(|(d, t)| {
                let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("outages".into(), json!(d.outages));
                    obj.insert("restarts".into(), json!(d.restarts));
                    obj.insert("run_id".into(), json!(d.run_id()));
                    obj.insert("session".into(), json!(d.session()));
                }
                (d.id.clone(), v)
            })
            .collect();
        json!({
            "type": "summary",
            "seed": self.seed,
            "devices": self.devices.len(),
            "connections": self.connections,
            "own_links": self.own_links,
            "duration_s": self.duration_s,
            "elapsed_s": self.elapsed_s,
            "messages_per_s": fleet.messages as f64 / self.elapsed_s.max(1e-9),
            "events_per_s": fleet.events as f64 / self.elapsed_s.max(1e-9),
            "fleet": fleet,
            "outages": self.devices.iter().map(|(d, _)| d.outages).sum::<u64>(),
            "restarts": self.devices.iter().map(|(d, _)| d.restarts).sum::<u64>(),
            "connection_errors": self.errors,
            "unacknowledged": self.unacked,
            "late_ticks": self.late_ticks,
            "per_device": per_device,
        })
    }

    pub fn text(&self) -> Vec<String> {
        let f = self.fleet();
        let mut lines = vec![format!(
            "SIM {} devices over {} connections ({}), {:.1} s: {} messages ({:.0}/s, {} bytes), {} batches, {} events, {} births, {} wills published by the simulator, {} shutdowns, {} metrics; {} outages, {} restarts; {} connection errors, {} unacknowledged, {} late ticks",
            self.devices.len(),
            self.connections,
            if self.own_links {
                "one per device, real wills"
            } else {
                "shared, wills published by the simulator"
            },
            self.elapsed_s,
            f.messages,
            f.messages as f64 / self.elapsed_s.max(1e-9),
            f.bytes,
            f.batches,
            f.events,
            f.births,
            f.deaths_connection_lost,
            f.deaths_shutdown,
            f.metrics,
            self.devices.iter().map(|(d, _)| d.outages).sum::<u64>(),
            self.devices.iter().map(|(d, _)| d.restarts).sum::<u64>(),
            self.errors,
            self.unacked,
            self.late_ticks,
        )];
        for (d, t) in &self.devices {
            let drops: Vec<String> = t.drops.iter().map(|(s, n)| format!("{s}={n}")).collect();
            lines.push(format!(
                "DEVICE {}: messages {} batches {} events {} drops {} outages {} restarts {}",
                d.id,
                t.messages,
                t.batches,
                t.events,
                if drops.is_empty() {
                    "none".into()
                } else {
                    drops.join(" ")
                },
                d.outages,
                d.restarts
            ));
        }
        lines
    }
}
