//! A source's events: the latest N, and a live tail as Server-Sent Events (the start of the
//! debugger).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sluice_store::SourceScope;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::Scope;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    pub limit: Option<usize>,
    /// Read forward from this sequence number instead of returning the latest events.
    pub after: Option<i64>,
}

#[derive(Serialize)]
pub struct EventsPage {
    /// Oldest first.
    pub events: Vec<Box<RawValue>>,
    /// The sequence number of the last event returned (pass it as `after` for the next
    /// page); `after` itself, or 0, when there are none.
    pub cursor: i64,
}

async fn scope_of(app: &AppState, scope: Scope, id: String) -> Result<SourceScope, ApiError> {
    let state = app.state.clone();
    let workspace_id = scope.workspace_id.clone();
    let source = store_call(move || state.get_source(&workspace_id, &id)).await?;
    Ok(SourceScope {
        workspace_id: scope.workspace_id,
        source_id: source.id,
    })
}

/// `GET /api/v1/sources/{id}/events?limit=N[&after=SEQ]`: the latest N events, or the N
/// events after a sequence number.
pub async fn list(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
) -> Result<Json<EventsPage>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        )
        .with_field("limit"));
    }
    let source = scope_of(&app, scope, id).await?;
    let stored = match query.after {
        Some(after) => app.log.read(&source, after, limit).await?,
        None => app.log.latest(&source, limit).await?,
    };
    let cursor = stored
        .last()
        .map_or(query.after.unwrap_or(0), |event| event.seq);
    let mut events = Vec::with_capacity(stored.len());
    for stored in stored {
        let raw = RawValue::from_string(stored.event.body)
            .map_err(|_| ApiError::internal("a stored event is not json"))?;
        events.push(raw);
    }
    Ok(Json(EventsPage { events, cursor }))
}

/// `GET /api/v1/sources/{id}/events/live`: each event committed from now on, as an SSE
/// `message` with the sequence number as its id. A client too slow to keep up gets a
/// `lagged` event saying how many it missed.
pub async fn live(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let source = scope_of(&app, scope, id).await?;
    let receiver = app.log.subscribe();
    let stream = BroadcastStream::new(receiver).filter_map(move |item| match item {
        Ok(stored) => {
            let event = &stored.event;
            if event.workspace_id == source.workspace_id && event.source_id == source.source_id {
                Some(Ok(Event::default()
                    .id(stored.seq.to_string())
                    .data(event.body.as_str())))
            } else {
                None
            }
        }
        Err(BroadcastStreamRecvError::Lagged(missed)) => Some(Ok(Event::default()
            .event("lagged")
            .data(missed.to_string()))),
    });
    // End the stream when the node shuts down, so graceful shutdown does not wait on it.
    let mut stopping = app.stopping.clone();
    let stopped = Box::pin(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    let stream = futures_util::StreamExt::take_until(stream, stopped);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
