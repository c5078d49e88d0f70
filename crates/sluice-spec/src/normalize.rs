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

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::kind::MessageType;
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
}

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

/// Validates and normalizes one message. `path_kind` is the type named by the URL, if any.
pub fn normalize(
    path_kind: Option<MessageType>,
    mut message: Map<String, Value>,
    envelope: &Envelope,
    receipt: &Receipt,
) -> Result<Event, Rejection> {
    let kind = match path_kind {
        Some(kind) => kind,
        None => read_type(&message)?,
    };
    message.insert("type".to_owned(), Value::String(kind.as_str().to_owned()));

    for field in ["context", "properties", "traits", "integrations"] {
        check_object(&message, field)?;
    }
    merge_defaults(&mut message, "context", envelope.context.as_ref());
    merge_defaults(&mut message, "integrations", envelope.integrations.as_ref());

    let user_id = read_identifier(&message, "userId")?;
    let anonymous_id = read_identifier(&message, "anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(Rejection::new(
            RejectCode::MissingIdentity,
            Some("userId"),
            "userId or anonymousId is required",
        ));
    }
    check_required(&message, kind)?;

    let message_id = read_message_id(&mut message)?;
    stamp_times(&mut message, envelope, receipt)?;
    if let Some(ip) = receipt.client_ip {
        fill_ip(&mut message, ip);
    }

    // Straight to bytes: `Value`'s `Display` would go through `fmt`, which is slower.
    let body = serde_json::to_string(&Value::Object(message)).map_err(|error| {
        Rejection::new(
            RejectCode::InvalidMessage,
            None,
            format!("cannot encode the message: {error}"),
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

fn read_type(message: &Map<String, Value>) -> Result<MessageType, Rejection> {
    match message.get("type") {
        None | Some(Value::Null) => Err(Rejection::new(
            RejectCode::MissingType,
            Some("type"),
            "type is required in a batch item",
        )),
        Some(Value::String(text)) => MessageType::parse(text).ok_or_else(|| invalid_type(text)),
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

fn check_object(message: &Map<String, Value>, field: &str) -> Result<(), Rejection> {
    match message.get(field) {
        None | Some(Value::Null) | Some(Value::Object(_)) => Ok(()),
        Some(_) => Err(Rejection::new(
            RejectCode::InvalidFieldType,
            Some(field),
            format!("{field} must be an object"),
        )),
    }
}

/// Adds the envelope's keys to the message's object `field`, keeping the message's own keys.
fn merge_defaults(
    message: &mut Map<String, Value>,
    field: &str,
    defaults: Option<&Map<String, Value>>,
) {
    let Some(defaults) = defaults else { return };
    let slot = message
        .entry(field.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    if let Value::Object(target) = slot {
        for (key, value) in defaults {
            if !target.contains_key(key) {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Reads an identifier: a non-empty string, or a number (kept as its text). Absent, null and
/// the empty string all mean "not given".
fn read_identifier(message: &Map<String, Value>, field: &str) -> Result<Option<String>, Rejection> {
    match message.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(Value::Number(number)) => Ok(Some(number.to_string())),
        Some(_) => Err(Rejection::new(
            RejectCode::InvalidIdentity,
            Some(field),
            format!("{field} must be a string or a number"),
        )),
    }
}

fn check_required(message: &Map<String, Value>, kind: MessageType) -> Result<(), Rejection> {
    match kind {
        MessageType::Track => match message.get("event") {
            Some(Value::String(name)) if !name.is_empty() => Ok(()),
            _ => Err(Rejection::new(
                RejectCode::MissingEvent,
                Some("event"),
                "track needs event, a non-empty string",
            )),
        },
        MessageType::Group => match read_identifier(message, "groupId") {
            Ok(Some(_)) => Ok(()),
            _ => Err(Rejection::new(
                RejectCode::MissingGroupId,
                Some("groupId"),
                "group needs groupId, a non-empty string or a number",
            )),
        },
        MessageType::Alias => match read_identifier(message, "previousId") {
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

fn read_message_id(message: &mut Map<String, Value>) -> Result<String, Rejection> {
    match message.get("messageId") {
        None | Some(Value::Null) => {
            let generated = uuid::Uuid::new_v4().to_string();
            message.insert("messageId".to_owned(), Value::String(generated.clone()));
            Ok(generated)
        }
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
            Ok(id.clone())
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
fn read_time(
    message: &Map<String, Value>,
    field: &str,
) -> Result<Option<OffsetDateTime>, Rejection> {
    match message.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match timestamp::parse(text) {
            Some(at) => Ok(Some(at)),
            None => Err(invalid_time(field)),
        },
        Some(_) => Err(invalid_time(field)),
    }
}

fn stamp_times(
    message: &mut Map<String, Value>,
    envelope: &Envelope,
    receipt: &Receipt,
) -> Result<(), Rejection> {
    // The client's event time: `timestamp` as Segment's SDKs send it, else RudderStack's
    // `originalTimestamp`.
    let mut original = read_time(message, "timestamp")?;
    if original.is_some() {
        if let Some(sent) = message.get("timestamp").cloned() {
            message.insert("originalTimestamp".to_owned(), sent);
        }
    } else {
        original = read_time(message, "originalTimestamp")?;
    }

    let item_sent_at = read_time(message, "sentAt")?;
    let sent_at = match &envelope.sent_at {
        Some(envelope_sent) => {
            if item_sent_at.is_none() {
                message.insert(
                    "sentAt".to_owned(),
                    Value::String(envelope_sent.text.clone()),
                );
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
    message.insert(
        "receivedAt".to_owned(),
        Value::String(timestamp::format(received)),
    );
    message.insert(
        "timestamp".to_owned(),
        Value::String(timestamp::format(corrected)),
    );
    Ok(())
}

fn fill_ip(message: &mut Map<String, Value>, ip: IpAddr) {
    let context = message
        .entry("context".to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if context.is_null() {
        *context = Value::Object(Map::new());
    }
    if let Value::Object(context) = context {
        let has_ip = matches!(context.get("ip"), Some(value) if !value.is_null());
        if !has_ip {
            context.insert("ip".to_owned(), Value::String(ip.to_string()));
        }
    }
}

#[cfg(test)]
mod tests;
