//! Delivery end to end: events sent to the tracking API reach a destination (a local fake of
//! the tool); filters, dead letters, retries of dead letters, replays, the status and attempts
//! views, `/ready`, and workspace separation, all through the HTTP APIs of a real node.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use sluice_destinations::testkit::{FakeTool, Tool};
use sluice_store::{AdminToken, StateStore};

use crate::helpers::{TestNode, TestSource, spawn, track_message};

async fn call(node: &TestNode, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = node.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A webhook destination on `source` pointing at the fake; returns its id.
async fn webhook_to(node: &TestNode, fake: &FakeTool, source: &TestSource) -> String {
    let (status, body) = call(
        node,
        Method::POST,
        "/api/v1/destinations",
        Some(json!({
            "name": "hook",
            "type": "webhook",
            "settings": fake.settings(),
            "sources": [source.id],
            "delivery": {"retry_max_attempts": 2},
        })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().expect("id").to_owned()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message(id: &str, event: &str) -> Value {
    let mut message = track_message(id);
    message["event"] = json!(event);
    message
}

#[tokio::test]
async fn events_flow_to_a_destination_with_filters_dead_letters_and_replays() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let fake = FakeTool::start(Tool::Webhook).await;
    let id = webhook_to(&node, &fake, &source).await;
    let base = format!("/api/v1/destinations/{id}");

    // An invalid filter is refused with the position of the error; a valid one is kept.
    let (status, body) = call(
        &node,
        Method::PUT,
        &format!("{base}/filters"),
        Some(
            json!({"filters": [{"title": "bad", "if": "event = ", "actions": [{"type": "DROP"}]}]}),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "invalid_filter");
    assert!(
        body["message"].as_str().expect("message").contains("at 8"),
        "{body}"
    );
    let drop_tests =
        json!({"title": "no tests", "if": "event = \"Test\"", "actions": [{"type": "DROP"}]});
    let (status, body) = call(
        &node,
        Method::PUT,
        &format!("{base}/filters"),
        Some(json!({"filters": [drop_tests]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, stored) = call(&node, Method::GET, &format!("{base}/filters"), None).await;
    assert_eq!(stored["filters"][0]["if"], "event = \"Test\"");

    // The preview says what the filters do, without saving anything.
    let (status, preview) = call(
        &node,
        Method::POST,
        "/api/v1/filters/preview",
        Some(json!({"filters": [drop_tests], "event": {"event": "Test"}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(preview["dropped"], true);
    assert_eq!(preview["matched"], json!([true]));

    // Give the node a moment to restart the destination with its filter.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batch = json!({"batch": [
        message("m1", "Order Completed"),
        message("m2", "Test"),
        message("m3", "Signed Up"),
    ]});
    let (status, _) = node.track("/v1/batch", &source.write_key, &batch).await;
    assert_eq!(status, 200);
    wait_until("two deliveries", async || fake.accepted().len() == 2).await;
    let delivered: Vec<String> = fake
        .accepted()
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(delivered, ["m1", "m3"], "the Test event was filtered");
    let mut status_view = Value::Null;
    wait_until("the engine to count both", async || {
        status_view = call(&node, Method::GET, &format!("{base}/delivery"), None)
            .await
            .1;
        status_view["delivered"] == 2
    })
    .await;
    assert_eq!(status_view["running"], true);
    assert_eq!(status_view["delivered"], 2);
    assert_eq!(status_view["filtered"], 1);
    assert_eq!(status_view["stuck"], false);
    let (_, attempts) = call(
        &node,
        Method::GET,
        &format!("{base}/attempts?limit=5"),
        None,
    )
    .await;
    let attempts = attempts["attempts"].as_array().expect("attempts");
    assert!(!attempts.is_empty());
    assert_eq!(attempts[0]["outcome"], "delivered");
    assert_eq!(attempts[0]["status"], 200);
    assert!(
        !attempts[0]["target"]
            .as_str()
            .expect("target")
            .contains("/hook"),
        "no path in the target"
    );

    // The tool refuses the next event: it becomes a dead letter with the tool's answer.
    fake.push_answer(400, &[], "{\"error\":\"bad event\"}");
    let (status, _) = node
        .track(
            "/v1/track",
            &source.write_key,
            &message("m4", "Order Completed"),
        )
        .await;
    assert_eq!(status, 200);
    let mut letters = Value::Null;
    wait_until("a dead letter", async || {
        letters = call(&node, Method::GET, &format!("{base}/dead-letters"), None)
            .await
            .1;
        letters["dead_letters"]
            .as_array()
            .is_some_and(|l| l.len() == 1)
    })
    .await;
    let letter = &letters["dead_letters"][0];
    assert_eq!(letter["message_id"], "m4");
    assert_eq!(letter["status"], 400);
    assert_eq!(letter["response"], "{\"error\":\"bad event\"}");
    let letter_id = letter["id"].as_i64().expect("id");
    let (status, shown) = call(
        &node,
        Method::GET,
        &format!("{base}/dead-letters/{letter_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["event"]["messageId"], "m4");

    // Sent again, it is delivered and leaves the dead letters.
    let (status, queued) = call(
        &node,
        Method::POST,
        &format!("{base}/dead-letters/retry"),
        Some(json!({"ids": [letter_id]})),
    )
    .await;
    assert_eq!(status, 202);
    assert_eq!(queued["queued"], 1);
    wait_until("the retried dead letter", async || {
        fake.accepted().len() == 3
    })
    .await;
    wait_until("no dead letters", async || {
        let (_, view) = call(&node, Method::GET, &format!("{base}/delivery"), None).await;
        view["dead_letters"] == 0
    })
    .await;

    // A replay of the whole source sends the three kept events again (the filter still
    // applies), and finishes.
    let (status, replay) = call(
        &node,
        Method::POST,
        &format!("{base}/replays"),
        Some(json!({"source": source.id})),
    )
    .await;
    assert_eq!(status, 202, "{replay}");
    wait_until("the replay", async || fake.accepted().len() == 6).await;
    wait_until("the replay to finish", async || {
        let (_, jobs) = call(&node, Method::GET, &format!("{base}/replays"), None).await;
        jobs["replays"][0]["state"] == "done"
    })
    .await;
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("{base}/replays"),
        Some(json!({"source": "not-connected"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "source");
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("{base}/replays"),
        Some(json!({"source": source.id, "from": "yesterday"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["field"], "from");

    // /ready lists no stuck destination.
    let ready: Value = node
        .client
        .get(node.url("/ready"))
        .send()
        .await
        .expect("ready")
        .json()
        .await
        .expect("json");
    assert_eq!(ready["destinations"]["stuck"], json!([]));

    // Another workspace reaches none of it.
    let state = StateStore::open(&node.dir.path().join("state.db")).expect("state");
    let other = state.create_workspace("acme").expect("workspace");
    let token = AdminToken::generate().expect("token");
    state.add_admin_token(&other.id, &token).expect("token");
    for (method, path) in [
        (Method::GET, format!("{base}/delivery")),
        (Method::GET, format!("{base}/attempts")),
        (Method::GET, format!("{base}/dead-letters")),
        (Method::GET, format!("{base}/dead-letters/{letter_id}")),
        (Method::POST, format!("{base}/dead-letters/retry")),
        (Method::GET, format!("{base}/replays")),
        (Method::GET, format!("{base}/filters")),
        (Method::PUT, format!("{base}/filters")),
    ] {
        let mut request = node
            .client
            .request(method.clone(), node.url(&path))
            .bearer_auth(token.expose());
        if method == Method::PUT {
            request = request.json(&json!({"filters": []}));
        }
        let response = request.send().await.expect("send");
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let (status, _) = call(
        &node,
        Method::POST,
        &format!("{base}/replays"),
        Some(json!({"source": source.id})),
    )
    .await;
    assert_eq!(status, 202, "still allowed for the owner");
    node.stop().await;
}

#[tokio::test]
async fn deleting_a_destination_stops_its_delivery() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let fake = FakeTool::start(Tool::Webhook).await;
    let id = webhook_to(&node, &fake, &source).await;
    let (status, _) = node
        .track(
            "/v1/track",
            &source.write_key,
            &message("a1", "Order Completed"),
        )
        .await;
    assert_eq!(status, 200);
    wait_until("the delivery", async || fake.accepted().len() == 1).await;
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/destinations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = node
        .track(
            "/v1/track",
            &source.write_key,
            &message("a2", "Order Completed"),
        )
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(fake.accepted().len(), 1, "nothing after the delete");
    node.stop().await;
}
