//! The ad platforms Sluice connects to by OAuth, and each one's facts: where its consent page
//! and its token and revoke endpoints are, the scopes the audience APIs need, how a token is
//! renewed and how long tokens live (`ad-audiences.md` §1 and §3).
//!
//! Every base URL can be replaced ([`ProviderEndpoints::local`]) so that tests and the fake
//! provider take the real platform's place; the paths stay the platform's own.

use std::fmt;

use time::Duration;

/// An ad platform that grants access by OAuth 2.0 authorization code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provider {
    /// Google (Data Manager API; the Ads API takes the same tokens).
    Google,
    /// Meta (Facebook and Instagram, Graph / Marketing API).
    Meta,
    /// TikTok (Business API v1.3).
    TikTok,
}

/// How a provider's access is renewed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// A refresh token (`grant_type=refresh_token`) buys a new access token (Google).
    RefreshToken,
    /// A still-valid long-lived token is exchanged for a new one
    /// (`grant_type=fb_exchange_token`, Meta); an expired one cannot be.
    ReExchange,
    /// No renewal: the token does not expire and stops working only when revoked (TikTok).
    None,
}

/// Meta's Graph API version, in every Meta path.
pub const META_VERSION: &str = "v25.0";

/// The Google scope of the Data Manager API (audience uploads).
pub const GOOGLE_DATAMANAGER_SCOPE: &str = "https://www.googleapis.com/auth/datamanager";

/// Paths of the endpoints, after the base URL. Meta's start with the Graph API version, so they
/// are formats over `{v}` (see [`ProviderEndpoints`]).
pub mod paths {
    /// Google's consent page (on `accounts.google.com`).
    pub const GOOGLE_AUTHORIZE: &str = "/o/oauth2/v2/auth";
    /// Google's token endpoint: code exchange and refresh (on `oauth2.googleapis.com`).
    pub const GOOGLE_TOKEN: &str = "/token";
    /// Google's revocation endpoint (on `oauth2.googleapis.com`).
    pub const GOOGLE_REVOKE: &str = "/revoke";
    /// Meta's login dialog, after `/{v}` (on `www.facebook.com`).
    pub const META_AUTHORIZE: &str = "/dialog/oauth";
    /// Meta's token endpoint, after `/{v}` (on `graph.facebook.com`).
    pub const META_TOKEN: &str = "/oauth/access_token";
    /// Meta's permissions edge, deleted to revoke, after `/{v}` (on `graph.facebook.com`).
    pub const META_REVOKE: &str = "/me/permissions";
    /// TikTok's advertiser authorization page.
    pub const TIKTOK_AUTHORIZE: &str = "/portal/auth";
    /// TikTok's token endpoint (the trailing slash is required).
    pub const TIKTOK_TOKEN: &str = "/open_api/v1.3/oauth2/access_token/";
    /// TikTok's revocation endpoint (the trailing slash is required).
    pub const TIKTOK_REVOKE: &str = "/open_api/v1.3/oauth2/revoke_token/";
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Provider::Google, Provider::Meta, Provider::TikTok];

    /// The provider's name in URLs, configuration and messages (`google`, `meta`, `tiktok`).
    pub fn name(self) -> &'static str {
        match self {
            Provider::Google => "google",
            Provider::Meta => "meta",
            Provider::TikTok => "tiktok",
        }
    }

    /// The provider called `name`.
    pub fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The scopes Sluice asks for: what the audience APIs need (`ad-audiences.md` §1).
    /// TikTok has none in the URL: its permissions are chosen on the developer app, and the
    /// advertiser may grant fewer.
    pub fn default_scopes(self) -> &'static [&'static str] {
        match self {
            Provider::Google => &[GOOGLE_DATAMANAGER_SCOPE],
            Provider::Meta => &["ads_management", "ads_read", "business_management"],
            Provider::TikTok => &[],
        }
    }

    /// How access is renewed.
    pub fn renewal(self) -> Renewal {
        match self {
            Provider::Google => Renewal::RefreshToken,
            Provider::Meta => Renewal::ReExchange,
            Provider::TikTok => Renewal::None,
        }
    }

    /// Whether the code exchange gives a refresh token (Google only, with `access_type=offline`).
    pub fn issues_refresh_tokens(self) -> bool {
        self.renewal() == Renewal::RefreshToken
    }

    /// How long the access token Sluice keeps usually lives: Google's 1 hour, Meta's
    /// long-lived 60 days; `None` for TikTok, whose token does not expire. The `expires_in` of
    /// each answer is what counts; this is for planning renewals.
    pub fn access_lifetime(self) -> Option<Duration> {
        match self {
            Provider::Google => Some(Duration::seconds(3600)),
            Provider::Meta => Some(Duration::days(60)),
            Provider::TikTok => None,
        }
    }

    /// How long Meta's short-lived token (the code exchange's) usually lives: 1 to 2 hours;
    /// `None` for the others, which have no such step.
    pub fn short_lived_lifetime(self) -> Option<Duration> {
        match self {
            Provider::Meta => Some(Duration::hours(2)),
            Provider::Google | Provider::TikTok => None,
        }
    }

    /// The real platform's endpoints.
    pub fn endpoints(self) -> ProviderEndpoints {
        ProviderEndpoints::new(self)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a provider's endpoints are: two origins (the consent page's, and the token API's)
/// and, for Meta, the Graph API version. The paths are the platform's ([`paths`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderEndpoints {
    pub provider: Provider,
    /// Origin of the consent page, without a trailing slash.
    pub auth_base: String,
    /// Origin of the token, refresh and revoke endpoints, without a trailing slash.
    pub api_base: String,
    /// Meta's Graph API version (`v25.0`); the other providers ignore it.
    pub meta_version: String,
}

impl ProviderEndpoints {
    /// The real platform's endpoints.
    pub fn new(provider: Provider) -> ProviderEndpoints {
        let (auth, api) = match provider {
            Provider::Google => (
                "https://accounts.google.com",
                "https://oauth2.googleapis.com",
            ),
            Provider::Meta => ("https://www.facebook.com", "https://graph.facebook.com"),
            Provider::TikTok => (
                "https://business-api.tiktok.com",
                "https://business-api.tiktok.com",
            ),
        };
        ProviderEndpoints {
            provider,
            auth_base: auth.to_string(),
            api_base: api.to_string(),
            meta_version: META_VERSION.to_string(),
        }
    }

    /// Every endpoint of `provider` under one `base` URL (a fake, a proxy).
    pub fn local(provider: Provider, base: &str) -> ProviderEndpoints {
        let base = base.trim_end_matches('/').to_string();
        ProviderEndpoints {
            provider,
            auth_base: base.clone(),
            api_base: base,
            meta_version: META_VERSION.to_string(),
        }
    }

    /// The same endpoints with another Meta Graph API version (`v24.0`).
    pub fn with_meta_version(mut self, version: impl Into<String>) -> ProviderEndpoints {
        self.meta_version = version.into();
        self
    }

    /// The consent page, without a query.
    pub fn authorize_url(&self) -> String {
        let base = &self.auth_base;
        match self.provider {
            Provider::Google => format!("{base}{}", paths::GOOGLE_AUTHORIZE),
            Provider::Meta => format!("{base}/{}{}", self.meta_version, paths::META_AUTHORIZE),
            Provider::TikTok => format!("{base}{}", paths::TIKTOK_AUTHORIZE),
        }
    }

    /// The token endpoint (code exchange, refresh, Meta's long-lived exchange), without a
    /// query.
    pub fn token_url(&self) -> String {
        let base = &self.api_base;
        match self.provider {
            Provider::Google => format!("{base}{}", paths::GOOGLE_TOKEN),
            Provider::Meta => format!("{base}/{}{}", self.meta_version, paths::META_TOKEN),
            Provider::TikTok => format!("{base}{}", paths::TIKTOK_TOKEN),
        }
    }

    /// The revocation endpoint, without a query.
    pub fn revoke_url(&self) -> String {
        let base = &self.api_base;
        match self.provider {
            Provider::Google => format!("{base}{}", paths::GOOGLE_REVOKE),
            Provider::Meta => format!("{base}/{}{}", self.meta_version, paths::META_REVOKE),
            Provider::TikTok => format!("{base}{}", paths::TIKTOK_REVOKE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.name()), Some(provider));
            assert_eq!(provider.to_string(), provider.name());
        }
        assert_eq!(Provider::parse("linkedin"), None);
    }

    #[test]
    fn the_real_endpoints() {
        let google = Provider::Google.endpoints();
        assert_eq!(
            google.authorize_url(),
            "https://accounts.google.com/o/oauth2/v2/auth"
        );
        assert_eq!(google.token_url(), "https://oauth2.googleapis.com/token");
        assert_eq!(google.revoke_url(), "https://oauth2.googleapis.com/revoke");

        let meta = Provider::Meta.endpoints();
        assert_eq!(
            meta.authorize_url(),
            "https://www.facebook.com/v25.0/dialog/oauth"
        );
        assert_eq!(
            meta.token_url(),
            "https://graph.facebook.com/v25.0/oauth/access_token"
        );
        assert_eq!(
            meta.revoke_url(),
            "https://graph.facebook.com/v25.0/me/permissions"
        );

        let tiktok = Provider::TikTok.endpoints();
        assert_eq!(
            tiktok.authorize_url(),
            "https://business-api.tiktok.com/portal/auth"
        );
        assert_eq!(
            tiktok.token_url(),
            "https://business-api.tiktok.com/open_api/v1.3/oauth2/access_token/"
        );
        assert_eq!(
            tiktok.revoke_url(),
            "https://business-api.tiktok.com/open_api/v1.3/oauth2/revoke_token/"
        );
    }

    #[test]
    fn every_base_can_be_replaced() {
        let meta = ProviderEndpoints::local(Provider::Meta, "http://127.0.0.1:4000/")
            .with_meta_version("v24.0");
        assert_eq!(
            meta.authorize_url(),
            "http://127.0.0.1:4000/v24.0/dialog/oauth"
        );
        assert_eq!(
            meta.token_url(),
            "http://127.0.0.1:4000/v24.0/oauth/access_token"
        );
        let google = ProviderEndpoints::local(Provider::Google, "http://127.0.0.1:4000");
        assert_eq!(google.token_url(), "http://127.0.0.1:4000/token");
    }

    #[test]
    fn facts_per_platform() {
        assert_eq!(
            Provider::Google.default_scopes(),
            ["https://www.googleapis.com/auth/datamanager"]
        );
        assert_eq!(
            Provider::Meta.default_scopes(),
            ["ads_management", "ads_read", "business_management"]
        );
        assert!(Provider::TikTok.default_scopes().is_empty());
        assert!(Provider::Google.issues_refresh_tokens());
        assert!(!Provider::Meta.issues_refresh_tokens());
        assert!(!Provider::TikTok.issues_refresh_tokens());
        assert_eq!(Provider::Meta.renewal(), Renewal::ReExchange);
        assert_eq!(Provider::TikTok.renewal(), Renewal::None);
        assert_eq!(
            Provider::Google.access_lifetime(),
            Some(Duration::seconds(3600))
        );
        assert_eq!(Provider::Meta.access_lifetime(), Some(Duration::days(60)));
        assert_eq!(Provider::TikTok.access_lifetime(), None);
    }
}
