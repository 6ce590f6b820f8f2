//! What the Home Assistant bridge knows about one device, learnt from its decoded messages:
//! the birth facts shown as device info, the temperature labels and board-health flags its
//! metrics carry (each becomes an entity), and the counts the hub derives itself (exits by
//! signal, binds that opened a listening port not seen before). [`DeviceState::summary`] is the
//! JSON state of the hub-derived entities.

use std::collections::BTreeSet;

use edge_wire::{Birth, Event, EventBatch, ExitHow, Metrics, SockAddr};
use serde_json::{Value, json};

/// Distinct listening ports remembered per device; past this, binds are no longer classified
/// (a device binding thousands of ports is a port scanner, not a service starting).
pub const MAX_PORTS: usize = 4096;
/// Temperature sensors offered per device.
pub const MAX_TEMPERATURES: usize = 8;

/// The birth facts shown in Home Assistant's device info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BirthFacts {
    pub agent_version: String,
    pub kernel_release: String,
    pub arch: String,
    pub page_size: u32,
    pub kernel_btf: bool,
}

impl BirthFacts {
    pub fn of(b: &Birth) -> Self {
        Self {
            agent_version: b.agent_version.as_str().to_owned(),
            kernel_release: b.kernel_release.as_str().to_owned(),
            arch: b.arch.as_str().to_owned(),
            page_size: b.page_size,
            kernel_btf: b.kernel_btf,
        }
    }
}

/// Board-health flags (Raspberry Pi firmware: throttled, under-voltage), each `None` while the
/// device has not reported it. An entity is offered once the flag has been reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BoardHealth {
    pub throttled: Option<bool>,
    pub under_voltage: Option<bool>,
}

impl BoardHealth {
    /// The flags a metrics sample carries. Throttled: the firmware's word says the board is
    /// throttled, its ARM frequency capped or its soft temperature limit active, now.
    /// Under-voltage: the `rpi_volt` alarm or the word's under-voltage bit, now. A board
    /// without the word or the alarm (not a Raspberry Pi) reports `None`.
    pub fn of(m: &Metrics) -> Self {
        let word = m.board.throttled.map(|t| t.now);
        let under_voltage = match (m.board.under_voltage_alarm, word) {
            (None, None) => None,
            (alarm, word) => Some(alarm.unwrap_or(false) || word.is_some_and(|w| w.under_voltage)),
        };
        Self {
            throttled: word.map(|w| w.throttled || w.freq_capped || w.soft_temp_limit),
            under_voltage,
        }
    }
}

/// Which board-health flags a device has ever reported (each one offered as an entity).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthSeen {
    pub throttled: bool,
    pub under_voltage: bool,
}

/// A listening port as (address family, port).
type Port = (u8, u16);

#[derive(Clone, Debug, Default)]
pub struct DeviceState {
    pub birth: Option<BirthFacts>,
    /// Temperature labels in the order first reported (only labels safe to put in a template).
    pub temperatures: Vec<String>,
    /// Which board-health flags have ever been reported.
    pub health_seen: HealthSeen,
    /// The latest board-health flags.
    pub health: BoardHealth,
    /// Exits by a signal seen since the hub started.
    pub crashes: u64,
    /// Successful binds to a port this device had not listened on before.
    pub new_listen_ports: u64,
    /// The last of those: (port, comm).
    pub last_new_port: Option<(u16, String)>,
    ports: BTreeSet<Port>,
    /// The online state last published; fingerprints of the config and summary last published.
    pub online: Option<bool>,
    pub published_config: Option<u64>,
    pub published_summary: Option<u64>,
}

impl DeviceState {
    /// Counts crashes and new listening ports in a batch; true if a count changed.
    pub fn observe_batch(&mut self, b: &EventBatch) -> bool {
        let before = (self.crashes, self.new_listen_ports);
        for ev in &b.events {
            match ev {
                Event::Exit(e) if matches!(e.how, ExitHow::Signal(_)) => self.crashes += 1,
                Event::Bind(e) if e.ret == 0 => {
                    let port = match e.addr {
                        SockAddr::V4 { port, .. } => (4, port),
                        SockAddr::V6 { port, .. } => (6, port),
                        _ => continue,
                    };
                    // Port 0 asks the kernel for an ephemeral port: a client, not a service.
                    if port.1 != 0 && self.ports.len() < MAX_PORTS && self.ports.insert(port) {
                        self.new_listen_ports += 1;
                        self.last_new_port = Some((port.1, e.task.comm.as_str().to_owned()));
                    }
                }
                _ => {}
            }
        }
        before != (self.crashes, self.new_listen_ports)
    }

    /// Learns temperature labels and board health; true if the set of entities changed.
    pub fn observe_metrics(&mut self, m: &Metrics) -> bool {
        let mut changed = false;
        for t in &m.temperatures {
            let label = t.label.as_str();
            if self.temperatures.len() < MAX_TEMPERATURES
                && template_safe(label)
                && !self.temperatures.iter().any(|l| l == label)
            {
                self.temperatures.push(label.to_owned());
                changed = true;
            }
        }
        let h = BoardHealth::of(m);
        let seen = HealthSeen {
            throttled: self.health_seen.throttled || h.throttled.is_some(),
            under_voltage: self.health_seen.under_voltage || h.under_voltage.is_some(),
        };
        changed |= seen != self.health_seen;
        self.health_seen = seen;
        self.health = h;
        changed
    }

    /// The state of the hub-derived entities, published on `<bridge>/<device>/summary`.
    pub fn summary(&self) -> Value {
        json!({
            "crashes": self.crashes,
            "new_listen_ports": self.new_listen_ports,
            "last_new_port": self.last_new_port.as_ref().map(|(p, c)| json!({"port": p, "comm": c})),
            "throttled": self.health.throttled,
            "under_voltage": self.health.under_voltage,
        })
    }
}

/// True if `label` can be quoted inside a Jinja string literal as is: letters, digits, space,
/// `_ . : -`, at most 64 bytes. Other labels get no entity (a device string never becomes
/// template code).
pub fn template_safe(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 64
        && label
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | ':' | '-'))
}
