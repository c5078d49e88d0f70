//! `GET /health` (the process answers) and `GET /ready` (the log writer runs and the disk
//! takes a durable write; destinations that are stuck are listed, but do not make the node
//! unready).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::admin::delivery::STUCK_AFTER;
use crate::error::ApiError;
use crate::startup::AppState;

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), app.log.check_writable()).await {
        Ok(Ok(())) => {
            // A stuck destination is reported, not a reason to stop taking events: the log
            // keeps them and other destinations go on.
            let now_ms = sluice_spec::timestamp::now_ms();
            let stuck: Vec<serde_json::Value> = app
                .deliveries
                .engine
                .stuck(STUCK_AFTER, now_ms)
                .await
                .into_iter()
                .map(|(id, age)| json!({"id": id, "oldest_unfinished_age_secs": age.as_secs()}))
                .collect();
            let body = json!({"status": "ready", "destinations": {"stuck": stuck}});
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(Err(error)) => {
            ApiError::unavailable(format!("event log not writable: {error}")).into_response()
        }
        Err(_) => ApiError::unavailable("event log did not answer within 5 s").into_response(),
    }
}
