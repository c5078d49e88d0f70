//! Tests of the Amplitude adapter: settings, the mapping of each call against exact JSON,
//! batching limits, answers, and round trips through the Amplitude fake.

use crate::test_support::BuildValues;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::contract::Verdict;
use crate::test_support::{
    self, adapter_for, body_json, deliver, invalid_field, parse, response, send,
};
use crate::testkit::{FakeTool, Tool};

fn amplitude(extra: &str) -> Amplitude {
    let text = if extra.is_empty() {
        r#"{"api_key": "k-0123456789"}"#.to_string()
    } else {
        format!(r#"{{"api_key": "k-0123456789", {extra}}}"#)
    };
    match AmplitudeSettings::read(&test_support::settings(&text)) {
        Ok(settings) => Amplitude { settings },
        Err(error) => panic!("settings: {error}"),
    }
}

fn records(adapter: &Amplitude, events: &[&Value]) -> Vec<Value> {
    let plan = adapter.build_values(events);
    assert!(
        plan.unsupported.is_empty() && plan.invalid.is_empty(),
        "{plan:?}"
    );
    plan.requests
        .iter()
        .flat_map(
            |planned| match body_json(&planned.request)["events"].clone() {
                Value::Array(records) => records,
                other => panic!("no events: {other}"),
            },
        )
        .collect()
}

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, "{}"), "api_key");
    assert_eq!(invalid_field(&TYPE, r#"{"api_key": ""}"#), "api_key");
    let ok = r#""api_key": "k""#;
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "api": "v3"}}"#)),
        "api"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "region": "apac"}}"#)),
        "region"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{ok}, "api_url": "api2.amplitude.com"}}"#)
        ),
        "api_url"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "min_id_length": 0}}"#)),
        "min_id_length"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "page_events": "every"}}"#)),
        "page_events"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{ok}, "prefer_anonymous_id_for_device_id": "yes"}}"#)
        ),
        "prefer_anonymous_id_for_device_id"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "secret": "x"}}"#)),
        "secret"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "secret_key": "a b"}}"#)),
        "secret_key"
    );
}

#[test]
fn api_and_region_choose_the_endpoint_and_the_envelope_carries_the_key() {
    let event = test_support::track();
    let url = |extra: &str| {
        amplitude(extra)
            .build_values(&[&event])
            .requests
            .remove(0)
            .request
            .url
    };
    assert_eq!(url(""), "https://api2.amplitude.com/2/httpapi");
    assert_eq!(
        url(r#""region": "eu""#),
        "https://api.eu.amplitude.com/2/httpapi"
    );
    assert_eq!(url(r#""api": "batch""#), "https://api2.amplitude.com/batch");
    assert_eq!(
        url(r#""api": "batch", "api_url": "http://127.0.0.1:9/""#),
        "http://127.0.0.1:9/batch"
    );

    let request = amplitude("")
        .build_values(&[&event])
        .requests
        .remove(0)
        .request;
    assert_eq!(
        request.headers[0],
        ("Content-Type".to_string(), "application/json".to_string())
    );
    let body = body_json(&request);
    assert_eq!(body["api_key"], json!("k-0123456789"));
    assert_eq!(body.as_object().map(|o| o.len()), Some(2));
    let with_options = amplitude(r#""min_id_length": 3"#)
        .build_values(&[&event])
        .requests
        .remove(0)
        .request;
    assert_eq!(
        body_json(&with_options)["options"],
        json!({"min_id_length": 3})
    );
}

#[test]
fn track_maps_ids_context_and_revenue() {
    let expected = parse(
        r#"{
        "user_id": "user-42",
        "device_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "event_type": "Order Completed",
        "time": 1795343087014,
        "insert_id": "ajs-next-1795343087014-94da119a-4e6c-4108-8c86-0fd3a7845775",
        "event_properties": {"order_id": 98765432109876543210, "revenue": 42.50, "currency": "EUR", "price": 21.25, "quantity": 2, "productId": "käse-1", "coupon": "🧀 HERBST", "ratio": 0.1000000000000000055511151231257827},
        "ip": "203.0.113.7",
        "language": "de-DE",
        "library": "analytics.js/next-1.84.3",
        "price": 21.25,
        "quantity": 2,
        "revenue": 42.50,
        "productId": "käse-1",
        "currency": "EUR"
    }"#,
    );
    assert_eq!(
        records(&amplitude(""), &[&test_support::track()]),
        vec![expected]
    );
}

#[test]
fn revenue_given_as_text_and_segment_options_are_read() {
    let event = parse(
        r#"{"type": "track", "event": "Subscription Started", "userId": "user-123", "messageId": "m-1",
        "timestamp": "2026-11-22T10:00:00Z", "properties": {"plan": "Basic", "revenue": "32", "revenue_type": "income"},
        "integrations": {"Amplitude": {"session_id": 1795341000000, "groups": {"company": "acme"}}}}"#,
    );
    assert_eq!(
        records(&amplitude(""), &[&event]),
        vec![json!({
            "user_id": "user-123",
            "event_type": "Subscription Started",
            "time": 1795341600000_i64,
            "insert_id": "m-1",
            "event_properties": {"plan": "Basic", "revenue": "32", "revenue_type": "income"},
            "revenue": 32,
            "revenueType": "income",
            "session_id": 1795341000000_i64,
            "groups": {"company": "acme"}
        })]
    );
}

#[test]
fn screen_maps_the_mobile_context() {
    let expected = parse(
        r#"{
        "user_id": "user-42",
        "device_id": "2b6f0cc904d137be2e1730235f5664094b831186",
        "event_type": "Loaded a Screen",
        "time": 1795343160000,
        "insert_id": "5E1A4C2B-9F0D-4E55-A1B2-C3D4E5F60718",
        "event_properties": {"items": 3, "name": "Warenkorb"},
        "ip": "192.0.2.10",
        "app_version": "3.5.1",
        "platform": "ios",
        "os_name": "iOS",
        "os_version": "17.1",
        "device_manufacturer": "Apple",
        "device_model": "iPhone15,2",
        "carrier": "T-Mobile",
        "country": "Germany",
        "city": "Köln",
        "language": "de-DE",
        "location_lat": 50.9375,
        "location_lng": 6.9603,
        "idfa": "AEBE52E7-03EE-455A-B3C4-E57283966239",
        "library": "analytics-ios/4.1.8"
    }"#,
    );
    let adapter = amplitude(r#""page_events": "all""#);
    assert_eq!(
        records(&adapter, &[&test_support::screen()]),
        vec![expected]
    );
    let named = amplitude(r#""page_events": "named""#);
    assert_eq!(
        records(&named, &[&test_support::page()])[0]["event_type"],
        json!("Loaded Shop Kasse Page")
    );
    // Pages are off by default, as in Segment's Amplitude destination.
    let plan = amplitude("").build_values(&[&test_support::page()]);
    assert_eq!(plan.unsupported.len(), 1);
    // Preferring the anonymous id.
    let prefer = amplitude(r#""prefer_anonymous_id_for_device_id": true, "page_events": "all""#);
    assert_eq!(
        records(&prefer, &[&test_support::page()])[0]["device_id"],
        json!("a0fe94da-119a-4e6c-8108-4c860fd3a784")
    );
}

#[test]
fn identify_sets_user_properties() {
    let expected = parse(
        r#"{
        "user_id": "user-42",
        "device_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "event_type": "$identify",
        "time": 1795343100000,
        "insert_id": "node-5b1e0a5e-0c7a-4b1c-9d0f-3f1f2a6f7c11",
        "user_properties": {"$set": {"name": "Zoë Çelik", "email": "zoë@example.com", "plan": "pro", "logins": 12345678901234567890}},
        "ip": "198.51.100.4",
        "library": "analytics-node/2.1.0"
    }"#,
    );
    assert_eq!(
        records(&amplitude(""), &[&test_support::identify()]),
        vec![expected]
    );
}

#[test]
fn group_alias_and_short_ids() {
    let short = parse(
        r#"{"type": "track", "event": "E", "userId": "abc", "timestamp": "2026-11-22T10:00:00Z"}"#,
    );
    let group = test_support::group();
    let alias = test_support::alias();
    let plan = amplitude("").build_values(&[&group, &alias, &short]);
    assert!(plan.requests.is_empty());
    assert_eq!(
        plan.unsupported.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(
        plan.invalid.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![2]
    );
    // With a lower minimum, Amplitude takes it.
    let lower = amplitude(r#""min_id_length": 3"#);
    assert_eq!(records(&lower, &[&short])[0]["user_id"], json!("abc"));
}

#[test]
fn batches_hold_2000_events_and_1_mb_or_20_mb() {
    let small = parse(
        r#"{"type": "track", "event": "E", "userId": "user-1", "timestamp": "2026-11-22T10:00:00Z"}"#,
    );
    let plan = amplitude("").build_values(&vec![&small; 2001]);
    let sizes: Vec<usize> = plan.requests.iter().map(|p| p.events.len()).collect();
    assert_eq!(sizes, vec![2000, 1]);
    // The realistic track event is larger: 1 MB is reached before 2000 events.
    let track = test_support::track();
    let plan = amplitude("").build_values(&vec![&track; 2001]);
    assert!(plan.requests[0].events.len() < 2000);
    assert!(
        plan.requests
            .iter()
            .all(|p| p.request.body.len() <= 1_000_000)
    );

    let big = parse(&format!(
        r#"{{"type": "track", "event": "E", "userId": "user-1", "timestamp": "2026-11-22T10:00:00Z", "properties": {{"blob": "{}"}}}}"#,
        "x".repeat(100_000)
    ));
    let events = vec![&big; 25];
    let plan = amplitude("").build_values(&events);
    assert!(plan.requests.len() >= 3, "{}", plan.requests.len());
    for planned in &plan.requests {
        assert!(planned.request.body.len() <= 1_000_000);
    }
    let order: Vec<usize> = plan
        .requests
        .iter()
        .flat_map(|p| p.events.clone())
        .collect();
    assert_eq!(order, (0..25).collect::<Vec<_>>());
    assert_eq!(
        amplitude(r#""api": "batch""#)
            .build_values(&events)
            .requests
            .len(),
        1
    );
}

#[test]
fn answers_are_classified_as_amplitude_documents() {
    let adapter = amplitude("");
    let ok = r#"{"code":200,"events_ingested":3,"payload_size_bytes":50,"server_upload_time":1396381378123}"#;
    assert_eq!(
        adapter.classify(&response(200, &[], ok), 3),
        Verdict::Delivered
    );

    let resend = Verdict::Retry {
        after: None,
        reason: "amplitude refused the request for other events in it".into(),
    };
    let invalid = r#"{"code": 400, "error": "Request missing required field", "missing_field": "api_key",
        "events_with_invalid_fields": {"time": [1]}, "events_with_missing_fields": {"event_type": [3]}}"#;
    assert_eq!(
        adapter.classify(&response(400, &[], invalid), 4),
        Verdict::Partial(vec![
            resend.clone(),
            Verdict::Reject {
                reason: "amplitude: invalid field time".into()
            },
            resend.clone(),
            Verdict::Reject {
                reason: "amplitude: missing field event_type".into()
            },
        ])
    );
    let silenced = r#"{"code": 400, "eps_threshold": 100, "error": "Events silenced for device_id",
        "exceeded_daily_quota_devices": {}, "silenced_devices": ["d1"], "silenced_events": [0],
        "throttled_devices": {}, "throttled_events": [1]}"#;
    assert_eq!(
        adapter.classify(&response(400, &[], silenced), 2),
        Verdict::Partial(vec![
            Verdict::Reject {
                reason: "amplitude: the event's device id is silenced".into()
            },
            resend,
        ])
    );
    for (status, body) in [
        (400, r#"{"code":400,"error":"Invalid API key: nope"}"#),
        (400, r#"{"code":400,"error":"Invalid JSON request body"}"#),
        (403, r#"{"code":403,"error":"Forbidden"}"#),
        (413, r#"{"code":413,"error":"Payload too large"}"#),
    ] {
        assert!(
            matches!(
                adapter.classify(&response(status, &[], body), 2),
                Verdict::Reject { .. }
            ),
            "{status} {body}"
        );
    }
    let throttled = r#"{"code":429,"error":"Too many requests for some devices and users","eps_threshold":30,
        "throttled_devices":{"C8F9E604":31},"throttled_users":{"datamonster@amplitude.com":32},"throttled_events":[0]}"#;
    let wait = |adapter: &Amplitude, headers: &[(&str, &str)], body: &str| match adapter
        .classify(&response(429, headers, body), 1)
    {
        Verdict::Retry { after, .. } => after,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        wait(&adapter, &[], throttled),
        Some(Duration::from_secs(30))
    );
    assert_eq!(
        wait(&amplitude(r#""api": "batch""#), &[], throttled),
        Some(Duration::from_secs(15))
    );
    assert_eq!(
        wait(&adapter, &[("retry-after", "5")], throttled),
        Some(Duration::from_secs(5))
    );
    let quota = r#"{"code":429,"error":"Too many requests for some devices and users","exceeded_daily_quota_users":{"u":500200}}"#;
    assert_eq!(wait(&adapter, &[], quota), Some(Duration::from_secs(3600)));
    for status in [500, 502, 503, 504] {
        assert!(matches!(
            adapter.classify(&response(status, &[], ""), 2),
            Verdict::Retry { .. }
        ));
    }
}

#[test]
fn debug_output_shows_no_secret() {
    let adapter = match AmplitudeSettings::read(&test_support::settings(
        r#"{"api_key": "topsecret-amplitude-key"}"#,
    )) {
        Ok(settings) => Amplitude { settings },
        Err(error) => panic!("{error}"),
    };
    let event = test_support::track();
    let plan = adapter.build_values(&[&event]);
    for text in [format!("{adapter:?}"), format!("{plan:?}")] {
        assert!(!text.contains("topsecret"), "{text}");
    }
}

#[tokio::test]
async fn round_trip_delivers_on_both_apis() {
    let fake = FakeTool::start(Tool::Amplitude).await;
    let events = [
        test_support::track(),
        test_support::identify(),
        test_support::screen(),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    for api in ["http_v2", "batch"] {
        let adapter = adapter_for(&fake, &[("api", json!(api)), ("page_events", json!("all"))]);
        deliver(adapter.as_ref(), &adapter.build_values(&refs).requests[0]).await;
    }
    let types: Vec<Value> = fake
        .accepted()
        .iter()
        .map(|e| e["event_type"].clone())
        .collect();
    assert_eq!(types.len(), 6);
    assert_eq!(
        &types[..3],
        [
            json!("Order Completed"),
            json!("$identify"),
            json!("Loaded a Screen")
        ]
    );
    let paths: Vec<String> = fake.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/2/httpapi", "/batch"]);
}

#[tokio::test]
async fn round_trip_a_bad_event_is_rejected_and_the_rest_resent() {
    let fake = FakeTool::start(Tool::Amplitude).await;
    let adapter = adapter_for(&fake, &[]);
    let placeholder = parse(
        r#"{"type": "track", "event": "E", "userId": "undefined", "anonymousId": "anon-12345", "messageId": "m-2", "timestamp": "2026-11-22T10:00:00Z"}"#,
    );
    let events = [test_support::track(), placeholder, test_support::identify()];
    let refs: Vec<&Value> = events.iter().collect();
    let planned = adapter.build_values(&refs).requests.remove(0);
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 400);
    let Verdict::Partial(verdicts) = adapter.classify(&answer, 3) else {
        panic!("expected partial");
    };
    assert!(matches!(verdicts[0], Verdict::Retry { .. }));
    assert!(matches!(&verdicts[1], Verdict::Reject { reason } if reason.contains("user_id")));
    assert!(matches!(verdicts[2], Verdict::Retry { .. }));
    assert!(fake.accepted().is_empty());
    // The engine resends the retried events: they go through.
    let again = adapter.build_values(&[refs[0], refs[2]]).requests.remove(0);
    assert_eq!(
        adapter.classify(&send(&again.request).await, 2),
        Verdict::Delivered
    );
    assert_eq!(fake.accepted().len(), 2);
}

#[tokio::test]
async fn round_trip_bad_key_and_throttling() {
    let fake = FakeTool::start(Tool::Amplitude).await;
    let event = test_support::track();
    let wrong = adapter_for(&fake, &[("api_key", json!("not-the-key"))]);
    let planned = wrong.build_values(&[&event]).requests.remove(0);
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 400);
    assert!(
        matches!(wrong.classify(&answer, 1), Verdict::Reject { reason } if reason.contains("Invalid API key"))
    );

    fake.set_rate_limit(1);
    let adapter = adapter_for(&fake, &[]);
    let planned = adapter.build_values(&[&event]).requests.remove(0);
    assert_eq!(send(&planned.request).await.status, 200);
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 429);
    let body = serde_json::from_slice::<Value>(&answer.body).unwrap_or_default();
    assert_eq!(body["throttled_users"], json!({"user-42": 31}));
    assert_eq!(
        adapter.classify(&answer, 1),
        Verdict::Retry {
            after: Some(Duration::from_secs(30)),
            reason: format!(
                "amplitude: throttled (http 429): {}",
                String::from_utf8_lossy(&answer.body)
            ),
        }
    );
}
