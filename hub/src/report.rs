//! The totals report, printed on exit and every `--totals-every` seconds: one line (text) or
//! one `{"type":"totals",...}` record (JSON) per device, then the hub-wide counters
//! (`HUB ...` / `{"type":"hub_totals",...}`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::{Hub, Summary, escape};

/// One line per device, in id order, then the hub line; escaped.
pub fn text(hub: &Hub) -> Vec<String> {
    let mut lines: Vec<String> = hub
        .totals
        .devices()
        .filter_map(|d| hub.totals.device(d).map(|s| device_line(d, &s)))
        .collect();
    let c = &hub.counters;
    let mut hub_line = format!(
        "HUB accepted {} duplicates {} ignored {} rejected {}",
        c.accepted,
        c.duplicates,
        c.ignored,
        c.rejected_total()
    );
    if !c.rejected.is_empty() {
        let by: Vec<String> = c
            .rejected
            .iter()
            .map(|(k, n)| format!("{}={n}", k.name()))
            .collect();
        let _ = write!(hub_line, " ({})", by.join(" "));
    }
    lines.push(hub_line);
    lines.into_iter().map(|l| escape(&l).into_owned()).collect()
}

fn device_line(device: &str, s: &Summary) -> String {
    let mut line = format!(
        "TOTALS {device}: batches {} delivered events {} missing batches {} duplicate batches {} drops",
        s.batches, s.delivered_events, s.missing_batches, s.duplicate_batches
    );
    if s.drops.is_empty() {
        line.push_str(" none");
    }
    for (source, n) in &s.drops {
        let _ = write!(line, " {source}={n}");
    }
    line
}

/// One record per device, in id order, then the hub-wide record.
pub fn json(hub: &Hub) -> Vec<Value> {
    let mut out: Vec<Value> = hub
        .totals
        .devices()
        .filter_map(|d| hub.totals.device(d).map(|s| device_json(d, &s)))
        .collect();
    let c = &hub.counters;
    let rejected: serde_json::Map<String, Value> = c
        .rejected
        .iter()
        .map(|(k, n)| (k.name().to_owned(), json!(n)))
        .collect();
    out.push(json!({
        "type": "hub_totals",
        "accepted": c.accepted,
        "duplicates": c.duplicates,
        "ignored": c.ignored,
        "rejected": rejected,
        "rejected_total": c.rejected_total(),
    }));
    out
}

/// `{"type":"totals","device":..,"delivered_events":..,"drops":{source: n},
/// "missing_batches":..,"duplicate_batches":..,"batches":..}`
pub fn device_json(device: &str, s: &Summary) -> Value {
    json!({
        "type": "totals",
        "device": device,
        "delivered_events": s.delivered_events,
        "drops": s.drops,
        "missing_batches": s.missing_batches,
        "duplicate_batches": s.duplicate_batches,
        "batches": s.batches,
    })
}

#[cfg(test)]
mod tests {
    use edge_wire::{DropCount, EventBatch, Message, bounded, encode};

    use super::*;

    fn batch(device: &str, seq: u32, drops: &[(&str, u64)]) -> Vec<u8> {
        encode(&Message::Events(EventBatch {
            device: bounded(device),
            boot_id: bounded("b"),
            run_id: 1,
            seq,
            unix_ms: 1,
            mono_ns: 1,
            drops: drops
                .iter()
                .map(|&(s, count)| DropCount {
                    source: bounded(s),
                    count,
                })
                .collect(),
            events: vec![],
        }))
        .expect("encode")
    }

    fn hub() -> Hub {
        let mut hub = Hub::new("edge");
        hub.handle(
            "edge/pi2/events",
            &batch("pi2", 0, &[("ring:bind", 4), ("queue", 1)]),
        );
        hub.handle("edge/pi2/events", &batch("pi2", 3, &[]));
        hub.handle("edge/pi2/events", &batch("pi2", 3, &[]));
        hub.handle("edge/p\x1bi/events", &batch("p\x1bi", 0, &[]));
        hub.handle("edge/pi2/cmd/rebirth", b"");
        hub.handle("edge/pi2/events", b"");
        hub
    }

    #[test]
    fn text_report_is_one_escaped_line_per_device_then_the_hub() {
        assert_eq!(
            text(&hub()),
            vec![
                "TOTALS p\\x1bi: batches 1 delivered events 0 missing batches 0 duplicate batches 0 drops none",
                "TOTALS pi2: batches 2 delivered events 0 missing batches 2 duplicate batches 1 drops queue=1 ring:bind=4",
                "HUB accepted 3 duplicates 1 ignored 1 rejected 1 (empty=1)",
            ]
        );
        assert_eq!(
            text(&Hub::new("edge")),
            vec!["HUB accepted 0 duplicates 0 ignored 0 rejected 0"]
        );
    }

    #[test]
    fn json_report_has_one_totals_record_per_device() {
        assert_eq!(
            json(&hub()),
            vec![
                serde_json::json!({"type": "totals", "device": "p\u{1b}i", "delivered_events": 0, "drops": {}, "missing_batches": 0, "duplicate_batches": 0, "batches": 1}),
                serde_json::json!({"type": "totals", "device": "pi2", "delivered_events": 0, "drops": {"queue": 1, "ring:bind": 4}, "missing_batches": 2, "duplicate_batches": 1, "batches": 2}),
                serde_json::json!({"type": "hub_totals", "accepted": 3, "duplicates": 1, "ignored": 1, "rejected": {"empty": 1}, "rejected_total": 1}),
            ]
        );
    }
}
