//! Meta Custom Audiences (`meta_audiences`, integration name `Facebook Custom Audiences`):
//! audience membership events become additions to and removals from customer-file custom
//! audiences through the Marketing API (`POST`/`DELETE /{v}/{audience_id}/users`).
//!
//! `settings.rs` reads the token, ad account, API version and options; `request.rs` maps each
//! membership to a multi-key row (Meta's normalization: see `audience/normalize.rs`), batches
//! rows per audience and action with session fields, reads Meta's answers, and creates
//! audiences (`POST /{v}/act_{id}/customaudiences`).

mod request;
mod settings;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::audience::AudiencePlatform;
use crate::contract::{Adapter, HttpRequest, HttpResponse, Outgoing, Plan, Verdict};
use crate::{DestinationType, SettingsError};

use settings::MetaSettings;
pub use settings::appsecret_proof;

/// The `meta_audiences` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "meta_audiences",
    integration_name: "Facebook Custom Audiences",
    secret_fields: &["access_token", "app_secret", "appsecret_proof"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(MetaAudiences::new(settings)?))
}

/// The Meta Custom Audiences adapter.
#[derive(Debug)]
pub struct MetaAudiences {
    settings: MetaSettings,
}

impl MetaAudiences {
    /// Validates the settings.
    pub fn new(settings: &Map<String, Value>) -> Result<MetaAudiences, SettingsError> {
        Ok(MetaAudiences {
            settings: MetaSettings::read(settings)?,
        })
    }
}

impl Adapter for MetaAudiences {
    fn max_batch(&self) -> usize {
        request::MAX_ROWS
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, &crate::contract::texts(events))
    }

    fn classify(&self, response: &HttpResponse, _events: usize) -> Verdict {
        request::classify(response)
    }
}

impl AudiencePlatform for MetaAudiences {
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
