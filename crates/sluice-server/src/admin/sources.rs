//! Sources of a workspace: create, list, show, rename, enable or disable, rotate the write
//! key, delete. The write key appears only in the answers to create and rotate.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use sluice_store::{Source, WriteKey};

use super::Scope;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

/// A source as the API shows it.
#[derive(Debug, Serialize)]
pub struct SourceView {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    pub enabled: bool,
    pub created_at: String,
    /// Only in the answer to create and rotate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub write_key: Option<String>,
}

impl SourceView {
    pub fn new(source: Source, key: Option<&WriteKey>) -> SourceView {
        SourceView {
            id: source.id,
            workspace_id: source.workspace_id.0,
            name: source.name,
            enabled: source.enabled,
            created_at: source.created_at,
            write_key: key.map(|key| key.expose().to_owned()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSource {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateSource {
    pub name: Option<String>,
    pub enabled: Option<bool>,
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::bad_request("invalid_request", format!("invalid request body: {error}"))
    })
}

pub async fn create(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CreateSource = json_body(&body)?;
    let state = app.state.clone();
    let (source, key) =
        store_call(move || state.create_source(&scope.workspace_id, &request.name)).await?;
    Ok((
        StatusCode::CREATED,
        Json(SourceView::new(source, Some(&key))),
    )
        .into_response())
}

pub async fn list(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = app.state.clone();
    let sources = store_call(move || state.list_sources(&scope.workspace_id)).await?;
    let views: Vec<SourceView> = sources
        .into_iter()
        .map(|s| SourceView::new(s, None))
        .collect();
    Ok(Json(serde_json::json!({ "sources": views })))
}

pub async fn show(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<SourceView>, ApiError> {
    let state = app.state.clone();
    let source = store_call(move || state.get_source(&scope.workspace_id, &id)).await?;
    Ok(Json(SourceView::new(source, None)))
}

pub async fn update(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<SourceView>, ApiError> {
    let request: UpdateSource = json_body(&body)?;
    let state = app.state.clone();
    let source = store_call(move || {
        let mut source = state.get_source(&scope.workspace_id, &id)?;
        if let Some(name) = &request.name {
            source = state.rename_source(&scope.workspace_id, &id, name)?;
        }
        if let Some(enabled) = request.enabled {
            source = state.set_source_enabled(&scope.workspace_id, &id, enabled)?;
        }
        Ok(source)
    })
    .await?;
    app.keys.clear();
    Ok(Json(SourceView::new(source, None)))
}

pub async fn rotate(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<SourceView>, ApiError> {
    let state = app.state.clone();
    let (source, key) =
        store_call(move || state.rotate_write_key(&scope.workspace_id, &id)).await?;
    app.keys.clear();
    Ok(Json(SourceView::new(source, Some(&key))))
}

pub async fn delete(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (state, inventory) = (app.state.clone(), app.inventory.store.clone());
    store_call(move || {
        state.delete_source(&scope.workspace_id, &id)?;
        // Its fields leave the data inventory.
        inventory.forget_source(&scope.workspace_id, &id)?;
        Ok(())
    })
    .await?;
    app.keys.clear();
    Ok(StatusCode::NO_CONTENT)
}
