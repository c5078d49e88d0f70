//! Amplitude settings: `api_key` (secret), `api` (`http_v2` or `batch`), `region` (`us`, `eu`)
//! or an `api_url` override, `page_events`, `prefer_anonymous_id_for_device_id`,
//! `min_id_length`, and `secret_key` (secret), which forwarded deletions need.

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::page::PageEvents;
use crate::request::basic_auth;
use crate::secret::Secret;
use crate::settings::Reader;

/// Which upload API to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Api {
    /// `/2/httpapi`: real time, 1 MB per request, 30 events/s per user or device.
    HttpV2,
    /// `/batch`: bulk, 20 MB per request, 1000 events/s per user or device.
    Batch,
}

/// Validated Amplitude settings.
#[derive(Debug)]
pub(super) struct AmplitudeSettings {
    pub(super) api_key: Secret,
    pub(super) api: Api,
    /// The full upload URL.
    pub(super) endpoint: String,
    pub(super) page_events: PageEvents,
    pub(super) prefer_anonymous_id: bool,
    /// `options.min_id_length`, when set.
    pub(super) min_id_length: Option<u64>,
    /// Where and how to forward deletions; `None` without `secret_key`.
    pub(super) deletion: Option<DeletionAccess>,
}

/// The User Privacy API of the project.
#[derive(Debug)]
pub(super) struct DeletionAccess {
    /// `<base>/api/2/deletions/users`.
    pub(super) url: String,
    /// Basic auth with the API key and the secret key.
    pub(super) authorization: Secret,
}

impl AmplitudeSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<AmplitudeSettings, SettingsError> {
        let reader = Reader::new(
            map,
            &[
                "api_key",
                "api",
                "region",
                "api_url",
                "page_events",
                "prefer_anonymous_id_for_device_id",
                "min_id_length",
                "secret_key",
            ],
        )?;
        let api_key = reader.required_secret("api_key")?;
        let api = match reader.choice("api", &["http_v2", "batch"], "http_v2")? {
            "batch" => Api::Batch,
            _ => Api::HttpV2,
        };
        let base = reader.base_url(&[
            ("us", "https://api2.amplitude.com"),
            ("eu", "https://api.eu.amplitude.com"),
        ])?;
        let path = match api {
            Api::HttpV2 => "/2/httpapi",
            Api::Batch => "/batch",
        };
        let min_id_length = match map.get("min_id_length") {
            None | Some(Value::Null) => None,
            Some(_) => Some(reader.int_in("min_id_length", 1..=255, 5)?),
        };
        // The User Privacy API lives on the web app's hosts, not the upload ones; `api_url`
        // replaces both.
        let privacy_base = reader.base_url(&[
            ("us", "https://amplitude.com"),
            ("eu", "https://analytics.eu.amplitude.com"),
        ])?;
        let deletion = reader
            .optional_secret("secret_key")?
            .map(|secret_key| DeletionAccess {
                url: format!("{privacy_base}/api/2/deletions/users"),
                authorization: Secret::new(basic_auth(api_key.expose(), secret_key.expose())),
            });
        Ok(AmplitudeSettings {
            api_key,
            api,
            endpoint: format!("{base}{path}"),
            page_events: PageEvents::read(&reader, "none")?,
            prefer_anonymous_id: reader.bool_or("prefer_anonymous_id_for_device_id", false)?,
            min_id_length,
            deletion,
        })
    }
}
