//! `fleet-sim`: plays a fleet of simulated devices against an MQTT broker and prints what the
//! broker acknowledged (text, or JSON with `--json`). This file only wires: command line,
//! logging, runtime, exit status.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;

fn main() -> ExitCode {
    let args = edge_fleet_sim::cli::Args::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fleet-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &edge_fleet_sim::cli::Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let report = rt.block_on(edge_fleet_sim::run(args))?;
    if args.json {
        println!("{}", report.json());
    } else {
        for line in report.text() {
            println!("{line}");
        }
    }
    if report.fleet().messages == 0 {
        anyhow::bail!("{}: the broker acknowledged no message", args.broker);
    }
    Ok(())
}
