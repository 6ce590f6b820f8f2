//! One-shot publishing for `hub rebirth <device>` and `hub forget <device>`: publishes a few
//! QoS 1 messages and exits once the broker acknowledged every one (PUBACK), within
//! `--timeout`. While the broker is unreachable it retries until then; a refused login or a
//! failed TLS handshake ends it at once. A PUBACK means the broker took the message, not that
//! anyone was listening (MQTT 3.1.1 acknowledges even a publish the ACL silently drops).

use std::{collections::BTreeSet, time::Duration};

use anyhow::Context as _;
use edge_hub::ha::Publication;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::time::{Instant, sleep, timeout_at};

use super::broker::{describe, is_fatal};

/// Publishes `pubs`; returns once the broker acknowledged all of them.
pub async fn run(
    opts: MqttOptions,
    broker: &str,
    pubs: &[Publication],
    wait: Duration,
) -> anyhow::Result<()> {
    let (client, mut eventloop) = AsyncClient::new(opts, pubs.len() + 2);
    let deadline = Instant::now() + wait;
    let topics = pubs
        .iter()
        .map(|p| p.topic.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut requested = false;
    let mut sent = BTreeSet::new();
    let mut acked = 0;
    let mut last_error = None;
    loop {
        let Ok(event) = timeout_at(deadline, eventloop.poll()).await else {
            anyhow::bail!(
                "{broker}: no acknowledgement for {topics} within {wait:?}{}",
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
                    for p in pubs {
                        client
                            .publish(&p.topic, QoS::AtLeastOnce, p.retain, p.payload.clone())
                            .await
                            .with_context(|| format!("queueing the message for {}", p.topic))?;
                    }
                    requested = true;
                }
            }
            Ok(Event::Outgoing(Outgoing::Publish(id))) => {
                sent.insert(id);
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) if sent.remove(&ack.pkid) => {
                acked += 1;
                if acked == pubs.len() {
                    log::info!("hub: {broker} acknowledged {topics}");
                    disconnect(&client, &mut eventloop).await;
                    return Ok(());
                }
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
