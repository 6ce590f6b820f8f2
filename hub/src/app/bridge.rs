//! The bridge of `hub bridge` and `hub serve`, the one place where the hub talks back to the
//! broker: republishes each accepted message as JSON on `<bridge-prefix>/<device>/<leaf>`
//! (status retained) and, unless switched off, drives Home Assistant discovery
//! (`edge_hub::ha::Discovery`). The owner of the connection calls, in this order of a
//! connection's life: [`hub_will`] (the connection's MQTT will), [`Bridge::filters`] (subscribed
//! together with the fleet's topics), [`Bridge::on_connect`] (after that SUBACK),
//! [`Bridge::on_other`] (a message outside the fleet's prefix: Home Assistant's birth),
//! [`Bridge::on_cleared`] (a device's retained status was cleared: `hub forget`),
//! [`Bridge::on_accepted`] (every accepted message), and [`Bridge::flush`] on every turn of its
//! loop: discovery messages wait in the bridge until the client's queue takes them.

use std::collections::VecDeque;

use edge_hub::{
    escape,
    ha::{self, Discovery, Publication},
    render,
};
use edge_wire::Message;
use rumqttc::{AsyncClient, LastWill, QoS};

/// Discovery messages waiting for room in the client's queue; past this the oldest are dropped
/// (the next connect, or Home Assistant's next birth, sends every config again).
const MAX_PENDING: usize = 8192;

/// The MQTT will for a connection that announces devices to Home Assistant: the hub's
/// availability `offline`, retained, so every entity turns unavailable when the hub vanishes.
pub fn hub_will(settings: &ha::Settings) -> LastWill {
    let w = Discovery::new(settings.clone()).hub_will();
    LastWill::new(w.topic, w.payload, QoS::AtLeastOnce, w.retain)
}

pub struct Bridge {
    /// JSON topics go under this prefix.
    prefix: String,
    discovery: Option<Discovery>,
    /// Discovery messages the client's queue has not taken yet.
    pending: VecDeque<Publication>,
    /// Messages not bridged because the client's queue was full.
    dropped: u64,
    /// Discovery messages dropped from `pending`.
    pending_dropped: u64,
}

impl Bridge {
    /// A JSON bridge under `prefix`, with Home Assistant discovery if `ha` is given.
    pub fn new(prefix: String, ha: Option<ha::Settings>) -> Self {
        Self {
            prefix,
            discovery: ha.map(Discovery::new),
            pending: VecDeque::new(),
            dropped: 0,
            pending_dropped: 0,
        }
    }

    /// Topics to subscribe to along with the fleet's: Home Assistant's status.
    pub fn filters(&self) -> Vec<String> {
        self.discovery
            .iter()
            .map(|d| d.settings().status_topic())
            .collect()
    }

    /// After every (re)connect, once subscribed: the hub's availability and every known
    /// device's config again.
    pub fn on_connect(&mut self, client: &AsyncClient) {
        if let Some(d) = &mut self.discovery {
            let pubs = d.on_connect();
            self.queue(pubs);
        }
        self.flush(client);
    }

    /// A message on a topic outside the fleet's prefix. True if the bridge took it (Home
    /// Assistant's status); otherwise the hub handles it (and rejects it).
    pub fn on_other(&mut self, client: &AsyncClient, topic: &str, payload: &[u8]) -> bool {
        let Some(d) = &mut self.discovery else {
            return false;
        };
        if topic != d.settings().status_topic() {
            return false;
        }
        let pubs = d.on_ha_status(payload);
        self.queue(pubs);
        self.flush(client);
        true
    }

    /// `device`'s retained status was cleared (`hub forget`): forget it, and clear what the
    /// bridge retains for it.
    pub fn on_cleared(&mut self, client: &AsyncClient, device: &str) {
        log::info!(
            "hub: the retained status of {} was cleared (hub forget): device forgotten",
            escape(device)
        );
        let pubs = match &mut self.discovery {
            Some(d) => d.forget(device),
            None => vec![Publication {
                topic: format!("{}/{device}/status", self.prefix),
                payload: Vec::new(),
                retain: true,
            }],
        };
        self.queue(pubs);
        self.flush(client);
    }

    /// Every accepted (decoded, not duplicate) message of `device`: its JSON, and what Home
    /// Assistant should learn from it.
    pub fn on_accepted(&mut self, client: &AsyncClient, device: &str, message: &Message) {
        let leaf = message.topic_leaf();
        let topic = format!("{}/{device}/{leaf}", self.prefix);
        match serde_json::to_vec(&render::message_json(device, message)) {
            Ok(body) => {
                if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, leaf == "status", body)
                {
                    self.dropped += 1;
                    // One line per thousand, not one per message, when the queue stays full.
                    if self.dropped % 1000 == 1 {
                        log::warn!(
                            "hub: not bridged ({e}); {} messages not bridged so far",
                            self.dropped
                        );
                    }
                }
            }
            Err(e) => log::warn!("hub: not bridged: {e}"),
        }
        if let Some(d) = &mut self.discovery {
            let pubs = d.on_message(device, message);
            self.queue(pubs);
        }
        self.flush(client);
    }

    /// Hands the client as many waiting discovery messages as its queue takes, in order.
    pub fn flush(&mut self, client: &AsyncClient) {
        while let Some(p) = self.pending.pop_front() {
            if client
                .try_publish(
                    p.topic.clone(),
                    QoS::AtLeastOnce,
                    p.retain,
                    p.payload.clone(),
                )
                .is_err()
            {
                self.pending.push_front(p);
                break;
            }
        }
    }

    /// Messages not bridged because the client's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    fn queue(&mut self, pubs: Vec<Publication>) {
        self.pending.extend(pubs);
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
            self.pending_dropped += 1;
            if self.pending_dropped.is_power_of_two() {
                log::warn!(
                    "ha: {} discovery messages dropped so far (the broker is not taking them)",
                    self.pending_dropped
                );
            }
        }
    }
}
