//! The compliance harness: every destination type, through the real engine, against the local
//! fake of its tool, must behave the same way — retry a 5xx, honour a 429's Retry-After,
//! dead-letter a refusal, keep each person's events in order, and count it all the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_delivery::{Backoff, Consent, DestinationSpec, Engine, Options, Shared, Status};
use sluice_destinations::testkit::{FakeTool, Tool};
use sluice_store::{DeliveryStore, EventLog, NewEvent, SqliteLog, SqliteLogConfig, WorkspaceId};

const WORKSPACE: &str = "ws1";
const SOURCE: &str = "src1";
const PEOPLE: [&str; 3] = ["user-ann", "user-bob", "user-cat"];

fn track(index: usize, person: &str) -> NewEvent {
    let message_id = format!("msg-{index:04}-{person}");
    let body = json!({
        "type": "track",
        "event": "Order Completed",
        "userId": person,
        "anonymousId": format!("anon-{person}"),
        "messageId": message_id,
        "timestamp": "2026-11-23T10:00:00.000Z",
        "receivedAt": "2026-11-23T10:00:00.100Z",
        "properties": {"order_id": format!("o{index}"), "total": 10.5 + index as f64},
        "context": {"ip": "127.0.0.1", "library": {"name": "analytics.js", "version": "5.2.1"}},
    });
    NewEvent {
        workspace_id: WorkspaceId(WORKSPACE.into()),
        source_id: SOURCE.into(),
        message_id,
        user_id: Some(person.into()),
        anonymous_id: Some(format!("anon-{person}")),
        received_at_ms: 1_700_000_000_000,
        body: body.to_string(),
    }
}

struct Run {
    _dir: tempfile::TempDir,
    log: Arc<SqliteLog>,
    store: Arc<DeliveryStore>,
    engine: Engine,
}

async fn start(fake: &FakeTool, tool: Tool) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let log =
        Arc::new(SqliteLog::open(SqliteLogConfig::new(dir.path().join("log.db"))).expect("log"));
    let store = Arc::new(DeliveryStore::open(&dir.path().join("delivery.db")).expect("store"));
    let shared_log: Arc<dyn EventLog> = log.clone();
    let engine = Engine::new(Shared {
        log: shared_log,
        store: Arc::clone(&store),
    });
    let kind = tool.kind();
    let adapter = sluice_destinations::build(kind, &fake.settings()).expect("settings");
    let kind_info = sluice_destinations::find(kind).expect("type");
    engine
        .upsert(DestinationSpec {
            id: format!("dest-{kind}"),
            workspace_id: WorkspaceId(WORKSPACE.into()),
            integration_name: kind_info.integration_name.into(),
            sources: vec![SOURCE.into()],
            list_sources: Vec::new(),
            adapter: Arc::from(adapter),
            filter: None,
            consent: Consent::default(),
            pii: None,
            options: Options {
                backoff: Backoff {
                    base: Duration::from_millis(20),
                    cap: Duration::from_millis(100),
                },
                request_timeout: Duration::from_secs(2),
                ..Options::default()
            },
        })
        .await;
    Run {
        _dir: dir,
        log,
        store,
        engine,
    }
}

async fn status(run: &Run, tool: Tool) -> Status {
    run.engine
        .status(
            &WorkspaceId(WORKSPACE.into()),
            &format!("dest-{}", tool.kind()),
        )
        .await
        .expect("running")
}

async fn wait_for(run: &Run, tool: Tool, what: &str, done: impl Fn(&Status) -> bool) -> Status {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = status(run, tool).await;
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{}: timed out waiting for {what}: {status:?}",
            tool.kind()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Delivered message ids in the order their deliveries were settled.
fn delivered_in_order(status: &Status) -> Vec<String> {
    let mut ids = Vec::new();
    for attempt in &status.attempts {
        if attempt.outcome == "delivered" {
            ids.extend(attempt.message_ids.iter().cloned());
        }
    }
    ids
}

async fn check_tool(tool: Tool) {
    let fake = FakeTool::start(tool).await;
    // The first request fails with a 503, the second is rate limited with Retry-After: 1.
    fake.push_answer(503, &[], "service unavailable");
    fake.push_answer(429, &[("retry-after", "1")], "slow down");
    let run = start(&fake, tool).await;
    let mut events = Vec::new();
    for index in 0..12 {
        events.push(track(index, PEOPLE[index % PEOPLE.len()]));
    }
    let started = Instant::now();
    run.log.append(events).await.expect("append");
    let status = wait_for(&run, tool, "12 deliveries", |s| s.delivered == 12).await;
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{}: the 429's Retry-After was not honoured",
        tool.kind()
    );
    assert_eq!(status.dead_lettered, 0, "{}", tool.kind());
    assert!(status.retried >= 2, "{}: {status:?}", tool.kind());
    assert_eq!(
        fake.accepted_count(),
        12,
        "{}: the tool stored every event once",
        tool.kind()
    );
    // Each person's events were delivered in log order.
    let delivered = delivered_in_order(&status);
    for person in PEOPLE {
        let mine: Vec<&String> = delivered.iter().filter(|id| id.ends_with(person)).collect();
        let mut sorted = mine.clone();
        sorted.sort();
        assert_eq!(mine.len(), 4, "{}: {person}", tool.kind());
        assert_eq!(mine, sorted, "{}: {person}'s order", tool.kind());
    }

    // A refusal (bad credentials) is dead-lettered with the tool's answer, not retried.
    fake.push_answer(401, &[], "invalid credentials");
    run.log
        .append(vec![track(100, "user-dan")])
        .await
        .expect("append");
    let status = wait_for(&run, tool, "a dead letter", |s| s.dead_lettered == 1).await;
    assert_eq!(status.delivered, 12, "{}", tool.kind());
    let letters = run
        .store
        .dead_letters(
            &WorkspaceId(WORKSPACE.into()),
            &format!("dest-{}", tool.kind()),
            0,
            10,
        )
        .expect("letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].letter.status, Some(401), "{}", tool.kind());
    assert_eq!(
        letters[0].letter.attempts,
        1,
        "{}: not retried",
        tool.kind()
    );
    assert_eq!(letters[0].letter.message_id, "msg-0100-user-dan");
    run.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_complies() {
    check_tool(Tool::Webhook).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixpanel_complies() {
    check_tool(Tool::Mixpanel).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amplitude_complies() {
    check_tool(Tool::Amplitude).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_complies() {
    check_tool(Tool::Slack).await;
}
