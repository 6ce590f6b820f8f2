//! Pipeline benchmark on the real kernel (run as root): `cargo bench -p firmware-agent`.
//! Drives a bind() loop as fast as one thread can, and measures at a subscriber what the
//! agent (pinned to one CPU) delivers: events per second from ring buffer to decoded batch,
//! drops, bytes per event on the wire against serde_json, and the agent's VmRSS and CPU idle
//! and under load. Reports figures; asserts nothing about speed.

use std::{
    net::UdpSocket,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use edge_hub::testkit::PrivateBroker;
use edge_wire::{Event, Message, decode};
use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS};

const BINDS: u64 = 200_000;

#[derive(Default)]
struct Seen {
    events: AtomicU64,
    ours: AtomicU64,
    drops: AtomicU64,
    postcard_bytes: AtomicU64,
    json_bytes: AtomicU64,
    batches: AtomicU64,
}

fn proc_field(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // SAFETY: no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the pipeline bench loads eBPF programs: run as root"
    );
    let broker = PrivateBroker::start().expect("mosquitto");
    let device = format!("bench-{}", std::process::id());
    let dir = std::env::temp_dir().join(&device);
    std::fs::create_dir_all(&dir).expect("dir");
    let cfg = dir.join("agent.toml");
    std::fs::write(&cfg, "[ring_buffers]\nwatch_events = 4194304\n[metrics]\ninterval_s = 0\n[queue]\nram_bytes = 268435456\n").expect("cfg");

    let seen = Arc::new(Seen::default());
    let me = std::process::id();
    let mut opts = MqttOptions::new(format!("bench-sub-{me}"), "127.0.0.1", broker.port);
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut conn) = Client::new(opts, 1024);
    client
        .subscribe(format!("edge/{device}/#"), QoS::AtLeastOnce)
        .expect("subscribe");
    let s2 = seen.clone();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            let Ok(MqttEvent::Incoming(Packet::Publish(p))) = ev else {
                continue;
            };
            let Ok(msg) = decode(&p.payload) else {
                continue;
            };
            if let Message::Events(b) = &msg {
                s2.batches.fetch_add(1, Ordering::Relaxed);
                s2.postcard_bytes
                    .fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                s2.json_bytes.fetch_add(
                    serde_json::to_vec(&msg)
                        .map(|v| v.len() as u64)
                        .unwrap_or(0),
                    Ordering::Relaxed,
                );
                s2.events
                    .fetch_add(b.events.len() as u64, Ordering::Relaxed);
                s2.drops
                    .fetch_add(b.drops.iter().map(|d| d.count).sum(), Ordering::Relaxed);
                let ours = b
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::Bind(x) if x.task.tgid == me))
                    .count();
                s2.ours.fetch_add(ours as u64, Ordering::Relaxed);
            }
        }
    });

    // The agent on CPU 0, the load on CPU 1.
    let mut agent: Child = Command::new("taskset")
        .args(["-c", "0", env!("CARGO_BIN_EXE_firmware-agent"), "--config"])
        .arg(&cfg)
        .args(["--card-config", "/nonexistent"])
        .env("FIRMWARE_AGENT_BROKER_URL", broker.url())
        .env("FIRMWARE_AGENT_DEVICE_ID", &device)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("agent (taskset from util-linux)");
    let pid = agent.id();
    std::thread::sleep(Duration::from_secs(3));
    let rss_idle = proc_field(pid, "VmRSS:");
    let t0 = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(10));
    let idle_ticks = cpu_ticks(pid) - t0;
    // SAFETY: no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;

    // SAFETY: pins this thread to CPU 1 with a valid cpu_set_t.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(1, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
    let before = seen.ours.load(Ordering::Relaxed);
    let start = Instant::now();
    let cpu_start = cpu_ticks(pid);
    for _ in 0..BINDS {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        drop(s);
    }
    let load_secs = start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.ours.load(Ordering::Relaxed) - before + seen.drops.load(Ordering::Relaxed) < BINDS
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivered_secs = start.elapsed().as_secs_f64();
    let busy_ticks = cpu_ticks(pid) - cpu_start;
    let rss_load = proc_field(pid, "VmRSS:");
    let hwm = proc_field(pid, "VmHWM:");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let _ = agent.wait();

    let ours = seen.ours.load(Ordering::Relaxed) - before;
    let events = seen.events.load(Ordering::Relaxed).max(1);
    println!(
        "pipeline bench ({BINDS} bind() calls from one thread on CPU 1; agent pinned to CPU 0)"
    );
    println!(
        "  delivered {ours} of our binds, {} drops, in {delivered_secs:.2} s (load loop took {load_secs:.2} s)",
        seen.drops.load(Ordering::Relaxed)
    );
    println!(
        "  throughput: {:.0} events/s ring buffer -> decoded batch at the subscriber",
        ours as f64 / delivered_secs
    );
    println!(
        "  agent CPU under load: {:.0}% of one core",
        busy_ticks as f64 / hz / delivered_secs * 100.0
    );
    println!(
        "  agent idle CPU: {:.2}% of one core over 10 s",
        idle_ticks as f64 / hz / 10.0 * 100.0
    );
    println!(
        "  agent VmRSS: idle {rss_idle} KiB, after load {rss_load} KiB, peak (VmHWM) {hwm} KiB"
    );
    println!(
        "  wire: {:.1} bytes/event postcard vs {:.1} bytes/event serde_json ({} batches, {events} events)",
        seen.postcard_bytes.load(Ordering::Relaxed) as f64 / events as f64,
        seen.json_bytes.load(Ordering::Relaxed) as f64 / events as f64,
        seen.batches.load(Ordering::Relaxed)
    );
}
