//! One batch of profiles: load each state, apply its events in log order, evaluate at `now`
//! with the profile's traits, number the changes, and lay out what to store. Runs on a
//! blocking thread (SQLite reads).
//!
//! The person's latest consent rides along: each event that carries category preferences or
//! a Global Privacy Control signal replaces it, and a new one is recorded as a `consent`
//! change (so `list` syncs re-send the person's memberships).

use serde_json::{Value, json};
use sluice_audience::{Change, Engine, EventRef, ProfileState, StoredState};
use sluice_privacy::consent;
use sluice_store::{
    AudienceStore, CONSENT_KEY, CONSENT_KIND, ChangeRow, ProfileRow, ProfileStore, StoreError,
    WorkspaceId,
};

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

/// A profile's state as loaded: the engine's state, how many changes it has had, and the
/// person's consent as it was stored.
pub(super) struct Loaded {
    pub state: ProfileState,
    pub changes: i64,
    pub consent: Option<String>,
    /// The consent after this batch's events, when they changed it.
    pub new_consent: Option<String>,
}

/// A stored row as engine state (an unreadable row starts afresh, keeping nothing).
pub(super) fn load(engine: &Engine, row: Option<&ProfileRow>) -> Loaded {
    let Some(row) = row else {
        return Loaded {
            state: engine.fresh(),
            changes: 0,
            consent: None,
            new_consent: None,
        };
    };
    let stored = StoredState {
        series: serde_json::from_str(&row.series).unwrap_or_default(),
        outputs: serde_json::from_str(&row.outputs).unwrap_or_default(),
    };
    Loaded {
        state: engine.load(stored),
        changes: row.changes,
        consent: row.consent.clone(),
        new_consent: None,
    }
}

impl Loaded {
    /// The consent to store.
    fn consent(&self) -> Option<String> {
        self.new_consent.clone().or_else(|| self.consent.clone())
    }

    /// Applies events in order: each to the engine's state, and its consent, if any.
    pub fn apply(&mut self, engine: &Engine, events: &[Value], now: i64) {
        for body in events {
            self.see_consent(body);
            if let Some(event) = EventRef::read(body) {
                engine.apply(&mut self.state, &event, now);
            }
        }
    }

    /// Takes the consent an event carries, if any: its category preferences (else the ones
    /// held) and whether it signals Global Privacy Control.
    fn see_consent(&mut self, body: &Value) {
        let preferences = consent::preferences(body);
        let gpc = consent::global_privacy_control(body);
        if preferences.is_none() && !gpc {
            return;
        }
        let held: Option<Value> = self
            .consent()
            .and_then(|text| serde_json::from_str(&text).ok());
        let preferences = match preferences {
            Some(given) => Some(Value::Object(given.clone())),
            None => held
                .as_ref()
                .and_then(|held| held.get("categoryPreferences").cloned()),
        };
        let mut next = json!({ "gpc": gpc });
        if let Some(preferences) = preferences {
            next["categoryPreferences"] = preferences;
        }
        if held.as_ref() != Some(&next) {
            self.new_consent = Some(next.to_string());
        }
    }
}

/// Engine state as a row to store.
pub(super) fn to_row(
    engine: &Engine,
    profile: i64,
    loaded: Loaded,
    changes: i64,
    next_at: Option<i64>,
) -> ProfileRow {
    let consent = loaded.consent();
    let stored = engine.store(loaded.state);
    let audiences = stored.outputs.audiences.iter().cloned().collect();
    ProfileRow {
        profile_id: profile,
        series: serde_json::to_string(&stored.series).unwrap_or_else(|_| "{}".into()),
        outputs: serde_json::to_string(&stored.outputs).unwrap_or_else(|_| "{}".into()),
        changes,
        next_at,
        consent,
        audiences,
    }
}

/// The part of a batch whose events carry a consent (category preferences or a Global Privacy
/// Control signal).
pub(super) fn with_consent(work: Vec<Work>) -> Vec<Work> {
    work.into_iter()
        .filter(|item| {
            item.events.iter().any(|body| {
                consent::preferences(body).is_some() || consent::global_privacy_control(body)
            })
        })
        .collect()
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
        let mut loaded = load(context.engine, row);
        loaded.apply(context.engine, &item.events, context.now);
        if evaluate {
            let traits = traits_of(context, item.profile)?;
            let (row, changes) = evaluate_one(context, item.profile, loaded, &traits);
            output.states.push(row);
            output.changes.extend(changes);
        } else {
            // A backfill replays old consents: it keeps the latest and announces nothing.
            let next_at = row.and_then(|row| row.next_at);
            let changes = loaded.changes;
            output.states.push(to_row(
                context.engine,
                item.profile,
                loaded,
                changes,
                next_at,
            ));
        }
    }
    Ok(output)
}

/// The traits of `profile` that the engine's conditions read.
pub(super) fn traits_of(
    context: &Context<'_>,
    profile: i64,
) -> Result<Vec<Option<Value>>, StoreError> {
    context.profiles.trait_values(
        context.workspace,
        profile,
        context.engine.profile_trait_names(),
    )
}

/// Evaluates one profile's state at `now` with its `traits` ([`traits_of`]): the row to store
/// and the changes (a new consent last), numbered after the changes it had.
pub(super) fn evaluate_one(
    context: &Context<'_>,
    profile: i64,
    mut loaded: Loaded,
    traits: &[Option<Value>],
) -> (ProfileRow, Vec<ChangeRow>) {
    let found = context
        .engine
        .evaluate(&mut loaded.state, traits, context.now);
    let next_at = context
        .engine
        .next_change(&loaded.state, traits, context.now);
    let mut rows = Vec::with_capacity(found.len() + 1);
    let mut n = loaded.changes;
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
    if let Some(consent) = &loaded.new_consent {
        n += 1;
        rows.push(ChangeRow {
            profile_id: profile,
            n,
            key: CONSENT_KEY.to_string(),
            kind: CONSENT_KIND.to_string(),
            value: Some(consent.clone()),
            at: context.now,
        });
    }
    metrics::counter!(super::CHANGES).increment(rows.len() as u64);
    (to_row(context.engine, profile, loaded, n, next_at), rows)
}
