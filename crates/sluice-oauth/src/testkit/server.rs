//! The fake's HTTP server and what a test can do with it: act as the user on the consent page,
//! expire codes and tokens, look at what was issued and asked, queue answers, set a rate limit.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use time::{Duration, OffsetDateTime};
use tokio::task::JoinHandle;

use super::authority::Authority;
use super::{IssuedToken, credentials, google, meta, tiktok};
use crate::client::ClientCredentials;
use crate::provider::{Provider, ProviderEndpoints, paths};
pub use sluice_destinations::testkit::Recorded;
use sluice_destinations::testkit::answer::{Answer, Rate};

struct Script {
    authority: Authority,
    recorded: Vec<Recorded>,
    answers: VecDeque<Answer>,
    rate: Option<Rate>,
}

struct Shared {
    provider: Provider,
    base: String,
    script: Mutex<Script>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Script> {
        self.script
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A running fake of one platform's OAuth endpoints. Dropping it stops the server.
pub struct FakeProvider {
    address: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

impl FakeProvider {
    /// Starts a fake of `provider` on `127.0.0.1` and a free port.
    ///
    /// # Panics
    /// When no local port can be bound, or outside a Tokio runtime.
    pub async fn start(provider: Provider) -> FakeProvider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|error| panic!("fake provider: cannot bind 127.0.0.1: {error}"));
        let address = listener
            .local_addr()
            .unwrap_or_else(|error| panic!("fake provider: no local address: {error}"));
        let shared = Arc::new(Shared {
            provider,
            base: format!("http://{address}"),
            script: Mutex::new(Script {
                authority: Authority::new(provider),
                recorded: Vec::new(),
                answers: VecDeque::new(),
                rate: None,
            }),
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // The server ends when the fake is dropped (the task is aborted).
            let _ = axum::serve(listener, app).await;
        });
        FakeProvider {
            address,
            shared,
            server,
        }
    }

    pub fn provider(&self) -> Provider {
        self.shared.provider
    }

    /// `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The platform's endpoints, all on this fake.
    pub fn endpoints(&self) -> ProviderEndpoints {
        ProviderEndpoints::local(self.shared.provider, &self.base_url())
    }

    /// The app credentials the fake accepts.
    pub fn client(&self) -> ClientCredentials {
        let provider = self.shared.provider;
        ClientCredentials::new(
            credentials::client_id(provider),
            credentials::client_secret(provider),
        )
    }

    /// The redirect URI registered for the app ([`credentials::redirect_uri`] unless
    /// [`FakeProvider::set_redirect_uri`] changed it).
    pub fn redirect_uri(&self) -> String {
        self.shared.lock().authority.redirect_uri().to_string()
    }

    /// Registers another redirect URI for the app in place of the default one (a server
    /// whose callback lives elsewhere, such as Sluice's `<public_url>/oauth/callback`).
    pub fn set_redirect_uri(&self, uri: &str) {
        self.shared.lock().authority.set_redirect_uri(uri);
    }

    /// The user clicks "allow" on the consent page at `url` (an authorization URL built for
    /// [`FakeProvider::endpoints`]): the redirect URL the browser is sent to, with the code
    /// and the state, or why the page refuses (wrong page or client, unregistered redirect
    /// URI, no state, no `S256` challenge...). The same as `GET url`, whose answer is a `302`
    /// to that redirect URL or a `400` with the reason.
    pub fn authorize(&self, url: &str) -> Result<String, String> {
        let page = self.endpoints().authorize_url();
        let now = OffsetDateTime::now_utc();
        self.shared.lock().authority.authorize(&page, url, now)
    }

    /// The user clicks "cancel": the redirect URL with `error=access_denied` and the state.
    pub fn deny(&self, url: &str) -> Result<String, String> {
        let page = self.endpoints().authorize_url();
        self.shared.lock().authority.deny(&page, url)
    }

    /// Codes handed out from now on expire after `lifetime` (10 minutes by default; TikTok's
    /// an hour).
    pub fn set_code_lifetime(&self, lifetime: Duration) {
        self.shared.lock().authority.set_code_lifetime(lifetime);
    }

    /// Every code handed out so far is expired.
    pub fn expire_codes(&self) {
        let now = OffsetDateTime::now_utc();
        self.shared.lock().authority.expire_codes(now);
    }

    /// The token (access or refresh) is expired from now on; `false` when the fake never
    /// issued it.
    pub fn expire_token(&self, token: &str) -> bool {
        let now = OffsetDateTime::now_utc();
        self.shared.lock().authority.expire_token(token, now)
    }

    /// Whether the token was issued here and is neither expired nor revoked.
    pub fn is_valid(&self, token: &str) -> bool {
        let now = OffsetDateTime::now_utc();
        self.shared.lock().authority.is_valid(token, now)
    }

    /// Every token issued, in order.
    pub fn issued(&self) -> Vec<IssuedToken> {
        self.shared.lock().authority.issued()
    }

    /// Every request that arrived, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().recorded.clone()
    }

    /// Queues an answer: the next request that is not rate limited gets it instead of the
    /// platform's own, whatever it asks. Answers are used in the order pushed.
    pub fn push_answer(&self, status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) {
        let answer = Answer {
            status,
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: body.into(),
        };
        self.shared.lock().answers.push_back(answer);
    }

    /// Answers requests beyond `per_second` in a one-second window the way the platform
    /// answers a rate limit (Google `429 rate_limit_exceeded`, Meta error code 4, TikTok code
    /// 40100 with HTTP 200). `0` turns the limit off.
    pub fn set_rate_limit(&self, per_second: u32) {
        self.shared.lock().rate = (per_second > 0).then(|| Rate::new(per_second, Instant::now()));
    }
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Recorded {
        method: method.as_str().to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: body.to_vec(),
    };
    let provider = shared.provider;
    let now = OffsetDateTime::now_utc();
    let mut script = shared.lock();
    script.recorded.push(request.clone());
    if let Some(wait) = script.rate.as_mut().and_then(|r| r.over(Instant::now())) {
        return throttled(provider, wait).into_response();
    }
    if let Some(answer) = script.answers.pop_front() {
        return answer.into_response();
    }
    let authority = &mut script.authority;
    let answer = if request.method == "GET" && is_consent_page(provider, &request.path) {
        let page = format!("{}{}", shared.base, request.path);
        let url = format!("{page}?{}", request.query.as_deref().unwrap_or(""));
        match authority.authorize(&page, &url, now) {
            Ok(location) => Answer::redirect(&location),
            Err(reason) => Answer::text(400, &reason),
        }
    } else {
        match provider {
            Provider::Google => google::respond(authority, &request, now),
            Provider::Meta => meta::respond(authority, &request, now),
            Provider::TikTok => tiktok::respond(authority, &request, now),
        }
    };
    drop(script);
    answer.into_response()
}

fn is_consent_page(provider: Provider, path: &str) -> bool {
    match provider {
        Provider::Google => path == paths::GOOGLE_AUTHORIZE,
        Provider::Meta => meta::versioned(path) == Some(paths::META_AUTHORIZE),
        Provider::TikTok => path == paths::TIKTOK_AUTHORIZE,
    }
}

fn throttled(provider: Provider, retry_after: u64) -> Answer {
    match provider {
        Provider::Google => google::throttled(retry_after),
        Provider::Meta => meta::throttled(),
        Provider::TikTok => tiktok::throttled(),
    }
}
