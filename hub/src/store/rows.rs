//! From the hub's outcomes to rows: a [`WriteBatch`] collects what accepted messages leave to
//! history (one event record per event, the batch's drops and gap, status changes, metrics
//! samples) and the devices' states, until the writer stores it in one transaction. Event kinds
//! come from the wire enum's variant names (`Bind` -> `bind`, `OomKill` -> `oom_kill`), so a
//! new kind in the wire crate is stored without a change here.

use edge_wire::{Event, EventBatch, Message, Metrics};
use serde_json::{Value, json};

use super::{BatchRef, DROPS, GAP, MetricSample, Record, STATUS};
use crate::{Gap, Outcome, render};

/// Rows waiting for one transaction.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteBatch {
    /// Events, status changes, gaps and drops.
    pub records: Vec<Record>,
    pub metrics: Vec<MetricSample>,
    /// Devices whose state changed: id and state (replaces what was saved).
    pub devices: Vec<(String, Value)>,
    /// Devices forgotten (`hub forget`): everything stored of them is deleted after the rows
    /// above are written.
    pub forget: Vec<String>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.metrics.is_empty()
            && self.devices.is_empty()
            && self.forget.is_empty()
    }

    /// Rows in the batch (device states included).
    pub fn len(&self) -> usize {
        self.records.len() + self.metrics.len() + self.devices.len()
    }

    /// Adds what `outcome` leaves to history; `received_ms` is the hub's clock.
    pub fn add(&mut self, outcome: &Outcome, received_ms: i64) {
        let (records, metrics) = rows_of(outcome, received_ms);
        self.records.extend(records);
        self.metrics.extend(metrics);
    }
}

/// The records and metrics sample an outcome leaves to history (nothing for a duplicate, a
/// rejection or a command).
pub fn rows_of(outcome: &Outcome, received_ms: i64) -> (Vec<Record>, Option<MetricSample>) {
    let Outcome::Accepted {
        device,
        message,
        gap,
    } = outcome
    else {
        return (Vec::new(), None);
    };
    match message {
        Message::Events(b) => (batch_records(device, b, gap.as_ref(), received_ms), None),
        Message::Metrics(m) => (Vec::new(), Some(sample(device, m))),
        Message::Online(_) | Message::Offline(_) => {
            let online = matches!(message, Message::Online(_));
            let body = render::message_json(device, message);
            let record = Record {
                kind: STATUS.into(),
                device: device.clone(),
                ts_ms: received_ms,
                batch: None,
                detail: json!({"state": if online { "online" } else { "offline" }, "body": body["body"]}),
            };
            (vec![record], None)
        }
    }
}

fn batch_records(device: &str, b: &EventBatch, gap: Option<&Gap>, received_ms: i64) -> Vec<Record> {
    let batch = BatchRef {
        boot_id: b.boot_id.as_str().to_owned(),
        run_id: b.run_id,
        seq: b.seq,
    };
    let record = |kind: String, ts_ms: i64, detail: Value| Record {
        kind,
        device: device.to_owned(),
        ts_ms,
        batch: Some(batch.clone()),
        detail,
    };
    let mut out = Vec::with_capacity(b.events.len() + b.drops.len() + 1);
    if let Some(g) = gap {
        out.push(record(
            GAP.into(),
            received_ms,
            json!({"expected": g.expected, "got": g.got, "lost": g.lost}),
        ));
    }
    let batch_ms = i64::try_from(b.unix_ms).unwrap_or(i64::MAX);
    for d in &b.drops {
        out.push(record(
            DROPS.into(),
            batch_ms,
            json!({"source": d.source.as_str(), "count": d.count}),
        ));
    }
    // Each event as the hub's JSON output shows it (a bind also gets its address written out),
    // at the batch's time less the event's age.
    for ev in &b.events {
        let mut event = serde_json::to_value(ev).unwrap_or(Value::Null);
        if let (Event::Bind(e), Some(obj)) =
            (ev, event.get_mut("Bind").and_then(Value::as_object_mut))
        {
            obj.insert("address".into(), Value::String(render::addr(&e.addr)));
        }
        let ts = b.unix_ms.saturating_sub(ev.age_us() / 1000);
        let ts = i64::try_from(ts).unwrap_or(i64::MAX);
        out.push(record(kind_of(&event), ts, event));
    }
    out
}

/// `{"OomKill": {...}}` -> `oom_kill`; `unknown` for anything else.
pub fn kind_of(event: &Value) -> String {
    let Some(name) = event.as_object().and_then(|o| o.keys().next()) else {
        return "unknown".into();
    };
    let mut out = String::with_capacity(name.len() + 2);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn sample(device: &str, m: &Metrics) -> MetricSample {
    MetricSample {
        device: device.to_owned(),
        ts_ms: i64::try_from(m.unix_ms).unwrap_or(i64::MAX),
        cpu_percent: f64::from(m.cpu_percent),
        mem_used_kib: m.mem_used_kib,
        mem_total_kib: m.mem_total_kib,
        load1: f64::from(m.load[0]),
        temp_c: m
            .temperatures
            .iter()
            .map(|t| f64::from(t.celsius))
            .reduce(f64::max),
        agent_rss_kib: m.agent.rss_kib,
        detail: serde_json::to_value(m).unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_variant_names() {
        assert_eq!(kind_of(&json!({"Bind": {}})), "bind");
        assert_eq!(kind_of(&json!({"OomKill": {}})), "oom_kill");
        assert_eq!(kind_of(&json!({"TcpClose": {"x": 1}})), "tcp_close");
        assert_eq!(kind_of(&json!("Exit")), "unknown");
    }
}
