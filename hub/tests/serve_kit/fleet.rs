//! A simulated fleet for the `hub serve` tests and the benchmark: schema-2 payloads built with
//! `edge_wire` (births, deaths, metrics samples, event batches), and a publisher on one MQTT
//! connection (rumqttc's blocking client, QoS 1) that counts the broker's acknowledgements.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use edge_wire::{
    AgentStats, Birth, Death, DeathCause, DropCount, Event, EventBatch, Exec, Exit, ExitHow,
    Message, Metrics, ProbeInfo, ProbeState, QueueInfo, RingBufferInfo, Task, Temperature, bounded,
    encode,
};
use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS};

pub const BOOT: &str = "boot-1";
/// Wall clock of the simulated batches: 2026-03-01T12:00:00Z.
pub const T0_MS: u64 = 1_772_366_400_000;

pub fn birth(device: &str, session: u32) -> Vec<u8> {
    encode(&Message::Online(birth_of(device, session))).expect("encode birth")
}

/// The birth [`birth`] encodes, for a test to change before encoding.
pub fn birth_of(device: &str, session: u32) -> Birth {
    Birth {
        device: bounded(device),
        boot_id: bounded(BOOT),
        session,
        run_id: 77,
        unix_ms: T0_MS,
        agent_version: bounded("0.1.0"),
        schema_version: edge_wire::SCHEMA_VERSION,
        kernel_release: bounded("6.12.25-v8-16k+"),
        arch: bounded("aarch64"),
        page_size: 16384,
        kernel_btf: false,
        ring_buffers: vec![RingBufferInfo {
            name: bounded("PROC_EVENTS"),
            requested: 4096,
            chosen: 16384,
            transport: edge_wire::RingTransport::RingBuf,
        }],
        probes: vec![
            ProbeInfo {
                name: bounded("exec"),
                tracepoint: bounded("sched:sched_process_exec"),
                state: ProbeState::Attached,
                method: edge_wire::AttachMethod::Tracepoint,
            },
            ProbeInfo {
                name: bounded("bind_exit"),
                tracepoint: bounded("syscalls:sys_exit_bind"),
                state: ProbeState::Skipped {
                    reason: bounded("tracepoint not found"),
                },
                method: edge_wire::AttachMethod::Tracepoint,
            },
        ],
        queue: QueueInfo {
            ram_bytes: 262_144,
            spool_bytes: 0,
        },
    }
}

pub fn death(device: &str, session: u32) -> Vec<u8> {
    encode(&Message::Offline(Death {
        device: bounded(device),
        boot_id: bounded(BOOT),
        session,
        cause: DeathCause::Shutdown,
    }))
    .expect("encode death")
}

pub fn metrics(device: &str, at_ms: u64, cpu: f32, celsius: f32) -> Vec<u8> {
    encode(&Message::Metrics(Metrics {
        device: bounded(device),
        boot_id: bounded(BOOT),
        unix_ms: at_ms,
        uptime_s: 3600,
        cpu_percent: cpu,
        mem_total_kib: 8_000_000,
        mem_used_kib: 2_000_000,
        load: [0.5, 0.25, 0.125],
        temperatures: vec![Temperature {
            label: bounded("cpu_thermal"),
            celsius,
        }],
        agent: AgentStats {
            rss_kib: 6144,
            events: 1000,
            batches: 10,
            drops: vec![DropCount {
                source: bounded("ring:exec"),
                count: 4,
            }],
            ..AgentStats::default()
        },
        board: Default::default(),
        top_cpu: vec![],
        top_mem: vec![],
    }))
    .expect("encode metrics")
}

pub fn task(pid: u32, comm: &str) -> Task {
    Task {
        pid,
        tgid: pid,
        comm: bounded(comm),
    }
}

pub fn exec(pid: u32, comm: &str, filename: &str) -> Event {
    Event::Exec(Exec {
        age_us: 0,
        task: task(pid, comm),
        ppid: 1,
        filename: bounded(filename),
        truncated: false,
    })
}

pub fn exit(pid: u32, code: i32) -> Event {
    Event::Exit(Exit {
        age_us: 0,
        task: task(pid, "worker"),
        ppid: 1,
        how: ExitHow::Code(code),
    })
}

/// Batch `seq` of run 77 with `events`, closed at `T0_MS + seq` seconds.
pub fn batch(device: &str, seq: u32, events: Vec<Event>, drops: &[(&str, u64)]) -> Vec<u8> {
    encode(&Message::Events(EventBatch {
        device: bounded(device),
        boot_id: bounded(BOOT),
        run_id: 77,
        seq,
        unix_ms: T0_MS + u64::from(seq) * 1000,
        mono_ns: u64::from(seq) * 1_000_000_000,
        drops: drops
            .iter()
            .map(|&(s, count)| DropCount {
                source: bounded(s),
                count,
            })
            .collect(),
        events,
    }))
    .expect("encode batch")
}

/// One MQTT connection publishing at QoS 1; acknowledgements are counted by its thread.
pub struct Publisher {
    client: Client,
    acked: Arc<AtomicU64>,
    sent: u64,
}

impl Publisher {
    pub fn connect(port: u16, id: &str) -> Self {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_keep_alive(Duration::from_secs(30));
        opts.set_inflight(200);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut conn) = Client::new(opts, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let count = acked.clone();
        std::thread::spawn(move || {
            for ev in conn.iter() {
                match ev {
                    Ok(MqttEvent::Incoming(Packet::PubAck(_))) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        });
        Self {
            client,
            acked,
            sent: 0,
        }
    }

    pub fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.client
            .publish(topic, QoS::AtLeastOnce, retain, payload)
            .expect("publish");
        self.sent += 1;
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Waits until the broker acknowledged everything published so far.
    pub fn wait_acked(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.acked.load(Ordering::Relaxed) < self.sent {
            assert!(
                Instant::now() < deadline,
                "broker acknowledged {} of {} messages",
                self.acked.load(Ordering::Relaxed),
                self.sent
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
