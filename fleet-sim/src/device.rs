//! One simulated device on a virtual clock of ticks: what its agent would publish, tick by
//! tick, as an ordered queue of [`Out`] items (publications, and for a device with its own MQTT
//! connection: connect with a will, drop, disconnect). Births carry schema 2's run id,
//! session, probes, rings and queue caps; batches carry consecutive seqs per run and the run's
//! ring drops so far (totals, as schema 2 has them; a batch follows every new drop); metrics
//! carry board health, the busiest processes and the agent's cumulative counters. Outages
//! (the link dies; the will says `ConnectionLost`; batches made meanwhile wait and follow the
//! next birth, whose session is one higher) and restarts (`Shutdown`, a new run id, seq and
//! session from the start) come from the device's schedule. Nothing here depends on the
//! network or the wall clock except the `unix_ms` stamps, so a seed replays the same fleet.

use std::collections::{BTreeMap, VecDeque};

use edge_wire::{
    AgentStats, AttachMethod, Birth, Death, DeathCause, DropCount, Event, EventBatch, Message,
    Metrics, ProbeInfo, ProbeState, QueueInfo, RingBufferInfo, bounded, encode,
};

use crate::{
    model::{Board, Mix},
    rng::Rng,
};

/// What the whole fleet does, in ticks.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub seed: u64,
    pub id_prefix: String,
    pub tick_ms: u64,
    /// Events per second per device.
    pub rate: f64,
    /// A batch closes when its oldest event is this many ticks old, or when full.
    pub batch_ticks: u64,
    pub batch_max_events: usize,
    pub metrics_ticks: u64,
    /// Mean ticks between outages / restarts of one device (None: never).
    pub outage_every: Option<u64>,
    pub outage_ticks: u64,
    pub restart_every: Option<u64>,
    /// Each device has its own MQTT connection (wills are real) or shares one.
    pub own_link: bool,
    pub mix: Mix,
    /// Wall-clock time of tick 0, for `unix_ms` stamps.
    pub epoch_ms: u64,
}

/// What a publication counts for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tally {
    Birth,
    Death(DeathCause),
    Metrics,
    Batch {
        events: u64,
        drops: Vec<(String, u64)>,
    },
}

/// One item of a device's outbound queue, handled in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// Publish on `<prefix>/<device>/<leaf>` with QoS 1.
    Publish {
        leaf: &'static str,
        payload: Vec<u8>,
        retain: bool,
        tally: Tally,
    },
    /// Own link: once everything sent is acknowledged, close the socket without a DISCONNECT
    /// (the broker then publishes the will).
    Drop,
    /// Own link: once everything sent is acknowledged, a clean DISCONNECT (no will).
    Disconnect,
    /// Wait for tick `at`; own link: then connect with this will (a `ConnectionLost` death).
    Connect { at: u64, will: Vec<u8> },
}

/// The agent's own counters, reset by a restart.
#[derive(Clone, Debug, Default)]
struct Agent {
    events: u64,
    batches: u64,
    drops: BTreeMap<&'static str, u64>,
}

pub struct Device {
    pub id: String,
    boot_id: String,
    rng: Rng,
    board: Board,
    plan: Plan,
    run_id: u64,
    session: u32,
    seq: u32,
    agent: Agent,
    /// Events of the open batch with the tick each happened at.
    pending: Vec<(u64, Event)>,
    outage_until: Option<u64>,
    next_outage: Option<u64>,
    next_restart: Option<u64>,
    next_metrics: u64,
    pub outages: u64,
    pub restarts: u64,
    pub queue: VecDeque<Out>,
}

impl Device {
    /// Device number `index` of the fleet, born at tick 0.
    pub fn new(plan: &Plan, index: u32) -> Self {
        let mut rng = Rng::stream(plan.seed, u64::from(index));
        let board = Board::new(&mut rng);
        let boot_id = format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64());
        let next_outage = plan.outage_every.map(|e| jitter(&mut rng, e));
        let next_restart = plan.restart_every.map(|e| jitter(&mut rng, e));
        let next_metrics = rng.below(plan.metrics_ticks.max(1));
        let mut d = Self {
            id: format!("{}-{index:04}", plan.id_prefix),
            boot_id,
            board,
            plan: plan.clone(),
            run_id: 0,
            session: 0,
            seq: 0,
            agent: Agent::default(),
            pending: Vec::new(),
            outage_until: None,
            next_outage,
            next_restart,
            next_metrics,
            outages: 0,
            restarts: 0,
            queue: VecDeque::new(),
            rng,
        };
        d.start_run(0);
        d
    }

    /// The session of the current connection.
    pub fn session(&self) -> u32 {
        self.session
    }

    pub fn run_id(&self) -> u64 {
        self.run_id
    }

    /// A new agent process: new run id, seq and counters from zero, session 1.
    fn start_run(&mut self, tick: u64) {
        self.run_id = self.rng.next_u64();
        self.seq = 0;
        self.session = 0;
        self.agent = Agent::default();
        self.connect(tick);
    }

    /// A new connection at `tick`: session + 1, its will, then the birth.
    fn connect(&mut self, tick: u64) {
        self.session += 1;
        // The will is encoded like any payload; a death always encodes (see `publish`).
        let will = encode(&self.death(DeathCause::ConnectionLost)).unwrap_or_default();
        self.queue.push_back(Out::Connect { at: tick, will });
        let birth = self.birth(tick);
        self.publish("status", birth, true, Tally::Birth);
    }

    fn publish(&mut self, leaf: &'static str, message: Message, retain: bool, tally: Tally) {
        match encode(&message) {
            Ok(payload) => self.queue.push_back(Out::Publish {
                leaf,
                payload,
                retain,
                tally,
            }),
            // Bounded strings and plain numbers: encoding cannot fail; say so if it ever does.
            Err(e) => log::error!("sim: {} {leaf} not encoded: {e}", self.id),
        }
    }

    /// Advances the device to `tick` (called once per tick, in order).
    pub fn tick(&mut self, tick: u64) {
        if self.outage_until.is_some_and(|end| tick >= end) {
            self.outage_until = None;
        }
        // A restart or an outage due while the link is down happens once it is back.
        let online = self.outage_until.is_none();
        if online && self.next_restart.is_some_and(|t| t <= tick) {
            self.restart(tick);
        } else if online && self.next_outage.is_some_and(|t| t <= tick) {
            self.begin_outage(tick);
        }
        let mean = self.plan.rate * self.plan.tick_ms as f64 / 1000.0;
        for _ in 0..self.rng.poisson(mean) {
            // The age is fixed when the batch closes.
            let ev = self.board.event(&mut self.rng, &self.plan.mix, 0);
            self.pending.push((tick, ev));
            if self.pending.len() >= self.plan.batch_max_events {
                self.close_batch(tick);
            }
        }
        if self
            .pending
            .first()
            .is_some_and(|(t0, _)| tick >= t0 + self.plan.batch_ticks)
        {
            self.close_batch(tick);
        }
        if tick >= self.next_metrics {
            self.next_metrics = tick + self.plan.metrics_ticks;
            let m = self.metrics(tick);
            self.publish("metrics", m, false, Tally::Metrics);
        }
    }

    /// The end of the simulation at `tick`: the open batch, then a clean shutdown. An outage
    /// still running ends now, so that the shutdown can be said.
    pub fn finish(&mut self, tick: u64) {
        for item in &mut self.queue {
            if let Out::Connect { at, .. } = item {
                *at = (*at).min(tick);
            }
        }
        self.outage_until = None;
        self.close_batch(tick);
        let d = self.death(DeathCause::Shutdown);
        self.publish("status", d, true, Tally::Death(DeathCause::Shutdown));
        if self.plan.own_link {
            self.queue.push_back(Out::Disconnect);
        }
    }

    fn begin_outage(&mut self, tick: u64) {
        self.outages += 1;
        let end = tick + self.plan.outage_ticks.max(1);
        self.outage_until = Some(end);
        if self.plan.own_link {
            self.queue.push_back(Out::Drop);
        } else {
            // A shared connection cannot die for one device: say what its will would have.
            let d = self.death(DeathCause::ConnectionLost);
            self.publish("status", d, true, Tally::Death(DeathCause::ConnectionLost));
        }
        self.connect(end);
        self.next_outage = self
            .plan
            .outage_every
            .map(|e| end + jitter(&mut self.rng, e));
    }

    fn restart(&mut self, tick: u64) {
        self.restarts += 1;
        self.close_batch(tick);
        let d = self.death(DeathCause::Shutdown);
        self.publish("status", d, true, Tally::Death(DeathCause::Shutdown));
        if self.plan.own_link {
            self.queue.push_back(Out::Disconnect);
        }
        self.start_run(tick);
        self.next_restart = self
            .plan
            .restart_every
            .map(|e| tick + jitter(&mut self.rng, e));
    }

    fn close_batch(&mut self, tick: u64) {
        let drops = self.board.drops(&mut self.rng, &self.plan.mix);
        if self.pending.is_empty() && drops.is_none() {
            return;
        }
        let tick_us = self.plan.tick_ms * 1000;
        let events: Vec<Event> = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|(t, mut ev)| {
                ev.set_age_us((tick - t) * tick_us + self.rng.below(tick_us.max(1)));
                ev
            })
            .collect();
        let n = events.len() as u64;
        self.agent.events += n;
        self.agent.batches += 1;
        if let Some((source, count)) = drops {
            *self.agent.drops.entry(source).or_default() += count;
        }
        let batch = EventBatch {
            device: bounded(&self.id),
            boot_id: bounded(&self.boot_id),
            run_id: self.run_id,
            seq: self.seq,
            unix_ms: self.unix_ms(tick),
            mono_ns: tick * self.plan.tick_ms * 1_000_000,
            // Run totals, not deltas (schema 2): a lost batch cannot lose the report.
            drops: self.drop_totals(),
            events,
        };
        self.seq = self.seq.wrapping_add(1);
        let tally = Tally::Batch {
            events: n,
            drops: drops.map(|(s, c)| (s.to_owned(), c)).into_iter().collect(),
        };
        self.publish("events", Message::Events(batch), false, tally);
    }

    /// What this run has lost so far, by source.
    fn drop_totals(&self) -> Vec<DropCount> {
        self.agent
            .drops
            .iter()
            .map(|(s, c)| DropCount {
                source: bounded(s),
                count: *c,
            })
            .collect()
    }

    fn unix_ms(&self, tick: u64) -> u64 {
        self.plan.epoch_ms + tick * self.plan.tick_ms
    }

    fn death(&self, cause: DeathCause) -> Message {
        Message::Offline(Death {
            device: bounded(&self.id),
            boot_id: bounded(&self.boot_id),
            session: self.session,
            cause,
        })
    }

    fn birth(&self, tick: u64) -> Message {
        let page = u64::from(self.board.page_size());
        let ring = |name: &str, requested: u64| RingBufferInfo {
            name: bounded(name),
            requested,
            chosen: requested.max(page).next_power_of_two(),
            transport: edge_wire::RingTransport::RingBuf,
        };
        let probe = |name: &str, tp: &str| ProbeInfo {
            name: bounded(name),
            tracepoint: bounded(tp),
            state: ProbeState::Attached,
            method: AttachMethod::Tracepoint,
        };
        Message::Online(Birth {
            device: bounded(&self.id),
            boot_id: bounded(&self.boot_id),
            session: self.session,
            run_id: self.run_id,
            unix_ms: self.unix_ms(tick),
            agent_version: bounded(env!("CARGO_PKG_VERSION")),
            schema_version: edge_wire::SCHEMA_VERSION,
            kernel_release: bounded(self.board.kernel()),
            arch: bounded(self.board.arch()),
            page_size: self.board.page_size(),
            kernel_btf: false,
            ring_buffers: vec![ring("WATCH_EVENTS", 65536), ring("PROC_EVENTS", 262_144)],
            probes: vec![
                probe("bind_enter", "syscalls:sys_enter_bind"),
                probe("bind_exit", "syscalls:sys_exit_bind"),
                probe("exec", "sched:sched_process_exec"),
                probe("exit", "sched:sched_process_exit"),
                probe("fork", "sched:sched_process_fork"),
            ],
            queue: QueueInfo {
                ram_bytes: 262_144,
                spool_bytes: 0,
            },
        })
    }

    fn metrics(&mut self, tick: u64) -> Message {
        let sample = self.board.sample(&mut self.rng);
        Message::Metrics(Metrics {
            device: bounded(&self.id),
            boot_id: bounded(&self.boot_id),
            unix_ms: self.unix_ms(tick),
            uptime_s: 3600 + tick * self.plan.tick_ms / 1000,
            cpu_percent: sample.cpu,
            mem_total_kib: self.board.mem_total_kib,
            mem_used_kib: sample.mem_used_kib,
            load: sample.load,
            temperatures: sample.temperatures,
            agent: AgentStats {
                rss_kib: 7200 + self.rng.below(800),
                events: self.agent.events,
                batches: self.agent.batches,
                drops: self.drop_totals(),
                ..Default::default()
            },
            board: sample.health,
            top_cpu: sample.top_cpu,
            top_mem: sample.top_mem,
        })
    }
}

/// A tick between half and one and a half times `every`.
fn jitter(rng: &mut Rng, every: u64) -> u64 {
    let every = every.max(2);
    rng.range(every / 2, every + every / 2)
}

#[cfg(test)]
mod tests;
