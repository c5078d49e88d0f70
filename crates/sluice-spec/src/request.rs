//! Splitting a request body into messages, with the size and count limits.
//!
//! A single call (`/v1/track`) carries one message; a batch (`/v1/batch`) carries an envelope
//! `{batch: [...], context?, integrations?, sentAt?, writeKey?}`. A batch item that is too big
//! or not an object is refused on its own; the rest of the batch goes on.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::normalize::{Envelope, SentAt};
use crate::reject::{RejectCode, Rejection};
use crate::timestamp;

/// Size and count limits of the tracking API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message, in bytes of JSON as sent.
    pub max_event_bytes: usize,
    /// Largest request body after decompression, in bytes.
    pub max_request_bytes: usize,
    /// Most messages in one batch.
    pub max_batch_events: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_event_bytes: 32 * 1024,
            max_request_bytes: 500 * 1024,
            max_batch_events: 2_500,
        }
    }
}

/// A request body split into its messages.
#[derive(Debug)]
pub struct ParsedRequest {
    /// What the batch envelope gives every message.
    pub envelope: Envelope,
    /// One entry per message, in the order sent; refused items keep their place.
    pub messages: Vec<Result<Map<String, Value>, Rejection>>,
    /// A `writeKey` found in the body (envelope first, then the messages).
    pub write_key: Option<String>,
}

/// Parses the body of a single-message call.
pub fn parse_single(body: &[u8], limits: &Limits) -> Result<ParsedRequest, Rejection> {
    if body.len() > limits.max_event_bytes {
        return Err(too_large_event(body.len(), limits));
    }
    let value: Value = serde_json::from_slice(body).map_err(|error| json_rejection(&error))?;
    let Value::Object(mut message) = value else {
        return Err(Rejection::new(
            RejectCode::InvalidMessage,
            None,
            "the body must be a json object",
        ));
    };
    let write_key = take_write_key(&mut message);
    Ok(ParsedRequest {
        envelope: Envelope::default(),
        messages: vec![Ok(message)],
        write_key,
    })
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    batch: Option<&'a RawValue>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    integrations: Option<Value>,
    #[serde(default, rename = "sentAt")]
    sent_at: Option<Value>,
    #[serde(default, rename = "writeKey")]
    write_key: Option<Value>,
}

/// Parses the body of a batch call (`/v1/batch`, `/v1/b`, `/v1/import`).
pub fn parse_batch(body: &[u8], limits: &Limits) -> Result<ParsedRequest, Rejection> {
    if body.len() > limits.max_request_bytes {
        return Err(too_large_request(body.len(), limits));
    }
    let raw: RawEnvelope =
        serde_json::from_slice(body).map_err(|error| match error.classify() {
            serde_json::error::Category::Data => Rejection::new(
                RejectCode::MissingBatch,
                Some("batch"),
                "the body must be an object with a batch array",
            ),
            _ => json_rejection(&error),
        })?;
    let Some(batch) = raw.batch else {
        return Err(Rejection::new(
            RejectCode::MissingBatch,
            Some("batch"),
            "batch is required",
        ));
    };
    let items: Vec<&RawValue> = serde_json::from_str(batch.get()).map_err(|_| {
        Rejection::new(
            RejectCode::MissingBatch,
            Some("batch"),
            "batch must be an array",
        )
    })?;
    if items.len() > limits.max_batch_events {
        return Err(Rejection::new(
            RejectCode::BatchTooLarge,
            Some("batch"),
            format!(
                "batch has {} messages, the limit is {}",
                items.len(),
                limits.max_batch_events
            ),
        ));
    }
    let envelope = Envelope {
        context: envelope_object(raw.context, "context")?,
        integrations: envelope_object(raw.integrations, "integrations")?,
        sent_at: envelope_sent_at(raw.sent_at)?,
    };
    let mut write_key = match raw.write_key {
        Some(Value::String(key)) if !key.is_empty() => Some(key),
        _ => None,
    };
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        let text = item.get();
        if text.len() > limits.max_event_bytes {
            messages.push(Err(too_large_event(text.len(), limits)));
            continue;
        }
        // The envelope parse checked the syntax; an item can still nest too deep or not be
        // an object.
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(mut message)) => {
                let item_key = take_write_key(&mut message);
                if write_key.is_none() {
                    write_key = item_key;
                }
                messages.push(Ok(message));
            }
            Ok(_) => messages.push(Err(Rejection::new(
                RejectCode::InvalidMessage,
                None,
                "each batch item must be a json object",
            ))),
            Err(error) => messages.push(Err(json_rejection(&error))),
        }
    }
    Ok(ParsedRequest {
        envelope,
        messages,
        write_key,
    })
}

/// Removes `writeKey` from a message: the key is a credential and is never stored.
fn take_write_key(message: &mut Map<String, Value>) -> Option<String> {
    match message.shift_remove("writeKey") {
        Some(Value::String(key)) if !key.is_empty() => Some(key),
        _ => None,
    }
}

fn envelope_object(
    value: Option<Value>,
    field: &str,
) -> Result<Option<Map<String, Value>>, Rejection> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(map)) => Ok(Some(map)),
        Some(_) => Err(Rejection::new(
            RejectCode::InvalidFieldType,
            Some(field),
            format!("{field} must be an object"),
        )),
    }
}

fn envelope_sent_at(value: Option<Value>) -> Result<Option<SentAt>, Rejection> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => match timestamp::parse(&text) {
            Some(at) => Ok(Some(SentAt { text, at })),
            None => Err(invalid_time("sentAt")),
        },
        Some(_) => Err(invalid_time("sentAt")),
    }
}

pub(crate) fn invalid_time(field: &str) -> Rejection {
    Rejection::new(
        RejectCode::InvalidTimestamp,
        Some(field),
        format!("{field} must be an iso-8601 date-time string"),
    )
}

fn json_rejection(error: &serde_json::Error) -> Rejection {
    Rejection::new(
        RejectCode::MalformedJson,
        None,
        format!("invalid json: {error}"),
    )
}

fn too_large_event(size: usize, limits: &Limits) -> Rejection {
    Rejection::new(
        RejectCode::EventTooLarge,
        None,
        format!(
            "message is {size} bytes, the limit is {}",
            limits.max_event_bytes
        ),
    )
}

/// The refusal for a request body over the request limit.
pub fn too_large_request(size: usize, limits: &Limits) -> Rejection {
    Rejection::new(
        RejectCode::RequestTooLarge,
        None,
        format!(
            "request body is over {} bytes (got at least {size})",
            limits.max_request_bytes
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(parsed: &ParsedRequest) -> Vec<Option<RejectCode>> {
        parsed
            .messages
            .iter()
            .map(|m| m.as_ref().err().map(|r| r.code))
            .collect()
    }

    #[test]
    fn single_strips_and_returns_the_write_key() {
        let parsed = parse_single(br#"{"writeKey":"wk","event":"x"}"#, &Limits::default()).unwrap();
        assert_eq!(parsed.write_key.as_deref(), Some("wk"));
        let message = parsed.messages[0].as_ref().unwrap();
        assert!(!message.contains_key("writeKey"));
        assert_eq!(message["event"], "x");
    }

    #[test]
    fn single_refuses_non_objects_and_bad_json() {
        let limits = Limits::default();
        assert_eq!(
            parse_single(b"[1]", &limits).unwrap_err().code,
            RejectCode::InvalidMessage
        );
        assert_eq!(
            parse_single(b"{\"a\":", &limits).unwrap_err().code,
            RejectCode::MalformedJson
        );
        assert_eq!(
            parse_single(b"", &limits).unwrap_err().code,
            RejectCode::MalformedJson
        );
        assert_eq!(
            parse_single(b"{\"a\":\"\xff\"}", &limits).unwrap_err().code,
            RejectCode::MalformedJson
        );
    }

    #[test]
    fn single_over_the_event_limit_is_refused() {
        let limits = Limits {
            max_event_bytes: 10,
            ..Limits::default()
        };
        let err = parse_single(br#"{"event":"0123456789"}"#, &limits).unwrap_err();
        assert_eq!(err.code, RejectCode::EventTooLarge);
    }

    #[test]
    fn batch_items_are_refused_one_by_one() {
        let limits = Limits {
            max_event_bytes: 40,
            ..Limits::default()
        };
        let body = br#"{"batch":[{"type":"track"}, 3, {"type":"track","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}, {"type":"page"}]}"#;
        let parsed = parse_batch(body, &limits).unwrap();
        assert_eq!(
            codes(&parsed),
            vec![
                None,
                Some(RejectCode::InvalidMessage),
                Some(RejectCode::EventTooLarge),
                None
            ]
        );
    }

    #[test]
    fn batch_envelope_fields_are_read() {
        let body = br#"{"batch":[{"writeKey":"item"}],"context":{"a":1},"integrations":{"All":false},"sentAt":"2026-01-01T00:00:00Z","timestamp":"ignored"}"#;
        let parsed = parse_batch(body, &Limits::default()).unwrap();
        assert_eq!(parsed.write_key.as_deref(), Some("item"));
        assert_eq!(parsed.envelope.context.as_ref().unwrap()["a"], 1);
        assert_eq!(parsed.envelope.integrations.as_ref().unwrap()["All"], false);
        assert_eq!(
            parsed.envelope.sent_at.as_ref().unwrap().text,
            "2026-01-01T00:00:00Z"
        );
        assert!(
            !parsed.messages[0]
                .as_ref()
                .unwrap()
                .contains_key("writeKey")
        );
    }

    #[test]
    fn envelope_write_key_wins_over_items() {
        let body = br#"{"writeKey":"env","batch":[{"writeKey":"item"}]}"#;
        let parsed = parse_batch(body, &Limits::default()).unwrap();
        assert_eq!(parsed.write_key.as_deref(), Some("env"));
    }

    #[test]
    fn batch_shape_errors_name_the_field() {
        let limits = Limits::default();
        for body in [
            &br#"{}"#[..],
            br#"{"batch":{}}"#,
            br#"{"batch":"x"}"#,
            br#"[]"#,
            br#"{"batch":null}"#,
        ] {
            let err = parse_batch(body, &limits).unwrap_err();
            assert_eq!(
                err.code,
                RejectCode::MissingBatch,
                "{}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(err.field.as_deref(), Some("batch"));
        }
        let err = parse_batch(br#"{"batch":[],"context":3}"#, &limits).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            (RejectCode::InvalidFieldType, Some("context"))
        );
        let err = parse_batch(br#"{"batch":[],"sentAt":"soon"}"#, &limits).unwrap_err();
        assert_eq!(
            (err.code, err.field.as_deref()),
            (RejectCode::InvalidTimestamp, Some("sentAt"))
        );
        assert_eq!(
            parse_batch(b"{\"batch\":[", &limits).unwrap_err().code,
            RejectCode::MalformedJson
        );
    }

    #[test]
    fn batch_count_limit() {
        let limits = Limits {
            max_batch_events: 2,
            ..Limits::default()
        };
        let err = parse_batch(br#"{"batch":[{},{},{}]}"#, &limits).unwrap_err();
        assert_eq!(err.code, RejectCode::BatchTooLarge);
        assert!(parse_batch(br#"{"batch":[{},{}]}"#, &limits).is_ok());
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let depth = 100_000;
        let mut body = String::from("{\"batch\":[{\"a\":");
        body.push_str(&"[".repeat(depth));
        body.push_str(&"]".repeat(depth));
        body.push_str("}]}");
        let limits = Limits {
            max_request_bytes: usize::MAX,
            max_event_bytes: usize::MAX,
            ..Limits::default()
        };
        let parsed = parse_batch(body.as_bytes(), &limits).unwrap();
        assert_eq!(codes(&parsed), vec![Some(RejectCode::MalformedJson)]);
        assert_eq!(
            parse_single(&body.as_bytes()[10..body.len() - 2], &limits)
                .unwrap_err()
                .code,
            RejectCode::MalformedJson
        );
    }
}
