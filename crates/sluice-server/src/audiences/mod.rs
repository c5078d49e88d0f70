//! Computed traits and audiences on a node: the consumer that keeps every profile's state in
//! `audiences.db` as events arrive, the timers that re-evaluate when a window passes, and the
//! backfill that recomputes everything from the log when a definition changes.
//!
//! - `consumer.rs` — the log consumer: per workspace, a backfill when the catalog changed,
//!   then the profile store's merges, then each source's new events (only those the profile
//!   consumer has applied, so every event has its profile), then due timers.
//! - `backfill.rs` — clears the series, applies the logged history, evaluates every state once.
//! - `estimate.rs` — a draft audience's size, evaluated in memory over the history.
//! - `process.rs` — one batch of profiles: load, apply, evaluate, number the changes, store.
//! - `sync.rs` — the changes sent to destinations: each sync's events appended to the log
//!   under its output source (first every member, then the changes).
//!
//! Time comes from the node's [`Clock`], so tests let windows pass with paused time.

mod backfill;
mod consumer;
mod estimate;
mod process;
mod sync;

pub use estimate::Estimate;
pub use sync::{SYNC_EVENTS, purge_output};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sluice_audience::{Catalog, DefinitionError, Engine, read_audience, read_trait};
use sluice_store::{
    AudienceStore, DefinitionKind, EventLog, StateStore, StoredDefinition, WorkspaceId,
};

use crate::clock::Clock;
use crate::profiles::Profiles;

/// Metric names of the audience consumer.
pub const EVENTS: &str = "sluice_audiences_events_total";
pub const CHANGES: &str = "sluice_audiences_changes_total";
pub const BACKFILLS: &str = "sluice_audiences_backfills_total";

/// The audience store and the consumer that fills it.
pub struct Audiences {
    pub store: Arc<AudienceStore>,
    profiles: Arc<Profiles>,
    log: Arc<dyn EventLog>,
    state: Arc<StateStore>,
    clock: Clock,
    /// Each workspace's compiled catalog, with its version.
    engines: Mutex<HashMap<WorkspaceId, (i64, Arc<Engine>)>>,
    /// Held by the consumer while it works on a workspace, and by a deletion while it erases
    /// states: a batch read before the erasure cannot bring the person back.
    pub gate: tokio::sync::Mutex<()>,
    /// How much a backfill takes at once (smaller in tests, to cross batches).
    batch: backfill::Batch,
}

impl Audiences {
    pub fn new(
        store: Arc<AudienceStore>,
        profiles: Arc<Profiles>,
        log: Arc<dyn EventLog>,
        state: Arc<StateStore>,
    ) -> Audiences {
        Audiences {
            store,
            profiles,
            log,
            state,
            clock: Clock::start(),
            engines: Mutex::new(HashMap::new()),
            gate: tokio::sync::Mutex::new(()),
            batch: backfill::BATCH,
        }
    }

    /// The workspace's engine for catalog `version`, compiled from `definitions` when the
    /// cached one is older.
    fn engine(
        &self,
        workspace: &WorkspaceId,
        version: i64,
        definitions: &[StoredDefinition],
    ) -> Result<Arc<Engine>, DefinitionError> {
        if let Ok(engines) = self.engines.lock()
            && let Some((cached, engine)) = engines.get(workspace)
            && *cached == version
        {
            return Ok(Arc::clone(engine));
        }
        let engine = Arc::new(Engine::new(&catalog(definitions)?)?);
        if let Ok(mut engines) = self.engines.lock() {
            engines.insert(workspace.clone(), (version, Arc::clone(&engine)));
        }
        Ok(engine)
    }
}

impl Audiences {
    /// The consent of these profiles' person changed outside their events (a "do not sell"
    /// opt-out or opt-in): records it, so `list` syncs re-send their memberships and the
    /// destinations' consent rules decide again. Returns how many profiles it touched.
    pub async fn consent_changed(
        &self,
        workspace: &WorkspaceId,
        profiles: Vec<i64>,
    ) -> Result<u64, sluice_store::StoreError> {
        let _gate = self.gate.lock().await;
        let store = Arc::clone(&self.store);
        let ws = workspace.clone();
        let now = self.clock.now_ms();
        crate::store_call(move || store.record_consent_change(&ws, &profiles, now)).await
    }
}

/// Reads saved definitions into a catalog (checked by `Engine::new`).
pub fn catalog(definitions: &[StoredDefinition]) -> Result<Catalog, DefinitionError> {
    let mut catalog = Catalog::default();
    for saved in definitions {
        let value: Value =
            serde_json::from_str(&saved.definition).map_err(|error| DefinitionError {
                field: saved.key.clone(),
                message: format!("stored definition is not JSON: {error}"),
            })?;
        match saved.kind {
            DefinitionKind::Trait => catalog.traits.push(read_trait(&value)?),
            DefinitionKind::Audience => catalog.audiences.push(read_audience(&value)?),
        }
    }
    Ok(catalog)
}

/// A workspace's catalog with `draft` added (or replacing the definition of its key), checked
/// as a whole: what the admin API saves.
pub fn with_draft(
    definitions: &[StoredDefinition],
    kind: DefinitionKind,
    draft: &Value,
) -> Result<(Catalog, String, String), DefinitionError> {
    let mut catalog = catalog(definitions)?;
    let (key, name) = match kind {
        DefinitionKind::Trait => {
            let read = read_trait(draft)?;
            catalog.traits.retain(|t| t.key != read.key);
            let named = (read.key.clone(), read.name.clone());
            catalog.traits.push(read);
            named
        }
        DefinitionKind::Audience => {
            let read = read_audience(draft)?;
            catalog.audiences.retain(|a| a.key != read.key);
            let named = (read.key.clone(), read.name.clone());
            // First, so a cycle is reported from the audience being saved.
            catalog.audiences.insert(0, read);
            named
        }
    };
    catalog.check()?;
    Ok((catalog, key, name))
}

/// The audiences among `definitions` that read `key` (an audience or a computed trait).
pub fn users_of(
    definitions: &[StoredDefinition],
    key: &str,
) -> Result<Vec<String>, DefinitionError> {
    let catalog = catalog(definitions)?;
    Ok(catalog
        .audiences
        .iter()
        .filter(|audience| audience.condition.refers_to(key))
        .map(|audience| audience.key.clone())
        .collect())
}

#[cfg(test)]
mod tests;
