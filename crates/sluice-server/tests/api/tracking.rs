//! The tracking API: endpoints, authentication, encodings, limits, errors, dedup, CORS.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::helpers::{TestNode, spawn, spawn_with, track_message};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

fn ids(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or(""))
        .collect()
}

#[tokio::test]
async fn every_endpoint_accepts_its_call() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let calls = [
        (
            "/v1/identify",
            json!({"userId":"u","traits":{"plan":"pro"},"messageId":"m-identify"}),
        ),
        (
            "/v1/track",
            json!({"userId":"u","event":"E","messageId":"m-track"}),
        ),
        (
            "/v1/page",
            json!({"userId":"u","name":"Home","messageId":"m-page"}),
        ),
        (
            "/v1/screen",
            json!({"userId":"u","name":"Main","messageId":"m-screen"}),
        ),
        (
            "/v1/group",
            json!({"userId":"u","groupId":"g","messageId":"m-group"}),
        ),
        (
            "/v1/alias",
            json!({"userId":"u","previousId":"p","messageId":"m-alias"}),
        ),
        ("/v1/i", json!({"anonymousId":"a","messageId":"m-i"})),
        (
            "/v1/t",
            json!({"anonymousId":"a","event":"E","messageId":"m-t"}),
        ),
        ("/v1/p", json!({"anonymousId":"a","messageId":"m-p"})),
        ("/v1/s", json!({"anonymousId":"a","messageId":"m-s"})),
        (
            "/v1/g",
            json!({"anonymousId":"a","groupId":"g","messageId":"m-g"}),
        ),
        (
            "/v1/a",
            json!({"userId":"u","previousId":"a","messageId":"m-a"}),
        ),
        (
            "/v1/batch",
            json!({"batch":[{"type":"track","userId":"u","event":"E","messageId":"m-batch"}]}),
        ),
        (
            "/v1/b",
            json!({"batch":[{"type":"page","userId":"u","messageId":"m-b"}]}),
        ),
        (
            "/v1/import",
            json!({"batch":[{"type":"identify","userId":"u","messageId":"m-import"}]}),
        ),
    ];
    for (path, body) in &calls {
        let (status, answer) = node.track(path, &source.write_key, body).await;
        assert_eq!(status, 200, "{path}: {answer}");
        assert_eq!(answer["success"], true, "{path}");
        assert_eq!(answer["accepted"], 1, "{path}");
    }
    let events = node.events(&source).await;
    assert_eq!(events.len(), calls.len());
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        types,
        [
            "identify", "track", "page", "screen", "group", "alias", "identify", "track", "page",
            "screen", "group", "alias", "track", "page", "identify"
        ]
    );
    for event in &events {
        assert!(
            event["receivedAt"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert!(
            event["timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z'))
        );
        assert_eq!(event["context"]["ip"], "127.0.0.1");
    }
}

#[tokio::test]
async fn write_key_in_the_body_works_and_is_never_stored() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    // Per event (analytics.js standard mode) and in the envelope (batching mode, Node, Python).
    for (path, body) in [
        (
            "/v1/t",
            json!({"writeKey": source.write_key, "userId":"u","event":"E","messageId":"m1"}),
        ),
        (
            "/v1/batch",
            json!({"writeKey": source.write_key, "batch":[{"type":"track","userId":"u","event":"E","messageId":"m2","writeKey": source.write_key}]}),
        ),
    ] {
        let response = node
            .client
            .post(node.url(path))
            .header("content-type", "text/plain")
            .body(body.to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200);
    }
    let events = node.events(&source).await;
    assert_eq!(ids(&events), ["m1", "m2"]);
    for event in &events {
        assert!(event.get("writeKey").is_none());
        assert!(!event.to_string().contains(&source.write_key));
    }
}

#[tokio::test]
async fn authentication_failures_are_401_with_codes() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let message = track_message("m");

    let (status, body) = node.track("/v1/track", "not-a-real-key", &message).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("invalid_write_key"))
    );

    let response = node
        .client
        .post(node.url("/v1/track"))
        .body(message.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], "missing_write_key");

    let response = node
        .client
        .post(node.url("/v1/track"))
        .header("authorization", "Basic !!!")
        .body(message.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 401);

    // Disabled, then enabled again.
    let response = node
        .admin(
            reqwest::Method::PATCH,
            &format!("/api/v1/sources/{}", source.id),
        )
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 200);
    let (status, body) = node.track("/v1/track", &source.write_key, &message).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("source_disabled"))
    );
    node.admin(
        reqwest::Method::PATCH,
        &format!("/api/v1/sources/{}", source.id),
    )
    .json(&json!({"enabled": true}))
    .send()
    .await
    .expect("patch");
    let (status, _) = node.track("/v1/track", &source.write_key, &message).await;
    assert_eq!(status, 200);

    // Rotation: the old key stops at once, the new one works.
    let rotated: Value = node
        .admin(
            reqwest::Method::POST,
            &format!("/api/v1/sources/{}/rotate", source.id),
        )
        .send()
        .await
        .expect("rotate")
        .json()
        .await
        .expect("json");
    let new_key = rotated["write_key"].as_str().expect("new key");
    let (status, _) = node
        .track("/v1/track", &source.write_key, &track_message("m2"))
        .await;
    assert_eq!(status, 401);
    let (status, _) = node.track("/v1/track", new_key, &track_message("m2")).await;
    assert_eq!(status, 200);
    assert_eq!(
        node.events(&source).await.len(),
        2,
        "nothing refused was stored, nothing accepted was lost"
    );
}

#[tokio::test]
async fn bodies_are_json_whatever_the_content_type_and_gzip_is_decoded() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let batch = json!({"batch":[track_message("gz-1"), track_message("gz-2")]});
    for (content_type, id) in [
        ("application/json", "ct-1"),
        ("text/plain", "ct-2"),
        ("application/x-www-form-urlencoded", "ct-3"),
        ("application/json;charset=UTF-8", "ct-4"),
    ] {
        let response = node
            .client
            .post(node.url("/v1/track"))
            .basic_auth(&source.write_key, Some(""))
            .header("content-type", content_type)
            .body(track_message(id).to_string())
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 200, "{content_type}");
    }
    let response = node
        .client
        .post(node.url("/v1/batch"))
        .basic_auth(&source.write_key, Some(""))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("content-encoding", "gzip")
        .body(gzip(batch.to_string().as_bytes()))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    assert_eq!(
        ids(&node.events(&source).await),
        ["ct-1", "ct-2", "ct-3", "ct-4", "gz-1", "gz-2"]
    );
}

async fn post_raw(
    node: &TestNode,
    path: &str,
    key: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = node
        .client
        .post(node.url(path))
        .basic_auth(key, Some(""))
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("post");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_input_is_400_with_a_stable_code_and_nothing_earlier_is_lost() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let key = source.write_key.clone();
    let (status, _) = node
        .track("/v1/track", &key, &track_message("before"))
        .await;
    assert_eq!(status, 200);

    let big_property = "x".repeat(33 * 1024);
    let many: Vec<Value> = (0..2501)
        .map(|i| json!({"type":"page","userId":"u","messageId":format!("n{i}")}))
        .collect();
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    // (name, path, headers, body, expected code, expected field)
    type Case<'a> = (
        &'a str,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Vec<u8>,
        &'a str,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "malformed",
            "/v1/track",
            vec![],
            b"{\"userId\":".to_vec(),
            "malformed_json",
            None,
        ),
        (
            "invalid utf-8",
            "/v1/track",
            vec![],
            b"{\"userId\":\"\xff\xfe\"}".to_vec(),
            "malformed_json",
            None,
        ),
        (
            "not an object",
            "/v1/track",
            vec![],
            b"[1,2]".to_vec(),
            "invalid_message",
            None,
        ),
        (
            "event too large",
            "/v1/track",
            vec![],
            json!({"userId":"u","event":"E","properties":{"p":big_property}})
                .to_string()
                .into_bytes(),
            "event_too_large",
            None,
        ),
        (
            "request too large",
            "/v1/batch",
            vec![],
            json!({"batch":[], "pad": "y".repeat(501 * 1024)})
                .to_string()
                .into_bytes(),
            "request_too_large",
            None,
        ),
        (
            "too many events",
            "/v1/batch",
            vec![],
            json!({"batch": many}).to_string().into_bytes(),
            "batch_too_large",
            Some("batch"),
        ),
        (
            "gzip bomb",
            "/v1/batch",
            vec![("content-encoding", "gzip")],
            bomb,
            "request_too_large",
            None,
        ),
        (
            "not gzip",
            "/v1/batch",
            vec![("content-encoding", "gzip")],
            b"{}".to_vec(),
            "malformed_json",
            None,
        ),
        (
            "brotli",
            "/v1/batch",
            vec![("content-encoding", "br")],
            b"{}".to_vec(),
            "unsupported_encoding",
            Some("Content-Encoding"),
        ),
        (
            "no batch",
            "/v1/batch",
            vec![],
            b"{\"events\":[]}".to_vec(),
            "missing_batch",
            Some("batch"),
        ),
        (
            "no identity",
            "/v1/track",
            vec![],
            b"{\"event\":\"E\"}".to_vec(),
            "missing_identity",
            Some("userId"),
        ),
        (
            "no event",
            "/v1/track",
            vec![],
            b"{\"userId\":\"u\"}".to_vec(),
            "missing_event",
            Some("event"),
        ),
        (
            "no group id",
            "/v1/group",
            vec![],
            b"{\"userId\":\"u\"}".to_vec(),
            "missing_group_id",
            Some("groupId"),
        ),
        (
            "no previous id",
            "/v1/alias",
            vec![],
            b"{\"userId\":\"u\"}".to_vec(),
            "missing_previous_id",
            Some("previousId"),
        ),
        (
            "long message id",
            "/v1/page",
            vec![],
            json!({"userId":"u","messageId":"m".repeat(101)})
                .to_string()
                .into_bytes(),
            "message_id_too_long",
            Some("messageId"),
        ),
        (
            "bad timestamp",
            "/v1/page",
            vec![],
            b"{\"userId\":\"u\",\"timestamp\":\"later\"}".to_vec(),
            "invalid_timestamp",
            Some("timestamp"),
        ),
        (
            "bad properties",
            "/v1/page",
            vec![],
            b"{\"userId\":\"u\",\"properties\":\"x\"}".to_vec(),
            "invalid_field_type",
            Some("properties"),
        ),
    ];
    for (name, path, headers, body, code, field) in cases {
        let (status, answer) = post_raw(&node, path, &key, &headers, body).await;
        assert_eq!(status, 400, "{name}: {answer}");
        assert_eq!(answer["code"], code, "{name}: {answer}");
        assert_eq!(answer["success"], false, "{name}");
        assert!(
            answer["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty() && !m.ends_with('.')),
            "{name}"
        );
        if let Some(field) = field {
            assert_eq!(answer["field"], field, "{name}: {answer}");
        }
    }
    let (status, answer) = post_raw(&node, "/v1/nope", &key, &[], b"{}".to_vec()).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("not_found")));

    assert_eq!(
        ids(&node.events(&source).await),
        ["before"],
        "errors stored nothing and lost nothing"
    );
}

#[tokio::test]
async fn a_batch_keeps_its_valid_messages_and_lists_the_refused() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let body = json!({"batch": [
        track_message("ok-1"),
        {"type":"track","userId":"u","messageId":"no-event"},
        "not an object",
        {"type":"launch","userId":"u","messageId":"bad-type"},
        track_message("ok-2"),
    ]});
    let (status, answer) = node.track("/v1/batch", &source.write_key, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 2);
    let rejected = answer["rejected"].as_array().expect("rejected");
    let listed: Vec<(u64, &str)> = rejected
        .iter()
        .map(|r| {
            (
                r["index"].as_u64().unwrap_or(99),
                r["code"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (1, "missing_event"),
            (2, "invalid_message"),
            (3, "invalid_type")
        ]
    );
    assert_eq!(ids(&node.events(&source).await), ["ok-1", "ok-2"]);

    let all_bad = json!({"batch": [{"type":"track","userId":"u"}, 1]});
    let (status, answer) = node.track("/v1/batch", &source.write_key, &all_bad).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("all_messages_rejected"))
    );
    assert_eq!(answer["rejected"].as_array().map(Vec::len), Some(2));

    let (status, answer) = node
        .track("/v1/batch", &source.write_key, &json!({"batch": []}))
        .await;
    assert_eq!((status, answer["accepted"].as_u64()), (200, Some(0)));
}

#[tokio::test]
async fn retried_messages_are_deduplicated_and_counted() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let body = json!({"batch":[track_message("r-1"), track_message("r-2")]});
    let (_, first) = node.track("/v1/batch", &source.write_key, &body).await;
    assert_eq!(
        (first["accepted"].as_u64(), first["duplicates"].as_u64()),
        (Some(2), Some(0))
    );
    // The SDK retries the same batch (a fresh sentAt, same messageIds).
    let (status, again) = node.track("/v1/batch", &source.write_key, &body).await;
    assert_eq!(status, 200, "a duplicate is still exactly 200");
    assert_eq!(
        (again["accepted"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(2))
    );
    // Another source of the same workspace: still a duplicate (dedup is per workspace).
    let other = node.create_source("app").await;
    let (_, other_answer) = node
        .track("/v1/track", &other.write_key, &track_message("r-1"))
        .await;
    assert_eq!(other_answer["duplicates"], 1);
    assert_eq!(node.events(&source).await.len(), 2);

    let metrics = node
        .client
        .get(node.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let line = format!(
        "sluice_events_deduplicated_total{{source=\"{}\"}} 2",
        source.id
    );
    assert!(metrics.contains(&line), "{line} not in metrics");
}

#[tokio::test]
async fn dedup_survives_a_restart() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    node.track("/v1/track", &source.write_key, &track_message("once"))
        .await;
    let dir = node.stop().await;
    let node = crate::helpers::restart(dir).await;
    let (status, answer) = node
        .track("/v1/track", &source.write_key, &track_message("once"))
        .await;
    assert_eq!((status, answer["duplicates"].as_u64()), (200, Some(1)));
    assert_eq!(node.events(&source).await.len(), 1);
}

#[tokio::test]
async fn skew_is_corrected_and_rudderstack_times_are_understood() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    // A client whose clock is one hour ahead, as RudderStack sends it (no `timestamp`).
    let now = time::OffsetDateTime::now_utc();
    let ahead = now + time::Duration::hours(1);
    let fmt = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .expect("format")
    };
    let body = json!({"batch":[{"type":"track","userId":"u","event":"E","messageId":"skew",
        "originalTimestamp": fmt(ahead - time::Duration::seconds(30)), "sentAt": fmt(ahead)}], "sentAt": fmt(ahead)});
    node.track("/v1/batch", &source.write_key, &body).await;
    let event = node.events(&source).await.remove(0);
    let corrected = time::OffsetDateTime::parse(
        event["timestamp"].as_str().expect("timestamp"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("parse");
    let expected = now - time::Duration::seconds(30);
    assert!(
        (corrected - expected).abs() < time::Duration::seconds(5),
        "corrected {corrected} expected about {expected}"
    );
}

#[tokio::test]
async fn client_ip_comes_from_trusted_proxies_only() {
    let node =
        spawn_with(|config| config.trusted_proxies = vec!["127.0.0.0/8".parse().expect("net")])
            .await;
    let source = node.create_source("web").await;
    let response = node
        .client
        .post(node.url("/v1/track"))
        .basic_auth(&source.write_key, Some(""))
        .header("x-forwarded-for", "203.0.113.9")
        .body(track_message("xff").to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 200);
    assert_eq!(
        node.events(&source).await[0]["context"]["ip"],
        "203.0.113.9"
    );

    let untrusted = spawn().await;
    let source = untrusted.create_source("web").await;
    untrusted
        .client
        .post(untrusted.url("/v1/track"))
        .basic_auth(&source.write_key, Some(""))
        .header("x-forwarded-for", "203.0.113.9")
        .body(track_message("xff").to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(
        untrusted.events(&source).await[0]["context"]["ip"],
        "127.0.0.1"
    );
}

#[tokio::test]
async fn cors_preflights_allow_the_sdk_retry_headers() {
    let node = spawn().await;
    let requested = "anonymousid,authorization,content-type,sentat,rsa-retry-attempt,rsa-retry-reason,x-retry-count";
    let response = node
        .client
        .request(reqwest::Method::OPTIONS, node.url("/v1/t"))
        .header("origin", "http://shop.example")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", requested)
        .send()
        .await
        .expect("preflight");
    assert!(response.status().is_success());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(headers["access-control-allow-headers"], requested);
    assert!(
        headers["access-control-allow-methods"]
            .to_str()
            .expect("text")
            .contains("POST")
    );
    assert!(headers.contains_key("access-control-max-age"));

    let source = node.create_source("web").await;
    let response = node
        .client
        .post(node.url("/v1/t"))
        .header("origin", "http://shop.example")
        .basic_auth(&source.write_key, Some(""))
        .body(track_message("cors").to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert!(
        response.headers()["access-control-expose-headers"]
            .to_str()
            .expect("text")
            .to_ascii_lowercase()
            .contains("retry-after")
    );
}
