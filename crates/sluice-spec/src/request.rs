//! Splitting a request body into messages, with the size and count limits.
//!
//! A single call (`/v1/track`) carries one message; a batch (`/v1/batch`) carries an envelope
//! `{batch: [...], context?, integrations?, sentAt?, writeKey?}`. A batch item that is too big
//! or not an object is refused on its own; the rest of the batch goes on.

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::normalize::{Envelope, SentAt};
use crate::raw::RawObject;
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
pub struct ParsedRequest<'a> {
    /// What the batch envelope gives every message.
    pub envelope: Envelope,
    /// The JSON text of each message, in the order sent; refused items keep their place.
    pub messages: Vec<Result<&'a str, Rejection>>,
    /// The batch envelope's `writeKey`, if any.
    envelope_write_key: Option<String>,
}

impl ParsedRequest<'_> {
    /// A `writeKey` in the body: the envelope's, else the first message's. Only read when the
    /// request has no Basic auth, so most requests never pay for the lookup.
    pub fn write_key(&self) -> Option<String> {
        if let Some(key) = &self.envelope_write_key {
            return Some(key.clone());
        }
        for message in self.messages.iter().flatten() {
            let Ok(object) = serde_json::from_str::<RawObject>(message) else {
                continue;
            };
            let value = object
                .get("writeKey")
                .map(|raw| serde_json::from_str(raw.get()));
            if let Some(Ok(Value::String(key))) = value
                && !key.is_empty()
            {
                return Some(key);
            }
        }
        None
    }
}

/// Parses the body of a single-message call.
pub fn parse_single<'a>(body: &'a [u8], limits: &Limits) -> Result<ParsedRequest<'a>, Rejection> {
    if body.len() > limits.max_event_bytes {
        return Err(too_large_event(body.len(), limits));
    }
    let text = std::str::from_utf8(body).map_err(|_| {
        Rejection::new(
            RejectCode::MalformedJson,
            None,
            "invalid json: the body is not utf-8",
        )
    })?;
    // Check the shape now, so a broken body is a 400 before anything else.
    if let Err(error) = serde_json::from_str::<RawObject>(text) {
        return Err(match error.classify() {
            serde_json::error::Category::Data => Rejection::new(
                RejectCode::InvalidMessage,
                None,
                "the body must be a json object",
            ),
            _ => json_rejection(&error),
        });
    }
    Ok(ParsedRequest {
        envelope: Envelope::default(),
        messages: vec![Ok(text)],
        envelope_write_key: None,
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
pub fn parse_batch<'a>(body: &'a [u8], limits: &Limits) -> Result<ParsedRequest<'a>, Rejection> {
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
    let items: Vec<&'a RawValue> = serde_json::from_str(batch.get()).map_err(|_| {
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
    let envelope_write_key = match raw.write_key {
        Some(Value::String(key)) if !key.is_empty() => Some(key),
        _ => None,
    };
    // The envelope parse checked the syntax; whether an item is an object (and not nested
    // too deep) is checked when it is normalized.
    let mut messages = Vec::with_capacity(items.len());
    for item in items {
        let text = item.get();
        if text.len() > limits.max_event_bytes {
            messages.push(Err(too_large_event(text.len(), limits)));
        } else {
            messages.push(Ok(text));
        }
    }
    Ok(ParsedRequest {
        envelope,
        messages,
        envelope_write_key,
    })
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
    use crate::normalize::{Receipt, normalize};

    fn codes(parsed: &ParsedRequest) -> Vec<Option<RejectCode>> {
        parsed
            .messages
            .iter()
            .map(|m| m.as_ref().err().map(|r| r.code))
            .collect()
    }

    /// What normalizing each message gives: `None` when accepted, else the refusal code.
    fn normalized_codes(parsed: &ParsedRequest) -> Vec<Option<RejectCode>> {
        let receipt = Receipt {
            received_at: time::OffsetDateTime::UNIX_EPOCH,
            client_ip: None,
            header_sent_at: None,
            global_privacy_control: false,
        };
        let mut codes = Vec::new();
        for message in &parsed.messages {
            let result = message
                .clone()
                .and_then(|text| normalize(None, text, &parsed.envelope, &receipt).map(|_| ()));
            codes.push(result.err().map(|r| r.code));
        }
        codes
    }

    #[test]
    fn single_write_key_is_found() {
        let parsed = parse_single(br#"{"writeKey":"wk","event":"x"}"#, &Limits::default()).unwrap();
        assert_eq!(parsed.write_key().as_deref(), Some("wk"));
        let parsed = parse_single(br#"{"writeKey":"","event":"x"}"#, &Limits::default()).unwrap();
        assert_eq!(parsed.write_key(), None);
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
            max_event_bytes: 60,
            ..Limits::default()
        };
        let body = br#"{"batch":[{"type":"page","userId":"u"}, 3, {"type":"track","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}, {"type":"page","userId":"u"}]}"#;
        let parsed = parse_batch(body, &limits).unwrap();
        assert_eq!(
            codes(&parsed),
            vec![None, None, Some(RejectCode::EventTooLarge), None]
        );
        assert_eq!(
            normalized_codes(&parsed),
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
        assert_eq!(parsed.write_key().as_deref(), Some("item"));
        assert_eq!(parsed.envelope.context.as_ref().unwrap()["a"], 1);
        assert_eq!(parsed.envelope.integrations.as_ref().unwrap()["All"], false);
        assert_eq!(
            parsed.envelope.sent_at.as_ref().unwrap().text,
            "2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn envelope_write_key_wins_over_items() {
        let body = br#"{"writeKey":"env","batch":[{"writeKey":"item"}]}"#;
        let parsed = parse_batch(body, &Limits::default()).unwrap();
        assert_eq!(parsed.write_key().as_deref(), Some("env"));
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
        let mut body = String::from("{\"batch\":[{\"type\":\"page\",\"userId\":\"u\",\"a\":");
        body.push_str(&"[".repeat(depth));
        body.push_str(&"]".repeat(depth));
        body.push_str("}]}");
        let limits = Limits {
            max_request_bytes: usize::MAX,
            max_event_bytes: usize::MAX,
            ..Limits::default()
        };
        let parsed = parse_batch(body.as_bytes(), &limits).unwrap();
        assert_eq!(
            normalized_codes(&parsed),
            vec![Some(RejectCode::MalformedJson)]
        );
        // Just under the limit is fine.
        let ok = format!(
            "{{\"type\":\"page\",\"userId\":\"u\",\"a\":{}{}}}",
            "[".repeat(126),
            "]".repeat(126)
        );
        let parsed = parse_single(ok.as_bytes(), &limits).unwrap();
        assert_eq!(normalized_codes(&parsed), vec![None]);
    }
}
