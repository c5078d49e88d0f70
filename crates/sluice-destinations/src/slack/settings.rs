//! Slack settings: `webhook_url` (secret), `templates` (event name → message template),
//! `channel`, `username` and `icon_url` (honoured by legacy webhooks; app webhooks post as the
//! app to the channel chosen when installing).

use serde_json::{Map, Value};

use crate::SettingsError;
use crate::secret::Secret;
use crate::settings::{Reader, invalid};

use super::template::Template;

/// Validated Slack settings.
#[derive(Debug)]
pub(super) struct SlackSettings {
    pub(super) webhook_url: Secret,
    pub(super) templates: Vec<(String, Template)>,
    pub(super) channel: Option<String>,
    pub(super) username: Option<String>,
    pub(super) icon_url: Option<String>,
}

impl SlackSettings {
    pub(super) fn read(map: &Map<String, Value>) -> Result<SlackSettings, SettingsError> {
        let reader = Reader::new(
            map,
            &[
                "webhook_url",
                "templates",
                "channel",
                "username",
                "icon_url",
            ],
        )?;
        let webhook_url = Secret::new(reader.required_url("webhook_url")?);
        let mut templates = Vec::new();
        for (event, text) in reader.string_map("templates")? {
            let template = Template::parse(&text)
                .map_err(|message| invalid(&format!("templates.{event}"), message))?;
            templates.push((event, template));
        }
        Ok(SlackSettings {
            webhook_url,
            templates,
            channel: reader.optional_str("channel")?.map(str::to_string),
            username: reader.optional_str("username")?.map(str::to_string),
            icon_url: reader.optional_url("icon_url")?,
        })
    }
}
