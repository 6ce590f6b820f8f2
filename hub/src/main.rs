//! `hub`: subscribes to `<prefix>/+/#`, decodes, checks sequence numbers, and prints one line
//! per event and status change (`--json`: JSON lines). `hub bridge` also republishes every
//! decoded message as JSON under `<bridge-prefix>/<device>/<leaf>` for ordinary dashboards.

use std::{io::Write as _, process::ExitCode, time::Duration};

use anyhow::Context as _;
use edge_hub::{Hub, Outcome, render};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

const USAGE: &str = "usage: hub [bridge] [--broker mqtt://HOST:PORT] [--prefix edge] [--json] [--bridge-prefix PREFIX-json]";

struct Args {
    broker: String,
    prefix: String,
    json: bool,
    bridge: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        broker: "mqtt://127.0.0.1:1883".into(),
        prefix: "edge".into(),
        json: false,
        bridge: None,
    };
    let mut bridge = false;
    let mut bridge_prefix = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "bridge" => bridge = true,
            "--broker" => a.broker = it.next().ok_or("--broker needs a URL")?,
            "--prefix" => a.prefix = it.next().ok_or("--prefix needs a value")?,
            "--bridge-prefix" => {
                bridge_prefix = Some(it.next().ok_or("--bridge-prefix needs a value")?)
            }
            "--json" => a.json = true,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if a.prefix.is_empty() || a.prefix.contains(['+', '#']) {
        return Err(format!(
            "--prefix {:?} must be a plain topic level",
            a.prefix
        ));
    }
    if bridge {
        a.bridge = Some(bridge_prefix.unwrap_or_else(|| format!("{}-json", a.prefix)));
    }
    Ok(a)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("hub: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hub: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn options(url: &str) -> anyhow::Result<MqttOptions> {
    let rest = url
        .strip_prefix("mqtt://")
        .with_context(|| format!("--broker {url:?}: only mqtt:// is supported"))?;
    let (host, port) = rest
        .trim_end_matches('/')
        .rsplit_once(':')
        .unwrap_or((rest, "1883"));
    let port: u16 = port
        .parse()
        .with_context(|| format!("--broker {url:?}: bad port"))?;
    let mut o = MqttOptions::new(format!("edge-hub-{}", std::process::id()), host, port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(2 << 20, 2 << 20);
    Ok(o)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(options(&args.broker)?, 256);
    let filter = format!("{}/+/#", args.prefix);
    let mut hub = Hub::new(&args.prefix);
    let mut stdout = std::io::stdout().lock();
    let mut backoff = Duration::from_millis(200);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    loop {
        let event = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(200);
                client
                    .subscribe(&filter, QoS::AtLeastOnce)
                    .await
                    .context("subscribing")?;
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                log::info!("hub: subscribed to {filter} on {}", args.broker);
                if args.json {
                    writeln!(
                        stdout,
                        "{}",
                        serde_json::json!({"type": "hub", "state": "subscribed", "filter": filter})
                    )?;
                    stdout.flush()?;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let outcome = hub.handle(&p.topic, &p.payload);
                if let Outcome::Rejected {
                    topic,
                    reason,
                    total,
                } = &outcome
                {
                    log::warn!(
                        "hub: rejected payload on {topic}: {reason} ({total} rejected so far)"
                    );
                }
                if let (
                    Some(bridge),
                    Outcome::Accepted {
                        device, message, ..
                    },
                ) = (&args.bridge, &outcome)
                {
                    let topic = format!("{bridge}/{device}/{}", message.topic_leaf());
                    let retain = message.topic_leaf() == "status";
                    let body = serde_json::to_vec(&render::message_json(device, message))?;
                    client
                        .try_publish(topic, QoS::AtLeastOnce, retain, body)
                        .context("bridging")?;
                }
                if args.json {
                    for v in render::json(&outcome) {
                        writeln!(stdout, "{v}")?;
                    }
                } else {
                    for line in render::text(&outcome) {
                        writeln!(stdout, "{line}")?;
                    }
                }
                stdout.flush()?;
            }
            Ok(_) => {}
            Err(e) => {
                log::warn!(
                    "hub: broker {} unreachable ({e}); retrying in {backoff:?}",
                    args.broker
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    let c = hub.counters;
    log::info!(
        "hub: accepted {} rejected {} gaps {} lost batches {} duplicates {}",
        c.accepted,
        c.rejected,
        c.gaps,
        c.lost_batches,
        c.duplicates
    );
    Ok(())
}
