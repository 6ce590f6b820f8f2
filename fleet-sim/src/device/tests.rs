//! Unit tests of one simulated device: reproducible from its seed, births and wills numbered
//! by session, seqs consecutive per run, outages on its own link and on a shared one, restarts.

use edge_wire::{DeathCause, Message, decode};

use super::*;

fn plan() -> Plan {
    Plan {
        seed: 7,
        id_prefix: "sim".into(),
        tick_ms: 100,
        rate: 20.0,
        batch_ticks: 2,
        batch_max_events: 64,
        metrics_ticks: 10,
        outage_every: None,
        outage_ticks: 5,
        restart_every: None,
        own_link: true,
        mix: Mix {
            crash_chance: 0.05,
            drop_chance: 0.1,
        },
        epoch_ms: 1_764_000_000_000,
    }
}

fn run(plan: &Plan, index: u32, ticks: u64) -> Device {
    let mut d = Device::new(plan, index);
    for t in 0..ticks {
        d.tick(t);
    }
    d
}

/// The messages in the queue, decoded, with the control items as text.
fn items(d: &Device) -> Vec<Result<Message, String>> {
    d.queue
        .iter()
        .map(|o| match o {
            Out::Publish { payload, .. } => Ok(decode(payload).expect("decodes")),
            Out::Connect { at, will } => match decode(will) {
                Ok(Message::Offline(w)) => Err(format!("connect@{at} will session {}", w.session)),
                other => panic!("bad will {other:?}"),
            },
            Out::Drop => Err("drop".into()),
            Out::Disconnect => Err("disconnect".into()),
        })
        .collect()
}

fn births(d: &Device) -> Vec<(u32, u64)> {
    items(d)
        .into_iter()
        .filter_map(|m| match m {
            Ok(Message::Online(b)) => Some((b.session, b.run_id)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_seed_replays_the_same_device() {
    let (a, b) = (run(&plan(), 3, 200), run(&plan(), 3, 200));
    assert_eq!(a.id, "sim-0003");
    assert_eq!(a.queue, b.queue);
    let mut other = plan();
    other.seed = 8;
    assert_ne!(run(&other, 3, 200).queue, a.queue);
    assert_ne!(run(&plan(), 4, 200).queue, a.queue);
}

#[test]
fn starts_with_a_connect_and_a_schema_2_birth_then_consecutive_batches() {
    let d = run(&plan(), 0, 100);
    let all = items(&d);
    assert_eq!(all[0], Err("connect@0 will session 1".into()));
    let Ok(Message::Online(b)) = &all[1] else {
        panic!("{:?}", all[1])
    };
    assert_eq!(
        (b.session, b.schema_version, b.device.as_str()),
        (1, 2, "sim-0000")
    );
    assert_eq!(b.run_id, d.run_id());
    assert_eq!(b.probes.len(), 5);
    assert!(
        b.ring_buffers
            .iter()
            .all(|r| r.chosen >= u64::from(b.page_size))
    );
    let mut seqs = Vec::new();
    let mut events = 0;
    for m in &all {
        if let Ok(Message::Events(batch)) = m {
            seqs.push(batch.seq);
            events += batch.events.len() as u64;
            assert!(batch.events.len() <= 64);
            assert!(!batch.events.is_empty() || !batch.drops.is_empty());
        }
    }
    assert_eq!(seqs, (0..seqs.len() as u32).collect::<Vec<_>>());
    // Drops travel as run totals: never decreasing, and the last batch has them all.
    let mut totals = std::collections::BTreeMap::new();
    let mut reported = 0;
    for m in &all {
        if let Ok(Message::Events(batch)) = m {
            for dc in &batch.drops {
                let before = totals.insert(dc.source.to_string(), dc.count).unwrap_or(0);
                assert!(dc.count >= before, "{dc:?} after {before}");
            }
            reported = batch.drops.iter().map(|d| d.count).sum::<u64>();
        }
    }
    assert!(reported > 0, "drops happen with drop_chance 0.1");
    assert_eq!(reported, totals.values().sum::<u64>());
    // 20 events/s for 10 s: about 200.
    assert!((150..250).contains(&events), "{events}");
    let last_metrics = all.iter().rev().find_map(|m| match m {
        Ok(Message::Metrics(x)) => Some(x.clone()),
        _ => None,
    });
    let m = last_metrics.expect("metrics every second");
    assert!(m.agent.events <= events && m.agent.batches <= seqs.len() as u64);
    assert_eq!(m.temperatures[0].label.as_str(), "cpu_thermal");
    assert!(m.board.throttled.is_some() && !m.board.cpu_freqs.is_empty());
    assert!(!m.top_cpu.is_empty() && m.top_cpu.len() == m.top_mem.len());
}

#[test]
fn an_outage_on_its_own_link_drops_then_reconnects_with_the_next_session() {
    let mut p = plan();
    p.outage_every = Some(40);
    let d = run(&p, 1, 100);
    assert!(d.outages >= 1);
    let all = items(&d);
    let drop_at = all
        .iter()
        .position(|m| *m == Err("drop".into()))
        .expect("a drop");
    let Err(connect) = &all[drop_at + 1] else {
        panic!("{:?}", all[drop_at + 1])
    };
    assert!(connect.ends_with("will session 2"), "{connect}");
    assert!(matches!(&all[drop_at + 2], Ok(Message::Online(b)) if b.session == 2));
    assert_eq!(births(&d)[..2], [(1, d.run_id()), (2, d.run_id())]);
}

#[test]
fn an_outage_on_a_shared_link_publishes_the_will_itself() {
    let mut p = plan();
    p.outage_every = Some(40);
    p.own_link = false;
    let d = run(&p, 1, 100);
    let all = items(&d);
    assert!(!all.contains(&Err("drop".into())));
    let lost = all
        .iter()
        .position(|m| matches!(m, Ok(Message::Offline(x)) if x.cause == DeathCause::ConnectionLost && x.session == 1))
        .expect("a ConnectionLost death");
    assert!(matches!(&all[lost + 1], Err(c) if c.ends_with("will session 2")));
    assert!(matches!(&all[lost + 2], Ok(Message::Online(b)) if b.session == 2));
}

#[test]
fn a_restart_is_a_new_run_from_seq_0_and_session_1() {
    let mut p = plan();
    p.restart_every = Some(40);
    let d = run(&p, 2, 100);
    assert!(d.restarts >= 1);
    let all = items(&d);
    let shutdown = all
        .iter()
        .position(|m| matches!(m, Ok(Message::Offline(x)) if x.cause == DeathCause::Shutdown))
        .expect("a shutdown");
    assert_eq!(all[shutdown + 1], Err("disconnect".into()));
    assert!(
        matches!(&all[shutdown + 2], Err(c) if c.starts_with("connect@") && c.ends_with("will session 1")),
        "{:?}",
        all[shutdown + 2]
    );
    let b = births(&d);
    assert_eq!(b[1].0, 1, "a new process starts at session 1");
    assert_ne!(b[0].1, b[1].1, "with a new run id");
    let first_after = all[shutdown..].iter().find_map(|m| match m {
        Ok(Message::Events(x)) => Some((x.run_id, x.seq)),
        _ => None,
    });
    assert_eq!(first_after, Some((b[1].1, 0)));
}

#[test]
fn finishing_flushes_and_says_goodbye() {
    let mut d = run(&plan(), 0, 7);
    d.finish(7);
    let n = d.queue.len();
    assert!(matches!(
        &d.queue[n - 2],
        Out::Publish {
            tally: Tally::Death(DeathCause::Shutdown),
            retain: true,
            ..
        }
    ));
    assert_eq!(d.queue[n - 1], Out::Disconnect);
}
