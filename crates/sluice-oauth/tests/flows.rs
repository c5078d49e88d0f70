//! The flows end to end against the fake provider of each platform, over HTTP: consent,
//! callback, state check, code exchange (and Meta's long-lived exchange), renewal,
//! revocation; and every way it fails, each with its error code.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use sluice_oauth::testkit::{FakeProvider, TokenKind};
use sluice_oauth::{
    AuthState, Binding, CodeVerifier, HttpRequest, HttpResponse, Method, OAuthError,
    PendingAuthorization, Provider, Secret, StateKey, Tokens, authorization_url,
    long_lived_request, parse_callback, parse_refresh, parse_revoke, parse_token, refresh_request,
    revoke_request, token_request, verify_callback,
};
use time::{Duration, OffsetDateTime};

/// Sends a request as the server would (no redirects followed) and reads the whole answer.
async fn send(request: &HttpRequest) -> HttpResponse {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let method = match request.method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Delete => reqwest::Method::DELETE,
    };
    let mut builder = client.request(method, &request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.body(request.body.clone()).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            let value = value.to_str().unwrap_or_default().to_string();
            (name.as_str().to_string(), value)
        })
        .collect();
    let body = response.bytes().await.unwrap().to_vec();
    HttpResponse {
        status,
        headers,
        body,
    }
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// What the server keeps: sealed pending authorizations by state key (here, just encoded).
#[derive(Default)]
struct Store {
    pending: HashMap<StateKey, Vec<u8>>,
}

impl Store {
    /// Finds and removes (a state works once) the pending authorization of a callback.
    fn take(&mut self, state: &str) -> Option<PendingAuthorization> {
        let bytes = self.pending.remove(&StateKey::of(state))?;
        Some(PendingAuthorization::decode(&bytes).unwrap())
    }
}

/// One connection being made against a fake.
struct Connect {
    fake: FakeProvider,
    store: Store,
}

impl Connect {
    async fn start(provider: Provider) -> Connect {
        Connect {
            fake: FakeProvider::start(provider).await,
            store: Store::default(),
        }
    }

    fn provider(&self) -> Provider {
        self.fake.provider()
    }

    /// The admin asks to connect: a pending authorization is stored, and the URL of the
    /// consent page returned. `seed` stands for the random bytes.
    fn begin(&mut self, seed: u8, ttl: Duration) -> String {
        let provider = self.provider();
        let state = AuthState::from_random([seed; 32]);
        let verifier = CodeVerifier::from_random([seed.wrapping_add(100); 32]);
        let binding = Binding {
            workspace: "ws_1".into(),
            provider,
            connection: format!("conn_{seed}"),
        };
        let url = authorization_url(
            &self.fake.endpoints(),
            &self.fake.client(),
            &self.fake.redirect_uri(),
            &state,
            &verifier.challenge(),
            provider.default_scopes(),
        );
        let pending =
            PendingAuthorization::new(&state, binding, self.fake.redirect_uri(), verifier, now())
                .with_ttl(ttl);
        self.store.pending.insert(pending.key(), pending.encode());
        url
    }

    /// The callback: its state checked against the store, then its code.
    fn callback(&mut self, redirect: &str) -> Result<(PendingAuthorization, Secret), OAuthError> {
        let provider = self.provider();
        let callback = parse_callback(provider, redirect)?;
        let found = self.store.take(&callback.state);
        let pending = verify_callback(found.as_ref(), &callback.state, provider, now())?.clone();
        Ok((pending, callback.code?))
    }

    /// The code exchange, then Meta's long-lived exchange.
    async fn exchange(
        &self,
        pending: &PendingAuthorization,
        code: &Secret,
    ) -> Result<Tokens, OAuthError> {
        let provider = self.provider();
        let endpoints = self.fake.endpoints();
        let client = self.fake.client();
        let request = token_request(
            &endpoints,
            &client,
            code,
            &pending.verifier,
            &pending.redirect_uri,
        );
        let tokens = parse_token(provider, &send(&request).await, now())?;
        match long_lived_request(&endpoints, &client, &tokens) {
            Some(request) => parse_refresh(provider, &send(&request).await, now()),
            None => Ok(tokens),
        }
    }

    /// Consent, callback and exchange in one go.
    async fn connect(&mut self, seed: u8) -> Tokens {
        let url = self.begin(seed, Duration::minutes(10));
        let redirect = self.fake.authorize(&url).unwrap();
        let (pending, code) = self.callback(&redirect).unwrap();
        self.exchange(&pending, &code).await.unwrap()
    }

    async fn refresh(&self, tokens: &Tokens) -> Result<Tokens, OAuthError> {
        let request = refresh_request(&self.fake.endpoints(), &self.fake.client(), tokens)?;
        let renewed = parse_refresh(self.provider(), &send(&request).await, now())?;
        Ok(renewed.keep_missing(tokens))
    }

    async fn revoke(&self, tokens: &Tokens) -> Result<(), OAuthError> {
        let request = revoke_request(&self.fake.endpoints(), &self.fake.client(), tokens);
        parse_revoke(self.provider(), &send(&request).await)
    }
}

fn code<T>(result: Result<T, OAuthError>) -> &'static str {
    result.err().map_or("ok", |error| error.code())
}

// --- happy paths ----------------------------------------------------------------------------

#[tokio::test]
async fn google_connect_refresh_revoke() {
    let mut connect = Connect::start(Provider::Google).await;
    let url = connect.begin(1, Duration::minutes(10));

    // The consent page over HTTP redirects the browser to the callback with code and state.
    let page = send(&HttpRequest {
        method: Method::Get,
        url: url.clone(),
        headers: Vec::new(),
        body: Vec::new(),
    })
    .await;
    assert_eq!(page.status, 302);
    let redirect = page.header("location").unwrap().to_string();
    assert!(redirect.starts_with("https://sluice.test/api/v1/oauth/google/callback?code=4%2F0A"));

    let (pending, code_value) = connect.callback(&redirect).unwrap();
    assert_eq!(pending.binding.connection, "conn_1");
    let tokens = connect.exchange(&pending, &code_value).await.unwrap();
    let refresh = tokens.refresh.clone().unwrap();
    assert_eq!(
        tokens.scopes,
        ["https://www.googleapis.com/auth/datamanager"]
    );
    let lifetime = tokens.expires_at.unwrap() - now();
    assert!(lifetime > Duration::minutes(59) && lifetime <= Duration::seconds(3599));
    assert!(connect.fake.is_valid(tokens.access.expose()));
    assert!(connect.fake.is_valid(refresh.expose()));

    // The token endpoint got the form the library built, verifier included.
    let asked = connect.fake.requests();
    let exchange = asked.iter().find(|r| r.path == "/token").unwrap();
    let body = String::from_utf8_lossy(&exchange.body).into_owned();
    assert!(body.starts_with("grant_type=authorization_code&code=4%2F0Afake-code-"));
    assert!(body.contains(&format!("&code_verifier={}", pending.verifier.expose())));

    let renewed = connect.refresh(&tokens).await.unwrap();
    assert_ne!(renewed.access, tokens.access);
    assert_eq!(renewed.refresh.as_ref(), Some(&refresh));
    assert!(connect.fake.is_valid(renewed.access.expose()));

    assert_eq!(connect.revoke(&renewed).await, Ok(()));
    for token in connect.fake.issued() {
        assert!(token.revoked, "{token:?}");
        assert!(!connect.fake.is_valid(&token.value));
    }
    assert_eq!(code(connect.refresh(&renewed).await), "token_revoked");
    assert_eq!(code(connect.revoke(&renewed).await), "token_revoked");
}

#[tokio::test]
async fn meta_connect_long_lived_re_exchange_revoke() {
    let mut connect = Connect::start(Provider::Meta).await;
    let tokens = connect.connect(2).await;
    let lifetime = tokens.expires_at.unwrap() - now();
    assert!(lifetime > Duration::days(59), "{lifetime}");
    assert_eq!(tokens.refresh, None);

    // Two tokens so far: the short-lived one of the code exchange, and the long-lived one.
    let issued = connect.fake.issued();
    assert_eq!(issued.len(), 2);
    assert_eq!(issued[1].value, tokens.access.expose());
    assert!(issued.iter().all(|t| t.kind == TokenKind::Access));
    let paths: Vec<(String, String)> = connect
        .fake
        .requests()
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    assert_eq!(
        paths,
        [
            ("GET".to_string(), "/v25.0/oauth/access_token".to_string()),
            ("GET".to_string(), "/v25.0/oauth/access_token".to_string()),
        ]
    );

    let renewed = connect.refresh(&tokens).await.unwrap();
    assert_ne!(renewed.access, tokens.access);
    assert!(connect.fake.is_valid(renewed.access.expose()));

    assert_eq!(connect.revoke(&renewed).await, Ok(()));
    let revoke = connect.fake.requests().pop().unwrap();
    assert_eq!(revoke.method, "DELETE");
    assert_eq!(revoke.path, "/v25.0/me/permissions");
    // The user removed the app: every token is dead.
    assert!(connect.fake.issued().iter().all(|t| t.revoked));
    assert!(!connect.fake.is_valid(tokens.access.expose()));
    assert_eq!(code(connect.refresh(&renewed).await), "token_revoked");
}

#[tokio::test]
async fn tiktok_connect_keeps_advertisers_has_no_refresh_and_revokes() {
    let mut connect = Connect::start(Provider::TikTok).await;
    let url = connect.begin(3, Duration::minutes(10));
    assert!(url.contains("app_id=7000000000000000001"));
    let redirect = connect.fake.authorize(&url).unwrap();
    assert!(redirect.contains("auth_code="));
    let (pending, code_value) = connect.callback(&redirect).unwrap();
    let tokens = connect.exchange(&pending, &code_value).await.unwrap();
    assert_eq!(
        tokens.advertiser_ids,
        ["7100000000000000001", "7100000000000000002"]
    );
    assert_eq!(tokens.scopes, ["4", "5", "12"]);
    assert_eq!(tokens.expires_at, None);
    assert_eq!(tokens.refresh, None);

    let exchange = connect.fake.requests().pop().unwrap();
    assert_eq!(exchange.path, "/open_api/v1.3/oauth2/access_token/");
    assert_eq!(
        exchange.json().unwrap(),
        serde_json::json!({
            "app_id": "7000000000000000001",
            "secret": "faketiktoksecret0123456789abcdef",
            "auth_code": code_value.expose(),
        })
    );

    assert_eq!(code(connect.refresh(&tokens).await), "refresh_unsupported");
    assert_eq!(connect.revoke(&tokens).await, Ok(()));
    assert!(!connect.fake.is_valid(tokens.access.expose()));
    assert_eq!(code(connect.revoke(&tokens).await), "token_revoked");
}

// --- the state ------------------------------------------------------------------------------

#[tokio::test]
async fn a_callback_with_an_unknown_forged_or_late_state_is_refused() {
    let mut connect = Connect::start(Provider::Google).await;

    // A state Sluice never issued (or one already used) finds nothing.
    let url = connect.begin(4, Duration::minutes(10));
    let redirect = connect.fake.authorize(&url).unwrap();
    let forged = redirect.replace("state=", "state=x");
    assert_eq!(code(connect.callback(&forged)), "state_unknown");
    let (pending, code_value) = connect.callback(&redirect).unwrap();
    assert_eq!(code(connect.callback(&redirect)), "state_unknown");

    // A pending authorization coming back on another provider's callback route.
    let state = AuthState::from_random([5; 32]);
    assert_eq!(
        code(verify_callback(
            Some(&pending),
            state.expose(),
            Provider::Google,
            now()
        )),
        "state_mismatch"
    );
    let url = connect.begin(5, Duration::minutes(10));
    let redirect = connect.fake.authorize(&url).unwrap();
    let callback = parse_callback(Provider::Meta, &redirect).unwrap();
    let found = connect.store.take(&callback.state);
    assert_eq!(
        code(verify_callback(
            found.as_ref(),
            &callback.state,
            Provider::Meta,
            now()
        )),
        "state_mismatch"
    );

    // Past its time to live.
    let url = connect.begin(6, Duration::ZERO);
    let redirect = connect.fake.authorize(&url).unwrap();
    assert_eq!(code(connect.callback(&redirect)), "state_expired");

    // The good one still works.
    assert!(connect.exchange(&pending, &code_value).await.is_ok());
}

// --- codes ----------------------------------------------------------------------------------

#[tokio::test]
async fn a_wrong_verifier_is_code_invalid() {
    for provider in [Provider::Google, Provider::Meta] {
        let mut connect = Connect::start(provider).await;
        let url = connect.begin(7, Duration::minutes(10));
        let redirect = connect.fake.authorize(&url).unwrap();
        let (mut pending, code_value) = connect.callback(&redirect).unwrap();
        pending.verifier = CodeVerifier::from_random([0; 32]);
        let failure = connect.exchange(&pending, &code_value).await;
        assert_eq!(code(failure), "code_invalid", "{provider}");
        assert!(connect.fake.issued().is_empty());
    }
}

#[tokio::test]
async fn an_expired_code_is_code_invalid() {
    for provider in Provider::ALL {
        let mut connect = Connect::start(provider).await;
        let url = connect.begin(8, Duration::minutes(10));
        let redirect = connect.fake.authorize(&url).unwrap();
        let (pending, code_value) = connect.callback(&redirect).unwrap();
        connect.fake.expire_codes();
        let failure = connect.exchange(&pending, &code_value).await;
        assert_eq!(code(failure), "code_invalid", "{provider}");
    }
}

#[tokio::test]
async fn a_short_code_lifetime_expires_codes_too() {
    let mut connect = Connect::start(Provider::Google).await;
    connect.fake.set_code_lifetime(Duration::ZERO);
    let url = connect.begin(9, Duration::minutes(10));
    let redirect = connect.fake.authorize(&url).unwrap();
    let (pending, code_value) = connect.callback(&redirect).unwrap();
    assert_eq!(
        code(connect.exchange(&pending, &code_value).await),
        "code_invalid"
    );
}

#[tokio::test]
async fn a_reused_code_is_code_invalid_and_kills_the_first_grant() {
    for provider in Provider::ALL {
        let mut connect = Connect::start(provider).await;
        let url = connect.begin(10, Duration::minutes(10));
        let redirect = connect.fake.authorize(&url).unwrap();
        let (pending, code_value) = connect.callback(&redirect).unwrap();
        let tokens = connect.exchange(&pending, &code_value).await.unwrap();
        let again = connect.exchange(&pending, &code_value).await;
        assert_eq!(code(again), "code_invalid", "{provider}");
        assert!(!connect.fake.is_valid(tokens.access.expose()), "{provider}");
    }
}

#[tokio::test]
async fn a_refused_consent_is_code_invalid() {
    for provider in Provider::ALL {
        let mut connect = Connect::start(provider).await;
        let url = connect.begin(11, Duration::minutes(10));
        let redirect = connect.fake.deny(&url).unwrap();
        let failure = connect.callback(&redirect).err().unwrap();
        assert_eq!(failure.code(), "code_invalid", "{provider}");
        assert!(failure.to_string().contains("access_denied"), "{failure}");
    }
}

#[tokio::test]
async fn the_consent_page_checks_the_app_redirect_state_and_challenge() {
    let fake = FakeProvider::start(Provider::Google).await;
    let url = authorization_url(
        &fake.endpoints(),
        &fake.client(),
        &fake.redirect_uri(),
        &AuthState::from_random([1; 32]),
        &CodeVerifier::from_random([2; 32]).challenge(),
        Provider::Google.default_scopes(),
    );
    assert!(fake.authorize(&url).is_ok());
    let broken = [
        url.replace("client_id=", "client_id=x"),
        url.replace("callback", "elsewhere"),
        url.replace("state=", "nostate="),
        url.replace("code_challenge_method=S256", "code_challenge_method=plain"),
        url.replace("code_challenge=", "challenge="),
        url.replace("/o/oauth2/v2/auth", "/o/oauth2/auth"),
    ];
    for url in broken {
        assert!(fake.authorize(&url).is_err(), "{url}");
    }
    // Over HTTP, a refusal is a 400 page.
    let page = send(&HttpRequest {
        method: Method::Get,
        url: url.replace("state=", "nostate="),
        headers: Vec::new(),
        body: Vec::new(),
    })
    .await;
    assert_eq!(page.status, 400);
}

// --- tokens ---------------------------------------------------------------------------------

#[tokio::test]
async fn an_expired_token() {
    // Meta: a long-lived token past its expiry cannot be exchanged again.
    let mut meta = Connect::start(Provider::Meta).await;
    let tokens = meta.connect(12).await;
    assert!(meta.fake.expire_token(tokens.access.expose()));
    assert!(!meta.fake.is_valid(tokens.access.expose()));
    assert_eq!(code(meta.refresh(&tokens).await), "token_expired");

    // TikTok: its token does not expire, but if it did, revoking says so.
    let mut tiktok = Connect::start(Provider::TikTok).await;
    let tokens = tiktok.connect(13).await;
    assert!(tiktok.fake.expire_token(tokens.access.expose()));
    assert_eq!(code(tiktok.revoke(&tokens).await), "token_expired");

    // Google says "expired or revoked" in one breath: a dead refresh token is token_revoked.
    let mut google = Connect::start(Provider::Google).await;
    let tokens = google.connect(14).await;
    assert!(
        google
            .fake
            .expire_token(tokens.refresh.as_ref().unwrap().expose())
    );
    assert_eq!(code(google.refresh(&tokens).await), "token_revoked");
    // An expired access token alone does not stop the refresh.
    let mut google = Connect::start(Provider::Google).await;
    let tokens = google.connect(15).await;
    assert!(google.fake.expire_token(tokens.access.expose()));
    assert!(google.refresh(&tokens).await.is_ok());
}

#[tokio::test]
async fn a_revoked_token() {
    for provider in Provider::ALL {
        let mut connect = Connect::start(provider).await;
        let tokens = connect.connect(16).await;
        assert_eq!(connect.revoke(&tokens).await, Ok(()));
        assert!(!connect.fake.is_valid(tokens.access.expose()));
        let expected = match provider {
            Provider::TikTok => "refresh_unsupported",
            Provider::Google | Provider::Meta => "token_revoked",
        };
        assert_eq!(code(connect.refresh(&tokens).await), expected, "{provider}");
        assert_eq!(code(connect.revoke(&tokens).await), "token_revoked");
    }
}

// --- the app's credentials, rate limits, scripted answers -----------------------------------

#[tokio::test]
async fn a_wrong_client_secret_is_a_provider_error() {
    for provider in Provider::ALL {
        let mut connect = Connect::start(provider).await;
        let url = connect.begin(17, Duration::minutes(10));
        let redirect = connect.fake.authorize(&url).unwrap();
        let (pending, code_value) = connect.callback(&redirect).unwrap();
        let mut client = connect.fake.client();
        client.client_secret = Secret::new("not-the-secret");
        let request = token_request(
            &connect.fake.endpoints(),
            &client,
            &code_value,
            &pending.verifier,
            &pending.redirect_uri,
        );
        let failure = parse_token(provider, &send(&request).await, now())
            .err()
            .unwrap();
        assert_eq!(failure.code(), "provider_error", "{provider}: {failure}");
        assert!(!failure.is_retryable());
        assert!(!failure.to_string().contains("not-the-secret"));
    }
}

#[tokio::test]
async fn rate_limits_and_scripted_failures_are_retryable_provider_errors() {
    for provider in Provider::ALL {
        let mut connect = Connect::start(provider).await;
        let url = connect.begin(18, Duration::minutes(10));
        let redirect = connect.fake.authorize(&url).unwrap();
        let (pending, code_value) = connect.callback(&redirect).unwrap();

        connect.fake.push_answer(503, &[], "upstream unavailable");
        let failure = connect.exchange(&pending, &code_value).await.err().unwrap();
        assert_eq!(failure.code(), "provider_error");
        assert!(failure.is_retryable(), "{provider}: {failure}");

        // Over the limit (one request a second), the platform's rate-limit answer; a few
        // tries so that a slow machine crossing a window boundary still meets it.
        connect.fake.set_rate_limit(1);
        let mut limited = None;
        for _ in 0..5 {
            match connect.exchange(&pending, &code_value).await {
                Err(error) if error.is_retryable() => {
                    limited = Some(error);
                    break;
                }
                _ => {}
            }
        }
        let limited = limited.unwrap();
        assert_eq!(limited.code(), "provider_error", "{provider}: {limited}");
        let expected = match provider {
            Provider::Google => "rate_limit_exceeded",
            Provider::Meta => "error 4:",
            Provider::TikTok => "error 40100:",
        };
        assert!(limited.to_string().contains(expected), "{limited}");
    }
}

#[tokio::test]
async fn another_registered_redirect_uri_replaces_the_default() {
    let fake = FakeProvider::start(Provider::Meta).await;
    let default = fake.redirect_uri();
    fake.set_redirect_uri("https://sluice.example/oauth/callback");
    assert_eq!(fake.redirect_uri(), "https://sluice.example/oauth/callback");
    let url = |redirect: &str| {
        authorization_url(
            &fake.endpoints(),
            &fake.client(),
            redirect,
            &AuthState::from_random([3; 32]),
            &CodeVerifier::from_random([4; 32]).challenge(),
            Provider::Meta.default_scopes(),
        )
    };
    assert!(fake.authorize(&url(&default)).is_err());
    let redirect = fake
        .authorize(&url("https://sluice.example/oauth/callback"))
        .unwrap();
    assert!(redirect.starts_with("https://sluice.example/oauth/callback?code="));
}
