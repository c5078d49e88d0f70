//! TikTok audiences settings: `access_token` (a Marketing API long-term token, sent as
//! `Access-Token`), `advertiser_id`, `api_url` (default `https://business-api.tiktok.com`),
//! `max_batch` (members a request, default and at most 10,000: TikTok documents no limit),
//! which identifiers to send (`send_email`, `send_phone`, `send_advertising_id`, all on by
//! default), `advertising_id_hash` (`sha256` or `md5`), and the shared `consent_category` and
//! `default_country`.

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::audience::normalize::Digest;
use crate::audience::{COMMON_SETTINGS, Common};
use crate::secret::Secret;
use crate::settings::{Reader, invalid};

/// Validated settings.
#[derive(Debug)]
pub(super) struct TikTokSettings {
    /// `<api_url>/open_api/v1.3`, no trailing slash.
    pub(super) base: String,
    pub(super) access_token: Secret,
    pub(super) advertiser_id: String,
    pub(super) max_batch: usize,
    pub(super) send_email: bool,
    pub(super) send_phone: bool,
    pub(super) send_advertising_id: bool,
    pub(super) advertising_id_hash: Digest,
    pub(super) common: Common,
}

/// The most members Sluice puts in one request.
pub(super) const MAX_BATCH: u64 = 10_000;

impl TikTokSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<TikTokSettings, SettingsError> {
        let mut known = vec![
            "access_token",
            "advertiser_id",
            "api_url",
            "max_batch",
            "send_email",
            "send_phone",
            "send_advertising_id",
            "advertising_id_hash",
        ];
        known.extend(COMMON_SETTINGS);
        let reader = Reader::new(map, &known)?;
        let access_token = reader.required_secret("access_token")?;
        let advertiser_id = reader.required_str("advertiser_id")?.trim();
        if !advertiser_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid(
                "advertiser_id",
                "must be the advertiser's numeric id",
            ));
        }
        let api_url = reader
            .optional_url("api_url")?
            .unwrap_or_else(|| "https://business-api.tiktok.com".to_string());
        let advertising_id_hash =
            match reader.choice("advertising_id_hash", &["sha256", "md5"], "sha256")? {
                "md5" => Digest::Md5,
                _ => Digest::Sha256,
            };
        let settings = TikTokSettings {
            base: format!("{api_url}/open_api/v1.3"),
            access_token,
            advertiser_id: advertiser_id.to_string(),
            max_batch: usize::try_from(reader.int_in("max_batch", 1..=MAX_BATCH, MAX_BATCH)?)
                .unwrap_or(10_000),
            send_email: reader.bool_or("send_email", true)?,
            send_phone: reader.bool_or("send_phone", true)?,
            send_advertising_id: reader.bool_or("send_advertising_id", true)?,
            advertising_id_hash,
            common: Common::read(&reader)?,
        };
        if !(settings.send_email || settings.send_phone || settings.send_advertising_id) {
            return Err(invalid(
                "send_email",
                "at least one of send_email, send_phone and send_advertising_id must be on",
            ));
        }
        Ok(settings)
    }
}
