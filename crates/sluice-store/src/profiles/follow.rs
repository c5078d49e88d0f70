//! What the audience consumer reads from the profile store: the merges recorded after a
//! point (so it can merge the states of merged profiles), a live profile by internal id, a
//! profile's traits as one JSON object, and its identifiers (for the events its syncs send).

use std::collections::HashMap;

use serde_json::{Map, Value};
use sluice_identity::ProfileId;

use super::ProfileStore;
use super::log::read_entry;
use super::read::{ExternalId, ProfileRef, external_ids_of, profile_ref};
use super::state::State;
use crate::{StoreError, WorkspaceId};

/// One recorded unmerge: the live profiles (internal ids) the history now falls into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnmergeEvent {
    pub id: i64,
    pub profiles: Vec<ProfileId>,
}

/// One recorded merge: `absorbed` went into `kept`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MergeEvent {
    pub id: i64,
    pub kept: ProfileId,
    pub absorbed: ProfileId,
}

impl ProfileStore {
    /// The workspace's merges recorded after merge `after`, oldest first, at most `limit`.
    pub fn merges_after(
        &self,
        workspace: &WorkspaceId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<MergeEvent>, StoreError> {
        let caught_up = |tails: &HashMap<String, (i64, i64)>| {
            (tails.get(&workspace.0).map_or(0, |tail| tail.0) <= after).then(Vec::new)
        };
        if let Some(none) = self.read_tails(caught_up)? {
            return Ok(none);
        }
        self.read(|state, _| {
            let Some(workspace) = state.names.get(&workspace.0) else {
                return Ok(Vec::new());
            };
            let start = state.merges.partition_point(|merge| merge.id <= after);
            let mut out = Vec::new();
            for merge in &state.merges[start..] {
                if out.len() >= limit {
                    break;
                }
                if merge.workspace == workspace {
                    out.push(MergeEvent {
                        id: merge.id,
                        kept: merge.kept,
                        absorbed: merge.absorbed,
                    });
                }
            }
            Ok(out)
        })
    }

    /// The id of the workspace's latest merge (0 before any).
    pub fn last_merge_id(&self, workspace: &WorkspaceId) -> Result<i64, StoreError> {
        Ok(self.tail(workspace)?.0)
    }

    /// The ids of the workspace's latest merge and unmerge (0 before any).
    fn tail(&self, workspace: &WorkspaceId) -> Result<(i64, i64), StoreError> {
        let of = |tails: &HashMap<String, (i64, i64)>| {
            Some(tails.get(&workspace.0).copied().unwrap_or_default())
        };
        if let Some(tail) = self.read_tails(of)? {
            return Ok(tail);
        }
        self.read(|state, _| Ok(of(&state.tails()).unwrap_or_default()))
    }

    /// The live profile a profile id is now (following merges), in the workspace.
    pub fn profile_by_id(
        &self,
        workspace: &WorkspaceId,
        id: ProfileId,
    ) -> Result<Option<ProfileRef>, StoreError> {
        self.read(|state, _| {
            Ok(state
                .live_of(id)
                .and_then(|live| profile_ref(state, workspace, live)))
        })
    }

    /// Every trait of a live or merged profile of the workspace, as one object.
    pub fn trait_map(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
    ) -> Result<Map<String, Value>, StoreError> {
        self.read(|state, _| {
            let mut traits = Map::new();
            let Some(held) = owned(state, workspace, profile) else {
                return Ok(traits);
            };
            for record in &held.traits {
                traits.insert(
                    state.names.text(record.name).to_owned(),
                    serde_json::from_str(&record.value).unwrap_or(Value::Null),
                );
            }
            Ok(traits)
        })
    }

    /// The traits `names` of a live or merged profile of the workspace, in that order (`None`
    /// for one it lacks, or for a profile of another workspace). Only these are parsed: what
    /// the audience engine reads of a profile when it evaluates it.
    pub fn trait_values(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
        names: &[String],
    ) -> Result<Vec<Option<Value>>, StoreError> {
        self.read(|state, _| {
            Ok(match owned(state, workspace, profile) {
                Some(held) => named_traits(state, held, names),
                None => vec![None; names.len()],
            })
        })
    }

    /// [`ProfileStore::trait_values`] of many profiles at once (one lock, the lookups one
    /// after another, so their cache misses overlap), in the order given; `None` for a
    /// profile that is not live in the workspace (merged away, erased, or another's).
    pub fn live_trait_values(
        &self,
        workspace: &WorkspaceId,
        profiles: &[ProfileId],
        names: &[String],
    ) -> Result<Vec<Option<Vec<Option<Value>>>>, StoreError> {
        self.read(|state, _| {
            let mut out = Vec::with_capacity(profiles.len());
            for profile in profiles {
                let live = state.live_of(*profile) == Some(*profile);
                let held = owned(state, workspace, *profile).filter(|_| live);
                out.push(held.map(|held| named_traits(state, held, names)));
            }
            Ok(out)
        })
    }

    /// The identifiers of a profile of the workspace, oldest first (none for a profile of
    /// another workspace).
    pub fn identifiers_by_id(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
    ) -> Result<Vec<ExternalId>, StoreError> {
        self.read(|state, _| {
            if owned(state, workspace, profile).is_none() {
                return Ok(Vec::new());
            }
            Ok(external_ids_of(state, profile))
        })
    }

    /// The workspace's unmerges recorded after unmerge `after`, oldest first, at most `limit`.
    pub fn unmerges_after(
        &self,
        workspace: &WorkspaceId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<UnmergeEvent>, StoreError> {
        let caught_up = |tails: &HashMap<String, (i64, i64)>| {
            (tails.get(&workspace.0).map_or(0, |tail| tail.1) <= after).then(Vec::new)
        };
        if let Some(none) = self.read_tails(caught_up)? {
            return Ok(none);
        }
        self.read(|state, _| {
            let Some(workspace) = state.names.get(&workspace.0) else {
                return Ok(Vec::new());
            };
            let mut out = Vec::new();
            for unmerge in &state.unmerges {
                if out.len() >= limit {
                    break;
                }
                if unmerge.workspace == workspace && unmerge.id > after {
                    out.push(UnmergeEvent {
                        id: unmerge.id,
                        profiles: unmerge.profiles.clone(),
                    });
                }
            }
            Ok(out)
        })
    }

    /// The id of the workspace's latest unmerge (0 before any).
    pub fn last_unmerge_id(&self, workspace: &WorkspaceId) -> Result<i64, StoreError> {
        Ok(self.tail(workspace)?.1)
    }

    /// Where a profile's recorded events are in the log: `(source, seq)`, by timestamp.
    pub fn history_positions(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        self.read(|state, log| {
            let Some(held) = owned(state, workspace, profile) else {
                return Ok(Vec::new());
            };
            let mut found = Vec::with_capacity(held.history.len());
            for offset in &held.history {
                if let Some(entry) = read_entry(log, *offset, &state.names)? {
                    found.push((
                        entry.at_ms,
                        entry.seq,
                        state.names.text(entry.source).to_owned(),
                    ));
                }
            }
            found.sort();
            Ok(found
                .into_iter()
                .map(|(_, seq, source)| (source, seq))
                .collect())
        })
    }
}

/// A profile (live or merged away) of the workspace.
/// The traits `names` of a profile, in that order, parsed from their JSON text.
fn named_traits(
    state: &State,
    held: &super::state::Profile,
    names: &[String],
) -> Vec<Option<Value>> {
    let mut values = vec![None; names.len()];
    for record in &held.traits {
        let name = state.names.text(record.name);
        if let Some(at) = names.iter().position(|wanted| wanted == name) {
            values[at] = Some(serde_json::from_str(&record.value).unwrap_or(Value::Null));
        }
    }
    values
}

fn owned<'s>(
    state: &'s State,
    workspace: &WorkspaceId,
    profile: ProfileId,
) -> Option<&'s super::state::Profile> {
    state
        .profile(profile)
        .filter(|held| state.names.text(held.workspace) == workspace.0)
}
