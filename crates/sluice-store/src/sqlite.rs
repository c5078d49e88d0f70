//! Opening SQLite files the way every store here wants them.

use std::path::Path;

use rusqlite::Connection;

use crate::StoreError;

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
