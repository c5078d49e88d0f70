//! The data inventory: every field path seen per workspace, source and event, with its PII
//! class, when it was first and last seen and how many times — never a value — in its own
//! SQLite file (`inventory.db`).
//!
//! The inventory is built from the log by a consumer that keeps one cursor per source here,
//! committed with the rows it counted: after a crash the last batches are simply counted
//! again, so commits need not wait for an fsync, and the whole file can be rebuilt from the
//! log.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, params};

use crate::{StoreError, WorkspaceId, sqlite};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS fields (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    event_name TEXT NOT NULL,
    path TEXT NOT NULL,
    class TEXT,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id, event_type, event_name, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cursors (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id)
) WITHOUT ROWID;
";

/// A field seen in a batch of one source's events, already counted over the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSeen {
    pub event_type: String,
    /// The event's name for `track`, `''` for other types.
    pub event_name: String,
    pub path: String,
    /// The PII class, when any event of the batch had one at this path.
    pub class: Option<String>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub count: u64,
}

/// Which fields [`InventoryStore::list`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryQuery {
    pub source: Option<String>,
    /// An event name, or an event type for types without names (`identify`).
    pub event: Option<String>,
    pub class: Option<String>,
    pub limit: usize,
}

/// A field of the inventory: where it was seen, and what was counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryField {
    pub workspace_id: WorkspaceId,
    pub source_id: String,
    pub field: FieldSeen,
}

/// The data inventory. See the module documentation.
pub struct InventoryStore {
    connection: Mutex<Connection>,
}

impl InventoryStore {
    /// Opens (creating if needed) `inventory.db` at `path`.
    pub fn open(path: &Path) -> Result<InventoryStore, StoreError> {
        let connection = sqlite::open(path)?;
        // Rebuilt from the log, cursors committed with the counts: see the module
        // documentation.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        connection.execute_batch(SCHEMA)?;
        Ok(InventoryStore {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.connection
            .lock()
            .map_err(|_| StoreError::CommitFailed("inventory store lock poisoned".into()))
    }

    /// Gives back the memory SQLite holds for this store (see `sqlite::release_memory`).
    pub fn release_memory(&self) -> Result<(), StoreError> {
        sqlite::release_memory(&self.connection)
    }

    /// The last sequence number of the source counted into the inventory (0 before any).
    pub fn cursor(&self, workspace: &WorkspaceId, source: &str) -> Result<i64, StoreError> {
        let connection = self.lock()?;
        sqlite::read_cursor(&connection, "cursors", workspace, source)
    }

    /// Adds a batch of the source's fields and moves its cursor to `last_seq`, in one
    /// transaction. A field already known has its count added, its first and last seen times
    /// widened, and its class replaced only by a class (never by none).
    pub fn record(
        &self,
        workspace: &WorkspaceId,
        source: &str,
        last_seq: i64,
        seen: &[FieldSeen],
    ) -> Result<(), StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        {
            let mut upsert = transaction.prepare_cached(
                "INSERT INTO fields(workspace_id, source_id, event_type, event_name, path, class,
                     first_seen_ms, last_seen_ms, count)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT(workspace_id, source_id, event_type, event_name, path) DO UPDATE SET
                     class = coalesce(excluded.class, fields.class),
                     first_seen_ms = min(fields.first_seen_ms, excluded.first_seen_ms),
                     last_seen_ms = max(fields.last_seen_ms, excluded.last_seen_ms),
                     count = fields.count + excluded.count",
            )?;
            for field in seen {
                upsert.execute(params![
                    workspace.0,
                    source,
                    field.event_type,
                    field.event_name,
                    field.path,
                    field.class,
                    field.first_seen_ms,
                    field.last_seen_ms,
                    i64::try_from(field.count).unwrap_or(i64::MAX),
                ])?;
            }
        }
        sqlite::save_cursor(&transaction, "cursors", workspace, source, last_seq)?;
        transaction.commit()?;
        Ok(())
    }

    /// The workspace's fields that match the query, by source, event type, event name and
    /// path; at most `query.limit`.
    pub fn list(
        &self,
        workspace: &WorkspaceId,
        query: &InventoryQuery,
    ) -> Result<Vec<InventoryField>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT workspace_id, source_id, event_type, event_name, path, class, first_seen_ms,
                 last_seen_ms, count
             FROM fields
             WHERE workspace_id = ?1
                 AND (?2 IS NULL OR source_id = ?2)
                 AND (?3 IS NULL OR event_name = ?3 OR (event_name = '' AND event_type = ?3))
                 AND (?4 IS NULL OR class = ?4)
             ORDER BY source_id, event_type, event_name, path
             LIMIT ?5",
        )?;
        let rows = statement.query_map(
            params![
                workspace.0,
                query.source,
                query.event,
                query.class,
                i64::try_from(query.limit).unwrap_or(i64::MAX),
            ],
            |row| {
                let count: i64 = row.get(8)?;
                Ok(InventoryField {
                    workspace_id: WorkspaceId(row.get(0)?),
                    source_id: row.get(1)?,
                    field: FieldSeen {
                        event_type: row.get(2)?,
                        event_name: row.get(3)?,
                        path: row.get(4)?,
                        class: row.get(5)?,
                        first_seen_ms: row.get(6)?,
                        last_seen_ms: row.get(7)?,
                        count: u64::try_from(count).unwrap_or(0),
                    },
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Removes a source's fields and its cursor (a deleted source, or a rebuild); returns how
    /// many fields were removed.
    pub fn forget_source(
        &self,
        workspace: &WorkspaceId,
        source: &str,
    ) -> Result<usize, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let removed = transaction.execute(
            "DELETE FROM fields WHERE workspace_id = ?1 AND source_id = ?2",
            params![workspace.0, source],
        )?;
        transaction.execute(
            "DELETE FROM cursors WHERE workspace_id = ?1 AND source_id = ?2",
            params![workspace.0, source],
        )?;
        transaction.commit()?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, InventoryStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = InventoryStore::open(&dir.path().join("inventory.db")).unwrap();
        (dir, store)
    }

    fn ws(id: &str) -> WorkspaceId {
        WorkspaceId(id.into())
    }

    fn seen(
        event_type: &str,
        event_name: &str,
        path: &str,
        class: Option<&str>,
        first: i64,
        last: i64,
        count: u64,
    ) -> FieldSeen {
        FieldSeen {
            event_type: event_type.into(),
            event_name: event_name.into(),
            path: path.into(),
            class: class.map(str::to_owned),
            first_seen_ms: first,
            last_seen_ms: last,
            count,
        }
    }

    fn everything() -> InventoryQuery {
        InventoryQuery {
            source: None,
            event: None,
            class: None,
            limit: 100,
        }
    }

    /// (source, type, name, path) of each listed field.
    fn keys(fields: &[InventoryField]) -> Vec<(String, String, String, String)> {
        let mut out = Vec::new();
        for field in fields {
            out.push((
                field.source_id.clone(),
                field.field.event_type.clone(),
                field.field.event_name.clone(),
                field.field.path.clone(),
            ));
        }
        out
    }

    #[test]
    fn a_second_record_adds_counts_and_widens_times() {
        let (_dir, store) = store();
        let w = ws("ws_1");
        store
            .record(
                &w,
                "src_a",
                10,
                &[
                    seen(
                        "track",
                        "Order Completed",
                        "properties.email",
                        Some("email"),
                        100,
                        200,
                        3,
                    ),
                    seen("identify", "", "traits.plan", None, 150, 150, 1),
                    seen("identify", "", "traits.contact", Some("email"), 150, 150, 1),
                ],
            )
            .unwrap();
        store
            .record(
                &w,
                "src_a",
                20,
                &[
                    // Seen earlier and not later than before; no class this time.
                    seen(
                        "track",
                        "Order Completed",
                        "properties.email",
                        None,
                        50,
                        180,
                        2,
                    ),
                    // A class appears.
                    seen("identify", "", "traits.plan", Some("phone"), 300, 400, 4),
                    // Another class replaces the old one.
                    seen("identify", "", "traits.contact", Some("phone"), 120, 160, 1),
                    seen("page", "", "context.page.url", None, 500, 500, 7),
                ],
            )
            .unwrap();
        let all = store.list(&w, &everything()).unwrap();
        assert_eq!(all.len(), 4);
        let email = all
            .iter()
            .find(|f| f.field.path == "properties.email")
            .unwrap();
        assert_eq!(
            email,
            &InventoryField {
                workspace_id: w.clone(),
                source_id: "src_a".into(),
                field: FieldSeen {
                    event_type: "track".into(),
                    event_name: "Order Completed".into(),
                    path: "properties.email".into(),
                    class: Some("email".into()),
                    first_seen_ms: 50,
                    last_seen_ms: 200,
                    count: 5,
                },
            }
        );
        let plan = all.iter().find(|f| f.field.path == "traits.plan").unwrap();
        assert_eq!(
            (
                plan.field.class.as_deref(),
                plan.field.first_seen_ms,
                plan.field.last_seen_ms,
                plan.field.count
            ),
            (Some("phone"), 150, 400, 5)
        );
        let contact = all
            .iter()
            .find(|f| f.field.path == "traits.contact")
            .unwrap();
        assert_eq!(
            (
                contact.field.class.as_deref(),
                contact.field.first_seen_ms,
                contact.field.last_seen_ms
            ),
            (Some("phone"), 120, 160)
        );
        let page = all
            .iter()
            .find(|f| f.field.path == "context.page.url")
            .unwrap();
        assert_eq!((page.field.class.as_deref(), page.field.count), (None, 7));
        assert_eq!(store.cursor(&w, "src_a").unwrap(), 20);
    }

    #[test]
    fn the_cursor_and_fields_persist_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.db");
        let w = ws("ws_1");
        {
            let store = InventoryStore::open(&path).unwrap();
            assert_eq!(store.cursor(&w, "src_a").unwrap(), 0, "none yet");
            store
                .record(
                    &w,
                    "src_a",
                    42,
                    &[seen("track", "A", "properties.x", None, 1, 2, 1)],
                )
                .unwrap();
            store.record(&w, "src_b", 7, &[]).unwrap();
        }
        let store = InventoryStore::open(&path).unwrap();
        assert_eq!(store.cursor(&w, "src_a").unwrap(), 42);
        assert_eq!(
            store.cursor(&w, "src_b").unwrap(),
            7,
            "an empty batch moves the cursor"
        );
        assert_eq!(store.cursor(&w, "src_c").unwrap(), 0);
        assert_eq!(store.list(&w, &everything()).unwrap().len(), 1);
    }

    #[test]
    fn another_workspace_sees_nothing() {
        let (_dir, store) = store();
        let (w1, w2) = (ws("ws_1"), ws("ws_2"));
        store
            .record(
                &w1,
                "src_a",
                5,
                &[seen("track", "A", "properties.x", None, 1, 1, 1)],
            )
            .unwrap();
        assert!(store.list(&w2, &everything()).unwrap().is_empty());
        assert_eq!(store.cursor(&w2, "src_a").unwrap(), 0);
        assert_eq!(store.forget_source(&w2, "src_a").unwrap(), 0);
        assert_eq!(
            store.list(&w1, &everything()).unwrap().len(),
            1,
            "untouched"
        );
        assert_eq!(store.cursor(&w1, "src_a").unwrap(), 5);

        // The same source id and path in another workspace is another row.
        store
            .record(
                &w2,
                "src_a",
                9,
                &[seen("track", "A", "properties.x", None, 1, 1, 4)],
            )
            .unwrap();
        assert_eq!(store.list(&w1, &everything()).unwrap()[0].field.count, 1);
        assert_eq!(store.list(&w2, &everything()).unwrap()[0].field.count, 4);
    }

    #[test]
    fn filters_order_and_limit() {
        let (_dir, store) = store();
        let w = ws("ws_1");
        store
            .record(
                &w,
                "src_b",
                3,
                &[
                    seen("track", "Signed Up", "traits.email", Some("email"), 1, 1, 1),
                    seen("identify", "", "traits.email", Some("email"), 1, 1, 1),
                    seen("identify", "", "traits.name", None, 1, 1, 1),
                ],
            )
            .unwrap();
        store
            .record(
                &w,
                "src_a",
                3,
                &[
                    seen("track", "Signed Up", "properties.plan", None, 1, 1, 1),
                    seen(
                        "track",
                        "Order Completed",
                        "properties.card",
                        Some("payment_card"),
                        1,
                        1,
                        1,
                    ),
                    seen("track", "identify", "properties.weird", None, 1, 1, 1),
                ],
            )
            .unwrap();
        let key = |source: &str, kind: &str, name: &str, path: &str| {
            (
                source.to_owned(),
                kind.to_owned(),
                name.to_owned(),
                path.to_owned(),
            )
        };
        assert_eq!(
            keys(&store.list(&w, &everything()).unwrap()),
            vec![
                key("src_a", "track", "Order Completed", "properties.card"),
                key("src_a", "track", "Signed Up", "properties.plan"),
                key("src_a", "track", "identify", "properties.weird"),
                key("src_b", "identify", "", "traits.email"),
                key("src_b", "identify", "", "traits.name"),
                key("src_b", "track", "Signed Up", "traits.email"),
            ]
        );
        let query = |source: Option<&str>, event: Option<&str>, class: Option<&str>, limit| {
            InventoryQuery {
                source: source.map(str::to_owned),
                event: event.map(str::to_owned),
                class: class.map(str::to_owned),
                limit,
            }
        };
        let by_source = store
            .list(&w, &query(Some("src_b"), None, None, 100))
            .unwrap();
        assert_eq!(by_source.len(), 3);
        assert!(by_source.iter().all(|f| f.source_id == "src_b"));

        let signed_up = store
            .list(&w, &query(None, Some("Signed Up"), None, 100))
            .unwrap();
        assert_eq!(
            keys(&signed_up),
            vec![
                key("src_a", "track", "Signed Up", "properties.plan"),
                key("src_b", "track", "Signed Up", "traits.email"),
            ]
        );
        let identify = store
            .list(&w, &query(None, Some("identify"), None, 100))
            .unwrap();
        assert_eq!(
            keys(&identify),
            vec![
                key("src_a", "track", "identify", "properties.weird"),
                key("src_b", "identify", "", "traits.email"),
                key("src_b", "identify", "", "traits.name"),
            ],
            "a type matches rows without a name; a name matches whatever the type"
        );
        assert!(
            store
                .list(&w, &query(None, Some("track"), None, 100))
                .unwrap()
                .is_empty(),
            "track rows all have names"
        );

        let emails = store
            .list(&w, &query(None, None, Some("email"), 100))
            .unwrap();
        assert_eq!(emails.len(), 2);
        assert!(
            emails
                .iter()
                .all(|f| f.field.class.as_deref() == Some("email"))
        );
        let combined = store
            .list(
                &w,
                &query(Some("src_b"), Some("identify"), Some("email"), 100),
            )
            .unwrap();
        assert_eq!(
            keys(&combined),
            vec![key("src_b", "identify", "", "traits.email")]
        );
        assert!(
            store
                .list(&w, &query(Some("src_c"), None, None, 100))
                .unwrap()
                .is_empty()
        );

        let first_two = store.list(&w, &query(None, None, None, 2)).unwrap();
        assert_eq!(
            keys(&first_two),
            vec![
                key("src_a", "track", "Order Completed", "properties.card"),
                key("src_a", "track", "Signed Up", "properties.plan"),
            ]
        );
        assert!(
            store
                .list(&w, &query(None, None, None, 0))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn forgetting_a_source_removes_its_fields_and_cursor() {
        let (_dir, store) = store();
        let w = ws("ws_1");
        let batch = [
            seen("track", "A", "properties.x", None, 1, 1, 1),
            seen("track", "A", "properties.y", None, 1, 1, 1),
        ];
        store.record(&w, "src_a", 8, &batch).unwrap();
        store.record(&w, "src_b", 9, &batch[..1]).unwrap();
        assert_eq!(store.forget_source(&w, "src_a").unwrap(), 2);
        assert_eq!(store.cursor(&w, "src_a").unwrap(), 0);
        let left = store.list(&w, &everything()).unwrap();
        assert_eq!(keys(&left).len(), 1);
        assert_eq!(left[0].source_id, "src_b");
        assert_eq!(store.cursor(&w, "src_b").unwrap(), 9);
        assert_eq!(store.forget_source(&w, "src_a").unwrap(), 0, "already gone");

        // Counted again from the start after a rebuild.
        store.record(&w, "src_a", 8, &batch).unwrap();
        let rebuilt = store
            .list(
                &w,
                &InventoryQuery {
                    source: Some("src_a".into()),
                    ..everything()
                },
            )
            .unwrap();
        assert_eq!(rebuilt.len(), 2);
        assert!(rebuilt.iter().all(|f| f.field.count == 1));
    }
}
