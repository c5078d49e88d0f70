//! Tests of the Slack adapter: settings, messages (default and templated, escaped), answers,
//! and round trips through the Slack fake.

use crate::test_support::BuildValues;
use std::time::Duration;

use serde_json::{Value, json};

use super::template::{Template, escape};
use super::*;
use crate::contract::Verdict;
use crate::event::Event;
use crate::test_support::{self, adapter_for, body_json, invalid_field, parse, response, send};
use crate::testkit::{FakeTool, Tool};

const URL: &str = r#""webhook_url": "https://hooks.slack.com/services/T000/B000/topsecretXXXX""#;

fn slack(extra: &str) -> Slack {
    let text = if extra.is_empty() {
        format!("{{{URL}}}")
    } else {
        format!("{{{URL}, {extra}}}")
    };
    match SlackSettings::read(&test_support::settings(&text)) {
        Ok(settings) => Slack { settings },
        Err(error) => panic!("settings: {error}"),
    }
}

fn message(adapter: &Slack, event: &Value) -> Value {
    let plan = adapter.build_values(&[event]);
    assert_eq!(plan.requests.len(), 1, "{plan:?}");
    body_json(&plan.requests[0].request)
}

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, "{}"), "webhook_url");
    assert_eq!(
        invalid_field(&TYPE, r#"{"webhook_url": "hooks.slack.com/services/x"}"#),
        "webhook_url"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{URL}, "templates": "x"}}"#)),
        "templates"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{URL}, "templates": {{"E": 1}}}}"#)),
        "templates.E"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{URL}, "templates": {{"Order Completed": "{{{{userId bought"}}}}"#)
        ),
        "templates.Order Completed"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{URL}, "templates": {{"E": "{{{{ }}}}"}}}}"#)
        ),
        "templates.E"
    );
    assert_eq!(
        invalid_field(
            &TYPE,
            &format!(r#"{{{URL}, "templates": {{"E": "{{{{a..b}}}}"}}}}"#)
        ),
        "templates.E"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{URL}, "icon_url": "not a url"}}"#)),
        "icon_url"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{URL}, "channel": 5}}"#)),
        "channel"
    );
    assert_eq!(
        invalid_field(&TYPE, &format!(r#"{{{URL}, "emoji": ":x:"}}"#)),
        "emoji"
    );
}

#[test]
fn the_default_message_names_the_event_the_person_and_the_properties() {
    let expected = "*Order Completed* by zoë@example.com\n\
        • order_id: 98765432109876543210\n\
        • revenue: 42.50\n\
        • currency: EUR\n\
        • price: 21.25\n\
        • quantity: 2\n\
        • productId: käse-1\n\
        • coupon: 🧀 HERBST\n\
        • ratio: 0.1000000000000000055511151231257827";
    let adapter = slack("");
    assert_eq!(
        message(&adapter, &test_support::track()),
        json!({"text": expected})
    );
    let request = &adapter.build_values(&[&test_support::track()]).requests[0].request;
    assert_eq!(
        request.url,
        "https://hooks.slack.com/services/T000/B000/topsecretXXXX"
    );
    assert_eq!(
        request.headers,
        vec![("Content-Type".to_string(), "application/json".to_string())]
    );
}

#[test]
fn templates_fill_placeholders_and_escape_what_they_insert() {
    let adapter = slack(
        r##""templates": {"Order Completed": "<https://shop.example/orders|Order> {{ properties.order_id }} by {{name}}: {{properties.note}} & {{properties.missing}}{{properties.items}}"},
        "channel": "#sales", "username": "Sluice", "icon_url": "https://cdn.example/icon.png""##,
    );
    let event = parse(
        r#"{"type": "track", "event": "Order Completed", "userId": "user-42", "timestamp": "2026-11-22T10:00:00Z",
        "properties": {"order_id": 98765432109876543210, "note": "a < b & c > d", "items": [1, {"sku": "k"}]},
        "context": {"traits": {"firstName": "Zoë", "lastName": "Çelik"}}}"#,
    );
    assert_eq!(
        message(&adapter, &event),
        json!({
            "text": "<https://shop.example/orders|Order> 98765432109876543210 by Zoë Çelik: a &lt; b &amp; c &gt; d & [1,{\"sku\":\"k\"}]",
            "channel": "#sales",
            "username": "Sluice",
            "icon_url": "https://cdn.example/icon.png"
        })
    );
    // Events without a template get the default format.
    let other = parse(r#"{"type": "track", "event": "Signed <Up>", "anonymousId": "anon-7"}"#);
    assert_eq!(
        message(&adapter, &other)["text"],
        json!("*Signed &lt;Up&gt;* by Anonymous user anon-7")
    );
}

#[test]
fn the_person_is_found_as_segment_finds_it() {
    let person = |context_traits: &str, ids: &str| {
        let event = parse(&format!(
            r#"{{"type": "track", "event": "E", {ids} "context": {{"traits": {context_traits}}}, "properties": {{}}}}"#
        ));
        match Template::parse("{{name}}") {
            Ok(template) => template.render(Event(&event)),
            Err(error) => panic!("{error}"),
        }
    };
    assert_eq!(
        person(r#"{"name": "Ann", "email": "a@x"}"#, r#""userId": "u1","#),
        "Ann"
    );
    assert_eq!(
        person(r#"{"username": "ann_b", "email": "a@x"}"#, ""),
        "ann_b"
    );
    assert_eq!(person(r#"{"email": "a@x"}"#, ""), "a@x");
    assert_eq!(
        person("{}", r#""userId": "u1", "anonymousId": "an1","#),
        "User u1"
    );
    assert_eq!(
        person("{}", r#""anonymousId": "an1","#),
        "Anonymous user an1"
    );
    assert_eq!(escape("<&>"), "&lt;&amp;&gt;");
}

#[test]
fn only_track_events_are_sent() {
    let adapter = slack("");
    let events = [
        test_support::track(),
        test_support::identify(),
        test_support::page(),
        test_support::screen(),
        test_support::group(),
        test_support::alias(),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    assert_eq!(plan.requests.len(), 1);
    assert_eq!(plan.requests[0].events, vec![0]);
    assert_eq!(
        plan.unsupported.iter().map(|u| u.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    assert_eq!(adapter.max_batch(), 1);
}

#[test]
fn answers_are_classified_as_slack_documents() {
    let adapter = slack("");
    assert_eq!(
        adapter.classify(&response(200, &[], "ok"), 1),
        Verdict::Delivered
    );
    for (status, code) in [
        (400, "invalid_payload"),
        (400, "no_text"),
        (400, "user_not_found"),
        (403, "action_prohibited"),
        (403, "invalid_token"),
        (404, "no_service"),
        (404, "channel_not_found"),
        (410, "channel_is_archived"),
    ] {
        assert_eq!(
            adapter.classify(&response(status, &[], code), 1),
            Verdict::Reject {
                reason: format!("slack: {code} (http {status})")
            }
        );
    }
    assert!(matches!(
        adapter.classify(&response(429, &[("retry-after", "30")], r#"{"ok":false}"#), 1),
        Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(30)
    ));
    for status in [500, 502, 503] {
        assert!(matches!(
            adapter.classify(&response(status, &[], "rollup_error"), 1),
            Verdict::Retry { .. }
        ));
    }
}

#[test]
fn debug_output_shows_no_secret() {
    let adapter = slack("");
    let event = test_support::track();
    let plan = adapter.build_values(&[&event]);
    for text in [format!("{adapter:?}"), format!("{plan:?}")] {
        assert!(
            !text.contains("topsecret") && !text.contains("hooks.slack.com"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn round_trip_through_the_fake() {
    let fake = FakeTool::start(Tool::Slack).await;
    let template = "{{name}} ordered for {{properties.revenue}} {{properties.currency}}";
    let adapter = adapter_for(
        &fake,
        &[("templates", json!({ "Order Completed": template }))],
    );
    let events = [test_support::track(), test_support::identify()];
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    let planned = &plan.requests[0];
    let answer = send(&planned.request).await;
    assert_eq!((answer.status, answer.body.as_slice()), (200, &b"ok"[..]));
    assert_eq!(adapter.classify(&answer, 1), Verdict::Delivered);
    assert_eq!(
        fake.accepted(),
        vec![json!({"text": "zoë@example.com ordered for 42.50 EUR"})]
    );

    // Scripted answers Slack documents are final.
    fake.push_answer(410, &[], "channel_is_archived");
    let answer = send(&planned.request).await;
    assert_eq!(
        adapter.classify(&answer, 1),
        Verdict::Reject {
            reason: "slack: channel_is_archived (http 410)".into()
        }
    );
    // A revoked webhook (another path) is `no_service`.
    let revoked_url = format!("{}/services/T0/B0/revoked", fake.base_url());
    let revoked = adapter_for(&fake, &[("webhook_url", json!(revoked_url))]);
    let answer = send(&revoked.build_values(&[&events[0]]).requests[0].request).await;
    assert_eq!(
        revoked.classify(&answer, 1),
        Verdict::Reject {
            reason: "slack: no_service (http 404)".into()
        }
    );
    // Over the rate limit: 429 with Retry-After.
    fake.set_rate_limit(1);
    let _ = send(&planned.request).await;
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 429);
    assert!(matches!(
        adapter.classify(&answer, 1),
        Verdict::Retry { after: Some(wait), .. } if wait <= Duration::from_secs(1)
    ));
    assert_eq!(fake.accepted().len(), 2);
}

#[tokio::test]
async fn the_fake_refuses_messages_without_text() {
    let fake = FakeTool::start(Tool::Slack).await;
    let url = fake.settings()["webhook_url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let empty = crate::request::json_post(url.clone(), Vec::new(), br#"{"text": "  "}"#.to_vec());
    let answer = send(&empty).await;
    assert_eq!(
        (
            answer.status,
            String::from_utf8_lossy(&answer.body).into_owned()
        ),
        (400, "no_text".into())
    );
    let broken = crate::request::json_post(url, Vec::new(), b"{not json".to_vec());
    let answer = send(&broken).await;
    assert_eq!(
        (
            answer.status,
            String::from_utf8_lossy(&answer.body).into_owned()
        ),
        (400, "invalid_payload".into())
    );
}
