//! The figures table (one row per cell), printed by the runner and kept in
//! `<out>/summary.txt` with the memory table (`memory::table`).

use crate::Figures;

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.2}"))
}

fn kb(v: Option<u64>) -> String {
    v.map_or("-".into(), |k| k.to_string())
}

/// The `PASS <cell> (...)` line's figures.
pub fn pass_detail(fg: &Figures) -> String {
    format!(
        "{:.1}s: boot {}s, agent start-up {}s guest / {}s host, rss {} kB, rings {}",
        fg.total_s,
        opt(fg.boot_s),
        opt(fg.startup_guest_s),
        opt(fg.startup_s),
        kb(fg.rss_end_kb),
        fg.rings.join(", ")
    )
}

#[allow(clippy::too_many_arguments)]
fn line(
    cell: &str,
    res: &str,
    boot: &str,
    gst: &str,
    hst: &str,
    rss0: &str,
    rssi: &str,
    rss1: &str,
    total: &str,
    rings: &str,
) -> String {
    format!(
        "{cell:<22} {res:<5} {boot:>7} {gst:>8} {hst:>8} {rss0:>8} {rssi:>8} {rss1:>8} {total:>7}  {rings}\n"
    )
}

/// The table's header line.
pub fn header() -> String {
    line(
        "CELL",
        "RES",
        "BOOT_S",
        "UP_GST_S",
        "UP_HST_S",
        "RSS0_KB",
        "RSSI_KB",
        "RSS1_KB",
        "CELL_S",
        "RINGS (requested->chosen)",
    )
}

/// One cell's row.
pub fn row(cell: &str, passed: bool, fg: &Figures) -> String {
    line(
        cell,
        if passed { "PASS" } else { "FAIL" },
        &opt(fg.boot_s),
        &opt(fg.startup_guest_s),
        &opt(fg.startup_s),
        &kb(fg.rss_ready_kb),
        &kb(fg.rss_idle_kb),
        &kb(fg.rss_end_kb),
        &format!("{:.1}", fg.total_s),
        &fg.rings.join(", "),
    )
}

/// The legend under the table.
pub fn footer(cells_s: f64) -> String {
    format!(
        "BOOT_S: QEMU start to /init (host clock); UP_GST_S: agent start to its 'mqtt: connected; publishing birth' log line (guest /proc/uptime, polled); UP_HST_S: console 'agent started' to the birth at the hub (host clock); RSS0/RSSI/RSS1: agent VmRSS when ready / after {} s idle (e2e and perf cells) / before SIGTERM; cells took {cells_s:.1}s\n",
        crate::memory::IDLE_S
    )
}
