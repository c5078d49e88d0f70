#![allow(clippy::unwrap_used)]

//! Computed traits and audiences through the admin API: validation with the field named,
//! conflicts, the size estimate, members and changes after real SDK-shaped traffic.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn;
use crate::privacy::{call, send, wait_until};
use crate::profiles::{profile_get, profile_token};

fn order(id: &str, user: &str, total: i64) -> Value {
    json!({"type": "track", "event": "Order Completed", "userId": user, "messageId": id,
           "properties": {"total": total}})
}

#[tokio::test]
async fn definitions_are_checked_with_the_field_named() {
    let node = spawn().await;
    let cases = [
        (
            "/api/v1/computed-traits",
            json!({"name": "Spend", "type": "sum", "event": "Order Completed"}),
            "property",
        ),
        (
            "/api/v1/computed-traits",
            json!({"name": "Spend", "type": "sum", "event": "Order Completed",
                   "property": "total", "within": {"weeks": 1}}),
            "within",
        ),
        (
            "/api/v1/audiences",
            json!({"name": "A", "condition": {"and": [{"performed": {"event": "E",
                "count": {"op": "=>", "value": 1}}}]}}),
            "condition.and[0].performed.count.op",
        ),
        (
            "/api/v1/audiences",
            json!({"name": "A", "condition": {"audience": "ghost"}}),
            "condition",
        ),
        (
            "/api/v1/audiences",
            json!({"condition": {"audience": "x"}}),
            "name",
        ),
    ];
    for (path, body, field) in cases {
        let (status, answer) = call(&node, Method::POST, path, Some(body)).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["code"], "invalid_definition", "{answer}");
        assert_eq!(answer["field"], field, "{answer}");
    }
    let (status, answer) = call(&node, Method::POST, "/api/v1/audiences", Some(json!("x"))).await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("definition"))
    );

    // Saved definitions: keys are unique across traits and audiences, cycles are refused,
    // a definition in use cannot go, a key cannot change.
    let (status, trait_view) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits",
        Some(json!({"name": "Orders", "type": "count", "event": "Order Completed"})),
    )
    .await;
    assert_eq!(status, 201, "{trait_view}");
    assert_eq!(trait_view["key"], "orders");
    let (status, answer) = call(
        &node,
        Method::POST,
        "/api/v1/audiences",
        Some(json!({"key": "orders", "name": "x", "condition": {"performed": {"event": "E"}}})),
    )
    .await;
    assert_eq!(
        (status, answer["field"].as_str()),
        (400, Some("key")),
        "{answer}"
    );
    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/audiences",
        Some(
            json!({"key": "loyal", "name": "Loyal", "condition": {"trait": {
            "key": "orders", "op": ">=", "value": 3}}}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = call(
        &node,
        Method::POST,
        "/api/v1/audiences",
        Some(json!({"key": "not_loyal", "name": "x", "condition": {"not": {"audience": "loyal"}}})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, answer) = call(
        &node,
        Method::PUT,
        "/api/v1/audiences/loyal",
        Some(json!({"name": "Loyal", "condition": {"audience": "not_loyal"}})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["message"],
        "condition: would create a cycle: loyal -> not_loyal -> loyal"
    );
    let (status, answer) = call(
        &node,
        Method::DELETE,
        "/api/v1/computed-traits/orders",
        None,
    )
    .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("definition_in_use"))
    );
    let (status, answer) = call(&node, Method::DELETE, "/api/v1/audiences/loyal", None).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("definition_in_use"))
    );
    let (status, answer) = call(
        &node,
        Method::PUT,
        "/api/v1/audiences/loyal",
        Some(json!({"key": "other", "name": "x", "condition": {"audience": "not_loyal"}})),
    )
    .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("key")));
    let (status, _) = call(&node, Method::GET, "/api/v1/audiences/ghost", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &node,
        Method::PUT,
        "/api/v1/audiences/orders",
        Some(json!({
        "name": "x", "condition": {"performed": {"event": "E"}}})),
    )
    .await;
    assert_eq!(status, 404, "orders is a computed trait, not an audience");
    let (status, _) = call(&node, Method::DELETE, "/api/v1/audiences/not_loyal", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(&node, Method::DELETE, "/api/v1/audiences/loyal", None).await;
    assert_eq!(status, 204);
    let (status, listed) = call(&node, Method::GET, "/api/v1/computed-traits", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed["computedTraits"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn audiences_fill_from_traffic_with_estimates_members_and_changes() {
    let node = spawn().await;
    let web = node.create_source("web").await;
    send(
        &node,
        &web,
        &[
            order("o1", "ann", 120),
            order("o2", "ann", 80),
            order("o3", "bob", 15),
            json!({"type": "identify", "userId": "bob", "messageId": "i1",
                   "traits": {"plan": "pro"}}),
        ],
    )
    .await;

    // The estimate reads the history before anything is saved.
    let draft = json!({"name": "Big spenders", "condition": {"or": [
        {"performed": {"event": "Order Completed", "count": {"op": ">=", "value": 2}}},
        {"trait": {"key": "plan", "op": "=", "value": "pro"}}]}});
    wait_until("the estimate sees both profiles", async || {
        let (status, answer) = call(
            &node,
            Method::POST,
            "/api/v1/audiences/estimate",
            Some(draft.clone()),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        answer["profilesEvaluated"] == 2
    })
    .await;
    let (_, answer) = call(
        &node,
        Method::POST,
        "/api/v1/audiences/estimate",
        Some(draft.clone()),
    )
    .await;
    assert_eq!(answer["estimate"], 2, "{answer}");
    assert_eq!(answer["key"], "big_spenders");

    let (status, created) = call(&node, Method::POST, "/api/v1/audiences", Some(draft)).await;
    assert_eq!(status, 201, "{created}");
    let (status, spend) = call(
        &node,
        Method::POST,
        "/api/v1/computed-traits",
        Some(json!({"key": "spend", "name": "Spend", "type": "sum",
                    "event": "Order Completed", "property": "total"})),
    )
    .await;
    assert_eq!(status, 201, "{spend}");
    wait_until("the backfill", async || {
        let (_, shown) = call(&node, Method::GET, "/api/v1/audiences/big_spenders", None).await;
        shown["status"] == "live" && shown["size"] == 2
    })
    .await;
    let (status, members) = call(
        &node,
        Method::GET,
        "/api/v1/audiences/big_spenders/members?limit=1",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(members["total"], 2);
    assert_eq!(members["members"].as_array().unwrap().len(), 1);
    let cursor = members["cursor"].as_str().unwrap().to_owned();
    let (_, rest) = call(
        &node,
        Method::GET,
        &format!("/api/v1/audiences/big_spenders/members?limit=1&cursor={cursor}"),
        None,
    )
    .await;
    assert_eq!(rest["members"].as_array().unwrap().len(), 1);
    assert_ne!(rest["members"][0], members["members"][0]);
    // The Profile API shows memberships and computed traits by class, as Segment's does.
    let access = profile_token(&node).await;
    let (status, shown) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:ann/traits?class=audience",
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    assert_eq!(shown["traits"], json!({"big_spenders": true}));
    let (_, shown) = profile_get(
        &node,
        &access,
        "users/profiles/user_id:ann/traits?class=computed_trait",
    )
    .await;
    assert_eq!(shown["traits"], json!({"spend": 200}));
    let (_, shown) = profile_get(&node, &access, "users/profiles/user_id:bob/traits").await;
    assert_eq!(
        shown["traits"],
        json!({"plan": "pro"}),
        "custom traits by default"
    );
    let (status, answer) = call(
        &node,
        Method::GET,
        "/api/v1/audiences/big_spenders/members?cursor=abc",
        None,
    )
    .await;
    assert_eq!((status, answer["field"].as_str()), (400, Some("cursor")));

    // bob leaves the plan: he exits, recorded once.
    send(
        &node,
        &web,
        &[
            json!({"type": "identify", "userId": "bob", "messageId": "i2",
                 "traits": {"plan": "free"}}),
        ],
    )
    .await;
    wait_until("bob's exit", async || {
        let (_, shown) = call(&node, Method::GET, "/api/v1/audiences/big_spenders", None).await;
        shown["size"] == 1
    })
    .await;
    let (_, changes) = call(
        &node,
        Method::GET,
        "/api/v1/audiences/big_spenders/changes",
        None,
    )
    .await;
    let kinds: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["change"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["exited", "entered", "entered"], "{changes}");
    let (_, spend_changes) = call(
        &node,
        Method::GET,
        "/api/v1/computed-traits/spend/changes",
        None,
    )
    .await;
    let mut values: Vec<i64> = spend_changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_i64().unwrap())
        .collect();
    values.sort();
    assert_eq!(values, [15, 200]);
}
