//! The kernel's per-CPU `COUNTERS`: records lost to full rings (by kind) and probe failures
//! (by program and reason), summed over CPUs.

use aya::maps::{MapData, PerCpuArray};
use edge_wire::{ProbeErrors, bounded};
use firmware_agent_common::{Failure, Kind, Program};

fn sum(counters: &PerCpuArray<MapData, u64>, slot: u32) -> u64 {
    counters.get(&slot, 0).map(|v| v.iter().sum()).unwrap_or(0)
}

/// Every kind's drop source and its total since the probes loaded, in `Kind::ALL` order.
pub fn ring_drops(counters: &PerCpuArray<MapData, u64>) -> Vec<(&'static str, u64)> {
    Kind::ALL
        .iter()
        .map(|k| (k.drop_source(), sum(counters, k.drop_slot())))
        .collect()
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
