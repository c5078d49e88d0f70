//! Meta Custom Audiences settings: `access_token` (a token with `ads_management`), the
//! `ad_account_id` (with or without `act_`), `api_version` (default `v25.0`), an `api_url`
//! override (default `https://graph.facebook.com`), an optional `app_secret` for
//! `appsecret_proof` (or the proof itself, `appsecret_proof`: what Sluice gives for a
//! destination on an OAuth connection, whose proof it made with the connected app's secret),
//! `customer_file_source` for new audiences, and the shared `consent_category` and
//! `default_country`.

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::SettingsError;
use crate::audience::hash::is_sha256_hex;
use crate::audience::{COMMON_SETTINGS, Common};
use crate::request::hex;
use crate::secret::Secret;
use crate::settings::{Reader, invalid};

/// Validated settings.
#[derive(Debug)]
pub(super) struct MetaSettings {
    /// `<api_url>/<api_version>`, no trailing slash.
    pub(super) base: String,
    /// The ad account's digits (no `act_`).
    pub(super) ad_account_id: String,
    /// `Bearer <access_token>`.
    pub(super) authorization: Secret,
    /// `appsecret_proof=<hex>` for the query, when `app_secret` is set.
    pub(super) proof_query: Option<Secret>,
    pub(super) customer_file_source: &'static str,
    pub(super) common: Common,
}

/// The Graph API version Sluice is written against.
pub(super) const DEFAULT_VERSION: &str = "v25.0";

impl MetaSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<MetaSettings, SettingsError> {
        let mut known = vec![
            "access_token",
            "ad_account_id",
            "api_version",
            "api_url",
            "app_secret",
            "appsecret_proof",
            "customer_file_source",
        ];
        known.extend(COMMON_SETTINGS);
        let reader = Reader::new(map, &known)?;
        let token = reader.required_secret("access_token")?;
        let account = reader.required_str("ad_account_id")?.trim();
        let account = account.strip_prefix("act_").unwrap_or(account);
        if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "ad_account_id",
                "must be the ad account's numeric id, with or without act_",
            ));
        }
        let version = reader
            .optional_str("api_version")?
            .unwrap_or(DEFAULT_VERSION);
        if !version_ok(version) {
            return Err(invalid(
                "api_version",
                "must be a graph api version such as v25.0",
            ));
        }
        let api_url = reader
            .optional_url("api_url")?
            .unwrap_or_else(|| "https://graph.facebook.com".to_string());
        let proof = match (
            reader.optional_secret("app_secret")?,
            reader.optional_secret("appsecret_proof")?,
        ) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "appsecret_proof",
                    "is given together with app_secret: give one or the other",
                ));
            }
            (Some(secret), None) => Some(appsecret_proof(secret.expose(), token.expose())),
            (None, Some(proof)) => {
                if !is_sha256_hex(proof.expose()) {
                    return Err(invalid(
                        "appsecret_proof",
                        "must be 64 hex digits (the hmac-sha256 of the access token)",
                    ));
                }
                Some(proof.expose().to_ascii_lowercase())
            }
            (None, None) => None,
        };
        let proof_query = proof.map(|proof| Secret::new(format!("appsecret_proof={proof}")));
        let customer_file_source = reader.choice(
            "customer_file_source",
            &[
                "USER_PROVIDED_ONLY",
                "PARTNER_PROVIDED_ONLY",
                "BOTH_USER_AND_PARTNER_PROVIDED",
            ],
            "USER_PROVIDED_ONLY",
        )?;
        Ok(MetaSettings {
            base: format!("{api_url}/{version}"),
            ad_account_id: account.to_string(),
            authorization: Secret::new(format!("Bearer {}", token.expose())),
            proof_query,
            customer_file_source,
            common: Common::read(&reader)?,
        })
    }

    /// `<base>/<path>` with `appsecret_proof` when configured.
    pub(super) fn url(&self, path: &str) -> String {
        match &self.proof_query {
            Some(query) => format!("{}/{path}?{}", self.base, query.expose()),
            None => format!("{}/{path}", self.base),
        }
    }
}

/// `v<major>.<minor>`.
fn version_ok(version: &str) -> bool {
    let Some((major, minor)) = version
        .strip_prefix('v')
        .and_then(|rest| rest.split_once('.'))
    else {
        return false;
    };
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// Meta's `appsecret_proof`: the lowercase hex HMAC-SHA256 of the access token, keyed with the
/// app secret (the form without `appsecret_time`, so a retried request stays valid).
pub fn appsecret_proof(app_secret: &str, token: &str) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts keys of any length"));
    mac.update(token.as_bytes());
    hex(&mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for good in ["v25.0", "v24.0", "v3.10"] {
            assert!(version_ok(good), "{good}");
        }
        for bad in ["25.0", "v25", "v25.", "vx.0", "v25.0/../x", ""] {
            assert!(!version_ok(bad), "{bad}");
        }
    }

    #[test]
    fn appsecret_proof_is_hmac_sha256_of_the_token() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            appsecret_proof("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    fn read(text: &str) -> Result<MetaSettings, SettingsError> {
        MetaSettings::read(&crate::test_support::settings(text))
    }

    #[test]
    fn the_proof_comes_from_the_app_secret_or_is_given_made() {
        let made = appsecret_proof("app-secret", "tok");
        let from_secret =
            read(r#"{"access_token": "tok", "ad_account_id": "1", "app_secret": "app-secret"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let given = read(&format!(
            r#"{{"access_token": "tok", "ad_account_id": "1", "appsecret_proof": "{made}"}}"#
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let shouted = read(&format!(
            r#"{{"access_token": "tok", "ad_account_id": "1", "appsecret_proof": "{}"}}"#,
            made.to_ascii_uppercase()
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let expected = format!("https://graph.facebook.com/v25.0/9/users?appsecret_proof={made}");
        assert_eq!(from_secret.url("9/users"), expected);
        assert_eq!(given.url("9/users"), expected);
        assert_eq!(shouted.url("9/users"), expected, "sent in lowercase");
        let none = read(r#"{"access_token": "tok", "ad_account_id": "1"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            none.url("9/users"),
            "https://graph.facebook.com/v25.0/9/users"
        );
    }

    #[test]
    fn a_proof_with_the_secret_or_not_hex_is_refused_by_name() {
        let both = format!(
            r#"{{"access_token": "t", "ad_account_id": "1", "app_secret": "s", "appsecret_proof": "{}"}}"#,
            "a".repeat(64)
        );
        for (text, wanted) in [
            (both, "together with app_secret"),
            (
                format!(
                    r#"{{"access_token": "t", "ad_account_id": "1", "appsecret_proof": "{}"}}"#,
                    "g".repeat(64)
                ),
                "64 hex digits",
            ),
            (
                r#"{"access_token": "t", "ad_account_id": "1", "appsecret_proof": "abc"}"#.into(),
                "64 hex digits",
            ),
        ] {
            let error = match read(&text) {
                Ok(_) => panic!("accepted {text}"),
                Err(error) => error.to_string(),
            };
            assert!(
                error.contains("appsecret_proof") && error.contains(wanted),
                "{error}"
            );
        }
    }
}
