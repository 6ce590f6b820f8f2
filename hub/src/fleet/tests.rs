//! Unit tests of the fleet model: status from births and deaths (a stale will ignored), last
//! seen only from live messages, the table's columns from the birth and the metrics, and
//! counts that carry over a restart through the saved state.

use edge_wire::{
    AgentStats, Birth, Death, DeathCause, Event, EventBatch, Exit, ExitHow, Message, Metrics,
    ProbeInfo, ProbeState, QueueInfo, Task, Temperature, bounded, encode,
};
use serde_json::json;

use super::*;
use crate::Hub;

fn birth(session: u32) -> Vec<u8> {
    encode(&Message::Online(Birth {
        device: bounded("pi1"),
        boot_id: bounded("b1"),
        session,
        run_id: 9,
        unix_ms: 1,
        agent_version: bounded("0.1.0"),
        schema_version: 2,
        kernel_release: bounded("6.12.0-rpi-2712"),
        arch: bounded("aarch64"),
        page_size: 16384,
        kernel_btf: false,
        ring_buffers: vec![],
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
                    reason: bounded("not found"),
                },
                method: edge_wire::AttachMethod::Tracepoint,
            },
        ],
        queue: QueueInfo {
            ram_bytes: 1,
            spool_bytes: 0,
        },
    }))
    .expect("encode")
}

fn death(session: u32) -> Vec<u8> {
    encode(&Message::Offline(Death {
        device: bounded("pi1"),
        boot_id: bounded("b1"),
        session,
        cause: DeathCause::ConnectionLost,
    }))
    .expect("encode")
}

fn metrics() -> Vec<u8> {
    encode(&Message::Metrics(Metrics {
        device: bounded("pi1"),
        boot_id: bounded("b1"),
        unix_ms: 5,
        uptime_s: 60,
        cpu_percent: 12.5,
        mem_total_kib: 4_000_000,
        mem_used_kib: 1_000_000,
        load: [0.5, 0.25, 0.125],
        temperatures: vec![
            Temperature {
                label: bounded("cpu_thermal"),
                celsius: 51.5,
            },
            Temperature {
                label: bounded("rp1_adc"),
                celsius: 40.0,
            },
        ],
        agent: AgentStats {
            rss_kib: 7000,
            ..AgentStats::default()
        },
        board: Default::default(),
        top_cpu: vec![],
        top_mem: vec![],
    }))
    .expect("encode")
}

fn exits(seq: u32, n: usize) -> Vec<u8> {
    exits_of("pi1", seq, n)
}

fn exits_of(device: &str, seq: u32, n: usize) -> Vec<u8> {
    let ev = Event::Exit(Exit {
        age_us: 0,
        task: Task {
            pid: 1,
            tgid: 1,
            comm: bounded("sh"),
        },
        ppid: 0,
        how: ExitHow::Code(0),
    });
    encode(&Message::Events(EventBatch {
        device: bounded(device),
        boot_id: bounded("b1"),
        run_id: 9,
        seq,
        unix_ms: 5,
        mono_ns: 1,
        drops: vec![edge_wire::DropCount {
            source: bounded("queue"),
            count: 2,
        }],
        events: vec![ev; n],
    }))
    .expect("encode")
}

fn feed(
    hub: &mut Hub,
    fleet: &mut Fleet,
    leaf: &str,
    payload: &[u8],
    now: i64,
    retained: bool,
) -> Option<StatusChange> {
    let outcome = hub.handle(&format!("edge/pi1/{leaf}"), payload);
    let (records, _) = crate::store::rows_of(&outcome, now);
    fleet.apply(&outcome, &records, &hub.totals, now, retained)
}

#[test]
fn status_follows_births_and_deaths_but_not_stale_wills() {
    let (mut hub, mut fleet) = (Hub::new("edge"), Fleet::new());
    assert_eq!(
        feed(&mut hub, &mut fleet, "status", &birth(2), 100, true),
        Some(StatusChange::Online)
    );
    let v = DeviceView::of(fleet.device("pi1").expect("pi1"), 1100);
    assert_eq!(
        (
            v.status,
            v.status_since_ms,
            v.last_seen_ms,
            v.last_seen_age_s
        ),
        ("online", 100, 0, None)
    );
    assert_eq!(
        (
            v.kernel.as_deref(),
            v.page_size,
            v.btf,
            v.probe_summary().as_str()
        ),
        (
            Some("6.12.0-rpi-2712"),
            Some(16384),
            Some(false),
            "attached 1 / skipped 1"
        )
    );
    assert_eq!(v.probes[1].reason.as_deref(), Some("not found"));
    assert_eq!(
        feed(&mut hub, &mut fleet, "status", &death(1), 200, false),
        Some(StatusChange::StaleWill {
            session: 1,
            current: 2
        })
    );
    assert_eq!(fleet.device("pi1").map(|d| d.online), Some(Some(true)));
    assert_eq!(
        feed(&mut hub, &mut fleet, "status", &death(2), 300, false),
        Some(StatusChange::Offline {
            cause: "ConnectionLost".into()
        })
    );
    let v = DeviceView::of(fleet.device("pi1").expect("pi1"), 1300);
    assert_eq!(
        (
            v.status,
            v.status_since_ms,
            v.last_seen_ms,
            v.last_seen_age_s
        ),
        ("offline", 300, 300, Some(1.0))
    );
    assert_eq!(v.offline_cause.as_deref(), Some("ConnectionLost"));
}

#[test]
fn metrics_fill_the_columns() {
    let (mut hub, mut fleet) = (Hub::new("edge"), Fleet::new());
    feed(&mut hub, &mut fleet, "metrics", &metrics(), 10, false);
    let v = DeviceView::of(fleet.device("pi1").expect("pi1"), 10);
    assert_eq!(v.status, "unknown");
    assert_eq!(
        (v.cpu_percent, v.mem_used_kib, v.mem_total_kib),
        (Some(12.5), Some(1_000_000), Some(4_000_000))
    );
    assert_eq!(
        (v.load, v.temperature_c, v.agent_rss_kib),
        (Some([0.5, 0.25, 0.125]), Some(51.5), Some(7000))
    );
    assert_eq!(v.throttled, None);
}

#[test]
fn counts_carry_over_a_restart_through_the_saved_state() {
    let (mut hub, mut fleet) = (Hub::new("edge"), Fleet::new());
    feed(&mut hub, &mut fleet, "events", &exits(0, 3), 10, false);
    feed(&mut hub, &mut fleet, "events", &exits(0, 3), 11, false);
    feed(&mut hub, &mut fleet, "events", &exits(2, 1), 12, false);
    let saved = fleet.take_dirty();
    assert_eq!(saved.len(), 1);
    assert!(fleet.take_dirty().is_empty());
    let st = fleet.device("pi1").expect("pi1");
    assert_eq!(
        (st.events, st.missing_batches, st.duplicate_batches),
        (4, 1, 1)
    );
    assert_eq!(st.events_by_kind, [("exit".to_owned(), 4)].into());

    // A new hub run: its totals start at zero and add to the saved ones.
    let (mut hub, mut fleet) = (Hub::new("edge"), Fleet::load(saved));
    assert_eq!(fleet.version(), 0);
    feed(&mut hub, &mut fleet, "events", &exits(3, 2), 20, false);
    let v = DeviceView::of(fleet.device("pi1").expect("pi1"), 20);
    assert_eq!(
        (
            v.events,
            v.missing_batches,
            v.duplicate_batches,
            v.drops_total
        ),
        (6, 1, 1, 2),
        "every batch says the run lost 2 so far: the total is 2, before and after the restart"
    );
    assert_eq!(v.events_by_kind, [("exit".to_owned(), 6)].into());
    assert_eq!(fleet.changed_since(0).count(), 1);
    assert_eq!(fleet.changed_since(fleet.version()).count(), 0);
    // A state that does not parse starts empty rather than failing the start.
    let fleet = Fleet::load(vec![("pi9".into(), json!({"events": "many"}))]);
    assert_eq!(fleet.device("pi9").map(|d| d.events), Some(0));
}

#[test]
fn a_forgotten_device_leaves_the_fleet_and_comes_back_from_nothing() {
    let (mut hub, mut fleet) = (Hub::new("edge"), Fleet::new());
    feed(&mut hub, &mut fleet, "status", &birth(2), 10, false);
    feed(&mut hub, &mut fleet, "events", &exits(0, 3), 11, false);
    let before = fleet.version();
    assert!(fleet.forget("pi1") && hub.totals.forget("pi1"));
    assert_eq!((fleet.len(), fleet.version()), (0, before + 1));
    assert!(
        fleet.take_dirty().is_empty(),
        "nothing of it is saved again"
    );
    assert!(!fleet.forget("pi1"), "forgetting twice changes nothing");
    assert_eq!(fleet.version(), before + 1);
    // A table made before the forget is told; one made after it is not.
    assert_eq!(fleet.forgotten_since(before).collect::<Vec<_>>(), ["pi1"]);
    assert_eq!(fleet.forgotten_since(before + 1).count(), 0);
    // It comes back: its counts start again, and the same batch is not a duplicate.
    feed(&mut hub, &mut fleet, "events", &exits(0, 3), 20, false);
    let st = fleet.device("pi1").expect("pi1");
    assert_eq!(
        (st.online, st.events, st.duplicate_batches, st.last_seen_ms),
        (None, 3, 0, 20)
    );
    assert_eq!(fleet.device_version("pi1"), Some(before + 2));
    // A table made before both is told of the forget and of the new row, in that order.
    assert_eq!(fleet.forgotten_since(before).collect::<Vec<_>>(), ["pi1"]);
    assert_eq!(fleet.changed_since(before).count(), 1);
}

#[test]
fn only_the_last_forgotten_devices_are_remembered() {
    let mut fleet = Fleet::new();
    let mut hub = Hub::new("edge");
    for i in 0..FORGOTTEN_KEPT + 2 {
        let d = format!("pi{i}");
        let outcome = hub.handle(&format!("edge/{d}/events"), &exits_of(&d, 0, 1));
        fleet.apply(&outcome, &[], &hub.totals, 1, false);
        assert!(fleet.forget(&d));
    }
    let gone: Vec<&str> = fleet.forgotten_since(0).collect();
    assert_eq!(gone.len(), 4096);
    assert_eq!((gone[0], gone[4095]), ("pi2", "pi4097"));
}
