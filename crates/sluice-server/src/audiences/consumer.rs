//! The audience consumer's pass. Per workspace, under the gate:
//! 1. a backfill when the saved catalog is newer than the one the states follow;
//! 2. the profile store's new merges: the absorbed profile's state is merged into the kept
//!    one, which is evaluated (an exit of either person is reported once);
//!    Then its unmerges: each profile the history now falls into is recomputed from its own
//!    events (read back from the log), and evaluated against its old outputs;
//! 3. each source's new events, up to what the profile consumer has applied: grouped by the
//!    live profile their identifiers lead to, applied in log order, each profile evaluated
//!    once, stored with the source's cursor in one commit;
//! 4. the syncs: what destinations have not been sent yet (`sync.rs`);
//! 5. profiles whose timer is due (a window passed), re-evaluated (sent at the next pass).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use sluice_audience::{Call, Engine, EventRef, recorded};
use sluice_identity::{Collection, Rules};
use sluice_store::{
    Commit, HistoryRow, MovedEvent, ProfileStore, Source, SourceScope, StoreError, StoredEvent,
    WorkspaceId,
};

use super::process::{self, Context, Work};
use super::{Audiences, EVENTS};
use crate::follow::Consumer;
use crate::store_call;

/// Events read per source and batch.
pub(super) const BATCH: usize = 2_000;
/// Merges applied per commit round.
const MERGES: usize = 500;
/// Due timers handled per pass.
const TIMERS: usize = 1_000;

impl Consumer for Audiences {
    const NAME: &'static str = "audience consumer";

    async fn pass(&self) -> Result<bool, StoreError> {
        let state = Arc::clone(&self.state);
        let sources = store_call(move || state.all_sources()).await?;
        let mut workspaces: Vec<(WorkspaceId, Vec<Source>)> = Vec::new();
        for source in sources {
            match workspaces.last_mut() {
                Some((id, list)) if *id == source.workspace_id => list.push(source),
                _ => workspaces.push((source.workspace_id.clone(), vec![source])),
            }
        }
        let mut progressed = false;
        for (workspace, sources) in &workspaces {
            progressed |= self.workspace_pass(workspace, sources).await?;
        }
        progressed |= self.timers().await?;
        Ok(progressed)
    }
}

impl Audiences {
    /// The workspace's engine at its saved catalog version (`None`, logged, when the saved
    /// definitions do not compile, which the admin API never lets happen).
    pub(super) async fn current_engine(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Option<(i64, Arc<Engine>)>, StoreError> {
        let state = Arc::clone(&self.state);
        let ws = workspace.clone();
        let (definitions, version) = store_call(move || state.definitions(&ws)).await?;
        match self.engine(workspace, version, &definitions) {
            Ok(engine) => Ok(Some((version, engine))),
            Err(error) => {
                tracing::error!(workspace = %workspace, %error, "saved definitions do not compile");
                Ok(None)
            }
        }
    }

    async fn workspace_pass(
        &self,
        workspace: &WorkspaceId,
        sources: &[Source],
    ) -> Result<bool, StoreError> {
        let _gate = self.gate.lock().await;
        let Some((version, engine)) = self.current_engine(workspace).await? else {
            return Ok(false);
        };
        let store = Arc::clone(&self.store);
        let ws = workspace.clone();
        let progress = store_call(move || store.progress(&ws)).await?;
        if progress.catalog_version != version {
            self.backfill(workspace, &engine, version, sources).await?;
            return Ok(true);
        }
        let mut progressed = self.merges(workspace, &engine, progress.merge_id).await?;
        progressed |= self
            .unmerges(workspace, &engine, progress.unmerge_id)
            .await?;
        let rules = self.rules(workspace).await?;
        for source in sources {
            let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
            let (ws, id) = (workspace.clone(), source.id.clone());
            let (cursor, applied) = store_call(move || {
                Ok::<_, StoreError>((store.cursor(&ws, &id)?, profiles.cursor(&ws, &id)?))
            })
            .await?;
            if cursor >= applied {
                continue;
            }
            let events = self.read(workspace, &source.id, cursor, applied).await?;
            let Some(last) = events.last().map(|event| event.seq) else {
                continue;
            };
            progressed = true;
            metrics::counter!(EVENTS).increment(events.len() as u64);
            let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
            let (engine, rules) = (Arc::clone(&engine), Arc::clone(&rules));
            let (ws, source_id) = (workspace.clone(), source.id.clone());
            let now = self.clock.now_ms();
            store_call(move || {
                let mut commit = Commit {
                    cursor: Some((&source_id, last)),
                    ..Commit::default()
                };
                if !engine.is_empty() {
                    let (work, history) = group_by_profile(&profiles, &ws, &rules, &events)?;
                    commit.history = history;
                    commit.history_cursor = Some((&source_id, last));
                    let context = Context {
                        store: &store,
                        profiles: &profiles,
                        engine: &engine,
                        workspace: &ws,
                        now,
                    };
                    let output = process::run(&context, work, true)?;
                    commit.states = output.states;
                    commit.changes = output.changes;
                }
                store.commit(&ws, &commit)
            })
            .await?;
        }
        progressed |= self.sync(workspace).await?;
        Ok(progressed)
    }

    /// The source's events after `cursor`, up to `applied` (what the profile consumer has).
    pub(super) async fn read(
        &self,
        workspace: &WorkspaceId,
        source: &str,
        cursor: i64,
        applied: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let scope = SourceScope {
            workspace_id: workspace.clone(),
            source_id: source.to_string(),
        };
        let mut events = self.log.read(&scope, cursor, BATCH).await?;
        events.retain(|event| event.seq <= applied);
        Ok(events)
    }

    /// The workspace's identity rules (to read identifiers from events).
    pub(super) async fn rules(&self, workspace: &WorkspaceId) -> Result<Arc<Rules>, StoreError> {
        let state = Arc::clone(&self.state);
        let ws = workspace.clone();
        let settings = store_call(move || state.identity_settings(&ws)).await?;
        Rules::compile(&settings)
            .map(Arc::new)
            .map_err(|error| StoreError::Invalid {
                field: "identity settings",
                message: error.to_string(),
            })
    }

    /// Applies the profile store's merges after `after`.
    async fn merges(
        &self,
        workspace: &WorkspaceId,
        engine: &Arc<Engine>,
        after: i64,
    ) -> Result<bool, StoreError> {
        let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
        let engine = Arc::clone(engine);
        let ws = workspace.clone();
        let now = self.clock.now_ms();
        store_call(move || {
            let merges = profiles.merges_after(&ws, after, MERGES)?;
            let Some(last) = merges.last().map(|merge| merge.id) else {
                return Ok(false);
            };
            let context = Context {
                store: &store,
                profiles: &profiles,
                engine: &engine,
                workspace: &ws,
                now,
            };
            for merge in merges {
                let rows = store.load(&ws, &[merge.kept, merge.absorbed])?;
                let absorbed = rows.iter().find(|row| row.profile_id == merge.absorbed);
                let Some(absorbed) = absorbed else {
                    store.commit(
                        &ws,
                        &Commit {
                            moved: vec![(merge.absorbed, merge.kept)],
                            ..Commit::default()
                        },
                    )?;
                    continue;
                };
                let kept = rows.iter().find(|row| row.profile_id == merge.kept);
                let mut loaded = process::load(&engine, kept);
                let from = process::load(&engine, Some(absorbed));
                engine.merge(&mut loaded.state, from.state);
                if loaded.consent.is_none() {
                    loaded.consent = from.consent;
                }
                let traits = process::traits_of(&context, merge.kept)?;
                let (row, found) = process::evaluate_one(&context, merge.kept, loaded, &traits);
                // Later merges in this round read the stored rows: commit each one.
                store.commit(
                    &ws,
                    &Commit {
                        states: vec![row],
                        removed: vec![merge.absorbed],
                        changes: found,
                        moved: vec![(merge.absorbed, merge.kept)],
                        ..Commit::default()
                    },
                )?;
            }
            store.commit(
                &ws,
                &Commit {
                    merge_id: Some(last),
                    ..Commit::default()
                },
            )?;
            Ok(true)
        })
        .await
    }

    /// Applies the profile store's unmerges after `after`: each resulting profile's state is
    /// rebuilt from its own history (its outputs kept, so only differences are reported).
    async fn unmerges(
        &self,
        workspace: &WorkspaceId,
        engine: &Arc<Engine>,
        after: i64,
    ) -> Result<bool, StoreError> {
        let profiles = Arc::clone(&self.profiles.store);
        let ws = workspace.clone();
        let unmerges = store_call(move || {
            let mut found = Vec::new();
            for unmerge in profiles.unmerges_after(&ws, after, MERGES)? {
                let mut histories = Vec::new();
                for profile in &unmerge.profiles {
                    histories.push((*profile, profiles.history_positions(&ws, *profile)?));
                }
                found.push((unmerge.id, histories));
            }
            Ok::<_, StoreError>(found)
        })
        .await?;
        let Some(last) = unmerges.last().map(|(id, _)| *id) else {
            return Ok(false);
        };
        let mut work = Vec::new();
        let mut moved_events = Vec::new();
        for (_, histories) in unmerges {
            for (profile, positions) in histories {
                let mut events = Vec::with_capacity(positions.len());
                for (source, seq) in positions {
                    moved_events.push(MovedEvent {
                        source_id: source.clone(),
                        seq,
                        to: profile,
                    });
                    let scope = SourceScope {
                        workspace_id: workspace.clone(),
                        source_id: source,
                    };
                    let found = self.log.read(&scope, seq - 1, 1).await?;
                    for stored in found.into_iter().filter(|stored| stored.seq == seq) {
                        if let Ok(body) = serde_json::from_str::<Value>(&stored.event.body) {
                            events.push(body);
                        }
                    }
                }
                work.push(Work { profile, events });
            }
        }
        let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
        let (engine, ws) = (Arc::clone(engine), workspace.clone());
        let now = self.clock.now_ms();
        store_call(move || {
            let ids: Vec<i64> = work.iter().map(|item| item.profile).collect();
            // The recorded history follows the split too.
            let mut commit = Commit {
                unmerge_id: Some(last),
                moved_events,
                ..Commit::default()
            };
            // Series start empty, outputs stay: the rebuilt state reports what changed.
            let mut rows = store.load(&ws, &ids)?;
            for row in &mut rows {
                row.series = "{}".into();
            }
            let context = Context {
                store: &store,
                profiles: &profiles,
                engine: &engine,
                workspace: &ws,
                now,
            };
            for item in work {
                let row = rows.iter().find(|row| row.profile_id == item.profile);
                let mut loaded = process::load(&engine, row);
                loaded.apply(&engine, &item.events, now);
                let traits = process::traits_of(&context, item.profile)?;
                let (row, found) = process::evaluate_one(&context, item.profile, loaded, &traits);
                commit.states.push(row);
                commit.changes.extend(found);
            }
            store.commit(&ws, &commit)
        })
        .await?;
        Ok(true)
    }

    /// Re-evaluates profiles whose timer is due.
    async fn timers(&self) -> Result<bool, StoreError> {
        let store = Arc::clone(&self.store);
        let now = self.clock.now_ms();
        let due = store_call(move || store.due(now, TIMERS)).await?;
        if due.is_empty() {
            return Ok(false);
        }
        let mut by_workspace: HashMap<WorkspaceId, Vec<i64>> = HashMap::new();
        for (workspace, profile) in due {
            by_workspace.entry(workspace).or_default().push(profile);
        }
        for (workspace, ids) in by_workspace {
            let _gate = self.gate.lock().await;
            let Some((version, engine)) = self.current_engine(&workspace).await? else {
                continue;
            };
            let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
            store_call(move || {
                if store.progress(&workspace)?.catalog_version != version {
                    return Ok(()); // the backfill evaluates everything
                }
                let context = Context {
                    store: &store,
                    profiles: &profiles,
                    engine: &engine,
                    workspace: &workspace,
                    now,
                };
                let work = ids
                    .into_iter()
                    .map(|profile| Work {
                        profile,
                        events: Vec::new(),
                    })
                    .collect();
                let output = process::run(&context, work, true)?;
                store.commit(
                    &workspace,
                    &Commit {
                        states: output.states,
                        changes: output.changes,
                        ..Commit::default()
                    },
                )
            })
            .await?;
        }
        Ok(true)
    }
}

/// A batch's events grouped by the live profile their identifiers lead to, in log order;
/// events whose identifiers lead nowhere (the profile consumer resolved none) are skipped.
/// Also returns the batch's history rows: the recorded form of each track, page and screen
/// event, under its profile.
pub(super) fn group_by_profile(
    profiles: &ProfileStore,
    workspace: &WorkspaceId,
    rules: &Rules,
    events: &[StoredEvent],
) -> Result<(Vec<Work>, Vec<HistoryRow>), StoreError> {
    let mut work: Vec<Work> = Vec::new();
    let mut history = Vec::new();
    let mut index: HashMap<i64, usize> = HashMap::new();
    for stored in events {
        let Ok(body) = serde_json::from_str::<Value>(&stored.event.body) else {
            continue;
        };
        let mut found = None;
        for id in &sluice_identity::extract(&body, rules).user_ids {
            if let Some(profile) = profiles.lookup(workspace, Collection::Users, id)? {
                found = Some(profile.id);
                break;
            }
        }
        let Some(profile) = found else { continue };
        if let Some(event) = EventRef::read(&body)
            && event.call != Call::Other
        {
            let mut record = Vec::with_capacity(stored.event.body.len() / 2);
            recorded::record(&event, &mut record);
            history.push(HistoryRow {
                profile_id: profile,
                seq: stored.seq,
                source_id: stored.event.source_id.clone(),
                received_at: stored.event.received_at_ms,
                record,
            });
        }
        match index.get(&profile) {
            Some(at) => work[*at].events.push(body),
            None => {
                index.insert(profile, work.len());
                work.push(Work {
                    profile,
                    events: vec![body],
                });
            }
        }
    }
    Ok((work, history))
}
