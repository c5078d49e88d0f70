//! Local fakes of the tools' APIs (feature `testkit`), for this crate's tests and the delivery
//! engine's.
//!
//! Each fake is an HTTP server on `127.0.0.1` (a free port) that checks requests the way the
//! real service does (credentials, content type, required fields, batch and size limits) and
//! answers the way the service documents it, error bodies included. A test can also script
//! answers, make requests hang, and set a rate limit that is answered like the real one.
//!
//! The webhook, Mixpanel and Amplitude fakes also take forwarded deletions (a `delete` event,
//! the GDPR API, the User Privacy API), checked and answered the same way; scripted answers
//! and the rate limit apply to them too. [`FakeTool::deletions`] lists the deletion requests
//! that arrived and [`FakeTool::deleted`] the ids the tool accepted.
//!
//! ```no_run
//! # async fn demo() {
//! use sluice_destinations::testkit::{FakeTool, Tool};
//!
//! let fake = FakeTool::start(Tool::Mixpanel).await;
//! // Settings of a `mixpanel` destination pointing at the fake, with its valid credentials.
//! let adapter = sluice_destinations::build("mixpanel", &fake.settings()).expect("settings");
//! // ... send adapter.build(..) requests to it, then:
//! assert_eq!(fake.accepted().len(), 0);
//! fake.push_answer(503, &[], "down for maintenance"); // the next request gets this
//! fake.set_rate_limit(10); // more than 10 requests in a second get the tool's 429
//! // After sending adapter.plan_deletion(..) requests:
//! assert!(fake.deleted().is_empty());
//! # }
//! ```
//!
//! The ad-platform fakes (Meta custom audiences, Google Data Manager, TikTok audience
//! segments) keep each audience's members as the platform would after the requests it
//! accepted ([`FakeTool::members`]: multi-key matching, so a removal by any shared identifier
//! removes), and create audiences ([`FakeTool::created_audiences`]). [`MISSING_AUDIENCE_ID`]
//! is an audience none of them has.
//!
//! `server.rs` holds the HTTP server and the scripting shared by all fakes; `webhook.rs`,
//! `mixpanel.rs`, `amplitude.rs`, `slack.rs`, `meta.rs`, `google.rs` and `tiktok.rs` each check
//! and answer like one tool; `audiences.rs` holds the ad platforms' audiences.

mod amplitude;
pub mod answer;
mod audiences;
mod google;
mod meta;
mod mixpanel;
mod server;
mod slack;
mod tiktok;
mod webhook;

pub use audiences::{MISSING_AUDIENCE_ID, Member, TokenCheck};
pub use server::{FakeTool, Recorded};

/// The tools there is a fake of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Webhook,
    Mixpanel,
    Amplitude,
    Slack,
    /// Meta Marketing API custom audiences (`meta_audiences`).
    MetaAudiences,
    /// Google Data Manager API Customer Match (`google_audiences`).
    GoogleAudiences,
    /// TikTok Business API audience segments (`tiktok_audiences`).
    TikTokAudiences,
}

impl Tool {
    /// The tool of a destination type (`"mixpanel"`...).
    pub fn from_kind(kind: &str) -> Option<Tool> {
        match kind {
            "webhook" => Some(Tool::Webhook),
            "mixpanel" => Some(Tool::Mixpanel),
            "amplitude" => Some(Tool::Amplitude),
            "slack" => Some(Tool::Slack),
            "meta_audiences" => Some(Tool::MetaAudiences),
            "google_audiences" => Some(Tool::GoogleAudiences),
            "tiktok_audiences" => Some(Tool::TikTokAudiences),
            _ => None,
        }
    }

    /// The destination type this tool is delivered by.
    pub fn kind(self) -> &'static str {
        match self {
            Tool::Webhook => "webhook",
            Tool::Mixpanel => "mixpanel",
            Tool::Amplitude => "amplitude",
            Tool::Slack => "slack",
            Tool::MetaAudiences => "meta_audiences",
            Tool::GoogleAudiences => "google_audiences",
            Tool::TikTokAudiences => "tiktok_audiences",
        }
    }
}

/// The credentials the fakes accept. [`FakeTool::settings`] uses them.
pub mod credentials {
    /// The webhook fake's signing secret (`secret` setting); a request carrying an
    /// `X-Signature` that does not match it gets a 401.
    pub const WEBHOOK_SECRET: &str = "whsec-fake-0123456789";
    /// The `Authorization` header the webhook fake requires (set through `headers`).
    pub const WEBHOOK_AUTHORIZATION: &str = "Bearer fake-receiver-token";
    /// Mixpanel service account username.
    pub const MIXPANEL_SERVICE_ACCOUNT: &str = "sluice-fake.0a1b2c.mp-service-account";
    /// Mixpanel service account secret.
    pub const MIXPANEL_SERVICE_SECRET: &str = "fakeServiceSecret0123456789abcdef";
    /// Mixpanel project id (required with a service account).
    pub const MIXPANEL_PROJECT_ID: &str = "3141592";
    /// Mixpanel project API secret (legacy Basic auth, empty password).
    pub const MIXPANEL_API_SECRET: &str = "fakeapisecret0123456789abcdef012";
    /// Mixpanel project token (Basic auth username, empty password; the GDPR API's `token`).
    pub const MIXPANEL_PROJECT_TOKEN: &str = "fakeprojecttoken0123456789abcdef";
    /// Mixpanel GDPR API token (`Authorization: Bearer`), for deletions.
    pub const MIXPANEL_GDPR_API_TOKEN: &str = "fakeGdprOauthToken0123456789abcd";
    /// Amplitude project API key.
    pub const AMPLITUDE_API_KEY: &str = "fakeamplitudeapikey0123456789abc";
    /// Amplitude project secret key (the User Privacy API's Basic auth password).
    pub const AMPLITUDE_SECRET_KEY: &str = "fakeamplitudesecret0123456789abc";
    /// The path of the Slack fake's incoming webhook; any other path gets `no_service`.
    pub const SLACK_WEBHOOK_PATH: &str = "/services/T0FAKE0001/B0FAKE0001/fakeWebhookToken0123456";
    /// Meta access token (`Authorization: Bearer`).
    pub const META_ACCESS_TOKEN: &str = "EAAfakeMetaSystemUserToken0123456789abcdef";
    /// Meta app secret: the fake requires `appsecret_proof` computed with it.
    pub const META_APP_SECRET: &str = "fakemetaappsecret0123456789abcdef";
    /// Meta ad account id (digits; settings may add `act_`).
    pub const META_AD_ACCOUNT_ID: &str = "1234567890123456";
    /// Google OAuth access token (`Authorization: Bearer`).
    pub const GOOGLE_ACCESS_TOKEN: &str = "ya29.fakeGoogleAccessToken0123456789";
    /// Google Ads operating account (ten digits; settings may write it with hyphens).
    pub const GOOGLE_OPERATING_ACCOUNT_ID: &str = "1234567890";
    /// TikTok Marketing API access token (`Access-Token`).
    pub const TIKTOK_ACCESS_TOKEN: &str = "faketiktokaccesstoken0123456789abcdef01";
    /// TikTok advertiser id.
    pub const TIKTOK_ADVERTISER_ID: &str = "7012345678901234567";
}
