//! The platforms' answers: [`Tokens`] from each success shape, an [`OAuthError`] from each
//! error shape.
//!
//! - Google answers RFC 6749 §5: `{access_token, expires_in, refresh_token?, scope,
//!   token_type}`, or `{error, error_description}` with a 4xx. `invalid_grant` is a bad,
//!   expired or used code, or a wrong verifier, on the exchange (`code_invalid`, like
//!   `redirect_uri_mismatch` there) and an expired or revoked refresh
//!   token on renewal (`token_revoked`: Google says "Token has been expired or revoked" for
//!   both); the revoke endpoint answers `invalid_token` for a dead token.
//! - Meta answers `{access_token, token_type, expires_in?}`, or
//!   `{"error":{"message","type":"OAuthException","code","error_subcode"?,"fbtrace_id"}}` with
//!   a 4xx. Code 100 on the exchange is a code Meta will not take (`code_invalid`: used,
//!   expired, another redirect URI or verifier); code 190 is a dead token, subcode 463 an
//!   expired one (`token_expired`), the rest revoked or invalid (`token_revoked`). Rate limits
//!   (4, 17, 32, 613, 80003), errors marked `is_transient`, and service errors (1, 2, 341,
//!   368) not typed `OAuthException` are retryable (`ad-audiences.md` §1.1).
//! - TikTok answers HTTP 200 whatever happened: `{code, message, request_id, data}` with
//!   `code` 0 for success and `data: {access_token, advertiser_ids, scope}`. Codes from
//!   secondary sources (`ad-audiences.md` §1.3, to verify against TikTok's list): 40131
//!   authorization code expired or used (`code_invalid`), 40102 token expired
//!   (`token_expired`), 40105 token invalid or revoked (`token_revoked`); 40100, 40016, 40133
//!   rate limits and 5xxxx service errors are retryable.

use serde_json::Value;
use sluice_destinations::{HttpResponse, Secret};
use time::{Duration, OffsetDateTime};

use crate::error::{OAuthError, scrub};
use crate::provider::Provider;

/// What a successful exchange or renewal gave. `Debug` hides the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tokens {
    pub access: Secret,
    /// Google's refresh token (none from Meta or TikTok, nor from most Google renewals: keep
    /// the one you have, see [`Tokens::keep_missing`]).
    pub refresh: Option<Secret>,
    /// When the access token expires (`None`: the platform said it does not, or said nothing).
    pub expires_at: Option<OffsetDateTime>,
    /// The scopes granted, when the platform says (Google's `scope`, TikTok's permission ids).
    pub scopes: Vec<String>,
    /// TikTok: the advertiser accounts the token reaches.
    pub advertiser_ids: Vec<String>,
}

impl Tokens {
    /// Whether the access token has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// Whether the access token expires within `margin` of `now` (time to renew).
    pub fn expires_within(&self, now: OffsetDateTime, margin: Duration) -> bool {
        self.expires_at
            .is_some_and(|at| now.saturating_add(margin) >= at)
    }

    /// A renewal's tokens completed with what it did not repeat from `previous`: the refresh
    /// token, the scopes, the advertiser ids.
    pub fn keep_missing(mut self, previous: &Tokens) -> Tokens {
        if self.refresh.is_none() {
            self.refresh.clone_from(&previous.refresh);
        }
        if self.scopes.is_empty() {
            self.scopes.clone_from(&previous.scopes);
        }
        if self.advertiser_ids.is_empty() {
            self.advertiser_ids.clone_from(&previous.advertiser_ids);
        }
        self
    }
}

/// Which request an answer is to: the same error means different things.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    /// The code exchange.
    Code,
    /// A renewal, or Meta's long-lived exchange.
    Renew,
    Revoke,
}

/// Reads the answer to [`token_request`](super::token_request) at `now`.
pub fn parse_token(
    provider: Provider,
    response: &HttpResponse,
    now: OffsetDateTime,
) -> Result<Tokens, OAuthError> {
    let payload = success(provider, Step::Code, response)?;
    tokens(provider, &payload, now)
}

/// Reads the answer to [`refresh_request`](super::refresh_request) or
/// [`long_lived_request`](super::long_lived_request) at `now`.
pub fn parse_refresh(
    provider: Provider,
    response: &HttpResponse,
    now: OffsetDateTime,
) -> Result<Tokens, OAuthError> {
    let payload = success(provider, Step::Renew, response)?;
    tokens(provider, &payload, now)
}

/// Reads the answer to [`revoke_request`](super::revoke_request). `token_revoked` or
/// `token_expired` mean the token was already dead: nothing is left to revoke, and the
/// caller may take the connection as disconnected.
pub fn parse_revoke(provider: Provider, response: &HttpResponse) -> Result<(), OAuthError> {
    let payload = success(provider, Step::Revoke, response)?;
    if provider == Provider::Meta && payload.get("success").and_then(Value::as_bool) == Some(false)
    {
        return Err(OAuthError::ProviderError {
            provider,
            status: response.status,
            provider_code: "success_false".into(),
            detail: "meta did not remove the permissions".into(),
            retryable: false,
        });
    }
    Ok(())
}

/// The success payload of an answer (TikTok's `data`), or the error it carries.
fn success(provider: Provider, step: Step, response: &HttpResponse) -> Result<Value, OAuthError> {
    let status = response.status;
    let ok = (200..300).contains(&status);
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let malformed = |reason: &str| OAuthError::MalformedResponse {
        provider,
        reason: reason.to_string(),
    };
    match provider {
        Provider::Google => {
            if let Some(error) = body.as_ref().and_then(|b| b.get("error")) {
                let description = text(body.as_ref(), "error_description");
                let Some(error) = error.as_str() else {
                    return Err(malformed("error is not a string"));
                };
                return Err(google_error(step, status, error, description));
            }
            if !ok {
                return Err(http_error(provider, response));
            }
            match body {
                Some(body @ Value::Object(_)) => Ok(body),
                // The revoke endpoint's success needs no body.
                _ if step == Step::Revoke => Ok(Value::Null),
                _ => Err(malformed("the body is not a json object")),
            }
        }
        Provider::Meta => {
            if let Some(error) = body.as_ref().and_then(|b| b.get("error")) {
                return Err(meta_error(step, status, error));
            }
            if !ok {
                return Err(http_error(provider, response));
            }
            match body {
                Some(body @ Value::Object(_)) => Ok(body),
                _ => Err(malformed("the body is not a json object")),
            }
        }
        Provider::TikTok => {
            if !ok {
                return Err(http_error(provider, response));
            }
            let Some(body @ Value::Object(_)) = body else {
                return Err(malformed("the body is not a json object"));
            };
            let Some(code) = body.get("code").and_then(Value::as_i64) else {
                return Err(malformed("no numeric code"));
            };
            if code != 0 {
                let message = text(Some(&body), "message");
                return Err(tiktok_error(step, status, code, message));
            }
            Ok(body.get("data").cloned().unwrap_or(Value::Null))
        }
    }
}

fn google_error(step: Step, status: u16, error: &str, description: &str) -> OAuthError {
    let provider = Provider::Google;
    let detail = scrub(&format!("{error}: {description}"));
    match (error, step) {
        ("invalid_grant" | "redirect_uri_mismatch", Step::Code) => {
            OAuthError::CodeInvalid { provider, detail }
        }
        ("invalid_grant", _) => {
            let lower = description.to_ascii_lowercase();
            if lower.contains("expired") && !lower.contains("revoked") {
                OAuthError::TokenExpired { provider, detail }
            } else {
                OAuthError::TokenRevoked { provider, detail }
            }
        }
        ("invalid_token", Step::Revoke) => OAuthError::TokenRevoked { provider, detail },
        _ => OAuthError::ProviderError {
            provider,
            status,
            provider_code: error.to_string(),
            detail: scrub(description),
            retryable: status == 429
                || status >= 500
                || matches!(error, "temporarily_unavailable" | "server_error"),
        },
    }
}

/// Meta's rate limits (§1.1).
const META_RATE_LIMITS: [i64; 5] = [4, 17, 32, 613, 80003];
/// Meta's transient service errors (§1.1), unless typed `OAuthException`: at the token
/// endpoint code 1 is "Error validating client secret".
const META_TRANSIENT: [i64; 4] = [1, 2, 341, 368];
/// Meta's subcode of an expired session (code 190).
const META_EXPIRED: i64 = 463;

fn meta_error(step: Step, status: u16, error: &Value) -> OAuthError {
    let provider = Provider::Meta;
    let code = error.get("code").and_then(Value::as_i64);
    let subcode = error.get("error_subcode").and_then(Value::as_i64);
    let message = scrub(text(Some(error), "message"));
    let kind = text(Some(error), "type");
    let provider_code = match (code, subcode) {
        (Some(code), Some(subcode)) => format!("{code}/{subcode}"),
        (Some(code), None) => code.to_string(),
        (None, _) => "unknown".to_string(),
    };
    let detail = format!("{provider_code}: {message}");
    match code {
        Some(190) if subcode == Some(META_EXPIRED) => OAuthError::TokenExpired { provider, detail },
        Some(190) => OAuthError::TokenRevoked { provider, detail },
        Some(100) if step == Step::Code => OAuthError::CodeInvalid { provider, detail },
        _ => OAuthError::ProviderError {
            provider,
            status,
            provider_code,
            detail: message,
            retryable: status == 429
                || status >= 500
                || error.get("is_transient").and_then(Value::as_bool) == Some(true)
                || code.is_some_and(|code| {
                    META_RATE_LIMITS.contains(&code)
                        || (META_TRANSIENT.contains(&code) && kind != "OAuthException")
                }),
        },
    }
}

/// TikTok's codes (secondary sources, see the module documentation).
const TIKTOK_CODE_EXPIRED: i64 = 40131;
const TIKTOK_TOKEN_EXPIRED: i64 = 40102;
const TIKTOK_TOKEN_INVALID: i64 = 40105;
const TIKTOK_RATE_LIMITS: [i64; 3] = [40100, 40016, 40133];

fn tiktok_error(step: Step, status: u16, code: i64, message: &str) -> OAuthError {
    let provider = Provider::TikTok;
    let message = scrub(message);
    let detail = format!("{code}: {message}");
    match code {
        TIKTOK_CODE_EXPIRED if step == Step::Code => OAuthError::CodeInvalid { provider, detail },
        TIKTOK_TOKEN_EXPIRED => OAuthError::TokenExpired { provider, detail },
        TIKTOK_TOKEN_INVALID => OAuthError::TokenRevoked { provider, detail },
        _ => OAuthError::ProviderError {
            provider,
            status,
            provider_code: code.to_string(),
            detail: message,
            retryable: TIKTOK_RATE_LIMITS.contains(&code) || (50000..60000).contains(&code),
        },
    }
}

/// A non-2xx answer without the provider's error shape.
fn http_error(provider: Provider, response: &HttpResponse) -> OAuthError {
    let status = response.status;
    OAuthError::ProviderError {
        provider,
        status,
        provider_code: format!("http_{status}"),
        detail: scrub(&String::from_utf8_lossy(
            &response.body[..response.body.len().min(512)],
        )),
        retryable: status == 408 || status == 429 || status >= 500,
    }
}

fn tokens(provider: Provider, payload: &Value, now: OffsetDateTime) -> Result<Tokens, OAuthError> {
    let malformed = |reason: &str| OAuthError::MalformedResponse {
        provider,
        reason: reason.to_string(),
    };
    let access = match payload.get("access_token").and_then(Value::as_str) {
        Some(token) if !token.is_empty() => Secret::new(token),
        _ => return Err(malformed("no access_token")),
    };
    let bearer = |kind: &Value| {
        kind.as_str()
            .is_some_and(|k| k.eq_ignore_ascii_case("bearer"))
    };
    if payload.get("token_type").is_some_and(|kind| !bearer(kind)) {
        return Err(malformed("token_type is not bearer"));
    }
    let refresh = match payload.get("refresh_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if !token.is_empty() => Some(Secret::new(token.as_str())),
        Some(_) => return Err(malformed("refresh_token is not a string")),
    };
    let expires_at = match payload.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let seconds = seconds(value).ok_or_else(|| malformed("expires_in is not a number"))?;
            (seconds > 0).then(|| now.saturating_add(Duration::seconds(seconds)))
        }
    };
    let scopes = match payload.get("scope") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => text
            .split([' ', ','])
            .filter(|scope| !scope.is_empty())
            .map(str::to_string)
            .collect(),
        Some(Value::Array(items)) => {
            strings(items).ok_or_else(|| malformed("scope holds something else than names"))?
        }
        Some(_) => return Err(malformed("scope is neither a string nor a list")),
    };
    let advertiser_ids = match payload.get("advertiser_ids") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => strings(items)
            .ok_or_else(|| malformed("advertiser_ids holds something else than ids"))?,
        Some(_) => return Err(malformed("advertiser_ids is not a list")),
    };
    Ok(Tokens {
        access,
        refresh,
        expires_at,
        scopes,
        advertiser_ids,
    })
}

/// Whole seconds from a number or a numeric string (some answers quote it).
fn seconds(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64)),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// Strings and numbers (TikTok's ids and permission ids) as strings.
fn strings(items: &[Value]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|item| match item {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
        .collect()
}

fn text<'a>(value: Option<&'a Value>, key: &str) -> &'a str {
    value
        .and_then(|value| value.get(key))
        .and_then(Value::as_str)
        .unwrap_or("")
}
