//! Computed-trait and audience definitions in `state.db`: the JSON a user saved (already
//! checked by `sluice-audience`), by workspace, kind and key, and a per-workspace catalog
//! version bumped by every change so the audience consumer knows when to backfill.

use rusqlite::{OptionalExtension, params};

use crate::state::{StateStore, is_unique_violation, now_text};
use crate::{StoreError, WorkspaceId};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS definitions (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS catalog_versions (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces(id),
    version INTEGER NOT NULL
);
";

/// Whether a definition is a computed trait or an audience.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefinitionKind {
    Trait,
    Audience,
}

impl DefinitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DefinitionKind::Trait => "trait",
            DefinitionKind::Audience => "audience",
        }
    }

    fn parse(text: &str) -> DefinitionKind {
        if text == "audience" {
            DefinitionKind::Audience
        } else {
            DefinitionKind::Trait
        }
    }
}

/// A saved definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredDefinition {
    pub key: String,
    pub kind: DefinitionKind,
    pub name: String,
    /// The definition's JSON text.
    pub definition: String,
    pub created_at: String,
    pub updated_at: String,
}

impl StateStore {
    /// Every definition of the workspace, by key, and the catalog version.
    pub fn definitions(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<(Vec<StoredDefinition>, i64), StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT key, kind, name, definition, created_at, updated_at FROM definitions
             WHERE workspace_id = ?1 ORDER BY key",
        )?;
        let rows = statement.query_map([&workspace.0], |row| {
            Ok(StoredDefinition {
                key: row.get(0)?,
                kind: DefinitionKind::parse(&row.get::<_, String>(1)?),
                name: row.get(2)?,
                definition: row.get(3)?,
                created_at: row.get(4)?,
                updated_at: row.get(5)?,
            })
        })?;
        let mut definitions = Vec::new();
        for row in rows {
            definitions.push(row?);
        }
        let version = catalog_version(&connection, workspace)?;
        Ok((definitions, version))
    }

    /// The workspace's catalog version (0 before any definition).
    pub fn catalog_version(&self, workspace: &WorkspaceId) -> Result<i64, StoreError> {
        let connection = self.lock()?;
        catalog_version(&connection, workspace)
    }

    /// Saves a new definition (`AlreadyExists` when the key is taken) and bumps the version.
    pub fn create_definition(
        &self,
        workspace: &WorkspaceId,
        kind: DefinitionKind,
        key: &str,
        name: &str,
        definition: &str,
    ) -> Result<i64, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let now = now_text();
        let inserted = transaction.execute(
            "INSERT INTO definitions(workspace_id, key, kind, name, definition, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
            params![workspace.0, key, kind.as_str(), name, definition, now],
        );
        match inserted {
            Err(error) if is_unique_violation(&error) => {
                return Err(StoreError::AlreadyExists(format!("key {key:?}")));
            }
            other => {
                other?;
            }
        }
        let version = bump(&transaction, workspace)?;
        transaction.commit()?;
        Ok(version)
    }

    /// Replaces a definition of this kind (`NotFound` otherwise) and bumps the version.
    pub fn update_definition(
        &self,
        workspace: &WorkspaceId,
        kind: DefinitionKind,
        key: &str,
        name: &str,
        definition: &str,
    ) -> Result<i64, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let changed = transaction.execute(
            "UPDATE definitions SET name = ?4, definition = ?5, updated_at = ?6
             WHERE workspace_id = ?1 AND key = ?2 AND kind = ?3",
            params![
                workspace.0,
                key,
                kind.as_str(),
                name,
                definition,
                now_text()
            ],
        )?;
        if changed == 0 {
            return Err(not_found(kind, key));
        }
        let version = bump(&transaction, workspace)?;
        transaction.commit()?;
        Ok(version)
    }

    /// Deletes a definition of this kind (`NotFound` otherwise) and bumps the version.
    pub fn delete_definition(
        &self,
        workspace: &WorkspaceId,
        kind: DefinitionKind,
        key: &str,
    ) -> Result<i64, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let changed = transaction.execute(
            "DELETE FROM definitions WHERE workspace_id = ?1 AND key = ?2 AND kind = ?3",
            params![workspace.0, key, kind.as_str()],
        )?;
        if changed == 0 {
            return Err(not_found(kind, key));
        }
        let version = bump(&transaction, workspace)?;
        transaction.commit()?;
        Ok(version)
    }
}

fn not_found(kind: DefinitionKind, key: &str) -> StoreError {
    StoreError::NotFound {
        kind: match kind {
            DefinitionKind::Trait => "computed trait",
            DefinitionKind::Audience => "audience",
        },
        id: key.to_string(),
    }
}

fn catalog_version(
    connection: &rusqlite::Connection,
    workspace: &WorkspaceId,
) -> Result<i64, StoreError> {
    let version: Option<i64> = connection
        .query_row(
            "SELECT version FROM catalog_versions WHERE workspace_id = ?1",
            [&workspace.0],
            |row| row.get(0),
        )
        .optional()?;
    Ok(version.unwrap_or(0))
}

fn bump(connection: &rusqlite::Connection, workspace: &WorkspaceId) -> Result<i64, StoreError> {
    let version: i64 = connection.query_row(
        "INSERT INTO catalog_versions(workspace_id, version) VALUES (?1, 1)
         ON CONFLICT(workspace_id) DO UPDATE SET version = version + 1
         RETURNING version",
        [&workspace.0],
        |row| row.get(0),
    )?;
    Ok(version)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn definitions_are_kept_per_workspace_with_a_version_bumped_by_each_change() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(&dir.path().join("state.db")).unwrap();
        let (workspace, _) = state.ensure_default_workspace().unwrap();
        let other = state.create_workspace("other").unwrap();
        let ws = &workspace.id;
        assert_eq!(state.catalog_version(ws).unwrap(), 0);
        let v1 = state
            .create_definition(ws, DefinitionKind::Audience, "vip", "VIP", "{\"a\":1}")
            .unwrap();
        assert_eq!(v1, 1);
        assert!(matches!(
            state.create_definition(ws, DefinitionKind::Trait, "vip", "x", "{}"),
            Err(StoreError::AlreadyExists(_))
        ));
        // Another workspace may use the same key.
        state
            .create_definition(&other.id, DefinitionKind::Trait, "vip", "x", "{}")
            .unwrap();
        assert!(matches!(
            state.update_definition(ws, DefinitionKind::Trait, "vip", "x", "{}"),
            Err(StoreError::NotFound { .. })
        ));
        let v2 = state
            .update_definition(ws, DefinitionKind::Audience, "vip", "VIP!", "{\"a\":2}")
            .unwrap();
        assert_eq!(v2, 2);
        let (saved, version) = state.definitions(ws).unwrap();
        assert_eq!(version, 2);
        assert_eq!(saved.len(), 1);
        assert_eq!(
            (saved[0].name.as_str(), saved[0].definition.as_str()),
            ("VIP!", "{\"a\":2}")
        );
        assert_eq!(
            state
                .delete_definition(ws, DefinitionKind::Audience, "vip")
                .unwrap(),
            3
        );
        assert!(state.definitions(ws).unwrap().0.is_empty());
        assert_eq!(state.definitions(&other.id).unwrap().0.len(), 1);
    }
}
