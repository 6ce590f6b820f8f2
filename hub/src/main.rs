//! `hub`: subscribes to `<prefix>/+/#`, decodes the agents' messages, and prints one line per
//! event and status change (`--json`: JSON lines), with per-device delivery totals on exit.
//! `hub bridge` also republishes every decoded message as JSON; `hub rebirth <device>` asks an
//! agent to publish its birth again. This file only wires: command line, logging, exit status.

mod app;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    // Usage errors exit 2, naming the flag.
    let cli = app::cli::Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match app::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hub: {e:#}");
            ExitCode::FAILURE
        }
    }
}
