//! The audience engine's store, `audiences.db`: each profile's state (its series and last
//! outputs, as the engine's JSON), when time will next change something for it, which
//! audiences it belongs to, the history of its changes, and the consumer's cursors.
//!
//! Everything here derives from the log and the profile store: the consumer commits each
//! batch's states with its cursor, so after a crash it simply redoes the last batches. A
//! change is numbered per profile (`n`), so redoing one records and announces it under the
//! same number.
//!
//! Changes also carry an id in commit order: the syncs read them after a point like an outbox
//! (`changes_after`), each sync's progress kept in `sync_progress` (the change id it has sent
//! up to, and while its first full sync runs, the last member sent).
//!
//! A state also keeps the person's latest consent (`consent`: the category preferences and
//! Global Privacy Control signal of their latest event that had any), which the syncs copy
//! into the events they generate; a change of it is recorded as a change of kind `consent`.
//!
//! The audience history (`history.rs`) keeps each profile's logged events in recorded form
//! for backfills.
//!
//! Personal data: states, memberships, changes and history belong to a profile;
//! `find_person` and `erase_person` take the profile ids of a person.

mod history;

pub use history::{HistoryRow, MovedEvent, ProfileHistory};

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{StoreError, WorkspaceId, sqlite};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS states (
    workspace_id TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    series TEXT NOT NULL,
    outputs TEXT NOT NULL,
    changes INTEGER NOT NULL,
    next_at INTEGER,
    consent TEXT,
    PRIMARY KEY (workspace_id, profile_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS states_by_next ON states(next_at) WHERE next_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS members (
    workspace_id TEXT NOT NULL,
    key TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key, profile_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_by_profile ON members(workspace_id, profile_id);
CREATE TABLE IF NOT EXISTS changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    n INTEGER NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT,
    at INTEGER NOT NULL,
    UNIQUE (workspace_id, profile_id, n)
);
CREATE INDEX IF NOT EXISTS changes_by_key ON changes(workspace_id, key, at);
CREATE INDEX IF NOT EXISTS changes_by_workspace ON changes(workspace_id, id);
CREATE TABLE IF NOT EXISTS cursors (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS progress (
    workspace_id TEXT PRIMARY KEY,
    catalog_version INTEGER NOT NULL,
    merge_id INTEGER NOT NULL,
    unmerge_id INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sync_progress (
    sync_id TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    change_id INTEGER NOT NULL,
    initial_after INTEGER
);
";

/// The tables of this layout: a file with a `changes` table of an older layout (no `id`) is
/// emptied and rebuilt from the log.
const TABLES: [&str; 8] = [
    "states",
    "members",
    "changes",
    "cursors",
    "progress",
    "sync_progress",
    "history",
    "history_cursors",
];

/// The tables that hold rows of a profile.
const PERSONAL: [&str; 4] = ["states", "members", "changes", "history"];

/// The kind of change that records a new consent (its key is [`CONSENT_KEY`]).
pub const CONSENT_KIND: &str = "consent";
/// The key of consent changes: no definition key can start with `$`.
pub const CONSENT_KEY: &str = "$consent";

/// One profile's stored state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileRow {
    pub profile_id: i64,
    /// The engine's series, JSON.
    pub series: String,
    /// The engine's last outputs, JSON.
    pub outputs: String,
    /// How many changes the profile has had (the next one is numbered `changes + 1`).
    pub changes: i64,
    /// When time alone will next change something (ms), if ever.
    pub next_at: Option<i64>,
    /// The person's latest consent, JSON (`{"categoryPreferences": {...}, "gpc": bool}`).
    pub consent: Option<String>,
    /// The audiences the profile belongs to now.
    pub audiences: Vec<String>,
}

/// One recorded change (`kind` `consent`: the person's consent changed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeRow {
    pub profile_id: i64,
    /// The profile's change number.
    pub n: i64,
    pub key: String,
    /// `entered`, `exited` or `trait`.
    pub kind: String,
    /// A trait's new value (JSON), `None` for memberships.
    pub value: Option<String>,
    /// When it was evaluated (ms).
    pub at: i64,
}

/// What one commit writes.
#[derive(Debug, Default)]
pub struct Commit<'a> {
    pub states: Vec<ProfileRow>,
    /// Profiles merged into others: their state goes.
    pub removed: Vec<i64>,
    pub changes: Vec<ChangeRow>,
    /// A source's cursor.
    pub cursor: Option<(&'a str, i64)>,
    /// The last merge of the profile store applied.
    pub merge_id: Option<i64>,
    /// The last unmerge of the profile store applied.
    pub unmerge_id: Option<i64>,
    /// The catalog version the states now follow (after a backfill).
    pub catalog_version: Option<i64>,
    /// Events recorded into the history.
    pub history: Vec<HistoryRow>,
    /// Whole histories moved from one profile to another (merges): `(from, to)`.
    pub moved: Vec<(i64, i64)>,
    /// Single events moved to another profile (unmerges).
    pub moved_events: Vec<MovedEvent>,
    /// A source's history cursor.
    pub history_cursor: Option<(&'a str, i64)>,
}

/// What a workspace's states follow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub catalog_version: i64,
    pub merge_id: i64,
    pub unmerge_id: i64,
}

/// How far a sync has sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncProgress {
    /// Changes up to this id are sent (or were before the first full sync began).
    pub change_id: i64,
    /// While the first full sync runs: the last member (profile id) sent.
    pub initial_after: Option<i64>,
}

/// The audience store. See the module documentation.
pub struct AudienceStore {
    connection: Mutex<Connection>,
}

impl AudienceStore {
    /// Opens (creating if needed) `audiences.db` at `path`.
    pub fn open(path: &Path) -> Result<AudienceStore, StoreError> {
        let connection = sqlite::open(path)?;
        // Rebuilt from the log, cursors committed with the states: see the module docs.
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        let old_layout = connection
            .prepare("SELECT id FROM changes LIMIT 0")
            .is_err()
            && connection.prepare("SELECT 1 FROM changes LIMIT 0").is_ok();
        if old_layout {
            for table in TABLES {
                connection.execute_batch(&format!("DROP TABLE IF EXISTS {table}"))?;
            }
        }
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(history::SCHEMA)?;
        Ok(AudienceStore {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.connection
            .lock()
            .map_err(|_| StoreError::CommitFailed("audience store lock poisoned".into()))
    }

    /// Gives back the memory SQLite holds for this store (see `sqlite::release_memory`).
    pub fn release_memory(&self) -> Result<(), StoreError> {
        sqlite::release_memory(&self.connection)
    }

    /// The last sequence number of the source applied (0 before any).
    pub fn cursor(&self, workspace: &WorkspaceId, source: &str) -> Result<i64, StoreError> {
        let connection = self.lock()?;
        sqlite::read_cursor(&connection, "cursors", workspace, source)
    }

    /// The catalog version and the last merge the workspace's states follow.
    pub fn progress(&self, workspace: &WorkspaceId) -> Result<Progress, StoreError> {
        let found = self
            .lock()?
            .query_row(
                "SELECT catalog_version, merge_id, unmerge_id FROM progress WHERE workspace_id = ?1",
                [&workspace.0],
                |row| {
                    Ok(Progress {
                        catalog_version: row.get(0)?,
                        merge_id: row.get(1)?,
                        unmerge_id: row.get(2)?,
                    })
                },
            )
            .optional()?;
        Ok(found.unwrap_or_default())
    }

    /// The states of these profiles (those that have one).
    pub fn load(
        &self,
        workspace: &WorkspaceId,
        profiles: &[i64],
    ) -> Result<Vec<ProfileRow>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT profile_id, series, outputs, changes, next_at, consent FROM states
             WHERE workspace_id = ?1 AND profile_id = ?2",
        )?;
        let mut rows = Vec::new();
        for profile in profiles {
            let row = statement
                .query_row(params![workspace.0, profile], read_state)
                .optional()?;
            rows.extend(row);
        }
        Ok(rows)
    }

    /// States of the workspace by profile id, after `after`, at most `limit`.
    pub fn states_after(
        &self,
        workspace: &WorkspaceId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<ProfileRow>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT profile_id, series, outputs, changes, next_at, consent FROM states
             WHERE workspace_id = ?1 AND profile_id > ?2 ORDER BY profile_id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![workspace.0, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            read_state,
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// Profiles whose timer is due at `now`, oldest first, at most `limit`.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<(WorkspaceId, i64)>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT workspace_id, profile_id FROM states
             WHERE next_at IS NOT NULL AND next_at <= ?1 ORDER BY next_at LIMIT ?2",
        )?;
        let rows = statement.query_map(
            params![now, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| Ok((WorkspaceId(row.get(0)?), row.get(1)?)),
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The earliest timer of any profile.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.lock()?.query_row(
            "SELECT min(next_at) FROM states WHERE next_at IS NOT NULL",
            [],
            |row| row.get(0),
        )?)
    }

    /// Writes a batch in one transaction: states (with their memberships), removed states,
    /// changes (a change already recorded under its number is kept), history, cursors and
    /// progress.
    pub fn commit(&self, workspace: &WorkspaceId, commit: &Commit<'_>) -> Result<(), StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        {
            let mut upsert = transaction.prepare_cached(
                "INSERT INTO states(workspace_id, profile_id, series, outputs, changes, next_at,
                     consent)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(workspace_id, profile_id) DO UPDATE SET series = excluded.series,
                     outputs = excluded.outputs, changes = excluded.changes,
                     next_at = excluded.next_at, consent = excluded.consent",
            )?;
            let mut forget = transaction.prepare_cached(
                "DELETE FROM members WHERE workspace_id = ?1 AND profile_id = ?2",
            )?;
            let mut join = transaction.prepare_cached(
                "INSERT OR IGNORE INTO members(workspace_id, key, profile_id) VALUES (?1, ?2, ?3)",
            )?;
            for row in &commit.states {
                upsert.execute(params![
                    workspace.0,
                    row.profile_id,
                    row.series,
                    row.outputs,
                    row.changes,
                    row.next_at,
                    row.consent
                ])?;
                forget.execute(params![workspace.0, row.profile_id])?;
                for key in &row.audiences {
                    join.execute(params![workspace.0, key, row.profile_id])?;
                }
            }
            let mut remove = transaction
                .prepare_cached("DELETE FROM states WHERE workspace_id = ?1 AND profile_id = ?2")?;
            for profile in &commit.removed {
                remove.execute(params![workspace.0, profile])?;
                forget.execute(params![workspace.0, profile])?;
            }
            let mut record = transaction.prepare_cached(
                "INSERT OR IGNORE INTO changes(workspace_id, profile_id, n, key, kind, value, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for change in &commit.changes {
                record.execute(params![
                    workspace.0,
                    change.profile_id,
                    change.n,
                    change.key,
                    change.kind,
                    change.value,
                    change.at
                ])?;
            }
        }
        history::write(
            &transaction,
            workspace,
            &commit.history,
            &commit.moved,
            &commit.moved_events,
            commit.history_cursor,
        )?;
        if let Some((source, seq)) = commit.cursor {
            sqlite::save_cursor(&transaction, "cursors", workspace, source, seq)?;
        }
        if commit.merge_id.is_some()
            || commit.catalog_version.is_some()
            || commit.unmerge_id.is_some()
        {
            transaction.execute(
                "INSERT INTO progress(workspace_id, catalog_version, merge_id, unmerge_id)
                 VALUES (?1, coalesce(?2, 0), coalesce(?3, 0), coalesce(?4, 0))
                 ON CONFLICT(workspace_id) DO UPDATE SET
                     catalog_version = coalesce(?2, catalog_version),
                     merge_id = coalesce(?3, merge_id),
                     unmerge_id = coalesce(?4, unmerge_id)",
                params![
                    workspace.0,
                    commit.catalog_version,
                    commit.merge_id,
                    commit.unmerge_id
                ],
            )?;
        }
        transaction.commit()?;
        Ok(())
    }

    /// Empties every series of the workspace (a backfill starts here; outputs are kept so it
    /// reports only what changed).
    pub fn clear_series(&self, workspace: &WorkspaceId) -> Result<(), StoreError> {
        self.lock()?.execute(
            "UPDATE states SET series = '{}' WHERE workspace_id = ?1",
            [&workspace.0],
        )?;
        Ok(())
    }

    /// Profiles in the audience `key`, by profile id after `after`, at most `limit`.
    pub fn members(
        &self,
        workspace: &WorkspaceId,
        key: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<i64>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT profile_id FROM members WHERE workspace_id = ?1 AND key = ?2 AND profile_id > ?3
             ORDER BY profile_id LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![
                workspace.0,
                key,
                after,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |row| row.get(0),
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// How many profiles are in the audience `key`.
    pub fn member_count(&self, workspace: &WorkspaceId, key: &str) -> Result<u64, StoreError> {
        let count: i64 = self.lock()?.query_row(
            "SELECT count(*) FROM members WHERE workspace_id = ?1 AND key = ?2",
            params![workspace.0, key],
            |row| row.get(0),
        )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Recorded changes, newest first: of one audience or trait (`key`), of one profile, or
    /// all, at most `limit`.
    pub fn changes(
        &self,
        workspace: &WorkspaceId,
        key: Option<&str>,
        profile: Option<i64>,
        limit: usize,
    ) -> Result<Vec<ChangeRow>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT profile_id, n, key, kind, value, at FROM changes
             WHERE workspace_id = ?1 AND (?2 IS NULL OR key = ?2) AND (?3 IS NULL OR profile_id = ?3)
             ORDER BY at DESC, profile_id DESC, n DESC LIMIT ?4",
        )?;
        let rows = statement.query_map(
            params![
                workspace.0,
                key,
                profile,
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            |row| {
                Ok(ChangeRow {
                    profile_id: row.get(0)?,
                    n: row.get(1)?,
                    key: row.get(2)?,
                    kind: row.get(3)?,
                    value: row.get(4)?,
                    at: row.get(5)?,
                })
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The workspace's changes with an id after `after`, in commit order, at most `limit`.
    pub fn changes_after(
        &self,
        workspace: &WorkspaceId,
        after: i64,
        limit: usize,
    ) -> Result<Vec<(i64, ChangeRow)>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT id, profile_id, n, key, kind, value, at FROM changes
             WHERE workspace_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
        )?;
        let rows = statement.query_map(
            params![workspace.0, after, i64::try_from(limit).unwrap_or(i64::MAX)],
            |row| {
                Ok((
                    row.get(0)?,
                    ChangeRow {
                        profile_id: row.get(1)?,
                        n: row.get(2)?,
                        key: row.get(3)?,
                        kind: row.get(4)?,
                        value: row.get(5)?,
                        at: row.get(6)?,
                    },
                ))
            },
        )?;
        let mut out = Vec::new();
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }

    /// The id of the workspace's latest change (0 before any).
    pub fn last_change_id(&self, workspace: &WorkspaceId) -> Result<i64, StoreError> {
        let id: Option<i64> = self.lock()?.query_row(
            "SELECT max(id) FROM changes WHERE workspace_id = ?1",
            [&workspace.0],
            |row| row.get(0),
        )?;
        Ok(id.unwrap_or(0))
    }

    /// Whether the profile is in the audience `key`.
    pub fn is_member(
        &self,
        workspace: &WorkspaceId,
        key: &str,
        profile: i64,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = self
            .lock()?
            .query_row(
                "SELECT profile_id FROM members WHERE workspace_id = ?1 AND key = ?2
                 AND profile_id = ?3",
                params![workspace.0, key, profile],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// The person's latest consent as stored with the profile's state (JSON).
    pub fn consent(
        &self,
        workspace: &WorkspaceId,
        profile: i64,
    ) -> Result<Option<String>, StoreError> {
        let found: Option<Option<String>> = self
            .lock()?
            .query_row(
                "SELECT consent FROM states WHERE workspace_id = ?1 AND profile_id = ?2",
                params![workspace.0, profile],
                |row| row.get(0),
            )
            .optional()?;
        Ok(found.flatten())
    }

    /// Records a `consent` change for each of these profiles that has a state (the person's
    /// consent or opt-outs changed outside their events, e.g. a "do not sell" request), so
    /// `list` syncs re-send their memberships; returns how many were recorded.
    pub fn record_consent_change(
        &self,
        workspace: &WorkspaceId,
        profiles: &[i64],
        at: i64,
    ) -> Result<u64, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let mut recorded = 0;
        {
            let mut read = transaction.prepare_cached(
                "SELECT changes, consent FROM states WHERE workspace_id = ?1 AND profile_id = ?2",
            )?;
            let mut bump = transaction.prepare_cached(
                "UPDATE states SET changes = ?3 WHERE workspace_id = ?1 AND profile_id = ?2",
            )?;
            let mut record = transaction.prepare_cached(
                "INSERT INTO changes(workspace_id, profile_id, n, key, kind, value, at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for profile in profiles {
                let found: Option<(i64, Option<String>)> = read
                    .query_row(params![workspace.0, profile], |row| {
                        Ok((row.get(0)?, row.get(1)?))
                    })
                    .optional()?;
                let Some((changes, consent)) = found else {
                    continue;
                };
                let n = changes + 1;
                bump.execute(params![workspace.0, profile, n])?;
                record.execute(params![
                    workspace.0,
                    profile,
                    n,
                    CONSENT_KEY,
                    CONSENT_KIND,
                    consent,
                    at
                ])?;
                recorded += 1;
            }
        }
        transaction.commit()?;
        Ok(recorded)
    }

    /// How far a sync has sent (`None` before its first full sync began).
    pub fn sync_progress(&self, sync: &str) -> Result<Option<SyncProgress>, StoreError> {
        Ok(self
            .lock()?
            .query_row(
                "SELECT change_id, initial_after FROM sync_progress WHERE sync_id = ?1",
                [sync],
                |row| {
                    Ok(SyncProgress {
                        change_id: row.get(0)?,
                        initial_after: row.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Saves how far a sync has sent.
    pub fn save_sync_progress(
        &self,
        workspace: &WorkspaceId,
        sync: &str,
        progress: SyncProgress,
    ) -> Result<(), StoreError> {
        self.lock()?.execute(
            "INSERT INTO sync_progress(sync_id, workspace_id, change_id, initial_after)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(sync_id) DO UPDATE SET change_id = ?3, initial_after = ?4",
            params![
                sync,
                workspace.0,
                progress.change_id,
                progress.initial_after
            ],
        )?;
        Ok(())
    }

    /// Forgets the progress of the workspace's syncs not in `keep` (deleted syncs).
    pub fn forget_syncs_except(
        &self,
        workspace: &WorkspaceId,
        keep: &[String],
    ) -> Result<(), StoreError> {
        let connection = self.lock()?;
        let mut statement = connection
            .prepare_cached("SELECT sync_id FROM sync_progress WHERE workspace_id = ?1")?;
        let known = statement
            .query_map([&workspace.0], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        for sync in known {
            if !keep.contains(&sync) {
                connection.execute("DELETE FROM sync_progress WHERE sync_id = ?1", [&sync])?;
            }
        }
        Ok(())
    }

    /// Forgets the memberships of a deleted audience.
    pub fn forget_key(&self, workspace: &WorkspaceId, key: &str) -> Result<(), StoreError> {
        self.lock()?.execute(
            "DELETE FROM members WHERE workspace_id = ?1 AND key = ?2",
            params![workspace.0, key],
        )?;
        Ok(())
    }

    /// Rows held about these profiles: states, memberships, changes and history.
    pub fn find_person(
        &self,
        workspace: &WorkspaceId,
        profiles: &[i64],
    ) -> Result<u64, StoreError> {
        let connection = self.lock()?;
        let mut total = 0i64;
        for table in PERSONAL {
            let mut statement = connection.prepare_cached(&format!(
                "SELECT count(*) FROM {table} WHERE workspace_id = ?1 AND profile_id = ?2"
            ))?;
            for profile in profiles {
                total += statement
                    .query_row(params![workspace.0, profile], |row| row.get::<_, i64>(0))?;
            }
        }
        Ok(u64::try_from(total).unwrap_or(0))
    }

    /// Erases everything held about these profiles; returns the rows erased.
    pub fn erase_person(
        &self,
        workspace: &WorkspaceId,
        profiles: &[i64],
    ) -> Result<u64, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let mut erased = 0usize;
        for table in PERSONAL {
            let mut statement = transaction.prepare_cached(&format!(
                "DELETE FROM {table} WHERE workspace_id = ?1 AND profile_id = ?2"
            ))?;
            for profile in profiles {
                erased += statement.execute(params![workspace.0, profile])?;
            }
        }
        transaction.commit()?;
        // Leave no erased bytes in the WAL.
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(erased as u64)
    }
}

fn read_state(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProfileRow> {
    Ok(ProfileRow {
        profile_id: row.get(0)?,
        series: row.get(1)?,
        outputs: row.get(2)?,
        changes: row.get(3)?,
        next_at: row.get(4)?,
        consent: row.get(5)?,
        audiences: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(profile: i64, next_at: Option<i64>, audiences: &[&str]) -> ProfileRow {
        ProfileRow {
            profile_id: profile,
            series: "{\"x\":1}".into(),
            outputs: "{}".into(),
            changes: 2,
            next_at,
            consent: None,
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        }
    }

    fn change(profile: i64, n: i64, key: &str, kind: &str, at: i64) -> ChangeRow {
        ChangeRow {
            profile_id: profile,
            n,
            key: key.into(),
            kind: kind.into(),
            value: None,
            at,
        }
    }

    #[test]
    fn commits_states_members_changes_cursors_and_progress_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = AudienceStore::open(&dir.path().join("audiences.db")).unwrap();
        let ws = WorkspaceId("ws".into());
        let other = WorkspaceId("other".into());
        store
            .commit(
                &ws,
                &Commit {
                    states: vec![row(1, Some(50), &["vip"]), row(2, None, &["vip", "new"])],
                    changes: vec![
                        change(1, 1, "vip", "entered", 10),
                        change(2, 1, "vip", "entered", 11),
                    ],
                    cursor: Some(("src", 40)),
                    merge_id: Some(3),
                    ..Commit::default()
                },
            )
            .unwrap();
        assert_eq!(store.cursor(&ws, "src").unwrap(), 40);
        assert_eq!(store.cursor(&other, "src").unwrap(), 0);
        assert_eq!(
            store.progress(&ws).unwrap(),
            Progress {
                catalog_version: 0,
                merge_id: 3,
                unmerge_id: 0
            }
        );
        assert_eq!(store.member_count(&ws, "vip").unwrap(), 2);
        assert_eq!(store.members(&ws, "vip", 1, 10).unwrap(), vec![2]);
        assert_eq!(store.member_count(&other, "vip").unwrap(), 0);
        assert_eq!(store.load(&ws, &[1, 2, 3]).unwrap().len(), 2);
        assert!(store.load(&other, &[1]).unwrap().is_empty());
        assert_eq!(store.due(60, 10).unwrap(), vec![(ws.clone(), 1)]);
        assert!(store.due(49, 10).unwrap().is_empty());
        assert_eq!(store.next_due().unwrap(), Some(50));

        // Redoing a batch records each change once; a merge removes the absorbed state.
        store
            .commit(
                &ws,
                &Commit {
                    states: vec![row(1, None, &["vip", "new"])],
                    removed: vec![2],
                    changes: vec![
                        change(1, 1, "vip", "entered", 10),
                        change(1, 2, "new", "entered", 12),
                    ],
                    catalog_version: Some(7),
                    ..Commit::default()
                },
            )
            .unwrap();
        assert_eq!(store.progress(&ws).unwrap().catalog_version, 7);
        assert_eq!(store.progress(&ws).unwrap().merge_id, 3);
        assert_eq!(store.members(&ws, "new", 0, 10).unwrap(), vec![1]);
        assert_eq!(store.changes(&ws, None, Some(1), 10).unwrap().len(), 2);
        assert_eq!(store.changes(&ws, Some("vip"), None, 10).unwrap().len(), 2);
        assert!(store.due(i64::MAX, 10).unwrap().is_empty());

        store.clear_series(&ws).unwrap();
        assert_eq!(store.load(&ws, &[1]).unwrap()[0].series, "{}");
        store.forget_key(&ws, "new").unwrap();
        assert_eq!(store.member_count(&ws, "new").unwrap(), 0);

        assert_eq!(store.find_person(&ws, &[1, 2]).unwrap(), 1 + 1 + 3);
        assert_eq!(store.erase_person(&ws, &[1, 2]).unwrap(), 5);
        assert_eq!(store.find_person(&ws, &[1, 2]).unwrap(), 0);
    }

    #[test]
    fn changes_are_an_outbox_in_commit_order_and_syncs_keep_their_progress() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audiences.db");
        let store = AudienceStore::open(&path).unwrap();
        let ws = WorkspaceId("ws".into());
        let other = WorkspaceId("other".into());
        let mut consented = row(1, None, &["vip"]);
        consented.consent = Some("{\"gpc\":true}".into());
        let first = Commit {
            states: vec![consented],
            changes: vec![
                change(1, 1, "vip", "entered", 10),
                change(2, 1, "vip", "entered", 10),
            ],
            ..Commit::default()
        };
        store.commit(&ws, &first).unwrap();
        store
            .commit(
                &other,
                &Commit {
                    changes: vec![change(9, 1, "vip", "entered", 10)],
                    ..Commit::default()
                },
            )
            .unwrap();
        // A redone batch keeps the first ids; a new change comes after them.
        store.commit(&ws, &first).unwrap();
        store
            .commit(
                &ws,
                &Commit {
                    changes: vec![change(1, 2, "vip", "exited", 20)],
                    ..Commit::default()
                },
            )
            .unwrap();
        let all = store.changes_after(&ws, 0, 10).unwrap();
        let order: Vec<(i64, i64)> = all.iter().map(|(_, c)| (c.profile_id, c.n)).collect();
        assert_eq!(order, vec![(1, 1), (2, 1), (1, 2)]);
        assert!(all.windows(2).all(|pair| pair[0].0 < pair[1].0));
        assert_eq!(store.last_change_id(&ws).unwrap(), all[2].0);
        assert_eq!(store.changes_after(&ws, all[1].0, 10).unwrap().len(), 1);
        assert_eq!(store.changes_after(&other, 0, 10).unwrap().len(), 1);
        assert!(store.is_member(&ws, "vip", 1).unwrap());
        assert!(!store.is_member(&other, "vip", 1).unwrap());
        assert_eq!(
            store.consent(&ws, 1).unwrap().as_deref(),
            Some("{\"gpc\":true}")
        );
        assert_eq!(store.consent(&other, 1).unwrap(), None);

        // A consent change recorded from outside numbers after the profile's changes.
        assert_eq!(store.record_consent_change(&ws, &[1, 77], 30).unwrap(), 1);
        let last = store.changes_after(&ws, all[2].0, 10).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!((last[0].1.n, last[0].1.kind.as_str()), (3, CONSENT_KIND));
        assert_eq!(last[0].1.value.as_deref(), Some("{\"gpc\":true}"));
        assert_eq!(store.load(&ws, &[1]).unwrap()[0].changes, 3);

        assert_eq!(store.sync_progress("s1").unwrap(), None);
        let progress = SyncProgress {
            change_id: 2,
            initial_after: Some(40),
        };
        store.save_sync_progress(&ws, "s1", progress).unwrap();
        store.save_sync_progress(&ws, "s2", progress).unwrap();
        assert_eq!(store.sync_progress("s1").unwrap(), Some(progress));
        store.forget_syncs_except(&ws, &["s2".to_string()]).unwrap();
        assert_eq!(store.sync_progress("s1").unwrap(), None);
        assert_eq!(store.sync_progress("s2").unwrap(), Some(progress));
    }

    #[test]
    fn a_file_of_the_older_layout_is_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audiences.db");
        {
            let connection = Connection::open(&path).unwrap();
            connection
                .execute_batch(
                    "CREATE TABLE changes (workspace_id TEXT, profile_id INTEGER, n INTEGER,
                     key TEXT, kind TEXT, value TEXT, at INTEGER,
                     PRIMARY KEY (workspace_id, profile_id, n)) WITHOUT ROWID;
                     INSERT INTO changes VALUES ('ws', 1, 1, 'vip', 'entered', NULL, 1);
                     CREATE TABLE progress (workspace_id TEXT PRIMARY KEY,
                     catalog_version INTEGER NOT NULL, merge_id INTEGER NOT NULL);
                     INSERT INTO progress VALUES ('ws', 4, 0);",
                )
                .unwrap();
        }
        let store = AudienceStore::open(&path).unwrap();
        let ws = WorkspaceId("ws".into());
        assert!(store.changes_after(&ws, 0, 10).unwrap().is_empty());
        // The catalog version is forgotten too, so the consumer recomputes from the log.
        assert_eq!(store.progress(&ws).unwrap().catalog_version, 0);
    }
}
