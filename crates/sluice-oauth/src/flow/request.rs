//! The authorization URL and the requests of each step, in each platform's shape: the code
//! exchange, Meta's long-lived exchange, renewal and revocation.

use serde_json::json;
use sluice_destinations::{HttpRequest, Method, Secret};

use super::answer::Tokens;
use crate::client::ClientCredentials;
use crate::error::OAuthError;
use crate::form;
use crate::pkce::{CodeChallenge, CodeVerifier};
use crate::provider::{Provider, ProviderEndpoints};
use crate::state::AuthState;

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

/// The consent page to send the user to. Google: `client_id`, `redirect_uri`,
/// `response_type=code`, `scope` (space-separated), `state`, `access_type=offline`,
/// `prompt=consent` (so a refresh token comes every time), PKCE. Meta: `client_id`,
/// `redirect_uri`, `response_type=code`, `scope` (comma-separated), `state`, PKCE. TikTok:
/// `app_id`, `state`, `redirect_uri`, PKCE; `scopes` is ignored (TikTok's permissions are set
/// on the developer app). Every value is percent-encoded; an empty `scopes` sends no `scope`.
pub fn authorization_url(
    endpoints: &ProviderEndpoints,
    client: &ClientCredentials,
    redirect_uri: &str,
    state: &AuthState,
    challenge: &CodeChallenge,
    scopes: &[&str],
) -> String {
    let google_scope = scopes.join(" ");
    let meta_scope = scopes.join(",");
    let mut params: Vec<(&str, &str)> = Vec::new();
    match endpoints.provider {
        Provider::Google | Provider::Meta => {
            let scope = if endpoints.provider == Provider::Google {
                &google_scope
            } else {
                &meta_scope
            };
            params.push(("client_id", &client.client_id));
            params.push(("redirect_uri", redirect_uri));
            params.push(("response_type", "code"));
            if !scopes.is_empty() {
                params.push(("scope", scope));
            }
            params.push(("state", state.expose()));
            if endpoints.provider == Provider::Google {
                params.push(("access_type", "offline"));
                params.push(("prompt", "consent"));
            }
        }
        Provider::TikTok => {
            params.push(("app_id", &client.client_id));
            params.push(("state", state.expose()));
            params.push(("redirect_uri", redirect_uri));
        }
    }
    params.push(("code_challenge", challenge.as_str()));
    params.push(("code_challenge_method", challenge.method()));
    format!("{}?{}", endpoints.authorize_url(), form::pairs(&params))
}

/// The code exchange. Google: form `POST /token` with `grant_type=authorization_code`,
/// `code`, `redirect_uri`, `client_id`, `client_secret`, `code_verifier`. Meta:
/// `GET /{v}/oauth/access_token?client_id&redirect_uri&client_secret&code&code_verifier`
/// (a short-lived token: follow with [`long_lived_request`]). TikTok: JSON
/// `POST /open_api/v1.3/oauth2/access_token/` with `{app_id, secret, auth_code}` (its exchange
/// takes no verifier). Read the answer with [`parse_token`](super::parse_token).
pub fn token_request(
    endpoints: &ProviderEndpoints,
    client: &ClientCredentials,
    code: &Secret,
    verifier: &CodeVerifier,
    redirect_uri: &str,
) -> HttpRequest {
    let secret = client.client_secret.expose();
    match endpoints.provider {
        Provider::Google => form_post(
            endpoints.token_url(),
            &[
                ("grant_type", "authorization_code"),
                ("code", code.expose()),
                ("redirect_uri", redirect_uri),
                ("client_id", &client.client_id),
                ("client_secret", secret),
                ("code_verifier", verifier.expose()),
            ],
        ),
        Provider::Meta => get(
            endpoints.token_url(),
            &[
                ("client_id", &client.client_id),
                ("redirect_uri", redirect_uri),
                ("client_secret", secret),
                ("code", code.expose()),
                ("code_verifier", verifier.expose()),
            ],
        ),
        Provider::TikTok => json_post(
            endpoints.token_url(),
            &json!({"app_id": client.client_id, "secret": secret, "auth_code": code.expose()}),
        ),
    }
}

/// Meta only: trades the code exchange's short-lived token for a long-lived one (about 60
/// days): `GET /{v}/oauth/access_token?grant_type=fb_exchange_token&client_id&client_secret&
/// fb_exchange_token`. `None` for the other platforms, whose first token is the one to keep.
/// Read the answer with [`parse_refresh`](super::parse_refresh).
pub fn long_lived_request(
    endpoints: &ProviderEndpoints,
    client: &ClientCredentials,
    short_lived: &Tokens,
) -> Option<HttpRequest> {
    (endpoints.provider == Provider::Meta).then(|| fb_exchange(endpoints, client, short_lived))
}

fn fb_exchange(
    endpoints: &ProviderEndpoints,
    client: &ClientCredentials,
    tokens: &Tokens,
) -> HttpRequest {
    get(
        endpoints.token_url(),
        &[
            ("grant_type", "fb_exchange_token"),
            ("client_id", &client.client_id),
            ("client_secret", client.client_secret.expose()),
            ("fb_exchange_token", tokens.access.expose()),
        ],
    )
}

/// Renews access. Google: form `POST /token` with `grant_type=refresh_token`,
/// `refresh_token`, `client_id`, `client_secret` (`refresh_unsupported` when no refresh token
/// was issued). Meta: the long-lived exchange again, of the still-valid long-lived token (an
/// expired one cannot be: `token_expired`). TikTok: `refresh_unsupported`, its token does not
/// expire. Read the answer with [`parse_refresh`](super::parse_refresh).
pub fn refresh_request(
    endpoints: &ProviderEndpoints,
    client: &ClientCredentials,
    tokens: &Tokens,
) -> Result<HttpRequest, OAuthError> {
    let provider = endpoints.provider;
    match provider {
        Provider::Google => {
            let refresh = tokens
                .refresh
                .as_ref()
                .ok_or(OAuthError::RefreshUnsupported {
                    provider,
                    reason: "no refresh token was issued (authorize again with access_type=offline)",
                })?;
            Ok(form_post(
                endpoints.token_url(),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose()),
                    ("client_id", &client.client_id),
                    ("client_secret", client.client_secret.expose()),
                ],
            ))
        }
        Provider::Meta => Ok(fb_exchange(endpoints, client, tokens)),
        Provider::TikTok => Err(OAuthError::RefreshUnsupported {
            provider,
            reason: "its token does not expire and has no refresh; connect again if it is revoked",
        }),
    }
}

/// Disconnects. Google: `POST /revoke?token=` with the refresh token when there is one (it
/// revokes the whole grant), else the access token. Meta: `DELETE /{v}/me/permissions` with
/// the token as `Authorization: Bearer` (the user's grant to the app is removed). TikTok: JSON
/// `POST /open_api/v1.3/oauth2/revoke_token/` with `{app_id, secret, access_token}`. Read the
/// answer with [`parse_revoke`](super::parse_revoke).
pub fn revoke_request(
    endpoints: &ProviderEndpoints,
    client: &ClientCredentials,
    tokens: &Tokens,
) -> HttpRequest {
    match endpoints.provider {
        Provider::Google => {
            let token = tokens.refresh.as_ref().unwrap_or(&tokens.access);
            HttpRequest {
                method: Method::Post,
                url: format!(
                    "{}?{}",
                    endpoints.revoke_url(),
                    form::pairs(&[("token", token.expose())])
                ),
                headers: vec![
                    ("Content-Type".into(), FORM.into()),
                    ("Accept".into(), JSON.into()),
                ],
                body: Vec::new(),
            }
        }
        Provider::Meta => HttpRequest {
            method: Method::Delete,
            url: endpoints.revoke_url(),
            headers: vec![
                (
                    "Authorization".into(),
                    format!("Bearer {}", tokens.access.expose()),
                ),
                ("Accept".into(), JSON.into()),
            ],
            body: Vec::new(),
        },
        Provider::TikTok => json_post(
            endpoints.revoke_url(),
            &json!({
                "app_id": client.client_id,
                "secret": client.client_secret.expose(),
                "access_token": tokens.access.expose(),
            }),
        ),
    }
}

fn form_post(url: String, params: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url,
        headers: vec![
            ("Content-Type".into(), FORM.into()),
            ("Accept".into(), JSON.into()),
        ],
        body: form::pairs(params).into_bytes(),
    }
}

fn get(url: String, params: &[(&str, &str)]) -> HttpRequest {
    HttpRequest {
        method: Method::Get,
        url: format!("{url}?{}", form::pairs(params)),
        headers: vec![("Accept".into(), JSON.into())],
        body: Vec::new(),
    }
}

fn json_post(url: String, body: &serde_json::Value) -> HttpRequest {
    HttpRequest {
        method: Method::Post,
        url,
        headers: vec![
            ("Content-Type".into(), JSON.into()),
            ("Accept".into(), JSON.into()),
        ],
        body: body.to_string().into_bytes(),
    }
}
