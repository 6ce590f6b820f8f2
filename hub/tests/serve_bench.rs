//! Benchmark of `hub serve` (store + serve, no bridge) beside the plain `hub --json` baseline,
//! in one run, against a real mosquitto and a simulated fleet of BENCH_DEVICES devices (1000):
//! for each offered rate (messages/s, BENCH_RATES) over BENCH_SECONDS, the rate the hub took
//! in, how long it needed after the publisher stopped (drain), whether the broker's message
//! store grew (the hub falling behind), the hub's CPU and VmRSS; then database bytes per stored
//! event and the fleet table's load time in headless Chromium. Figures only, nothing asserted
//! about speed: `#[ignore]`d, run by `scripts/bench-hub.sh` in release mode.

mod common;
mod serve_kit;

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::{Duration, Instant},
};

use common::Proc;
use edge_hub::testkit::PrivateBroker;
use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
use serve_kit::{
    ServeHub,
    browser::Browser,
    fleet::{Publisher, T0_MS, batch, birth, exec, exit, metrics},
};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// mosquitto's `$SYS/broker/store/messages/count`: messages it holds (queued for slow
/// subscribers, in flight, retained).
fn broker_store(port: u16) -> Arc<AtomicU64> {
    let stored = Arc::new(AtomicU64::new(0));
    let out = stored.clone();
    let (client, mut conn) = Client::new(MqttOptions::new("bench-sys", "127.0.0.1", port), 10);
    std::thread::spawn(move || {
        let _ = client.subscribe("$SYS/broker/store/messages/count", QoS::AtMostOnce);
        for ev in conn.iter() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = ev
                && let Ok(n) = String::from_utf8_lossy(&p.payload).trim().parse()
            {
                out.store(n, Relaxed);
            }
        }
    });
    stored
}

/// (VmRSS KiB, VmHWM KiB, CPU seconds) of `pid`.
fn proc_stats(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields
        .get(11)
        .and_then(|u| u.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0);
    (kib("VmRSS:"), kib("VmHWM:"), ticks / 100.0)
}

/// The hub under test: `hub serve` (counts from its /metrics) or `hub --json --totals-every
/// 0.2` (counts from its `hub_totals` records).
enum Hub {
    Serve(ServeHub),
    Json { proc: Proc, taken: AtomicU64 },
}

impl Hub {
    fn pid(&self) -> u32 {
        match self {
            Self::Serve(h) => h.proc.child.id(),
            Self::Json { proc, .. } => proc.child.id(),
        }
    }

    fn taken(&self) -> u64 {
        match self {
            Self::Serve(h) => {
                let v = h.get("/api/hub").json();
                v["accepted"].as_u64().unwrap_or(0) + v["duplicates"].as_u64().unwrap_or(0)
            }
            Self::Json { proc, taken } => {
                while let Some(line) = proc.next_line(Duration::ZERO) {
                    if line.contains("\"hub_totals\"")
                        && let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    {
                        let n = v["accepted"].as_u64().unwrap_or(0)
                            + v["duplicates"].as_u64().unwrap_or(0);
                        taken.store(n, Relaxed);
                    }
                }
                taken.load(Relaxed)
            }
        }
    }
}

struct Step {
    offered: u64,
    published_rate: f64,
    taken_rate: f64,
    drain_s: f64,
    store_start: u64,
    store_max: u64,
    cpu_percent: f64,
    rss_kib: u64,
}

/// Publishes at `rate` messages/s for `secs` (nine batches of `events` events, then one metrics
/// sample, round robin over the devices), sampling the broker's store; then waits for the hub.
/// The simulated fleet and its publisher.
struct Load {
    sim: Publisher,
    store: Arc<AtomicU64>,
    devices: Vec<String>,
    seq: u32,
    secs: u64,
    events: u32,
}

fn step(hub: &Hub, load: &mut Load, rate: u64) -> Step {
    let Load {
        sim,
        store,
        devices,
        seq,
        secs,
        events,
    } = load;
    let (secs, events) = (*secs, *events);
    let before = hub.taken();
    let sent_before = sim.sent();
    let (_, _, cpu0) = proc_stats(hub.pid());
    let store_start = store.load(Relaxed);
    let mut store_max = store_start;
    let start = Instant::now();
    let slice = Duration::from_millis(10);
    let per_slice = (rate / 100).max(1);
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let tick = Instant::now();
        for _ in 0..per_slice {
            let d = &devices[(n % devices.len() as u64) as usize];
            if n % 10 == 9 {
                sim.publish(
                    &format!("edge/{d}/metrics"),
                    metrics(d, T0_MS + u64::from(*seq), 25.0, 50.0),
                    false,
                );
            } else {
                let evs = (0..events)
                    .map(|i| {
                        if i % 2 == 0 {
                            exec(i, "sh", "/usr/bin/env")
                        } else {
                            exit(i, 0)
                        }
                    })
                    .collect();
                sim.publish(&format!("edge/{d}/events"), batch(d, *seq, evs, &[]), false);
            }
            n += 1;
            if n.is_multiple_of(devices.len() as u64) {
                *seq += 1;
            }
        }
        store_max = store_max.max(store.load(Relaxed));
        if let Some(rest) = slice.checked_sub(tick.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    let published = sim.sent() - sent_before;
    let pub_secs = start.elapsed().as_secs_f64();
    let stop = Instant::now();
    let deadline = stop + Duration::from_secs(120);
    while hub.taken() < before + published && Instant::now() < deadline {
        store_max = store_max.max(store.load(Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    let drain_s = stop.elapsed().as_secs_f64();
    let taken = hub.taken() - before;
    let (rss, _, cpu1) = proc_stats(hub.pid());
    let total = start.elapsed().as_secs_f64();
    Step {
        offered: rate,
        published_rate: published as f64 / pub_secs,
        taken_rate: taken as f64 / total,
        drain_s,
        store_start,
        store_max,
        cpu_percent: (cpu1 - cpu0) * 100.0 / total,
        rss_kib: rss,
    }
}

fn print_steps(name: &str, steps: &[Step]) {
    println!("\n{name}");
    println!(
        "offered/s  published/s  taken/s  drain_s  broker_store(start->max)  hub_cpu%  hub_VmRSS_MiB"
    );
    for s in steps {
        println!(
            "{:>9}  {:>11.0}  {:>7.0}  {:>7.2}  {:>10} -> {:<10}  {:>8.0}  {:>13.1}",
            s.offered,
            s.published_rate,
            s.taken_rate,
            s.drain_s,
            s.store_start,
            s.store_max,
            s.cpu_percent,
            s.rss_kib as f64 / 1024.0
        );
    }
}

#[test]
#[ignore = "a benchmark: scripts/bench-hub.sh runs it in release mode"]
fn bench_hub_serve_against_json_baseline() {
    let n_devices: usize = env_or("BENCH_DEVICES", 1000);
    let secs: u64 = env_or("BENCH_SECONDS", 8);
    let events: u32 = env_or("BENCH_EVENTS", 4);
    let rates: Vec<u64> = std::env::var("BENCH_RATES")
        .unwrap_or_else(|_| "1000,2500,5000,10000,20000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let devices: Vec<String> = (0..n_devices).map(|i| format!("pi-{i:04}")).collect();
    println!(
        "bench: {n_devices} devices, {events} events per batch, 1 message in 10 a metrics sample, {secs} s per rate"
    );

    for mode in ["serve", "json"] {
        let broker = PrivateBroker::start_with(
            "sys_interval 1\nmax_queued_messages 0\nmax_inflight_messages 100\n",
        )
        .expect("mosquitto");
        let store = broker_store(broker.port);
        let dir = tempfile::tempdir().expect("tempdir");
        let hub = if mode == "serve" {
            Hub::Serve(ServeHub::start(
                &broker.url(),
                dir.path(),
                &["--no-bridge", "--flush-ms", "250"],
            ))
        } else {
            let proc = Proc::spawn(Command::new(common::hub_bin()).args([
                "--broker",
                &broker.url(),
                "--json",
                "--totals-every",
                "0.2",
            ]));
            proc.wait_for("subscribed", |l| l.contains("\"subscribed\""));
            Hub::Json {
                proc,
                taken: AtomicU64::new(0),
            }
        };
        let mut sim = Publisher::connect(broker.port, "bench-sim");
        for d in &devices {
            sim.publish(&format!("edge/{d}/status"), birth(d, 1), true);
        }
        sim.wait_acked(Duration::from_secs(60));
        let (rss_idle, _, _) = proc_stats(hub.pid());
        let mut load = Load {
            sim,
            store,
            devices: devices.clone(),
            seq: 0,
            secs,
            events,
        };
        let steps: Vec<Step> = rates.iter().map(|&r| step(&hub, &mut load, r)).collect();
        let (_, hwm, _) = proc_stats(hub.pid());
        print_steps(
            &format!(
                "== hub {mode} (VmRSS after the births {:.1} MiB, peak VmHWM {:.1} MiB)",
                rss_idle as f64 / 1024.0,
                hwm as f64 / 1024.0
            ),
            &steps,
        );
        if let Hub::Serve(h) = &hub {
            serve_figures(h, dir.path(), n_devices);
        }
    }
}

fn serve_figures(hub: &ServeHub, dir: &std::path::Path, n_devices: usize) {
    std::thread::sleep(Duration::from_secs(1));
    let page = hub.get("/metrics").text();
    let value = |k: &str| {
        page.lines()
            .find_map(|l| l.strip_prefix(k)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let events: f64 = hub
        .get("/api/devices")
        .json()
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["events"].as_f64()).sum())
        .unwrap_or(0.0);
    let bytes = value("edge_hub_history_bytes ");
    let files: u64 = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0);
    println!(
        "\nhistory: {events:.0} events stored, {:.1} MB in use ({:.1} B per event, metrics samples and status included); files on disk {:.1} MB (with the WAL)",
        bytes / 1e6,
        bytes / events.max(1.0),
        files as f64 / 1e6
    );
    let t = Instant::now();
    let r = hub.get("/");
    println!(
        "fleet page: {} devices, {} KB of HTML, served in {:.1} ms (plain HTTP GET)",
        n_devices,
        r.body.len() / 1024,
        t.elapsed().as_secs_f64() * 1000.0
    );
    let b = Browser::start();
    let mut loads = Vec::new();
    for _ in 0..5 {
        b.goto(&format!("{}/", hub.url));
        let v = b.eval(
            "const n = performance.getEntriesByType('navigation')[0]; \
             return [n.responseEnd - n.requestStart, n.domContentLoadedEventEnd, n.loadEventEnd, document.querySelectorAll('#fleet-rows tr').length]",
        );
        loads.push((
            v[0].as_f64().unwrap_or(0.0),
            v[1].as_f64().unwrap_or(0.0),
            v[2].as_f64().unwrap_or(0.0),
            v[3].as_u64().unwrap_or(0),
        ));
    }
    loads.sort_by(|a, b| a.2.total_cmp(&b.2));
    let m = loads[loads.len() / 2];
    println!(
        "fleet page in headless Chromium (median of 5): response {:.0} ms, DOMContentLoaded {:.0} ms, load {:.0} ms, {} rows",
        m.0, m.1, m.2, m.3
    );
    b.screenshot(&serve_kit::artefacts(), "fleet-1000");
}
