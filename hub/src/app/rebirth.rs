//! `hub rebirth <device>`: publishes an empty, non-retained QoS 1 message on
//! `<prefix>/<device>/cmd/rebirth` and exits once the broker acknowledged it (PUBACK), within
//! `--timeout`. While the broker is unreachable it retries until then; a refused login or a
//! failed TLS handshake ends it at once. A PUBACK means the broker took the command, not that
//! an agent was listening (MQTT 3.1.1 acknowledges even a publish the ACL silently drops).

use std::time::Duration;

use anyhow::Context as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::{Instant, sleep, timeout_at};

use super::broker::{describe, is_fatal};

/// Asks for the rebirth; returns once the broker acknowledged it.
pub async fn run(
    opts: MqttOptions,
    broker: &str,
    topic: &str,
    wait: Duration,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(opts, 8);
    let deadline = Instant::now() + wait;
    let mut requested = false;
    let mut pkid = None;
    let mut last_error = None;
    loop {
        let Ok(event) = timeout_at(deadline, eventloop.poll()).await else {
            anyhow::bail!(
                "{broker}: no acknowledgement for {topic} within {wait:?}{}",
                match (&last_error, requested) {
                    (Some(e), _) => format!(" (broker unreachable: {e})"),
                    (None, true) => " (connected, but the broker did not answer)".into(),
                    (None, false) => " (no answer to the connect)".into(),
                }
            );
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                last_error = None;
                // Once: after a reconnect rumqttc itself sends what is still unacknowledged.
                if !requested {
                    client
                        .publish(topic, QoS::AtLeastOnce, false, Vec::<u8>::new())
                        .await
                        .context("queueing the rebirth request")?;
                    requested = true;
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(id))) => pkid = Some(id),
            Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == pkid => {
                log::info!("hub: {broker} acknowledged {topic}");
                disconnect(&client, &mut eventloop).await;
                return Ok(());
            }
            Ok(_) => {}
            Err(e) if is_fatal(&e) => anyhow::bail!("{broker}: {}", describe(&e)),
            Err(e) => {
                let why = describe(&e);
                if last_error.as_ref() != Some(&why) {
                    log::warn!(
                        "hub: broker {broker} unreachable ({why}); retrying for up to {wait:?}"
                    );
                }
                last_error = Some(why);
                sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// A clean DISCONNECT, waiting a little for it to go out.
async fn disconnect(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop) {
    if client.disconnect().await.is_err() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(ev)) = timeout_at(deadline, eventloop.poll()).await {
        if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
            break;
        }
    }
}
