//! The erase/find contract for profiles: find everything held about a person, and erase it.
//!
//! A person is found through any of their identifiers (users collection); everything of the
//! profiles holding them goes: the profiles (and those merged into them), identifiers, traits,
//! history, merge and unmerge records, links. `secure_delete` overwrites the rows in the file
//! and the WAL is checkpointed and truncated afterwards, so no old page keeps them.

use std::collections::BTreeSet;

use rusqlite::Connection;
use sluice_identity::{Collection, Identifier, ProfileId};

use super::{ProfileStore, identifiers};
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
}

impl ProfileStore {
    /// Finds the person holding any of `ids`.
    pub fn find_person(
        &self,
        workspace: &WorkspaceId,
        ids: &[Identifier],
    ) -> Result<PersonFound, StoreError> {
        let connection = self.reader()?;
        let profiles = live_profiles(&connection, &workspace.0, ids)?;
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
                "SELECT count(*) FROM profile_events WHERE profile_id = ?1",
                [*profile],
                |row| row.get::<_, i64>(0),
            )? as u64;
        }
        found.identifiers = identifiers.into_iter().collect();
        Ok(found)
    }

    /// Erases the person holding any of `ids`; returns the rows removed.
    pub fn erase_person(
        &self,
        workspace: &WorkspaceId,
        ids: &[Identifier],
    ) -> Result<u64, StoreError> {
        let mut connection = self.writer()?;
        let transaction = connection.transaction()?;
        let live = live_profiles(&transaction, &workspace.0, ids)?;
        let mut all: Vec<ProfileId> = Vec::new();
        for profile in live {
            all.push(profile);
            let mut statement =
                transaction.prepare_cached("SELECT id FROM profiles WHERE merged_into = ?1")?;
            for id in statement.query_map([profile], |row| row.get::<_, i64>(0))? {
                all.push(id?);
            }
        }
        let mut removed = 0u64;
        for profile in &all {
            for sql in [
                "DELETE FROM identifiers WHERE profile_id = ?1",
                "DELETE FROM traits WHERE profile_id = ?1",
                "DELETE FROM profile_events WHERE profile_id = ?1",
                "DELETE FROM merges WHERE kept = ?1 OR absorbed = ?1",
                "DELETE FROM unmerges WHERE profile_id = ?1",
                "DELETE FROM links WHERE user_profile = ?1",
                "DELETE FROM profiles WHERE id = ?1",
            ] {
                removed += transaction.execute(sql, [*profile])? as u64;
            }
        }
        transaction.commit()?;
        if removed > 0 {
            connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        Ok(removed)
    }
}

fn live_profiles(
    connection: &Connection,
    workspace: &str,
    ids: &[Identifier],
) -> Result<Vec<ProfileId>, StoreError> {
    let mut profiles = Vec::new();
    for id in ids {
        let owner = identifiers::find(connection, workspace, Collection::Users, id)?;
        if let Some(owner) = owner.map(|found| found.profile)
            && !profiles.contains(&owner)
        {
            profiles.push(owner);
        }
    }
    Ok(profiles)
}
