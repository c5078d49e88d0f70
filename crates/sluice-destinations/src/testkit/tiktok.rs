//! The TikTok Business API fake (audience segments). TikTok answers HTTP 200 with a `code`
//! for errors too: `{"code", "message", "request_id", "data"}`.
//!
//! - Paths must be exact, trailing slash included: `POST /open_api/v1.3/segment/mapping/` and
//!   `POST /open_api/v1.3/segment/audience/`; anything else is an HTTP `404`.
//! - `Access-Token` with the fake's token (a Bearer token is not it): none → code 40104, wrong
//!   → 40105; a JSON body, else 40002.
//! - `segment/mapping/`: `advertiser_ids` holding the fake's advertiser (another one: 40001),
//!   `action` `add` or `delete`, one `id_schema` of known types without repeats, 1 to 10,000
//!   `batch_data` rows, each exactly as wide as the schema, each cell `{}` or `{"id",
//!   "audience_ids"}` with an id in the schema's hash (64 lowercase hex for `*_SHA256`, 32 for
//!   `*_MD5`) and numeric audience ids ([`MISSING_AUDIENCE_ID`]: 40002), at least one id a
//!   row. Success: code 0.
//! - `segment/audience/`: `custom_audience_name` (1 to 70 characters), the advertiser,
//!   `action` `create` → `data.audience_id`.
//! - Over the rate limit: HTTP 200, code 40100.

use serde_json::{Map, Value, json};

use super::answer::{Answer, content_type_is};
use super::audiences::{AdState, MISSING_AUDIENCE_ID, Member, is_lower_hex, request_id};
use super::credentials::{TIKTOK_ACCESS_TOKEN, TIKTOK_ADVERTISER_ID};
use super::server::Recorded;

const MAPPING_PATH: &str = "/open_api/v1.3/segment/mapping/";
const AUDIENCE_PATH: &str = "/open_api/v1.3/segment/audience/";
const MAX_ROWS: usize = 10_000;
/// The first id the fake gives a new audience.
const FIRST_AUDIENCE_ID: u64 = 7_100_000_001;

/// Schema types and the hex length of their ids.
const SCHEMAS: [(&str, usize); 6] = [
    ("EMAIL_SHA256", 64),
    ("PHONE_SHA256", 64),
    ("IDFA_SHA256", 64),
    ("AAID_SHA256", 64),
    ("IDFA_MD5", 32),
    ("AAID_MD5", 32),
];

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("access_token".into(), json!(TIKTOK_ACCESS_TOKEN));
    map.insert("advertiser_id".into(), json!(TIKTOK_ADVERTISER_ID));
    map.insert("default_country".into(), json!("US"));
    map.insert("api_url".into(), json!(base));
    map
}

fn answer(request: &Recorded, code: i64, message: &str, data: Value) -> Answer {
    Answer::json(
        200,
        &json!({"code": code, "message": message, "request_id": request_id(&request.body), "data": data}),
    )
}

fn param_error(request: &Recorded, message: &str) -> Answer {
    answer(request, 40002, message, json!({}))
}

pub(super) fn throttled(request: &Recorded) -> Answer {
    answer(
        request,
        40100,
        "Too many requests. Please retry in some time.",
        json!({}),
    )
}

pub(super) fn respond(
    request: &Recorded,
    state: &mut AdState,
    accepted: &mut Vec<Value>,
) -> Answer {
    let mapping = request.path == MAPPING_PATH;
    if request.method != "POST" || !(mapping || request.path == AUDIENCE_PATH) {
        return Answer::text(404, "404 page not found");
    }
    match request.header("access-token") {
        None | Some("") => return answer(request, 40104, "Access token is null.", json!({})),
        Some(token) if !state.takes(token, TIKTOK_ACCESS_TOKEN) => {
            return answer(
                request,
                40105,
                "Access token is incorrect or has been revoked.",
                json!({}),
            );
        }
        Some(_) => {}
    }
    let body = match (content_type_is(request, "application/json"), request.json()) {
        (true, Some(Value::Object(body))) => body,
        _ => return param_error(request, "Request body must be JSON."),
    };
    if mapping {
        mapping_request(request, &body, state, accepted)
    } else {
        create(request, &body, state)
    }
}

fn create(request: &Recorded, body: &Map<String, Value>, state: &mut AdState) -> Answer {
    if body.get("advertiser_id").and_then(Value::as_str) != Some(TIKTOK_ADVERTISER_ID) {
        return answer(
            request,
            40001,
            "No permission to operate advertiser.",
            json!({}),
        );
    }
    if body.get("action").and_then(Value::as_str) != Some("create") {
        return param_error(request, "action: must be create.");
    }
    let name = body
        .get("custom_audience_name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let length = name.chars().count();
    if name.trim().is_empty() || length > 70 {
        return param_error(request, "custom_audience_name: 1 to 70 characters.");
    }
    let id = state.create(FIRST_AUDIENCE_ID, name);
    answer(request, 0, "OK", json!({"audience_id": id}))
}

fn mapping_request(
    request: &Recorded,
    body: &Map<String, Value>,
    state: &mut AdState,
    accepted: &mut Vec<Value>,
) -> Answer {
    let advertisers: Vec<&str> = body
        .get("advertiser_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if advertisers.is_empty() {
        return param_error(request, "advertiser_ids: Missing data for required field.");
    }
    if advertisers.iter().any(|id| *id != TIKTOK_ADVERTISER_ID) {
        return answer(
            request,
            40001,
            "No permission to operate advertiser.",
            json!({}),
        );
    }
    let add = match body.get("action").and_then(Value::as_str) {
        Some("add") => true,
        Some("delete") => false,
        _ => return param_error(request, "action: Must be one of: add, delete."),
    };
    let schema: Option<Vec<(&str, usize)>> = body
        .get("id_schema")
        .and_then(Value::as_array)
        .map(|types| {
            types
                .iter()
                .map(|kind| {
                    let kind = kind.as_str()?;
                    SCHEMAS.iter().find(|(name, _)| *name == kind).copied()
                })
                .collect::<Option<Vec<_>>>()
        })
        .unwrap_or(None);
    let Some(schema) = schema.filter(|schema| !schema.is_empty()) else {
        return param_error(request, "id_schema: must list supported id types.");
    };
    if (1..schema.len()).any(|i| schema[..i].iter().any(|(name, _)| *name == schema[i].0)) {
        return param_error(request, "id_schema: an id type is repeated.");
    }
    let Some(rows) = body.get("batch_data").and_then(Value::as_array) else {
        return param_error(request, "batch_data: Missing data for required field.");
    };
    if rows.is_empty() || rows.len() > MAX_ROWS {
        return param_error(request, "batch_data: 1 to 10000 rows.");
    }
    let mut changes: Vec<(Vec<String>, Member)> = Vec::with_capacity(rows.len());
    for (index, row) in rows.iter().enumerate() {
        let Some(cells) = row.as_array().filter(|cells| cells.len() == schema.len()) else {
            return param_error(
                request,
                &format!("batch_data[{index}]: must hold one entry per id_schema type."),
            );
        };
        let mut member = Member::new();
        let mut audiences: Vec<String> = Vec::new();
        for ((kind, len), cell) in schema.iter().zip(cells) {
            let Some(cell) = cell.as_object() else {
                return param_error(
                    request,
                    &format!("batch_data[{index}]: entries are objects."),
                );
            };
            if cell.is_empty() {
                continue;
            }
            let id = cell.get("id").and_then(Value::as_str).unwrap_or_default();
            if !is_lower_hex(id, *len) {
                return param_error(
                    request,
                    &format!("batch_data[{index}]: id is not a lowercase {kind} hash."),
                );
            }
            let ids: Option<Vec<&str>> = cell
                .get("audience_ids")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(Value::as_str).collect());
            let Some(ids) = ids.filter(|ids| !ids.is_empty()) else {
                return param_error(
                    request,
                    &format!("batch_data[{index}]: audience_ids is required."),
                );
            };
            for audience in ids {
                if audience == MISSING_AUDIENCE_ID || !audience.bytes().all(|b| b.is_ascii_digit())
                {
                    return param_error(request, &format!("Audience {audience} does not exist."));
                }
                if !audiences.iter().any(|known| known == audience) {
                    audiences.push(audience.to_string());
                }
            }
            member.insert((*kind).to_string(), id.to_string());
        }
        if member.is_empty() {
            return param_error(request, &format!("batch_data[{index}]: no id."));
        }
        changes.push((audiences, member));
    }
    for (audiences, member) in changes {
        for audience in audiences {
            accepted.push(json!({"audience": audience, "action": if add { "add" } else { "remove" }, "ids": member}));
            if add {
                state.add(&audience, member.clone());
            } else {
                state.remove(&audience, &member);
            }
        }
    }
    answer(request, 0, "OK", json!({}))
}
