//! Segment event → Mixpanel event, as Mixpanel's Segment integration maps it.
//!
//! - `track` → the event name; `page`/`screen` → `Loaded a Page`/`Loaded a Screen` (or a named
//!   form, setting `page_events`); `identify` with both ids → `$identify`; `alias` →
//!   `$create_alias` under Original ID Merge only; `group` is not sent.
//! - `time` in milliseconds; `distinct_id` = `userId`, else `anonymousId`; `$device_id` =
//!   `anonymousId` and `$user_id` = `userId` (Simplified ID Merge merges on these);
//!   `$insert_id` from `messageId` (see [`insert_id`]); `ip` and device, app, page, campaign
//!   fields from `context`; then the event's own properties.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::event::{Event, Kind, copy, copy_context};
use crate::request::{Mapped, hex, to_bytes};

use super::settings::{IdMerge, MixpanelSettings};

/// Properties the adapter owns; an event property with one of these names is not copied.
const RESERVED: [&str; 5] = [
    "time",
    "distinct_id",
    "$insert_id",
    "$device_id",
    "$user_id",
];

/// `context` fields and the Mixpanel property each becomes.
const CONTEXT: &[(&[&str], &str)] = &[
    (&["page", "url"], "$current_url"),
    (&["page", "referrer"], "$referrer"),
    (&["library", "name"], "mp_lib"),
    (&["library", "version"], "$lib_version"),
    (&["app", "name"], "$app_name"),
    (&["app", "version"], "$app_version_string"),
    (&["app", "build"], "$app_build_number"),
    (&["app", "namespace"], "$app_namespace"),
    (&["os", "name"], "$os"),
    (&["os", "version"], "$os_version"),
    (&["device", "name"], "$device"),
    (&["device", "manufacturer"], "$manufacturer"),
    (&["device", "model"], "$model"),
    (&["network", "carrier"], "$carrier"),
    (&["network", "wifi"], "$wifi_enabled"),
    (&["network", "bluetooth"], "$bluetooth_enabled"),
    (&["network", "cellular"], "$cellular_enabled"),
    (&["screen", "width"], "$screen_width"),
    (&["screen", "height"], "$screen_height"),
    (&["screen", "density"], "$screen_density"),
    (&["campaign", "source"], "utm_source"),
    (&["campaign", "medium"], "utm_medium"),
    (&["campaign", "name"], "utm_campaign"),
    (&["campaign", "term"], "utm_term"),
    (&["campaign", "content"], "utm_content"),
];

/// Maps one event.
pub(super) fn map(settings: &MixpanelSettings, value: &Value) -> Mapped {
    let event = Event(value);
    let Some(kind) = event.kind() else {
        return Mapped::Invalid("event has no known type".into());
    };
    let Some(time) = event.time_millis() else {
        return Mapped::Invalid("event has no valid timestamp".into());
    };
    let name = match kind {
        Kind::Track => match event.str_at(&["event"]) {
            Some(name) => name.to_string(),
            None => return Mapped::Invalid("track call has no event name".into()),
        },
        Kind::Page | Kind::Screen => match settings.page_events.name(event, "Viewed") {
            Ok(name) => name,
            Err(reason) => return Mapped::Unsupported(reason),
        },
        Kind::Identify => return identify(event, time),
        Kind::Alias => return alias(settings, event, time),
        Kind::Group => {
            return Mapped::Unsupported("group calls are not sent to mixpanel".into());
        }
    };
    let mut properties = ids(event, time);
    copy(&mut properties, "ip", event.at(&["context", "ip"]));
    copy_context(&mut properties, event, CONTEXT);
    if matches!(kind, Kind::Page | Kind::Screen) {
        copy(&mut properties, "name", event.at(&["name"]));
        copy(&mut properties, "category", event.at(&["category"]));
    }
    for (key, value) in event.properties().into_iter().flatten() {
        if !RESERVED.contains(&key.as_str()) {
            properties.insert(key.clone(), value.clone());
        }
    }
    Mapped::Record(json!({"event": name, "properties": properties}))
}

/// `time`, `distinct_id`, `$insert_id`, `$device_id`, `$user_id`.
fn ids(event: Event<'_>, time: i64) -> Map<String, Value> {
    let user_id = event.user_id();
    let anonymous_id = event.anonymous_id();
    let distinct_id = user_id
        .clone()
        .or_else(|| anonymous_id.clone())
        .unwrap_or_default();
    let mut properties = Map::new();
    properties.insert("time".into(), json!(time));
    properties.insert("distinct_id".into(), json!(distinct_id));
    properties.insert("$insert_id".into(), json!(insert_id(event)));
    if let Some(anonymous_id) = anonymous_id {
        properties.insert("$device_id".into(), json!(anonymous_id));
    }
    if let Some(user_id) = user_id {
        properties.insert("$user_id".into(), json!(user_id));
    }
    properties
}

/// `identify` with both ids → `$identify`, linking the anonymous id to the user id (both ID
/// Merge systems read it). Without both there is nothing to link: traits are profile data,
/// which this adapter does not send (`/engage`).
fn identify(event: Event<'_>, time: i64) -> Mapped {
    let (Some(user_id), Some(anonymous_id)) = (event.user_id(), event.anonymous_id()) else {
        return Mapped::Unsupported(
            "identify without both userId and anonymousId links nothing; profiles are not sent"
                .into(),
        );
    };
    let mut properties = ids(event, time);
    properties.insert("$identified_id".into(), json!(user_id));
    properties.insert("$anon_id".into(), json!(anonymous_id));
    copy(&mut properties, "ip", event.at(&["context", "ip"]));
    Mapped::Record(json!({"event": "$identify", "properties": properties}))
}

/// `alias` → `$create_alias` (Original ID Merge only: it does nothing under Simplified).
fn alias(settings: &MixpanelSettings, event: Event<'_>, time: i64) -> Mapped {
    if settings.id_merge == IdMerge::Simplified {
        return Mapped::Unsupported(
            "alias has no effect under mixpanel's simplified id merge (id_merge is simplified)"
                .into(),
        );
    }
    let (Some(previous_id), Some(user_id)) = (event.previous_id(), event.user_id()) else {
        return Mapped::Invalid("alias call needs previousId and userId".into());
    };
    Mapped::Record(json!({
        "event": "$create_alias",
        "properties": {
            "time": time,
            "distinct_id": previous_id,
            "alias": user_id,
            "$insert_id": insert_id(event),
        }
    }))
}

/// `$insert_id`: Mixpanel takes at most 36 bytes of letters, digits and `-`. A `messageId`
/// that fits is used as is; any other is replaced by the first 36 hex digits of its SHA-256
/// (Mixpanel's own advice), so a retry carries the same id. Without a `messageId`, the hash of
/// the event's JSON.
pub(super) fn insert_id(event: Event<'_>) -> String {
    let fits =
        |id: &str| id.len() <= 36 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    match event.message_id() {
        Some(id) if fits(id) => id.to_string(),
        Some(id) => hex(&Sha256::digest(id.as_bytes()))[..36].to_string(),
        None => hex(&Sha256::digest(to_bytes(event.0)))[..36].to_string(),
    }
}
