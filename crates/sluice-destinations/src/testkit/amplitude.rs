//! The Amplitude fake: `POST /2/httpapi` (1 MB) and `POST /batch` (20 MB) as Amplitude
//! documents them. JSON only; `api_key` required and right; at most 2000 events (`413`); every
//! event needs `event_type` and a `user_id` or `device_id` of at least `min_id_length`
//! characters (5 by default), and `time`, when given, in whole milliseconds. Any bad event
//! fails the whole request with the documented `400` naming the events
//! (`events_with_missing_fields`, `events_with_invalid_fields`); over the rate limit, the
//! documented `429` body naming throttled users, devices and events.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::answer::{Answer, content_type_is, now_millis};
use super::credentials::AMPLITUDE_API_KEY;
use super::server::Recorded;

const MAX_EVENTS: usize = 2000;
/// IDs Amplitude answers with a 400.
const INVALID_IDS: [&str; 14] = [
    "anonymous",
    "nil",
    "none",
    "null",
    "n/a",
    "na",
    "undefined",
    "unknown",
    "\"\"",
    "00000000-0000-0000-0000-000000000000",
    "{}",
    "lmy47d",
    "0",
    "-1",
];

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("api_key".into(), json!(AMPLITUDE_API_KEY));
    map.insert("api_url".into(), json!(base));
    map
}

fn error(code: u16, message: &str) -> Answer {
    Answer::json(code, &json!({"code": code, "error": message}))
}

fn missing(field: &str) -> Answer {
    Answer::json(
        400,
        &json!({"code": 400, "error": "Request missing required field", "missing_field": field}),
    )
}

pub(super) fn respond(request: &Recorded, accepted: &mut Vec<Value>) -> Answer {
    let max_bytes = match request.path.as_str() {
        "/2/httpapi" => 1024 * 1024,
        "/batch" => 20 * 1024 * 1024,
        _ => return error(404, "Invalid request path"),
    };
    if request.method != "POST" {
        return error(404, "Invalid request path");
    }
    if request.body.len() > max_bytes {
        return error(413, "Payload too large");
    }
    if !content_type_is(request, "application/json") {
        return error(400, "Invalid JSON request body");
    }
    let Some(Value::Object(body)) = request.json() else {
        return error(400, "Invalid JSON request body");
    };
    match body.get("api_key").and_then(Value::as_str) {
        None | Some("") => return missing("api_key"),
        Some(key) if key != AMPLITUDE_API_KEY => {
            return error(400, &format!("Invalid API key: {key}"));
        }
        Some(_) => {}
    }
    let Some(Value::Array(events)) = body.get("events") else {
        return missing("events");
    };
    if events.len() > MAX_EVENTS {
        return error(413, "Payload too large");
    }
    let min_id_length = body
        .get("options")
        .and_then(|options| options.get("min_id_length"))
        .and_then(Value::as_u64)
        .unwrap_or(5);
    let mut invalid: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut absent: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        check_event(event, min_id_length, |field, is_missing| {
            let map = if is_missing {
                &mut absent
            } else {
                &mut invalid
            };
            map.entry(field).or_default().push(index);
        });
    }
    if !invalid.is_empty() || !absent.is_empty() {
        let error = if absent.is_empty() {
            "Invalid field values on some events"
        } else {
            "Request missing required field"
        };
        return Answer::json(
            400,
            &json!({
                "code": 400,
                "error": error,
                "events_with_invalid_fields": invalid,
                "events_with_missing_fields": absent,
            }),
        );
    }
    accepted.extend(events.iter().cloned());
    Answer::json(
        200,
        &json!({
            "code": 200,
            "events_ingested": events.len(),
            "payload_size_bytes": request.body.len(),
            "server_upload_time": now_millis(),
        }),
    )
}

/// Reports each problem of one event as (field, missing?).
fn check_event(event: &Value, min_id_length: u64, mut report: impl FnMut(&'static str, bool)) {
    let text = |key: &str| event.get(key).and_then(Value::as_str);
    if text("event_type").is_none_or(str::is_empty) {
        report("event_type", true);
    }
    let usable = |key: &str| {
        text(key).is_some_and(|id| u64::try_from(id.chars().count()).unwrap_or(0) >= min_id_length)
    };
    for key in ["user_id", "device_id"] {
        if text(key).is_some_and(|id| INVALID_IDS.iter().any(|bad| bad.eq_ignore_ascii_case(id))) {
            report(key, false);
        }
    }
    if !usable("user_id") && !usable("device_id") {
        report("device_id", true);
    }
    if event
        .get("time")
        .is_some_and(|time| time.as_i64().is_none())
    {
        report("time", false);
    }
}

pub(super) fn throttled(request: &Recorded) -> Answer {
    let events = request
        .json()
        .and_then(|body| body.get("events").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let mut devices = Map::new();
    let mut users = Map::new();
    for event in &events {
        if let Some(id) = event.get("device_id").and_then(Value::as_str) {
            devices.insert(id.to_string(), json!(31));
        }
        if let Some(id) = event.get("user_id").and_then(Value::as_str) {
            users.insert(id.to_string(), json!(31));
        }
    }
    Answer::json(
        429,
        &json!({
            "code": 429,
            "error": "Too many requests for some devices and users",
            "eps_threshold": 30,
            "throttled_devices": devices,
            "throttled_users": users,
            "throttled_events": (0..events.len()).collect::<Vec<_>>(),
        }),
    )
}
