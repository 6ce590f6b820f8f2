//! Home Assistant MQTT discovery for the JSON bridge: [`Discovery`] turns the decoded messages
//! the hub accepts into MQTT [`Publication`]s that make each device appear in Home Assistant,
//! with no I/O of its own, so any mode that owns an MQTT connection (`hub bridge`, `hub serve`)
//! drives it the same way:
//!
//! * after every connect: [`Discovery::on_connect`] (the hub's own availability `online`, and
//!   every known device's config again), and subscribe to [`Settings::status_topic`];
//! * for each accepted message: [`Discovery::on_message`];
//! * for a message on `<discovery_prefix>/status`: [`Discovery::on_ha_status`] (Home
//!   Assistant's birth `online` makes it re-send every config);
//! * to remove a device: [`Discovery::forget`] (empty retained payloads);
//! * as the MQTT will of the connection: [`Discovery::hub_will`].
//!
//! Every publication is QoS 1. Topics (`B` the bridge prefix, `D` the device id):
//! `<discovery_prefix>/device/<node id>/config` (retained, [`config`]), `B/D/availability`
//! (`online`/`offline` from the device's status, retained), `B/D/summary` (JSON of the counts
//! the hub derives: exits by signal, new listening ports, board health; retained),
//! `B/availability` (the hub's own, retained; its will says `offline`). The bridge publishes
//! the decoded messages themselves on `B/D/<leaf>`; the entities read metrics from there.

pub mod config;
pub mod device;

use std::{
    collections::BTreeMap,
    hash::{DefaultHasher, Hash as _, Hasher as _},
};

use edge_wire::Message;

pub use self::device::{BirthFacts, BoardHealth, DeviceState};

/// The discovery prefix Home Assistant uses unless configured otherwise.
pub const DEFAULT_DISCOVERY_PREFIX: &str = "homeassistant";

/// A setting that cannot be used in a topic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{setting} {value:?}: {reason}")]
pub struct SettingsError {
    /// Which setting (`discovery prefix`, `bridge prefix`).
    pub setting: &'static str,
    pub value: String,
    pub reason: &'static str,
}

/// Where discovery and state go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Home Assistant's discovery prefix (`homeassistant`).
    pub discovery_prefix: String,
    /// The JSON bridge's prefix (`<prefix>-json`).
    pub bridge_prefix: String,
    /// The origin's `url` in every config (e.g. the hub's web view), if any.
    pub origin_url: Option<String>,
    /// The device's `configuration_url`, `{device}` replaced by the device id, if any.
    pub device_url: Option<String>,
}

impl Settings {
    /// Checks that both prefixes are single plain topic levels.
    pub fn new(discovery_prefix: &str, bridge_prefix: &str) -> Result<Self, SettingsError> {
        for (setting, value) in [
            ("discovery prefix", discovery_prefix),
            ("bridge prefix", bridge_prefix),
        ] {
            if value.is_empty()
                || value.contains(['/', '+', '#'])
                || value.contains(char::is_control)
            {
                return Err(SettingsError {
                    setting,
                    value: value.to_owned(),
                    reason: "must be one plain topic level (no /, +, # or control characters)",
                });
            }
        }
        Ok(Self {
            discovery_prefix: discovery_prefix.to_owned(),
            bridge_prefix: bridge_prefix.to_owned(),
            origin_url: None,
            device_url: None,
        })
    }

    /// Where Home Assistant announces itself (`online`/`offline`).
    pub fn status_topic(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// The hub's own availability (its will publishes `offline` there).
    pub fn hub_availability_topic(&self) -> String {
        format!("{}/availability", self.bridge_prefix)
    }

    /// A device's availability, from its status.
    pub fn availability_topic(&self, device: &str) -> String {
        format!("{}/{device}/availability", self.bridge_prefix)
    }

    /// The hub-derived state of a device.
    pub fn summary_topic(&self, device: &str) -> String {
        format!("{}/{device}/summary", self.bridge_prefix)
    }

    /// The bridged status message of a device (published by the JSON bridge, retained).
    pub fn bridge_status_topic(&self, device: &str) -> String {
        format!("{}/{device}/status", self.bridge_prefix)
    }
}

/// One MQTT message to publish with QoS 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Publication {
    fn retained(topic: String, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            topic,
            payload: payload.into(),
            retain: true,
        }
    }
}

/// The discovery state of the fleet: what each device has reported, what was published.
#[derive(Debug)]
pub struct Discovery {
    settings: Settings,
    devices: BTreeMap<String, DeviceState>,
}

impl Discovery {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            devices: BTreeMap::new(),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The devices known so far, in id order.
    pub fn devices(&self) -> impl Iterator<Item = &str> {
        self.devices.keys().map(String::as_str)
    }

    /// A device's state, if known.
    pub fn device(&self, device: &str) -> Option<&DeviceState> {
        self.devices.get(device)
    }

    /// The connection's MQTT will: the hub's availability `offline`, retained, so every
    /// entity turns unavailable when the hub vanishes.
    pub fn hub_will(&self) -> Publication {
        Publication::retained(self.settings.hub_availability_topic(), "offline")
    }

    /// After a connect: the hub is online, and every known device's config, availability and
    /// summary again (the broker may have lost its retained messages).
    pub fn on_connect(&mut self) -> Vec<Publication> {
        let mut out = vec![Publication::retained(
            self.settings.hub_availability_topic(),
            "online",
        )];
        let names: Vec<String> = self.devices.keys().cloned().collect();
        for d in names {
            out.extend(self.announce(&d, true));
        }
        out
    }

    /// A message on [`Settings::status_topic`]: `online` (Home Assistant started) re-sends
    /// every config; anything else publishes nothing.
    pub fn on_ha_status(&mut self, payload: &[u8]) -> Vec<Publication> {
        if payload != b"online" {
            log::info!(
                "ha: Home Assistant status {:?}; nothing to send",
                String::from_utf8_lossy(payload)
            );
            return Vec::new();
        }
        log::info!(
            "ha: Home Assistant is online; re-sending the discovery configs of {} devices",
            self.devices.len()
        );
        let names: Vec<String> = self.devices.keys().cloned().collect();
        let mut out = Vec::new();
        for d in names {
            if let Some(p) = self.config(&d, true) {
                out.push(p);
            }
        }
        out
    }

    /// What to publish after the hub accepted `message` from `device`.
    pub fn on_message(&mut self, device: &str, message: &Message) -> Vec<Publication> {
        let new = !self.devices.contains_key(device);
        let st = self.devices.entry(device.to_owned()).or_default();
        let mut out = Vec::new();
        let (mut entities_changed, mut summary_changed) = (new, new);
        match message {
            Message::Online(b) => {
                let facts = BirthFacts::of(b);
                entities_changed |= st.birth.as_ref() != Some(&facts);
                st.birth = Some(facts);
                st.online = Some(true);
                out.push(Publication::retained(
                    self.settings.availability_topic(device),
                    "online",
                ));
            }
            Message::Offline(_) => {
                st.online = Some(false);
                out.push(Publication::retained(
                    self.settings.availability_topic(device),
                    "offline",
                ));
            }
            Message::Events(b) => summary_changed |= st.observe_batch(b),
            Message::Metrics(m) => {
                let health = st.health;
                entities_changed |= st.observe_metrics(m);
                summary_changed |= st.health != health;
            }
        }
        if entities_changed {
            out.extend(self.config(device, false));
        }
        if summary_changed {
            out.extend(self.summary(device, false));
        }
        out
    }

    /// Forgets `device` and returns the publications that remove it from Home Assistant and
    /// clear its retained bridge topics (see [`forget_publications`]).
    pub fn forget(&mut self, device: &str) -> Vec<Publication> {
        if self.devices.remove(device).is_some() {
            log::info!("ha: forgetting device {device}: its discovery config is removed");
        }
        forget_publications(&self.settings, device)
    }

    /// Config (if `force` or changed), availability (if known) and summary of one device.
    fn announce(&mut self, device: &str, force: bool) -> Vec<Publication> {
        let mut out: Vec<Publication> = self.config(device, force).into_iter().collect();
        if let Some(online) = self.devices.get(device).and_then(|d| d.online) {
            out.push(Publication::retained(
                self.settings.availability_topic(device),
                if online { "online" } else { "offline" },
            ));
        }
        out.extend(self.summary(device, force));
        out
    }

    fn config(&mut self, device: &str, force: bool) -> Option<Publication> {
        let st = self.devices.get_mut(device)?;
        let body = config::payload(&self.settings, device, st).to_string();
        let h = hash(&body);
        if !force && st.published_config == Some(h) {
            return None;
        }
        if st.published_config.is_none() {
            log::info!(
                "ha: announcing device {device} to Home Assistant on {}",
                config::topic(&self.settings, device)
            );
        }
        st.published_config = Some(h);
        Some(Publication::retained(
            config::topic(&self.settings, device),
            body,
        ))
    }

    fn summary(&mut self, device: &str, force: bool) -> Option<Publication> {
        let st = self.devices.get_mut(device)?;
        let body = st.summary().to_string();
        let h = hash(&body);
        if !force && st.published_summary == Some(h) {
            return None;
        }
        st.published_summary = Some(h);
        Some(Publication::retained(
            self.settings.summary_topic(device),
            body,
        ))
    }
}

/// Empty retained payloads that remove `device` from Home Assistant (its discovery config)
/// and clear what the bridge retains for it (availability, summary, bridged status). Clearing
/// the agent's own retained status is the caller's (it knows the fleet prefix).
pub fn forget_publications(s: &Settings, device: &str) -> Vec<Publication> {
    [
        config::topic(s, device),
        s.availability_topic(device),
        s.summary_topic(device),
        s.bridge_status_topic(device),
    ]
    .into_iter()
    .map(|t| Publication::retained(t, Vec::new()))
    .collect()
}

/// The device whose retained status `topic` (`<prefix>/<device>/status`) was just cleared
/// (an empty payload: `hub forget`), if that is what this message is.
pub fn cleared_status<'t>(prefix: &str, topic: &'t str, payload: &[u8]) -> Option<&'t str> {
    if !payload.is_empty() {
        return None;
    }
    let device = topic
        .strip_prefix(prefix)?
        .strip_prefix('/')?
        .strip_suffix("/status")?;
    (!device.is_empty() && !device.contains('/')).then_some(device)
}

/// A fingerprint of a published payload (kept instead of the payload itself).
fn hash(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests;
