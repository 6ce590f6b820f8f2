//! Unit tests of the event queue: the bound and the order, backpressure, `put`, `take_while`,
//! and the room growing, being kept and being given back.

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
fn try_send_gives_the_item_back_when_full_or_closed() {
    let (tx, rx) = bounded::<u32>(2);
    assert_eq!(tx.try_send(1), Ok(()));
    assert_eq!(tx.try_send(2), Ok(()));
    assert_eq!(tx.try_send(3), Err(3), "full");
    assert_eq!(rx.try_recv(), Some(1));
    assert_eq!(tx.try_send(4), Ok(()), "room again");
    drop(rx);
    assert_eq!(tx.try_send(5), Err(5), "receiver gone");
}

#[test]
fn put_waits_for_room_and_fails_once_the_receiver_is_gone() {
    let (tx, rx) = bounded::<u32>(1);
    assert!(future::block_on(tx.put(1)), "room: queued at once");
    let waiting = std::thread::spawn({
        let tx = tx.clone();
        move || future::block_on(tx.put(2))
    });
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(rx.try_recv(), Some(1));
    assert!(
        waiting.join().expect("sender"),
        "queued once there was room"
    );
    assert_eq!(rx.try_recv(), Some(2));
    drop(rx);
    assert!(!future::block_on(tx.put(3)), "receiver gone");
}

#[test]
fn take_while_moves_items_in_order_until_told_to_stop_and_frees_room() {
    future::block_on(async {
        let (tx, rx) = bounded::<u32>(4);
        for i in 0..4 {
            tx.send(i).await.expect("room");
        }
        // A sender waiting for room is woken once items are taken.
        let waiting = std::thread::spawn({
            let tx = tx.clone();
            move || future::block_on(tx.send(9))
        });
        let mut got = Vec::new();
        let stopped = rx.take_while(|v| {
            got.push(v);
            v != 1
        });
        assert!(stopped, "stopped by the taker");
        assert_eq!(got, [0, 1], "the item it stopped at is taken too");
        waiting.join().expect("sender").expect("room made");
        got.clear();
        assert!(!rx.take_while(|v| {
            got.push(v);
            true
        }));
        assert_eq!(got, [2, 3, 9], "the rest, oldest first, until empty");
        assert!(rx.is_empty());
        drop(tx);
        assert!(!rx.ready().await, "closed and empty");
    });
}

#[test]
fn room_grows_with_use_and_a_bursts_peak_is_given_back_once_empty() {
    future::block_on(async {
        let (tx, rx) = bounded::<u64>(1024);
        assert_eq!(rx.room(), 0, "nothing allocated before the first item");
        for i in 0..500 {
            tx.send(i).await.expect("room");
        }
        assert!(rx.room() >= 500);
        for i in 0..499 {
            assert_eq!(rx.recv().await, Some(i));
        }
        assert!(rx.room() >= 500, "kept while items are queued");
        assert_eq!(rx.try_recv(), Some(499));
        assert!(rx.room() <= 64, "emptied: {} slots kept", rx.room());
        // A steady flow of up to 256 queued at once keeps the room it grew to.
        for round in 0..100u64 {
            for i in 0..200 {
                tx.send(round * 1000 + i).await.expect("room");
            }
            for i in 0..200 {
                assert_eq!(rx.recv().await, Some(round * 1000 + i));
            }
            assert!(
                (200..=256).contains(&rx.room()),
                "round {round}: {}",
                rx.room()
            );
        }
    });
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
