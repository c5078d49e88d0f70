//! The Mixpanel fake: `POST /import` as Mixpanel documents it. Basic auth with a service
//! account (and `project_id`), the project's API secret or its token (empty password), else
//! `401 Invalid credentials`; JSON or NDJSON; at most 2000 events and 10 MB (`413`); with
//! `strict=1` every event is validated (event name, `time`, `distinct_id`, `$insert_id`,
//! property count, 1 MB) and failures get the documented `400` with `failed_records`, while the
//! valid events are still ingested.
//!
//! Deletions: `POST /api/app/data-deletions/v3.0/` of the GDPR API. `Authorization: Bearer`
//! with the GDPR token (else `401`), `token` the project token (missing: `400`; another
//! project: `403`), a JSON object with `distinct_ids`, 1 to 2000 strings, and
//! `compliance_type` `GDPR` or `CCPA` when given (else `400`); errors are
//! `{"error", "status": "error"}`. Success is `201` with the new task's id.

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::answer::{Answer, content_type_is, now_millis, query_param};
use super::credentials::{
    MIXPANEL_API_SECRET, MIXPANEL_GDPR_API_TOKEN, MIXPANEL_PROJECT_ID, MIXPANEL_PROJECT_TOKEN,
    MIXPANEL_SERVICE_ACCOUNT, MIXPANEL_SERVICE_SECRET,
};
use super::server::Recorded;
use crate::request::hex;

/// The GDPR API's deletion path.
const DELETIONS_PATH: &str = "/api/app/data-deletions/v3.0";
/// Most ids in one deletion request.
const MAX_DELETION_IDS: usize = 2000;

const MAX_EVENTS: usize = 2000;
const MAX_BYTES: usize = 10 * 1024 * 1024;
const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// 1971-01-01T00:00:00Z in seconds.
const EARLIEST_SECONDS: i64 = 31_536_000;

/// Values Mixpanel refuses for `distinct_id` and `$insert_id`.
const PLACEHOLDERS: [&str; 17] = [
    "00000000-0000-0000-0000-000000000000",
    "anon",
    "anonymous",
    "nil",
    "none",
    "null",
    "n/a",
    "na",
    "undefined",
    "unknown",
    "<nil>",
    "0",
    "-1",
    "true",
    "false",
    "[]",
    "{}",
];

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert(
        "service_account_username".into(),
        json!(MIXPANEL_SERVICE_ACCOUNT),
    );
    map.insert(
        "service_account_secret".into(),
        json!(MIXPANEL_SERVICE_SECRET),
    );
    map.insert("project_id".into(), json!(MIXPANEL_PROJECT_ID));
    map.insert("project_token".into(), json!(MIXPANEL_PROJECT_TOKEN));
    map.insert("gdpr_api_token".into(), json!(MIXPANEL_GDPR_API_TOKEN));
    map.insert("api_url".into(), json!(base));
    map
}

fn error(code: u16, message: &str, status: &str) -> Answer {
    Answer::json(
        code,
        &json!({"code": code, "error": message, "status": status}),
    )
}

pub(super) fn respond(request: &Recorded, accepted: &mut Vec<Value>) -> Answer {
    if request.path != "/import" || request.method != "POST" {
        return error(404, "not found", "Not Found");
    }
    if !authorized(request) {
        return error(401, "Invalid credentials", "Unauthorized");
    }
    let ndjson = content_type_is(request, "application/x-ndjson");
    if !ndjson && !content_type_is(request, "application/json") {
        return error(
            400,
            "Content-Type must be application/json or application/x-ndjson",
            "Bad Request",
        );
    }
    if request.body.len() > MAX_BYTES {
        return error(
            413,
            &format!("request exceeds max limit of {MAX_BYTES} bytes"),
            "Request Entity Too Large",
        );
    }
    let Some(events) = parse_events(&request.body, ndjson) else {
        return error(400, "unable to parse request body as JSON", "Bad Request");
    };
    if events.len() > MAX_EVENTS {
        return error(
            413,
            &format!("request exceeds max limit of {MAX_EVENTS} events"),
            "Request Entity Too Large",
        );
    }
    let strict = query_param(request, "strict") == Some("1");
    let mut failed = Vec::new();
    for (index, event) in events.into_iter().enumerate() {
        match validate(&event) {
            Ok(()) => accepted.push(event),
            Err((field, message)) => {
                let insert_id = event
                    .pointer("/properties/$insert_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                failed.push(json!({
                    "index": index, "$insert_id": insert_id, "field": field, "message": message
                }));
            }
        }
    }
    let imported = accepted.len();
    if strict && !failed.is_empty() {
        return Answer::json(
            400,
            &json!({
                "code": 400,
                "error": "some data points in the request failed validation",
                "failed_records": failed,
                "num_records_imported": imported,
                "status": "Bad Request"
            }),
        );
    }
    Answer::json(
        200,
        &json!({"code": 200, "num_records_imported": imported, "status": "OK"}),
    )
}

pub(super) fn throttled(request: &Recorded) -> Answer {
    if is_deletion(request) {
        // The GDPR API takes one request a second.
        return gdpr_error(429, "rate limit exceeded: one request per second");
    }
    // Mixpanel documents no Retry-After on its 429.
    error(
        429,
        "Project exceeded rate limits. Please retry the request with exponential backoff.",
        "Too Many Requests",
    )
}

/// Service account + `project_id`, or API secret / project token with an empty password.
fn authorized(request: &Recorded) -> bool {
    let Some(encoded) = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let text = String::from_utf8_lossy(&decoded);
    let Some((user, password)) = text.split_once(':') else {
        return false;
    };
    match query_param(request, "project_id") {
        Some(project) => {
            project == MIXPANEL_PROJECT_ID
                && ((user == MIXPANEL_SERVICE_ACCOUNT && password == MIXPANEL_SERVICE_SECRET)
                    || (user == MIXPANEL_PROJECT_TOKEN && password.is_empty()))
        }
        None => {
            password.is_empty() && (user == MIXPANEL_API_SECRET || user == MIXPANEL_PROJECT_TOKEN)
        }
    }
}

fn parse_events(body: &[u8], ndjson: bool) -> Option<Vec<Value>> {
    if !ndjson {
        return match serde_json::from_slice(body).ok()? {
            Value::Array(events) => Some(events),
            event @ Value::Object(_) => Some(vec![event]),
            _ => None,
        };
    }
    body.split(|byte| *byte == b'\n')
        .filter(|line| line.iter().any(|byte| !byte.is_ascii_whitespace()))
        .map(|line| serde_json::from_slice(line).ok())
        .collect()
}

/// Mixpanel's documented per-event checks: the failing field and the message.
fn validate(event: &Value) -> Result<(), (&'static str, String)> {
    if serde_json::to_vec(event).map_or(0, |bytes| bytes.len()) > MAX_EVENT_BYTES {
        return Err(("", "event exceeds the 1MB limit".into()));
    }
    let name = event
        .get("event")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.is_empty() {
        return Err(("event", "'event' must be a non-empty string".into()));
    }
    let Some(properties) = event.get("properties").and_then(Value::as_object) else {
        return Err(("properties", "'properties' must be an object".into()));
    };
    if properties.len() >= 255 {
        return Err((
            "properties",
            "event must have fewer than 255 properties".into(),
        ));
    }
    let Some(time) = properties.get("time").and_then(Value::as_i64) else {
        return Err((
            "properties.time",
            "'properties.time' is invalid: must be specified as seconds since epoch".into(),
        ));
    };
    let seconds = if time > 100_000_000_000 {
        time / 1000
    } else {
        time
    };
    if seconds < EARLIEST_SECONDS || seconds > now_millis() / 1000 + 3600 {
        return Err((
            "properties.time",
            "'properties.time' is invalid: must be after 1971-01-01 and not more than 1 hour in the future".into(),
        ));
    }
    match properties.get("distinct_id") {
        Some(Value::String(id)) if !is_placeholder(id) => {}
        _ => {
            return Err((
                "properties.distinct_id",
                "'properties.distinct_id' is invalid: must be a string and not a placeholder value"
                    .into(),
            ));
        }
    }
    match properties.get("$insert_id") {
        Some(Value::String(id))
            if !id.is_empty()
                && id.len() <= 36
                && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !is_placeholder(id) => {}
        _ => {
            return Err((
                "properties.$insert_id",
                "'properties.$insert_id' is invalid: must be 36 bytes or fewer of letters, digits and '-'"
                    .into(),
            ));
        }
    }
    Ok(())
}

fn is_placeholder(id: &str) -> bool {
    PLACEHOLDERS.iter().any(|p| p.eq_ignore_ascii_case(id))
}

/// Whether `request` is for the GDPR API's deletions.
pub(super) fn is_deletion(request: &Recorded) -> bool {
    request.path.trim_end_matches('/') == DELETIONS_PATH
}

/// The GDPR API's error body.
fn gdpr_error(code: u16, message: &str) -> Answer {
    Answer::json(code, &json!({"error": message, "status": "error"}))
}

pub(super) fn respond_deletion(request: &Recorded, deleted: &mut Vec<String>) -> Answer {
    if request.method != "POST" {
        return gdpr_error(405, "method not allowed");
    }
    let bearer = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "));
    if bearer != Some(MIXPANEL_GDPR_API_TOKEN) {
        return gdpr_error(401, "invalid or expired oauth token");
    }
    match query_param(request, "token") {
        None | Some("") => return gdpr_error(400, "missing required parameter: token"),
        Some(token) if token != MIXPANEL_PROJECT_TOKEN => {
            return gdpr_error(403, "you do not have access to this project");
        }
        Some(_) => {}
    }
    if !content_type_is(request, "application/json") {
        return gdpr_error(400, "request body must be json");
    }
    let Some(Value::Object(body)) = request.json() else {
        return gdpr_error(400, "request body must be a json object");
    };
    let ids: Option<Vec<&str>> = match body.get("distinct_ids") {
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect(),
        _ => None,
    };
    let Some(ids) = ids.filter(|ids| !ids.is_empty()) else {
        return gdpr_error(400, "distinct_ids must be a non-empty list of strings");
    };
    if ids.len() > MAX_DELETION_IDS {
        return gdpr_error(
            400,
            &format!("distinct_ids must hold at most {MAX_DELETION_IDS} ids"),
        );
    }
    match body.get("compliance_type") {
        None => {}
        Some(Value::String(kind))
            if kind.eq_ignore_ascii_case("gdpr") || kind.eq_ignore_ascii_case("ccpa") => {}
        Some(_) => return gdpr_error(400, "compliance_type must be GDPR or CCPA"),
    }
    deleted.extend(ids.iter().map(|id| (*id).to_string()));
    let task_id = hex(&Sha256::digest(&request.body)[..16]);
    Answer::json(
        201,
        &json!({"status": "ok", "results": {"task_id": task_id}}),
    )
}
