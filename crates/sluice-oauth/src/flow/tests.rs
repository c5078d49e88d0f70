//! Unit tests of the flow: exact URLs and requests per platform, and every answer shape.

use serde_json::{Value, json};
use sluice_destinations::{HttpRequest, HttpResponse, Method, Secret};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::client::ClientCredentials;
use crate::error::OAuthError;
use crate::pkce::CodeVerifier;
use crate::provider::Provider;
use crate::state::AuthState;

const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);
const REDIRECT: &str = "https://sluice.example/oauth/callback?x=1";
/// RFC 7636 Appendix B's verifier and challenge.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
/// `AuthState::from_random([0; 32])`.
const STATE: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
const REDIRECT_ENCODED: &str = "https%3A%2F%2Fsluice.example%2Foauth%2Fcallback%3Fx%3D1";

fn client() -> ClientCredentials {
    ClientCredentials::new("client 1", "s3cr&t")
}

fn verifier() -> CodeVerifier {
    CodeVerifier::parse(VERIFIER).unwrap_or_else(|| CodeVerifier::from_random([0; 32]))
}

fn url(provider: Provider) -> String {
    authorization_url(
        &provider.endpoints(),
        &client(),
        REDIRECT,
        &AuthState::from_random([0; 32]),
        &verifier().challenge(),
        provider.default_scopes(),
    )
}

fn tokens(access: &str, refresh: Option<&str>) -> Tokens {
    Tokens {
        access: Secret::new(access),
        refresh: refresh.map(Secret::new),
        expires_at: None,
        scopes: Vec::new(),
        advertiser_ids: Vec::new(),
    }
}

fn header<'a>(request: &'a HttpRequest, name: &str) -> Option<&'a str> {
    request
        .headers
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

fn body(request: &HttpRequest) -> String {
    String::from_utf8_lossy(&request.body).into_owned()
}

fn json_body(request: &HttpRequest) -> Value {
    serde_json::from_slice(&request.body).unwrap_or(Value::Null)
}

fn answer(status: u16, body: &Value) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

fn code(result: Result<Tokens, OAuthError>) -> &'static str {
    result.err().map_or("ok", |error| error.code())
}

// --- authorization URLs ---------------------------------------------------------------------

#[test]
fn google_authorization_url() {
    assert_eq!(
        url(Provider::Google),
        format!(
            "https://accounts.google.com/o/oauth2/v2/auth?client_id=client%201\
             &redirect_uri={REDIRECT_ENCODED}&response_type=code\
             &scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdatamanager&state={STATE}\
             &access_type=offline&prompt=consent&code_challenge={CHALLENGE}\
             &code_challenge_method=S256"
        )
    );
}

#[test]
fn meta_authorization_url() {
    assert_eq!(
        url(Provider::Meta),
        format!(
            "https://www.facebook.com/v25.0/dialog/oauth?client_id=client%201\
             &redirect_uri={REDIRECT_ENCODED}&response_type=code\
             &scope=ads_management%2Cads_read%2Cbusiness_management&state={STATE}\
             &code_challenge={CHALLENGE}&code_challenge_method=S256"
        )
    );
}

#[test]
fn tiktok_authorization_url() {
    assert_eq!(
        url(Provider::TikTok),
        format!(
            "https://business-api.tiktok.com/portal/auth?app_id=client%201&state={STATE}\
             &redirect_uri={REDIRECT_ENCODED}&code_challenge={CHALLENGE}\
             &code_challenge_method=S256"
        )
    );
}

#[test]
fn scopes_are_joined_per_platform_and_left_out_when_empty() {
    let build = |provider: Provider, scopes: &[&str]| {
        authorization_url(
            &provider.endpoints(),
            &client(),
            REDIRECT,
            &AuthState::from_random([0; 32]),
            &verifier().challenge(),
            scopes,
        )
    };
    assert!(build(Provider::Google, &["a", "b c"]).contains("&scope=a%20b%20c&"));
    assert!(build(Provider::Meta, &["ads_read", "x"]).contains("&scope=ads_read%2Cx&"));
    assert!(!build(Provider::Google, &[]).contains("scope="));
    assert!(!build(Provider::TikTok, &["ignored"]).contains("scope"));
}

// --- token requests -------------------------------------------------------------------------

#[test]
fn google_token_request() {
    let request = token_request(
        &Provider::Google.endpoints(),
        &client(),
        &Secret::new("4/0Af code"),
        &verifier(),
        REDIRECT,
    );
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.url, "https://oauth2.googleapis.com/token");
    assert_eq!(
        request.headers,
        [
            (
                "Content-Type".to_string(),
                "application/x-www-form-urlencoded".to_string()
            ),
            ("Accept".to_string(), "application/json".to_string()),
        ]
    );
    assert_eq!(
        body(&request),
        format!(
            "grant_type=authorization_code&code=4%2F0Af%20code&redirect_uri={REDIRECT_ENCODED}\
             &client_id=client%201&client_secret=s3cr%26t&code_verifier={VERIFIER}"
        )
    );
}

#[test]
fn meta_token_request() {
    let request = token_request(
        &Provider::Meta.endpoints(),
        &client(),
        &Secret::new("AQD code"),
        &verifier(),
        REDIRECT,
    );
    assert_eq!(request.method, Method::Get);
    assert_eq!(
        request.url,
        format!(
            "https://graph.facebook.com/v25.0/oauth/access_token?client_id=client%201\
             &redirect_uri={REDIRECT_ENCODED}&client_secret=s3cr%26t&code=AQD%20code\
             &code_verifier={VERIFIER}"
        )
    );
    assert_eq!(
        request.headers,
        [("Accept".to_string(), "application/json".to_string())]
    );
    assert!(request.body.is_empty());
}

#[test]
fn tiktok_token_request() {
    let request = token_request(
        &Provider::TikTok.endpoints(),
        &client(),
        &Secret::new("auth-code-1"),
        &verifier(),
        REDIRECT,
    );
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        "https://business-api.tiktok.com/open_api/v1.3/oauth2/access_token/"
    );
    assert_eq!(header(&request, "content-type"), Some("application/json"));
    assert_eq!(
        json_body(&request),
        json!({"app_id": "client 1", "secret": "s3cr&t", "auth_code": "auth-code-1"})
    );
}

#[test]
fn meta_long_lived_exchange_and_none_elsewhere() {
    let short = tokens("EAAshort", None);
    let request = long_lived_request(&Provider::Meta.endpoints(), &client(), &short);
    let request = request.unwrap_or_else(|| panic!("meta has a long-lived exchange"));
    assert_eq!(request.method, Method::Get);
    assert_eq!(
        request.url,
        "https://graph.facebook.com/v25.0/oauth/access_token?grant_type=fb_exchange_token\
         &client_id=client%201&client_secret=s3cr%26t&fb_exchange_token=EAAshort"
    );
    for provider in [Provider::Google, Provider::TikTok] {
        assert_eq!(
            long_lived_request(&provider.endpoints(), &client(), &short),
            None
        );
    }
}

// --- refresh and revoke requests ------------------------------------------------------------

#[test]
fn google_refresh_request() {
    let held = tokens("ya29.old", Some("1//refresh"));
    let request = refresh_request(&Provider::Google.endpoints(), &client(), &held);
    let request = request.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(request.method, Method::Post);
    assert_eq!(request.url, "https://oauth2.googleapis.com/token");
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(
        body(&request),
        "grant_type=refresh_token&refresh_token=1%2F%2Frefresh&client_id=client%201\
         &client_secret=s3cr%26t"
    );
    let without = tokens("ya29.old", None);
    let error = refresh_request(&Provider::Google.endpoints(), &client(), &without).err();
    assert_eq!(error.map(|e| e.code()), Some("refresh_unsupported"));
}

#[test]
fn meta_refresh_is_a_re_exchange_and_tiktok_has_none() {
    let held = tokens("EAAlong", None);
    let request = refresh_request(&Provider::Meta.endpoints(), &client(), &held);
    let request = request.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(
        request.url,
        "https://graph.facebook.com/v25.0/oauth/access_token?grant_type=fb_exchange_token\
         &client_id=client%201&client_secret=s3cr%26t&fb_exchange_token=EAAlong"
    );
    let error = refresh_request(&Provider::TikTok.endpoints(), &client(), &held).err();
    assert_eq!(
        error.as_ref().map(|e| e.code()),
        Some("refresh_unsupported")
    );
    let message = error.map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("does not expire"), "{message}");
}

#[test]
fn google_revokes_the_refresh_token_else_the_access_token() {
    let endpoints = Provider::Google.endpoints();
    let request = revoke_request(&endpoints, &client(), &tokens("ya29.a", Some("1//r")));
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        "https://oauth2.googleapis.com/revoke?token=1%2F%2Fr"
    );
    assert_eq!(
        header(&request, "content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert!(request.body.is_empty());
    let request = revoke_request(&endpoints, &client(), &tokens("ya29.a", None));
    assert_eq!(
        request.url,
        "https://oauth2.googleapis.com/revoke?token=ya29.a"
    );
}

#[test]
fn meta_and_tiktok_revoke_requests() {
    let held = tokens("tok", None);
    let meta = revoke_request(&Provider::Meta.endpoints(), &client(), &held);
    assert_eq!(meta.method, Method::Delete);
    assert_eq!(meta.url, "https://graph.facebook.com/v25.0/me/permissions");
    assert_eq!(header(&meta, "authorization"), Some("Bearer tok"));
    assert!(meta.body.is_empty());

    let tiktok = revoke_request(&Provider::TikTok.endpoints(), &client(), &held);
    assert_eq!(tiktok.method, Method::Post);
    assert_eq!(
        tiktok.url,
        "https://business-api.tiktok.com/open_api/v1.3/oauth2/revoke_token/"
    );
    assert_eq!(header(&tiktok, "content-type"), Some("application/json"));
    assert_eq!(
        json_body(&tiktok),
        json!({"app_id": "client 1", "secret": "s3cr&t", "access_token": "tok"})
    );
}

#[test]
fn request_debug_shows_no_credentials() {
    let request = token_request(
        &Provider::Meta.endpoints(),
        &client(),
        &Secret::new("the-code"),
        &verifier(),
        REDIRECT,
    );
    let shown = format!("{request:?}");
    assert!(!shown.contains("s3cr"));
    assert!(!shown.contains("the-code"));
}

// --- callbacks ------------------------------------------------------------------------------

#[test]
fn callbacks_carry_the_code_and_state() {
    let callback = parse_callback(
        Provider::Google,
        "https://sluice.example/cb?state=abc&code=4%2F0Af&scope=x#frag",
    );
    let callback = callback.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(callback.state, "abc");
    assert_eq!(callback.code, Ok(Secret::new("4/0Af")));

    let tiktok = parse_callback(Provider::TikTok, "auth_code=ac1&code=ac1&state=s");
    assert_eq!(tiktok.map(|c| c.code), Ok(Ok(Secret::new("ac1"))));
}

#[test]
fn a_callback_without_state_is_unknown_and_a_refusal_is_code_invalid() {
    assert_eq!(
        parse_callback(Provider::Google, "?code=x").err(),
        Some(OAuthError::StateUnknown)
    );
    assert_eq!(
        parse_callback(Provider::Google, "code=x&state=").err(),
        Some(OAuthError::StateUnknown)
    );
    let refused = parse_callback(
        Provider::Meta,
        "error=access_denied&error_code=200&error_description=Permissions+error\
         &error_reason=user_denied&state=s",
    );
    let refused = refused.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(refused.state, "s");
    let error = refused.code.err();
    assert_eq!(error.as_ref().map(OAuthError::code), Some("code_invalid"));
    assert_eq!(
        error.map(|e| e.to_string()),
        Some("meta refused the authorization code: access_denied: Permissions error".into())
    );
    let empty = parse_callback(Provider::Google, "state=s");
    assert_eq!(
        empty.map(|c| c.code.err().map(|e| e.code())),
        Ok(Some("code_invalid"))
    );
    let broken = parse_callback(Provider::Google, "state=%zz");
    assert_eq!(broken.err().map(|e| e.code()), Some("malformed_response"));
}

// --- Google answers -------------------------------------------------------------------------

#[test]
fn google_success_shapes() {
    let exchanged = parse_token(
        Provider::Google,
        &answer(
            200,
            &json!({
                "access_token": "ya29.a0Af",
                "expires_in": 3599,
                "refresh_token": "1//0g-refresh",
                "scope": "https://www.googleapis.com/auth/datamanager",
                "token_type": "Bearer"
            }),
        ),
        NOW,
    );
    assert_eq!(
        exchanged,
        Ok(Tokens {
            access: Secret::new("ya29.a0Af"),
            refresh: Some(Secret::new("1//0g-refresh")),
            expires_at: Some(NOW + Duration::seconds(3599)),
            scopes: vec!["https://www.googleapis.com/auth/datamanager".into()],
            advertiser_ids: Vec::new(),
        })
    );
    let refreshed = parse_refresh(
        Provider::Google,
        &answer(
            200,
            &json!({"access_token": "ya29.new", "expires_in": "3599", "scope": "a b", "token_type": "Bearer"}),
        ),
        NOW,
    );
    let refreshed = refreshed.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(refreshed.refresh, None);
    assert_eq!(refreshed.scopes, ["a", "b"]);
    assert_eq!(refreshed.expires_at, Some(NOW + Duration::seconds(3599)));
    assert_eq!(
        parse_revoke(Provider::Google, &answer(200, &json!({}))),
        Ok(())
    );
    let empty = HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: Vec::new(),
    };
    assert_eq!(parse_revoke(Provider::Google, &empty), Ok(()));
}

#[test]
fn google_error_shapes() {
    let error = |status, body: Value| answer(status, &body);
    let bad_code = error(
        400,
        json!({"error": "invalid_grant", "error_description": "Bad Request"}),
    );
    assert_eq!(
        code(parse_token(Provider::Google, &bad_code, NOW)),
        "code_invalid"
    );
    let dead_refresh = error(
        400,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}),
    );
    assert_eq!(
        code(parse_refresh(Provider::Google, &dead_refresh, NOW)),
        "token_revoked"
    );
    let expired = error(
        400,
        json!({"error": "invalid_grant", "error_description": "Token has expired."}),
    );
    assert_eq!(
        code(parse_refresh(Provider::Google, &expired, NOW)),
        "token_expired"
    );
    let revoked = error(
        400,
        json!({"error": "invalid_token", "error_description": "Token expired or revoked"}),
    );
    assert_eq!(
        parse_revoke(Provider::Google, &revoked)
            .err()
            .map(|e| e.code()),
        Some("token_revoked")
    );
    let client = error(
        401,
        json!({"error": "invalid_client", "error_description": "Unauthorized"}),
    );
    let failure = parse_token(Provider::Google, &client, NOW).err();
    assert_eq!(
        failure,
        Some(OAuthError::ProviderError {
            provider: Provider::Google,
            status: 401,
            provider_code: "invalid_client".into(),
            detail: "Unauthorized".into(),
            retryable: false,
        })
    );
    let limited = error(429, json!({"error": "rate_limit_exceeded"}));
    let failure = parse_token(Provider::Google, &limited, NOW).err();
    assert!(failure.is_some_and(|e| e.is_retryable()));
    let html = HttpResponse {
        status: 502,
        headers: Vec::new(),
        body: b"<html>bad gateway</html>".to_vec(),
    };
    let failure = parse_token(Provider::Google, &html, NOW).err();
    assert_eq!(
        failure.as_ref().map(OAuthError::code),
        Some("provider_error")
    );
    assert!(failure.is_some_and(|e| e.is_retryable() && e.to_string().contains("http_502")));
}

#[test]
fn unreadable_success_answers_are_malformed() {
    let cases = [
        json!({"expires_in": 3599}),
        json!({"access_token": ""}),
        json!({"access_token": "x", "token_type": "mac"}),
        json!({"access_token": "x", "expires_in": "soon"}),
        json!({"access_token": "x", "refresh_token": 5}),
        json!({"access_token": "x", "scope": {"a": 1}}),
        json!(["access_token"]),
    ];
    for body in cases {
        let result = parse_token(Provider::Google, &answer(200, &body), NOW);
        assert_eq!(code(result), "malformed_response", "{body}");
    }
    let text = HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: b"access_token=x".to_vec(),
    };
    assert_eq!(
        code(parse_token(Provider::Meta, &text, NOW)),
        "malformed_response"
    );
}

// --- Meta answers ---------------------------------------------------------------------------

fn meta_error(code: i64, subcode: Option<i64>, message: &str) -> HttpResponse {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "AbCdEf"
    });
    if let Some(subcode) = subcode {
        error["error_subcode"] = json!(subcode);
    }
    answer(400, &json!({"error": error}))
}

#[test]
fn meta_success_shapes() {
    let short = parse_token(
        Provider::Meta,
        &answer(
            200,
            &json!({"access_token": "EAAshort", "token_type": "bearer", "expires_in": 5400}),
        ),
        NOW,
    );
    let short = short.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(short.access, Secret::new("EAAshort"));
    assert_eq!(short.expires_at, Some(NOW + Duration::seconds(5400)));
    assert_eq!(short.refresh, None);
    let long = parse_refresh(
        Provider::Meta,
        &answer(
            200,
            &json!({"access_token": "EAAlong", "token_type": "bearer", "expires_in": 5183944}),
        ),
        NOW,
    );
    assert_eq!(
        long.map(|t| t.expires_at),
        Ok(Some(NOW + Duration::seconds(5_183_944)))
    );
    let forever = parse_refresh(
        Provider::Meta,
        &answer(
            200,
            &json!({"access_token": "EAAlong", "token_type": "bearer"}),
        ),
        NOW,
    );
    assert_eq!(forever.map(|t| t.expires_at), Ok(None));
    assert_eq!(
        parse_revoke(Provider::Meta, &answer(200, &json!({"success": true}))),
        Ok(())
    );
    assert_eq!(
        parse_revoke(Provider::Meta, &answer(200, &json!({"success": false})))
            .err()
            .map(|e| e.code()),
        Some("provider_error")
    );
}

#[test]
fn meta_error_shapes() {
    let used = meta_error(100, Some(36009), "This authorization code has been used.");
    assert_eq!(
        code(parse_token(Provider::Meta, &used, NOW)),
        "code_invalid"
    );
    let expired_code = meta_error(100, Some(36007), "This authorization code has expired.");
    assert_eq!(
        code(parse_token(Provider::Meta, &expired_code, NOW)),
        "code_invalid"
    );
    let expired = meta_error(
        190,
        Some(463),
        "Error validating access token: Session has expired on Friday, 01-May-26.",
    );
    assert_eq!(
        code(parse_refresh(Provider::Meta, &expired, NOW)),
        "token_expired"
    );
    let removed = meta_error(
        190,
        Some(458),
        "Error validating access token: The user has not authorized application 1234.",
    );
    assert_eq!(
        code(parse_refresh(Provider::Meta, &removed, NOW)),
        "token_revoked"
    );
    assert_eq!(
        parse_revoke(Provider::Meta, &removed)
            .err()
            .map(|e| e.code()),
        Some("token_revoked")
    );
    let invalid = meta_error(
        190,
        None,
        "Invalid OAuth access token - Cannot parse access token",
    );
    assert_eq!(
        code(parse_refresh(Provider::Meta, &invalid, NOW)),
        "token_revoked"
    );
    // Code 100 only means the code on the exchange.
    let parameter = meta_error(100, None, "Invalid parameter");
    assert_eq!(
        code(parse_refresh(Provider::Meta, &parameter, NOW)),
        "provider_error"
    );
    let secret = meta_error(1, None, "Error validating client secret.");
    let failure = parse_token(Provider::Meta, &secret, NOW).err();
    assert_eq!(
        failure.as_ref().map(|e| e.to_string()),
        Some("meta answered http 400 with error 1: Error validating client secret.".into())
    );
    assert!(failure.is_some_and(|e| !e.is_retryable()));
    let transient = answer(
        400,
        &json!({"error": {"message": "x", "type": "OAuthException", "code": 2, "is_transient": true}}),
    );
    let failure = parse_token(Provider::Meta, &transient, NOW).err();
    assert!(failure.is_some_and(|e| e.is_retryable()));
    let unknown = answer(
        400,
        &json!({"error": {"message": "x", "type": "FacebookApiException", "code": 1}}),
    );
    let failure = parse_token(Provider::Meta, &unknown, NOW).err();
    assert!(failure.is_some_and(|e| e.is_retryable()));
    let throttled = meta_error(4, None, "(#4) Application request limit reached");
    let failure = parse_token(Provider::Meta, &throttled, NOW).err();
    assert!(failure.is_some_and(|e| e.is_retryable()));
}

// --- TikTok answers -------------------------------------------------------------------------

fn tiktok(code: i64, message: &str, data: Value) -> HttpResponse {
    answer(
        200,
        &json!({"code": code, "message": message, "request_id": "2026050112000001", "data": data}),
    )
}

#[test]
fn tiktok_success_shapes() {
    let granted = parse_token(
        Provider::TikTok,
        &tiktok(
            0,
            "OK",
            json!({
                "access_token": "act.tiktok",
                "advertiser_ids": ["7100000000000000001", 7_100_000_000_000_000_002_i64],
                "scope": [4, 5, 12]
            }),
        ),
        NOW,
    );
    assert_eq!(
        granted,
        Ok(Tokens {
            access: Secret::new("act.tiktok"),
            refresh: None,
            expires_at: None,
            scopes: vec!["4".into(), "5".into(), "12".into()],
            advertiser_ids: vec!["7100000000000000001".into(), "7100000000000000002".into()],
        })
    );
    assert_eq!(
        parse_revoke(Provider::TikTok, &tiktok(0, "OK", json!({}))),
        Ok(())
    );
}

#[test]
fn tiktok_error_shapes_come_with_http_200() {
    let expired_code = tiktok(40131, "Authorization code is expired", json!({}));
    assert_eq!(
        code(parse_token(Provider::TikTok, &expired_code, NOW)),
        "code_invalid"
    );
    let revoked = tiktok(
        40105,
        "The access token is invalid or has been revoked.",
        json!({}),
    );
    assert_eq!(
        parse_revoke(Provider::TikTok, &revoked)
            .err()
            .map(|e| e.code()),
        Some("token_revoked")
    );
    let expired = tiktok(40102, "Access token has expired.", json!({}));
    assert_eq!(
        parse_revoke(Provider::TikTok, &expired)
            .err()
            .map(|e| e.code()),
        Some("token_expired")
    );
    let limited = tiktok(40100, "Too many requests.", Value::Null);
    let failure = parse_token(Provider::TikTok, &limited, NOW).err();
    assert!(failure.as_ref().is_some_and(OAuthError::is_retryable));
    assert_eq!(
        failure.map(|e| e.to_string()),
        Some("tiktok answered http 200 with error 40100: Too many requests.".into())
    );
    let service = tiktok(51000, "Service error", Value::Null);
    assert!(
        parse_token(Provider::TikTok, &service, NOW)
            .err()
            .is_some_and(|e| e.is_retryable())
    );
    let no_code = answer(200, &json!({"message": "OK"}));
    assert_eq!(
        code(parse_token(Provider::TikTok, &no_code, NOW)),
        "malformed_response"
    );
    let no_token = tiktok(0, "OK", json!({"advertiser_ids": []}));
    assert_eq!(
        code(parse_token(Provider::TikTok, &no_token, NOW)),
        "malformed_response"
    );
    let gateway = HttpResponse {
        status: 504,
        headers: Vec::new(),
        body: Vec::new(),
    };
    assert!(
        parse_token(Provider::TikTok, &gateway, NOW)
            .err()
            .is_some_and(|e| e.is_retryable())
    );
}

// --- tokens ---------------------------------------------------------------------------------

#[test]
fn tokens_debug_shows_no_token() {
    let held = Tokens {
        access: Secret::new("ya29.very-secret-access"),
        refresh: Some(Secret::new("1//very-secret-refresh")),
        expires_at: Some(NOW),
        scopes: vec!["s".into()],
        advertiser_ids: vec!["7".into()],
    };
    let shown = format!("{held:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(shown.contains("advertiser_ids"));
}

#[test]
fn expiry_and_keeping_what_a_renewal_does_not_repeat() {
    let mut held = tokens("a", Some("r"));
    held.scopes = vec!["s".into()];
    held.expires_at = Some(NOW + Duration::minutes(10));
    assert!(!held.is_expired(NOW));
    assert!(held.is_expired(NOW + Duration::minutes(10)));
    assert!(!held.expires_within(NOW, Duration::minutes(5)));
    assert!(held.expires_within(NOW, Duration::minutes(10)));
    assert!(!tokens("a", None).is_expired(NOW + Duration::days(9999)));

    let renewed = tokens("b", None).keep_missing(&held);
    assert_eq!(renewed.access, Secret::new("b"));
    assert_eq!(renewed.refresh, Some(Secret::new("r")));
    assert_eq!(renewed.scopes, ["s"]);
    let rotated = tokens("b", Some("r2")).keep_missing(&held);
    assert_eq!(rotated.refresh, Some(Secret::new("r2")));
}
