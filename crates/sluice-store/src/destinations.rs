//! Destination instances and their connections to sources, in `state.db`.
//!
//! A destination is a type (`webhook`, `mixpanel`...) with settings, consent categories and
//! delivery options, connected to sources of its own workspace. Its settings arrive split in
//! two: the non-secret ones as JSON, and the credentials already sealed by the caller (the
//! vault in `sluice-privacy`): this store never sees a secret in clear, it keeps the sealed
//! bytes and the names of the fields inside them.
//!
//! Every function takes the workspace the destination must belong to; a destination or a
//! source of another workspace is "not found". Only [`StateStore::all_destinations`] and
//! [`StateStore::all_enabled_destinations`] cross workspaces, for the delivery engine and key
//! rotation, and every record they return names its workspace.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::state::{check_name, is_unique_violation, now_text};
use crate::{StateStore, StoreError, WorkspaceId};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS destinations (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    settings_plain TEXT NOT NULL,
    settings_sealed BLOB NOT NULL,
    sealed_fields TEXT NOT NULL,
    consent_categories TEXT NOT NULL,
    delivery TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (workspace_id, name)
);
CREATE TABLE IF NOT EXISTS destination_sources (
    destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    source_id TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    PRIMARY KEY (destination_id, source_id)
);
CREATE INDEX IF NOT EXISTS destination_sources_by_source ON destination_sources(source_id);
CREATE TABLE IF NOT EXISTS destination_filters (
    destination_id TEXT NOT NULL REFERENCES destinations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    filter TEXT NOT NULL,
    PRIMARY KEY (destination_id, position)
);
";

/// A destination id: a random UUID (v4), lowercase with hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DestinationId(pub String);

impl DestinationId {
    pub fn generate() -> DestinationId {
        DestinationId(uuid::Uuid::new_v4().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for DestinationId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The associated data a destination's secret settings are sealed with: workspace,
/// destination, `"settings"`. A sealed blob copied to another row or workspace does not open.
pub fn settings_context<'a>(workspace: &'a WorkspaceId, id: &'a DestinationId) -> [&'a str; 3] {
    [workspace.0.as_str(), id.0.as_str(), "settings"]
}

/// How the delivery engine treats one destination. Missing fields take their defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryOptions {
    /// Most requests to the tool at once (1 to 256).
    pub max_in_flight: u32,
    /// Most requests per second, when the tool imposes a limit (1 to 100,000).
    pub rate_limit_per_sec: Option<u32>,
    /// An event still failing this long after its first attempt is dead-lettered (60 s to
    /// 30 days).
    pub retry_max_age_secs: u64,
    /// An event is dead-lettered after this many failed attempts (1 to 1,000).
    pub retry_max_attempts: u32,
}

impl Default for DeliveryOptions {
    fn default() -> DeliveryOptions {
        DeliveryOptions {
            max_in_flight: 8,
            rate_limit_per_sec: None,
            retry_max_age_secs: 4 * 60 * 60,
            retry_max_attempts: 25,
        }
    }
}

impl DeliveryOptions {
    /// Refuses values the engine cannot honour, naming the field.
    pub fn check(&self) -> Result<(), StoreError> {
        fn within<T: PartialOrd>(
            value: T,
            low: T,
            high: T,
            field: &'static str,
            message: &str,
        ) -> Result<(), StoreError> {
            if value < low || value > high {
                return Err(StoreError::Invalid {
                    field,
                    message: message.to_owned(),
                });
            }
            Ok(())
        }
        within(
            self.max_in_flight,
            1,
            256,
            "delivery.max_in_flight",
            "must be 1 to 256",
        )?;
        if let Some(rate) = self.rate_limit_per_sec {
            within(
                rate,
                1,
                100_000,
                "delivery.rate_limit_per_sec",
                "must be 1 to 100000, or null for no limit",
            )?;
        }
        within(
            self.retry_max_age_secs,
            60,
            30 * 24 * 60 * 60,
            "delivery.retry_max_age_secs",
            "must be 60 to 2592000 (30 days)",
        )?;
        within(
            self.retry_max_attempts,
            1,
            1000,
            "delivery.retry_max_attempts",
            "must be 1 to 1000",
        )
    }
}

/// A destination's settings as stored: the non-secret ones in clear, the secret ones sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSettings {
    /// The non-secret settings.
    pub plain: Map<String, Value>,
    /// The JSON object of the secret settings, sealed by the vault.
    pub sealed: Vec<u8>,
    /// The names of the settings inside `sealed` (not secret: for showing them redacted).
    pub sealed_fields: Vec<String>,
}

impl std::fmt::Debug for StoredSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSettings")
            .field("plain_fields", &self.plain.keys().collect::<Vec<_>>())
            .field("sealed_bytes", &self.sealed.len())
            .field("sealed_fields", &self.sealed_fields)
            .finish()
    }
}

/// A destination with the ids of its sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub id: DestinationId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// The destination type (`webhook`, `mixpanel`...).
    pub kind: String,
    pub enabled: bool,
    pub settings: StoredSettings,
    pub consent_categories: Vec<String>,
    /// The destination uses data for advertising, or sells or shares it: events with a
    /// Global Privacy Control signal and people who opted out of sale never reach it.
    pub advertising: bool,
    pub delivery: DeliveryOptions,
    /// Ids of the connected sources, sorted.
    pub sources: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A destination to create. The caller picks the id, since the sealed settings are bound to
/// it.
#[derive(Debug, Clone)]
pub struct NewDestination {
    pub id: DestinationId,
    pub name: String,
    pub kind: String,
    pub enabled: bool,
    pub settings: StoredSettings,
    pub consent_categories: Vec<String>,
    pub advertising: bool,
    pub delivery: DeliveryOptions,
    /// Source ids of the same workspace.
    pub sources: Vec<String>,
}

/// What to change in a destination; `None` keeps the current value. `sources` replaces the
/// whole set.
#[derive(Debug, Clone, Default)]
pub struct DestinationChange {
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub settings: Option<StoredSettings>,
    pub consent_categories: Option<Vec<String>>,
    pub advertising: Option<bool>,
    pub delivery: Option<DeliveryOptions>,
    pub sources: Option<Vec<String>>,
}

const COLUMNS: &str = "id, workspace_id, name, kind, enabled, settings_plain, settings_sealed, \
                       sealed_fields, consent_categories, delivery, created_at, updated_at, advertising";

/// Brings a `destinations` table of an older layout up to date.
pub(crate) fn migrate(connection: &Connection) -> Result<(), StoreError> {
    let has_advertising: i64 = connection.query_row(
        "SELECT count(*) FROM pragma_table_info('destinations') WHERE name = 'advertising'",
        [],
        |row| row.get(0),
    )?;
    if has_advertising == 0 {
        connection.execute_batch(
            "ALTER TABLE destinations ADD COLUMN advertising INTEGER NOT NULL DEFAULT 0",
        )?;
    }
    Ok(())
}

const MAX_CATEGORIES: usize = 50;

fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(error))
    })
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::CommitFailed(error.to_string()))
}

/// A destination row without its sources.
fn row_to_destination(row: &rusqlite::Row<'_>) -> rusqlite::Result<Destination> {
    Ok(Destination {
        id: DestinationId(row.get(0)?),
        workspace_id: WorkspaceId(row.get(1)?),
        name: row.get(2)?,
        kind: row.get(3)?,
        enabled: row.get(4)?,
        settings: StoredSettings {
            plain: json_column(row, 5)?,
            sealed: row.get(6)?,
            sealed_fields: json_column(row, 7)?,
        },
        consent_categories: json_column(row, 8)?,
        advertising: row.get(12)?,
        delivery: json_column(row, 9)?,
        sources: Vec::new(),
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
    })
}

fn check_kind(kind: &str) -> Result<(), StoreError> {
    let valid = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !valid {
        return Err(StoreError::Invalid {
            field: "type",
            message: "must be 1 to 64 lowercase letters, digits, '_' or '-'".into(),
        });
    }
    Ok(())
}

/// Trims, de-duplicates (keeping the first) and checks consent categories.
fn check_categories(categories: Vec<String>) -> Result<Vec<String>, StoreError> {
    let mut checked: Vec<String> = Vec::with_capacity(categories.len());
    for category in categories {
        let category = category.trim().to_owned();
        if category.is_empty()
            || category.chars().count() > 100
            || category.chars().any(char::is_control)
        {
            return Err(StoreError::Invalid {
                field: "consent_categories",
                message: "each category must be 1 to 100 characters without control characters"
                    .into(),
            });
        }
        if !checked.contains(&category) {
            checked.push(category);
        }
    }
    if checked.len() > MAX_CATEGORIES {
        return Err(StoreError::Invalid {
            field: "consent_categories",
            message: format!("at most {MAX_CATEGORIES} categories"),
        });
    }
    Ok(checked)
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "destination",
        id: id.to_owned(),
    }
}

/// Reads one destination of `workspace` with its sources.
fn load(
    connection: &Connection,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<Destination, StoreError> {
    let mut destination = connection
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM destinations WHERE workspace_id = ?1 AND id = ?2"
        ))?
        .query_row(params![workspace.0, id], row_to_destination)
        .optional()?
        .ok_or_else(|| not_found(id))?;
    destination.sources = sources_of(connection, &destination.id)?;
    Ok(destination)
}

fn sources_of(connection: &Connection, id: &DestinationId) -> Result<Vec<String>, StoreError> {
    let mut statement = connection.prepare_cached(
        "SELECT source_id FROM destination_sources WHERE destination_id = ?1 ORDER BY source_id",
    )?;
    let mut sources = Vec::new();
    for row in statement.query_map([&id.0], |row| row.get(0))? {
        sources.push(row?);
    }
    Ok(sources)
}

/// Every destination a query selects, with their sources.
pub(crate) fn load_all(
    connection: &Connection,
    filter: &str,
    parameters: impl rusqlite::Params,
) -> Result<Vec<Destination>, StoreError> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM destinations {filter} ORDER BY created_at, id"
    ))?;
    let mut destinations = statement
        .query_map(parameters, row_to_destination)?
        .collect::<Result<Vec<_>, _>>()?;
    for destination in &mut destinations {
        destination.sources = sources_of(connection, &destination.id)?;
    }
    Ok(destinations)
}

/// Replaces the sources of a destination; every one must belong to `workspace`.
fn connect_sources(
    connection: &Connection,
    workspace: &WorkspaceId,
    id: &DestinationId,
    sources: &[String],
) -> Result<(), StoreError> {
    connection.execute(
        "DELETE FROM destination_sources WHERE destination_id = ?1",
        [&id.0],
    )?;
    for source in sources {
        let known = connection
            .prepare_cached("SELECT 1 FROM sources WHERE workspace_id = ?1 AND id = ?2")?
            .exists(params![workspace.0, source])?;
        if !known {
            return Err(StoreError::NotFound {
                kind: "source",
                id: source.clone(),
            });
        }
        connection.execute(
            "INSERT OR IGNORE INTO destination_sources(destination_id, source_id) VALUES (?1, ?2)",
            params![id.0, source],
        )?;
    }
    Ok(())
}

fn name_taken(error: &rusqlite::Error, name: &str) -> Option<StoreError> {
    is_unique_violation(error).then(|| StoreError::AlreadyExists(format!("destination {name}")))
}

impl StateStore {
    /// Replaces a destination's filters (JSON objects, already validated by the caller, in
    /// the order they apply) and marks the destination updated.
    pub fn set_destination_filters(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        filters: &[Value],
    ) -> Result<(), StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let touched = transaction.execute(
            "UPDATE destinations SET updated_at = ?3 WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id, now_text()],
        )?;
        if touched == 0 {
            return Err(not_found(id));
        }
        transaction.execute(
            "DELETE FROM destination_filters WHERE destination_id = ?1",
            [id],
        )?;
        for (position, filter) in filters.iter().enumerate() {
            transaction.execute(
                "INSERT INTO destination_filters(destination_id, position, filter)
                 VALUES (?1, ?2, ?3)",
                params![id, position as i64, to_json(filter)?],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// A destination's filters, in the order they apply.
    pub fn destination_filters(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Vec<Value>, StoreError> {
        let connection = self.lock()?;
        let known = connection
            .prepare_cached("SELECT 1 FROM destinations WHERE workspace_id = ?1 AND id = ?2")?
            .exists(params![workspace.0, id])?;
        if !known {
            return Err(not_found(id));
        }
        let mut statement = connection.prepare_cached(
            "SELECT filter FROM destination_filters WHERE destination_id = ?1 ORDER BY position",
        )?;
        let mut filters = Vec::new();
        for row in statement.query_map([id], |row| json_column::<Value>(row, 0))? {
            filters.push(row?);
        }
        Ok(filters)
    }

    /// Creates a destination connected to `new.sources` (sources of `workspace`).
    pub fn create_destination(
        &self,
        workspace: &WorkspaceId,
        new: NewDestination,
    ) -> Result<Destination, StoreError> {
        let name = check_name(&new.name)?;
        check_kind(&new.kind)?;
        let categories = check_categories(new.consent_categories)?;
        new.delivery.check()?;
        let now = now_text();
        let mut connection = self.lock()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let inserted = transaction.execute(
            &format!("INSERT INTO destinations({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12)"),
            params![
                new.id.0,
                workspace.0,
                name,
                new.kind,
                new.enabled,
                to_json(&new.settings.plain)?,
                new.settings.sealed,
                to_json(&new.settings.sealed_fields)?,
                to_json(&categories)?,
                to_json(&new.delivery)?,
                now,
                new.advertising,
            ],
        );
        if let Err(error) = inserted {
            return Err(name_taken(&error, &name).unwrap_or_else(|| error.into()));
        }
        connect_sources(&transaction, workspace, &new.id, &new.sources)?;
        let destination = load(&transaction, workspace, &new.id.0)?;
        transaction.commit()?;
        Ok(destination)
    }

    pub fn list_destinations(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<Destination>, StoreError> {
        load_all(&*self.lock()?, "WHERE workspace_id = ?1", [&workspace.0])
    }

    pub fn get_destination(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Destination, StoreError> {
        load(&*self.lock()?, workspace, id)
    }

    /// Finds a destination by id or by name within the workspace (for the CLI).
    pub fn find_destination(
        &self,
        workspace: &WorkspaceId,
        id_or_name: &str,
    ) -> Result<Destination, StoreError> {
        let connection = self.lock()?;
        let id: Option<String> = connection
            .query_row(
                "SELECT id FROM destinations WHERE workspace_id = ?1 AND (id = ?2 OR name = ?2)",
                params![workspace.0, id_or_name],
                |row| row.get(0),
            )
            .optional()?;
        load(
            &connection,
            workspace,
            &id.ok_or_else(|| not_found(id_or_name))?,
        )
    }

    /// Changes a destination in one transaction: `change` sees the current record (to merge
    /// settings, or to reseal them) and says what to write. Nothing is written when it fails.
    pub fn update_destination<E: From<StoreError>>(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        change: impl FnOnce(&Destination) -> Result<DestinationChange, E>,
    ) -> Result<Destination, E> {
        let mut connection = self.lock()?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let current = load(&transaction, workspace, id)?;
        let change = change(&current)?;
        apply(&transaction, &current, change)?;
        let updated = load(&transaction, workspace, id)?;
        transaction.commit().map_err(StoreError::from)?;
        Ok(updated)
    }

    /// Deletes a destination and its connections.
    pub fn delete_destination(&self, workspace: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        let changed = self.lock()?.execute(
            "DELETE FROM destinations WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id],
        )?;
        if changed == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Every destination of every workspace, with its sources. Workspace-internal plumbing
    /// (key rotation, startup checks): each record names its workspace.
    pub fn all_destinations(&self) -> Result<Vec<Destination>, StoreError> {
        load_all(&*self.lock()?, "", [])
    }

    /// Every enabled destination of every workspace, with its sources: what the delivery
    /// engine runs. Each record names its workspace.
    pub fn all_enabled_destinations(&self) -> Result<Vec<Destination>, StoreError> {
        load_all(&*self.lock()?, "WHERE enabled = 1", [])
    }
}

/// Writes `change` over `current` (same transaction as the read).
fn apply(
    connection: &Connection,
    current: &Destination,
    change: DestinationChange,
) -> Result<(), StoreError> {
    let name = match &change.name {
        Some(name) => check_name(name)?,
        None => current.name.clone(),
    };
    let categories = match change.consent_categories {
        Some(categories) => check_categories(categories)?,
        None => current.consent_categories.clone(),
    };
    let delivery = change.delivery.as_ref().unwrap_or(&current.delivery);
    delivery.check()?;
    let settings = change.settings.as_ref().unwrap_or(&current.settings);
    let updated = connection.execute(
        "UPDATE destinations SET name = ?1, enabled = ?2, settings_plain = ?3, settings_sealed = ?4,
             sealed_fields = ?5, consent_categories = ?6, delivery = ?7, updated_at = ?8,
             advertising = ?11
         WHERE workspace_id = ?9 AND id = ?10",
        params![
            name,
            change.enabled.unwrap_or(current.enabled),
            to_json(&settings.plain)?,
            settings.sealed,
            to_json(&settings.sealed_fields)?,
            to_json(&categories)?,
            to_json(delivery)?,
            now_text(),
            current.workspace_id.0,
            current.id.0,
            change.advertising.unwrap_or(current.advertising),
        ],
    );
    if let Err(error) = updated {
        return Err(name_taken(&error, &name).unwrap_or_else(|| error.into()));
    }
    if let Some(sources) = &change.sources {
        connect_sources(connection, &current.workspace_id, &current.id, sources)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        (dir, store)
    }

    fn settings(sealed: &[u8]) -> StoredSettings {
        StoredSettings {
            plain: json!({"url": "https://example.com/hook"})
                .as_object()
                .unwrap()
                .clone(),
            sealed: sealed.to_vec(),
            sealed_fields: vec!["secret".into()],
        }
    }

    fn new(name: &str, sources: Vec<String>) -> NewDestination {
        NewDestination {
            id: DestinationId::generate(),
            name: name.into(),
            kind: "webhook".into(),
            enabled: true,
            settings: settings(b"sealed-bytes"),
            consent_categories: vec!["analytics".into()],
            advertising: false,
            delivery: DeliveryOptions::default(),
            sources,
        }
    }

    #[test]
    fn delivery_options_default_and_check() {
        let options: DeliveryOptions = serde_json::from_str("{}").unwrap();
        assert_eq!(options.max_in_flight, 8);
        assert_eq!(options.rate_limit_per_sec, None);
        assert_eq!(options.retry_max_age_secs, 14_400);
        assert_eq!(options.retry_max_attempts, 25);
        let partial: DeliveryOptions = serde_json::from_str(r#"{"max_in_flight": 2}"#).unwrap();
        assert_eq!(partial.max_in_flight, 2);
        assert_eq!(partial.retry_max_attempts, 25);
        assert!(serde_json::from_str::<DeliveryOptions>(r#"{"max_inflight": 2}"#).is_err());
        options.check().unwrap();
        for (bad, field) in [
            (json!({"max_in_flight": 0}), "delivery.max_in_flight"),
            (json!({"max_in_flight": 257}), "delivery.max_in_flight"),
            (
                json!({"rate_limit_per_sec": 0}),
                "delivery.rate_limit_per_sec",
            ),
            (
                json!({"retry_max_age_secs": 59}),
                "delivery.retry_max_age_secs",
            ),
            (
                json!({"retry_max_attempts": 0}),
                "delivery.retry_max_attempts",
            ),
        ] {
            let options: DeliveryOptions = serde_json::from_value(bad).unwrap();
            assert!(
                matches!(options.check(), Err(StoreError::Invalid { field: f, .. }) if f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn filters_are_kept_in_order_per_destination_and_workspace() {
        let (_dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let other = store.create_workspace("other").unwrap();
        let created = store
            .create_destination(&ws.id, new("hook", vec![]))
            .unwrap();
        assert!(
            store
                .destination_filters(&ws.id, &created.id.0)
                .unwrap()
                .is_empty()
        );
        let filters = vec![
            json!({"if": "all", "actions": [{"type": "DROP"}]}),
            json!({"if": "event = 'a'"}),
        ];
        store
            .set_destination_filters(&ws.id, &created.id.0, &filters)
            .unwrap();
        assert_eq!(
            store.destination_filters(&ws.id, &created.id.0).unwrap(),
            filters
        );
        let updated = store.get_destination(&ws.id, &created.id.0).unwrap();
        assert!(updated.updated_at >= created.updated_at);
        // Another workspace neither reads nor writes them.
        assert!(matches!(
            store.destination_filters(&other.id, &created.id.0),
            Err(StoreError::NotFound { .. })
        ));
        assert!(matches!(
            store.set_destination_filters(&other.id, &created.id.0, &[]),
            Err(StoreError::NotFound { .. })
        ));
        store
            .set_destination_filters(&ws.id, &created.id.0, &filters[1..])
            .unwrap();
        assert_eq!(
            store.destination_filters(&ws.id, &created.id.0).unwrap(),
            filters[1..]
        );
        store.delete_destination(&ws.id, &created.id.0).unwrap();
        assert!(store.destination_filters(&ws.id, &created.id.0).is_err());
    }

    #[test]
    fn destination_lifecycle() {
        let (_dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let (web, _) = store.create_source(&ws.id, "web").unwrap();
        let (app, _) = store.create_source(&ws.id, "app").unwrap();
        let created = store
            .create_destination(&ws.id, new("hook", vec![web.id.clone(), web.id.clone()]))
            .unwrap();
        assert_eq!(created.sources, vec![web.id.clone()], "duplicates collapse");
        assert_eq!(created.workspace_id, ws.id);
        assert_eq!(created.settings.sealed, b"sealed-bytes");
        assert_eq!(created.consent_categories, ["analytics"]);
        assert_eq!(created.created_at, created.updated_at);
        assert_eq!(
            store.get_destination(&ws.id, &created.id.0).unwrap(),
            created
        );
        assert_eq!(
            store.find_destination(&ws.id, "hook").unwrap().id,
            created.id
        );

        assert!(matches!(
            store.create_destination(&ws.id, new("hook", vec![])),
            Err(StoreError::AlreadyExists(_))
        ));

        let updated = store
            .update_destination(&ws.id, &created.id.0, |current| {
                assert_eq!(current.name, "hook");
                Ok::<_, StoreError>(DestinationChange {
                    name: Some("renamed".into()),
                    enabled: Some(false),
                    settings: Some(settings(b"resealed")),
                    sources: Some(vec![app.id.clone(), web.id.clone()]),
                    ..DestinationChange::default()
                })
            })
            .unwrap();
        assert_eq!(updated.name, "renamed");
        assert!(!updated.enabled);
        assert_eq!(updated.settings.sealed, b"resealed");
        let mut both = vec![app.id.clone(), web.id.clone()];
        both.sort();
        assert_eq!(updated.sources, both);
        assert_eq!(updated.consent_categories, ["analytics"], "kept");
        assert!(store.all_enabled_destinations().unwrap().is_empty());
        assert_eq!(store.all_destinations().unwrap().len(), 1);

        // A failing change writes nothing.
        let failed = store.update_destination(&ws.id, &created.id.0, |_| {
            Ok::<_, StoreError>(DestinationChange {
                name: Some("again".into()),
                sources: Some(vec!["src_missing".into()]),
                ..DestinationChange::default()
            })
        });
        assert!(matches!(
            failed,
            Err(StoreError::NotFound { kind: "source", .. })
        ));
        assert_eq!(
            store.get_destination(&ws.id, &created.id.0).unwrap(),
            updated
        );

        // Deleting a source drops its connections.
        store.delete_source(&ws.id, &app.id).unwrap();
        assert_eq!(
            store
                .get_destination(&ws.id, &created.id.0)
                .unwrap()
                .sources,
            vec![web.id.clone()]
        );

        store.delete_destination(&ws.id, &created.id.0).unwrap();
        assert!(store.list_destinations(&ws.id).unwrap().is_empty());
        assert!(matches!(
            store.delete_destination(&ws.id, &created.id.0),
            Err(StoreError::NotFound {
                kind: "destination",
                ..
            })
        ));
        // The source can go now that nothing points at it.
        store.delete_source(&ws.id, &web.id).unwrap();
    }

    #[test]
    fn destinations_are_invisible_across_workspaces() {
        let (_dir, store) = store();
        let (a, _) = store.ensure_default_workspace().unwrap();
        let b = store.create_workspace("other").unwrap();
        let (source_a, _) = store.create_source(&a.id, "web").unwrap();
        let (source_b, _) = store.create_source(&b.id, "web").unwrap();
        let destination = store
            .create_destination(&a.id, new("hook", vec![source_a.id.clone()]))
            .unwrap();
        let id = &destination.id.0;

        assert!(store.get_destination(&b.id, id).is_err());
        assert!(store.find_destination(&b.id, "hook").is_err());
        assert!(store.list_destinations(&b.id).unwrap().is_empty());
        assert!(store.delete_destination(&b.id, id).is_err());
        let touched = store.update_destination(&b.id, id, |_| {
            Ok::<_, StoreError>(DestinationChange {
                enabled: Some(false),
                ..DestinationChange::default()
            })
        });
        assert!(matches!(
            touched,
            Err(StoreError::NotFound {
                kind: "destination",
                ..
            })
        ));

        // A source of another workspace cannot be connected, on create or on update.
        assert!(matches!(
            store.create_destination(&a.id, new("cross", vec![source_b.id.clone()])),
            Err(StoreError::NotFound { kind: "source", ref id }) if *id == source_b.id
        ));
        assert!(
            store.find_destination(&a.id, "cross").is_err(),
            "rolled back"
        );
        let cross = store.update_destination(&a.id, id, |_| {
            Ok::<_, StoreError>(DestinationChange {
                sources: Some(vec![source_b.id.clone()]),
                ..DestinationChange::default()
            })
        });
        assert!(matches!(
            cross,
            Err(StoreError::NotFound { kind: "source", .. })
        ));

        // The same name is fine in another workspace; the engine's view names each one's.
        let other = store
            .create_destination(&b.id, new("hook", vec![source_b.id.clone()]))
            .unwrap();
        let all = store.all_enabled_destinations().unwrap();
        assert_eq!(all.len(), 2);
        for destination in all {
            let expected = if destination.id == other.id {
                (&b.id, &source_b.id)
            } else {
                (&a.id, &source_a.id)
            };
            assert_eq!(
                (&destination.workspace_id, &destination.sources[0]),
                expected
            );
        }
    }

    #[test]
    fn names_kinds_and_categories_are_checked() {
        let (_dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let mut bad_name = new("", vec![]);
        bad_name.name = " ".into();
        assert!(matches!(
            store.create_destination(&ws.id, bad_name),
            Err(StoreError::Invalid { field: "name", .. })
        ));
        let mut bad_kind = new("k", vec![]);
        bad_kind.kind = "Web Hook".into();
        assert!(matches!(
            store.create_destination(&ws.id, bad_kind),
            Err(StoreError::Invalid { field: "type", .. })
        ));
        for categories in [
            vec![String::new()],
            vec!["a\nb".into()],
            (0..51).map(|n| n.to_string()).collect(),
        ] {
            let mut bad = new("c", vec![]);
            bad.consent_categories = categories;
            assert!(matches!(
                store.create_destination(&ws.id, bad),
                Err(StoreError::Invalid {
                    field: "consent_categories",
                    ..
                })
            ));
        }
        let mut fine = new("c", vec![]);
        fine.consent_categories = vec![" ads ".into(), "ads".into(), "analytics".into()];
        fine.delivery.rate_limit_per_sec = Some(10);
        let created = store.create_destination(&ws.id, fine).unwrap();
        assert_eq!(created.consent_categories, ["ads", "analytics"]);
        assert_eq!(created.delivery.rate_limit_per_sec, Some(10));
        assert!(store.list_destinations(&ws.id).unwrap().len() == 1);
    }

    #[test]
    fn the_database_never_holds_a_destination_secret_in_clear() {
        use sluice_privacy::{KeyId, KeyRing, MasterKey, Vault};

        let (dir, store) = store();
        let (ws, _) = store.ensure_default_workspace().unwrap();
        let vault = Vault::new(
            KeyRing::new(
                vec![(KeyId::parse("k1").unwrap(), MasterKey::generate().unwrap())],
                None,
            )
            .unwrap(),
        );
        let secret = "sk_live_very-secret-destination-credential";
        let mut destination = new("hook", vec![]);
        let id = destination.id.clone();
        let context = settings_context(&ws.id, &id);
        destination.settings.sealed = vault
            .seal(json!({ "secret": secret }).to_string().as_bytes(), &context)
            .unwrap();
        let stored = store.create_destination(&ws.id, destination).unwrap();
        // Updated twice, so old versions of the row could linger in free pages or the WAL.
        for _ in 0..2 {
            store
                .update_destination(&ws.id, &stored.id.0, |current| {
                    let mut settings = current.settings.clone();
                    settings.sealed =
                        vault.seal(json!({ "secret": secret }).to_string().as_bytes(), &context)?;
                    Ok::<_, Box<dyn std::error::Error>>(DestinationChange {
                        settings: Some(settings),
                        ..DestinationChange::default()
                    })
                })
                .map_err(|error| error.to_string())
                .unwrap();
        }
        let reread = store.get_destination(&ws.id, &stored.id.0).unwrap();
        let opened = vault.open(&reread.settings.sealed, &context).unwrap();
        assert!(String::from_utf8_lossy(&opened).contains(secret));

        let mut saw_the_row = false;
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
            saw_the_row |= bytes.windows(11).any(|w| w == b"example.com");
        }
        // The plain settings are in the files: the scan does read the rows.
        assert!(saw_the_row);
        drop(store);
    }

    #[test]
    fn debug_shows_no_settings() {
        let mut settings = settings(b"opaque");
        settings
            .plain
            .insert("channel".into(), json!("#private-channel-name"));
        let shown = format!("{settings:?}");
        assert!(!shown.contains("private-channel-name") && !shown.contains("example.com"));
        assert!(shown.contains("channel"));
    }
}
