//! The fleet as `hub serve` shows it: per device the status (online/offline from the retained
//! status messages, a stale will recognised by its lower session), when it was last heard from,
//! its last birth and metrics sample, and its delivery counts (events by kind, drops by source,
//! missing and duplicate batches). A device's state is saved with the history and loaded at
//! start, so counts carry over a hub restart: what this run counted is added to what was saved.
//! Births and samples are kept as JSON, so a state saved by another wire version still loads.

mod view;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use edge_wire::{DeathCause, Message};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use view::{DeviceView, ProbeView};

use crate::{
    Outcome, Summary, Totals,
    store::{DROPS, GAP, Record, STATUS},
};

/// What is known of one device (saved with the history).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceState {
    pub device: String,
    /// From the last status message; `None` before any.
    pub online: Option<bool>,
    /// Hub clock (unix ms) when the status last changed.
    pub status_since_ms: i64,
    /// `Shutdown` or `ConnectionLost` while offline.
    pub offline_cause: Option<String>,
    /// Hub clock when a live (not retained) message last came from it.
    pub last_seen_ms: i64,
    /// The last birth, as the hub's JSON shows it.
    pub birth: Option<Value>,
    /// The last metrics sample.
    pub metrics: Option<Value>,
    pub events: u64,
    pub events_by_kind: BTreeMap<String, u64>,
    pub drops: BTreeMap<String, u64>,
    pub missing_batches: u64,
    pub duplicate_batches: u64,
}

/// Counts saved by earlier hub runs (this run's totals are added to them).
#[derive(Clone, Debug, Default)]
struct Base {
    events: u64,
    drops: BTreeMap<String, u64>,
    missing_batches: u64,
    duplicate_batches: u64,
}

#[derive(Debug)]
struct Entry {
    state: DeviceState,
    base: Base,
    /// The fleet's version when this device last changed.
    version: u64,
}

/// What a status message did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatusChange {
    Online,
    Offline {
        cause: String,
    },
    /// A will of an earlier session, published after the device had reconnected: ignored.
    StaleWill {
        session: u32,
        current: u32,
    },
}

/// How many forgotten devices the fleet remembers for open pages ([`Fleet::forgotten_since`]).
pub const FORGOTTEN_KEPT: usize = 4096;

#[derive(Debug, Default)]
pub struct Fleet {
    devices: BTreeMap<String, Entry>,
    version: u64,
    dirty: BTreeSet<String>,
    /// The last [`FORGOTTEN_KEPT`] devices forgotten, with the version that forgot them, oldest
    /// first: a fleet table opened before that still shows them until it is told.
    forgotten: VecDeque<(u64, String)>,
}

impl Fleet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A fleet with the states saved by an earlier run (ones that do not parse start empty).
    pub fn load(saved: Vec<(String, Value)>) -> Self {
        let mut fleet = Self::new();
        for (device, raw) in saved {
            let mut state: DeviceState = serde_json::from_value(raw).unwrap_or_default();
            state.device.clone_from(&device);
            let base = Base {
                events: state.events,
                drops: state.drops.clone(),
                missing_batches: state.missing_batches,
                duplicate_batches: state.duplicate_batches,
            };
            fleet.devices.insert(
                device,
                Entry {
                    state,
                    base,
                    version: 0,
                },
            );
        }
        fleet
    }

    /// Takes in one outcome of [`Hub::handle`](crate::Hub::handle) and the records it left
    /// ([`rows_of`](crate::store::rows_of): their kinds are counted); `totals` is the hub's,
    /// after it; `now_ms` is the hub's clock, `retained` whether the broker replayed the
    /// message from its store (it does not mean the device was heard from now).
    pub fn apply(
        &mut self,
        outcome: &Outcome,
        records: &[Record],
        totals: &Totals,
        now_ms: i64,
        retained: bool,
    ) -> Option<StatusChange> {
        let (device, message) = match outcome {
            Outcome::Accepted {
                device, message, ..
            } => (device, Some(message)),
            Outcome::Duplicate { device, .. } => (device, None),
            Outcome::Rejected { .. } | Outcome::Ignored { .. } => return None,
        };
        self.version += 1;
        let version = self.version;
        self.dirty.insert(device.clone());
        let entry = self.devices.entry(device.clone()).or_insert_with(|| Entry {
            state: DeviceState {
                device: device.clone(),
                ..DeviceState::default()
            },
            base: Base::default(),
            version,
        });
        entry.version = version;
        let st = &mut entry.state;
        if !retained {
            st.last_seen_ms = now_ms;
        }
        let mut change = None;
        match message {
            Some(Message::Online(b)) => {
                if st.online != Some(true) {
                    st.status_since_ms = now_ms;
                }
                st.online = Some(true);
                st.offline_cause = None;
                st.birth = serde_json::to_value(b).ok();
                change = Some(StatusChange::Online);
            }
            Some(Message::Offline(d)) => {
                let current = st.birth.as_ref().and_then(|b| {
                    let same_boot = b["boot_id"].as_str() == Some(d.boot_id.as_str());
                    let session = u32::try_from(b["session"].as_u64()?).ok()?;
                    (same_boot && st.online == Some(true)).then_some(session)
                });
                change = Some(match current {
                    Some(current) if d.session < current => StatusChange::StaleWill {
                        session: d.session,
                        current,
                    },
                    _ => {
                        let cause = match d.cause {
                            DeathCause::Shutdown => "Shutdown",
                            DeathCause::ConnectionLost => "ConnectionLost",
                        };
                        if st.online != Some(false) {
                            st.status_since_ms = now_ms;
                        }
                        st.online = Some(false);
                        st.offline_cause = Some(cause.into());
                        StatusChange::Offline {
                            cause: cause.into(),
                        }
                    }
                });
            }
            Some(Message::Metrics(m)) => st.metrics = serde_json::to_value(m).ok(),
            Some(Message::Events(_)) => {
                let events = records
                    .iter()
                    .filter(|r| !matches!(r.kind.as_str(), STATUS | GAP | DROPS));
                for r in events {
                    match st.events_by_kind.get_mut(&r.kind) {
                        Some(n) => *n += 1,
                        None => {
                            st.events_by_kind.insert(r.kind.clone(), 1);
                        }
                    }
                }
            }
            None => {}
        }
        if let Some(now) = totals.device(device) {
            add_totals(st, &entry.base, &now);
        }
        change
    }

    /// Removes `device` (`hub forget`): it leaves the fleet view, its state is no longer saved,
    /// and it starts from nothing if it comes back. False if it was not known.
    pub fn forget(&mut self, device: &str) -> bool {
        self.dirty.remove(device);
        let known = self.devices.remove(device).is_some();
        if known {
            self.version += 1;
            self.forgotten.push_back((self.version, device.to_owned()));
            if self.forgotten.len() > FORGOTTEN_KEPT {
                self.forgotten.pop_front();
            }
        }
        known
    }

    /// Devices forgotten after `version`, oldest first. One that came back since is listed too,
    /// and also among [`Fleet::changed_since`]: a view removes these before it applies those.
    /// Only the last [`FORGOTTEN_KEPT`] forgets are remembered.
    pub fn forgotten_since(&self, version: u64) -> impl Iterator<Item = &str> {
        self.forgotten
            .iter()
            .filter(move |(v, _)| *v > version)
            .map(|(_, d)| d.as_str())
    }

    /// The fleet's version when `device` last changed.
    pub fn device_version(&self, device: &str) -> Option<u64> {
        self.devices.get(device).map(|e| e.version)
    }

    /// The devices, in id order.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceState> {
        self.devices.values().map(|e| &e.state)
    }

    pub fn device(&self, id: &str) -> Option<&DeviceState> {
        self.devices.get(id).map(|e| &e.state)
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The fleet's version: it grows with every change.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Devices changed after `version`, in id order.
    pub fn changed_since(&self, version: u64) -> impl Iterator<Item = &DeviceState> {
        self.devices
            .values()
            .filter(move |e| e.version > version)
            .map(|e| &e.state)
    }

    /// The states changed since the last call, to be saved.
    pub fn take_dirty(&mut self) -> Vec<(String, Value)> {
        let dirty = std::mem::take(&mut self.dirty);
        dirty
            .into_iter()
            .filter_map(|d| {
                let st = &self.devices.get(&d)?.state;
                Some((d, serde_json::to_value(st).ok()?))
            })
            .collect()
    }
}

fn add_totals(st: &mut DeviceState, base: &Base, now: &Summary) {
    st.events = base.events + now.delivered_events;
    st.missing_batches = base.missing_batches + now.missing_batches;
    st.duplicate_batches = base.duplicate_batches + now.duplicate_batches;
    // Drop counts are run totals: across a hub restart the same run reports its total again, so
    // the saved and the new counts are combined by their maximum, not added (a device that
    // restarted while the hub was down is undercounted by its older run's losses until that run
    // is seen again).
    st.drops.clone_from(&base.drops);
    for (source, n) in &now.drops {
        let total = st.drops.entry(source.clone()).or_default();
        *total = (*total).max(*n);
    }
}

#[cfg(test)]
mod tests;
