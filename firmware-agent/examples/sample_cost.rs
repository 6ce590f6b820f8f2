//! What one metrics sample's board health and top-N lists cost: reads board health from a
//! sysfs tree and the top processes from /proc `--samples` times and prints the CPU time
//! (user + system, from getrusage) and wall time per sample, and the process count. Figures
//! only; nothing asserts them.
//!
//! `cargo run --release -p firmware-agent --example sample_cost -- [SYSFS_ROOT] [TOP_N] [SAMPLES]`
//! (defaults: /sys, 5, 200).

use std::{path::PathBuf, time::Instant};

use firmware_agent::{health::BoardReader, procs::TopProcs};

fn cpu_us() -> u64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let sysfs = PathBuf::from(args.next().unwrap_or_else(|| "/sys".into()));
    let top_n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let samples: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let proc_root = PathBuf::from("/proc");
    let procs = std::fs::read_dir(&proc_root)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0);
    let mut board = BoardReader::discover(&sysfs, &proc_root);
    let mut top = TopProcs::new(&proc_root, top_n.max(1));
    let (cpu0, wall0) = (cpu_us(), Instant::now());
    for _ in 0..samples {
        std::hint::black_box(board.sample());
        if top_n > 0 {
            std::hint::black_box(top.sample());
        }
    }
    let (cpu, wall) = (cpu_us() - cpu0, wall0.elapsed().as_micros() as u64);
    println!(
        "{samples} samples, {procs} processes, top_n {top_n}, sysfs {}: {:.0} us CPU and {:.0} us wall per sample",
        sysfs.display(),
        cpu as f64 / f64::from(samples),
        wall as f64 / f64::from(samples)
    );
}
