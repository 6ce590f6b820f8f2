//! The bridge of `hub serve`: republishes each accepted message as JSON on
//! `<bridge-prefix>/<device>/<leaf>` (status retained), as `hub bridge` does. This is the one
//! place where `hub serve` talks back to the broker, so more bridges plug in here: Home
//! Assistant MQTT discovery belongs in [`Bridge::on_connect`] (subscribe to
//! `homeassistant/status`, send the retained configs), [`Bridge::on_other`] (the topics outside
//! the fleet's prefix, e.g. Home Assistant's birth) and [`Bridge::on_accepted`] (state).

use edge_hub::render;
use edge_wire::Message;
use rumqttc::{AsyncClient, QoS};

pub struct Bridge {
    /// JSON topics go under this prefix.
    prefix: String,
    /// Messages the client could not queue.
    dropped: u64,
}

impl Bridge {
    pub fn new(prefix: String) -> Self {
        Self { prefix, dropped: 0 }
    }

    /// Called after every (re)connect, once the fleet's topics are subscribed.
    pub fn on_connect(&mut self, _client: &AsyncClient) {}

    /// Called for a message on a topic outside `<prefix>/...` (the hub subscribes to nothing
    /// else by itself). True if the bridge took it; otherwise the hub counts it as rejected.
    pub fn on_other(&mut self, _client: &AsyncClient, _topic: &str, _payload: &[u8]) -> bool {
        false
    }

    /// Called for every accepted (decoded, not duplicate) message of `device`.
    pub fn on_accepted(&mut self, client: &AsyncClient, device: &str, message: &Message) {
        let leaf = message.topic_leaf();
        let topic = format!("{}/{device}/{leaf}", self.prefix);
        let body = match serde_json::to_vec(&render::message_json(device, message)) {
            Ok(b) => b,
            Err(e) => {
                log::warn!("hub: not bridged: {e}");
                return;
            }
        };
        if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, leaf == "status", body) {
            self.dropped += 1;
            // One line per thousand, not one per message, when the client queue stays full.
            if self.dropped % 1000 == 1 {
                log::warn!(
                    "hub: not bridged ({e}); {} messages not bridged so far",
                    self.dropped
                );
            }
        }
    }

    /// Messages not bridged because the client's queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}
