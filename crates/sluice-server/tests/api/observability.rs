//! Health, readiness, metrics, and graceful shutdown.

use serde_json::{Value, json};

use crate::helpers::{spawn, track_message};

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
