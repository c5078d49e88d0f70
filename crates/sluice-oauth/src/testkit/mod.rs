//! A local fake of each platform's OAuth endpoints (feature `testkit`), for this crate's tests
//! and the server's.
//!
//! [`FakeProvider::start`] runs an HTTP server on `127.0.0.1` (a free port) that serves the
//! platform's consent page, token, refresh and revoke endpoints at the platform's paths, reads
//! requests in the platform's shapes and answers in its success and error shapes (TikTok:
//! HTTP 200 with a non-zero `code`). It enforces what the real one does: the app's client id
//! and secret, the registered redirect URI ([`FakeProvider::set_redirect_uri`] registers
//! another), a state, a single-use code that expires ([`FakeProvider::set_code_lifetime`],
//! [`FakeProvider::expire_codes`]) and was issued for the same redirect URI, the PKCE verifier
//! against the challenge (Google and Meta; TikTok's exchange carries no verifier, but its
//! consent page still requires the challenge), tokens that expire
//! ([`FakeProvider::expire_token`]) and die with their grant when revoked (Meta: every grant,
//! the user removed the app). Reusing a code revokes what its first
//! exchange gave. A test can also queue answers and set a rate limit answered in the
//! platform's shape.
//!
//! ```no_run
//! # async fn demo() {
//! use sluice_oauth::testkit::FakeProvider;
//! use sluice_oauth::{AuthState, CodeVerifier, Provider, authorization_url};
//!
//! let fake = FakeProvider::start(Provider::Google).await;
//! let verifier = CodeVerifier::from_random([7; 32]);
//! let url = authorization_url(
//!     &fake.endpoints(),
//!     &fake.client(),
//!     &fake.redirect_uri(),
//!     &AuthState::from_random([9; 32]),
//!     &verifier.challenge(),
//!     Provider::Google.default_scopes(),
//! );
//! // The user clicks "allow": the browser would now be sent to this URL.
//! let callback = fake.authorize(&url).expect("the consent page takes the url");
//! // ... exchange the code from `callback` at `fake.endpoints().token_url()`, then:
//! assert!(fake.issued().iter().all(|token| fake.is_valid(&token.value)));
//! # }
//! ```
//!
//! `server.rs` is the HTTP server and the scripting; `authority.rs` the authorization server
//! every platform shares (codes, grants, tokens); `google.rs`, `meta.rs`, `tiktok.rs` read and
//! answer like each platform. Error texts marked as ours in those files are not the
//! platform's exact words; the codes that the library classifies are.

mod answer;
mod authority;
mod google;
mod meta;
mod server;
mod tiktok;

use time::OffsetDateTime;

pub use server::{FakeProvider, Recorded};

/// A token the fake issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    pub kind: TokenKind,
    /// The token itself (fake, so tests may print it).
    pub value: String,
    pub expires_at: Option<OffsetDateTime>,
    /// Whether its grant was revoked.
    pub revoked: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The app credentials and redirect URI each fake accepts ([`FakeProvider::client`] and
/// [`FakeProvider::redirect_uri`] give them).
pub mod credentials {
    use crate::provider::Provider;

    pub const GOOGLE_CLIENT_ID: &str = "1234567890-fake.apps.googleusercontent.com";
    pub const GOOGLE_CLIENT_SECRET: &str = "GOCSPX-fakeGoogleSecret0123456789";
    pub const META_APP_ID: &str = "1234567890123456";
    pub const META_APP_SECRET: &str = "fakemetaappsecret0123456789abcdef";
    pub const TIKTOK_APP_ID: &str = "7000000000000000001";
    pub const TIKTOK_SECRET: &str = "faketiktoksecret0123456789abcdef";
    /// The advertiser accounts the TikTok fake grants.
    pub const TIKTOK_ADVERTISER_IDS: [&str; 2] = ["7100000000000000001", "7100000000000000002"];

    /// The app's client id (TikTok: `app_id`).
    pub fn client_id(provider: Provider) -> &'static str {
        match provider {
            Provider::Google => GOOGLE_CLIENT_ID,
            Provider::Meta => META_APP_ID,
            Provider::TikTok => TIKTOK_APP_ID,
        }
    }

    /// The app's client secret (TikTok: `secret`).
    pub fn client_secret(provider: Provider) -> &'static str {
        match provider {
            Provider::Google => GOOGLE_CLIENT_SECRET,
            Provider::Meta => META_APP_SECRET,
            Provider::TikTok => TIKTOK_SECRET,
        }
    }

    /// The one redirect URI registered for the app.
    pub fn redirect_uri(provider: Provider) -> String {
        format!("https://sluice.test/api/v1/oauth/{provider}/callback")
    }
}
