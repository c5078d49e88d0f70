//! The conformance suite of [`EventLog`]: every backend runs it (the embedded SQLite log now,
//! JetStream later), so they all keep the same contract.
//!
//! A backend supplies a [`LogHarness`]: something that opens the log on the same storage
//! again and again, and can "crash" it (drop it without a clean close). [`run_suite`] runs the
//! scenario checks; [`model_check`] runs random sequences of append / acknowledge / erase /
//! crash against the backend and an in-memory model and compares them after every step.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::log::{AppendOutcome, EventLog, NewEvent, Seq, SourceScope, StoredEvent};
use crate::state::WorkspaceId;

/// How the suite drives a backend.
pub trait LogHarness: Send {
    type Log: EventLog;
    /// Opens the log on this harness's storage (the same storage every time).
    fn open(&mut self) -> Self::Log;
    /// Ends the log without a clean shutdown.
    fn crash(&mut self, log: Self::Log);
}

/// A dedup window so long that nothing expires during a test.
pub const LONG_WINDOW_MS: i64 = 1_000_000_000;

const T0: i64 = 1_790_000_000_000;

fn scope(workspace: &str, source: &str) -> SourceScope {
    SourceScope {
        workspace_id: WorkspaceId(workspace.to_owned()),
        source_id: source.to_owned(),
    }
}

fn event(
    workspace: &str,
    source: &str,
    message_id: &str,
    user: Option<&str>,
    anonymous: Option<&str>,
    at: i64,
) -> NewEvent {
    NewEvent {
        workspace_id: WorkspaceId(workspace.to_owned()),
        source_id: source.to_owned(),
        message_id: message_id.to_owned(),
        user_id: user.map(str::to_owned),
        anonymous_id: anonymous.map(str::to_owned),
        received_at_ms: at,
        body: format!(r#"{{"messageId":"{message_id}","userId":{user:?}}}"#),
    }
}

fn ids(events: &[StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.event.message_id.as_str()).collect()
}

/// Runs every scenario check, each on fresh storage from `make(dedup_window_ms)`.
pub async fn run_suite<H: LogHarness>(make: impl Fn(i64) -> H) {
    append_and_read(make(LONG_WINDOW_MS)).await;
    duplicates_are_not_stored(make(LONG_WINDOW_MS)).await;
    dedup_window_expires(make(1_000)).await;
    dedup_and_data_survive_a_crash(make(LONG_WINDOW_MS)).await;
    reads_are_scoped(make(LONG_WINDOW_MS)).await;
    cursors(make(LONG_WINDOW_MS)).await;
    erasure(make(LONG_WINDOW_MS)).await;
    expiry(make(LONG_WINDOW_MS)).await;
    forgetting_a_consumer(make(LONG_WINDOW_MS)).await;
    live_tail(make(LONG_WINDOW_MS)).await;
}

async fn append_and_read<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    let outcomes = log
        .append(vec![
            event("w", "s", "m1", Some("u"), None, T0),
            event("w", "s", "m2", None, Some("a"), T0),
        ])
        .await
        .expect("append");
    let (AppendOutcome::Appended(first), AppendOutcome::Appended(second)) =
        (outcomes[0], outcomes[1])
    else {
        panic!("both events should be appended: {outcomes:?}");
    };
    assert!(
        second > first && first > 0,
        "sequence numbers grow from 1: {outcomes:?}"
    );
    let all = log.read(&scope("w", "s"), 0, 100).await.expect("read");
    assert_eq!(ids(&all), vec!["m1", "m2"]);
    assert_eq!(all[0].event.user_id.as_deref(), Some("u"));
    assert_eq!(all[1].event.anonymous_id.as_deref(), Some("a"));
    assert_eq!(all[0].event, event("w", "s", "m1", Some("u"), None, T0));
    assert_eq!(all[0].event.received_at_ms, T0);
    assert_eq!(
        ids(&log.read(&scope("w", "s"), first, 100).await.expect("read")),
        vec!["m2"]
    );
    assert_eq!(
        ids(&log.read(&scope("w", "s"), 0, 1).await.expect("read")),
        vec!["m1"]
    );
    assert_eq!(
        log.append(Vec::new()).await.expect("empty append"),
        Vec::new()
    );
    log.check_writable().await.expect("writable");
}

async fn duplicates_are_not_stored<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    let outcomes = log
        .append(vec![
            event("w", "s", "m1", Some("u"), None, T0),
            event("w", "s", "m1", Some("u"), None, T0),
            event("w", "other-source", "m1", Some("u"), None, T0),
            event("w2", "s", "m1", Some("u"), None, T0),
        ])
        .await
        .expect("append");
    assert!(matches!(outcomes[0], AppendOutcome::Appended(_)));
    assert_eq!(outcomes[1], AppendOutcome::Duplicate, "same batch");
    assert_eq!(
        outcomes[2],
        AppendOutcome::Duplicate,
        "dedup is per workspace, across sources"
    );
    assert!(
        matches!(outcomes[3], AppendOutcome::Appended(_)),
        "another workspace is not a duplicate"
    );
    let again = log
        .append(vec![event("w", "s", "m1", Some("u"), None, T0 + 5)])
        .await
        .expect("append");
    assert_eq!(again, vec![AppendOutcome::Duplicate], "a later batch");
    assert_eq!(
        log.read(&scope("w", "s"), 0, 100)
            .await
            .expect("read")
            .len(),
        1
    );
}

async fn dedup_window_expires<H: LogHarness>(mut harness: H) {
    // Window of 1 s: an id is remembered for at least 1 s and forgotten after 2 s.
    let log = harness.open();
    let base = T0 - T0.rem_euclid(1_000);
    let first = log
        .append(vec![event("w", "s", "m", Some("u"), None, base + 999)])
        .await
        .expect("append");
    assert!(matches!(first[0], AppendOutcome::Appended(_)));
    let within = log
        .append(vec![event("w", "s", "m", Some("u"), None, base + 1_998)])
        .await
        .expect("append");
    assert_eq!(within, vec![AppendOutcome::Duplicate], "inside the window");
    let after = log
        .append(vec![event("w", "s", "m", Some("u"), None, base + 3_000)])
        .await
        .expect("append");
    assert!(
        matches!(after[0], AppendOutcome::Appended(_)),
        "two windows later: {after:?}"
    );
}

async fn dedup_and_data_survive_a_crash<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    log.append(vec![event("w", "s", "m1", Some("u"), None, T0)])
        .await
        .expect("append");
    log.ack(&scope("w", "s"), "c", 1).await.expect("ack");
    harness.crash(log);
    let log = harness.open();
    assert_eq!(
        ids(&log.read(&scope("w", "s"), 0, 10).await.expect("read")),
        vec!["m1"]
    );
    let again = log
        .append(vec![event("w", "s", "m1", Some("u"), None, T0 + 1)])
        .await
        .expect("append");
    assert_eq!(again, vec![AppendOutcome::Duplicate]);
    assert_eq!(log.cursor(&scope("w", "s"), "c").await.expect("cursor"), 1);
}

async fn reads_are_scoped<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    log.append(vec![
        event("w", "s", "m1", Some("u"), None, T0),
        event("w", "t", "m2", Some("u"), None, T0),
    ])
    .await
    .expect("append");
    assert_eq!(
        ids(&log.read(&scope("w", "t"), 0, 10).await.expect("read")),
        vec!["m2"]
    );
    assert!(
        log.read(&scope("other", "s"), 0, 10)
            .await
            .expect("read")
            .is_empty(),
        "another workspace sees nothing"
    );
    assert!(
        log.latest(&scope("other", "s"), 10)
            .await
            .expect("latest")
            .is_empty()
    );
    for i in 0..5 {
        log.append(vec![event("w", "s", &format!("n{i}"), Some("u"), None, T0)])
            .await
            .expect("append");
    }
    assert_eq!(
        ids(&log.latest(&scope("w", "s"), 3).await.expect("latest")),
        vec!["n2", "n3", "n4"]
    );
}

async fn cursors<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    let s = scope("w", "s");
    assert_eq!(log.cursor(&s, "router").await.expect("cursor"), 0);
    log.ack(&s, "router", 7).await.expect("ack");
    log.ack(&s, "router", 3).await.expect("ack");
    assert_eq!(
        log.cursor(&s, "router").await.expect("cursor"),
        7,
        "cursors never move back"
    );
    assert_eq!(
        log.cursor(&s, "warehouse").await.expect("cursor"),
        0,
        "per consumer"
    );
    assert_eq!(
        log.cursor(&scope("w2", "s"), "router")
            .await
            .expect("cursor"),
        0,
        "per workspace"
    );
    harness.crash(log);
    let log = harness.open();
    assert_eq!(
        log.cursor(&s, "router").await.expect("cursor"),
        7,
        "durable"
    );
}

async fn erasure<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    log.append(vec![
        event("w", "s", "m1", Some("alice"), Some("anon-a"), T0),
        event("w", "s", "m2", None, Some("anon-a"), T0),
        event("w", "s", "m3", Some("bob"), None, T0),
        event("w2", "s", "m4", Some("alice"), None, T0),
        event("w", "s", "m5", Some("alice"), None, T0),
    ])
    .await
    .expect("append");
    let person = ["alice".to_owned(), "anon-a".to_owned()];
    assert_eq!(
        ids(&log
            .find_person(&WorkspaceId("w".into()), &person)
            .await
            .expect("find")),
        vec!["m1", "m2", "m5"]
    );
    let removed = log
        .erase_person(
            &WorkspaceId("w".into()),
            &["alice".to_owned(), "anon-a".to_owned()],
        )
        .await
        .expect("erase");
    assert_eq!(removed, 3);
    assert_eq!(
        ids(&log.read(&scope("w", "s"), 0, 10).await.expect("read")),
        vec!["m3"]
    );
    assert!(
        log.find_person(&WorkspaceId("w".into()), &person)
            .await
            .expect("find")
            .is_empty()
    );
    assert_eq!(
        ids(&log
            .find_person(&WorkspaceId("w2".into()), &person)
            .await
            .expect("find")),
        vec!["m4"]
    );
    assert_eq!(
        ids(&log.read(&scope("w2", "s"), 0, 10).await.expect("read")),
        vec!["m4"],
        "other workspaces untouched"
    );
    // Sequence numbers are never reused, even when the newest events were erased.
    let after = log
        .append(vec![event("w", "s", "m6", Some("carol"), None, T0)])
        .await
        .expect("append");
    assert_eq!(after, vec![AppendOutcome::Appended(6)]);
}

async fn expiry<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    let day = 86_400_000;
    log.append(vec![
        event("w", "s", "old1", Some("a"), None, T0),
        event("w", "s", "old2", Some("b"), None, T0 + day),
        event("w", "t", "other-source", Some("a"), None, T0),
        event("w2", "s", "other-workspace", Some("a"), None, T0),
        event("w", "s", "old3", Some("c"), None, T0 + 2 * day),
        event("w", "s", "new", Some("a"), None, T0 + 10 * day),
    ])
    .await
    .expect("append");
    let s = scope("w", "s");
    // Nothing is older than the first event.
    assert_eq!(log.expire(&s, T0, 100).await.expect("expire"), 0);
    // A limit bounds one call; the next call goes on.
    assert_eq!(log.expire(&s, T0 + 5 * day, 2).await.expect("expire"), 2);
    assert_eq!(
        ids(&log.read(&s, 0, 10).await.expect("read")),
        vec!["old3", "new"]
    );
    assert_eq!(log.expire(&s, T0 + 5 * day, 2).await.expect("expire"), 1);
    assert_eq!(log.expire(&s, T0 + 5 * day, 2).await.expect("expire"), 0);
    assert_eq!(ids(&log.read(&s, 0, 10).await.expect("read")), vec!["new"]);
    assert_eq!(
        ids(&log.read(&scope("w", "t"), 0, 10).await.expect("read")),
        vec!["other-source"],
        "other sources untouched"
    );
    assert_eq!(
        ids(&log.read(&scope("w2", "s"), 0, 10).await.expect("read")),
        vec!["other-workspace"],
        "other workspaces untouched"
    );
    harness.crash(log);
    let log = harness.open();
    assert_eq!(ids(&log.read(&s, 0, 10).await.expect("read")), vec!["new"]);
}

async fn forgetting_a_consumer<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    for (workspace, source, consumer) in [
        ("w", "s", "destination:d1"),
        ("w", "t", "destination:d1"),
        ("w", "s", "destination:d2"),
        ("w2", "s", "destination:d1"),
    ] {
        log.ack(&scope(workspace, source), consumer, 5)
            .await
            .expect("ack");
    }
    let w = WorkspaceId("w".into());
    assert_eq!(
        log.forget_consumer(&w, "destination:d1")
            .await
            .expect("forget"),
        2
    );
    for (workspace, source, consumer, expected) in [
        ("w", "s", "destination:d1", 0),
        ("w", "t", "destination:d1", 0),
        ("w", "s", "destination:d2", 5),
        ("w2", "s", "destination:d1", 5),
    ] {
        assert_eq!(
            log.cursor(&scope(workspace, source), consumer)
                .await
                .expect("cursor"),
            expected,
            "{workspace} {source} {consumer}"
        );
    }
}

async fn live_tail<H: LogHarness>(mut harness: H) {
    let log = harness.open();
    let mut live = log.subscribe();
    log.append(vec![
        event("w", "s", "m1", Some("u"), None, T0),
        event("w", "s", "m1", Some("u"), None, T0),
    ])
    .await
    .expect("append");
    let got = live.recv().await.expect("live event");
    assert_eq!(got.event.message_id, "m1");
    assert!(live.try_recv().is_err(), "duplicates are not published");
}

/// One step of the model-based test.
#[derive(Debug, Clone)]
pub enum Step {
    /// Append events: (source, message id, user), from small pools so duplicates happen.
    Append(Vec<(u8, u8, u8)>),
    /// Acknowledge a position, as a fraction of the highest sequence number so far.
    Ack {
        consumer: u8,
        source: u8,
        per_mille: u16,
    },
    Erase {
        user: u8,
    },
    Crash,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => prop::collection::vec((0u8..2, 0u8..12, 0u8..4), 1..6).prop_map(Step::Append),
        2 => (0u8..2, 0u8..2, 0u16..=1000).prop_map(|(consumer, source, per_mille)| Step::Ack { consumer, source, per_mille }),
        1 => (0u8..4).prop_map(|user| Step::Erase { user }),
        1 => Just(Step::Crash),
    ]
}

#[derive(Default)]
struct Model {
    next_seq: Seq,
    seen: HashSet<String>,
    /// source → events (seq, message id, user)
    events: BTreeMap<u8, Vec<(Seq, String, String)>>,
    cursors: BTreeMap<(u8, u8), Seq>,
}

/// Runs `cases` random step sequences against the backend and the model.
pub fn model_check<H: LogHarness>(make: impl Fn() -> H, cases: u32) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(step(), 1..24), |steps| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(check_steps(make(), steps));
        Ok(())
    });
    if let Err(error) = result {
        panic!("model check failed: {error}");
    }
}

async fn check_steps<H: LogHarness>(mut harness: H, steps: Vec<Step>) {
    let workspace = WorkspaceId("w".into());
    let mut model = Model {
        next_seq: 1,
        ..Model::default()
    };
    let mut log = harness.open();
    for step in steps {
        match &step {
            Step::Append(items) => {
                let batch: Vec<NewEvent> = items
                    .iter()
                    .map(|(source, message, user)| {
                        event(
                            "w",
                            &format!("s{source}"),
                            &format!("m{message}"),
                            Some(&format!("u{user}")),
                            None,
                            T0,
                        )
                    })
                    .collect();
                let outcomes = log.append(batch).await.expect("append");
                for ((source, message, user), outcome) in items.iter().zip(&outcomes) {
                    let id = format!("m{message}");
                    if model.seen.insert(id.clone()) {
                        assert_eq!(
                            *outcome,
                            AppendOutcome::Appended(model.next_seq),
                            "{step:?}"
                        );
                        model.events.entry(*source).or_default().push((
                            model.next_seq,
                            id,
                            format!("u{user}"),
                        ));
                        model.next_seq += 1;
                    } else {
                        assert_eq!(*outcome, AppendOutcome::Duplicate, "{step:?}");
                    }
                }
            }
            Step::Ack {
                consumer,
                source,
                per_mille,
            } => {
                let seq = (model.next_seq - 1) * Seq::from(*per_mille) / 1000;
                log.ack(
                    &scope("w", &format!("s{source}")),
                    &format!("c{consumer}"),
                    seq,
                )
                .await
                .expect("ack");
                let cursor = model.cursors.entry((*consumer, *source)).or_default();
                *cursor = (*cursor).max(seq);
            }
            Step::Erase { user } => {
                let user = format!("u{user}");
                let removed = log
                    .erase_person(&workspace, std::slice::from_ref(&user))
                    .await
                    .expect("erase");
                let mut expected = 0;
                for events in model.events.values_mut() {
                    let before = events.len();
                    events.retain(|(_, _, owner)| *owner != user);
                    expected += (before - events.len()) as u64;
                }
                assert_eq!(removed, expected, "{step:?}");
            }
            Step::Crash => {
                harness.crash(log);
                log = harness.open();
            }
        }
        for source in 0u8..2 {
            let stored = log
                .read(&scope("w", &format!("s{source}")), 0, 10_000)
                .await
                .expect("read");
            let got: Vec<(Seq, String, String)> = stored
                .into_iter()
                .map(|e| {
                    (
                        e.seq,
                        e.event.message_id,
                        e.event.user_id.unwrap_or_default(),
                    )
                })
                .collect();
            let want = model.events.get(&source).cloned().unwrap_or_default();
            assert_eq!(got, want, "events of s{source} after {step:?}");
            for consumer in 0u8..2 {
                let cursor = log
                    .cursor(&scope("w", &format!("s{source}")), &format!("c{consumer}"))
                    .await
                    .expect("cursor");
                assert_eq!(
                    cursor,
                    model.cursors.get(&(consumer, source)).copied().unwrap_or(0),
                    "cursor after {step:?}"
                );
            }
        }
    }
}
