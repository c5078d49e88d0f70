//! Amplitude settings: `api_key` (secret), `api` (`http_v2` or `batch`), `region` (`us`, `eu`)
//! or an `api_url` override, `page_events`, `prefer_anonymous_id_for_device_id` and
//! `min_id_length`.

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::page::PageEvents;
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
        Ok(AmplitudeSettings {
            api_key,
            api,
            endpoint: format!("{base}{path}"),
            page_events: PageEvents::read(&reader, "none")?,
            prefer_anonymous_id: reader.bool_or("prefer_anonymous_id_for_device_id", false)?,
            min_id_length,
        })
    }
}
