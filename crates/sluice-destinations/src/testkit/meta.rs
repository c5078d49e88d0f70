//! The Meta Marketing API fake (custom audiences), modelling an app that requires
//! `appsecret_proof`:
//!
//! - every request: the path starts with a Graph API version (`v24.0` or `v25.0`; another
//!   `v<n>.<n>` gets error 2635, deprecated version); `Authorization: Bearer` (or an
//!   `access_token` parameter) with the fake's token, else error 190 (invalid or revoked
//!   token; none at all: 104); `appsecret_proof` matching the token and the app secret, else
//!   error 100. Errors are Meta's `{"error": {"message", "type", "code", "error_subcode",
//!   "fbtrace_id"}}` with HTTP 400.
//! - `POST /{v}/act_{id}/customaudiences` (JSON: `name`, `subtype` `CUSTOM`,
//!   `customer_file_source`) creates an audience → `{"id"}`; another ad account: error 100/33.
//! - `POST` / `DELETE /{v}/{audience_id}/users` add / remove members. The body must carry
//!   `session` (`session_id` a positive 64-bit integer, `batch_seq` ≥ 1 and not below the
//!   session's highest so far except to repeat it, `last_batch_flag` a boolean, no batch after
//!   the one that closed the session) and `payload` (`schema`: known keys, no duplicate;
//!   `data`: 1 to 10,000 rows, each as wide as the schema, all strings). Rows whose hashed keys
//!   are not `""` or 64 lowercase hex, whose `MADID` is not a raw lowercase id, or that are all
//!   empty are counted in `num_invalid_entries` with a sample, as Meta does; the others change
//!   membership. The answer is `{"audience_id", "session_id", "num_received",
//!   "num_invalid_entries", "invalid_entry_samples"}`. Audience [`MISSING_AUDIENCE_ID`]:
//!   error 100/33.
//! - Over the rate limit: error 80003 (subcode 2446079, `is_transient`) with HTTP 400 and an
//!   `X-Business-Use-Case-Usage` header naming the minutes until access comes back.

use serde_json::{Map, Value, json};

use super::answer::{Answer, content_type_is, query_param};
use super::audiences::{
    AdState, MISSING_AUDIENCE_ID, Member, is_lower_hex, looks_hashed, request_id,
};
use super::credentials::{META_ACCESS_TOKEN, META_AD_ACCOUNT_ID, META_APP_SECRET};
use super::server::Recorded;
use crate::meta_audiences::appsecret_proof;

/// Keys Meta takes in a schema; the ones in `RAW_KEYS` are not hashed.
const KEYS: [&str; 15] = [
    "EXTERN_ID",
    "EMAIL",
    "PHONE",
    "DOBY",
    "DOBM",
    "DOBD",
    "LN",
    "FN",
    "FI",
    "GEN",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "MADID",
];
const RAW_KEYS: [&str; 2] = ["EXTERN_ID", "MADID"];
const MAX_ROWS: usize = 10_000;
/// The first id the fake gives a new audience.
const FIRST_AUDIENCE_ID: u64 = 23_850_000_000_001;

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("access_token".into(), json!(META_ACCESS_TOKEN));
    map.insert(
        "ad_account_id".into(),
        json!(format!("act_{META_AD_ACCOUNT_ID}")),
    );
    map.insert("app_secret".into(), json!(META_APP_SECRET));
    map.insert("default_country".into(), json!("US"));
    map.insert("api_url".into(), json!(base));
    map
}

fn error(request: &Recorded, code: i64, subcode: Option<i64>, message: &str) -> Answer {
    let mut error = json!({
        "message": message,
        "type": if code == 190 || code == 104 { "OAuthException" } else { "GraphMethodException" },
        "code": code,
        "fbtrace_id": format!("A{}", request_id(&request.body)),
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    Answer::json(400, &json!({"error": error}))
}

pub(super) fn throttled(request: &Recorded, retry_after: u64) -> Answer {
    let usage = json!({
        META_AD_ACCOUNT_ID: [{
            "type": "custom_audience",
            "call_count": 100,
            "total_cputime": 4,
            "total_time": 6,
            "estimated_time_to_regain_access": retry_after.div_ceil(60).max(1),
        }]
    });
    let mut error = json!({
        "message": "(#80003) There have been too many calls to this ad-account. Wait a bit and try again.",
        "type": "OAuthException",
        "is_transient": true,
        "code": 80003,
        "error_subcode": 2446079,
        "fbtrace_id": format!("A{}", request_id(&request.body)),
    });
    error["error_user_title"] = json!("Too many calls");
    Answer::json(400, &json!({"error": error}))
        .with_header("x-business-use-case-usage", &usage.to_string())
}

/// The token of the request, if any.
fn token(request: &Recorded) -> Option<String> {
    if let Some(bearer) = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "))
    {
        return Some(bearer.to_string());
    }
    query_param(request, "access_token").map(str::to_string)
}

pub(super) fn respond(
    request: &Recorded,
    state: &mut AdState,
    accepted: &mut Vec<Value>,
) -> Answer {
    let parts: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let Some(version) = parts.first().copied() else {
        return error(request, 100, None, "Unsupported request");
    };
    if !matches!(version, "v24.0" | "v25.0") {
        let known = version
            .strip_prefix('v')
            .and_then(|rest| rest.split_once('.'))
            .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
        return if known {
            error(
                request,
                2635,
                None,
                "(#2635) You are calling a deprecated version of the Ads API.",
            )
        } else {
            error(request, 100, None, "Unknown path components")
        };
    }
    let Some(token) = token(request) else {
        return error(
            request,
            104,
            None,
            "An access token is required to request this resource.",
        );
    };
    if !state.takes(&token, META_ACCESS_TOKEN) {
        return error(
            request,
            190,
            Some(460),
            "Error validating access token: The session has been invalidated.",
        );
    }
    match query_param(request, "appsecret_proof") {
        None => {
            return error(
                request,
                100,
                None,
                "API calls from the server require an appsecret_proof argument",
            );
        }
        Some(proof) if proof != appsecret_proof(META_APP_SECRET, &token) => {
            return error(
                request,
                100,
                None,
                "Invalid appsecret_proof provided in the API argument",
            );
        }
        Some(_) => {}
    }
    match (request.method.as_str(), &parts[1..]) {
        ("POST", [account, "customaudiences"]) => create(request, account, state),
        ("POST" | "DELETE", [audience, "users"]) => members(request, audience, state, accepted),
        _ => error(
            request,
            100,
            Some(33),
            "Unsupported request. Object does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
        ),
    }
}

fn body_object(request: &Recorded) -> Option<Map<String, Value>> {
    if !content_type_is(request, "application/json") {
        return None;
    }
    match request.json()? {
        Value::Object(body) => Some(body),
        _ => None,
    }
}

fn create(request: &Recorded, account: &str, state: &mut AdState) -> Answer {
    if account.strip_prefix("act_") != Some(META_AD_ACCOUNT_ID) {
        return error(
            request,
            100,
            Some(33),
            "Unsupported post request. Object does not exist.",
        );
    }
    let Some(body) = body_object(request) else {
        return error(request, 100, None, "(#100) Invalid parameter");
    };
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    if name.trim().is_empty() {
        return error(request, 100, None, "(#100) The parameter name is required");
    }
    if body.get("subtype").and_then(Value::as_str) != Some("CUSTOM") {
        return error(
            request,
            100,
            None,
            "(#100) subtype must be CUSTOM for a customer file audience",
        );
    }
    let source = body.get("customer_file_source").and_then(Value::as_str);
    if !matches!(
        source,
        Some("USER_PROVIDED_ONLY" | "PARTNER_PROVIDED_ONLY" | "BOTH_USER_AND_PARTNER_PROVIDED")
    ) {
        return error(
            request,
            100,
            Some(1870053),
            "(#100) customer_file_source is required",
        );
    }
    let id = state.create(FIRST_AUDIENCE_ID, name);
    Answer::json(200, &json!({"id": id}))
}

fn members(
    request: &Recorded,
    audience: &str,
    state: &mut AdState,
    accepted: &mut Vec<Value>,
) -> Answer {
    if audience == MISSING_AUDIENCE_ID
        || audience.is_empty()
        || !audience.bytes().all(|b| b.is_ascii_digit())
    {
        return error(
            request,
            100,
            Some(33),
            "Unsupported post request. Object with ID does not exist, cannot be loaded due to missing permissions, or does not support this operation.",
        );
    }
    let Some(body) = body_object(request) else {
        return error(
            request,
            100,
            None,
            "(#100) Invalid parameter: the body must be a JSON object",
        );
    };
    let Some(Value::Object(session)) = body.get("session") else {
        return error(
            request,
            100,
            None,
            "(#100) The parameter session is required",
        );
    };
    let session_id = session
        .get("session_id")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0 && *id <= i64::MAX as u64);
    let seq = session
        .get("batch_seq")
        .and_then(Value::as_u64)
        .filter(|seq| *seq >= 1);
    let last = session.get("last_batch_flag").and_then(Value::as_bool);
    let total_ok = session
        .get("estimated_num_total")
        .is_none_or(|total| total.as_u64().is_some());
    let (Some(session_id), Some(seq), Some(last), true) = (session_id, seq, last, total_ok) else {
        return error(
            request,
            100,
            None,
            "(#100) session must have session_id (positive integer), batch_seq (from 1) and last_batch_flag",
        );
    };
    let Some(Value::Object(payload)) = body.get("payload") else {
        return error(
            request,
            100,
            None,
            "(#100) The parameter payload is required",
        );
    };
    let schema: Vec<&str> = match payload.get("schema") {
        Some(Value::String(key)) => vec![key.as_str()],
        Some(Value::Array(keys)) => keys.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let schema_len = match payload.get("schema") {
        Some(Value::Array(keys)) => keys.len(),
        _ => schema.len(),
    };
    if schema.is_empty()
        || schema.len() != schema_len
        || schema.iter().any(|key| !KEYS.contains(key))
    {
        return error(
            request,
            100,
            None,
            "(#100) payload.schema must list supported keys",
        );
    }
    if (1..schema.len()).any(|i| schema[..i].contains(&schema[i])) {
        return error(request, 100, None, "(#100) payload.schema has a key twice");
    }
    let Some(Value::Array(data)) = payload.get("data") else {
        return error(
            request,
            100,
            None,
            "(#100) The parameter payload.data is required",
        );
    };
    if data.is_empty() || data.len() > MAX_ROWS {
        return error(
            request,
            100,
            None,
            "(#100) payload.data must hold 1 to 10000 rows",
        );
    }
    let single = matches!(payload.get("schema"), Some(Value::String(_)));
    let mut rows: Vec<Vec<&str>> = Vec::with_capacity(data.len());
    for row in data {
        let cells: Option<Vec<&str>> = match (single, row) {
            (true, Value::String(cell)) => Some(vec![cell.as_str()]),
            (false, Value::Array(cells)) if cells.len() == schema.len() => {
                cells.iter().map(Value::as_str).collect()
            }
            _ => None,
        };
        let Some(cells) = cells else {
            return error(
                request,
                100,
                None,
                "(#100) every row of payload.data must hold one string per schema key",
            );
        };
        rows.push(cells);
    }
    // The session: batches go up; one repeated is a retry; nothing after the last.
    let entry = state.sessions.entry(session_id).or_default();
    if entry.closed_at.is_some_and(|closed| seq > closed) {
        return error(
            request,
            100,
            None,
            "(#100) The upload session has already finished",
        );
    }
    let highest = entry.seen.last().copied().unwrap_or(0);
    if seq < highest && !entry.seen.contains(&seq) {
        return error(
            request,
            100,
            None,
            "(#100) batch_seq must increase within a session",
        );
    }
    entry.seen.insert(seq);
    if last {
        entry.closed_at = Some(seq);
    }
    let add = request.method == "POST";
    let mut invalid = Map::new();
    for (index, cells) in rows.iter().enumerate() {
        let mut member = Member::new();
        let mut bad = None;
        for (key, cell) in schema.iter().zip(cells) {
            if cell.is_empty() {
                continue;
            }
            let ok = if RAW_KEYS.contains(key) {
                *key == "EXTERN_ID"
                    || (!looks_hashed(cell) && cell.chars().all(|c| !c.is_ascii_uppercase()))
            } else {
                is_lower_hex(cell, 64)
            };
            if !ok {
                bad = Some(*key);
                break;
            }
            member.insert((*key).to_string(), (*cell).to_string());
        }
        if bad.is_none() && member.is_empty() {
            bad = Some("empty row");
        }
        if let Some(key) = bad {
            invalid.insert(index.to_string(), json!(format!("invalid {key}")));
            continue;
        }
        accepted.push(json!({"audience": audience, "action": if add { "add" } else { "remove" }, "ids": member}));
        if add {
            state.add(audience, member);
        } else {
            state.remove(audience, &member);
        }
    }
    Answer::json(
        200,
        &json!({
            "audience_id": audience,
            "session_id": session_id,
            "num_received": rows.len(),
            "num_invalid_entries": invalid.len(),
            "invalid_entry_samples": invalid,
        }),
    )
}
