//! `firmware-agent`: parse the command line, set up logging and signals, load the config
//! (exit 2 when it is bad), run the agent.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use firmware_agent::{agent, config::Config, kernel, probes, selftest};

const DEFAULT_CONFIG: &str = "/etc/firmware-agent/agent.toml";
const DEFAULT_CARD: &str = "/boot/firmware/firmware-agent.toml";

/// eBPF monitoring agent for ARM edge boards: loads its probes, publishes batches over MQTT.
#[derive(clap::Parser)]
#[command(version)]
struct Args {
    /// Main config file (TOML). Default: /etc/firmware-agent/agent.toml if it exists.
    #[arg(long, short = 'c', value_name = "PATH")]
    config: Option<PathBuf>,
    /// Per-card overrides on the boot partition (read if it exists).
    #[arg(long = "card-config", value_name = "PATH", default_value = DEFAULT_CARD)]
    card: PathBuf,
    /// Only validate the layered config, then exit (0 ok, 2 bad).
    #[arg(long = "check-config")]
    check_only: bool,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Reproduce the 16K-page failure on purpose: a raw 4096-byte ring buffer, then one sized
    /// by our rule, read back from the kernel.
    SelftestRingbuf,
}

fn main() -> ExitCode {
    one_malloc_arena();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // clap prints usage errors naming the argument and exits 2, like a bad config.
    let args = <Args as clap::Parser>::parse();
    if matches!(args.command, Some(Cmd::SelftestRingbuf)) {
        return if selftest::run() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        };
    }
    // The default config path is optional (defaults apply); an explicit one must exist.
    let main_cfg = args.config.clone().or_else(|| {
        std::path::Path::new(DEFAULT_CONFIG)
            .exists()
            .then(|| DEFAULT_CONFIG.into())
    });
    let cfg = match Config::load(
        main_cfg.as_deref(),
        Some(&args.card),
        &probes::program_names(),
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("firmware-agent: bad config: {e}");
            return ExitCode::from(2);
        }
    };
    if args.check_only {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// glibc gives each thread that allocates an arena of its own (up to 8 per core), each with
/// its own free lists and top chunk kept resident; the agent allocates little and mostly on one
/// thread, so one arena is enough (measured: ~370 kB less idle RssAnon with 5 threads). Before
/// any other thread exists. musl (the board build) has a single heap already.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

fn run(cfg: Config) -> anyhow::Result<()> {
    let device = match &cfg.device_id {
        Some(id) => {
            log::info!("device id {id} (from config)");
            id.clone()
        }
        None => {
            let (id, source) = kernel::default_device_id();
            log::info!("device id {id} (from {source})");
            id
        }
    };
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: stopping");
                stop_tx.close();
            }
        })
        .context("spawning the signal thread")?;
    agent::run(&cfg, &device, stop_rx)
}
