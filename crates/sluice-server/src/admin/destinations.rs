//! Destinations of a workspace: create, list, show, update, delete.
//!
//! Settings are checked by their destination type (`sluice_destinations::build`). The ones
//! the type names as credentials are sealed with the vault before they reach the store, bound
//! to the workspace and the destination, and never come back: answers show each as
//! [`REDACTED`]. [`create_destination`] and [`update_destination`] serve the CLI too, and
//! [`open_settings`] gives the delivery engine (and anyone else who builds an adapter) a
//! destination's settings in clear.
//!
//! An ad-platform destination may name an OAuth connection (`"connection_id"`, a plain
//! setting) instead of giving an `access_token`: creating or changing its settings checks that
//! the connection exists in the workspace, is for the type's provider and is active, and
//! [`open_settings`] puts the connection's current access token in its place.
//! Settings are never logged.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sluice_delivery::consumer_name;
use sluice_privacy::{Vault, VaultError};
use sluice_store::{
    Connection, DeliveryOptions, Destination, DestinationChange, DestinationId, NewDestination,
    StateStore, StoreError, StoredSettings, WorkspaceId, settings_context,
};
use zeroize::Zeroizing;

use super::Scope;
use super::sources::json_body;
use crate::connections::{
    CONNECTION_SETTING, ConnectionError, resolve_connection, resolve_connection_with,
};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

/// How a secret setting is shown. Sent back in a `PATCH`, it keeps the stored value.
pub const REDACTED: &str = "[redacted]";

/// A destination as the API shows it: secret settings redacted. No `Debug`: settings, even
/// non-secret ones, stay out of logs.
#[derive(Serialize)]
pub struct DestinationView {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub enabled: bool,
    pub settings: Map<String, Value>,
    pub sources: Vec<String>,
    pub consent_categories: Vec<String>,
    pub advertising: bool,
    pub delivery: DeliveryOptions,
    pub created_at: String,
    pub updated_at: String,
}

impl DestinationView {
    pub fn new(destination: Destination) -> DestinationView {
        let mut settings = destination.settings.plain;
        for field in destination.settings.sealed_fields {
            settings.insert(field, Value::String(REDACTED.to_owned()));
        }
        DestinationView {
            id: destination.id.0,
            workspace_id: destination.workspace_id.0,
            name: destination.name,
            kind: destination.kind,
            enabled: destination.enabled,
            settings,
            sources: destination.sources,
            consent_categories: destination.consent_categories,
            advertising: destination.advertising,
            delivery: destination.delivery,
            created_at: destination.created_at,
            updated_at: destination.updated_at,
        }
    }
}

/// The body of `POST /api/v1/destinations`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateDestination {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub settings: Map<String, Value>,
    pub sources: Vec<String>,
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    #[serde(default)]
    pub consent_categories: Vec<String>,
    /// Marks an advertising or sale destination (GPC and "do not sell" opt-outs apply).
    #[serde(default)]
    pub advertising: bool,
    /// Delivery options; missing ones take their defaults.
    #[serde(default)]
    pub delivery: Map<String, Value>,
}

fn enabled_by_default() -> bool {
    true
}

/// The body of `PATCH /api/v1/destinations/{id}`: absent fields keep their value. `settings`
/// and `delivery` merge key by key (`null` removes a setting); `sources` replaces the set.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateDestination {
    pub name: Option<String>,
    /// Accepted only when it is the current type: a type cannot change.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub settings: Option<Map<String, Value>>,
    pub sources: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub consent_categories: Option<Vec<String>>,
    pub advertising: Option<bool>,
    pub delivery: Option<Map<String, Value>>,
}

/// Called after every successful create, update and delete of a destination.
///
/// The delivery engine catches up at once (starts, restarts or stops the destination's
/// runner) instead of at its next periodic check.
pub fn on_destination_changed(app: &AppState, id: &DestinationId) {
    tracing::debug!(destination = %id, "destination changed");
    let deliveries = Arc::clone(&app.deliveries);
    tokio::spawn(async move { deliveries.reconcile().await });
}

/// A destination's settings as its adapter takes them, in clear: the plain ones with the
/// secret ones opened, and, when they name an OAuth connection, that connection's current
/// access token as `access_token` in place of `connection_id` (so adapters never see
/// connection ids, and `sluice_destinations::audience::audience_platform` works on the
/// answer). Every caller that builds an adapter or an audience platform uses this. Fails when
/// the connection cannot be used (missing, for another provider, not active). The answer
/// holds credentials: never log it.
pub fn open_settings(
    state: &StateStore,
    vault: &Vault,
    destination: &Destination,
) -> Result<Map<String, Value>, ConnectionError> {
    let stored = open_stored_settings(vault, destination)?;
    resolve_connection(
        state,
        vault,
        &destination.workspace_id,
        &destination.kind,
        stored,
    )
}

/// A destination's settings as stored, in clear: the plain ones (`connection_id` included)
/// with the secret ones opened. For merging updates and for looking at what is stored; to
/// build an adapter use [`open_settings`]. The answer holds credentials: never log it.
pub fn open_stored_settings(
    vault: &Vault,
    destination: &Destination,
) -> Result<Map<String, Value>, VaultError> {
    let context = settings_context(&destination.workspace_id, &destination.id);
    let opened = vault.open(&destination.settings.sealed, &context)?;
    let secret: Map<String, Value> = serde_json::from_slice(&opened)
        .map_err(|_| VaultError::Malformed("sealed settings are not a JSON object"))?;
    let mut settings = destination.settings.plain.clone();
    settings.extend(secret);
    Ok(settings)
}

/// Splits checked settings into plain and secret ones and seals the secret ones.
fn seal_settings(
    vault: &Vault,
    workspace: &WorkspaceId,
    id: &DestinationId,
    kind: &str,
    settings: Map<String, Value>,
) -> Result<StoredSettings, ApiError> {
    let secret_names = sluice_destinations::secret_fields(kind)?;
    let mut plain = Map::new();
    let mut secret = Map::new();
    for (field, value) in settings {
        if value.is_null() {
            continue;
        }
        if secret_names.contains(&field.as_str()) {
            secret.insert(field, value);
        } else {
            plain.insert(field, value);
        }
    }
    let json = Zeroizing::new(
        serde_json::to_vec(&secret).map_err(|_| ApiError::internal("cannot encode settings"))?,
    );
    let sealed = vault.seal(&json, &settings_context(workspace, id))?;
    Ok(StoredSettings {
        plain,
        sealed,
        sealed_fields: secret.keys().cloned().collect(),
    })
}

/// Delivery options with `patch` written over `current`, key by key.
fn merge_delivery(
    current: &DeliveryOptions,
    patch: Map<String, Value>,
) -> Result<DeliveryOptions, ApiError> {
    let mut merged = match serde_json::to_value(current) {
        Ok(Value::Object(map)) => map,
        _ => return Err(ApiError::internal("cannot encode delivery options")),
    };
    merged.extend(patch);
    serde_json::from_value(Value::Object(merged)).map_err(|error| {
        ApiError::bad_request("invalid_request", format!("delivery: {error}"))
            .with_field("delivery")
    })
}

/// A store error as the API says it; a missing source is named by its place in `sources`.
fn refine(error: StoreError, sources: Option<&[String]>) -> ApiError {
    match error {
        StoreError::NotFound { kind: "source", id } => {
            let index = sources
                .and_then(|sources| sources.iter().position(|source| *source == id))
                .unwrap_or(0);
            ApiError::bad_request(
                "unknown_source",
                format!("source {id} does not exist in this workspace"),
            )
            .with_field(&format!("sources[{index}]"))
        }
        other => ApiError::from(other),
    }
}

/// Why an update failed: in the store (refined once the sources are known) or before.
enum Failure {
    Store(StoreError),
    Api(ApiError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Failure {
        Failure::Store(error)
    }
}

macro_rules! failure_from {
    ($($error:ty),*) => {$(
        impl From<$error> for Failure {
            fn from(error: $error) -> Failure {
                Failure::Api(ApiError::from(error))
            }
        }
    )*};
}

failure_from!(ApiError, VaultError, sluice_destinations::SettingsError);

/// Checks settings with their type: those naming an OAuth connection are checked with the
/// connection's access token in its place (the connection must exist in the workspace, be
/// for the type's provider and be active).
fn check_settings(
    state: &StateStore,
    vault: &Vault,
    workspace: &WorkspaceId,
    kind: &str,
    settings: &Map<String, Value>,
) -> Result<(), ApiError> {
    let resolved = resolve_connection(state, vault, workspace, kind, settings.clone())
        .map_err(connection_refusal)?;
    sluice_destinations::build(kind, &resolved)?;
    Ok(())
}

/// [`check_settings`] inside a state transaction: the workspace's connections were read
/// before it.
fn check_settings_with(
    connections: &[Connection],
    vault: &Vault,
    workspace: &WorkspaceId,
    kind: &str,
    settings: &Map<String, Value>,
) -> Result<(), ApiError> {
    let find = |_: &WorkspaceId, id: &str| {
        connections
            .iter()
            .find(|connection| connection.id == id)
            .cloned()
            .ok_or_else(|| StoreError::NotFound {
                kind: "connection",
                id: id.to_owned(),
            })
    };
    let resolved = resolve_connection_with(vault, workspace, kind, settings.clone(), find)
        .map_err(connection_refusal)?;
    sluice_destinations::build(kind, &resolved)?;
    Ok(())
}

/// A connection a destination cannot use, as the API says it.
fn connection_refusal(error: ConnectionError) -> ApiError {
    match error {
        ConnectionError::Unusable { .. } => {
            let field = format!("settings.{CONNECTION_SETTING}");
            ApiError::bad_request("invalid_settings", format!("{field}: {error}"))
                .with_field(&field)
        }
        other => ApiError::from(other),
    }
}

/// Checks, seals and stores a new destination.
pub fn create_destination(
    state: &StateStore,
    vault: &Vault,
    workspace: &WorkspaceId,
    request: CreateDestination,
) -> Result<Destination, ApiError> {
    // The type first, so an unknown one is named as such.
    sluice_destinations::find(&request.kind)?;
    check_settings(state, vault, workspace, &request.kind, &request.settings)?;
    // The placeholder stands for a stored value; a new destination has none.
    for field in sluice_destinations::secret_fields(&request.kind)? {
        if request
            .settings
            .get(*field)
            .is_some_and(|value| value == REDACTED)
        {
            let field = format!("settings.{field}");
            return Err(ApiError::bad_request(
                "invalid_settings",
                format!("{field}: {REDACTED} stands for a stored secret; give the value"),
            )
            .with_field(&field));
        }
    }
    let delivery = merge_delivery(&DeliveryOptions::default(), request.delivery)?;
    let id = DestinationId::generate();
    let settings = seal_settings(vault, workspace, &id, &request.kind, request.settings)?;
    let new = NewDestination {
        id,
        name: request.name,
        kind: request.kind,
        enabled: request.enabled,
        settings,
        consent_categories: request.consent_categories,
        advertising: request.advertising,
        delivery,
        sources: request.sources.clone(),
    };
    state
        .create_destination(workspace, new)
        .map_err(|error| refine(error, Some(&request.sources)))
}

/// Applies a partial update in one transaction: settings are merged with the stored ones
/// (an omitted or [`REDACTED`] secret keeps its value), checked, and sealed again.
pub fn update_destination(
    state: &StateStore,
    vault: &Vault,
    workspace: &WorkspaceId,
    id: &str,
    request: UpdateDestination,
) -> Result<Destination, ApiError> {
    let sources = request.sources.clone();
    // Read before the transaction, which holds the store (settings naming a connection are
    // checked against it).
    let connections = if request.settings.is_some() {
        state.list_connections(workspace)?
    } else {
        Vec::new()
    };
    let updated = state.update_destination(workspace, id, |current| -> Result<_, Failure> {
        if request
            .kind
            .as_ref()
            .is_some_and(|kind| *kind != current.kind)
        {
            return Err(Failure::Api(
                ApiError::bad_request(
                    "invalid_request",
                    "the type of a destination cannot change; create another destination",
                )
                .with_field("type"),
            ));
        }
        let mut change = DestinationChange {
            name: request.name,
            enabled: request.enabled,
            consent_categories: request.consent_categories,
            advertising: request.advertising,
            sources: request.sources,
            ..DestinationChange::default()
        };
        if let Some(patch) = request.settings {
            let secret_names = sluice_destinations::secret_fields(&current.kind)?;
            let mut merged = open_stored_settings(vault, current)?;
            for (field, value) in patch {
                let keep = secret_names.contains(&field.as_str()) && value == REDACTED;
                if value.is_null() {
                    merged.remove(&field);
                } else if !keep {
                    merged.insert(field, value);
                }
            }
            check_settings_with(&connections, vault, workspace, &current.kind, &merged)?;
            change.settings = Some(seal_settings(
                vault,
                workspace,
                &current.id,
                &current.kind,
                merged,
            )?);
        }
        if let Some(patch) = request.delivery {
            change.delivery = Some(merge_delivery(&current.delivery, patch)?);
        }
        Ok(change)
    });
    updated.map_err(|failure| match failure {
        Failure::Store(error) => refine(error, sources.as_deref()),
        Failure::Api(error) => error,
    })
}

pub async fn create(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CreateDestination = json_body(&body)?;
    let (state, vault) = (app.state.clone(), app.vault.clone());
    // The inner result carries the API's own refusals (settings, sources).
    let destination = store_call(move || {
        Ok(create_destination(
            &state,
            &vault,
            &scope.workspace_id,
            request,
        ))
    })
    .await??;
    on_destination_changed(&app, &destination.id);
    Ok((StatusCode::CREATED, Json(DestinationView::new(destination))).into_response())
}

pub async fn list(
    State(app): State<AppState>,
    scope: Scope,
) -> Result<Json<serde_json::Value>, ApiError> {
    let state = app.state.clone();
    let destinations = store_call(move || state.list_destinations(&scope.workspace_id)).await?;
    let views: Vec<DestinationView> = destinations.into_iter().map(DestinationView::new).collect();
    Ok(Json(serde_json::json!({ "destinations": views })))
}

pub async fn show(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<DestinationView>, ApiError> {
    let state = app.state.clone();
    let destination = store_call(move || state.get_destination(&scope.workspace_id, &id)).await?;
    Ok(Json(DestinationView::new(destination)))
}

pub async fn update(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<DestinationView>, ApiError> {
    let request: UpdateDestination = json_body(&body)?;
    let (state, vault) = (app.state.clone(), app.vault.clone());
    let destination = store_call(move || {
        Ok(update_destination(
            &state,
            &vault,
            &scope.workspace_id,
            &id,
            request,
        ))
    })
    .await??;
    on_destination_changed(&app, &destination.id);
    Ok(Json(DestinationView::new(destination)))
}

pub async fn delete(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (state, store) = (app.state.clone(), app.deliveries.store.clone());
    let removed = DestinationId(id.clone());
    let workspace = scope.workspace_id.clone();
    store_call(move || {
        state.delete_destination(&scope.workspace_id, &id)?;
        // What was held only for it goes with it: dead letters, replays, PII overrides.
        store.forget_destination(&scope.workspace_id, &id)?;
        state.forget_destination_settings(&scope.workspace_id, &id)?;
        Ok(())
    })
    .await?;
    // And its cursors in the log.
    app.log
        .forget_consumer(&workspace, &consumer_name(&removed.0))
        .await?;
    on_destination_changed(&app, &removed);
    Ok(StatusCode::NO_CONTENT)
}
