//! What every agent cell asserts beyond its events: how the exit triggers ended, that nothing
//! crashed (agent or kernel), and each ring's transport in the birth.

use serde_json::Value;

use crate::{Cell, Scenario, events};

/// The exit triggers (scripts in the initramfs; init.sh runs each once) and how each ends.
pub const EXITS: [(&str, &str, i64); 3] = [
    ("hwtest-marker", "Code", 0),
    ("hwtest-exit3", "Code", 3),
    ("hwtest-crash", "Signal", 11),
];

/// Console text that means something crashed: the agent (a Rust panic) or the kernel.
pub const CRASH_MARKS: [&str; 6] = [
    "panicked at",
    "Kernel panic",
    "Internal error:",
    "Unable to handle kernel",
    "BUG: ",
    "Oops",
];

/// Every ring's transport in the birth: `Perf` with pages x page size = chosen on `cpus` CPUs
/// for a perf cell, `RingBuf` otherwise (every kernel here has ring buffers).
pub fn check_transport(birth: &Value, cell: &Cell, cpus: u64) -> Vec<String> {
    let mut f = Vec::new();
    for r in birth["body"]["ring_buffers"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let t = &r["transport"];
        let ok = match cell.scenario {
            Scenario::Perf => {
                let chosen = r["chosen"].as_u64().unwrap_or(0);
                t["Perf"]["pages_per_cpu"]
                    .as_u64()
                    .map(|p| p * cell.page_size)
                    == Some(chosen)
                    && t["Perf"]["cpus"] == cpus
            }
            _ => t == "RingBuf",
        };
        if !ok {
            f.push(format!(
                "ring {}: transport {t} (chosen {}) not as expected for {} on {cpus} CPUs",
                r["name"], r["chosen"], cell.name
            ));
        }
    }
    f
}

/// Exactly one `Exit` of each of `EXITS`, ending as it should.
pub fn check_exits(records: &[Value], device: &str) -> Vec<String> {
    let mut f = Vec::new();
    for (comm, how, value) in EXITS {
        let want = serde_json::json!({ how: value });
        let n = events(records, device)
            .filter(|e| e["Exit"]["task"]["comm"] == comm && e["Exit"]["how"] == want)
            .count();
        if n != 1 {
            let seen: Vec<String> = events(records, device)
                .filter(|e| e["Exit"]["task"]["comm"] == comm)
                .map(|e| e["Exit"]["how"].to_string())
                .collect();
            f.push(format!(
                "{n} Exit events of {comm} with {want}, want 1 (its exits seen: {seen:?})"
            ));
        }
    }
    f
}

/// No console line with any of `CRASH_MARKS`.
pub fn check_no_crash(console: &str) -> Vec<String> {
    console
        .lines()
        .find(|l| CRASH_MARKS.iter().any(|m| l.contains(m)))
        .map(|l| format!("crash on the console: {}", l.trim_end_matches('\r')))
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn perf_cells_want_perf_rings_and_the_others_ring_buffers() {
        let perf = Cell::parse("perf-510").unwrap();
        assert_eq!((perf.scenario, perf.page_size), (Scenario::Perf, 4096));
        let ring = |t: Value| {
            json!({"body": {"ring_buffers": [{"name": "PROC_EVENTS", "requested": 262144,
                "chosen": 262144, "transport": t}]}})
        };
        let p = ring(json!({"Perf": {"pages_per_cpu": 64, "cpus": 2}}));
        assert!(check_transport(&p, &perf, 2).is_empty());
        assert_eq!(check_transport(&p, &perf, 4).len(), 1, "CPU count");
        let wrong = ring(json!({"Perf": {"pages_per_cpu": 16, "cpus": 2}}));
        assert_eq!(
            check_transport(&wrong, &perf, 2).len(),
            1,
            "pages x page size"
        );
        let e2e = Cell::parse("e2e-510").unwrap();
        assert!(check_transport(&ring(json!("RingBuf")), &e2e, 2).is_empty());
        assert_eq!(check_transport(&p, &e2e, 2).len(), 1);
        assert_eq!(check_transport(&ring(json!("RingBuf")), &perf, 2).len(), 1);
    }
}
