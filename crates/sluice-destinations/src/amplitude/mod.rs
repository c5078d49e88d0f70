//! Amplitude: events through the HTTP V2 API (`POST /2/httpapi`) or the Batch Event Upload API
//! (`POST /batch`), `{api_key, events, options}` with up to 2000 events, mapped the way
//! Amplitude's Segment destination maps them.
//!
//! `settings.rs` reads the key, endpoint and options; `mapping.rs` turns a Segment event into
//! an Amplitude event; `request.rs` batches them and reads Amplitude's answers (a `400` naming
//! events rejects those and resends the others; a `429` waits and resends). `deletion.rs`
//! forwards deletions through the User Privacy API when `secret_key` is set.

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

use settings::AmplitudeSettings;

/// The `amplitude` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "amplitude",
    integration_name: "Amplitude",
    secret_fields: &["api_key", "secret_key"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(Amplitude {
        settings: AmplitudeSettings::read(settings)?,
    }))
}

/// The Amplitude adapter.
#[derive(Debug)]
pub struct Amplitude {
    settings: AmplitudeSettings,
}

impl Adapter for Amplitude {
    fn max_batch(&self) -> usize {
        request::MAX_EVENTS
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, &crate::contract::values(events))
    }

    fn classify(&self, response: &HttpResponse, events: usize) -> Verdict {
        request::classify(self.settings.api, response, events)
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
