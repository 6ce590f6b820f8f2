//! JSON records written straight to an output: the same records as [`super::json`], but a
//! batch's event records are serialized from the decoded event in place instead of being built
//! as `serde_json::Value` trees first (about 20 allocations per event). `hub --json` prints
//! through this; the records parse to the same values, only the key order within an object
//! may differ (JSON objects are unordered).

use std::io::{self, Write};

use edge_wire::{Bind, Event, EventBatch, Message};
use serde::{Serialize, Serializer};

use crate::Outcome;

/// Writes the outcome's JSON records, one per line (none for an ignored command).
pub fn write_json(outcome: &Outcome, out: &mut impl Write) -> io::Result<()> {
    if let Outcome::Accepted {
        device,
        message: Message::Events(batch),
        gap,
    } = outcome
    {
        if let Some(g) = gap {
            writeln!(out, "{}", super::gap_json(device, g))?;
        }
        return write_batch(device, batch, out);
    }
    for record in super::json(outcome) {
        writeln!(out, "{record}")?;
    }
    Ok(())
}

fn write_batch(device: &str, b: &EventBatch, out: &mut impl Write) -> io::Result<()> {
    for record in super::drops_json(device, b) {
        writeln!(out, "{record}")?;
    }
    for ev in &b.events {
        let record = EventRecord {
            kind: "event",
            device,
            boot_id: b.boot_id.as_str(),
            run_id: b.run_id,
            seq: b.seq,
            unix_ms: b.unix_ms.saturating_sub(ev.age_us() / 1000),
            event: EventJson(ev),
        };
        serde_json::to_writer(&mut *out, &record).map_err(io::Error::from)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct EventRecord<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    device: &'a str,
    boot_id: &'a str,
    run_id: u64,
    seq: u32,
    unix_ms: u64,
    event: EventJson<'a>,
}

/// An event as the wire crate serializes it, a bind with its address also as text.
struct EventJson<'a>(&'a Event);

#[derive(Serialize)]
struct BindJson<'a> {
    #[serde(flatten)]
    bind: &'a Bind,
    address: String,
}

impl Serialize for EventJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Event::Bind(b) => s.serialize_newtype_variant(
                "Event",
                0,
                "Bind",
                &BindJson {
                    bind: b,
                    address: super::addr(&b.addr),
                },
            ),
            other => other.serialize(s),
        }
    }
}
