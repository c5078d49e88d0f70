//! Audience and computed-trait syncs in `state.db`: which destination receives which
//! audience (or computed trait), how (`identify`, `track` or an ad platform's `list`), and for
//! ad platforms the platform's audience id.
//!
//! Each sync has its own output source id (`sync_<id>`): the audience consumer appends the
//! membership events it generates to the log under that id, and the destination's runner
//! reads it like any source. Output sources are not rows of `sources`: no write key reaches
//! them, and the consumers of collected events (profiles, inventory, audiences) never see
//! them.
//!
//! A sync belongs to its destination: deleting the destination deletes it.

use rusqlite::{OptionalExtension, params};

use crate::state::{StateStore, is_unique_violation, now_text, random_id};
use crate::{StoreError, WorkspaceId};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS syncs (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    key TEXT NOT NULL,
    class TEXT NOT NULL,
    destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    external_audience_id TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (workspace_id, key, destination_id)
);
CREATE INDEX IF NOT EXISTS syncs_by_destination ON syncs(destination_id);
";

/// How a sync sends a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// `identify` with the key as a trait.
    Identify,
    /// `track` (`Audience Entered` / `Audience Exited`, `Trait Computed`).
    Track,
    /// An ad platform's audience list (adds and removals).
    List,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Identify => "identify",
            SyncMode::Track => "track",
            SyncMode::List => "list",
        }
    }

    pub fn parse(text: &str) -> Option<SyncMode> {
        match text {
            "identify" => Some(SyncMode::Identify),
            "track" => Some(SyncMode::Track),
            "list" => Some(SyncMode::List),
            _ => None,
        }
    }
}

/// What a sync sends: an audience's memberships or a computed trait's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncClass {
    Audience,
    Trait,
}

impl SyncClass {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncClass::Audience => "audience",
            SyncClass::Trait => "trait",
        }
    }
}

/// One sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudienceSync {
    pub id: String,
    pub workspace_id: WorkspaceId,
    /// The audience's or computed trait's key.
    pub key: String,
    pub class: SyncClass,
    pub destination_id: String,
    pub mode: SyncMode,
    /// The ad platform's audience id (`list` mode).
    pub external_audience_id: Option<String>,
    pub created_at: String,
}

impl AudienceSync {
    /// The source id its generated events are logged under.
    pub fn source_id(&self) -> String {
        output_source(&self.id)
    }
}

/// The output source id of sync `id`.
pub fn output_source(id: &str) -> String {
    format!("sync_{id}")
}

/// A sync to create.
#[derive(Clone, Debug)]
pub struct NewSync<'a> {
    pub key: &'a str,
    pub class: SyncClass,
    pub destination_id: &'a str,
    pub mode: SyncMode,
    pub external_audience_id: Option<&'a str>,
}

const COLUMNS: &str =
    "id, workspace_id, key, class, destination_id, mode, external_audience_id, created_at";

fn read_sync(row: &rusqlite::Row<'_>) -> rusqlite::Result<AudienceSync> {
    let class: String = row.get(3)?;
    let mode: String = row.get(5)?;
    Ok(AudienceSync {
        id: row.get(0)?,
        workspace_id: WorkspaceId(row.get(1)?),
        key: row.get(2)?,
        class: if class == "trait" {
            SyncClass::Trait
        } else {
            SyncClass::Audience
        },
        destination_id: row.get(4)?,
        mode: SyncMode::parse(&mode).unwrap_or(SyncMode::Identify),
        external_audience_id: row.get(6)?,
        created_at: row.get(7)?,
    })
}

impl StateStore {
    /// Saves a sync (`AlreadyExists` when the destination already receives the key, `NotFound`
    /// when the destination is not the workspace's).
    pub fn create_sync(
        &self,
        workspace: &WorkspaceId,
        new: &NewSync<'_>,
    ) -> Result<AudienceSync, StoreError> {
        let connection = self.lock()?;
        let owned: Option<String> = connection
            .query_row(
                "SELECT id FROM destinations WHERE id = ?1 AND workspace_id = ?2",
                params![new.destination_id, workspace.0],
                |row| row.get(0),
            )
            .optional()?;
        if owned.is_none() {
            return Err(StoreError::NotFound {
                kind: "destination",
                id: new.destination_id.to_string(),
            });
        }
        let sync = AudienceSync {
            id: random_id("")?,
            workspace_id: workspace.clone(),
            key: new.key.to_string(),
            class: new.class,
            destination_id: new.destination_id.to_string(),
            mode: new.mode,
            external_audience_id: new.external_audience_id.map(str::to_string),
            created_at: now_text(),
        };
        let inserted = connection.execute(
            &format!("INSERT INTO syncs({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                sync.id,
                workspace.0,
                sync.key,
                sync.class.as_str(),
                sync.destination_id,
                sync.mode.as_str(),
                sync.external_audience_id,
                sync.created_at
            ],
        );
        match inserted {
            Err(error) if is_unique_violation(&error) => Err(StoreError::AlreadyExists(format!(
                "sync of {:?} to destination {}",
                new.key, new.destination_id
            ))),
            Err(error) => Err(error.into()),
            Ok(_) => Ok(sync),
        }
    }

    /// The workspace's syncs, of one key or all, oldest first.
    pub fn syncs(
        &self,
        workspace: &WorkspaceId,
        key: Option<&str>,
    ) -> Result<Vec<AudienceSync>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM syncs WHERE workspace_id = ?1 AND (?2 IS NULL OR key = ?2)
             ORDER BY created_at, id"
        ))?;
        let rows = statement.query_map(params![workspace.0, key], read_sync)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The syncs feeding one destination of the workspace.
    pub fn destination_syncs(
        &self,
        workspace: &WorkspaceId,
        destination: &str,
    ) -> Result<Vec<AudienceSync>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM syncs WHERE workspace_id = ?1 AND destination_id = ?2
             ORDER BY created_at, id"
        ))?;
        let rows = statement.query_map(params![workspace.0, destination], read_sync)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// Deletes a sync of the workspace (`NotFound` otherwise).
    pub fn delete_sync(&self, workspace: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        let deleted = self.lock()?.execute(
            "DELETE FROM syncs WHERE id = ?1 AND workspace_id = ?2",
            params![id, workspace.0],
        )?;
        if deleted == 0 {
            return Err(StoreError::NotFound {
                kind: "sync",
                id: id.to_string(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::Map;

    use super::*;
    use crate::destinations::{DeliveryOptions, DestinationId, NewDestination, StoredSettings};

    #[test]
    fn syncs_belong_to_a_destination_of_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let other = store.create_workspace("other").unwrap();
        let destination = store
            .create_destination(
                &ws.id,
                NewDestination {
                    id: DestinationId::generate(),
                    name: "hook".into(),
                    kind: "webhook".into(),
                    enabled: true,
                    settings: StoredSettings {
                        plain: Map::new(),
                        sealed: Vec::new(),
                        sealed_fields: Vec::new(),
                    },
                    consent_categories: Vec::new(),
                    advertising: false,
                    delivery: DeliveryOptions::default(),
                    sources: Vec::new(),
                },
            )
            .unwrap();
        let new = NewSync {
            key: "vip",
            class: SyncClass::Audience,
            destination_id: destination.id.as_str(),
            mode: SyncMode::Track,
            external_audience_id: None,
        };
        let sync = store.create_sync(&ws.id, &new).unwrap();
        assert_eq!(sync.source_id(), format!("sync_{}", sync.id));
        assert!(matches!(
            store.create_sync(&ws.id, &new),
            Err(StoreError::AlreadyExists(_))
        ));
        // Another workspace cannot name the destination, nor see or delete the sync.
        assert!(matches!(
            store.create_sync(&other.id, &new),
            Err(StoreError::NotFound { .. })
        ));
        assert!(store.syncs(&other.id, None).unwrap().is_empty());
        assert!(store.delete_sync(&other.id, &sync.id).is_err());
        assert_eq!(
            store.syncs(&ws.id, Some("vip")).unwrap(),
            vec![sync.clone()]
        );
        assert!(store.syncs(&ws.id, Some("other")).unwrap().is_empty());
        assert_eq!(
            store
                .destination_syncs(&ws.id, destination.id.as_str())
                .unwrap()
                .len(),
            1
        );
        // Deleting the destination deletes its syncs.
        store
            .delete_destination(&ws.id, destination.id.as_str())
            .unwrap();
        assert!(store.syncs(&ws.id, None).unwrap().is_empty());
    }
}
