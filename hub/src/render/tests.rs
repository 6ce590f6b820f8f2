//! Unit tests of rendering: device strings cannot forge lines or colours in text mode (escaped
//! control characters), duplicates and commands print nothing, JSON keeps the raw strings;
//! metrics show board health (flags now vs since boot, nothing invented) and the top-N lists.

use edge_wire::{
    AttachMethod, Bind, Birth, CpuFreq, DropCount, Event, EventBatch, Exec, Exit, ExitHow, Fan,
    Message, ProbeInfo, ProbeState, ProcUse, QueueInfo, RingBufferInfo, SockAddr, Task, Throttled,
    ZoneTemp, bounded,
};

use super::*;
use crate::Rejection;

fn task(comm: &str) -> Task {
    Task {
        pid: 11,
        tgid: 10,
        comm: bounded(comm),
    }
}

fn accepted(message: Message) -> Outcome {
    Outcome::Accepted {
        device: "pi1".into(),
        message,
        gap: None,
    }
}

fn hostile_batch() -> EventBatch {
    EventBatch {
        device: bounded("pi1"),
        boot_id: bounded("b"),
        run_id: 7,
        seq: 3,
        unix_ms: 10_000,
        mono_ns: 1,
        drops: vec![DropCount {
            source: bounded("ring:\x1b[2J"),
            count: 2,
        }],
        events: vec![
            Event::Exec(Exec {
                age_us: 2000,
                task: task("a\nb\x1b[31m"),
                ppid: 1,
                filename: bounded("/tmp/x\r\nFAKE ONLINE"),
                truncated: false,
            }),
            Event::Bind(Bind {
                age_us: 0,
                task: task("ok"),
                fd: 3,
                ret: i32::MIN,
                addr: SockAddr::Unix {
                    path: bounded("@\u{9b}31m\u{7}"),
                },
            }),
            Event::Exit(Exit {
                age_us: 0,
                task: task("sh"),
                ppid: 0,
                how: ExitHow::Signal(11),
            }),
        ],
    }
}

#[test]
fn device_strings_are_escaped_in_text() {
    let lines = text(&accepted(Message::Events(hostile_batch())));
    assert_eq!(
        lines,
        vec![
            "pi1 DROPS ring:\\x1b[2J: 2",
            "pi1 [10] a\\nb\\x1b[31m exec /tmp/x\\r\\nFAKE ONLINE (ppid 1)",
            "pi1 [10] ok bind unix:@\\u{9b}31m\\x07 fd 3 -> errno 2147483648",
            "pi1 [10] sh exit KILLED by signal 11 (ppid 0)",
        ]
    );
    for l in &lines {
        assert!(!l.chars().any(char::is_control), "{l:?}");
    }
}

#[test]
fn birth_and_rejection_lines_are_escaped() {
    let birth = Birth {
        device: bounded("pi1"),
        boot_id: bounded("b"),
        session: 2,
        run_id: 0xabc,
        unix_ms: 1,
        agent_version: bounded("0.2.0\x1b]0;title\x07"),
        schema_version: 2,
        kernel_release: bounded("6.12"),
        arch: bounded("aarch64"),
        page_size: 16384,
        kernel_btf: false,
        ring_buffers: vec![RingBufferInfo {
            name: bounded("WATCH_EVENTS"),
            requested: 4096,
            chosen: 16384,
            transport: edge_wire::RingTransport::RingBuf,
        }],
        probes: vec![ProbeInfo {
            name: bounded("bind\n"),
            tracepoint: bounded("syscalls:sys_enter_bind"),
            state: ProbeState::Skipped {
                reason: bounded("no\ttracepoint"),
            },
            method: AttachMethod::Tracepoint,
        }],
        queue: QueueInfo {
            ram_bytes: 1024,
            spool_bytes: 0,
        },
    };
    assert_eq!(
        text(&accepted(Message::Online(birth))),
        vec![
            "pi1 ONLINE agent 0.2.0\\x1b]0;title\\x07 schema 2 kernel 6.12 aarch64 page 16384 BTF no session 2 run 0000000000000abc queue ram 1024 B spool 0 B; rings WATCH_EVENTS=4096->16384; probes bind\\n=SKIPPED(no\\ttracepoint)"
        ]
    );
    let rejected = Outcome::Rejected {
        topic: "edge/x\x1b[1m/events".into(),
        kind: Rejection::WrongDevice,
        reason: "payload says device a\nb, topic says x".into(),
        total: 1,
    };
    assert_eq!(
        text(&rejected),
        vec![
            "REJECTED edge/x\\x1b[1m/events: payload says device a\\nb, topic says x (rejected so far: 1)"
        ]
    );
}

#[test]
fn duplicates_and_commands_print_nothing_in_text_and_one_record_in_json() {
    let dup = Outcome::Duplicate {
        device: "pi1".into(),
        boot_id: "b".into(),
        run_id: 7,
        seq: 3,
    };
    assert!(text(&dup).is_empty());
    assert_eq!(
        json(&dup),
        vec![
            serde_json::json!({"type": "duplicate", "device": "pi1", "boot_id": "b", "run_id": 7, "seq": 3})
        ]
    );
    let cmd = Outcome::Ignored {
        topic: "edge/pi1/cmd/rebirth".into(),
    };
    assert!(text(&cmd).is_empty() && json(&cmd).is_empty());
}

#[test]
fn json_keeps_raw_strings_and_names_the_stream() {
    let records = json(&accepted(Message::Events(hostile_batch())));
    assert_eq!(records.len(), 4);
    assert_eq!(
        records[0],
        serde_json::json!({"type": "drops", "device": "pi1", "boot_id": "b", "run_id": 7, "seq": 3, "source": "ring:\u{1b}[2J", "count": 2})
    );
    assert_eq!(
        records[1]["event"]["Exec"]["task"]["comm"],
        "a\nb\u{1b}[31m"
    );
    assert_eq!(
        (
            records[1]["run_id"].as_u64(),
            records[1]["unix_ms"].as_u64()
        ),
        (Some(7), Some(9_998))
    );
    let line = records[1].to_string();
    assert!(line.contains("a\\nb\\u001b[31m"), "{line}");
    assert!(!line.chars().any(char::is_control), "{line}");
}

fn metrics(board: edge_wire::BoardHealth, top_cpu: Vec<ProcUse>, top_mem: Vec<ProcUse>) -> Message {
    Message::Metrics(edge_wire::Metrics {
        device: bounded("pi1"),
        boot_id: bounded("b"),
        unix_ms: 1,
        uptime_s: 60,
        cpu_percent: 12.5,
        mem_total_kib: 4 * 1024 * 1024,
        mem_used_kib: 1024 * 1024,
        load: [0.5, 0.25, 0.0],
        temperatures: vec![],
        agent: edge_wire::AgentStats {
            rss_kib: 6000,
            ..Default::default()
        },
        board,
        top_cpu,
        top_mem,
    })
}

fn proc_use(pid: u32, comm: &str, cpu_permille: u32, rss_kib: u64) -> ProcUse {
    ProcUse {
        pid,
        comm: bounded(comm),
        cpu_permille,
        rss_kib,
    }
}

fn throttled_pi5() -> edge_wire::BoardHealth {
    edge_wire::BoardHealth {
        temperatures: vec![ZoneTemp {
            zone: bounded("cpu-thermal"),
            millicelsius: 85_250,
        }],
        cpu_freqs: vec![CpuFreq {
            policy: 0,
            cur_khz: 1_500_000,
            max_khz: Some(2_400_000),
        }],
        throttled: Some(Throttled::from_raw(0x5_0005)),
        under_voltage_alarm: Some(true),
        fans: vec![Fan {
            name: bounded("pwmfan"),
            rpm: Some(4975),
            pwm: Some(250),
            state: Some(4),
            max_state: Some(4),
        }],
    }
}

#[test]
fn metrics_show_board_health_and_the_top_lists() {
    let m = metrics(
        throttled_pi5(),
        vec![
            proc_use(4242, "nginx", 975, 20_480),
            proc_use(7, "sh", 3, 900),
        ],
        vec![proc_use(880, "postgres", 12, 262_144)],
    );
    assert_eq!(
        text(&accepted(m)),
        vec![
            "pi1 metrics: cpu 12.5% mem 1024/4096 MiB load 0.50 0.25 0.00 up 60s agent rss 6000 KiB events 0 batches 0 queued 0 (0 B, 0 B spooled) drops none; board cpu-thermal 85.2C, policy0 1500/2400 MHz, fan pwmfan 4975 rpm pwm 250 state 4/4, throttled=0x50005 UNDERVOLT THROTTLED",
            "pi1 top cpu: [4242] nginx 97.5%, [7] sh 0.3%",
            "pi1 top mem: [880] postgres 256.0 MiB",
        ]
    );
}

#[test]
fn past_throttling_is_told_apart_from_now_and_missing_sensors_are_not_invented() {
    let mut b = edge_wire::BoardHealth {
        throttled: Some(Throttled::from_raw(0xe_0000)),
        under_voltage_alarm: Some(false),
        ..Default::default()
    };
    let line = |b: &edge_wire::BoardHealth| {
        text(&accepted(metrics(b.clone(), vec![], vec![])))
            .pop()
            .expect("a line")
    };
    assert!(
        line(&b).ends_with(
            "; board throttled=0xe0000 (since boot: freq-capped throttled soft-temp-limit)"
        ),
        "{}",
        line(&b)
    );
    b.throttled = Some(Throttled::from_raw(0));
    assert!(line(&b).ends_with("; board throttled=0x0"), "{}", line(&b));
    // The rpi_volt alarm alone (no get_throttled) still says UNDERVOLT.
    b.throttled = None;
    b.under_voltage_alarm = Some(true);
    assert!(line(&b).ends_with("; board UNDERVOLT"), "{}", line(&b));
    let lines = text(&accepted(metrics(Default::default(), vec![], vec![])));
    assert_eq!(lines.len(), 1, "no top lines for empty lists");
    assert!(lines[0].ends_with("; board no sensors"), "{}", lines[0]);
}

#[test]
fn process_names_in_top_lists_are_escaped_and_json_keeps_them_raw() {
    let m = metrics(
        Default::default(),
        vec![proc_use(66, "x\x1b[2J\nFAKE", 1000, 4)],
        vec![],
    );
    assert_eq!(
        text(&accepted(m.clone()))[1],
        "pi1 top cpu: [66] x\\x1b[2J\\nFAKE 100.0%"
    );
    let mut with_board = m;
    if let Message::Metrics(x) = &mut with_board {
        x.board = throttled_pi5();
    }
    let records = json(&accepted(with_board));
    let body = &records[0]["body"];
    assert_eq!(body["top_cpu"][0]["comm"], "x\u{1b}[2J\nFAKE");
    assert_eq!(body["top_cpu"][0]["cpu_permille"], 1000);
    assert_eq!(body["board"]["throttled"]["raw"], 0x5_0005);
    assert_eq!(body["board"]["throttled"]["now"]["under_voltage"], true);
    assert_eq!(body["board"]["throttled"]["since_boot"]["throttled"], true);
    assert_eq!(body["board"]["under_voltage_alarm"], true);
    assert_eq!(body["board"]["temperatures"][0]["millicelsius"], 85_250);
    assert_eq!(body["board"]["fans"][0]["rpm"], 4975);
}

#[test]
fn streamed_json_records_equal_the_value_records() {
    let outcome = Outcome::Accepted {
        device: "pi1".into(),
        message: Message::Events(hostile_batch()),
        gap: Some(Gap {
            expected: 2,
            got: 5,
            lost: 3,
        }),
    };
    let mut out = Vec::new();
    write_json(&outcome, &mut out).expect("write");
    let streamed: Vec<Value> = String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record per line"))
        .collect();
    // gap, drops, then the exec, bind and exit records
    assert_eq!(streamed.len(), 5);
    assert_eq!(
        streamed[3]["event"]["Bind"]["address"],
        "unix:@\u{9b}31m\u{7}"
    );
    assert_eq!(streamed, json(&outcome));
}
