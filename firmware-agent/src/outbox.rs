//! The bounded queue between the pipeline and MQTT. When full, the oldest message is dropped
//! and counted: nothing grows without bound, and nothing is lost silently.

use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// Which topic a message goes to, under `<prefix>/<device>/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leaf {
    Events,
    Metrics,
}

impl Leaf {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Events => "events",
            Self::Metrics => "metrics",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub leaf: Leaf,
    pub payload: Vec<u8>,
}

pub struct Outbox {
    state: Mutex<State>,
    capacity: usize,
    dropped: AtomicU64,
    ready: event_listener::Event,
}

struct State {
    queue: VecDeque<Outgoing>,
    closed: bool,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity.min(1024)),
                closed: false,
            }),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            ready: event_listener::Event::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the queue inconsistent: keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `item`; if full, drops the oldest first. Returns false if the outbox is closed.
    pub fn push(&self, item: Outgoing) -> bool {
        let mut st = self.lock();
        if st.closed {
            return false;
        }
        if st.queue.len() >= self.capacity {
            st.queue.pop_front();
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                log::warn!(
                    "outbox full ({} messages): dropped the oldest, {n} dropped so far",
                    self.capacity
                );
            }
        }
        st.queue.push_back(item);
        drop(st);
        self.ready.notify(1);
        true
    }

    /// Waits for the next message; `None` once closed and empty.
    pub async fn pop(&self) -> Option<Outgoing> {
        loop {
            let listener = self.ready.listen();
            {
                let mut st = self.lock();
                if let Some(item) = st.queue.pop_front() {
                    return Some(item);
                }
                if st.closed {
                    return None;
                }
            }
            listener.await;
        }
    }

    /// No more pushes; `pop` drains what is left, then returns `None`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify(usize::MAX);
    }

    /// Messages dropped because the outbox was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.lock().queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(n: u8) -> Outgoing {
        Outgoing {
            leaf: Leaf::Events,
            payload: vec![n],
        }
    }

    #[test]
    fn full_outbox_drops_oldest_and_counts() {
        let ob = Outbox::new(2);
        for n in 0..5 {
            assert!(ob.push(msg(n)));
        }
        assert_eq!(ob.dropped(), 3);
        assert_eq!(ob.len(), 2);
        smol::block_on(async {
            assert_eq!(ob.pop().await, Some(msg(3)));
            ob.close();
            assert!(!ob.push(msg(9)), "closed outbox refuses");
            assert_eq!(ob.pop().await, Some(msg(4)));
            assert_eq!(ob.pop().await, None);
        });
    }

    #[test]
    fn pop_waits_for_push() {
        let ob = std::sync::Arc::new(Outbox::new(4));
        let ob2 = ob.clone();
        let t = std::thread::spawn(move || smol::block_on(ob2.pop()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        ob.push(msg(1));
        assert_eq!(t.join().expect("join"), Some(msg(1)));
    }
}
