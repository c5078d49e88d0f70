//! Reading profiles: what the Profile API and the admin API show.
//!
//! Every read starts from a [`ProfileRef`], which only a lookup scoped to a workspace returns.

use std::fs::File;

use serde_json::Value;
use sluice_identity::{Collection, Identifier, ProfileId};

use super::ProfileStore;
use super::log::read_entry;
use super::state::{Entry, IdFate, Profile, State};
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
    /// Position in the history (the entry's place in the change log), for cursors.
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

impl ProfileStore {
    /// The live profile holding an identifier.
    pub fn lookup(
        &self,
        workspace: &WorkspaceId,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<ProfileRef>, StoreError> {
        self.read(|state, _| {
            Ok(state
                .find(&workspace.0, collection, id)
                .and_then(|profile| profile_ref(state, workspace, profile)))
        })
    }

    /// The live profile of `collection` a lookup names: an identifier, or `segment_id:` and a
    /// public profile id. What the Profile API and the admin API look profiles up with (such a
    /// read keeps the state loaded through idle spells: see
    /// [`ProfileStore::release_memory`]).
    pub fn find(
        &self,
        workspace: &WorkspaceId,
        collection: Collection,
        lookup: &Identifier,
    ) -> Result<Option<ProfileRef>, StoreError> {
        self.note_api_read();
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
        self.read(|state, _| {
            let Some(id) = state.by_public_id(public_id) else {
                return Ok(None);
            };
            Ok(state
                .live_of(id)
                .and_then(|live| profile_ref(state, workspace, live)))
        })
    }

    /// Traits by name, after `after`, at most `limit` (`include`: only these names).
    pub fn traits(
        &self,
        profile: &ProfileRef,
        include: &[String],
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<TraitValue>, StoreError> {
        self.read(|state, _| {
            let Some(held) = live(state, profile) else {
                return Ok(Vec::new());
            };
            let mut named: Vec<(&str, &super::state::TraitRecord)> = held
                .traits
                .iter()
                .map(|record| (state.names.text(record.name), record))
                .filter(|(name, _)| *name > after.unwrap_or(""))
                .collect();
            named.sort_by(|a, b| a.0.cmp(b.0));
            let mut out = Vec::new();
            for (name, record) in named {
                if !include.is_empty() && !include.iter().any(|wanted| wanted == name) {
                    continue;
                }
                out.push(TraitValue {
                    name: name.to_owned(),
                    value: serde_json::from_str(&record.value).unwrap_or(Value::Null),
                    source_id: state.names.text(record.source).to_owned(),
                    timestamp_ms: record.timestamp_ms,
                    updated_at_ms: record.updated_at_ms,
                });
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    /// Identifiers, oldest first (`include`: only these types), skipping the first `offset`.
    pub fn external_ids(
        &self,
        profile: &ProfileRef,
        include: &[String],
        offset: usize,
        limit: usize,
    ) -> Result<Vec<ExternalId>, StoreError> {
        self.read(|state, _| {
            Ok(external_ids_of(state, profile.id)
                .into_iter()
                .filter(|e| include.is_empty() || include.contains(&e.id.kind))
                .skip(offset)
                .take(limit)
                .collect())
        })
    }

    /// A page of the event history.
    pub fn events(
        &self,
        profile: &ProfileRef,
        query: &EventQuery,
    ) -> Result<Vec<EventRef>, StoreError> {
        self.read(|state, log| {
            let Some(held) = live(state, profile) else {
                return Ok(Vec::new());
            };
            let mut offsets: Vec<u64> = held.history.clone();
            if !query.ascending {
                offsets.reverse();
            }
            let mut out = Vec::new();
            for offset in offsets {
                let row = i64::try_from(offset).unwrap_or(i64::MAX);
                if let Some(after) = query.after_row {
                    let past = if query.ascending {
                        row > after
                    } else {
                        row < after
                    };
                    if !past {
                        continue;
                    }
                }
                let Some(entry) = read_entry(log, offset, &state.names)? else {
                    continue;
                };
                if entry.collection != profile.collection
                    || entry.at_ms < query.start_ms.unwrap_or(i64::MIN)
                    || entry.at_ms >= query.end_ms.unwrap_or(i64::MAX)
                {
                    continue;
                }
                let name = entry.event.as_deref().unwrap_or("");
                if !query.include.is_empty() && !query.include.iter().any(|n| n == name) {
                    continue;
                }
                if query.exclude.iter().any(|n| n == name) {
                    continue;
                }
                out.push(event_ref(state, row, entry));
                if out.len() >= query.limit {
                    break;
                }
            }
            Ok(out)
        })
    }

    pub fn metadata(&self, profile: &ProfileRef) -> Result<ProfileMeta, StoreError> {
        self.read(|state, log| metadata_of(state, log, profile.id))
    }

    /// Profiles linked to this one (accounts of a user, users of an account), most recent first.
    pub fn links(&self, profile: &ProfileRef, limit: usize) -> Result<Vec<Link>, StoreError> {
        self.read(|state, _| Ok(links_of(state, profile, limit)))
    }

    /// The identity graph of a profile: identifiers, merges into it, unmerges, links.
    pub fn graph(&self, profile: &ProfileRef) -> Result<GraphView, StoreError> {
        self.read(|state, log| {
            let meta = metadata_of(state, log, profile.id)?;
            let identifiers = external_ids_of(state, profile.id);
            let family = state.with_family(profile.id);
            let mut merges = Vec::new();
            for merge in &state.merges {
                if !family.contains(&merge.kept) {
                    continue;
                }
                let public = |id| {
                    state
                        .profile(id)
                        .map_or_else(String::new, |p| p.public_id.to_string())
                };
                merges.push(MergeRecord {
                    id: merge.id,
                    at_ms: merge.at_ms,
                    kept: public(merge.kept),
                    absorbed: public(merge.absorbed),
                    message_id: merge.message_id.to_string(),
                    source_id: state.names.text(merge.source).to_owned(),
                    bridge: merge
                        .bridge
                        .iter()
                        .map(|(kind, value)| Identifier::new(state.names.text(*kind), &**value))
                        .collect(),
                });
            }
            let mut unmerges = Vec::new();
            for unmerge in &state.unmerges {
                if unmerge.profile != profile.id {
                    continue;
                }
                unmerges.push(UnmergeRecord {
                    id: unmerge.id,
                    at_ms: unmerge.at_ms,
                    kind: unmerge.kind.to_string(),
                    detail: serde_json::from_str(&unmerge.detail).unwrap_or(Value::Null),
                    result: serde_json::from_str(&unmerge.result).unwrap_or(Value::Null),
                });
            }
            let links = links_of(state, profile, 100);
            Ok(GraphView {
                meta,
                identifiers,
                merges,
                unmerges,
                links,
            })
        })
    }

    /// How many live profiles a workspace has in a collection.
    pub fn count_profiles(
        &self,
        workspace: &WorkspaceId,
        collection: Collection,
    ) -> Result<u64, StoreError> {
        self.read(|state, _| {
            let Some(workspace) = state.names.get(&workspace.0) else {
                return Ok(0);
            };
            let mut count = 0;
            for profile in state.profiles.values() {
                if profile.workspace == workspace
                    && profile.collection == collection
                    && profile.is_live()
                {
                    count += 1;
                }
            }
            Ok(count)
        })
    }
}

/// A reference to live profile `id` if it is the workspace's.
pub(crate) fn profile_ref(
    state: &State,
    workspace: &WorkspaceId,
    id: ProfileId,
) -> Option<ProfileRef> {
    let profile = state.profile(id).filter(|p| p.is_live())?;
    if state.names.text(profile.workspace) != workspace.0 {
        return None;
    }
    Some(ProfileRef {
        id,
        public_id: profile.public_id.to_string(),
        collection: profile.collection,
        workspace_id: workspace.clone(),
    })
}

/// The profile a reference names, if it is still live and the workspace's.
pub(crate) fn live<'s>(state: &'s State, profile: &ProfileRef) -> Option<&'s Profile> {
    state
        .profile(profile.id)
        .filter(|held| held.is_live() && state.names.text(held.workspace) == profile.workspace_id.0)
}

/// An entry as the history lists it.
pub(crate) fn event_ref(state: &State, row: i64, entry: Entry) -> EventRef {
    EventRef {
        row,
        message_id: entry.message_id,
        source_id: state.names.text(entry.source).to_owned(),
        seq: entry.seq,
        timestamp_ms: entry.at_ms,
        kind: state.names.text(entry.message_type).to_owned(),
        event: entry.event,
        ids: entry_ids(state, &entry.ids),
    }
}

/// Every identifier an entry carried, as the event had them.
pub(crate) fn entry_ids(state: &State, ids: &[(u32, String, IdFate)]) -> Vec<Identifier> {
    ids.iter()
        .map(|(kind, value, _)| Identifier::new(state.names.text(*kind), value.as_str()))
        .collect()
}

pub(crate) fn metadata_of(
    state: &State,
    log: &File,
    profile: ProfileId,
) -> Result<ProfileMeta, StoreError> {
    let held = state.profile(profile).ok_or(StoreError::NotFound {
        kind: "profile",
        id: profile.to_string(),
    })?;
    let mut meta = ProfileMeta {
        public_id: held.public_id.to_string(),
        collection: held.collection,
        created_at_ms: held.created_at_ms,
        updated_at_ms: held.updated_at_ms,
        first_message_id: held.first_message_id.to_string(),
        first_source_id: state.names.text(held.first_source).to_owned(),
        last_message_id: held.first_message_id.to_string(),
        last_source_id: state.names.text(held.first_source).to_owned(),
        merges: held.merges,
    };
    // The latest event is the newest history entry still held.
    for offset in held.history.iter().rev() {
        if let Some(entry) = read_entry(log, *offset, &state.names)? {
            meta.last_message_id = entry.message_id;
            meta.last_source_id = state.names.text(entry.source).to_owned();
            meta.updated_at_ms = meta.updated_at_ms.max(entry.now_ms);
            break;
        }
    }
    Ok(meta)
}

pub(crate) fn external_ids_of(state: &State, profile: ProfileId) -> Vec<ExternalId> {
    let Some(held) = state.profile(profile) else {
        return Vec::new();
    };
    let mut ids: Vec<ExternalId> = held
        .identifiers
        .iter()
        .map(|id| ExternalId {
            id: Identifier::new(state.names.text(id.kind), &*id.value),
            collection: held.collection,
            source_id: state.names.text(id.source).to_owned(),
            first_message_id: id.first_message_id.to_string(),
            first_seen_ms: id.first_seen_ms,
            last_seen_ms: id.last_seen_ms,
        })
        .collect();
    ids.sort_by(|a, b| (a.first_seen_ms, &a.id).cmp(&(b.first_seen_ms, &b.id)));
    ids
}

fn links_of(state: &State, profile: &ProfileRef, limit: usize) -> Vec<Link> {
    let Some(held) = live(state, profile) else {
        return Vec::new();
    };
    let mut links: Vec<&super::state::LinkRecord> = held.links.iter().collect();
    links.sort_by_key(|link| std::cmp::Reverse(link.last_seen_ms));
    let mut out = Vec::new();
    for link in links.into_iter().take(limit) {
        let Some(other) = state.profile(link.other) else {
            continue;
        };
        out.push(Link {
            public_id: other.public_id.to_string(),
            collection: other.collection,
            external_ids: external_ids_of(state, link.other),
            first_seen_ms: link.first_seen_ms,
            last_seen_ms: link.last_seen_ms,
        });
    }
    out
}
