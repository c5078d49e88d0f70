//! The erase/find contract for profiles (find everything held about a person, and erase it)
//! and retention (forget a source's old history, and the profiles left with none).
//!
//! A person is found through any of their identifiers (users collection); everything of the
//! profiles holding them goes: the profiles (and those merged into them), identifiers, traits,
//! history, merge and unmerge records, links. Their change log entries are overwritten with
//! zeros in place and a new snapshot replaces the old one, so no file keeps them.
//!
//! Retention removes a source's history entries applied before a time; a profile whose whole
//! history is gone is erased like a person (nothing recent vouches for it any more). The
//! children policy's sweep finds profiles whose traits show an age under its threshold.

use std::collections::{BTreeSet, HashSet};

use sluice_identity::{Collection, Identifier, ProfileId};
use sluice_privacy::children::trait_shows_child;

use super::log::{erase_entry, scan};
use super::state::State;
use super::{Change, ProfileStore};
use crate::{StoreError, WorkspaceId};

/// What the store holds about a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PersonFound {
    /// Public ids of the live profiles.
    pub profiles: Vec<String>,
    /// Every identifier of those profiles.
    pub identifiers: Vec<Identifier>,
    /// Recorded events in their histories.
    pub events: u64,
    /// Internal ids of the live profiles and of every profile merged into them (other stores
    /// key what they hold about a person by these).
    pub profile_ids: Vec<ProfileId>,
}

/// What [`ProfileStore::expire`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// History entries.
    pub events: u64,
    /// Profiles left without history, erased.
    pub profiles: u64,
}

impl ProfileStore {
    /// Finds the person holding any of `ids`.
    pub fn find_person(
        &self,
        workspace: &WorkspaceId,
        ids: &[Identifier],
    ) -> Result<PersonFound, StoreError> {
        self.read(|state, _| {
            let live = live_profiles(state, &workspace.0, ids);
            let mut found = PersonFound::default();
            let mut identifiers = BTreeSet::new();
            for id in &live {
                let Some(profile) = state.profile(*id) else {
                    continue;
                };
                found.profiles.push(profile.public_id.to_string());
                for held in &profile.identifiers {
                    identifiers.insert(Identifier::new(state.names.text(held.kind), &*held.value));
                }
                found.events += profile.history.len() as u64;
                found.profile_ids.extend(state.with_family(*id));
            }
            found.identifiers = identifiers.into_iter().collect();
            Ok(found)
        })
    }

    /// Erases the person holding any of `ids`; returns the records removed.
    pub fn erase_person(
        &self,
        workspace: &WorkspaceId,
        ids: &[Identifier],
    ) -> Result<u64, StoreError> {
        self.write(|change| {
            let live = live_profiles(change.state.get()?, &workspace.0, ids);
            erase_profiles(change, &live)
        })
    }

    /// Retention: removes the source's history entries applied before `applied_before_ms`,
    /// then erases every profile left without history.
    pub fn expire(
        &self,
        workspace: &WorkspaceId,
        source_id: &str,
        applied_before_ms: i64,
    ) -> Result<Expired, StoreError> {
        self.write(|change| expire_in(change, workspace, source_id, applied_before_ms))
    }

    /// One identifier (the user id when there is one) of each live user profile whose
    /// traits show an age under `minimum_age` on `today` (the children policy's sweep).
    pub fn children(
        &self,
        workspace: &WorkspaceId,
        minimum_age: u32,
        today: time::Date,
    ) -> Result<Vec<Identifier>, StoreError> {
        self.read(|state, _| {
            let Some(workspace) = state.names.get(&workspace.0) else {
                return Ok(Vec::new());
            };
            // Only traits whose name could be an age or a birth date are read (names folded
            // as `sluice_privacy::children` folds them).
            let mut age_names = HashSet::new();
            for (id, name) in state.names.iter().enumerate() {
                let folded: String = name
                    .chars()
                    .filter(|c| !matches!(c, '_' | '-' | ' '))
                    .collect::<String>()
                    .to_lowercase();
                if matches!(
                    folded.as_str(),
                    "age" | "birthday" | "birthdate" | "dateofbirth" | "dob"
                ) {
                    age_names.insert(u32::try_from(id).unwrap_or(u32::MAX));
                }
            }
            let user_id = state.names.get(sluice_identity::identifier::USER_ID);
            let mut found: Vec<(ProfileId, Identifier)> = Vec::new();
            for (id, profile) in &state.profiles {
                if profile.workspace != workspace
                    || profile.collection != Collection::Users
                    || !profile.is_live()
                {
                    continue;
                }
                let child = profile.traits.iter().any(|held| {
                    age_names.contains(&held.name)
                        && serde_json::from_str::<serde_json::Value>(&held.value).is_ok_and(
                            |value| {
                                trait_shows_child(
                                    state.names.text(held.name),
                                    &value,
                                    minimum_age,
                                    today,
                                )
                            },
                        )
                });
                if !child {
                    continue;
                }
                let mut ids: Vec<_> = profile.identifiers.iter().collect();
                ids.sort_by_key(|held| (Some(held.kind) != user_id, held.order));
                if let Some(first) = ids.first() {
                    found.push((
                        *id,
                        Identifier::new(state.names.text(first.kind), &*first.value),
                    ));
                }
            }
            found.sort_by_key(|(id, _)| *id);
            Ok(found
                .into_iter()
                .map(|(_, identifier)| identifier)
                .collect())
        })
    }
}

/// [`ProfileStore::expire`] inside its change.
fn expire_in(
    change: &mut Change<'_, '_>,
    workspace: &WorkspaceId,
    source_id: &str,
    applied_before_ms: i64,
) -> Result<Expired, StoreError> {
    let state = change.state.get()?;
    let (Some(workspace), Some(source)) =
        (state.names.get(&workspace.0), state.names.get(source_id))
    else {
        return Ok(Expired::default());
    };
    let mut old: HashSet<u64> = HashSet::new();
    let end = change.appender.next_offset();
    scan(change.log, 0, end, &state.names, |offset, entry| {
        if entry.workspace == workspace
            && entry.source == source
            && entry.now_ms < applied_before_ms
        {
            old.insert(offset);
        }
    })?;
    if old.is_empty() {
        return Ok(Expired::default());
    }
    let mut emptied = Vec::new();
    for (id, profile) in &mut state.profiles {
        if !profile.is_live() {
            continue;
        }
        let before = profile.history.len();
        profile.history.retain(|offset| !old.contains(offset));
        if profile.history.len() < before && profile.history.is_empty() {
            emptied.push(*id);
        }
    }
    for offset in &old {
        erase_entry(change.log, *offset)?;
    }
    let events = old.len() as u64;
    let profiles = emptied.len() as u64;
    erase_profiles(change, &emptied)?;
    change.rewrite = true;
    Ok(Expired { events, profiles })
}

/// Erases live profiles and every profile merged into them; returns the records removed.
fn erase_profiles(change: &mut Change<'_, '_>, live: &[ProfileId]) -> Result<u64, StoreError> {
    let state = change.state.get()?;
    let mut all: Vec<ProfileId> = Vec::new();
    for id in live {
        all.extend(state.with_family(*id));
    }
    let mut removed = 0u64;
    for id in &all {
        let Some(profile) = state.profile(*id) else {
            continue;
        };
        removed +=
            1 + (profile.identifiers.len() + profile.traits.len() + profile.links.len()) as u64;
        for offset in &profile.history {
            erase_entry(change.log, *offset)?;
            removed += 1;
        }
    }
    let records_before = state.merges.len() + state.unmerges.len();
    state.remove_profiles(&all);
    removed += (records_before - state.merges.len() - state.unmerges.len()) as u64;
    if removed > 0 {
        change.rewrite = true;
    }
    Ok(removed)
}

fn live_profiles(state: &State, workspace: &str, ids: &[Identifier]) -> Vec<ProfileId> {
    let mut profiles = Vec::new();
    for id in ids {
        if let Some(owner) = state.find(workspace, Collection::Users, id)
            && !profiles.contains(&owner)
        {
            profiles.push(owner);
        }
    }
    profiles
}
