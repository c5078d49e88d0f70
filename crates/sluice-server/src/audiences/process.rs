//! One batch of profiles: load each state, apply its events in log order, evaluate at `now`
//! with the profile's traits, number the changes, and lay out what to store. Runs on a
//! blocking thread (SQLite reads).

use serde_json::Value;
use sluice_audience::{Change, Engine, EventRef, ProfileState, StoredState};
use sluice_store::{AudienceStore, ChangeRow, ProfileRow, ProfileStore, StoreError, WorkspaceId};

/// What a batch works with.
pub(super) struct Context<'a> {
    pub store: &'a AudienceStore,
    pub profiles: &'a ProfileStore,
    pub engine: &'a Engine,
    pub workspace: &'a WorkspaceId,
    pub now: i64,
}

/// One profile's part of a batch: its events (parsed bodies, log order).
pub(super) struct Work {
    pub profile: i64,
    pub events: Vec<Value>,
}

/// What a batch produced.
#[derive(Default)]
pub(super) struct Output {
    pub states: Vec<ProfileRow>,
    pub changes: Vec<ChangeRow>,
}

/// A stored row as engine state (an unreadable row starts afresh, keeping nothing).
pub(super) fn load(engine: &Engine, row: Option<&ProfileRow>) -> (ProfileState, i64) {
    let Some(row) = row else {
        return (engine.fresh(), 0);
    };
    let stored = StoredState {
        series: serde_json::from_str(&row.series).unwrap_or_default(),
        outputs: serde_json::from_str(&row.outputs).unwrap_or_default(),
    };
    (engine.load(stored), row.changes)
}

/// Engine state as a row to store.
pub(super) fn to_row(
    engine: &Engine,
    profile: i64,
    state: ProfileState,
    changes: i64,
    next_at: Option<i64>,
) -> ProfileRow {
    let stored = engine.store(state);
    let audiences = stored.outputs.audiences.iter().cloned().collect();
    ProfileRow {
        profile_id: profile,
        series: serde_json::to_string(&stored.series).unwrap_or_else(|_| "{}".into()),
        outputs: serde_json::to_string(&stored.outputs).unwrap_or_else(|_| "{}".into()),
        changes,
        next_at,
        audiences,
    }
}

/// Applies each profile's events and, with `evaluate`, evaluates it.
pub(super) fn run(
    context: &Context<'_>,
    work: Vec<Work>,
    evaluate: bool,
) -> Result<Output, StoreError> {
    let ids: Vec<i64> = work.iter().map(|w| w.profile).collect();
    let rows = context.store.load(context.workspace, &ids)?;
    let mut output = Output::default();
    for item in work {
        let row = rows.iter().find(|row| row.profile_id == item.profile);
        let (mut state, changes) = load(context.engine, row);
        for body in &item.events {
            if let Some(event) = EventRef::read(body) {
                context.engine.apply(&mut state, &event, context.now);
            }
        }
        if evaluate {
            let (row, changes) = evaluate_one(context, item.profile, state, changes)?;
            output.states.push(row);
            output.changes.extend(changes);
        } else {
            let next_at = row.and_then(|row| row.next_at);
            output.states.push(to_row(
                context.engine,
                item.profile,
                state,
                changes,
                next_at,
            ));
        }
    }
    Ok(output)
}

/// Evaluates one profile's state at `now`: the row to store and the changes, numbered after
/// the `changes` it had.
pub(super) fn evaluate_one(
    context: &Context<'_>,
    profile: i64,
    mut state: ProfileState,
    changes: i64,
) -> Result<(ProfileRow, Vec<ChangeRow>), StoreError> {
    let traits = context.profiles.trait_map(context.workspace, profile)?;
    let found = context.engine.evaluate(&mut state, &traits, context.now);
    let next_at = context.engine.next_change(&state, &traits, context.now);
    let mut rows = Vec::with_capacity(found.len());
    let mut n = changes;
    for change in found {
        n += 1;
        let (key, kind, value) = match change {
            Change::Entered(key) => (key, "entered", None),
            Change::Exited(key) => (key, "exited", None),
            Change::Trait { key, value } => (key, "trait", Some(value.to_string())),
        };
        rows.push(ChangeRow {
            profile_id: profile,
            n,
            key,
            kind: kind.to_string(),
            value,
            at: context.now,
        });
    }
    metrics::counter!(super::CHANGES).increment(rows.len() as u64);
    Ok((to_row(context.engine, profile, state, n, next_at), rows))
}
