//! Mixpanel: events through the Import API (`POST /import?strict=1`, a JSON array of up to
//! 2000 events and 10 MB, Basic auth), mapped the way Mixpanel's Segment integration maps them.
//!
//! `settings.rs` reads the credentials, region and options; `mapping.rs` turns a Segment event
//! into a Mixpanel event; `request.rs` batches them and reads Mixpanel's answers (a strict-mode
//! `400` names the failed events: the others were ingested).

mod mapping;
mod request;
mod settings;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::contract::{Adapter, HttpResponse, Outgoing, Plan, Verdict};
use crate::{DestinationType, SettingsError};

use settings::MixpanelSettings;

/// The `mixpanel` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "mixpanel",
    integration_name: "Mixpanel",
    secret_fields: &["api_secret", "project_token", "service_account_secret"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(Mixpanel {
        settings: MixpanelSettings::read(settings)?,
    }))
}

/// The Mixpanel adapter.
#[derive(Debug)]
pub struct Mixpanel {
    settings: MixpanelSettings,
}

impl Adapter for Mixpanel {
    fn max_batch(&self) -> usize {
        request::MAX_EVENTS
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, &crate::contract::values(events))
    }

    fn classify(&self, response: &HttpResponse, events: usize) -> Verdict {
        request::classify(response, events)
    }
}
