//! The public error table: every refusal the APIs give has an HTTP status, a stable code and
//! a message (and the field at fault when there is one), answered as
//! `{"success": false, "code": "...", "message": "...", "field": "..."}`.
//!
//! | code | status |
//! |---|---|
//! | `malformed_json`, `request_too_large`, `event_too_large`, `batch_too_large`, `missing_batch`, `invalid_message`, `missing_type`, `invalid_type`, `missing_identity`, `invalid_identity`, `missing_event`, `missing_group_id`, `missing_previous_id`, `invalid_message_id`, `message_id_too_long`, `invalid_timestamp`, `invalid_field_type`, `unsupported_encoding`, `all_messages_rejected`, `invalid_request`, `invalid_settings`, `unknown_destination_type`, `unknown_source`, `invalid_filter`, `invalid_identity_settings`, `invalid_definition`, `provider_not_configured`, `state_unknown`, `state_expired`, `state_mismatch`, `code_invalid` | 400 |
//! | `missing_write_key`, `invalid_write_key`, `source_disabled`, `missing_admin_token`, `invalid_admin_token` | 401 |
//! | `authorization_denied` | 403 |
//! | `not_found` | 404 |
//! | `already_exists`, `definition_in_use`, `connection_disconnected`, `token_revoked`, `token_expired`, `refresh_unsupported` | 409 |
//! | `request_timeout` | 408 |
//! | `provider_error`, `provider_unreachable` | 502 |
//! | `unavailable` | 503 |
//! | `internal`, `master_key_unavailable` | 500 |

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sluice_destinations::SettingsError;
use sluice_oauth::OAuthError;
use sluice_privacy::VaultError;
use sluice_spec::Rejection;
use sluice_store::StoreError;

use crate::connections::ConnectionError;

/// A refusal, ready to be answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    success: bool,
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn with_field(mut self, field: &str) -> ApiError {
        self.field = Some(field.to_owned());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: rejection.code.as_str(),
            message: rejection.message,
            field: rejection.field,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound { kind, id } => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{kind} {id} not found"),
            ),
            StoreError::AlreadyExists(what) => ApiError::new(
                StatusCode::CONFLICT,
                "already_exists",
                format!("{what} already exists"),
            ),
            StoreError::Invalid { field, message } => {
                ApiError::bad_request("invalid_request", format!("{field} {message}"))
                    .with_field(field)
            }
            StoreError::WriterStopped => {
                ApiError::unavailable("the event log is not accepting writes")
            }
            other => {
                tracing::error!(error = %other, "storage error");
                ApiError::internal("storage error")
            }
        }
    }
}

impl From<sluice_audience::DefinitionError> for ApiError {
    fn from(error: sluice_audience::DefinitionError) -> ApiError {
        ApiError::bad_request("invalid_definition", error.to_string()).with_field(&error.field)
    }
}

impl From<SettingsError> for ApiError {
    fn from(error: SettingsError) -> ApiError {
        match error {
            SettingsError::UnknownType(kind) => {
                let known: Vec<&str> = sluice_destinations::types()
                    .iter()
                    .map(|t| t.kind)
                    .collect();
                ApiError::bad_request(
                    "unknown_destination_type",
                    format!(
                        "unknown destination type {kind:?}; known types: {}",
                        known.join(", ")
                    ),
                )
                .with_field("type")
            }
            SettingsError::Invalid { field, message } => {
                let field = format!("settings.{field}");
                ApiError::bad_request("invalid_settings", format!("{field}: {message}"))
                    .with_field(&field)
            }
        }
    }
}

impl From<VaultError> for ApiError {
    fn from(error: VaultError) -> ApiError {
        match error {
            VaultError::UnknownKey(id) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "master_key_unavailable",
                format!(
                    "the destination's secrets are sealed under master key {id}, which is not configured"
                ),
            ),
            other => {
                // Vault errors name keys and formats, never key material or secrets.
                tracing::error!(error = %other, "vault error");
                ApiError::internal("cannot seal or open the destination's secrets")
            }
        }
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> ApiError {
        let status = match &error {
            OAuthError::StateUnknown
            | OAuthError::StateExpired
            | OAuthError::StateMismatch
            | OAuthError::CodeInvalid { .. } => StatusCode::BAD_REQUEST,
            OAuthError::TokenRevoked { .. }
            | OAuthError::TokenExpired { .. }
            | OAuthError::RefreshUnsupported { .. } => StatusCode::CONFLICT,
            OAuthError::ProviderError { .. } | OAuthError::MalformedResponse { .. } => {
                StatusCode::BAD_GATEWAY
            }
        };
        let code = match &error {
            OAuthError::MalformedResponse { .. } => "provider_error",
            other => other.code(),
        };
        // The library's messages carry the provider's code and a scrubbed description.
        ApiError::new(status, code, error.to_string())
    }
}

impl From<ConnectionError> for ApiError {
    fn from(error: ConnectionError) -> ApiError {
        let message = error.to_string();
        match error {
            ConnectionError::OAuth(error) => ApiError::from(error),
            ConnectionError::Store(error) => ApiError::from(error),
            ConnectionError::Vault(error) => ApiError::from(error),
            ConnectionError::UnknownProvider(_) => {
                ApiError::bad_request("invalid_request", message).with_field("provider")
            }
            ConnectionError::BadCallback(_) => ApiError::bad_request("invalid_request", message),
            ConnectionError::NotConfigured { .. } => {
                ApiError::bad_request("provider_not_configured", message).with_field("provider")
            }
            ConnectionError::Denied { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, "authorization_denied", message)
            }
            ConnectionError::Unreachable { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "provider_unreachable", message)
            }
            ConnectionError::Disconnected(_) => {
                ApiError::new(StatusCode::CONFLICT, "connection_disconnected", message)
            }
            ConnectionError::Unusable { .. } => ApiError::bad_request("invalid_settings", message),
            ConnectionError::Random(_) => {
                tracing::error!(error = %message, "no random bytes");
                ApiError::internal("no random bytes")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            success: false,
            code: self.code,
            message: &self.message,
            field: self.field.as_deref(),
        };
        (self.status, Json(body)).into_response()
    }
}
