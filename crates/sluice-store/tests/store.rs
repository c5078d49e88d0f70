//! The embedded backends against the conformance suite, plus what only SQLite promises
//! (physical erasure in the files, group commit under concurrency).

use std::path::PathBuf;
use std::sync::Arc;

use sluice_store::conformance::{LONG_WINDOW_MS, LogHarness, model_check, run_suite};
use sluice_store::{
    AppendOutcome, EventLog, NewEvent, SourceScope, SqliteLog, SqliteLogConfig, WorkspaceId,
};

struct SqliteHarness {
    _dir: tempfile::TempDir,
    path: PathBuf,
    window_ms: i64,
}

impl SqliteHarness {
    fn new(window_ms: i64) -> SqliteHarness {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.db");
        SqliteHarness {
            _dir: dir,
            path,
            window_ms,
        }
    }
}

impl LogHarness for SqliteHarness {
    type Log = SqliteLog;

    fn open(&mut self) -> SqliteLog {
        let mut config = SqliteLogConfig::new(&self.path);
        config.dedup_window_ms = self.window_ms;
        SqliteLog::open(config).expect("open log")
    }

    fn crash(&mut self, log: SqliteLog) {
        // No close(): the writer thread sees its channel drop and the connection is dropped
        // without a checkpoint, as after a kill. (A real kill -9 is tested in the binary.)
        drop(log);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_log_passes_the_conformance_suite() {
    run_suite(SqliteHarness::new).await;
}

#[test]
fn sqlite_log_matches_the_model() {
    model_check(|| SqliteHarness::new(LONG_WINDOW_MS), 64);
}

fn event(n: usize, user: &str) -> NewEvent {
    NewEvent {
        workspace_id: WorkspaceId("w".into()),
        source_id: "s".into(),
        message_id: format!("msg-{n}"),
        user_id: Some(user.to_owned()),
        anonymous_id: Some(format!("anon-of-{user}")),
        received_at_ms: 1_790_000_000_000,
        body: format!(r#"{{"userId":"{user}","properties":{{"secret":"payload-of-{user}"}}}}"#),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_stored_once() {
    let mut harness = SqliteHarness::new(LONG_WINDOW_MS);
    let log = Arc::new(harness.open());
    let mut tasks = Vec::new();
    for task in 0..16 {
        let log = Arc::clone(&log);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for round in 0..20 {
                let batch = (0..5)
                    .map(|i| event(task * 1000 + round * 10 + i, "u"))
                    .collect();
                for outcome in log.append(batch).await.expect("append") {
                    match outcome {
                        AppendOutcome::Appended(seq) => seqs.push(seq),
                        AppendOutcome::Duplicate => panic!("no duplicates were sent"),
                    }
                }
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("task"));
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 16 * 20 * 5);
    let scope = SourceScope {
        workspace_id: WorkspaceId("w".into()),
        source_id: "s".into(),
    };
    assert_eq!(log.read(&scope, 0, 10_000).await.expect("read").len(), 1600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_bytes_in_the_data_files() {
    let mut harness = SqliteHarness::new(LONG_WINDOW_MS);
    let log = harness.open();
    let mut batch = Vec::new();
    for n in 0..200 {
        batch.push(event(
            n,
            if n % 2 == 0 {
                "erin-erased"
            } else {
                "kim-kept"
            },
        ));
    }
    log.append(batch).await.expect("append");
    let removed = log
        .erase_person(
            &WorkspaceId("w".into()),
            &["erin-erased".to_owned(), "anon-of-erin-erased".to_owned()],
        )
        .await
        .expect("erase");
    assert_eq!(removed, 100);

    let dir = harness.path.parent().expect("dir").to_owned();
    let mut scanned = 0;
    for entry in std::fs::read_dir(&dir).expect("read dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read file");
        scanned += bytes.len();
        for needle in ["erin-erased", "payload-of-erin"] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{needle} found on disk"
            );
        }
    }
    assert!(scanned > 0);
    // The kept person is still there, on disk and through the API.
    let scope = SourceScope {
        workspace_id: WorkspaceId("w".into()),
        source_id: "s".into(),
    };
    assert_eq!(log.read(&scope, 0, 1000).await.expect("read").len(), 100);
    log.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_log_refuses_writes() {
    let mut harness = SqliteHarness::new(LONG_WINDOW_MS);
    let log = harness.open();
    log.close().await;
    assert!(log.append(vec![event(1, "u")]).await.is_err());
    assert!(log.check_writable().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_memory_is_bounded_and_rebuilt_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("log.db");
    let open = || {
        let mut config = SqliteLogConfig::new(&path);
        config.dedup_capacity = 3;
        SqliteLog::open(config).expect("open")
    };
    let log = open();
    for n in 0..10 {
        log.append(vec![event(n, "u")]).await.expect("append");
    }
    log.close().await;
    drop(log);

    let log = open();
    let again = log
        .append(vec![event(9, "u"), event(7, "u"), event(0, "u")])
        .await
        .expect("append");
    assert_eq!(
        again[0],
        AppendOutcome::Duplicate,
        "the newest ids are remembered across a restart"
    );
    assert_eq!(again[1], AppendOutcome::Duplicate);
    assert!(
        matches!(again[2], AppendOutcome::Appended(_)),
        "the oldest fell out of the bounded window"
    );
    log.close().await;

    let connection = rusqlite::Connection::open(&path).expect("sqlite");
    let rows: i64 = connection
        .query_row("SELECT COUNT(*) FROM dedup_keys", [], |row| row.get(0))
        .expect("count");
    assert!(
        rows <= 7,
        "rows no generation needs are deleted: {rows} left"
    );
}
