//! Mixpanel: events through the Import API (`POST /import?strict=1`, a JSON array of up to
//! 2000 events and 10 MB, Basic auth), mapped the way Mixpanel's Segment integration maps them.
//!
//! `settings.rs` reads the credentials, region and options; `mapping.rs` turns a Segment event
//! into a Mixpanel event; `request.rs` batches them and reads Mixpanel's answers (a strict-mode
//! `400` names the failed events: the others were ingested). `deletion.rs` forwards deletions
//! through the GDPR API when `gdpr_api_token` (with `project_token`) is set.

mod deletion;
mod mapping;
mod request;
mod settings;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::contract::{Adapter, HttpRequest, HttpResponse, Outgoing, Plan, Verdict};
use crate::{DestinationType, SettingsError};

use settings::MixpanelSettings;

/// The `mixpanel` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "mixpanel",
    integration_name: "Mixpanel",
    secret_fields: &[
        "api_secret",
        "gdpr_api_token",
        "project_token",
        "service_account_secret",
    ],
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

    fn plan_deletion(
        &self,
        user_ids: &[String],
        _requested_at: OffsetDateTime,
    ) -> Option<Vec<HttpRequest>> {
        let access = self.settings.deletion.as_ref()?;
        Some(deletion::plan(access, user_ids))
    }

    fn classify_deletion(&self, response: &HttpResponse) -> Verdict {
        deletion::classify(response)
    }
}
