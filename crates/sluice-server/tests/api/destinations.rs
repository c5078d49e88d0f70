//! Destinations over the admin API: lifecycle, validation codes and fields, redaction of
//! secrets, merging on PATCH, workspace separation, and secrets kept out of logs and files.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use reqwest::Method;
use serde_json::{Map, Value, json};
use sluice_privacy::Vault;
use sluice_server::Config;
use sluice_server::admin::destinations::open_stored_settings;
use sluice_server::config::read_key_file;
use sluice_store::{AdminToken, StateStore, WorkspaceId};

use crate::helpers::{TestNode, TestSource, restart, restart_config, restart_with, spawn};

const SECRET: &str = "whsec_do-not-leak-0123456789abcdef";
const HEADER_SECRET: &str = "Bearer hdr-do-not-leak-9876543210";

fn webhook(source: &str) -> Value {
    json!({
        "name": "orders hook",
        "type": "webhook",
        "settings": {
            "url": "https://hooks.example.com/orders",
            "secret": SECRET,
            "headers": {"Authorization": HEADER_SECRET},
        },
        "sources": [source],
        "consent_categories": ["analytics"],
        "delivery": {"max_in_flight": 4},
    })
}

async fn send(node: &TestNode, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = node.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    let text = response.text().await.expect("text");
    for secret in [SECRET, HEADER_SECRET] {
        assert!(!text.contains(secret), "a secret in an answer: {text}");
    }
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The settings of a destination in clear, read from the node's files as the engine would.
fn stored_settings(node: &TestNode, id: &str) -> Map<String, Value> {
    let config = Config {
        data_dir: node.dir.path().to_owned(),
        ..Config::default()
    };
    let file_key = read_key_file(&config.key_file()).expect("key file");
    let vault = Vault::new(config.key_ring(file_key).expect("ring"));
    let state = StateStore::open(&node.dir.path().join("state.db")).expect("state");
    let (workspace, _) = state.ensure_default_workspace().expect("workspace");
    let destination = state
        .get_destination(&workspace.id, id)
        .expect("destination");
    open_stored_settings(&vault, &destination).expect("open")
}

async fn create(node: &TestNode, body: Value) -> Value {
    let (status, created) = send(node, Method::POST, "/api/v1/destinations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    created
}

/// A node with a source `web` and a webhook destination on it, and the destination's path.
async fn node_with_destination() -> (TestNode, TestSource, Value, String) {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let created = create(&node, webhook(&web.id)).await;
    let path = format!(
        "/api/v1/destinations/{}",
        created["id"].as_str().expect("id")
    );
    (node, web, created, path)
}

#[tokio::test]
async fn destination_lifecycle_with_redacted_secrets() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let app = node.create_source("app").await;

    let created = create(&node, webhook(&web.id)).await;
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(id.len(), 36, "a uuid: {id}");
    assert_eq!(created["type"], "webhook");
    assert_eq!(created["enabled"], true);
    assert_eq!(created["sources"], json!([web.id]));
    assert_eq!(created["consent_categories"], json!(["analytics"]));
    assert_eq!(
        created["delivery"],
        json!({"max_in_flight": 4, "rate_limit_per_sec": null, "retry_max_age_secs": 14400, "retry_max_attempts": 25})
    );
    assert_eq!(
        created["settings"],
        json!({"url": "https://hooks.example.com/orders", "secret": "[redacted]", "headers": "[redacted]"})
    );

    let (status, listed) = send(&node, Method::GET, "/api/v1/destinations", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["destinations"], json!([created.clone()]));
    let (status, shown) = send(
        &node,
        Method::GET,
        &format!("/api/v1/destinations/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown, created);
    assert_eq!(stored_settings(&node, &id)["secret"], SECRET);

    // A PATCH without the secret keeps it; so does sending the redaction back.
    let path = format!("/api/v1/destinations/{id}");
    let (status, updated) = send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({
            "name": "orders",
            "settings": {"url": "https://hooks.example.com/v2", "headers": "[redacted]", "batch_size": 10},
            "sources": [app.id, web.id],
            "delivery": {"rate_limit_per_sec": 5},
            "enabled": false,
        })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "orders");
    assert_eq!(updated["enabled"], false);
    assert_eq!(updated["delivery"]["rate_limit_per_sec"], 5);
    assert_eq!(updated["delivery"]["max_in_flight"], 4, "kept");
    assert_eq!(updated["consent_categories"], json!(["analytics"]), "kept");
    let mut sources = vec![app.id.clone(), web.id.clone()];
    sources.sort();
    assert_eq!(updated["sources"], json!(sources));
    assert_eq!(updated["settings"]["url"], "https://hooks.example.com/v2");
    assert_eq!(updated["settings"]["batch_size"], 10);
    assert_eq!(updated["settings"]["secret"], "[redacted]");
    let settings = stored_settings(&node, &id);
    assert_eq!(settings["secret"], SECRET);
    assert_eq!(settings["headers"], json!({"Authorization": HEADER_SECRET}));

    // A new secret replaces the old one; null removes a setting.
    let (status, updated) = send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({"settings": {"secret": "whsec_rotated-value-000", "headers": null}})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert!(updated["settings"].get("headers").is_none());
    let settings = stored_settings(&node, &id);
    assert_eq!(settings["secret"], "whsec_rotated-value-000");
    assert!(settings.get("headers").is_none());

    // A type cannot change.
    let (status, refused) = send(&node, Method::PATCH, &path, Some(json!({"type": "slack"}))).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (400, Some("invalid_request"))
    );
    assert_eq!(refused["field"], "type");
    let (status, _) = send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({"type": "webhook"})),
    )
    .await;
    assert_eq!(status, 200, "the same type is fine");

    let (status, _) = send(&node, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, missing) = send(&node, Method::GET, &path, None).await;
    assert_eq!((status, missing["code"].as_str()), (404, Some("not_found")));
    let (status, _) = send(&node, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn refusals_carry_a_code_and_the_field() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = webhook(&web.id);
        change(&mut body);
        body
    };
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (
            with(&|b| b["type"] = json!("carrier-pigeon")),
            400,
            "unknown_destination_type",
            Some("type"),
        ),
        (
            with(&|b| b["settings"]["url"] = json!("ftp://example.com")),
            400,
            "invalid_settings",
            Some("settings.url"),
        ),
        (
            with(&|b| {
                b["settings"].as_object_mut().map(|s| s.remove("url"));
            }),
            400,
            "invalid_settings",
            Some("settings.url"),
        ),
        (
            with(&|b| b["settings"]["secret"] = json!("[redacted]")),
            400,
            "invalid_settings",
            Some("settings.secret"),
        ),
        (
            with(&|b| b["settings"]["bogus"] = json!(1)),
            400,
            "invalid_settings",
            Some("settings.bogus"),
        ),
        (
            with(&|b| b["sources"] = json!([web.id, "src_nope"])),
            400,
            "unknown_source",
            Some("sources[1]"),
        ),
        (
            with(&|b| b["delivery"] = json!({"max_in_flight": 0})),
            400,
            "invalid_request",
            Some("delivery.max_in_flight"),
        ),
        (
            with(&|b| b["delivery"] = json!({"max_inflight": 2})),
            400,
            "invalid_request",
            Some("delivery"),
        ),
        (
            with(&|b| b["name"] = json!(" ")),
            400,
            "invalid_request",
            Some("name"),
        ),
        (
            with(&|b| b["consent_categories"] = json!([""])),
            400,
            "invalid_request",
            Some("consent_categories"),
        ),
        (
            with(&|b| b["settings"] = json!("not an object")),
            400,
            "invalid_request",
            None,
        ),
        (
            json!({"name": "x", "type": "webhook"}),
            400,
            "invalid_request",
            None,
        ),
        (
            with(&|b| b["extra"] = json!(true)),
            400,
            "invalid_request",
            None,
        ),
    ];
    for (body, status, code, field) in cases {
        let (got, answer) = send(
            &node,
            Method::POST,
            "/api/v1/destinations",
            Some(body.clone()),
        )
        .await;
        assert_eq!(
            (got, answer["code"].as_str()),
            (status, Some(code)),
            "{body} -> {answer}"
        );
        assert_eq!(answer["field"].as_str(), field, "{body} -> {answer}");
    }
    let (_, listed) = send(&node, Method::GET, "/api/v1/destinations", None).await;
    assert_eq!(listed["destinations"], json!([]), "nothing was created");

    let created = create(&node, webhook(&web.id)).await;
    let (status, conflict) = send(
        &node,
        Method::POST,
        "/api/v1/destinations",
        Some(webhook(&web.id)),
    )
    .await;
    assert_eq!(
        (status, conflict["code"].as_str()),
        (409, Some("already_exists"))
    );

    // A refused PATCH changes nothing.
    let path = format!(
        "/api/v1/destinations/{}",
        created["id"].as_str().expect("id")
    );
    for (patch, code, field) in [
        (
            json!({"name": "new name", "settings": {"url": "not a url"}}),
            "invalid_settings",
            "settings.url",
        ),
        (
            json!({"name": "new name", "sources": ["src_nope"]}),
            "unknown_source",
            "sources[0]",
        ),
        (
            json!({"name": "new name", "delivery": {"retry_max_attempts": 0}}),
            "invalid_request",
            "delivery.retry_max_attempts",
        ),
    ] {
        let (status, answer) = send(&node, Method::PATCH, &path, Some(patch)).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{answer}"
        );
        assert_eq!(answer["field"], field);
    }
    let (_, shown) = send(&node, Method::GET, &path, None).await;
    assert_eq!(shown, created);
    let (status, _) = send(
        &node,
        Method::PATCH,
        "/api/v1/destinations/nope",
        Some(json!({"enabled": false})),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn another_workspace_sees_nothing() {
    let (node, web, created, path) = node_with_destination().await;

    let state = StateStore::open(&node.dir.path().join("state.db")).expect("state");
    let other = state.create_workspace("acme").expect("workspace");
    let token = AdminToken::generate().expect("token");
    state.add_admin_token(&other.id, &token).expect("token");
    let theirs = |method: Method, path: &str, body: Option<Value>| {
        let mut request = node
            .client
            .request(method, node.url(path))
            .bearer_auth(token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    for (method, body) in [
        (Method::GET, None),
        (Method::PATCH, Some(json!({"enabled": false}))),
        (
            Method::PATCH,
            Some(json!({"settings": {"url": "https://evil.example.com"}})),
        ),
        (Method::DELETE, None),
    ] {
        let response = theirs(method.clone(), &path, body).await.expect("send");
        assert_eq!(response.status(), 404, "{method}");
    }
    let listed: Value = theirs(Method::GET, "/api/v1/destinations", None)
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed["destinations"], json!([]));
    // Their destination cannot take our source.
    let response = theirs(Method::POST, "/api/v1/destinations", Some(webhook(&web.id)))
        .await
        .expect("create");
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(
        (body["code"].as_str(), body["field"].as_str()),
        (Some("unknown_source"), Some("sources[0]"))
    );

    let (_, shown) = send(&node, Method::GET, &path, None).await;
    assert_eq!(shown, created, "untouched");
    assert!(
        state
            .list_destinations(&WorkspaceId(other.id.0.clone()))
            .expect("list")
            .is_empty()
    );
}

/// Everything any test of this binary logs, at every level.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || Sink(Arc::clone(&sink)))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        logs
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn secrets_reach_neither_the_logs_nor_the_files() {
    let logs = captured_logs();
    let (node, _, _, path) = node_with_destination().await;
    send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({"settings": {"url": "https://hooks.example.com/x"}})),
    )
    .await;
    // A refused PATCH that carries a secret.
    let (status, _) = send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({"settings": {"secret": SECRET, "url": "nope"}})),
    )
    .await;
    assert_eq!(status, 400);
    send(&node, Method::GET, &path, None).await;
    let dir = node.stop().await;

    let logs = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    assert!(
        logs.contains("generated one into the data directory"),
        "the capture works: the first start's warning is there"
    );
    for secret in [SECRET, HEADER_SECRET, "do-not-leak"] {
        assert!(!logs.contains(secret), "a secret in the logs");
    }
    let mut scanned = 0;
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        scanned += 1;
        assert!(
            !bytes.windows(11).any(|w| w == b"do-not-leak"),
            "a secret in clear in {}",
            path.display()
        );
    }
    assert!(scanned >= 3, "state.db, log.db and master.key at least");
}

#[tokio::test]
async fn a_lost_master_key_stops_startup_and_a_missing_one_is_named() {
    let (node, _, _, path) = node_with_destination().await;
    let dir = node.stop().await;

    // The same data directory restarts with its generated key.
    let node = restart(dir).await;
    let (status, _) = send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({"settings": {"batch_size": 2}})),
    )
    .await;
    assert_eq!(status, 200);
    let dir = node.stop().await;

    // Without any key, a new one would not open the secrets: refuse to start.
    std::fs::remove_file(dir.path().join("master.key")).expect("remove key");
    let refused = sluice_server::App::build(restart_config(&dir, |_| {})).await;
    let error = refused.err().expect("refused").to_string();
    assert!(
        error.contains("1 destination(s)") && error.contains("master.key"),
        "{error}"
    );
    assert!(
        !dir.path().join("master.key").exists(),
        "no key was generated"
    );

    // With another key the node runs; the destination shows, but its secrets cannot merge.
    let node = restart_with(dir, |config| {
        config.master_key = Some(sluice_server::SecretString::new(
            "k9:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=",
        ));
    })
    .await;
    let (status, shown) = send(&node, Method::GET, &path, None).await;
    assert_eq!(
        (status, &shown["settings"]["secret"]),
        (200, &json!("[redacted]"))
    );
    let (status, refused) = send(
        &node,
        Method::PATCH,
        &path,
        Some(json!({"settings": {"batch_size": 3}})),
    )
    .await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (500, Some("master_key_unavailable"))
    );
    assert!(
        refused["message"]
            .as_str()
            .is_some_and(|m| m.contains("local")),
        "{refused}"
    );
    // Other changes need no key.
    let (status, _) = send(&node, Method::PATCH, &path, Some(json!({"enabled": false}))).await;
    assert_eq!(status, 200);
}
