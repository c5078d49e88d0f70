//! The tracking API, wire-compatible with Segment and RudderStack.
//!
//! `POST /v1/{call}` where `call` is a message type (`identify`, `track`, `page`, `screen`,
//! `group`, `alias`), its one-letter browser form (`i`, `t`, `p`, `s`, `g`, `a`), or a batch
//! (`batch`, `b`, `import`). The flow of a request:
//!
//! 1. read the body within the size limit, decompressing gzip (see [`body`]);
//! 2. find the source: Basic auth first, else `writeKey` in the body (see [`auth`]);
//! 3. split the body into messages and normalize each (`sluice-spec`);
//! 4. drop the events of suppressed people (see [`crate::privacy::lists`]), apply the
//!    workspace's privacy gate (PII block and redact, the children policy; see
//!    [`crate::privacy::gate`]), append the other valid ones to the log — the answer waits
//!    for the fsync;
//! 5. answer exactly 200 with counts and the refused messages, or an error.
//!
//! The body is parsed as JSON whatever the `Content-Type` says: the SDKs send
//! `application/json`, `text/plain` and `application/x-www-form-urlencoded`.

pub mod auth;
pub mod body;
pub mod client_ip;

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_spec::{
    MessageType, ParsedRequest, Receipt, Rejection, normalize, parse_batch, parse_single,
};
use sluice_store::{AppendOutcome, NewEvent, SourceAuth};
use time::OffsetDateTime;

use sluice_privacy::{RegulationRequest, RegulationType, SubjectType};

use crate::error::ApiError;
use crate::privacy::gate::{self, GatePolicy, Verdict};
use crate::privacy::regulate::EVENTS_SUPPRESSED;
use crate::startup::AppState;
use crate::telemetry::{EVENTS_ACCEPTED, EVENTS_DEDUPLICATED, EVENTS_REJECTED};

/// What a `/v1/{call}` path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Single(MessageType),
    Batch,
}

impl Call {
    pub fn from_path(segment: &str) -> Option<Call> {
        if matches!(segment, "batch" | "b" | "import") {
            return Some(Call::Batch);
        }
        for kind in MessageType::ALL {
            if segment == kind.as_str() || segment == kind.short_path() {
                return Some(Call::Single(kind));
            }
        }
        None
    }
}

/// One refused message of a batch.
#[derive(Debug, Serialize)]
pub struct RejectedMessage {
    pub index: usize,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize)]
struct Answer {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    accepted: usize,
    duplicates: usize,
    rejected: Vec<RejectedMessage>,
}

/// `POST /v1/{call}`.
pub async fn collect(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(segment): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(call) = Call::from_path(&segment) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no tracking endpoint /v1/{segment}"),
        )
        .into_response();
    };
    match handle(&app, call, peer, &headers, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle(
    app: &AppState,
    call: Call,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let received_at = OffsetDateTime::now_utc();
    let limits = app.limits;

    // Authenticate from the header before reading the body, when we can.
    let header_key =
        auth::basic_auth_key(headers).inspect_err(|e| count_rejected("unknown", e.code, 1))?;
    let mut source = match &header_key {
        Some(key) => Some(
            app.keys
                .authenticate(key)
                .await
                .inspect_err(|e| count_rejected("unknown", e.code, 1))?,
        ),
        None => None,
    };
    let label = |source: &Option<SourceAuth>| {
        source
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |s| s.source_id.clone())
    };

    let bytes = body::read(headers, body, &limits)
        .await
        .map_err(|rejection| refuse_request(&label(&source), rejection))?;
    let parsed: ParsedRequest = match call {
        Call::Single(_) => parse_single(&bytes, &limits),
        Call::Batch => parse_batch(&bytes, &limits),
    }
    .map_err(|rejection| refuse_request(&label(&source), rejection))?;

    if source.is_none() {
        let Some(key) = parsed.write_key() else {
            count_rejected("unknown", "missing_write_key", parsed.messages.len().max(1));
            return Err(ApiError::unauthorized(
                "missing_write_key",
                "send the write key as the basic auth user name or as writeKey in the body",
            ));
        };
        source = Some(
            app.keys
                .authenticate(&key)
                .await
                .inspect_err(|e| count_rejected("unknown", e.code, 1))?,
        );
    }
    let Some(source) = source else {
        return Err(ApiError::internal("source lookup failed"));
    };

    let receipt = Receipt {
        received_at,
        client_ip: Some(client_ip::client_ip(
            peer.ip(),
            headers,
            &app.trusted_proxies,
        )),
        header_sent_at: headers
            .get("sentat")
            .and_then(|value| value.to_str().ok())
            .and_then(sluice_spec::timestamp::parse),
        // Global Privacy Control: browsers with the setting on send `Sec-GPC: 1`.
        global_privacy_control: headers
            .get("sec-gpc")
            .is_some_and(|value| value.as_bytes().trim_ascii() == b"1"),
    };
    let path_kind = match call {
        Call::Single(kind) => Some(kind),
        Call::Batch => None,
    };
    let received_at_ms = sluice_spec::timestamp::to_ms(received_at);

    let total = parsed.messages.len();
    // Each valid event with its index in the request, for the answer.
    let mut events: Vec<(usize, NewEvent)> = Vec::with_capacity(total);
    let mut rejected = Vec::new();
    for (index, message) in parsed.messages.into_iter().enumerate() {
        let normalized =
            message.and_then(|message| normalize(path_kind, message, &parsed.envelope, &receipt));
        match normalized {
            Ok(event) => events.push((
                index,
                NewEvent {
                    workspace_id: source.workspace_id.clone(),
                    source_id: source.source_id.clone(),
                    message_id: event.message_id,
                    user_id: event.user_id,
                    anonymous_id: event.anonymous_id,
                    received_at_ms,
                    body: event.body,
                },
            )),
            Err(rejection) => {
                metrics::counter!(EVENTS_REJECTED, "source" => source.source_id.clone(), "reason" => rejection.code.as_str())
                    .increment(1);
                rejected.push(RejectedMessage {
                    index,
                    code: rejection.code.as_str(),
                    message: rejection.message,
                    field: rejection.field,
                });
            }
        }
    }
    let invalid = rejected.len();

    // A single call with an invalid message is an error like any other.
    if let (Call::Single(_), Some(first)) = (call, rejected.first()) {
        let mut error = ApiError::bad_request(first.code, first.message.clone());
        error.field = first.field.clone();
        return Err(error);
    }

    // Events of a suppressed person are answered like accepted ones (the SDKs must not
    // retry them, and a public write key must not tell who is suppressed), counted, and
    // never written.
    let mut accepted = 0;
    if let Some(checker) = app.privacy.suppressed.checker(&source.workspace_id) {
        let before = events.len();
        events.retain(|(_, event)| !checker.holds(event));
        let suppressed = before - events.len();
        if suppressed > 0 {
            metrics::counter!(EVENTS_SUPPRESSED, "source" => source.source_id.clone())
                .increment(suppressed as u64);
            accepted += suppressed;
        }
    }
    if let Some(policy) = app.privacy.gate.policy(&source.workspace_id) {
        accepted += apply_gate(
            app,
            &policy,
            &source,
            received_at,
            &mut events,
            &mut rejected,
        )
        .await;
    }
    let mut duplicates = 0;
    if !events.is_empty() {
        let events: Vec<NewEvent> = events.into_iter().map(|(_, event)| event).collect();
        let outcomes = app.log.append(events).await.map_err(|error| {
            count_rejected(&source.source_id, "unavailable", total - rejected.len());
            ApiError::from(error)
        })?;
        for outcome in outcomes {
            match outcome {
                AppendOutcome::Appended(_) => accepted += 1,
                AppendOutcome::Duplicate => duplicates += 1,
            }
        }
    }
    metrics::counter!(EVENTS_ACCEPTED, "source" => source.source_id.clone())
        .increment(accepted as u64);
    if duplicates > 0 {
        metrics::counter!(EVENTS_DEDUPLICATED, "source" => source.source_id.clone())
            .increment(duplicates as u64);
    }

    // Events refused by the PII policy are listed, but the request itself was fine.
    let all_refused = total > 0 && invalid == total;
    let answer = Answer {
        success: !all_refused,
        code: all_refused.then_some("all_messages_rejected"),
        message: all_refused.then(|| "every message in the batch was refused".to_owned()),
        accepted,
        duplicates,
        rejected,
    };
    let status = if all_refused {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, Json(answer)).into_response())
}

/// Applies the workspace's gate policy (see [`crate::privacy::gate`]): blocked events are
/// listed in `rejected` and children's events dropped, neither written. Returns how many were
/// dropped as children's (answered as accepted).
async fn apply_gate(
    app: &AppState,
    policy: &GatePolicy,
    source: &SourceAuth,
    received_at: OffsetDateTime,
    events: &mut Vec<(usize, NewEvent)>,
    rejected: &mut Vec<RejectedMessage>,
) -> usize {
    let today = received_at.date();
    let mut children = Vec::new();
    let mut kept = Vec::with_capacity(events.len());
    for (index, mut event) in events.drain(..) {
        match gate::check(policy, &mut event, today) {
            Verdict::Keep => kept.push((index, event)),
            Verdict::Blocked { path, class } => {
                count_rejected(&source.source_id, "pii_blocked", 1);
                rejected.push(RejectedMessage {
                    index,
                    code: "pii_blocked",
                    message: format!(
                        "{path} holds {}, which this workspace blocks: the event was not stored",
                        class.as_str()
                    ),
                    field: Some(path),
                });
            }
            Verdict::Child => children.push(event),
        }
    }
    *events = kept;
    rejected.sort_by_key(|refused| refused.index);
    if !children.is_empty() {
        metrics::counter!(EVENTS_SUPPRESSED, "source" => source.source_id.clone())
            .increment(children.len() as u64);
    }
    for child in &children {
        report_child(app, child).await;
    }
    children.len()
}

/// Asks the regulation worker to suppress and delete a child (once per person between two
/// reloads of the gate).
async fn report_child(app: &AppState, event: &NewEvent) {
    let (subject_type, id) = match (&event.user_id, &event.anonymous_id) {
        (Some(user), _) => (SubjectType::UserId, user),
        (None, Some(anonymous)) => (SubjectType::AnonymousId, anonymous),
        (None, None) => return,
    };
    if !app.privacy.gate.first_report(&event.workspace_id, id) {
        return;
    }
    let request =
        match RegulationRequest::new(RegulationType::SuppressWithDelete, subject_type, &[id]) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "children policy: the subject cannot be regulated");
                return;
            }
        };
    match app.privacy.submit(&event.workspace_id, request).await {
        Ok(regulation) => {
            tracing::info!(regulation = %regulation.id, "children policy: suppression and deletion requested")
        }
        Err(error) => tracing::error!(%error, "children policy: cannot record the regulation"),
    }
}

fn count_rejected(source: &str, reason: &'static str, count: usize) {
    metrics::counter!(EVENTS_REJECTED, "source" => source.to_owned(), "reason" => reason)
        .increment(count as u64);
}

fn refuse_request(source: &str, rejection: Rejection) -> ApiError {
    count_rejected(source, rejection.code.as_str(), 1);
    ApiError::from(rejection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_path_maps() {
        for (path, call) in [
            ("identify", Call::Single(MessageType::Identify)),
            ("t", Call::Single(MessageType::Track)),
            ("page", Call::Single(MessageType::Page)),
            ("s", Call::Single(MessageType::Screen)),
            ("g", Call::Single(MessageType::Group)),
            ("alias", Call::Single(MessageType::Alias)),
            ("batch", Call::Batch),
            ("b", Call::Batch),
            ("import", Call::Batch),
        ] {
            assert_eq!(Call::from_path(path), Some(call), "{path}");
        }
        assert_eq!(Call::from_path("m"), None);
        assert_eq!(Call::from_path("Track"), None);
    }
}
