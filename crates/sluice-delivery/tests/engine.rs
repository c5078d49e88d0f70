//! The delivery engine against a real log, a real dead-letter store and a scripted HTTP sink
//! on 127.0.0.1: ordering under retries, Retry-After, dead letters, isolation, restarts.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use sluice_delivery::{Backoff, Consent, DestinationSpec, Engine, Options, Shared, consumer_name};
use sluice_destinations::contract::classify_status;
use sluice_destinations::{
    Adapter, HttpRequest, HttpResponse, Method, Outgoing, Plan, Planned, Verdict,
};
use sluice_store::{
    DeliveryStore, EventLog, NewEvent, SourceScope, SqliteLog, SqliteLogConfig, WorkspaceId,
};

// ---------------------------------------------------------------- a test adapter and sink

/// Posts events as a JSON array of `{messageId, userId}` to `{base}/events`. With
/// `tokens`, a 401 reads as the tool refusing the credentials.
struct SinkAdapter {
    url: String,
    batch: usize,
    tokens: bool,
}

impl Adapter for SinkAdapter {
    fn max_batch(&self) -> usize {
        self.batch
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        let mut plan = Plan::default();
        let mut body = Vec::new();
        let mut indices = Vec::new();
        for (index, event) in events.iter().enumerate() {
            let event = event.value();
            if event["type"] == "alias" {
                plan.unsupported.push((index, "no aliases".into()));
                continue;
            }
            if event["event"] == "Poison" {
                plan.invalid.push((index, "poison is never sent".into()));
                continue;
            }
            body.push(json!({"messageId": event["messageId"], "userId": event["userId"]}));
            indices.push(index);
        }
        if !indices.is_empty() {
            plan.requests.push(Planned {
                request: HttpRequest {
                    method: Method::Post,
                    url: self.url.clone(),
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: serde_json::to_vec(&body).expect("json"),
                },
                events: indices,
            });
        }
        plan
    }

    fn classify(&self, response: &HttpResponse, _events: usize) -> Verdict {
        if self.tokens && response.status == 401 {
            return Verdict::Unauthorized {
                reason: "the sink refused the token".into(),
            };
        }
        classify_status(response)
    }
}

/// What the sink answers for a request, given the message ids in it and how many times each
/// was seen before.
type Script = Arc<dyn Fn(&[String], &HashMap<String, u32>) -> Answer + Send + Sync>;

#[derive(Clone)]
enum Answer {
    Ok,
    Status(u16, Option<&'static str>),
    Hang(Duration),
}

#[derive(Default)]
struct SinkLog {
    /// Accepted message ids with their user, in arrival order.
    accepted: Vec<(String, String)>,
    /// Every request: its message ids and when it arrived.
    requests: Vec<(Vec<String>, Instant)>,
    seen: HashMap<String, u32>,
}

#[derive(Clone)]
struct Sink {
    log: Arc<Mutex<SinkLog>>,
    script: Script,
}

async fn receive(State(sink): State<Sink>, body: axum::body::Bytes) -> Response {
    let events: Vec<Value> = serde_json::from_slice(&body).expect("sink gets json");
    let ids: Vec<String> = events
        .iter()
        .map(|e| e["messageId"].as_str().expect("id").to_owned())
        .collect();
    let answer = {
        let mut log = sink.log.lock().expect("lock");
        let answer = (sink.script)(&ids, &log.seen);
        for id in &ids {
            *log.seen.entry(id.clone()).or_default() += 1;
        }
        log.requests.push((ids.clone(), Instant::now()));
        if matches!(answer, Answer::Ok) {
            for event in &events {
                log.accepted.push((
                    event["messageId"].as_str().unwrap_or_default().to_owned(),
                    event["userId"].as_str().unwrap_or_default().to_owned(),
                ));
            }
        }
        answer
    };
    match answer {
        Answer::Ok => (StatusCode::OK, "ok").into_response(),
        Answer::Status(code, retry_after) => {
            let mut response = (
                StatusCode::from_u16(code).expect("status"),
                format!("answer {code}"),
            )
                .into_response();
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", after.parse().expect("header"));
            }
            response
        }
        Answer::Hang(duration) => {
            tokio::time::sleep(duration).await;
            (StatusCode::OK, "late").into_response()
        }
    }
}

async fn start_sink(script: Script) -> (String, Arc<Mutex<SinkLog>>) {
    let log = Arc::new(Mutex::new(SinkLog::default()));
    let app = Router::new()
        .route("/events", post(receive))
        .with_state(Sink {
            log: Arc::clone(&log),
            script,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    (format!("http://{addr}/events"), log)
}

fn always_ok() -> Script {
    Arc::new(|_, _| Answer::Ok)
}

// ---------------------------------------------------------------- the pipeline under test

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    log: Arc<SqliteLog>,
    store: Arc<DeliveryStore>,
    engine: Engine,
}

const WORKSPACE: &str = "ws1";
const SOURCE: &str = "src1";

fn world() -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().to_path_buf();
    let (log, store) = open_stores(&path);
    World {
        engine: engine(&log, &store),
        _dir: dir,
        dir: path,
        log,
        store,
    }
}

fn open_stores(dir: &std::path::Path) -> (Arc<SqliteLog>, Arc<DeliveryStore>) {
    let log = SqliteLog::open(SqliteLogConfig::new(dir.join("log.db"))).expect("log");
    let store = DeliveryStore::open(&dir.join("delivery.db")).expect("store");
    (Arc::new(log), Arc::new(store))
}

fn engine(log: &Arc<SqliteLog>, store: &Arc<DeliveryStore>) -> Engine {
    let log: Arc<dyn EventLog> = log.clone();
    Engine::new(Shared {
        log,
        store: Arc::clone(store),
    })
}

fn fast_options() -> Options {
    Options {
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(200),
        },
        request_timeout: Duration::from_secs(2),
        ..Options::default()
    }
}

fn spec(id: &str, url: &str, batch: usize, options: Options) -> DestinationSpec {
    DestinationSpec {
        id: id.into(),
        workspace_id: WorkspaceId(WORKSPACE.into()),
        integration_name: "Sink".into(),
        sources: vec![SOURCE.into()],
        list_sources: Vec::new(),
        adapter: Arc::new(SinkAdapter {
            url: url.into(),
            batch,
            tokens: false,
        }),
        filter: None,
        consent: Consent::default(),
        pii: None,
        options,
    }
}

fn event(message_id: &str, user: &str, extra: Value) -> NewEvent {
    let mut body = json!({
        "type": "track",
        "event": "Clicked",
        "messageId": message_id,
        "userId": user,
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            body.insert(key.clone(), value.clone());
        }
    }
    NewEvent {
        workspace_id: WorkspaceId(WORKSPACE.into()),
        source_id: SOURCE.into(),
        message_id: message_id.into(),
        user_id: Some(user.into()),
        anonymous_id: None,
        received_at_ms: 1_700_000_000_000,
        body: body.to_string(),
    }
}

async fn append(log: &SqliteLog, events: Vec<NewEvent>) {
    log.append(events).await.expect("append");
}

/// Waits until `done` holds (at most 20 s).
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn accepted_ids(log: &Mutex<SinkLog>) -> Vec<String> {
    log.lock()
        .expect("lock")
        .accepted
        .iter()
        .map(|(id, _)| id.clone())
        .collect()
}

fn scope() -> SourceScope {
    SourceScope {
        workspace_id: WorkspaceId(WORKSPACE.into()),
        source_id: SOURCE.into(),
    }
}

/// The destination's status once `done` holds (at most 20 s).
async fn settled(
    engine: &Engine,
    id: &str,
    done: impl Fn(&sluice_delivery::Status) -> bool,
) -> sluice_delivery::Status {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = engine
            .status(&WorkspaceId(WORKSPACE.into()), id)
            .await
            .expect("running");
        if done(&status) {
            return status;
        }
        assert!(Instant::now() < deadline, "timed out: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_whose_first_events_fail_still_gets_them_in_order() {
    // ann's first event fails twice with a 500; bob is unaffected meanwhile.
    let script: Script = Arc::new(|ids, seen| {
        if ids.iter().any(|id| id == "a1") && seen.get("a1").copied().unwrap_or(0) < 2 {
            Answer::Status(500, None)
        } else {
            Answer::Ok
        }
    });
    let (url, sink) = start_sink(script).await;
    let w = world();
    append(
        &w.log,
        vec![
            event("a1", "ann", json!({})),
            event("b1", "bob", json!({})),
            event("a2", "ann", json!({})),
            event("b2", "bob", json!({})),
            event("a3", "ann", json!({})),
        ],
    )
    .await;
    w.engine.upsert(spec("d1", &url, 1, fast_options())).await;
    eventually("five deliveries", || accepted_ids(&sink).len() == 5).await;
    let accepted = sink.lock().expect("lock").accepted.clone();
    let ann: Vec<&str> = accepted
        .iter()
        .filter(|(_, u)| u == "ann")
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(ann, ["a1", "a2", "a3"]);
    let position = |id: &str| accepted.iter().position(|(m, _)| m == id).expect("there");
    assert!(
        position("b2") < position("a1"),
        "bob did not wait for ann's retries: {accepted:?}"
    );
    // a1 was tried three times; ann's later events were not sent before a1 succeeded.
    let requests = sink.lock().expect("lock").requests.clone();
    let tries_of_a1 = requests.iter().filter(|(ids, _)| ids[0] == "a1").count();
    assert_eq!(tries_of_a1, 3);
    let first_a2 = requests
        .iter()
        .position(|(ids, _)| ids[0] == "a2")
        .expect("a2");
    let last_a1 = requests
        .iter()
        .rposition(|(ids, _)| ids[0] == "a1")
        .expect("a1");
    assert!(first_a2 > last_a1);
    // The sink answers before the engine settles: wait for the count.
    let status = settled(&w.engine, "d1", |status| status.delivered == 5).await;
    assert_eq!(status.retried, 2);
    w.engine.shutdown().await;
    assert_eq!(
        w.log
            .cursor(&scope(), &consumer_name("d1"))
            .await
            .expect("cursor"),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured() {
    let script: Script = Arc::new(|_, seen| {
        if seen.get("m1").copied().unwrap_or(0) == 0 {
            Answer::Status(429, Some("1"))
        } else {
            Answer::Ok
        }
    });
    let (url, sink) = start_sink(script).await;
    let w = world();
    append(&w.log, vec![event("m1", "ann", json!({}))]).await;
    w.engine.upsert(spec("d1", &url, 1, fast_options())).await;
    eventually("the delivery", || accepted_ids(&sink).len() == 1).await;
    let requests = sink.lock().expect("lock").requests.clone();
    assert_eq!(requests.len(), 2);
    let gap = requests[1].1 - requests[0].1;
    assert!(
        gap >= Duration::from_millis(950),
        "retried after {gap:?} despite Retry-After: 1 (backoff alone is at most 20 ms)"
    );
    w.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permanent_errors_and_exhausted_retries_become_dead_letters() {
    let script: Script = Arc::new(|ids, _| match ids[0].as_str() {
        "bad" => Answer::Status(400, None),
        "flaky" => Answer::Status(503, None),
        _ => Answer::Ok,
    });
    let (url, sink) = start_sink(script).await;
    let w = world();
    append(
        &w.log,
        vec![
            event("bad", "ann", json!({})),
            event("flaky", "bob", json!({})),
            event("poison", "cat", json!({"event": "Poison"})),
            event("alias", "dan", json!({"type": "alias"})),
            event("good", "ann", json!({})),
        ],
    )
    .await;
    let options = Options {
        max_attempts: 3,
        ..fast_options()
    };
    w.engine.upsert(spec("d1", &url, 1, options)).await;
    let workspace = WorkspaceId(WORKSPACE.into());
    let store = Arc::clone(&w.store);
    eventually("three dead letters", || {
        store.count_dead_letters(&workspace, "d1").expect("count") == 3
    })
    .await;
    eventually("the good event", || accepted_ids(&sink) == ["good"]).await;
    let letters = w.store.dead_letters(&workspace, "d1", 0, 10).expect("list");
    let by_id: HashMap<&str, _> = letters
        .iter()
        .map(|l| (l.letter.message_id.as_str(), &l.letter))
        .collect();
    assert_eq!(by_id["bad"].status, Some(400));
    assert_eq!(by_id["bad"].attempts, 1);
    assert_eq!(by_id["bad"].response.as_deref(), Some("answer 400"));
    assert_eq!(by_id["flaky"].status, Some(503));
    assert_eq!(by_id["flaky"].attempts, 3);
    assert!(by_id["flaky"].reason.contains("gave up after 3 attempts"));
    assert_eq!(by_id["poison"].reason, "poison is never sent");
    assert!(by_id["bad"].body.contains("\"messageId\":\"bad\""));
    let status = settled(&w.engine, "d1", |s| {
        s.delivered == 1 && s.dead_lettered == 3
    })
    .await;
    assert_eq!(status.filtered, 1, "the alias is unsupported");
    assert_eq!(status.delivered, 1);
    // Everything is settled, so the cursor passes all five.
    w.engine.shutdown().await;
    assert_eq!(
        w.log
            .cursor(&scope(), &consumer_name("d1"))
            .await
            .expect("cursor"),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_failing_destination_does_not_slow_a_healthy_one() {
    let (bad_url, _) = start_sink(Arc::new(|ids, _| {
        if ids[0].ends_with('0') {
            Answer::Hang(Duration::from_secs(30))
        } else {
            Answer::Status(500, None)
        }
    }))
    .await;
    let (good_url, good) = start_sink(always_ok()).await;
    let w = world();
    w.engine
        .upsert(spec("bad", &bad_url, 1, fast_options()))
        .await;
    w.engine
        .upsert(spec("good", &good_url, 1, fast_options()))
        .await;
    let events: Vec<NewEvent> = (0..200)
        .map(|i| event(&format!("m{i}"), &format!("user{}", i % 20), json!({})))
        .collect();
    let started = Instant::now();
    append(&w.log, events).await;
    eventually("the healthy destination's 200", || {
        accepted_ids(&good).len() == 200
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "the healthy destination took {took:?}"
    );
    let workspace = WorkspaceId(WORKSPACE.into());
    let bad = w.engine.status(&workspace, "bad").await.expect("status");
    assert_eq!(bad.delivered, 0);
    assert!(bad.unfinished > 0);
    // The stuck one shows as such; the healthy one does not.
    let stuck = w.engine.stuck(Duration::ZERO, i64::MAX / 2).await;
    assert_eq!(
        stuck.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        ["bad"]
    );
    let (_, good_ids) = (0, accepted_ids(&good));
    assert_eq!(good_ids.len(), 200);
    w.engine.remove("bad").await;
    w.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_delivery_loses_nothing() {
    // The sink fails everything until `open` is set.
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = Arc::clone(&open);
    let (url, sink) = start_sink(Arc::new(move |ids, _| {
        if gate.load(std::sync::atomic::Ordering::SeqCst) || ids[0].starts_with("early") {
            Answer::Ok
        } else {
            Answer::Status(503, None)
        }
    }))
    .await;
    let w = world();
    let early: Vec<NewEvent> = (0..20)
        .map(|i| event(&format!("early{i}"), &format!("u{i}"), json!({})))
        .collect();
    append(&w.log, early).await;
    w.engine.upsert(spec("d1", &url, 5, fast_options())).await;
    eventually("the early events", || accepted_ids(&sink).len() == 20).await;
    let late: Vec<NewEvent> = (0..30)
        .map(|i| event(&format!("late{i}"), &format!("u{}", i % 7), json!({})))
        .collect();
    append(&w.log, late).await;
    eventually("some failed attempts", || {
        sink.lock().expect("lock").requests.len() > 25
    })
    .await;
    // Stop mid-retry, close everything, reopen from the files.
    w.engine.shutdown().await;
    drop(w.engine);
    w.log.close().await;
    drop(w.log);
    let (log, store) = open_stores(&w.dir);
    let engine = engine(&log, &store);
    open.store(true, std::sync::atomic::Ordering::SeqCst);
    engine.upsert(spec("d1", &url, 5, fast_options())).await;
    eventually("every late event", || {
        let ids = accepted_ids(&sink);
        (0..30).all(|i| ids.contains(&format!("late{i}")))
    })
    .await;
    let ids = accepted_ids(&sink);
    let early_twice = ids.iter().filter(|id| id.starts_with("early")).count();
    assert_eq!(early_twice, 20, "acknowledged events are not sent again");
    engine.shutdown().await;
    assert_eq!(
        log.cursor(&scope(), &consumer_name("d1"))
            .await
            .expect("cursor"),
        50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_integrations_object_and_filters_keep_events_away() {
    let (url, sink) = start_sink(always_ok()).await;
    let w = world();
    append(
        &w.log,
        vec![
            event("off", "ann", json!({"integrations": {"Sink": false}})),
            event("all-off", "ann", json!({"integrations": {"All": false}})),
            event(
                "on",
                "ann",
                json!({"integrations": {"All": false, "Sink": true}}),
            ),
            event("filtered", "bob", json!({"event": "Secret"})),
            event("plain", "bob", json!({})),
        ],
    )
    .await;
    let mut spec = spec("d1", &url, 10, fast_options());
    spec.filter = Some(Arc::new(|event: Value| {
        (event["event"] != "Secret").then_some(event)
    }));
    w.engine.upsert(spec).await;
    eventually("two deliveries", || accepted_ids(&sink).len() == 2).await;
    let mut ids = accepted_ids(&sink);
    ids.sort();
    assert_eq!(ids, ["on", "plain"]);
    let status = settled(&w.engine, "d1", |s| s.delivered == 2).await;
    assert_eq!(status.filtered, 3);
    // Other workspaces cannot see the destination.
    assert!(
        w.engine
            .status(&WorkspaceId("other".into()), "d1")
            .await
            .is_none()
    );
    w.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_resend_a_time_range_and_dead_letters_can_be_sent_again() {
    let accept_x = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = Arc::clone(&accept_x);
    let (url, sink) = start_sink(Arc::new(move |ids, _| {
        if ids[0] == "x" && !gate.load(std::sync::atomic::Ordering::SeqCst) {
            Answer::Status(422, None)
        } else {
            Answer::Ok
        }
    }))
    .await;
    let w = world();
    let mut events = Vec::new();
    for (i, id) in ["e1", "e2", "e3", "x", "e5"].iter().enumerate() {
        let mut e = event(id, &format!("user{i}"), json!({}));
        e.received_at_ms = 1_000 * (i as i64 + 1);
        events.push(e);
    }
    append(&w.log, events).await;
    w.engine.upsert(spec("d1", &url, 1, fast_options())).await;
    let workspace = WorkspaceId(WORKSPACE.into());
    let store = Arc::clone(&w.store);
    eventually("four deliveries and a dead letter", || {
        accepted_ids(&sink).len() == 4
            && store.count_dead_letters(&workspace, "d1").expect("n") == 1
    })
    .await;

    // Replay what was received in [2000, 4000): e2 and e3 again, nothing else.
    // (Asked through the store, as the admin API and the CLI do; the loop picks it up.)
    w.store
        .add_replay(
            &sluice_store::NewReplay {
                workspace_id: workspace.clone(),
                destination_id: "d1".into(),
                source_id: SOURCE.into(),
                from_ms: Some(2_000),
                to_ms: Some(4_000),
                last_seq: None,
            },
            0,
        )
        .expect("replay");
    eventually("the replayed events", || accepted_ids(&sink).len() == 6).await;
    // (Different people: in either order.)
    let mut replayed = accepted_ids(&sink)[4..].to_vec();
    replayed.sort();
    assert_eq!(replayed, ["e2", "e3"]);
    eventually("the replay to finish", || {
        let jobs = store.replays(&workspace, "d1", false).expect("jobs");
        jobs[0].state == sluice_store::ReplayState::Done
    })
    .await;
    let jobs = w.store.replays(&workspace, "d1", false).expect("jobs");
    assert_eq!(jobs[0].events, 2);
    assert_eq!(
        jobs[0].replay.last_seq,
        Some(5),
        "it ends where the log ended"
    );

    // The dead letter goes out again once the tool takes it, and is then removed.
    accept_x.store(true, std::sync::atomic::Ordering::SeqCst);
    let marked = w
        .store
        .request_retry(&workspace, "d1", None)
        .expect("retry");
    assert_eq!(marked, 1);
    eventually("x delivered", || {
        accepted_ids(&sink).contains(&"x".to_owned())
    })
    .await;
    eventually("the dead letter removed", || {
        store.count_dead_letters(&workspace, "d1").expect("n") == 0
    })
    .await;
    w.engine.shutdown().await;
    assert_eq!(
        w.log
            .cursor(&scope(), &consumer_name("d1"))
            .await
            .expect("cursor"),
        5,
        "a replay does not move the destination's cursor past the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_keeps_failing_is_probed_not_hammered() {
    let (url, sink) = start_sink(Arc::new(|_, _| Answer::Status(503, None))).await;
    let w = world();
    let events: Vec<NewEvent> = (0..50)
        .map(|i| event(&format!("m{i}"), &format!("user{i}"), json!({})))
        .collect();
    append(&w.log, events).await;
    let options = Options {
        backoff: Backoff {
            base: Duration::from_millis(20),
            cap: Duration::from_millis(100),
        },
        ..fast_options()
    };
    w.engine.upsert(spec("d1", &url, 1, options)).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let requests = sink.lock().expect("lock").requests.len();
    // 50 people with their own 20–100 ms retries and 8 requests in flight would make hundreds
    // of requests; once the destination pauses as a whole it sends one probe at a time.
    assert!(
        (3..=60).contains(&requests),
        "{requests} requests in 1.5 s to a failing tool"
    );
    let status = w
        .engine
        .status(&WorkspaceId(WORKSPACE.into()), "d1")
        .await
        .expect("status");
    assert_eq!(status.delivered, 0);
    assert_eq!(status.unfinished, 50, "nothing is lost while paused");
    w.engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_pause_the_destination_without_losing_events() {
    // The sink refuses every request while the token is revoked.
    let revoked = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let refusing = Arc::clone(&revoked);
    let (url, sink) = start_sink(Arc::new(move |_, _| {
        if refusing.load(std::sync::atomic::Ordering::SeqCst) {
            Answer::Status(401, None)
        } else {
            Answer::Ok
        }
    }))
    .await;
    let w = world();
    append(
        &w.log,
        vec![
            event("a1", "ann", json!({})),
            event("b1", "bob", json!({})),
            event("a2", "ann", json!({})),
            event("c1", "cat", json!({})),
        ],
    )
    .await;
    let with_tokens = || {
        let mut spec = spec("d1", &url, 1, fast_options());
        spec.adapter = Arc::new(SinkAdapter {
            url: url.clone(),
            batch: 1,
            tokens: true,
        });
        spec
    };
    w.engine.upsert(with_tokens()).await;
    let status = settled(&w.engine, "d1", |s| s.paused.is_some()).await;
    assert_eq!(status.paused.as_deref(), Some("the sink refused the token"));
    assert!(
        status
            .last_error
            .unwrap_or_default()
            .contains("refused the credentials")
    );

    // Paused: no more requests, nothing dead-lettered or dropped, the cursor stays put.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let asked = sink.lock().expect("lock").requests.len();
    assert!((1..=8).contains(&asked), "{asked} requests");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(sink.lock().expect("lock").requests.len(), asked);
    let status = settled(&w.engine, "d1", |s| s.in_flight_requests == 0).await;
    assert_eq!(
        (status.delivered, status.dead_lettered, status.retried),
        (0, 0, 0)
    );
    assert_eq!(status.unfinished, 4);
    assert!(status.attempts.iter().all(|a| a.outcome == "unauthorized"));
    let workspace = WorkspaceId(WORKSPACE.into());
    assert_eq!(w.store.count_dead_letters(&workspace, "d1").expect("n"), 0);
    w.engine.remove("d1").await;
    assert_eq!(
        w.log
            .cursor(&scope(), &consumer_name("d1"))
            .await
            .expect("cursor"),
        0
    );

    // New credentials: the destination is started again and delivers everything, in order.
    revoked.store(false, std::sync::atomic::Ordering::SeqCst);
    w.engine.upsert(with_tokens()).await;
    eventually("every event", || accepted_ids(&sink).len() == 4).await;
    let accepted = accepted_ids(&sink);
    let position = |id: &str| accepted.iter().position(|a| a == id);
    assert!(position("a1") < position("a2"), "{accepted:?}");
    let status = settled(&w.engine, "d1", |s| s.delivered == 4).await;
    assert_eq!(status.paused, None);
    assert_eq!(status.dead_lettered, 0);
    w.engine.shutdown().await;
    assert_eq!(
        w.log
            .cursor(&scope(), &consumer_name("d1"))
            .await
            .expect("cursor"),
        4
    );
}
