//! Mixpanel import requests and answers.
//!
//! Requests: `POST <base>/import?strict=1[&project_id=..]`, Basic auth, a JSON array of at most
//! 2000 events and 10 MB; an event over 1 MB is never sent (Mixpanel refuses it).
//!
//! Answers, as Mixpanel documents them: `200` ingested; `400` with `failed_records` (strict
//! mode) → those events rejected, every other one was ingested; a `400` without them, `401`,
//! `403`, `413` → rejected; `429` and `5xx` → retried (`Retry-After` honoured when sent).

use serde::Deserialize;
use serde_json::Value;

use crate::contract::{HttpResponse, Plan, Verdict, classify_status, excerpt};
use crate::request::{Limits, join, json_post, partial, plan_batches};

use super::mapping;
use super::settings::MixpanelSettings;

/// Most events in one import request.
pub(super) const MAX_EVENTS: usize = 2000;

/// Import limits: 2000 events, 10 MB per request, 1 MB per event (uncompressed).
pub(super) const LIMITS: Limits = Limits {
    max_records: MAX_EVENTS,
    max_bytes: 10 * 1024 * 1024,
    envelope_bytes: 2,
    max_record_bytes: 1024 * 1024,
};

pub(super) fn plan(settings: &MixpanelSettings, events: &[&Value]) -> Plan {
    plan_batches(
        events,
        LIMITS,
        "mixpanel",
        |event| mapping::map(settings, event),
        |batch| {
            let headers = vec![(
                "Authorization".to_string(),
                settings.authorization.expose().to_string(),
            )];
            json_post(settings.endpoint.clone(), headers, join(b"[", batch, b"]"))
        },
    )
}

/// The body of a strict-mode validation failure.
#[derive(Deserialize)]
struct ImportError {
    #[serde(default)]
    failed_records: Vec<FailedRecord>,
}

#[derive(Deserialize)]
struct FailedRecord {
    index: usize,
    #[serde(default)]
    field: String,
    #[serde(default)]
    message: String,
}

pub(super) fn classify(response: &HttpResponse, events: usize) -> Verdict {
    let reject = |what: &str| Verdict::Reject {
        reason: format!(
            "mixpanel: {what} (http {}): {}",
            response.status,
            excerpt(&response.body)
        ),
    };
    match response.status {
        400 => {
            let failed = serde_json::from_slice::<ImportError>(&response.body)
                .map(|body| body.failed_records)
                .unwrap_or_default();
            if failed.is_empty() {
                return reject("request refused");
            }
            let rejected: Vec<(usize, String)> = failed
                .into_iter()
                .map(|record| {
                    let reason = format!("mixpanel: {}: {}", record.field, record.message);
                    (record.index, reason)
                })
                .collect();
            partial(events, &rejected, &Verdict::Delivered)
        }
        401 | 403 => reject("credentials refused"),
        413 => reject("request too large"),
        _ => classify_status(response),
    }
}
