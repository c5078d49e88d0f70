//! Undoing merges: removing an identifier from a profile, or splitting a profile at a recorded
//! merge.
//!
//! Both work the same way. The profile's recorded events are resolved again, in the order they
//! were first applied, into an empty in-memory graph with the current settings, leaving out the
//! removed identifier (or, for a split, the identifiers by which the merging event bridged the
//! two profiles). Identifiers another profile holds are left out too, so nothing is taken from
//! anyone else. Each resulting group of events becomes a profile: the group with the oldest
//! event keeps the profile; a group holding the first event of a profile merged in earlier
//! revives that profile; any other group gets a new one. Identifiers, traits (latest timestamp
//! wins), history, links and merge counts are then rewritten from the result, in one
//! transaction, and the unmerge is recorded.
//!
//! A later event that carries both sides again merges them again, like Segment after a
//! profile identifier is deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value, json};
use sluice_identity::{Collection, Graph, Identifier, MemoryGraph, ProfileId, Rules, resolve};

use super::ingest::{EventContext, create_profile};
use super::read::{ProfileRef, parse_ids};
use sluice_spec::timestamp::now_ms;

use super::identifiers::{self, IdChanges};
use super::{ProfileStore, history};
use crate::StoreError;

/// What an unmerge produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unmerged {
    /// Public ids of the profiles the history now falls into; the first is the original.
    pub profiles: Vec<String>,
    /// Identifiers no longer on any of them.
    pub removed: Vec<Identifier>,
}

/// What to leave out while resolving the history again.
enum Cut<'a> {
    Identifier(&'a Identifier),
    /// The merging event and the identifiers by which it bridged.
    Merge {
        message_id: String,
        bridge: Vec<Identifier>,
    },
}

struct HistoryEvent {
    row: i64,
    /// The profile the row was recorded for (this one, or one merged into it).
    recorded_for: ProfileId,
    message_id: String,
    source_id: String,
    timestamp_ms: i64,
    ids: Vec<Identifier>,
    traits: Option<Map<String, Value>>,
}

/// An identifier as the replay first and last saw it.
struct Seen {
    first_ms: i64,
    last_ms: i64,
    source_id: String,
    message_id: String,
}

impl ProfileStore {
    /// Removes `id` from the profile and resolves the profile's history again without it.
    pub fn remove_identifier(
        &self,
        profile: &ProfileRef,
        id: &Identifier,
        rules: &Rules,
    ) -> Result<Unmerged, StoreError> {
        self.rebuild(profile, rules, Cut::Identifier(id))
    }

    /// Splits the profile at merge `merge_id` (a merge into it, or into a profile it absorbed).
    pub fn split_merge(
        &self,
        profile: &ProfileRef,
        merge_id: i64,
        rules: &Rules,
    ) -> Result<Unmerged, StoreError> {
        let connection = self.reader()?;
        let merge = connection
            .query_row(
                "SELECT m.message_id, m.bridge FROM merges m JOIN profiles k ON k.id = m.kept
                 WHERE m.id = ?1 AND m.workspace_id = ?2 AND coalesce(k.merged_into, k.id) = ?3",
                params![merge_id, profile.workspace_id.0, profile.id],
                |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
            )
            .optional()?;
        drop(connection);
        let Some((message_id, bridge)) = merge else {
            return Err(StoreError::NotFound {
                kind: "merge",
                id: merge_id.to_string(),
            });
        };
        self.rebuild(
            profile,
            rules,
            Cut::Merge {
                message_id,
                bridge: parse_ids(&bridge),
            },
        )
    }

    fn rebuild(
        &self,
        profile: &ProfileRef,
        rules: &Rules,
        cut: Cut<'_>,
    ) -> Result<Unmerged, StoreError> {
        self.write(|transaction, ids| rebuild(transaction, ids, profile, rules, cut))
    }
}

/// [`ProfileStore::remove_identifier`] and [`ProfileStore::split_merge`] inside their
/// transaction.
fn rebuild(
    transaction: &Connection,
    ids: &mut IdChanges<'_>,
    profile: &ProfileRef,
    rules: &Rules,
    cut: Cut<'_>,
) -> Result<Unmerged, StoreError> {
    let workspace = profile.workspace_id.0.as_str();
    let collection = profile.collection;
    let history = load_history(transaction, profile)?;
    let before: HashSet<Identifier> = current_ids(transaction, profile.id)?;
    if let Cut::Identifier(id) = &cut
        && !before.contains(*id)
    {
        return Err(StoreError::NotFound {
            kind: "identifier",
            id: id.to_string(),
        });
    }
    let foreign = foreign_ids(ids, workspace, collection, profile.id, &history)?;

    // Resolve the history again in memory.
    let mut graph = MemoryGraph::default();
    let mut absorbed_into: HashMap<ProfileId, ProfileId> = HashMap::new();
    let mut event_profile: Vec<ProfileId> = Vec::with_capacity(history.len());
    let mut seen: HashMap<Identifier, Seen> = HashMap::new();
    for event in &history {
        let ids: Vec<Identifier> = event
            .ids
            .iter()
            .filter(|id| !foreign.contains(*id))
            .filter(|id| match &cut {
                Cut::Identifier(removed) => id != removed,
                Cut::Merge { message_id, bridge } => {
                    &event.message_id != message_id || !bridge.contains(id)
                }
            })
            .cloned()
            .collect();
        let Ok(decision) = resolve(&mut graph, rules, collection, &ids, event.timestamp_ms);
        for absorbed in &decision.absorbed {
            if let Some(target) = decision.target {
                absorbed_into.insert(*absorbed, target);
            }
        }
        let target = graph.apply(collection, &decision, event.timestamp_ms);
        event_profile.push(target.unwrap_or(0));
        for id in decision
            .added
            .iter()
            .chain(decision.seen.iter().map(|(id, _)| id))
        {
            let entry = seen.entry(id.clone()).or_insert(Seen {
                first_ms: event.timestamp_ms,
                last_ms: event.timestamp_ms,
                source_id: event.source_id.clone(),
                message_id: event.message_id.clone(),
            });
            entry.last_ms = entry.last_ms.max(event.timestamp_ms);
        }
    }
    let final_of = |mut p: ProfileId| {
        while let Some(next) = absorbed_into.get(&p) {
            p = *next;
        }
        p
    };
    // Groups in order of their oldest event.
    let mut groups: Vec<ProfileId> = Vec::new();
    for p in &event_profile {
        let p = final_of(*p);
        if p != 0 && !groups.contains(&p) {
            groups.push(p);
        }
    }

    // Real profiles for the groups.
    let revivable = merged_away(transaction, profile.id)?;
    let now = now_ms();
    let mut real: HashMap<ProfileId, ProfileId> = HashMap::new();
    for (index, group) in groups.iter().enumerate() {
        if index == 0 {
            real.insert(*group, profile.id);
            continue;
        }
        let first_messages: HashSet<&str> = history
            .iter()
            .zip(&event_profile)
            .filter(|(_, p)| final_of(**p) == *group)
            .map(|(e, _)| e.message_id.as_str())
            .collect();
        let revived = revivable
            .iter()
            .find(|(_, first)| first_messages.contains(first.as_str()))
            .map(|(id, _)| *id);
        let id = match revived {
            Some(id) if !real.values().any(|r| *r == id) => {
                transaction
                    .execute("UPDATE profiles SET merged_into = NULL WHERE id = ?1", [id])?;
                id
            }
            _ => {
                let first = history
                    .iter()
                    .zip(&event_profile)
                    .find(|(_, p)| final_of(**p) == *group);
                let (message_id, source_id) = first
                    .map(|(e, _)| (e.message_id.as_str(), e.source_id.as_str()))
                    .unwrap_or(("", ""));
                let context = EventContext {
                    workspace,
                    source_id,
                    message_id,
                    seq: 0,
                    at_ms: now,
                    now_ms: now,
                };
                create_profile(transaction, collection, &context)?
            }
        };
        real.insert(*group, id);
    }

    // Identifiers.
    ids.delete_profile(transaction, profile.id)?;
    for revived in real.values().filter(|id| **id != profile.id) {
        ids.delete_profile(transaction, *revived)?;
    }
    let mut kept: HashSet<Identifier> = HashSet::new();
    for (id, owner) in graph.owners() {
        let (Some(real_id), Some(seen)) = (real.get(&owner), seen.get(id)) else {
            continue;
        };
        let origin = identifiers::Origin {
            source_id: &seen.source_id,
            message_id: &seen.message_id,
            first_seen_ms: seen.first_ms,
            last_seen_ms: seen.last_ms,
        };
        ids.insert(transaction, workspace, collection, id, *real_id, &origin)?;
        kept.insert(id.clone());
    }
    let mut removed: Vec<Identifier> = before.into_iter().filter(|id| !kept.contains(id)).collect();
    removed.sort();

    // History, traits, metadata, links, merge counts.
    let mut traits: HashMap<ProfileId, BTreeMap<String, (i64, Value, String)>> = HashMap::new();
    let mut firsts: HashMap<ProfileId, &HistoryEvent> = HashMap::new();
    for (event, p) in history.iter().zip(&event_profile) {
        // Every row is recorded for the live profile it belongs to now (one left without
        // identifiers stays with this profile), so no row depends on the merged-away
        // profiles' new `merged_into`.
        let real_id = real.get(&final_of(*p)).copied();
        history::repoint_row(
            transaction,
            event.row,
            event.recorded_for,
            real_id.unwrap_or(profile.id),
        )?;
        let Some(real_id) = real_id else {
            continue;
        };
        firsts.entry(real_id).or_insert(event);
        if let Some(event_traits) = &event.traits {
            let merged = traits.entry(real_id).or_default();
            for (name, value) in event_traits {
                let newer = merged
                    .get(name)
                    .is_none_or(|(ts, _, _)| event.timestamp_ms >= *ts);
                if newer {
                    merged.insert(
                        name.clone(),
                        (event.timestamp_ms, value.clone(), event.source_id.clone()),
                    );
                }
            }
        }
    }
    for real_id in real.values() {
        transaction.execute("DELETE FROM traits WHERE profile_id = ?1", [*real_id])?;
        for (name, (timestamp, value, source_id)) in traits.remove(real_id).unwrap_or_default() {
            transaction.execute(
                "INSERT INTO traits(profile_id, name, value, timestamp, source_id, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![real_id, name, value.to_string(), timestamp, source_id, now],
            )?;
        }
        if let Some(first) = firsts.get(real_id) {
            transaction.execute(
                "UPDATE profiles SET first_message_id = ?2, first_source_id = ?3, updated_at = ?4
                     WHERE id = ?1",
                params![real_id, first.message_id, first.source_id, now],
            )?;
        }
    }
    for (group, real_id) in &real {
        let Ok(view) = graph.view(*group);
        transaction.execute(
            "UPDATE profiles SET merges = ?2 WHERE id = ?1",
            params![real_id, view.merges],
        )?;
    }
    relink(
        transaction,
        workspace,
        collection,
        &real.values().copied().collect::<Vec<_>>(),
    )?;
    // Profiles merged in earlier now point at the group that holds their first event.
    for (old, first_message) in &revivable {
        if real.values().any(|r| r == old) {
            continue;
        }
        let holder = history
            .iter()
            .zip(&event_profile)
            .find(|(e, _)| &e.message_id == first_message)
            .and_then(|(_, p)| real.get(&final_of(*p)).copied())
            .unwrap_or(profile.id);
        transaction.execute(
            "UPDATE profiles SET merged_into = ?2 WHERE id = ?1",
            params![old, holder],
        )?;
    }

    let mut public_ids = Vec::new();
    for group in &groups {
        if let Some(real_id) = real.get(group) {
            let public_id: String = transaction.query_row(
                "SELECT public_id FROM profiles WHERE id = ?1",
                [*real_id],
                |row| row.get(0),
            )?;
            public_ids.push(public_id);
        }
    }
    if public_ids.is_empty() {
        public_ids.push(profile.public_id.clone());
    }
    let (kind, detail) = match &cut {
        Cut::Identifier(id) => (
            "identifier",
            json!({"identifier": {"type": id.kind, "id": id.value}}),
        ),
        Cut::Merge { message_id, bridge } => (
            "merge",
            json!({"message_id": message_id,
                       "bridge": bridge.iter().map(|id| json!({"type": id.kind, "id": id.value})).collect::<Vec<_>>()}),
        ),
    };
    let result = json!({
        "profiles": public_ids,
        "removed": removed.iter().map(|id| json!({"type": id.kind, "id": id.value})).collect::<Vec<_>>(),
    });
    transaction.execute(
            "INSERT INTO unmerges(workspace_id, at, profile_id, kind, detail, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![workspace, now, profile.id, kind, detail.to_string(), result.to_string()],
        )?;
    Ok(Unmerged {
        profiles: public_ids,
        removed,
    })
}

fn load_history(
    connection: &Connection,
    profile: &ProfileRef,
) -> Result<Vec<HistoryEvent>, StoreError> {
    let mut statement = connection.prepare(&format!(
        "SELECT id, message_id, source_id, timestamp, ids, traits, profile_id FROM profile_events
         WHERE id IN ({}) AND collection = ?2 ORDER BY id",
        history::rows_of("?1")
    ))?;
    let rows = statement
        .query_map(params![profile.id, profile.collection.as_str()], |row| {
            let ids: String = row.get(4)?;
            let traits: Option<String> = row.get(5)?;
            Ok(HistoryEvent {
                row: row.get(0)?,
                message_id: row.get(1)?,
                source_id: row.get(2)?,
                timestamp_ms: row.get(3)?,
                ids: parse_ids(&ids),
                traits: traits.and_then(|t| serde_json::from_str(&t).ok()),
                recorded_for: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn current_ids(
    connection: &Connection,
    profile: ProfileId,
) -> Result<HashSet<Identifier>, StoreError> {
    let mut statement =
        connection.prepare("SELECT kind, value FROM identifiers WHERE profile_id = ?1")?;
    let ids = statement
        .query_map([profile], |row| {
            Ok(Identifier::new(
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
            ))
        })?
        .collect::<Result<HashSet<_>, _>>()?;
    Ok(ids)
}

/// Identifiers in the history that another profile holds.
fn foreign_ids(
    ids: &IdChanges<'_>,
    workspace: &str,
    collection: Collection,
    profile: ProfileId,
    history: &[HistoryEvent],
) -> Result<HashSet<Identifier>, StoreError> {
    let mut foreign = HashSet::new();
    let mut checked = HashSet::new();
    for event in history {
        for id in &event.ids {
            if !checked.insert(id.clone()) {
                continue;
            }
            let owner = ids
                .find(workspace, collection, id)?
                .map(|found| found.profile);
            if owner.is_some_and(|o| o != profile) {
                foreign.insert(id.clone());
            }
        }
    }
    Ok(foreign)
}

/// Profiles merged (directly or not) into `profile`, with their first message id.
fn merged_away(
    connection: &Connection,
    profile: ProfileId,
) -> Result<Vec<(ProfileId, String)>, StoreError> {
    let mut statement = connection
        .prepare("SELECT id, first_message_id FROM profiles WHERE merged_into = ?1 ORDER BY id")?;
    let rows = statement
        .query_map([profile], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Recomputes the links of these profiles from their events: a group call recorded for a user
/// names the account it resolved to (and the account's row names the user), followed to the
/// live profile if that one merged since.
fn relink(
    connection: &Connection,
    workspace: &str,
    collection: Collection,
    profiles: &[ProfileId],
) -> Result<(), StoreError> {
    let (column, other) = match collection {
        Collection::Users => ("user_profile", "account_profile"),
        Collection::Accounts => ("account_profile", "user_profile"),
    };
    for profile in profiles {
        connection.execute(
            &format!("DELETE FROM links WHERE {column} = ?1"),
            [*profile],
        )?;
        connection.execute(
            &format!(
                "INSERT INTO links(workspace_id, {column}, {other}, first_seen, last_seen, source_id)
                 SELECT ?1, ?2, coalesce(p.merged_into, p.id), min(e.timestamp), max(e.timestamp), min(e.source_id)
                 FROM profile_events e JOIN profiles p ON p.id = e.linked
                 WHERE e.id IN ({rows}) AND e.collection = ?3
                 GROUP BY coalesce(p.merged_into, p.id)",
                rows = history::rows_of("?2")
            ),
            params![workspace, profile, collection.as_str()],
        )?;
    }
    Ok(())
}
