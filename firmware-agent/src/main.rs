//! `firmware-agent`: parse the command line, set up logging and signals, load the config
//! (exit 2 when it is bad), run the agent.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use firmware_agent::{agent, config::Config, kernel, probes, selftest};

const DEFAULT_CONFIG: &str = "/etc/firmware-agent/agent.toml";
const DEFAULT_CARD: &str = "/boot/firmware/firmware-agent.toml";
const USAGE: &str = "usage: firmware-agent [--config PATH] [--card-config PATH] [--check-config]\n       firmware-agent selftest-ringbuf";

struct Args {
    config: Option<PathBuf>,
    card: PathBuf,
    check_only: bool,
    selftest: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        config: None,
        card: DEFAULT_CARD.into(),
        check_only: false,
        selftest: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => {
                args.config = Some(it.next().ok_or("--config needs a path")?.into())
            }
            "--card-config" => args.card = it.next().ok_or("--card-config needs a path")?.into(),
            "--check-config" => args.check_only = true,
            "selftest-ringbuf" => args.selftest = true,
            "--help" | "-h" => return Err(String::new()),
            "--version" | "-V" => {
                println!(
                    "firmware-agent {} (wire schema {})",
                    env!("CARGO_PKG_VERSION"),
                    edge_wire::SCHEMA_VERSION
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("firmware-agent: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    if args.selftest {
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
