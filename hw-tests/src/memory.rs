//! The agent's memory by component in the guest, from init.sh's `print_mem` lines
//! (`HWTEST-MEM: phase=<p> key=value ...`, kB except the counts `threads` and `stacks`), and
//! the per-cell memory table with the 16K/4K and 64K/4K ratios.

/// Seconds init.sh leaves the agent alone after it is ready before the `idle` sample
/// (`fa.idle`, passed to the e2e and perf cells).
pub const IDLE_S: u64 = 10;

/// One `HWTEST-MEM:` line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemSample {
    /// `ready`, `idle` or `before-stop`.
    pub phase: String,
    /// `key=value` in the line's order.
    pub values: Vec<(String, i64)>,
}

impl MemSample {
    /// A value of the line, or one of the sums `stack+anon` and `total` (see `COLUMNS`).
    pub fn get(&self, key: &str) -> Option<i64> {
        let sum = |keys: &[&str]| keys.iter().map(|k| self.get(k)).sum::<Option<i64>>();
        match key {
            "stack+anon" => sum(&["stack", "anon"]),
            "total" => Some(
                sum(&["vmrss", "perf_vsz", "k_maps", "pte"])?
                    + self.get("vm_progs").or(self.get("k_progs"))?
                    - sum(&["bpfmap", "perf"])?,
            ),
            _ => self.values.iter().find(|(k, _)| k == key).map(|&(_, v)| v),
        }
    }
}

/// The table's columns: (header, key in the line). See init.sh's `print_mem` for each key.
pub const COLUMNS: [(&str, &str); 22] = [
    ("VmRSS", "vmrss"),
    ("RssAnon", "rssanon"),
    ("RssFile", "rssfile"),
    ("RssShmem", "rssshmem"),
    ("PTE", "pte"),
    ("thr", "threads"),
    ("bin", "bin"),
    ("bin.anon", "bin_anon"),
    ("bpfmap", "bpfmap"),
    ("perf", "perf"),
    ("stack", "stack"),
    ("anon", "anon"),
    ("stk+anon", "stack+anon"),
    ("other", "other"),
    ("perf.vsz", "perf_vsz"),
    ("k.ring", "k_ringbuf"),
    ("k.maps", "k_maps"),
    ("k.progs", "k_progs"),
    ("vm.progs", "vm_progs"),
    ("vm.n", "vm_progs_n"),
    ("vm.jit", "vm_jit"),
    ("total", "total"),
];

/// A `HWTEST-MEM:` line (a CR at the end is allowed); `None` if it isn't one or a value is not
/// an integer.
pub fn parse_line(line: &str) -> Option<MemSample> {
    let rest = line.trim_end_matches('\r').strip_prefix("HWTEST-MEM: ")?;
    let mut s = MemSample::default();
    for kv in rest.split_whitespace() {
        let (k, v) = kv.split_once('=')?;
        if k == "phase" {
            s.phase = v.to_owned();
        } else {
            s.values.push((k.to_owned(), v.parse().ok()?));
        }
    }
    (!s.phase.is_empty()).then_some(s)
}

/// Every `HWTEST-MEM:` line of a console, in order.
pub fn samples(console: &str) -> Vec<MemSample> {
    console.lines().filter_map(parse_line).collect()
}

/// The sample the tables compare: `idle` (a fixed time after ready), else `before-stop`.
pub fn pick(samples: &[MemSample]) -> Option<&MemSample> {
    ["idle", "before-stop"]
        .iter()
        .find_map(|p| samples.iter().find(|s| s.phase == *p))
}

fn cell_parts(name: &str) -> Option<(&str, &str)> {
    name.rsplit_once('-')
}

fn ratio(a: Option<i64>, b: Option<i64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if a >= 0 && b > 0 => format!("{:.2}", a as f64 / b as f64),
        _ => "-".into(),
    }
}

fn row(label: &str, phase: &str, cells: impl Iterator<Item = String>) -> String {
    let mut r = format!("{label:<14} {phase:<11}");
    for c in cells {
        r.push_str(&format!(" {c:>8}"));
    }
    r.push('\n');
    r
}

/// The memory table: one row per cell (its `pick`ed sample), then for every scenario run on
/// the 4k kernel and on 16k or 64k, a row of ratios (`e2e 16k/4k`) per column.
pub fn table(cells: &[(String, Vec<MemSample>)]) -> String {
    let mut t = row(
        "CELL",
        "PHASE",
        COLUMNS.iter().map(|(h, _)| (*h).to_owned()),
    );
    let picked: Vec<(&str, &MemSample)> = cells
        .iter()
        .filter_map(|(n, s)| Some((n.as_str(), pick(s)?)))
        .collect();
    for (name, s) in &picked {
        t.push_str(&row(
            name,
            &s.phase,
            COLUMNS
                .iter()
                .map(|(_, k)| s.get(k).map_or("-".into(), |v| v.to_string())),
        ));
    }
    for (name, s) in &picked {
        let Some((scen, pages)) = cell_parts(name) else {
            continue;
        };
        if pages != "16k" && pages != "64k" {
            continue;
        }
        let base = picked
            .iter()
            .find(|(n, b)| cell_parts(n) == Some((scen, "4k")) && b.phase == s.phase);
        if let Some((_, b)) = base {
            t.push_str(&row(
                &format!("{scen} {pages}/4k"),
                "ratio",
                COLUMNS.iter().map(|(_, k)| ratio(s.get(k), b.get(k))),
            ));
        }
    }
    t.push_str(
        "kB (thr: threads). From /proc/<pid>/status: VmRSS RssAnon RssFile RssShmem (the \
         binary: the initramfs is tmpfs) PTE (VmPTE: page tables, not in VmRSS) thr. \
         smaps Rss by mapping: bin (the agent's file; bin.anon its written part), bpfmap \
         (ring buffer mmaps), perf (perf buffer mmaps; perf.vsz their size, all kernel-allocated), \
         stack (main + thread stacks), anon (heap and anonymous: the allocator), other (vdso). \
         fdinfo memlock (kernel memory outside the RSS): k.ring (ring buffer maps), k.maps (all \
         maps), k.progs (the programs' first allocation only). /proc/vmallocinfo (the guest's, \
         the agent its only BPF user): vm.progs (every program allocation: a program with \
         BPF-to-BPF calls is allocated again per function when JITed; vm.n: how many), vm.jit \
         (the JIT's pack, shared). stk+anon: stack + anon (the kernel merges adjacent anonymous \
         mappings, so an allocator mapping next to a thread stack counts as stack: the sum is \
         the stable figure). total: VmRSS - bpfmap - perf + perf.vsz + k.maps + vm.progs (else \
         k.progs) + PTE \
         (ring and perf pages once, as the kernel holds them; bpfmap maps each ring's data \
         once, plus its consumer and producer pages).\n",
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: &str = "HWTEST-MEM: phase=idle vmrss=5984 rssanon=1204 rssfile=4780 rssshmem=0 pte=96 threads=4 bin=4280 bin_anon=160 bpfmap=424 perf=0 stack=48 stacks=4 anon=1176 other=56 maps=5984 bpfmap_vsz=1376 perf_vsz=0 k_ringbuf=1225 k_maps=3790 k_progs=208 vm_progs=592 vm_progs_n=37 vm_jit=2048\r";

    fn sample(phase: &str, vmrss: i64, bpfmap: i64) -> MemSample {
        MemSample {
            phase: phase.into(),
            values: vec![("vmrss".into(), vmrss), ("bpfmap".into(), bpfmap)],
        }
    }

    #[test]
    fn parses_a_line() {
        let s = parse_line(IDLE).unwrap();
        assert_eq!(s.phase, "idle");
        assert_eq!(s.values.len(), 23);
        for (k, v) in [
            ("vmrss", 5984),
            ("rssanon", 1204),
            ("rssfile", 4780),
            ("pte", 96),
            ("threads", 4),
            ("bin", 4280),
            ("bin_anon", 160),
            ("bpfmap", 424),
            ("stack", 48),
            ("stacks", 4),
            ("anon", 1176),
            ("k_ringbuf", 1225),
            ("k_maps", 3790),
            ("k_progs", 208),
            ("vm_progs", 592),
            ("vm_progs_n", 37),
            ("vm_jit", 2048),
        ] {
            assert_eq!(s.get(k), Some(v), "{k}");
        }
        assert_eq!(s.get("nope"), None);
        assert_eq!(s.get("stack+anon"), Some(48 + 1176));
        assert_eq!(s.get("total"), Some(5984 + 3790 + 592 + 96 - 424));
        let old = parse_line(
            "HWTEST-MEM: phase=x vmrss=9 perf_vsz=0 k_maps=1 pte=1 k_progs=4 bpfmap=2 perf=0",
        );
        assert_eq!(
            old.unwrap().get("total"),
            Some(9 + 1 + 1 + 4 - 2),
            "k_progs without vm_progs"
        );
        assert_eq!(
            parse_line("HWTEST-MEM: phase=x stack=1")
                .unwrap()
                .get("stack+anon"),
            None
        );
        assert_eq!(
            parse_line("HWTEST-MEM: phase=x d=-1").unwrap().get("d"),
            Some(-1)
        );
        assert_eq!(parse_line("HWTEST-MEM: phase=x vmrss=12kB"), None);
        assert_eq!(parse_line("HWTEST-MEM: vmrss=12"), None);
        assert_eq!(parse_line("HWTEST-RSS: 5984 phase=idle"), None);
    }

    #[test]
    fn picks_idle_then_before_stop() {
        let console = format!(
            "x\nHWTEST-MEM: phase=ready vmrss=1\n{IDLE}\nHWTEST-MEM: phase=before-stop vmrss=3\n"
        );
        let all = samples(&console);
        assert_eq!(
            all.iter().map(|s| s.phase.as_str()).collect::<Vec<_>>(),
            ["ready", "idle", "before-stop"]
        );
        assert_eq!(pick(&all).unwrap().get("vmrss"), Some(5984));
        assert_eq!(pick(&all[..1]), None);
        assert_eq!(
            pick(&[all[0].clone(), all[2].clone()])
                .unwrap()
                .get("vmrss"),
            Some(3)
        );
    }

    #[test]
    fn table_has_rows_and_ratios() {
        let cells = vec![
            ("e2e-4k".to_owned(), vec![sample("idle", 4000, 100)]),
            ("e2e-16k".to_owned(), vec![sample("idle", 5000, 400)]),
            ("e2e-64k".to_owned(), vec![sample("idle", 8000, 0)]),
            ("perf-16k".to_owned(), vec![sample("idle", 6000, 0)]),
        ];
        let t = table(&cells);
        let line = |p: &str| t.lines().find(|l| l.starts_with(p)).unwrap().to_owned();
        let words = |p: &str| {
            line(p)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(words("e2e-16k")[..3], ["e2e-16k", "idle", "5000"]);
        // vmrss 5000/4000; bpfmap (9th column) 400/100; 64k: 0/100.
        let r16 = words("e2e 16k/4k");
        assert_eq!((r16[2].as_str(), r16[3].as_str()), ("ratio", "1.25"));
        assert_eq!(r16[3 + 8], "4.00");
        assert_eq!(words("e2e 64k/4k")[3 + 8], "0.00");
        assert_eq!(r16[3 + 1], "-", "no rssanon in the samples");
        assert!(!t.contains("perf 16k/4k"), "no perf-4k to compare with");
    }
}
