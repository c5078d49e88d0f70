#![allow(clippy::unwrap_used)]

//! Identity resolution through a running node: events in through the tracking API, profiles
//! out through the Profile API and the admin API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestNode, TestSource, restart, spawn};

pub(crate) struct Access {
    space: String,
    token: String,
}

pub(crate) async fn profile_token(node: &TestNode) -> Access {
    let response = node
        .admin(reqwest::Method::POST, "/api/v1/identity/tokens")
        .json(&json!({"name": "tests"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    Access {
        space: body["space_id"].as_str().unwrap().to_string(),
        token: body["token"].as_str().unwrap().to_string(),
    }
}

/// GET a Profile API path; returns status, body and whether a Request-Id came back.
pub(crate) async fn profile_get(node: &TestNode, access: &Access, path: &str) -> (u16, Value) {
    let url = node.url(&format!("/v1/spaces/{}/collections/{path}", access.space));
    let response = node
        .client
        .get(url)
        .basic_auth(&access.token, Some(""))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers().contains_key("request-id"),
        "{path}: no Request-Id"
    );
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn journey(prefix: &str) -> Vec<Value> {
    vec![
        json!({"type": "track", "event": "Product Viewed", "anonymousId": format!("{prefix}-laptop"),
               "messageId": format!("{prefix}-1"), "timestamp": "2026-11-01T10:00:00.000Z",
               "properties": {"sku": "A-1"}}),
        json!({"type": "track", "event": "Product Viewed", "anonymousId": format!("{prefix}-phone"),
               "messageId": format!("{prefix}-2"), "timestamp": "2026-11-01T10:01:00.000Z"}),
        json!({"type": "identify", "userId": format!("{prefix}-u1"), "anonymousId": format!("{prefix}-laptop"),
               "messageId": format!("{prefix}-3"), "timestamp": "2026-11-01T10:02:00.000Z",
               "traits": {"email": format!("{prefix}@Example.com"), "name": "Jane", "plan": "free"}}),
        json!({"type": "identify", "anonymousId": format!("{prefix}-phone"),
               "messageId": format!("{prefix}-4"), "timestamp": "2026-11-01T10:03:00.000Z",
               "traits": {"email": format!("{prefix}@example.com"), "plan": "pro"}}),
        json!({"type": "track", "event": "Order Completed", "anonymousId": format!("{prefix}-phone"),
               "messageId": format!("{prefix}-5"), "timestamp": "2026-11-01T10:04:00.000Z",
               "properties": {"total": 30}}),
        json!({"type": "group", "userId": format!("{prefix}-u1"), "groupId": format!("{prefix}-acme"),
               "messageId": format!("{prefix}-6"), "timestamp": "2026-11-01T10:05:00.000Z",
               "traits": {"name": "Acme"}}),
    ]
}

async fn send(node: &TestNode, source: &TestSource, batch: &[Value]) {
    let (status, body) = node
        .track("/v1/batch", &source.write_key, &json!({"batch": batch}))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// Waits until the profile holding `lookup` has `ids` identifiers.
async fn wait_for_ids(node: &TestNode, access: &Access, lookup: &str, ids: usize) -> Value {
    for _ in 0..200 {
        let (status, body) = profile_get(
            node,
            access,
            &format!("users/profiles/{lookup}/external_ids?limit=100"),
        )
        .await;
        if status == 200 && body["data"].as_array().map(Vec::len) == Some(ids) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the profile of {lookup} never got {ids} identifiers");
}

#[tokio::test]
async fn the_profile_api_serves_a_merged_journey() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let access = profile_token(&node).await;
    send(&node, &source, &journey("j")).await;
    let ids = wait_for_ids(&node, &access, "user_id:j-u1", 4).await;
    let types: Vec<&str> = ids["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // Oldest first; the identify added user_id and email together (then by type).
    assert_eq!(types, ["anonymous_id", "anonymous_id", "email", "user_id"]);
    assert_eq!(ids["data"][0]["source_id"], source.id.as_str());
    assert_eq!(ids["data"][0]["encoding"], "none");
    assert_eq!(
        ids["data"][2]["id"], "j@example.com",
        "emails are kept lowercased"
    );

    // Every identifier finds the same profile; email lookups ignore case; + must be %2B-escaped.
    let (_, by_phone) = profile_get(
        &node,
        &access,
        "users/profiles/anonymous_id:j-phone/metadata",
    )
    .await;
    let (status, by_email) = profile_get(
        &node,
        &access,
        "users/profiles/email:J@EXAMPLE.com/metadata",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        by_phone["metadata"]["segment_id"],
        by_email["metadata"]["segment_id"]
    );
    assert_eq!(by_phone["metadata"]["first_message_id"], "j-1");
    assert!(
        by_phone["metadata"]["last_message_id"]
            .as_str()
            .unwrap()
            .starts_with("j-")
    );

    let (_, traits) = profile_get(&node, &access, "users/profiles/user_id:j-u1/traits").await;
    // The latest identify wins (plan, and the email as it sent it).
    assert_eq!(
        traits["traits"],
        json!({"email": "j@example.com", "name": "Jane", "plan": "pro"})
    );
    assert_eq!(traits["cursor"]["has_more"], false);
    let (_, page) = profile_get(&node, &access, "users/profiles/user_id:j-u1/traits?limit=2").await;
    assert_eq!(page["traits"].as_object().unwrap().len(), 2);
    assert_eq!(page["cursor"]["has_more"], true);
    let next = page["cursor"]["next"].as_str().unwrap().to_string();
    let (_, rest) = profile_get(
        &node,
        &access,
        &format!("users/profiles/user_id:j-u1/traits?limit=2&next={next}"),
    )
    .await;
    assert_eq!(rest["traits"], json!({"plan": "pro"}));
    let (_, verbose) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:j-u1/traits?include=name&verbose=true",
    )
    .await;
    assert_eq!(verbose["traits"]["name"]["value"], "Jane");
    assert_eq!(verbose["traits"]["name"]["source_id"], source.id.as_str());
    assert!(verbose["traits"]["name"]["updated_at"].is_string());

    let (_, events) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:j-u1/events?sort=asc&limit=100",
    )
    .await;
    let data = events["data"].as_array().unwrap();
    let messages: Vec<&str> = data
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["j-1", "j-2", "j-3", "j-4", "j-5", "j-6"]);
    assert_eq!(
        data[0]["properties"]["sku"], "A-1",
        "bodies come from the log"
    );
    assert_eq!(data[0]["event"], "Product Viewed");
    assert_eq!(data[0]["timestamp"], "2026-11-01T10:00:00.000Z");
    assert_eq!(data[2]["traits"]["name"], "Jane");
    let (_, newest) =
        profile_get(&node, &access, "users/profiles/user_id:j-u1/events?limit=2").await;
    let newest_ids: Vec<&str> = newest["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(newest_ids, ["j-6", "j-5"]);
    let next = newest["cursor"]["next"].as_str().unwrap().to_string();
    let (_, older) = profile_get(
        &node,
        &access,
        &format!("users/profiles/user_id:j-u1/events?limit=2&next={next}"),
    )
    .await;
    assert_eq!(older["data"][0]["message_id"], "j-4");
    let (_, filtered) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:j-u1/events?include=Order%20Completed&limit=100",
    )
    .await;
    assert_eq!(filtered["data"].as_array().unwrap().len(), 1);
    let (_, windowed) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:j-u1/events?start=2026-11-01T10:01:00Z&end=2026-11-01T10:03:00Z&limit=100",
    )
    .await;
    assert_eq!(windowed["data"].as_array().unwrap().len(), 2);

    let (_, links) = profile_get(&node, &access, "users/profiles/user_id:j-u1/links").await;
    assert_eq!(links["data"][0]["to_collection"], "accounts");
    assert_eq!(links["data"][0]["external_ids"][0]["id"], "j-acme");
    let (status, account) =
        profile_get(&node, &access, "accounts/profiles/group_id:j-acme/traits").await;
    assert_eq!(status, 200);
    assert_eq!(account["traits"]["name"], "Acme");
    let (status, _) = profile_get(&node, &access, "users/profiles/group_id:j-acme/traits").await;
    assert_eq!(status, 404, "accounts are not users");
}

#[tokio::test]
async fn the_profile_api_refuses_clearly() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let access = profile_token(&node).await;
    send(&node, &source, &journey("r")).await;
    wait_for_ids(&node, &access, "user_id:r-u1", 4).await;

    let url = node.url(&format!(
        "/v1/spaces/{}/collections/users/profiles/user_id:r-u1/traits",
        access.space
    ));
    let response = node.client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "authentication_error");
    let response = node
        .client
        .get(&url)
        .basic_auth("slp_not-a-real-token-at-all", Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    // The admin token is not a Profile API token.
    let response = node
        .client
        .get(&url)
        .basic_auth(crate::helpers::ADMIN_TOKEN, Some(""))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);

    let other_space = Access {
        space: "ws_someone_else".into(),
        token: access.token.clone(),
    };
    let (status, body) =
        profile_get(&node, &other_space, "users/profiles/user_id:r-u1/traits").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body) = profile_get(&node, &access, "users/profiles/user_id:nobody/traits").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert_eq!(body["error"]["message"], "profile was not found");
    let (status, body) = profile_get(&node, &access, "users/profiles/no-colon/traits").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("validation_error"))
    );
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("verbose=yes", "verbose"),
        ("class=x", "class"),
    ] {
        let (status, body) = profile_get(
            &node,
            &access,
            &format!("users/profiles/user_id:r-u1/traits?{query}"),
        )
        .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_request_error")),
            "{query}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with(field),
            "{query}: {body}"
        );
    }
    for query in ["sort=up", "start=yesterday", "next=abc", "limit=101"] {
        let (status, _) = profile_get(
            &node,
            &access,
            &format!("users/profiles/user_id:r-u1/events?{query}"),
        )
        .await;
        assert_eq!(status, 400, "{query}");
    }
    let (status, _) = profile_get(&node, &access, "teams/profiles/user_id:r-u1/traits").await;
    assert_eq!(status, 404);

    // A revoked token stops working.
    let tokens: Value = node
        .admin(reqwest::Method::GET, "/api/v1/identity/tokens")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = tokens["tokens"][0]["id"].as_str().unwrap().to_string();
    let response = node
        .admin(
            reqwest::Method::DELETE,
            &format!("/api/v1/identity/tokens/{id}"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let (status, _) = profile_get(&node, &access, "users/profiles/user_id:r-u1/traits").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn settings_graph_and_unmerge_through_the_admin_api() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let access = profile_token(&node).await;

    let response = node
        .admin(reqwest::Method::GET, "/api/v1/identity/settings")
        .send()
        .await
        .unwrap();
    let mut settings: Value = response.json().await.unwrap();
    assert_eq!(
        settings["identifiers"][0],
        json!({"type": "user_id", "limit": 1, "window": "ever"})
    );
    let mut bad = settings.clone();
    bad["identifiers"][1]["blocked_patterns"] = json!(["(unclosed"]);
    let response = node
        .admin(reqwest::Method::PUT, "/api/v1/identity/settings")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "invalid_identity_settings");
    assert_eq!(body["field"], "identifiers[1].blocked_patterns[0]");
    let response = node
        .admin(reqwest::Method::PUT, "/api/v1/identity/settings")
        .json(&json!({"identifiers": [{"type": "user_id", "limit": 1, "window": "daily"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // Block the placeholder user id "anonymous".
    settings["identifiers"][0]["blocked_values"] = json!(["anonymous"]);
    let response = node
        .admin(reqwest::Method::PUT, "/api/v1/identity/settings")
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let mut events = journey("g");
    events.push(
        json!({"type": "track", "event": "x", "userId": "anonymous", "anonymousId": "g-kiosk",
                       "messageId": "g-7", "timestamp": "2026-11-01T11:00:00.000Z"}),
    );
    send(&node, &source, &events).await;
    wait_for_ids(&node, &access, "user_id:g-u1", 4).await;
    for _ in 0..100 {
        if profile_get(
            &node,
            &access,
            "users/profiles/anonymous_id:g-kiosk/metadata",
        )
        .await
        .0 == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) =
        profile_get(&node, &access, "users/profiles/user_id:anonymous/metadata").await;
    assert_eq!(status, 404, "a blocked value is not an identifier");

    let graph: Value = node
        .admin(reqwest::Method::GET, "/api/v1/profiles/user_id:g-u1/graph")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(graph["merges"].as_array().unwrap().len(), 1);
    assert_eq!(graph["merges"][0]["message_id"], "g-4");
    assert_eq!(
        graph["merges"][0]["bridge"],
        json!([{"type": "anonymous_id", "id": "g-phone"}])
    );
    let text = node
        .admin(
            reqwest::Method::GET,
            "/api/v1/profiles/email:g@example.com/graph?format=text",
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("merged into") && text.contains("by message g-4"),
        "{text}"
    );
    assert!(text.contains("anonymous_id:g-phone"), "{text}");

    let merge = graph["merges"][0]["id"].as_i64().unwrap();
    let response = node
        .admin(
            reqwest::Method::POST,
            "/api/v1/profiles/user_id:g-u1/unmerge",
        )
        .json(&json!({"merge": merge}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["profiles"].as_array().unwrap().len(), 2);
    assert_eq!(result["profiles"][1], graph["merges"][0]["absorbed"]);
    let (_, phone) = profile_get(
        &node,
        &access,
        "users/profiles/anonymous_id:g-phone/metadata",
    )
    .await;
    assert_eq!(
        phone["metadata"]["segment_id"],
        graph["merges"][0]["absorbed"]
    );

    let response = node
        .admin(
            reqwest::Method::POST,
            "/api/v1/profiles/user_id:g-u1/unmerge",
        )
        .json(&json!({"identifier": {"type": "email", "id": "nobody@example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = node
        .admin(
            reqwest::Method::POST,
            "/api/v1/profiles/user_id:g-u1/unmerge",
        )
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = node
        .admin(
            reqwest::Method::GET,
            "/api/v1/profiles/user_id:nobody/graph",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn profiles_resume_after_a_restart_without_counting_twice() {
    let node = spawn().await;
    let source = node.create_source("web").await;
    let access = profile_token(&node).await;
    let events = journey("s");
    send(&node, &source, &events[..3]).await;
    wait_for_ids(&node, &access, "user_id:s-u1", 3).await;
    let dir = node.stop().await;
    let node = restart(dir).await;
    // The SDK retries the last request (same message ids) along with the rest.
    send(&node, &source, &events[2..]).await;
    wait_for_ids(&node, &access, "user_id:s-u1", 4).await;
    let (_, history) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:s-u1/events?sort=asc&limit=100",
    )
    .await;
    let messages: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["s-1", "s-2", "s-3", "s-4", "s-5", "s-6"]);
}
