//! The admin API of delivery, under `/api/v1/destinations/{id}/`: the destination's delivery
//! status and recent attempts (the debugger's destination view), its dead letters (list, show,
//! send again), replays, and its filters (read, replace, and a preview that tries filters on
//! an event without saving anything).
//!
//! The status says when the destination is paused and why: the platform refused its token
//! (the runner holds its events), or its OAuth connection cannot be used (it does not run);
//! for a destination that uses a connection, the connection's status and message too.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_delivery::Status;
use sluice_fql::DestinationFilter;
use sluice_spec::timestamp::{now_ms, to_ms};
use sluice_store::{
    DeadLetter, Destination, DestinationId, NewReplay, Replay, ReplayState, WorkspaceId,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::destinations::on_destination_changed;
use super::sources::json_body;
use super::{Scope, time_json};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

/// A destination whose oldest unfinished event is older than this is reported stuck.
pub const STUCK_AFTER: Duration = Duration::from_secs(15 * 60);

/// Fails with 404 unless the destination exists in the workspace.
async fn check_destination(
    app: &AppState,
    workspace: &WorkspaceId,
    id: &str,
) -> Result<Destination, ApiError> {
    let (state, workspace, id) = (app.state.clone(), workspace.clone(), id.to_owned());
    Ok(store_call(move || state.get_destination(&workspace, &id)).await?)
}

/// The status of a destination. `held`: why it does not run although enabled.
fn status_json(
    status: Option<&Status>,
    held: Option<String>,
    dead_letters: u64,
    now_ms: i64,
) -> Value {
    let Some(status) = status else {
        return json!({
            "running": false,
            "paused": held.is_some(),
            "paused_reason": held,
            "dead_letters": dead_letters,
        });
    };
    let oldest_age = status
        .oldest_unfinished_ms
        .map(|oldest| (now_ms - oldest).max(0) as f64 / 1e3);
    let stuck = oldest_age.is_some_and(|age| age > STUCK_AFTER.as_secs_f64());
    json!({
        "running": status.running,
        "paused": status.paused.is_some(),
        "paused_reason": status.paused.as_ref().map(|reason| format!("the platform refused the credentials: {reason}")),
        "unfinished_events": status.unfinished,
        "in_flight_requests": status.in_flight_requests,
        "oldest_unfinished_age_secs": oldest_age,
        "stuck": stuck,
        "last_delivery_at": status.last_delivery_ms.map_or(Value::Null, time_json),
        "last_error": status.last_error,
        "delivered": status.delivered,
        "retried": status.retried,
        "dead_lettered": status.dead_lettered,
        "filtered": status.filtered,
        "dead_letters": dead_letters,
    })
}

/// `GET /api/v1/destinations/{id}/delivery`
pub async fn status(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let destination = check_destination(&app, &scope.workspace_id, &id).await?;
    let running = app.deliveries.engine.status(&scope.workspace_id, &id).await;
    let held = destination
        .enabled
        .then(|| app.deliveries.held(&id))
        .flatten();
    let store = app.deliveries.store.clone();
    let (workspace, destination_id) = (scope.workspace_id.clone(), id.clone());
    let dead_letters =
        store_call(move || store.count_dead_letters(&workspace, &destination_id)).await?;
    let mut answer = status_json(running.as_ref(), held, dead_letters, now_ms());
    let named = destination
        .settings
        .plain
        .get(crate::connections::CONNECTION_SETTING)
        .and_then(Value::as_str)
        .map(str::to_owned);
    if let (Some(connection_id), Some(object)) = (named, answer.as_object_mut()) {
        let (state, workspace, wanted) = (
            app.state.clone(),
            scope.workspace_id.clone(),
            connection_id.clone(),
        );
        let in_use = app.deliveries.connection_version_in_use(&id);
        let connection = match store_call(move || state.get_connection(&workspace, &wanted)).await {
            Ok(connection) => json!({
                "id": connection.id,
                "provider": connection.provider,
                "status": connection.status.as_str(),
                "status_message": connection.status_message,
                "version": connection.version,
                "version_in_use": in_use,
            }),
            Err(sluice_store::StoreError::NotFound { .. }) => {
                json!({"id": connection_id, "status": "missing"})
            }
            Err(error) => return Err(error.into()),
        };
        object.insert("connection".into(), connection);
    }
    Ok(Json(answer))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    limit: Option<usize>,
    after: Option<i64>,
}

/// `GET /api/v1/destinations/{id}/attempts?limit=N`: the latest requests, newest first.
pub async fn attempts(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    Query(query): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    check_destination(&app, &scope.workspace_id, &id).await?;
    let limit = query
        .limit
        .unwrap_or(20)
        .clamp(1, sluice_delivery::runner::ATTEMPTS_KEPT);
    let status = app.deliveries.engine.status(&scope.workspace_id, &id).await;
    let mut attempts = Vec::new();
    if let Some(status) = status {
        for attempt in status.attempts.iter().rev().take(limit) {
            attempts.push(json!({
                "at": time_json(attempt.at_ms),
                "message_ids": attempt.message_ids,
                "target": attempt.target,
                "request_bytes": attempt.body_bytes,
                "status": attempt.status,
                "duration_ms": attempt.duration_ms,
                "outcome": attempt.outcome,
                "detail": attempt.detail,
            }));
        }
    }
    Ok(Json(json!({ "attempts": attempts })))
}

/// A dead letter as the API shows it (`with_event`: the logged event too).
pub fn letter_json(letter: &DeadLetter, with_event: bool) -> Value {
    let l = &letter.letter;
    let mut view = json!({
        "id": letter.id,
        "source_id": l.source_id,
        "message_id": l.message_id,
        "received_at": time_json(l.received_at_ms),
        "failed_at": time_json(l.failed_at_ms),
        "reason": l.reason,
        "status": l.status,
        "response": l.response,
        "attempts": l.attempts,
    });
    if with_event && let Some(object) = view.as_object_mut() {
        let event = serde_json::from_str(&l.body).unwrap_or(Value::Null);
        object.insert("event".into(), event);
    }
    view
}

/// `GET /api/v1/destinations/{id}/dead-letters?after=ID&limit=N`, oldest first.
pub async fn dead_letters(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    Query(query): Query<LimitQuery>,
) -> Result<Json<Value>, ApiError> {
    check_destination(&app, &scope.workspace_id, &id).await?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1_000);
    let after = query.after.unwrap_or(0);
    let store = app.deliveries.store.clone();
    let letters =
        store_call(move || store.dead_letters(&scope.workspace_id, &id, after, limit)).await?;
    let views: Vec<Value> = letters.iter().map(|l| letter_json(l, false)).collect();
    let next = letters.last().map(|l| l.id);
    Ok(Json(json!({ "dead_letters": views, "next_after": next })))
}

/// `GET /api/v1/destinations/{id}/dead-letters/{letter}`, with the event.
pub async fn dead_letter(
    State(app): State<AppState>,
    scope: Scope,
    Path((id, letter)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let store = app.deliveries.store.clone();
    let letter = store_call(move || store.dead_letter(&scope.workspace_id, &id, letter)).await?;
    Ok(Json(letter_json(&letter, true)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryRequest {
    /// These dead letters; absent: all of them.
    ids: Option<Vec<i64>>,
}

/// `POST /api/v1/destinations/{id}/dead-letters/retry` `{"ids": [..]}` (or `{}` for all).
pub async fn retry(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: RetryRequest = if body.is_empty() {
        RetryRequest { ids: None }
    } else {
        json_body(&body)?
    };
    check_destination(&app, &scope.workspace_id, &id).await?;
    let store = app.deliveries.store.clone();
    let marked =
        store_call(move || store.request_retry(&scope.workspace_id, &id, request.ids.as_deref()))
            .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "queued": marked }))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    source: String,
    /// RFC 3339; absent: from the first logged event.
    from: Option<String>,
    /// RFC 3339, exclusive; absent: to the end of the log when the replay starts.
    to: Option<String>,
}

/// An optional RFC 3339 time as milliseconds since the epoch; a bad one names `field`.
pub fn parse_time(text: &Option<String>, field: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let time = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| {
        ApiError::bad_request(
            "invalid_request",
            format!("{field} must be an RFC 3339 time"),
        )
        .with_field(field)
    })?;
    Ok(Some(to_ms(time)))
}

/// A replay job as the API shows it.
pub fn replay_json(replay: &Replay) -> Value {
    let state = match replay.state {
        ReplayState::Running => "running",
        ReplayState::Done => "done",
        ReplayState::Cancelled => "cancelled",
    };
    json!({
        "id": replay.id,
        "source_id": replay.replay.source_id,
        "from": replay.replay.from_ms.map_or(Value::Null, time_json),
        "to": replay.replay.to_ms.map_or(Value::Null, time_json),
        "state": state,
        "events": replay.events,
        "created_at": time_json(replay.created_at_ms),
        "finished_at": replay.finished_at_ms.map_or(Value::Null, time_json),
    })
}

/// `POST /api/v1/destinations/{id}/replays` `{"source": ID, "from"?: T, "to"?: T}`
pub async fn replay(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: ReplayRequest = json_body(&body)?;
    let from_ms = parse_time(&request.from, "from")?;
    let to_ms = parse_time(&request.to, "to")?;
    if let (Some(from), Some(to)) = (from_ms, to_ms)
        && from >= to
    {
        return Err(
            ApiError::bad_request("invalid_request", "from must be before to").with_field("to"),
        );
    }
    let state = app.state.clone();
    let (workspace, destination_id) = (scope.workspace_id.clone(), id.clone());
    let destination =
        store_call(move || state.get_destination(&workspace, &destination_id)).await?;
    if !destination.sources.contains(&request.source) {
        return Err(ApiError::bad_request(
            "unknown_source",
            "the destination is not connected to this source",
        )
        .with_field("source"));
    }
    let store = app.deliveries.store.clone();
    let replay = NewReplay {
        workspace_id: scope.workspace_id.clone(),
        destination_id: id,
        source_id: request.source,
        from_ms,
        to_ms,
        last_seq: None,
    };
    let job = store_call(move || store.add_replay(&replay, now_ms())).await?;
    Ok((StatusCode::ACCEPTED, Json(replay_json(&job))).into_response())
}

/// `GET /api/v1/destinations/{id}/replays`, newest first.
pub async fn replays(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_destination(&app, &scope.workspace_id, &id).await?;
    let store = app.deliveries.store.clone();
    let jobs = store_call(move || store.replays(&scope.workspace_id, &id, false)).await?;
    let views: Vec<Value> = jobs.iter().map(replay_json).collect();
    Ok(Json(json!({ "replays": views })))
}

/// Parses and checks filters as sent, naming the one at fault.
fn parse_filters(values: &[Value]) -> Result<Vec<DestinationFilter>, ApiError> {
    let mut filters = Vec::with_capacity(values.len());
    for (index, value) in values.iter().enumerate() {
        let filter: DestinationFilter = serde_json::from_value(value.clone()).map_err(|error| {
            ApiError::bad_request("invalid_filter", format!("filters[{index}]: {error}"))
                .with_field(&format!("filters[{index}]"))
        })?;
        filters.push(filter);
    }
    sluice_fql::validate_filters(&filters).map_err(|error| {
        ApiError::bad_request("invalid_filter", error.to_string()).with_field("filters")
    })?;
    Ok(filters)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FiltersBody {
    filters: Vec<Value>,
}

/// `GET /api/v1/destinations/{id}/filters`
pub async fn filters(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let filters = store_call(move || state.destination_filters(&scope.workspace_id, &id)).await?;
    Ok(Json(json!({ "filters": filters })))
}

/// `PUT /api/v1/destinations/{id}/filters` `{"filters": [..]}`: replaces them all. An invalid
/// filter is refused (400 `invalid_filter`, with the position of the error in the query).
pub async fn set_filters(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: FiltersBody = json_body(&body)?;
    let parsed = parse_filters(&request.filters)?;
    // Stored in the canonical shape the parser gives back.
    let mut canonical = Vec::with_capacity(parsed.len());
    for filter in &parsed {
        canonical
            .push(serde_json::to_value(filter).map_err(|e| ApiError::internal(e.to_string()))?);
    }
    let state = app.state.clone();
    let (workspace, destination) = (scope.workspace_id.clone(), id.clone());
    let stored = canonical.clone();
    store_call(move || state.set_destination_filters(&workspace, &destination, &stored)).await?;
    on_destination_changed(&app, &DestinationId(id));
    Ok(Json(json!({ "filters": canonical })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviewBody {
    filters: Vec<Value>,
    event: Value,
}

/// `POST /api/v1/filters/preview` `{"filters": [..], "event": {..}}`: what the filters make
/// of the event (`null`: dropped), and which filters' conditions match it. Saves nothing.
pub async fn preview(_scope: Scope, body: axum::body::Bytes) -> Result<Json<Value>, ApiError> {
    let request: PreviewBody = json_body(&body)?;
    let filters = parse_filters(&request.filters)?;
    let matched: Vec<bool> = filters.iter().map(|f| f.matches(&request.event)).collect();
    let result = sluice_fql::apply(&filters, request.event);
    Ok(Json(json!({
        "dropped": result.is_none(),
        "event": result,
        "matched": matched,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_is_stuck_when_its_oldest_event_is_old() {
        let now = 10_000_000;
        let mut status = Status {
            running: true,
            oldest_unfinished_ms: Some(now - 1_000),
            ..Status::default()
        };
        assert_eq!(status_json(Some(&status), None, 0, now)["stuck"], false);
        status.oldest_unfinished_ms = Some(now - 16 * 60 * 1_000);
        let view = status_json(Some(&status), None, 3, now);
        assert_eq!(view["stuck"], true);
        assert_eq!(view["dead_letters"], 3);
        assert_eq!(view["paused"], false);
        assert_eq!(status_json(None, None, 0, now)["running"], false);
    }

    #[test]
    fn a_paused_or_held_destination_says_why() {
        let status = Status {
            running: true,
            paused: Some("meta error 190/460: the access token is invalid".into()),
            ..Status::default()
        };
        let view = status_json(Some(&status), None, 0, 0);
        assert_eq!(view["paused"], true);
        assert_eq!(
            view["paused_reason"],
            "the platform refused the credentials: meta error 190/460: the access token is invalid"
        );
        let held = status_json(None, Some("connection conn_1 is disconnected".into()), 2, 0);
        assert_eq!(
            held,
            json!({"running": false, "paused": true, "paused_reason": "connection conn_1 is disconnected", "dead_letters": 2})
        );
    }

    #[test]
    fn filters_are_refused_with_the_position_of_the_error() {
        let error = parse_filters(&[
            json!({"title": "t", "if": "event = ", "actions": [{"type": "DROP"}]}),
        ])
        .expect_err("invalid");
        assert_eq!(error.code, "invalid_filter");
        assert!(error.message.contains("at 8"), "{}", error.message);
        let too_many: Vec<Value> = (0..11)
            .map(|_| json!({"title": "t", "if": "all", "actions": [{"type": "DROP"}]}))
            .collect();
        assert_eq!(
            parse_filters(&too_many).expect_err("too many").code,
            "invalid_filter"
        );
    }
}
