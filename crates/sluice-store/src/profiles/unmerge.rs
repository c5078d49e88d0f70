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
//! wins), history, links and merge counts are then rewritten from the result and the unmerge
//! is recorded, in one change (which writes a snapshot: the change log only records events).
//!
//! A later event that carries both sides again merges them again, like Segment after a
//! profile identifier is deleted.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::json;
use sluice_identity::{Graph, Identifier, MemoryGraph, ProfileId, Rules, resolve};
use sluice_spec::timestamp::now_ms;

use super::log::read_entry;
use super::read::{ProfileRef, entry_ids, live};
use super::state::{IdRecord, LinkRecord, Profile, State, TraitRecord, UnmergeRecord};
use super::{Change, ProfileStore, new_public_id};
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
enum Cut {
    Identifier(Identifier),
    /// The merging event and the identifiers by which it bridged.
    Merge {
        message_id: String,
        bridge: Vec<Identifier>,
    },
}

/// One entry of the profile's history, as the replay needs it.
struct HistoryEvent {
    offset: u64,
    message_id: String,
    source: u32,
    timestamp_ms: i64,
    ids: Vec<Identifier>,
    traits: Vec<(u32, String)>,
    linked: Option<ProfileId>,
}

/// An identifier as the replay first and last saw it.
struct Seen {
    first_ms: i64,
    last_ms: i64,
    source: u32,
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
        self.write(|change| rebuild(change, profile, rules, Cut::Identifier(id.clone())))
    }

    /// Splits the profile at merge `merge_id` (a merge into it, or into a profile it absorbed).
    pub fn split_merge(
        &self,
        profile: &ProfileRef,
        merge_id: i64,
        rules: &Rules,
    ) -> Result<Unmerged, StoreError> {
        self.write(|change| {
            let state = &*change.state.get()?;
            let family = state.with_family(profile.id);
            let merge = state.merges.iter().find(|merge| {
                merge.id == merge_id
                    && family.contains(&merge.kept)
                    && state.names.text(merge.workspace) == profile.workspace_id.0
            });
            let Some(merge) = merge else {
                return Err(StoreError::NotFound {
                    kind: "merge",
                    id: merge_id.to_string(),
                });
            };
            let cut = Cut::Merge {
                message_id: merge.message_id.to_string(),
                bridge: merge
                    .bridge
                    .iter()
                    .map(|(kind, value)| Identifier::new(state.names.text(*kind), &**value))
                    .collect(),
            };
            rebuild(change, profile, rules, cut)
        })
    }
}

/// [`ProfileStore::remove_identifier`] and [`ProfileStore::split_merge`] inside their change.
fn rebuild(
    change: &mut Change<'_, '_>,
    profile: &ProfileRef,
    rules: &Rules,
    cut: Cut,
) -> Result<Unmerged, StoreError> {
    let state = change.state.get()?;
    let workspace = profile.workspace_id.0.as_str();
    let collection = profile.collection;
    let Some(held) = live(state, profile) else {
        return Err(StoreError::NotFound {
            kind: "profile",
            id: profile.public_id.clone(),
        });
    };
    let before: HashSet<Identifier> = held
        .identifiers
        .iter()
        .map(|id| Identifier::new(state.names.text(id.kind), &*id.value))
        .collect();
    if let Cut::Identifier(id) = &cut
        && !before.contains(id)
    {
        return Err(StoreError::NotFound {
            kind: "identifier",
            id: id.to_string(),
        });
    }
    let mut history = Vec::with_capacity(held.history.len());
    for offset in &held.history {
        let Some(entry) = read_entry(change.log, *offset, &state.names)? else {
            continue;
        };
        if entry.collection != collection {
            continue;
        }
        history.push(HistoryEvent {
            offset: *offset,
            ids: entry_ids(state, &entry.ids),
            message_id: entry.message_id,
            source: entry.source,
            timestamp_ms: entry.at_ms,
            traits: entry.traits,
            linked: entry.linked,
        });
    }
    // Identifiers in the history that another profile holds are left out.
    let mut foreign = HashSet::new();
    for event in &history {
        for id in &event.ids {
            let owner = state.find(workspace, collection, id);
            if owner.is_some_and(|owner| owner != profile.id) {
                foreign.insert(id.clone());
            }
        }
    }

    // Resolve the history again in memory.
    let mut graph = MemoryGraph::default();
    let mut absorbed_into: HashMap<ProfileId, ProfileId> = HashMap::new();
    let mut event_group: Vec<ProfileId> = Vec::with_capacity(history.len());
    let mut seen: HashMap<Identifier, Seen> = HashMap::new();
    for event in &history {
        let ids: Vec<Identifier> = event
            .ids
            .iter()
            .filter(|id| !foreign.contains(*id))
            .filter(|id| match &cut {
                Cut::Identifier(removed) => *id != removed,
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
        event_group.push(target.unwrap_or(0));
        for id in decision
            .added
            .iter()
            .chain(decision.seen.iter().map(|(id, _)| id))
        {
            let first = seen.entry(id.clone()).or_insert(Seen {
                first_ms: event.timestamp_ms,
                last_ms: event.timestamp_ms,
                source: event.source,
                message_id: event.message_id.clone(),
            });
            first.last_ms = first.last_ms.max(event.timestamp_ms);
        }
    }
    let final_of = |mut group: ProfileId| {
        while let Some(next) = absorbed_into.get(&group) {
            group = *next;
        }
        group
    };
    for group in &mut event_group {
        *group = final_of(*group);
    }
    // Groups in order of their oldest event.
    let mut groups: Vec<ProfileId> = Vec::new();
    for group in &event_group {
        if *group != 0 && !groups.contains(group) {
            groups.push(*group);
        }
    }

    // Real profiles for the groups: the first keeps this one, a group holding the first
    // event of a profile merged in earlier revives it, any other gets a new one.
    let family: Vec<ProfileId> = state.with_family(profile.id)[1..].to_vec();
    let now = now_ms();
    let mut real: Vec<(ProfileId, ProfileId)> = Vec::new();
    for (index, group) in groups.iter().enumerate() {
        if index == 0 {
            real.push((*group, profile.id));
            continue;
        }
        let messages: HashSet<&str> = history
            .iter()
            .zip(&event_group)
            .filter(|(_, g)| *g == group)
            .map(|(event, _)| event.message_id.as_str())
            .collect();
        let revived = family.iter().copied().find(|member| {
            state
                .profile(*member)
                .is_some_and(|p| messages.contains(&*p.first_message_id))
                && !real.iter().any(|(_, id)| id == member)
        });
        let id = match revived {
            Some(id) => id,
            None => {
                let first = history.iter().zip(&event_group).find(|(_, g)| *g == group);
                let (message_id, source) =
                    first.map_or(("", 0), |(e, _)| (e.message_id.as_str(), e.source));
                state.last_profile += 1;
                let id = state.last_profile;
                let public_id = new_public_id(collection, now)?;
                state.restore(
                    id,
                    Profile {
                        workspace: held_workspace(state, profile.id),
                        collection,
                        public_id: public_id.into(),
                        merged_into: None,
                        merges: 0,
                        family: Vec::new(),
                        created_at_ms: now,
                        updated_at_ms: now,
                        first_message_id: message_id.into(),
                        first_source: source,
                        identifiers: Vec::new(),
                        traits: Vec::new(),
                        history: Vec::new(),
                        links: Vec::new(),
                    },
                );
                id
            }
        };
        real.push((*group, id));
    }
    let real_of = |group: ProfileId| real.iter().find(|(g, _)| *g == group).map(|(_, id)| *id);
    let real_ids: Vec<ProfileId> = real.iter().map(|(_, id)| *id).collect();

    // Identifiers: the old ones leave the index, the replay's are given out again (keeping
    // their original order where they had one).
    let mut orders: HashMap<Identifier, u64> = HashMap::new();
    for id in &real_ids {
        for held in state.take_identifiers(*id) {
            orders.insert(
                Identifier::new(state.names.text(held.kind), &*held.value),
                held.order,
            );
        }
    }
    let mut kept: HashSet<Identifier> = HashSet::new();
    let mut owners: Vec<(&Identifier, ProfileId)> = graph.owners().collect();
    owners.sort_by_key(|(id, _)| orders.get(*id).copied().unwrap_or(u64::MAX));
    for (id, group) in owners {
        let (Some(real_id), Some(first)) = (real_of(group), seen.get(id)) else {
            continue;
        };
        let kind = state.name(&id.kind).0;
        let order = match orders.get(id) {
            Some(order) => *order,
            None => {
                state.last_order += 1;
                state.last_order
            }
        };
        state.give_identifier(
            real_id,
            IdRecord {
                order,
                kind,
                value: id.value.as_str().into(),
                source: first.source,
                first_message_id: first.message_id.as_str().into(),
                first_seen_ms: first.first_ms,
                last_seen_ms: first.last_ms,
            },
        );
        kept.insert(id.clone());
    }
    let mut removed: Vec<Identifier> = before.into_iter().filter(|id| !kept.contains(id)).collect();
    removed.sort();

    // History, traits, first event, merge counts, links, from the groups' events. An event
    // left without identifiers stays with this profile.
    let mut histories: HashMap<ProfileId, Vec<u64>> = HashMap::new();
    let mut traits: HashMap<ProfileId, BTreeMap<u32, TraitRecord>> = HashMap::new();
    let mut links: HashMap<ProfileId, Vec<LinkRecord>> = HashMap::new();
    let mut firsts: HashMap<ProfileId, (String, u32)> = HashMap::new();
    for (event, group) in history.iter().zip(&event_group) {
        let owner = real_of(*group).unwrap_or(profile.id);
        histories.entry(owner).or_default().push(event.offset);
        if real_of(*group).is_none() {
            continue;
        }
        firsts
            .entry(owner)
            .or_insert_with(|| (event.message_id.clone(), event.source));
        let merged = traits.entry(owner).or_default();
        for (name, value) in &event.traits {
            let newer = merged
                .get(name)
                .is_none_or(|held| event.timestamp_ms >= held.timestamp_ms);
            if newer {
                merged.insert(
                    *name,
                    TraitRecord {
                        name: *name,
                        value: value.as_str().into(),
                        timestamp_ms: event.timestamp_ms,
                        source: event.source,
                        updated_at_ms: now,
                    },
                );
            }
        }
        if let Some(other) = event.linked.and_then(|other| state.live_of(other)) {
            let list = links.entry(owner).or_default();
            match list.iter_mut().find(|link| link.other == other) {
                Some(link) => {
                    link.first_seen_ms = link.first_seen_ms.min(event.timestamp_ms);
                    link.last_seen_ms = link.last_seen_ms.max(event.timestamp_ms);
                }
                None => list.push(LinkRecord {
                    other,
                    first_seen_ms: event.timestamp_ms,
                    last_seen_ms: event.timestamp_ms,
                    source: event.source,
                }),
            }
        }
    }
    // Profiles merged in earlier and not revived now belong to the group holding their first
    // event.
    let mut families: HashMap<ProfileId, Vec<ProfileId>> = HashMap::new();
    for member in &family {
        if real_ids.contains(member) {
            continue;
        }
        let first = state
            .profile(*member)
            .map(|p| p.first_message_id.to_string());
        let holder = history
            .iter()
            .zip(&event_group)
            .find(|(event, _)| Some(&event.message_id) == first.as_ref())
            .and_then(|(_, group)| real_of(*group))
            .unwrap_or(profile.id);
        families.entry(holder).or_default().push(*member);
    }
    for (group, real_id) in &real {
        let Ok(view) = graph.view(*group);
        let group_links = links.remove(real_id).unwrap_or_default();
        state.relink(*real_id, &group_links);
        let Some(target) = state.profiles.get_mut(real_id) else {
            continue;
        };
        target.merged_into = None;
        target.merges = view.merges;
        target.updated_at_ms = now;
        target.history = histories.remove(real_id).unwrap_or_default();
        target.traits = traits
            .remove(real_id)
            .unwrap_or_default()
            .into_values()
            .collect();
        if let Some((message_id, source)) = firsts.remove(real_id) {
            target.first_message_id = message_id.into();
            target.first_source = source;
        }
        target.family = families.remove(real_id).unwrap_or_default();
        for member in target.family.clone() {
            if let Some(merged) = state.profiles.get_mut(&member) {
                merged.merged_into = Some(*real_id);
            }
        }
    }
    if let Some(left) = histories.remove(&profile.id)
        && let Some(target) = state.profiles.get_mut(&profile.id)
    {
        // Only events without identifiers: the profile kept none of its groups.
        target.history = left;
    }

    let mut public_ids = Vec::new();
    for id in &real_ids {
        if let Some(held) = state.profile(*id) {
            public_ids.push(held.public_id.to_string());
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
    state.last_unmerge += 1;
    let workspace_name = held_workspace(state, profile.id);
    state.unmerges.push(UnmergeRecord {
        id: state.last_unmerge,
        workspace: workspace_name,
        at_ms: now,
        profile: profile.id,
        kind: kind.into(),
        detail: detail.to_string().into(),
        result: result.to_string().into(),
        profiles: if real_ids.is_empty() {
            vec![profile.id]
        } else {
            real_ids.clone()
        },
    });
    change.rewrite = true;
    Ok(Unmerged {
        profiles: public_ids,
        removed,
    })
}

fn held_workspace(state: &State, profile: ProfileId) -> u32 {
    state.profile(profile).map_or(0, |held| held.workspace)
}
