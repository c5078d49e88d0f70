//! Workspaces, sources and admin tokens, in `state.db`.
//!
//! A workspace owns sources; a source has a name, an enabled flag and a write key. Write keys
//! and admin tokens are stored only as SHA-256 hashes (see [`crate::secret`]). Every function
//! that touches a source takes the workspace it must belong to: a source of another workspace
//! is "not found".

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::secret::{AdminToken, KeyHash, WriteKey};
use crate::{StoreError, sqlite};

/// A workspace id (`ws_…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkspaceId(pub String);

impl std::fmt::Display for WorkspaceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: String,
}

/// A source as the admin API shows it (never with its key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub enabled: bool,
    pub created_at: String,
}

/// What the tracking API needs to know about a write key's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceAuth {
    pub workspace_id: WorkspaceId,
    pub source_id: String,
    pub enabled: bool,
    pub key_hash: KeyHash,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS workspaces (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    write_key_hash BLOB NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE TABLE IF NOT EXISTS admin_tokens (
    token_hash BLOB PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    created_at TEXT NOT NULL
);
";

/// The state store. Cheap calls; callers on an async runtime should still run them on a
/// blocking thread.
pub struct StateStore {
    connection: Mutex<Connection>,
}

const DEFAULT_WORKSPACE: &str = "default";

pub(crate) fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

pub(crate) fn random_id(prefix: &str) -> Result<String, StoreError> {
    let mut bytes = [0u8; 10];
    getrandom::fill(&mut bytes)
        .map_err(|error| StoreError::Io(std::io::Error::other(error.to_string())))?;
    let mut id = String::from(prefix);
    for byte in bytes {
        id.push_str(&format!("{byte:02x}"));
    }
    Ok(id)
}

pub(crate) fn check_name(name: &str) -> Result<String, StoreError> {
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.chars().count() > 100 || trimmed.chars().any(char::is_control)
    {
        return Err(StoreError::Invalid {
            field: "name",
            message: "must be 1 to 100 characters without control characters".into(),
        });
    }
    Ok(trimmed.to_owned())
}

pub(crate) fn row_to_source(row: &rusqlite::Row<'_>) -> rusqlite::Result<Source> {
    Ok(Source {
        id: row.get(0)?,
        workspace_id: WorkspaceId(row.get(1)?),
        name: row.get(2)?,
        enabled: row.get(3)?,
        created_at: row.get(4)?,
    })
}

pub(crate) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(
        error,
        rusqlite::Error::SqliteFailure(inner, _) if inner.code == rusqlite::ErrorCode::ConstraintViolation
    )
}

impl StateStore {
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        let connection = sqlite::open(path)?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(crate::destinations::SCHEMA)?;
        crate::destinations::migrate(&connection)?;
        connection.execute_batch(crate::identity::SCHEMA)?;
        connection.execute_batch(crate::regulations::SCHEMA)?;
        connection.execute_batch(crate::definitions::SCHEMA)?;
        connection.execute_batch(crate::syncs::SCHEMA)?;
        connection.execute_batch(crate::connections::SCHEMA)?;
        Ok(StateStore {
            connection: Mutex::new(connection),
        })
    }

    pub(crate) fn lock(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.connection
            .lock()
            .map_err(|_| StoreError::CommitFailed("state lock poisoned".into()))
    }

    /// Gives back the memory SQLite holds for this store (see `sqlite::release_memory`).
    pub fn release_memory(&self) -> Result<(), StoreError> {
        sqlite::release_memory(&self.connection)
    }

    /// The default workspace, created on first call. The flag says whether it was created now.
    pub fn ensure_default_workspace(&self) -> Result<(Workspace, bool), StoreError> {
        if let Some(existing) = self.workspace_by_name(DEFAULT_WORKSPACE)? {
            return Ok((existing, false));
        }
        let workspace = Workspace {
            id: WorkspaceId(random_id("ws_")?),
            name: DEFAULT_WORKSPACE.to_owned(),
            created_at: now_text(),
        };
        self.lock()?.execute(
            "INSERT INTO workspaces(id, name, created_at) VALUES (?1, ?2, ?3)",
            params![workspace.id.0, workspace.name, workspace.created_at],
        )?;
        Ok((workspace, true))
    }

    /// Every workspace's id (workspace-internal plumbing: background jobs visit each).
    pub fn workspace_ids(&self) -> Result<Vec<WorkspaceId>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare("SELECT id FROM workspaces ORDER BY id")?;
        let rows = statement.query_map([], |row| Ok(WorkspaceId(row.get(0)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn workspace_by_name(&self, name: &str) -> Result<Option<Workspace>, StoreError> {
        let connection = self.lock()?;
        let workspace = connection
            .query_row(
                "SELECT id, name, created_at FROM workspaces WHERE name = ?1",
                [name],
                |row| {
                    Ok(Workspace {
                        id: WorkspaceId(row.get(0)?),
                        name: row.get(1)?,
                        created_at: row.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(workspace)
    }

    /// Creates a workspace (for tenants beyond the default one).
    pub fn create_workspace(&self, name: &str) -> Result<Workspace, StoreError> {
        let name = check_name(name)?;
        let workspace = Workspace {
            id: WorkspaceId(random_id("ws_")?),
            name,
            created_at: now_text(),
        };
        let result = self.lock()?.execute(
            "INSERT INTO workspaces(id, name, created_at) VALUES (?1, ?2, ?3)",
            params![workspace.id.0, workspace.name, workspace.created_at],
        );
        match result {
            Ok(_) => Ok(workspace),
            Err(error) if is_unique_violation(&error) => Err(StoreError::AlreadyExists(format!(
                "workspace {}",
                workspace.name
            ))),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates a source and returns it with its write key (the only time the key is known).
    pub fn create_source(
        &self,
        workspace: &WorkspaceId,
        name: &str,
    ) -> Result<(Source, WriteKey), StoreError> {
        let name = check_name(name)?;
        let key = WriteKey::generate()?;
        let source = Source {
            id: random_id("src_")?,
            workspace_id: workspace.clone(),
            name,
            enabled: true,
            created_at: now_text(),
        };
        let result = self.lock()?.execute(
            "INSERT INTO sources(id, workspace_id, name, enabled, write_key_hash, created_at) VALUES (?1, ?2, ?3, 1, ?4, ?5)",
            params![source.id, workspace.0, source.name, key.hash().0.as_slice(), source.created_at],
        );
        match result {
            Ok(_) => Ok((source, key)),
            Err(error) if is_unique_violation(&error) => {
                Err(StoreError::AlreadyExists(format!("source {}", source.name)))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub fn list_sources(&self, workspace: &WorkspaceId) -> Result<Vec<Source>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT id, workspace_id, name, enabled, created_at FROM sources WHERE workspace_id = ?1 ORDER BY created_at, id",
        )?;
        let mut sources = Vec::new();
        for row in statement.query_map([&workspace.0], row_to_source)? {
            sources.push(row?);
        }
        Ok(sources)
    }

    pub fn get_source(&self, workspace: &WorkspaceId, id: &str) -> Result<Source, StoreError> {
        let connection = self.lock()?;
        connection
            .query_row(
                "SELECT id, workspace_id, name, enabled, created_at FROM sources WHERE workspace_id = ?1 AND id = ?2",
                params![workspace.0, id],
                row_to_source,
            )
            .optional()?
            .ok_or_else(|| not_found(id))
    }

    /// Finds a source by id or by name within the workspace (for the CLI).
    pub fn find_source(
        &self,
        workspace: &WorkspaceId,
        id_or_name: &str,
    ) -> Result<Source, StoreError> {
        let connection = self.lock()?;
        connection
            .query_row(
                "SELECT id, workspace_id, name, enabled, created_at FROM sources WHERE workspace_id = ?1 AND (id = ?2 OR name = ?2)",
                params![workspace.0, id_or_name],
                row_to_source,
            )
            .optional()?
            .ok_or_else(|| not_found(id_or_name))
    }

    /// Replaces the source's write key; the old key stops working at once.
    pub fn rotate_write_key(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<(Source, WriteKey), StoreError> {
        let key = WriteKey::generate()?;
        let changed = self.lock()?.execute(
            "UPDATE sources SET write_key_hash = ?1 WHERE workspace_id = ?2 AND id = ?3",
            params![key.hash().0.as_slice(), workspace.0, id],
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        Ok((self.get_source(workspace, id)?, key))
    }

    pub fn set_source_enabled(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        enabled: bool,
    ) -> Result<Source, StoreError> {
        let changed = self.lock()?.execute(
            "UPDATE sources SET enabled = ?1 WHERE workspace_id = ?2 AND id = ?3",
            params![enabled, workspace.0, id],
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        self.get_source(workspace, id)
    }

    pub fn rename_source(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        name: &str,
    ) -> Result<Source, StoreError> {
        let name = check_name(name)?;
        let result = self.lock()?.execute(
            "UPDATE sources SET name = ?1 WHERE workspace_id = ?2 AND id = ?3",
            params![name, workspace.0, id],
        );
        match result {
            Ok(0) => Err(not_found(id)),
            Ok(_) => self.get_source(workspace, id),
            Err(error) if is_unique_violation(&error) => {
                Err(StoreError::AlreadyExists(format!("source {name}")))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub fn delete_source(&self, workspace: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        let changed = self.lock()?.execute(
            "DELETE FROM sources WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id],
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// The source a write key belongs to, if any. The lookup is by hash; the caller compares
    /// the returned hash in constant time before trusting it.
    pub fn source_by_key(&self, hash: &KeyHash) -> Result<Option<SourceAuth>, StoreError> {
        let connection = self.lock()?;
        let found = connection
            .prepare_cached("SELECT workspace_id, id, enabled, write_key_hash FROM sources WHERE write_key_hash = ?1")?
            .query_row([hash.0.as_slice()], |row| {
                let stored: Vec<u8> = row.get(3)?;
                Ok((WorkspaceId(row.get(0)?), row.get::<_, String>(1)?, row.get::<_, bool>(2)?, stored))
            })
            .optional()?;
        Ok(
            found.and_then(|(workspace_id, source_id, enabled, stored)| {
                KeyHash::from_slice(&stored).map(|key_hash| SourceAuth {
                    workspace_id,
                    source_id,
                    enabled,
                    key_hash,
                })
            }),
        )
    }

    /// Registers an admin token for a workspace (idempotent).
    pub fn add_admin_token(
        &self,
        workspace: &WorkspaceId,
        token: &AdminToken,
    ) -> Result<(), StoreError> {
        self.lock()?.execute(
            "INSERT INTO admin_tokens(token_hash, workspace_id, created_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(token_hash) DO NOTHING",
            params![token.hash().0.as_slice(), workspace.0, now_text()],
        )?;
        Ok(())
    }

    pub fn has_admin_token(&self, workspace: &WorkspaceId) -> Result<bool, StoreError> {
        let count: i64 = self.lock()?.query_row(
            "SELECT COUNT(*) FROM admin_tokens WHERE workspace_id = ?1",
            [&workspace.0],
            |row| row.get(0),
        )?;
        Ok(count > 0)
    }

    /// The workspace an admin token grants, if any (hash lookup, then constant-time compare).
    pub fn workspace_for_token(&self, presented: &str) -> Result<Option<WorkspaceId>, StoreError> {
        let connection = self.lock()?;
        workspace_for_hashed_token(&connection, "admin_tokens", presented)
    }
}

/// The workspace of a token stored hashed in `table` (`token_hash`, `workspace_id`): a hash
/// lookup, then a constant-time comparison.
pub(crate) fn workspace_for_hashed_token(
    connection: &Connection,
    table: &'static str,
    presented: &str,
) -> Result<Option<WorkspaceId>, StoreError> {
    let hash = KeyHash::of(presented);
    let found = connection
        .prepare_cached(&format!(
            "SELECT workspace_id, token_hash FROM {table} WHERE token_hash = ?1"
        ))?
        .query_row([hash.0.as_slice()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })
        .optional()?;
    Ok(
        found.and_then(|(workspace, stored)| match KeyHash::from_slice(&stored) {
            Some(stored) if stored.matches(&hash) => Some(WorkspaceId(workspace)),
            _ => None,
        }),
    )
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "source",
        id: id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    #[test]
    fn default_workspace_is_created_once() {
        let (_dir, store) = store();
        let (first, created) = store.ensure_default_workspace().unwrap();
        assert!(created);
        let (second, created) = store.ensure_default_workspace().unwrap();
        assert!(!created);
        assert_eq!(first, second);
    }

    #[test]
    fn source_lifecycle() {
        let (_dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let (source, key) = store.create_source(&ws.id, "web").unwrap();
        assert!(source.enabled);
        let auth = store.source_by_key(&key.hash()).unwrap().unwrap();
        assert_eq!(auth.source_id, source.id);
        assert_eq!(auth.workspace_id, ws.id);

        assert!(matches!(
            store.create_source(&ws.id, "web"),
            Err(StoreError::AlreadyExists(_))
        ));

        let (_, new_key) = store.rotate_write_key(&ws.id, &source.id).unwrap();
        assert!(store.source_by_key(&key.hash()).unwrap().is_none());
        assert!(store.source_by_key(&new_key.hash()).unwrap().is_some());

        let disabled = store.set_source_enabled(&ws.id, &source.id, false).unwrap();
        assert!(!disabled.enabled);
        assert!(
            !store
                .source_by_key(&new_key.hash())
                .unwrap()
                .unwrap()
                .enabled
        );

        assert_eq!(
            store
                .rename_source(&ws.id, &source.id, "site")
                .unwrap()
                .name,
            "site"
        );
        assert_eq!(store.find_source(&ws.id, "site").unwrap().id, source.id);
        assert_eq!(store.list_sources(&ws.id).unwrap().len(), 1);
        store.delete_source(&ws.id, &source.id).unwrap();
        assert!(store.list_sources(&ws.id).unwrap().is_empty());
        assert!(matches!(
            store.delete_source(&ws.id, &source.id),
            Err(StoreError::NotFound { .. })
        ));
    }

    #[test]
    fn sources_are_invisible_across_workspaces() {
        let (_dir, store) = store();
        let (a, _) = store.ensure_default_workspace().unwrap();
        let b = store.create_workspace("other").unwrap();
        let (source, _) = store.create_source(&a.id, "web").unwrap();
        assert!(store.get_source(&b.id, &source.id).is_err());
        assert!(store.set_source_enabled(&b.id, &source.id, false).is_err());
        assert!(store.rotate_write_key(&b.id, &source.id).is_err());
        assert!(store.delete_source(&b.id, &source.id).is_err());
        assert!(store.list_sources(&b.id).unwrap().is_empty());
        // The same name is fine in another workspace.
        assert!(store.create_source(&b.id, "web").is_ok());
    }

    #[test]
    fn the_database_never_holds_a_key_in_clear() {
        let (dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let (_, key) = store.create_source(&ws.id, "web").unwrap();
        let token = AdminToken::generate().unwrap();
        store.add_admin_token(&ws.id, &token).unwrap();
        drop(store);
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            for secret in [key.expose(), token.expose()] {
                assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
            }
        }
    }

    #[test]
    fn admin_tokens_map_to_their_workspace() {
        let (_dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        assert!(!store.has_admin_token(&ws.id).unwrap());
        let token = AdminToken::generate().unwrap();
        store.add_admin_token(&ws.id, &token).unwrap();
        store.add_admin_token(&ws.id, &token).unwrap();
        assert!(store.has_admin_token(&ws.id).unwrap());
        assert_eq!(
            store.workspace_for_token(token.expose()).unwrap(),
            Some(ws.id)
        );
        assert_eq!(store.workspace_for_token("sla_wrong").unwrap(), None);
    }

    #[test]
    fn names_are_checked() {
        let (_dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        for bad in ["", "   ", "a\nb", &"x".repeat(101)] {
            assert!(matches!(
                store.create_source(&ws.id, bad),
                Err(StoreError::Invalid { field: "name", .. })
            ));
        }
    }
}
