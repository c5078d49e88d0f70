//! Profiles and the identity graph, built from the log by the profile consumer and held in
//! memory ([`state`]), made durable by an append-only change log ([`log`], `profiles.log`),
//! snapshots ([`snapshot`], `profiles.snapshot`) and a small SQLite file (`profiles.db`) for
//! the consumer's cursors and the points that tie them together.
//!
//! - [`ingest`] — one batch of a source's logged events: identifiers extracted and resolved
//!   ([`sluice_identity::resolve()`]) against the state, the decision applied to it and
//!   appended to the change log, and the source's cursor moved, in one commit. Events at or
//!   before the cursor are skipped, so each logged event applies exactly once (and the log
//!   itself keeps one event per `messageId`).
//! - [`read`] — what the Profile API and the admin API show: traits, external ids, events,
//!   metadata, links, the identity graph and its merge history.
//! - [`unmerge`] — removing an identifier or splitting at a merge: the profile's recorded
//!   events are resolved again without it and the profile is rebuilt from the result.
//! - [`erase`] — the erase/find contract for a person, retention and the children sweep.
//! - [`follow`] — what the audience consumer reads.
//!
//! # Durability and the commit
//! A batch's entries and a commit frame naming the cursor are written at the end of
//! `profiles.log` (not synced: see [`log`]); then one SQLite transaction moves the cursor,
//! records the log's new end (`meta.log_end`) and bumps `meta.graph_version`. Everything else
//! (unmerge, erasure, retention) changes the state in place: it zeroes the log entries it
//! removes, syncs the log, writes a new snapshot, and bumps `meta.rewrites` as well, in its
//! transaction.
//!
//! Start-up (or the first use after the memory was given back) reads the snapshot and replays
//! the whole batches of the log after the point it covers. If the log does not end where
//! `meta.log_end` says (a crash), it is cut after its last whole batch and the cursors are
//! taken from the state. A snapshot is written when the log has grown past the last one by
//! more than that snapshot's size (at least 256 MiB), so replay stays short and snapshot
//! writing costs a bounded share of the consumer's time.
//!
//! # Several processes
//! The CLI opens the same files while the server runs. Every change happens inside an
//! `IMMEDIATE` SQLite transaction, which only one process holds at a time. A process's memory
//! remembers the `graph_version` it reflects; a read that finds the file at another version
//! first catches up: by replaying the log's new entries when `meta.rewrites` has not moved,
//! by loading the snapshot again when it has.
//!
//! # If the files disagree
//! A missing or damaged log or snapshot cannot be repaired, but everything here derives from
//! the event log: the store is emptied (cursors included) and the consumer builds it again.
//! Recorded unmerges are lost then. The same happens to a file of an older layout.
//!
//! Architecture invariant: every read names a workspace, or a profile found through one.

mod codec;
pub mod erase;
pub mod follow;
pub mod ingest;
mod log;
pub mod read;
mod snapshot;
mod state;
pub mod unmerge;

pub use state::{ProfileIdHasher, ProfileMap};

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use crate::{StoreError, sqlite};
use state::State;

pub use erase::{Expired, PersonFound};
pub use follow::{MergeEvent, UnmergeEvent};
pub use ingest::IngestReport;
pub use read::{
    EventQuery, EventRef, ExternalId, GraphView, Link, MergeRecord, ProfileMeta, ProfileRef,
    TraitValue, UnmergeRecord,
};
pub use unmerge::Unmerged;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO meta(name, value) VALUES ('graph_version', 0), ('log_end', 0), ('rewrites', 0);
CREATE TABLE IF NOT EXISTS cursors (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id)
) WITHOUT ROWID;
";

/// The layout above. A file of another layout is emptied and rebuilt from the log (the cursors
/// go with it), since everything here derives from the log; recorded unmerges are lost then.
/// 5: the state in memory, the change log and snapshots beside the file.
const SCHEMA_VERSION: i64 = 5;

/// Events the consumer hands to [`ProfileStore::ingest`] at once: one commit each.
pub const INGEST_BATCH: usize = 10_000;

/// A snapshot is written once the log has grown by at least this much since the last one
/// (replaying it at start takes a second or two).
const SNAPSHOT_MIN_GROWTH: u64 = 256 * 1024 * 1024;

/// The state is kept through an idle release while the Profile API read it this recently.
const KEEP_AFTER_READ: Duration = Duration::from_secs(60);

/// Connections that serve version checks and cursor reads beside the writer.
const READERS: usize = 2;

/// The points in `meta` that say what the files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Points {
    graph_version: i64,
    log_end: u64,
    rewrites: i64,
}

fn read_points(connection: &Connection) -> Result<Points, StoreError> {
    let mut statement = connection.prepare_cached("SELECT name, value FROM meta")?;
    let mut rows = statement.query([])?;
    let mut points = Points {
        graph_version: 0,
        log_end: 0,
        rewrites: 0,
    };
    while let Some(row) = rows.next()? {
        let value: i64 = row.get(1)?;
        match row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)? {
            "graph_version" => points.graph_version = value,
            "log_end" => points.log_end = u64::try_from(value).unwrap_or(0),
            "rewrites" => points.rewrites = value,
            _ => {}
        }
    }
    Ok(points)
}

fn graph_version(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection
        .prepare_cached("SELECT value FROM meta WHERE name = 'graph_version'")?
        .query_row([], |row| row.get(0))?)
}

fn save_points(connection: &Connection, points: &Points) -> Result<(), StoreError> {
    let mut statement = connection.prepare_cached("UPDATE meta SET value = ?2 WHERE name = ?1")?;
    statement.execute(params!["graph_version", points.graph_version])?;
    statement.execute(params![
        "log_end",
        i64::try_from(points.log_end).unwrap_or(i64::MAX)
    ])?;
    statement.execute(params!["rewrites", points.rewrites])?;
    Ok(())
}

/// Drops every table of a file written with another layout.
fn rebuild_if_outdated(connection: &Connection) -> Result<bool, StoreError> {
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
        return Ok(false);
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
    Ok(true)
}

/// What this process holds in memory.
struct Memory {
    /// `None` until first use, and after the memory was given back or a failure.
    state: Option<State>,
    /// The points the state reflects.
    points: Points,
    /// A commit under way will write this version (its changes are in the state already).
    committing: Option<i64>,
    /// Where the last snapshot (written or read) ends in the log, and its size.
    snapshot_end: u64,
    snapshot_bytes: u64,
    /// While no state is held: each workspace's latest merge and unmerge record numbers, as of
    /// `points`, so the audience consumer's polls for new merges need not load the state.
    tails: Option<HashMap<String, (i64, i64)>>,
}

impl Memory {
    /// Drops the state after a failure or before a load: nothing is known until the next load.
    fn forget(&mut self) {
        self.state = None;
        self.tails = None;
    }

    fn reflects(&self, version: i64) -> bool {
        self.state.is_some()
            && (self.points.graph_version == version || self.committing == Some(version))
    }
}

/// The files of the store.
struct Paths {
    log: PathBuf,
    snapshot: PathBuf,
}

/// The profile store. See the module documentation.
pub struct ProfileStore {
    paths: Paths,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    /// The change log, read and written at explicit offsets only.
    log: File,
    memory: RwLock<Memory>,
    /// When the Profile API last looked a profile up.
    last_api_read: Mutex<Option<Instant>>,
}

/// One change in progress: the state to change (through [`StateLock`]), the log to append to,
/// and whether the change is more than appended entries (then a snapshot is written with it).
pub(crate) struct Change<'t, 'm> {
    pub(crate) transaction: &'t Transaction<'t>,
    pub(crate) state: StateLock<'m>,
    pub(crate) log: &'m File,
    pub(crate) appender: log::Appender,
    pub(crate) rewrite: bool,
}

/// The state, locked while a change works on it. A long change (a batch of events) lets
/// readers in now and then with [`StateLock::let_readers_in`]; they see its events before the
/// commit (a failed commit drops the state, which is then loaded again from the files).
pub(crate) struct StateLock<'a> {
    memory: &'a RwLock<Memory>,
    guard: Option<RwLockWriteGuard<'a, Memory>>,
}

impl<'a> StateLock<'a> {
    fn memory(&mut self) -> Result<&mut Memory, StoreError> {
        if self.guard.is_none() {
            let guard = self
                .memory
                .write()
                .map_err(|_| StoreError::CommitFailed("profile state lock poisoned".into()))?;
            self.guard = Some(guard);
        }
        match self.guard.as_deref_mut() {
            Some(memory) => Ok(memory),
            None => unreachable!("the guard was just taken"),
        }
    }

    pub(crate) fn get(&mut self) -> Result<&mut State, StoreError> {
        self.memory()?
            .state
            .as_mut()
            .ok_or_else(|| StoreError::CommitFailed("profile state not loaded".into()))
    }

    pub(crate) fn let_readers_in(&mut self) {
        self.guard = None;
    }
}

impl ProfileStore {
    /// Opens (creating if needed) `profiles.db` at `path`, with `profiles.log` and
    /// `profiles.snapshot` beside it.
    pub fn open(path: &Path) -> Result<ProfileStore, StoreError> {
        let paths = Paths {
            log: path.with_extension("log"),
            snapshot: path.with_extension("snapshot"),
        };
        let writer = sqlite::open(path)?;
        // The cursor commits with the log's end: after a crash the last batches are simply
        // applied again, so commits need not wait for an fsync of their own (the log's
        // entries are synced before the commit).
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        let outdated = rebuild_if_outdated(&writer)?;
        writer.execute_batch(SCHEMA)?;
        writer.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        let log = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&paths.log)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = sqlite::open(path)?;
            reader.pragma_update(None, "query_only", "ON")?;
            readers.push(Mutex::new(reader));
        }
        let store = ProfileStore {
            paths,
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            log,
            memory: RwLock::new(Memory {
                state: None,
                points: Points {
                    graph_version: -1,
                    log_end: 0,
                    rewrites: -1,
                },
                committing: None,
                snapshot_end: 0,
                snapshot_bytes: 0,
                tails: None,
            }),
            last_api_read: Mutex::new(None),
        };
        if outdated {
            let connection = store.writer()?;
            store.reset(&connection)?;
        }
        Ok(store)
    }

    fn read_memory(&self) -> Result<RwLockReadGuard<'_, Memory>, StoreError> {
        self.memory
            .read()
            .map_err(|_| StoreError::CommitFailed("profile state lock poisoned".into()))
    }

    fn memory(&self) -> Result<RwLockWriteGuard<'_, Memory>, StoreError> {
        self.memory
            .write()
            .map_err(|_| StoreError::CommitFailed("profile state lock poisoned".into()))
    }

    /// Notes a Profile API read (see [`ProfileStore::release_memory`]).
    pub(crate) fn note_api_read(&self) {
        if let Ok(mut last) = self.last_api_read.lock() {
            *last = Some(Instant::now());
        }
    }

    /// Runs `work` on the state as the file holds it now.
    pub(crate) fn read<T>(
        &self,
        work: impl FnOnce(&State, &File) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        for _ in 0..3 {
            let version = graph_version(&*self.reader()?)?;
            {
                let memory = self.read_memory()?;
                if memory.reflects(version)
                    && let Some(state) = &memory.state
                {
                    return work(state, &self.log);
                }
            }
            // Not loaded yet, or another process changed the files: catch up, between two
            // of the writer's commits.
            let mut connection = self.writer()?;
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            self.catch_up(&transaction)?;
            transaction.commit()?;
        }
        Err(StoreError::CommitFailed(
            "the profile store keeps changing under the reader".into(),
        ))
    }

    /// Answers from what is kept while no state is held, if the files have not changed since
    /// and `answer` can; `None` otherwise (then [`ProfileStore::read`] loads the state).
    pub(crate) fn read_tails<T>(
        &self,
        answer: impl FnOnce(&HashMap<String, (i64, i64)>) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        let version = graph_version(&*self.reader()?)?;
        let memory = self.read_memory()?;
        match &memory.tails {
            Some(tails) if memory.state.is_none() && memory.points.graph_version == version => {
                Ok(answer(tails))
            }
            _ => Ok(None),
        }
    }

    /// Runs `work` as one change and commits it (see the module documentation).
    pub(crate) fn write<T>(
        &self,
        work: impl FnOnce(&mut Change<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut connection = self.writer()?;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let points = self.catch_up(&transaction)?;
        let mut change = Change {
            transaction: &transaction,
            state: StateLock {
                memory: &self.memory,
                guard: None,
            },
            log: &self.log,
            appender: log::Appender::new(points.log_end),
            rewrite: false,
        };
        let outcome = work(&mut change).and_then(|value| {
            change.appender.write(change.log)?;
            let next = Points {
                graph_version: points.graph_version + 1,
                log_end: change.appender.next_offset(),
                rewrites: points.rewrites + i64::from(change.rewrite),
            };
            if change.rewrite {
                change.log.sync_data()?;
                // Readers go on while the snapshot is written.
                change.state.let_readers_in();
                let memory = self.read_memory()?;
                let state = memory
                    .state
                    .as_ref()
                    .ok_or_else(|| StoreError::CommitFailed("profile state not loaded".into()))?;
                snapshot::write(&self.paths.snapshot, state, next.log_end)?;
            }
            save_points(&transaction, &next)?;
            Ok((value, next, change.rewrite))
        });
        let Change {
            state: mut lock, ..
        } = change;
        let memory = lock.memory()?;
        let (value, next, rewrote) = match outcome {
            Ok(done) => done,
            Err(error) => {
                memory.forget();
                return Err(error);
            }
        };
        memory.committing = Some(next.graph_version);
        if let Err(error) = transaction.commit() {
            memory.forget();
            memory.committing = None;
            return Err(error.into());
        }
        memory.points = next;
        memory.committing = None;
        if rewrote {
            memory.snapshot_end = next.log_end;
            memory.snapshot_bytes = file_size(&self.paths.snapshot);
        }
        let due =
            next.log_end - memory.snapshot_end > memory.snapshot_bytes.max(SNAPSHOT_MIN_GROWTH);
        drop(lock);
        if due {
            self.snapshot_now(&mut connection)?;
        }
        Ok(value)
    }

    /// Writes a snapshot of the state if it still reflects the files.
    fn snapshot_now(&self, connection: &mut Connection) -> Result<(), StoreError> {
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let points = read_points(&transaction)?;
        {
            // Readers go on while the snapshot is written (no writer can: the writer's
            // connection is held).
            let memory = self.read_memory()?;
            let Some(state) = memory.state.as_ref().filter(|_| memory.points == points) else {
                return Ok(());
            };
            // The snapshot must not cover log bytes the disk may not have yet.
            self.log.sync_data()?;
            snapshot::write(&self.paths.snapshot, state, points.log_end)?;
        }
        let mut memory = self.memory()?;
        memory.snapshot_end = points.log_end;
        memory.snapshot_bytes = file_size(&self.paths.snapshot);
        drop(memory);
        transaction.commit()?;
        Ok(())
    }

    /// Brings the memory up to the files, inside the caller's `IMMEDIATE` transaction (so no
    /// other process changes them meanwhile); returns the files' points.
    fn catch_up(&self, transaction: &Transaction<'_>) -> Result<Points, StoreError> {
        let points = read_points(transaction)?;
        let mut memory = self.memory()?;
        if memory.state.is_some() && memory.points == points {
            return Ok(points);
        }
        let appended_only = memory.state.is_some()
            && memory.points.rewrites == points.rewrites
            && memory.points.log_end <= points.log_end;
        let from = memory.points.log_end;
        if appended_only && let Some(state) = memory.state.as_mut() {
            // Another process committed whole batches: apply them. Anything else (a batch
            // that does not read back whole) is handled by loading again.
            match log::replay(&self.log, from, points.log_end, state) {
                Ok(end) if end == points.log_end => {
                    memory.points = points;
                    return Ok(points);
                }
                Ok(_) | Err(_) => memory.forget(),
            }
        }
        memory.forget();
        let loaded = self.load().and_then(|(state, snapshot_end, end)| {
            let points = self.repair(transaction, &state, points, end)?;
            Ok((state, snapshot_end, points))
        });
        match loaded {
            Ok((state, snapshot_end, points)) => {
                memory.state = Some(state);
                memory.points = points;
                memory.snapshot_end = snapshot_end;
                memory.snapshot_bytes = file_size(&self.paths.snapshot);
                Ok(points)
            }
            // Only damage empties the store; an I/O error (a full disk, too many open files)
            // is the caller's, and the next read tries again.
            Err(error @ StoreError::Corrupt(_)) => {
                tracing::error!(%error, "the profile store's files disagree: rebuilding profiles from the log");
                drop(memory);
                self.reset(transaction)?;
                let points = read_points(transaction)?;
                let mut memory = self.memory()?;
                memory.state = Some(State::default());
                memory.points = points;
                memory.snapshot_end = 0;
                memory.snapshot_bytes = 0;
                Ok(points)
            }
            Err(error) => Err(error),
        }
    }

    /// The state the files hold: the snapshot, then every whole batch of the log after it.
    /// Returns the state, where the snapshot ends and where the last whole batch ends.
    fn load(&self) -> Result<(State, u64, u64), StoreError> {
        let (mut state, from) = snapshot::read(&self.paths.snapshot)?.unwrap_or_default();
        let length = self.log.metadata()?.len();
        if from > length {
            return Err(StoreError::Corrupt(format!(
                "the snapshot covers {from} bytes of the change log, which has {length}"
            )));
        }
        let end = log::replay(&self.log, from, length, &mut state)?;
        Ok((state, from, end))
    }

    /// After a load: if the log did not end where `meta.log_end` says (a crash lost its end,
    /// or the commit that recorded its last batch), cuts it after its last whole batch and
    /// makes the cursors and points say what the state holds. Returns the points.
    fn repair(
        &self,
        transaction: &Transaction<'_>,
        state: &State,
        points: Points,
        end: u64,
    ) -> Result<Points, StoreError> {
        let mut cursors: HashMap<(Box<str>, Box<str>), i64> = HashMap::new();
        {
            let mut statement =
                transaction.prepare_cached("SELECT workspace_id, source_id, seq FROM cursors")?;
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let workspace: String = row.get(0)?;
                let source: String = row.get(1)?;
                cursors.insert((workspace.into(), source.into()), row.get(2)?);
            }
        }
        let length = self.log.metadata()?.len();
        if end == points.log_end && end == length && cursors == state.cursors {
            return Ok(points);
        }
        tracing::warn!(
            committed = points.log_end,
            whole = end,
            length,
            "the profile change log did not end where it was committed: cut after its last whole batch"
        );
        self.log.set_len(end)?;
        self.log.sync_all()?;
        transaction.execute("DELETE FROM cursors", [])?;
        for ((workspace, source), seq) in &state.cursors {
            transaction.execute(
                "INSERT INTO cursors(workspace_id, source_id, seq) VALUES (?1, ?2, ?3)",
                params![&**workspace, &**source, seq],
            )?;
        }
        let repaired = Points {
            graph_version: points.graph_version + 1,
            log_end: end,
            rewrites: points.rewrites + 1,
        };
        save_points(transaction, &repaired)?;
        Ok(repaired)
    }

    /// Empties the store: cursors, log and snapshot go, so the consumer rebuilds everything
    /// from the event log.
    fn reset(&self, connection: &Connection) -> Result<(), StoreError> {
        let points = read_points(connection)?;
        connection.execute("DELETE FROM cursors", [])?;
        save_points(
            connection,
            &Points {
                graph_version: points.graph_version + 1,
                log_end: 0,
                rewrites: points.rewrites + 1,
            },
        )?;
        self.log.set_len(0)?;
        self.log.sync_all()?;
        match std::fs::remove_file(&self.paths.snapshot) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error.into()),
        }
        Ok(())
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

    /// Gives back the memory the store holds: a snapshot is written first if the log grew
    /// since the last one, then the state is dropped (the next use loads it again), and
    /// SQLite's caches are released. A state the Profile API read in the last
    /// [`KEEP_AFTER_READ`] is kept: it is in use, and loading it again would cost the next
    /// reads seconds.
    pub fn release_memory(&self) -> Result<(), StoreError> {
        let mut connection = self.writer()?;
        let in_use = self
            .last_api_read
            .lock()
            .map_err(|_| StoreError::CommitFailed("profile store lock poisoned".into()))?
            .is_some_and(|at| at.elapsed() < KEEP_AFTER_READ);
        let behind = {
            let memory = self.memory()?;
            !in_use && memory.state.is_some() && memory.points.log_end > memory.snapshot_end
        };
        if behind {
            self.snapshot_now(&mut connection)?;
        }
        {
            let mut memory = self.memory()?;
            if !in_use
                && memory.snapshot_end == memory.points.log_end
                && let Some(state) = memory.state.take()
            {
                memory.tails = Some(state.tails());
            }
        }
        connection.release_memory()?;
        drop(connection);
        for reader in &self.readers {
            crate::sqlite::release_memory(reader)?;
        }
        Ok(())
    }

    /// How far the consumer got in a source (0: nothing yet).
    pub fn cursor(
        &self,
        workspace: &crate::WorkspaceId,
        source_id: &str,
    ) -> Result<i64, StoreError> {
        let connection = self.reader()?;
        crate::sqlite::read_cursor(&connection, "cursors", workspace, source_id)
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|meta| meta.len()).unwrap_or(0)
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
