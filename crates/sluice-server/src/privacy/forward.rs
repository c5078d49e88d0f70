//! Forwarding a deletion to the workspace's destinations whose tool has a deletion API
//! (Amplitude's User Privacy API, Mixpanel's GDPR API, a webhook's `delete` event), and
//! recording each answer. An ad-platform audience destination gets the person's removal from
//! every platform audience a sync put them in (the removal events are built by the caller
//! before the person is erased). A tool without either is reported `NOT_SUPPORTED`.
//!
//! Answers are kept in the regulation's report with the person's identifiers replaced by
//! `[redacted]`, since a tool may echo them back.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use sluice_delivery::http::Client;
use sluice_destinations::{Adapter, HttpRequest, HttpResponse, Outgoing, Verdict};
use sluice_privacy::Status;
use sluice_privacy::Vault;
use sluice_store::{Destination, StateStore, WorkspaceId};

use crate::admin::destinations::open_settings;
use crate::store_call;

/// Time limit of one deletion request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Tries of one request when the tool asks to retry (429, 5xx, no answer).
const TRIES: u32 = 3;
/// The longest wait between tries (a longer `Retry-After` is cut to this).
const MAX_WAIT: Duration = Duration::from_secs(10);

/// What one destination made of the deletion.
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationOutcome {
    pub destination: Destination,
    pub status: Status,
    pub http_status: Option<u16>,
    /// The reason of a failure, or the start of the tool's answer, identifiers redacted.
    pub detail: String,
    pub finished_at: String,
}

impl DestinationOutcome {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.destination.id.as_str(),
            "name": self.destination.name,
            "type": self.destination.kind,
            "sources": self.destination.sources,
            "status": self.status.as_str(),
            "httpStatus": self.http_status,
            "errString": if self.status == Status::Finished || self.status == Status::NotSupported { Value::Null } else { Value::String(self.detail.clone()) },
            "answer": self.detail,
            "finishedAt": self.finished_at,
        })
    }
}

/// Tells every destination of the workspace to delete the person known by `user_ids` (their
/// user ids and anonymous ids), or sends it `removals` (membership events, by destination id);
/// `redact` are the values to keep out of the report.
pub async fn forward(
    state: &std::sync::Arc<StateStore>,
    vault: &std::sync::Arc<Vault>,
    workspace: &WorkspaceId,
    user_ids: &[String],
    removals: &HashMap<String, Vec<String>>,
    redact: &[String],
) -> Result<Vec<DestinationOutcome>, sluice_store::StoreError> {
    let store = std::sync::Arc::clone(state);
    let ws = workspace.clone();
    let destinations = store_call(move || store.list_destinations(&ws)).await?;
    let client = Client::new(REQUEST_TIMEOUT).ok();
    let mut outcomes = Vec::with_capacity(destinations.len());
    for destination in destinations {
        let removed = removals.get(destination.id.as_str()).map(Vec::as_slice);
        let outcome = forward_one(
            state,
            &destination,
            vault,
            client.as_ref(),
            user_ids,
            removed,
            redact,
        )
        .await;
        outcomes.push(DestinationOutcome {
            destination,
            status: outcome.0,
            http_status: outcome.1,
            detail: outcome.2,
            finished_at: sluice_spec::timestamp::format(time::OffsetDateTime::now_utc()),
        });
    }
    Ok(outcomes)
}

async fn forward_one(
    state: &std::sync::Arc<StateStore>,
    destination: &Destination,
    vault: &std::sync::Arc<Vault>,
    client: Option<&Client>,
    user_ids: &[String],
    removals: Option<&[String]>,
    redact: &[String],
) -> (Status, Option<u16>, String) {
    let (store, keys, opened) = (
        std::sync::Arc::clone(state),
        std::sync::Arc::clone(vault),
        destination.clone(),
    );
    let settings = match store_call(move || Ok(open_settings(&store, &keys, &opened))).await {
        Ok(Ok(settings)) => settings,
        Ok(Err(error)) => return (Status::Failed, None, format!("settings: {error}")),
        Err(error) => return (Status::Failed, None, format!("settings: {error}")),
    };
    let adapter = match sluice_destinations::build(&destination.kind, &settings) {
        Ok(adapter) => adapter,
        Err(error) => return (Status::Failed, None, format!("settings: {error}")),
    };
    let Some(client) = client else {
        return (Status::Failed, None, "no http client".to_owned());
    };
    if let Some(events) = removals {
        return send_removals(adapter.as_ref(), client, events, destination, redact).await;
    }
    if matches!(
        sluice_destinations::audience::audience_platform(&destination.kind, &settings),
        Ok(Some(_))
    ) {
        return (
            Status::Finished,
            None,
            "the person is in none of the audiences synced to it".to_owned(),
        );
    }
    let Some(requests) = adapter.plan_deletion(user_ids, time::OffsetDateTime::now_utc()) else {
        return (
            Status::NotSupported,
            None,
            format!("{} takes no deletion requests", destination.kind),
        );
    };
    if requests.is_empty() {
        return (
            Status::Finished,
            None,
            "the person has no user id or anonymous id to forward".to_owned(),
        );
    }
    let mut last_status = None;
    let mut answers = Vec::new();
    for request in requests {
        let classify = |response: &HttpResponse| adapter.classify_deletion(response);
        match send(client, request, &classify, destination, redact).await {
            Ok((status, text)) => {
                last_status = status.or(last_status);
                answers.push(text);
            }
            Err(failed) => return failed,
        }
    }
    (
        Status::Finished,
        last_status,
        scrub(&answers.join(" | "), redact),
    )
}

/// Sends the removals of a person from ad-platform audiences through the adapter.
async fn send_removals(
    adapter: &dyn Adapter,
    client: &Client,
    events: &[String],
    destination: &Destination,
    redact: &[String],
) -> (Status, Option<u16>, String) {
    let cells: Vec<OnceLock<Value>> = events.iter().map(|_| OnceLock::new()).collect();
    let outgoing: Vec<Outgoing<'_>> = events
        .iter()
        .zip(&cells)
        .map(|(json, cell)| Outgoing::new(json, cell))
        .collect();
    let plan = adapter.build(&outgoing);
    if let Some((_, reason)) = plan.invalid.first().or(plan.unsupported.first()) {
        return (Status::Failed, None, scrub(reason, redact));
    }
    let mut last_status = None;
    let mut sent = 0;
    for planned in plan.requests {
        let count = planned.events.len();
        let classify = |response: &HttpResponse| adapter.classify(response, count);
        match send(client, planned.request, &classify, destination, redact).await {
            Ok((status, _)) => {
                last_status = status.or(last_status);
                sent += count;
            }
            Err(failed) => return failed,
        }
    }
    (
        Status::Finished,
        last_status,
        format!("removed from {sent} platform audience(s)"),
    )
}

/// Sends one request, trying again while the tool asks to: the status and the start of the
/// answer, or the outcome of a failure.
async fn send(
    client: &Client,
    request: HttpRequest,
    classify: &(dyn Fn(&HttpResponse) -> Verdict + Sync),
    destination: &Destination,
    redact: &[String],
) -> Result<(Option<u16>, String), (Status, Option<u16>, String)> {
    let mut tries = 0;
    loop {
        tries += 1;
        let (verdict, status, text) = match client.send(request.clone(), REQUEST_TIMEOUT).await {
            Ok(response) => (
                classify(&response),
                Some(response.status),
                answer_text(&response),
            ),
            Err(error) => (
                Verdict::Retry {
                    after: None,
                    reason: error.to_string(),
                },
                None,
                error.to_string(),
            ),
        };
        match verdict {
            Verdict::Delivered => return Ok((status, text)),
            Verdict::Retry { after, reason } if tries < TRIES => {
                let wait = after
                    .unwrap_or(Duration::from_millis(500 * u64::from(tries)))
                    .min(MAX_WAIT);
                tracing::debug!(destination = %destination.id, %reason, "deletion request will be retried");
                tokio::time::sleep(wait).await;
            }
            Verdict::Retry { reason, .. } | Verdict::Reject { reason } => {
                return Err((Status::Failed, status, scrub(&reason, redact)));
            }
            Verdict::Unauthorized { reason } => {
                let reason = format!("the tool refused the credentials: {reason}");
                return Err((Status::Failed, status, scrub(&reason, redact)));
            }
            Verdict::Partial(_) => {
                return Err((
                    Status::Failed,
                    status,
                    scrub(&format!("partial answer: {text}"), redact),
                ));
            }
        }
    }
}

fn answer_text(response: &HttpResponse) -> String {
    sluice_destinations::contract::excerpt(&response.body)
}

/// The text with every value replaced by `[redacted]`.
pub fn scrub(text: &str, values: &[String]) -> String {
    let mut out = text.to_owned();
    for value in values {
        if !value.is_empty() && out.contains(value.as_str()) {
            out = out.replace(value.as_str(), "[redacted]");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_every_value() {
        let values = vec![
            "u-42".to_owned(),
            "jane@example.com".to_owned(),
            String::new(),
        ];
        assert_eq!(
            scrub(
                r#"{"user_ids":["u-42"],"email":"jane@example.com","x":"u-42"}"#,
                &values
            ),
            r#"{"user_ids":["[redacted]"],"email":"[redacted]","x":"[redacted]"}"#
        );
        assert_eq!(scrub("nothing here", &values), "nothing here");
    }
}
