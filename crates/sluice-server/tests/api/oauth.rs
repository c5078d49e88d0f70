//! OAuth connections end to end, against the local fakes of Google's, Meta's and TikTok's
//! OAuth endpoints (`sluice_oauth::testkit`, which check the client, the redirect URI, the
//! state and PKCE) and of their audience APIs (`sluice_destinations::testkit`, taking only
//! the tokens the OAuth fake still honours): connecting (the browser's part played by the
//! test: the authorization URL followed to the fake's consent page, its redirect brought to
//! `/oauth/callback`), every way the callback fails, renewal with paused time, a revoked
//! grant, an ad destination using a connection that is refused its token, pauses and
//! resumes, and disconnection.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Map, Value, json};
use sluice_destinations::testkit::credentials::META_APP_SECRET;
use sluice_destinations::testkit::{FakeTool, Tool};
use sluice_oauth::Provider;
use sluice_oauth::testkit::{FakeProvider, TokenKind};
use sluice_server::Config;
use sluice_server::config::{EndpointOverride, OAuthApp};

use crate::helpers::{TestNode, TestSource, spawn_with};
use crate::privacy::byte_scan;

/// Where the node says it lives: the providers send the browser back under it.
const PUBLIC_URL: &str = "https://sluice.test";
const REDIRECT_URI: &str = "https://sluice.test/oauth/callback";

/// Points the node at each fake and gives the default workspace the app each fake knows.
fn configure(config: &mut Config, fakes: &[&FakeProvider]) {
    config.public_url = Some(PUBLIC_URL.into());
    let apps = config.oauth.workspaces.entry("default".into()).or_default();
    for fake in fakes {
        fake.set_redirect_uri(REDIRECT_URI);
        let client = fake.client();
        let app = Some(OAuthApp {
            client_id: client.client_id.clone(),
            client_secret: sluice_server::SecretString::new(client.client_secret.expose()),
            scopes: None,
        });
        let endpoints = Some(EndpointOverride {
            auth_base: Some(fake.base_url()),
            api_base: Some(fake.base_url()),
            meta_version: None,
        });
        match fake.provider() {
            Provider::Google => {
                apps.google = app;
                config.oauth.endpoints.google = endpoints;
            }
            Provider::Meta => {
                apps.meta = app;
                config.oauth.endpoints.meta = endpoints;
            }
            Provider::TikTok => {
                apps.tiktok = app;
                config.oauth.endpoints.tiktok = endpoints;
            }
        }
    }
}

async fn node_for(fakes: &[&FakeProvider]) -> TestNode {
    spawn_with(|config| configure(config, fakes)).await
}

async fn call(node: &TestNode, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = node.admin(method, path);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/connections`: the authorization's start.
async fn start(node: &TestNode, provider: &str) -> Value {
    let (status, started) = call(
        node,
        Method::POST,
        "/api/v1/connections",
        Some(json!({"provider": provider, "label": format!("{provider} ads")})),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    started
}

/// The admin's browser on the provider's consent page, clicking "allow": where the provider
/// sends it back (a 302).
async fn consent(url: &str) -> String {
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = browser.get(url).send().await.expect("consent page");
    assert_eq!(
        page.status(),
        302,
        "{}",
        page.text().await.unwrap_or_default()
    );
    page.headers()["location"].to_str().unwrap().to_string()
}

/// The browser arriving at `/oauth/callback` with what the provider added to the redirect
/// URI, asking for JSON.
async fn callback(node: &TestNode, location: &str) -> (u16, Value) {
    let query = location
        .strip_prefix(&format!("{REDIRECT_URI}?"))
        .unwrap_or_else(|| panic!("not our redirect URI: {location}"));
    let response = node
        .client
        .get(node.url(&format!("/oauth/callback?{query}")))
        .header("accept", "application/json")
        .send()
        .await
        .expect("callback");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Connects `fake`'s provider: start, consent, callback. The connection.
async fn connect(node: &TestNode, fake: &FakeProvider) -> Value {
    let started = start(node, fake.provider().name()).await;
    let location = consent(started["authorization_url"].as_str().unwrap()).await;
    let (status, answer) = callback(node, &location).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["success"], true);
    answer["connection"].clone()
}

async fn connection(node: &TestNode, id: &str) -> Value {
    let (status, shown) = call(
        node,
        Method::GET,
        &format!("/api/v1/connections/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    shown
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every token the fake issued.
fn issued(fake: &FakeProvider) -> Vec<String> {
    fake.issued().into_iter().map(|token| token.value).collect()
}

/// The latest access token the fake issued.
fn latest_access(fake: &FakeProvider) -> String {
    fake.issued()
        .into_iter()
        .rev()
        .find(|token| token.kind == TokenKind::Access)
        .expect("an access token")
        .value
}

/// How many requests the tool got with `token` as their bearer.
fn sent_with(tool: &FakeTool, token: &str) -> usize {
    let bearer = format!("Bearer {token}");
    tool.requests()
        .iter()
        .filter(|r| r.header("authorization") == Some(bearer.as_str()))
        .count()
}

fn no_token_in(fake: &FakeProvider, text: &str) {
    for token in issued(fake) {
        assert!(!text.contains(&token), "a token in {text}");
    }
    assert!(
        !text.contains(fake.client().client_secret.expose()),
        "{text}"
    );
}

// --- connecting ---------------------------------------------------------------------------

#[tokio::test]
async fn google_meta_and_tiktok_connect_with_pkce_and_keep_tokens_sealed() {
    let google = FakeProvider::start(Provider::Google).await;
    let meta = FakeProvider::start(Provider::Meta).await;
    let tiktok = FakeProvider::start(Provider::TikTok).await;
    let node = node_for(&[&google, &meta, &tiktok]).await;

    // The authorization URL: the fake's consent page, our redirect URI, a state, S256.
    let started = start(&node, "google").await;
    let url = started["authorization_url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/o/oauth2/v2/auth?", google.base_url())),
        "{url}"
    );
    for part in [
        "redirect_uri=https%3A%2F%2Fsluice.test%2Foauth%2Fcallback",
        "code_challenge_method=S256",
        "access_type=offline",
        "scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdatamanager",
    ] {
        assert!(url.contains(part), "{part} in {url}");
    }
    let connection_id = started["connection_id"].as_str().unwrap().to_string();
    assert!(connection_id.starts_with("conn_"));
    assert!(started["state_expires_at"].as_str().is_some());
    let location = consent(url).await;
    let (status, answer) = callback(&node, &location).await;
    assert_eq!(status, 200, "{answer}");
    let google_connection = &answer["connection"];
    assert_eq!(google_connection["id"], connection_id.as_str());
    assert_eq!(google_connection["provider"], "google");
    assert_eq!(google_connection["label"], "google ads");
    assert_eq!(google_connection["status"], "active");
    assert_eq!(
        google_connection["scopes"],
        json!(["https://www.googleapis.com/auth/datamanager"])
    );
    assert!(google_connection["access_token_expires_at"].is_string());
    // The exchange carried the verifier the fake checked against the challenge.
    let exchange = google
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    let form = String::from_utf8_lossy(&exchange.body).into_owned();
    assert!(form.contains("grant_type=authorization_code") && form.contains("code_verifier="));

    // Meta: the code exchange, then the long-lived exchange.
    let meta_connection = connect(&node, &meta).await;
    assert_eq!(meta_connection["status"], "active");
    let paths: Vec<String> = meta.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths
            .iter()
            .filter(|p| *p == "/v25.0/oauth/access_token")
            .count(),
        2,
        "{paths:?}"
    );
    assert_eq!(meta.issued().len(), 2, "short-lived, then long-lived");
    let expires = meta_connection["access_token_expires_at"].as_str().unwrap();
    let expires =
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .unwrap();
    assert!(expires - time::OffsetDateTime::now_utc() > time::Duration::days(59));

    // TikTok: the advertisers come with the token, which does not expire.
    let tiktok_connection = connect(&node, &tiktok).await;
    assert_eq!(
        tiktok_connection["advertiser_ids"],
        json!(["7100000000000000001", "7100000000000000002"])
    );
    assert_eq!(tiktok_connection["access_token_expires_at"], Value::Null);

    let (status, listed) = call(&node, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(status, 200);
    let listed = listed["connections"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 3);
    let text = Value::Array(listed).to_string();
    for fake in [&google, &meta, &tiktok] {
        no_token_in(fake, &text);
        no_token_in(fake, &answer.to_string());
    }

    // Neither a token nor a client secret is anywhere in the data directory's bytes.
    let mut secrets: Vec<String> = Vec::new();
    for fake in [&google, &meta, &tiktok] {
        secrets.extend(issued(fake));
        secrets.push(fake.client().client_secret.expose().to_string());
    }
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let leaks = byte_scan(node.dir.path(), &secrets);
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[tokio::test]
async fn the_callback_refuses_a_missing_unknown_reused_or_forged_state() {
    let google = FakeProvider::start(Provider::Google).await;
    let node = node_for(&[&google]).await;
    let started = start(&node, "google").await;
    let location = consent(started["authorization_url"].as_str().unwrap()).await;
    let code = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("code="))
        .unwrap()
        .to_string();

    for query in [
        format!("{REDIRECT_URI}?code={code}"),
        format!("{REDIRECT_URI}?code={code}&state="),
        format!("{REDIRECT_URI}?code={code}&state=made-up-state-value"),
        location.replace("state=", "state=x"),
    ] {
        let (status, body) = callback(&node, &query).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "state_unknown", "{query}");
    }

    // A query that is not URL-encoded is the browser's error.
    let (status, body) = callback(&node, &format!("{REDIRECT_URI}?code=x&state=%zz")).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );

    // The real one works once.
    let (status, body) = callback(&node, &location).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = callback(&node, &location).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "state_unknown");

    // A browser gets a small page, escaped, never cached.
    let page = node
        .client
        .get(node.url("/oauth/callback?code=x&state=<script>"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert_eq!(page.headers()["cache-control"], "no-store");
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("state_unknown") && !html.contains("<script>"),
        "{html}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_callback_after_the_state_expired_is_refused() {
    let meta = FakeProvider::start(Provider::Meta).await;
    let node = node_for(&[&meta]).await;
    let started = start(&node, "meta").await;
    let location = consent(started["authorization_url"].as_str().unwrap()).await;

    // Ten minutes pass before the browser comes back.
    tokio::time::advance(Duration::from_secs(10 * 60 + 1)).await;
    let (status, body) = callback(&node, &location).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "state_expired");
    let (_, listed) = call(&node, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(listed["connections"], json!([]));
    // The code was never exchanged.
    assert!(meta.issued().is_empty());
    // And the state is used up.
    let (_, again) = callback(&node, &location).await;
    assert_eq!(again["code"], "state_unknown");
}

#[tokio::test]
async fn an_expired_or_reused_code_is_the_providers_invalid_grant() {
    let google = FakeProvider::start(Provider::Google).await;
    let meta = FakeProvider::start(Provider::Meta).await;
    let node = node_for(&[&google, &meta]).await;

    // Expired: the consent took too long at the provider.
    for fake in [&google, &meta] {
        let started = start(&node, fake.provider().name()).await;
        let location = consent(started["authorization_url"].as_str().unwrap()).await;
        fake.expire_codes();
        let (status, body) = callback(&node, &location).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], "code_invalid");
        let message = body["message"].as_str().unwrap();
        let expected = match fake.provider() {
            Provider::Google => "invalid_grant",
            _ => "100/36007",
        };
        assert!(message.contains(expected), "{message}");
    }

    // Reused: a code exchanged once comes back with a new state.
    let first = connect(&node, &google).await;
    let first_code = google
        .requests()
        .into_iter()
        .filter(|r| r.path == "/token")
        .rev()
        .filter_map(|r| {
            let body = String::from_utf8_lossy(&r.body).into_owned();
            body.split('&')
                .find_map(|pair| pair.strip_prefix("code=").map(str::to_string))
        })
        .next()
        .unwrap();
    let started = start(&node, "google").await;
    let fresh = consent(started["authorization_url"].as_str().unwrap()).await;
    let state = fresh
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("state="))
        .unwrap();
    let replay = format!("{REDIRECT_URI}?code={first_code}&state={state}");
    let (status, body) = callback(&node, &replay).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "code_invalid");
    assert!(body["message"].as_str().unwrap().contains("invalid_grant"));
    // A reused code makes Google revoke what the first exchange gave: renewing the first
    // connection is refused, and it needs reauthorization.
    let id = first["id"].as_str().unwrap();
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "token_revoked");
    let shown = connection(&node, id).await;
    assert_eq!(shown["status"], "needs_reauthorization");
    let message = shown["status_message"].as_str().unwrap();
    assert!(message.contains("invalid_grant"), "{message}");
    no_token_in(&google, message);
}

#[tokio::test]
async fn a_refused_consent_is_authorization_denied() {
    for provider in Provider::ALL {
        let fake = FakeProvider::start(provider).await;
        let node = node_for(&[&fake]).await;
        let started = start(&node, provider.name()).await;
        let location = fake
            .deny(started["authorization_url"].as_str().unwrap())
            .unwrap();
        let (status, body) = callback(&node, &location).await;
        assert_eq!(status, 403, "{provider}: {body}");
        assert_eq!(body["code"], "authorization_denied");
        assert!(
            body["message"].as_str().unwrap().contains("access_denied"),
            "{body}"
        );
        assert!(fake.issued().is_empty());
    }
}

#[tokio::test]
async fn provider_failures_at_the_exchange_are_named_without_secrets() {
    let google = FakeProvider::start(Provider::Google).await;
    let meta = FakeProvider::start(Provider::Meta).await;
    let tiktok = FakeProvider::start(Provider::TikTok).await;
    // TikTok's token endpoint is somewhere nothing listens.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let node = spawn_with(|config| {
        configure(config, &[&google, &meta, &tiktok]);
        if let Some(app) = config
            .oauth
            .workspaces
            .get_mut("default")
            .and_then(|a| a.meta.as_mut())
        {
            app.client_secret = sluice_server::SecretString::new("not-the-meta-app-secret");
        }
        if let Some(endpoints) = config.oauth.endpoints.tiktok.as_mut() {
            endpoints.api_base = Some(closed.clone());
        }
    })
    .await;

    // Google fails on its side.
    let started = start(&node, "google").await;
    let location = consent(started["authorization_url"].as_str().unwrap()).await;
    google.push_answer(500, &[], "backend error");
    let (status, body) = callback(&node, &location).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "provider_error");
    assert!(
        body["message"].as_str().unwrap().contains("http 500"),
        "{body}"
    );

    // Meta refuses the app secret (error 1), without the secret in the message.
    let started = start(&node, "meta").await;
    let location = consent(started["authorization_url"].as_str().unwrap()).await;
    let (status, body) = callback(&node, &location).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "provider_error");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("client secret") && !message.contains("not-the-meta"),
        "{message}"
    );

    // TikTok cannot be reached.
    let started = start(&node, "tiktok").await;
    let location = consent(started["authorization_url"].as_str().unwrap()).await;
    let (status, body) = callback(&node, &location).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["code"], "provider_unreachable");
    assert!(
        !body["message"].as_str().unwrap().contains(closed.as_str()),
        "{body}"
    );

    // Nothing was connected, and each state is used up.
    let (_, listed) = call(&node, Method::GET, "/api/v1/connections", None).await;
    assert_eq!(listed["connections"], json!([]));
    let (status, body) = callback(&node, &location).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("state_unknown"))
    );
}

#[tokio::test]
async fn unconfigured_providers_and_bad_requests_are_named() {
    let google = FakeProvider::start(Provider::Google).await;
    let node = node_for(&[&google]).await;
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/connections",
        Some(json!({"provider": "meta"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "provider_not_configured");
    assert_eq!(body["field"], "provider");
    for (request, code) in [
        (json!({"provider": "linkedin"}), "invalid_request"),
        (
            json!({"provider": "google", "scopes": []}),
            "invalid_request",
        ),
        (json!({}), "invalid_request"),
        (
            json!({"provider": "google", "label": "a\nb"}),
            "invalid_request",
        ),
    ] {
        let (status, body) = call(
            &node,
            Method::POST,
            "/api/v1/connections",
            Some(request.clone()),
        )
        .await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some(code)),
            "{request}: {body}"
        );
    }
    for (method, path) in [
        (Method::GET, "/api/v1/connections/conn_missing"),
        (Method::POST, "/api/v1/connections/conn_missing/refresh"),
        (Method::POST, "/api/v1/connections/conn_missing/reconnect"),
        (Method::DELETE, "/api/v1/connections/conn_missing"),
    ] {
        let (status, body) = call(&node, method, path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["code"], "not_found");
    }
    let anonymous = node
        .client
        .post(node.url("/api/v1/connections"))
        .json(&json!({"provider": "google"}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Without public_url, no provider can send the browser back.
    let bare = spawn_with(|config| {
        configure(config, &[&google]);
        config.public_url = None;
    })
    .await;
    let (status, body) = call(
        &bare,
        Method::POST,
        "/api/v1/connections",
        Some(json!({"provider": "google"})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "provider_not_configured");
    assert!(body["message"].as_str().unwrap().contains("public_url"));
}

// --- renewal --------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn google_tokens_are_renewed_before_they_expire_until_the_grant_is_revoked() {
    let google = FakeProvider::start(Provider::Google).await;
    let node = node_for(&[&google]).await;
    let connected = connect(&node, &google).await;
    let id = connected["id"].as_str().unwrap().to_string();
    let first_expiry = connected["access_token_expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    let obtained = connected["refreshed_at"].as_str().unwrap().to_string();

    // Fifty-one minutes on, the hour-long token is within the ten minutes' margin.
    tokio::time::advance(Duration::from_secs(51 * 60)).await;
    let mut renewed = Value::Null;
    wait_until("the renewal", async || {
        renewed = connection(&node, &id).await;
        renewed["version"].as_i64() > connected["version"].as_i64()
    })
    .await;
    assert_eq!(renewed["status"], "active");
    assert!(renewed["refreshed_at"].as_str().unwrap() > obtained.as_str());
    assert!(renewed["access_token_expires_at"].as_str().unwrap() > first_expiry.as_str());
    let refreshes = google
        .requests()
        .iter()
        .filter(|r| String::from_utf8_lossy(&r.body).contains("grant_type=refresh_token"))
        .count();
    assert_eq!(refreshes, 1);
    let access = google.issued();
    assert_eq!(
        access
            .iter()
            .filter(|t| t.kind == TokenKind::Access)
            .count(),
        2
    );

    // The user revokes the grant at Google: the next renewal is refused for good.
    let refresh = access
        .iter()
        .find(|t| t.kind == TokenKind::Refresh)
        .unwrap()
        .value
        .clone();
    assert!(google.expire_token(&refresh));
    tokio::time::advance(Duration::from_secs(51 * 60)).await;
    let mut marked = Value::Null;
    wait_until("needs_reauthorization", async || {
        marked = connection(&node, &id).await;
        marked["status"] == "needs_reauthorization"
    })
    .await;
    let message = marked["status_message"].as_str().unwrap();
    assert!(message.contains("invalid_grant"), "{message}");
    no_token_in(&google, message);

    // Asked by hand, the renewal says the same.
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "token_revoked");
}

#[tokio::test]
async fn refreshing_by_hand_meta_re_exchanges_and_tiktok_cannot() {
    let meta = FakeProvider::start(Provider::Meta).await;
    let tiktok = FakeProvider::start(Provider::TikTok).await;
    let node = node_for(&[&meta, &tiktok]).await;
    let meta_connection = connect(&node, &meta).await;
    let id = meta_connection["id"].as_str().unwrap();
    let before = latest_access(&meta);
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["version"],
        meta_connection["version"].as_i64().unwrap() + 1
    );
    assert_ne!(latest_access(&meta), before);
    let exchange = meta.requests().pop().unwrap();
    assert!(
        exchange
            .query
            .unwrap()
            .contains("grant_type=fb_exchange_token")
    );

    let tiktok_connection = connect(&node, &tiktok).await;
    let id = tiktok_connection["id"].as_str().unwrap();
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "refresh_unsupported");
    assert_eq!(connection(&node, id).await["status"], "active");
}

// --- destinations using connections ---------------------------------------------------------

/// An audience membership identify (`vip` entered) for the platform audience `audience`.
fn membership(user: &str, audience: &str) -> Value {
    json!({
        "type": "identify",
        "userId": user,
        "messageId": format!("m-{user}"),
        "traits": {"vip": true, "email": format!("{user}@example.com")},
        "context": {"personas": {"computation_class": "audience", "computation_key": "vip",
                                 "external_audience_id": audience}},
    })
}

/// A destination of `kind` on `source` delivering to `tool`, naming `connection` instead of
/// an access token (and, for Meta, of the app secret: the connection's `appsecret_proof`
/// must do).
async fn audience_destination(
    node: &TestNode,
    kind: &str,
    tool: &FakeTool,
    source: &TestSource,
    connection: &str,
) -> String {
    let mut settings: Map<String, Value> = tool.settings();
    settings.remove("access_token");
    settings.remove("app_secret");
    settings.insert("connection_id".into(), json!(connection));
    let (status, created) = call(
        node,
        Method::POST,
        "/api/v1/destinations",
        Some(json!({
            "name": format!("{kind} audiences"),
            "type": kind,
            "settings": settings,
            "sources": [source.id],
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["settings"]["connection_id"], connection);
    assert!(
        created["settings"].get("access_token").is_none(),
        "{created}"
    );
    created["id"].as_str().unwrap().to_string()
}

/// Sends `user`'s entry into `audience` and waits until the tool's audience holds `members`.
async fn enter(
    node: &TestNode,
    source: &TestSource,
    tool: &FakeTool,
    user: &str,
    audience: &str,
    members: usize,
) {
    let (status, _) = node
        .track(
            "/v1/identify",
            &source.write_key,
            &membership(user, audience),
        )
        .await;
    assert_eq!(status, 200);
    wait_until(&format!("{user} in the audience"), async || {
        tool.members(audience).len() == members
    })
    .await;
}

async fn delivery(node: &TestNode, destination: &str) -> Value {
    call(
        node,
        Method::GET,
        &format!("/api/v1/destinations/{destination}/delivery"),
        None,
    )
    .await
    .1
}

/// The node's log lines, when this test could install the process's subscriber (under
/// nextest each test is a process of its own; elsewhere another test may have been first).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install() -> Option<Captured> {
        let captured = Captured::default();
        let writer = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_writer(move || writer.clone())
            .try_init()
            .ok()
            .map(|()| captured)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The audience API fake takes exactly the tokens the OAuth fake still honours.
fn honour(tool: &FakeTool, oauth: &Arc<FakeProvider>) {
    let oauth = Arc::clone(oauth);
    tool.set_token_check(Arc::new(move |token: &str| oauth.is_valid(token)));
}

/// A node with `provider`'s OAuth fake connected, and a `kind` audience destination on source
/// `crm` naming the connection and delivering to `tool`, which takes only the tokens the
/// OAuth fake still honours.
struct Connected {
    oauth: Arc<FakeProvider>,
    tool: FakeTool,
    node: TestNode,
    source: TestSource,
    id: String,
    destination: String,
    /// The connection as connecting answered it.
    connection: Value,
}

async fn connected_destination(provider: Provider, tool: Tool, kind: &str) -> Connected {
    let oauth = Arc::new(FakeProvider::start(provider).await);
    let tool = FakeTool::start(tool).await;
    honour(&tool, &oauth);
    let node = node_for(&[&oauth]).await;
    let source = node.create_source("crm").await;
    let connected = connect(&node, &oauth).await;
    let id = connected["id"].as_str().unwrap().to_string();
    let destination = audience_destination(&node, kind, &tool, &source, &id).await;
    Connected {
        oauth,
        tool,
        node,
        source,
        id,
        destination,
        connection: connected,
    }
}

#[tokio::test]
async fn a_meta_destination_is_paused_when_its_token_dies_and_resumes_once_reconnected() {
    let logs = Captured::install();
    let Connected {
        oauth,
        tool,
        node,
        source,
        id,
        destination,
        ..
    } = connected_destination(Provider::Meta, Tool::MetaAudiences, "meta_audiences").await;
    const AUDIENCE: &str = "23850000000001";

    enter(&node, &source, &tool, "ann", AUDIENCE, 1).await;
    let token = latest_access(&oauth);
    assert_eq!(sent_with(&tool, &token), tool.requests().len());

    // The long-lived token expires at Meta: the audience API answers 190, the destination
    // pauses, renewing is refused too, and the connection needs reauthorization.
    assert!(oauth.expire_token(&token));
    let (status, _) = node
        .track(
            "/v1/identify",
            &source.write_key,
            &membership("bob", AUDIENCE),
        )
        .await;
    assert_eq!(status, 200);
    let mut shown = Value::Null;
    wait_until("needs_reauthorization", async || {
        shown = connection(&node, &id).await;
        shown["status"] == "needs_reauthorization"
    })
    .await;
    let message = shown["status_message"].as_str().unwrap();
    assert!(message.contains("190"), "{message}");
    no_token_in(&oauth, message);
    assert_eq!(shown["destinations"], json!([destination]));

    // The destination says why it waits; nothing was dead-lettered or dropped.
    let mut status = Value::Null;
    wait_until("the destination held", async || {
        status = delivery(&node, &destination).await;
        status["running"] == false && status["paused"] == true
    })
    .await;
    assert!(
        status["paused_reason"]
            .as_str()
            .unwrap()
            .contains("needs reauthorization"),
        "{status}"
    );
    assert_eq!(status["connection"]["status"], "needs_reauthorization");
    // A held destination holds no token.
    assert_eq!(
        status["connection"]["version_in_use"],
        Value::Null,
        "{status}"
    );
    assert_eq!(status["dead_letters"], 0);
    assert_eq!(tool.members(AUDIENCE).len(), 1);
    let refused = sent_with(&tool, &token);
    assert!(refused >= 2, "ann's delivery and bob's refusal");

    // Connecting again gives a new token: the destination starts over from its cursor.
    let (code, started) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/reconnect"),
        None,
    )
    .await;
    assert_eq!(code, 201, "{started}");
    assert_eq!(started["connection_id"], id.as_str());
    let location = consent(started["authorization_url"].as_str().unwrap()).await;
    let (code, answer) = callback(&node, &location).await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["connection"]["status"], "active");
    assert_eq!(answer["connection"]["status_message"], Value::Null);
    wait_until("bob in the audience", async || {
        tool.members(AUDIENCE).len() == 2
    })
    .await;
    let status = delivery(&node, &destination).await;
    assert_eq!(status["paused"], false, "{status}");
    assert_eq!(status["dead_letters"], 0);
    // Bob went out with the new connection's token: the destination holds its version.
    assert_eq!(
        status["connection"]["version_in_use"], status["connection"]["version"],
        "{status}"
    );
    let fresh = latest_access(&oauth);
    assert_ne!(fresh, token);
    assert_eq!(
        sent_with(&tool, &token),
        refused,
        "nothing more was sent with the dead token"
    );
    assert!(sent_with(&tool, &fresh) >= 1);

    // The warnings say what happened, never with a token or the app's secret.
    if let Some(logs) = logs {
        let text = logs.text();
        assert!(text.contains("it needs reauthorization"), "{text}");
        assert!(text.contains("delivery paused"), "{text}");
        no_token_in(&oauth, &text);
        assert!(!text.contains(META_APP_SECRET));
    }
}

#[tokio::test]
async fn a_meta_connection_proves_its_app_for_each_token_it_holds() {
    let Connected {
        oauth,
        tool,
        node,
        source,
        id,
        destination,
        ..
    } = connected_destination(Provider::Meta, Tool::MetaAudiences, "meta_audiences").await;
    const AUDIENCE: &str = "23850000000002";
    let proofs = |tool: &FakeTool| -> Vec<String> {
        tool.requests()
            .iter()
            .filter_map(|r| r.query.clone())
            .collect()
    };

    // The fake refuses any call without the proof of its token made with the app's secret;
    // the destination's settings hold neither the secret nor a proof.
    enter(&node, &source, &tool, "ann", AUDIENCE, 1).await;
    let first = latest_access(&oauth);
    let proof = sluice_destinations::meta_audiences::appsecret_proof(META_APP_SECRET, &first);
    assert!(
        proofs(&tool)
            .iter()
            .all(|query| query.contains(&format!("appsecret_proof={proof}"))),
        "{:?}",
        proofs(&tool)
    );

    // A renewed token gets its own proof.
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let second = latest_access(&oauth);
    assert_ne!(second, first);
    // The renewal answers before the destination restarts with the new token (the old one
    // stays valid at Meta); the delivery status tells when it holds the new one.
    let renewed_version = body["version"].as_i64().unwrap();
    wait_until("the destination holds the renewed token", async || {
        let status = delivery(&node, &destination).await;
        status["connection"]["version_in_use"].as_i64() == Some(renewed_version)
    })
    .await;
    enter(&node, &source, &tool, "bob", AUDIENCE, 2).await;
    assert!(sent_with(&tool, &second) >= 1);
    let renewed = sluice_destinations::meta_audiences::appsecret_proof(META_APP_SECRET, &second);
    let sent = proofs(&tool);
    assert!(
        sent.last()
            .is_some_and(|query| query.contains(&format!("appsecret_proof={renewed}"))),
        "{sent:?}"
    );
    let status = delivery(&node, &destination).await;
    assert_eq!(status["dead_letters"], 0, "{status}");
    assert_eq!(status["paused"], false, "{status}");

    // Nothing Sluice answers or keeps in clear holds the proof.
    let (_, shown) = call(
        &node,
        Method::GET,
        &format!("/api/v1/destinations/{destination}"),
        None,
    )
    .await;
    assert!(!shown.to_string().contains(&renewed), "{shown}");
    assert_eq!(
        byte_scan(node.dir.path(), &[&renewed, &proof]),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_google_destination_refused_an_expired_token_renews_it_and_goes_on() {
    let Connected {
        oauth,
        tool,
        node,
        source,
        id,
        destination,
        connection: connected,
    } = connected_destination(Provider::Google, Tool::GoogleAudiences, "google_audiences").await;
    const LIST: &str = "5";

    node.track("/v1/identify", &source.write_key, &membership("ann", LIST))
        .await;
    wait_until("ann in the list", async || tool.members(LIST).len() == 1).await;

    // The access token expires early at Google: a 401, one renewal with the refresh token,
    // and the destination goes on with the new token.
    let old = latest_access(&oauth);
    assert!(oauth.expire_token(&old));
    node.track("/v1/identify", &source.write_key, &membership("bob", LIST))
        .await;
    wait_until("bob in the list", async || tool.members(LIST).len() == 2).await;
    // Ann's delivery and bob's refusal went with the old token; bob's delivery with the new.
    assert!(sent_with(&tool, &old) >= 2);
    let new = latest_access(&oauth);
    assert_ne!(new, old);
    assert!(sent_with(&tool, &new) >= 1);
    let shown = connection(&node, &id).await;
    assert_eq!(shown["status"], "active");
    assert!(shown["version"].as_i64() > connected["version"].as_i64());
    assert!(shown["refreshed_at"].is_string());
    let status = delivery(&node, &destination).await;
    assert_eq!(status["dead_letters"], 0, "{status}");
    assert_eq!(status["connection"]["status"], "active");
    assert_eq!(status["connection"]["version"], shown["version"]);
}

#[tokio::test]
async fn destinations_may_only_name_a_usable_connection_of_their_provider() {
    let google = FakeProvider::start(Provider::Google).await;
    let meta = FakeProvider::start(Provider::Meta).await;
    let tool = FakeTool::start(Tool::MetaAudiences).await;
    let node = node_for(&[&google, &meta]).await;
    let source = node.create_source("crm").await;
    let google_id = connect(&node, &google).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let meta_id = connect(&node, &meta).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    let mut base: Map<String, Value> = tool.settings();
    base.remove("access_token");
    let attempt = async |kind: &str, change: Value| {
        let mut settings = base.clone();
        for (key, value) in change.as_object().unwrap() {
            settings.insert(key.clone(), value.clone());
        }
        call(
            &node,
            Method::POST,
            "/api/v1/destinations",
            Some(json!({"name": format!("d-{}", settings.len()), "type": kind, "settings": settings, "sources": [source.id]})),
        )
        .await
    };
    for (kind, change, says) in [
        (
            "meta_audiences",
            json!({"connection_id": google_id}),
            "is a google connection",
        ),
        (
            "meta_audiences",
            json!({"connection_id": "conn_nope"}),
            "does not exist",
        ),
        (
            "meta_audiences",
            json!({"connection_id": meta_id, "access_token": "EAAx"}),
            "give one or the other",
        ),
        (
            "meta_audiences",
            json!({"connection_id": 7}),
            "must be a string",
        ),
        (
            "webhook",
            json!({"connection_id": meta_id, "url": "https://example.com"}),
            "only meta_audiences",
        ),
    ] {
        let (status, body) = attempt(kind, change.clone()).await;
        assert_eq!(status, 400, "{change}: {body}");
        assert_eq!(body["code"], "invalid_settings");
        assert_eq!(body["field"], "settings.connection_id");
        assert!(body["message"].as_str().unwrap().contains(says), "{body}");
    }

    // A connection in need of reauthorization cannot be chosen, in a create or an update.
    let (status, created) = attempt("meta_audiences", json!({"connection_id": meta_id})).await;
    assert_eq!(status, 201, "{created}");
    let destination = created["id"].as_str().unwrap();
    let revoked = latest_access(&meta);
    assert!(meta.expire_token(&revoked));
    let (status, _) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{meta_id}/refresh"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (status, body) = attempt("meta_audiences", json!({"connection_id": meta_id})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("needs reauthorization"),
        "{body}"
    );
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("/api/v1/destinations/{destination}"),
        Some(json!({"settings": {"consent_category": "ads"}})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["field"], "settings.connection_id");
    // Moving it to a plain token is fine.
    let (status, body) = call(
        &node,
        Method::PATCH,
        &format!("/api/v1/destinations/{destination}"),
        Some(json!({"settings": {"connection_id": null, "access_token": "EAAplain0123456789"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["settings"]["access_token"], "[redacted]");
    assert!(body["settings"].get("connection_id").is_none());
}

// --- disconnecting --------------------------------------------------------------------------

#[tokio::test]
async fn disconnecting_revokes_disables_the_destinations_and_purges_their_data() {
    let oauth = Arc::new(FakeProvider::start(Provider::Meta).await);
    let tool = FakeTool::start(Tool::MetaAudiences).await;
    honour(&tool, &oauth);
    let node = node_for(&[&oauth]).await;
    let source = node.create_source("crm").await;
    let id = connect(&node, &oauth).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let destination = audience_destination(&node, "meta_audiences", &tool, &source, &id).await;
    let hook = FakeTool::start(Tool::Webhook).await;
    let (status, other) = call(
        &node,
        Method::POST,
        "/api/v1/destinations",
        Some(json!({"name": "hook", "type": "webhook", "settings": hook.settings(), "sources": [source.id]})),
    )
    .await;
    assert_eq!(status, 201, "{other}");
    let other = other["id"].as_str().unwrap().to_string();

    // One member delivered, one membership without an identifier dead-lettered.
    node.track(
        "/v1/identify",
        &source.write_key,
        &membership("ann", "23850000000001"),
    )
    .await;
    let mut nameless = membership("nobody", "23850000000001");
    nameless["traits"] = json!({"vip": true});
    nameless.as_object_mut().unwrap().remove("userId");
    nameless["anonymousId"] = json!("anon-nobody");
    node.track("/v1/identify", &source.write_key, &nameless)
        .await;
    wait_until("a delivery and a dead letter", async || {
        let status = delivery(&node, &destination).await;
        status["dead_letters"] == 1 && status["delivered"] == 1
    })
    .await;
    let token = latest_access(&oauth);

    // An audience synced through the connection: its sync and generated events go too.
    let (status, created) = call(
        &node,
        Method::POST,
        "/api/v1/audiences",
        Some(json!({"key": "vips", "name": "VIPs",
            "condition": {"trait": {"key": "vip", "op": "=", "value": true}}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let (status, sync) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/vips/syncs",
        Some(json!({"destinationId": destination, "externalAudienceId": "23850000000002"})),
    )
    .await;
    assert_eq!(status, 201, "{sync}");
    wait_until("the sync's first pass", async || {
        let (_, listed) = call(&node, Method::GET, "/api/v1/audiences/vips/syncs", None).await;
        listed["syncs"][0]["status"] == "live"
    })
    .await;

    let (status, gone) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/connections/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["status"], "disconnected");
    assert_eq!(gone["status_message"], "disconnected by an admin");
    assert_eq!(gone["revocation"], "revoked");
    assert_eq!(gone["disabled_destinations"], json!([destination]));
    assert_eq!(gone["purged"]["destinations"], 1);
    assert!(gone["purged"]["cursors"].as_u64().unwrap() >= 1, "{gone}");
    assert_eq!(gone["purged"]["syncs"], 1, "{gone}");
    assert!(
        gone["purged"]["syncEvents"].as_u64().unwrap() >= 1,
        "{gone}"
    );
    let (_, listed) = call(&node, Method::GET, "/api/v1/audiences/vips/syncs", None).await;
    assert_eq!(listed["syncs"], json!([]));
    no_token_in(&oauth, &gone.to_string());

    // The fake saw the revocation, and the grant is dead there.
    let revocation = oauth.requests().pop().unwrap();
    assert_eq!(
        (revocation.method.as_str(), revocation.path.as_str()),
        ("DELETE", "/v25.0/me/permissions")
    );
    assert!(!oauth.is_valid(&token));

    // The destination is disabled and holds nothing; the other one runs on.
    let (_, shown) = call(
        &node,
        Method::GET,
        &format!("/api/v1/destinations/{destination}"),
        None,
    )
    .await;
    assert_eq!(shown["enabled"], false);
    let status = delivery(&node, &destination).await;
    assert_eq!(
        (status["running"].clone(), status["dead_letters"].clone()),
        (json!(false), json!(0))
    );
    let (_, hook_shown) = call(
        &node,
        Method::GET,
        &format!("/api/v1/destinations/{other}"),
        None,
    )
    .await;
    assert_eq!(hook_shown["enabled"], true);
    wait_until("the webhook running", async || {
        delivery(&node, &other).await["running"] == true
    })
    .await;

    // Nothing to renew or reuse; disconnecting again changes nothing.
    let (status, body) = call(
        &node,
        Method::POST,
        &format!("/api/v1/connections/{id}/refresh"),
        None,
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("connection_disconnected"))
    );
    let (status, again) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/connections/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(again["version"], gone["version"]);
    let leaks = byte_scan(node.dir.path(), &[&token, META_APP_SECRET]);
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[tokio::test]
async fn a_failed_revocation_still_disconnects() {
    let google = FakeProvider::start(Provider::Google).await;
    let tiktok = FakeProvider::start(Provider::TikTok).await;
    let node = node_for(&[&google, &tiktok]).await;
    let google_id = connect(&node, &google).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let tiktok_id = connect(&node, &tiktok).await["id"]
        .as_str()
        .unwrap()
        .to_string();

    google.push_answer(503, &[], "upstream unavailable");
    let (status, gone) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/connections/{google_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{gone}");
    assert_eq!(gone["status"], "disconnected");
    let revocation = gone["revocation"].as_str().unwrap();
    assert!(
        revocation.starts_with("failed:") && revocation.contains("503"),
        "{revocation}"
    );

    // A token already revoked at the provider is said so.
    let token = latest_access(&tiktok);
    let revoke = sluice_oauth::revoke_request(
        &tiktok.endpoints(),
        &tiktok.client(),
        &sluice_oauth::Tokens {
            access: sluice_oauth::Secret::new(token.as_str()),
            refresh: None,
            expires_at: None,
            scopes: vec![],
            advertiser_ids: vec![],
        },
    );
    let response = reqwest::Client::new()
        .post(&revoke.url)
        .header("content-type", "application/json")
        .body(revoke.body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (status, gone) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/connections/{tiktok_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{gone}");
    assert!(
        gone["revocation"]
            .as_str()
            .unwrap()
            .starts_with("already revoked"),
        "{gone}"
    );

    let mut secrets = issued(&google);
    secrets.extend(issued(&tiktok));
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert!(byte_scan(node.dir.path(), &secrets).is_empty());
}
