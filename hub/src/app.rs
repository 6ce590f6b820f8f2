//! The `hub` binary's parts: the command line ([`cli`]), the monitoring and bridging loop
//! ([`monitor`]), the server with history, web view and exporter ([`serve`], [`bridge`]), the
//! history from the command line ([`query`]), the rebirth command ([`rebirth`]), what a broker
//! error means ([`broker`]) and standard output ([`output`]). [`run`] picks the mode.

pub mod bridge;
pub mod broker;
pub mod cli;
pub mod monitor;
pub mod output;
pub mod query;
pub mod rebirth;
pub mod serve;

use anyhow::Context as _;
use serde_json::json;

use self::{
    cli::{Cli, Mode},
    output::Printer,
};

/// Runs the mode the command line asked for, on a current-thread runtime.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let pid = std::process::id();
    match cli.mode {
        None | Some(Mode::Bridge { .. }) => {
            let bridge = match cli.mode {
                Some(Mode::Bridge { bridge_prefix }) => {
                    Some(bridge_prefix.unwrap_or_else(|| format!("{}-json", cli.conn.prefix)))
                }
                _ => None,
            };
            let mut opts = cli::options(&cli.conn.link(format!("edge-hub-{pid}"))?)?;
            if cli.persistent_session {
                opts.set_clean_session(false);
            }
            let m = monitor::Monitor {
                broker: cli.conn.broker.clone(),
                prefix: cli.conn.prefix.clone(),
                json: cli.json,
                bridge,
                totals_every: cli.totals_every,
            };
            rt.block_on(monitor::run(opts, m))
        }
        Some(Mode::Serve(args)) => {
            let mut opts = cli::options(&cli.conn.link(format!("edge-hub-{pid}"))?)?;
            if cli.persistent_session {
                opts.set_clean_session(false);
            }
            let listen = args.listen;
            let cfg = serve::Config::new(
                args,
                cli.conn.broker.clone(),
                cli.conn.prefix.clone(),
                cli.json,
            )?;
            serve::run(&rt, opts, listen, cfg)
        }
        Some(Mode::Query(args)) => query::run(&args, cli.json),
        Some(Mode::Rebirth { device, timeout }) => {
            if cli.totals_every.is_some() {
                anyhow::bail!("--totals-every applies to monitoring, not to `hub rebirth`");
            }
            let opts = cli::options(&cli.conn.link(format!("edge-hub-rebirth-{pid}"))?)?;
            let topic = format!("{}/{device}/cmd/rebirth", cli.conn.prefix);
            rt.block_on(rebirth::run(opts, &cli.conn.broker, &topic, timeout))?;
            Printer::new(cli.json).either(
                format!("REBIRTH requested from {device} on {topic} (acknowledged by the broker)"),
                json!({"type": "rebirth", "device": device, "topic": topic, "acknowledged": true}),
            )?;
            Ok(())
        }
    }
}
