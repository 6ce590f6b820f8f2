//! One MQTT message in, one [`Outcome`] out: the topic is checked, commands for the agents
//! (`<prefix>/<device>/cmd/...`) are ignored, the payload is decoded and must match its topic
//! (leaf and device), and event batches go through the per-device [`Totals`] so duplicates are
//! recognised and gaps reported. Hub-wide [`Counters`] count every outcome.

use std::collections::BTreeMap;

use edge_wire::{DecodeError, Message, decode};

use crate::totals::{Arrival, Gap, Totals};

/// What the hub makes of one MQTT message.
#[derive(Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "one per MQTT message, never stored"
)]
pub enum Outcome {
    /// A decoded message from `device`, seen for the first time.
    Accepted {
        device: String,
        message: Message,
        gap: Option<Gap>,
    },
    /// An events batch already received (same boot, run and seq): not to be shown again.
    Duplicate {
        device: String,
        boot_id: String,
        run_id: u64,
        seq: u32,
    },
    /// Refused; `total` counts every rejection so far.
    Rejected {
        topic: String,
        kind: Rejection,
        reason: String,
        total: u64,
    },
    /// Not for the hub: a command on `<prefix>/<device>/cmd/...`.
    Ignored { topic: String },
}

/// Why a message was refused, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rejection {
    /// Not `<prefix>/<device>/<leaf>`.
    Topic,
    Empty,
    BadVersion,
    UnknownVersion,
    Malformed,
    TrailingBytes,
    /// A valid message on the wrong leaf.
    WrongLeaf,
    /// A valid message naming another device than its topic.
    WrongDevice,
}

impl Rejection {
    /// Every reason, in counter order.
    pub const ALL: [Self; 8] = [
        Self::Topic,
        Self::Empty,
        Self::BadVersion,
        Self::UnknownVersion,
        Self::Malformed,
        Self::TrailingBytes,
        Self::WrongLeaf,
        Self::WrongDevice,
    ];

    /// The counter's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Topic => "topic",
            Self::Empty => "empty",
            Self::BadVersion => "bad_version",
            Self::UnknownVersion => "unknown_version",
            Self::Malformed => "malformed",
            Self::TrailingBytes => "trailing_bytes",
            Self::WrongLeaf => "wrong_leaf",
            Self::WrongDevice => "wrong_device",
        }
    }

    fn of(e: &DecodeError) -> Self {
        match e {
            DecodeError::Empty => Self::Empty,
            DecodeError::BadVersion => Self::BadVersion,
            DecodeError::UnknownVersion { .. } => Self::UnknownVersion,
            DecodeError::Malformed { .. } => Self::Malformed,
            DecodeError::TrailingBytes { .. } => Self::TrailingBytes,
        }
    }
}

/// Hub-wide counts of outcomes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counters {
    /// Messages decoded and shown (duplicates not included).
    pub accepted: u64,
    /// Events batches received again.
    pub duplicates: u64,
    /// Commands seen on `cmd/` topics.
    pub ignored: u64,
    /// Rejections by reason.
    pub rejected: BTreeMap<Rejection, u64>,
}

impl Counters {
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

/// The hub's state: its topic prefix, the per-device totals and the counters.
#[derive(Debug, Default)]
pub struct Hub {
    prefix: String,
    pub counters: Counters,
    pub totals: Totals,
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
        let (device, message) = match self.check(topic, payload) {
            Ok(Some(ok)) => ok,
            Ok(None) => {
                self.counters.ignored += 1;
                return Outcome::Ignored {
                    topic: topic.to_owned(),
                };
            }
            Err((kind, reason)) => {
                *self.counters.rejected.entry(kind).or_default() += 1;
                return Outcome::Rejected {
                    topic: topic.to_owned(),
                    kind,
                    reason,
                    total: self.counters.rejected_total(),
                };
            }
        };
        let gap = match &message {
            Message::Events(b) => match self.totals.record(&device, b) {
                Arrival::New { gap } => gap,
                Arrival::Duplicate => {
                    self.counters.duplicates += 1;
                    return Outcome::Duplicate {
                        device,
                        boot_id: b.boot_id.as_str().to_owned(),
                        run_id: b.run_id,
                        seq: b.seq,
                    };
                }
            },
            _ => None,
        };
        self.counters.accepted += 1;
        Outcome::Accepted {
            device,
            message,
            gap,
        }
    }

    /// The device and message, `None` for a command, or why it is refused.
    fn check(
        &self,
        topic: &str,
        payload: &[u8],
    ) -> Result<Option<(String, Message)>, (Rejection, String)> {
        let rest = topic
            .strip_prefix(&self.prefix)
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| {
                (
                    Rejection::Topic,
                    format!("topic not under {}/", self.prefix),
                )
            })?;
        let (device, leaf) = rest
            .split_once('/')
            .filter(|(d, l)| !d.is_empty() && !l.is_empty())
            .ok_or((Rejection::Topic, "topic has no device/leaf".to_owned()))?;
        if leaf == "cmd" || leaf.starts_with("cmd/") {
            return Ok(None);
        }
        let message = decode(payload).map_err(|e| (Rejection::of(&e), e.to_string()))?;
        if message.topic_leaf() != leaf {
            return Err((
                Rejection::WrongLeaf,
                format!("a {} message on a {leaf} topic", message.topic_leaf()),
            ));
        }
        let claimed = match &message {
            Message::Online(b) => b.device.as_str(),
            Message::Offline(d) => d.device.as_str(),
            Message::Events(b) => b.device.as_str(),
            Message::Metrics(m) => m.device.as_str(),
        };
        if claimed != device {
            return Err((
                Rejection::WrongDevice,
                format!("payload says device {claimed}, topic says {device}"),
            ));
        }
        Ok(Some((device.to_owned(), message)))
    }
}

#[cfg(test)]
mod tests;
