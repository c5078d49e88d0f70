//! OAuth connections to ad accounts, and the authorizations under way, in `state.db`.
//!
//! A connection is a workspace's grant at one provider (`google`, `meta`, `tiktok`): its
//! tokens (sealed by the caller, bound to the workspace and the connection, so this store
//! never sees one in clear), what the provider said about them (scopes, advertiser accounts,
//! when the access token expires), and a status: `active`, `needs_reauthorization` (with a
//! message saying why) or `disconnected` (its tokens deleted). Every change of tokens or status
//! bumps its `version`, which the delivery engine folds into the version of each destination
//! that uses the connection, so those destinations restart with the new token.
//!
//! A pending authorization is what the server keeps from the redirect to the provider until
//! the callback: sealed, under the SHA-256 of the `state` (never the state itself), with an
//! expiry. It is taken once ([`StateStore::take_pending_authorization`] deletes it, whatever
//! happens next) and expired ones are dropped whenever a new one is added.
//!
//! Every function takes the workspace the connection must belong to; a connection of another
//! workspace is "not found". Two cross workspaces, and every record they return names its
//! workspace: [`StateStore::take_pending_authorization`], since a callback carries no workspace
//! (its state stands for it), and [`StateStore::connections_to_renew`], for the background
//! renewal.

use rusqlite::types::Type;
use rusqlite::{Connection as Sqlite, OptionalExtension, TransactionBehavior, params};

use crate::destinations::{Destination, load_all};
use crate::state::{StateStore, now_text, random_id};
use crate::{StoreError, WorkspaceId};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS oauth_pending (
    state_key TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    label TEXT,
    sealed BLOB NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_pending_by_expiry ON oauth_pending(expires_at_ms);
CREATE TABLE IF NOT EXISTS oauth_connections (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    provider TEXT NOT NULL,
    label TEXT,
    scopes TEXT NOT NULL,
    accounts TEXT NOT NULL,
    status TEXT NOT NULL,
    status_message TEXT,
    tokens_sealed BLOB,
    access_expires_at_ms INTEGER,
    refreshed_at_ms INTEGER,
    revocation TEXT,
    version INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS oauth_connections_by_workspace ON oauth_connections(workspace_id);
";

/// The associated data a connection's tokens are sealed with: workspace, connection,
/// `"oauth"`. Sealed tokens copied to another row or workspace do not open.
pub fn tokens_context<'a>(workspace: &'a WorkspaceId, id: &'a str) -> [&'a str; 3] {
    [workspace.0.as_str(), id, "oauth"]
}

/// The associated data a pending authorization is sealed with: workspace, state key,
/// `"oauth-pending"`.
pub fn pending_context<'a>(workspace: &'a WorkspaceId, state_key: &'a str) -> [&'a str; 3] {
    [workspace.0.as_str(), state_key, "oauth-pending"]
}

/// A new connection id: `conn_` and 20 random hex digits.
pub fn new_connection_id() -> Result<String, StoreError> {
    random_id("conn_")
}

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectionStatus {
    /// Its token works as far as Sluice knows.
    Active,
    /// Its token is dead (revoked, expired, refused by the platform): a person must connect
    /// again. Destinations using it do not run.
    NeedsReauthorization,
    /// Disconnected by an admin: tokens revoked and deleted.
    Disconnected,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::NeedsReauthorization => "needs_reauthorization",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }

    fn parse(text: &str) -> Option<ConnectionStatus> {
        [
            ConnectionStatus::Active,
            ConnectionStatus::NeedsReauthorization,
            ConnectionStatus::Disconnected,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A connection as stored. `Debug` shows the size of the sealed tokens, not the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    pub workspace_id: WorkspaceId,
    /// `google`, `meta` or `tiktok`.
    pub provider: String,
    /// A name for people (given when connecting).
    pub label: Option<String>,
    /// The scopes (TikTok: permission ids) the provider says it granted.
    pub scopes: Vec<String>,
    /// The advertiser accounts the token reaches, when the provider says (TikTok).
    pub accounts: Vec<String>,
    pub status: ConnectionStatus,
    /// Why it needs reauthorization, or how it was disconnected.
    pub status_message: Option<String>,
    /// The tokens, sealed; `None` once disconnected.
    pub tokens: Option<Vec<u8>>,
    /// When the access token expires (ms since the epoch); `None`: it does not.
    pub access_expires_at_ms: Option<i64>,
    /// When the tokens were last renewed (ms since the epoch).
    pub refreshed_at_ms: Option<i64>,
    /// What the provider answered to the revocation, once disconnected.
    pub revocation: Option<String>,
    /// Bumped by every change of tokens or status.
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("workspace_id", &self.workspace_id)
            .field("provider", &self.provider)
            .field("status", &self.status)
            .field("version", &self.version)
            .field("sealed_bytes", &self.tokens.as_ref().map(Vec::len))
            .field("access_expires_at_ms", &self.access_expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// A pending authorization as stored. `Debug` shows the size of the sealed bytes only.
#[derive(Clone, PartialEq, Eq)]
pub struct PendingRecord {
    pub workspace_id: WorkspaceId,
    /// The label the connection will get.
    pub label: Option<String>,
    /// The `PendingAuthorization`, sealed under [`pending_context`].
    pub sealed: Vec<u8>,
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for PendingRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRecord")
            .field("workspace_id", &self.workspace_id)
            .field("sealed_bytes", &self.sealed.len())
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// The tokens of a completed authorization, sealed by the caller under [`tokens_context`].
#[derive(Clone)]
pub struct ConnectedTokens {
    /// The connection: a new one, or one of the workspace connected again.
    pub id: String,
    pub provider: String,
    pub label: Option<String>,
    pub scopes: Vec<String>,
    pub accounts: Vec<String>,
    pub sealed: Vec<u8>,
    pub access_expires_at_ms: Option<i64>,
    /// When the tokens were obtained (ms since the epoch).
    pub at_ms: i64,
}

/// The tokens of a renewal, sealed by the caller under [`tokens_context`].
#[derive(Clone)]
pub struct RenewedTokens {
    pub sealed: Vec<u8>,
    pub access_expires_at_ms: Option<i64>,
    /// Empty: keep the stored scopes.
    pub scopes: Vec<String>,
    /// When they were obtained (ms since the epoch).
    pub at_ms: i64,
}

const COLUMNS: &str = "id, workspace_id, provider, label, scopes, accounts, status, status_message, \
                       tokens_sealed, access_expires_at_ms, refreshed_at_ms, revocation, version, \
                       created_at, updated_at";

fn list_column(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Vec<String>> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

fn row_to_connection(row: &rusqlite::Row<'_>) -> rusqlite::Result<Connection> {
    let status: String = row.get(6)?;
    let status = ConnectionStatus::parse(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            6,
            Type::Text,
            format!("unknown connection status {status:?}").into(),
        )
    })?;
    Ok(Connection {
        id: row.get(0)?,
        workspace_id: WorkspaceId(row.get(1)?),
        provider: row.get(2)?,
        label: row.get(3)?,
        scopes: list_column(row, 4)?,
        accounts: list_column(row, 5)?,
        status,
        status_message: row.get(7)?,
        tokens: row.get(8)?,
        access_expires_at_ms: row.get(9)?,
        refreshed_at_ms: row.get(10)?,
        revocation: row.get(11)?,
        version: row.get(12)?,
        created_at: row.get(13)?,
        updated_at: row.get(14)?,
    })
}

fn to_json(list: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(list).map_err(|error| StoreError::CommitFailed(error.to_string()))
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "connection",
        id: id.to_owned(),
    }
}

fn load(sqlite: &Sqlite, workspace: &WorkspaceId, id: &str) -> Result<Connection, StoreError> {
    sqlite
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM oauth_connections WHERE workspace_id = ?1 AND id = ?2"
        ))?
        .query_row(params![workspace.0, id], row_to_connection)
        .optional()?
        .ok_or_else(|| not_found(id))
}

/// Longest label kept.
const MAX_LABEL: usize = 100;

/// Trims a label; refuses one that is too long or holds control characters.
fn check_label(label: Option<&str>) -> Result<Option<String>, StoreError> {
    let Some(label) = label.map(str::trim).filter(|label| !label.is_empty()) else {
        return Ok(None);
    };
    if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
        return Err(StoreError::Invalid {
            field: "label",
            message: "must be at most 100 characters without control characters".into(),
        });
    }
    Ok(Some(label.to_owned()))
}

impl StateStore {
    /// Keeps a pending authorization under `state_key` (the SHA-256 of its state) until it
    /// is taken or expires; drops every pending authorization that expired before `now_ms`.
    pub fn add_pending_authorization(
        &self,
        state_key: &str,
        pending: &PendingRecord,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let label = check_label(pending.label.as_deref())?;
        let mut sqlite = self.lock()?;
        let transaction = sqlite.transaction_with_behavior(TransactionBehavior::Immediate)?;
        transaction.execute(
            "DELETE FROM oauth_pending WHERE expires_at_ms <= ?1",
            [now_ms],
        )?;
        transaction.execute(
            "INSERT INTO oauth_pending(state_key, workspace_id, label, sealed, expires_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                state_key,
                pending.workspace_id.0,
                label,
                pending.sealed,
                pending.expires_at_ms
            ],
        )?;
        transaction.commit()?;
        Ok(())
    }

    /// The pending authorization of `state_key`, deleted as it is read: a state works once,
    /// whatever the callback's outcome. `None` when there is none (never issued, used, or
    /// dropped after expiring). Its expiry is the caller's to check.
    pub fn take_pending_authorization(
        &self,
        state_key: &str,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let sqlite = self.lock()?;
        let found = sqlite
            .query_row(
                "DELETE FROM oauth_pending WHERE state_key = ?1
                 RETURNING workspace_id, label, sealed, expires_at_ms",
                [state_key],
                |row| {
                    Ok(PendingRecord {
                        workspace_id: WorkspaceId(row.get(0)?),
                        label: row.get(1)?,
                        sealed: row.get(2)?,
                        expires_at_ms: row.get(3)?,
                    })
                },
            )
            .optional()?;
        Ok(found)
    }

    /// How many authorizations of the workspace are pending (expired ones not yet dropped
    /// included).
    pub fn count_pending_authorizations(&self, workspace: &WorkspaceId) -> Result<u64, StoreError> {
        let count: i64 = self.lock()?.query_row(
            "SELECT count(*) FROM oauth_pending WHERE workspace_id = ?1",
            [&workspace.0],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Stores the tokens of a completed authorization: a new connection, or new tokens for a
    /// connection of the workspace being connected again (whatever its status: it becomes
    /// active, its message and revocation cleared). A connection's provider never changes.
    pub fn connect(
        &self,
        workspace: &WorkspaceId,
        tokens: ConnectedTokens,
    ) -> Result<Connection, StoreError> {
        let label = check_label(tokens.label.as_deref())?;
        let (scopes, accounts) = (to_json(&tokens.scopes)?, to_json(&tokens.accounts)?);
        let now = now_text();
        let mut sqlite = self.lock()?;
        let transaction = sqlite.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let owner: Option<(String, String)> = transaction
            .query_row(
                "SELECT workspace_id, provider FROM oauth_connections WHERE id = ?1",
                [&tokens.id],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        match owner {
            None => {
                transaction.execute(
                    &format!(
                        "INSERT INTO oauth_connections({COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', NULL, ?7, ?8, ?9, NULL, 1, ?10, ?10)"
                    ),
                    params![
                        tokens.id,
                        workspace.0,
                        tokens.provider,
                        label,
                        scopes,
                        accounts,
                        tokens.sealed,
                        tokens.access_expires_at_ms,
                        tokens.at_ms,
                        now,
                    ],
                )?;
            }
            Some((owner, _)) if owner != workspace.0 => return Err(not_found(&tokens.id)),
            Some((_, provider)) if provider != tokens.provider => {
                return Err(StoreError::Invalid {
                    field: "provider",
                    message: format!("connection {} is a {provider} connection", tokens.id),
                });
            }
            Some(_) => {
                transaction.execute(
                    "UPDATE oauth_connections SET label = coalesce(?3, label), scopes = ?4,
                         accounts = ?5, status = 'active', status_message = NULL,
                         tokens_sealed = ?6, access_expires_at_ms = ?7, refreshed_at_ms = ?8,
                         revocation = NULL, version = version + 1, updated_at = ?9
                     WHERE workspace_id = ?1 AND id = ?2",
                    params![
                        workspace.0,
                        tokens.id,
                        label,
                        scopes,
                        accounts,
                        tokens.sealed,
                        tokens.access_expires_at_ms,
                        tokens.at_ms,
                        now,
                    ],
                )?;
            }
        }
        let connection = load(&transaction, workspace, &tokens.id)?;
        transaction.commit()?;
        Ok(connection)
    }

    /// The workspace's connections, oldest first.
    pub fn list_connections(&self, workspace: &WorkspaceId) -> Result<Vec<Connection>, StoreError> {
        let sqlite = self.lock()?;
        let mut statement = sqlite.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM oauth_connections WHERE workspace_id = ?1
             ORDER BY created_at, id"
        ))?;
        let rows = statement.query_map([&workspace.0], row_to_connection)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every workspace's connections that still hold tokens (for resealing them all).
    pub fn all_connections_with_tokens(&self) -> Result<Vec<Connection>, StoreError> {
        let sqlite = self.lock()?;
        let mut statement = sqlite.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM oauth_connections WHERE tokens_sealed IS NOT NULL
             ORDER BY workspace_id, created_at, id"
        ))?;
        let rows = statement.query_map([], row_to_connection)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The same tokens sealed again (under another master key), written only if the
    /// connection is still at `version` and holds tokens; `false` otherwise (a renewal or a
    /// disconnection came first). Nothing else changes, the version included: the tokens
    /// are the same.
    pub fn reseal_connection(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        version: i64,
        sealed: &[u8],
    ) -> Result<bool, StoreError> {
        let sqlite = self.lock()?;
        let changed = sqlite.execute(
            "UPDATE oauth_connections SET tokens_sealed = ?4
             WHERE workspace_id = ?1 AND id = ?2 AND version = ?3 AND tokens_sealed IS NOT NULL",
            params![workspace.0, id, version, sealed],
        )?;
        Ok(changed == 1)
    }

    pub fn get_connection(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Connection, StoreError> {
        load(&*self.lock()?, workspace, id)
    }

    /// Renewed tokens (sealed) for a connection, written only if it is still at `version`
    /// and not disconnected (`None` otherwise: someone else changed it meanwhile). The
    /// connection becomes active; empty `scopes` keep the stored ones.
    pub fn renew_connection(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        version: i64,
        renewed: &RenewedTokens,
    ) -> Result<Option<Connection>, StoreError> {
        let scopes = (!renewed.scopes.is_empty())
            .then(|| to_json(&renewed.scopes))
            .transpose()?;
        let mut sqlite = self.lock()?;
        let transaction = sqlite.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = transaction.execute(
            "UPDATE oauth_connections SET tokens_sealed = ?4, access_expires_at_ms = ?5,
                 scopes = coalesce(?6, scopes), refreshed_at_ms = ?7, status = 'active',
                 status_message = NULL, version = version + 1, updated_at = ?8
             WHERE workspace_id = ?1 AND id = ?2 AND version = ?3 AND status != 'disconnected'",
            params![
                workspace.0,
                id,
                version,
                renewed.sealed,
                renewed.access_expires_at_ms,
                scopes,
                renewed.at_ms,
                now_text(),
            ],
        )?;
        if changed == 0 {
            // Not found is an error; a stale version is not.
            load(&transaction, workspace, id)?;
            return Ok(None);
        }
        let connection = load(&transaction, workspace, id)?;
        transaction.commit()?;
        Ok(Some(connection))
    }

    /// Marks a connection active or in need of reauthorization, with a message, if it is not
    /// disconnected and (when `version` is given) still at that version. The version moves
    /// only when the status or the message changes. `None` when nothing was written.
    pub fn mark_connection(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        version: Option<i64>,
        status: ConnectionStatus,
        message: Option<&str>,
    ) -> Result<Option<Connection>, StoreError> {
        if status == ConnectionStatus::Disconnected {
            return Err(StoreError::Invalid {
                field: "status",
                message: "a connection is disconnected with disconnect_connection".into(),
            });
        }
        let mut sqlite = self.lock()?;
        let transaction = sqlite.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = load(&transaction, workspace, id)?;
        let stale = version.is_some_and(|version| version != current.version);
        let same = current.status == status && current.status_message.as_deref() == message;
        if stale || same || current.status == ConnectionStatus::Disconnected {
            return Ok(None);
        }
        transaction.execute(
            "UPDATE oauth_connections SET status = ?3, status_message = ?4,
                 version = version + 1, updated_at = ?5
             WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id, status.as_str(), message, now_text()],
        )?;
        let connection = load(&transaction, workspace, id)?;
        transaction.commit()?;
        Ok(Some(connection))
    }

    /// Disconnects: the sealed tokens are deleted (overwritten: `secure_delete`), the status
    /// becomes `disconnected` with `message`, and the provider's answer to the revocation is
    /// kept.
    pub fn disconnect_connection(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        message: &str,
        revocation: &str,
    ) -> Result<Connection, StoreError> {
        let mut sqlite = self.lock()?;
        let transaction = sqlite.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = transaction.execute(
            "UPDATE oauth_connections SET status = 'disconnected', status_message = ?3,
                 tokens_sealed = NULL, access_expires_at_ms = NULL, revocation = ?4,
                 version = version + 1, updated_at = ?5
             WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id, message, revocation, now_text()],
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        let connection = load(&transaction, workspace, id)?;
        transaction.commit()?;
        Ok(connection)
    }

    /// Active connections of every workspace whose access token expires before `before_ms`,
    /// soonest first: what the background renewal looks at. Each names its workspace.
    pub fn connections_to_renew(&self, before_ms: i64) -> Result<Vec<Connection>, StoreError> {
        let sqlite = self.lock()?;
        let mut statement = sqlite.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM oauth_connections
             WHERE status = 'active' AND access_expires_at_ms IS NOT NULL
               AND access_expires_at_ms < ?1
             ORDER BY access_expires_at_ms, id"
        ))?;
        let rows = statement.query_map([before_ms], row_to_connection)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The workspace's destinations (enabled or not) whose settings name the connection
    /// (`"connection_id"`).
    pub fn destinations_using_connection(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Vec<Destination>, StoreError> {
        load_all(
            &*self.lock()?,
            "WHERE workspace_id = ?1 AND json_extract(settings_plain, '$.connection_id') = ?2",
            params![workspace.0, id],
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::destinations::{DeliveryOptions, DestinationId, NewDestination, StoredSettings};

    fn store() -> (tempfile::TempDir, StateStore, WorkspaceId, WorkspaceId) {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(&dir.path().join("state.db")).unwrap();
        let (workspace, _) = state.ensure_default_workspace().unwrap();
        let other = state.create_workspace("other").unwrap();
        (dir, state, workspace.id, other.id)
    }

    fn tokens(id: &str, provider: &str, sealed: &[u8]) -> ConnectedTokens {
        ConnectedTokens {
            id: id.into(),
            provider: provider.into(),
            label: Some(" Ads account ".into()),
            scopes: vec!["ads_management".into()],
            accounts: vec![],
            sealed: sealed.to_vec(),
            access_expires_at_ms: Some(10_000),
            at_ms: 1_000,
        }
    }

    fn renewal(sealed: &[u8], access_expires_at_ms: Option<i64>, at_ms: i64) -> RenewedTokens {
        RenewedTokens {
            sealed: sealed.to_vec(),
            access_expires_at_ms,
            scopes: vec![],
            at_ms,
        }
    }

    fn pending(workspace: &WorkspaceId, expires_at_ms: i64) -> PendingRecord {
        PendingRecord {
            workspace_id: workspace.clone(),
            label: None,
            sealed: b"sealed-pending".to_vec(),
            expires_at_ms,
        }
    }

    #[test]
    fn a_pending_authorization_is_taken_once_and_expired_ones_go() {
        let (_dir, state, ws, other) = store();
        state
            .add_pending_authorization("key-a", &pending(&ws, 5_000), 1_000)
            .unwrap();
        state
            .add_pending_authorization("key-b", &pending(&other, 2_000), 1_000)
            .unwrap();
        assert!(matches!(
            state.add_pending_authorization("key-a", &pending(&ws, 5_000), 1_000),
            Err(StoreError::Sqlite(_))
        ));
        assert_eq!(state.count_pending_authorizations(&ws).unwrap(), 1);

        let taken = state.take_pending_authorization("key-a").unwrap().unwrap();
        assert_eq!(taken.workspace_id, ws);
        assert_eq!(taken.sealed, b"sealed-pending");
        assert_eq!(taken.expires_at_ms, 5_000);
        assert!(!format!("{taken:?}").contains("sealed-pending"));
        assert_eq!(state.take_pending_authorization("key-a").unwrap(), None);
        assert_eq!(state.take_pending_authorization("never").unwrap(), None);

        // Adding one at 3000 drops key-b, expired at 2000.
        state
            .add_pending_authorization("key-c", &pending(&ws, 9_000), 3_000)
            .unwrap();
        assert_eq!(state.count_pending_authorizations(&other).unwrap(), 0);
        assert_eq!(state.take_pending_authorization("key-b").unwrap(), None);
    }

    #[test]
    fn connections_are_kept_per_workspace_and_versioned() {
        let (_dir, state, ws, other) = store();
        let id = new_connection_id().unwrap();
        assert!(id.starts_with("conn_") && id.len() == 25);
        let connection = state
            .connect(&ws, tokens(&id, "meta", b"sealed-1"))
            .unwrap();
        assert_eq!(connection.status, ConnectionStatus::Active);
        assert_eq!(connection.version, 1);
        assert_eq!(connection.label.as_deref(), Some("Ads account"));
        assert_eq!(connection.tokens.as_deref(), Some(&b"sealed-1"[..]));
        assert!(!format!("{connection:?}").contains("sealed-1"));

        // Another workspace sees nothing, and cannot take the id over.
        assert!(matches!(
            state.get_connection(&other, &id),
            Err(StoreError::NotFound { .. })
        ));
        assert!(state.list_connections(&other).unwrap().is_empty());
        assert!(matches!(
            state.connect(&other, tokens(&id, "meta", b"x")),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            state.connect(&ws, tokens(&id, "google", b"x")),
            Err(StoreError::Invalid {
                field: "provider",
                ..
            })
        ));

        // Renewal: only at the version read.
        let renewed = state
            .renew_connection(&ws, &id, 1, &renewal(b"sealed-2", Some(20_000), 2_000))
            .unwrap()
            .unwrap();
        assert_eq!(renewed.version, 2);
        assert_eq!(renewed.scopes, ["ads_management"]);
        assert_eq!(renewed.refreshed_at_ms, Some(2_000));
        assert_eq!(
            state
                .renew_connection(&ws, &id, 1, &renewal(b"stale", Some(1), 2_000))
                .unwrap(),
            None
        );
        assert!(matches!(
            state.renew_connection(&other, &id, 2, &renewal(b"x", None, 0)),
            Err(StoreError::NotFound { .. })
        ));

        // Marking: the version moves only on a change.
        let marked = state
            .mark_connection(
                &ws,
                &id,
                Some(2),
                ConnectionStatus::NeedsReauthorization,
                Some("meta refused the token"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(marked.version, 3);
        assert_eq!(
            state
                .mark_connection(
                    &ws,
                    &id,
                    None,
                    ConnectionStatus::NeedsReauthorization,
                    Some("meta refused the token")
                )
                .unwrap(),
            None
        );
        assert_eq!(
            state
                .mark_connection(&ws, &id, Some(2), ConnectionStatus::Active, None)
                .unwrap(),
            None,
            "a stale version writes nothing"
        );
        assert_eq!(state.connections_to_renew(i64::MAX).unwrap().len(), 0);

        // Connecting again makes it active with new tokens.
        let again = state
            .connect(&ws, tokens(&id, "meta", b"sealed-3"))
            .unwrap();
        assert_eq!(again.status, ConnectionStatus::Active);
        assert_eq!(again.status_message, None);
        assert_eq!(again.version, 4);
        assert_eq!(again.created_at, connection.created_at);
        let due = state.connections_to_renew(10_001).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].workspace_id, ws);
        assert!(state.connections_to_renew(10_000).unwrap().is_empty());

        // Disconnecting deletes the tokens.
        let gone = state
            .disconnect_connection(&ws, &id, "disconnected by an admin", "revoked")
            .unwrap();
        assert_eq!(gone.status, ConnectionStatus::Disconnected);
        assert_eq!(gone.tokens, None);
        assert_eq!(gone.revocation.as_deref(), Some("revoked"));
        assert_eq!(gone.version, 5);
        assert_eq!(
            state
                .renew_connection(&ws, &id, 5, &renewal(b"late", None, 0))
                .unwrap(),
            None
        );
        assert_eq!(
            state
                .mark_connection(&ws, &id, None, ConnectionStatus::Active, None)
                .unwrap(),
            None
        );
        assert!(matches!(
            state.disconnect_connection(&other, &id, "x", "x"),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(state.list_connections(&ws).unwrap().len(), 1);
    }

    #[test]
    fn resealing_swaps_the_sealed_tokens_only_at_the_version_read() {
        let (_dir, state, ws, other) = store();
        let kept = new_connection_id().unwrap();
        state.connect(&ws, tokens(&kept, "meta", b"old-a")).unwrap();
        let second = new_connection_id().unwrap();
        state
            .connect(&other, tokens(&second, "google", b"old-b"))
            .unwrap();
        let gone = new_connection_id().unwrap();
        state
            .connect(&ws, tokens(&gone, "tiktok", b"old-c"))
            .unwrap();
        state
            .disconnect_connection(&ws, &gone, "disconnected by an admin", "revoked")
            .unwrap();

        // Every workspace's connections with tokens; the disconnected one has none.
        let all = state.all_connections_with_tokens().unwrap();
        let mut ids: Vec<&str> = all.iter().map(|c| c.id.as_str()).collect();
        ids.sort_unstable();
        let mut expected = vec![kept.as_str(), second.as_str()];
        expected.sort_unstable();
        assert_eq!(ids, expected);

        assert!(state.reseal_connection(&ws, &kept, 1, b"new-a").unwrap());
        let after = state.get_connection(&ws, &kept).unwrap();
        assert_eq!(after.tokens.as_deref(), Some(&b"new-a"[..]));
        assert_eq!(after.version, 1, "the same tokens: the version stays");
        // A renewal came first: the reseal writes nothing.
        state
            .renew_connection(&other, &second, 1, &renewal(b"renewed", None, 5))
            .unwrap();
        assert!(
            !state
                .reseal_connection(&other, &second, 1, b"stale")
                .unwrap()
        );
        let renewed = state.get_connection(&other, &second).unwrap();
        assert_eq!(renewed.tokens.as_deref(), Some(&b"renewed"[..]));
        // Nor across workspaces, nor on a disconnected connection.
        assert!(!state.reseal_connection(&other, &kept, 1, b"x").unwrap());
        assert!(!state.reseal_connection(&ws, &gone, 2, b"x").unwrap());
        assert_eq!(state.get_connection(&ws, &gone).unwrap().tokens, None);
    }

    #[test]
    fn destinations_using_a_connection_are_found_by_their_settings() {
        let (_dir, state, ws, other) = store();
        let destination = |name: &str, settings: serde_json::Value| NewDestination {
            id: DestinationId::generate(),
            name: name.into(),
            kind: "meta_audiences".into(),
            enabled: true,
            settings: StoredSettings {
                plain: settings.as_object().unwrap().clone(),
                sealed: b"sealed".to_vec(),
                sealed_fields: vec![],
            },
            consent_categories: vec![],
            advertising: true,
            delivery: DeliveryOptions::default(),
            sources: vec![],
        };
        let a = state
            .create_destination(&ws, destination("a", json!({"connection_id": "conn_1"})))
            .unwrap();
        state
            .create_destination(&ws, destination("b", json!({"connection_id": "conn_2"})))
            .unwrap();
        state
            .create_destination(&ws, destination("c", json!({"ad_account_id": "1"})))
            .unwrap();
        state
            .create_destination(&other, destination("d", json!({"connection_id": "conn_1"})))
            .unwrap();
        let using = state.destinations_using_connection(&ws, "conn_1").unwrap();
        assert_eq!(using.len(), 1);
        assert_eq!(using[0].id, a.id);
        assert!(
            state
                .destinations_using_connection(&ws, "conn_9")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn labels_are_checked() {
        assert_eq!(check_label(Some("  ")).unwrap(), None);
        assert_eq!(check_label(Some(" x ")).unwrap().as_deref(), Some("x"));
        assert!(check_label(Some("a\nb")).is_err());
        assert!(check_label(Some(&"a".repeat(101))).is_err());
    }
}
