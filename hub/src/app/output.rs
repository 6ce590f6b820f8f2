//! Standard output: each outcome as text lines or JSON records, the totals report, and the hub's
//! own state records. Buffered and written once per message (one write for a batch's records,
//! not one per record through stdout's line buffer), so a pipe still sees each message's lines
//! as it happens.

use std::io::{BufWriter, StdoutLock, Write as _};

use edge_hub::{Hub, Outcome, render, report};
use serde_json::{Value, json};

pub struct Printer {
    out: BufWriter<StdoutLock<'static>>,
    json: bool,
}

impl Printer {
    pub fn new(json: bool) -> Self {
        Self {
            out: BufWriter::with_capacity(64 * 1024, std::io::stdout().lock()),
            json,
        }
    }

    pub fn outcome(&mut self, outcome: &Outcome) -> std::io::Result<()> {
        if self.json {
            render::write_json(outcome, &mut self.out)?;
            self.out.flush()
        } else {
            self.lines(render::text(outcome))
        }
    }

    /// The totals report (per device, then hub-wide).
    pub fn totals(&mut self, hub: &Hub) -> std::io::Result<()> {
        if self.json {
            self.records(report::json(hub))
        } else {
            self.lines(report::text(hub))
        }
    }

    /// A JSON-only record about the hub itself (text mode logs instead).
    pub fn state(&mut self, record: Value) -> std::io::Result<()> {
        if self.json {
            self.records(vec![record])
        } else {
            Ok(())
        }
    }

    /// A line in text mode (escaped by the caller), a record in JSON mode.
    pub fn either(&mut self, line: String, record: Value) -> std::io::Result<()> {
        if self.json {
            self.records(vec![record])
        } else {
            self.lines(vec![line])
        }
    }

    fn lines(&mut self, lines: Vec<String>) -> std::io::Result<()> {
        for l in lines {
            writeln!(self.out, "{l}")?;
        }
        self.out.flush()
    }

    fn records(&mut self, records: Vec<Value>) -> std::io::Result<()> {
        for r in records {
            writeln!(self.out, "{r}")?;
        }
        self.out.flush()
    }
}

/// `{"type":"hub","state":..}` plus `fields`.
pub fn hub_state(state: &str, fields: Value) -> Value {
    let mut v = json!({"type": "hub", "state": state});
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), fields) {
        obj.extend(more);
    }
    v
}
