//! The admin API: token authentication, sources, events, and workspace separation.

use reqwest::Method;
use serde_json::{Value, json};
use sluice_store::{AdminToken, StateStore};

use crate::helpers::{ADMIN_TOKEN, spawn, track_message};

#[tokio::test]
async fn admin_routes_need_a_valid_token() {
    let node = spawn().await;
    for (method, path) in [
        (Method::GET, "/api/v1/sources"),
        (Method::POST, "/api/v1/sources"),
        (Method::GET, "/api/v1/sources/src_x"),
        (Method::PATCH, "/api/v1/sources/src_x"),
        (Method::DELETE, "/api/v1/sources/src_x"),
        (Method::POST, "/api/v1/sources/src_x/rotate"),
        (Method::GET, "/api/v1/sources/src_x/events"),
        (Method::GET, "/api/v1/sources/src_x/events/live"),
        (Method::GET, "/api/v1/destinations"),
        (Method::POST, "/api/v1/destinations"),
        (Method::GET, "/api/v1/destinations/x"),
        (Method::PATCH, "/api/v1/destinations/x"),
        (Method::DELETE, "/api/v1/destinations/x"),
    ] {
        let response = node
            .client
            .request(method.clone(), node.url(path))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "missing_admin_token");

        let response = node
            .client
            .request(method.clone(), node.url(path))
            .bearer_auth("sla_wrong-token-value")
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401, "{method} {path}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "invalid_admin_token");

        // A write key is not an admin token.
        let response = node
            .client
            .request(method.clone(), node.url(path))
            .basic_auth(ADMIN_TOKEN, Some(""))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401, "{method} {path}");
    }
}

#[tokio::test]
async fn source_lifecycle_over_http() {
    let node = spawn().await;
    let response = node
        .admin(Method::POST, "/api/v1/sources")
        .json(&json!({"name": "web"}))
        .send()
        .await
        .expect("create");
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let key = created["write_key"].as_str().expect("key").to_owned();
    assert!(key.len() >= 32, "at least 128 bits, base64");
    assert_eq!(created["enabled"], true);

    let listed: Value = node
        .admin(Method::GET, "/api/v1/sources")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["sources"].as_array().map(Vec::len), Some(1));
    assert!(
        listed["sources"][0].get("write_key").is_none(),
        "the key is shown once only"
    );
    assert!(!listed.to_string().contains(&key));

    let shown: Value = node
        .admin(Method::GET, &format!("/api/v1/sources/{id}"))
        .send()
        .await
        .expect("show")
        .json()
        .await
        .expect("json");
    assert_eq!(shown["name"], "web");
    assert!(shown.get("write_key").is_none());

    let renamed: Value = node
        .admin(Method::PATCH, &format!("/api/v1/sources/{id}"))
        .json(&json!({"name": "website"}))
        .send()
        .await
        .expect("patch")
        .json()
        .await
        .expect("json");
    assert_eq!(renamed["name"], "website");

    let conflict = node
        .admin(Method::POST, "/api/v1/sources")
        .json(&json!({"name": "website"}))
        .send()
        .await
        .expect("create");
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().await.expect("json");
    assert_eq!(body["code"], "already_exists");

    for bad in [
        json!({}),
        json!({"name": ""}),
        json!({"name": "x", "extra": 1}),
        json!("web"),
    ] {
        let response = node
            .admin(Method::POST, "/api/v1/sources")
            .json(&bad)
            .send()
            .await
            .expect("create");
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["code"], "invalid_request", "{bad}");
    }

    let deleted = node
        .admin(Method::DELETE, &format!("/api/v1/sources/{id}"))
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    let (status, _) = node
        .track("/v1/track", &key, &track_message("after-delete"))
        .await;
    assert_eq!(status, 401, "a deleted source's key stops working at once");
    let gone = node
        .admin(Method::GET, &format!("/api/v1/sources/{id}"))
        .send()
        .await
        .expect("show");
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.expect("json");
    assert_eq!(body["code"], "not_found");
}

#[tokio::test]
async fn events_api_returns_the_latest_n_oldest_first() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    for i in 0..5 {
        node.track(
            "/v1/track",
            &source.write_key,
            &track_message(&format!("e{i}")),
        )
        .await;
    }
    let page: Value = node
        .admin(
            Method::GET,
            &format!("/api/v1/sources/{}/events?limit=3", source.id),
        )
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> = page["events"]
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["messageId"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, ["e2", "e3", "e4"]);
    for limit in ["0", "1001", "x"] {
        let response = node
            .admin(
                Method::GET,
                &format!("/api/v1/sources/{}/events?limit={limit}", source.id),
            )
            .send()
            .await
            .expect("events");
        assert_eq!(response.status(), 400, "limit={limit}");
    }
}

#[tokio::test]
async fn live_tail_streams_new_events() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let other = node.create_source("other").await;
    let response = node
        .admin(
            Method::GET,
            &format!("/api/v1/sources/{}/events/live", source.id),
        )
        .send()
        .await
        .expect("live");
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/event-stream")
    );
    node.track("/v1/track", &other.write_key, &track_message("not-mine"))
        .await;
    node.track("/v1/track", &source.write_key, &track_message("live-1"))
        .await;

    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while !seen.contains("live-1") {
        let chunk = tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut stream))
            .await
            .expect("an event within 10 s")
            .expect("stream open")
            .expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("data: {"), "{seen}");
    assert!(seen.contains("id: "), "{seen}");
    assert!(
        !seen.contains("not-mine"),
        "another source's events are not in this tail"
    );
}

#[tokio::test]
async fn workspaces_cannot_see_each_other() {
    let node = spawn().await;
    let mine = node.create_source("web").await;
    node.track("/v1/track", &mine.write_key, &track_message("private"))
        .await;

    // A second workspace with its own admin token, created in the same data directory.
    let state = StateStore::open(&node.dir.path().join("state.db")).expect("state");
    let other = state.create_workspace("acme").expect("workspace");
    let token = AdminToken::generate().expect("token");
    state.add_admin_token(&other.id, &token).expect("token");
    let theirs = |method: Method, path: &str| {
        node.client
            .request(method, node.url(path))
            .bearer_auth(token.expose())
    };

    let listed: Value = theirs(Method::GET, "/api/v1/sources")
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["sources"].as_array().map(Vec::len), Some(0));
    for (method, path) in [
        (Method::GET, format!("/api/v1/sources/{}", mine.id)),
        (Method::GET, format!("/api/v1/sources/{}/events", mine.id)),
        (
            Method::GET,
            format!("/api/v1/sources/{}/events/live", mine.id),
        ),
        (Method::POST, format!("/api/v1/sources/{}/rotate", mine.id)),
        (Method::DELETE, format!("/api/v1/sources/{}", mine.id)),
    ] {
        let response = theirs(method.clone(), &path).send().await.expect("send");
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let response = theirs(Method::PATCH, &format!("/api/v1/sources/{}", mine.id))
        .json(&json!({"enabled": false}))
        .send()
        .await
        .expect("patch");
    assert_eq!(response.status(), 404);
    // Mine is untouched.
    let (status, _) = node
        .track("/v1/track", &mine.write_key, &track_message("still-works"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(node.events(&mine).await.len(), 2);
}
