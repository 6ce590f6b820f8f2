//! Unit tests of the /proc parsers and of the top-N sampler against a /proc written by the
//! test (two scans, known tick counts), with fixed expected values.

use std::path::Path;

use super::*;

/// A stat line as the kernel prints it (format of a real `/proc/<pid>/stat` from this VM),
/// with the fields this module reads set.
fn stat_line(pid: u32, comm: &str, utime: u64, stime: u64, start: u64, rss: u64) -> String {
    format!(
        "{pid} ({comm}) R 2272 2272 26978 0 -1 4194304 99 0 0 0 {utime} {stime} 0 0 20 0 1 0 {start} 3133440 {rss} 18446744073709551615 94573942939648 94573942959529 140734188376288 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n"
    )
}

#[test]
fn a_stat_line_gives_its_fields() {
    let line = "2274 (cat) R 2272 2272 26978 0 -1 4194304 99 0 0 0 7 3 0 0 20 0 1 0 263288 3133440 367 18446744073709551615 94573942939648 0\n";
    let st = parse_stat(line.as_bytes()).expect("parses");
    assert_eq!(
        st,
        Stat {
            pid: 2274,
            comm: b"cat",
            cpu_ticks: 10,
            start: 263288,
            rss_pages: 367,
        }
    );
}

#[test]
fn a_command_name_with_spaces_and_parentheses_ends_at_the_last_parenthesis() {
    let line = stat_line(42, "a) (b c)", 5, 6, 100, 9);
    let st = parse_stat(line.as_bytes()).expect("parses");
    assert_eq!(st.comm, b"a) (b c)");
    assert_eq!(
        (st.pid, st.cpu_ticks, st.start, st.rss_pages),
        (42, 11, 100, 9)
    );
}

#[test]
fn truncated_or_garbled_stat_lines_are_refused() {
    for bad in [
        "",
        "12 (x",
        "12 x) R 1",
        "12 (x) R 1 2 3",
        "abc (x) R 1 1 1 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 5 0 1",
        "12 (x) R 1 1 1 0 -1 0 0 0 0 0 one 1 0 0 20 0 1 0 5 0 1",
    ] {
        assert_eq!(parse_stat(bad.as_bytes()), None, "{bad:?}");
    }
}

#[test]
fn uptime_is_read_in_hundredths() {
    assert_eq!(parse_uptime_cs("2632.93 1190.67\n"), Some(263_293));
    assert_eq!(parse_uptime_cs("5.5 1.0"), Some(550));
    assert_eq!(parse_uptime_cs("17 1"), Some(1700));
    assert_eq!(parse_uptime_cs("x 1"), None);
    assert_eq!(parse_uptime_cs(""), None);
}

#[test]
fn cpu_permille_is_cpu_seconds_over_wall_seconds() {
    // 100 ticks at 100 Hz = 1 s of CPU in 1 s: one full core.
    assert_eq!(cpu_permille(100, 100, 100), 1000);
    // 2 cores busy for 10 s.
    assert_eq!(cpu_permille(2000, 100, 1000), 2000);
    // 1 tick in 10 s: 0.1 % of a core.
    assert_eq!(cpu_permille(1, 100, 1000), 1);
    assert_eq!(cpu_permille(5, 100, 0), 0);
    assert_eq!(cpu_permille(5, 0, 100), 0);
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn the_top_lists_rank_by_cpu_since_the_last_sample_and_by_resident_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    // Baseline at uptime 100.00 s (start ticks are at 100 Hz).
    write(root, "uptime", "100.00 50.00\n");
    write(root, "1/stat", &stat_line(1, "init", 50, 50, 1, 3000));
    write(root, "200/stat", &stat_line(200, "hog", 1000, 0, 5000, 100));
    write(
        root,
        "300/stat",
        &stat_line(300, "db", 10, 10, 6000, 50_000),
    );
    write(root, "2/stat", &stat_line(2, "kthreadd", 0, 0, 1, 0));
    write(root, "self", "not a pid");
    let mut top = TopProcs::with_units(root, 2, 100, 16);

    // Ten seconds later: the hog used 9.5 s, db 0.2 s, init nothing; pid 400 started at
    // 105 s and used 1 s.
    write(root, "uptime", "110.00 55.00\n");
    write(root, "1/stat", &stat_line(1, "init", 50, 50, 1, 3000));
    write(
        root,
        "200/stat",
        &stat_line(200, "hog", 1900, 50, 5000, 100),
    );
    write(
        root,
        "300/stat",
        &stat_line(300, "db", 20, 20, 6000, 50_000),
    );
    write(
        root,
        "400/stat",
        &stat_line(400, "new one", 60, 40, 10_500, 10),
    );
    let (cpu, mem) = top.sample();
    let rows = |l: &[ProcUse]| -> Vec<(u32, String, u32, u64)> {
        l.iter()
            .map(|p| (p.pid, p.comm.to_string(), p.cpu_permille, p.rss_kib))
            .collect()
    };
    assert_eq!(
        rows(&cpu),
        vec![
            (200, "hog".into(), 950, 1600),
            (400, "new one".into(), 100, 160),
        ]
    );
    assert_eq!(
        rows(&mem),
        vec![
            (300, "db".into(), 20, 800_000),
            (1, "init".into(), 0, 48_000),
        ]
    );

    // Pid 200 exits and is reused by another process (new start time); nothing else runs.
    write(root, "uptime", "120.00 60.00\n");
    write(
        root,
        "200/stat",
        &stat_line(200, "reused", 30, 0, 11_500, 1),
    );
    std::fs::remove_dir_all(root.join("400")).expect("rm");
    let (cpu, _) = top.sample();
    assert_eq!(rows(&cpu), vec![(200, "reused".into(), 30, 16)]);
}

#[test]
fn ties_keep_the_lower_pid_first_and_the_list_never_exceeds_n() {
    let c = |pid, rss| Candidate {
        pid,
        comm: [0; 16],
        comm_len: 0,
        cpu_permille: 0,
        rss_kib: rss,
    };
    let mut list = Vec::new();
    for (pid, rss) in [(9, 10), (3, 10), (5, 30), (7, 1), (1, 20)] {
        offer(&mut list, 3, c(pid, rss), |c| c.rss_kib);
    }
    let got: Vec<(u32, u64)> = list.iter().map(|c| (c.pid, c.rss_kib)).collect();
    assert_eq!(got, vec![(5, 30), (1, 20), (3, 10)]);
}

#[test]
fn a_missing_proc_root_gives_empty_lists() {
    let mut top = TopProcs::with_units(Path::new("/nonexistent/proc"), 5, 100, 4);
    assert_eq!(top.sample(), (Vec::new(), Vec::new()));
}
