//! The publisher: the single owner of rumqttc's event loop, on a dedicated thread with a
//! current-thread tokio runtime. rumqttc's request channel has capacity 0, so the outbox is the
//! only place a message waits; an outbox entry leaves it only on the broker's PUBACK.
//!
//! On every connect: the will for that connection is the death numbered like its birth
//! (Sparkplug's bdSeq), the birth goes out first (retained), then the unacknowledged backlog
//! in order, then live data. A `<prefix>/<device>/cmd/rebirth` message re-sends the birth.
//! On shutdown: the outbox drains, `Offline(Shutdown)` is published and acknowledged, then
//! DISCONNECT, and the socket is read until the broker closes it, so the will never fires.
//! If that cannot finish within the shutdown timeout, what is left goes to the spool or is
//! counted as dropped, and the log says which.

mod feeder;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use edge_wire::{Birth, Death, DeathCause, Message, encode};
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::{sync::Notify, task::JoinHandle, time::Instant};

use crate::outbox::{Outbox, Undelivered};
use feeder::{Feeder, Shared, Tag};

/// How long a DISCONNECT may take to be answered by the broker closing the socket.
const DRAIN: Duration = Duration::from_secs(2);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// Publishes in flight (sent, not yet acknowledged) on one connection.
const INFLIGHT: u16 = 32;

pub struct Topics {
    pub status: String,
    pub base: String,
    /// Where a rebirth command arrives.
    pub rebirth: String,
}

impl Topics {
    pub fn new(prefix: &str, device: &str) -> Self {
        let base = format!("{prefix}/{device}");
        Self {
            status: format!("{base}/status"),
            rebirth: format!("{base}/cmd/rebirth"),
            base,
        }
    }

    pub fn leaf(&self, leaf: &str) -> String {
        format!("{}/{leaf}", self.base)
    }
}

/// Tells the publisher that the pipeline has stopped (the outbox is closed).
#[derive(Clone, Default)]
pub struct Closing {
    flag: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Closing {
    pub fn close(&self) {
        self.flag.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.flag.load(Ordering::Acquire)
    }
}

/// How the publisher ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Everything acknowledged, goodbye acknowledged, disconnected.
    Clean,
    /// Gave up at the shutdown timeout.
    TimedOut(Undelivered),
}

/// Starts the publisher thread. It returns once the outbox is closed (see [`Closing`]) and
/// either settled cleanly or the shutdown timeout ran out.
pub fn spawn(
    mut opts: MqttOptions,
    topics: Topics,
    birth: Birth,
    outbox: Arc<Outbox>,
    closing: Closing,
    shutdown_timeout: Duration,
) -> anyhow::Result<std::thread::JoinHandle<Ended>> {
    opts.set_clean_session(true);
    opts.set_inflight(INFLIGHT);
    // The first connection's will names session 1, like the birth that will follow it.
    opts.set_last_will(will(&topics.status, &birth, 1)?);
    std::thread::Builder::new()
        .name("mqtt".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("mqtt: cannot start its runtime: {e}");
                    return Ended::TimedOut(outbox.abandon());
                }
            };
            let (client, eventloop) = AsyncClient::new(opts, 0);
            let conn = Connection {
                eventloop,
                client,
                topics: Arc::new(topics),
                birth,
                outbox,
                closing,
                shutdown_timeout,
                shared: Arc::new(Shared::new()),
                feeder: None,
            };
            rt.block_on(conn.run())
        })
        .context("spawning the mqtt thread")
}

/// The offline status of `birth`'s agent at the end of connection `session`.
fn death(birth: &Birth, session: u32, cause: DeathCause) -> Message {
    Message::Offline(Death {
        device: birth.device.clone(),
        boot_id: birth.boot_id.clone(),
        session,
        cause,
    })
}

/// The death certificate the broker publishes if connection `session` is lost.
fn will(status: &str, birth: &Birth, session: u32) -> anyhow::Result<LastWill> {
    let payload =
        encode(&death(birth, session, DeathCause::ConnectionLost)).context("encoding the will")?;
    Ok(LastWill::new(status, payload, QoS::AtLeastOnce, true))
}

struct Connection {
    eventloop: EventLoop,
    client: AsyncClient,
    topics: Arc<Topics>,
    birth: Birth,
    outbox: Arc<Outbox>,
    closing: Closing,
    shutdown_timeout: Duration,
    shared: Arc<Shared>,
    feeder: Option<JoinHandle<()>>,
}

impl Connection {
    async fn run(mut self) -> Ended {
        let mut backoff = Duration::from_millis(250);
        let mut deadline: Option<Instant> = None;
        let mut drain_until: Option<Instant> = None;
        let ended = loop {
            if deadline.is_none() && self.closing.is_closed() {
                deadline = Some(Instant::now() + self.shutdown_timeout);
            }
            let give_up_at = match (deadline, drain_until) {
                (Some(d), Some(t)) => Some(d.min(t)),
                (d, t) => d.or(t),
            };
            let connected = self.eventloop.network.is_some();
            // Cancelling poll() is safe while it connects; while connected it is only cancelled
            // at a deadline, after which this connection is never used again.
            let polled = tokio::select! {
                ev = self.eventloop.poll() => Some(ev),
                () = sleep_until(give_up_at) => None,
                () = self.closing.wake.notified(), if !connected && deadline.is_none() => continue,
            };
            let Some(polled) = polled else {
                if drain_until.is_some_and(|t| Instant::now() >= t) {
                    log::debug!("mqtt: the broker did not close the socket after DISCONNECT");
                    break Ended::Clean;
                }
                break self.give_up();
            };
            match polled {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(250);
                    self.connected(ack.code);
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => self.shared.tags().sent(pkid),
                Ok(Event::Outgoing(Outgoing::AwaitAck(pkid))) => self.shared.tags().collided(pkid),
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    let tag = self.shared.tags().acked(ack.pkid);
                    match tag {
                        Some(Tag::Item(id)) => self.outbox.ack(id),
                        Some(Tag::Birth) => log::debug!("mqtt: birth acknowledged"),
                        Some(Tag::Offline) => self.shared.offline_acked.notify_one(),
                        None => log::debug!("mqtt: ack for unknown packet {}", ack.pkid),
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == self.topics.rebirth => {
                    self.shared.rebirth.notify_one();
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    log::info!("mqtt: offline status acknowledged; DISCONNECT sent");
                    drain_until = Some(Instant::now() + DRAIN);
                }
                Ok(_) => {}
                Err(e) => {
                    if drain_until.is_some() {
                        log::info!("mqtt: disconnected cleanly");
                        break Ended::Clean;
                    }
                    self.lost();
                    log::warn!(
                        "mqtt: broker unreachable ({e}); {} messages queued; retrying in {backoff:?}",
                        self.outbox.len()
                    );
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = sleep_until(deadline) => {}
                        () = self.closing.wake.notified(), if deadline.is_none() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        if let Some(f) = self.feeder.take() {
            f.abort();
        }
        ended
    }

    /// A new connection: forget everything of the last one, then birth first, backlog next.
    fn connected(&mut self, code: rumqttc::ConnectReturnCode) {
        if let Some(f) = self.feeder.take() {
            f.abort();
        }
        // Nothing from an earlier connection may go out on this one: whatever it held is
        // still in the outbox and is sent again after the birth.
        self.eventloop.pending.clear();
        self.eventloop.state.events.clear();
        self.eventloop.state.collision = None;
        self.shared.tags().clear();
        self.outbox.rewind();
        self.birth.session += 1;
        match will(&self.topics.status, &self.birth, self.birth.session + 1) {
            Ok(w) => {
                self.eventloop.mqtt_options.set_last_will(w);
            }
            Err(e) => log::error!("mqtt: {e:#}"),
        }
        log::info!(
            "mqtt: connected ({code:?}); birth first (session {}), then {} queued messages",
            self.birth.session,
            self.outbox.len()
        );
        let feeder = Feeder {
            client: self.client.clone(),
            topics: self.topics.clone(),
            birth: self.birth.clone(),
            outbox: self.outbox.clone(),
            shared: self.shared.clone(),
        };
        self.feeder = Some(tokio::spawn(feeder.run()));
    }

    /// The connection dropped: its feeder stops; the outbox still holds everything unacked.
    fn lost(&mut self) {
        if let Some(f) = self.feeder.take() {
            f.abort();
        }
        self.shared.tags().clear();
    }

    fn give_up(&mut self) -> Ended {
        let left = self.outbox.abandon();
        log::warn!(
            "mqtt: shutdown timeout ({:?}) reached with {} messages ({} events) undelivered: {} kept in the spool for the next start, {} events counted as dropped",
            self.shutdown_timeout,
            left.messages,
            left.events,
            left.spooled_messages,
            left.dropped_events
        );
        Ended::TimedOut(left)
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
