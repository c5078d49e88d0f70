//! Regulations, suppressions and verification in the admin API, in the shapes of Segment's
//! Public API (`data` envelopes, `regulateId`, `overallStatus`, `streamStatus`).
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/v1/regulations` `{regulationType, subjectType, subjectIds}` | `{"data": {"regulateId", "regulation"}}`; `400 invalid_regulation` naming the field |
//! | `GET /api/v1/regulations[?limit=N]` | `{"data": {"regulations": [...]}}`, newest first |
//! | `GET /api/v1/regulations/{id}` | `{"data": {"regulation": {..., "report"}}}` |
//! | `GET /api/v1/suppressions` | `{"data": {"suppressions": [{regulationId, values, createdAt}]}}` |
//! | `POST /api/v1/privacy/verify` `{subjectType, subjectId}` | what every store and the data directory's bytes still hold |
//! | `POST /api/v1/privacy/export` `{subjectType, subjectId}` | everything held about the person (see [`crate::privacy::export`]) |
//! | `GET`/`PUT /api/v1/privacy/settings` | the workspace's privacy settings (consent, PII policy, retention, children); `400 invalid_privacy_settings` naming the field |
//! | `GET /api/v1/privacy/inventory[?source=&event=&class=&limit=]` | `{"data": {"fields": [{sourceId, type, event, path, class, firstSeen, lastSeen, count}]}}`: never a value |
//! | `POST /api/v1/privacy/retention/run` | `{"data": {sources: [{sourceId, days, cutoff, events, profileEvents, profiles, audienceHistory, deadLetters}], destinationCursors}}` |
//! | `POST /api/v1/privacy/do-not-sell` `{subjectType, subjectIds}` | `{"data": {"optOutId", "values"}}`: the person opted out of sale and sharing |
//! | `POST /api/v1/privacy/do-not-sell/remove` `{subjectType, subjectIds}` | `{"data": {"removed"}}` |
//! | `GET /api/v1/privacy/do-not-sell` | `{"data": {"optOuts": [{optOutId, values, createdAt}]}}` |
//!
//! No answer holds a subject id: a regulation shows how many it had, and a suppression how
//! many identifier values it stops.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_privacy::regulation::subjects_from_json;
use sluice_privacy::{PiiClass, PrivacySettings, RegulationRequest, SettingsError, SubjectType};
use sluice_store::{
    InventoryField, InventoryQuery, ListEntry, PersonList, Regulation, StateStore, StoreError,
    WorkspaceId,
};

use super::Scope;
use super::sources::json_body;
use crate::error::ApiError;
use crate::privacy::verify;
use crate::startup::AppState;
use crate::store_call;

/// A regulation as the API shows it.
pub fn regulation_json(regulation: &Regulation) -> Value {
    let mut streams: Map<String, Value> = Map::new();
    let destinations = regulation
        .report
        .as_ref()
        .and_then(|report| report.get("destinations"))
        .and_then(Value::as_array);
    for destination in destinations.into_iter().flatten() {
        let status = json!({
            "id": destination.get("id"),
            "name": destination.get("name"),
            "status": destination.get("status"),
            "errString": destination.get("errString"),
            "finishedAt": destination.get("finishedAt"),
        });
        let sources = destination.get("sources").and_then(Value::as_array);
        for source in sources.into_iter().flatten() {
            if let Some(source) = source.as_str() {
                let entry = streams
                    .entry(source.to_owned())
                    .or_insert_with(|| json!([]));
                if let Some(list) = entry.as_array_mut() {
                    list.push(status.clone());
                }
            }
        }
    }
    let stream_status: Vec<Value> = streams
        .into_iter()
        .map(|(id, destinations)| json!({"id": id, "destinationStatus": destinations}))
        .collect();
    json!({
        "id": regulation.id,
        "workspaceId": regulation.workspace_id.0,
        "regulationType": regulation.regulation_type.as_str(),
        "subjectType": regulation.subject_type.as_str(),
        "subjectCount": regulation.subject_count,
        "overallStatus": regulation.status.as_str(),
        "createdAt": regulation.created_at,
        "startedAt": regulation.started_at,
        "finishedAt": regulation.finished_at,
        "streamStatus": stream_status,
        "report": regulation.report,
    })
}

/// A suppression as the API and the CLI show it (the values it stops are never shown).
pub fn suppression_json(entry: &ListEntry) -> Value {
    json!({"regulationId": entry.entry_id, "values": entry.values, "createdAt": entry.created_at})
}

pub async fn create(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let body: Value = json_body(&body)?;
    let request = RegulationRequest::from_json(&body).map_err(|error| {
        ApiError::bad_request("invalid_regulation", error.to_string()).with_field(&error.field)
    })?;
    let regulation = app.privacy.submit(&scope.workspace_id, request).await?;
    Ok(Json(json!({"data": {
        "regulateId": regulation.id,
        "regulation": regulation_json(&regulation),
    }})))
}

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<usize>,
}

pub async fn list(
    State(app): State<AppState>,
    scope: Scope,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, 500);
    let state = app.state.clone();
    let regulations = store_call(move || state.regulations(&scope.workspace_id, limit)).await?;
    let list: Vec<Value> = regulations.iter().map(regulation_json).collect();
    Ok(Json(json!({"data": {"regulations": list}})))
}

pub async fn show(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let lookup = id.clone();
    let found = store_call(move || state.regulation(&scope.workspace_id, &lookup)).await?;
    match found {
        Some(regulation) => Ok(Json(
            json!({"data": {"regulation": regulation_json(&regulation)}}),
        )),
        None => Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("regulation {id} not found"),
        )),
    }
}

pub async fn suppressions(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let list =
        store_call(move || state.list_entries(&scope.workspace_id, PersonList::Suppressed)).await?;
    let list: Vec<Value> = list.iter().map(suppression_json).collect();
    Ok(Json(json!({"data": {"suppressions": list}})))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VerifyRequest {
    subject_type: String,
    subject_id: String,
}

/// The subject of a verify or export request.
fn one_subject(body: &[u8]) -> Result<sluice_identity::Identifier, ApiError> {
    let request: VerifyRequest = json_body(body)?;
    let subject_type = SubjectType::parse(&request.subject_type).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_request",
            "expected USER_ID, ANONYMOUS_ID, EMAIL, PHONE or IDENTIFIER",
        )
        .with_field("subjectType")
    })?;
    subject_type.identifier(&request.subject_id).ok_or_else(|| {
        ApiError::bad_request("invalid_request", "not a valid id of the subject type")
            .with_field("subjectId")
    })
}

pub async fn export(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let subject = one_subject(&body)?;
    let privacy = std::sync::Arc::clone(&app.privacy);
    let state = app.state.clone();
    let profiles = std::sync::Arc::clone(&app.profiles.store);
    let delivery = std::sync::Arc::clone(&app.deliveries.store);
    let audiences = std::sync::Arc::clone(&app.audiences.store);
    let exported = store_call(move || {
        let stores = crate::privacy::PersonStores {
            profiles: &profiles,
            delivery: &delivery,
            audiences: &audiences,
        };
        crate::privacy::export::export(
            &privacy.data_dir,
            &state,
            &stores,
            [&privacy.suppressed, &privacy.do_not_sell],
            &scope.workspace_id,
            &subject,
        )
    })
    .await?;
    Ok(Json(exported))
}

pub async fn verify(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let subject = one_subject(&body)?;
    let data_dir = app.privacy.data_dir.clone();
    let profiles = std::sync::Arc::clone(&app.profiles.store);
    let delivery = std::sync::Arc::clone(&app.deliveries.store);
    let audiences = std::sync::Arc::clone(&app.audiences.store);
    let workspace = scope.workspace_id.clone();
    let mut findings = store_call(move || {
        let stores = crate::privacy::PersonStores {
            profiles: &profiles,
            delivery: &delivery,
            audiences: &audiences,
        };
        verify::find(&data_dir, &stores, &workspace, &subject)
    })
    .await?;
    // The recent-attempts views live in this process's memory only.
    let attempts = app
        .deliveries
        .engine
        .count_attempts(&scope.workspace_id, &findings.message_ids, &findings.values)
        .await;
    findings.stores.push(("delivery_attempts", attempts));
    Ok(Json(findings.to_json()))
}

pub async fn settings(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Json<PrivacySettings>, ApiError> {
    let state = app.state.clone();
    let (settings, _) = store_call(move || state.privacy_settings(&scope.workspace_id)).await?;
    Ok(Json(settings))
}

pub async fn set_settings(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<PrivacySettings>, ApiError> {
    let settings: PrivacySettings = serde_json::from_slice(&body).map_err(|error| {
        ApiError::bad_request(
            "invalid_privacy_settings",
            format!("invalid privacy settings: {error}"),
        )
    })?;
    let state = app.state.clone();
    let saved = settings.clone();
    store_call(move || save_settings(&state, &scope.workspace_id, &saved))
        .await?
        .map_err(|error| {
            ApiError::bad_request("invalid_privacy_settings", error.to_string())
                .with_field(&error.field)
        })?;
    // The gate and the destinations apply the new policy at once; the children policy
    // looks through the profiles already held.
    app.privacy.reload_gate().await?;
    if settings.children.enabled {
        let privacy = Arc::clone(&app.privacy);
        tokio::spawn(async move {
            if let Err(error) = privacy.sweep_children().await {
                tracing::error!(%error, "children policy sweep failed");
            }
        });
    }
    app.deliveries.reconcile().await;
    Ok(Json(settings))
}

/// Checks privacy settings against the workspace's sources and destinations and saves them
/// (blocking; the admin API and the CLI). The outer error is the store's, the inner one names
/// the setting at fault.
pub fn save_settings(
    state: &StateStore,
    workspace: &WorkspaceId,
    settings: &PrivacySettings,
) -> Result<Result<(), SettingsError>, StoreError> {
    let sources: Vec<String> = state
        .list_sources(workspace)?
        .into_iter()
        .map(|source| source.id)
        .collect();
    let destinations: Vec<String> = state
        .list_destinations(workspace)?
        .into_iter()
        .map(|destination| destination.id.0)
        .collect();
    if let Err(error) = settings.validate(&sources, &destinations) {
        return Ok(Err(error));
    }
    state.set_privacy_settings(workspace, settings)?;
    Ok(Ok(()))
}

/// `POST /api/v1/privacy/retention/run`: sweeps the workspace now (what the background job
/// does every `retention_interval_secs`) and answers what was removed.
pub async fn run_retention(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Json<Value>, ApiError> {
    let sweep = app.retention.sweep(&scope.workspace_id).await?;
    Ok(Json(json!({"data": sweep})))
}

/// The filters of `GET /api/v1/privacy/inventory`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryParams {
    source: Option<String>,
    event: Option<String>,
    class: Option<String>,
    limit: Option<usize>,
}

/// Most inventory rows in one answer.
const MAX_INVENTORY_ROWS: usize = 10_000;

/// `GET /api/v1/privacy/inventory[?source=&event=&class=&limit=]`: every field path seen,
/// per source and event, with its class, first and last seen and count.
pub async fn inventory(
    State(app): State<AppState>,
    scope: Scope,
    Query(params): Query<InventoryParams>,
) -> Result<Json<Value>, ApiError> {
    if let Some(class) = &params.class
        && PiiClass::parse(class).is_none()
    {
        let all: Vec<&str> = PiiClass::ALL.iter().map(|class| class.as_str()).collect();
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("class: expected one of {}", all.join(", ")),
        )
        .with_field("class"));
    }
    let limit = params.limit.unwrap_or(1_000);
    if limit == 0 || limit > MAX_INVENTORY_ROWS {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit: expected 1 to {MAX_INVENTORY_ROWS}"),
        )
        .with_field("limit"));
    }
    let query = InventoryQuery {
        source: params.source,
        event: params.event,
        class: params.class,
        limit,
    };
    let store = Arc::clone(&app.inventory.store);
    let rows = store_call(move || store.list(&scope.workspace_id, &query)).await?;
    let fields: Vec<Value> = rows.iter().map(inventory_json).collect();
    Ok(Json(json!({"data": {"fields": fields}})))
}

/// A field of the data inventory as the API and the CLI show it.
pub fn inventory_json(row: &InventoryField) -> Value {
    let field = &row.field;
    json!({
        "sourceId": row.source_id,
        "type": field.event_type,
        "event": field.event_name,
        "path": field.path,
        "class": field.class,
        "firstSeen": super::time_json(field.first_seen_ms),
        "lastSeen": super::time_json(field.last_seen_ms),
        "count": field.count,
    })
}

fn opt_out_subjects(body: &[u8]) -> Result<Vec<sluice_identity::Identifier>, ApiError> {
    let body: Value = json_body(body)?;
    let (_, subjects) = subjects_from_json(&body, &[]).map_err(|error| {
        ApiError::bad_request("invalid_request", error.to_string()).with_field(&error.field)
    })?;
    Ok(subjects)
}

pub async fn opt_out(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let subjects = opt_out_subjects(&body)?;
    let (id, values) = app.privacy.opt_out(&scope.workspace_id, &subjects).await?;
    Ok(Json(json!({"data": {"optOutId": id, "values": values}})))
}

pub async fn opt_in(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let subjects = opt_out_subjects(&body)?;
    let removed = app.privacy.opt_in(&scope.workspace_id, &subjects).await?;
    Ok(Json(json!({"data": {"removed": removed}})))
}

pub async fn opt_outs(State(app): State<AppState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let list =
        store_call(move || state.list_entries(&scope.workspace_id, PersonList::DoNotSell)).await?;
    let list: Vec<Value> = list
        .iter()
        .map(|e| json!({"optOutId": e.entry_id, "values": e.values, "createdAt": e.created_at}))
        .collect();
    Ok(Json(json!({"data": {"optOuts": list}})))
}
