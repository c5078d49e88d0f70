//! Slack: `track` events as messages through an incoming webhook (`POST` JSON
//! `{"text", "channel"?, "username"?, "icon_url"?}`), one message per event.
//!
//! `settings.rs` reads the webhook URL (a secret: whoever has it can post), the per-event
//! templates and the message options; `template.rs` renders a message; `request.rs` builds the
//! requests and reads Slack's answers. Slack takes no forwarded deletions (a message posted to a
//! channel cannot be deleted through its webhook): `plan_deletion` keeps its `None`.

mod request;
mod settings;
mod template;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::contract::{Adapter, HttpResponse, Outgoing, Plan, Verdict};
use crate::{DestinationType, SettingsError};

use settings::SlackSettings;

/// The `slack` destination type.
pub const TYPE: DestinationType = DestinationType {
    kind: "slack",
    integration_name: "Slack",
    secret_fields: &["webhook_url"],
    build,
};

fn build(settings: &Map<String, Value>) -> Result<Box<dyn Adapter>, SettingsError> {
    Ok(Box::new(Slack {
        settings: SlackSettings::read(settings)?,
    }))
}

/// The Slack adapter.
#[derive(Debug)]
pub struct Slack {
    settings: SlackSettings,
}

impl Adapter for Slack {
    fn max_batch(&self) -> usize {
        1
    }

    fn build(&self, events: &[Outgoing<'_>]) -> Plan {
        request::plan(&self.settings, &crate::contract::values(events))
    }

    fn classify(&self, response: &HttpResponse, _events: usize) -> Verdict {
        request::classify(response)
    }
}
