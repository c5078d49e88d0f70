//! Slack requests and answers.
//!
//! Requests: one `POST` to the webhook URL per `track` event (other calls are unsupported), the
//! message from the event's template or the default format.
//!
//! Answers, as Slack documents them for incoming webhooks: `200 ok` delivered; `400`
//! (`invalid_payload`, `no_text`, `user_not_found`), `403` (`action_prohibited`,
//! `invalid_token`), `404` (`no_service`, `channel_not_found`), `410`
//! (`channel_is_archived`) rejected; `429` retried after `Retry-After`; `5xx`
//! (`rollup_error`) retried.

use serde_json::{Map, Value, json};

use crate::contract::{HttpResponse, Plan, Planned, Verdict, classify_status, excerpt};
use crate::event::{Event, Kind};
use crate::request::{json_post, to_bytes};

use super::settings::SlackSettings;
use super::template::default_message;

pub(super) fn plan(settings: &SlackSettings, events: &[&Value]) -> Plan {
    let mut plan = Plan::default();
    for (index, value) in events.iter().enumerate() {
        let event = Event(value);
        if event.kind() != Some(Kind::Track) {
            let reason = "slack takes track events only".to_string();
            plan.unsupported.push((index, reason));
            continue;
        }
        let name = event.str_at(&["event"]).unwrap_or_default();
        let text = match settings.templates.iter().find(|(event, _)| event == name) {
            Some((_, template)) => template.render(event),
            None => default_message(event),
        };
        let mut message = Map::new();
        message.insert("text".into(), json!(text));
        for (key, value) in [
            ("channel", &settings.channel),
            ("username", &settings.username),
            ("icon_url", &settings.icon_url),
        ] {
            if let Some(value) = value {
                message.insert(key.into(), json!(value));
            }
        }
        let body = to_bytes(&Value::Object(message));
        plan.requests.push(Planned {
            request: json_post(settings.webhook_url.expose().to_string(), Vec::new(), body),
            events: vec![index],
        });
    }
    plan
}

pub(super) fn classify(response: &HttpResponse) -> Verdict {
    match response.status {
        400 | 403 | 404 | 410 => Verdict::Reject {
            reason: format!(
                "slack: {} (http {})",
                excerpt(&response.body).trim(),
                response.status
            ),
        },
        _ => classify_status(response),
    }
}
