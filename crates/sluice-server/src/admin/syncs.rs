//! Sending an audience or a computed trait to a destination, under `/api/v1/`:
//! - `GET|POST /audiences/{key}/syncs`, `DELETE /audiences/{key}/syncs/{id}`;
//! - `GET|POST /computed-traits/{key}/syncs`, `DELETE /computed-traits/{key}/syncs/{id}`.
//!
//! `POST` takes `{"destinationId", "mode"?, "externalAudienceId"?, "audienceName"?}`. An event
//! destination gets `identify` (the default) or `track` events; an ad-platform audience
//! destination gets `list` (its only mode), and unless `externalAudienceId` names an existing
//! platform audience, Sluice creates one on the platform (named `audienceName`, default the
//! audience's name) before saving the sync. The answer, and every `GET`, carries `warnings`:
//! an audience smaller than the platform's minimum size is shown, not refused.
//!
//! Deleting a sync stops its events and erases those not yet delivered (its output source's
//! events in the log); the platform's audience is left as it is.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_delivery::http::Client;
use sluice_destinations::Verdict;
use sluice_destinations::audience::{AudiencePlatform, audience_platform};
use sluice_store::{
    AudienceSync, DefinitionKind, Destination, DestinationId, NewSync, SyncClass, SyncMode,
    WorkspaceId,
};

use super::Scope;
use super::audiences::find;
use super::destinations::{on_destination_changed, open_settings};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

/// Time limit of the request that creates a platform audience.
const CREATE_TIMEOUT: Duration = Duration::from_secs(15);

/// The body of `POST …/syncs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NewSyncBody {
    destination_id: String,
    mode: Option<String>,
    external_audience_id: Option<String>,
    audience_name: Option<String>,
}

pub async fn list_audience_syncs(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    list(app, scope, DefinitionKind::Audience, key).await
}

pub async fn list_trait_syncs(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
) -> Result<Response, ApiError> {
    list(app, scope, DefinitionKind::Trait, key).await
}

pub async fn create_audience_sync(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    create(app, scope, DefinitionKind::Audience, key, &body).await
}

pub async fn create_trait_sync(
    State(app): State<AppState>,
    scope: Scope,
    Path(key): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    create(app, scope, DefinitionKind::Trait, key, &body).await
}

pub async fn delete_audience_sync(
    State(app): State<AppState>,
    scope: Scope,
    Path((key, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(app, scope, DefinitionKind::Audience, key, id).await
}

pub async fn delete_trait_sync(
    State(app): State<AppState>,
    scope: Scope,
    Path((key, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    delete(app, scope, DefinitionKind::Trait, key, id).await
}

async fn list(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: String,
) -> Result<Response, ApiError> {
    find(&app, &scope.workspace_id, kind, &key).await?;
    let state = app.state.clone();
    let ws = scope.workspace_id.clone();
    let syncs = store_call(move || state.syncs(&ws, Some(&key))).await?;
    let mut shown = Vec::with_capacity(syncs.len());
    for sync in &syncs {
        shown.push(view(&app, &scope.workspace_id, sync).await?);
    }
    Ok(Json(json!({ "syncs": shown })).into_response())
}

async fn create(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: String,
    body: &[u8],
) -> Result<Response, ApiError> {
    let body: NewSyncBody = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request("invalid_request", format!("invalid request body: {error}"))
    })?;
    let definition = find(&app, &scope.workspace_id, kind, &key).await?;
    let state = app.state.clone();
    let (ws, destination_id) = (scope.workspace_id.clone(), body.destination_id.clone());
    let destination = store_call(move || state.get_destination(&ws, &destination_id))
        .await
        .map_err(|error| ApiError::from(error).with_field("destinationId"))?;
    let settings = settings_of(&app, &destination).await?;
    let platform = audience_platform(&destination.kind, &settings)?;
    let class = match kind {
        DefinitionKind::Audience => SyncClass::Audience,
        DefinitionKind::Trait => SyncClass::Trait,
    };
    let mode = choose_mode(body.mode.as_deref(), platform.is_some(), class)?;
    let external_audience_id = match (&platform, body.external_audience_id) {
        (None, Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "externalAudienceId: only ad-platform audience destinations have platform audiences",
            )
            .with_field("externalAudienceId"));
        }
        (None, None) => None,
        (Some(_), Some(id)) => {
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ApiError::bad_request(
                    "invalid_request",
                    "externalAudienceId: must be the platform's numeric audience id",
                )
                .with_field("externalAudienceId"));
            }
            Some(id)
        }
        (Some(platform), None) => {
            let name = body.audience_name.unwrap_or(definition.name.clone());
            Some(create_platform_audience(platform.as_ref(), &name, &key).await?)
        }
    };
    let state = app.state.clone();
    let ws = scope.workspace_id.clone();
    let destination_id = destination.id.clone();
    let sync = store_call(move || {
        state.create_sync(
            &ws,
            &NewSync {
                key: &key,
                class,
                destination_id: destination_id.as_str(),
                mode,
                external_audience_id: external_audience_id.as_deref(),
            },
        )
    })
    .await?;
    on_destination_changed(&app, &destination.id);
    let shown = view(&app, &scope.workspace_id, &sync).await?;
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

/// The sync's mode: the one asked for, checked against the destination, or its default.
fn choose_mode(
    asked: Option<&str>,
    ad_platform: bool,
    class: SyncClass,
) -> Result<SyncMode, ApiError> {
    let invalid = |message: &str| {
        ApiError::bad_request("invalid_request", format!("mode: {message}")).with_field("mode")
    };
    let mode = match asked {
        None if ad_platform => SyncMode::List,
        None => SyncMode::Identify,
        Some(text) => {
            SyncMode::parse(text).ok_or_else(|| invalid("must be identify, track or list"))?
        }
    };
    if ad_platform && class == SyncClass::Trait {
        return Err(ApiError::bad_request(
            "invalid_request",
            "destinationId: computed traits cannot be sent to an ad-platform audience; send an audience",
        )
        .with_field("destinationId"));
    }
    match (ad_platform, mode) {
        (true, SyncMode::List) | (false, SyncMode::Identify | SyncMode::Track) => Ok(mode),
        (true, _) => Err(invalid("an ad-platform audience destination takes list")),
        (false, _) => Err(invalid(
            "list is for ad-platform audience destinations; use identify or track",
        )),
    }
}

/// Creates the audience on the platform and returns its id.
async fn create_platform_audience(
    platform: &dyn AudiencePlatform,
    name: &str,
    key: &str,
) -> Result<String, ApiError> {
    let failed =
        |message: String| ApiError::new(StatusCode::BAD_GATEWAY, "provider_error", message);
    let description = format!("Sluice audience {key}");
    let request = platform.plan_create_audience(name, &description);
    let client = Client::new(CREATE_TIMEOUT)
        .map_err(|error| failed(format!("creating the platform audience failed: {error}")))?;
    let response = client
        .send(request, CREATE_TIMEOUT)
        .await
        .map_err(|error| failed(format!("creating the platform audience failed: {error}")))?;
    platform.parse_created(&response).map_err(|verdict| {
        let reason = match verdict {
            Verdict::Retry { reason, .. }
            | Verdict::Reject { reason }
            | Verdict::Unauthorized { reason } => reason,
            Verdict::Partial(_) | Verdict::Delivered => {
                "an answer without an audience id".to_string()
            }
        };
        failed(format!(
            "{} refused to create the audience: {reason}",
            platform.kind()
        ))
    })
}

async fn delete(
    app: AppState,
    scope: Scope,
    kind: DefinitionKind,
    key: String,
    id: String,
) -> Result<StatusCode, ApiError> {
    find(&app, &scope.workspace_id, kind, &key).await?;
    let state = app.state.clone();
    let ws = scope.workspace_id.clone();
    let sync_id = id.clone();
    let sync = store_call(move || {
        let found = state
            .syncs(&ws, Some(&key))?
            .into_iter()
            .find(|sync| sync.id == sync_id);
        if let Some(sync) = &found {
            state.delete_sync(&ws, &sync.id)?;
        }
        Ok::<_, sluice_store::StoreError>(found)
    })
    .await?
    .ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("sync {id} not found"),
        )
    })?;
    on_destination_changed(&app, &DestinationId(sync.destination_id.clone()));
    crate::audiences::purge_output(app.log.as_ref(), &scope.workspace_id, &sync).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A sync as the API shows it, with its progress and warnings.
async fn view(
    app: &AppState,
    workspace: &WorkspaceId,
    sync: &AudienceSync,
) -> Result<Value, ApiError> {
    let (state, store) = (app.state.clone(), app.audiences.store.clone());
    let (ws, id, key, destination_id) = (
        workspace.clone(),
        sync.id.clone(),
        sync.key.clone(),
        sync.destination_id.clone(),
    );
    let (destination, progress, size) = store_call(move || {
        Ok::<_, sluice_store::StoreError>((
            state.get_destination(&ws, &destination_id)?,
            store.sync_progress(&id)?,
            store.member_count(&ws, &key)?,
        ))
    })
    .await?;
    let status = match progress {
        Some(progress) if progress.initial_after.is_none() => "live",
        _ => "syncing",
    };
    let mut warnings = Vec::new();
    if sync.mode == SyncMode::List {
        let settings = settings_of(app, &destination).await?;
        warnings.extend(size_warning(&destination, &settings, size)?);
    }
    Ok(json!({
        "id": sync.id,
        "key": sync.key,
        "class": sync.class.as_str(),
        "destinationId": sync.destination_id,
        "destinationType": destination.kind,
        "mode": sync.mode.as_str(),
        "externalAudienceId": sync.external_audience_id,
        "status": status,
        "size": size,
        "warnings": warnings,
        "createdAt": sync.created_at,
    }))
}

/// A destination's settings in clear, its connection's token filled in (never log them).
async fn settings_of(
    app: &AppState,
    destination: &Destination,
) -> Result<Map<String, Value>, ApiError> {
    let (state, vault, opened) = (app.state.clone(), app.vault.clone(), destination.clone());
    let settings = store_call(move || Ok(open_settings(&state, &vault, &opened))).await??;
    Ok(settings)
}

/// A warning when the audience is smaller than the platform will target.
fn size_warning(
    destination: &Destination,
    settings: &Map<String, Value>,
    size: u64,
) -> Result<Option<Value>, ApiError> {
    let Some(platform) = audience_platform(&destination.kind, settings)? else {
        return Ok(None);
    };
    let minimum = platform.minimum_size();
    if size >= minimum {
        return Ok(None);
    }
    Ok(Some(json!({
        "code": "below_minimum_size",
        "message": format!(
            "the audience has {size} members; {} targets an audience only once it matches at least {minimum} people",
            platform.kind()
        ),
        "minimumSize": minimum,
    })))
}
