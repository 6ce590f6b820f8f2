//! The hub's MQTT connection, shared by the monitoring modes ([`super::monitor`]) and
//! `hub serve` ([`super::serve`]): rumqttc's event loop has ONE owner, a task that polls it
//! without pause and forwards what the modes need over a channel. Nothing ever races
//! `EventLoop::poll` against a timer or a signal, so a poll in flight is never dropped: a
//! broker that takes seconds to accept, or a slow TLS handshake, delays the connection but
//! does not cancel it. The owner subscribes after every CONNACK, logs connects and retries,
//! and backs off while the broker is away; a refused login, a failed TLS handshake or a
//! refused subscription to the fleet's topics ends the session (retrying cannot fix those).
//! The mode's side, [`Session::next`], is cancel-safe: it can sit in a `select!` with timers.

use std::{sync::Arc, time::Duration};

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, SubscribeFilter,
    SubscribeReasonCode,
};
use tokio::{
    sync::{Notify, mpsc},
    task::JoinHandle,
};

use super::broker::{describe, is_fatal};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Messages the owner task holds for a mode that is busy (then it stops reading the socket,
/// and the broker queues for the hub).
const FORWARD: usize = 256;

/// What the connection brings a mode.
#[derive(Debug)]
pub enum Next {
    /// Subscribed to the fleet's topics (after every connect); the mode announces itself.
    Subscribed,
    /// A message on one of the subscribed topics.
    Message(Publish),
    /// The event loop took requests from the client's queue: there is room for more.
    Room,
}

/// What the owner task forwards.
enum Update {
    SubAck(Vec<SubscribeReasonCode>),
    Message(Publish),
    Fatal(String),
}

/// One MQTT connection: the client to publish with, and the owner task's updates.
pub struct Session {
    pub client: AsyncClient,
    updates: mpsc::Receiver<Update>,
    room: Arc<Notify>,
    owner: JoinHandle<()>,
    broker: String,
    /// The fleet's filter first, then the others (the bridge's).
    filters: Vec<String>,
}

/// What the owner task needs to know.
struct Owner {
    eventloop: EventLoop,
    client: AsyncClient,
    tx: mpsc::Sender<Update>,
    room: Arc<Notify>,
    broker: String,
    filters: Vec<String>,
}

impl Session {
    /// Connects to `broker` (the URL, for messages) with `opts`, a client queue of `capacity`
    /// requests, and subscribes to `filter` and `extra` (QoS 1) on every connect. Must be
    /// called inside a tokio runtime: the owner task is spawned on it.
    pub fn start(
        opts: MqttOptions,
        capacity: usize,
        broker: &str,
        filter: String,
        extra: Vec<String>,
    ) -> Self {
        let (client, eventloop) = AsyncClient::new(opts, capacity);
        let (tx, updates) = mpsc::channel(FORWARD);
        let room = Arc::new(Notify::new());
        let filters: Vec<String> = std::iter::once(filter).chain(extra).collect();
        let owner = tokio::spawn(
            Owner {
                eventloop,
                client: client.clone(),
                tx,
                room: room.clone(),
                broker: broker.to_owned(),
                filters: filters.clone(),
            }
            .run(),
        );
        Self {
            client,
            updates,
            room,
            owner,
            broker: broker.to_owned(),
            filters,
        }
    }

    /// The fleet's filter.
    pub fn filter(&self) -> &str {
        &self.filters[0]
    }

    /// The next thing the mode should act on; an error ends the mode. Cancel-safe.
    pub async fn next(&mut self) -> anyhow::Result<Next> {
        loop {
            let update = tokio::select! {
                biased;
                u = self.updates.recv() => u,
                () = self.room.notified() => return Ok(Next::Room),
            };
            match update {
                Some(Update::Message(p)) => return Ok(Next::Message(p)),
                Some(Update::SubAck(codes)) => {
                    if self.suback(&codes)? {
                        return Ok(Next::Subscribed);
                    }
                }
                Some(Update::Fatal(why)) => anyhow::bail!("{}: {why}", self.broker),
                None => anyhow::bail!("{}: the MQTT connection task stopped", self.broker),
            }
        }
    }

    /// Checks a SUBACK: the fleet's filter must be granted; a refused extra filter is logged.
    /// False for a SUBACK that is not ours.
    fn suback(&self, codes: &[SubscribeReasonCode]) -> anyhow::Result<bool> {
        if codes.len() != self.filters.len() {
            return Ok(false);
        }
        let refused = |i: usize| matches!(codes.get(i), Some(SubscribeReasonCode::Failure));
        if refused(0) {
            anyhow::bail!(
                "{} refused the subscription to {} (does the ACL let this user read it?)",
                self.broker,
                self.filter()
            );
        }
        for (_, t) in self
            .filters
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, _)| refused(*i))
        {
            log::warn!(
                "ha: {} refused the subscription to {t}: discovery configs are re-sent on reconnect only, not when Home Assistant starts (let the hub read {t}, or --no-ha)",
                self.broker
            );
        }
        log::info!("hub: subscribed to {} on {}", self.filter(), self.broker);
        Ok(true)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.owner.abort();
    }
}

impl Owner {
    /// Polls the event loop until the session is dropped or the connection cannot work.
    async fn run(mut self) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            let update = match self.eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    backoff = FIRST_BACKOFF;
                    log::info!("hub: connected to {}", self.broker);
                    self.subscribe();
                    continue;
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => Update::SubAck(ack.return_codes),
                Ok(Event::Incoming(Packet::Publish(p))) => Update::Message(p),
                Ok(Event::Outgoing(_)) => {
                    self.room.notify_one();
                    continue;
                }
                Ok(Event::Incoming(_)) => continue,
                Err(e) if is_fatal(&e) => Update::Fatal(describe(&e)),
                Err(e) => {
                    log::warn!(
                        "hub: broker {} unreachable ({}); retrying in {backoff:?}",
                        self.broker,
                        describe(&e)
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            let fatal = matches!(update, Update::Fatal(_));
            if self.tx.send(update).await.is_err() || fatal {
                return;
            }
        }
    }

    /// Subscribes from a task of its own: the client's queue may be full, and only this task
    /// empties it.
    fn subscribe(&self) {
        let client = self.client.clone();
        let filters: Vec<SubscribeFilter> = self
            .filters
            .iter()
            .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce))
            .collect();
        tokio::spawn(async move {
            if let Err(e) = client.subscribe_many(filters).await {
                log::warn!("hub: subscribing: {e}");
            }
        });
    }
}
