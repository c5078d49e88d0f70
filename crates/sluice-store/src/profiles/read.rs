//! Reading profiles: what the Profile API and the admin API show.
//!
//! Every read starts from a [`ProfileRef`], which only a lookup scoped to a workspace returns.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sluice_identity::{Collection, Identifier, ProfileId};

use super::{ProfileStore, history};
use crate::{StoreError, WorkspaceId};

/// The lookup type that names a profile by its public id (`segment_id:use_…`).
pub const SEGMENT_ID: &str = "segment_id";

/// A live profile found in a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRef {
    pub id: ProfileId,
    pub public_id: String,
    pub collection: Collection,
    pub workspace_id: WorkspaceId,
}

/// One merged trait.
#[derive(Debug, Clone, PartialEq)]
pub struct TraitValue {
    pub name: String,
    pub value: Value,
    pub source_id: String,
    /// Event time of the value.
    pub timestamp_ms: i64,
    /// When Sluice recorded it.
    pub updated_at_ms: i64,
}

/// One identifier of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalId {
    pub id: Identifier,
    pub collection: Collection,
    pub source_id: String,
    pub first_message_id: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// A profile's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileMeta {
    pub public_id: String,
    pub collection: Collection,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub first_message_id: String,
    pub first_source_id: String,
    pub last_message_id: String,
    pub last_source_id: String,
    pub merges: u32,
}

/// One event of a profile's history; the body is in the log at (`source_id`, `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    /// Position in the history, for cursors.
    pub row: i64,
    pub message_id: String,
    pub source_id: String,
    pub seq: i64,
    pub timestamp_ms: i64,
    pub kind: String,
    pub event: Option<String>,
    pub ids: Vec<Identifier>,
}

/// Which events of a history to list.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Only these event names (track) — empty: all.
    pub include: Vec<String>,
    /// Not these event names.
    pub exclude: Vec<String>,
    pub ascending: bool,
    /// Continue after this row (from the previous page).
    pub after_row: Option<i64>,
    pub limit: usize,
}

/// A profile linked to another (a user to an account, or back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub public_id: String,
    pub collection: Collection,
    pub external_ids: Vec<ExternalId>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// One recorded merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeRecord {
    pub id: i64,
    pub at_ms: i64,
    pub kept: String,
    pub absorbed: String,
    pub message_id: String,
    pub source_id: String,
    /// The event's identifiers that belonged to the absorbed profile.
    pub bridge: Vec<Identifier>,
}

/// One recorded unmerge.
#[derive(Debug, Clone, PartialEq)]
pub struct UnmergeRecord {
    pub id: i64,
    pub at_ms: i64,
    pub kind: String,
    pub detail: Value,
    pub result: Value,
}

/// A profile's identity graph and how it came to be.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphView {
    pub meta: ProfileMeta,
    pub identifiers: Vec<ExternalId>,
    pub merges: Vec<MergeRecord>,
    pub unmerges: Vec<UnmergeRecord>,
    pub links: Vec<Link>,
}

pub(crate) fn parse_ids(text: &str) -> Vec<Identifier> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).unwrap_or_default();
    pairs
        .into_iter()
        .map(|(kind, value)| Identifier::new(kind, value))
        .collect()
}

fn collection_of(text: &str) -> Collection {
    Collection::parse(text).unwrap_or(Collection::Users)
}

impl ProfileStore {
    /// The live profile holding an identifier.
    pub fn lookup(
        &self,
        workspace: &WorkspaceId,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<ProfileRef>, StoreError> {
        let connection = self.reader()?;
        let Some(found) = self.find_id(&connection, &workspace.0, collection, id)? else {
            return Ok(None);
        };
        // The index may be a moment behind this connection's view (a commit whose changes it
        // is about to take): follow a merge, and miss a profile deleted since.
        let profile: Option<(i64, String)> = connection
            .prepare_cached(
                "SELECT coalesce(m.id, p.id), coalesce(m.public_id, p.public_id)
                 FROM profiles p LEFT JOIN profiles m ON m.id = p.merged_into WHERE p.id = ?1",
            )?
            .query_row([found.profile], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()?;
        Ok(profile.map(|(id, public_id)| ProfileRef {
            id,
            public_id,
            collection,
            workspace_id: workspace.clone(),
        }))
    }

    /// The live profile of `collection` a lookup names: an identifier, or `segment_id:` and a
    /// public profile id.
    pub fn find(
        &self,
        workspace: &WorkspaceId,
        collection: Collection,
        lookup: &Identifier,
    ) -> Result<Option<ProfileRef>, StoreError> {
        let found = if lookup.kind == SEGMENT_ID {
            self.by_public_id(workspace, &lookup.value)?
        } else {
            self.lookup(workspace, collection, lookup)?
        };
        Ok(found.filter(|profile| profile.collection == collection))
    }

    /// A profile by its public id; a merged-away id leads to the profile it went into.
    pub fn by_public_id(
        &self,
        workspace: &WorkspaceId,
        public_id: &str,
    ) -> Result<Option<ProfileRef>, StoreError> {
        let connection = self.reader()?;
        let found = connection
            .query_row(
                "SELECT coalesce(p.merged_into, p.id), coalesce(m.public_id, p.public_id), p.collection
                 FROM profiles p LEFT JOIN profiles m ON m.id = p.merged_into
                 WHERE p.workspace_id = ?1 AND p.public_id = ?2",
                params![workspace.0, public_id],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)),
            )
            .optional()?;
        Ok(found.map(|(id, public_id, collection)| ProfileRef {
            id,
            public_id,
            collection: collection_of(&collection),
            workspace_id: workspace.clone(),
        }))
    }

    /// Traits by name, after `after`, at most `limit` (`include`: only these names).
    pub fn traits(
        &self,
        profile: &ProfileRef,
        include: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TraitValue>, StoreError> {
        let connection = self.reader()?;
        let mut statement = connection.prepare_cached(
            "SELECT name, value, source_id, timestamp, updated_at FROM traits
             WHERE profile_id = ?1 AND name > ?2 ORDER BY name",
        )?;
        let mut rows = statement.query(params![profile.id, after.unwrap_or("")])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            if !include.is_empty() && !include.contains(&name) {
                continue;
            }
            let value: String = row.get(1)?;
            out.push(TraitValue {
                name,
                value: serde_json::from_str(&value).unwrap_or(Value::Null),
                source_id: row.get(2)?,
                timestamp_ms: row.get(3)?,
                updated_at_ms: row.get(4)?,
            });
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Identifiers, oldest first (`include`: only these types), skipping the first `offset`.
    pub fn external_ids(
        &self,
        profile: &ProfileRef,
        include: &[String],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ExternalId>, StoreError> {
        let connection = self.reader()?;
        let all = external_ids_of(&connection, profile.id)?;
        Ok(all
            .into_iter()
            .filter(|e| include.is_empty() || include.contains(&e.id.kind))
            .skip(offset)
            .take(limit)
            .collect())
    }

    /// A page of the event history.
    pub fn events(
        &self,
        profile: &ProfileRef,
        query: &EventQuery,
    ) -> Result<Vec<EventRef>, StoreError> {
        let connection = self.reader()?;
        let order = if query.ascending { "ASC" } else { "DESC" };
        let after = query
            .after_row
            .unwrap_or(if query.ascending { i64::MIN } else { i64::MAX });
        let comparison = if query.ascending { ">" } else { "<" };
        let sql = format!(
            "SELECT id, message_id, source_id, seq, timestamp, type, event, ids FROM profile_events
             WHERE id IN ({rows}) AND collection = ?2 AND id {comparison} ?3 AND timestamp >= ?4 AND timestamp < ?5
             ORDER BY id {order}",
            rows = history::rows_of("?1")
        );
        let mut statement = connection.prepare_cached(&sql)?;
        let mut rows = statement.query(params![
            profile.id,
            profile.collection.as_str(),
            after,
            query.start_ms.unwrap_or(i64::MIN),
            query.end_ms.unwrap_or(i64::MAX)
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let event: Option<String> = row.get(6)?;
            let name = event.as_deref().unwrap_or("");
            if !query.include.is_empty() && !query.include.iter().any(|n| n == name) {
                continue;
            }
            if query.exclude.iter().any(|n| n == name) {
                continue;
            }
            let ids: String = row.get(7)?;
            out.push(EventRef {
                row: row.get(0)?,
                message_id: row.get(1)?,
                source_id: row.get(2)?,
                seq: row.get(3)?,
                timestamp_ms: row.get(4)?,
                kind: row.get(5)?,
                event,
                ids: parse_ids(&ids),
            });
            if out.len() >= query.limit {
                break;
            }
        }
        Ok(out)
    }

    pub fn metadata(&self, profile: &ProfileRef) -> Result<ProfileMeta, StoreError> {
        let connection = self.reader()?;
        metadata_of(&connection, profile.id)
    }

    /// Profiles linked to this one (accounts of a user, users of an account), most recent first.
    pub fn links(&self, profile: &ProfileRef, limit: usize) -> Result<Vec<Link>, StoreError> {
        let connection = self.reader()?;
        links_of(&connection, profile, limit)
    }

    /// The identity graph of a profile: identifiers, merges into it, unmerges, links.
    pub fn graph(&self, profile: &ProfileRef) -> Result<GraphView, StoreError> {
        let connection = self.reader()?;
        let meta = metadata_of(&connection, profile.id)?;
        let identifiers = external_ids_of(&connection, profile.id)?;
        let merges = merges_into(&connection, profile.id)?;
        let mut statement = connection.prepare_cached(
            "SELECT id, at, kind, detail, result FROM unmerges WHERE profile_id = ?1 ORDER BY id",
        )?;
        let unmerges = statement
            .query_map([profile.id], |row| {
                let detail: String = row.get(3)?;
                let result: String = row.get(4)?;
                Ok(UnmergeRecord {
                    id: row.get(0)?,
                    at_ms: row.get(1)?,
                    kind: row.get(2)?,
                    detail: serde_json::from_str(&detail).unwrap_or(Value::Null),
                    result: serde_json::from_str(&result).unwrap_or(Value::Null),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let links = links_of(&connection, profile, 100)?;
        Ok(GraphView {
            meta,
            identifiers,
            merges,
            unmerges,
            links,
        })
    }

    /// How many live profiles a workspace has in a collection.
    pub fn count_profiles(
        &self,
        workspace: &WorkspaceId,
        collection: Collection,
    ) -> Result<u64, StoreError> {
        let connection = self.reader()?;
        let count: i64 = connection.query_row(
            "SELECT count(*) FROM profiles WHERE workspace_id = ?1 AND collection = ?2 AND merged_into IS NULL",
            params![workspace.0, collection.as_str()],
            |row| row.get(0),
        )?;
        Ok(count as u64)
    }
}

pub(crate) fn metadata_of(
    connection: &Connection,
    profile: ProfileId,
) -> Result<ProfileMeta, StoreError> {
    let mut meta = connection
        .prepare_cached(
            "SELECT public_id, collection, created_at, updated_at, first_message_id, first_source_id,
                 merges FROM profiles WHERE id = ?1",
        )?
        .query_row([profile], |row| {
            let collection: String = row.get(1)?;
            let first_message_id: String = row.get(4)?;
            let first_source_id: String = row.get(5)?;
            Ok(ProfileMeta {
                public_id: row.get(0)?,
                collection: collection_of(&collection),
                created_at_ms: row.get(2)?,
                updated_at_ms: row.get(3)?,
                last_message_id: first_message_id.clone(),
                last_source_id: first_source_id.clone(),
                first_message_id,
                first_source_id,
                merges: row.get(6)?,
            })
        })
        .optional()?
        .ok_or(StoreError::NotFound { kind: "profile", id: profile.to_string() })?;
    // The latest event is the newest history row: the consumer does not rewrite the profile's
    // row for every event.
    let latest: Option<(String, String, i64)> = connection
        .prepare_cached(&format!(
            "SELECT message_id, source_id, applied_at FROM profile_events
                 WHERE id = (SELECT max(row) FROM ({}))",
            history::rows_of("?1")
        ))?
        .query_row([profile], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    if let Some((message_id, source_id, applied_at)) = latest {
        meta.last_message_id = message_id;
        meta.last_source_id = source_id;
        meta.updated_at_ms = meta.updated_at_ms.max(applied_at);
    }
    Ok(meta)
}

pub(crate) fn external_ids_of(
    connection: &Connection,
    profile: ProfileId,
) -> Result<Vec<ExternalId>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT kind, value, collection, source_id, first_message_id, first_seen, last_seen
         FROM identifiers WHERE profile_id = ?1",
    )?;
    let mut ids = statement
        .query_map([profile], |row| {
            let collection: String = row.get(2)?;
            Ok(ExternalId {
                id: Identifier::new(row.get::<_, String>(0)?, row.get::<_, String>(1)?),
                collection: collection_of(&collection),
                source_id: row.get(3)?,
                first_message_id: row.get(4)?,
                first_seen_ms: row.get(5)?,
                last_seen_ms: row.get(6)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    ids.sort_by(|a, b| (a.first_seen_ms, &a.id).cmp(&(b.first_seen_ms, &b.id)));
    Ok(ids)
}

fn merges_into(
    connection: &Connection,
    profile: ProfileId,
) -> Result<Vec<MergeRecord>, StoreError> {
    // Merges into this profile and, recursively, into the profiles it absorbed.
    let mut statement = connection.prepare_cached(
        "WITH RECURSIVE family(id) AS (
             SELECT ?1 UNION SELECT m.absorbed FROM merges m JOIN family f ON m.kept = f.id
         )
         SELECT m.id, m.at, k.public_id, a.public_id, m.message_id, m.source_id, m.bridge
         FROM merges m JOIN profiles k ON k.id = m.kept JOIN profiles a ON a.id = m.absorbed
         WHERE m.kept IN (SELECT id FROM family) ORDER BY m.id",
    )?;
    let merges = statement
        .query_map([profile], |row| {
            let bridge: String = row.get(6)?;
            Ok(MergeRecord {
                id: row.get(0)?,
                at_ms: row.get(1)?,
                kept: row.get(2)?,
                absorbed: row.get(3)?,
                message_id: row.get(4)?,
                source_id: row.get(5)?,
                bridge: parse_ids(&bridge),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(merges)
}

fn links_of(
    connection: &Connection,
    profile: &ProfileRef,
    limit: usize,
) -> Result<Vec<Link>, StoreError> {
    let (column, other, other_collection) = match profile.collection {
        Collection::Users => ("user_profile", "account_profile", Collection::Accounts),
        Collection::Accounts => ("account_profile", "user_profile", Collection::Users),
    };
    let sql = format!(
        "SELECT l.{other}, p.public_id, l.first_seen, l.last_seen FROM links l JOIN profiles p ON p.id = l.{other}
         WHERE l.{column} = ?1 ORDER BY l.last_seen DESC LIMIT ?2"
    );
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement
        .query_map(params![profile.id, limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, i64>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut links = Vec::with_capacity(rows.len());
    for (other_id, public_id, first_seen_ms, last_seen_ms) in rows {
        links.push(Link {
            public_id,
            collection: other_collection,
            external_ids: external_ids_of(connection, other_id)?,
            first_seen_ms,
            last_seen_ms,
        });
    }
    Ok(links)
}
