//! The Meta fake: `GET /{v}/oauth/access_token` (the code exchange, or
//! `grant_type=fb_exchange_token` for a long-lived token) and `DELETE /{v}/me/permissions`
//! (the token as `Authorization: Bearer` or `access_token`), answering Graph API shapes:
//! `{access_token, token_type: "bearer", expires_in}` (short-lived 3600 s, long-lived
//! 5,183,944 s), `{"success": true}`, or HTTP 400 with
//! `{"error": {message, type: "OAuthException", code, error_subcode?, fbtrace_id}}`: code 101
//! (application id), 1 (client secret), 100 for the code (subcode 36009 used, 36007 expired,
//! 36008 redirect URI), 190 for a token (subcode 458 removed, 463 expired). The code-100
//! texts for an unknown code and a PKCE failure are ours.

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::Recorded;
use sluice_destinations::testkit::answer::Answer;

use super::answer::query;
use super::authority::{Authority, Exchange, Issued, Refusal};
use super::credentials::META_APP_ID;
use crate::form;
use crate::provider::paths;

/// A Graph API path split after its version (`/v25.0/me/permissions` → `/me/permissions`).
pub(super) fn versioned(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/v")?;
    let (version, rest) = rest.split_once('/')?;
    let (major, minor) = version.split_once('.')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then(|| &path[path.len() - rest.len() - 1..])
}

fn error(code: i64, subcode: Option<i64>, message: &str) -> Answer {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AfakeTraceId0123",
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    Answer::json(400, &json!({"error": error}))
}

pub(super) fn respond(
    authority: &mut Authority,
    request: &Recorded,
    now: OffsetDateTime,
) -> Answer {
    let Some(path) = versioned(&request.path) else {
        return error(2500, None, "Unknown path components");
    };
    match (request.method.as_str(), path) {
        ("GET", paths::META_TOKEN) => token(authority, request, now),
        ("DELETE", paths::META_REVOKE) => revoke(authority, request, now),
        (method, paths::META_TOKEN | paths::META_REVOKE) => error(
            100,
            None,
            &format!("Unsupported {} request.", method.to_ascii_lowercase()),
        ),
        _ => error(2500, None, "Unknown path components"),
    }
}

fn token(authority: &mut Authority, request: &Recorded, now: OffsetDateTime) -> Answer {
    let params = query(request);
    let get = |name: &str| form::get(&params, name);
    let Some(client_id) = get("client_id") else {
        return error(101, None, "Missing client_id parameter.");
    };
    let Some(secret) = get("client_secret") else {
        return error(1, None, "Missing client_secret parameter.");
    };
    let outcome = if get("grant_type") == Some("fb_exchange_token") {
        let Some(token) = get("fb_exchange_token") else {
            return error(100, None, "Missing fb_exchange_token parameter.");
        };
        authority.exchange_long_lived(client_id, secret, token, now)
    } else {
        let Some(redirect_uri) = get("redirect_uri") else {
            return error(100, None, "Missing redirect_uri parameter.");
        };
        let Some(code) = get("code") else {
            return error(100, None, "Missing code parameter.");
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
    };
    match outcome {
        Ok(issued) => success(&issued),
        Err(refusal) => refused(refusal, now),
    }
}

fn success(issued: &Issued) -> Answer {
    let mut body = json!({"access_token": issued.access, "token_type": "bearer"});
    if let Some(seconds) = issued.expires_in {
        body["expires_in"] = Value::from(seconds);
    }
    Answer::json(200, &body)
}

fn refused(refusal: Refusal, now: OffsetDateTime) -> Answer {
    match refusal {
        Refusal::BadClientId => error(
            101,
            None,
            "Error validating application. Invalid application ID.",
        ),
        Refusal::BadClientSecret => error(1, None, "Error validating client secret."),
        Refusal::UnknownCode => error(100, None, "Invalid verification code format."),
        Refusal::UsedCode => error(100, Some(36009), "This authorization code has been used."),
        Refusal::ExpiredCode => error(100, Some(36007), "This authorization code has expired."),
        Refusal::RedirectMismatch => error(
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is \
             identical to the one you used in the OAuth dialog request",
        ),
        Refusal::MissingVerifier | Refusal::VerifierMismatch => {
            error(100, None, "Invalid code verifier.")
        }
        Refusal::UnknownToken => error(
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
        ),
        Refusal::RevokedToken => error(
            190,
            Some(458),
            &format!(
                "Error validating access token: The user has not authorized application \
                 {META_APP_ID}."
            ),
        ),
        Refusal::ExpiredToken => error(
            190,
            Some(463),
            &format!(
                "Error validating access token: Session has expired. The current time is {}.",
                now.unix_timestamp()
            ),
        ),
    }
}

fn revoke(authority: &mut Authority, request: &Recorded, now: OffsetDateTime) -> Answer {
    let params = query(request);
    let bearer = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "));
    let Some(token) = bearer.or_else(|| form::get(&params, "access_token")) else {
        return error(
            2500,
            None,
            "An active access token must be used to query information about the current user.",
        );
    };
    match authority.revoke(token, now) {
        Ok(()) => Answer::json(200, &json!({"success": true})),
        Err(refusal) => refused(refusal, now),
    }
}

pub(super) fn throttled() -> Answer {
    error(4, None, "(#4) Application request limit reached")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_split_after_the_version() {
        assert_eq!(versioned("/v25.0/me/permissions"), Some("/me/permissions"));
        assert_eq!(
            versioned("/v3.10/oauth/access_token"),
            Some("/oauth/access_token")
        );
        assert_eq!(versioned("/me/permissions"), None);
        assert_eq!(versioned("/vx.0/me"), None);
        assert_eq!(versioned("/v25/me"), None);
    }
}
