//! The audience history: each profile's logged events in their recorded form (the parts the
//! audience engine reads, see `sluice_audience::recorded`), kept by profile, so a backfill
//! reads one person's events after another and parses no JSON.
//!
//! Rows are keyed by workspace, profile and sequence number: one person's events are
//! neighbours in the file. A merge moves the absorbed profile's rows to the kept one
//! (`Commit::moved`); an unmerge moves single events (`Commit::moved_events`, found by source
//! and sequence number through `history_by_source`).
//!
//! Each source has a history cursor: every track, page and screen event of the source up to it
//! that led to a profile is here. The consumer records a batch's events with its states while
//! the workspace has definitions; a backfill first records what is missing (the events that
//! arrived while it had none).
//!
//! Personal data: the rows are copies of logged events. They are found and erased with the
//! profile's other rows, expire with the log's events (`expire_history`, by receive time,
//! oldest first), and are dropped whole when the workspace has no definition left
//! (`drop_history`).

use rusqlite::{Transaction, params};

use super::AudienceStore;
use crate::{StoreError, WorkspaceId, sqlite};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    workspace_id TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    record BLOB NOT NULL,
    PRIMARY KEY (workspace_id, profile_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_by_source ON history(workspace_id, source_id, seq);
CREATE TABLE IF NOT EXISTS history_cursors (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id)
) WITHOUT ROWID;
";

/// One logged event of a profile, recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryRow {
    pub profile_id: i64,
    pub seq: i64,
    pub source_id: String,
    /// When the log received the event (ms): it expires with it.
    pub received_at: i64,
    /// The event's recorded form.
    pub record: Vec<u8>,
}

/// One profile's recorded events, back to back in log order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileHistory {
    pub profile_id: i64,
    pub records: Vec<u8>,
}

/// An event moved to another profile (an unmerge).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MovedEvent {
    pub source_id: String,
    pub seq: i64,
    pub to: i64,
}

/// Rows expired per statement.
const EXPIRE_CHUNK: i64 = 5_000;

impl AudienceStore {
    /// The source's history cursor (0 before any).
    pub fn history_cursor(&self, workspace: &WorkspaceId, source: &str) -> Result<i64, StoreError> {
        let connection = self.lock()?;
        sqlite::read_cursor(&connection, "history_cursors", workspace, source)
    }

    /// The recorded events of the next profiles after `after`, by profile id, whole: up to
    /// `profiles` profiles (fewer, and then at least one, if that makes more than `limit`
    /// events).
    pub fn histories_after(
        &self,
        workspace: &WorkspaceId,
        after: i64,
        profiles: usize,
        limit: usize,
    ) -> Result<Vec<ProfileHistory>, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT profile_id, record FROM history WHERE workspace_id = ?1 AND profile_id > ?2
             ORDER BY profile_id, seq",
        )?;
        let mut rows = statement.query(params![workspace.0, after])?;
        let mut out: Vec<ProfileHistory> = Vec::new();
        let mut events = 0usize;
        while let Some(row) = rows.next()? {
            let profile: i64 = row.get(0)?;
            if out.last().is_none_or(|last| last.profile_id != profile) {
                if out.len() >= profiles || events >= limit {
                    break;
                }
                out.push(ProfileHistory {
                    profile_id: profile,
                    records: Vec::new(),
                });
            }
            if let Some(last) = out.last_mut() {
                last.records.extend_from_slice(blob(row, 1)?);
            }
            events += 1;
        }
        Ok(out)
    }

    /// One profile's recorded events, in log order.
    pub fn history_of(
        &self,
        workspace: &WorkspaceId,
        profile: i64,
    ) -> Result<ProfileHistory, StoreError> {
        let connection = self.lock()?;
        let mut statement = connection.prepare_cached(
            "SELECT record FROM history WHERE workspace_id = ?1 AND profile_id = ?2 ORDER BY seq",
        )?;
        let mut rows = statement.query(params![workspace.0, profile])?;
        let mut history = ProfileHistory {
            profile_id: profile,
            records: Vec::new(),
        };
        while let Some(row) = rows.next()? {
            history.records.extend_from_slice(blob(row, 0)?);
        }
        Ok(history)
    }

    /// Expires the source's recorded events received before `before_ms`, oldest first (the
    /// log's expiry, mirrored); returns how many went.
    pub fn expire_history(
        &self,
        workspace: &WorkspaceId,
        source: &str,
        before_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut total = 0u64;
        loop {
            let mut connection = self.lock()?;
            let transaction = connection.transaction()?;
            let last = {
                let mut oldest = transaction.prepare_cached(
                    "SELECT seq, received_at FROM history
                     WHERE workspace_id = ?1 AND source_id = ?2 ORDER BY seq LIMIT ?3",
                )?;
                let mut rows = oldest.query(params![workspace.0, source, EXPIRE_CHUNK])?;
                let mut last = None;
                let mut seen = 0;
                while let Some(row) = rows.next()? {
                    seen += 1;
                    if row.get::<_, i64>(1)? >= before_ms {
                        break;
                    }
                    last = Some(row.get::<_, i64>(0)?);
                }
                last.map(|last| (last, seen == EXPIRE_CHUNK))
            };
            let Some((last, more)) = last else {
                return Ok(total);
            };
            let removed = transaction.execute(
                "DELETE FROM history WHERE workspace_id = ?1 AND source_id = ?2 AND seq <= ?3",
                params![workspace.0, source, last],
            )?;
            transaction.commit()?;
            total += removed as u64;
            if !more {
                return Ok(total);
            }
        }
    }

    /// Drops the workspace's whole history and its cursors (it has no definition left).
    pub fn drop_history(&self, workspace: &WorkspaceId) -> Result<u64, StoreError> {
        let mut connection = self.lock()?;
        let transaction = connection.transaction()?;
        let removed = transaction.execute(
            "DELETE FROM history WHERE workspace_id = ?1",
            [&workspace.0],
        )?;
        transaction.execute(
            "DELETE FROM history_cursors WHERE workspace_id = ?1",
            [&workspace.0],
        )?;
        transaction.commit()?;
        Ok(removed as u64)
    }
}

/// A blob column, borrowed from the row.
fn blob<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> Result<&'r [u8], StoreError> {
    let value = row.get_ref(column)?;
    value.as_blob().map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(column, value.data_type(), Box::new(error)).into()
    })
}

/// Writes a commit's history: new rows, moves, the history cursor.
pub(super) fn write(
    transaction: &Transaction<'_>,
    workspace: &WorkspaceId,
    rows: &[HistoryRow],
    moved: &[(i64, i64)],
    moved_events: &[MovedEvent],
    cursor: Option<(&str, i64)>,
) -> Result<(), StoreError> {
    let mut insert = transaction.prepare_cached(
        "INSERT OR REPLACE INTO history(workspace_id, profile_id, seq, source_id, received_at,
             record)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for row in rows {
        insert.execute(params![
            workspace.0,
            row.profile_id,
            row.seq,
            row.source_id,
            row.received_at,
            row.record
        ])?;
    }
    let mut move_profile = transaction.prepare_cached(
        "UPDATE history SET profile_id = ?3 WHERE workspace_id = ?1 AND profile_id = ?2",
    )?;
    for (from, to) in moved {
        move_profile.execute(params![workspace.0, from, to])?;
    }
    let mut move_event = transaction.prepare_cached(
        "UPDATE history SET profile_id = ?4
         WHERE workspace_id = ?1 AND source_id = ?2 AND seq = ?3",
    )?;
    for event in moved_events {
        move_event.execute(params![workspace.0, event.source_id, event.seq, event.to])?;
    }
    if let Some((source, seq)) = cursor {
        sqlite::save_cursor(transaction, "history_cursors", workspace, source, seq)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Commit;

    fn row(profile: i64, seq: i64, source: &str, received_at: i64) -> HistoryRow {
        HistoryRow {
            profile_id: profile,
            seq,
            source_id: source.into(),
            received_at,
            record: format!("[{seq}]").into_bytes(),
        }
    }

    fn records(history: &ProfileHistory) -> String {
        String::from_utf8(history.records.clone()).unwrap()
    }

    #[test]
    fn histories_are_read_by_profile_moved_expired_and_erased() {
        let dir = tempfile::tempdir().unwrap();
        let store = AudienceStore::open(&dir.path().join("audiences.db")).unwrap();
        let ws = WorkspaceId("ws".into());
        let other = WorkspaceId("other".into());
        store
            .commit(
                &ws,
                &Commit {
                    history: vec![
                        row(2, 1, "web", 100),
                        row(1, 2, "web", 100),
                        row(2, 3, "app", 150),
                        row(3, 4, "web", 200),
                        row(2, 5, "web", 300),
                    ],
                    history_cursor: Some(("web", 5)),
                    ..Commit::default()
                },
            )
            .unwrap();
        store
            .commit(
                &other,
                &Commit {
                    history: vec![row(1, 9, "web", 100)],
                    ..Commit::default()
                },
            )
            .unwrap();
        assert_eq!(store.history_cursor(&ws, "web").unwrap(), 5);
        assert_eq!(store.history_cursor(&ws, "app").unwrap(), 0);
        assert_eq!(store.history_cursor(&other, "web").unwrap(), 0);

        // By profile, each one's events in log order, whole.
        let all = store.histories_after(&ws, 0, 10, 100).unwrap();
        let read: Vec<(i64, String)> = all.iter().map(|h| (h.profile_id, records(h))).collect();
        assert_eq!(
            read,
            vec![
                (1, "[2]".into()),
                (2, "[1][3][5]".into()),
                (3, "[4]".into())
            ]
        );
        let two = store.histories_after(&ws, 0, 2, 100).unwrap();
        assert_eq!(two.len(), 2);
        // The event limit stops before the next profile, never inside one.
        let limited = store.histories_after(&ws, 1, 10, 2).unwrap();
        assert_eq!(limited.len(), 1);
        assert_eq!(records(&limited[0]), "[1][3][5]");
        assert_eq!(store.histories_after(&ws, 3, 10, 100).unwrap(), vec![]);
        assert_eq!(records(&store.history_of(&other, 1).unwrap()), "[9]");

        // A merge moves a whole history; an unmerge single events.
        store
            .commit(
                &ws,
                &Commit {
                    moved: vec![(3, 1)],
                    ..Commit::default()
                },
            )
            .unwrap();
        assert_eq!(records(&store.history_of(&ws, 1).unwrap()), "[2][4]");
        store
            .commit(
                &ws,
                &Commit {
                    moved_events: vec![MovedEvent {
                        source_id: "web".into(),
                        seq: 4,
                        to: 3,
                    }],
                    ..Commit::default()
                },
            )
            .unwrap();
        assert_eq!(records(&store.history_of(&ws, 1).unwrap()), "[2]");
        assert_eq!(records(&store.history_of(&ws, 3).unwrap()), "[4]");
        assert_eq!(records(&store.history_of(&other, 1).unwrap()), "[9]");

        // Expiry follows the source's receive order and stops at the first kept event.
        assert_eq!(store.expire_history(&ws, "web", 250).unwrap(), 3);
        assert_eq!(records(&store.history_of(&ws, 2).unwrap()), "[3][5]");
        assert_eq!(store.expire_history(&ws, "web", 250).unwrap(), 0);
        assert_eq!(records(&store.history_of(&other, 1).unwrap()), "[9]");

        // A person's history is found and erased with their other rows.
        assert_eq!(store.find_person(&ws, &[2]).unwrap(), 2);
        assert_eq!(store.erase_person(&ws, &[2]).unwrap(), 2);
        assert_eq!(store.find_person(&ws, &[2]).unwrap(), 0);

        // With no definition left, the workspace's history goes, cursors too.
        store
            .commit(
                &ws,
                &Commit {
                    history: vec![row(5, 10, "web", 400)],
                    ..Commit::default()
                },
            )
            .unwrap();
        assert_eq!(store.drop_history(&ws).unwrap(), 1);
        assert_eq!(store.history_cursor(&ws, "web").unwrap(), 0);
        assert_eq!(store.histories_after(&ws, 0, 10, 100).unwrap(), vec![]);
        assert_eq!(store.histories_after(&other, 0, 10, 100).unwrap().len(), 1);
    }

    #[test]
    fn expiry_walks_past_a_full_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let store = AudienceStore::open(&dir.path().join("audiences.db")).unwrap();
        let ws = WorkspaceId("ws".into());
        let count = EXPIRE_CHUNK * 2 + 7;
        let rows = (1..=count)
            .map(|seq| row(seq % 13, seq, "web", seq))
            .collect();
        store
            .commit(
                &ws,
                &Commit {
                    history: rows,
                    ..Commit::default()
                },
            )
            .unwrap();
        let cutoff = EXPIRE_CHUNK * 2 + 3;
        assert_eq!(
            store.expire_history(&ws, "web", cutoff).unwrap(),
            (cutoff - 1) as u64
        );
        let left: usize = store
            .histories_after(&ws, -1, 100, usize::MAX)
            .unwrap()
            .iter()
            .map(|h| h.records.iter().filter(|b| **b == b'[').count())
            .sum();
        assert_eq!(left as i64, count - cutoff + 1);
    }
}
