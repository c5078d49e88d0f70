//! Profiles and the identity graph, in their own SQLite file (`profiles.db`), built from the log
//! by the profile consumer.
//!
//! - [`ingest`] — one batch of a source's logged events: identifiers extracted and resolved
//!   ([`sluice_identity::resolve()`]), merges applied, traits merged (latest timestamp wins),
//!   the event recorded in the profile's history, and the source's cursor moved, all in one
//!   transaction. Events at or before the cursor are skipped, so each logged event applies
//!   exactly once (and the log itself keeps one event per `messageId`).
//! - [`read`] — what the Profile API and the admin API show: traits, external ids, events,
//!   metadata, links, the identity graph and its merge history.
//! - [`unmerge`] — removing an identifier or splitting at a merge: the profile's recorded
//!   events are resolved again without it and the profile is rewritten from the result.
//! - [`erase`] — the erase/find contract for a person.
//! - [`identifiers`] — every identifier in memory, so lookups never read the file; kept equal
//!   to the table across commits, failures and other processes.
//! - [`history`] — which history rows are a profile's, without an index entry per event.
//!
//! # On disk
//! - `profiles(id, workspace_id, public_id, collection, merged_into, merges, created_at,
//!   updated_at, first message and source)`: a merged-away profile stays, pointing at the
//!   profile it went into, so merges can be explained. Public ids begin with the creation
//!   time, so the unique index on them is appended to. `updated_at` moves on creation, merge
//!   and unmerge; the latest event (its time, message and source) is the newest history row,
//!   so an event does not rewrite its profile's row.
//! - `identifiers(id, workspace_id, collection, kind, value, profile_id, source_id,
//!   first_message_id, first_seen, last_seen)`, indexed by profile only: an identifier is
//!   found through the in-memory index of [`identifiers`], rebuilt from this table;
//!   `last_seen` moves when it is an hour old.
//! - `traits(profile_id, name → value, timestamp, source_id, updated_at)`.
//! - `profile_events(id, workspace_id, profile_id, collection, message_id, source_id, seq,
//!   timestamp, applied_at, type, event, ids, traits, linked)`: the history, pointing at the
//!   log for the body; `ids` and `traits` are kept so that an unmerge can resolve the history
//!   again, and `linked` (a group call's profile in the other collection) so that links can be
//!   rebuilt. Appended in row order with no index: `history_recent` and `history_index`
//!   (`profile_id, row` pairs) say which rows are a profile's ([`history`]). A row stays
//!   recorded for the profile it was applied to; a live profile's history is its family's
//!   (itself and the profiles merged into it), so a merge does not rewrite history.
//! - `merges` (append-only: kept, absorbed, the event, the identifiers that bridged) and
//!   `unmerges` (append-only: what was removed or split, and the profiles it produced).
//! - `links(user_profile, account_profile, first_seen, last_seen, source_id)`.
//! - `meta(name → value)`: `graph_version`, moved by every transaction that changes
//!   identifiers, so the in-memory index knows when another process changed the file.
//! - `cursors(workspace_id, source_id, seq)`: how far the consumer got, moved in the same
//!   transaction as the changes it made.
//!
//! Architecture invariant: every query names a workspace, or a profile found through one.

pub mod erase;
pub mod follow;
mod history;
mod identifiers;
pub mod ingest;
pub mod read;
pub mod unmerge;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use sluice_identity::{Collection, Identifier};

use crate::{StoreError, WorkspaceId, sqlite};
use identifiers::{Found, IdChanges, IdIndex};

pub use erase::{Expired, PersonFound};
pub use follow::{MergeEvent, UnmergeEvent};
pub use ingest::IngestReport;
pub use read::{
    EventQuery, EventRef, ExternalId, GraphView, Link, MergeRecord, ProfileMeta, ProfileRef,
    TraitValue, UnmergeRecord,
};
pub use unmerge::Unmerged;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    public_id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL,
    merged_into INTEGER,
    merges INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    first_message_id TEXT NOT NULL,
    first_source_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS profiles_by_merged_into ON profiles(merged_into) WHERE merged_into IS NOT NULL;
CREATE TABLE IF NOT EXISTS identifiers (
    id INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    first_message_id TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS identifiers_by_profile ON identifiers(profile_id);
CREATE TABLE IF NOT EXISTS traits (
    profile_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    timestamp INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (profile_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profile_events (
    id INTEGER PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    profile_id INTEGER NOT NULL,
    collection TEXT NOT NULL,
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    timestamp INTEGER NOT NULL,
    applied_at INTEGER NOT NULL,
    type TEXT NOT NULL,
    event TEXT,
    ids TEXT NOT NULL,
    traits TEXT,
    linked INTEGER
);
CREATE TABLE IF NOT EXISTS history_recent (
    profile_id INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (profile_id, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_index (
    profile_id INTEGER NOT NULL,
    row INTEGER NOT NULL,
    PRIMARY KEY (profile_id, row)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS merges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    collection TEXT NOT NULL,
    at INTEGER NOT NULL,
    kept INTEGER NOT NULL,
    absorbed INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    bridge TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS merges_by_kept ON merges(kept);
CREATE INDEX IF NOT EXISTS merges_by_absorbed ON merges(absorbed);
CREATE TABLE IF NOT EXISTS unmerges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    profile_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS unmerges_by_profile ON unmerges(profile_id);
CREATE TABLE IF NOT EXISTS links (
    workspace_id TEXT NOT NULL,
    user_profile INTEGER NOT NULL,
    account_profile INTEGER NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    source_id TEXT NOT NULL,
    PRIMARY KEY (user_profile, account_profile)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS links_by_account ON links(account_profile);
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('graph_version', 0);
CREATE TABLE IF NOT EXISTS cursors (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id)
) WITHOUT ROWID;
";

/// The layout above. A file of another layout is emptied and rebuilt from the log (the cursors
/// go with it), since everything here derives from the log; recorded unmerges are lost then.
/// 3: identifiers found in memory (no key column); 4: history pairs instead of an index on
/// `profile_events`. (Public ids that sort by creation time need no new layout: older random
/// ids keep working beside them.)
const SCHEMA_VERSION: i64 = 4;

/// Events the consumer hands to [`ProfileStore::ingest`] at once: one transaction each. Large
/// batches write a page the batch changes many times once; 10,000 events are a few MiB.
pub const INGEST_BATCH: usize = 10_000;

/// Drops every table of a file written with another layout.
fn rebuild_if_outdated(connection: &Connection) -> Result<(), StoreError> {
    let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let mut tables = Vec::new();
    {
        let mut statement = connection.prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            tables.push(row.get::<_, String>(0)?);
        }
    }
    if version == SCHEMA_VERSION || tables.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        found = version,
        expected = SCHEMA_VERSION,
        "profiles.db has an older layout: rebuilding profiles from the log"
    );
    let mut sql = String::from("BEGIN;");
    for table in tables {
        sql.push_str(&format!("DROP TABLE IF EXISTS \"{table}\";"));
    }
    sql.push_str("COMMIT;");
    connection.execute_batch(&sql)?;
    Ok(())
}

/// Connections that serve reads, so API reads never wait on the consumer's transactions.
const READERS: usize = 4;

/// The profile store. See the module documentation.
pub struct ProfileStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// Every identifier, in memory (loaded at first use).
    ids: IdIndex,
    /// Pairs `history_recent` holds before a batch folds them ([`history::FOLD_AT`]).
    history_fold_at: i64,
}

impl ProfileStore {
    /// Opens (creating if needed) `profiles.db` at `path`.
    pub fn open(path: &Path) -> Result<ProfileStore, StoreError> {
        let writer = sqlite::open(path)?;
        // Profiles are derived from the log and the cursor commits with them: after a crash
        // the last batches are simply applied again, so commits need not wait for an fsync.
        // (Erasure checkpoints with TRUNCATE, which syncs.)
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        rebuild_if_outdated(&writer)?;
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        // The consumer's lookups are random over the identifier index: keep more of it cached.
        writer.pragma_update(None, "cache_size", -32_768)?;
        // Checkpoint every 8,000 pages (32 MiB) rather than 1,000: a page the consumer changes in
        // many batches is copied into the database once, not once per batch; the file is cut
        // back to 16 MiB after each checkpoint.
        writer.pragma_update(None, "wal_autocheckpoint", 8_000)?;
        writer.pragma_update(None, "journal_size_limit", 16 * 1024 * 1024)?;
        // Room for every statement the consumer runs, so none is parsed twice.
        writer.set_prepared_statement_cache_capacity(64);
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = sqlite::open(path)?;
            reader.pragma_update(None, "query_only", "ON")?;
            readers.push(Mutex::new(reader));
        }
        Ok(ProfileStore {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            ids: IdIndex::new(),
            history_fold_at: history::FOLD_AT,
        })
    }

    /// Runs `work` in one write transaction and commits it; the identifier changes it made
    /// reach the in-memory index only once committed (see [`identifiers`]).
    pub(crate) fn write<T>(
        &self,
        work: impl FnOnce(&Transaction<'_>, &mut IdChanges<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.writer()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        self.ids.refresh(&transaction)?;
        let mut changes = IdChanges::new(&self.ids);
        let value = work(&transaction, &mut changes)?;
        let version = identifiers::bump_graph_version(&transaction)?;
        self.ids.committing(Some(version))?;
        if let Err(error) = transaction.commit() {
            self.ids.invalidate();
            return Err(error.into());
        }
        self.ids.apply(changes, version)?;
        Ok(value)
    }

    /// The live profile holding `id`, read through a reader connection (its version of the
    /// file decides whether the in-memory index may answer).
    pub(crate) fn find_id(
        &self,
        connection: &Connection,
        workspace: &str,
        collection: Collection,
        id: &Identifier,
    ) -> Result<Option<Found>, StoreError> {
        let key = self.ids.id_key(workspace, collection, id);
        for _ in 0..3 {
            let version = identifiers::graph_version(connection)?;
            if let Some(state) = self.ids.current(version)? {
                return Ok(state.get(&key).map(|entry| Found {
                    key,
                    row: entry.row,
                    profile: entry.profile,
                    last_seen_ms: entry.last_seen_ms,
                }));
            }
            // Not loaded yet, or another process changed the file: reload, between two of
            // the writer's transactions.
            let writer = self.writer()?;
            self.ids.refresh(&writer)?;
        }
        Err(StoreError::CommitFailed(
            "the identity graph keeps changing under the reader".into(),
        ))
    }

    pub(crate) fn writer(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        self.writer
            .lock()
            .map_err(|_| StoreError::CommitFailed("profile store lock poisoned".into()))
    }

    pub(crate) fn reader(&self) -> Result<MutexGuard<'_, Connection>, StoreError> {
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                return Ok(guard);
            }
        }
        let index = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        self.readers[index]
            .lock()
            .map_err(|_| StoreError::CommitFailed("profile store lock poisoned".into()))
    }

    /// Gives back the memory SQLite holds for the writer and the readers (see
    /// `sqlite::release_memory`).
    pub fn release_memory(&self) -> Result<(), StoreError> {
        crate::sqlite::release_memory(&self.writer)?;
        for reader in &self.readers {
            crate::sqlite::release_memory(reader)?;
        }
        Ok(())
    }

    /// How far the consumer got in a source (0: nothing yet).
    pub fn cursor(&self, workspace: &WorkspaceId, source_id: &str) -> Result<i64, StoreError> {
        let connection = self.reader()?;
        crate::sqlite::read_cursor(&connection, workspace, source_id)
    }
}

/// A fresh public profile id: `use_` (users) or `acc_` (accounts) and 27 letters and digits,
/// like Segment's: the creation time in ms (7 digits of base 62, in ASCII order) and 20 random
/// ones (119 bits). Like Segment's KSUIDs, ids therefore sort by creation time, so each new
/// profile's entry lands at the end of the unique index on `public_id`, not on a random page.
pub(crate) fn new_public_id(
    collection: sluice_identity::Collection,
    now_ms: i64,
) -> Result<String, StoreError> {
    let prefix = match collection {
        sluice_identity::Collection::Users => "use_",
        sluice_identity::Collection::Accounts => "acc_",
    };
    let mut id = String::with_capacity(prefix.len() + 27);
    id.push_str(prefix);
    id.push_str(&time_digits(now_ms));
    id.push_str(&crate::secret::random_id_text("", 20)?);
    Ok(id)
}

/// `ms` as 7 base-62 digits in ASCII order (`0`–`9`, `A`–`Z`, `a`–`z`), so the text sorts as
/// the number does (until the year 2081; later times wrap).
fn time_digits(ms: i64) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut value = ms.max(0) as u64;
    let mut digits = [b'0'; 7];
    for digit in digits.iter_mut().rev() {
        *digit = DIGITS[(value % 62) as usize];
        value /= 62;
    }
    digits.iter().map(|d| char::from(*d)).collect()
}

#[cfg(test)]
mod tests;
