//! The profile consumer's unit of work: one batch of a source's logged events, resolved
//! against the state, applied to it, appended to the change log and committed together with
//! the source's cursor.

use serde_json::{Map, Value};
use sluice_identity::resolve::alias_identifier;
use sluice_identity::{Collection, Decision, Identifier, ProfileId, Rules, extract, resolve};
use sluice_spec::timestamp::now_ms;

use super::log::Appender;
use super::state::{Entry, IdFate, Resolving, State};
use super::{Change, ProfileStore, new_public_id};
use crate::{StoreError, StoredEvent, WorkspaceId};

/// Traits beyond this many in one event are ignored.
const MAX_TRAITS_PER_EVENT: usize = 1_000;
/// A batch lets readers at the state after this many events (a few milliseconds of work), so
/// a Profile API read waits at most that long behind the consumer.
const READERS_EVERY: usize = 256;
/// Trait names longer than this are ignored.
const MAX_TRAIT_NAME_BYTES: usize = 256;

/// What one batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct IngestReport {
    pub events: u64,
    /// Events at or before the source's cursor: applied already.
    pub duplicates: u64,
    /// Events with no usable identifier: not attached to any profile.
    pub unresolved: u64,
    /// Events whose body is not JSON (never expected: the log holds normalized events).
    pub unreadable: u64,
    pub profiles_created: u64,
    pub merges: u64,
    pub identifiers_added: u64,
    /// Identifiers kept off a profile by a limit or a cap.
    pub identifiers_dropped: u64,
}

impl ProfileStore {
    /// Applies a batch of one source's events (ascending sequence numbers) and moves the
    /// source's cursor to the last of them, in one commit.
    pub fn ingest(
        &self,
        workspace: &WorkspaceId,
        rules: &Rules,
        source_id: &str,
        events: &[StoredEvent],
    ) -> Result<IngestReport, StoreError> {
        self.write(|change| ingest_batch(change, workspace, rules, source_id, events))
    }
}

/// Where one event sits, for its entries.
struct EventPlace<'a> {
    workspace: &'a str,
    source: u32,
    seq: i64,
    at_ms: i64,
    now_ms: i64,
    message_id: &'a str,
    message_type: u32,
    event: Option<&'a str>,
}

fn ingest_batch(
    change: &mut Change<'_, '_>,
    workspace: &WorkspaceId,
    rules: &Rules,
    source_id: &str,
    events: &[StoredEvent],
) -> Result<IngestReport, StoreError> {
    let mut report = IngestReport::default();
    let mut last_seq = None;
    let now = now_ms();
    // Events up to the cursor were applied already (the cursor moves in the same commit as
    // their entries): each logged event applies exactly once.
    let applied = change.state.get()?.cursor(&workspace.0, source_id);
    let source = change.appender.name(change.state.get()?, source_id);
    for (index, stored) in events.iter().enumerate() {
        if index % READERS_EVERY == READERS_EVERY - 1 {
            change.state.let_readers_in();
        }
        if stored.event.workspace_id != *workspace || stored.event.source_id != source_id {
            return Err(StoreError::Invalid {
                field: "events",
                message:
                    "an event of another workspace or source was handed to the profile consumer"
                        .into(),
            });
        }
        last_seq = Some(stored.seq);
        report.events += 1;
        if stored.seq <= applied {
            report.duplicates += 1;
            continue;
        }
        let Ok(body) = serde_json::from_str::<Value>(&stored.event.body) else {
            report.unreadable += 1;
            continue;
        };
        let message_type = body.get("type").and_then(Value::as_str).unwrap_or("");
        let place = EventPlace {
            workspace: &workspace.0,
            source,
            seq: stored.seq,
            at_ms: event_time(&body).unwrap_or(stored.event.received_at_ms),
            now_ms: now,
            message_id: &stored.event.message_id,
            message_type: change.appender.name(change.state.get()?, message_type),
            event: body.get("event").and_then(Value::as_str),
        };
        ingest_one(
            change.state.get()?,
            &mut change.appender,
            rules,
            &place,
            &body,
            &mut report,
        )?;
    }
    if let Some(seq) = last_seq {
        change
            .appender
            .commit(change.state.get()?, &workspace.0, source_id, seq);
        crate::sqlite::save_cursor(change.transaction, "cursors", workspace, source_id, seq)?;
    }
    Ok(report)
}

/// The event's corrected `timestamp` in ms.
pub(crate) fn event_time(body: &Value) -> Option<i64> {
    let text = body.get("timestamp")?.as_str()?;
    sluice_spec::timestamp::parse(text).map(sluice_spec::timestamp::to_ms)
}

fn ingest_one(
    state: &mut State,
    appender: &mut Appender,
    rules: &Rules,
    place: &EventPlace<'_>,
    body: &Value,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let mut extracted = extract(body, rules);
    let mut user_ids = std::mem::take(&mut extracted.user_ids);
    let mut graph = Resolving {
        state,
        workspace: place.workspace,
    };
    if let Some(previous) = &extracted.alias_previous {
        let id = alias_identifier(&mut graph, previous)?;
        if !user_ids.contains(&id) {
            user_ids.push(id);
        }
    }
    // Both collections are resolved against the state before either is applied: they share
    // nothing but the profile numbers, which are given out below in the order the entries
    // apply (the user's first), as replaying the log does.
    let user = resolve(&mut graph, rules, Collection::Users, &user_ids, place.at_ms)?;
    let account = if extracted.account_ids.is_empty() {
        Decision::default()
    } else {
        resolve(
            &mut graph,
            rules,
            Collection::Accounts,
            &extracted.account_ids,
            place.at_ms,
        )?
    };
    let mut next = state.last_profile;
    let user_profile = joined(&user, &mut next);
    let account_profile = joined(&account, &mut next);
    if user_profile.is_none() {
        report.unresolved += 1;
    }
    if let Some(profile) = user_profile {
        let entry = entry_for(
            state,
            appender,
            place,
            Collection::Users,
            profile,
            &user,
            extracted.user_traits,
            account_profile,
        )?;
        apply(state, appender, &entry, report)?;
    }
    if let Some(profile) = account_profile {
        let entry = entry_for(
            state,
            appender,
            place,
            Collection::Accounts,
            profile,
            &account,
            extracted.account_traits,
            user_profile,
        )?;
        apply(state, appender, &entry, report)?;
    }
    report.identifiers_dropped += (user.dropped.len() + account.dropped.len()) as u64;
    Ok(())
}

/// The profile a decision joins, numbering a new one after `next`.
fn joined(decision: &Decision, next: &mut ProfileId) -> Option<ProfileId> {
    match (decision.target, decision.create) {
        (Some(profile), _) => Some(profile),
        (None, true) => {
            *next += 1;
            Some(*next)
        }
        (None, false) => None,
    }
}

fn apply(
    state: &mut State,
    appender: &mut Appender,
    entry: &Entry,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let offset = appender.entry(entry);
    state.apply_entry(entry, offset)?;
    report.profiles_created += u64::from(entry.created.is_some());
    report.merges += entry.absorbed.len() as u64;
    for (_, _, fate) in &entry.ids {
        report.identifiers_added += u64::from(*fate == IdFate::Added);
    }
    Ok(())
}

/// The entry recording `decision` for one collection of the event.
#[allow(clippy::too_many_arguments)]
fn entry_for(
    state: &mut State,
    appender: &mut Appender,
    place: &EventPlace<'_>,
    collection: Collection,
    profile: ProfileId,
    decision: &Decision,
    traits: Option<&Map<String, Value>>,
    linked: Option<ProfileId>,
) -> Result<Entry, StoreError> {
    let created = if decision.create {
        Some(new_public_id(collection, place.now_ms)?)
    } else {
        None
    };
    let mut ids =
        Vec::with_capacity(decision.added.len() + decision.seen.len() + decision.dropped.len());
    let mut push = |id: &Identifier, fate: IdFate, state: &mut State| {
        let kind = appender.name(state, &id.kind);
        ids.push((kind, id.value.clone(), fate));
    };
    for id in &decision.added {
        push(id, IdFate::Added, state);
    }
    for (id, _) in &decision.seen {
        push(id, IdFate::Seen, state);
    }
    for (id, _) in &decision.dropped {
        push(id, IdFate::Dropped, state);
    }
    let mut kept = Vec::new();
    if let Some(traits) = traits {
        for (name, value) in traits.iter().take(MAX_TRAITS_PER_EVENT) {
            if name.is_empty() || name.len() > MAX_TRAIT_NAME_BYTES {
                continue;
            }
            let name = appender.name(state, name);
            let value = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
            kept.push((name, value));
        }
    }
    let workspace = appender.name(state, place.workspace);
    Ok(Entry {
        workspace,
        source: place.source,
        collection,
        seq: place.seq,
        at_ms: place.at_ms,
        now_ms: place.now_ms,
        message_id: place.message_id.to_owned(),
        message_type: place.message_type,
        event: place.event.map(str::to_owned),
        profile,
        created,
        absorbed: decision.absorbed.clone(),
        ids,
        traits: kept,
        linked,
    })
}
