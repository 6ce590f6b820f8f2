//! The decoded-event queue between the readers and the batcher: bounded (a sender waits while
//! `cap` events are queued, so a reader that is ahead stops taking records and the kernel counts
//! what its ring cannot hold), but without `async_channel::bounded`'s up-front slot array.
//!
//! A bounded channel of 1024 events (a few hundred bytes each) allocates and touches every slot
//! at start: ~0.4 MB resident for a queue that is empty while idle. Here the events go through
//! an unbounded channel, which allocates its slots in blocks of 31 as events arrive and frees
//! each block once read, and the bound is a semaphore of `cap` permits: a sender takes one
//! before sending, the receiver gives one back per event received.

use std::sync::Arc;

use smol::lock::Semaphore;

/// A queue holding at most `cap` items.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap > 0, "a queue needs room for one item");
    let (tx, rx) = async_channel::unbounded();
    let room = Arc::new(Semaphore::new(cap));
    (
        Sender {
            tx,
            room: room.clone(),
        },
        Receiver { rx, room },
    )
}

pub struct Sender<T> {
    tx: async_channel::Sender<T>,
    room: Arc<Semaphore>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            room: self.room.clone(),
        }
    }
}

/// The receiver is gone; the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> Sender<T> {
    /// Sends `item`, waiting while the queue is full; fails once the receiver is gone.
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        if self.tx.is_closed() {
            return Err(Closed(item));
        }
        // The permit is given back by the receiver when it takes the item (or by its drop).
        self.room.acquire().await.forget();
        self.tx.try_send(item).map_err(|e| Closed(e.into_inner()))
    }
}

pub struct Receiver<T> {
    rx: async_channel::Receiver<T>,
    room: Arc<Semaphore>,
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; None once every sender is gone and the queue is empty.
    pub async fn recv(&self) -> Option<T> {
        let item = self.rx.recv().await.ok()?;
        self.room.add_permits(1);
        Some(item)
    }

    /// The next item if one is queued.
    pub fn try_recv(&self) -> Option<T> {
        let item = self.rx.try_recv().ok()?;
        self.room.add_permits(1);
        Some(item)
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Senders waiting for room must not wait forever: close, then let every waiter through
        // to find the channel closed.
        self.rx.close();
        self.room.add_permits(usize::MAX / 4);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_lite::future;

    use super::*;

    #[test]
    fn holds_at_most_cap_and_keeps_order() {
        future::block_on(async {
            let (tx, rx) = bounded::<u32>(3);
            for i in 0..3 {
                tx.send(i).await.expect("room");
            }
            // Full: the fourth send waits until one is received.
            {
                let mut fourth = std::pin::pin!(tx.send(3));
                assert!(future::poll_once(&mut fourth).await.is_none());
                assert_eq!(rx.len(), 3);
                assert_eq!(rx.recv().await, Some(0));
                assert_eq!(future::poll_once(&mut fourth).await, Some(Ok(())));
            }
            assert_eq!(rx.try_recv(), Some(1));
            assert_eq!(rx.recv().await, Some(2));
            assert_eq!(rx.recv().await, Some(3));
            assert_eq!(rx.try_recv(), None);
            drop(tx);
            assert_eq!(rx.recv().await, None, "closed once every sender is gone");
        });
    }

    #[test]
    fn every_item_arrives_exactly_once_under_backpressure() {
        let (tx, rx) = bounded::<u64>(7);
        let senders: Vec<_> = (0..3u64)
            .map(|s| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    future::block_on(async {
                        for i in 0..5_000 {
                            tx.send(s * 1_000_000 + i).await.expect("receiver alive");
                        }
                    })
                })
            })
            .collect();
        drop(tx);
        let mut next = [0u64; 3];
        let mut max_len = 0;
        future::block_on(async {
            while let Some(v) = rx.recv().await {
                max_len = max_len.max(rx.len());
                let (s, i) = ((v / 1_000_000) as usize, v % 1_000_000);
                assert_eq!(i, next[s], "per sender in order, none lost or repeated");
                next[s] += 1;
            }
        });
        for s in senders {
            s.join().expect("sender");
        }
        assert_eq!(next, [5_000; 3]);
        assert!(max_len <= 7, "never more than cap queued: {max_len}");
    }

    #[test]
    fn a_waiting_sender_gets_its_item_back_when_the_receiver_goes() {
        let (tx, rx) = bounded::<u32>(1);
        future::block_on(tx.send(1)).expect("room");
        let waiter = std::thread::spawn(move || future::block_on(tx.send(2)));
        std::thread::sleep(Duration::from_millis(50));
        drop(rx);
        assert_eq!(waiter.join().expect("sender"), Err(Closed(2)));
    }
}
