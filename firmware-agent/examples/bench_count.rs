//! Counting subscriber for `scripts/bench-footprint.sh` (not part of the agent): subscribes to
//! `<prefix>/<device>/#` on a broker (`--host`, loopback by default; the guest bench's is the
//! host's, through QEMU's user network), decodes every batch, and keeps rewriting one
//! status line in `--status FILE` (every 100 ms, atomically):
//! `online O events E binds B ours U drops D batches N lat_max_ms L lat_mean_ms M`,
//! where `ours` are bind events whose comm is `--comm` (the load generator), drops are every
//! source's losses (batches carry each source's run total; the highest seen per source is
//! kept, as the hub does), and latency is from the kernel timestamp of each
//! of our events to its arrival here (both CLOCK_MONOTONIC). Stops by itself after
//! `--seconds` (default 900) or on SIGTERM.
//!
//! `cargo build --release -p firmware-agent --example bench_count`

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use edge_wire::{Event, Message, decode};
use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS};

#[derive(Default)]
struct Counts {
    online: bool,
    events: u64,
    binds: u64,
    ours: u64,
    drops: HashMap<String, u64>,
    batches: u64,
    lat_max_ns: u64,
    lat_sum_ns: u128,
}

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid timespec pointer; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(device), Some(status)) = (
        arg(&args, "--port"),
        arg(&args, "--device"),
        arg(&args, "--status"),
    ) else {
        eprintln!(
            "usage: bench_count --port PORT --device ID --status FILE [--host 127.0.0.1] [--prefix edge] [--comm bindgen] [--seconds 900]"
        );
        std::process::exit(2);
    };
    let host = arg(&args, "--host").unwrap_or_else(|| "127.0.0.1".into());
    let prefix = arg(&args, "--prefix").unwrap_or_else(|| "edge".into());
    let comm = arg(&args, "--comm").unwrap_or_else(|| "bindgen".into());
    let limit = Duration::from_secs(
        arg(&args, "--seconds")
            .and_then(|s| s.parse().ok())
            .unwrap_or(900),
    );
    let port: u16 = port.parse().expect("--port is a number");

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone()).expect("signal handler");
    }
    let counts = Arc::new(Mutex::new(Counts::default()));
    let mut opts = MqttOptions::new(format!("bench-count-{}", std::process::id()), host, port);
    opts.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut conn) = Client::new(opts, 1024);
    client
        .subscribe(format!("{prefix}/{device}/#"), QoS::AtLeastOnce)
        .expect("subscribe");
    let c2 = counts.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            let Ok(MqttEvent::Incoming(Packet::Publish(p))) = ev else {
                if ev.is_err() {
                    std::thread::sleep(Duration::from_millis(100));
                }
                continue;
            };
            let now = mono_ns();
            let Ok(msg) = decode(&p.payload) else {
                continue;
            };
            let mut c = c2.lock().expect("counts");
            match msg {
                Message::Online(_) => c.online = true,
                Message::Events(b) => {
                    c.batches += 1;
                    c.events += b.events.len() as u64;
                    for d in &b.drops {
                        let total = c.drops.entry(d.source.as_str().to_owned()).or_default();
                        *total = (*total).max(d.count);
                    }
                    for e in &b.events {
                        let Event::Bind(x) = e else { continue };
                        c.binds += 1;
                        if x.task.comm.as_str() == comm {
                            c.ours += 1;
                            // The event happened age_us before the batch's clock.
                            let at = b.mono_ns.saturating_sub(x.age_us * 1000);
                            let lat = now.saturating_sub(at);
                            c.lat_max_ns = c.lat_max_ns.max(lat);
                            c.lat_sum_ns += u128::from(lat);
                        }
                    }
                }
                _ => {}
            }
        }
    });
    let started = Instant::now();
    let tmp = format!("{status}.tmp");
    loop {
        let done = stop.load(Ordering::Relaxed) || started.elapsed() > limit;
        let line = {
            let c = counts.lock().expect("counts");
            format!(
                "online {} events {} binds {} ours {} drops {} batches {} lat_max_ms {:.1} lat_mean_ms {:.1}\n",
                u8::from(c.online),
                c.events,
                c.binds,
                c.ours,
                c.drops.values().sum::<u64>(),
                c.batches,
                c.lat_max_ns as f64 / 1e6,
                if c.ours > 0 {
                    (c.lat_sum_ns / u128::from(c.ours)) as f64 / 1e6
                } else {
                    0.0
                }
            )
        };
        if std::fs::write(&tmp, &line).is_ok() {
            let _ = std::fs::rename(&tmp, &status);
        }
        if done {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
