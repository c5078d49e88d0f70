//! Computed traits and audiences under `/api/v1/`:
//! - `GET|POST /computed-traits`, `GET|PUT|DELETE /computed-traits/{key}`;
//! - `GET|POST /audiences`, `GET|PUT|DELETE /audiences/{key}`;
//! - `POST /audiences/estimate`: a draft's size before saving;
//! - `GET /audiences/{key}/members` and `GET /audiences/{key}/changes` (also for traits:
//!   `GET /computed-traits/{key}/changes`).
//!
//! Every definition is checked with the workspace's others (keys, references, cycles) before it
//! is saved; a refusal names the field (`invalid_definition`). A definition another audience
//! refers to, or that is sent to a destination (`admin/syncs.rs`), cannot be deleted
//! (`definition_in_use`). Saving bumps the workspace's catalog
//! version: the consumer then recomputes every profile from the log, and the definition's
//! `status` reads `computing` until it has.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_store::{DefinitionKind, StoredDefinition, WorkspaceId};

use super::Scope;
use super::time_json;
use crate::audiences::with_draft;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

/// Most members or changes in one answer.
const MAX_LIMIT: usize = 1_000;

pub async fn list_traits(State(app): State<AppState>, scope: Scope) -> Result<Response, ApiError> {
    list(app, scope, DefinitionKind::Trait).await
}

pub async fn list_audiences(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Response, ApiError> {
    list(app, scope, DefinitionKind::Audience).await
}

pub async fn create_trait(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    save(app, scope, DefinitionKind::Trait, None, &body).await
}

pub async fn create_audience(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    save(app, scope, DefinitionKind::Audience, None, &body).await
}

pub async fn show_trait(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    show(app, scope, DefinitionKind::Trait, key).await
}

pub async fn show_audience(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    show(app, scope, DefinitionKind::Audience, key).await
}

pub async fn update_trait(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    save(app, scope, DefinitionKind::Trait, Some(key), &body).await
}

pub async fn update_audience(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    save(app, scope, DefinitionKind::Audience, Some(key), &body).await
}

pub async fn delete_trait(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(app, scope, DefinitionKind::Trait, key).await
}

pub async fn delete_audience(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(app, scope, DefinitionKind::Audience, key).await
}

/// `POST /api/v1/audiences/estimate`: how many profiles a draft audience would hold now.
pub async fn estimate(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let draft = definition_body(&body, None)?;
    let definitions = saved(&app, &scope.workspace_id).await?.0;
    let (catalog, key, _) = with_draft(&definitions, DefinitionKind::Audience, &draft)?;
    let estimate = app
        .audiences
        .estimate(&scope.workspace_id, &catalog, &key)
        .await?;
    Ok(Json(json!({
        "key": key,
        "estimate": estimate.members,
        "profilesEvaluated": estimate.profiles,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct Page {
    limit: Option<usize>,
    /// The last profile id of the previous page (members).
    cursor: Option<String>,
}

/// `GET /api/v1/audiences/{key}/members`: the profiles in the audience, by internal order.
pub async fn members(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    find(&app, &scope.workspace_id, DefinitionKind::Audience, &key).await?;
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let after = match page.cursor.as_deref() {
        None => 0,
        Some(cursor) => cursor.parse::<i64>().map_err(|_| {
            ApiError::bad_request("invalid_request", "cursor: not a cursor from this API")
                .with_field("cursor")
        })?,
    };
    let (store, profiles) = (app.audiences.store.clone(), app.profiles.store.clone());
    let ws = scope.workspace_id.clone();
    let (members, total) = store_call(move || {
        let ids = store.members(&ws, &key, after, limit)?;
        let total = store.member_count(&ws, &key)?;
        let mut members = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(profile) = profiles.profile_by_id(&ws, *id)? {
                members.push((*id, profile.public_id));
            }
        }
        Ok((members, total))
    })
    .await?;
    let next = (members.len() == limit)
        .then(|| members.last().map(|(id, _)| id.to_string()))
        .flatten();
    let listed: Vec<Value> = members
        .into_iter()
        .map(|(_, public_id)| json!({"segmentId": public_id}))
        .collect();
    Ok(Json(json!({"members": listed, "total": total, "cursor": next})).into_response())
}

pub async fn audience_changes(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    changes(app, scope, DefinitionKind::Audience, key, page).await
}

pub async fn trait_changes(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    Query(page): Query<Page>,
) -> Result<Response, ApiError> {
    changes(app, scope, DefinitionKind::Trait, key, page).await
}

/// The recorded changes of a definition, newest first.
async fn changes(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: String,
    page: Page,
) -> Result<Response, ApiError> {
    find(&app, &scope.workspace_id, kind, &key).await?;
    let limit = page.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let (store, profiles) = (app.audiences.store.clone(), app.profiles.store.clone());
    let ws = scope.workspace_id.clone();
    let rows = store_call(move || {
        let rows = store.changes(&ws, Some(&key), None, limit)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let public_id = profiles
                .profile_by_id(&ws, row.profile_id)?
                .map(|profile| profile.public_id);
            out.push((row, public_id));
        }
        Ok(out)
    })
    .await?;
    let listed: Vec<Value> = rows
        .into_iter()
        .map(|(row, public_id)| {
            let mut change = json!({
                "segmentId": public_id,
                "change": row.kind,
                "at": time_json(row.at),
            });
            if let Some(value) = row.value {
                change["value"] = serde_json::from_str(&value).unwrap_or(Value::Null);
            }
            change
        })
        .collect();
    Ok(Json(json!({"changes": listed})).into_response())
}

async fn saved(
    app: &AppState,
    workspace: &WorkspaceId,
) -> Result<(Vec<StoredDefinition>, i64), ApiError> {
    let state = app.state.clone();
    let ws = workspace.clone();
    Ok(store_call(move || state.definitions(&ws)).await?)
}

/// The saved definition of this kind and key, or 404.
pub(super) async fn find(
    app: &AppState,
    workspace: &WorkspaceId,
    kind: DefinitionKind,
    key: &str,
) -> Result<StoredDefinition, ApiError> {
    let (definitions, _) = saved(app, workspace).await?;
    definitions
        .into_iter()
        .find(|saved| saved.kind == kind && saved.key == key)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{} {key} not found", noun(kind)),
            )
        })
}

fn noun(kind: DefinitionKind) -> &'static str {
    match kind {
        DefinitionKind::Trait => "computed trait",
        DefinitionKind::Audience => "audience",
    }
}

async fn list(app: AppState, scope: Scope, kind: DefinitionKind) -> Result<Response, ApiError> {
    let (definitions, _) = saved(&app, &scope.workspace_id).await?;
    let mut views = Vec::new();
    for definition in definitions.into_iter().filter(|d| d.kind == kind) {
        views.push(view(&app, &scope.workspace_id, definition).await?);
    }
    let field = match kind {
        DefinitionKind::Trait => "computedTraits",
        DefinitionKind::Audience => "audiences",
    };
    Ok(Json(json!({ field: views })).into_response())
}

async fn show(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: String,
) -> Result<Response, ApiError> {
    let definition = find(&app, &scope.workspace_id, kind, &key).await?;
    Ok(Json(view(&app, &scope.workspace_id, definition).await?).into_response())
}

/// A definition as the API shows it: its JSON, status and (audiences) size.
async fn view(
    app: &AppState,
    workspace: &WorkspaceId,
    definition: StoredDefinition,
) -> Result<Value, ApiError> {
    let (state, store) = (app.state.clone(), app.audiences.store.clone());
    let (ws, key, kind) = (workspace.clone(), definition.key.clone(), definition.kind);
    let (saved_version, progress, size) = store_call(move || {
        let size = match kind {
            DefinitionKind::Audience => Some(store.member_count(&ws, &key)?),
            DefinitionKind::Trait => None,
        };
        Ok((state.catalog_version(&ws)?, store.progress(&ws)?, size))
    })
    .await?;
    let status = if progress.catalog_version == saved_version {
        "live"
    } else {
        "computing"
    };
    let mut shown = json!({
        "key": definition.key,
        "name": definition.name,
        "definition": serde_json::from_str::<Value>(&definition.definition).unwrap_or(Value::Null),
        "status": status,
        "createdAt": definition.created_at,
        "updatedAt": definition.updated_at,
    });
    if let Some(size) = size {
        shown["size"] = json!(size);
    }
    Ok(shown)
}

/// The request body as a definition; on an update the key comes from the path (a body key
/// must match it).
fn definition_body(body: &[u8], key: Option<&str>) -> Result<Value, ApiError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request("invalid_request", format!("invalid request body: {error}"))
    })?;
    if let Some(key) = key {
        let map = value.as_object_mut().ok_or_else(|| {
            ApiError::bad_request("invalid_definition", "definition: must be a JSON object")
                .with_field("definition")
        })?;
        match map.get("key").and_then(Value::as_str) {
            Some(given) if given != key => {
                return Err(ApiError::bad_request(
                    "invalid_definition",
                    "key: a key cannot be changed; create a new definition instead",
                )
                .with_field("key"));
            }
            _ => {
                map.insert("key".into(), Value::String(key.to_string()));
            }
        }
    }
    Ok(value)
}

/// Creates (`key` none) or replaces a definition after checking it with the workspace's others.
async fn save(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: Option<String>,
    body: &[u8],
) -> Result<Response, ApiError> {
    let draft = definition_body(body, key.as_deref())?;
    let (definitions, _) = saved(&app, &scope.workspace_id).await?;
    if let Some(key) = &key {
        find(&app, &scope.workspace_id, kind, key).await?;
    }
    let (catalog, new_key, name) = with_draft(&definitions, kind, &draft)?;
    let source = match kind {
        DefinitionKind::Trait => catalog
            .traits
            .iter()
            .find(|t| t.key == new_key)
            .map(|t| t.source.clone()),
        DefinitionKind::Audience => catalog
            .audiences
            .iter()
            .find(|a| a.key == new_key)
            .map(|a| a.source.clone()),
    }
    .unwrap_or(draft);
    let text = source.to_string();
    let state = app.state.clone();
    let ws = scope.workspace_id.clone();
    let creating = key.is_none();
    let saved_key = new_key.clone();
    store_call(move || {
        if creating {
            state.create_definition(&ws, kind, &saved_key, &name, &text)
        } else {
            state.update_definition(&ws, kind, &saved_key, &name, &text)
        }
    })
    .await?;
    let definition = find(&app, &scope.workspace_id, kind, &new_key).await?;
    let shown = view(&app, &scope.workspace_id, definition).await?;
    let status = if creating {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(shown)).into_response())
}

async fn delete(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: String,
) -> Result<StatusCode, ApiError> {
    find(&app, &scope.workspace_id, kind, &key).await?;
    let (definitions, _) = saved(&app, &scope.workspace_id).await?;
    let rest: Vec<StoredDefinition> = definitions
        .into_iter()
        .filter(|saved| saved.key != key)
        .collect();
    let users = crate::audiences::users_of(&rest, &key)?;
    if let Some(user) = users.first() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "definition_in_use",
            format!("audience {user} refers to {key}; change or delete it first"),
        ));
    }
    let state = app.state.clone();
    let (ws, synced) = (scope.workspace_id.clone(), key.clone());
    let syncs = store_call(move || state.syncs(&ws, Some(&synced))).await?;
    if let Some(sync) = syncs.first() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "definition_in_use",
            format!(
                "{key} is sent to destination {} (sync {}); delete its syncs first",
                sync.destination_id, sync.id
            ),
        ));
    }
    let (state, store) = (app.state.clone(), app.audiences.store.clone());
    let ws = scope.workspace_id.clone();
    store_call(move || {
        state.delete_definition(&ws, kind, &key)?;
        store.forget_key(&ws, &key)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
