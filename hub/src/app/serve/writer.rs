//! The history writer: a thread of its own that stores each [`WriteBatch`] the ingest loop
//! hands over in one transaction, and applies retention (by size after every write, by age
//! once a minute). Its channel is short, so a writer that cannot keep up slows the ingest loop
//! (and the broker queues for the hub) instead of filling memory. A failed write is logged
//! naming the database and counted; the hub keeps going. A device forgotten (`hub forget`)
//! has its stored rows deleted after the batch that came before it is written.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use edge_hub::{
    store::{Retention, WriteBatch},
    timespec,
};
use tokio::sync::mpsc;

use super::Shared;

/// Batches waiting for the writer before the ingest loop waits.
const QUEUE: usize = 2;
/// How often retention by age runs.
const AGE_PRUNE_EVERY: Duration = Duration::from_secs(60);

pub fn spawn(
    shared: Arc<Shared>,
    retention: Retention,
) -> std::io::Result<(mpsc::Sender<WriteBatch>, JoinHandle<()>)> {
    let (tx, mut rx) = mpsc::channel::<WriteBatch>(QUEUE);
    let handle = std::thread::Builder::new()
        .name("history-writer".into())
        .spawn(move || {
            let mut last_age_prune = Instant::now();
            let mut failures = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                let rows = batch.len() as u64;
                let stats = &shared.stats;
                match shared.store.write(&batch) {
                    Ok(()) => {
                        if failures > 0 {
                            log::info!("hub: history writes work again after {failures} failures");
                            failures = 0;
                        }
                        stats.store_writes.fetch_add(1, Relaxed);
                        stats.store_rows.fetch_add(rows, Relaxed);
                    }
                    Err(e) => {
                        failures += 1;
                        stats.store_errors.fetch_add(1, Relaxed);
                        log::error!("hub: {e}; {rows} rows not stored");
                    }
                }
                for device in &batch.forget {
                    forget(&shared, device);
                }
                let bytes = shared.store.usage_bytes().unwrap_or(0);
                stats.history_bytes.store(bytes, Relaxed);
                let over = retention.max_bytes.is_some_and(|max| bytes > max);
                if over
                    || (retention.max_age_ms.is_some()
                        && last_age_prune.elapsed() >= AGE_PRUNE_EVERY)
                {
                    last_age_prune = Instant::now();
                    prune(&shared, &retention);
                }
            }
        });
    Ok((tx, handle?))
}

/// `hub forget`: the device's history goes with it.
fn forget(shared: &Shared, device: &str) {
    let name = edge_hub::escape(device);
    match shared.store.forget(device) {
        Ok(rows) => log::info!("hub: {name} forgotten: its {rows} stored rows deleted"),
        Err(e) => {
            shared.stats.store_errors.fetch_add(1, Relaxed);
            log::error!("hub: {e}; the history of {name} was not deleted");
        }
    }
}

fn prune(shared: &Shared, retention: &Retention) {
    match shared.store.prune(retention, timespec::now_ms()) {
        Ok(p) if p.rows > 0 => {
            shared.stats.history_bytes.store(p.bytes_after, Relaxed);
            log::info!(
                "hub: retention deleted the {} oldest rows ({} -> {} bytes)",
                p.rows,
                p.bytes_before,
                p.bytes_after
            );
        }
        Ok(_) => {}
        Err(e) => log::error!("hub: retention failed: {e}"),
    }
}
