//! The profile consumer.
//!
//! One task follows every source of every workspace: for each, it reads the events after the
//! profile store's cursor and ingests them in batches (on a blocking thread), one transaction
//! per batch with the cursor in it. When a pass finds nothing new it waits for the log to
//! commit more, or a short while. Identity settings are read once per pass, so a change
//! applies to the next batch.
//!
//! The loop around the passes (waiting for commits, holding back while ingestion is busy) is
//! [`crate::follow`]'s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::follow::Consumer;
use crate::store_call;
use sluice_identity::Rules;
use sluice_store::{
    EventLog, INGEST_BATCH, ProfileStore, SourceScope, StateStore, StoreError, WorkspaceId,
};

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
}

impl Consumer for Profiles {
    const NAME: &'static str = "profile consumer";

    async fn pass(&self) -> Result<bool, StoreError> {
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
