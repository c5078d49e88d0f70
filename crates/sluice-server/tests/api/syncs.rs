#![allow(clippy::unwrap_used)]

//! Audiences and computed traits sent to destinations: Segment's identify and track shapes to
//! event destinations, the ad-platform list to Meta's fake (the audience created on connect,
//! members added and removed, consent withdrawals removing people), first every member then
//! only changes, each exactly once, across a restart too.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sluice_destinations::testkit::{FakeTool, Tool};

use crate::helpers::{TestNode, restart, spawn};
use crate::privacy::{call, regulate, send, wait_until};

/// A destination of `tool` on no source; returns the fake and the id.
async fn destination(node: &TestNode, tool: Tool, name: &str, extra: Value) -> (FakeTool, String) {
    let fake = FakeTool::start(tool).await;
    let mut body = json!({"name": name, "type": tool.kind(), "settings": fake.settings(),
        "sources": []});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    let (status, created) = call(node, Method::POST, "/api/v1/destinations", Some(body)).await;
    assert_eq!(status, 201, "{created}");
    (fake, created["id"].as_str().unwrap().to_owned())
}

fn plan(id: &str, user: &str, plan: &str) -> Value {
    json!({"type": "identify", "userId": user, "messageId": id,
           "traits": {"plan": plan, "email": format!("{user}@example.com")}})
}

async fn audience(node: &TestNode, key: &str, plan: &str) {
    let (status, created) = call(
        node,
        Method::POST,
        "/api/v1/audiences",
        Some(json!({"key": key, "name": format!("{plan} plan"),
            "condition": {"trait": {"key": "plan", "op": "=", "value": plan}}})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
}

async fn live(node: &TestNode, key: &str, size: u64) {
    wait_until(&format!("{key} has {size} members"), async || {
        let (_, shown) = call(node, Method::GET, &format!("/api/v1/audiences/{key}"), None).await;
        shown["status"] == "live" && shown["size"] == size
    })
    .await;
}

/// `(userId, membership)` of a fake's accepted audience events, in order.
fn memberships(events: &[Value], key: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for event in events {
        let member = match event["type"].as_str() {
            Some("identify") => event["traits"][key].as_bool(),
            _ => event["properties"][key].as_bool(),
        };
        if let (Some(user), Some(member)) = (event["userId"].as_str(), member) {
            out.push((user.to_owned(), member));
        }
    }
    out
}

#[tokio::test]
async fn audiences_reach_event_destinations_first_in_full_then_as_changes_once() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    send(
        &node,
        &web,
        &[
            plan("p1", "ann", "pro"),
            plan("p2", "bob", "pro"),
            plan("p3", "cy", "free"),
        ],
    )
    .await;
    audience(&node, "pros", "pro").await;
    let (status, spend) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits",
        Some(json!({"key": "spend", "name": "Spend", "type": "sum",
                    "event": "Order Completed", "property": "total"})),
    )
    .await;
    assert_eq!(status, 201, "{spend}");
    live(&node, "pros", 2).await;
    let (tracked, track_id) = destination(&node, Tool::Webhook, "tracked", json!({})).await;
    let (identified, identify_id) =
        destination(&node, Tool::Webhook, "identified", json!({})).await;

    // Bad requests are refused with the field named, and nothing is saved.
    let bad = [
        (
            "/api/v1/audiences/pros/syncs",
            json!({"destinationId": "nope"}),
            404,
            "destinationId",
        ),
        (
            "/api/v1/audiences/pros/syncs",
            json!({"destinationId": track_id, "mode": "list"}),
            400,
            "mode",
        ),
        (
            "/api/v1/audiences/pros/syncs",
            json!({"destinationId": track_id, "mode": "shout"}),
            400,
            "mode",
        ),
        (
            "/api/v1/audiences/pros/syncs",
            json!({"destinationId": track_id, "externalAudienceId": "123"}),
            400,
            "externalAudienceId",
        ),
    ];
    for (path, body, status, field) in bad {
        let (got, answer) = call(&node, Method::POST, path, Some(body)).await;
        assert_eq!(
            (got, answer["field"].as_str()),
            (status, Some(field)),
            "{answer}"
        );
    }
    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/ghost/syncs",
        Some(json!({"destinationId": track_id})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, answer) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/pros/syncs",
        Some(json!({"destination": track_id})),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (400, Some("invalid_request"))
    );
    let (_, listed) = call(&node, Method::GET, "/api/v1/audiences/pros/syncs", None).await;
    assert_eq!(listed["syncs"], json!([]));

    // Connect: track mode to one webhook, identify (the default) to the other, and the
    // computed trait in track mode.
    let (status, sync) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/pros/syncs",
        Some(json!({"destinationId": track_id, "mode": "track"})),
    )
    .await;
    assert_eq!(status, 201, "{sync}");
    assert_eq!(sync["mode"], "track");
    assert_eq!(sync["warnings"], json!([]));
    let (status, identify_sync) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/pros/syncs",
        Some(json!({"destinationId": identify_id})),
    )
    .await;
    assert_eq!(status, 201, "{identify_sync}");
    assert_eq!(identify_sync["mode"], "identify");
    let (status, answer) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/pros/syncs",
        Some(json!({"destinationId": identify_id})),
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("already_exists"))
    );
    let (status, trait_sync) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits/spend/syncs",
        Some(json!({"destinationId": track_id, "mode": "track"})),
    )
    .await;
    assert_eq!(status, 201, "{trait_sync}");

    // The first sync sends every member.
    wait_until("both members reach both webhooks", async || {
        memberships(&tracked.accepted(), "pros").len() == 2
            && memberships(&identified.accepted(), "pros").len() == 2
    })
    .await;
    let mut first = memberships(&tracked.accepted(), "pros");
    first.sort();
    assert_eq!(first, [("ann".to_owned(), true), ("bob".to_owned(), true)]);
    let entered = tracked
        .accepted()
        .into_iter()
        .find(|event| event["userId"] == "ann")
        .unwrap();
    assert_eq!(entered["type"], "track");
    assert_eq!(entered["event"], "Audience Entered");
    assert_eq!(
        entered["properties"],
        json!({"audience_key": "pros", "pros": true})
    );
    assert_eq!(entered["context"]["traits"]["email"], "ann@example.com");
    assert_eq!(
        entered["context"]["personas"]["computation_class"],
        "audience"
    );
    assert_eq!(entered["context"]["personas"]["computation_key"], "pros");
    assert_eq!(
        entered["integrations"],
        json!({"All": false, "Webhooks": true})
    );
    let identify = identified
        .accepted()
        .into_iter()
        .find(|event| event["userId"] == "bob")
        .unwrap();
    assert_eq!(identify["type"], "identify");
    assert_eq!(identify["traits"]["pros"], true);
    assert_eq!(identify["traits"]["email"], "bob@example.com");
    let (_, listed) = call(&node, Method::GET, "/api/v1/audiences/pros/syncs", None).await;
    assert_eq!(listed["syncs"].as_array().unwrap().len(), 2);
    assert_eq!(listed["syncs"][0]["status"], "live", "{listed}");

    // Then only changes: cy enters, bob leaves, ann spends.
    send(
        &node,
        &web,
        &[
            plan("p4", "cy", "pro"),
            plan("p5", "bob", "free"),
            json!({"type": "track", "event": "Order Completed", "userId": "ann",
                   "messageId": "o1", "properties": {"total": 40}}),
        ],
    )
    .await;
    wait_until("the changes reach the webhooks", async || {
        memberships(&tracked.accepted(), "pros").len() == 4
            && memberships(&identified.accepted(), "pros").len() == 4
            && tracked
                .accepted()
                .iter()
                .any(|event| event["event"] == "Trait Computed")
    })
    .await;
    let changes = memberships(&tracked.accepted(), "pros");
    let mut later = changes[2..].to_vec();
    later.sort();
    assert_eq!(later, [("bob".to_owned(), false), ("cy".to_owned(), true)]);
    let exited = tracked
        .accepted()
        .into_iter()
        .find(|event| event["userId"] == "bob" && event["event"] == "Audience Exited")
        .unwrap();
    assert_eq!(
        exited["properties"],
        json!({"audience_key": "pros", "pros": false})
    );
    let computed: Vec<Value> = tracked
        .accepted()
        .into_iter()
        .filter(|event| event["event"] == "Trait Computed")
        .collect();
    assert_eq!(computed.len(), 1, "{computed:?}");
    assert_eq!(
        computed[0]["properties"],
        json!({"trait_key": "spend", "spend": 40})
    );
    assert_eq!(
        computed[0]["context"]["personas"]["computation_class"],
        "trait"
    );

    // A definition that is sent somewhere cannot be deleted.
    let (status, answer) = call(&node, Method::DELETE, "/api/v1/audiences/pros", None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("definition_in_use"))
    );

    // A restart sends nothing twice.
    let sent = (tracked.accepted().len(), identified.accepted().len());
    let node = restart(node.stop().await).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        (tracked.accepted().len(), identified.accepted().len()),
        sent
    );

    // A deleted sync sends no more; the other goes on.
    let id = identify_sync["id"].as_str().unwrap();
    let path = format!("/api/v1/audiences/pros/syncs/{id}");
    let (status, _) = call(&node, Method::DELETE, &path, None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&node, Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    let web = node.create_source("web2").await;
    send(&node, &web, &[plan("p6", "dee", "pro")]).await;
    wait_until("dee reaches the tracked webhook", async || {
        memberships(&tracked.accepted(), "pros").contains(&("dee".to_owned(), true))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(identified.accepted().len(), sent.1);
}

#[tokio::test]
async fn ad_platform_audiences_are_created_filled_and_emptied_by_consent() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    let granted = json!({"consent": {"categoryPreferences": {"advertising": true}}});
    let mut ann = plan("p1", "ann", "pro");
    ann["context"] = granted.clone();
    let mut dee = plan("p2", "dee", "pro");
    dee["context"] = json!({"consent": {"categoryPreferences": {"advertising": false}}});
    send(&node, &web, &[ann, plan("p3", "bob", "pro"), dee]).await;
    audience(&node, "pros", "pro").await;
    live(&node, "pros", 3).await;
    let (meta, meta_id) = destination(
        &node,
        Tool::MetaAudiences,
        "meta",
        json!({"consent_categories": ["advertising"], "advertising": true}),
    )
    .await;

    // Connecting creates the audience on the platform and warns that it is small.
    let (status, sync) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/pros/syncs",
        Some(json!({"destinationId": meta_id, "audienceName": "Pro customers"})),
    )
    .await;
    assert_eq!(status, 201, "{sync}");
    assert_eq!(sync["mode"], "list");
    let audience_id = sync["externalAudienceId"].as_str().unwrap().to_owned();
    assert_eq!(
        meta.created_audiences(),
        [(audience_id.clone(), "Pro customers".to_owned())]
    );
    assert_eq!(sync["warnings"][0]["code"], "below_minimum_size", "{sync}");
    assert_eq!(sync["warnings"][0]["minimumSize"], 100);
    let (status, answer) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/pros/syncs",
        Some(json!({"destinationId": meta_id, "mode": "track"})),
    )
    .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("mode")));
    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits",
        Some(json!({"key": "visits", "name": "Visits", "type": "count", "event": "Page Viewed"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits/visits/syncs",
        Some(json!({"destinationId": meta_id})),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("destinationId")),
        "{answer}"
    );

    // ann and bob are added; dee refused advertising and is never added.
    wait_until("two members on the platform", async || {
        meta.members(&audience_id).len() == 2
    })
    .await;
    let removals_of_dee = || {
        meta.accepted()
            .iter()
            .filter(|row| row["action"] == "remove")
            .count()
    };
    wait_until("dee's refused entry is sent as a removal", async || {
        removals_of_dee() == 1
    })
    .await;

    // ann withdraws advertising consent: she is removed though she stays in the audience.
    let withdrawn = json!({"type": "track", "event": "Page Viewed", "userId": "ann",
        "messageId": "w1",
        "context": {"consent": {"categoryPreferences": {"advertising": false}}}});
    send(&node, &web, &[withdrawn]).await;
    wait_until("ann is removed from the platform", async || {
        meta.members(&audience_id).len() == 1
    })
    .await;
    live(&node, "pros", 3).await;
    // bob leaves the audience: removed too.
    send(&node, &web, &[plan("p4", "bob", "free")]).await;
    wait_until("bob is removed", async || {
        meta.members(&audience_id).is_empty()
    })
    .await;
    // ann grants consent again: added back.
    let mut regranted = plan("p5", "ann", "pro");
    regranted["context"] = granted;
    send(&node, &web, &[regranted]).await;
    wait_until("ann is back", async || {
        meta.members(&audience_id).len() == 1
    })
    .await;

    // ann opts out of sale and sharing: removed; she opts in again: added back.
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/do-not-sell",
        Some(json!({"subjectType": "EMAIL", "subjectIds": ["ann@example.com"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_until("ann's opt-out removes her", async || {
        meta.members(&audience_id).is_empty()
    })
    .await;
    let (status, body) = call(
        &node,
        Method::POST,
        "/api/v1/privacy/do-not-sell/remove",
        Some(json!({"subjectType": "USER_ID", "subjectIds": ["ann"]})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_until("ann's opt-in adds her back", async || {
        meta.members(&audience_id).len() == 1
    })
    .await;
    let adds = meta
        .accepted()
        .iter()
        .filter(|row| row["action"] == "add")
        .count();
    assert_eq!(adds, 4, "ann, bob, ann twice again: {:?}", meta.accepted());

    // Deleting ann forwards her removal to the platform, in the regulation's report.
    let regulation = regulate(&node, "DELETE_ONLY", "EMAIL", &["ann@example.com"]).await;
    assert_eq!(regulation["overallStatus"], "FINISHED", "{regulation}");
    let forwarded = regulation["report"]["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == meta_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(forwarded["status"], "FINISHED", "{forwarded}");
    assert_eq!(forwarded["answer"], "removed from 1 platform audience(s)");
    assert!(
        meta.members(&audience_id).is_empty(),
        "{:?}",
        meta.accepted()
    );
    assert!(!regulation.to_string().contains("ann@"), "{regulation}");
}
