//! Opening SQLite files the way every store here wants them.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{StoreError, WorkspaceId};

/// Opens (creating if needed) a database in WAL mode with fully synchronous commits: a commit
/// returns only after its WAL frames are on disk.
pub(crate) fn open(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open(path)?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Deleted content is overwritten, so an erased person's bytes do not linger in free pages.
    connection.pragma_update(None, "secure_delete", "ON")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(connection)
}

/// Gives back the page cache and other memory SQLite holds for a connection that is not in
/// use; it fills again from the file (and the OS page cache) on the next query. Called when the
/// node goes idle.
pub(crate) fn release_memory(connection: &Mutex<Connection>) -> Result<(), StoreError> {
    let connection = connection
        .lock()
        .map_err(|_| StoreError::CommitFailed("connection lock poisoned".into()))?;
    connection.release_memory()?;
    Ok(())
}

/// A log consumer's cursor for one source, from the cursor table (`table`, usually `cursors`)
/// its store keeps beside what it built (profiles, inventory, audiences): the last sequence
/// number applied, 0 before any.
pub(crate) fn read_cursor(
    connection: &Connection,
    table: &str,
    workspace: &WorkspaceId,
    source: &str,
) -> Result<i64, StoreError> {
    let seq: Option<i64> = connection
        .prepare_cached(&format!(
            "SELECT seq FROM {table} WHERE workspace_id = ?1 AND source_id = ?2"
        ))?
        .query_row(params![workspace.0, source], |row| row.get(0))
        .optional()?;
    Ok(seq.unwrap_or(0))
}

/// Moves a source's cursor in `table` forward to `seq` (never back), inside the caller's
/// transaction.
pub(crate) fn save_cursor(
    connection: &Connection,
    table: &str,
    workspace: &WorkspaceId,
    source: &str,
    seq: i64,
) -> Result<(), StoreError> {
    connection
        .prepare_cached(&format!(
            "INSERT INTO {table}(workspace_id, source_id, seq) VALUES (?1, ?2, ?3)
             ON CONFLICT(workspace_id, source_id) DO UPDATE SET seq = max(seq, excluded.seq)"
        ))?
        .execute(params![workspace.0, source, seq])?;
    Ok(())
}
