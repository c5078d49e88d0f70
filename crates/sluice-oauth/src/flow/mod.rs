//! The flow itself, per platform: the authorization URL and the callback (this file), the token,
//! refresh and revoke requests (`request.rs`), and the platforms' answers read as [`Tokens`]
//! or an [`OAuthError`] (`answer.rs`).
//!
//! | step | Google | Meta | TikTok |
//! |---|---|---|---|
//! | consent page | `access_type=offline`, `prompt=consent` | `response_type=code` | `app_id` |
//! | callback | `code`, `state` | `code`, `state` | `auth_code`, `state` |
//! | code exchange | form `POST /token` | `GET /{v}/oauth/access_token` | JSON `POST …/oauth2/access_token/` |
//! | after the exchange | — | `fb_exchange_token` → long-lived | — |
//! | renew | `grant_type=refresh_token` | `fb_exchange_token` again | none |
//! | revoke | `POST /revoke?token=` | `DELETE /{v}/me/permissions` | JSON `POST …/oauth2/revoke_token/` |
//!
//! PKCE: the challenge goes in every authorization URL and the verifier in Google's and Meta's
//! code exchange. TikTok's exchange body is `{app_id, secret, auth_code}` only, so TikTok
//! cannot check a verifier; the fake provider checks the challenge was sent.

mod answer;
mod request;

#[cfg(test)]
mod tests;

pub use answer::{Tokens, parse_refresh, parse_revoke, parse_token};
pub use request::{
    authorization_url, long_lived_request, refresh_request, revoke_request, token_request,
};

use sluice_destinations::Secret;

use crate::error::{OAuthError, scrub};
use crate::form;
use crate::provider::Provider;

/// What the platform sent back to the redirect URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Callback {
    /// The state, to find and check the pending authorization with before anything else.
    pub state: String,
    /// The authorization code, or why there is none (`code_invalid`: the user refused, or the
    /// platform sent an error or no code).
    pub code: Result<Secret, OAuthError>,
}

/// Reads the callback's query (`code=…&state=…`, with or without `?`, or the whole callback
/// URL). `state_unknown` when it carries no state; `malformed_response` when it is not
/// URL-encoded.
pub fn parse_callback(provider: Provider, query: &str) -> Result<Callback, OAuthError> {
    let query = query.split_once('?').map_or(query, |(_, query)| query);
    let query = query.split_once('#').map_or(query, |(query, _)| query);
    let pairs = form::parse(query).ok_or_else(|| OAuthError::MalformedResponse {
        provider,
        reason: "the callback query is not url-encoded".into(),
    })?;
    let state = match form::get(&pairs, "state") {
        Some(state) if !state.is_empty() => state.to_string(),
        _ => return Err(OAuthError::StateUnknown),
    };
    let invalid = |detail: String| OAuthError::CodeInvalid { provider, detail };
    let code = if let Some(error) = form::get(&pairs, "error") {
        let description = form::get(&pairs, "error_description")
            .or_else(|| form::get(&pairs, "error_reason"))
            .unwrap_or("");
        Err(invalid(scrub(&format!("{error}: {description}"))))
    } else {
        let code = match provider {
            Provider::TikTok => {
                form::get(&pairs, "auth_code").or_else(|| form::get(&pairs, "code"))
            }
            Provider::Google | Provider::Meta => form::get(&pairs, "code"),
        };
        match code {
            Some(code) if !code.is_empty() => Ok(Secret::new(code)),
            _ => Err(invalid("the callback carries no code".into())),
        }
    };
    Ok(Callback { state, code })
}
