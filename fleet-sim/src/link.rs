//! One MQTT connection and the devices that publish through it: a device of its own (its will
//! is real: the socket is dropped for an outage, and the broker publishes the will) or many
//! devices sharing it (the fleet of a thousand: each device's will is published by the
//! simulator itself, retained, when its outage starts). The task owns rumqttc's event loop,
//! advances the devices' virtual clock with the wall clock (catching up if it falls behind),
//! hands their queued publications to the client in order, and counts what the broker
//! acknowledged (PUBACK) per device: those are the figures the hub must match.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use rumqttc::{AsyncClient, ConnectionError, Event, LastWill, MqttOptions, Outgoing, Packet, QoS};
use tokio::{
    sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel},
    task::JoinHandle,
    time::{Instant, sleep_until, timeout_at},
};

use crate::{
    device::{Device, Out, Tally},
    report::Totals,
};

/// Where a link connects and how long it runs.
pub struct LinkPlan {
    /// Broker options (client id, TLS, credentials) for this link.
    pub options: MqttOptions,
    pub prefix: String,
    pub tick: Duration,
    /// Ticks to simulate; then every device finishes (shutdown) and the link drains.
    pub ticks: u64,
    /// The time of tick 0.
    pub start: Instant,
    /// How long after the last tick unacknowledged messages are waited for.
    pub drain: Duration,
}

/// What a link did: per device, what the broker acknowledged.
pub struct LinkOutcome {
    pub devices: Vec<(Device, Totals)>,
    /// Connection errors not caused by the simulation itself.
    pub errors: u64,
    /// Messages never acknowledged (drain timed out).
    pub unacked: u64,
    /// Ticks processed later than 2 ticks after their time.
    pub late_ticks: u64,
}

/// A connection: its client, and the task that polls its event loop. The event loop is never
/// raced against timers (dropping `poll` mid-connect would drop the half-open socket and fire
/// the will), so it lives in its own task; dropping the connection aborts that task, which
/// closes the socket without a DISCONNECT.
struct Conn {
    client: AsyncClient,
    poller: JoinHandle<()>,
    generation: u64,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// An event of the connection of a generation.
type Polled = (u64, Result<Event, ConnectionError>);

struct Link {
    plan: LinkPlan,
    own: bool,
    devices: Vec<Device>,
    totals: Vec<Totals>,
    topics: Vec<String>,
    conn: Option<Conn>,
    connected: bool,
    closing: bool,
    /// Handed to the client, not yet given a packet id.
    sent: VecDeque<(usize, Tally, usize)>,
    inflight: HashMap<u16, (usize, Tally, usize)>,
    next_tick: u64,
    errors: u64,
    late_ticks: u64,
    generation: u64,
    events_tx: UnboundedSender<Polled>,
    events: UnboundedReceiver<Polled>,
}

/// Runs `devices` over one connection (`own`: the single device's own) to the end.
pub async fn run(plan: LinkPlan, devices: Vec<Device>, own: bool) -> LinkOutcome {
    let topics = devices
        .iter()
        .map(|d| format!("{}/{}/", plan.prefix, d.id))
        .collect();
    let totals = devices.iter().map(|_| Totals::default()).collect();
    let (events_tx, events) = unbounded_channel();
    let mut link = Link {
        plan,
        own,
        devices,
        totals,
        topics,
        conn: None,
        connected: false,
        closing: false,
        sent: VecDeque::new(),
        inflight: HashMap::new(),
        next_tick: 0,
        errors: 0,
        late_ticks: 0,
        generation: 0,
        events_tx,
        events,
    };
    if !own {
        link.open(None);
    }
    link.drive().await;
    let unacked = (link.sent.len() + link.inflight.len()) as u64
        + link
            .devices
            .iter()
            .map(|d| d.queue.len() as u64)
            .sum::<u64>();
    LinkOutcome {
        devices: link.devices.into_iter().zip(link.totals).collect(),
        errors: link.errors,
        unacked,
        late_ticks: link.late_ticks,
    }
}

impl Link {
    fn open(&mut self, will: Option<(String, Vec<u8>)>) {
        let mut opts = self.plan.options.clone();
        if let Some((topic, payload)) = will {
            opts.set_last_will(LastWill::new(topic, payload, QoS::AtLeastOnce, true));
        }
        let cap = if self.own { 64 } else { 1024 };
        let (client, mut eventloop) = AsyncClient::new(opts, cap);
        self.generation += 1;
        let generation = self.generation;
        let tx = self.events_tx.clone();
        let poller = tokio::spawn(async move {
            loop {
                let ev = eventloop.poll().await;
                let done = matches!(ev, Ok(Event::Outgoing(Outgoing::Disconnect)));
                let failed = ev.is_err();
                if tx.send((generation, ev)).is_err() || done {
                    return;
                }
                if failed {
                    // rumqttc reconnects on the next poll.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        self.conn = Some(Conn {
            client,
            poller,
            generation,
        });
        self.connected = false;
        self.closing = false;
    }

    fn tick_at(&self, tick: u64) -> Instant {
        self.plan.start + self.plan.tick * u32::try_from(tick).unwrap_or(u32::MAX)
    }

    async fn drive(&mut self) {
        let mut drain_deadline = None;
        loop {
            self.advance();
            self.pump();
            let finished = self.next_tick > self.plan.ticks;
            if finished && self.idle() {
                if !self.own {
                    self.disconnect().await;
                }
                return;
            }
            if finished && drain_deadline.is_none() {
                drain_deadline = Some(Instant::now() + self.plan.drain);
            }
            let wake = match drain_deadline {
                Some(d) => d,
                None => self.tick_at(self.next_tick),
            };
            if drain_deadline.is_some_and(|d| Instant::now() >= d) {
                log::warn!("sim: link gave up waiting for acknowledgements");
                return;
            }
            tokio::select! {
                Some((generation, ev)) = self.events.recv() => {
                    if self.conn.as_ref().is_some_and(|c| c.generation == generation) {
                        self.on_event(ev);
                    }
                }
                _ = sleep_until(wake) => {}
            }
        }
    }

    /// Every device steps through the ticks whose time has come; after the last one, each
    /// finishes.
    fn advance(&mut self) {
        let now = Instant::now();
        while self.next_tick < self.plan.ticks && self.tick_at(self.next_tick) <= now {
            if now.duration_since(self.tick_at(self.next_tick)) > self.plan.tick * 2 {
                self.late_ticks += 1;
            }
            for d in &mut self.devices {
                d.tick(self.next_tick);
            }
            self.next_tick += 1;
        }
        if self.next_tick == self.plan.ticks && self.tick_at(self.next_tick) <= now {
            for d in &mut self.devices {
                d.finish(self.plan.ticks);
            }
            self.next_tick += 1;
        }
    }

    fn idle(&self) -> bool {
        self.sent.is_empty()
            && self.inflight.is_empty()
            && self.devices.iter().all(|d| d.queue.is_empty())
            && (!self.own || self.conn.is_none())
    }

    fn nothing_in_flight(&self) -> bool {
        self.sent.is_empty() && self.inflight.is_empty()
    }

    /// Hands queued items to the client, each device's in order, until each is blocked.
    fn pump(&mut self) {
        for i in 0..self.devices.len() {
            while let Some(front) = self.devices[i].queue.front() {
                match front {
                    Out::Publish { .. } => {
                        let Some(Conn { client, .. }) =
                            self.conn.as_ref().filter(|_| self.connected)
                        else {
                            break;
                        };
                        let Some(Out::Publish {
                            leaf,
                            payload,
                            retain,
                            tally,
                        }) = self.devices[i].queue.pop_front()
                        else {
                            break;
                        };
                        let topic = format!("{}{leaf}", self.topics[i]);
                        let bytes = payload.len();
                        if client
                            .try_publish(topic, QoS::AtLeastOnce, retain, payload.clone())
                            .is_err()
                        {
                            self.devices[i].queue.push_front(Out::Publish {
                                leaf,
                                payload,
                                retain,
                                tally,
                            });
                            // The client's queue is full: nobody else gets in either.
                            return;
                        }
                        self.sent.push_back((i, tally, bytes));
                    }
                    Out::Drop => {
                        if !self.nothing_in_flight() {
                            break;
                        }
                        // Closing the socket without DISCONNECT: the broker sends the will.
                        self.conn = None;
                        self.connected = false;
                        self.devices[i].queue.pop_front();
                    }
                    Out::Disconnect => {
                        if !self.nothing_in_flight() || self.closing {
                            break;
                        }
                        if let Some(c) = &self.conn
                            && c.client.try_disconnect().is_ok()
                        {
                            self.closing = true;
                        }
                        self.devices[i].queue.pop_front();
                    }
                    Out::Connect { at, will } => {
                        if self.next_tick < *at || (self.own && self.conn.is_some()) {
                            break;
                        }
                        if self.own {
                            let will = (format!("{}status", self.topics[i]), will.clone());
                            self.open(Some(will));
                            // The birth waits for the CONNACK.
                        }
                        self.devices[i].queue.pop_front();
                    }
                }
            }
        }
    }

    fn on_event(&mut self, ev: Result<Event, ConnectionError>) {
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => self.connected = true,
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                if let Some(s) = self.sent.pop_front() {
                    self.inflight.insert(pkid, s);
                }
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                if let Some((i, tally, bytes)) = self.inflight.remove(&ack.pkid) {
                    self.totals[i].count(&tally, bytes);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if self.closing => {
                self.conn = None;
                self.connected = false;
                self.closing = false;
            }
            Ok(_) => {}
            Err(_) if self.closing => {
                self.conn = None;
                self.connected = false;
                self.closing = false;
            }
            Err(e) => {
                self.errors += 1;
                self.connected = false;
                log::warn!("sim: connection error ({e}); reconnecting");
            }
        }
    }
}

impl Link {
    /// A clean DISCONNECT of a shared link, waiting a little for it to go out.
    async fn disconnect(&mut self) {
        let Some(c) = &self.conn else { return };
        if c.client.try_disconnect().is_err() {
            return;
        }
        let generation = c.generation;
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Ok(Some((g, ev))) = timeout_at(deadline, self.events.recv()).await {
            if g == generation && matches!(ev, Ok(Event::Outgoing(Outgoing::Disconnect))) {
                break;
            }
        }
        self.conn = None;
    }
}
