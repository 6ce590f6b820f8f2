//! The hub: decodes the agent's payloads, tracks each device's batch sequence to detect
//! loss, and renders readable lines or JSON. The MQTT side lives in `main.rs`; everything
//! here is pure so it can be tested without a broker.

pub mod render;
pub mod testkit;

use std::collections::HashMap;

use edge_wire::{DecodeError, Message, decode};

/// What the hub makes of one MQTT message.
#[derive(Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per MQTT message, never stored"
)]
pub enum Outcome {
    /// A decoded message from `device`.
    Accepted {
        device: String,
        message: Message,
        gap: Option<Gap>,
    },
    /// Refused; `total` counts every rejection so far.
    Rejected {
        topic: String,
        reason: String,
        total: u64,
    },
}

/// Batches missing between two that arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    pub expected: u32,
    pub got: u32,
    pub lost: u32,
}

#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    pub accepted: u64,
    pub rejected: u64,
    pub gaps: u64,
    pub lost_batches: u64,
    pub duplicates: u64,
}

/// Per-device sequence state, keyed by device id.
#[derive(Default)]
pub struct Hub {
    prefix: String,
    next_seq: HashMap<String, (String, u32)>,
    pub counters: Counters,
}

impl Hub {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            ..Default::default()
        }
    }

    /// Handles one message from `<prefix>/<device>/<leaf>`.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Outcome {
        match self.check(topic, payload) {
            Ok((device, message)) => {
                self.counters.accepted += 1;
                let gap = match &message {
                    Message::Events(b) => self.track(&device, &b.boot_id, b.seq),
                    _ => None,
                };
                Outcome::Accepted {
                    device,
                    message,
                    gap,
                }
            }
            Err(reason) => {
                self.counters.rejected += 1;
                Outcome::Rejected {
                    topic: topic.to_owned(),
                    reason,
                    total: self.counters.rejected,
                }
            }
        }
    }

    fn check(&self, topic: &str, payload: &[u8]) -> Result<(String, Message), String> {
        let rest = topic
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| format!("topic not under {}/", self.prefix))?;
        let (device, leaf) = rest.split_once('/').ok_or("topic has no device/leaf")?;
        let message = decode(payload).map_err(|e: DecodeError| e.to_string())?;
        if message.topic_leaf() != leaf {
            return Err(format!(
                "a {} message on a {leaf} topic",
                message.topic_leaf()
            ));
        }
        let claimed = match &message {
            Message::Online(b) => b.device.as_str(),
            Message::Offline(d) => d.device.as_str(),
            Message::Events(b) => b.device.as_str(),
            Message::Metrics(m) => m.device.as_str(),
        };
        if claimed != device {
            return Err(format!(
                "payload says device {claimed:?}, topic says {device:?}"
            ));
        }
        Ok((device.to_owned(), message))
    }

    /// Checks `seq` against what this device's current run should send next.
    fn track(&mut self, device: &str, boot_id: &str, seq: u32) -> Option<Gap> {
        let entry = self.next_seq.get(device).cloned();
        self.next_seq
            .insert(device.to_owned(), (boot_id.to_owned(), seq.wrapping_add(1)));
        let (last_boot, expected) = entry?;
        // A reboot or an agent restart starts again at 0: not a loss.
        if last_boot != boot_id || seq == 0 || seq == expected {
            return None;
        }
        if seq < expected {
            // QoS 1 may deliver twice; keep the higher expectation.
            self.counters.duplicates += 1;
            self.next_seq
                .insert(device.to_owned(), (boot_id.to_owned(), expected));
            return None;
        }
        let lost = seq - expected;
        self.counters.gaps += 1;
        self.counters.lost_batches += u64::from(lost);
        Some(Gap {
            expected,
            got: seq,
            lost,
        })
    }
}

#[cfg(test)]
mod tests {
    use edge_wire::{EventBatch, bounded, encode};

    use super::*;

    fn batch(device: &str, boot: &str, seq: u32) -> Vec<u8> {
        encode(&Message::Events(EventBatch {
            device: bounded(device),
            boot_id: bounded(boot),
            run_id: 1,
            seq,
            unix_ms: 1,
            mono_ns: 2,
            drops: vec![],
            events: vec![],
        }))
        .expect("encode")
    }

    #[test]
    fn detects_gaps_and_tolerates_restarts_and_duplicates() {
        let mut hub = Hub::new("edge");
        let t = "edge/pi1/events";
        assert!(matches!(
            hub.handle(t, &batch("pi1", "b1", 0)),
            Outcome::Accepted { gap: None, .. }
        ));
        assert!(matches!(
            hub.handle(t, &batch("pi1", "b1", 1)),
            Outcome::Accepted { gap: None, .. }
        ));
        let Outcome::Accepted { gap: Some(g), .. } = hub.handle(t, &batch("pi1", "b1", 5)) else {
            panic!("gap expected")
        };
        assert_eq!(
            g,
            Gap {
                expected: 2,
                got: 5,
                lost: 3
            }
        );
        assert!(matches!(
            hub.handle(t, &batch("pi1", "b1", 5)),
            Outcome::Accepted { gap: None, .. }
        ));
        assert_eq!(hub.counters.duplicates, 1);
        assert!(
            matches!(
                hub.handle(t, &batch("pi1", "b2", 7)),
                Outcome::Accepted { gap: None, .. }
            ),
            "new boot"
        );
        assert!(
            matches!(
                hub.handle(t, &batch("pi1", "b2", 0)),
                Outcome::Accepted { gap: None, .. }
            ),
            "restart"
        );
        assert_eq!((hub.counters.gaps, hub.counters.lost_batches), (1, 3));
    }

    #[test]
    fn rejects_and_counts_bad_payloads() {
        let mut hub = Hub::new("edge");
        let good = batch("pi1", "b", 0);
        let mut future = good.clone();
        future[0] = 9;
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("edge/pi1/events", vec![], "empty"),
            (
                "edge/pi1/events",
                b"{\"json\":1}".to_vec(),
                "schema version",
            ),
            ("edge/pi1/events", future, "unknown schema version 9"),
            (
                "edge/pi1/events",
                good[..good.len() - 1].to_vec(),
                "malformed",
            ),
            ("edge/pi1/status", good.clone(), "on a status topic"),
            ("edge/pi2/events", good.clone(), "topic says"),
            ("other/pi1/events", good.clone(), "not under"),
        ];
        for (i, (topic, payload, want)) in cases.into_iter().enumerate() {
            match hub.handle(topic, &payload) {
                Outcome::Rejected { reason, total, .. } => {
                    assert!(reason.contains(want), "{reason:?} should mention {want:?}");
                    assert_eq!(total, i as u64 + 1);
                }
                other => panic!("{topic} accepted: {other:?}"),
            }
        }
        assert_eq!(hub.counters.accepted, 0);
    }
}
