//! Unit tests of rendering: device strings cannot forge lines or colours in text mode (escaped
//! control characters), duplicates and commands print nothing, JSON keeps the raw strings.

use edge_wire::{
    AttachMethod, Bind, Birth, DropCount, Event, EventBatch, Exec, Exit, ExitHow, Message,
    ProbeInfo, ProbeState, QueueInfo, RingBufferInfo, SockAddr, Task, bounded,
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
