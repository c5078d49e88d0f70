#![allow(clippy::unwrap_used)]

//! Privacy controls through a running node: the PII policy (block and redact at the gate,
//! keyed hashes and overrides per destination), the data inventory, the children policy,
//! retention's API, and what goes when a destination is deleted.

use reqwest::Method;
use serde_json::{Value, json};
use sluice_destinations::testkit::{FakeTool, Tool};

use crate::helpers::{TestNode, TestSource, spawn};
use crate::privacy::{call, message_ids, send, wait_until};

/// A webhook destination on `source` to a fresh fake; returns the fake and the id.
async fn webhook(node: &TestNode, source: &TestSource, name: &str) -> (FakeTool, String) {
    let fake = FakeTool::start(Tool::Webhook).await;
    let (status, body) = call(
        node,
        Method::POST,
        "/api/v1/destinations",
        Some(
            json!({"name": name, "type": "webhook", "settings": fake.settings(),
            "sources": [source.id]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    (fake, body["id"].as_str().unwrap().to_owned())
}

async fn set_settings(node: &TestNode, settings: Value) -> (u16, Value) {
    call(
        node,
        Method::PUT,
        "/api/v1/privacy/settings",
        Some(settings),
    )
    .await
}

fn by_id<'a>(events: &'a [Value], id: &str) -> &'a Value {
    events
        .iter()
        .find(|event| event["messageId"] == id)
        .unwrap_or_else(|| panic!("{id} not among {events:?}"))
}

fn is_keyed_hash(value: &Value) -> bool {
    value
        .as_str()
        .is_some_and(|text| text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[tokio::test]
async fn the_pii_policy_blocks_and_redacts_before_the_log_and_hashes_per_destination() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let (analytics, analytics_id) = webhook(&node, &web, "analytics").await;
    let (warehouse, warehouse_id) = webhook(&node, &web, "warehouse").await;
    let (status, body) = set_settings(
        &node,
        json!({"pii": {
            "classes": {"payment_card": "block", "us_ssn": "redact", "email": "hash"},
            "destinations": {
                warehouse_id.clone(): {"email": "allow"},
                analytics_id.clone(): {"phone": "redact"}
            }
        }}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let answer = send(
        &node,
        &web,
        &[
            json!({"type": "track", "event": "Paid", "userId": "u1", "messageId": "p-card",
                "properties": {"card": "4111 1111 1111 1111", "total": 10}}),
            json!({"type": "identify", "userId": "u1", "messageId": "p-id",
                "traits": {"email": "Jane@Example.com", "ssn": "123-45-6789",
                    "phone": "+1 415 555 0100", "plan": "pro"}}),
            json!({"type": "track", "event": "Viewed", "userId": "u1", "messageId": "p-plain",
                "properties": {"email": "jane@example.com"}}),
        ],
    )
    .await;
    assert_eq!(answer["success"], true, "{answer}");
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"][0]["index"], 0, "{answer}");
    assert_eq!(answer["rejected"][0]["code"], "pii_blocked");
    assert_eq!(answer["rejected"][0]["field"], "properties.card");
    assert!(
        !answer.to_string().contains("4111"),
        "the answer names the field, never the value: {answer}"
    );

    // The log holds the redacted identify and no trace of the blocked event.
    let logged = node.events(&web).await;
    assert_eq!(message_ids(&logged).len(), 2, "{logged:?}");
    let identify = by_id(&logged, "p-id");
    assert_eq!(identify["traits"].get("ssn"), None, "{identify}");
    assert_eq!(identify["traits"]["email"], "Jane@Example.com");
    assert!(!logged.iter().any(|e| e["messageId"] == "p-card"));

    // Analytics gets keyed hashes of emails (the same person hashes the same) and no phone;
    // the warehouse is allowed the email as it was sent.
    wait_until("both destinations to receive both events", async || {
        analytics.accepted().len() == 2 && warehouse.accepted().len() == 2
    })
    .await;
    let sent = analytics.accepted();
    let (identify, plain) = (by_id(&sent, "p-id"), by_id(&sent, "p-plain"));
    assert!(is_keyed_hash(&identify["traits"]["email"]), "{identify}");
    assert_eq!(
        identify["traits"]["email"], plain["properties"]["email"],
        "emails are hashed after lower-casing"
    );
    assert_eq!(identify["traits"].get("phone"), None, "{identify}");
    assert_eq!(identify["traits"]["plan"], "pro");
    let stored = warehouse.accepted();
    let identify = by_id(&stored, "p-id");
    assert_eq!(identify["traits"]["email"], "Jane@Example.com");
    assert_eq!(identify["traits"]["phone"], "+1 415 555 0100");
    assert_eq!(
        identify["traits"].get("ssn"),
        None,
        "redacted before the log"
    );

    // A single call that is blocked is answered 200 (the SDKs must not retry it).
    let (status, answer) = node
        .track(
            "/v1/track",
            &web.write_key,
            &json!({"event": "Paid", "userId": "u1", "messageId": "p-single",
                "properties": {"cc": "5500 0000 0000 0004"}}),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["rejected"][0]["code"], "pii_blocked");

    // The inventory lists every field with its class, never a value.
    wait_until("the inventory to count the events", async || {
        let (_, body) = call(&node, Method::GET, "/api/v1/privacy/inventory", None).await;
        body["data"]["fields"]
            .as_array()
            .is_some_and(|f| f.len() >= 5)
    })
    .await;
    let (status, body) = call(
        &node,
        Method::GET,
        &format!("/api/v1/privacy/inventory?source={}&event=identify", web.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let fields = body["data"]["fields"].as_array().unwrap();
    let class_of = |path: &str| {
        fields
            .iter()
            .find(|field| field["path"] == path)
            .map(|field| field["class"].clone())
    };
    assert_eq!(class_of("traits.email"), Some(json!("email")));
    assert_eq!(class_of("traits.phone"), Some(json!("phone")));
    assert_eq!(class_of("traits.plan"), Some(Value::Null));
    assert_eq!(class_of("traits.ssn"), None, "redacted before the log");
    let email = fields.iter().find(|f| f["path"] == "traits.email").unwrap();
    assert_eq!(email["count"], 1);
    assert_eq!(email["type"], "identify");
    assert!(email["firstSeen"].is_string() && email["lastSeen"].is_string());
    let text = body.to_string();
    for value in ["Jane@Example.com", "415 555", "pro\""] {
        assert!(!text.contains(value), "{value} in {text}");
    }
    let (status, body) = call(
        &node,
        Method::GET,
        "/api/v1/privacy/inventory?class=email&event=Viewed",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["fields"][0]["path"], "properties.email");
    for bad in ["class=shoe_size", "limit=0", "colour=red"] {
        let (status, body) = call(
            &node,
            Method::GET,
            &format!("/api/v1/privacy/inventory?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}

#[tokio::test]
async fn privacy_settings_are_checked_and_name_the_field() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let (_fake, hook) = webhook(&node, &web, "hook").await;
    for (settings, field) in [
        (json!({"retention": {"days": 0}}), "retention.days"),
        (
            json!({"retention": {"sources": {"src_nope": 7}}}),
            "retention.sources.src_nope",
        ),
        (
            json!({"pii": {"destinations": {"dst_nope": {"email": "hash"}}}}),
            "pii.destinations.dst_nope",
        ),
        (
            json!({"pii": {"classes": {"us_ssn": "block"},
                "destinations": {hook.clone(): {"us_ssn": "redact"}}}}),
            &format!("pii.destinations.{hook}.us_ssn"),
        ),
        (
            json!({"children": {"enabled": true, "minimum_age": 40}}),
            "children.minimum_age",
        ),
    ] {
        let (status, body) = set_settings(&node, settings.clone()).await;
        assert_eq!(status, 400, "{settings}: {body}");
        assert_eq!(body["code"], "invalid_privacy_settings");
        assert_eq!(body["field"], field, "{body}");
    }
    for settings in [
        json!({"pii": {"classes": {"shoe_size": "hash"}}}),
        json!({"pii": {"classes": {"email": "scramble"}}}),
        json!({"retention": {"days": "thirty"}}),
    ] {
        let (status, body) = set_settings(&node, settings.clone()).await;
        assert_eq!(status, 400, "{settings}: {body}");
        assert_eq!(body["code"], "invalid_privacy_settings");
    }
    let good = json!({"require_consent": true,
        "pii": {"classes": {"email": "hash"}, "destinations": {hook.clone(): {"email": "allow"}}},
        "retention": {"days": 90, "sources": {web.id.clone(): 30}},
        "children": {"enabled": false, "minimum_age": 13}});
    let (status, body) = set_settings(&node, good.clone()).await;
    assert_eq!(status, 200, "{body}");
    let (_, saved) = call(&node, Method::GET, "/api/v1/privacy/settings", None).await;
    assert_eq!(saved, good);

    // Retention runs now on request; events younger than the period stay.
    send(&node, &web, &[crate::helpers::track_message("r1")]).await;
    let (status, body) = call(&node, Method::POST, "/api/v1/privacy/retention/run", None).await;
    assert_eq!(status, 200, "{body}");
    let line = &body["data"]["sources"][0];
    assert_eq!(line["sourceId"], web.id);
    assert_eq!(line["days"], 30);
    assert_eq!(line["events"], 0);
    assert!(line["cutoff"].is_string());
    assert_eq!(node.events(&web).await.len(), 1);

    // Deleting the destination takes its overrides with it.
    let (status, _) = call(
        &node,
        Method::DELETE,
        &format!("/api/v1/destinations/{hook}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (_, saved) = call(&node, Method::GET, "/api/v1/privacy/settings", None).await;
    assert_eq!(saved["pii"]["destinations"], json!({}), "{saved}");
    assert_eq!(saved["pii"]["classes"]["email"], "hash");
}

async fn profile_exists(node: &TestNode, user: &str) -> bool {
    let (status, _) = call(
        node,
        Method::GET,
        &format!("/api/v1/profiles/user_id:{user}/graph"),
        None,
    )
    .await;
    status == 200
}

#[tokio::test]
async fn the_children_policy_drops_a_childs_events_and_deletes_the_person() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    // Before the policy: a child's data is taken in like anyone's.
    send(
        &node,
        &web,
        &[
            json!({"type": "identify", "userId": "kid-early", "messageId": "k1",
                "traits": {"age": 12, "email": "kid-early@example.org"}}),
            json!({"type": "track", "event": "Played", "userId": "kid-early", "messageId": "k2"}),
            json!({"type": "identify", "userId": "grown-up", "messageId": "g1",
                "traits": {"age": 35}}),
        ],
    )
    .await;
    wait_until("both profiles", async || {
        profile_exists(&node, "kid-early").await && profile_exists(&node, "grown-up").await
    })
    .await;

    // Turning the policy on finds the child among the profiles and deletes them.
    let (status, body) = set_settings(&node, json!({"children": {"enabled": true}})).await;
    assert_eq!(status, 200, "{body}");
    wait_until("the early child to be deleted", async || {
        !profile_exists(&node, "kid-early").await
    })
    .await;
    wait_until("the early child's events to leave the log", async || {
        let logged = node.events(&web).await;
        message_ids(&logged) == vec!["g1".to_owned()]
    })
    .await;

    // From now on a child's identify is dropped at the gate (answered 200), the person is
    // suppressed, and their later events are never written.
    let answer = send(
        &node,
        &web,
        &[
            json!({"type": "identify", "userId": "kid-new", "messageId": "n1",
                "traits": {"birthday": "2016-04-01"}}),
            json!({"type": "track", "event": "Joined", "userId": "adult-new", "messageId": "a1",
                "context": {"traits": {"age": 40}}}),
        ],
    )
    .await;
    assert_eq!(answer["accepted"], 2, "{answer}");
    assert_eq!(answer["rejected"], json!([]));
    wait_until("the new child to be suppressed", async || {
        let (_, body) = call(&node, Method::GET, "/api/v1/suppressions", None).await;
        body["data"]["suppressions"]
            .as_array()
            .is_some_and(|list| list.len() == 2)
    })
    .await;
    send(
        &node,
        &web,
        &[json!({"type": "track", "event": "Played", "userId": "kid-new", "messageId": "n2"})],
    )
    .await;
    let mut logged = message_ids(&node.events(&web).await);
    logged.sort();
    assert_eq!(logged, vec!["a1".to_owned(), "g1".to_owned()]);
    let (_, regulations) = call(&node, Method::GET, "/api/v1/regulations", None).await;
    let regulations = regulations["data"]["regulations"].as_array().unwrap();
    assert_eq!(regulations.len(), 2, "{regulations:?}");
    for regulation in regulations {
        assert_eq!(regulation["regulationType"], "SUPPRESS_WITH_DELETE");
    }
}
