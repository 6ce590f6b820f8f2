//! The binary's start-up pages are handed back to the kernel once the agent runs: the pages
//! of its binary that stay mapped drop well below their start-up peak and stay there
//! (measured on the debug build: 11,752 -> 7,828 kB; without the release they stay at the
//! peak). Run as root (the agent loads its probes).

mod common;

use std::{
    path::Path,
    time::{Duration, Instant},
};

use common::*;

/// Rss, kB, of `pid`'s mappings of `exe`.
fn binary_rss_kib(pid: u32, exe: &Path) -> u64 {
    let exe = exe.to_string_lossy();
    smaps_kib(&pid.to_string(), "Rss:", |l| l.ends_with(exe.as_ref()))
}

#[test]
fn after_start_up_the_binarys_resident_pages_drop_and_stay_down() {
    require_root();
    let exe = std::fs::canonicalize(agent_bin()).expect("agent binary");
    // Freshly built: its pages may still be dirty in the page cache, which reclaim does not
    // drop (an installed binary is clean). Write them back first.
    std::fs::File::open(&exe)
        .and_then(|f| f.sync_all())
        .expect("sync the agent binary");
    let broker = PrivateBroker::start().expect("mosquitto");
    let agent = Agent::start(
        &broker,
        &format!("rss-{}", std::process::id()),
        &example_config(),
    );
    let pid = agent.pid();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut peak = 0;
    while !agent.log().contains("memory: start-up over") {
        assert!(
            Instant::now() < deadline,
            "no release logged:\n{}",
            agent.log()
        );
        peak = peak.max(binary_rss_kib(pid, &exe));
        std::thread::sleep(Duration::from_millis(100));
    }
    // The steady state maps back what it runs: one metrics sample (every 10 s in the example
    // config) and the idle readers.
    std::thread::sleep(Duration::from_secs(12));
    let settled = binary_rss_kib(pid, &exe);
    eprintln!("binary Rss: start-up peak {peak} kB, settled {settled} kB");
    let (status, log) = agent.terminate();
    assert!(status.success(), "{log}");
    assert!(peak > 0, "no Rss read for {}", exe.display());
    assert!(
        settled * 100 <= peak * 85,
        "binary Rss {settled} kB after the release, start-up peak {peak} kB: want <= 85 %"
    );
}
