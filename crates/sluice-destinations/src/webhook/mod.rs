//! Webhooks: each event (or a batch of them, as a JSON array) POSTed as JSON to a URL the user
//! owns, with their headers and an optional HMAC-SHA256 signature of the body.
//!
//! `settings.rs` reads and checks the settings, `request.rs` builds and signs the requests,
//! `deletion.rs` turns forwarded deletions into `delete` events. Answers are read with the
//! shared [`classify_status`]: 2xx delivered, 408/429/5xx retried (honouring `Retry-After`),
//! any other status rejected.

mod deletion;
mod request;
mod settings;
#[cfg(test)]
mod tests;

pub use request::{SIGNATURE_HEADER, sign};

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::contract::{
    Adapter, HttpRequest, HttpResponse, Outgoing, Plan, Verdict, classify_status,
};
use crate::{DestinationType, SettingsError};

use settings::WebhookSettings;

/// The `webhook` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "webhook",
    integration_name: "Webhooks",
    secret_fields: &["headers", "secret"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(Webhook {
        settings: WebhookSettings::read(settings)?,
    }))
}

/// The webhook adapter.
#[derive(Debug)]
pub struct Webhook {
    settings: WebhookSettings,
}

impl Adapter for Webhook {
    fn max_batch(&self) -> usize {
        self.settings.batch_size
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, events)
    }

    fn classify(&self, response: &HttpResponse, _events: usize) -> Verdict {
        classify_status(response)
    }

    fn plan_deletion(
        &self,
        user_ids: &[String],
        requested_at: OffsetDateTime,
    ) -> Option<Vec<HttpRequest>> {
        Some(deletion::plan(&self.settings, user_ids, requested_at))
    }
}
