//! Why a request or a message was refused: a stable code, the field at fault and a message.

use std::fmt;

/// Stable codes for refused input. The strings are part of the public API: they appear in
/// HTTP answers and in the `reason` label of the rejection metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// The body is not valid JSON (or not UTF-8).
    MalformedJson,
    /// The request body (after decompression) is over the request limit.
    RequestTooLarge,
    /// One message is over the per-event limit.
    EventTooLarge,
    /// A batch carries more messages than allowed.
    BatchTooLarge,
    /// A batch request without a `batch` array.
    MissingBatch,
    /// The message is not a JSON object.
    InvalidMessage,
    /// A batch item without `type`.
    MissingType,
    /// A `type` that is not one of the six message types.
    InvalidType,
    /// Neither `userId` nor `anonymousId`.
    MissingIdentity,
    /// An identifier of the wrong JSON type (must be a string or a number).
    InvalidIdentity,
    /// A track call without `event`.
    MissingEvent,
    /// A group call without `groupId`.
    MissingGroupId,
    /// An alias call without `previousId`.
    MissingPreviousId,
    /// A `messageId` that is not a string, or is empty.
    InvalidMessageId,
    /// A `messageId` over 100 characters.
    MessageIdTooLong,
    /// A time field that is not an ISO-8601 date-time.
    InvalidTimestamp,
    /// An object field (`context`, `properties`, `traits`, `integrations`) of another type.
    InvalidFieldType,
    /// A `Content-Encoding` other than gzip or identity.
    UnsupportedEncoding,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::MalformedJson => "malformed_json",
            RejectCode::RequestTooLarge => "request_too_large",
            RejectCode::EventTooLarge => "event_too_large",
            RejectCode::BatchTooLarge => "batch_too_large",
            RejectCode::MissingBatch => "missing_batch",
            RejectCode::InvalidMessage => "invalid_message",
            RejectCode::MissingType => "missing_type",
            RejectCode::InvalidType => "invalid_type",
            RejectCode::MissingIdentity => "missing_identity",
            RejectCode::InvalidIdentity => "invalid_identity",
            RejectCode::MissingEvent => "missing_event",
            RejectCode::MissingGroupId => "missing_group_id",
            RejectCode::MissingPreviousId => "missing_previous_id",
            RejectCode::InvalidMessageId => "invalid_message_id",
            RejectCode::MessageIdTooLong => "message_id_too_long",
            RejectCode::InvalidTimestamp => "invalid_timestamp",
            RejectCode::InvalidFieldType => "invalid_field_type",
            RejectCode::UnsupportedEncoding => "unsupported_encoding",
        }
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: what went wrong, where, and a human message (lowercase, no trailing period).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejection {
    pub code: RejectCode,
    /// The JSON field at fault, when there is one (`event`, `context.ip`, `batch`...).
    pub field: Option<String>,
    pub message: String,
}

impl Rejection {
    pub fn new(code: RejectCode, field: Option<&str>, message: impl Into<String>) -> Rejection {
        Rejection {
            code,
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}
