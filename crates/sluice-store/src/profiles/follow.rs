//! What the audience consumer reads from the profile store: the merges recorded after a
//! point (so it can merge the states of merged profiles), a live profile by internal id, a
//! profile's traits as one JSON object, and its identifiers (for the events its syncs send).

use rusqlite::{OptionalExtension, params};
use serde_json::{Map, Value};
use sluice_identity::ProfileId;

use super::ProfileStore;
use super::read::{ExternalId, ProfileRef, external_ids_of};
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
        let connection = self.reader()?;
        let mut statement = connection.prepare_cached(
            "SELECT id, kept, absorbed FROM merges WHERE workspace_id = ?1 AND id > ?2
             ORDER BY id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![workspace.0, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok(MergeEvent {
                    id: row.get(0)?,
                    kept: row.get(1)?,
                    absorbed: row.get(2)?,
                })
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The id of the workspace's latest merge (0 before any).
    pub fn last_merge_id(&self, workspace: &WorkspaceId) -> Result<i64, StoreError> {
        let connection = self.reader()?;
        let id: Option<i64> = connection.query_row(
            "SELECT max(id) FROM merges WHERE workspace_id = ?1",
            [&workspace.0],
            |row| row.get(0),
        )?;
        Ok(id.unwrap_or(0))
    }

    /// The live profile a profile id is now (following merges), in the workspace.
    pub fn profile_by_id(
        &self,
        workspace: &WorkspaceId,
        id: ProfileId,
    ) -> Result<Option<ProfileRef>, StoreError> {
        let connection = self.reader()?;
        let mut at = id;
        // A merge chain is finite: a profile is merged into a live one, which may itself be
        // merged later; each hop goes to a profile created earlier or merged later.
        for _ in 0..1_000 {
            let row: Option<(Option<i64>, String, String)> = connection
                .prepare_cached(
                    "SELECT merged_into, public_id, collection FROM profiles
                     WHERE id = ?1 AND workspace_id = ?2",
                )?
                .query_row(params![at, workspace.0], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })
                .optional()?;
            let Some((merged_into, public_id, collection)) = row else {
                return Ok(None);
            };
            match merged_into {
                Some(next) => at = next,
                None => {
                    return Ok(Some(ProfileRef {
                        id: at,
                        public_id,
                        collection: sluice_identity::Collection::parse(&collection)
                            .unwrap_or(sluice_identity::Collection::Users),
                        workspace_id: workspace.clone(),
                    }));
                }
            }
        }
        Ok(None)
    }

    /// Every trait of a live or merged profile of the workspace, as one object.
    pub fn trait_map(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
    ) -> Result<Map<String, Value>, StoreError> {
        let connection = self.reader()?;
        let mut statement = connection.prepare_cached(
            "SELECT t.name, t.value FROM traits t JOIN profiles p ON p.id = t.profile_id
             WHERE t.profile_id = ?1 AND p.workspace_id = ?2",
        )?;
        let mut rows = statement.query(params![profile, workspace.0])?;
        let mut traits = Map::new();
        while let Some(row) = rows.next()? {
            let name: String = row.get(0)?;
            let value: String = row.get(1)?;
            traits.insert(name, serde_json::from_str(&value).unwrap_or(Value::Null));
        }
        Ok(traits)
    }

    /// The identifiers of a profile of the workspace, oldest first (none for a profile of
    /// another workspace).
    pub fn identifiers_by_id(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
    ) -> Result<Vec<ExternalId>, StoreError> {
        let connection = self.reader()?;
        let owned: Option<i64> = connection
            .query_row(
                "SELECT id FROM profiles WHERE id = ?1 AND workspace_id = ?2",
                params![profile, workspace.0],
                |row| row.get(0),
            )
            .optional()?;
        if owned.is_none() {
            return Ok(Vec::new());
        }
        external_ids_of(&connection, profile)
    }

    /// The workspace's unmerges recorded after unmerge `after`, oldest first, at most `limit`.
    pub fn unmerges_after(
        &self,
        workspace: &WorkspaceId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<UnmergeEvent>, StoreError> {
        let connection = self.reader()?;
        let mut statement = connection.prepare_cached(
            "SELECT id, result FROM unmerges WHERE workspace_id = ?1 AND id > ?2
             ORDER BY id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![workspace.0, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)),
        )?;
        let mut found = Vec::new();
        for row in rows {
            found.push(row?);
        }
        let mut by_public = connection
            .prepare_cached("SELECT id FROM profiles WHERE public_id = ?1 AND workspace_id = ?2")?;
        let mut out = Vec::with_capacity(found.len());
        for (id, result) in found {
            let result: Value = serde_json::from_str(&result).unwrap_or(Value::Null);
            let mut profiles = Vec::new();
            for public in result["profiles"].as_array().into_iter().flatten() {
                let Some(public) = public.as_str() else {
                    continue;
                };
                let internal: Option<i64> = by_public
                    .query_row(params![public, workspace.0], |row| row.get(0))
                    .optional()?;
                profiles.extend(internal);
            }
            out.push(UnmergeEvent { id, profiles });
        }
        Ok(out)
    }

    /// The id of the workspace's latest unmerge (0 before any).
    pub fn last_unmerge_id(&self, workspace: &WorkspaceId) -> Result<i64, StoreError> {
        let connection = self.reader()?;
        let id: Option<i64> = connection.query_row(
            "SELECT max(id) FROM unmerges WHERE workspace_id = ?1",
            [&workspace.0],
            |row| row.get(0),
        )?;
        Ok(id.unwrap_or(0))
    }

    /// Where a profile's recorded events are in the log: `(source, seq)`, by timestamp.
    pub fn history_positions(
        &self,
        workspace: &WorkspaceId,
        profile: ProfileId,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let connection = self.reader()?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT source_id, seq FROM profile_events WHERE id IN ({}) AND workspace_id = ?2
             ORDER BY timestamp, seq",
            super::history::rows_of("?1")
        ))?;
        let rows = statement.query_map(params![profile, workspace.0], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}
