//! Per-family probe overhead on syscall-heavy loops, probes on vs off in one run (as root):
//! `cargo run -p firmware-agent --example probe_overhead [ROUNDS]`.
//!
//! Each workload runs with no probes, then with one family's probes loaded (rings drained by a
//! thread, as the agent would), alternating `ROUNDS` times; the figure is the median extra time
//! per operation. Then every family is loaded at once with the kernel's BPF run-time statistics
//! on (BPF_ENABLE_STATS, for the duration of the run only) and every workload runs once: each
//! program's mean run time per hit is the per-probe cost, free of the machine's noise.
//! Figures only: nothing is asserted.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::fs::FileExt,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use aya::maps::{MapData, RingBuf};
use firmware_agent::config::Config;
use firmware_agent_common::{Family, Ring};

type Workload = (&'static str, Family, u32, fn(u32));

fn binds(n: u32) {
    for _ in 0..n {
        drop(std::net::UdpSocket::bind("127.0.0.1:0").expect("bind"));
    }
}

fn forks(n: u32) {
    for _ in 0..n {
        // SAFETY: the child only calls _exit.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: async-signal-safe exit of the forked child.
            unsafe { libc::_exit(0) };
        }
        let mut status = 0;
        // SAFETY: valid pid and status pointer.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
}

fn tcp_ping_pong(n: u32) {
    let l = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = l.local_addr().expect("addr");
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().expect("accept");
        let mut b = [0u8; 64];
        while s.read_exact(&mut b).is_ok() {
            if s.write_all(&b).is_err() {
                break;
            }
        }
    });
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_nodelay(true).expect("nodelay");
    let mut b = [7u8; 64];
    for _ in 0..n {
        c.write_all(&b).expect("send");
        c.read_exact(&mut b).expect("recv");
    }
    drop(c);
    let _ = server.join();
}

fn file_writes(n: u32) {
    let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).expect("tempdir");
    let f = std::fs::File::create(dir.path().join("w")).expect("file");
    let block = [1u8; 4096];
    for i in 0..n {
        f.write_all_at(&block, u64::from(i % 256) * 4096)
            .expect("write");
    }
}

fn config_only(family: Option<Family>) -> Config {
    let mut cfg = Config::default();
    cfg.probes.disabled = Family::ALL
        .iter()
        .filter(|f| Some(**f) != family)
        .map(|f| f.name().to_owned())
        .collect();
    cfg
}

/// Runs `work(n)` with `family` loaded (None: nothing loaded); seconds.
fn timed(family: Option<Family>, work: fn(u32), n: u32) -> f64 {
    let loaded = family.map(|f| {
        let mut l = firmware_agent::agent::load(&config_only(Some(f))).expect("load");
        let rings: Vec<RingBuf<MapData>> = Ring::ALL
            .iter()
            .filter_map(|r| l.ebpf.take_map(r.map_name()))
            .filter_map(|m| m.try_into().ok())
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let drain = std::thread::spawn(move || {
            let mut rings = rings;
            while !s2.load(Ordering::Relaxed) {
                for r in &mut rings {
                    while r.next().is_some() {}
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        });
        (l, stop, drain)
    });
    let t = Instant::now();
    work(n);
    let secs = t.elapsed().as_secs_f64();
    if let Some((l, stop, drain)) = loaded {
        stop.store(true, Ordering::Relaxed);
        let _ = drain.join();
        drop(l);
    }
    secs
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let workloads: [Workload; 4] = [
        ("bind() of a UDP socket", Family::Bind, 20_000, binds),
        ("fork + exit + wait", Family::Lifecycle, 1_000, forks),
        (
            "TCP 64 B send+recv pair",
            Family::Tcp,
            20_000,
            tcp_ping_pong,
        ),
        ("4 KiB pwrite to ext4", Family::Storage, 50_000, file_writes),
    ];
    println!(
        "workload | family | ops | off ns/op | on ns/op | overhead ns/op (median of {rounds})"
    );
    for (name, family, n, work) in workloads {
        work(n / 10); // warm caches
        let (mut off, mut on) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            off.push(timed(None, work, n) * 1e9 / f64::from(n));
            on.push(timed(Some(family), work, n) * 1e9 / f64::from(n));
        }
        let (off, on) = (median(off), median(on));
        println!(
            "{name} | {} | {n} | {off:.0} | {on:.0} | {:+.0}",
            family.name(),
            on - off
        );
    }
    per_program(&workloads);
}

/// Every family loaded, kernel run-time statistics on: each program's hits and mean ns per hit.
fn per_program(workloads: &[Workload]) {
    let stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
        Ok(fd) => fd,
        Err(e) => {
            println!("BPF run-time statistics unavailable ({e}): no per-program figures");
            return;
        }
    };
    let loaded = firmware_agent::agent::load(&Config::default()).expect("load");
    for (_, _, n, work) in workloads {
        work(*n);
    }
    println!("program | hits | mean ns per hit");
    let mut rows: Vec<(String, u64, f64)> = loaded
        .ebpf
        .programs()
        .filter_map(|(name, p)| {
            let info = p.info().ok()?;
            let hits = info.run_count();
            (hits > 0).then(|| {
                let ns = info.run_time().as_nanos() as f64 / hits as f64;
                (name.to_owned(), hits, ns)
            })
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, hits, ns) in rows {
        println!("{name} | {hits} | {ns:.0}");
    }
    drop(loaded);
    drop(stats);
}
