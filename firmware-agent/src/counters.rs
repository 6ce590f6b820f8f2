//! The kernel's per-CPU `COUNTERS`: records lost to full rings (by kind) and probe failures
//! (by program and reason), summed over CPUs.

use aya::maps::{MapData, PerCpuArray};
use edge_wire::{ProbeErrors, bounded};
use firmware_agent_common::{Failure, Kind, Program, Ring};

fn sum(counters: &PerCpuArray<MapData, u64>, slot: u32) -> u64 {
    counters.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

/// Every kind's drop source and its total since the probes loaded, in `Kind::ALL` order, then
/// the lost records of multi-kind rings that no kind counted.
///
/// `lost`: per `Ring`, the records its perf buffers' reader was told were lost. On kernels
/// whose output helper reports a full buffer (5.5+) the probes counted each of them by kind
/// already; what the reader saw beyond the kinds' sum is added to the ring's `lost_source`.
pub fn ring_drops(
    counters: &PerCpuArray<MapData, u64>,
    lost: [u64; Ring::ALL.len()],
) -> Vec<(&'static str, u64)> {
    let mut totals: Vec<(&'static str, u64)> = Kind::ALL
        .iter()
        .map(|k| (k.drop_source(), sum(counters, k.drop_slot())))
        .collect();
    add_unattributed(&mut totals, lost);
    totals
}

/// Adds each ring's lost records beyond those its kinds counted (see `ring_drops`).
pub fn add_unattributed(totals: &mut Vec<(&'static str, u64)>, lost: [u64; Ring::ALL.len()]) {
    for ring in Ring::ALL {
        let counted: u64 = Kind::ALL
            .iter()
            .filter(|k| k.ring() == ring)
            .map(|k| {
                totals
                    .iter()
                    .find(|(s, _)| *s == k.drop_source())
                    .map_or(0, |(_, n)| *n)
            })
            .sum();
        let extra = lost[ring as usize].saturating_sub(counted);
        if extra == 0 {
            continue;
        }
        match totals.iter_mut().find(|(s, _)| *s == ring.lost_source()) {
            Some((_, n)) => *n += extra,
            None => totals.push((ring.lost_source(), extra)),
        }
    }
}

/// Programs that failed at least once, with their counts by reason.
pub fn probe_errors(counters: &PerCpuArray<MapData, u64>) -> Vec<ProbeErrors> {
    Program::ALL
        .iter()
        .map(|&p| {
            let n = |f: Failure| sum(counters, p.error_slot(f));
            ProbeErrors {
                program: bounded(p.name()),
                helper: n(Failure::Helper),
                map_full: n(Failure::MapFull),
                ring_full: n(Failure::RingFull),
            }
        })
        .filter(|e| e.helper + e.map_full + e.ring_full > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_losses_beyond_the_kinds_counts_are_added_to_the_rings_source() {
        // bind 2 counted by the probes, exec 1, exit 0; the readers saw 5 lost on WATCH (2
        // counted: 3 more), 1 on PROC (all counted), 4 on NET (none counted).
        let mut totals = vec![
            ("ring:bind", 2),
            ("ring:exec", 1),
            ("ring:exit", 0),
            ("ring:oom_kill", 0),
            ("ring:tcp_close", 0),
        ];
        add_unattributed(&mut totals, [5, 1, 4]);
        assert_eq!(
            totals,
            vec![
                ("ring:bind", 5),
                ("ring:exec", 1),
                ("ring:exit", 0),
                ("ring:oom_kill", 0),
                ("ring:tcp_close", 4),
            ]
        );
        // A multi-kind ring's uncounted losses have their own source.
        add_unattributed(&mut totals, [5, 3, 4]);
        assert_eq!(totals.last(), Some(&("ring:proc_events", 2)));
    }
}
