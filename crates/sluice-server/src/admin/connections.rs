//! OAuth connections to ad accounts under `/api/v1/connections`, and the providers' callback
//! `GET /oauth/callback`.
//!
//! | route | answer |
//! |---|---|
//! | `POST /api/v1/connections` `{provider, label?}` | `201 {connection_id, provider, authorization_url, state_expires_at}` |
//! | `GET /api/v1/connections` | `{connections: [...]}` |
//! | `GET /api/v1/connections/{id}` | the connection |
//! | `POST /api/v1/connections/{id}/refresh` | the connection, its token renewed |
//! | `POST /api/v1/connections/{id}/reconnect` | `201` as `POST /api/v1/connections`, for this connection |
//! | `DELETE /api/v1/connections/{id}` | the connection, disconnected, with the destinations disabled |
//! | `GET /oauth/callback?code=…&state=…` | a small page (HTML, or JSON when asked) |
//!
//! A connection is shown with its status and the reason for it, never a token. The callback
//! takes no admin token: the `state` it carries stands for the admin who started the
//! authorization (it is random, works once, for ten minutes, and is compared in constant time).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_store::Connection;

use super::sources::json_body;
use super::{Scope, time_json};
use crate::connections::{Disconnected, Started};
use crate::error::ApiError;
use crate::startup::AppState;
use crate::store_call;

/// The body of `POST /api/v1/connections`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConnection {
    /// `google`, `meta` or `tiktok`.
    pub provider: String,
    /// A name for people.
    #[serde(default)]
    pub label: Option<String>,
}

/// A connection as the API shows it: no token, ever.
pub fn connection_json(connection: &Connection, destinations: &[String]) -> Value {
    json!({
        "id": connection.id,
        "provider": connection.provider,
        "label": connection.label,
        "status": connection.status.as_str(),
        "status_message": connection.status_message,
        "scopes": connection.scopes,
        "advertiser_ids": connection.accounts,
        "access_token_expires_at": connection.access_expires_at_ms.map_or(Value::Null, time_json),
        "refreshed_at": connection.refreshed_at_ms.map_or(Value::Null, time_json),
        "revocation": connection.revocation,
        "destinations": destinations,
        "version": connection.version,
        "created_at": connection.created_at,
        "updated_at": connection.updated_at,
    })
}

fn started_json(started: &Started) -> Value {
    let expires = sluice_spec::timestamp::format(started.state_expires_at);
    json!({
        "connection_id": started.connection_id,
        "provider": started.provider.name(),
        "authorization_url": started.authorization_url,
        "state_expires_at": expires,
    })
}

/// The connection with the ids of the destinations that use it.
async fn view(app: &AppState, connection: Connection) -> Result<Value, ApiError> {
    let (state, workspace, id) = (
        app.state.clone(),
        connection.workspace_id.clone(),
        connection.id.clone(),
    );
    let using = store_call(move || state.destinations_using_connection(&workspace, &id)).await?;
    let ids: Vec<String> = using.into_iter().map(|d| d.id.0).collect();
    Ok(connection_json(&connection, &ids))
}

/// `POST /api/v1/connections`
pub async fn create(
    State(app): State<AppState>,
    scope: Scope,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let request: CreateConnection = json_body(&body)?;
    let started = app
        .connections
        .start(&scope.workspace_id, &request.provider, request.label)
        .await?;
    Ok((StatusCode::CREATED, Json(started_json(&started))).into_response())
}

/// `POST /api/v1/connections/{id}/reconnect`
pub async fn reconnect(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let started = app.connections.reconnect(&scope.workspace_id, &id).await?;
    Ok((StatusCode::CREATED, Json(started_json(&started))).into_response())
}

/// `GET /api/v1/connections`
pub async fn list(State(app): State<AppState>, scope: Scope) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let workspace = scope.workspace_id.clone();
    let connections = store_call(move || state.list_connections(&workspace)).await?;
    let mut views = Vec::with_capacity(connections.len());
    for connection in connections {
        views.push(view(&app, connection).await?);
    }
    Ok(Json(json!({ "connections": views })))
}

/// `GET /api/v1/connections/{id}`
pub async fn show(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let state = app.state.clone();
    let connection = store_call(move || state.get_connection(&scope.workspace_id, &id)).await?;
    Ok(Json(view(&app, connection).await?))
}

/// `POST /api/v1/connections/{id}/refresh`
pub async fn refresh(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let connection = app.connections.refresh(&scope.workspace_id, &id).await?;
    Ok(Json(view(&app, connection).await?))
}

/// `DELETE /api/v1/connections/{id}`
pub async fn delete(
    State(app): State<AppState>,
    scope: Scope,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let Disconnected {
        connection,
        destinations,
        purged,
    } = app.connections.disconnect(&scope.workspace_id, &id).await?;
    let mut answer = connection_json(&connection, &destinations);
    if let Some(object) = answer.as_object_mut() {
        object.insert("disabled_destinations".into(), json!(destinations));
        object.insert(
            "purged".into(),
            json!({"destinations": purged.destinations, "cursors": purged.cursors,
                "syncs": purged.syncs, "syncEvents": purged.sync_events}),
        );
    }
    Ok(Json(answer))
}

/// `GET /oauth/callback`: where the provider sends the admin's browser back. Answers a small
/// HTML page, or JSON when the request asks for `application/json`.
pub async fn callback(
    State(app): State<AppState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let outcome = match app
        .connections
        .callback(query.as_deref().unwrap_or(""))
        .await
    {
        Ok(connection) => view(&app, connection).await,
        Err(error) => Err(ApiError::from(error)),
    };
    match (outcome, wants_json) {
        (Ok(connection), true) => {
            Json(json!({"success": true, "connection": connection})).into_response()
        }
        (Ok(connection), false) => {
            let provider = connection["provider"].as_str().unwrap_or_default();
            let id = connection["id"].as_str().unwrap_or_default();
            page(
                StatusCode::OK,
                "Connected",
                &format!(
                    "The {provider} account is connected to Sluice as connection {id}. You can close this window."
                ),
            )
        }
        (Err(error), true) => error.into_response(),
        (Err(error), false) => page(
            error.status,
            "Not connected",
            &format!("{} ({})", error.message, error.code),
        ),
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let body = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sluice: {title}</title></head>\
         <body><h1>{title}</h1><p>{}</p></body></html>\n",
        escape_html(text)
    );
    let mut response = (status, Html(body)).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Text made safe to put in HTML.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape_html("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
    }
}
