//! The embedded log: one SQLite file (`log.db`) written by one thread with group commit.
//!
//! # Writing
//! Every write (append, acknowledge, erase, probe) is a command sent to the writer thread. The
//! thread takes the first waiting command, drains whatever else is queued (up to
//! `max_commit_events` events), applies them all in one transaction, commits (one fsync of the
//! WAL, `synchronous=FULL`), and only then answers each caller. So an `append` that returns
//! `Ok` is on disk, and a busy server pays one fsync for many requests.
//!
//! # Checkpoints
//! The writer never folds the WAL into `log.db` itself (`wal_autocheckpoint` is off), so no
//! commit waits for a checkpoint. A checkpointer thread runs a passive checkpoint every 20 ms
//! on its own connection; if the WAL still grows past 64 MiB it forces a restart checkpoint,
//! which briefly holds the writer.
//!
//! # On disk
//! - `events(seq INTEGER PRIMARY KEY AUTOINCREMENT, workspace_id, source_id, message_id,
//!   user_id, anonymous_id, received_at, body)`; `AUTOINCREMENT` so a sequence number is never
//!   reused after erasure. One index, `(source_id, seq)`, for reads; it grows at the end of
//!   each source's range, so a commit touches few pages.
//! - `dedup_keys(row, keys, received_at)`: the 128-bit dedup keys of the events of each append,
//!   one row per append (16 bytes a key), appended.
//!   The dedup index itself lives in memory (see [`super::dedup`]) and is rebuilt from this
//!   table at startup; rows it no longer needs are deleted as generations end.
//! - `cursors(workspace_id, source_id, consumer, seq)`.
//! - `meta(key, value)`: the readiness probe.
//!
//! Nothing here is indexed by a random key: every insert lands at the end of a B-tree, which
//! keeps the pages written per commit (and the WAL) close to the size of the data.
//!
//! # Erasure
//! Erasure scans the events of the workspace (there is no per-person index, on purpose: it
//! would cost every append a random insert); it is rare and runs in the writer like any other
//! write. `secure_delete` is on, so deleted rows are overwritten in the database file; after
//! an erasure the WAL is checkpointed and truncated so no old page image keeps them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::dedup::{self, DedupIndex};
use super::{AppendOutcome, EventLog, NewEvent, Seq, SourceScope, StoredEvent};
use crate::state::WorkspaceId;
use crate::{StoreError, sqlite};

/// Settings of the embedded log.
#[derive(Debug, Clone)]
pub struct SqliteLogConfig {
    /// The database file.
    pub path: PathBuf,
    /// How long a `messageId` is remembered for deduplication, in milliseconds.
    pub dedup_window_ms: i64,
    /// Most events committed in one transaction.
    pub max_commit_events: usize,
    /// Most write commands waiting for the writer; callers wait when it is full.
    pub queue_depth: usize,
    /// Most message ids one dedup generation remembers (two generations, allocated up
    /// front: ~18 MB for both at the default 400,000).
    pub dedup_capacity: usize,
}

impl SqliteLogConfig {
    pub fn new(path: impl Into<PathBuf>) -> SqliteLogConfig {
        SqliteLogConfig {
            path: path.into(),
            dedup_window_ms: 24 * 60 * 60 * 1000,
            max_commit_events: 4096,
            queue_depth: 1024,
            dedup_capacity: 400_000,
        }
    }
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Command {
    Append {
        events: Vec<NewEvent>,
        reply: Reply<Vec<AppendOutcome>>,
    },
    Ack {
        scope: SourceScope,
        consumer: String,
        seq: Seq,
        reply: Reply<()>,
    },
    Erase {
        erasure: Erasure,
        reply: Reply<u64>,
    },
    Probe {
        reply: Reply<()>,
    },
    /// Give back the writer connection's page cache once the group is committed.
    ReleaseMemory,
    Shutdown,
}

/// What an erasing command removes. Every erasure overwrites the rows (`secure_delete`) and
/// truncates the WAL after its commit.
enum Erasure {
    /// Every event of the workspace whose `userId` or `anonymousId` is one of the identifiers.
    Person(WorkspaceId, Vec<String>),
    /// Up to `limit` of the source's oldest events, in log order, received before `before_ms`.
    Expired {
        scope: SourceScope,
        before_ms: i64,
        limit: usize,
    },
    /// Every cursor of a consumer in the workspace.
    Consumer(WorkspaceId, String),
}

impl Command {
    fn weight(&self) -> usize {
        match self {
            Command::Append { events, .. } => events.len(),
            _ => 1,
        }
    }
}

/// The embedded event log. See the module documentation.
pub struct SqliteLog {
    commands: mpsc::Sender<Command>,
    reader: Arc<Mutex<Connection>>,
    live: broadcast::Sender<Arc<StoredEvent>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    stop_checkpoints: Arc<AtomicBool>,
}

/// How often the checkpointer folds the WAL into the database. Small and frequent is best:
/// each checkpoint ends with an fsync of `log.db`, and a large one delays the writer's WAL
/// fsyncs behind it (measured: every 1 s gave a p99 of 48 ms at half load, every 20 ms 9 ms).
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(20);

/// WAL size (pages of 4 KiB) past which the checkpointer forces a restart checkpoint.
const WAL_RESTART_PAGES: i64 = 16_384;

fn run_checkpointer(connection: &Connection, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(CHECKPOINT_INTERVAL);
        let result = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(1)
        });
        match result {
            Ok(wal_pages) if wal_pages > WAL_RESTART_PAGES => {
                if let Err(error) = connection.execute_batch("PRAGMA wal_checkpoint(RESTART);") {
                    tracing::warn!(%error, "restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "passive checkpoint failed"),
        }
    }
}

impl SqliteLog {
    fn stop_checkpointer(&self) -> Option<JoinHandle<()>> {
        self.stop_checkpoints.store(true, Ordering::Release);
        let handle = self
            .checkpointer
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(handle) = &handle {
            handle.thread().unpark();
        }
        handle
    }
}

impl Drop for SqliteLog {
    fn drop(&mut self) {
        // Without close(): stop the checkpointer without waiting for it.
        let _ = self.stop_checkpointer();
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    user_id TEXT,
    anonymous_id TEXT,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_source ON events(source_id, seq);
CREATE TABLE IF NOT EXISTS cursors (
    workspace_id TEXT NOT NULL,
    source_id TEXT NOT NULL,
    consumer TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, source_id, consumer)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dedup_keys (
    row INTEGER PRIMARY KEY,
    keys BLOB NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
";

/// Metric names of the log writer.
pub const METRIC_COMMIT_EVENTS: &str = "sluice_log_commit_events";
pub const METRIC_COMMIT_SECONDS: &str = "sluice_log_commit_seconds";

impl SqliteLog {
    /// Opens the log, creating the file if needed, and starts the writer thread.
    pub fn open(config: SqliteLogConfig) -> Result<SqliteLog, StoreError> {
        if config.dedup_window_ms <= 0 {
            return Err(StoreError::Invalid {
                field: "dedup_window",
                message: "must be positive".into(),
            });
        }
        let writer_connection = sqlite::open(&config.path)?;
        writer_connection.execute_batch(SCHEMA)?;
        writer_connection.pragma_update(None, "wal_autocheckpoint", 0)?;
        let dedup = load_dedup(&writer_connection, &config)?;
        let dedup_trimmed_below = first_dedup_row(&writer_connection)?;

        let reader = sqlite::open(&config.path)?;
        reader.pragma_update(None, "query_only", "ON")?;

        let (commands, receiver) = mpsc::channel(config.queue_depth.max(1));
        let (live, _) = broadcast::channel(1024);
        let writer = Writer {
            connection: writer_connection,
            receiver,
            live: live.clone(),
            dedup,
            dedup_trimmed_below,
            config: config.clone(),
            max_commit_events: config.max_commit_events.max(1),
        };
        let handle = std::thread::Builder::new()
            .name("sluice-log-writer".into())
            .spawn(move || writer.run())?;
        let checkpoint_connection = sqlite::open(&config.path)?;
        let stop_checkpoints = Arc::new(AtomicBool::new(false));
        let stop = Arc::clone(&stop_checkpoints);
        let checkpointer = std::thread::Builder::new()
            .name("sluice-log-checkpoint".into())
            .spawn(move || run_checkpointer(&checkpoint_connection, &stop))?;
        Ok(SqliteLog {
            commands,
            reader: Arc::new(Mutex::new(reader)),
            live,
            writer: Mutex::new(Some(handle)),
            checkpointer: Mutex::new(Some(checkpointer)),
            stop_checkpoints,
        })
    }

    async fn call<T>(&self, command: impl FnOnce(Reply<T>) -> Command) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }

    async fn with_reader<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let connection = reader
                .lock()
                .map_err(|_| StoreError::CommitFailed("reader lock poisoned".into()))?;
            work(&connection)
        })
        .await
        .map_err(|error| StoreError::CommitFailed(format!("reader task failed: {error}")))?
    }
}

const SELECT_EVENT: &str = "SELECT seq, workspace_id, source_id, message_id, user_id, anonymous_id, received_at, body FROM events";

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    Ok(StoredEvent {
        seq: row.get(0)?,
        event: NewEvent {
            workspace_id: WorkspaceId(row.get(1)?),
            source_id: row.get(2)?,
            message_id: row.get(3)?,
            user_id: row.get(4)?,
            anonymous_id: row.get(5)?,
            received_at_ms: row.get(6)?,
            body: row.get(7)?,
        },
    })
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[async_trait]
impl EventLog for SqliteLog {
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        self.call(|reply| Command::Append { events, reply }).await
    }

    async fn read(
        &self,
        scope: &SourceScope,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let scope = scope.clone();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE source_id = ?1 AND workspace_id = ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"
            ))?;
            let rows = statement.query_map(
                params![scope.source_id, scope.workspace_id.0, after, sql_limit(limit)],
                row_to_event,
            )?;
            let mut events = Vec::new();
            for row in rows {
                events.push(row?);
            }
            Ok(events)
        })
        .await
    }

    async fn latest(
        &self,
        scope: &SourceScope,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let scope = scope.clone();
        self.with_reader(move |connection| {
            let mut statement = connection.prepare_cached(&format!(
                "{SELECT_EVENT} WHERE source_id = ?1 AND workspace_id = ?2 ORDER BY seq DESC LIMIT ?3"
            ))?;
            let rows = statement.query_map(params![scope.source_id, scope.workspace_id.0, sql_limit(limit)], row_to_event)?;
            let mut events = Vec::new();
            for row in rows {
                events.push(row?);
            }
            events.reverse();
            Ok(events)
        })
        .await
    }

    async fn cursor(&self, scope: &SourceScope, consumer: &str) -> Result<Seq, StoreError> {
        let scope = scope.clone();
        let consumer = consumer.to_owned();
        self.with_reader(move |connection| {
            let seq: Option<Seq> = connection
                .query_row(
                    "SELECT seq FROM cursors WHERE workspace_id = ?1 AND source_id = ?2 AND consumer = ?3",
                    params![scope.workspace_id.0, scope.source_id, consumer],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(seq.unwrap_or(0))
        })
        .await
    }

    async fn ack(&self, scope: &SourceScope, consumer: &str, seq: Seq) -> Result<(), StoreError> {
        let scope = scope.clone();
        let consumer = consumer.to_owned();
        self.call(|reply| Command::Ack {
            scope,
            consumer,
            seq,
            reply,
        })
        .await
    }

    async fn find_person(
        &self,
        workspace_id: &WorkspaceId,
        identifiers: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let workspace_id = workspace_id.clone();
        let identifiers = identifiers.to_vec();
        self.with_reader(move |connection| find_in(connection, &workspace_id, &identifiers))
            .await
    }

    async fn erase_person(
        &self,
        workspace_id: &WorkspaceId,
        identifiers: &[String],
    ) -> Result<u64, StoreError> {
        let erasure = Erasure::Person(workspace_id.clone(), identifiers.to_vec());
        self.call(|reply| Command::Erase { erasure, reply }).await
    }

    async fn expire(
        &self,
        scope: &SourceScope,
        received_before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError> {
        let erasure = Erasure::Expired {
            scope: scope.clone(),
            before_ms: received_before_ms,
            limit,
        };
        self.call(|reply| Command::Erase { erasure, reply }).await
    }

    async fn forget_consumer(
        &self,
        workspace_id: &WorkspaceId,
        consumer: &str,
    ) -> Result<u64, StoreError> {
        let erasure = Erasure::Consumer(workspace_id.clone(), consumer.to_owned());
        self.call(|reply| Command::Erase { erasure, reply }).await
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.live.subscribe()
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.call(|reply| Command::Probe { reply }).await
    }

    fn release_memory(&self) {
        // A full queue means the writer is busy: its cache is in use, so skip it.
        let _ = self.commands.try_send(Command::ReleaseMemory);
        if let Err(error) = crate::sqlite::release_memory(&self.reader) {
            tracing::warn!(%error, "releasing the log reader's memory failed");
        }
    }

    async fn close(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
        let handle = match self.writer.lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        if let Some(handle) = handle {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
        if let Some(handle) = self.stop_checkpointer() {
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }
}

/// Most `dedup_keys` rows deleted in one commit (a row holds the keys of one append, up to a
/// batch's 2,500).
const DEDUP_TRIM_ROWS: i64 = 256;

/// The first row of `dedup_keys` (where trimming resumes after a restart).
fn first_dedup_row(connection: &Connection) -> Result<i64, StoreError> {
    let first: Option<i64> =
        connection.query_row("SELECT MIN(row) FROM dedup_keys", [], |row| row.get(0))?;
    Ok(first.unwrap_or(0))
}

/// Rebuilds the in-memory dedup index from `dedup_keys`.
fn load_dedup(connection: &Connection, config: &SqliteLogConfig) -> Result<DedupIndex, StoreError> {
    let mut index = DedupIndex::new(config.dedup_window_ms, config.dedup_capacity);
    let mut statement =
        connection.prepare("SELECT row, keys, received_at FROM dedup_keys ORDER BY row")?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let position: i64 = row.get(0)?;
        let keys: Vec<u8> = row.get(1)?;
        let received_at: i64 = row.get(2)?;
        for chunk in keys.chunks_exact(16) {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(chunk);
            index.record(u128::from_le_bytes(bytes), received_at, position);
        }
    }
    Ok(index)
}

struct Writer {
    connection: Connection,
    receiver: mpsc::Receiver<Command>,
    live: broadcast::Sender<Arc<StoredEvent>>,
    dedup: DedupIndex,
    /// `dedup_keys` rows below this were deleted.
    dedup_trimmed_below: i64,
    config: SqliteLogConfig,
    max_commit_events: usize,
}

/// Who is waiting for a command's answer.
enum Waiter {
    Outcomes(Reply<Vec<AppendOutcome>>),
    Done(Reply<()>),
    Count(Reply<u64>),
}

/// A command's result inside the open transaction, answered once the commit succeeds.
enum Applied {
    Appended(Vec<AppendOutcome>, Vec<NewEvent>),
    Done,
    Count(u64),
}

impl Waiter {
    fn fail(self, message: &str) {
        let error = || StoreError::CommitFailed(message.to_owned());
        match self {
            Waiter::Outcomes(reply) => drop(reply.send(Err(error()))),
            Waiter::Done(reply) => drop(reply.send(Err(error()))),
            Waiter::Count(reply) => drop(reply.send(Err(error()))),
        }
    }
}

impl Writer {
    fn run(mut self) {
        let mut stopping = false;
        while !stopping {
            let Some(first) = self.receiver.blocking_recv() else {
                break;
            };
            let mut weight = first.weight();
            let mut group = vec![first];
            while weight < self.max_commit_events {
                match self.receiver.try_recv() {
                    Ok(command) => {
                        weight += command.weight();
                        group.push(command);
                    }
                    Err(_) => break,
                }
            }
            let mut work = Vec::with_capacity(group.len());
            let mut release = false;
            for command in group {
                match command {
                    Command::Shutdown => stopping = true,
                    Command::ReleaseMemory => release = true,
                    other => work.push(other),
                }
            }
            if !work.is_empty() {
                self.commit_group(work);
            }
            if release && let Err(error) = self.connection.release_memory() {
                tracing::warn!(%error, "releasing the log writer's memory failed");
            }
        }
        tracing::debug!("log writer stopped");
    }

    /// Applies a group of commands in one transaction, commits, then answers every caller:
    /// with its result when the commit succeeded, with the error otherwise.
    fn commit_group(&mut self, group: Vec<Command>) {
        let started = Instant::now();
        let mut waiters = Vec::with_capacity(group.len());
        let mut operations = Vec::with_capacity(group.len());
        for command in group {
            match command {
                Command::Append { events, reply } => {
                    waiters.push(Waiter::Outcomes(reply));
                    operations.push(Operation::Append(events));
                }
                Command::Ack {
                    scope,
                    consumer,
                    seq,
                    reply,
                } => {
                    waiters.push(Waiter::Done(reply));
                    operations.push(Operation::Ack(scope, consumer, seq));
                }
                Command::Erase { erasure, reply } => {
                    waiters.push(Waiter::Count(reply));
                    operations.push(Operation::Erase(erasure));
                }
                Command::Probe { reply } => {
                    waiters.push(Waiter::Done(reply));
                    operations.push(Operation::Probe);
                }
                Command::Shutdown | Command::ReleaseMemory => {}
            }
        }
        let erasing = operations
            .iter()
            .any(|operation| matches!(operation, Operation::Erase(..)));
        let appended: usize = operations
            .iter()
            .map(|operation| match operation {
                Operation::Append(events) => events.len(),
                _ => 0,
            })
            .sum();

        match apply_all(
            &mut self.connection,
            &mut self.dedup,
            &mut self.dedup_trimmed_below,
            operations,
        ) {
            Ok(results) => {
                metrics::histogram!(METRIC_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
                metrics::histogram!(METRIC_COMMIT_EVENTS).record(appended as f64);
                if erasing {
                    // Old page images of the erased rows may sit in the WAL: fold it into the
                    // database (where secure_delete zeroed them) and cut it to nothing.
                    if let Err(error) = self
                        .connection
                        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
                    {
                        tracing::warn!(%error, "wal checkpoint after erasure failed");
                    }
                }
                self.answer(waiters, results);
            }
            Err(error) => {
                tracing::error!(%error, "log commit failed");
                // The index may hold keys of the rolled-back events: rebuild it from disk.
                match load_dedup(&self.connection, &self.config) {
                    Ok(index) => self.dedup = index,
                    Err(reload) => tracing::error!(error = %reload, "dedup index reload failed"),
                }
                let message = error.to_string();
                for waiter in waiters {
                    waiter.fail(&message);
                }
            }
        }
    }

    fn answer(&self, waiters: Vec<Waiter>, results: Vec<Applied>) {
        let watching = self.live.receiver_count() > 0;
        for (waiter, result) in waiters.into_iter().zip(results) {
            match (waiter, result) {
                (Waiter::Outcomes(reply), Applied::Appended(outcomes, events)) => {
                    if watching {
                        self.publish(&outcomes, events);
                    }
                    let _ = reply.send(Ok(outcomes));
                }
                (Waiter::Done(reply), _) => {
                    let _ = reply.send(Ok(()));
                }
                (Waiter::Count(reply), Applied::Count(count)) => {
                    let _ = reply.send(Ok(count));
                }
                (waiter, _) => waiter.fail("internal: result does not match its command"),
            }
        }
    }

    fn publish(&self, outcomes: &[AppendOutcome], events: Vec<NewEvent>) {
        for (outcome, event) in outcomes.iter().zip(events) {
            if let AppendOutcome::Appended(seq) = outcome {
                let _ = self.live.send(Arc::new(StoredEvent { seq: *seq, event }));
            }
        }
    }
}

/// A write, separated from the caller waiting for it.
enum Operation {
    Append(Vec<NewEvent>),
    Ack(SourceScope, String, Seq),
    Erase(Erasure),
    Probe,
}

/// Runs every operation in one transaction and commits it.
fn apply_all(
    connection: &mut Connection,
    dedup: &mut DedupIndex,
    dedup_trimmed_below: &mut i64,
    operations: Vec<Operation>,
) -> Result<Vec<Applied>, StoreError> {
    let tx = connection.transaction()?;
    let mut results = Vec::with_capacity(operations.len());
    for operation in operations {
        let applied = match operation {
            Operation::Append(events) => {
                let outcomes = append_events(&tx, dedup, &events)?;
                Applied::Appended(outcomes, events)
            }
            Operation::Ack(scope, consumer, seq) => {
                tx.prepare_cached(
                    "INSERT INTO cursors(workspace_id, source_id, consumer, seq) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(workspace_id, source_id, consumer) DO UPDATE SET seq = excluded.seq
                     WHERE excluded.seq > cursors.seq",
                )?
                .execute(params![scope.workspace_id.0, scope.source_id, consumer, seq])?;
                Applied::Done
            }
            Operation::Erase(Erasure::Person(workspace_id, identifiers)) => {
                Applied::Count(erase(&tx, &workspace_id, &identifiers)?)
            }
            Operation::Erase(Erasure::Expired {
                scope,
                before_ms,
                limit,
            }) => Applied::Count(expire(&tx, &scope, before_ms, limit)?),
            Operation::Erase(Erasure::Consumer(workspace_id, consumer)) => {
                let removed = tx
                    .prepare_cached(
                        "DELETE FROM cursors WHERE workspace_id = ?1 AND consumer = ?2",
                    )?
                    .execute(params![workspace_id.0, consumer])?;
                Applied::Count(removed as u64)
            }
            Operation::Probe => {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('probe', 1)
                     ON CONFLICT(key) DO UPDATE SET value = value + 1",
                    [],
                )?;
                Applied::Done
            }
        };
        results.push(applied);
    }
    // Rows of generations the index has dropped are no longer needed. They go a chunk per
    // commit: a generation can hold a million rows, and deleting them in one commit stalled
    // every request waiting on it for ~200 ms.
    let keep_from = dedup.keep_from_row().unwrap_or(i64::MAX);
    let trim_below = keep_from.min(dedup_trimmed_below.saturating_add(DEDUP_TRIM_ROWS));
    if trim_below > *dedup_trimmed_below {
        tx.prepare_cached("DELETE FROM dedup_keys WHERE row < ?1")?
            .execute([trim_below])?;
    }
    tx.commit()?;
    *dedup_trimmed_below = (*dedup_trimmed_below).max(trim_below);
    Ok(results)
}

/// The workspace's events of any of the identifiers, in log order: one scan of the
/// workspace's events (the log has no index on people, see the module documentation), matched
/// against the set in memory; only matching rows' bodies are read.
fn find_in(
    connection: &Connection,
    workspace_id: &WorkspaceId,
    identifiers: &[String],
) -> Result<Vec<StoredEvent>, StoreError> {
    let wanted: HashSet<&str> = identifiers.iter().map(String::as_str).collect();
    let mut statement = connection.prepare_cached(&format!(
        "{SELECT_EVENT} WHERE workspace_id = ?1 ORDER BY seq"
    ))?;
    let mut rows = statement.query([&workspace_id.0])?;
    let mut found = Vec::new();
    while let Some(row) = rows.next()? {
        let user: Option<String> = row.get(4)?;
        let anonymous: Option<String> = row.get(5)?;
        let matches = user.as_deref().is_some_and(|id| wanted.contains(id))
            || anonymous.as_deref().is_some_and(|id| wanted.contains(id));
        if matches {
            found.push(row_to_event(row)?);
        }
    }
    Ok(found)
}

fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(connection)
}

/// [`EventLog::find_person`] on a log file another process may be writing (the CLI's
/// `privacy verify` and `privacy export`): opened read-only, never written.
pub fn find_person_in_file(
    path: &Path,
    workspace_id: &WorkspaceId,
    identifiers: &[String],
) -> Result<Vec<StoredEvent>, StoreError> {
    find_in(&open_read_only(path)?, workspace_id, identifiers)
}

/// Every cursor of the workspace in a log file: `(source, consumer, seq)`.
pub fn cursors_in_file(
    path: &Path,
    workspace_id: &WorkspaceId,
) -> Result<Vec<(String, String, Seq)>, StoreError> {
    let connection = open_read_only(path)?;
    let mut statement = connection
        .prepare("SELECT source_id, consumer, seq FROM cursors WHERE workspace_id = ?1")?;
    let rows = statement.query_map([&workspace_id.0], |row| {
        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Deletes the workspace's events of any of the identifiers, in one scan.
fn erase(
    tx: &Transaction<'_>,
    workspace_id: &WorkspaceId,
    identifiers: &[String],
) -> Result<u64, StoreError> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS erase_ids (id TEXT PRIMARY KEY); DELETE FROM erase_ids;",
    )?;
    for identifier in identifiers {
        tx.prepare_cached("INSERT OR IGNORE INTO erase_ids(id) VALUES (?1)")?
            .execute([identifier])?;
    }
    let removed = tx
        .prepare_cached(
            "DELETE FROM events WHERE workspace_id = ?1
             AND (user_id IN (SELECT id FROM erase_ids) OR anonymous_id IN (SELECT id FROM erase_ids))",
        )?
        .execute([&workspace_id.0])?;
    tx.execute("DELETE FROM erase_ids", [])?;
    Ok(removed as u64)
}

/// Deletes up to `limit` of the source's oldest events received before `before_ms`. Events
/// are walked in log order and the walk stops at the first one received later: the log is in
/// receive order, so this reads no more rows than it deletes (plus one) and needs no index on
/// the receive time.
fn expire(
    tx: &Transaction<'_>,
    scope: &SourceScope,
    before_ms: i64,
    limit: usize,
) -> Result<u64, StoreError> {
    let mut oldest = tx.prepare_cached(
        "SELECT seq, received_at FROM events WHERE source_id = ?1 AND workspace_id = ?2
         ORDER BY seq LIMIT ?3",
    )?;
    let mut rows = oldest.query(params![
        scope.source_id,
        scope.workspace_id.0,
        sql_limit(limit)
    ])?;
    let mut last_expired = None;
    while let Some(row) = rows.next()? {
        let received_at: i64 = row.get(1)?;
        if received_at >= before_ms {
            break;
        }
        last_expired = Some(row.get::<_, Seq>(0)?);
    }
    drop(rows);
    let Some(last) = last_expired else {
        return Ok(0);
    };
    let removed = tx
        .prepare_cached(
            "DELETE FROM events WHERE source_id = ?1 AND workspace_id = ?2 AND seq <= ?3",
        )?
        .execute(params![scope.source_id, scope.workspace_id.0, last])?;
    Ok(removed as u64)
}

fn append_events(
    tx: &Transaction<'_>,
    dedup: &mut DedupIndex,
    events: &[NewEvent],
) -> Result<Vec<AppendOutcome>, StoreError> {
    let mut outcomes = Vec::with_capacity(events.len());
    let mut insert = tx.prepare_cached(
        "INSERT INTO events(workspace_id, source_id, message_id, user_id, anonymous_id, received_at, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    // Keys stored by this append: one dedup_keys row for all of them, written after the loop.
    let mut stored: Vec<(u128, i64)> = Vec::with_capacity(events.len());
    let mut in_this_append: HashSet<u128> = HashSet::with_capacity(events.len());
    for event in events {
        let key = dedup::key(&event.workspace_id.0, &event.message_id);
        if dedup.contains(key, event.received_at_ms) || !in_this_append.insert(key) {
            outcomes.push(AppendOutcome::Duplicate);
            continue;
        }
        insert.execute(params![
            event.workspace_id.0,
            event.source_id,
            event.message_id,
            event.user_id,
            event.anonymous_id,
            event.received_at_ms,
            event.body,
        ])?;
        outcomes.push(AppendOutcome::Appended(tx.last_insert_rowid()));
        stored.push((key, event.received_at_ms));
    }
    if stored.is_empty() {
        return Ok(outcomes);
    }
    let mut keys = Vec::with_capacity(stored.len() * 16);
    let mut latest = i64::MIN;
    for (key, received_at) in &stored {
        keys.extend_from_slice(&key.to_le_bytes());
        latest = latest.max(*received_at);
    }
    tx.prepare_cached("INSERT INTO dedup_keys(keys, received_at) VALUES (?1, ?2)")?
        .execute(params![keys, latest])?;
    let row = tx.last_insert_rowid();
    for (key, received_at) in stored {
        dedup.record(key, received_at, row);
    }
    Ok(outcomes)
}
