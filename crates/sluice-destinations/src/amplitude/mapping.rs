//! Segment event → Amplitude event, as Amplitude's Segment destination maps it.
//!
//! - `track` → `event_type` = the event name, `event_properties` = its properties, plus the
//!   revenue fields (`price`, `quantity`, `revenue`, `productId`, `revenueType`, `currency`);
//!   `page`/`screen` → `Loaded a Page`/`Loaded a Screen` or a named form (setting
//!   `page_events`, off by default as in Segment); `identify` → `$identify` with
//!   `user_properties: {"$set": traits}`; `group` and `alias` are not sent.
//! - `user_id` = `userId`; `device_id` = `context.device.id`, else `anonymousId` (the other way
//!   round with `prefer_anonymous_id_for_device_id`); `time` in milliseconds; `insert_id` =
//!   `messageId`; `ip`, platform, OS, device, carrier, location and library from `context`;
//!   `session_id` and `groups` from `integrations.Amplitude`.

use serde_json::{Map, Number, Value, json};

use crate::event::{Event, Kind, copy, copy_context};
use crate::request::Mapped;

use super::settings::AmplitudeSettings;

/// `context` fields and the Amplitude field each becomes.
const CONTEXT: &[(&[&str], &str)] = &[
    (&["ip"], "ip"),
    (&["app", "version"], "app_version"),
    (&["device", "type"], "platform"),
    (&["os", "name"], "os_name"),
    (&["os", "version"], "os_version"),
    (&["device", "brand"], "device_brand"),
    (&["device", "manufacturer"], "device_manufacturer"),
    (&["device", "model"], "device_model"),
    (&["network", "carrier"], "carrier"),
    (&["location", "country"], "country"),
    (&["location", "region"], "region"),
    (&["location", "city"], "city"),
    (&["locale"], "language"),
];

/// Maps one event.
pub(super) fn map(settings: &AmplitudeSettings, value: &Value) -> Mapped {
    let event = Event(value);
    let Some(kind) = event.kind() else {
        return Mapped::Invalid("event has no known type".into());
    };
    let event_type = match kind {
        Kind::Track => match event.str_at(&["event"]) {
            Some(name) => name.to_string(),
            None => return Mapped::Invalid("track call has no event name".into()),
        },
        Kind::Page | Kind::Screen => match settings.page_events.name(event, "Loaded") {
            Ok(name) => name,
            Err(reason) => return Mapped::Unsupported(reason),
        },
        Kind::Identify => "$identify".to_string(),
        Kind::Group => {
            return Mapped::Unsupported("group calls are not sent to amplitude".into());
        }
        Kind::Alias => {
            return Mapped::Unsupported(
                "alias calls are not sent to amplitude (user mapping needs its portfolio api)"
                    .into(),
            );
        }
    };
    let mut record = Map::new();
    if let Err(reason) = ids(settings, event, &mut record) {
        return Mapped::Invalid(reason);
    }
    record.insert("event_type".into(), json!(event_type));
    if let Some(time) = event.time_millis() {
        record.insert("time".into(), json!(time));
    }
    copy(&mut record, "insert_id", event.at(&["messageId"]));
    match kind {
        Kind::Identify => {
            let traits = event.traits().cloned().unwrap_or_default();
            record.insert("user_properties".into(), json!({ "$set": traits }));
        }
        _ => {
            let mut properties = event.properties().cloned().unwrap_or_default();
            if matches!(kind, Kind::Page | Kind::Screen) {
                for key in ["name", "category"] {
                    if !properties.contains_key(key) {
                        copy(&mut properties, key, event.at(&[key]));
                    }
                }
            }
            record.insert("event_properties".into(), Value::Object(properties));
        }
    }
    copy_context(&mut record, event, CONTEXT);
    location_and_ads(event, &mut record);
    library(event, &mut record);
    if kind == Kind::Track {
        revenue(event, &mut record);
    }
    copy(
        &mut record,
        "session_id",
        event
            .at(&["integrations", "Amplitude", "session_id"])
            .filter(|v| v.is_i64()),
    );
    copy(
        &mut record,
        "groups",
        event
            .at(&["integrations", "Amplitude", "groups"])
            .filter(|v| v.is_object()),
    );
    Mapped::Record(Value::Object(record))
}

/// `user_id` and `device_id`; at least one must be as long as Amplitude's minimum.
fn ids(
    settings: &AmplitudeSettings,
    event: Event<'_>,
    record: &mut Map<String, Value>,
) -> Result<(), String> {
    let user_id = event.user_id();
    let device = event
        .str_at(&["context", "device", "id"])
        .map(str::to_string);
    let anonymous = event.anonymous_id();
    let device_id = if settings.prefer_anonymous_id {
        anonymous.or(device)
    } else {
        device.or(anonymous)
    };
    let minimum = usize::try_from(settings.min_id_length.unwrap_or(5)).unwrap_or(5);
    let long_enough =
        |id: &Option<String>| id.as_ref().is_some_and(|id| id.chars().count() >= minimum);
    if !long_enough(&user_id) && !long_enough(&device_id) {
        return Err(format!(
            "event has no user id or device id of at least {minimum} characters (amplitude's minimum)"
        ));
    }
    if let Some(user_id) = user_id {
        record.insert("user_id".into(), json!(user_id));
    }
    if let Some(device_id) = device_id {
        record.insert("device_id".into(), json!(device_id));
    }
    Ok(())
}

/// Latitude/longitude (numbers only) and the advertising id as `idfa` (iOS) or `adid`.
fn location_and_ads(event: Event<'_>, record: &mut Map<String, Value>) {
    let number = |path: &[&str]| event.at(path).filter(|value| value.is_number());
    copy(
        record,
        "location_lat",
        number(&["context", "location", "latitude"]),
    );
    copy(
        record,
        "location_lng",
        number(&["context", "location", "longitude"]),
    );
    if let Some(ad_id) = event.at(&["context", "device", "advertisingId"]) {
        let ios = event
            .str_at(&["context", "os", "name"])
            .is_some_and(|os| os.eq_ignore_ascii_case("ios") || os.eq_ignore_ascii_case("ipados"));
        copy(record, if ios { "idfa" } else { "adid" }, Some(ad_id));
    }
}

/// `library`: `<name>/<version>` of the sending SDK.
fn library(event: Event<'_>, record: &mut Map<String, Value>) {
    let name = event.str_at(&["context", "library", "name"]);
    let version = event.str_at(&["context", "library", "version"]);
    let library = match (name, version) {
        (Some(name), Some(version)) => format!("{name}/{version}"),
        (Some(name), None) => name.to_string(),
        _ => return,
    };
    record.insert("library".into(), json!(library));
}

/// Amplitude's revenue fields from the track properties (numbers given as text are read).
fn revenue(event: Event<'_>, record: &mut Map<String, Value>) {
    let Some(properties) = event.properties() else {
        return;
    };
    let number = |key: &str| match properties.get(key)? {
        Value::Number(number) => Some(Value::Number(number.clone())),
        Value::String(text) => text.trim().parse::<Number>().ok().map(Value::Number),
        _ => None,
    };
    let text = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| properties.get(*key).filter(|value| value.is_string()))
    };
    copy(record, "price", number("price").as_ref());
    copy(
        record,
        "quantity",
        number("quantity").filter(|value| value.is_i64()).as_ref(),
    );
    copy(record, "revenue", number("revenue").as_ref());
    copy(record, "productId", text(&["productId", "product_id"]));
    copy(
        record,
        "revenueType",
        text(&["revenueType", "revenue_type"]),
    );
    copy(record, "currency", text(&["currency"]));
}
