//! The Slack fake: one incoming webhook. Answers as Slack documents (plain-text error codes):
//! an unknown path `404 no_service`, a body that is not a JSON object `400 invalid_payload`, a
//! message without `text`, `blocks` or `attachments` `400 no_text`, a success `200 ok`; over
//! the rate limit `429` with `Retry-After` and Slack's JSON counts.

use serde_json::{Map, Value, json};

use super::answer::{Answer, content_type_is};
use super::credentials::SLACK_WEBHOOK_PATH;
use super::server::Recorded;

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "webhook_url".into(),
        json!(format!("{base}{SLACK_WEBHOOK_PATH}")),
    );
    map
}

pub(super) fn respond(request: &Recorded, accepted: &mut Vec<Value>) -> Answer {
    if request.path != SLACK_WEBHOOK_PATH {
        return Answer::text(404, "no_service");
    }
    if request.method != "POST" {
        return Answer::text(405, "invalid_method");
    }
    if !content_type_is(request, "application/json") {
        return Answer::text(400, "invalid_payload");
    }
    let Some(Value::Object(message)) = request.json() else {
        return Answer::text(400, "invalid_payload");
    };
    let has = |key: &str| match message.get(key) {
        Some(Value::String(text)) => !text.trim().is_empty(),
        Some(Value::Array(items)) => !items.is_empty(),
        _ => false,
    };
    if !has("text") && !has("blocks") && !has("attachments") {
        return Answer::text(400, "no_text");
    }
    accepted.push(Value::Object(message));
    Answer::text(200, "ok")
}

pub(super) fn throttled(retry_after: u64) -> Answer {
    Answer::json(
        429,
        &json!({"ok": false, "count_hour_ago": 400, "count_minute_ago": 100, "count_second_ago": 5}),
    )
    .with_header("retry-after", &retry_after.to_string())
}
