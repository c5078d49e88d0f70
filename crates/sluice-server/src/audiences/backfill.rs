//! The backfill: when a workspace's catalog changed, every profile's state is recomputed from
//! the logged history — series cleared, each source's events up to the consumer's cursor
//! applied in log order, then every state evaluated once at the current time. Outputs are
//! kept throughout, so only real differences are reported (an edited audience reports who
//! entered and who left, nothing more).
//!
//! A crash in the middle leaves the catalog version unmarked: the next pass starts over, and
//! since a backfill starts by clearing the series, it gives the same result.

use std::sync::Arc;

use sluice_audience::Engine;
use sluice_store::{Commit, Source, StoreError, WorkspaceId};

use super::consumer::group_by_profile;
use super::process::{self, Context};
use super::{Audiences, BACKFILLS};
use crate::store_call;

/// States evaluated per commit in the final round.
const EVALUATE: usize = 500;

impl Audiences {
    pub(super) async fn backfill(
        &self,
        workspace: &WorkspaceId,
        engine: &Arc<Engine>,
        version: i64,
        sources: &[Source],
    ) -> Result<(), StoreError> {
        metrics::counter!(BACKFILLS).increment(1);
        tracing::info!(workspace = %workspace, version, "audiences: recomputing from the log");
        let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
        let ws = workspace.clone();
        // Merges and unmerges up to here are reflected by reading events through today's live
        // profiles.
        let (merges, unmerges) = store_call(move || {
            store.clear_series(&ws)?;
            Ok::<_, StoreError>((profiles.last_merge_id(&ws)?, profiles.last_unmerge_id(&ws)?))
        })
        .await?;
        let rules = self.rules(workspace).await?;
        for source in sources {
            let store = Arc::clone(&self.store);
            let (ws, id) = (workspace.clone(), source.id.clone());
            let upto = store_call(move || store.cursor(&ws, &id)).await?;
            let mut from = 0;
            while from < upto {
                let events = self.read(workspace, &source.id, from, upto).await?;
                let Some(last) = events.last().map(|event| event.seq) else {
                    break;
                };
                from = last;
                let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
                let (engine, rules, ws) =
                    (Arc::clone(engine), Arc::clone(&rules), workspace.clone());
                let now = self.clock.now_ms();
                store_call(move || {
                    let work = group_by_profile(&profiles, &ws, &rules, &events)?;
                    let context = Context {
                        store: &store,
                        profiles: &profiles,
                        engine: &engine,
                        workspace: &ws,
                        now,
                    };
                    let output = process::run(&context, work, false)?;
                    store.commit(
                        &ws,
                        &Commit {
                            states: output.states,
                            ..Commit::default()
                        },
                    )
                })
                .await?;
            }
        }
        let mut after = 0;
        loop {
            let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
            let (engine, ws) = (Arc::clone(engine), workspace.clone());
            let now = self.clock.now_ms();
            let last = store_call(move || {
                let rows = store.states_after(&ws, after, EVALUATE)?;
                let Some(last) = rows.last().map(|row| row.profile_id) else {
                    return Ok(None);
                };
                let context = Context {
                    store: &store,
                    profiles: &profiles,
                    engine: &engine,
                    workspace: &ws,
                    now,
                };
                let mut commit = Commit::default();
                for row in &rows {
                    // A state of a profile merged away or erased since goes.
                    let live = profiles.profile_by_id(&ws, row.profile_id)?;
                    if live.is_none_or(|live| live.id != row.profile_id) {
                        commit.removed.push(row.profile_id);
                        continue;
                    }
                    let loaded = process::load(&engine, Some(row));
                    let (row, found) = process::evaluate_one(&context, row.profile_id, loaded)?;
                    commit.states.push(row);
                    commit.changes.extend(found);
                }
                store.commit(&ws, &commit)?;
                Ok::<_, StoreError>(Some(last))
            })
            .await?;
            match last {
                Some(last) => after = last,
                None => break,
            }
        }
        let store = Arc::clone(&self.store);
        let ws = workspace.clone();
        store_call(move || {
            store.commit(
                &ws,
                &Commit {
                    catalog_version: Some(version),
                    merge_id: Some(merges),
                    unmerge_id: Some(unmerges),
                    ..Commit::default()
                },
            )
        })
        .await?;
        tracing::info!(workspace = %workspace, version, "audiences: recomputed");
        Ok(())
    }
}
