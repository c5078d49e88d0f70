//! Tests of the webhook adapter: settings, bodies, batching, signatures, answers, and round
//! trips through the webhook fake.

use crate::test_support::BuildValues;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::*;
use crate::contract::Verdict;
use crate::test_support::{self, adapter_for, body_json, deliver, invalid_field, response, send};
use crate::testkit::credentials::{WEBHOOK_AUTHORIZATION, WEBHOOK_SECRET};
use crate::testkit::{FakeTool, Tool};

fn adapter(text: &str) -> Result<Box<dyn Adapter>, SettingsError> {
    (TYPE.build)(&test_support::settings(text))
}

fn webhook(text: &str) -> Webhook {
    match WebhookSettings::read(&test_support::settings(text)) {
        Ok(settings) => Webhook { settings },
        Err(error) => panic!("settings: {error}"),
    }
}

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, r#"{}"#), "url");
    assert_eq!(
        invalid_field(&TYPE, r#"{"url": "ftp://example.com/x"}"#),
        "url"
    );
    assert_eq!(invalid_field(&TYPE, r#"{"url": "example.com/x"}"#), "url");
    assert_eq!(invalid_field(&TYPE, r#"{"url": 7}"#), "url");
    let ok = r#""url": "https://example.com/hook""#;
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "batch_size": 0}}"#)),
        "batch_size"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "batch_size": 1001}}"#)),
        "batch_size"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "batch_size": "5"}}"#)),
        "batch_size"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "headers": ["a"]}}"#)),
        "headers"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{ok}, "headers": {{"Bad Name": "x"}}}}"#)
        ),
        "headers.Bad Name"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{ok}, "headers": {{"Content-Type": "text/plain"}}}}"#)
        ),
        "headers.Content-Type"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{ok}, "headers": {{"X-Token": "a\r\nInjected: 1"}}}}"#)
        ),
        "headers.X-Token"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "secret": "has space"}}"#)),
        "secret"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "sekret": "x"}}"#)),
        "sekret"
    );
    assert!(
        adapter(&format!(
            r#"{{{ok}, "batch_size": 1000, "secret": "s3cr3t"}}"#
        ))
        .is_ok()
    );
}

#[test]
fn one_event_is_posted_as_stored() {
    let event = test_support::track();
    let plan = webhook(r#"{"url": "https://hooks.example/in", "headers": {"X-Api-Key": "k-123"}}"#)
        .build_values(&[&event]);
    assert_eq!(plan.requests.len(), 1);
    let planned = &plan.requests[0];
    assert_eq!(planned.events, vec![0]);
    let request = &planned.request;
    assert_eq!(request.url, "https://hooks.example/in");
    assert_eq!(
        request.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("X-Api-Key".to_string(), "k-123".to_string()),
        ]
    );
    let text = String::from_utf8(request.body.clone()).unwrap_or_default();
    // Key order, unicode and every digit of the numbers survive.
    assert!(
        text.starts_with(r#"{"type":"track","event":"Order Completed","userId":"user-42""#),
        "{text}"
    );
    assert!(
        text.contains(r#""order_id":98765432109876543210"#),
        "{text}"
    );
    assert!(
        text.contains(r#""ratio":0.1000000000000000055511151231257827"#),
        "{text}"
    );
    assert!(text.contains(r#""coupon":"🧀 HERBST""#), "{text}");
    assert_eq!(body_json(request), event);
}

#[test]
fn batches_are_json_arrays_of_batch_size_events() {
    let events: Vec<_> = (0..7)
        .map(|n| {
            test_support::parse(&format!(
                r#"{{"type": "track", "event": "E{n}", "userId": "u"}}"#
            ))
        })
        .collect();
    let refs: Vec<&serde_json::Value> = events.iter().collect();
    let adapter = webhook(r#"{"url": "https://hooks.example/in", "batch_size": 3}"#);
    assert_eq!(adapter.max_batch(), 3);
    let plan = adapter.build_values(&refs);
    let carried: Vec<Vec<usize>> = plan.requests.iter().map(|p| p.events.clone()).collect();
    assert_eq!(carried, vec![vec![0, 1, 2], vec![3, 4, 5], vec![6]]);
    assert_eq!(
        body_json(&plan.requests[2].request),
        serde_json::json!([events[6]])
    );
    assert_eq!(
        body_json(&plan.requests[0].request),
        serde_json::json!([events[0], events[1], events[2]])
    );
    assert!(plan.unsupported.is_empty() && plan.invalid.is_empty());
}

/// HMAC-SHA256 written out from SHA-256 alone (RFC 2104), to check [`sign`] independently.
fn reference_hmac(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|k| k ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::digest([pad(0x36), message.to_vec()].concat());
    let outer = Sha256::digest([pad(0x5c), inner.to_vec()].concat());
    outer.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn signatures_match_rfc_4231_and_an_independent_hmac() {
    // RFC 4231 test case 2.
    assert_eq!(
        sign("Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    let long_key = "k".repeat(100);
    assert_eq!(
        sign(&long_key, b"body"),
        format!("sha256={}", reference_hmac(long_key.as_bytes(), b"body"))
    );

    let event = test_support::track();
    let adapter =
        webhook(r#"{"url": "https://hooks.example/in", "secret": "whsec_ÿ-not-ascii-is-fine"}"#);
    let request = &adapter.build_values(&[&event]).requests[0].request;
    let header = request
        .headers
        .iter()
        .find(|(name, _)| name == SIGNATURE_HEADER)
        .map(|(_, value)| value.clone());
    let expected = reference_hmac("whsec_ÿ-not-ascii-is-fine".as_bytes(), &request.body);
    assert_eq!(header, Some(format!("sha256={expected}")));
    // The same event gives the same bytes and the same signature on a retry.
    assert_eq!(
        adapter.build_values(&[&event]).requests[0].request,
        *request
    );
}

#[test]
fn answers_are_classified_by_status() {
    let adapter = webhook(r#"{"url": "https://hooks.example/in"}"#);
    for status in [200, 201, 202, 204] {
        assert_eq!(
            adapter.classify(&response(status, &[], ""), 1),
            Verdict::Delivered
        );
    }
    for status in [400, 401, 403, 404, 410, 422] {
        assert!(
            matches!(
                adapter.classify(&response(status, &[], "nope"), 1),
                Verdict::Reject { .. }
            ),
            "{status}"
        );
    }
    for status in [408, 500, 502, 503, 504] {
        assert!(
            matches!(
                adapter.classify(&response(status, &[], ""), 1),
                Verdict::Retry { after: None, .. }
            ),
            "{status}"
        );
    }
    let throttled = adapter.classify(&response(429, &[("retry-after", "7")], ""), 1);
    assert!(
        matches!(throttled, Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(7))
    );
}

#[test]
fn debug_output_shows_no_secret() {
    let adapter = webhook(
        r#"{"url": "https://hooks.example/in", "secret": "topsecret-signing", "headers": {"Authorization": "Bearer topsecret-token"}}"#,
    );
    let event = test_support::track();
    let plan = adapter.build_values(&[&event]);
    for text in [format!("{adapter:?}"), format!("{plan:?}")] {
        assert!(!text.contains("topsecret"), "{text}");
    }
}

#[tokio::test]
async fn round_trip_through_the_fake() {
    let fake = FakeTool::start(Tool::Webhook).await;
    let adapter = adapter_for(&fake, &[]);
    let events = [test_support::track(), test_support::identify()];
    let refs: Vec<&serde_json::Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    assert_eq!(plan.requests.len(), 2);
    for planned in &plan.requests {
        deliver(adapter.as_ref(), planned).await;
    }
    assert_eq!(fake.accepted(), events.to_vec());
    let recorded = fake.requests();
    assert_eq!(
        recorded[0].header("authorization"),
        Some(WEBHOOK_AUTHORIZATION)
    );
    assert_eq!(
        recorded[0].header("x-signature").map(str::to_string),
        Some(sign(WEBHOOK_SECRET, &recorded[0].body))
    );

    // A wrong signing secret is refused by the receiver, and the refusal is final.
    let wrong = adapter_for(&fake, &[("secret", serde_json::json!("not-the-secret"))]);
    let planned = &wrong.build_values(&[&events[0]]).requests[0];
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 401);
    assert!(matches!(wrong.classify(&answer, 1), Verdict::Reject { .. }));

    // A scripted outage is retried; the rate limit answers 429 with Retry-After.
    fake.push_answer(503, &[], "maintenance");
    let answer = send(&plan.requests[0].request).await;
    assert!(matches!(
        adapter.classify(&answer, 1),
        Verdict::Retry { .. }
    ));
    fake.set_rate_limit(1);
    let _first = send(&plan.requests[0].request).await;
    let answer = send(&plan.requests[0].request).await;
    assert_eq!(answer.status, 429);
    assert!(matches!(
        adapter.classify(&answer, 1),
        Verdict::Retry { after: Some(wait), .. } if wait <= Duration::from_secs(1)
    ));
}

#[tokio::test]
async fn the_sink_counts_requests_and_events() {
    let sink = FakeTool::webhook_sink().await;
    let adapter = adapter(&format!(
        r#"{{"url": "{}/bench", "batch_size": 4}}"#,
        sink.base_url()
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let events: Vec<_> = (0..10).map(|_| test_support::track()).collect();
    let refs: Vec<&serde_json::Value> = events.iter().collect();
    for planned in adapter.build_values(&refs).requests {
        deliver(adapter.as_ref(), &planned).await;
    }
    assert_eq!(sink.received(), 3);
    assert_eq!(sink.accepted_count(), 10);
    assert!(sink.requests().is_empty());
}

#[tokio::test]
async fn hanging_requests_trip_a_client_timeout() {
    let fake = FakeTool::start(Tool::Webhook).await;
    fake.hang(Duration::from_secs(5), 1);
    let adapter = adapter_for(&fake, &[]);
    let event = test_support::track();
    let request = adapter.build_values(&[&event]).requests.remove(0).request;
    let client = reqwest::Client::new();
    let mut builder = client
        .post(&request.url)
        .timeout(Duration::from_millis(200));
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let result = builder.body(request.body.clone()).send().await;
    assert!(result.is_err_and(|error| error.is_timeout()));
    // The hang is used up: the next request is answered at once.
    assert_eq!(send(&request).await.status, 200);
    assert_eq!(fake.received(), 2);
}
