//! Each workspace's identity resolution settings and its Profile API access tokens, in
//! `state.db`. Tokens are stored as hashes, like admin tokens.

use rusqlite::{OptionalExtension, params};
use sluice_identity::IdentitySettings;

use crate::secret::ProfileToken;
use crate::state::{StateStore, now_text, random_id};
use crate::{Source, StoreError, WorkspaceId};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS identity_settings (
    workspace_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_tokens (
    token_hash BLOB PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workspace_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
";

/// A Profile API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTokenInfo {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

impl StateStore {
    /// The workspace's identity settings (the defaults until some are saved).
    pub fn identity_settings(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<IdentitySettings, StoreError> {
        let stored: Option<String> = self
            .lock()?
            .query_row(
                "SELECT settings FROM identity_settings WHERE workspace_id = ?1",
                [&workspace.0],
                |row| row.get(0),
            )
            .optional()?;
        match stored {
            None => Ok(IdentitySettings::default()),
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Invalid {
                field: "identity_settings",
                message: format!("stored settings are unreadable: {e}"),
            }),
        }
    }

    /// Saves identity settings (the caller validated them).
    pub fn set_identity_settings(
        &self,
        workspace: &WorkspaceId,
        settings: &IdentitySettings,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(settings).map_err(|e| StoreError::Invalid {
            field: "identity_settings",
            message: e.to_string(),
        })?;
        self.lock()?.execute(
            "INSERT INTO identity_settings(workspace_id, settings, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(workspace_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
            params![workspace.0, text, now_text()],
        )?;
        Ok(())
    }

    /// Creates a Profile API token; the token is returned once and stored only as a hash.
    pub fn create_profile_token(
        &self,
        workspace: &WorkspaceId,
        name: &str,
    ) -> Result<(ProfileTokenInfo, ProfileToken), StoreError> {
        let name = crate::state::check_name(name)?;
        let token = ProfileToken::generate()?;
        let info = ProfileTokenInfo {
            id: random_id("ptk_")?,
            name,
            created_at: now_text(),
        };
        self.lock()?.execute(
            "INSERT INTO profile_tokens(token_hash, id, workspace_id, name, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![token.hash().0.as_slice(), info.id, workspace.0, info.name, info.created_at],
        )?;
        Ok((info, token))
    }

    pub fn list_profile_tokens(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<ProfileTokenInfo>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare("SELECT id, name, created_at FROM profile_tokens WHERE workspace_id = ?1 ORDER BY created_at, id")?;
        let tokens = statement
            .query_map([&workspace.0], |row| {
                Ok(ProfileTokenInfo {
                    id: row.get(0)?,
                    name: row.get(1)?,
                    created_at: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(tokens)
    }

    pub fn revoke_profile_token(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<(), StoreError> {
        let removed = self.lock()?.execute(
            "DELETE FROM profile_tokens WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id],
        )?;
        if removed == 0 {
            return Err(StoreError::NotFound {
                kind: "profile token",
                id: id.to_string(),
            });
        }
        Ok(())
    }

    /// The workspace a Profile API token grants, if any (hash lookup, then constant-time compare).
    pub fn workspace_for_profile_token(
        &self,
        presented: &str,
    ) -> Result<Option<WorkspaceId>, StoreError> {
        let connection = self.lock()?;
        crate::state::workspace_for_hashed_token(&connection, "profile_tokens", presented)
    }

    /// Every source of every workspace (for consumers that follow them all).
    pub fn all_sources(&self) -> Result<Vec<Source>, StoreError> {
        let connection = self.lock()?;
        let mut statement =
            connection.prepare("SELECT id, workspace_id, name, enabled, created_at FROM sources ORDER BY workspace_id, id")?;
        let sources = statement
            .query_map([], crate::state::row_to_source)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(sources)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_then_saved_and_tokens_scoped() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let other = store.create_workspace("other").unwrap();
        assert_eq!(
            store.identity_settings(&ws.id).unwrap(),
            IdentitySettings::default()
        );
        let mut settings = IdentitySettings::default();
        settings.identifiers.truncate(3);
        store.set_identity_settings(&ws.id, &settings).unwrap();
        assert_eq!(store.identity_settings(&ws.id).unwrap(), settings);
        assert_eq!(
            store.identity_settings(&other.id).unwrap(),
            IdentitySettings::default()
        );

        let (info, token) = store.create_profile_token(&ws.id, "analytics").unwrap();
        assert!(token.expose().starts_with("slp_"));
        assert_eq!(
            store.workspace_for_profile_token(token.expose()).unwrap(),
            Some(ws.id.clone())
        );
        assert_eq!(
            store
                .workspace_for_profile_token("slp_not-a-token-at-all")
                .unwrap(),
            None
        );
        assert_eq!(
            store.list_profile_tokens(&ws.id).unwrap(),
            vec![info.clone()]
        );
        assert!(store.list_profile_tokens(&other.id).unwrap().is_empty());
        assert!(store.revoke_profile_token(&other.id, &info.id).is_err());
        store.revoke_profile_token(&ws.id, &info.id).unwrap();
        assert_eq!(
            store.workspace_for_profile_token(token.expose()).unwrap(),
            None
        );
        // The database never holds the token in clear.
        drop(store);
        let bytes = std::fs::read(dir.path().join("state.db")).unwrap();
        assert!(
            !bytes
                .windows(token.expose().len())
                .any(|w| w == token.expose().as_bytes())
        );
    }
}
