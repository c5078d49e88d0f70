//! The backfill: when a workspace's catalog changed, every profile's state is recomputed from
//! the audience history (each profile's events in recorded form, see `sluice-store`'s
//! `audiences/history.rs`), one profile after another in profile-id order: its series rebuilt
//! from its own events, then evaluated at the current time. Outputs are kept throughout, so
//! only real differences are reported (an edited audience reports who entered and who left,
//! nothing more).
//!
//! Steps:
//! 1. The history is completed: events logged while the workspace had no definition (the
//!    consumer records none then) are read from the log and recorded, with the consents they
//!    carry. With no definition left, the history is dropped instead.
//! 2. Merges and unmerges the consumer has not followed yet are followed in the history.
//! 3. States and histories are walked together by profile id, a batch of profiles per commit.
//!
//! A crash in the middle leaves the catalog version unmarked: the next pass starts over, and
//! since every series is rebuilt from the history, it gives the same result.

use std::sync::Arc;

use sluice_audience::{Engine, recorded, split};
use sluice_store::{
    ChangeRow, Commit, MovedEvent, ProfileHistory, ProfileRow, Source, StoreError, WorkspaceId,
};

use super::consumer::group_by_profile;
use super::process::{self, Context, Loaded};
use super::{Audiences, BACKFILLS};
use crate::store_call;

/// How much a backfill takes at once.
#[derive(Clone, Copy, Debug)]
pub(super) struct Batch {
    /// Profiles recomputed per commit (and merges or unmerges followed per commit).
    pub profiles: usize,
    /// Recorded events read per batch: a batch stops after the profile that reaches it.
    pub events: usize,
}

/// Threads are started for each batch, which costs about 50 µs a thread: batches of a few
/// thousand profiles keep that a small part of the work. 80,000 events are about 12 MB of
/// records.
pub(super) const BATCH: Batch = Batch {
    profiles: 2_000,
    events: 80_000,
};
/// At most this many threads recompute a batch.
const THREADS: usize = 4;

impl Audiences {
    pub(super) async fn backfill(
        &self,
        workspace: &WorkspaceId,
        engine: &Arc<Engine>,
        version: i64,
        sources: &[Source],
    ) -> Result<(), StoreError> {
        metrics::counter!(BACKFILLS).increment(1);
        tracing::info!(workspace = %workspace, version, "audiences: recomputing from the history");
        let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
        let ws = workspace.clone();
        // Merges and unmerges up to here are reflected once the history follows them.
        let (merges, unmerges, progress) = store_call(move || {
            Ok::<_, StoreError>((
                profiles.last_merge_id(&ws)?,
                profiles.last_unmerge_id(&ws)?,
                store.progress(&ws)?,
            ))
        })
        .await?;
        if engine.is_empty() {
            let store = Arc::clone(&self.store);
            let ws = workspace.clone();
            store_call(move || store.drop_history(&ws)).await?;
        } else {
            for source in sources {
                self.complete_history(workspace, engine, source).await?;
            }
            self.follow_in_history(workspace, progress.merge_id, progress.unmerge_id)
                .await?;
        }
        self.recompute(workspace, engine).await?;
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

    /// Records the source's events between its history cursor and the consumer's cursor, and
    /// the consents they carry (the consumer skipped both while there was no definition).
    async fn complete_history(
        &self,
        workspace: &WorkspaceId,
        engine: &Arc<Engine>,
        source: &Source,
    ) -> Result<(), StoreError> {
        let store = Arc::clone(&self.store);
        let (ws, id) = (workspace.clone(), source.id.clone());
        let (mut from, upto) = store_call(move || {
            Ok::<_, StoreError>((store.history_cursor(&ws, &id)?, store.cursor(&ws, &id)?))
        })
        .await?;
        let rules = self.rules(workspace).await?;
        while from < upto {
            let events = self.read(workspace, &source.id, from, upto).await?;
            let Some(last) = events.last().map(|event| event.seq) else {
                break;
            };
            from = last;
            let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
            let (engine, rules, ws, source_id) = (
                Arc::clone(engine),
                Arc::clone(&rules),
                workspace.clone(),
                source.id.clone(),
            );
            let now = self.clock.now_ms();
            store_call(move || {
                let (work, history) = group_by_profile(&profiles, &ws, &rules, &events)?;
                let context = Context {
                    store: &store,
                    profiles: &profiles,
                    engine: &engine,
                    workspace: &ws,
                    now,
                };
                // Series are rebuilt afterwards; this keeps each person's latest consent.
                let consents = process::run(&context, process::with_consent(work), false)?;
                store.commit(
                    &ws,
                    &Commit {
                        states: consents.states,
                        history,
                        history_cursor: Some((&source_id, last)),
                        ..Commit::default()
                    },
                )
            })
            .await?;
        }
        Ok(())
    }

    /// Moves recorded events along the merges after `merge_id` and the unmerges after
    /// `unmerge_id`, which the consumer has not followed yet.
    async fn follow_in_history(
        &self,
        workspace: &WorkspaceId,
        merge_id: i64,
        unmerge_id: i64,
    ) -> Result<(), StoreError> {
        let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
        let ws = workspace.clone();
        let batch = self.batch;
        store_call(move || {
            let mut after = merge_id;
            loop {
                let merges = profiles.merges_after(&ws, after, batch.profiles)?;
                let Some(last) = merges.last().map(|merge| merge.id) else {
                    break;
                };
                after = last;
                let moved = merges.iter().map(|m| (m.absorbed, m.kept)).collect();
                store.commit(
                    &ws,
                    &Commit {
                        moved,
                        ..Commit::default()
                    },
                )?;
            }
            let mut after = unmerge_id;
            loop {
                let unmerges = profiles.unmerges_after(&ws, after, batch.profiles)?;
                let Some(last) = unmerges.last().map(|unmerge| unmerge.id) else {
                    break;
                };
                after = last;
                let mut moved_events = Vec::new();
                for unmerge in &unmerges {
                    for profile in &unmerge.profiles {
                        for (source_id, seq) in profiles.history_positions(&ws, *profile)? {
                            moved_events.push(MovedEvent {
                                source_id,
                                seq,
                                to: *profile,
                            });
                        }
                    }
                }
                store.commit(
                    &ws,
                    &Commit {
                        moved_events,
                        ..Commit::default()
                    },
                )?;
            }
            Ok(())
        })
        .await
    }

    /// Walks states and histories together by profile id: each profile's series rebuilt from
    /// its recorded events, evaluated, stored with the changes found. A batch's profiles are
    /// recomputed on the machine's cores in runs of neighbouring ids of about the same work
    /// (`split::balanced_runs`), several per thread, each thread taking the next run when it
    /// is done with one (`split::on_threads`).
    async fn recompute(
        &self,
        workspace: &WorkspaceId,
        engine: &Arc<Engine>,
    ) -> Result<(), StoreError> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(THREADS));
        let mut after = 0;
        loop {
            let (store, profiles) = (Arc::clone(&self.store), Arc::clone(&self.profiles.store));
            let (engine, ws) = (Arc::clone(engine), workspace.clone());
            let now = self.clock.now_ms();
            let batch = self.batch;
            let next = store_call(move || {
                let histories = store.histories_after(&ws, after, batch.profiles, batch.events)?;
                let states = store.states_after(&ws, after, batch.profiles)?;
                let Some(upto) = batch_end(&histories, &states, batch.profiles) else {
                    return Ok(None);
                };
                let context = Context {
                    store: &store,
                    profiles: &profiles,
                    engine: &engine,
                    workspace: &ws,
                    now,
                };
                let work = by_profile(&histories, &states, upto);
                let mut weights = Vec::with_capacity(work.len());
                for (_, _, history) in &work {
                    weights.push(split::profile_weight(
                        history.map_or(0, |history| history.records.len()),
                    ));
                }
                let runs = split::balanced_runs(&weights, threads * split::RUNS_PER_THREAD);
                let parts =
                    split::on_threads(&runs, threads, |run| recompute_part(&context, &work[run]));
                let mut commit = Commit::default();
                for part in parts {
                    let part = part?;
                    commit.states.extend(part.states);
                    commit.changes.extend(part.changes);
                    commit.removed.extend(part.removed);
                }
                store.commit(&ws, &commit)?;
                Ok::<_, StoreError>(Some(upto))
            })
            .await?;
            match next {
                Some(upto) => after = upto,
                None => return Ok(()),
            }
        }
    }
}

/// What recomputing some profiles gives.
#[derive(Default)]
struct Recomputed {
    states: Vec<ProfileRow>,
    changes: Vec<ChangeRow>,
    /// States of profiles merged away or erased since.
    removed: Vec<i64>,
}

fn recompute_part(context: &Context<'_>, work: &[Item<'_>]) -> Result<Recomputed, StoreError> {
    let mut out = Recomputed::default();
    let ids: Vec<i64> = work.iter().map(|(profile, _, _)| *profile).collect();
    // The part's traits in one read of the profile store.
    let traits = context.profiles.live_trait_values(
        context.workspace,
        &ids,
        context.engine.profile_trait_names(),
    )?;
    for ((profile, row, history), traits) in work.iter().zip(traits) {
        // Merged away or erased since: its state goes.
        let Some(traits) = traits else {
            if row.is_some() {
                out.removed.push(*profile);
            }
            continue;
        };
        let loaded = rebuilt(context.engine, *row, *history, context.now);
        let (row, found) = process::evaluate_one(context, *profile, loaded, &traits);
        out.states.push(row);
        out.changes.extend(found);
    }
    Ok(out)
}

/// A profile with its stored state and recorded history (either may be missing).
type Item<'a> = (i64, Option<&'a ProfileRow>, Option<&'a ProfileHistory>);

/// The last profile id a batch covers, `None` when nothing is left. Histories may continue
/// after the last one read (their batch is cut by size too); states do when a full batch was
/// read (`profiles` of them). The batch ends at the first such point; with neither, at the
/// last state read.
fn batch_end(histories: &[ProfileHistory], states: &[ProfileRow], profiles: usize) -> Option<i64> {
    let history_end = histories.last().map(|history| history.profile_id);
    let state_end = states
        .last()
        .filter(|_| states.len() >= profiles)
        .map(|row| row.profile_id);
    match (history_end, state_end) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (Some(end), None) | (None, Some(end)) => Some(end),
        (None, None) => states.last().map(|row| row.profile_id),
    }
}

/// Each profile up to `upto` that has a state or a history (or both), in id order.
fn by_profile<'a>(
    histories: &'a [ProfileHistory],
    states: &'a [ProfileRow],
    upto: i64,
) -> Vec<Item<'a>> {
    let mut out = Vec::with_capacity(histories.len().max(states.len()));
    let (mut h, mut s) = (histories.iter().peekable(), states.iter().peekable());
    loop {
        let next_h = h
            .peek()
            .map(|history| history.profile_id)
            .filter(|id| *id <= upto);
        let next_s = s.peek().map(|row| row.profile_id).filter(|id| *id <= upto);
        let profile = match (next_h, next_s) {
            (None, None) => return out,
            (Some(a), Some(b)) => a.min(b),
            (Some(a), None) => a,
            (None, Some(b)) => b,
        };
        let history = if next_h == Some(profile) {
            h.next()
        } else {
            None
        };
        let row = if next_s == Some(profile) {
            s.next()
        } else {
            None
        };
        out.push((profile, row, history));
    }
}

/// A profile's state with its outputs (and consent) as stored and its series rebuilt from its
/// recorded events.
fn rebuilt(
    engine: &Engine,
    row: Option<&ProfileRow>,
    history: Option<&ProfileHistory>,
    now: i64,
) -> Loaded {
    let mut loaded = match row {
        Some(row) => {
            let cleared = ProfileRow {
                series: "{}".into(),
                ..row.clone()
            };
            process::load(engine, Some(&cleared))
        }
        None => process::load(engine, None),
    };
    if let Some(history) = history {
        let mut rest: &[u8] = &history.records;
        while !rest.is_empty() {
            let bytes = rest;
            let Some(event) = recorded::read(bytes, &mut rest) else {
                tracing::warn!(
                    profile = history.profile_id,
                    "audiences: unreadable history record"
                );
                break;
            };
            engine.apply(&mut loaded.state, &event, now);
        }
    }
    loaded
}
