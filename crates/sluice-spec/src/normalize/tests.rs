use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use serde_json::{Value, json};
use time::macros::datetime;

use super::*;
use crate::request::{Limits, parse_batch, parse_single};

fn receipt() -> Receipt {
    Receipt {
        received_at: datetime!(2026-11-22 10:00:10.000 UTC),
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        header_sent_at: None,
        global_privacy_control: false,
    }
}

fn run(kind: Option<MessageType>, value: Value) -> Result<Value, Rejection> {
    let event = normalize(kind, &value.to_string(), &Envelope::default(), &receipt())?;
    Ok(serde_json::from_str(&event.body).unwrap())
}

fn code(kind: Option<MessageType>, value: Value) -> (RejectCode, Option<String>) {
    let err = run(kind, value).unwrap_err();
    (err.code, err.field)
}

#[test]
fn clock_skew_is_corrected() {
    // The client clock is 5 s ahead: sent at :15 by its clock, received at :10 by ours.
    let out = run(
        Some(MessageType::Track),
        json!({"userId":"u","event":"e","timestamp":"2026-11-22T10:00:13.000Z","sentAt":"2026-11-22T10:00:15.000Z"}),
    )
    .unwrap();
    assert_eq!(out["originalTimestamp"], "2026-11-22T10:00:13.000Z");
    assert_eq!(out["timestamp"], "2026-11-22T10:00:08.000Z");
    assert_eq!(out["receivedAt"], "2026-11-22T10:00:10.000Z");
    assert_eq!(out["sentAt"], "2026-11-22T10:00:15.000Z");
}

#[test]
fn rudderstack_messages_without_timestamp_are_corrected() {
    let out = run(
        None,
        json!({"type":"track","userId":"u","event":"e","originalTimestamp":"2026-11-22T10:00:01.000Z","sentAt":"2026-11-22T10:00:02.000Z"}),
    )
    .unwrap();
    assert_eq!(out["originalTimestamp"], "2026-11-22T10:00:01.000Z");
    assert_eq!(out["timestamp"], "2026-11-22T10:00:09.000Z");
}

#[test]
fn without_sent_at_the_client_time_is_kept_and_without_any_time_receipt_is_used() {
    let out = run(
        Some(MessageType::Page),
        json!({"anonymousId":"a","timestamp":"2020-01-01T00:00:00Z"}),
    )
    .unwrap();
    assert_eq!(out["timestamp"], "2020-01-01T00:00:00.000Z");
    let out = run(Some(MessageType::Page), json!({"anonymousId":"a"})).unwrap();
    assert_eq!(out["timestamp"], "2026-11-22T10:00:10.000Z");
    assert!(out.get("originalTimestamp").is_none());
}

#[test]
fn header_sent_at_is_used_when_the_body_has_none() {
    let mut receipt = receipt();
    receipt.header_sent_at = Some(datetime!(2026-11-22 10:00:20.000 UTC));
    let event = normalize(
        Some(MessageType::Track),
        &json!({"anonymousId":"a","event":"e","originalTimestamp":"2026-11-22T10:00:19.000Z"})
            .to_string(),
        &Envelope::default(),
        &receipt,
    )
    .unwrap();
    let out: Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(out["timestamp"], "2026-11-22T10:00:09.000Z");
}

#[test]
fn envelope_defaults_merge_and_items_win() {
    let body = br#"{"batch":[{"type":"identify","userId":"u","context":{"locale":"fr"}}],
        "context":{"locale":"en","library":{"name":"x"}},"integrations":{"All":true},
        "sentAt":"2026-11-22T10:00:12.000Z"}"#;
    let parsed = parse_batch(body, &Limits::default()).unwrap();
    let message = parsed.messages.into_iter().next().unwrap().unwrap();
    let event = normalize(None, message, &parsed.envelope, &receipt()).unwrap();
    let out: Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(out["context"]["locale"], "fr");
    assert_eq!(out["context"]["library"]["name"], "x");
    assert_eq!(out["integrations"]["All"], true);
    assert_eq!(out["sentAt"], "2026-11-22T10:00:12.000Z");
}

#[test]
fn identity_rules() {
    // An explicit null is fine when the other identifier is present (the Python SDKs do this).
    let event = normalize(
        Some(MessageType::Identify),
        &json!({"userId":"u","anonymousId":null}).to_string(),
        &Envelope::default(),
        &receipt(),
    )
    .unwrap();
    assert_eq!(event.user_id.as_deref(), Some("u"));
    assert_eq!(event.anonymous_id, None);

    let event = normalize(
        Some(MessageType::Identify),
        r#"{"userId":42}"#,
        &Envelope::default(),
        &receipt(),
    )
    .unwrap();
    assert_eq!(event.user_id.as_deref(), Some("42"));

    for body in [
        json!({}),
        json!({"userId":null,"anonymousId":null}),
        json!({"userId":"","anonymousId":""}),
    ] {
        assert_eq!(
            code(Some(MessageType::Identify), body),
            (RejectCode::MissingIdentity, Some("userId".into()))
        );
    }
    assert_eq!(
        code(Some(MessageType::Identify), json!({"userId":{"a":1}})),
        (RejectCode::InvalidIdentity, Some("userId".into()))
    );
    assert_eq!(
        code(
            Some(MessageType::Identify),
            json!({"userId":"u","anonymousId":true})
        ),
        (RejectCode::InvalidIdentity, Some("anonymousId".into()))
    );
}

#[test]
fn per_type_required_fields() {
    assert_eq!(
        code(Some(MessageType::Track), json!({"userId":"u"})),
        (RejectCode::MissingEvent, Some("event".into()))
    );
    assert_eq!(
        code(Some(MessageType::Track), json!({"userId":"u","event":""})).0,
        RejectCode::MissingEvent
    );
    assert_eq!(
        code(Some(MessageType::Track), json!({"userId":"u","event":7})).0,
        RejectCode::MissingEvent
    );
    assert_eq!(
        code(Some(MessageType::Group), json!({"userId":"u"})),
        (RejectCode::MissingGroupId, Some("groupId".into()))
    );
    assert_eq!(
        code(Some(MessageType::Alias), json!({"userId":"u"})),
        (RejectCode::MissingPreviousId, Some("previousId".into()))
    );
    assert!(run(Some(MessageType::Group), json!({"userId":"u","groupId":12})).is_ok());
    assert!(
        run(
            Some(MessageType::Alias),
            json!({"userId":"u","previousId":"p"})
        )
        .is_ok()
    );
    assert!(run(Some(MessageType::Screen), json!({"userId":"u"})).is_ok());
}

#[test]
fn batch_items_need_a_known_type() {
    assert_eq!(
        code(None, json!({"userId":"u"})),
        (RejectCode::MissingType, Some("type".into()))
    );
    assert_eq!(
        code(None, json!({"userId":"u","type":"Track"})).0,
        RejectCode::InvalidType
    );
    assert_eq!(
        code(None, json!({"userId":"u","type":5})).0,
        RejectCode::InvalidType
    );
}

#[test]
fn the_url_decides_the_type() {
    let out = run(
        Some(MessageType::Page),
        json!({"userId":"u","type":"track"}),
    )
    .unwrap();
    assert_eq!(out["type"], "page");
}

#[test]
fn message_id_rules() {
    let out = run(Some(MessageType::Page), json!({"userId":"u"})).unwrap();
    let generated = out["messageId"].as_str().unwrap();
    assert_eq!(generated.len(), 36);

    let hundred = "m".repeat(100);
    let out = run(
        Some(MessageType::Page),
        json!({"userId":"u","messageId":hundred}),
    )
    .unwrap();
    assert_eq!(out["messageId"], "m".repeat(100));
    // Characters, not bytes: 100 two-byte characters are fine.
    assert!(
        run(
            Some(MessageType::Page),
            json!({"userId":"u","messageId":"é".repeat(100)})
        )
        .is_ok()
    );
    assert_eq!(
        code(
            Some(MessageType::Page),
            json!({"userId":"u","messageId":"m".repeat(101)})
        ),
        (RejectCode::MessageIdTooLong, Some("messageId".into()))
    );
    assert_eq!(
        code(
            Some(MessageType::Page),
            json!({"userId":"u","messageId":""})
        )
        .0,
        RejectCode::InvalidMessageId
    );
    assert_eq!(
        code(Some(MessageType::Page), json!({"userId":"u","messageId":1})).0,
        RejectCode::InvalidMessageId
    );
}

#[test]
fn bad_times_name_their_field() {
    for field in ["timestamp", "originalTimestamp", "sentAt"] {
        let mut body = json!({"userId":"u"});
        body[field] = json!("not a time");
        assert_eq!(
            code(Some(MessageType::Page), body),
            (RejectCode::InvalidTimestamp, Some(field.into()))
        );
    }
    assert_eq!(
        code(
            Some(MessageType::Page),
            json!({"userId":"u","timestamp":12})
        )
        .0,
        RejectCode::InvalidTimestamp
    );
}

#[test]
fn object_fields_must_be_objects() {
    for field in ["context", "properties", "traits", "integrations"] {
        let mut body = json!({"userId":"u"});
        body[field] = json!([1]);
        assert_eq!(
            code(Some(MessageType::Page), body),
            (RejectCode::InvalidFieldType, Some(field.into()))
        );
    }
}

#[test]
fn ip_is_filled_only_when_missing() {
    let out = run(Some(MessageType::Page), json!({"userId":"u"})).unwrap();
    assert_eq!(out["context"]["ip"], "203.0.113.7");
    let out = run(
        Some(MessageType::Page),
        json!({"userId":"u","context":{"ip":"198.51.100.1"}}),
    )
    .unwrap();
    assert_eq!(out["context"]["ip"], "198.51.100.1");
    let out = run(
        Some(MessageType::Page),
        json!({"userId":"u","context":null}),
    )
    .unwrap();
    assert_eq!(out["context"]["ip"], "203.0.113.7");
}

#[test]
fn a_global_privacy_control_signal_is_recorded_in_context() {
    let mut gpc = receipt();
    gpc.global_privacy_control = true;
    let message = json!({"userId":"u","context":{"locale":"fr","globalPrivacyControl":false}});
    let event = normalize(
        Some(MessageType::Page),
        &message.to_string(),
        &Envelope::default(),
        &gpc,
    )
    .unwrap();
    let out: Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(
        out["context"]["globalPrivacyControl"], true,
        "the header wins"
    );
    assert_eq!(out["context"]["locale"], "fr");
    assert_eq!(out["context"]["ip"], "203.0.113.7");
    let without = run(Some(MessageType::Page), json!({"userId":"u"})).unwrap();
    assert!(without["context"].get("globalPrivacyControl").is_none());
}

#[test]
fn unknown_fields_and_exotic_numbers_survive() {
    let body = br#"{"userId":"u","event":"e","_metadata":{"nodeVersion":"20"},"properties":{"big":123456789012345678901234567890,"exp":1.5e300,"neg":-0.0,"nested":{"deep":[1,{"x":null}]}},"channel":"server"}"#;
    let parsed = parse_single(body, &Limits::default()).unwrap();
    let message = parsed.messages.into_iter().next().unwrap().unwrap();
    let event = normalize(
        Some(MessageType::Track),
        message,
        &Envelope::default(),
        &receipt(),
    )
    .unwrap();
    assert!(
        event
            .body
            .contains(r#""big":123456789012345678901234567890"#),
        "{}",
        event.body
    );
    let out: Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(out["properties"]["exp"].as_f64(), Some(1.5e300));
    assert!(event.body.contains(r#""_metadata":{"nodeVersion":"20"}"#));
    assert!(event.body.contains(r#""nested":{"deep":[1,{"x":null}]}"#));
    assert!(event.body.contains(r#""channel":"server""#));
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9 _.:-]{0,12}".prop_map(Value::String),
        "\\PC{0,8}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Whatever object comes in, normalize answers (never panics) and, when it accepts,
    /// every field it does not own comes out unchanged.
    #[test]
    fn normalize_keeps_unknown_fields(
        extra in prop::collection::btree_map("[a-z]{1,10}", json_value(), 0..6),
        user in prop::option::of("[a-z0-9]{1,10}"),
        kind in prop::sample::select(MessageType::ALL.to_vec()),
    ) {
        let mut message: serde_json::Map<String, Value> = extra.clone().into_iter().collect();
        if let Some(user) = &user {
            message.insert("userId".into(), json!(user));
        }
        message.insert("event".into(), json!("Thing Happened"));
        message.insert("groupId".into(), json!("g"));
        message.insert("previousId".into(), json!("p"));
        let result = normalize(Some(kind), &Value::Object(message).to_string(), &Envelope::default(), &receipt());
        if let Ok(event) = result {
            let out: Value = serde_json::from_str(&event.body).unwrap();
            let owned = ["type", "messageId", "timestamp", "originalTimestamp", "receivedAt", "sentAt", "context", "userId", "event", "groupId", "previousId"];
            for (key, value) in &extra {
                if !owned.contains(&key.as_str()) {
                    prop_assert_eq!(&out[key], value);
                }
            }
            prop_assert_eq!(out["type"].as_str(), Some(kind.as_str()));
        }
    }

    /// Arbitrary bytes never make the request parser panic.
    #[test]
    fn request_parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let limits = Limits::default();
        let _ = parse_single(&bytes, &limits);
        let _ = parse_batch(&bytes, &limits);
    }

    /// Any parseable time survives format → parse unchanged to the millisecond.
    #[test]
    fn timestamps_round_trip(seconds in -62_135_596_800i64..253_402_300_799i64, millis in 0u32..1000) {
        let at = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap() + time::Duration::milliseconds(millis as i64);
        let text = crate::timestamp::format(at);
        prop_assert_eq!(crate::timestamp::parse(&text), Some(at));
    }
}

#[test]
fn write_key_is_never_stored_and_owned_fields_appear_once() {
    let text = r#"{"writeKey":"secret-key","userId":"u","type":"x","type":"y","messageId":"m","context":{"ip":null,"locale":"fr"},"properties":{"n":1.50,"s":"a\"b"},"extra":[1, 2]}"#;
    let event = normalize(
        Some(MessageType::Page),
        text,
        &Envelope::default(),
        &receipt(),
    )
    .unwrap();
    assert!(!event.body.contains("secret-key"), "{}", event.body);
    assert_eq!(event.body.matches("\"type\"").count(), 1, "{}", event.body);
    assert_eq!(event.body.matches("\"ip\"").count(), 1, "{}", event.body);
    // Values Sluice does not own are copied as sent, to the character.
    assert!(
        event.body.contains(r#""properties":{"n":1.50,"s":"a\"b"}"#),
        "{}",
        event.body
    );
    assert!(event.body.contains(r#""extra":[1, 2]"#), "{}", event.body);
    let out: Value = serde_json::from_str(&event.body).unwrap();
    assert_eq!(out["type"], "page");
    assert_eq!(out["context"]["ip"], "203.0.113.7");
    assert_eq!(out["context"]["locale"], "fr");
    assert_eq!(out["messageId"], "m");
}

#[test]
fn not_an_object_or_too_deep_is_refused() {
    let envelope = Envelope::default();
    assert_eq!(
        normalize(None, "3", &envelope, &receipt())
            .unwrap_err()
            .code,
        RejectCode::InvalidMessage
    );
    assert_eq!(
        normalize(None, "[{}]", &envelope, &receipt())
            .unwrap_err()
            .code,
        RejectCode::InvalidMessage
    );
    let deep = format!(
        r#"{{"userId":"u","a":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(
        normalize(Some(MessageType::Page), &deep, &envelope, &receipt())
            .unwrap_err()
            .code,
        RejectCode::MalformedJson
    );
}
