//! The hw-tests QEMU cells. Per cell: a private mosquitto, the real `hub --json`, and a
//! Debian (or locally built 64K) arm64 kernel booted with hw-tests/boot.sh, whose /init runs
//! the static aarch64 agent against the broker (the guest reaches the host's loopback as
//! 10.0.2.2). Pass/fail comes from the hub's JSON records and the serial console
//! (rules in lib.rs). Prints one line per cell, a figures table, then `N passed, M failed`
//! alone on the last line; exits 1 if any cell failed, 2 on a usage or setup error.
//!
//! usage: hw-tests --agent PATH --kernel 16k=DIR [--kernel 4k=DIR ...] [--hub PATH]
//!                 [--out DIR] [--timeout S] CELL...

use std::{
    collections::HashMap,
    fs,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::{Duration, Instant},
};

use edge_hub::testkit::{JsonHub, PrivateBroker};
use hw_tests::{Cell, Figures, Scenario, report};
use serde_json::Value;

mod args;
mod sink;

use args::{Args, USAGE, parse_args};

/// Bytes the kprobe cells send from the guest to the host's sink, and back.
const SINK_UP: u64 = 200_000;
const SINK_DOWN: u64 = 30_000;

struct Ctx {
    args: Args,
    here: PathBuf,
    initrds: HashMap<String, PathBuf>,
}

impl Ctx {
    fn kernel_dir(&self, pages: &str) -> &Path {
        &self.args.kernels[pages]
    }

    fn first_in_boot(&self, pages: &str, prefix: &str) -> Option<PathBuf> {
        let mut v: Vec<PathBuf> = fs::read_dir(self.kernel_dir(pages).join("boot"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect();
        v.sort();
        v.into_iter().next()
    }

    /// Whether the kernel was built with BTF (its boot/config-*).
    fn kernel_has_btf(&self, pages: &str) -> bool {
        self.first_in_boot(pages, "config-")
            .and_then(|p| fs::read_to_string(p).ok())
            .is_some_and(|c| c.lines().any(|l| l == "CONFIG_DEBUG_INFO_BTF=y"))
    }

    fn initrd(&mut self, pages: &str) -> Result<PathBuf, String> {
        if let Some(p) = self.initrds.get(pages) {
            return Ok(p.clone());
        }
        let out = self.args.out.join(format!("initramfs-{pages}.cpio.gz"));
        let toml =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../firmware-agent/agent.example.toml");
        // ext4 is a module in Debian's kernels: loaded, its tracepoints exist (the storage
        // probes attach as on a Pi, whose root filesystem is ext4). The 64K kernel has none.
        // Bullseye's 5.10 has virtio_pci as a module too (built in from bookworm on).
        let modules = match pages {
            "64k" => "virtio_net",
            "510" => "virtio_pci virtio_net ext4",
            _ => "virtio_net ext4",
        };
        let st = Command::new(self.here.join("mkinitramfs.sh"))
            .env("HW_TESTS_MODULES", modules)
            .arg(self.kernel_dir(pages))
            .arg(&self.args.agent)
            .arg(&out)
            .arg(format!("{}:/etc/firmware-agent/agent.toml", toml.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("mkinitramfs.sh: {e}"))?;
        if !st.success() {
            return Err(format!("mkinitramfs.sh for {pages} failed ({st})"));
        }
        self.initrds.insert(pages.to_owned(), out.clone());
        Ok(out)
    }
}

struct Outcome {
    failures: Vec<String>,
    figures: Figures,
}

fn run_cell(ctx: &mut Ctx, cell: &Cell) -> Outcome {
    let t0 = Instant::now();
    let mut figures = Figures::default();
    let failures = match run_cell_inner(ctx, cell, &mut figures) {
        Ok(f) => f,
        Err(e) => vec![e],
    };
    figures.total_s = t0.elapsed().as_secs_f64();
    Outcome { failures, figures }
}

fn run_cell_inner(ctx: &mut Ctx, cell: &Cell, fig: &mut Figures) -> Result<Vec<String>, String> {
    let initrd = ctx.initrd(&cell.pages)?;
    let kernel = ctx.first_in_boot(&cell.pages, "vmlinuz-").ok_or_else(|| {
        format!(
            "no boot/vmlinuz-* in {}",
            ctx.kernel_dir(&cell.pages).display()
        )
    })?;
    let broker = PrivateBroker::start().map_err(|e| format!("mosquitto: {e}"))?;
    let (hub, mut records) = JsonHub::start(&ctx.args.hub, &broker.url(), Duration::from_secs(30))?;
    let device = cell.device();
    let mut cmdline = format!(
        "quiet fa.scenario={} fa.broker=mqtt://10.0.2.2:{} fa.device={device} \
         fa.env.RUST_LOG=info fa.ready_log=mqtt:_connected fa.linger=2",
        cell.scenario.guest_name(),
        broker.port
    );
    if matches!(cell.scenario, Scenario::E2e | Scenario::Perf) {
        cmdline.push_str(&format!(" fa.idle={}", hw_tests::memory::IDLE_S));
    }
    let method = match cell.scenario {
        Scenario::Kprobe => Some("Kprobe"),
        Scenario::Fentry => Some("Fentry"),
        _ => None,
    };
    let sink = method
        .map(|_| sink::start(SINK_UP, SINK_DOWN))
        .transpose()?;
    if let Some(s) = &sink {
        cmdline.push_str(&format!(
            " fa.sink=10.0.2.2:{} fa.sink_bytes={SINK_UP}",
            s.port
        ));
    }
    let log = ctx.args.out.join(format!("{}.log", cell.name));
    let boot_out = ctx.args.out.join(format!("{}.boot.txt", cell.name));
    let out_file = fs::File::create(&boot_out).map_err(|e| e.to_string())?;
    // A console log left from an earlier run would be read before boot.sh truncates it.
    let _ = fs::remove_file(&log);
    let mut child = Command::new(ctx.here.join("boot.sh"))
        .arg(&kernel)
        .arg(&initrd)
        .arg(&cmdline)
        .arg(&log)
        .arg(ctx.args.timeout_s.to_string())
        .stdout(out_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(out_file)
        .spawn()
        .map_err(|e| format!("boot.sh: {e}"))?;

    let t_boot = Instant::now();
    let mut agent_started = None;
    let mut birth_at = None;
    // Host-clock timeline of console lines (as first seen, 50 ms polls) and hub records.
    let mut timeline = Vec::new();
    let mut seen_len = 0;
    let take = |records: &mut Vec<Value>,
                birth_at: &mut Option<Instant>,
                timeline: &mut Vec<String>,
                t: Instant,
                v: Value| {
        if birth_at.is_none() && v["type"] == "online" && v["device"] == device {
            *birth_at = Some(t);
        }
        let what = if v["type"] == "event" {
            v["event"]
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_default()
        } else {
            String::new()
        };
        timeline.push(format!(
            "{:8.3} hub     {} {what}",
            t.saturating_duration_since(t_boot).as_secs_f64(),
            v["type"]
        ));
        records.push(v);
    };
    let status = loop {
        while let Some((t, v)) = hub.try_next() {
            take(&mut records, &mut birth_at, &mut timeline, t, v);
        }
        if let Ok(c) = fs::read_to_string(&log) {
            let now = Instant::now();
            if c.len() < seen_len {
                seen_len = 0; // truncated by boot.sh
            }
            if let Some(done) = c[seen_len.min(c.len())..]
                .rfind('\n')
                .map(|i| seen_len + i + 1)
            {
                for l in c[seen_len..done].lines() {
                    timeline.push(format!(
                        "{:8.3} console {}",
                        now.saturating_duration_since(t_boot).as_secs_f64(),
                        l.trim_end_matches('\r')
                    ));
                    if agent_started.is_none() && l.starts_with("HWTEST-INFO: agent started pid=") {
                        agent_started = Some(now);
                    }
                }
                seen_len = done;
            }
        }
        if let Some(st) = child.try_wait().map_err(|e| e.to_string())? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Whatever the broker still had in flight.
    let settle = Instant::now() + Duration::from_secs(1);
    while let Some((t, v)) = hub.next_timeout(settle.saturating_duration_since(Instant::now())) {
        take(&mut records, &mut birth_at, &mut timeline, t, v);
    }
    drop(hub);
    timeline.sort_by(|a, b| {
        let k = |s: &str| {
            s.split_whitespace()
                .next()
                .and_then(|x| x.parse::<f64>().ok())
        };
        k(a).partial_cmp(&k(b)).unwrap_or(std::cmp::Ordering::Equal)
    });
    fs::write(
        ctx.args.out.join(format!("{}.timeline.txt", cell.name)),
        timeline.join("\n") + "\n",
    )
    .map_err(|e| e.to_string())?;
    drop(broker);
    let console = fs::read_to_string(&log).unwrap_or_default();
    let boot_txt = fs::read_to_string(&boot_out).unwrap_or_default();
    fig.boot_s = hw_tests::boot_figure(&boot_txt, "host_to_init");
    fig.rss_ready_kb = hw_tests::rss_kb(&console, "ready");
    fig.startup_guest_s = hw_tests::guest_ready_s(&console);
    fig.rss_end_kb = hw_tests::rss_kb(&console, "before-stop");
    fig.rss_idle_kb = hw_tests::rss_kb(&console, "idle");
    fig.mem = hw_tests::memory::samples(&console);
    if let (Some(a), Some(b)) = (agent_started, birth_at) {
        fig.startup_s = Some(b.saturating_duration_since(a).as_secs_f64());
    }
    if let Some(b) = hw_tests::find_birth(&records, &device) {
        fig.rings = hw_tests::ring_summary(b);
    }
    fs::write(
        ctx.args.out.join(format!("{}.hub.jsonl", cell.name)),
        records.iter().map(|v| format!("{v}\n")).collect::<String>(),
    )
    .map_err(|e| e.to_string())?;

    let mut f = Vec::new();
    if !status.success() {
        f.push(format!(
            "boot.sh exit {status} (124 = timeout, 3 = no result line); see {}",
            boot_out.display()
        ));
    }
    if let Some(bad) = records.iter().find(|v| v.is_string()) {
        f.push(bad.to_string());
    }
    match cell.scenario {
        Scenario::E2e | Scenario::NoBtf | Scenario::Kprobe | Scenario::Fentry | Scenario::Perf => {
            let btf = cell.scenario != Scenario::NoBtf && ctx.kernel_has_btf(&cell.pages);
            f.extend(hw_tests::check_e2e(
                cell,
                &records,
                &console,
                btf,
                guest_cpus(),
            ));
            if let (Some(s), Some(m)) = (sink, method) {
                let seen = s.finish();
                f.extend(hw_tests::signals::check_functions(
                    &records, &device, m, seen,
                ));
            }
        }
        Scenario::RingbufNegative => {
            f.extend(hw_tests::check_ringbuf_negative(cell, &console));
            fig.rings = console
                .lines()
                .filter_map(|l| l.strip_prefix("HWTEST-INFO: sized_ringbuf "))
                .map(|s| s.split(" result").next().unwrap_or(s).to_owned())
                .collect();
        }
    }
    if !f.is_empty() {
        f.push(format!("console: {}", log.display()));
    }
    Ok(f)
}

/// The guest's CPUs: boot.sh's `-smp` (HW_TESTS_SMP, default 2).
fn guest_cpus() -> u64 {
    std::env::var("HW_TESTS_SMP")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("hw-tests: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = fs::create_dir_all(&args.out) {
        eprintln!("hw-tests: {}: {e}", args.out.display());
        return ExitCode::from(2);
    }
    let cells = args.cells.clone();
    let mut ctx = Ctx {
        args,
        here: PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        initrds: HashMap::new(),
    };
    let t0 = Instant::now();
    let mut table = report::header();
    let mut mem = Vec::new();
    let (mut passed, mut failed) = (0, 0);
    for cell in &cells {
        let o = run_cell(&mut ctx, cell);
        let fg = &o.figures;
        if o.failures.is_empty() {
            passed += 1;
            println!("PASS {} ({})", cell.name, report::pass_detail(fg));
        } else {
            failed += 1;
            println!("FAIL {} ({:.1}s)", cell.name, fg.total_s);
            for m in &o.failures {
                println!("    {m}");
            }
        }
        table.push_str(&report::row(&cell.name, o.failures.is_empty(), fg));
        mem.push((cell.name.clone(), o.figures.mem));
    }
    table.push_str(&report::footer(t0.elapsed().as_secs_f64()));
    table.push('\n');
    table.push_str(&hw_tests::memory::table(&mem));
    println!();
    print!("{table}");
    let _ = fs::write(ctx.args.out.join("summary.txt"), &table);
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
