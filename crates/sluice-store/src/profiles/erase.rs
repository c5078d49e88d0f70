//! The erase/find contract for profiles (find everything held about a person, and erase it)
//! and retention (forget a source's old history, and the profiles left with none).
//!
//! A person is found through any of their identifiers (users collection); everything of the
//! profiles holding them goes: the profiles (and those merged into them), identifiers, traits,
//! history, merge and unmerge records, links. `secure_delete` overwrites the rows in the file
//! and the WAL is checkpointed and truncated afterwards, so no old page keeps them.
//!
//! Retention removes a source's history entries applied before a time; a profile whose whole
//! history is gone is erased like a person (nothing recent vouches for it any more). The
//! children policy's sweep finds profiles whose traits show an age under its threshold.

use std::collections::BTreeSet;

use rusqlite::Connection;
use sluice_identity::{Collection, Identifier, ProfileId};
use sluice_privacy::children::trait_shows_child;

use super::identifiers::IdChanges;
use super::{ProfileStore, history};
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

impl ProfileStore {
    /// Finds the person holding any of `ids`.
    pub fn find_person(
        &self,
        workspace: &WorkspaceId,
        ids: &[Identifier],
    ) -> Result<PersonFound, StoreError> {
        let connection = self.reader()?;
        let mut profiles = Vec::new();
        for id in ids {
            let owner = self.find_id(&connection, &workspace.0, Collection::Users, id)?;
            if let Some(owner) = owner.map(|found| found.profile)
                && !profiles.contains(&owner)
            {
                profiles.push(owner);
            }
        }
        let mut found = PersonFound::default();
        let mut identifiers = BTreeSet::new();
        for profile in &profiles {
            found.profiles.push(connection.query_row(
                "SELECT public_id FROM profiles WHERE id = ?1",
                [*profile],
                |row| row.get(0),
            )?);
            let mut statement = connection
                .prepare_cached("SELECT kind, value FROM identifiers WHERE profile_id = ?1")?;
            for id in statement.query_map([*profile], |row| {
                Ok(Identifier::new(
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                ))
            })? {
                identifiers.insert(id?);
            }
            found.events += connection.query_row(
                &format!("SELECT count(*) FROM ({})", history::rows_of("?1")),
                [*profile],
                |row| row.get::<_, i64>(0),
            )? as u64;
        }
        found.identifiers = identifiers.into_iter().collect();
        found.profile_ids = with_merged(&connection, &profiles)?;
        Ok(found)
    }

    /// Erases the person holding any of `ids`; returns the rows removed.
    pub fn erase_person(
        &self,
        workspace: &WorkspaceId,
        ids: &[Identifier],
    ) -> Result<u64, StoreError> {
        let removed = self.write(|transaction, changes| {
            let live = live_profiles(changes, &workspace.0, ids)?;
            erase_profiles(transaction, changes, &live)
        })?;
        if removed > 0 {
            self.checkpoint()?;
        }
        Ok(removed)
    }

    /// Retention: removes the source's history entries applied before `applied_before_ms`,
    /// then erases every profile left without history.
    pub fn expire(
        &self,
        workspace: &WorkspaceId,
        source_id: &str,
        applied_before_ms: i64,
    ) -> Result<Expired, StoreError> {
        let expired = self.write(|transaction, changes| {
            expire_in(
                transaction,
                changes,
                workspace,
                source_id,
                applied_before_ms,
            )
        })?;
        if expired.events > 0 {
            self.checkpoint()?;
        }
        Ok(expired)
    }

    /// Folds the WAL into the file and truncates it, so deleted rows leave no old page.
    fn checkpoint(&self) -> Result<(), StoreError> {
        let connection = self.writer()?;
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// [`ProfileStore::expire`] inside its transaction.
fn expire_in(
    transaction: &Connection,
    changes: &mut IdChanges<'_>,
    workspace: &WorkspaceId,
    source_id: &str,
    applied_before_ms: i64,
) -> Result<Expired, StoreError> {
    let mut touched: Vec<ProfileId> = Vec::new();
    {
        let mut statement = transaction.prepare_cached(
            "SELECT DISTINCT coalesce(p.merged_into, p.id) FROM profile_events e
             JOIN profiles p ON p.id = e.profile_id
             WHERE e.workspace_id = ?1 AND e.source_id = ?2 AND e.applied_at < ?3",
        )?;
        let rows = statement.query_map(
            rusqlite::params![workspace.0, source_id, applied_before_ms],
            |row| row.get::<_, i64>(0),
        )?;
        for row in rows {
            touched.push(row?);
        }
    }
    let mut deleted: Vec<(ProfileId, i64)> = Vec::new();
    {
        let mut statement = transaction.prepare(
            "DELETE FROM profile_events WHERE workspace_id = ?1 AND source_id = ?2 AND applied_at < ?3
             RETURNING profile_id, id",
        )?;
        let mut rows =
            statement.query(rusqlite::params![workspace.0, source_id, applied_before_ms])?;
        while let Some(row) = rows.next()? {
            deleted.push((row.get(0)?, row.get(1)?));
        }
    }
    for (profile, row) in &deleted {
        history::forget_row(transaction, *profile, *row)?;
    }
    let events = deleted.len() as u64;
    let mut emptied = Vec::new();
    for profile in touched {
        let left: bool = transaction.query_row(
            &format!("SELECT EXISTS({})", history::rows_of("?1")),
            [profile],
            |row| row.get(0),
        )?;
        if !left {
            emptied.push(profile);
        }
    }
    let profiles = emptied.len() as u64;
    erase_profiles(transaction, changes, &emptied)?;
    Ok(Expired { events, profiles })
}

impl ProfileStore {
    /// One identifier (the user id when there is one) of each live user profile whose
    /// traits show an age under `minimum_age` on `today` (the children policy's sweep).
    pub fn children(
        &self,
        workspace: &WorkspaceId,
        minimum_age: u32,
        today: time::Date,
    ) -> Result<Vec<Identifier>, StoreError> {
        let connection = self.reader()?;
        // Only traits whose name could be an age or a birth date are read (names folded as
        // `sluice_privacy::children` folds them).
        let mut statement = connection.prepare(
            "SELECT t.profile_id, t.name, t.value FROM traits t JOIN profiles p ON p.id = t.profile_id
             WHERE p.workspace_id = ?1 AND p.merged_into IS NULL AND p.collection = 'users'
             AND lower(replace(replace(replace(t.name, '_', ''), '-', ''), ' ', ''))
                 IN ('age', 'birthday', 'birthdate', 'dateofbirth', 'dob')",
        )?;
        let rows = statement.query_map([&workspace.0], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut found: Vec<ProfileId> = Vec::new();
        for row in rows {
            let (profile, name, text) = row?;
            let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            if trait_shows_child(&name, &value, minimum_age, today) && !found.contains(&profile) {
                found.push(profile);
            }
        }
        let mut identifiers = Vec::with_capacity(found.len());
        for profile in found {
            let identifier = connection.query_row(
                "SELECT kind, value FROM identifiers WHERE profile_id = ?1
                 ORDER BY kind = 'user_id' DESC, id LIMIT 1",
                [profile],
                |row| {
                    Ok(Identifier::new(
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                    ))
                },
            );
            match identifier {
                Ok(identifier) => identifiers.push(identifier),
                Err(rusqlite::Error::QueryReturnedNoRows) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(identifiers)
    }
}

/// What [`ProfileStore::expire`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// History entries.
    pub events: u64,
    /// Profiles left without history, erased.
    pub profiles: u64,
}

/// Erases live profiles and every profile merged into them; returns the rows removed.
/// The live profiles and every profile merged into them, at any depth.
fn with_merged(connection: &Connection, live: &[ProfileId]) -> Result<Vec<ProfileId>, StoreError> {
    let mut all: Vec<ProfileId> = live.to_vec();
    let mut next = 0;
    let mut statement =
        connection.prepare_cached("SELECT id FROM profiles WHERE merged_into = ?1")?;
    while next < all.len() {
        let profile = all[next];
        next += 1;
        for id in statement.query_map([profile], |row| row.get::<_, i64>(0))? {
            let id = id?;
            if !all.contains(&id) {
                all.push(id);
            }
        }
    }
    Ok(all)
}

fn erase_profiles(
    connection: &Connection,
    changes: &mut IdChanges<'_>,
    live: &[ProfileId],
) -> Result<u64, StoreError> {
    let all = with_merged(connection, live)?;
    let mut removed = 0u64;
    for profile in &all {
        removed += changes.delete_profile(connection, *profile)?;
        removed += history::delete_profile(connection, *profile)?;
        for sql in [
            "DELETE FROM traits WHERE profile_id = ?1",
            "DELETE FROM merges WHERE kept = ?1 OR absorbed = ?1",
            "DELETE FROM unmerges WHERE profile_id = ?1",
            "DELETE FROM links WHERE user_profile = ?1 OR account_profile = ?1",
            "DELETE FROM profiles WHERE id = ?1",
        ] {
            removed += connection.execute(sql, [*profile])? as u64;
        }
    }
    Ok(removed)
}

fn live_profiles(
    changes: &IdChanges<'_>,
    workspace: &str,
    ids: &[Identifier],
) -> Result<Vec<ProfileId>, StoreError> {
    let mut profiles = Vec::new();
    for id in ids {
        let owner = changes.find(workspace, Collection::Users, id)?;
        if let Some(owner) = owner.map(|found| found.profile)
            && !profiles.contains(&owner)
        {
            profiles.push(owner);
        }
    }
    Ok(profiles)
}
