//! The webhook fake: a receiver that requires its bearer token, checks the `X-Signature` when
//! one is sent, and takes a JSON object (one event) or a JSON array (a batch).

use serde_json::{Map, Value, json};

use super::answer::{Answer, content_type_is};
use super::credentials::{WEBHOOK_AUTHORIZATION, WEBHOOK_SECRET};
use super::server::Recorded;
use crate::webhook::sign;

/// Path the fake's settings point at (any path is accepted).
const PATH: &str = "/hooks/sluice";

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("url".into(), json!(format!("{base}{PATH}")));
    map.insert("secret".into(), json!(WEBHOOK_SECRET));
    map.insert(
        "headers".into(),
        json!({"Authorization": WEBHOOK_AUTHORIZATION}),
    );
    map
}

pub(super) fn respond(request: &Recorded, accepted: &mut Vec<Value>) -> Answer {
    if request.method != "POST" {
        return Answer::json(405, &json!({"error": "method not allowed"}));
    }
    if request.header("authorization") != Some(WEBHOOK_AUTHORIZATION) {
        return Answer::json(401, &json!({"error": "missing or wrong bearer token"}));
    }
    let signature = request.header("x-signature");
    if signature.is_some_and(|signature| signature != sign(WEBHOOK_SECRET, &request.body)) {
        return Answer::json(401, &json!({"error": "signature does not match the body"}));
    }
    if !content_type_is(request, "application/json") {
        return Answer::json(415, &json!({"error": "expected application/json"}));
    }
    match request.json() {
        Some(Value::Array(events)) => accepted.extend(events),
        Some(event @ Value::Object(_)) => accepted.push(event),
        _ => return Answer::json(400, &json!({"error": "body is not a JSON object or array"})),
    }
    Answer::json(200, &json!({"ok": true}))
}

pub(super) fn throttled(retry_after: u64) -> Answer {
    Answer::json(429, &json!({"error": "too many requests"}))
        .with_header("retry-after", &retry_after.to_string())
}
