//! The Google fake: `POST /token` (form body; `grant_type` `authorization_code` or
//! `refresh_token`) and `POST /revoke` (`token` in the query or a form body), answering RFC 6749
//! shapes: `{access_token, expires_in: 3599, refresh_token?, scope, token_type: "Bearer"}` or
//! `{error, error_description}` — `invalid_client` (401), `invalid_grant` for a bad, used or
//! expired code ("Bad Request") or a dead refresh token ("Token has been expired or
//! revoked."), `redirect_uri_mismatch`, `unsupported_grant_type`, `invalid_request`. Revoke
//! answers `200 {}`, or `400 invalid_token` for a dead token. A refresh token is issued only
//! when the consent page had `access_type=offline`. The PKCE error descriptions are ours.

use serde_json::json;
use time::OffsetDateTime;

use sluice_destinations::testkit::answer::Answer;

use super::answer::{form_body, query};
use super::authority::{Authority, Exchange, Issued, Refusal};
use crate::form;
use crate::provider::paths;

fn error(status: u16, code: &str, description: &str) -> Answer {
    Answer::json(
        status,
        &json!({"error": code, "error_description": description}),
    )
}

pub(super) fn respond(
    authority: &mut Authority,
    request: &super::Recorded,
    now: OffsetDateTime,
) -> Answer {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", paths::GOOGLE_TOKEN) => token(authority, request, now),
        ("POST", paths::GOOGLE_REVOKE) => revoke(authority, request, now),
        (_, paths::GOOGLE_TOKEN | paths::GOOGLE_REVOKE) => Answer::text(405, "Method Not Allowed"),
        _ => Answer::text(404, "Not Found"),
    }
}

fn token(authority: &mut Authority, request: &super::Recorded, now: OffsetDateTime) -> Answer {
    let Some(params) = form_body(request) else {
        return error(400, "invalid_request", "Invalid request: not a form body");
    };
    let get = |name: &str| form::get(&params, name);
    let client_id = get("client_id").unwrap_or("");
    let secret = get("client_secret").unwrap_or("");
    let outcome = match get("grant_type") {
        Some("authorization_code") => {
            let (Some(code), Some(redirect_uri)) = (get("code"), get("redirect_uri")) else {
                return error(
                    400,
                    "invalid_request",
                    "Missing required parameter: code or redirect_uri",
                );
            };
            let ask = Exchange {
                client_id,
                client_secret: secret,
                code,
                redirect_uri: Some(redirect_uri),
                pkce: true,
                verifier: get("code_verifier"),
            };
            authority.exchange(&ask, now)
        }
        Some("refresh_token") => {
            let Some(refresh) = get("refresh_token") else {
                return error(
                    400,
                    "invalid_request",
                    "Missing required parameter: refresh_token",
                );
            };
            authority.refresh(client_id, secret, refresh, now)
        }
        other => {
            let grant = other.unwrap_or("");
            return error(
                400,
                "unsupported_grant_type",
                &format!("Invalid grant_type: {grant}"),
            );
        }
    };
    match outcome {
        Ok(issued) => success(&issued),
        Err(refusal) => refused(refusal),
    }
}

fn success(issued: &Issued) -> Answer {
    let mut body = json!({
        "access_token": issued.access,
        "expires_in": issued.expires_in,
        "scope": issued.scopes.join(" "),
        "token_type": "Bearer",
    });
    if let Some(refresh) = &issued.refresh {
        body["refresh_token"] = json!(refresh);
    }
    Answer::json(200, &body)
}

fn refused(refusal: Refusal) -> Answer {
    match refusal {
        Refusal::BadClientId => error(401, "invalid_client", "The OAuth client was not found."),
        Refusal::BadClientSecret => error(401, "invalid_client", "Unauthorized"),
        Refusal::UnknownCode | Refusal::UsedCode | Refusal::ExpiredCode => {
            error(400, "invalid_grant", "Bad Request")
        }
        Refusal::RedirectMismatch => error(400, "redirect_uri_mismatch", "Bad Request"),
        Refusal::MissingVerifier => error(400, "invalid_grant", "Missing code verifier."),
        Refusal::VerifierMismatch => error(400, "invalid_grant", "Invalid code verifier."),
        Refusal::UnknownToken | Refusal::RevokedToken | Refusal::ExpiredToken => {
            error(400, "invalid_grant", "Token has been expired or revoked.")
        }
    }
}

fn revoke(authority: &mut Authority, request: &super::Recorded, now: OffsetDateTime) -> Answer {
    let from_query = query(request);
    let from_body = form_body(request).unwrap_or_default();
    let token = form::get(&from_query, "token").or_else(|| form::get(&from_body, "token"));
    let Some(token) = token else {
        return error(400, "invalid_request", "Missing required parameter: token");
    };
    match authority.revoke(token, now) {
        Ok(()) => Answer::json(200, &json!({})),
        Err(_) => error(400, "invalid_token", "Token expired or revoked"),
    }
}

pub(super) fn throttled(retry_after: u64) -> Answer {
    error(429, "rate_limit_exceeded", "Rate Limit Exceeded")
        .with_header("retry-after", &retry_after.to_string())
}
