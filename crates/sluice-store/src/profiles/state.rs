//! Every profile, identifier, trait, link and merge record, in memory: the profile store's
//! state. It is built by applying the change log's entries ([`super::log`]) in order, from
//! empty or from a snapshot ([`super::snapshot`]); the consumer applies each new event the same
//! way ([`State::apply_entry`]) after resolving it, so one code path builds the state live and
//! again at start-up.
//!
//! Applying an entry never consults the identity rules: an entry records the resolver's
//! decision (the profile the event joined, the profile it created, the profiles it merged, and
//! each identifier's fate), so replaying a log gives the same state whatever the workspace's
//! settings are now.
//!
//! Invariant: `index` holds exactly the identifiers of live profiles (those not merged into
//! another), each pointing at its profile; every profile in `public` exists in `profiles`.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

use sluice_identity::{Collection, Graph, IdState, Identifier, ProfileId, ProfileView};

use crate::StoreError;

/// `last_seen` of an identifier moves only when it is older than this: an hour is precise
/// enough for weekly windows.
pub(crate) const LAST_SEEN_PRECISION_MS: i64 = 60 * 60 * 1000;

/// An identifier's key in the index: 128 bits of two randomly keyed SipHashes of (workspace,
/// collection, type, value). Never written anywhere, so it may change between runs.
///
/// Invariant: two different identifiers never share a key (a collision of 128 random-keyed
/// bits is out of reach, and nobody can aim at one without the keys, which stay in memory).
pub(crate) type Key = [u64; 2];

/// Keys are uniformly random already: the table hashes a key by folding its two halves.
#[derive(Default)]
pub(crate) struct Folded(u64);

impl Hasher for Folded {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    /// A slice's length, hashed before its items: the same for every key.
    fn write_usize(&mut self, _length: usize) {}
}

/// A table keyed by profile id, as the state keeps its profiles.
pub type ProfileMap<V> = HashMap<ProfileId, V, BuildHasherDefault<ProfileIdHasher>>;

/// The hasher of [`ProfileMap`]. Profile ids are given out one after another, so an id is its
/// own slot: neighbouring ids sit side by side (reading profiles in id order, as a backfill
/// does, reads memory in order) and ids below the table's size never collide. The top seven
/// bits, which the table compares as a tag before a key, come from a multiplicative mix of the
/// id so the tags stay varied.
///
/// Invariant: the store gives out every id itself; no client chooses one, so no one can aim
/// collisions at the table.
#[derive(Default)]
pub struct ProfileIdHasher(u64);

impl Hasher for ProfileIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    /// Only ids are hashed (`write_i64`); anything else is folded in whole.
    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
        self.0 = self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn write_i64(&mut self, id: i64) {
        let id = id as u64;
        let tag = id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57;
        self.0 = (id & (u64::MAX >> 7)) | (tag << 57);
    }
}

/// Short texts that repeat in every entry (workspace and source ids, identifier types,
/// message types, trait names), each kept once and named by a number. The numbers are
/// assigned in the order the log defines them, so replaying the log gives the same ones.
#[derive(Debug, Default, Clone)]
pub(crate) struct Names {
    texts: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
}

impl Names {
    pub(crate) fn get(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// The text of a name; "" for a number never assigned (only a damaged log has one, and
    /// decoding rejects it first).
    pub(crate) fn text(&self, id: u32) -> &str {
        self.texts.get(id as usize).map_or("", |text| text)
    }

    pub(crate) fn contains(&self, id: u32) -> bool {
        (id as usize) < self.texts.len()
    }

    /// Defines the next name (the log's name entries do this in order).
    pub(crate) fn push(&mut self, text: &str) -> u32 {
        let id = u32::try_from(self.texts.len()).unwrap_or(u32::MAX);
        self.texts.push(text.into());
        self.ids.insert(text.into(), id);
        id
    }

    pub(crate) fn len(&self) -> usize {
        self.texts.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &str> {
        self.texts.iter().map(|text| &**text)
    }
}

/// One identifier of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdRecord {
    /// Order of first sight across the store (lists show identifiers in this order).
    pub(crate) order: u64,
    pub(crate) kind: u32,
    pub(crate) value: Box<str>,
    pub(crate) source: u32,
    pub(crate) first_message_id: Box<str>,
    pub(crate) first_seen_ms: i64,
    pub(crate) last_seen_ms: i64,
}

/// One merged trait: the value of the latest event by event time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraitRecord {
    pub(crate) name: u32,
    /// The value as JSON text.
    pub(crate) value: Box<str>,
    pub(crate) timestamp_ms: i64,
    pub(crate) source: u32,
    pub(crate) updated_at_ms: i64,
}

/// A link between a user profile and an account profile (a group call), held by both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkRecord {
    pub(crate) other: ProfileId,
    pub(crate) first_seen_ms: i64,
    pub(crate) last_seen_ms: i64,
    pub(crate) source: u32,
}

/// A profile. A merged-away one stays (with `merged_into` set and nothing else of its own) so
/// merges can be explained; a live profile holds its whole family's identifiers, traits and
/// history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub(crate) workspace: u32,
    pub(crate) collection: Collection,
    pub(crate) public_id: Box<str>,
    pub(crate) merged_into: Option<ProfileId>,
    /// Merges taken in (its own and those of the profiles it absorbed).
    pub(crate) merges: u32,
    /// The profiles merged into this one, directly or not.
    pub(crate) family: Vec<ProfileId>,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    pub(crate) first_message_id: Box<str>,
    pub(crate) first_source: u32,
    pub(crate) identifiers: Vec<IdRecord>,
    pub(crate) traits: Vec<TraitRecord>,
    /// The log offsets of the family's entries, ascending.
    pub(crate) history: Vec<u64>,
    pub(crate) links: Vec<LinkRecord>,
}

impl Profile {
    pub(crate) fn is_live(&self) -> bool {
        self.merged_into.is_none()
    }
}

/// A recorded merge: `absorbed` went into `kept` because of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MergeRecord {
    /// 1, 2, … in the order merges happened across the store.
    pub(crate) id: i64,
    pub(crate) workspace: u32,
    pub(crate) collection: Collection,
    pub(crate) at_ms: i64,
    pub(crate) kept: ProfileId,
    pub(crate) absorbed: ProfileId,
    pub(crate) message_id: Box<str>,
    pub(crate) source: u32,
    /// The event's identifiers (type name, value) that the absorbed profile held.
    pub(crate) bridge: Vec<(u32, Box<str>)>,
}

/// A recorded unmerge (see [`super::unmerge`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UnmergeRecord {
    pub(crate) id: i64,
    pub(crate) workspace: u32,
    pub(crate) at_ms: i64,
    pub(crate) profile: ProfileId,
    pub(crate) kind: Box<str>,
    /// JSON text.
    pub(crate) detail: Box<str>,
    /// JSON text: the profiles (public ids) the history fell into, and the ids removed.
    pub(crate) result: Box<str>,
    /// The live profiles (internal ids) the history fell into.
    pub(crate) profiles: Vec<ProfileId>,
}

/// What happened to one of an event's identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdFate {
    /// Kept off the profile (a limit, a cap).
    Dropped,
    /// New to the profile.
    Added,
    /// The profile (or one it absorbed) held it already.
    Seen,
}

impl IdFate {
    pub(crate) fn code(self) -> u8 {
        match self {
            IdFate::Dropped => 0,
            IdFate::Added => 1,
            IdFate::Seen => 2,
        }
    }

    pub(crate) fn from_code(code: u8) -> Option<IdFate> {
        match code {
            0 => Some(IdFate::Dropped),
            1 => Some(IdFate::Added),
            2 => Some(IdFate::Seen),
            _ => None,
        }
    }
}

/// One event as applied to one profile (a group call gives one for the user and one for the
/// account): the unit of the change log and of a profile's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) workspace: u32,
    pub(crate) source: u32,
    pub(crate) collection: Collection,
    /// The event's sequence number in its source's log.
    pub(crate) seq: i64,
    /// Event time (the corrected `timestamp`), ms.
    pub(crate) at_ms: i64,
    /// When Sluice applied it, ms.
    pub(crate) now_ms: i64,
    pub(crate) message_id: String,
    /// The message type (`identify`, `track`, …), a name.
    pub(crate) message_type: u32,
    pub(crate) event: Option<String>,
    /// The profile the event joined.
    pub(crate) profile: ProfileId,
    /// The public id of the profile the event created (then `profile` is the new one).
    pub(crate) created: Option<String>,
    /// Profiles merged into `profile`, in the order they were.
    pub(crate) absorbed: Vec<ProfileId>,
    /// Every identifier the event carried for this collection (type name, value, fate).
    pub(crate) ids: Vec<(u32, String, IdFate)>,
    /// The event's traits for this collection (name, value as JSON text), as kept.
    pub(crate) traits: Vec<(u32, String)>,
    /// The profile of the other collection the same event joined (a group call).
    pub(crate) linked: Option<ProfileId>,
}

/// The whole state. See the module documentation.
pub(crate) struct State {
    hashers: [RandomState; 2],
    pub(crate) names: Names,
    pub(crate) profiles: ProfileMap<Profile>,
    index: HashMap<Key, ProfileId, BuildHasherDefault<Folded>>,
    public: HashMap<Box<str>, ProfileId>,
    pub(crate) merges: Vec<MergeRecord>,
    pub(crate) unmerges: Vec<UnmergeRecord>,
    /// The last profile number given out.
    pub(crate) last_profile: ProfileId,
    /// The last identifier order given out.
    pub(crate) last_order: u64,
    /// The last merge record number given out.
    pub(crate) last_merge: i64,
    /// The last unmerge record number given out.
    pub(crate) last_unmerge: i64,
    /// How far the state goes in each source: (workspace, source) → the last sequence number
    /// applied, from the change log's commit frames.
    pub(crate) cursors: HashMap<(Box<str>, Box<str>), i64>,
}

impl Default for State {
    fn default() -> State {
        State {
            hashers: [RandomState::new(), RandomState::new()],
            names: Names::default(),
            profiles: ProfileMap::default(),
            index: HashMap::default(),
            public: HashMap::new(),
            merges: Vec::new(),
            unmerges: Vec::new(),
            last_profile: 0,
            last_order: 0,
            last_merge: 0,
            last_unmerge: 0,
            cursors: HashMap::new(),
        }
    }
}

impl State {
    /// Records that the state holds a source's events up to `seq` (never moves back).
    pub(crate) fn save_cursor(&mut self, workspace: &str, source: &str, seq: i64) {
        match self.cursors.get_mut(&(workspace.into(), source.into())) {
            Some(held) => *held = (*held).max(seq),
            None => {
                self.cursors.insert((workspace.into(), source.into()), seq);
            }
        }
    }

    /// How far the state goes in a source (0: nothing yet).
    pub(crate) fn cursor(&self, workspace: &str, source: &str) -> i64 {
        self.cursors
            .get(&(workspace.into(), source.into()))
            .copied()
            .unwrap_or(0)
    }

    /// The key of an identifier: each part is followed by a 0xff byte (which UTF-8 text never
    /// contains), so part boundaries cannot shift.
    pub(crate) fn key(
        &self,
        workspace: &str,
        collection: Collection,
        kind: &str,
        value: &str,
    ) -> Key {
        let mut key = [0u64; 2];
        for (half, hasher) in key.iter_mut().zip(&self.hashers) {
            let mut state = hasher.build_hasher();
            for part in [workspace, collection.as_str(), kind, value] {
                state.write(part.as_bytes());
                state.write_u8(0xff);
            }
            *half = state.finish();
        }
        key
    }

    /// The live profile of a workspace's collection that holds `id`.
    pub(crate) fn find(
        &self,
        workspace: &str,
        collection: Collection,
        id: &Identifier,
    ) -> Option<ProfileId> {
        let key = self.key(workspace, collection, &id.kind, &id.value);
        self.index.get(&key).copied()
    }

    pub(crate) fn by_public_id(&self, public_id: &str) -> Option<ProfileId> {
        self.public.get(public_id).copied()
    }

    pub(crate) fn profile(&self, id: ProfileId) -> Option<&Profile> {
        self.profiles.get(&id)
    }

    /// The live profile `id` is now part of (itself when live).
    pub(crate) fn live_of(&self, id: ProfileId) -> Option<ProfileId> {
        let profile = self.profiles.get(&id)?;
        Some(profile.merged_into.unwrap_or(id))
    }

    /// The name's number, defining it if new; a new name must be written to the log before
    /// the entry that uses it ([`super::log::Appender::name`] does both).
    pub(crate) fn name(&mut self, text: &str) -> (u32, bool) {
        match self.names.get(text) {
            Some(id) => (id, false),
            None => (self.names.push(text), true),
        }
    }

    fn identifier(&self, workspace: u32, collection: Collection, kind: u32, value: &str) -> Key {
        self.key(
            self.names.text(workspace),
            collection,
            self.names.text(kind),
            value,
        )
    }

    /// Applies one entry: creates, merges, adds and touches identifiers as it records, merges
    /// its traits, appends it to the profile's history at `offset`, and links it to the other
    /// collection's profile when the entry is an account's. The live consumer and start-up
    /// both come here.
    pub(crate) fn apply_entry(&mut self, entry: &Entry, offset: u64) -> Result<(), StoreError> {
        let target = entry.profile;
        if let Some(public_id) = &entry.created {
            if target != self.last_profile + 1 || self.profiles.contains_key(&target) {
                return Err(StoreError::Corrupt(format!(
                    "change log creates profile {target} after {}",
                    self.last_profile
                )));
            }
            self.last_profile = target;
            self.create(entry, public_id);
        }
        if !self.profiles.get(&target).is_some_and(Profile::is_live) {
            return Err(StoreError::Corrupt(format!(
                "change log applies an event to profile {target}, which is not live"
            )));
        }
        for absorbed in &entry.absorbed {
            self.absorb(entry, target, *absorbed)?;
        }
        for (kind, value, fate) in &entry.ids {
            match fate {
                IdFate::Added => self.add_identifier(entry, target, *kind, value),
                IdFate::Seen => self.touch_identifier(target, *kind, value, entry.at_ms),
                IdFate::Dropped => {}
            }
        }
        self.merge_traits(
            target,
            &entry.traits,
            entry.at_ms,
            entry.source,
            entry.now_ms,
        );
        if let Some(profile) = self.profiles.get_mut(&target) {
            insert_sorted(&mut profile.history, offset);
        }
        if entry.collection == Collection::Accounts
            && let Some(user) = entry.linked
        {
            self.link(user, target, entry.at_ms, entry.source);
        }
        Ok(())
    }

    fn create(&mut self, entry: &Entry, public_id: &str) {
        let profile = Profile {
            workspace: entry.workspace,
            collection: entry.collection,
            public_id: public_id.into(),
            merged_into: None,
            merges: 0,
            family: Vec::new(),
            created_at_ms: entry.now_ms,
            updated_at_ms: entry.now_ms,
            first_message_id: entry.message_id.as_str().into(),
            first_source: entry.source,
            identifiers: Vec::new(),
            traits: Vec::new(),
            history: Vec::new(),
            links: Vec::new(),
        };
        self.public.insert(public_id.into(), entry.profile);
        self.profiles.insert(entry.profile, profile);
    }

    /// Moves everything of `absorbed` into `kept` and records the merge.
    fn absorb(
        &mut self,
        entry: &Entry,
        kept: ProfileId,
        absorbed: ProfileId,
    ) -> Result<(), StoreError> {
        let Some(gone) = self.profiles.get_mut(&absorbed).filter(|p| p.is_live()) else {
            return Err(StoreError::Corrupt(format!(
                "change log merges profile {absorbed}, which is not live"
            )));
        };
        gone.merged_into = Some(kept);
        let identifiers = std::mem::take(&mut gone.identifiers);
        let traits = std::mem::take(&mut gone.traits);
        let history = std::mem::take(&mut gone.history);
        let links = std::mem::take(&mut gone.links);
        let family = std::mem::take(&mut gone.family);
        let merges = gone.merges;
        let workspace = gone.workspace;
        let collection = gone.collection;

        let bridge: Vec<(u32, Box<str>)> = entry
            .ids
            .iter()
            .filter(|(kind, value, fate)| {
                *fate == IdFate::Seen
                    && identifiers
                        .iter()
                        .any(|id| id.kind == *kind && *id.value == **value)
            })
            .map(|(kind, value, _)| (*kind, value.as_str().into()))
            .collect();
        for id in &identifiers {
            let key = self.identifier(workspace, collection, id.kind, &id.value);
            self.index.insert(key, kept);
        }
        for member in &family {
            if let Some(profile) = self.profiles.get_mut(member) {
                profile.merged_into = Some(kept);
            }
        }
        for link in &links {
            self.repoint_link(link.other, absorbed, kept, link);
        }
        let kept_profile = self
            .profiles
            .get_mut(&kept)
            .ok_or_else(|| StoreError::Corrupt(format!("profile {kept} is missing")))?;
        kept_profile.merges += merges + 1;
        kept_profile.updated_at_ms = entry.now_ms;
        kept_profile.family.extend(family);
        kept_profile.family.push(absorbed);
        kept_profile.identifiers.extend(identifiers);
        kept_profile.identifiers.sort_by_key(|id| id.order);
        for held in traits {
            merge_trait(&mut kept_profile.traits, held, false);
        }
        kept_profile.history = merge_sorted(&kept_profile.history, &history);
        for link in links {
            merge_link(&mut kept_profile.links, link);
        }
        self.last_merge += 1;
        self.merges.push(MergeRecord {
            id: self.last_merge,
            workspace,
            collection,
            at_ms: entry.now_ms,
            kept,
            absorbed,
            message_id: entry.message_id.as_str().into(),
            source: entry.source,
            bridge,
        });
        Ok(())
    }

    /// The profile `other` links to `from`; now it links to `to` (merged with a link it may
    /// have to `to` already).
    fn repoint_link(
        &mut self,
        other: ProfileId,
        from: ProfileId,
        to: ProfileId,
        link: &LinkRecord,
    ) {
        let Some(profile) = self.profiles.get_mut(&other) else {
            return;
        };
        profile.links.retain(|held| held.other != from);
        merge_link(
            &mut profile.links,
            LinkRecord {
                other: to,
                ..link.clone()
            },
        );
    }

    fn add_identifier(&mut self, entry: &Entry, target: ProfileId, kind: u32, value: &str) {
        let key = self.identifier(entry.workspace, entry.collection, kind, value);
        self.last_order += 1;
        let record = IdRecord {
            order: self.last_order,
            kind,
            value: value.into(),
            source: entry.source,
            first_message_id: entry.message_id.as_str().into(),
            first_seen_ms: entry.at_ms,
            last_seen_ms: entry.at_ms,
        };
        self.index.insert(key, target);
        if let Some(profile) = self.profiles.get_mut(&target) {
            profile.identifiers.push(record);
        }
    }

    fn touch_identifier(&mut self, target: ProfileId, kind: u32, value: &str, at_ms: i64) {
        let Some(profile) = self.profiles.get_mut(&target) else {
            return;
        };
        for id in &mut profile.identifiers {
            if id.kind == kind && *id.value == *value {
                if id.last_seen_ms < at_ms - LAST_SEEN_PRECISION_MS {
                    id.last_seen_ms = at_ms;
                }
                return;
            }
        }
    }

    fn merge_traits(
        &mut self,
        target: ProfileId,
        traits: &[(u32, String)],
        at_ms: i64,
        source: u32,
        now_ms: i64,
    ) {
        let Some(profile) = self.profiles.get_mut(&target) else {
            return;
        };
        for (name, value) in traits {
            let record = TraitRecord {
                name: *name,
                value: value.as_str().into(),
                timestamp_ms: at_ms,
                source,
                updated_at_ms: now_ms,
            };
            merge_trait(&mut profile.traits, record, true);
        }
    }

    fn link(&mut self, user: ProfileId, account: ProfileId, at_ms: i64, source: u32) {
        let record = |other| LinkRecord {
            other,
            first_seen_ms: at_ms,
            last_seen_ms: at_ms,
            source,
        };
        if let Some(profile) = self.profiles.get_mut(&user) {
            merge_link(&mut profile.links, record(account));
        }
        if let Some(profile) = self.profiles.get_mut(&account) {
            merge_link(&mut profile.links, record(user));
        }
    }

    /// Each workspace's latest merge and unmerge record numbers (0: none).
    pub(crate) fn tails(&self) -> HashMap<String, (i64, i64)> {
        let mut tails: HashMap<String, (i64, i64)> = HashMap::new();
        for merge in &self.merges {
            let tail = tails
                .entry(self.names.text(merge.workspace).to_owned())
                .or_default();
            tail.0 = tail.0.max(merge.id);
        }
        for unmerge in &self.unmerges {
            let tail = tails
                .entry(self.names.text(unmerge.workspace).to_owned())
                .or_default();
            tail.1 = tail.1.max(unmerge.id);
        }
        tails
    }

    /// The profile and its family (every profile merged into it).
    pub(crate) fn with_family(&self, live: ProfileId) -> Vec<ProfileId> {
        let mut out = vec![live];
        if let Some(profile) = self.profiles.get(&live) {
            out.extend(profile.family.iter().copied());
        }
        out
    }

    /// Takes a live profile's identifiers away (out of the index too).
    pub(crate) fn take_identifiers(&mut self, id: ProfileId) -> Vec<IdRecord> {
        let Some(profile) = self.profiles.get_mut(&id) else {
            return Vec::new();
        };
        let taken = std::mem::take(&mut profile.identifiers);
        let (workspace, collection) = (profile.workspace, profile.collection);
        for held in &taken {
            let key = self.identifier(workspace, collection, held.kind, &held.value);
            if self.index.get(&key) == Some(&id) {
                self.index.remove(&key);
            }
        }
        taken
    }

    /// Gives a live profile an identifier (into the index too).
    pub(crate) fn give_identifier(&mut self, id: ProfileId, record: IdRecord) {
        let Some(profile) = self.profiles.get(&id) else {
            return;
        };
        let key = self.identifier(
            profile.workspace,
            profile.collection,
            record.kind,
            &record.value,
        );
        self.index.insert(key, id);
        if let Some(profile) = self.profiles.get_mut(&id) {
            profile.identifiers.push(record);
        }
    }

    /// Replaces a profile's links with `links`, on both sides.
    pub(crate) fn relink(&mut self, id: ProfileId, links: &[LinkRecord]) {
        let old = match self.profiles.get_mut(&id) {
            Some(profile) => std::mem::replace(&mut profile.links, links.to_vec()),
            None => return,
        };
        for link in &old {
            if let Some(other) = self.profiles.get_mut(&link.other) {
                other.links.retain(|held| held.other != id);
            }
        }
        for link in links {
            if let Some(other) = self.profiles.get_mut(&link.other) {
                merge_link(
                    &mut other.links,
                    LinkRecord {
                        other: id,
                        ..link.clone()
                    },
                );
            }
        }
    }

    /// Puts a profile back whole (snapshot loading): indexes its public id and, when live, its
    /// identifiers.
    pub(crate) fn restore(&mut self, id: ProfileId, profile: Profile) {
        if profile.is_live() {
            for held in &profile.identifiers {
                let key = self.identifier(
                    profile.workspace,
                    profile.collection,
                    held.kind,
                    &held.value,
                );
                self.index.insert(key, id);
            }
        }
        self.public.insert(profile.public_id.clone(), id);
        self.profiles.insert(id, profile);
    }

    /// Removes profiles entirely (erasure, retention): their identifiers leave the index,
    /// their public ids are forgotten, links to them go, and merge and unmerge records that
    /// name them are dropped.
    pub(crate) fn remove_profiles(&mut self, ids: &[ProfileId]) {
        for id in ids {
            let Some(profile) = self.profiles.remove(id) else {
                continue;
            };
            self.public.remove(&profile.public_id);
            if profile.is_live() {
                for held in &profile.identifiers {
                    let key = self.identifier(
                        profile.workspace,
                        profile.collection,
                        held.kind,
                        &held.value,
                    );
                    if self.index.get(&key) == Some(id) {
                        self.index.remove(&key);
                    }
                }
            }
            for link in &profile.links {
                if let Some(other) = self.profiles.get_mut(&link.other) {
                    other.links.retain(|held| held.other != *id);
                }
            }
        }
        self.merges
            .retain(|merge| !ids.contains(&merge.kept) && !ids.contains(&merge.absorbed));
        self.unmerges
            .retain(|unmerge| !ids.contains(&unmerge.profile));
    }
}

/// Keeps the newer of two values of a trait. `ties_win`: a value of the same event time
/// replaces the held one (a later event of the same time); a merged-in value must be newer.
fn merge_trait(traits: &mut Vec<TraitRecord>, new: TraitRecord, ties_win: bool) {
    for held in traits.iter_mut() {
        if held.name == new.name {
            let newer = new.timestamp_ms > held.timestamp_ms
                || (ties_win && new.timestamp_ms == held.timestamp_ms);
            if newer {
                *held = new;
            }
            return;
        }
    }
    traits.push(new);
}

fn merge_link(links: &mut Vec<LinkRecord>, new: LinkRecord) {
    for held in links.iter_mut() {
        if held.other == new.other {
            held.first_seen_ms = held.first_seen_ms.min(new.first_seen_ms);
            held.last_seen_ms = held.last_seen_ms.max(new.last_seen_ms);
            return;
        }
    }
    links.push(new);
}

/// Appends `offset`, keeping the list ascending (entries almost always arrive in order).
fn insert_sorted(list: &mut Vec<u64>, offset: u64) {
    match list.last() {
        Some(last) if *last > offset => {
            let at = list.partition_point(|held| *held < offset);
            list.insert(at, offset);
        }
        _ => list.push(offset),
    }
}

fn merge_sorted(left: &[u64], right: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() && j < right.len() {
        if left[i] <= right[j] {
            out.push(left[i]);
            i += 1;
        } else {
            out.push(right[j]);
            j += 1;
        }
    }
    out.extend_from_slice(&left[i..]);
    out.extend_from_slice(&right[j..]);
    out
}

/// The state as the resolver sees it, for one workspace.
pub(crate) struct Resolving<'s> {
    pub(crate) state: &'s State,
    pub(crate) workspace: &'s str,
}

impl Graph for Resolving<'_> {
    type Error = StoreError;

    fn find(
        &mut self,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<ProfileId>, StoreError> {
        Ok(self.state.find(self.workspace, collection, id))
    }

    fn view(&mut self, profile: ProfileId) -> Result<ProfileView, StoreError> {
        let Some(held) = self.state.profiles.get(&profile) else {
            return Ok(ProfileView {
                id: profile,
                merges: 0,
                identifiers: Vec::new(),
            });
        };
        let mut identifiers = Vec::with_capacity(held.identifiers.len());
        for id in &held.identifiers {
            identifiers.push(IdState {
                id: Identifier::new(self.state.names.text(id.kind), &*id.value),
                last_seen_ms: id.last_seen_ms,
            });
        }
        Ok(ProfileView {
            id: profile,
            merges: held.merges,
            identifiers,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashSet;
    use std::hash::BuildHasher;

    use super::*;

    #[test]
    fn profile_ids_hash_to_their_own_slot_with_varied_tags() {
        let hasher = BuildHasherDefault::<ProfileIdHasher>::default();
        let mut tags = HashSet::new();
        for id in 1..=10_000i64 {
            let hash = hasher.hash_one(id);
            // The low bits (the slot) are the id itself.
            assert_eq!(hash & (u64::MAX >> 7), id as u64);
            tags.insert(hash >> 57);
        }
        // Seven bits of tag: all 128 values turn up.
        assert_eq!(tags.len(), 128);
        let mut table: ProfileMap<i64> = ProfileMap::default();
        for id in (1..=10_000i64).rev() {
            table.insert(id, -id);
        }
        table.remove(&5_000);
        assert_eq!(table.len(), 9_999);
        assert_eq!(table.get(&4_999), Some(&-4_999));
        assert_eq!(table.get(&5_000), None);
        assert_eq!(table.get(&10_001), None);
    }
}
