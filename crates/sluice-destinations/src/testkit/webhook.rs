//! The webhook fake: a receiver that requires its bearer token, checks the `X-Signature` when
//! one is sent, and takes a JSON object (one event) or a JSON array (a batch). A JSON object of
//! `"type": "delete"` is a forwarded deletion: it needs a non-empty string `userId`, `messageId`
//! and `timestamp`, and the `userId` is what the receiver deletes.

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

/// The answer to a request the receiver refuses before reading its body, if it does.
fn refusal(request: &Recorded) -> Option<Answer> {
    if request.method != "POST" {
        return Some(Answer::json(405, &json!({"error": "method not allowed"})));
    }
    if request.header("authorization") != Some(WEBHOOK_AUTHORIZATION) {
        return Some(Answer::json(
            401,
            &json!({"error": "missing or wrong bearer token"}),
        ));
    }
    let signature = request.header("x-signature");
    if signature.is_some_and(|signature| signature != sign(WEBHOOK_SECRET, &request.body)) {
        return Some(Answer::json(
            401,
            &json!({"error": "signature does not match the body"}),
        ));
    }
    if !content_type_is(request, "application/json") {
        return Some(Answer::json(
            415,
            &json!({"error": "expected application/json"}),
        ));
    }
    None
}

pub(super) fn respond(request: &Recorded, accepted: &mut Vec<Value>) -> Answer {
    if let Some(answer) = refusal(request) {
        return answer;
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

/// Whether `request` carries a `delete` event.
pub(super) fn is_deletion(request: &Recorded) -> bool {
    request
        .json()
        .is_some_and(|body| body.get("type").and_then(Value::as_str) == Some("delete"))
}

pub(super) fn respond_deletion(request: &Recorded, deleted: &mut Vec<String>) -> Answer {
    if let Some(answer) = refusal(request) {
        return answer;
    }
    let body = request.json().unwrap_or_default();
    let text = |key: &str| {
        body.get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    for key in ["userId", "messageId", "timestamp"] {
        if text(key).is_none() {
            return Answer::json(
                400,
                &json!({"error": format!("delete event without {key}")}),
            );
        }
    }
    deleted.extend(text("userId").map(str::to_string));
    Answer::json(200, &json!({"ok": true}))
}
