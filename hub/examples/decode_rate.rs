//! Benchmark of the hub's decode path (issue 10: "the hub's decode path sustains at least what
//! one agent sends flat out"), not part of the hub. Encodes batches shaped like the agent's under
//! a bind flood (16 KiB batches of bind events, the agent's default `batch.max_bytes`), then
//! times, over the same payloads in one run:
//! - `decode`: `edge_wire::decode` alone;
//! - `intake`: the hub's `Hub::handle` (topic checks, decode, seq tracking, duplicates);
//! - `json, per line`: intake + JSON records written the way `hub --json` wrote them before
//!   (a flush after every message through stdout's line buffer: one write per record);
//! - `json values, per message`: intake + the same records buffered and written once per
//!   message;
//! - `json streamed, per message`: intake + `render::write_json` (records serialized from the
//!   decoded events, no `Value` trees), buffered, once per message: what `hub --json` does now.
//!
//! Output goes to `--out` (default /dev/null). Prints events/s for each, and the ratio to
//! `--agent-rate` (events/s one agent delivers flat out; README's footprint table: 207 394).
//!
//! `cargo run --release -p edge-hub --example decode_rate -- --seconds 3`

use std::{
    fs::File,
    io::{BufWriter, LineWriter, Write},
    time::{Duration, Instant},
};

use edge_hub::{Hub, render};
use edge_wire::{Bind, Event, EventBatch, Message, SockAddr, Task, bounded, encode};

fn batches(count: u32, max_bytes: usize) -> (Vec<Vec<u8>>, u64) {
    let mut out = Vec::new();
    let mut events_total = 0u64;
    for seq in 0..count {
        let mut events = Vec::new();
        loop {
            events.push(Event::Bind(Bind {
                age_us: 150_000 - u64::from(seq % 1000),
                task: Task {
                    pid: 4242,
                    tgid: 4242,
                    comm: bounded("bindgen"),
                },
                fd: 3,
                ret: -22,
                addr: SockAddr::V4 {
                    ip: [127, 0, 0, 1],
                    port: 40_000 + (events.len() as u16 % 1000),
                },
            }));
            let msg = batch_message(seq, events.clone());
            let len = encode(&msg).map(|b| b.len()).unwrap_or(usize::MAX);
            if len > max_bytes {
                events.pop();
                break;
            }
        }
        events_total += events.len() as u64;
        out.push(encode(&batch_message(seq, events)).expect("encode a bench batch"));
    }
    (out, events_total)
}

fn batch_message(seq: u32, events: Vec<Event>) -> Message {
    Message::Events(EventBatch {
        device: bounded("bench-pi"),
        boot_id: bounded("00000000-bench"),
        run_id: 7,
        seq,
        unix_ms: 1_780_000_000_000,
        mono_ns: 1_000_000_000 + u64::from(seq) * 1_000_000,
        drops: vec![],
        events,
    })
}

struct Args {
    seconds: f64,
    out: String,
    agent_rate: f64,
}

fn args() -> Args {
    let mut a = Args {
        seconds: 3.0,
        out: "/dev/null".into(),
        agent_rate: 207_394.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--seconds" => a.seconds = v.parse().expect("--seconds: a number"),
            "--out" => a.out = v,
            "--agent-rate" => a.agent_rate = v.parse().expect("--agent-rate: a number"),
            other => panic!("unknown option {other}"),
        }
    }
    a
}

/// Runs `step` over the payloads (a fresh hub per pass, so nothing is a duplicate) until
/// `seconds` have passed; returns events per second.
fn rate(
    payloads: &[Vec<u8>],
    events: u64,
    seconds: f64,
    mut step: impl FnMut(&mut Hub, &[u8]),
) -> f64 {
    let start = Instant::now();
    let mut done = 0u64;
    while start.elapsed() < Duration::from_secs_f64(seconds) {
        let mut hub = Hub::new("edge");
        for p in payloads {
            step(&mut hub, p);
        }
        done += events;
    }
    done as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let a = args();
    let (payloads, events) = batches(200, 16 * 1024);
    let bytes: usize = payloads.iter().map(Vec::len).sum();
    println!(
        "decode_rate: {} batches, {events} bind events, {:.1} B/event on the wire, {} s per figure, output {}",
        payloads.len(),
        bytes as f64 / events as f64,
        a.seconds,
        a.out
    );
    let topic = "edge/bench-pi/events";
    let open = || File::create(&a.out).expect("open --out");
    let figures = [
        (
            "decode",
            rate(&payloads, events, a.seconds, |_, p| {
                std::hint::black_box(edge_wire::decode(p).is_ok());
            }),
        ),
        (
            "intake",
            rate(&payloads, events, a.seconds, |hub, p| {
                std::hint::black_box(hub.handle(topic, p));
            }),
        ),
        ("json, per line", {
            let mut out = LineWriter::new(open());
            rate(&payloads, events, a.seconds, |hub, p| {
                for r in render::json(&hub.handle(topic, p)) {
                    writeln!(out, "{r}").expect("write");
                }
                out.flush().expect("flush");
            })
        }),
        ("json values, per message", {
            let mut out = BufWriter::with_capacity(64 * 1024, open());
            rate(&payloads, events, a.seconds, |hub, p| {
                for r in render::json(&hub.handle(topic, p)) {
                    writeln!(out, "{r}").expect("write");
                }
                out.flush().expect("flush");
            })
        }),
        ("json streamed, per message", {
            let mut out = BufWriter::with_capacity(64 * 1024, open());
            rate(&payloads, events, a.seconds, |hub, p| {
                render::write_json(&hub.handle(topic, p), &mut out).expect("write");
                out.flush().expect("flush");
            })
        }),
    ];
    println!(
        "| path | events/s | / one agent flat out ({:.0}/s) |",
        a.agent_rate
    );
    println!("|---|---|---|");
    for (name, r) in figures {
        println!("| {name} | {r:.0} | {:.2}x |", r / a.agent_rate);
    }
}
