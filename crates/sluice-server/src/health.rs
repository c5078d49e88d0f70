//! `GET /health` (the process answers) and `GET /ready` (the log writer runs and the disk
//! takes a durable write).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::ApiError;
use crate::startup::AppState;

pub async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(app): State<AppState>) -> Response {
    match tokio::time::timeout(Duration::from_secs(5), app.log.check_writable()).await {
        Ok(Ok(())) => (StatusCode::OK, Json(json!({"status": "ready"}))).into_response(),
        Ok(Err(error)) => {
            ApiError::unavailable(format!("event log not writable: {error}")).into_response()
        }
        Err(_) => ApiError::unavailable("event log did not answer within 5 s").into_response(),
    }
}
