//! The admin API under `/api/v1/`, authenticated by a workspace admin token
//! (`Authorization: Bearer <token>`).
//!
//! The token decides the workspace: handlers get it only through the [`Scope`] extractor, so
//! no admin route can reach another workspace's data.

pub mod audiences;
pub mod connections;
pub mod delivery;
pub mod destinations;
pub mod events;
pub mod identity;
pub mod privacy;
pub mod sources;
pub mod syncs;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use sluice_store::WorkspaceId;

use crate::error::ApiError;
use crate::startup::AppState;

/// The workspace an authenticated admin request acts on.
#[derive(Debug, Clone)]
pub struct Scope {
    pub workspace_id: WorkspaceId,
}

impl FromRequestParts<AppState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Scope, ApiError> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "missing_admin_token",
                    "send the admin token as Authorization: Bearer <token>",
                )
            })?;
        let token = match header.trim().split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
                token.trim().to_owned()
            }
            _ => {
                return Err(ApiError::unauthorized(
                    "missing_admin_token",
                    "send the admin token as Authorization: Bearer <token>",
                ));
            }
        };
        let state = app.state.clone();
        let workspace = crate::store_call(move || state.workspace_for_token(&token)).await?;
        match workspace {
            Some(workspace_id) => Ok(Scope { workspace_id }),
            None => Err(ApiError::unauthorized(
                "invalid_admin_token",
                "the admin token is not valid",
            )),
        }
    }
}

/// A stored time (ms since the epoch) as JSON text in Sluice's format (`null` out of range).
pub(crate) fn time_json(ms: i64) -> serde_json::Value {
    sluice_spec::timestamp::format_ms(ms).map_or(serde_json::Value::Null, serde_json::Value::String)
}
