//! TikTok audiences (`tiktok_audiences`, integration name `TikTok Audiences`): audience
//! membership events become additions to and removals from TikTok custom audiences through
//! the Business API's audience segment endpoints (`POST /open_api/v1.3/segment/mapping/`).
//!
//! `settings.rs` reads the token, advertiser and options; `request.rs` maps each membership to
//! a row of hashed ids (TikTok's normalization: see `audience/normalize.rs`), batches them per
//! action, reads TikTok's answers (HTTP 200 with a `code`), and creates audiences (`POST
//! /open_api/v1.3/segment/audience/`).

mod request;
mod settings;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::audience::AudiencePlatform;
use crate::contract::{Adapter, HttpRequest, HttpResponse, Outgoing, Plan, Verdict};
use crate::{DestinationType, SettingsError};

use settings::TikTokSettings;

/// The `tiktok_audiences` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "tiktok_audiences",
    integration_name: "TikTok Audiences",
    secret_fields: &["access_token"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(TikTokAudiences::new(settings)?))
}

/// The TikTok audiences adapter.
#[derive(Debug)]
pub struct TikTokAudiences {
    settings: TikTokSettings,
}

impl TikTokAudiences {
    /// Validates the settings.
    pub fn new(settings: &Map<String, Value>) -> Result<TikTokAudiences, SettingsError> {
        Ok(TikTokAudiences {
            settings: TikTokSettings::read(settings)?,
        })
    }
}

impl Adapter for TikTokAudiences {
    fn max_batch(&self) -> usize {
        self.settings.max_batch
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, &crate::contract::texts(events))
    }

    fn classify(&self, response: &HttpResponse, _events: usize) -> Verdict {
        request::classify(response)
    }
}

impl AudiencePlatform for TikTokAudiences {
    fn kind(&self) -> &'static str {
        TYPE.kind
    }

    fn minimum_size(&self) -> u64 {
        1000
    }

    fn plan_create_audience(&self, name: &str, _description: &str) -> HttpRequest {
        request::create(&self.settings, name)
    }

    fn parse_created(&self, response: &HttpResponse) -> Result<String, Verdict> {
        request::parse_created(response)
    }
}
