//! Amplitude upload requests and answers.
//!
//! Requests: `POST <base>/2/httpapi` (1 MB) or `<base>/batch` (20 MB), JSON
//! `{"api_key", "events": [..], "options"}`, at most 2000 events.
//!
//! Answers, as Amplitude documents them: `200` ingested. A `400` fails the whole request; when
//! it names events (`events_with_invalid_fields`, `events_with_missing_fields`,
//! `silenced_events`) those are rejected and the others retried (Amplitude's advice: remove
//! them and resend the rest; `insert_id` makes a resend safe); a `400` naming none (bad key,
//! bad JSON) rejects all. `413` rejects (batches are cut below the limit). `429` retries after
//! `Retry-After`, else 30 s (HTTP V2) or 15 s (Batch), or an hour when a daily quota is spent.
//! `5xx` retries.

use std::time::Duration;

use serde_json::Value;

use crate::contract::{HttpResponse, Plan, Verdict, classify_status, excerpt, retry_after};
use crate::request::{Limits, join, json_post, partial, plan_batches, to_bytes};

use super::mapping;
use super::settings::{AmplitudeSettings, Api};

/// Most events in one request (both APIs).
pub(super) const MAX_EVENTS: usize = 2000;

pub(super) fn plan(settings: &AmplitudeSettings, events: &[&Value]) -> Plan {
    let mut prefix = br#"{"api_key":"#.to_vec();
    prefix.extend(to_bytes(&Value::String(
        settings.api_key.expose().to_string(),
    )));
    prefix.extend_from_slice(br#","events":["#);
    let suffix = match settings.min_id_length {
        Some(length) => format!(r#"],"options":{{"min_id_length":{length}}}}}"#).into_bytes(),
        None => b"]}".to_vec(),
    };
    let max_bytes = match settings.api {
        Api::HttpV2 => 1_000_000,
        Api::Batch => 20_000_000,
    };
    let limits = Limits {
        max_records: MAX_EVENTS,
        max_bytes,
        envelope_bytes: prefix.len() + suffix.len(),
        max_record_bytes: max_bytes,
    };
    plan_batches(
        events,
        limits,
        "amplitude",
        |event| mapping::map(settings, event),
        |batch| {
            let headers = vec![("Accept".to_string(), "*/*".to_string())];
            json_post(
                settings.endpoint.clone(),
                headers,
                join(&prefix, batch, &suffix),
            )
        },
    )
}

/// (index, reason) for every event a `400` names.
fn named_events(body: &Value) -> Vec<(usize, String)> {
    let mut named = Vec::new();
    for (key, what) in [
        ("events_with_invalid_fields", "invalid"),
        ("events_with_missing_fields", "missing"),
    ] {
        for (field, indices) in body
            .get(key)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            for index in indices
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_u64)
            {
                let reason = format!("amplitude: {what} field {field}");
                named.push((usize::try_from(index).unwrap_or(usize::MAX), reason));
            }
        }
    }
    for index in body
        .get("silenced_events")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
    {
        let reason = "amplitude: the event's device id is silenced".to_string();
        named.push((usize::try_from(index).unwrap_or(usize::MAX), reason));
    }
    named
}

pub(super) fn classify(api: Api, response: &HttpResponse, events: usize) -> Verdict {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let reason = |what: &str| {
        format!(
            "amplitude: {what} (http {}): {}",
            response.status,
            excerpt(&response.body)
        )
    };
    match response.status {
        400 => {
            let named = named_events(&body);
            if named.is_empty() {
                return Verdict::Reject {
                    reason: reason("request refused"),
                };
            }
            let rest = Verdict::Retry {
                after: None,
                reason: "amplitude refused the request for other events in it".into(),
            };
            partial(events, &named, &rest)
        }
        403 => Verdict::Reject {
            reason: reason("request blocked"),
        },
        413 => Verdict::Reject {
            reason: reason("payload too large"),
        },
        429 => {
            let quota_spent = ["exceeded_daily_quota_users", "exceeded_daily_quota_devices"]
                .iter()
                .any(|key| {
                    body.get(key)
                        .and_then(Value::as_object)
                        .is_some_and(|m| !m.is_empty())
                });
            let wait = if quota_spent {
                Duration::from_secs(3600)
            } else {
                match api {
                    Api::HttpV2 => Duration::from_secs(30),
                    Api::Batch => Duration::from_secs(15),
                }
            };
            Verdict::Retry {
                after: Some(retry_after(response).unwrap_or(wait)),
                reason: reason("throttled"),
            }
        }
        _ => classify_status(response),
    }
}
