//! The feeder: one task per MQTT connection that hands requests to rumqttc's event loop
//! through a zero-capacity channel, in the order the broker must see them: the birth first,
//! the command subscription, then the outbox (backlog and live), a re-birth when asked, and at
//! the end the offline status and DISCONNECT. Each publish is tagged before it is handed over,
//! so the event loop's packet ids can be matched back to outbox entries when PUBACKs arrive.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use edge_wire::{Birth, Message, encode};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::Notify;

use crate::outbox::{Outbox, Ready};

use super::{Topics, death};

/// What a publish was, so its acknowledgement can be acted on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tag {
    Birth,
    Item(u64),
    Offline,
}

/// Matches rumqttc's packet ids to tags. Requests reach the event loop in the order the
/// feeder tagged them (one sender, a rendezvous channel), and the event loop reports each
/// publish's packet id in that order.
#[derive(Default)]
pub struct Tags {
    /// Handed to the event loop, packet id not known yet.
    waiting: VecDeque<Tag>,
    by_pkid: HashMap<u16, Tag>,
    /// A publish the event loop held back on a packet-id collision, until that id is acked.
    collided: Option<(u16, Tag)>,
}

impl Tags {
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// `Outgoing::Publish(pkid)`: the next tagged request (or the collided one) got `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        let tag = match self.collided {
            Some((p, tag)) if p == pkid && !self.by_pkid.contains_key(&pkid) => {
                self.collided = None;
                Some(tag)
            }
            _ => self.waiting.pop_front(),
        };
        match tag {
            Some(tag) => {
                self.by_pkid.insert(pkid, tag);
            }
            None => log::warn!("mqtt: publish {pkid} went out untagged"),
        }
    }

    /// `Outgoing::AwaitAck(pkid)`: the next tagged request waits for `pkid` to be acked.
    pub fn collided(&mut self, pkid: u16) {
        if let Some(tag) = self.waiting.pop_front() {
            self.collided = Some((pkid, tag));
        }
    }

    /// `Incoming::PubAck(pkid)`.
    pub fn acked(&mut self, pkid: u16) -> Option<Tag> {
        self.by_pkid.remove(&pkid)
    }
}

/// State shared by the connection's poll loop and its feeder.
pub struct Shared {
    pub tags: Mutex<Tags>,
    pub rebirth: Notify,
    pub offline_acked: Notify,
}

impl Shared {
    pub fn new() -> Self {
        Self {
            tags: Mutex::new(Tags::default()),
            rebirth: Notify::new(),
            offline_acked: Notify::new(),
        }
    }

    pub fn tags(&self) -> std::sync::MutexGuard<'_, Tags> {
        self.tags.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a feeder stopped.
#[derive(Debug)]
enum Stop {
    /// The event loop is gone (the channel closed).
    EventLoopGone,
}

pub struct Feeder {
    pub client: AsyncClient,
    pub topics: Arc<Topics>,
    pub birth: Birth,
    pub outbox: Arc<Outbox>,
    pub shared: Arc<Shared>,
}

impl Feeder {
    /// Feeds one connection until the outbox settles (then says goodbye) or the task is
    /// aborted by the poll loop when the connection drops.
    pub async fn run(mut self) {
        if let Err(e) = self.feed().await {
            log::debug!("mqtt: feeder stopped: {e:?}");
        }
    }

    async fn feed(&mut self) -> Result<(), Stop> {
        self.send_birth().await?;
        self.client
            .subscribe(self.topics.rebirth.clone(), QoS::AtLeastOnce)
            .await
            .map_err(|_| Stop::EventLoopGone)?;
        loop {
            tokio::select! {
                biased;
                () = self.shared.rebirth.notified() => {
                    log::info!("mqtt: rebirth requested on {}; re-sending the birth", self.topics.rebirth);
                    self.send_birth().await?;
                }
                ready = self.outbox.next() => match ready {
                    Ready::Send(entry) => {
                        let topic = self.topics.leaf(entry.leaf.as_str());
                        self.send(Tag::Item(entry.id), topic, false, entry.payload).await?;
                    }
                    Ready::Settled => break,
                },
            }
        }
        let bye = death(
            &self.birth,
            self.birth.session,
            edge_wire::DeathCause::Shutdown,
        );
        match encode(&bye) {
            Ok(bytes) => {
                self.send(Tag::Offline, self.topics.status.clone(), true, bytes.into())
                    .await?;
                // DISCONNECT only once the broker has the goodbye: nothing of ours is unread
                // or unacknowledged when the socket closes, so the will never fires.
                self.shared.offline_acked.notified().await;
            }
            Err(e) => log::error!("mqtt: encoding the offline status failed: {e}"),
        }
        self.client
            .disconnect()
            .await
            .map_err(|_| Stop::EventLoopGone)
    }

    async fn send_birth(&mut self) -> Result<(), Stop> {
        self.birth.unix_ms = crate::batch::unix_ms();
        match encode(&Message::Online(self.birth.clone())) {
            Ok(bytes) => {
                self.send(Tag::Birth, self.topics.status.clone(), true, bytes.into())
                    .await
            }
            Err(e) => {
                log::error!("mqtt: encoding the birth message failed: {e}");
                Ok(())
            }
        }
    }

    async fn send(
        &self,
        tag: Tag,
        topic: String,
        retain: bool,
        payload: Bytes,
    ) -> Result<(), Stop> {
        self.shared.tags().waiting.push_back(tag);
        self.client
            .publish_bytes(topic, QoS::AtLeastOnce, retain, payload)
            .await
            .map_err(|_| Stop::EventLoopGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_map_back_to_tags_in_order_and_across_collisions() {
        let mut t = Tags::default();
        t.waiting
            .extend([Tag::Birth, Tag::Item(7), Tag::Item(8), Tag::Item(9)]);
        t.sent(1);
        t.sent(2);
        // Packet id 1 still unacked when the next publish wants it: held back.
        t.collided(1);
        t.sent(3);
        assert_eq!(t.acked(2), Some(Tag::Item(7)));
        assert_eq!(t.acked(1), Some(Tag::Birth));
        // The held-back publish goes out with id 1 after its ack.
        t.sent(1);
        assert_eq!(t.acked(1), Some(Tag::Item(8)));
        assert_eq!(t.acked(3), Some(Tag::Item(9)));
        assert_eq!(t.acked(3), None, "an ack is used once");
    }
}
