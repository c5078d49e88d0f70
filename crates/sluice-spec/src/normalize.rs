//! Validating one message and filling in the fields the server owns.
//!
//! - `type` comes from the URL for single calls and from the item for batches.
//! - `userId` or `anonymousId` must be present (an explicit null is fine when the other is set);
//!   track needs `event`, group `groupId`, alias `previousId`.
//! - `messageId` is generated when missing and may not exceed 100 characters.
//! - `receivedAt` is the server clock; `originalTimestamp` is what the client called
//!   `timestamp` (or sent as `originalTimestamp`, as RudderStack does); `timestamp` is
//!   corrected for the client's clock skew: `receivedAt - (sentAt - originalTimestamp)`.
//! - `context.ip` is filled from the connection when the message has none.
//! - The batch envelope's `context` and `integrations` are merged into each item; the item's
//!   own keys win.

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::kind::MessageType;
use crate::raw::{MAX_DEPTH, RawObject, nests_deeper_than};
use crate::reject::{RejectCode, Rejection};
use crate::request::invalid_time;
use crate::timestamp;

/// Longest accepted `messageId`, in characters.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;

/// A client-sent `sentAt`, kept as sent and parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentAt {
    pub text: String,
    pub at: OffsetDateTime,
}

/// What a batch envelope gives each of its messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Envelope {
    pub context: Option<Map<String, Value>>,
    pub integrations: Option<Map<String, Value>>,
    pub sent_at: Option<SentAt>,
}

/// What the server knows about the request a message came in.
#[derive(Debug, Clone, Copy)]
pub struct Receipt {
    pub received_at: OffsetDateTime,
    /// The client's address (the connection, or a trusted proxy's forwarded header).
    pub client_ip: Option<IpAddr>,
    /// A `SentAt` request header (the RudderStack browser SDK sends one).
    pub header_sent_at: Option<OffsetDateTime>,
    /// The browser sent `Sec-GPC: 1` (Global Privacy Control): recorded in every message as
    /// `context.globalPrivacyControl: true`, which keeps it from advertising and sale
    /// destinations.
    pub global_privacy_control: bool,
}

/// The `context` field that records a Global Privacy Control signal.
pub const GLOBAL_PRIVACY_CONTROL: &str = "globalPrivacyControl";

/// A normalized message, ready for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub message_id: String,
    pub kind: MessageType,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// The whole message as JSON, unknown fields included.
    pub body: String,
}

/// The fields whose value Sluice writes (or removes); every other field is copied as sent.
const OWNED: [&str; 9] = [
    "writeKey",
    "type",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "receivedAt",
    "context",
    "integrations",
];

/// Validates and normalizes one message (the JSON text of an object). `path_kind` is the type
/// named by the URL, if any.
pub fn normalize(
    path_kind: Option<MessageType>,
    message: &str,
    envelope: &Envelope,
    receipt: &Receipt,
) -> Result<Event, Rejection> {
    if nests_deeper_than(message, MAX_DEPTH) {
        return Err(Rejection::new(
            RejectCode::MalformedJson,
            None,
            format!("the message nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let object: RawObject =
        serde_json::from_str(message).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => Rejection::new(
                RejectCode::InvalidMessage,
                None,
                "the message must be a json object",
            ),
            _ => Rejection::new(
                RejectCode::MalformedJson,
                None,
                format!("invalid json: {error}"),
            ),
        })?;

    let kind = match path_kind {
        Some(kind) => kind,
        None => read_type(&object)?,
    };
    for field in ["context", "properties", "traits", "integrations"] {
        check_object(&object, field)?;
    }
    let user_id = read_identifier(&object, "userId")?;
    let anonymous_id = read_identifier(&object, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new(
            RejectCode::MissingIdentity,
            Some("userId"),
            "userId or anonymousId is required",
        ));
    }
    check_required(&object, kind)?;
    let message_id = read_message_id(&object)?;

    // What Sluice writes for each field it owns; `None` keeps the client's value if any.
    let mut ours: [Option<Vec<u8>>; OWNED.len()] = Default::default();
    ours[1] = Some(json(kind.as_str())?);
    ours[2] = Some(json(&message_id)?);
    stamp_times(&object, envelope, receipt, &mut ours)?;
    // The message's context is read once: for its ip, and to merge into.
    let context = read_object(&object, "context")?;
    let has_ip = context
        .as_ref()
        .is_some_and(|context| context.present("ip").is_some())
        || envelope
            .context
            .as_ref()
            .is_some_and(|context| context.get("ip").is_some_and(|ip| !ip.is_null()));
    let fill_ip = match receipt.client_ip {
        Some(ip) if !has_ip => Some(ip.to_string()),
        _ => None,
    };
    let mut added: Vec<(&str, Vec<u8>)> = Vec::new();
    if let Some(ip) = fill_ip {
        added.push(("ip", json(&ip)?));
    }
    if receipt.global_privacy_control {
        added.push((GLOBAL_PRIVACY_CONTROL, b"true".to_vec()));
    }
    ours[7] = merged_object(context.as_ref(), envelope.context.as_ref(), &added)?;
    if envelope.integrations.is_some() {
        let integrations = read_object(&object, "integrations")?;
        ours[8] = merged_object(integrations.as_ref(), envelope.integrations.as_ref(), &[])?;
    }

    let mut out = Vec::with_capacity(message.len() + 256);
    out.push(b'{');
    let mut written = [false; OWNED.len()];
    // writeKey is never written: a credential is not stored.
    written[0] = true;
    for (key, raw) in &object.fields {
        match OWNED.iter().position(|owned| owned == key) {
            Some(slot) => {
                if written[slot] {
                    continue;
                }
                written[slot] = true;
                match &ours[slot] {
                    Some(value) => push_field(&mut out, key, value)?,
                    // The client's own value (the last one, as a parser would read it).
                    None => match object.get(key) {
                        Some(last) => push_field(&mut out, key, last.get().as_bytes())?,
                        None => push_field(&mut out, key, raw.get().as_bytes())?,
                    },
                }
            }
            None => push_field(&mut out, key, raw.get().as_bytes())?,
        }
    }
    for (slot, key) in OWNED.iter().enumerate() {
        if let (false, Some(value)) = (written[slot], &ours[slot]) {
            push_field(&mut out, key, value)?;
        }
    }
    out.push(b'}');
    let body = String::from_utf8(out).map_err(|_| {
        Rejection::new(
            RejectCode::MalformedJson,
            None,
            "the message is not valid utf-8",
        )
    })?;
    Ok(Event {
        message_id,
        kind,
        user_id,
        anonymous_id,
        body,
    })
}

/// A value as JSON bytes.
fn json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Rejection> {
    serde_json::to_vec(value).map_err(|error| {
        Rejection::new(
            RejectCode::InvalidMessage,
            None,
            format!("cannot encode a field: {error}"),
        )
    })
}

/// Appends `"key":value` to an object being written (with a comma when needed).
fn push_field(out: &mut Vec<u8>, key: &str, value: &[u8]) -> Result<(), Rejection> {
    if out.len() > 1 {
        out.push(b',');
    }
    out.extend_from_slice(&json(key)?);
    out.push(b':');
    out.extend_from_slice(value);
    Ok(())
}

/// Parses a small raw value (a field Sluice reads); `None` for null.
fn read_value(object: &RawObject, field: &str) -> Option<Value> {
    let raw = object.present(field)?;
    serde_json::from_str(raw.get()).ok()
}

/// The object field `field` read one level deep (`None` when absent or null).
fn read_object<'a>(
    object: &RawObject<'a>,
    field: &str,
) -> Result<Option<RawObject<'a>>, Rejection> {
    match object.present(field) {
        Some(raw) => Ok(Some(
            serde_json::from_str(raw.get()).map_err(|_| not_an_object(field))?,
        )),
        None => Ok(None),
    }
}

/// The object `own` with the keys of `defaults` it lacks, and `ip` added; `None` when there is
/// nothing to add (the client's text is kept as is).
fn merged_object(
    own: Option<&RawObject>,
    defaults: Option<&Map<String, Value>>,
    added: &[(&str, Vec<u8>)],
) -> Result<Option<Vec<u8>>, Rejection> {
    let defaults = defaults.filter(|map| !map.is_empty());
    if defaults.is_none() && added.is_empty() {
        return Ok(None);
    }
    let is_added = |key: &str| added.iter().any(|(name, _)| *name == key);
    let mut out = Vec::with_capacity(256);
    out.push(b'{');
    if let Some(own) = own {
        for (key, raw) in &own.fields {
            // A field Sluice adds replaces the client's (a null ip, a GPC flag).
            if is_added(key) {
                continue;
            }
            push_field(&mut out, key, raw.get().as_bytes())?;
        }
    }
    if let Some(defaults) = defaults {
        for (key, value) in defaults {
            let own_has = own.is_some_and(|own| own.get(key).is_some());
            if !own_has && !is_added(key) {
                push_field(&mut out, key, &json(value)?)?;
            }
        }
    }
    for (key, value) in added {
        push_field(&mut out, key, value)?;
    }
    out.push(b'}');
    Ok(Some(out))
}

fn not_an_object(field: &str) -> Rejection {
    Rejection::new(
        RejectCode::InvalidFieldType,
        Some(field),
        format!("{field} must be an object"),
    )
}

fn read_type(object: &RawObject) -> Result<MessageType, Rejection> {
    match read_value(object, "type") {
        None => Err(Rejection::new(
            RejectCode::MissingType,
            Some("type"),
            "type is required in a batch item",
        )),
        Some(Value::String(text)) => MessageType::parse(&text).ok_or_else(|| invalid_type(&text)),
        Some(other) => Err(invalid_type(&other.to_string())),
    }
}

fn invalid_type(text: &str) -> Rejection {
    let shown: String = text.chars().take(40).collect();
    Rejection::new(
        RejectCode::InvalidType,
        Some("type"),
        format!("type {shown:?} is not one of identify, track, page, screen, group, alias"),
    )
}

fn check_object(object: &RawObject, field: &str) -> Result<(), Rejection> {
    match object.present(field) {
        Some(raw) if !raw.get().starts_with('{') => Err(not_an_object(field)),
        _ => Ok(()),
    }
}

/// Reads an identifier: a non-empty string, or a number (kept as its text). Absent, null and
/// the empty string all mean "not given".
fn read_identifier(object: &RawObject, field: &str) -> Result<Option<String>, Rejection> {
    match read_value(object, field) {
        None => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(Rejection::new(
            RejectCode::InvalidIdentity,
            Some(field),
            format!("{field} must be a string or a number"),
        )),
    }
}

fn check_required(object: &RawObject, kind: MessageType) -> Result<(), Rejection> {
    match kind {
        MessageType::Track => match read_value(object, "event") {
            Some(Value::String(name)) if !name.is_empty() => Ok(()),
            _ => Err(Rejection::new(
                RejectCode::MissingEvent,
                Some("event"),
                "track needs event, a non-empty string",
            )),
        },
        MessageType::Group => match read_identifier(object, "groupId") {
            Ok(Some(_)) => Ok(()),
            _ => Err(Rejection::new(
                RejectCode::MissingGroupId,
                Some("groupId"),
                "group needs groupId, a non-empty string or a number",
            )),
        },
        MessageType::Alias => match read_identifier(object, "previousId") {
            Ok(Some(_)) => Ok(()),
            _ => Err(Rejection::new(
                RejectCode::MissingPreviousId,
                Some("previousId"),
                "alias needs previousId, a non-empty string or a number",
            )),
        },
        MessageType::Identify | MessageType::Page | MessageType::Screen => Ok(()),
    }
}

fn read_message_id(object: &RawObject) -> Result<String, Rejection> {
    match read_value(object, "messageId") {
        None => Ok(uuid::Uuid::new_v4().to_string()),
        Some(Value::String(id)) if id.is_empty() => Err(Rejection::new(
            RejectCode::InvalidMessageId,
            Some("messageId"),
            "messageId must not be empty",
        )),
        Some(Value::String(id)) => {
            if id.chars().count() > MAX_MESSAGE_ID_CHARS {
                return Err(Rejection::new(
                    RejectCode::MessageIdTooLong,
                    Some("messageId"),
                    format!("messageId is over {MAX_MESSAGE_ID_CHARS} characters"),
                ));
            }
            Ok(id)
        }
        Some(_) => Err(Rejection::new(
            RejectCode::InvalidMessageId,
            Some("messageId"),
            "messageId must be a string",
        )),
    }
}

/// Reads an optional time field: absent or null is `None`, anything but a date-time string
/// is refused.
fn read_time(object: &RawObject, field: &str) -> Result<Option<OffsetDateTime>, Rejection> {
    match read_value(object, field) {
        None => Ok(None),
        Some(Value::String(text)) => match timestamp::parse(&text) {
            Some(at) => Ok(Some(at)),
            None => Err(invalid_time(field)),
        },
        Some(_) => Err(invalid_time(field)),
    }
}

/// Fills `timestamp`, `originalTimestamp`, `sentAt` and `receivedAt` in `ours` (indexes as in
/// [`OWNED`]).
fn stamp_times(
    object: &RawObject,
    envelope: &Envelope,
    receipt: &Receipt,
    ours: &mut [Option<Vec<u8>>; OWNED.len()],
) -> Result<(), Rejection> {
    // The client's event time: `timestamp` as Segment's SDKs send it, else RudderStack's
    // `originalTimestamp`. Kept as sent under `originalTimestamp`.
    let mut original = read_time(object, "timestamp")?;
    if let (Some(_), Some(raw)) = (original, object.present("timestamp")) {
        ours[4] = Some(raw.get().as_bytes().to_vec());
    } else {
        original = read_time(object, "originalTimestamp")?;
    }

    let item_sent_at = read_time(object, "sentAt")?;
    let sent_at = match &envelope.sent_at {
        Some(envelope_sent) => {
            if item_sent_at.is_none() {
                ours[5] = Some(json(&envelope_sent.text)?);
            }
            Some(envelope_sent.at)
        }
        None => item_sent_at.or(receipt.header_sent_at),
    };

    let received = receipt.received_at;
    let corrected = match (original, sent_at) {
        (Some(original), Some(sent)) => received.checked_sub(sent - original).unwrap_or(original),
        (Some(original), None) => original,
        (None, _) => received,
    };
    ours[6] = Some(json(&timestamp::format(received))?);
    ours[3] = Some(json(&timestamp::format(corrected))?);
    Ok(())
}

#[cfg(test)]
mod tests;
