//! The profile consumer.
//!
//! One task follows every source of every workspace: for each, it reads the events after the
//! profile store's cursor and ingests them in batches (on a blocking thread), one transaction
//! per batch with the cursor in it. When a pass finds nothing new it waits for the log to
//! commit more, or a short while. Identity settings are read once per pass, so a change
//! applies to the next batch.
//!
//! Ingestion comes first: while the log takes in more than [`BUSY_EVENTS_PER_SEC`], the
//! consumer holds back (profiles lag, the tracking API keeps the machine), for at most
//! [`MAX_DEFER`] at a time so profiles never fall behind for good.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_identity::Rules;
use sluice_store::{
    EventLog, INGEST_BATCH, ProfileStore, SourceScope, StateStore, StoreError, StoredEvent,
    WorkspaceId,
};
use tokio::sync::{broadcast, watch};

use crate::store_call;

/// How long an idle consumer waits before looking again without a signal from the log.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Above this ingestion rate the consumer holds back.
pub const BUSY_EVENTS_PER_SEC: f64 = 5_000.0;
/// The longest the consumer holds back before running a pass anyway.
pub const MAX_DEFER: Duration = Duration::from_secs(30);
/// How often a holding-back consumer looks at the ingestion rate again.
const BUSY_CHECK: Duration = Duration::from_millis(250);

/// Metric names of the profile consumer.
pub const EVENTS: &str = "sluice_profiles_events_total";
pub const MERGES: &str = "sluice_profiles_merges_total";
pub const CREATED: &str = "sluice_profiles_created_total";
pub const DROPPED: &str = "sluice_profiles_identifiers_dropped_total";
pub const UNRESOLVED: &str = "sluice_profiles_unresolved_events_total";

/// The profile store and the consumer that fills it.
pub struct Profiles {
    pub store: Arc<ProfileStore>,
    log: Arc<dyn EventLog>,
    state: Arc<StateStore>,
    /// Held by the consumer from reading a batch until it is stored, and by a deletion while
    /// it erases the log and the profiles: a batch read before the erasure can never bring
    /// the person back after it.
    pub gate: tokio::sync::Mutex<()>,
}

impl Profiles {
    pub fn new(
        store: Arc<ProfileStore>,
        log: Arc<dyn EventLog>,
        state: Arc<StateStore>,
    ) -> Profiles {
        Profiles {
            store,
            log,
            state,
            gate: tokio::sync::Mutex::new(()),
        }
    }

    /// Runs passes until the profiles hold everything the log held when called, or `limit`
    /// has passed (a deletion resolves the person from an up-to-date graph).
    pub async fn catch_up(&self, limit: Duration) -> Result<(), StoreError> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if !self.pass().await? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Follows the log until `stopping` turns true; a batch in progress finishes first.
    pub async fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut committed = self.log.subscribe();
        let mut since = Instant::now();
        let mut deferred_since: Option<Instant> = None;
        loop {
            if *stopping.borrow() {
                return;
            }
            // How fast is the log taking events in? (Each commit's events come through the
            // live channel; a lagging receiver is told how many it missed.)
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
            let progressed = match self.pass().await {
                Ok(progressed) => progressed,
                Err(error) => {
                    tracing::error!(%error, "profile consumer pass failed");
                    false
                }
            };
            if progressed {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(IDLE_WAIT) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// One batch for every source that has new events; true when any had.
    pub async fn pass(&self) -> Result<bool, StoreError> {
        let state = Arc::clone(&self.state);
        let sources = store_call(move || state.all_sources()).await?;
        let mut progressed = false;
        let mut rules: Option<(WorkspaceId, Arc<Rules>)> = None;
        for source in sources {
            let workspace = source.workspace_id.clone();
            let current = match &rules {
                Some((id, rules)) if *id == workspace => Arc::clone(rules),
                _ => {
                    let state = Arc::clone(&self.state);
                    let id = workspace.clone();
                    let settings = store_call(move || state.identity_settings(&id)).await?;
                    let compiled = match Rules::compile(&settings) {
                        Ok(compiled) => Arc::new(compiled),
                        Err(error) => {
                            tracing::error!(workspace = %workspace, %error, "stored identity settings are invalid");
                            continue;
                        }
                    };
                    rules = Some((workspace.clone(), Arc::clone(&compiled)));
                    compiled
                }
            };
            let gate = self.gate.lock().await;
            let store = Arc::clone(&self.store);
            let (ws, id) = (workspace.clone(), source.id.clone());
            let cursor = store_call(move || store.cursor(&ws, &id)).await?;
            let scope = SourceScope {
                workspace_id: workspace.clone(),
                source_id: source.id.clone(),
            };
            let events = self.log.read(&scope, cursor, INGEST_BATCH).await?;
            if events.is_empty() {
                continue;
            }
            progressed = true;
            let store = Arc::clone(&self.store);
            let source_id = source.id.clone();
            let report =
                store_call(move || store.ingest(&workspace, &current, &source_id, &events)).await?;
            drop(gate);
            metrics::counter!(EVENTS).increment(report.events);
            metrics::counter!(MERGES).increment(report.merges);
            metrics::counter!(CREATED).increment(report.profiles_created);
            metrics::counter!(DROPPED).increment(report.identifiers_dropped);
            metrics::counter!(UNRESOLVED).increment(report.unresolved);
        }
        Ok(progressed)
    }
}

/// Events committed since the last call, without waiting.
fn drain(committed: &mut broadcast::Receiver<Arc<StoredEvent>>) -> u64 {
    let mut count = 0u64;
    loop {
        match committed.try_recv() {
            Ok(_) => count += 1,
            Err(broadcast::error::TryRecvError::Lagged(missed)) => count += missed,
            Err(_) => return count,
        }
    }
}
