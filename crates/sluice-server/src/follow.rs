//! The loop every log consumer of the node runs (profiles, data inventory): a pass over every
//! source, then, when nothing was new, a wait for the log to commit more (or a short while).
//!
//! Ingestion comes first: while the log takes in more than [`BUSY_EVENTS_PER_SEC`], consumers
//! hold back (they lag, the tracking API keeps the machine), for at most [`MAX_DEFER`] at a
//! time so they never fall behind for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_store::{EventLog, StoreError, StoredEvent};
use tokio::sync::{broadcast, watch};

use crate::idle::Activity;

/// How long an idle consumer waits before looking again without a signal from the log.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Above this ingestion rate consumers hold back.
pub const BUSY_EVENTS_PER_SEC: f64 = 5_000.0;
/// The longest a consumer holds back before running a pass anyway.
pub const MAX_DEFER: Duration = Duration::from_secs(30);
/// How often a holding-back consumer looks at the ingestion rate again.
const BUSY_CHECK: Duration = Duration::from_millis(250);

/// A log consumer: one pass reads and applies a batch of every source with new events.
pub trait Consumer: Send + Sync + 'static {
    /// Named in log lines.
    const NAME: &'static str;

    /// One batch for every source that has new events; true when any had.
    fn pass(&self) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Runs `consumer`'s passes until `stopping` turns true; a batch in progress finishes first.
/// Each pass that applied something is recorded in `activity`.
pub async fn follow<C: Consumer>(
    consumer: Arc<C>,
    log: Arc<dyn EventLog>,
    activity: Arc<Activity>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut committed = log.subscribe();
    let mut since = Instant::now();
    let mut deferred_since: Option<Instant> = None;
    loop {
        if *stopping.borrow() {
            return;
        }
        // How fast is the log taking events in? (Each commit's events come through the live
        // channel; a lagging receiver is told how many it missed.)
        let incoming = drain(&mut committed);
        let rate = incoming as f64 / since.elapsed().as_secs_f64().max(0.001);
        since = Instant::now();
        let waited = deferred_since.map_or(Duration::ZERO, |at| at.elapsed());
        if rate > BUSY_EVENTS_PER_SEC && waited < MAX_DEFER {
            deferred_since.get_or_insert_with(Instant::now);
            tokio::select! {
                _ = tokio::time::sleep(BUSY_CHECK) => continue,
                _ = stopping.changed() => return,
            }
        }
        deferred_since = None;
        let progressed = match consumer.pass().await {
            Ok(progressed) => progressed,
            Err(error) => {
                tracing::error!(%error, consumer = C::NAME, "log consumer pass failed");
                false
            }
        };
        if progressed {
            activity.record();
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(IDLE_WAIT) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Events committed since the last call, without waiting.
pub(crate) fn drain(committed: &mut broadcast::Receiver<Arc<StoredEvent>>) -> u64 {
    let mut count = 0u64;
    loop {
        match committed.try_recv() {
            Ok(_) => count += 1,
            Err(broadcast::error::TryRecvError::Lagged(missed)) => count += missed,
            Err(_) => return count,
        }
    }
}
