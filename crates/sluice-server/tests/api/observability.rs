//! Health, readiness, metrics, and graceful shutdown.

use serde_json::{Value, json};

use crate::helpers::{spawn, spawn_with_idle_hook, track_message};

#[tokio::test]
async fn health_and_ready() {
    let node = spawn().await;
    let health: Value = node
        .client
        .get(node.url("/health"))
        .send()
        .await
        .expect("health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok");
    let ready = node
        .client
        .get(node.url("/ready"))
        .send()
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn metrics_count_by_source_and_reason() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    node.track(
        "/v1/batch",
        &source.write_key,
        &json!({"batch":[track_message("a"), {"type":"track","userId":"u"}]}),
    )
    .await;
    node.track("/v1/track", "wrong-key-wrong-key", &track_message("b"))
        .await;
    let text = node
        .client
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for expected in [
        format!("sluice_events_accepted_total{{source=\"{}\"}} 1", source.id),
        format!("sluice_events_rejected_total{{source=\"{}\",reason=\"missing_event\"}} 1", source.id),
        "sluice_events_rejected_total{source=\"unknown\",reason=\"invalid_write_key\"}".to_owned(),
        "sluice_http_request_duration_seconds_bucket{route=\"/v1/{call}\",method=\"POST\",status=\"200\"".to_owned(),
        "sluice_log_commit_events_bucket".to_owned(),
        "sluice_log_commit_seconds_bucket".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_in_flight_requests_and_their_commits() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let client = node.client.clone();
        let url = node.url("/v1/batch");
        let key = source.write_key.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..2000 {
                let id = format!("t{task}-{i}");
                let body = json!({"batch":[track_message(&id)]});
                match client
                    .post(&url)
                    .basic_auth(&key, Some(""))
                    .body(body.to_string())
                    .send()
                    .await
                {
                    Ok(response) if response.status() == 200 => acked.push(id),
                    _ => break,
                }
            }
            acked
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dir = node.stop().await;
    let mut acked = Vec::new();
    for task in tasks {
        acked.extend(task.await.expect("task"));
    }
    assert!(
        !acked.is_empty(),
        "some requests were answered before shutdown"
    );

    let node = crate::helpers::restart(dir).await;
    let stored: std::collections::HashSet<String> = node
        .events_all(&source)
        .await
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or("").to_owned())
        .collect();
    for id in &acked {
        assert!(
            stored.contains(id),
            "{id} was answered 200 before shutdown but is not stored"
        );
    }
}

static GIVEN_BACK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn count_give_back() {
    GIVEN_BACK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
}

/// Waits (at most 20 s) until the node has given its caches back `times` times in all.
async fn given_back(times: usize) -> usize {
    for _ in 0..200 {
        let now = GIVEN_BACK.load(std::sync::atomic::Ordering::SeqCst);
        if now >= times {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    GIVEN_BACK.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test]
async fn an_idle_node_gives_its_caches_back_once_per_quiet_spell_and_keeps_working() {
    let node = spawn_with_idle_hook(count_give_back).await;
    let source = node.create_source("web").await;
    // Nothing was done yet: there is nothing to give back.
    tokio::time::sleep(sluice_server::idle::QUIET * 2).await;
    assert_eq!(GIVEN_BACK.load(std::sync::atomic::Ordering::SeqCst), 0);

    let event = json!({"userId": "u1", "event": "Signed Up"});
    assert_eq!(
        node.track("/v1/track", &source.write_key, &event).await.0,
        200
    );
    assert_eq!(given_back(1).await, 1);
    // Still quiet: not again.
    tokio::time::sleep(sluice_server::idle::QUIET * 2).await;
    assert_eq!(GIVEN_BACK.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Work after the caches were dropped is served as before, and the next quiet spell gives
    // them back again.
    let event = json!({"userId": "u2", "event": "Signed Up"});
    assert_eq!(
        node.track("/v1/track", &source.write_key, &event).await.0,
        200
    );
    assert_eq!(given_back(2).await, 2);
    let events = node.events_all(&source).await;
    let users: Vec<&str> = events.iter().filter_map(|e| e["userId"].as_str()).collect();
    assert_eq!(users, ["u1", "u2"]);
    node.stop().await;
}
