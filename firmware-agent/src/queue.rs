//! The decoded-event queue between the readers and the batcher: bounded (a sender waits while
//! `cap` events are queued, so a reader that is ahead stops taking records and the kernel counts
//! what its ring cannot hold), and holding memory only as it is used.
//!
//! A bounded channel of 1024 events (a few hundred bytes each) allocates and touches every slot
//! at start: ~0.4 MB resident for a queue that is empty while idle. An unbounded channel under a
//! semaphore (what this was) allocates blocks of 31 slots (13 KiB) as events come and frees each
//! once read: at 10k events/s that is ~320 allocations and frees a second, which musl's
//! allocator (the static build's) serves with an mmap and a munmap each, and zeroed pages. Here
//! the events sit in one `VecDeque` behind a mutex: it grows to what is queued at once and keeps
//! that room, so a steady flow allocates nothing; once empty with room for more than
//! `SHRINK_ABOVE` items it gives back all but `KEEP` (a burst's peak is not held for good, and
//! the few hundred events a 20 ms wake-up brings at 10k/s do not make it shrink and grow again
//! every time).

use std::{
    collections::VecDeque,
    sync::{Arc, Mutex, MutexGuard},
};

use event_listener::Event;

/// Room kept when the queue empties with more than `SHRINK_ABOVE` slots.
const KEEP: usize = 64;
const SHRINK_ABOVE: usize = 256;

/// A queue holding at most `cap` items.
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap > 0, "a queue needs room for one item");
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            items: VecDeque::new(),
            senders: 1,
            receiver: true,
        }),
        cap,
        pushed: Event::new(),
        taken: Event::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

struct Shared<T> {
    state: Mutex<State<T>>,
    cap: usize,
    /// An item was queued, or the last sender went.
    pushed: Event,
    /// An item was taken, or the receiver went.
    taken: Event,
}

struct State<T> {
    items: VecDeque<T>,
    senders: usize,
    receiver: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // Every update is one push, pop or count: a panic elsewhere leaves nothing half done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct Sender<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.shared.lock().senders += 1;
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut s = self.shared.lock();
            s.senders -= 1;
            s.senders == 0
        };
        if last {
            self.shared.pushed.notify(usize::MAX);
        }
    }
}

/// The receiver is gone; the item comes back.
#[derive(Debug, PartialEq, Eq)]
pub struct Closed<T>(pub T);

impl<T> Sender<T> {
    /// Queues `item` if there is room and the receiver is there; else gives it back. The path
    /// of a reader that is not ahead: the item is not first moved into a waiting future.
    pub fn try_send(&self, item: T) -> Result<(), T> {
        let sh = &*self.shared;
        let mut s = sh.lock();
        if !s.receiver || s.items.len() >= sh.cap {
            return Err(item);
        }
        s.items.push_back(item);
        drop(s);
        sh.pushed.notify(1);
        Ok(())
    }

    /// A reader's send: `try_send`, and only when that fails, `send`. False once the receiver
    /// is gone.
    pub async fn put(&self, item: T) -> bool {
        match self.try_send(item) {
            Ok(()) => true,
            Err(item) => self.send(item).await.is_ok(),
        }
    }

    /// Sends `item`, waiting while the queue is full; fails once the receiver is gone.
    pub async fn send(&self, item: T) -> Result<(), Closed<T>> {
        let sh = &*self.shared;
        loop {
            let listener = {
                let mut s = sh.lock();
                if !s.receiver {
                    return Err(Closed(item));
                }
                if s.items.len() < sh.cap {
                    s.items.push_back(item);
                    drop(s);
                    sh.pushed.notify(1);
                    return Ok(());
                }
                // Listening under the lock: a take after this unlock notifies this listener.
                sh.taken.listen()
            };
            listener.await;
        }
    }
}

pub struct Receiver<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The next item, waiting for one; None once every sender is gone and the queue is empty.
    /// (The batcher takes items with `ready` and `take_while`; this and `try_recv` are for tests.)
    #[cfg(test)]
    pub async fn recv(&self) -> Option<T> {
        loop {
            if let Some(item) = self.try_recv() {
                return Some(item);
            }
            if !self.ready().await {
                return None;
            }
        }
    }

    /// Waits until an item is queued, without taking it; false once every sender is gone and
    /// the queue is empty.
    pub async fn ready(&self) -> bool {
        let sh = &*self.shared;
        loop {
            let listener = {
                let s = sh.lock();
                if !s.items.is_empty() {
                    return true;
                }
                if s.senders == 0 {
                    return false;
                }
                sh.pushed.listen()
            };
            listener.await;
        }
    }

    /// Hands queued items to `take`, oldest first, under one lock, until the queue is empty or
    /// `take` returns false (that item is taken too). Returns whether `take` stopped it: the
    /// batcher's way to move events straight from the queue into a batch until it is full.
    pub fn take_while(&self, mut take: impl FnMut(T) -> bool) -> bool {
        let mut stopped = false;
        let mut taken = 0;
        {
            let mut s = self.shared.lock();
            while let Some(item) = Self::pop(&mut s) {
                taken += 1;
                if !take(item) {
                    stopped = true;
                    break;
                }
            }
        }
        if taken > 0 {
            self.shared.taken.notify(taken);
        }
        stopped
    }

    /// The next item if one is queued.
    #[cfg(test)]
    pub fn try_recv(&self) -> Option<T> {
        let item = Self::pop(&mut self.shared.lock())?;
        self.shared.taken.notify(1);
        Some(item)
    }

    fn pop(s: &mut State<T>) -> Option<T> {
        let item = s.items.pop_front()?;
        if s.items.is_empty() && s.items.capacity() > SHRINK_ABOVE {
            s.items.shrink_to(KEEP);
        }
        Some(item)
    }

    /// Items queued now.
    pub fn len(&self) -> usize {
        self.shared.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[cfg(test)]
    fn room(&self) -> usize {
        self.shared.lock().items.capacity()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        // Senders waiting for room must not wait forever: they find the receiver gone.
        self.shared.lock().receiver = false;
        self.shared.taken.notify(usize::MAX);
    }
}

#[cfg(test)]
mod tests;
