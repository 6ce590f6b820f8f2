//! Rendering outcomes: one readable line per event and status change (a metrics sample adds
//! a line per top-N list), or JSON records.
//! Text lines are built from device strings and then passed through [`escape`] whole, so no
//! field can be forgotten: a line printed here never holds a control character.

use std::fmt::Write as _;

use edge_wire::{
    AttachMethod, Birth, Event, EventBatch, ExitHow, Message, Metrics, ProbeState, RingTransport,
    SockAddr,
};
use serde_json::{Value, json};

use crate::{Gap, Outcome, escape};

/// Readable lines for one outcome (none for a duplicate or an ignored command).
pub fn text(outcome: &Outcome) -> Vec<String> {
    text_raw(outcome)
        .into_iter()
        .map(|l| escape(&l).into_owned())
        .collect()
}

/// [`text`] before escaping, for callers that escape for another medium (HTML).
pub fn text_raw(outcome: &Outcome) -> Vec<String> {
    match outcome {
        Outcome::Rejected {
            topic,
            reason,
            total,
            ..
        } => vec![format!(
            "REJECTED {topic}: {reason} (rejected so far: {total})"
        )],
        Outcome::Duplicate { .. } | Outcome::Ignored { .. } => Vec::new(),
        Outcome::Accepted {
            device,
            message,
            gap,
        } => {
            let mut lines = Vec::new();
            if let Some(g) = gap {
                lines.push(gap_line(device, g));
            }
            match message {
                Message::Online(b) => lines.push(birth_line(b)),
                Message::Offline(d) => lines.push(format!(
                    "{device} OFFLINE ({:?}, session {})",
                    d.cause, d.session
                )),
                Message::Events(b) => lines.extend(batch_lines(b)),
                Message::Metrics(m) => {
                    lines.push(metrics_line(device, m));
                    lines.extend(host::top_cpu_line(device, &m.top_cpu));
                    lines.extend(host::top_mem_line(device, &m.top_mem));
                }
            }
            lines
        }
    }
}

fn gap_line(device: &str, g: &Gap) -> String {
    format!(
        "GAP {device}: expected batch {} got {} ({} batches lost)",
        g.expected, g.got, g.lost
    )
}

fn birth_line(b: &Birth) -> String {
    let mut s = format!(
        "{} ONLINE agent {} schema {} kernel {} {} page {} BTF {} session {} run {:016x} queue ram {} B spool {} B; rings",
        b.device,
        b.agent_version,
        b.schema_version,
        b.kernel_release,
        b.arch,
        b.page_size,
        if b.kernel_btf { "yes" } else { "no" },
        b.session,
        b.run_id,
        b.queue.ram_bytes,
        b.queue.spool_bytes,
    );
    for r in &b.ring_buffers {
        let _ = match r.transport {
            RingTransport::RingBuf => write!(s, " {}={}->{}", r.name, r.requested, r.chosen),
            RingTransport::Perf {
                pages_per_cpu,
                cpus,
            } => write!(
                s,
                " {}={}->{}[perf {pages_per_cpu}p/cpu x{cpus}]",
                r.name, r.requested, r.chosen
            ),
        };
    }
    s.push_str("; probes");
    for p in &b.probes {
        // Tracepoints are the rule; other methods are named.
        let how = match p.method {
            AttachMethod::Tracepoint => "",
            AttachMethod::Fentry => "[fentry]",
            AttachMethod::Kprobe => "[kprobe]",
        };
        let _ = match &p.state {
            ProbeState::Attached => write!(s, " {}=ok{how}", p.name),
            ProbeState::Disabled => write!(s, " {}=disabled", p.name),
            ProbeState::Skipped { reason } => write!(s, " {}=SKIPPED{how}({reason})", p.name),
        };
    }
    s
}

fn metrics_line(device: &str, m: &Metrics) -> String {
    let a = &m.agent;
    let mut s = format!(
        "{device} metrics: cpu {:.1}% mem {}/{} MiB load {:.2} {:.2} {:.2} up {}s agent rss {} KiB events {} batches {} queued {} ({} B, {} B spooled) drops",
        m.cpu_percent,
        m.mem_used_kib / 1024,
        m.mem_total_kib / 1024,
        m.load[0],
        m.load[1],
        m.load[2],
        m.uptime_s,
        a.rss_kib,
        a.events,
        a.batches,
        a.queued,
        a.queued_bytes,
        a.spooled_bytes,
    );
    if a.drops.is_empty() {
        s.push_str(" none");
    }
    for d in &a.drops {
        let _ = write!(s, " {}={}", d.source, d.count);
    }
    for e in &a.probe_errors {
        let _ = write!(
            s,
            "; probe {} failed: helper {} map-full {} ring-full {}",
            e.program, e.helper, e.map_full, e.ring_full
        );
    }
    if a.metrics_dropped > 0 {
        let _ = write!(s, "; metrics dropped {}", a.metrics_dropped);
    }
    let _ = write!(s, "; board {}", host::board_summary(&m.board));
    s
}

fn batch_lines(b: &EventBatch) -> Vec<String> {
    let mut lines: Vec<String> = b
        .drops
        .iter()
        .map(|d| format!("{} DROPS {}: {}", b.device, d.source, d.count))
        .collect();
    for ev in &b.events {
        let Some(t) = ev.task() else {
            match ev {
                Event::Tcp(e) => lines.extend(signals::tcp_lines(&b.device, e)),
                Event::Storage(e) => lines.extend(signals::storage_lines(&b.device, e)),
                _ => {}
            }
            continue;
        };
        let who = format!("{} [{}] {}", b.device, t.tgid, t.comm);
        lines.push(match ev {
            Event::Bind(e) => format!(
                "{who} bind {} fd {} -> {}",
                addr(&e.addr),
                e.fd,
                if e.ret == 0 {
                    "ok".into()
                } else {
                    format!("errno {}", -i64::from(e.ret))
                }
            ),
            Event::Exec(e) => format!(
                "{who} exec {} (ppid {}){}",
                e.filename,
                e.ppid,
                if e.truncated { " [truncated]" } else { "" }
            ),
            Event::Exit(e) => format!(
                "{who} exit {} (ppid {})",
                match e.how {
                    ExitHow::Code(c) => format!("code {c}"),
                    ExitHow::Signal(s) => format!("KILLED by signal {s}"),
                    ExitHow::Unknown => "unknown".into(),
                },
                e.ppid
            ),
            Event::OomKill(e) => signals::oom_line(&b.device, e),
            Event::Tcp(_) | Event::Storage(_) => continue,
        });
    }
    lines
}

/// A socket address as people write it (not escaped: callers escape what they print).
pub fn addr(a: &SockAddr) -> String {
    match a {
        SockAddr::V4 { ip, port } => format!("{}:{port}", std::net::Ipv4Addr::from(*ip)),
        SockAddr::V6 { ip, port, .. } => format!("[{}]:{port}", std::net::Ipv6Addr::from(*ip)),
        SockAddr::Unix { path } => format!("unix:{path}"),
        SockAddr::Other { family } => format!("family {family}"),
        SockAddr::Unreadable => "(unreadable)".into(),
    }
}

/// JSON records for one outcome: one per event, status change, metrics sample, gap, duplicate
/// or rejection; none for an ignored command.
pub fn json(outcome: &Outcome) -> Vec<Value> {
    match outcome {
        Outcome::Rejected {
            topic,
            kind,
            reason,
            total,
        } => vec![
            json!({"type": "rejected", "topic": topic, "kind": kind.name(), "reason": reason, "rejected_total": total}),
        ],
        Outcome::Ignored { .. } => Vec::new(),
        Outcome::Duplicate {
            device,
            boot_id,
            run_id,
            seq,
        } => vec![
            json!({"type": "duplicate", "device": device, "boot_id": boot_id, "run_id": run_id, "seq": seq}),
        ],
        Outcome::Accepted {
            device,
            message,
            gap,
        } => {
            let mut out = Vec::new();
            if let Some(g) = gap {
                out.push(gap_json(device, g));
            }
            match message {
                Message::Events(b) => out.extend(batch_json(device, b)),
                other => out.push(message_json(device, other)),
            }
            out
        }
    }
}

/// The record for a gap in a stream's sequence numbers.
fn gap_json(device: &str, g: &Gap) -> Value {
    json!({"type": "gap", "device": device, "expected": g.expected, "got": g.got, "lost": g.lost})
}

/// One record per drop source a batch reports.
fn drops_json<'a>(device: &'a str, b: &'a EventBatch) -> impl Iterator<Item = Value> + 'a {
    b.drops.iter().map(move |d| {
        json!({"type": "drops", "device": device, "boot_id": b.boot_id.as_str(), "run_id": b.run_id, "seq": b.seq, "source": d.source.as_str(), "count": d.count})
    })
}

fn batch_json(device: &str, b: &EventBatch) -> Vec<Value> {
    let (boot_id, run_id, seq) = (b.boot_id.as_str(), b.run_id, b.seq);
    let mut out = Vec::new();
    out.extend(drops_json(device, b));
    for ev in &b.events {
        let mut v = serde_json::to_value(ev).unwrap_or(Value::Null);
        if let (Event::Bind(e), Some(obj)) = (ev, v.get_mut("Bind").and_then(Value::as_object_mut))
        {
            obj.insert("address".into(), Value::String(addr(&e.addr)));
        }
        let ts_ms = b.unix_ms.saturating_sub(ev.age_us() / 1000);
        out.push(json!({"type": "event", "device": device, "boot_id": boot_id, "run_id": run_id, "seq": seq, "unix_ms": ts_ms, "event": v}));
    }
    out
}

/// The whole message as JSON (used by the bridge and for status/metrics lines).
pub fn message_json(device: &str, m: &Message) -> Value {
    let (kind, body) = match m {
        Message::Online(b) => ("online", serde_json::to_value(b)),
        Message::Offline(d) => ("offline", serde_json::to_value(d)),
        Message::Events(b) => ("events", serde_json::to_value(b)),
        Message::Metrics(x) => ("metrics", serde_json::to_value(x)),
    };
    json!({"type": kind, "device": device, "body": body.unwrap_or(Value::Null)})
}

pub mod host;
mod signals;
mod stream;
pub use stream::write_json;
#[cfg(test)]
mod tests;
