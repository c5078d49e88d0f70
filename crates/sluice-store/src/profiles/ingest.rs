//! The profile consumer's unit of work: one batch of a source's logged events, applied in one
//! transaction together with the source's cursor.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use sluice_identity::resolve::alias_identifier;
use sluice_identity::{
    Collection, Decision, Graph, IdState, Identifier, ProfileId, ProfileView, Rules, extract,
    resolve,
};

use sluice_spec::timestamp::now_ms;

use super::history;
use super::identifiers::{self, IdChanges};
use super::{ProfileStore, new_public_id};
use crate::{StoreError, StoredEvent, WorkspaceId};

/// `last_seen` of an identifier is rewritten only when it is older than this: an hour is
/// precise enough for weekly windows and saves a write per identifier per event.
const LAST_SEEN_PRECISION_MS: i64 = 60 * 60 * 1000;
/// Traits beyond this many in one event are ignored.
const MAX_TRAITS_PER_EVENT: usize = 1_000;
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

/// The identity graph as the resolver sees it, inside the batch's transaction: identifiers
/// found in memory, profiles' identifiers read from the file.
pub(crate) struct SqlGraph<'c, 'i> {
    pub(crate) connection: &'c Connection,
    pub(crate) workspace: &'c str,
    pub(crate) ids: &'c mut IdChanges<'i>,
    /// The identifiers found so far, so that applying the decision rewrites only the stale
    /// `last_seen` ones without looking them up again.
    pub(crate) found: Vec<(Identifier, identifiers::Found)>,
}

impl<'c, 'i> SqlGraph<'c, 'i> {
    pub(crate) fn new(
        connection: &'c Connection,
        workspace: &'c str,
        ids: &'c mut IdChanges<'i>,
    ) -> SqlGraph<'c, 'i> {
        SqlGraph {
            connection,
            workspace,
            ids,
            found: Vec::new(),
        }
    }

    fn found(&self, id: &Identifier) -> Option<identifiers::Found> {
        for (known, found) in &self.found {
            if known == id {
                return Some(*found);
            }
        }
        None
    }
}

impl Graph for SqlGraph<'_, '_> {
    type Error = StoreError;

    fn find(
        &mut self,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<ProfileId>, Self::Error> {
        let Some(found) = self.ids.find(self.workspace, collection, id)? else {
            return Ok(None);
        };
        if self.found(id).is_none() {
            self.found.push((id.clone(), found));
        }
        Ok(Some(found.profile))
    }

    fn view(&mut self, profile: ProfileId) -> Result<ProfileView, Self::Error> {
        let merges: u32 = self
            .connection
            .prepare_cached("SELECT merges FROM profiles WHERE id = ?1")?
            .query_row([profile], |row| row.get(0))
            .optional()?
            .unwrap_or(0);
        let mut statement = self.connection.prepare_cached(
            "SELECT kind, value, last_seen FROM identifiers WHERE profile_id = ?1",
        )?;
        let identifiers = statement
            .query_map([profile], |row| {
                Ok(IdState {
                    id: Identifier::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                    last_seen_ms: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ProfileView {
            id: profile,
            merges,
            identifiers,
        })
    }
}

/// The event being applied.
pub(crate) struct EventContext<'a> {
    pub(crate) workspace: &'a str,
    pub(crate) source_id: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) seq: i64,
    /// Event time (the corrected `timestamp`), ms.
    pub(crate) at_ms: i64,
    /// Processing time, ms.
    pub(crate) now_ms: i64,
}

impl ProfileStore {
    /// Applies a batch of one source's events (ascending sequence numbers) and moves the
    /// source's cursor to the last of them, in one transaction.
    pub fn ingest(
        &self,
        workspace: &WorkspaceId,
        rules: &Rules,
        source_id: &str,
        events: &[StoredEvent],
    ) -> Result<IngestReport, StoreError> {
        let fold_at = self.history_fold_at;
        self.write(|transaction, ids| {
            ingest_batch(
                transaction,
                ids,
                workspace,
                rules,
                source_id,
                events,
                fold_at,
            )
        })
    }
}

/// [`ProfileStore::ingest`] inside its transaction.
fn ingest_batch(
    transaction: &Connection,
    ids: &mut IdChanges<'_>,
    workspace: &WorkspaceId,
    rules: &Rules,
    source_id: &str,
    events: &[StoredEvent],
    fold_at: i64,
) -> Result<IngestReport, StoreError> {
    let mut report = IngestReport::default();
    let mut last_seq = None;
    let now = now_ms();
    // Events up to the cursor were applied already (the cursor moves in the same
    // transaction as their changes): each logged event applies exactly once.
    let applied = crate::sqlite::read_cursor(transaction, workspace, source_id)?;
    for stored in events {
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
        let context = EventContext {
            workspace: &workspace.0,
            source_id,
            message_id: &stored.event.message_id,
            seq: stored.seq,
            at_ms: event_time(&body).unwrap_or(stored.event.received_at_ms),
            now_ms: now,
        };
        ingest_one(transaction, ids, rules, &context, &body, &mut report)?;
    }
    if let Some(seq) = last_seq {
        crate::sqlite::save_cursor(transaction, workspace, source_id, seq)?;
    }
    history::fold_if_due(transaction, fold_at)?;
    Ok(report)
}

/// The event's corrected `timestamp` in ms.
pub(crate) fn event_time(body: &Value) -> Option<i64> {
    let text = body.get("timestamp")?.as_str()?;
    sluice_spec::timestamp::parse(text).map(sluice_spec::timestamp::to_ms)
}

/// The event's recorded row: what `insert_event` writes.
struct Recorded<'a> {
    message_type: &'a str,
    event_name: Option<&'a str>,
}

fn ingest_one(
    connection: &Connection,
    ids: &mut IdChanges<'_>,
    rules: &Rules,
    context: &EventContext<'_>,
    body: &Value,
    report: &mut IngestReport,
) -> Result<(), StoreError> {
    let mut extracted = extract(body, rules);
    let mut user_ids = std::mem::take(&mut extracted.user_ids);
    if let Some(previous) = &extracted.alias_previous {
        let mut graph = SqlGraph::new(connection, context.workspace, ids);
        let id = alias_identifier(&mut graph, previous)?;
        if !user_ids.contains(&id) {
            user_ids.push(id);
        }
    }
    let user = resolve_and_apply(
        connection,
        ids,
        rules,
        Collection::Users,
        &user_ids,
        context,
        report,
    )?;
    let account = if extracted.account_ids.is_empty() {
        None
    } else {
        resolve_and_apply(
            connection,
            ids,
            rules,
            Collection::Accounts,
            &extracted.account_ids,
            context,
            report,
        )?
    };
    let recorded = Recorded {
        message_type: body.get("type").and_then(Value::as_str).unwrap_or(""),
        event_name: body.get("event").and_then(Value::as_str),
    };
    match user {
        Some(profile) => {
            if let Some(traits) = extracted.user_traits {
                upsert_traits(connection, profile, traits, context)?;
            }
            insert_event(
                connection,
                profile,
                Collection::Users,
                context,
                &recorded,
                &user_ids,
                extracted.user_traits,
                account,
            )?;
        }
        None => report.unresolved += 1,
    }
    if let Some(account) = account {
        if let Some(traits) = extracted.account_traits {
            upsert_traits(connection, account, traits, context)?;
        }
        insert_event(
            connection,
            account,
            Collection::Accounts,
            context,
            &recorded,
            &extracted.account_ids,
            extracted.account_traits,
            user,
        )?;
        if let Some(user) = user {
            link(connection, context, user, account)?;
        }
    }
    Ok(())
}

/// Resolves identifiers and writes the decision; returns the profile the event joined.
pub(crate) fn resolve_and_apply(
    connection: &Connection,
    ids: &mut IdChanges<'_>,
    rules: &Rules,
    collection: Collection,
    event_ids: &[Identifier],
    context: &EventContext<'_>,
    report: &mut IngestReport,
) -> Result<Option<ProfileId>, StoreError> {
    let mut graph = SqlGraph::new(connection, context.workspace, ids);
    let decision = resolve(&mut graph, rules, collection, event_ids, context.at_ms)?;
    report.identifiers_dropped += decision.dropped.len() as u64;
    apply(&mut graph, collection, &decision, context, report)
}

fn apply(
    graph: &mut SqlGraph<'_, '_>,
    collection: Collection,
    decision: &Decision,
    context: &EventContext<'_>,
    report: &mut IngestReport,
) -> Result<Option<ProfileId>, StoreError> {
    let connection = graph.connection;
    let target = match (decision.target, decision.create) {
        (Some(profile), _) => profile,
        (None, true) => {
            report.profiles_created += 1;
            create_profile(connection, collection, context)?
        }
        (None, false) => return Ok(None),
    };
    for absorbed in &decision.absorbed {
        let bridge: Vec<&Identifier> = decision
            .seen
            .iter()
            .filter(|(_, owner)| owner == absorbed)
            .map(|(id, _)| id)
            .collect();
        absorb(
            connection, graph.ids, collection, target, *absorbed, &bridge, context,
        )?;
        report.merges += 1;
    }
    let origin = identifiers::Origin {
        source_id: context.source_id,
        message_id: context.message_id,
        first_seen_ms: context.at_ms,
        last_seen_ms: context.at_ms,
    };
    for id in &decision.added {
        graph.ids.insert(
            connection,
            context.workspace,
            collection,
            id,
            target,
            &origin,
        )?;
        report.identifiers_added += 1;
    }
    for (id, _) in &decision.seen {
        let Some(found) = graph.found(id) else {
            continue;
        };
        if found.last_seen_ms >= context.at_ms - LAST_SEEN_PRECISION_MS {
            continue;
        }
        graph.ids.touch(connection, &found, context.at_ms)?;
    }
    Ok(Some(target))
}

pub(crate) fn create_profile(
    connection: &Connection,
    collection: Collection,
    context: &EventContext<'_>,
) -> Result<ProfileId, StoreError> {
    let public_id = new_public_id(collection, context.now_ms)?;
    exec(
        connection,
        "INSERT INTO profiles(workspace_id, public_id, collection, created_at, updated_at,
                 first_message_id, first_source_id)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6)",
        params![
            context.workspace,
            public_id,
            collection.as_str(),
            context.now_ms,
            context.message_id,
            context.source_id
        ],
    )?;
    Ok(connection.last_insert_rowid())
}

/// Moves everything of `absorbed` into `kept` and records the merge.
fn absorb(
    connection: &Connection,
    ids: &mut IdChanges<'_>,
    collection: Collection,
    kept: ProfileId,
    absorbed: ProfileId,
    bridge: &[&Identifier],
    context: &EventContext<'_>,
) -> Result<(), StoreError> {
    move_profile_rows(connection, ids, kept, absorbed)?;
    exec(
        connection,
        "UPDATE profiles SET merges = merges + 1 + (SELECT merges FROM profiles WHERE id = ?2),
             updated_at = ?3 WHERE id = ?1",
        params![kept, absorbed, context.now_ms],
    )?;
    exec(
        connection,
        "UPDATE profiles SET merged_into = ?1 WHERE id = ?2 OR merged_into = ?2",
        params![kept, absorbed],
    )?;
    let bridge: Vec<[&str; 2]> = bridge
        .iter()
        .map(|id| [id.kind.as_str(), id.value.as_str()])
        .collect();
    exec(
        connection,
        "INSERT INTO merges(workspace_id, collection, at, kept, absorbed, message_id, source_id, bridge)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            context.workspace,
            collection.as_str(),
            context.now_ms,
            kept,
            absorbed,
            context.message_id,
            context.source_id,
            serde_json::to_string(&bridge).unwrap_or_default()
        ],
    )?;
    Ok(())
}

/// Re-points identifiers, traits (newer wins), events and links of `from` to `to`.
pub(crate) fn move_profile_rows(
    connection: &Connection,
    ids: &mut IdChanges<'_>,
    to: ProfileId,
    from: ProfileId,
) -> Result<(), StoreError> {
    ids.repoint(connection, from, to)?;
    exec(
        connection,
        "INSERT INTO traits(profile_id, name, value, timestamp, source_id, updated_at)
         SELECT ?1, name, value, timestamp, source_id, updated_at FROM traits WHERE profile_id = ?2
         ON CONFLICT(profile_id, name) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp,
             source_id = excluded.source_id, updated_at = excluded.updated_at
         WHERE excluded.timestamp > traits.timestamp",
        params![to, from],
    )?;
    exec(
        connection,
        "DELETE FROM traits WHERE profile_id = ?1",
        [from],
    )?;

    for (column, other) in [
        ("user_profile", "account_profile"),
        ("account_profile", "user_profile"),
    ] {
        exec(
            connection,
            &format!(
                "INSERT INTO links(workspace_id, {column}, {other}, first_seen, last_seen, source_id)
                 SELECT workspace_id, ?1, {other}, first_seen, last_seen, source_id FROM links WHERE {column} = ?2
                 ON CONFLICT({column}, {other}) DO UPDATE SET
                     first_seen = min(links.first_seen, excluded.first_seen),
                     last_seen = max(links.last_seen, excluded.last_seen)"
            ),
            params![to, from],
        )?;
        exec(
            connection,
            &format!("DELETE FROM links WHERE {column} = ?1"),
            [from],
        )?;
    }
    Ok(())
}

/// Runs a statement through the connection's statement cache (the consumer runs the same
/// few statements for every event and merge).
pub(crate) fn exec(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    connection.prepare_cached(sql)?.execute(params)
}

pub(crate) fn upsert_traits(
    connection: &Connection,
    profile: ProfileId,
    traits: &Map<String, Value>,
    context: &EventContext<'_>,
) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO traits(profile_id, name, value, timestamp, source_id, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT(profile_id, name) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp,
             source_id = excluded.source_id, updated_at = excluded.updated_at
         WHERE excluded.timestamp >= traits.timestamp",
    )?;
    for (name, value) in traits.iter().take(MAX_TRAITS_PER_EVENT) {
        if name.is_empty() || name.len() > MAX_TRAIT_NAME_BYTES {
            continue;
        }
        let value = serde_json::to_string(value).unwrap_or_else(|_| "null".into());
        statement.execute(params![
            profile,
            name,
            value,
            context.at_ms,
            context.source_id,
            context.now_ms
        ])?;
    }
    Ok(())
}

/// Records the event in a profile's history; `linked` is the profile of the other collection
/// the same event resolved to (a group call's account, or its user).
#[allow(clippy::too_many_arguments)]
fn insert_event(
    connection: &Connection,
    profile: ProfileId,
    collection: Collection,
    context: &EventContext<'_>,
    recorded: &Recorded<'_>,
    ids: &[Identifier],
    traits: Option<&Map<String, Value>>,
    linked: Option<ProfileId>,
) -> Result<(), StoreError> {
    let ids: Vec<[&str; 2]> = ids
        .iter()
        .map(|id| [id.kind.as_str(), id.value.as_str()])
        .collect();
    let traits = traits.map(|t| serde_json::to_string(t).unwrap_or_default());
    exec(
        connection,
            "INSERT INTO profile_events(workspace_id, profile_id, collection, message_id, source_id, seq,
                 timestamp, applied_at, type, event, ids, traits, linked)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            context.workspace,
            profile,
            collection.as_str(),
            context.message_id,
            context.source_id,
            context.seq,
            context.at_ms,
            context.now_ms,
            recorded.message_type,
            recorded.event_name,
            serde_json::to_string(&ids).unwrap_or_default(),
            traits,
            linked
        ],
    )?;
    history::append(connection, profile, connection.last_insert_rowid())?;
    Ok(())
}

pub(crate) fn link(
    connection: &Connection,
    context: &EventContext<'_>,
    user: ProfileId,
    account: ProfileId,
) -> Result<(), StoreError> {
    exec(
        connection,
            "INSERT INTO links(workspace_id, user_profile, account_profile, first_seen, last_seen, source_id)
             VALUES (?1, ?2, ?3, ?4, ?4, ?5)
             ON CONFLICT(user_profile, account_profile) DO UPDATE SET last_seen = max(last_seen, excluded.last_seen)",
        params![context.workspace, user, account, context.at_ms, context.source_id],
    )?;
    Ok(())
}
