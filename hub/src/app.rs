//! The `hub` binary's parts: the command line ([`cli`]), the monitoring and bridging loop
//! ([`monitor`], with Home Assistant discovery in bridge mode), the server with history, web
//! view and exporter ([`serve`], [`bridge`]), the history from the command line ([`query`]),
//! the one-shot publishers behind `hub rebirth` and `hub forget` ([`oneshot`]), the MQTT
//! connection that monitoring and serving share ([`session`]), what a broker error means
//! ([`broker`]) and standard output ([`output`]). [`run`] picks the mode.

pub mod bridge;
pub mod broker;
pub mod cli;
pub mod monitor;
pub mod oneshot;
pub mod output;
pub mod query;
pub mod serve;
pub mod session;

use anyhow::Context as _;
use edge_hub::ha::{self, Publication};
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
            let (bridge, ha) = match &cli.mode {
                Some(Mode::Bridge { bridge_prefix, ha }) => {
                    let bridge = bridge_prefix
                        .clone()
                        .unwrap_or_else(|| format!("{}-json", cli.conn.prefix));
                    let ha = ha.settings(&bridge)?;
                    (Some(bridge), ha)
                }
                _ => (None, None),
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
                ha,
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
            if let Some(ha) = &cfg.ha {
                opts.set_last_will(bridge::hub_will(ha));
            }
            serve::run(&rt, opts, listen, cfg)
        }
        Some(Mode::Query(args)) => query::run(&args, cli.json),
        Some(Mode::Rebirth { device, timeout }) => {
            if cli.totals_every.is_some() {
                anyhow::bail!("--totals-every applies to monitoring, not to `hub rebirth`");
            }
            let opts = cli::options(&cli.conn.link(format!("edge-hub-rebirth-{pid}"))?)?;
            let topic = format!("{}/{device}/cmd/rebirth", cli.conn.prefix);
            let command = Publication {
                topic: topic.clone(),
                payload: Vec::new(),
                retain: false,
            };
            rt.block_on(oneshot::run(opts, &cli.conn.broker, &[command], timeout))?;
            Printer::new(cli.json).either(
                format!("REBIRTH requested from {device} on {topic} (acknowledged by the broker)"),
                json!({"type": "rebirth", "device": device, "topic": topic, "acknowledged": true}),
            )?;
            Ok(())
        }
        Some(Mode::Forget {
            device,
            bridge_prefix,
            ha_prefix,
            timeout,
        }) => {
            if cli.totals_every.is_some() {
                anyhow::bail!("--totals-every applies to monitoring, not to `hub forget`");
            }
            let bridge = bridge_prefix.unwrap_or_else(|| format!("{}-json", cli.conn.prefix));
            let settings = ha::Settings::new(&ha_prefix, &bridge)
                .map_err(|e| anyhow::anyhow!("--ha-prefix/--bridge-prefix: {e}"))?;
            let mut pubs = ha::forget_publications(&settings, &device);
            pubs.push(Publication {
                topic: format!("{}/{device}/status", cli.conn.prefix),
                payload: Vec::new(),
                retain: true,
            });
            let topics: Vec<String> = pubs.iter().map(|p| p.topic.clone()).collect();
            let opts = cli::options(&cli.conn.link(format!("edge-hub-forget-{pid}"))?)?;
            log::info!("hub: forgetting {device}: clearing {}", topics.join(", "));
            rt.block_on(oneshot::run(opts, &cli.conn.broker, &pubs, timeout))?;
            Printer::new(cli.json).either(
                edge_hub::escape(&format!(
                    "FORGOTTEN {device}: cleared {} (acknowledged by the broker)",
                    topics.join(" ")
                ))
                .into_owned(),
                json!({"type": "forgotten", "device": device, "cleared": topics, "acknowledged": true}),
            )?;
            Ok(())
        }
    }
}
