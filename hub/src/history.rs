//! Stored records for people: one readable line per record (the same words as the hub's live
//! text output) for `hub query`, the history page and the live feed, and the JSON shape the
//! API and the live feed share. Lines are not escaped here: the terminal escapes with
//! [`escape`](crate::escape), HTML pages with the web module, and the browser sets text nodes.

use edge_wire::{Birth, Event, EventBatch, Message};
use serde_json::{Value, json};

use crate::{
    Outcome, render,
    store::{DROPS, GAP, Record, STATUS},
    timespec,
};

/// `exit code 0 (ppid 1)`-style description of a record, without device or time.
pub fn describe(r: &Record) -> String {
    match r.kind.as_str() {
        STATUS => status(r),
        GAP => format!(
            "GAP expected batch {} got {} ({} batches lost)",
            r.detail["expected"], r.detail["got"], r.detail["lost"]
        ),
        DROPS => format!(
            "DROPS {}: {}",
            r.detail["source"].as_str().unwrap_or("?"),
            r.detail["count"]
        ),
        _ => event(r),
    }
}

fn status(r: &Record) -> String {
    let body = &r.detail["body"];
    if r.detail["state"] == "online" {
        if let Ok(b) = serde_json::from_value::<Birth>(body.clone()) {
            let line = lines(&r.device, &Message::Online(b)).join("; ");
            return strip_device(&r.device, &line);
        }
        return "ONLINE".into();
    }
    format!(
        "OFFLINE ({}, session {})",
        body["cause"].as_str().unwrap_or("?"),
        body["session"]
    )
}

fn event(r: &Record) -> String {
    let Ok(ev) = serde_json::from_value::<Event>(r.detail.clone()) else {
        // A kind this build does not know: its fields as they came.
        return format!("{} {}", r.kind, r.detail);
    };
    let batch = r.batch.clone().unwrap_or_else(|| crate::store::BatchRef {
        boot_id: String::new(),
        run_id: 0,
        seq: 0,
    });
    let message = Message::Events(EventBatch {
        device: edge_wire::bounded(&r.device),
        boot_id: edge_wire::bounded(&batch.boot_id),
        run_id: batch.run_id,
        seq: batch.seq,
        unix_ms: 0,
        mono_ns: 0,
        drops: Vec::new(),
        events: vec![ev],
    });
    // A summary event (TCP flows, storage) may render as several lines: one line here.
    let lines: Vec<String> = lines(&r.device, &message)
        .iter()
        .map(|l| strip_device(&r.device, l))
        .collect();
    if lines.is_empty() {
        return format!("{} {}", r.kind, r.detail);
    }
    lines.join("; ")
}

/// The hub's text lines for a message, unescaped (the caller escapes for its medium).
fn lines(device: &str, message: &Message) -> Vec<String> {
    render::text_raw(&Outcome::Accepted {
        device: device.to_owned(),
        message: message.clone(),
        gap: None,
    })
}

fn strip_device(device: &str, line: &str) -> String {
    line.strip_prefix(device)
        .map_or(line, |rest| rest.trim_start())
        .to_owned()
}

/// The record as the API and the live feed show it: its fields, `time` (RFC 3339) and `text`
/// ([`describe`]).
pub fn record_json(r: &Record) -> Value {
    let mut v = json!({
        "kind": r.kind,
        "device": r.device,
        "ts_ms": r.ts_ms,
        "time": timespec::format(r.ts_ms),
        "text": describe(r),
        "detail": r.detail,
    });
    if let (Some(b), Some(obj)) = (&r.batch, v.as_object_mut()) {
        obj.insert("boot_id".into(), json!(b.boot_id));
        obj.insert("run_id".into(), json!(b.run_id));
        obj.insert("seq".into(), json!(b.seq));
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BatchRef;

    fn rec(kind: &str, detail: Value) -> Record {
        Record {
            kind: kind.into(),
            device: "pi1".into(),
            ts_ms: 1_772_366_400_000,
            batch: Some(BatchRef {
                boot_id: "b".into(),
                run_id: 7,
                seq: 3,
            }),
            detail,
        }
    }

    #[test]
    fn records_read_as_the_hubs_lines() {
        let exit = rec(
            "exit",
            json!({"Exit": {"age_us": 0, "task": {"pid": 5, "tgid": 5, "comm": "sh"}, "ppid": 1, "how": {"Signal": 11}}}),
        );
        assert_eq!(describe(&exit), "[5] sh exit KILLED by signal 11 (ppid 1)");
        let bind = rec(
            "bind",
            json!({"Bind": {"age_us": 0, "task": {"pid": 5, "tgid": 5, "comm": "nginx"}, "fd": 3, "ret": 0,
                   "addr": {"V4": {"ip": [127, 0, 0, 1], "port": 80}}, "address": "127.0.0.1:80"}}),
        );
        assert_eq!(describe(&bind), "[5] nginx bind 127.0.0.1:80 fd 3 -> ok");
        let future = rec("tcp_close", json!({"TcpClose": {"bytes": 5}}));
        assert_eq!(describe(&future), "tcp_close {\"TcpClose\":{\"bytes\":5}}");
        let off = rec(
            STATUS,
            json!({"state": "offline", "body": {"cause": "ConnectionLost", "session": 4}}),
        );
        assert_eq!(describe(&off), "OFFLINE (ConnectionLost, session 4)");
        let gap = rec(GAP, json!({"expected": 2, "got": 5, "lost": 3}));
        assert_eq!(
            describe(&gap),
            "GAP expected batch 2 got 5 (3 batches lost)"
        );
        let drops = rec(DROPS, json!({"source": "ring:exec", "count": 9}));
        assert_eq!(describe(&drops), "DROPS ring:exec: 9");
        assert_eq!(
            record_json(&gap),
            json!({"kind": "gap", "device": "pi1", "ts_ms": 1_772_366_400_000_i64,
                   "time": "2026-03-01T12:00:00.000Z", "text": "GAP expected batch 2 got 5 (3 batches lost)",
                   "detail": {"expected": 2, "got": 5, "lost": 3}, "boot_id": "b", "run_id": 7, "seq": 3})
        );
    }
}
