//! Destination types: the contract adapters follow ([`contract`]) and one folder per tool.
//!
//! A destination instance is a type (`webhook`, `mixpanel`, ...) plus settings, a JSON object.
//! [`build`] validates the settings of a type and returns its adapter; [`secret_fields`] names
//! the settings that are credentials, which the caller encrypts at rest and never shows.
//!
//! Shared pieces: `settings.rs` reads and checks settings, `event.rs` reads Segment events,
//! `page.rs` names page and screen events, `request.rs` builds and batches HTTP requests,
//! `deletion.rs` holds what the adapters that forward deletions share, [`Secret`] keeps
//! credentials out of `Debug`. The ad-platform audience types (`meta_audiences`,
//! `google_audiences`, `tiktok_audiences`) share [`audience`]: reading membership events,
//! per-platform normalization and hashing, and [`audience::AudiencePlatform`] for creating
//! audiences. The `testkit` feature adds `testkit`, local fakes of each tool's
//! API.

pub mod contract;

pub mod amplitude;
pub mod audience;
pub mod google_audiences;
pub mod meta_audiences;
pub mod mixpanel;
pub mod slack;
pub mod tiktok_audiences;
pub mod webhook;

mod deletion;
mod event;
mod page;
mod request;
mod secret;
mod settings;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

#[cfg(test)]
mod compliance;
#[cfg(test)]
mod test_support;

pub use contract::{Adapter, HttpRequest, HttpResponse, Method, Outgoing, Plan, Planned, Verdict};
pub use secret::Secret;

use serde_json::{Map, Value};

/// Settings that do not make a working destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown destination type {0:?}")]
    UnknownType(String),
    #[error("settings.{field}: {message}")]
    Invalid { field: String, message: String },
}

/// One destination type.
pub struct DestinationType {
    /// The type's name in the API (`webhook`, `mixpanel`, `amplitude`, `slack`).
    pub kind: &'static str,
    /// The name used in a message's `integrations` object (`"Mixpanel": false`).
    pub integration_name: &'static str,
    /// Top-level settings that are credentials.
    pub secret_fields: &'static [&'static str],
    /// Validates settings and builds the adapter.
    pub build: BuildFn,
}

/// A destination type's constructor: validates settings, returns the adapter.
pub type BuildFn = fn(&Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError>;

/// Every destination type Sluice has.
pub fn types() -> &'static [DestinationType] {
    static TYPES: [DestinationType; 7] = [
        webhook::TYPE,
        mixpanel::TYPE,
        amplitude::TYPE,
        slack::TYPE,
        meta_audiences::TYPE,
        google_audiences::TYPE,
        tiktok_audiences::TYPE,
    ];
    &TYPES
}

/// The type called `kind`.
pub fn find(kind: &str) -> Result<&'static DestinationType, SettingsError> {
    types()
        .iter()
        .find(|t| t.kind == kind)
        .ok_or_else(|| SettingsError::UnknownType(kind.to_string()))
}

/// Validates `settings` for `kind` and builds its adapter.
pub fn build(kind: &str, settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    (find(kind)?.build)(settings)
}

/// The settings of `kind` that are credentials.
pub fn secret_fields(kind: &str) -> Result<&'static [&'static str], SettingsError> {
    Ok(find(kind)?.secret_fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_registered_once_with_its_integration_name() {
        let names: Vec<(&str, &str)> = types()
            .iter()
            .map(|t| (t.kind, t.integration_name))
            .collect();
        assert_eq!(
            names,
            [
                ("webhook", "Webhooks"),
                ("mixpanel", "Mixpanel"),
                ("amplitude", "Amplitude"),
                ("slack", "Slack"),
                ("meta_audiences", "Facebook Custom Audiences"),
                ("google_audiences", "Google Customer Match"),
                ("tiktok_audiences", "TikTok Audiences"),
            ]
        );
    }

    #[test]
    fn unknown_types_are_refused_by_name() {
        let error = build("hubspot", &Map::new()).err();
        assert_eq!(error, Some(SettingsError::UnknownType("hubspot".into())));
        assert!(secret_fields("nope").is_err());
    }

    #[test]
    fn secret_fields_name_the_credentials() {
        assert_eq!(secret_fields("slack").ok(), Some(&["webhook_url"][..]));
        assert_eq!(
            secret_fields("webhook").ok(),
            Some(&["headers", "secret"][..])
        );
        assert_eq!(
            secret_fields("amplitude").ok(),
            Some(&["api_key", "secret_key"][..])
        );
        assert_eq!(
            secret_fields("mixpanel").ok(),
            Some(
                &[
                    "api_secret",
                    "gdpr_api_token",
                    "project_token",
                    "service_account_secret"
                ][..]
            )
        );
        assert_eq!(
            secret_fields("meta_audiences").ok(),
            Some(&["access_token", "app_secret", "appsecret_proof"][..])
        );
        assert_eq!(
            secret_fields("google_audiences").ok(),
            Some(&["access_token"][..])
        );
        assert_eq!(
            secret_fields("tiktok_audiences").ok(),
            Some(&["access_token"][..])
        );
    }

    #[test]
    fn every_type_refuses_empty_settings_naming_a_field() {
        for t in types() {
            let error = (t.build)(&Map::new()).err();
            assert!(
                matches!(error, Some(SettingsError::Invalid { .. })),
                "{}: {error:?}",
                t.kind
            );
        }
    }
}
