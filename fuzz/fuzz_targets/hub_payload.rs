//! Fuzzes what the hub does with an MQTT payload from the network: `edge_wire::decode` on its
//! own, then `Hub::handle` on a few fixed topics (the golden-vector device, another device,
//! and a foreign prefix), each twice so the sequence tracking sees repeats. Nothing may panic.
#![no_main]

use edge_hub::Hub;
use libfuzzer_sys::fuzz_target;

const TOPICS: [&str; 7] = [
    "edge/pi5-0042/events",
    "edge/pi5-0042/status",
    "edge/pi5-0042/metrics",
    "edge/pi1/events",
    "edge/pi1/status",
    "edge/pi1/metrics",
    "other/pi1/events",
];

fuzz_target!(|data: &[u8]| {
    let _ = edge_wire::decode(data);
    let mut hub = Hub::new("edge");
    for topic in TOPICS {
        let _ = hub.handle(topic, data);
        let _ = hub.handle(topic, data);
    }
});
