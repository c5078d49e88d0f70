#![allow(clippy::unwrap_used)]

//! Regulations through a running node: suppression at the edge, and the deletion forensics
//! test — a person's events in through two sources, delivered, resolved into one profile,
//! dead-lettered once; then deleted by email, and the data directory's bytes scanned.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sluice_destinations::testkit::{FakeTool, Tool};

use crate::helpers::{TestNode, TestSource, spawn};

pub(crate) async fn call(
    node: &TestNode,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = node.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn send(node: &TestNode, source: &TestSource, batch: &[Value]) -> Value {
    let (status, body) = node
        .track("/v1/batch", &source.write_key, &json!({"batch": batch}))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Submits a regulation and waits for its final status; returns the regulation.
pub(crate) async fn regulate(
    node: &TestNode,
    kind: &str,
    subject_type: &str,
    ids: &[&str],
) -> Value {
    let (status, body) = call(
        node,
        Method::POST,
        "/api/v1/regulations",
        Some(json!({"regulationType": kind, "subjectType": subject_type, "subjectIds": ids})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let id = body["data"]["regulateId"].as_str().unwrap().to_owned();
    assert!(id.starts_with("reg_"));
    assert_eq!(
        body["data"]["regulation"]["overallStatus"], "INITIALIZED",
        "{body}"
    );
    let mut regulation = Value::Null;
    wait_until("the regulation to finish", async || {
        let (status, body) = call(
            node,
            Method::GET,
            &format!("/api/v1/regulations/{id}"),
            None,
        )
        .await;
        assert_eq!(status, 200);
        regulation = body["data"]["regulation"].clone();
        matches!(
            regulation["overallStatus"].as_str(),
            Some("FINISHED" | "PARTIAL_SUCCESS" | "FAILED")
        )
    })
    .await;
    regulation
}

pub(crate) fn message_ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap().to_owned())
        .collect()
}

/// Every occurrence of each value in the files under `dir` (raw bytes).
pub(crate) fn byte_scan(dir: &std::path::Path, values: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap_or_default();
            for value in values {
                if bytes.windows(value.len()).any(|w| w == value.as_bytes()) {
                    found.push(format!("{} in {}", value, entry.path().display()));
                }
            }
        }
    }
    found
}

/// A log writer the test can read back: the node's log lines at the default level.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn deleting_by_email_leaves_nothing_behind_and_suppresses() {
    // The node's log lines at the default level go to a file in the data directory, which the
    // byte scan covers. (Each test runs in its own process under nextest; elsewhere another
    // test may have installed the subscriber first and the file stays empty.)
    let captured = Captured::default();
    let writer = captured.clone();
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_writer(move || writer.clone())
        .try_init();

    let node = spawn().await;
    let web = node.create_source("web").await;
    let app = node.create_source("app").await;
    let hook = FakeTool::start(Tool::Webhook).await;
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/destinations",
        Some(json!({
            "name": "hook", "type": "webhook", "settings": hook.settings(),
            "sources": [web.id, app.id], "delivery": {"retry_max_attempts": 1},
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let slack = FakeTool::start(Tool::Slack).await;
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/destinations",
        Some(json!({"name": "chat", "type": "slack", "settings": slack.settings(), "sources": [web.id]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");

    // The person: distinctive identifiers and trait values, across both sources.
    let email = "qx7.person@zorblax-example.org";
    let person = [
        "user-qx7-0001",
        "anon-qx7-laptop",
        "anon-qx7-phone",
        email,
        "+15550142987",
        "Quixotic Zelda-Vantablack",
        "77 Xylophone Crescent",
        "SKU-QX7-ZETA",
    ];
    // A computed trait keeps the person's last viewed product; an audience holds buyers.
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits",
        Some(
            json!({"key": "last_sku", "name": "Last SKU", "type": "last",
                    "event": "Product Viewed", "property": "sku"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/audiences",
        Some(json!({"key": "buyers", "name": "Buyers",
                    "condition": {"performed": {"event": "Order Completed"}}})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // The webhook's first answer is a 400: the person's first event becomes a dead letter.
    hook.push_answer(400, &[], r#"{"error":"bad request"}"#);
    send(
        &node,
        &web,
        &[
            json!({"type": "track", "event": "Product Viewed", "anonymousId": "anon-qx7-laptop",
                 "messageId": "qx7-1", "properties": {"sku": "SKU-QX7-ZETA"}}),
        ],
    )
    .await;
    wait_until("the dead letter", async || {
        let (_, body) = call(&node, Method::GET, "/api/v1/destinations", None).await;
        let id = body["destinations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "hook")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, letters) = call(
            &node,
            Method::GET,
            &format!("/api/v1/destinations/{id}/dead-letters"),
            None,
        )
        .await;
        letters["dead_letters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    })
    .await;
    send(
        &node,
        &web,
        &[
            json!({"type": "identify", "userId": "user-qx7-0001", "anonymousId": "anon-qx7-laptop",
                   "messageId": "qx7-2",
                   "traits": {"email": email, "phone": "+15550142987",
                              "name": "Quixotic Zelda-Vantablack", "address": {"street": "77 Xylophone Crescent"}}}),
            json!({"type": "group", "userId": "user-qx7-0001", "groupId": "acct-shared-1",
                   "messageId": "qx7-3", "traits": {"name": "Shared Account Inc"}}),
            // Someone else, who must stay.
            json!({"type": "identify", "userId": "user-keep-1", "messageId": "keep-1",
                   "traits": {"email": "keep@example.org", "name": "Kept Person"}}),
        ],
    )
    .await;
    send(
        &node,
        &app,
        &[
            json!({"type": "identify", "anonymousId": "anon-qx7-phone", "messageId": "qx7-4",
                   "traits": {"email": "QX7.Person@zorblax-example.org"}}),
            json!({"type": "track", "event": "Order Completed", "anonymousId": "anon-qx7-phone",
                   "messageId": "qx7-5", "properties": {"total": 30}}),
        ],
    )
    .await;

    // Delivered, and resolved into one profile holding both devices.
    wait_until("delivery", async || hook.accepted().len() >= 5).await;
    wait_until("the merged profile", async || {
        let (status, body) = call(
            &node,
            Method::GET,
            &format!("/api/v1/profiles/email:{email}/graph"),
            None,
        )
        .await;
        status == 200
            && body.to_string().contains("anon-qx7-phone")
            && body.to_string().contains("anon-qx7-laptop")
    })
    .await;
    wait_until("the audience", async || {
        let (_, shown) = call(&node, Method::GET, "/api/v1/audiences/buyers", None).await;
        shown["size"] == 1
    })
    .await;
    let (_, before) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/verify",
        Some(json!({"subjectType": "EMAIL", "subjectId": email})),
    )
    .await;
    assert_eq!(before["clean"], false, "{before}");

    // Delete by email: resolved through the graph to every identifier of the person.
    let regulation = regulate(&node, "SUPPRESS_WITH_DELETE", "EMAIL", &[email]).await;
    assert_eq!(regulation["overallStatus"], "FINISHED", "{regulation}");
    let report = &regulation["report"];
    assert_eq!(report["identifiers"], 5, "{report}"); // user id, two anonymous ids, email, phone
    assert_eq!(report["suppressed"], 5, "{report}");
    let erased = |store: &str| {
        report["stores"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["store"] == store)
            .unwrap()["erased"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(erased("log"), 5, "{report}");
    assert!(erased("profiles") > 0, "{report}");
    assert_eq!(erased("dead_letters"), 1, "{report}");
    assert!(
        erased("audiences") >= 3,
        "state, membership, changes: {report}"
    );
    assert!(erased("delivery_attempts") > 0, "{report}");
    // The webhook took the deletion (Segment's `delete` event) for each user and anonymous
    // id; Slack has no deletion API.
    let destinations = report["destinations"].as_array().unwrap();
    let status_of = |name: &str| {
        destinations.iter().find(|d| d["name"] == name).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(status_of("hook"), "FINISHED", "{report}");
    assert_eq!(status_of("chat"), "NOT_SUPPORTED", "{report}");
    let mut deleted = hook.deleted();
    deleted.sort();
    assert_eq!(
        deleted,
        vec!["anon-qx7-laptop", "anon-qx7-phone", "user-qx7-0001"]
    );
    assert_eq!(
        regulation["streamStatus"].as_array().unwrap().len(),
        2,
        "one stream per source: {regulation}"
    );
    assert!(!regulation.to_string().contains("qx7"), "{regulation}");

    // Nothing left, by every store's find and by the bytes of the data directory.
    let (status, after) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/verify",
        Some(json!({"subjectType": "EMAIL", "subjectId": email})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(after["clean"], true, "{after}");
    let (_, shown) = call(&node, Method::GET, "/api/v1/audiences/buyers", None).await;
    assert_eq!(shown["size"], 0, "{shown}");
    for subject in ["user-qx7-0001", "anon-qx7-phone"] {
        let (_, found) = call(
            &node,
            Method::POST,
            "/api/v1/privacy/verify",
            Some(json!({"subjectType": "IDENTIFIER", "subjectId": format!("user_id:{subject}")})),
        )
        .await;
        assert_eq!(found["clean"], true, "{subject}: {found}");
    }

    // The other person is untouched.
    let kept = message_ids(&node.events_all(&web).await);
    assert_eq!(kept, vec!["keep-1"]);
    assert!(message_ids(&node.events_all(&app).await).is_empty());

    // Suppressed from now on: answered 200, counted, never written — by user id, by a known
    // anonymous id, and by email under a new anonymous id.
    let answer = send(
        &node,
        &web,
        &[
            json!({"type": "track", "event": "Back Again", "userId": "user-qx7-0001", "messageId": "qx7-6"}),
            json!({"type": "page", "anonymousId": "anon-qx7-phone", "messageId": "qx7-7"}),
            json!({"type": "identify", "anonymousId": "anon-new-device", "messageId": "qx7-8",
                   "traits": {"email": email}}),
            json!({"type": "track", "event": "Still Here", "userId": "user-keep-1", "messageId": "keep-2"}),
        ],
    )
    .await;
    assert_eq!(answer["accepted"], 4, "{answer}");
    assert_eq!(
        message_ids(&node.events_all(&web).await),
        vec!["keep-1", "keep-2"]
    );
    let metrics = node
        .client
        .get(node.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let suppressed_line = metrics
        .lines()
        .find(|line| line.starts_with("sluice_events_suppressed_total"))
        .unwrap_or_default()
        .to_owned();
    assert!(suppressed_line.ends_with(" 3"), "{suppressed_line}");

    // The files, after the node stops, hold none of the person's identifiers or trait
    // values; nor do the node's log lines.
    let dir = node.stop().await;
    let logged = captured.0.lock().unwrap().clone();
    if std::env::var_os("NEXTEST").is_some() {
        assert!(
            String::from_utf8_lossy(&logged).contains("regulation done"),
            "the node's log lines were captured"
        );
    }
    std::fs::write(dir.path().join("node.log"), &logged).unwrap();
    let leftovers = byte_scan(dir.path(), &person);
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let kept = byte_scan(dir.path(), &["user-keep-1", "Kept Person"]);
    assert!(!kept.is_empty(), "the scan finds what is still held");
}

#[tokio::test]
async fn suppress_only_keeps_history_and_unsuppress_lifts_it() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    send(
        &node,
        &web,
        &[json!({"type": "identify", "userId": "u-sup", "anonymousId": "a-sup", "messageId": "s-1",
                 "traits": {"email": "sup@example.org"}})],
    )
    .await;
    wait_until("the profile", async || {
        let (status, _) = call(
            &node,
            Method::GET,
            "/api/v1/profiles/user_id:u-sup/graph",
            None,
        )
        .await;
        status == 200
    })
    .await;

    let regulation = regulate(&node, "SUPPRESS_ONLY", "USER_ID", &["u-sup"]).await;
    assert_eq!(regulation["overallStatus"], "FINISHED", "{regulation}");
    assert_eq!(regulation["report"]["suppressed"], 3, "{regulation}");
    assert!(regulation["report"].get("stores").is_none());
    let (_, list) = call(&node, Method::GET, "/api/v1/suppressions", None).await;
    assert_eq!(list["data"]["suppressions"][0]["values"], 3, "{list}");

    // Blocked by the anonymous id the graph knows, history kept.
    send(
        &node,
        &web,
        &[json!({"type": "page", "anonymousId": "a-sup", "messageId": "s-2"})],
    )
    .await;
    let single = node
        .track(
            "/v1/track",
            &web.write_key,
            &json!({"event": "E", "userId": "u-sup", "messageId": "s-3"}),
        )
        .await;
    assert_eq!(single.0, 200, "{:?}", single.1);
    assert_eq!(message_ids(&node.events_all(&web).await), vec!["s-1"]);

    // Lifted by another identifier of the same suppression.
    let lifted = regulate(&node, "UNSUPPRESS", "EMAIL", &["sup@example.org"]).await;
    assert_eq!(lifted["overallStatus"], "FINISHED");
    assert_eq!(lifted["report"]["unsuppressed"], 3, "{lifted}");
    send(
        &node,
        &web,
        &[json!({"type": "page", "anonymousId": "a-sup", "messageId": "s-4"})],
    )
    .await;
    assert_eq!(
        message_ids(&node.events_all(&web).await),
        vec!["s-1", "s-4"]
    );
    let (_, list) = call(&node, Method::GET, "/api/v1/suppressions", None).await;
    assert_eq!(list["data"]["suppressions"], json!([]));

    // Listed newest first.
    let (_, all) = call(&node, Method::GET, "/api/v1/regulations", None).await;
    let kinds: Vec<&str> = all["data"]["regulations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["regulationType"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["UNSUPPRESS", "SUPPRESS_ONLY"]);
}

#[tokio::test]
async fn bad_regulation_requests_get_clear_errors() {
    let node = spawn().await;
    let cases = [
        (
            json!({"regulationType": "FORGET_ME", "subjectType": "USER_ID", "subjectIds": ["u"]}),
            "regulationType",
        ),
        (
            json!({"regulationType": "DELETE_ONLY", "subjectType": "OBJECT_ID", "subjectIds": ["u"]}),
            "subjectType",
        ),
        (
            json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": []}),
            "subjectIds",
        ),
        (
            json!({"regulationType": "DELETE_ONLY", "subjectType": "USER_ID", "subjectIds": ["ok", ""]}),
            "subjectIds[1]",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = call(&node, Method::POST, "/api/v1/regulations", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "invalid_regulation", "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, answer) = call(&node, Method::GET, "/api/v1/regulations/reg_nope", None).await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/verify",
        Some(json!({"subjectType": "NAME", "subjectId": "x"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(answer["field"], "subjectType");
    let response = node
        .client
        .get(node.url("/api/v1/regulations"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let (_, all) = call(&node, Method::GET, "/api/v1/regulations", None).await;
    assert_eq!(
        all["data"]["regulations"],
        json!([]),
        "nothing was recorded"
    );
}

/// A webhook destination on `source` to a fresh fake; returns the fake.
async fn hook_to(
    node: &TestNode,
    source: &TestSource,
    name: &str,
    categories: &[&str],
    advertising: bool,
) -> FakeTool {
    let fake = FakeTool::start(Tool::Webhook).await;
    let (status, body) = call(
        node,
        Method::POST,
        "/api/v1/destinations",
        Some(json!({
            "name": name, "type": "webhook", "settings": fake.settings(), "sources": [source.id],
            "consent_categories": categories, "advertising": advertising,
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["advertising"], advertising);
    fake
}

fn received(fake: &FakeTool) -> Vec<String> {
    let mut ids = message_ids(&fake.accepted());
    ids.sort();
    ids
}

#[tokio::test]
async fn consent_gpc_and_do_not_sell_decide_what_each_destination_gets() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let analytics = hook_to(&node, &web, "analytics", &["Analytics"], false).await;
    let ads = hook_to(&node, &web, "ads", &["Advertising"], true).await;
    let plain = hook_to(&node, &web, "plain", &[], false).await;
    let seller = hook_to(&node, &web, "seller", &[], true).await;

    // Opt a person out of sale and sharing by email: their user id comes through the graph.
    send(
        &node,
        &web,
        &[
            json!({"type": "identify", "userId": "u-optout", "messageId": "c0",
                 "traits": {"email": "optout@example.org"}}),
        ],
    )
    .await;
    wait_until("the profile and c0 everywhere", async || {
        let (status, _) = call(
            &node,
            Method::GET,
            "/api/v1/profiles/user_id:u-optout/graph",
            None,
        )
        .await;
        status == 200
            && [&analytics, &ads, &plain, &seller]
                .iter()
                .all(|f| !f.accepted().is_empty())
    })
    .await;
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/do-not-sell",
        Some(json!({"subjectType": "EMAIL", "subjectIds": ["optout@example.org"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["values"], 2, "{body}");
    assert!(
        body["data"]["optOutId"]
            .as_str()
            .unwrap()
            .starts_with("opt_")
    );

    let consent = |preferences: Value| json!({"consent": {"categoryPreferences": preferences}});
    send(
        &node,
        &web,
        &[
            json!({"type": "track", "event": "E", "userId": "u", "messageId": "c1"}),
            json!({"type": "track", "event": "E", "userId": "u", "messageId": "c2", "context": consent(json!({}))}),
            json!({"type": "track", "event": "E", "userId": "u", "messageId": "c3",
                   "context": consent(json!({"Analytics": true, "Advertising": false}))}),
            json!({"type": "track", "event": "E", "userId": "u", "messageId": "c4",
                   "context": consent(json!({"Analytics": true, "Advertising": true}))}),
            // Consent first, then the integrations object.
            json!({"type": "track", "event": "E", "userId": "u", "messageId": "c5",
                   "context": consent(json!({"Analytics": true, "Advertising": true})),
                   "integrations": {"All": false}}),
            json!({"type": "track", "event": "E", "userId": "u-optout", "messageId": "c6"}),
        ],
    )
    .await;
    // A browser with Global Privacy Control on.
    let response = node
        .client
        .post(node.url("/v1/t"))
        .basic_auth(&web.write_key, Some(""))
        .header("Sec-GPC", "1")
        .body(json!({"event": "E", "anonymousId": "gpc-browser", "messageId": "c7"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // A workspace that requires consent: no consent object, no categorised destination.
    let (status, body) = call(
        &node,
        Method::PUT,
        "/api/v1/privacy/settings",
        Some(json!({"require_consent": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, read) = call(&node, Method::GET, "/api/v1/privacy/settings", None).await;
    assert_eq!(read["require_consent"], true, "{read}");
    assert_eq!(
        read["retention"]["days"],
        Value::Null,
        "defaults are filled in"
    );
    send(
        &node,
        &web,
        &[json!({"type": "track", "event": "E", "userId": "u", "messageId": "c8"})],
    )
    .await;

    let expected = |ids: &[&str]| ids.iter().map(|id| id.to_string()).collect::<Vec<_>>();
    wait_until("every destination", async || {
        received(&plain).len() == 8
            && received(&seller).len() == 6
            && received(&analytics).len() == 6
            && received(&ads).len() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        received(&plain),
        expected(&["c0", "c1", "c2", "c3", "c4", "c6", "c7", "c8"])
    );
    assert_eq!(
        received(&seller),
        expected(&["c0", "c1", "c2", "c3", "c4", "c8"])
    );
    assert_eq!(
        received(&analytics),
        expected(&["c0", "c1", "c3", "c4", "c6", "c7"])
    );
    assert_eq!(received(&ads), expected(&["c0", "c1", "c4"]));

    // Opting back in by user id lifts the whole entry.
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/do-not-sell/remove",
        Some(json!({"subjectType": "USER_ID", "subjectIds": ["u-optout"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["removed"], 2);
    let (_, list) = call(&node, Method::GET, "/api/v1/privacy/do-not-sell", None).await;
    assert_eq!(list["data"]["optOuts"], json!([]));
    send(
        &node,
        &web,
        &[json!({"type": "track", "event": "E", "userId": "u-optout", "messageId": "c9"})],
    )
    .await;
    wait_until("the seller", async || {
        received(&seller).contains(&"c9".to_owned())
    })
    .await;

    let (status, body) = call(
        &node,
        Method::PUT,
        "/api/v1/privacy/settings",
        Some(json!({"require_consent": "yes"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_privacy_settings");
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/do-not-sell",
        Some(json!({"subjectType": "EMAIL", "subjectIds": [""]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "subjectIds[0]");
}

#[tokio::test]
async fn the_export_holds_everything_ingested_about_the_person() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let app = node.create_source("app").await;
    let hook = hook_to(&node, &web, "hook", &[], false).await;
    for (path, definition) in [
        (
            "/api/v1/audiences",
            json!({"key": "viewers", "name": "Viewers",
                   "condition": {"performed": {"event": "Product Viewed"}}}),
        ),
        (
            "/api/v1/computed-traits",
            json!({"key": "last_sku", "name": "Last SKU", "type": "last",
                   "event": "Product Viewed", "property": "sku"}),
        ),
    ] {
        let (status, body) = call(&node, Method::POST, path, Some(definition)).await;
        assert_eq!(status, 201, "{body}");
    }
    let person = vec![
        json!({"type": "track", "event": "Product Viewed", "anonymousId": "exp-anon", "messageId": "e-1",
               "properties": {"sku": "X-9", "price": 12.5}}),
        json!({"type": "identify", "userId": "exp-user", "anonymousId": "exp-anon", "messageId": "e-2",
               "traits": {"email": "export@example.org", "name": "Ex Porter", "plan": "pro"}}),
    ];
    send(&node, &web, &person).await;
    let on_app = vec![
        json!({"type": "track", "event": "Opened", "userId": "exp-user", "messageId": "e-3",
                             "context": {"traits": {"phone": "+15550100777"}}}),
    ];
    send(&node, &app, &on_app).await;
    send(
        &node,
        &web,
        &[json!({"type": "identify", "userId": "someone-else", "messageId": "e-4", "traits": {"name": "Other"}})],
    )
    .await;
    wait_until("profile and delivery", async || {
        let (status, graph) = call(
            &node,
            Method::GET,
            "/api/v1/profiles/user_id:exp-user/graph",
            None,
        )
        .await;
        status == 200 && graph.to_string().contains("+15550100777") && hook.accepted().len() == 3
    })
    .await;
    wait_until("the audience", async || {
        let (_, shown) = call(&node, Method::GET, "/api/v1/audiences/viewers", None).await;
        shown["size"] == 1
    })
    .await;

    // The destination's cursor and ledger are saved a moment after the tool's answer.
    let mut exported = Value::Null;
    wait_until("the export to show both deliveries", async || {
        let (status, body) = call(
            &node,
            Method::POST,
            "/api/v1/privacy/export",
            Some(json!({"subjectType": "EMAIL", "subjectId": "Export@example.org"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        exported = body;
        exported["destinations"][0]["events"]
            .as_array()
            .is_some_and(|events| events.iter().all(|e| e["status"] == "delivered"))
    })
    .await;
    // Every event of the person, as ingested; nobody else's.
    let events = exported["events"].as_array().unwrap();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| e["event"]["messageId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["e-1", "e-2", "e-3"]);
    let sent: Vec<&Value> = person.iter().chain(on_app.iter()).collect();
    for (exported, sent) in events.iter().zip(sent) {
        for field in [
            "type",
            "userId",
            "anonymousId",
            "event",
            "properties",
            "traits",
        ] {
            if let Some(value) = sent.get(field) {
                assert_eq!(&exported["event"][field], value, "{field} of {sent}");
            }
        }
    }
    assert_eq!(events[2]["sourceId"], app.id.as_str());
    // The profile: identifiers and merged traits.
    let mut identifiers: Vec<String> = exported["profile"]["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            format!(
                "{}:{}",
                i["type"].as_str().unwrap(),
                i["id"].as_str().unwrap()
            )
        })
        .collect();
    identifiers.sort();
    assert_eq!(
        identifiers,
        vec![
            "anonymous_id:exp-anon",
            "email:export@example.org",
            "phone:+15550100777",
            "user_id:exp-user"
        ]
    );
    assert_eq!(
        exported["profile"]["traits"],
        json!({"email": "export@example.org", "name": "Ex Porter", "plan": "pro"})
    );
    // What the destination (connected to `web` only) did with each event.
    let hook_events = &exported["destinations"][0]["events"];
    let statuses: Vec<(&str, &str)> = hook_events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["messageId"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(statuses, [("e-1", "delivered"), ("e-2", "delivered")]);
    for event in hook_events.as_array().unwrap() {
        let at = event["deliveredAt"].as_str().unwrap();
        assert!(at.ends_with('Z') && at.len() >= 20, "{event}");
    }
    assert_eq!(exported["suppressed"], false);
    assert_eq!(exported["doNotSell"], false);
    let audiences = &exported["audiences"];
    assert_eq!(audiences["memberships"], json!(["viewers"]), "{audiences}");
    assert_eq!(
        audiences["computedTraits"],
        json!({"last_sku": "X-9"}),
        "{audiences}"
    );
    let changes: Vec<(&str, &str)> = audiences["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["key"].as_str().unwrap(), c["change"].as_str().unwrap()))
        .collect();
    assert!(changes.contains(&("viewers", "entered")), "{audiences}");
    assert!(changes.contains(&("last_sku", "trait")), "{audiences}");

    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/do-not-sell",
        Some(json!({"subjectType": "USER_ID", "subjectIds": ["exp-user"]})),
    )
    .await;
    assert_eq!(status, 200);
    let (_, again) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/export",
        Some(json!({"subjectType": "ANONYMOUS_ID", "subjectId": "exp-anon"})),
    )
    .await;
    assert_eq!(again["doNotSell"], true);
    assert_eq!(again["events"].as_array().unwrap().len(), 3);

    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/export",
        Some(json!({"subjectType": "EMAIL"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
}
