//! Identity resolution in the admin API: the workspace's settings, Profile API tokens, and a
//! profile's identity graph with its merge history, and unmerges.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/v1/identity/settings` | the settings (defaults until saved) |
//! | `PUT /api/v1/identity/settings` | saved settings; `400 invalid_identity_settings` naming the field |
//! | `GET /api/v1/identity/tokens` | `{"tokens": [{id, name, created_at}]}` |
//! | `POST /api/v1/identity/tokens` `{"name"}` | `201` with the `token` (shown once) and the `space_id` |
//! | `DELETE /api/v1/identity/tokens/{id}` | `204` |
//! | `GET /api/v1/profiles/{type:value}/graph[?collection=accounts][&format=text]` | the graph |
//! | `POST /api/v1/profiles/{type:value}/unmerge` `{"identifier": {"type", "id"}}` or `{"merge": ID}` | the profiles it produced |

use std::fmt::Write as _;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_identity::{Collection, Identifier, IdentitySettings, Rules};
use sluice_store::profiles::{GraphView, ProfileRef};
use sluice_store::{ProfileStore, WorkspaceId};

use super::Scope;
use super::sources::json_body;
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

pub async fn settings(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Json<IdentitySettings>, ApiError> {
    let state = app.state.clone();
    Ok(Json(
        store_call(move || state.identity_settings(&scope.workspace_id)).await?,
    ))
}

pub async fn set_settings(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<IdentitySettings>, ApiError> {
    let settings: IdentitySettings = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "invalid_identity_settings",
            format!("invalid identity settings: {error}"),
        )
    })?;
    Rules::compile(&settings).map_err(|error| {
        ApiError::bad_request("invalid_identity_settings", error.to_string())
            .with_field(&error.field)
    })?;
    let state = app.state.clone();
    let saved = settings.clone();
    store_call(move || state.set_identity_settings(&scope.workspace_id, &saved)).await?;
    Ok(Json(settings))
}

pub async fn tokens(State(app): State<AppState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let tokens = store_call(move || state.list_profile_tokens(&scope.workspace_id)).await?;
    let list: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"id": t.id, "name": t.name, "created_at": t.created_at}))
        .collect();
    Ok(Json(json!({"tokens": list})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
}

pub async fn create_token(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CreateToken = json_body(&body)?;
    let state = app.state.clone();
    let workspace = scope.workspace_id.clone();
    let (info, token) =
        store_call(move || state.create_profile_token(&workspace, &request.name)).await?;
    let body = json!({
        "id": info.id,
        "name": info.name,
        "created_at": info.created_at,
        "token": token.expose(),
        "space_id": scope.workspace_id.0,
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

pub async fn revoke_token(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let state = app.state.clone();
    store_call(move || state.revoke_profile_token(&scope.workspace_id, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct GraphQuery {
    pub collection: Option<String>,
    pub format: Option<String>,
}

/// Finds a live profile by `type:value` (or `segment_id:use_…`) in a workspace.
pub fn find_profile(
    store: &ProfileStore,
    workspace: &WorkspaceId,
    collection: Collection,
    lookup: &str,
) -> Result<ProfileRef, ApiError> {
    let id = Identifier::parse_lookup(lookup).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_request",
            "the profile is named <type>:<value>, like user_id:42",
        )
        .with_field("profile")
    })?;
    store.find(workspace, collection, &id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no profile holds {lookup}"),
        )
    })
}

fn collection_param(value: Option<&str>) -> Result<Collection, ApiError> {
    match value {
        None => Ok(Collection::Users),
        Some(text) => Collection::parse(text).ok_or_else(|| {
            ApiError::bad_request("invalid_request", "must be users or accounts")
                .with_field("collection")
        }),
    }
}

pub async fn graph(
    State(app): State<AppState>,
    scope: Scope,
    Path(lookup): Path<String>,
    Query(query): Query<GraphQuery>,
) -> Result<Response, ApiError> {
    let collection = collection_param(query.collection.as_deref())?;
    let store = app.profiles.store.clone();
    let view = tokio::task::spawn_blocking(move || {
        let profile = find_profile(&store, &scope.workspace_id, collection, &lookup)?;
        store.graph(&profile).map_err(ApiError::from)
    })
    .await
    .map_err(|_| ApiError::internal("profile task failed"))??;
    match query.format.as_deref() {
        None | Some("json") => Ok(Json(graph_json(&view)).into_response()),
        Some("text") => Ok((
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            graph_text(&view),
        )
            .into_response()),
        Some(_) => Err(
            ApiError::bad_request("invalid_request", "must be json or text").with_field("format"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnmergeRequest {
    identifier: Option<Identifier>,
    merge: Option<i64>,
}

pub async fn unmerge(
    State(app): State<AppState>,
    scope: Scope,
    Path(lookup): Path<String>,
    Query(query): Query<GraphQuery>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: UnmergeRequest = json_body(&body)?;
    let collection = collection_param(query.collection.as_deref())?;
    let state = app.state.clone();
    let store = app.profiles.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let profile = find_profile(&store, &scope.workspace_id, collection, &lookup)?;
        let settings = state.identity_settings(&scope.workspace_id)?;
        let rules = Rules::compile(&settings)
            .map_err(|e| ApiError::bad_request("invalid_identity_settings", e.to_string()))?;
        let done = match (request.identifier, request.merge) {
            (Some(id), None) => store.remove_identifier(&profile, &id, &rules)?,
            (None, Some(merge)) => store.split_merge(&profile, merge, &rules)?,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "give either identifier or merge",
                )
                .with_field("identifier"));
            }
        };
        Ok::<_, ApiError>(done)
    })
    .await
    .map_err(|_| ApiError::internal("profile task failed"))??;
    Ok(Json(json!({
        "profiles": result.profiles,
        "removed": result.removed.iter().map(|id| json!({"type": id.kind, "id": id.value})).collect::<Vec<_>>(),
    })))
}

fn time_text(ms: i64) -> String {
    sluice_spec::timestamp::format_ms(ms).unwrap_or_else(|| ms.to_string())
}

/// A profile's graph as JSON.
pub fn graph_json(view: &GraphView) -> Value {
    json!({
        "profile": {
            "id": view.meta.public_id,
            "collection": view.meta.collection.as_str(),
            "created_at": time_text(view.meta.created_at_ms),
            "updated_at": time_text(view.meta.updated_at_ms),
            "merges": view.meta.merges,
        },
        "identifiers": view.identifiers.iter().map(|e| json!({
            "type": e.id.kind, "id": e.id.value, "source_id": e.source_id,
            "first_message_id": e.first_message_id,
            "first_seen": time_text(e.first_seen_ms), "last_seen": time_text(e.last_seen_ms),
        })).collect::<Vec<_>>(),
        "merges": view.merges.iter().map(|m| json!({
            "id": m.id, "at": time_text(m.at_ms), "kept": m.kept, "absorbed": m.absorbed,
            "message_id": m.message_id, "source_id": m.source_id,
            "bridge": m.bridge.iter().map(|id| json!({"type": id.kind, "id": id.value})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "unmerges": view.unmerges.iter().map(|u| json!({
            "id": u.id, "at": time_text(u.at_ms), "kind": u.kind, "detail": u.detail, "result": u.result,
        })).collect::<Vec<_>>(),
        "links": view.links.iter().map(|l| json!({
            "id": l.public_id, "collection": l.collection.as_str(),
            "identifiers": l.external_ids.iter().map(|e| format!("{}", e.id)).collect::<Vec<_>>(),
            "first_seen": time_text(l.first_seen_ms), "last_seen": time_text(l.last_seen_ms),
        })).collect::<Vec<_>>(),
    })
}

/// A profile's graph as text, for people (the CLI prints this).
pub fn graph_text(view: &GraphView) -> String {
    let mut out = String::new();
    let meta = &view.meta;
    let _ = writeln!(
        out,
        "profile {} ({})",
        meta.public_id,
        meta.collection.as_str()
    );
    let _ = writeln!(
        out,
        "  created {}, updated {}, {} merge(s)",
        time_text(meta.created_at_ms),
        time_text(meta.updated_at_ms),
        meta.merges
    );
    let _ = writeln!(out, "identifiers:");
    for e in &view.identifiers {
        let _ = writeln!(
            out,
            "  {}  first seen {} in {} (message {}), last seen {}",
            e.id,
            time_text(e.first_seen_ms),
            e.source_id,
            e.first_message_id,
            time_text(e.last_seen_ms)
        );
    }
    let _ = writeln!(out, "merges:");
    if view.merges.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for m in &view.merges {
        let bridge: Vec<String> = m.bridge.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "  #{} {}: {} merged into {} by message {} from {} (via {})",
            m.id,
            time_text(m.at_ms),
            m.absorbed,
            m.kept,
            m.message_id,
            m.source_id,
            if bridge.is_empty() {
                "-".to_string()
            } else {
                bridge.join(", ")
            }
        );
    }
    if !view.unmerges.is_empty() {
        let _ = writeln!(out, "unmerges:");
        for u in &view.unmerges {
            let _ = writeln!(
                out,
                "  #{} {}: {} {} -> {}",
                u.id,
                time_text(u.at_ms),
                u.kind,
                u.detail,
                u.result
            );
        }
    }
    if !view.links.is_empty() {
        let _ = writeln!(out, "links:");
        for l in &view.links {
            let ids: Vec<String> = l.external_ids.iter().map(|e| e.id.to_string()).collect();
            let _ = writeln!(
                out,
                "  {} {} [{}]",
                l.collection.as_str(),
                l.public_id,
                ids.join(", ")
            );
        }
    }
    out
}
