//! Memory given back when the node goes quiet.
//!
//! Under load the stores keep SQLite page caches warm (32 MiB for the profile store's writer
//! alone); once nothing has been taken in and no consumer has moved for [`QUIET`], those
//! caches only cost memory. The watcher then asks every store to give its caches back, once
//! per quiet spell: the next event refills them from the file and the OS page cache.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::follow::drain;
use crate::startup::AppState;
use crate::telemetry;

/// How long the node must be quiet before its caches are given back.
pub const QUIET: Duration = Duration::from_secs(2);
/// How often the watcher looks.
const CHECK: Duration = Duration::from_millis(500);

/// Work done in the background: log consumers count each pass that applied something, so a
/// node catching up is not taken for an idle one.
#[derive(Default)]
pub struct Activity(AtomicU64);

impl Activity {
    pub fn record(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Watches the log and the consumers until `stopping` turns true; gives the stores' caches
/// back each time the node has been quiet for [`QUIET`], then calls `hook` (the binary's way to
/// return freed memory to the OS).
pub async fn watch(state: AppState, hook: Option<fn()>, mut stopping: watch::Receiver<bool>) {
    let mut committed = state.log.subscribe();
    let mut seen = state.activity.count();
    let mut quiet_since = Instant::now();
    // Caches start empty: there is nothing to give back before the first work.
    let mut released = true;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(CHECK) => {}
            _ = stopping.changed() => return,
        }
        let commits = drain(&mut committed);
        let count = state.activity.count();
        if commits > 0 || count != seen {
            seen = count;
            quiet_since = Instant::now();
            released = false;
            continue;
        }
        if released || quiet_since.elapsed() < QUIET {
            continue;
        }
        released = true;
        let stores = state.clone();
        let started = Instant::now();
        let _ = tokio::task::spawn_blocking(move || {
            release(&stores);
            if let Some(hook) = hook {
                hook();
            }
        })
        .await;
        metrics::counter!(telemetry::IDLE_RELEASES).increment(1);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "node idle: gave back the stores' caches"
        );
    }
}

/// Asks every store to give back its caches; a store that cannot is named in the log and
/// skipped.
fn release(state: &AppState) {
    state.log.release_memory();
    let results = [
        ("profiles", state.profiles.store.release_memory()),
        ("audiences", state.audiences.store.release_memory()),
        ("inventory", state.inventory.store.release_memory()),
        ("delivery", state.deliveries.store.release_memory()),
        ("state", state.state.release_memory()),
    ];
    for (store, result) in results {
        if let Err(error) = result {
            tracing::warn!(%error, store, "giving back a store's cache failed");
        }
    }
}
