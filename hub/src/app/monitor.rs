//! The monitoring modes (`hub`, `hub bridge`): on the hub's MQTT [`Session`] (which owns the
//! connection, subscribes to `<prefix>/+/#` on every connect and reconnects with backoff), it
//! hands each message to the library's `Hub`, prints what comes out, bridges decoded messages
//! as JSON, and prints the totals every `--totals-every` and on SIGINT/SIGTERM. A refused login
//! or a failed TLS handshake ends it: retrying cannot fix those.
//! In bridge mode the [`Bridge`] also announces the devices to Home Assistant: its topics are
//! subscribed with the fleet's, and its will (the hub's availability `offline`) is the
//! connection's. An empty retained status (`hub forget`) makes the hub forget the device: it is
//! not a rejected payload.

use std::time::Duration;

use anyhow::Context as _;
use edge_hub::{Counters, Hub, Outcome, escape, ha};
use rumqttc::{AsyncClient, MqttOptions};
use serde_json::json;
use tokio::{
    signal::unix::{SignalKind, signal},
    time::{Instant, interval_at},
};

use super::{
    bridge::{Bridge, hub_will},
    output::{Printer, hub_state},
    session::{Next, Session},
};

/// What to monitor and how to show it.
pub struct Monitor {
    /// The broker URL, for messages.
    pub broker: String,
    pub prefix: String,
    pub json: bool,
    /// Republish decoded messages as JSON under this prefix.
    pub bridge: Option<String>,
    /// Home Assistant discovery (bridge mode only).
    pub ha: Option<ha::Settings>,
    pub totals_every: Option<Duration>,
}

pub async fn run(mut opts: MqttOptions, m: Monitor) -> anyhow::Result<()> {
    if let (Some(_), Some(ha)) = (&m.bridge, &m.ha) {
        opts.set_last_will(hub_will(ha));
    }
    let mut bridge = m.bridge.clone().map(|p| Bridge::new(p, m.ha.clone()));
    let extra = bridge.as_ref().map(Bridge::filters).unwrap_or_default();
    let filter = format!("{}/+/#", m.prefix);
    let mut session = Session::start(opts, 256, &m.broker, filter.clone(), extra);
    let client = session.client.clone();
    let mut hub = Hub::new(&m.prefix);
    let mut out = Printer::new(m.json);
    let mut interrupt = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    // Without --totals-every the ticker exists but its branch is disabled.
    let period = m.totals_every.unwrap_or(Duration::from_secs(3600));
    let mut ticker = interval_at(Instant::now() + period, period);
    loop {
        // Each event may have made room in the client's queue for waiting discovery messages.
        if let Some(b) = &mut bridge {
            b.flush(&client);
        }
        let next = tokio::select! {
            next = session.next() => next?,
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            _ = ticker.tick(), if m.totals_every.is_some() => {
                out.totals(&hub)?;
                continue;
            }
        };
        let p = match next {
            Next::Subscribed => {
                out.state(hub_state("subscribed", json!({"filter": filter})))?;
                if let Some(b) = &mut bridge {
                    b.on_connect(&client);
                }
                continue;
            }
            Next::Room => continue,
            Next::Message(p) => p,
        };
        match route(&mut bridge, &client, &m.prefix, &p.topic, &p.payload) {
            Route::Taken => continue,
            Route::Cleared(device) => {
                // `hub forget`: not a rejected payload.
                out.either(
                    escape(&format!(
                        "FORGOTTEN {device} (its retained status was cleared)"
                    ))
                    .into_owned(),
                    json!({"type": "forgotten", "device": device}),
                )?;
                continue;
            }
            Route::Fleet => {}
        }
        let outcome = hub.handle(&p.topic, &p.payload);
        handled(&mut bridge, &client, &outcome);
        out.outcome(&outcome)?;
    }
    out.totals(&hub)?;
    stopping(&hub.counters);
    Ok(())
}

/// Where a message goes.
pub enum Route<'t> {
    /// The bridge took it (Home Assistant's status).
    Taken,
    /// This device's retained status was cleared (`hub forget`, a removed device): the bridge
    /// has forgotten it; the mode forgets it too. Not a rejected payload.
    Cleared(&'t str),
    /// The hub decodes it.
    Fleet,
}

/// The first step for every message, the same in every mode.
pub fn route<'t>(
    bridge: &mut Option<Bridge>,
    client: &AsyncClient,
    prefix: &str,
    topic: &'t str,
    payload: &[u8],
) -> Route<'t> {
    if let Some(b) = bridge
        && !topic.starts_with(&format!("{prefix}/"))
        && b.on_other(client, topic, payload)
    {
        return Route::Taken;
    }
    match ha::cleared_status(prefix, topic, payload) {
        Some(device) => {
            if let Some(b) = bridge {
                b.on_cleared(client, device);
            }
            Route::Cleared(device)
        }
        None => Route::Fleet,
    }
}

/// After the hub handled a message: the log line it deserves, and the bridge's share.
pub fn handled(bridge: &mut Option<Bridge>, client: &AsyncClient, outcome: &Outcome) {
    note(outcome);
    if let (
        Some(b),
        Outcome::Accepted {
            device, message, ..
        },
    ) = (bridge, outcome)
    {
        b.on_accepted(client, device, message);
    }
}

/// The last line of a mode.
pub fn stopping(c: &Counters) {
    log::info!(
        "hub: stopping; accepted {} duplicates {} ignored {} rejected {}",
        c.accepted,
        c.duplicates,
        c.ignored,
        c.rejected_total()
    );
}

/// Logs what the operator should know about one outcome.
pub fn note(outcome: &Outcome) {
    match outcome {
        Outcome::Rejected {
            topic,
            reason,
            total,
            ..
        } => log::warn!(
            "hub: rejected payload on {}: {} ({total} rejected so far)",
            escape(topic),
            escape(reason)
        ),
        Outcome::Duplicate {
            device,
            boot_id,
            run_id,
            seq,
        } => log::debug!(
            "hub: duplicate batch {seq} of {} (boot {}, run {run_id:016x}) not shown again",
            escape(device),
            escape(boot_id)
        ),
        Outcome::Ignored { topic } => log::debug!("hub: ignored command on {}", escape(topic)),
        Outcome::Accepted { .. } => {}
    }
}
