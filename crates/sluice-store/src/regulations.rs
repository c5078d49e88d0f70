//! Regulations (suppression and deletion requests) and the lists of people they and the
//! opt-outs make (suppressed; "do not sell or share"), in `state.db`.
//!
//! A regulation's subjects are personal data: the store keeps them only sealed (the caller
//! seals them with the vault), and only until the regulation is done; then they are erased
//! (`secure_delete`, WAL truncated) and only counts and the report remain. A list of people
//! ([`PersonList`]) keeps keyed digests of each person's identifier values ([`SubjectDigest`]),
//! never the values, grouped by the entry (regulation or opt-out) that added them; the digest
//! key is random per workspace.

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;
use sluice_privacy::regulation::DIGEST_KEY_BYTES;
use sluice_privacy::{PrivacySettings, RegulationType, Status, SubjectDigest, SubjectType};

use crate::state::{StateStore, now_text, random_id};
use crate::{StoreError, WorkspaceId};

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS regulations (
    id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    regulation_type TEXT NOT NULL,
    subject_type TEXT NOT NULL,
    subject_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    subjects BLOB,
    report TEXT
);
CREATE INDEX IF NOT EXISTS regulations_by_workspace ON regulations(workspace_id, created_at);
CREATE TABLE IF NOT EXISTS person_lists (
    workspace_id TEXT NOT NULL,
    list TEXT NOT NULL,
    digest BLOB NOT NULL,
    entry_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workspace_id, list, digest)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS privacy_settings (
    workspace_id TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS digest_keys (
    workspace_id TEXT PRIMARY KEY,
    digest_key BLOB NOT NULL
);
";

/// A regulation as listed (never its subjects).
#[derive(Debug, Clone, PartialEq)]
pub struct Regulation {
    pub id: String,
    pub workspace_id: WorkspaceId,
    pub regulation_type: RegulationType,
    pub subject_type: SubjectType,
    pub subject_count: usize,
    pub status: Status,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// What was done, once finished (stores and destinations; no identifiers).
    pub report: Option<Value>,
}

/// A list of people, kept as digests of their identifier values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PersonList {
    /// Their events are refused at the tracking API.
    Suppressed,
    /// They opted out of sale and sharing: advertising and sale destinations get nothing.
    DoNotSell,
}

impl PersonList {
    pub fn as_str(self) -> &'static str {
        match self {
            PersonList::Suppressed => "suppressed",
            PersonList::DoNotSell => "do_not_sell",
        }
    }
}

/// An entry of a list: the regulation or opt-out that added it and how many identifier
/// values it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub entry_id: String,
    pub values: usize,
    pub created_at: String,
}

const COLUMNS: &str = "id, workspace_id, regulation_type, subject_type, subject_count, status,
    created_at, started_at, finished_at, report";

fn row_to_regulation(row: &rusqlite::Row<'_>) -> rusqlite::Result<Regulation> {
    let text = |index: usize| -> rusqlite::Result<String> { row.get(index) };
    let unreadable = |index: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    let report: Option<String> = row.get(9)?;
    Ok(Regulation {
        id: text(0)?,
        workspace_id: WorkspaceId(text(1)?),
        regulation_type: RegulationType::parse(&text(2)?)
            .ok_or_else(|| unreadable(2, "regulation type"))?,
        subject_type: SubjectType::parse(&text(3)?).ok_or_else(|| unreadable(3, "subject type"))?,
        subject_count: row.get::<_, i64>(4)? as usize,
        status: Status::parse(&text(5)?).ok_or_else(|| unreadable(5, "status"))?,
        created_at: text(6)?,
        started_at: row.get(7)?,
        finished_at: row.get(8)?,
        report: report.and_then(|text| serde_json::from_str(&text).ok()),
    })
}

/// A new regulation id (`reg_…`). The caller picks it, since the sealed subjects are bound to
/// it.
pub fn new_regulation_id() -> Result<String, StoreError> {
    random_id("reg_")
}

/// A new opt-out entry id (`opt_…`).
pub fn new_opt_out_id() -> Result<String, StoreError> {
    random_id("opt_")
}

impl StateStore {
    /// Records a new regulation (status `INITIALIZED`) with its subjects, already sealed.
    pub fn create_regulation(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        regulation_type: RegulationType,
        subject_type: SubjectType,
        subject_count: usize,
        sealed_subjects: &[u8],
    ) -> Result<Regulation, StoreError> {
        let created_at = now_text();
        self.lock()?.execute(
            "INSERT INTO regulations(id, workspace_id, regulation_type, subject_type, subject_count,
                 status, created_at, subjects)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id,
                workspace.0,
                regulation_type.as_str(),
                subject_type.as_str(),
                subject_count as i64,
                Status::Initialized.as_str(),
                created_at,
                sealed_subjects,
            ],
        )?;
        Ok(Regulation {
            id: id.to_owned(),
            workspace_id: workspace.clone(),
            regulation_type,
            subject_type,
            subject_count,
            status: Status::Initialized,
            created_at,
            started_at: None,
            finished_at: None,
            report: None,
        })
    }

    /// One regulation of the workspace.
    pub fn regulation(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<Regulation>, StoreError> {
        let connection = self.lock()?;
        let found = connection
            .query_row(
                &format!("SELECT {COLUMNS} FROM regulations WHERE workspace_id = ?1 AND id = ?2"),
                params![workspace.0, id],
                row_to_regulation,
            )
            .optional()?;
        Ok(found)
    }

    /// The workspace's regulations, newest first.
    pub fn regulations(
        &self,
        workspace: &WorkspaceId,
        limit: usize,
    ) -> Result<Vec<Regulation>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM regulations WHERE workspace_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2"
        ))?;
        let rows = statement.query_map(params![workspace.0, limit as i64], row_to_regulation)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Regulations of every workspace not yet done (`INITIALIZED`, or `RUNNING` when a node
    /// stopped in the middle), oldest first.
    pub fn pending_regulations(&self) -> Result<Vec<Regulation>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM regulations WHERE status IN ('INITIALIZED', 'RUNNING')
             ORDER BY rowid"
        ))?;
        let rows = statement.query_map([], row_to_regulation)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The sealed subjects of a regulation not yet done.
    pub fn regulation_subjects(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let connection = self.lock()?;
        let found: Option<Option<Vec<u8>>> = connection
            .query_row(
                "SELECT subjects FROM regulations WHERE workspace_id = ?1 AND id = ?2",
                params![workspace.0, id],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.flatten())
    }

    /// Marks a regulation `RUNNING`.
    pub fn start_regulation(&self, workspace: &WorkspaceId, id: &str) -> Result<(), StoreError> {
        let changed = self.lock()?.execute(
            "UPDATE regulations SET status = 'RUNNING', started_at = coalesce(started_at, ?3)
             WHERE workspace_id = ?1 AND id = ?2",
            params![workspace.0, id, now_text()],
        )?;
        found(changed, id)
    }

    /// Records the final status and report, and erases the subjects (rows overwritten, WAL
    /// checkpointed and truncated).
    pub fn finish_regulation(
        &self,
        workspace: &WorkspaceId,
        id: &str,
        status: Status,
        report: &Value,
    ) -> Result<(), StoreError> {
        let connection = self.lock()?;
        let changed = connection.execute(
            "UPDATE regulations SET status = ?3, finished_at = ?4, report = ?5, subjects = NULL
             WHERE workspace_id = ?1 AND id = ?2",
            params![
                workspace.0,
                id,
                status.as_str(),
                now_text(),
                report.to_string()
            ],
        )?;
        found(changed, id)?;
        truncate_wal(&connection)
    }

    /// The workspace's privacy settings (the defaults until saved) and when they were saved.
    pub fn privacy_settings(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<(PrivacySettings, Option<String>), StoreError> {
        let stored: Option<(String, String)> = self
            .lock()?
            .query_row(
                "SELECT settings, updated_at FROM privacy_settings WHERE workspace_id = ?1",
                [&workspace.0],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        match stored {
            None => Ok((PrivacySettings::default(), None)),
            Some((text, at)) => Ok((read_settings(&text)?, Some(at))),
        }
    }

    /// Every workspace's saved privacy settings (workspaces with none saved have the
    /// defaults). Unreadable rows are refused like in [`StateStore::privacy_settings`].
    pub fn all_privacy_settings(&self) -> Result<Vec<(WorkspaceId, PrivacySettings)>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare("SELECT workspace_id, settings FROM privacy_settings ORDER BY workspace_id")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })?;
        let mut all = Vec::new();
        for row in rows {
            let (workspace, text) = row?;
            all.push((WorkspaceId(workspace), read_settings(&text)?));
        }
        Ok(all)
    }

    /// Removes a deleted destination's PII overrides from the workspace's settings; returns
    /// whether there were any.
    pub fn forget_destination_settings(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
    ) -> Result<bool, StoreError> {
        let (mut settings, _) = self.privacy_settings(workspace)?;
        if settings.pii.destinations.remove(destination_id).is_none() {
            return Ok(false);
        }
        self.set_privacy_settings(workspace, &settings)?;
        Ok(true)
    }

    /// Saves the workspace's privacy settings.
    pub fn set_privacy_settings(
        &self,
        workspace: &WorkspaceId,
        settings: &PrivacySettings,
    ) -> Result<(), StoreError> {
        let text = serde_json::to_string(settings).map_err(|e| StoreError::Invalid {
            field: "privacy_settings",
            message: e.to_string(),
        })?;
        self.lock()?.execute(
            "INSERT INTO privacy_settings(workspace_id, settings, updated_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(workspace_id) DO UPDATE SET settings = excluded.settings,
                 updated_at = excluded.updated_at",
            params![workspace.0, text, now_text()],
        )?;
        Ok(())
    }

    /// The workspace's digest key, made on first use.
    pub fn digest_key(&self, workspace: &WorkspaceId) -> Result<Vec<u8>, StoreError> {
        let connection = self.lock()?;
        let existing: Option<Vec<u8>> = connection
            .query_row(
                "SELECT digest_key FROM digest_keys WHERE workspace_id = ?1",
                [&workspace.0],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(key) = existing {
            return Ok(key);
        }
        let mut key = vec![0u8; DIGEST_KEY_BYTES];
        getrandom::fill(&mut key)
            .map_err(|error| StoreError::Io(std::io::Error::other(error.to_string())))?;
        connection.execute(
            "INSERT INTO digest_keys(workspace_id, digest_key) VALUES (?1, ?2)",
            params![workspace.0, key],
        )?;
        Ok(key)
    }

    /// Adds a person's digests to a list, as one entry; returns how many were new.
    pub fn add_to_list(
        &self,
        workspace: &WorkspaceId,
        list: PersonList,
        entry_id: &str,
        digests: &[SubjectDigest],
    ) -> Result<usize, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let mut added = 0;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT OR IGNORE INTO person_lists(workspace_id, list, digest, entry_id, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let now = now_text();
            for digest in digests {
                added += insert.execute(params![
                    workspace.0,
                    list.as_str(),
                    digest.0.as_slice(),
                    entry_id,
                    now
                ])?;
            }
        }
        transaction.commit()?;
        Ok(added)
    }

    /// Removes from a list the entries that hold any of these digests — all of each entry's
    /// values, so taking a person off by one identifier takes off every identifier added with
    /// it. Returns how many values were removed.
    pub fn remove_from_list(
        &self,
        workspace: &WorkspaceId,
        list: PersonList,
        digests: &[SubjectDigest],
    ) -> Result<usize, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let mut entries: Vec<String> = Vec::new();
        {
            let mut find = transaction.prepare_cached(
                "SELECT entry_id FROM person_lists
                 WHERE workspace_id = ?1 AND list = ?2 AND digest = ?3",
            )?;
            for digest in digests {
                let found: Option<String> = find
                    .query_row(
                        params![workspace.0, list.as_str(), digest.0.as_slice()],
                        |row| row.get(0),
                    )
                    .optional()?;
                if let Some(id) = found
                    && !entries.contains(&id)
                {
                    entries.push(id);
                }
            }
        }
        let mut removed = 0;
        for id in &entries {
            removed += transaction.execute(
                "DELETE FROM person_lists WHERE workspace_id = ?1 AND list = ?2 AND entry_id = ?3",
                params![workspace.0, list.as_str(), id],
            )?;
        }
        transaction.commit()?;
        Ok(removed)
    }

    /// Every digest of a list, in every workspace (loaded into memory by the node).
    pub fn all_listed(
        &self,
        list: PersonList,
    ) -> Result<Vec<(WorkspaceId, SubjectDigest)>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT workspace_id, digest FROM person_lists WHERE list = ?1")?;
        let rows = statement.query_map([list.as_str()], |row| {
            let digest: Vec<u8> = row.get(1)?;
            Ok((WorkspaceId(row.get(0)?), digest))
        })?;
        let mut all = Vec::new();
        for row in rows {
            let (workspace, bytes) = row?;
            if let Ok(digest) = <[u8; 16]>::try_from(bytes.as_slice()) {
                all.push((workspace, SubjectDigest(digest)));
            }
        }
        Ok(all)
    }

    /// The workspace's entries of a list, newest first.
    pub fn list_entries(
        &self,
        workspace: &WorkspaceId,
        list: PersonList,
    ) -> Result<Vec<ListEntry>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT entry_id, count(*), min(created_at) FROM person_lists
             WHERE workspace_id = ?1 AND list = ?2
             GROUP BY entry_id ORDER BY min(created_at) DESC, entry_id",
        )?;
        let rows = statement.query_map(params![workspace.0, list.as_str()], |row| {
            Ok(ListEntry {
                entry_id: row.get(0)?,
                values: row.get::<_, i64>(1)? as usize,
                created_at: row.get(2)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn read_settings(text: &str) -> Result<PrivacySettings, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Invalid {
        field: "privacy_settings",
        message: format!("stored settings are unreadable: {e}"),
    })
}

fn found(changed: usize, id: &str) -> Result<(), StoreError> {
    if changed == 0 {
        return Err(StoreError::NotFound {
            kind: "regulation",
            id: id.to_owned(),
        });
    }
    Ok(())
}

/// Folds the WAL into the database and cuts it to nothing, so erased rows (overwritten there
/// by `secure_delete`) leave no copy in the WAL.
pub(crate) fn truncate_wal(connection: &Connection) -> Result<(), StoreError> {
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn store() -> (tempfile::TempDir, StateStore, WorkspaceId) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("state.db")).unwrap();
        let (workspace, _) = store.ensure_default_workspace().unwrap();
        (dir, store, workspace.id)
    }

    #[test]
    fn a_regulation_goes_from_initialized_to_finished_and_forgets_its_subjects() {
        let (dir, store, ws) = store();
        let created = store
            .create_regulation(
                &ws,
                "reg_1",
                RegulationType::SuppressWithDelete,
                SubjectType::Email,
                1,
                b"sealed-subjects-4f9a",
            )
            .unwrap();
        assert_eq!(created.status, Status::Initialized);
        assert_eq!(store.pending_regulations().unwrap().len(), 1);
        assert_eq!(
            store.regulation_subjects(&ws, &created.id).unwrap(),
            Some(b"sealed-subjects-4f9a".to_vec())
        );
        store.start_regulation(&ws, &created.id).unwrap();
        let running = store.regulation(&ws, &created.id).unwrap().unwrap();
        assert_eq!(running.status, Status::Running);
        assert!(running.started_at.is_some());
        assert_eq!(
            store.pending_regulations().unwrap().len(),
            1,
            "resumed after a crash"
        );

        let report = json!({"stores": [{"store": "log", "erased": 3}]});
        store
            .finish_regulation(&ws, &created.id, Status::Finished, &report)
            .unwrap();
        let done = store.regulation(&ws, &created.id).unwrap().unwrap();
        assert_eq!(done.status, Status::Finished);
        assert_eq!(done.report, Some(report));
        assert!(store.pending_regulations().unwrap().is_empty());
        assert_eq!(store.regulation_subjects(&ws, &created.id).unwrap(), None);
        // The sealed subjects are gone from the files, not only from the row.
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(20).any(|w| w == b"sealed-subjects-4f9a"));
        }
    }

    #[test]
    fn regulations_are_scoped_to_their_workspace() {
        let (_dir, store, ws) = store();
        let other = store.create_workspace("other").unwrap().id;
        let created = store
            .create_regulation(
                &ws,
                "reg_2",
                RegulationType::DeleteOnly,
                SubjectType::UserId,
                2,
                b"x",
            )
            .unwrap();
        assert!(store.regulation(&other, &created.id).unwrap().is_none());
        assert!(store.regulations(&other, 10).unwrap().is_empty());
        assert!(
            store
                .regulation_subjects(&other, &created.id)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            store.start_regulation(&other, &created.id),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(store.regulations(&ws, 10).unwrap().len(), 1);
    }

    #[test]
    fn removing_one_value_removes_the_whole_entry() {
        let (_dir, store, ws) = store();
        let other = store.create_workspace("other").unwrap().id;
        let key = store.digest_key(&ws).unwrap();
        assert_eq!(key, store.digest_key(&ws).unwrap(), "stable");
        assert_ne!(key, store.digest_key(&other).unwrap(), "per workspace");
        let d = |value: &str| sluice_privacy::regulation::digest(&key, &ws.0, value);
        let suppressed = PersonList::Suppressed;
        let person = [d("u1"), d("anon-1"), d("jane@example.com")];
        assert_eq!(
            store
                .add_to_list(&ws, suppressed, "reg_a", &person)
                .unwrap(),
            3
        );
        assert_eq!(
            store
                .add_to_list(&ws, suppressed, "reg_b", &[d("u2")])
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .add_to_list(&other, suppressed, "reg_c", &[d("u1")])
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .add_to_list(&ws, PersonList::DoNotSell, "opt_a", &[d("u1")])
                .unwrap(),
            1,
            "lists are apart"
        );
        assert_eq!(store.all_listed(suppressed).unwrap().len(), 5);
        assert_eq!(store.list_entries(&ws, suppressed).unwrap().len(), 2);

        assert_eq!(
            store
                .remove_from_list(&ws, suppressed, &[d("anon-1")])
                .unwrap(),
            3
        );
        let left = store.all_listed(suppressed).unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.contains(&(ws.clone(), d("u2"))));
        assert!(
            left.contains(&(other.clone(), d("u1"))),
            "other workspace untouched"
        );
        assert_eq!(store.all_listed(PersonList::DoNotSell).unwrap().len(), 1);
        assert_eq!(
            store
                .remove_from_list(&ws, suppressed, &[d("nobody")])
                .unwrap(),
            0
        );
    }
}
