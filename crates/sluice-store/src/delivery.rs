//! What the delivery engine keeps besides its cursors: dead letters, replay jobs and the
//! delivery ledger, in their own SQLite file (`delivery.db`) so that failing destinations never write into the log's
//! file or wait on its writer.
//!
//! A dead letter is an event that a destination refused for good or that ran out of retries,
//! kept with the last answer so a person can see why and replay it. It holds personal data:
//! [`DeliveryStore::erase_person`] removes a person's dead letters like the log erases their
//! events.
//!
//! The delivery ledger records when each event reached each destination, by the event's
//! sequence number only (no identifier: a person's entries are found through their events in
//! the log, and mean nothing once those are erased). Retention and a destination's deletion
//! remove its entries.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{StoreError, WorkspaceId, sqlite};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    user_id TEXT,
    anonymous_id TEXT,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    reason TEXT NOT NULL,
    status INTEGER,
    response TEXT,
    attempts INTEGER NOT NULL,
    failed_at INTEGER NOT NULL,
    retry_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_by_destination
    ON dead_letters(workspace_id, destination_id, id);
CREATE TABLE IF NOT EXISTS replays (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    destination_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    from_ms INTEGER,
    to_ms INTEGER,
    position INTEGER NOT NULL,
    last_seq INTEGER,
    events INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE TABLE IF NOT EXISTS deliveries (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    destination_id TEXT NOT NULL,
    delivered_at INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id, seq, destination_id)
) WITHOUT ROWID;
";

/// One event delivered to a destination, for the delivery ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub source_id: String,
    pub seq: i64,
    pub delivered_at_ms: i64,
}

/// A delivery ledger entry as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    pub destination_id: String,
    pub source_id: String,
    pub seq: i64,
    pub delivered_at_ms: i64,
}

/// A dead letter to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter {
    pub workspace_id: WorkspaceId,
    pub destination_id: String,
    pub source_id: String,
    pub seq: i64,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub received_at_ms: i64,
    /// The event as it was stored in the log.
    pub body: String,
    pub reason: String,
    /// The tool's last HTTP status, when it answered.
    pub status: Option<u16>,
    /// The start of the tool's last answer.
    pub response: Option<String>,
    pub attempts: u32,
    pub failed_at_ms: i64,
}

/// A recorded dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: i64,
    pub letter: NewDeadLetter,
}

/// What a replay covers: one source's logged events received in `[from_ms, to_ms)` (open
/// ends when `None`), re-delivered to one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReplay {
    pub workspace_id: WorkspaceId,
    pub destination_id: String,
    pub source_id: String,
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    /// The log's last sequence number when the replay started: it stops there (`None` until
    /// the destination picks the replay up).
    pub last_seq: Option<i64>,
}

/// Where a replay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayState {
    Running,
    Done,
    Cancelled,
}

impl ReplayState {
    fn as_str(self) -> &'static str {
        match self {
            ReplayState::Running => "running",
            ReplayState::Done => "done",
            ReplayState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> ReplayState {
        match text {
            "done" => ReplayState::Done,
            "cancelled" => ReplayState::Cancelled,
            _ => ReplayState::Running,
        }
    }
}

/// A replay job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub id: i64,
    pub replay: NewReplay,
    /// The last sequence number handed to the destination.
    pub position: i64,
    /// Events handed to the destination so far.
    pub events: i64,
    pub state: ReplayState,
    pub created_at_ms: i64,
    pub finished_at_ms: Option<i64>,
}

/// Dead letters and replay jobs. See the module documentation.
pub struct DeliveryStore {
    connection: Mutex<Connection>,
}

impl DeliveryStore {
    pub fn open(path: &Path) -> Result<DeliveryStore, StoreError> {
        let connection = sqlite::open(path)?;
        connection.execute_batch(SCHEMA)?;
        Ok(DeliveryStore {
            connection: Mutex::new(connection),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.connection
            .lock()
            .map_err(|_| StoreError::CommitFailed("delivery store lock poisoned".into()))
    }

    /// Gives back the memory SQLite holds for this store (see `sqlite::release_memory`).
    pub fn release_memory(&self) -> Result<(), StoreError> {
        sqlite::release_memory(&self.connection)
    }

    /// Records dead letters in one transaction; returns their ids in order.
    pub fn add_dead_letters(&self, letters: &[NewDeadLetter]) -> Result<Vec<i64>, StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        let mut ids = Vec::with_capacity(letters.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO dead_letters(workspace_id, destination_id, source_id, seq, message_id,
                     user_id, anonymous_id, received_at, body, reason, status, response, attempts,
                     failed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for letter in letters {
                insert.execute(params![
                    letter.workspace_id.0,
                    letter.destination_id,
                    letter.source_id,
                    letter.seq,
                    letter.message_id,
                    letter.user_id,
                    letter.anonymous_id,
                    letter.received_at_ms,
                    letter.body,
                    letter.reason,
                    letter.status,
                    letter.response,
                    letter.attempts,
                    letter.failed_at_ms,
                ])?;
                ids.push(tx.last_insert_rowid());
            }
        }
        tx.commit()?;
        Ok(ids)
    }

    /// Up to `limit` dead letters of a destination with an id above `after`, oldest first.
    pub fn dead_letters(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        after: i64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let connection = self.lock()?;
        let mut select = connection.prepare_cached(&format!(
            "{SELECT_LETTER} WHERE workspace_id = ?1 AND destination_id = ?2 AND id > ?3
             ORDER BY id LIMIT ?4"
        ))?;
        let rows = select.query_map(
            params![workspace.0, destination_id, after, limit as i64],
            row_to_letter,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// One dead letter.
    pub fn dead_letter(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        id: i64,
    ) -> Result<DeadLetter, StoreError> {
        let connection = self.lock()?;
        connection
            .prepare_cached(&format!(
                "{SELECT_LETTER} WHERE workspace_id = ?1 AND destination_id = ?2 AND id = ?3"
            ))?
            .query_row(params![workspace.0, destination_id, id], row_to_letter)
            .optional()?
            .ok_or_else(|| StoreError::NotFound {
                kind: "dead letter",
                id: id.to_string(),
            })
    }

    /// How many dead letters a destination has.
    pub fn count_dead_letters(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
    ) -> Result<u64, StoreError> {
        let connection = self.lock()?;
        let count: i64 = connection
            .prepare_cached(
                "SELECT count(*) FROM dead_letters WHERE workspace_id = ?1 AND destination_id = ?2",
            )?
            .query_row(params![workspace.0, destination_id], |row| row.get(0))?;
        Ok(count as u64)
    }

    /// Asks for dead letters to be sent again (`ids`: these; `None`: all of the destination's).
    /// The destination's loop picks them up. Returns how many were marked.
    pub fn request_retry(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        ids: Option<&[i64]>,
    ) -> Result<u64, StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        let marked = match ids {
            None => tx.execute(
                "UPDATE dead_letters SET retry_requested = 1
                 WHERE workspace_id = ?1 AND destination_id = ?2",
                params![workspace.0, destination_id],
            )? as u64,
            Some(ids) => {
                let mut marked = 0;
                let mut update = tx.prepare_cached(
                    "UPDATE dead_letters SET retry_requested = 1
                     WHERE workspace_id = ?1 AND destination_id = ?2 AND id = ?3",
                )?;
                for id in ids {
                    marked += update.execute(params![workspace.0, destination_id, id])? as u64;
                }
                marked
            }
        };
        tx.commit()?;
        Ok(marked)
    }

    /// Up to `limit` dead letters asked to be sent again, oldest first.
    pub fn dead_letters_to_retry(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let connection = self.lock()?;
        let mut select = connection.prepare_cached(&format!(
            "{SELECT_LETTER} WHERE workspace_id = ?1 AND destination_id = ?2
                 AND retry_requested = 1
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = select.query_map(
            params![workspace.0, destination_id, limit as i64],
            row_to_letter,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Removes dead letters (after a successful replay, or on request). Returns how many.
    pub fn remove_dead_letters(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        ids: &[i64],
    ) -> Result<u64, StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        let mut removed = 0;
        {
            let mut delete = tx.prepare_cached(
                "DELETE FROM dead_letters WHERE workspace_id = ?1 AND destination_id = ?2 AND id = ?3",
            )?;
            for id in ids {
                removed += delete.execute(params![workspace.0, destination_id, id])? as u64;
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Adds to the delivery ledger, in one transaction.
    pub fn record_deliveries(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        delivered: &[Delivered],
    ) -> Result<(), StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO deliveries(workspace_id, source_id, seq, destination_id, delivered_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT DO UPDATE SET delivered_at = excluded.delivered_at",
            )?;
            for entry in delivered {
                insert.execute(params![
                    workspace.0,
                    entry.source_id,
                    entry.seq,
                    destination_id,
                    entry.delivered_at_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The ledger's entries for these events of a source (every destination).
    pub fn deliveries_of(
        &self,
        workspace: &WorkspaceId,
        source_id: &str,
        seqs: &[i64],
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let connection = self.lock()?;
        let mut select = connection.prepare_cached(
            "SELECT destination_id, delivered_at FROM deliveries
             WHERE workspace_id = ?1 AND source_id = ?2 AND seq = ?3",
        )?;
        let mut found = Vec::new();
        for seq in seqs {
            let rows = select.query_map(params![workspace.0, source_id, seq], |row| {
                Ok(LedgerEntry {
                    destination_id: row.get(0)?,
                    source_id: source_id.to_owned(),
                    seq: *seq,
                    delivered_at_ms: row.get(1)?,
                })
            })?;
            for row in rows {
                found.push(row?);
            }
        }
        Ok(found)
    }

    /// Removes every dead letter of a destination (when the destination is deleted).
    pub fn forget_destination(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
    ) -> Result<(), StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        tx.execute(
            "DELETE FROM dead_letters WHERE workspace_id = ?1 AND destination_id = ?2",
            params![workspace.0, destination_id],
        )?;
        tx.execute(
            "DELETE FROM replays WHERE workspace_id = ?1 AND destination_id = ?2",
            params![workspace.0, destination_id],
        )?;
        tx.execute(
            "DELETE FROM deliveries WHERE workspace_id = ?1 AND destination_id = ?2",
            params![workspace.0, destination_id],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The workspace's dead letters whose `userId` or `anonymousId` is among `identifiers`
    /// (the "find" half of the erase/find contract).
    pub fn find_person(
        &self,
        workspace: &WorkspaceId,
        identifiers: &[String],
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let connection = self.lock()?;
        let mut select = connection.prepare_cached(&format!(
            "{SELECT_LETTER} WHERE workspace_id = ?1 AND (user_id = ?2 OR anonymous_id = ?2)
             ORDER BY id"
        ))?;
        let mut found = Vec::new();
        for identifier in identifiers {
            for letter in select.query_map(params![workspace.0, identifier], row_to_letter)? {
                let letter = letter?;
                if !found.iter().any(|f: &DeadLetter| f.id == letter.id) {
                    found.push(letter);
                }
            }
        }
        Ok(found)
    }

    /// Removes every dead letter of the workspace whose `userId` or `anonymousId` is one of
    /// `identifiers`, then truncates the WAL so no copy of them stays there. Returns how many.
    pub fn erase_person(
        &self,
        workspace: &WorkspaceId,
        identifiers: &[String],
    ) -> Result<u64, StoreError> {
        let mut connection = self.lock()?;
        let tx = connection.transaction()?;
        let mut removed = 0;
        {
            let mut delete = tx.prepare_cached(
                "DELETE FROM dead_letters WHERE workspace_id = ?1
                 AND (user_id = ?2 OR anonymous_id = ?2)",
            )?;
            for identifier in identifiers {
                removed += delete.execute(params![workspace.0, identifier])? as u64;
            }
        }
        tx.commit()?;
        if removed > 0 {
            connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(removed)
    }

    /// Removes the source's dead letters of events received before `received_before_ms`
    /// (retention) and its ledger entries of deliveries before then, then truncates the WAL.
    /// Returns how many dead letters.
    pub fn expire(
        &self,
        workspace: &WorkspaceId,
        source_id: &str,
        received_before_ms: i64,
    ) -> Result<u64, StoreError> {
        let connection = self.lock()?;
        let removed = connection.execute(
            "DELETE FROM dead_letters WHERE workspace_id = ?1 AND source_id = ?2 AND received_at < ?3",
            params![workspace.0, source_id, received_before_ms],
        )? as u64;
        // Ledger entries of events delivered before the cut-off were received before it too.
        connection.execute(
            "DELETE FROM deliveries WHERE workspace_id = ?1 AND source_id = ?2 AND delivered_at < ?3",
            params![workspace.0, source_id, received_before_ms],
        )?;
        if removed > 0 {
            connection.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        }
        Ok(removed)
    }

    /// Records where a replay ends, when the destination picks it up.
    pub fn set_replay_end(&self, id: i64, last_seq: i64) -> Result<(), StoreError> {
        let connection = self.lock()?;
        connection
            .prepare_cached("UPDATE replays SET last_seq = ?2 WHERE id = ?1")?
            .execute(params![id, last_seq])?;
        Ok(())
    }

    /// Starts a replay job; the destination's loop picks it up.
    pub fn add_replay(&self, replay: &NewReplay, now_ms: i64) -> Result<Replay, StoreError> {
        let connection = self.lock()?;
        connection
            .prepare_cached(
                "INSERT INTO replays(workspace_id, destination_id, source_id, from_ms, to_ms,
                     position, last_seq, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, 'running', ?7)",
            )?
            .execute(params![
                replay.workspace_id.0,
                replay.destination_id,
                replay.source_id,
                replay.from_ms,
                replay.to_ms,
                replay.last_seq,
                now_ms,
            ])?;
        Ok(Replay {
            id: connection.last_insert_rowid(),
            replay: replay.clone(),
            position: 0,
            events: 0,
            state: ReplayState::Running,
            created_at_ms: now_ms,
            finished_at_ms: None,
        })
    }

    /// Records a replay's progress; `finished_at_ms` ends it.
    pub fn update_replay(
        &self,
        id: i64,
        position: i64,
        events: i64,
        state: ReplayState,
        finished_at_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let connection = self.lock()?;
        connection
            .prepare_cached(
                "UPDATE replays SET position = ?2, events = ?3, state = ?4, finished_at = ?5
                 WHERE id = ?1",
            )?
            .execute(params![
                id,
                position,
                events,
                state.as_str(),
                finished_at_ms
            ])?;
        Ok(())
    }

    /// A destination's replay jobs, newest first (`running_only`: the unfinished ones).
    pub fn replays(
        &self,
        workspace: &WorkspaceId,
        destination_id: &str,
        running_only: bool,
    ) -> Result<Vec<Replay>, StoreError> {
        let connection = self.lock()?;
        let mut select = connection.prepare_cached(
            "SELECT id, workspace_id, destination_id, source_id, from_ms, to_ms, position,
                 last_seq, events, state, created_at, finished_at
             FROM replays WHERE workspace_id = ?1 AND destination_id = ?2
                 AND (?3 = 0 OR state = 'running')
             ORDER BY id DESC",
        )?;
        let rows = select.query_map(params![workspace.0, destination_id, running_only], |row| {
            Ok(Replay {
                id: row.get(0)?,
                replay: NewReplay {
                    workspace_id: WorkspaceId(row.get(1)?),
                    destination_id: row.get(2)?,
                    source_id: row.get(3)?,
                    from_ms: row.get(4)?,
                    to_ms: row.get(5)?,
                    last_seq: row.get(7)?,
                },
                position: row.get(6)?,
                events: row.get(8)?,
                state: ReplayState::parse(&row.get::<_, String>(9)?),
                created_at_ms: row.get(10)?,
                finished_at_ms: row.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

const SELECT_LETTER: &str = "SELECT id, workspace_id, destination_id, source_id, seq, message_id,
    user_id, anonymous_id, received_at, body, reason, status, response, attempts, failed_at
    FROM dead_letters";

fn row_to_letter(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        id: row.get(0)?,
        letter: NewDeadLetter {
            workspace_id: WorkspaceId(row.get(1)?),
            destination_id: row.get(2)?,
            source_id: row.get(3)?,
            seq: row.get(4)?,
            message_id: row.get(5)?,
            user_id: row.get(6)?,
            anonymous_id: row.get(7)?,
            received_at_ms: row.get(8)?,
            body: row.get(9)?,
            reason: row.get(10)?,
            status: row.get(11)?,
            response: row.get(12)?,
            attempts: row.get(13)?,
            failed_at_ms: row.get(14)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(workspace: &str, destination: &str, user: &str, seq: i64) -> NewDeadLetter {
        NewDeadLetter {
            workspace_id: WorkspaceId(workspace.into()),
            destination_id: destination.into(),
            source_id: "src".into(),
            seq,
            message_id: format!("m{seq}"),
            user_id: Some(user.into()),
            anonymous_id: None,
            received_at_ms: 1_000 + seq,
            body: format!(r#"{{"userId":"{user}","secret":"body-of-{user}"}}"#),
            reason: "http 400: bad".into(),
            status: Some(400),
            response: Some("bad".into()),
            attempts: 1,
            failed_at_ms: 2_000,
        }
    }

    fn store() -> (tempfile::TempDir, DeliveryStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = DeliveryStore::open(&dir.path().join("delivery.db")).expect("open");
        (dir, store)
    }

    #[test]
    fn dead_letters_are_kept_listed_and_scoped() {
        let (_dir, store) = store();
        let ids = store
            .add_dead_letters(&[
                letter("w1", "d1", "ann", 1),
                letter("w1", "d1", "bob", 2),
                letter("w1", "d2", "ann", 3),
                letter("w2", "d1", "ann", 4),
            ])
            .expect("add");
        assert_eq!(ids.len(), 4);
        let w1 = WorkspaceId("w1".into());
        let listed = store.dead_letters(&w1, "d1", 0, 10).expect("list");
        assert_eq!(
            listed.iter().map(|l| l.letter.seq).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(listed[0].letter, letter("w1", "d1", "ann", 1));
        let page = store.dead_letters(&w1, "d1", ids[0], 10).expect("page");
        assert_eq!(page.len(), 1);
        assert_eq!(store.count_dead_letters(&w1, "d1").expect("count"), 2);
        // Another workspace cannot read it, even with its id.
        let w2 = WorkspaceId("w2".into());
        assert!(matches!(
            store.dead_letter(&w2, "d1", ids[0]),
            Err(StoreError::NotFound { .. })
        ));
        assert_eq!(
            store
                .remove_dead_letters(&w2, "d1", &[ids[0]])
                .expect("remove"),
            0
        );
        assert_eq!(
            store
                .remove_dead_letters(&w1, "d1", &[ids[0]])
                .expect("remove"),
            1
        );
        assert_eq!(store.count_dead_letters(&w1, "d1").expect("count"), 1);
        // Asking for a retry marks letters of this destination only.
        assert!(
            store
                .dead_letters_to_retry(&w1, "d1", 10)
                .expect("due")
                .is_empty()
        );
        assert_eq!(store.request_retry(&w2, "d1", None).expect("mark"), 1);
        assert_eq!(
            store
                .request_retry(&w1, "d1", Some(&[ids[2]]))
                .expect("mark"),
            0
        );
        assert_eq!(store.request_retry(&w1, "d1", None).expect("mark"), 1);
        let due = store.dead_letters_to_retry(&w1, "d1", 10).expect("due");
        assert_eq!(due.iter().map(|l| l.id).collect::<Vec<_>>(), [ids[1]]);
    }

    #[test]
    fn erasing_a_person_leaves_no_bytes_of_them() {
        let (dir, store) = store();
        store
            .add_dead_letters(&[letter("w1", "d1", "ann", 1), letter("w1", "d1", "bob", 2)])
            .expect("add");
        let w1 = WorkspaceId("w1".into());
        assert_eq!(store.erase_person(&w1, &["ann".into()]).expect("erase"), 1);
        let left = store.dead_letters(&w1, "d1", 0, 10).expect("list");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].letter.user_id.as_deref(), Some("bob"));
        // Checkpoint the WAL and look at every file: the erased body is gone.
        store
            .lock()
            .expect("lock")
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .expect("checkpoint");
        for entry in std::fs::read_dir(dir.path()).expect("dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
            let needle = b"body-of-ann";
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "found the erased body on disk"
            );
        }
    }

    #[test]
    fn replays_record_progress() {
        let (_dir, store) = store();
        let w1 = WorkspaceId("w1".into());
        let replay = store
            .add_replay(
                &NewReplay {
                    workspace_id: w1.clone(),
                    destination_id: "d1".into(),
                    source_id: "s1".into(),
                    from_ms: Some(10),
                    to_ms: None,
                    last_seq: None,
                },
                5,
            )
            .expect("add");
        assert_eq!(
            store.replays(&w1, "d1", true).expect("list"),
            vec![replay.clone()]
        );
        store.set_replay_end(replay.id, 99).expect("end");
        assert_eq!(
            store.replays(&w1, "d1", true).expect("list")[0]
                .replay
                .last_seq,
            Some(99)
        );
        store
            .update_replay(replay.id, 50, 7, ReplayState::Done, Some(6))
            .expect("update");
        assert!(store.replays(&w1, "d1", true).expect("list").is_empty());
        let all = store.replays(&w1, "d1", false).expect("list");
        assert_eq!(all[0].position, 50);
        assert_eq!(all[0].events, 7);
        assert_eq!(all[0].state, ReplayState::Done);
        store.forget_destination(&w1, "d1").expect("forget");
        assert!(store.replays(&w1, "d1", false).expect("list").is_empty());
    }

    #[test]
    fn expiry_removes_a_sources_old_letters_only() {
        let (_dir, store) = store();
        let mut other_source = letter("w1", "d1", "cat", 3);
        other_source.source_id = "other".into();
        store
            .add_dead_letters(&[
                letter("w1", "d1", "ann", 1),
                letter("w1", "d2", "bob", 2),
                other_source,
                letter("w2", "d1", "dan", 4),
                letter("w1", "d1", "eve", 50),
            ])
            .expect("add");
        let w1 = WorkspaceId("w1".into());
        // Received at 1,001 … 1,050: before 1,010 are seqs 1, 2 and 3 (3 in another source).
        assert_eq!(store.expire(&w1, "src", 1_010).expect("expire"), 2);
        assert_eq!(store.count_dead_letters(&w1, "d1").expect("count"), 2);
        assert_eq!(store.count_dead_letters(&w1, "d2").expect("count"), 0);
        let w2 = WorkspaceId("w2".into());
        assert_eq!(store.count_dead_letters(&w2, "d1").expect("count"), 1);
        assert_eq!(store.expire(&w1, "src", 1_010).expect("expire"), 0);
    }

    #[test]
    fn the_ledger_records_when_each_destination_got_each_event() {
        let (_dir, store) = store();
        let w1 = WorkspaceId("w1".into());
        let entry = |seq, at| Delivered {
            source_id: "src".into(),
            seq,
            delivered_at_ms: at,
        };
        store
            .record_deliveries(&w1, "d1", &[entry(1, 100), entry(2, 200)])
            .expect("record");
        store
            .record_deliveries(&w1, "d2", &[entry(2, 250)])
            .expect("record");
        // Recording again (a replay) keeps one entry with the latest time.
        store
            .record_deliveries(&w1, "d1", &[entry(1, 150)])
            .expect("record");
        let found = store.deliveries_of(&w1, "src", &[1, 2, 3]).expect("read");
        let seen: Vec<(&str, i64, i64)> = found
            .iter()
            .map(|e| (e.destination_id.as_str(), e.seq, e.delivered_at_ms))
            .collect();
        assert_eq!(seen, [("d1", 1, 150), ("d1", 2, 200), ("d2", 2, 250)]);
        let w2 = WorkspaceId("w2".into());
        assert!(
            store
                .deliveries_of(&w2, "src", &[1, 2])
                .expect("read")
                .is_empty()
        );
        // Retention drops entries delivered before the cut-off; deletion drops a destination's.
        store.expire(&w1, "src", 160).expect("expire");
        assert_eq!(store.deliveries_of(&w1, "src", &[1]).expect("read"), vec![]);
        store.forget_destination(&w1, "d2").expect("forget");
        let left = store.deliveries_of(&w1, "src", &[2]).expect("read");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].destination_id, "d1");
    }
}
