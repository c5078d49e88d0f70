//! The identity graph's hot part: which profile holds an identifier.
//!
//! The `identifiers` table holds one row per identifier of a live profile (type, value,
//! profile, where and when it was first and last seen), appended in row order and indexed
//! only by profile. Lookups by identifier never touch the file: [`IdIndex`] keeps every
//! identifier of the file in memory, keyed by a 128-bit hash of (workspace, collection, type,
//! value) under two random SipHash keys chosen when the store opens. The hash is never
//! written, so it may change between runs; the index is rebuilt from the table the first time
//! it is needed, and again whenever another process changed the file.
//!
//! Cost: an entry is 40 bytes (key 16, profile 8, row 8, last seen 8) in a hash table at most
//! 7/8 full, so 46–92 bytes per identifier (about 60 on average): 60 MB for a million.
//!
//! Invariant: two different identifiers never share a key. Keys are 128 random-keyed bits; a
//! collision is out of reach (about 2^-64 for billions of identifiers), and nobody can aim at
//! another person's key without knowing the keys, which never leave the process.
//!
//! Invariant: the writer inserts an identifier only after finding it absent in the same
//! transaction, so each (workspace, collection, type, value) has at most one row.
//!
//! # Keeping the index equal to the table
//! Every transaction that changes `identifiers` goes through [`super::ProfileStore::write`]: its
//! changes are collected in an [`IdChanges`] overlay (which the transaction's own lookups see
//! first), applied to the shared index only after the commit, and dropped if anything fails.
//! The same transaction increments `meta.graph_version`; the index remembers the version it
//! reflects, so a version it does not know (another process changed the file: a CLI unmerge
//! or erasure) makes it reload before it is trusted again.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use rusqlite::{Connection, params};
use sluice_identity::{Collection, Identifier, ProfileId};

use crate::StoreError;

/// An identifier's key in the index.
pub(crate) type Key = [u64; 2];

/// What the index holds of an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) profile: ProfileId,
    /// The identifier's row in `identifiers`.
    pub(crate) row: i64,
    pub(crate) last_seen_ms: i64,
}

/// An identifier found, with its key (to record changes to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub(crate) key: Key,
    pub(crate) row: i64,
    pub(crate) profile: ProfileId,
    pub(crate) last_seen_ms: i64,
}

/// Where an identifier was first seen.
pub(crate) struct Origin<'a> {
    pub(crate) source_id: &'a str,
    pub(crate) message_id: &'a str,
    pub(crate) first_seen_ms: i64,
    pub(crate) last_seen_ms: i64,
}

/// Keys are uniformly random already: the table hashes a key by folding its bytes (the
/// exclusive or of its two halves), not by hashing them again.
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

type Map = HashMap<Key, Entry, BuildHasherDefault<Folded>>;

/// Every identifier of the file, in memory. See the module documentation.
pub(crate) struct IdIndex {
    hashers: [RandomState; 2],
    state: RwLock<IndexState>,
}

pub(crate) struct IndexState {
    map: Map,
    /// The `meta.graph_version` the map reflects; `None` before the first load.
    version: Option<i64>,
    /// The version a commit under way will write (its changes are applied right after).
    committing: Option<i64>,
}

impl IndexState {
    pub(crate) fn get(&self, key: &Key) -> Option<Entry> {
        self.map.get(key).copied()
    }
}

impl IdIndex {
    pub(crate) fn new() -> IdIndex {
        IdIndex {
            hashers: [RandomState::new(), RandomState::new()],
            state: RwLock::new(IndexState {
                map: Map::default(),
                version: None,
                committing: None,
            }),
        }
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

    pub(crate) fn id_key(&self, workspace: &str, collection: Collection, id: &Identifier) -> Key {
        self.key(workspace, collection, &id.kind, &id.value)
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, IndexState>, StoreError> {
        self.state
            .read()
            .map_err(|_| StoreError::CommitFailed("identifier index lock poisoned".into()))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, IndexState>, StoreError> {
        self.state
            .write()
            .map_err(|_| StoreError::CommitFailed("identifier index lock poisoned".into()))
    }

    /// The index if it reflects `version` (the file's, as a reader's connection sees it);
    /// `None`: it must be refreshed first.
    pub(crate) fn current(
        &self,
        version: i64,
    ) -> Result<Option<RwLockReadGuard<'_, IndexState>>, StoreError> {
        let state = self.read()?;
        if state.version == Some(version) || state.committing == Some(version) {
            return Ok(Some(state));
        }
        Ok(None)
    }

    /// Reloads the index from the table unless it reflects the file already. Called by the
    /// writer (its mutex held) inside a transaction, or with no transaction under way.
    pub(crate) fn refresh(&self, connection: &Connection) -> Result<i64, StoreError> {
        let version = graph_version(connection)?;
        if self.read()?.version == Some(version) {
            return Ok(version);
        }
        let mut map = Map::default();
        let mut statement = connection.prepare(
            "SELECT id, workspace_id, collection, kind, value, profile_id, last_seen FROM identifiers",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let key = self.row_key(row)?;
            map.insert(
                key,
                Entry {
                    row: row.get(0)?,
                    profile: row.get(5)?,
                    last_seen_ms: row.get(6)?,
                },
            );
        }
        map.shrink_to_fit();
        let mut state = self.write()?;
        state.map = map;
        state.version = Some(version);
        state.committing = None;
        Ok(version)
    }

    /// The key of a row whose columns 1 to 4 are (workspace_id, collection, kind, value).
    fn row_key(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<Key> {
        let collection = Collection::parse(row.get_ref(2)?.as_str()?).unwrap_or(Collection::Users);
        Ok(self.key(
            row.get_ref(1)?.as_str()?,
            collection,
            row.get_ref(3)?.as_str()?,
            row.get_ref(4)?.as_str()?,
        ))
    }

    /// Says that a commit writing `version` is about to happen.
    pub(crate) fn committing(&self, version: Option<i64>) -> Result<(), StoreError> {
        self.write()?.committing = version;
        Ok(())
    }

    /// Applies a committed transaction's changes.
    pub(crate) fn apply(&self, changes: IdChanges, version: i64) -> Result<(), StoreError> {
        let mut state = self.write()?;
        for (key, change) in changes.changes {
            match change {
                Some(entry) => state.map.insert(key, entry),
                None => state.map.remove(&key),
            };
        }
        state.version = Some(version);
        state.committing = None;
        Ok(())
    }

    /// Forgets everything (after a failed commit): the next use reloads.
    pub(crate) fn invalidate(&self) {
        if let Ok(mut state) = self.state.write() {
            state.version = None;
            state.committing = None;
            state.map = Map::default();
        }
    }

    /// Identifiers held, for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.read().map(|s| s.map.len()).unwrap_or(0)
    }

    /// A copy of the map, for tests.
    #[cfg(test)]
    pub(crate) fn snapshot(&self) -> HashMap<Key, Entry> {
        self.state
            .read()
            .map(|s| s.map.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default()
    }
}

/// `meta.graph_version`: bumped by every transaction that changes identifiers.
pub(crate) fn graph_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection
        .prepare_cached("SELECT value FROM meta WHERE name = 'graph_version'")?
        .query_row([], |row| row.get(0))
}

pub(crate) fn bump_graph_version(connection: &Connection) -> rusqlite::Result<i64> {
    connection
        .prepare_cached(
            "UPDATE meta SET value = value + 1 WHERE name = 'graph_version' RETURNING value",
        )?
        .query_row([], |row| row.get(0))
}

/// One write transaction's changes to the identifiers, seen by its own lookups first.
pub(crate) struct IdChanges<'a> {
    index: &'a IdIndex,
    changes: HashMap<Key, Option<Entry>, BuildHasherDefault<Folded>>,
}

impl<'a> IdChanges<'a> {
    pub(crate) fn new(index: &'a IdIndex) -> IdChanges<'a> {
        IdChanges {
            index,
            changes: HashMap::default(),
        }
    }

    /// The row holding `id`, if a profile has it.
    pub(crate) fn find(
        &self,
        workspace: &str,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<Found>, StoreError> {
        let key = self.index.id_key(workspace, collection, id);
        let entry = match self.changes.get(&key) {
            Some(change) => *change,
            None => self.index.read()?.get(&key),
        };
        Ok(entry.map(|entry| Found {
            key,
            row: entry.row,
            profile: entry.profile,
            last_seen_ms: entry.last_seen_ms,
        }))
    }

    /// Adds `id` to `profile` (see the module invariant: it must be absent).
    pub(crate) fn insert(
        &mut self,
        connection: &Connection,
        workspace: &str,
        collection: Collection,
        id: &Identifier,
        profile: ProfileId,
        origin: &Origin<'_>,
    ) -> Result<(), StoreError> {
        connection
            .prepare_cached(
                "INSERT INTO identifiers(workspace_id, collection, kind, value, profile_id, source_id,
                     first_message_id, first_seen, last_seen)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                workspace,
                collection.as_str(),
                id.kind,
                id.value,
                profile,
                origin.source_id,
                origin.message_id,
                origin.first_seen_ms,
                origin.last_seen_ms
            ])?;
        let entry = Entry {
            profile,
            row: connection.last_insert_rowid(),
            last_seen_ms: origin.last_seen_ms,
        };
        self.changes
            .insert(self.index.id_key(workspace, collection, id), Some(entry));
        Ok(())
    }

    /// Moves `found`'s `last_seen` to `at_ms` (its profile may have changed since it was
    /// found: a merge in between).
    pub(crate) fn touch(
        &mut self,
        connection: &Connection,
        found: &Found,
        at_ms: i64,
    ) -> Result<(), StoreError> {
        connection
            .prepare_cached("UPDATE identifiers SET last_seen = ?2 WHERE id = ?1")?
            .execute(params![found.row, at_ms])?;
        let current = match self.changes.get(&found.key) {
            Some(change) => *change,
            None => self.index.read()?.get(&found.key),
        };
        if let Some(mut entry) = current {
            entry.last_seen_ms = at_ms;
            self.changes.insert(found.key, Some(entry));
        }
        Ok(())
    }

    /// Moves every identifier of `from` to `to`.
    pub(crate) fn repoint(
        &mut self,
        connection: &Connection,
        from: ProfileId,
        to: ProfileId,
    ) -> Result<(), StoreError> {
        // Read, then update: a RETURNING clause would cost a temporary table per statement.
        for (key, row, last_seen_ms) in self.rows_of(connection, from)? {
            self.changes.insert(
                key,
                Some(Entry {
                    profile: to,
                    row,
                    last_seen_ms,
                }),
            );
        }
        connection
            .prepare_cached("UPDATE identifiers SET profile_id = ?1 WHERE profile_id = ?2")?
            .execute(params![to, from])?;
        Ok(())
    }

    /// Each identifier of `profile` as the file holds it: key, row, last seen.
    fn rows_of(
        &self,
        connection: &Connection,
        profile: ProfileId,
    ) -> Result<Vec<(Key, i64, i64)>, StoreError> {
        let mut statement = connection.prepare_cached(
            "SELECT id, workspace_id, collection, kind, value, last_seen FROM identifiers
             WHERE profile_id = ?1",
        )?;
        let mut rows = statement.query([profile])?;
        let mut found = Vec::new();
        while let Some(row) = rows.next()? {
            found.push(self.row_key(row)?);
        }
        Ok(found)
    }

    /// Deletes every identifier of `profile`; returns how many.
    pub(crate) fn delete_profile(
        &mut self,
        connection: &Connection,
        profile: ProfileId,
    ) -> Result<u64, StoreError> {
        for (key, _, _) in self.rows_of(connection, profile)? {
            self.changes.insert(key, None);
        }
        let removed = connection
            .prepare_cached("DELETE FROM identifiers WHERE profile_id = ?1")?
            .execute([profile])?;
        Ok(removed as u64)
    }

    /// The key, row and last seen of a row of (id, workspace_id, collection, kind, value,
    /// last_seen).
    fn row_key(&self, row: &rusqlite::Row<'_>) -> rusqlite::Result<(Key, i64, i64)> {
        Ok((self.index.row_key(row)?, row.get(0)?, row.get(5)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_depends_on_every_part_and_on_where_parts_end() {
        let index = IdIndex::new();
        let id = Identifier::new("email", "a@x.io");
        let base = index.id_key("ws_1", Collection::Users, &id);
        assert_eq!(base, index.id_key("ws_1", Collection::Users, &id), "stable");
        assert_ne!(base, index.id_key("ws_2", Collection::Users, &id));
        assert_ne!(base, index.id_key("ws_1", Collection::Accounts, &id));
        assert_ne!(
            base,
            index.id_key(
                "ws_1",
                Collection::Users,
                &Identifier::new("email", "b@x.io")
            )
        );
        assert_ne!(
            index.id_key("ws_1", Collection::Users, &Identifier::new("ab", "c")),
            index.id_key("ws_1", Collection::Users, &Identifier::new("a", "bc"))
        );
        assert_ne!(base[0], base[1], "two independent halves");
        // Another index (another process) draws other keys: nothing may store them.
        assert_ne!(base, IdIndex::new().id_key("ws_1", Collection::Users, &id));
    }

    #[test]
    fn the_table_hashes_keys_by_folding_their_halves() {
        let build = BuildHasherDefault::<Folded>::default();
        assert_eq!(build.hash_one([7u64, 9u64]), 7 ^ 9);
    }
}
