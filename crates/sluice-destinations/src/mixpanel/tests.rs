//! Tests of the Mixpanel adapter: settings, the mapping of each call against exact JSON,
//! batching limits, answers, and round trips through the Mixpanel fake.

use crate::test_support::BuildValues;
use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::contract::Verdict;
use crate::test_support::{
    self, adapter_for, body_json, deliver, invalid_field, parse, response, round_trip, send,
};
use crate::testkit::credentials::{
    MIXPANEL_API_SECRET, MIXPANEL_PROJECT_ID, MIXPANEL_PROJECT_TOKEN, MIXPANEL_SERVICE_ACCOUNT,
    MIXPANEL_SERVICE_SECRET,
};
use crate::testkit::{FakeTool, Tool};

const SERVICE_ACCOUNT: &str = r#""service_account_username": "sa.user", "service_account_secret": "sa-secret-value", "project_id": "3141592""#;

fn mixpanel(extra: &str) -> Mixpanel {
    let text = if extra.is_empty() {
        format!("{{{SERVICE_ACCOUNT}}}")
    } else {
        format!("{{{SERVICE_ACCOUNT}, {extra}}}")
    };
    match MixpanelSettings::read(&test_support::settings(&text)) {
        Ok(settings) => Mixpanel { settings },
        Err(error) => panic!("settings: {error}"),
    }
}

/// The one record a single event maps to.
fn record(adapter: &Mixpanel, event: &Value) -> Value {
    let plan = adapter.build_values(&[event]);
    assert!(
        plan.unsupported.is_empty() && plan.invalid.is_empty(),
        "{plan:?}"
    );
    match body_json(&plan.requests[0].request) {
        Value::Array(mut records) if records.len() == 1 => records.remove(0),
        other => panic!("expected one record: {other}"),
    }
}

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, "{}"), "service_account_username");
    assert_eq!(
        invalid_field(&TYPE, r#"{"service_account_username": "u"}"#),
        "service_account_secret"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            r#"{"service_account_username": "u", "service_account_secret": "s"}"#
        ),
        "project_id"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            r#"{"service_account_username": "u", "service_account_secret": "s", "project_id": "abc"}"#
        ),
        "project_id"
    );
    assert_eq!(
        invalid_field(&TYPE, r#"{"api_secret": "a", "project_token": "t"}"#),
        "api_secret"
    );
    assert_eq!(
        invalid_field(&TYPE, r#"{"api_secret": "a", "project_id": "1"}"#),
        "project_id"
    );
    assert_eq!(
        invalid_field(&TYPE, r#"{"api_secret": "a b"}"#),
        "api_secret"
    );
    let ok = r#""api_secret": "secret""#;
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "region": "mars"}}"#)),
        "region"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "api_url": "ftp://x"}}"#)),
        "api_url"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "page_events": "some"}}"#)),
        "page_events"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "id_merge": "new"}}"#)),
        "id_merge"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{ok}, "token": "x"}}"#)),
        "token"
    );
}

#[test]
fn credentials_and_region_make_the_request_line() {
    let request = |extra: &str, settings: &str| {
        let adapter = match MixpanelSettings::read(&test_support::settings(settings)) {
            Ok(settings) => Mixpanel { settings },
            Err(error) => panic!("{extra}: {error}"),
        };
        let event = test_support::track();
        adapter.build_values(&[&event]).requests.remove(0).request
    };
    let sa = request("sa", &format!("{{{SERVICE_ACCOUNT}}}"));
    assert_eq!(
        sa.url,
        "https://api.mixpanel.com/import?strict=1&project_id=3141592"
    );
    assert_eq!(
        sa.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            // base64("sa.user:sa-secret-value")
            (
                "Authorization".to_string(),
                "Basic c2EudXNlcjpzYS1zZWNyZXQtdmFsdWU=".to_string()
            ),
        ]
    );
    let eu = request("eu", r#"{"api_secret": "abc", "region": "eu"}"#);
    assert_eq!(eu.url, "https://api-eu.mixpanel.com/import?strict=1");
    assert_eq!(eu.headers[1].1, "Basic YWJjOg==");
    let india = request(
        "in",
        r#"{"project_token": "tok", "project_id": "7", "region": "in"}"#,
    );
    assert_eq!(
        india.url,
        "https://api-in.mixpanel.com/import?strict=1&project_id=7"
    );
    let local = request(
        "override",
        r#"{"api_secret": "abc", "region": "eu", "api_url": "http://127.0.0.1:9/"}"#,
    );
    assert_eq!(local.url, "http://127.0.0.1:9/import?strict=1");
}

#[test]
fn track_maps_ids_time_context_and_properties() {
    let expected = parse(
        r#"{"event": "Order Completed", "properties": {
        "time": 1795343087014,
        "distinct_id": "user-42",
        "$insert_id": "054df660cd6c2a0810470520b94fb0b7905f",
        "$device_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "$user_id": "user-42",
        "ip": "203.0.113.7",
        "$current_url": "https://käse.example/kasse",
        "$referrer": "https://suche.example/?q=käse",
        "mp_lib": "analytics.js",
        "$lib_version": "next-1.84.3",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "herbst",
        "utm_term": "käse",
        "utm_content": "banner",
        "order_id": 98765432109876543210,
        "revenue": 42.50,
        "currency": "EUR",
        "price": 21.25,
        "quantity": 2,
        "productId": "käse-1",
        "coupon": "🧀 HERBST",
        "ratio": 0.1000000000000000055511151231257827
    }}"#,
    );
    let mapped = record(&mixpanel(""), &test_support::track());
    assert_eq!(mapped, expected);
    // Exact digits on the wire, not a float's rounding.
    let text = mapped.to_string();
    assert!(
        text.contains("98765432109876543210") && text.contains("42.50"),
        "{text}"
    );
}

#[test]
fn an_event_property_cannot_override_the_ids() {
    let event = parse(
        r#"{"type": "track", "event": "E", "anonymousId": "anon-1", "messageId": "m-1",
        "timestamp": "2026-11-22T10:00:00Z", "properties": {"time": "yesterday", "distinct_id": "x", "plan": "pro"}}"#,
    );
    let mapped = record(&mixpanel(""), &event);
    assert_eq!(
        mapped,
        json!({"event": "E", "properties": {
            "time": 1795341600000_i64, "distinct_id": "anon-1", "$insert_id": "m-1",
            "$device_id": "anon-1", "plan": "pro"
        }})
    );
}

#[test]
fn page_and_screen_become_loaded_events_or_named_ones() {
    let expected_page = parse(
        r#"{"event": "Loaded a Page", "properties": {
        "time": 1795343080000,
        "distinct_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "$insert_id": "ajs-next-1795343087100-0b0c",
        "$device_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "ip": "203.0.113.7",
        "$current_url": "https://käse.example/kasse",
        "$referrer": "https://suche.example/?q=käse",
        "mp_lib": "analytics.js",
        "$lib_version": "next-1.84.3",
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "herbst",
        "utm_term": "käse",
        "utm_content": "banner",
        "name": "Kasse",
        "category": "Shop",
        "path": "/kasse",
        "title": "Kasse – Käseladen",
        "url": "https://käse.example/kasse"
    }}"#,
    );
    assert_eq!(record(&mixpanel(""), &test_support::page()), expected_page);

    let expected_screen = parse(
        r#"{"event": "Loaded a Screen", "properties": {
        "time": 1795343160000,
        "distinct_id": "user-42",
        "$insert_id": "5E1A4C2B-9F0D-4E55-A1B2-C3D4E5F60718",
        "$user_id": "user-42",
        "ip": "192.0.2.10",
        "mp_lib": "analytics-ios",
        "$lib_version": "4.1.8",
        "$app_name": "Käseladen",
        "$app_version_string": "3.5.1",
        "$app_build_number": "351",
        "$app_namespace": "example.kaese",
        "$os": "iOS",
        "$os_version": "17.1",
        "$manufacturer": "Apple",
        "$model": "iPhone15,2",
        "$carrier": "T-Mobile",
        "$wifi_enabled": true,
        "$bluetooth_enabled": false,
        "$cellular_enabled": false,
        "$screen_width": 1179,
        "$screen_height": 2556,
        "$screen_density": 3,
        "name": "Warenkorb",
        "items": 3
    }}"#,
    );
    assert_eq!(
        record(&mixpanel(""), &test_support::screen()),
        expected_screen
    );

    let named = mixpanel(r#""page_events": "named""#);
    assert_eq!(
        record(&named, &test_support::page())["event"],
        json!("Viewed Shop Kasse Page")
    );
    assert_eq!(
        record(&named, &test_support::screen())["event"],
        json!("Viewed Warenkorb Screen")
    );
    let categorized = mixpanel(r#""page_events": "categorized""#);
    assert_eq!(
        record(&categorized, &test_support::page())["event"],
        json!("Viewed Shop Page")
    );
    let plan = categorized.build_values(&[&test_support::screen()]);
    assert_eq!(plan.unsupported.len(), 1);
    let plan = mixpanel(r#""page_events": "none""#).build_values(&[&test_support::page()]);
    assert!(plan.requests.is_empty() && plan.unsupported.len() == 1);
}

#[test]
fn identify_links_the_anonymous_id_to_the_user() {
    let expected = parse(
        r#"{"event": "$identify", "properties": {
        "time": 1795343100000,
        "distinct_id": "user-42",
        "$insert_id": "609ab419e588db880dfb7424c2e0bc91990a",
        "$device_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "$user_id": "user-42",
        "$identified_id": "user-42",
        "$anon_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "ip": "198.51.100.4"
    }}"#,
    );
    assert_eq!(record(&mixpanel(""), &test_support::identify()), expected);
    let mut only_user = test_support::identify();
    if let Some(map) = only_user.as_object_mut() {
        map.remove("anonymousId");
    }
    let plan = mixpanel("").build_values(&[&only_user]);
    assert_eq!(
        plan.unsupported.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![0]
    );
}

#[test]
fn group_is_unsupported_and_alias_depends_on_id_merge() {
    let simplified = mixpanel("");
    let group = test_support::group();
    let alias = test_support::alias();
    let plan = simplified.build_values(&[&group, &alias]);
    assert!(plan.requests.is_empty());
    assert_eq!(
        plan.unsupported.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![0, 1]
    );
    let original = mixpanel(r#""id_merge": "original""#);
    assert_eq!(
        record(&original, &alias),
        json!({"event": "$create_alias", "properties": {
            "time": 1795343280000_i64,
            "distinct_id": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
            "alias": "user-42",
            "$insert_id": "node-8d3f"
        }})
    );
}

#[test]
fn events_mixpanel_cannot_take_are_invalid() {
    let no_name = parse(r#"{"type": "track", "userId": "u", "timestamp": "2026-11-22T10:00:00Z"}"#);
    let no_time = parse(r#"{"type": "track", "event": "E", "userId": "u"}"#);
    let unknown = parse(r#"{"type": "merge", "userId": "u"}"#);
    let huge = parse(&format!(
        r#"{{"type": "track", "event": "E", "userId": "u", "timestamp": "2026-11-22T10:00:00Z", "properties": {{"blob": "{}"}}}}"#,
        "x".repeat(1024 * 1024)
    ));
    let plan = mixpanel("").build_values(&[&no_name, &no_time, &unknown, &huge]);
    assert!(plan.requests.is_empty());
    assert_eq!(
        plan.invalid.iter().map(|i| i.0).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );
    assert!(plan.invalid[3].1.contains("limit"), "{:?}", plan.invalid[3]);
}

#[test]
fn batches_hold_2000_events_and_10_mb() {
    let small = test_support::track();
    let events = vec![&small; 2001];
    let plan = mixpanel("").build_values(&events);
    let sizes: Vec<usize> = plan.requests.iter().map(|p| p.events.len()).collect();
    assert_eq!(sizes, vec![2000, 1]);
    assert_eq!(plan.requests[1].events, vec![2000]);

    let big = parse(&format!(
        r#"{{"type": "track", "event": "E", "userId": "u", "timestamp": "2026-11-22T10:00:00Z", "properties": {{"blob": "{}"}}}}"#,
        "x".repeat(900 * 1024)
    ));
    let events = vec![&big; 25];
    let plan = mixpanel("").build_values(&events);
    assert!(plan.requests.len() >= 3);
    let order: Vec<usize> = plan
        .requests
        .iter()
        .flat_map(|p| p.events.clone())
        .collect();
    assert_eq!(order, (0..25).collect::<Vec<_>>());
    for planned in &plan.requests {
        assert!(planned.request.body.len() <= 10 * 1024 * 1024);
    }
}

#[test]
fn answers_are_classified_as_mixpanel_documents() {
    let adapter = mixpanel("");
    assert_eq!(
        adapter.classify(
            &response(
                200,
                &[],
                r#"{"code":200,"num_records_imported":3,"status":"OK"}"#
            ),
            3
        ),
        Verdict::Delivered
    );
    let failed = r#"{"code": 400, "error": "some data points in the request failed validation",
        "failed_records": [{"index": 1, "$insert_id": "x", "field": "properties.time",
        "message": "'properties.time' is invalid: must be specified as seconds since epoch"}],
        "num_records_imported": 2, "status": "Bad Request"}"#;
    assert_eq!(
        adapter.classify(&response(400, &[], failed), 3),
        Verdict::Partial(vec![
            Verdict::Delivered,
            Verdict::Reject {
                reason: "mixpanel: properties.time: 'properties.time' is invalid: must be specified as seconds since epoch".into()
            },
            Verdict::Delivered,
        ])
    );
    for (status, body) in [
        (
            400,
            r#"{"code":400,"error":"unable to parse request body","status":"Bad Request"}"#,
        ),
        (
            401,
            r#"{"code":401,"error":"Invalid credentials","status":"Unauthorized"}"#,
        ),
        (
            403,
            r#"{"code":403,"error":"forbidden","status":"Forbidden"}"#,
        ),
        (
            413,
            r#"{"code":413,"error":"request exceeds max limit of 10485760 bytes","status":"Request Entity Too Large"}"#,
        ),
    ] {
        match adapter.classify(&response(status, &[], body), 3) {
            Verdict::Reject { reason } => assert!(reason.contains(&status.to_string()), "{reason}"),
            other => panic!("{status}: {other:?}"),
        }
    }
    let throttled = r#"{"code":429,"error":"Project exceeded rate limits. Please retry the request with exponential backoff.","status":"Too Many Requests"}"#;
    assert!(matches!(
        adapter.classify(&response(429, &[], throttled), 3),
        Verdict::Retry { after: None, .. }
    ));
    assert!(matches!(
        adapter.classify(&response(429, &[("retry-after", "3")], throttled), 3),
        Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(3)
    ));
    for status in [500, 502, 503] {
        assert!(matches!(
            adapter.classify(&response(status, &[], ""), 3),
            Verdict::Retry { .. }
        ));
    }
}

#[test]
fn debug_output_shows_no_secret() {
    for settings in [
        r#"{"service_account_username": "sa", "service_account_secret": "topsecret-sa", "project_id": "1"}"#,
        r#"{"api_secret": "topsecret-api"}"#,
        r#"{"project_token": "topsecret-token"}"#,
    ] {
        let adapter = match MixpanelSettings::read(&test_support::settings(settings)) {
            Ok(settings) => Mixpanel { settings },
            Err(error) => panic!("{error}"),
        };
        let event = test_support::track();
        let plan = adapter.build_values(&[&event]);
        for text in [format!("{adapter:?}"), format!("{plan:?}")] {
            assert!(!text.contains("topsecret"), "{text}");
            // Nor its base64 form in the Authorization header.
            assert!(!text.contains("Basic"), "{text}");
        }
    }
}

#[tokio::test]
async fn round_trip_delivers_every_kind_of_call() {
    let fake = FakeTool::start(Tool::Mixpanel).await;
    let adapter = adapter_for(&fake, &[]);
    let events = [
        test_support::track(),
        test_support::page(),
        test_support::identify(),
        test_support::screen(),
        test_support::group(),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    assert_eq!(plan.requests.len(), 1);
    assert_eq!(
        plan.unsupported.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![4]
    );
    deliver(adapter.as_ref(), &plan.requests[0]).await;
    let names: Vec<Value> = fake.accepted().iter().map(|e| e["event"].clone()).collect();
    assert_eq!(
        names,
        [
            json!("Order Completed"),
            json!("Loaded a Page"),
            json!("$identify"),
            json!("Loaded a Screen")
        ]
    );
    let recorded = &fake.requests()[0];
    assert_eq!(
        recorded.query.as_deref(),
        Some("strict=1&project_id=3141592")
    );
}

#[tokio::test]
async fn round_trip_strict_mode_failures_are_partial() {
    let fake = FakeTool::start(Tool::Mixpanel).await;
    let adapter = adapter_for(&fake, &[]);
    let old = parse(
        r#"{"type": "track", "event": "Old", "userId": "user-42", "messageId": "m-old", "timestamp": "1970-06-01T00:00:00Z"}"#,
    );
    let placeholder = parse(
        r#"{"type": "track", "event": "Anon", "userId": "null", "messageId": "m-null", "timestamp": "2026-11-22T10:00:00Z"}"#,
    );
    let events = [
        test_support::track(),
        old,
        test_support::page(),
        placeholder,
    ];
    let refs: Vec<&Value> = events.iter().collect();
    let planned = adapter.build_values(&refs).requests.remove(0);
    let (answer, verdict) = round_trip(adapter.as_ref(), &planned).await;
    assert_eq!(answer.status, 400);
    let Verdict::Partial(verdicts) = verdict else {
        panic!("expected a partial verdict: {verdict:?}");
    };
    assert_eq!(verdicts[0], Verdict::Delivered);
    assert!(
        matches!(&verdicts[1], Verdict::Reject { reason } if reason.contains("properties.time"))
    );
    assert_eq!(verdicts[2], Verdict::Delivered);
    assert!(matches!(&verdicts[3], Verdict::Reject { reason } if reason.contains("distinct_id")));
    // What the fake ingested is exactly what the verdict calls delivered.
    let ingested: Vec<Value> = fake.accepted().iter().map(|e| e["event"].clone()).collect();
    assert_eq!(ingested, [json!("Order Completed"), json!("Loaded a Page")]);
}

#[tokio::test]
async fn round_trip_credentials_and_throttling() {
    let fake = FakeTool::start(Tool::Mixpanel).await;
    let event = test_support::track();
    let none = Value::Null;
    let with_secret = adapter_for(
        &fake,
        &[
            ("service_account_username", none.clone()),
            ("service_account_secret", none.clone()),
            ("project_id", none.clone()),
            ("api_secret", json!(MIXPANEL_API_SECRET)),
        ],
    );
    let with_token = adapter_for(
        &fake,
        &[
            ("service_account_username", none.clone()),
            ("service_account_secret", none.clone()),
            ("project_token", json!(MIXPANEL_PROJECT_TOKEN)),
        ],
    );
    for adapter in [&with_secret, &with_token] {
        let planned = adapter.build_values(&[&event]).requests.remove(0);
        assert_eq!(
            adapter.classify(&send(&planned.request).await, 1),
            Verdict::Delivered
        );
    }
    let wrong = adapter_for(&fake, &[("service_account_secret", json!("wrong-secret"))]);
    let planned = wrong.build_values(&[&event]).requests.remove(0);
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 401);
    assert!(matches!(wrong.classify(&answer, 1), Verdict::Reject { .. }));
    assert_eq!(fake.accepted().len(), 2);
    assert_eq!(
        (
            MIXPANEL_SERVICE_ACCOUNT.is_empty(),
            MIXPANEL_SERVICE_SECRET.is_empty(),
            MIXPANEL_PROJECT_ID
        ),
        (false, false, "3141592")
    );

    fake.set_rate_limit(1);
    let adapter = adapter_for(&fake, &[]);
    let planned = adapter.build_values(&[&event]).requests.remove(0);
    let first = send(&planned.request).await;
    let second = send(&planned.request).await;
    assert_eq!(first.status, 200);
    assert_eq!(second.status, 429);
    assert!(matches!(
        adapter.classify(&second, 1),
        Verdict::Retry { .. }
    ));
}
