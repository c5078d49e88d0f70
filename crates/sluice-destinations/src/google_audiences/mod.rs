//! Google Customer Match (`google_audiences`, integration name `Google Customer Match`):
//! audience membership events become additions to and removals from Customer Match user lists
//! through the Data Manager API (`POST /v1/audienceMembers:ingest` and `:remove`), the API
//! Google requires of new integrations since April 2026 (the Google Ads API's
//! `OfflineUserDataJob` flow is closed to them).
//!
//! `settings.rs` reads the token, accounts, consent defaults and list options; `request.rs`
//! maps each membership to an audience member (Google's normalization: see
//! `audience/normalize.rs`), batches them per list and action, reads Google's
//! `google.rpc.Status` answers, and creates lists (`POST
//! /v1/accountTypes/GOOGLE_ADS/accounts/{id}/userLists`).

mod request;
mod settings;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::audience::AudiencePlatform;
use crate::contract::{Adapter, HttpRequest, HttpResponse, Outgoing, Plan, Verdict};
use crate::{DestinationType, SettingsError};

use settings::GoogleSettings;

/// The `google_audiences` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "google_audiences",
    integration_name: "Google Customer Match",
    secret_fields: &["access_token"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(GoogleAudiences::new(settings)?))
}

/// The Google Customer Match adapter.
#[derive(Debug)]
pub struct GoogleAudiences {
    settings: GoogleSettings,
}

impl GoogleAudiences {
    /// Validates the settings.
    pub fn new(settings: &Map<String, Value>) -> Result<GoogleAudiences, SettingsError> {
        Ok(GoogleAudiences {
            settings: GoogleSettings::read(settings)?,
        })
    }
}

impl Adapter for GoogleAudiences {
    fn max_batch(&self) -> usize {
        request::MAX_MEMBERS
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, &crate::contract::texts(events))
    }

    fn classify(&self, response: &HttpResponse, _events: usize) -> Verdict {
        request::classify(response)
    }
}

impl AudiencePlatform for GoogleAudiences {
    fn kind(&self) -> &'static str {
        TYPE.kind
    }

    fn minimum_size(&self) -> u64 {
        100
    }

    fn plan_create_audience(&self, name: &str, description: &str) -> HttpRequest {
        request::create(&self.settings, name, description)
    }

    fn parse_created(&self, response: &HttpResponse) -> Result<String, Verdict> {
        request::parse_created(response)
    }
}
