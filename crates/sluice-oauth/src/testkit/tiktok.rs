//! The TikTok fake: `POST /open_api/v1.3/oauth2/access_token/` with JSON
//! `{app_id, secret, auth_code}` and `POST /open_api/v1.3/oauth2/revoke_token/` with
//! `{app_id, secret, access_token}` (paths without the trailing slash are 404s, as at
//! TikTok). Every answer is HTTP 200 with `{code, message, request_id, data}`: code 0 and
//! `data: {access_token, advertiser_ids, scope}` on success; 40131 for an expired, used or
//! unknown `auth_code`, 40102 for an expired token, 40105 for an invalid or revoked one,
//! 40100 over the rate limit (codes from secondary sources, see `ad-audiences.md` §1.3);
//! 40001 for a wrong app or secret and 40002 for a missing field (ours). The token has no
//! `expires_in`: it does not expire.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::Recorded;
use super::authority::{Authority, Exchange, Refusal};
use super::credentials::TIKTOK_ADVERTISER_IDS;
use crate::provider::paths;
use sluice_destinations::testkit::answer::{Answer, content_type_is};

fn reply(code: i64, message: &str, data: Value) -> Answer {
    Answer::json(
        200,
        &json!({
            "code": code,
            "message": message,
            "request_id": "20260501120000FAKE0123456789",
            "data": data,
        }),
    )
}

pub(super) fn respond(
    authority: &mut Authority,
    request: &Recorded,
    now: OffsetDateTime,
) -> Answer {
    match (request.method.as_str(), request.path.as_str()) {
        ("POST", paths::TIKTOK_TOKEN) => token(authority, request, now),
        ("POST", paths::TIKTOK_REVOKE) => revoke(authority, request, now),
        (_, paths::TIKTOK_TOKEN | paths::TIKTOK_REVOKE) => Answer::text(405, "Method Not Allowed"),
        _ => Answer::text(404, "404 page not found"),
    }
}

/// The JSON object body and its string fields `names`, or the answer refusing it.
fn fields<'a>(body: &'a Option<Value>, names: &[&str]) -> Result<Vec<&'a str>, Answer> {
    let Some(Value::Object(object)) = body else {
        return Err(reply(
            40002,
            "The request body is not a JSON object.",
            json!({}),
        ));
    };
    names.iter().map(|name| field(object, name)).collect()
}

fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Result<&'a str, Answer> {
    match object.get(name).and_then(Value::as_str) {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(reply(
            40002,
            &format!("{name}: Missing data for required field."),
            json!({}),
        )),
    }
}

fn token(authority: &mut Authority, request: &Recorded, now: OffsetDateTime) -> Answer {
    if !content_type_is(request, "application/json") {
        return reply(40002, "Content-Type must be application/json.", json!({}));
    }
    let body = request.json();
    let [app_id, secret, auth_code] = match fields(&body, &["app_id", "secret", "auth_code"]) {
        Ok(values) => [values[0], values[1], values[2]],
        Err(answer) => return answer,
    };
    let ask = Exchange {
        client_id: app_id,
        client_secret: secret,
        code: auth_code,
        redirect_uri: None,
        pkce: false,
        verifier: None,
    };
    match authority.exchange(&ask, now) {
        Ok(issued) => reply(
            0,
            "OK",
            json!({
                "access_token": issued.access,
                "advertiser_ids": TIKTOK_ADVERTISER_IDS,
                "scope": issued
                    .scopes
                    .iter()
                    .filter_map(|scope| scope.parse::<u64>().ok())
                    .collect::<Vec<_>>(),
            }),
        ),
        Err(refusal) => refused(refusal),
    }
}

fn refused(refusal: Refusal) -> Answer {
    match refusal {
        Refusal::BadClientId | Refusal::BadClientSecret => {
            reply(40001, "The app_id or secret is invalid.", json!({}))
        }
        Refusal::UnknownCode
        | Refusal::UsedCode
        | Refusal::ExpiredCode
        | Refusal::RedirectMismatch
        | Refusal::MissingVerifier
        | Refusal::VerifierMismatch => reply(40131, "Authorization code is expired", json!({})),
        Refusal::UnknownToken | Refusal::RevokedToken => reply(
            40105,
            "The access token is invalid or has been revoked.",
            json!({}),
        ),
        Refusal::ExpiredToken => reply(40102, "Access token has expired.", json!({})),
    }
}

fn revoke(authority: &mut Authority, request: &Recorded, now: OffsetDateTime) -> Answer {
    if !content_type_is(request, "application/json") {
        return reply(40002, "Content-Type must be application/json.", json!({}));
    }
    let body = request.json();
    let [app_id, secret, token] = match fields(&body, &["app_id", "secret", "access_token"]) {
        Ok(values) => [values[0], values[1], values[2]],
        Err(answer) => return answer,
    };
    let outcome = authority
        .check_client(app_id, secret)
        .and_then(|()| authority.revoke(token, now));
    match outcome {
        Ok(()) => reply(0, "OK", json!({})),
        Err(refusal) => refused(refusal),
    }
}

pub(super) fn throttled() -> Answer {
    reply(
        40100,
        "Too many requests. Please retry in some time.",
        json!({}),
    )
}
