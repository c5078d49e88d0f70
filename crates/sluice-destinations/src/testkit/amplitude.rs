//! The Amplitude fake: `POST /2/httpapi` (1 MB) and `POST /batch` (20 MB) as Amplitude
//! documents them. JSON only; `api_key` required and right; at most 2000 events (`413`); every
//! event needs `event_type` and a `user_id` or `device_id` of at least `min_id_length`
//! characters (5 by default), and `time`, when given, in whole milliseconds. Any bad event
//! fails the whole request with the documented `400` naming the events
//! (`events_with_missing_fields`, `events_with_invalid_fields`); over the rate limit, the
//! documented `429` body naming throttled users, devices and events.
//!
//! Deletions: `POST /api/2/deletions/users` of the User Privacy API. Basic auth with the API
//! key and the secret key (else `401`); a JSON object with `user_ids` and/or `amplitude_ids`,
//! 1 to 100 ids in all, and `requester` a string when given (else `400`). A user id Amplitude
//! never received (no accepted event had it as `user_id`) fails the request with a `400`,
//! unless `ignore_invalid_id` is true, when it is listed in `invalid_ids`. Success is the
//! deletion job the ids joined, scheduled ten days ahead in `staging`.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::answer::{Answer, content_type_is, now_millis};
use super::credentials::{AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY};
use super::server::Recorded;

/// The User Privacy API's deletion path.
const DELETIONS_PATH: &str = "/api/2/deletions/users";
/// Most ids in one deletion request.
const MAX_DELETION_IDS: usize = 100;

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
    map.insert("secret_key".into(), json!(AMPLITUDE_SECRET_KEY));
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
    if is_deletion(request) {
        // The User Privacy API takes one request a second.
        return error(429, "Too many requests");
    }
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

/// Whether `request` is for the User Privacy API.
pub(super) fn is_deletion(request: &Recorded) -> bool {
    request.path.trim_end_matches('/') == DELETIONS_PATH
}

/// A deletion request, checked against what Amplitude holds: the events in `accepted`.
pub(super) fn respond_deletion(
    request: &Recorded,
    accepted: &[Value],
    deleted: &mut Vec<String>,
) -> Answer {
    if request.method != "POST" {
        return error(405, "Method not allowed");
    }
    if !has_both_keys(request) {
        return error(401, "Invalid API key or secret key");
    }
    if !content_type_is(request, "application/json") {
        return error(400, "Invalid JSON request body");
    }
    let Some(Value::Object(body)) = request.json() else {
        return error(400, "Invalid JSON request body");
    };
    let Some(user_ids) = id_list(&body, "user_ids", Value::as_str) else {
        return error(400, "user_ids must be a list of strings");
    };
    let Some(amplitude_ids) = id_list(&body, "amplitude_ids", Value::as_u64) else {
        return error(400, "amplitude_ids must be a list of numbers");
    };
    let count = user_ids.len() + amplitude_ids.len();
    if count == 0 {
        return missing("user_ids");
    }
    if count > MAX_DELETION_IDS {
        return error(
            400,
            &format!(
                "Deletion requests take at most {MAX_DELETION_IDS} user_ids and amplitude_ids"
            ),
        );
    }
    let requester = match body.get("requester") {
        None => "",
        Some(Value::String(text)) => text.as_str(),
        Some(_) => return error(400, "requester must be a string"),
    };
    let ignore_invalid = match body.get("ignore_invalid_id") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) if text.eq_ignore_ascii_case("true") => true,
        Some(Value::String(text)) if text.eq_ignore_ascii_case("false") => false,
        Some(_) => return error(400, "ignore_invalid_id must be true or false"),
    };
    let known = |id: &str| {
        accepted
            .iter()
            .any(|event| event.get("user_id").and_then(Value::as_str) == Some(id))
    };
    let (valid, invalid): (Vec<&str>, Vec<&str>) = user_ids.iter().partition(|id| known(id));
    if !invalid.is_empty() && !ignore_invalid {
        return Answer::json(
            400,
            &json!({"error": "Some user ids were not found in the project", "invalid_ids": invalid}),
        );
    }
    let today = OffsetDateTime::now_utc().date();
    let day = |date: time::Date| date.to_string();
    let mut requested: Vec<Value> = valid
        .iter()
        .map(|id| {
            json!({
                "amplitude_id": amplitude_id(id),
                "requested_on_day": day(today),
                "requester": requester,
            })
        })
        .collect();
    requested.extend(amplitude_ids.iter().map(
        |id| json!({"amplitude_id": id, "requested_on_day": day(today), "requester": requester}),
    ));
    deleted.extend(valid.iter().map(|id| (*id).to_string()));
    deleted.extend(amplitude_ids.iter().map(u64::to_string));
    let mut job = json!({
        "active_scrub_done_date": null,
        "amplitude_ids": requested,
        "day": day(today + Duration::days(10)),
        "status": "staging",
    });
    if ignore_invalid {
        job["invalid_ids"] = json!(invalid);
    }
    Answer::json(200, &json!([job]))
}

/// Basic auth with the project's API key and secret key.
fn has_both_keys(request: &Recorded) -> bool {
    request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Basic "))
        .and_then(|encoded| {
            base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
        })
        .is_some_and(|decoded| {
            decoded == format!("{AMPLITUDE_API_KEY}:{AMPLITUDE_SECRET_KEY}").as_bytes()
        })
}

/// The list at `key` (absent is empty), `None` when it is not a list of what `read` reads.
fn id_list<'a, T>(
    body: &'a Map<String, Value>,
    key: &str,
    read: impl Fn(&'a Value) -> Option<T>,
) -> Option<Vec<T>> {
    match body.get(key) {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(read).collect(),
        Some(_) => None,
    }
}

/// A stable stand-in for the Amplitude id of a user: 12 digits from the SHA-256 of the id.
fn amplitude_id(user_id: &str) -> u64 {
    let digest = Sha256::digest(user_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes) % 1_000_000_000_000
}
