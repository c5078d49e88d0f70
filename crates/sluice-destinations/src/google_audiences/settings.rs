//! Google Customer Match settings (Data Manager API): `access_token` (OAuth, scope
//! `datamanager`), `operating_account_id` (the Google Ads account, hyphens allowed) and an
//! optional `login_account_id` (a manager account), `api_url` (default
//! `https://datamanager.googleapis.com`), request-level `consent` defaults, the list's
//! `upload_key_type` (`contact_id`, `mobile_id` with `app_id` and `mobile_key_space`, or
//! `user_id`), `membership_days` for new lists (at most 540), `encoding` of hashes (`hex` or
//! `base64`), and the shared `consent_category` and `default_country`.

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::audience::member::DeviceOs;
use crate::audience::{COMMON_SETTINGS, Common};
use crate::secret::Secret;
use crate::settings::{Reader, invalid};

/// The data a list is keyed on: Data Manager lists take exactly one upload key type, and each
/// member carries that kind of data only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum KeyType {
    /// Hashed emails, phones, names with addresses (`userData`).
    Contact,
    /// IDFA / AAID (`mobileData`).
    Mobile,
    /// The advertiser's user id (`userIdData`).
    User,
}

impl KeyType {
    pub(super) fn api_name(self) -> &'static str {
        match self {
            KeyType::Contact => "CONTACT_ID",
            KeyType::Mobile => "MOBILE_ID",
            KeyType::User => "USER_ID",
        }
    }
}

/// How hashes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Encoding {
    Hex,
    Base64,
}

/// Validated settings.
#[derive(Debug)]
pub(super) struct GoogleSettings {
    /// `https://datamanager.googleapis.com/v1`, no trailing slash.
    pub(super) base: String,
    /// `Bearer <access_token>`.
    pub(super) authorization: Secret,
    /// Ten digits.
    pub(super) operating_account: String,
    /// Ten digits.
    pub(super) login_account: Option<String>,
    /// `adUserData`, `adPersonalization` defaults: `CONSENT_GRANTED` or
    /// `CONSENT_STATUS_UNSPECIFIED`.
    pub(super) consent: (&'static str, &'static str),
    pub(super) key_type: KeyType,
    /// For mobile lists: the app and its platform.
    pub(super) app_id: Option<String>,
    pub(super) key_space: Option<DeviceOs>,
    pub(super) membership_days: u64,
    pub(super) encoding: Encoding,
    pub(super) common: Common,
}

/// Consent values a default may take. `CONSENT_DENIED` is refused: Google fails an upload
/// that carries it, and people who refused are removed instead.
const CONSENT_VALUES: [&str; 2] = ["CONSENT_GRANTED", "CONSENT_STATUS_UNSPECIFIED"];

impl GoogleSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<GoogleSettings, SettingsError> {
        let mut known = vec![
            "access_token",
            "operating_account_id",
            "login_account_id",
            "api_url",
            "consent",
            "upload_key_type",
            "app_id",
            "mobile_key_space",
            "membership_days",
            "encoding",
        ];
        known.extend(COMMON_SETTINGS);
        let reader = Reader::new(map, &known)?;
        let token = reader.required_secret("access_token")?;
        let operating_account = account_id(&reader, "operating_account_id")?
            .ok_or_else(|| invalid("operating_account_id", "is required"))?;
        let login_account = account_id(&reader, "login_account_id")?;
        let api_url = reader
            .optional_url("api_url")?
            .unwrap_or_else(|| "https://datamanager.googleapis.com".to_string());
        let consent = consent(&reader)?;
        let key_type = match reader.choice(
            "upload_key_type",
            &["contact_id", "mobile_id", "user_id"],
            "contact_id",
        )? {
            "mobile_id" => KeyType::Mobile,
            "user_id" => KeyType::User,
            _ => KeyType::Contact,
        };
        let app_id = reader.optional_str("app_id")?.map(str::to_string);
        let key_space = match reader.optional_str("mobile_key_space")? {
            None => None,
            Some(_) => Some(
                match reader.choice("mobile_key_space", &["ios", "android"], "ios")? {
                    "android" => DeviceOs::Android,
                    _ => DeviceOs::Ios,
                },
            ),
        };
        if key_type == KeyType::Mobile {
            if app_id.is_none() {
                return Err(invalid(
                    "app_id",
                    "is required with upload_key_type mobile_id (the app the ids come from)",
                ));
            }
            if key_space.is_none() {
                return Err(invalid(
                    "mobile_key_space",
                    "is required with upload_key_type mobile_id: ios or android",
                ));
            }
        }
        let encoding = match reader.choice("encoding", &["hex", "base64"], "hex")? {
            "base64" => Encoding::Base64,
            _ => Encoding::Hex,
        };
        Ok(GoogleSettings {
            base: format!("{api_url}/v1"),
            authorization: Secret::new(format!("Bearer {}", token.expose())),
            operating_account,
            login_account,
            consent,
            key_type,
            app_id,
            key_space,
            membership_days: reader.int_in("membership_days", 1..=540, 540)?,
            encoding,
            common: Common::read(&reader)?,
        })
    }
}

/// A Google Ads customer id: ten digits, hyphens allowed (`123-456-7890`).
fn account_id(reader: &Reader<'_>, field: &str) -> Result<Option<String>, SettingsError> {
    let Some(text) = reader.optional_str(field)? else {
        return Ok(None);
    };
    let digits: String = text.trim().chars().filter(|c| *c != '-').collect();
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            field,
            "must be a google ads customer id: ten digits, hyphens allowed",
        ));
    }
    Ok(Some(digits))
}

/// `consent`: `{"ad_user_data": .., "ad_personalization": ..}`, each defaulting to
/// `CONSENT_GRANTED`.
fn consent(reader: &Reader<'_>) -> Result<(&'static str, &'static str), SettingsError> {
    let mut user_data = CONSENT_VALUES[0];
    let mut personalization = CONSENT_VALUES[0];
    for (key, value) in reader.string_map("consent")? {
        let field = format!("consent.{key}");
        let slot = match key.as_str() {
            "ad_user_data" => &mut user_data,
            "ad_personalization" => &mut personalization,
            _ => return Err(invalid(&field, "unknown setting")),
        };
        *slot = CONSENT_VALUES
            .iter()
            .find(|choice| **choice == value)
            .copied()
            .ok_or_else(|| {
                invalid(
                    &field,
                    "must be CONSENT_GRANTED or CONSENT_STATUS_UNSPECIFIED (people who refused are removed, never uploaded as denied)",
                )
            })?;
    }
    Ok((user_data, personalization))
}
