//! The harness every destination type passes: whatever mix of events it is given, a plan
//! places each event exactly once and keeps the order; the shared answers (2xx, 429, 5xx) read
//! the same way; a partial verdict has one entry per event. For forwarded deletions: a type
//! without its deletion credentials plans none, and one with them carries each distinct id
//! exactly once, in order, and reads the shared answers the same way.

use crate::test_support::BuildValues;
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::contract::{Adapter, HttpRequest, Verdict};
use crate::test_support::{self, body_json, response};
use crate::types;

/// Working settings for each type.
fn settings(kind: &str) -> Map<String, Value> {
    let text = match kind {
        "webhook" => r#"{"url": "https://hooks.example/in", "batch_size": 3}"#,
        "mixpanel" => r#"{"api_secret": "s", "page_events": "named"}"#,
        "amplitude" => r#"{"api_key": "k", "page_events": "categorized"}"#,
        "slack" => r#"{"webhook_url": "https://hooks.slack.com/services/T/B/x"}"#,
        "meta_audiences" => r#"{"access_token": "t", "ad_account_id": "act_1"}"#,
        "google_audiences" => r#"{"access_token": "t", "operating_account_id": "1234567890"}"#,
        "tiktok_audiences" => r#"{"access_token": "t", "advertiser_id": "7001", "max_batch": 2}"#,
        other => panic!("no settings for {other}"),
    };
    test_support::settings(text)
}

/// Settings with the credentials forwarded deletions need, for the types that take them.
fn deletion_settings(kind: &str) -> Option<Map<String, Value>> {
    let text = match kind {
        "webhook" => r#"{"url": "https://hooks.example/in", "secret": "s"}"#,
        "mixpanel" => r#"{"api_secret": "s", "project_token": "t", "gdpr_api_token": "g"}"#,
        "amplitude" => r#"{"api_key": "k", "secret_key": "s"}"#,
        _ => return None,
    };
    Some(test_support::settings(text))
}

fn adapters() -> Vec<(&'static str, Box<dyn Adapter>)> {
    types()
        .iter()
        .map(|t| {
            let adapter =
                (t.build)(&settings(t.kind)).unwrap_or_else(|e| panic!("{}: {e}", t.kind));
            (t.kind, adapter)
        })
        .collect()
}

fn deletion_adapters() -> Vec<(&'static str, Box<dyn Adapter>)> {
    types()
        .iter()
        .filter_map(|t| {
            let settings = deletion_settings(t.kind)?;
            let adapter = (t.build)(&settings).unwrap_or_else(|e| panic!("{}: {e}", t.kind));
            Some((t.kind, adapter))
        })
        .collect()
}

/// The ids a deletion request carries, whatever the tool's body.
fn carried_ids(request: &HttpRequest) -> Vec<String> {
    let body = body_json(request);
    let texts = |value: &Value| -> Vec<String> {
        value
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|id| id.as_str().map(str::to_string))
            .collect()
    };
    match (&body["user_ids"], &body["distinct_ids"], &body["userId"]) {
        (ids @ Value::Array(_), _, _) | (_, ids @ Value::Array(_), _) => texts(ids),
        (_, _, Value::String(id)) => vec![id.clone()],
        _ => panic!("no ids in {body}"),
    }
}

/// The fixtures plus events each tool may refuse.
fn samples() -> Vec<Value> {
    vec![
        test_support::track(),
        test_support::identify(),
        test_support::page(),
        test_support::screen(),
        test_support::group(),
        test_support::alias(),
        test_support::parse(r#"{"type": "track", "userId": "u"}"#),
        test_support::parse(r#"{"type": "unknown"}"#),
        test_support::parse(
            r#"{"type": "track", "event": "E", "anonymousId": "a", "timestamp": "2026-01-01T00:00:00Z"}"#,
        ),
        test_support::audience_identify("m-enter", true),
        test_support::audience_identify("m-exit", false),
        test_support::parse(
            r#"{"type": "track", "event": "Audience Entered", "userId": "u2", "messageId": "m-t",
                "timestamp": "2026-01-01T00:00:00Z",
                "properties": {"audience_key": "vip", "vip": true},
                "context": {"traits": {"email": "x@example.com"},
                            "personas": {"computation_class": "audience", "computation_key": "vip",
                                         "external_audience_id": "555"}}}"#,
        ),
    ]
}

/// A success body the tool sends for any request.
fn ok_body(kind: &str) -> &'static str {
    match kind {
        // TikTok answers every call with HTTP 200 and a code.
        "tiktok_audiences" => r#"{"code": 0, "message": "OK", "request_id": "r1", "data": {}}"#,
        _ => "ok",
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_event_is_placed_exactly_once_in_order(picks in proptest::collection::vec(0usize..12, 0..40)) {
        let samples = samples();
        let events: Vec<&Value> = picks.iter().map(|pick| &samples[*pick]).collect();
        for (kind, adapter) in adapters() {
            let plan = adapter.build_values(&events);
            let mut seen = vec![0usize; events.len()];
            let mut sent = Vec::new();
            for planned in &plan.requests {
                prop_assert!(!planned.events.is_empty(), "{kind}: empty request");
                prop_assert!(planned.events.len() <= adapter.max_batch(), "{kind}: over max_batch");
                sent.extend(planned.events.iter().copied());
            }
            prop_assert!(sent.windows(2).all(|w| w[0] < w[1]), "{kind}: order {sent:?}");
            let set_aside = plan.unsupported.iter().chain(&plan.invalid).map(|(index, _)| *index);
            for index in sent.into_iter().chain(set_aside) {
                prop_assert!(index < events.len(), "{kind}: index {index}");
                seen[index] += 1;
            }
            prop_assert!(seen.iter().all(|count| *count == 1), "{kind}: {seen:?}");
        }
    }

    #[test]
    fn every_deleted_id_is_carried_exactly_once_in_order(
        picks in proptest::collection::vec(0usize..300, 0..400),
    ) {
        let at = time::OffsetDateTime::UNIX_EPOCH;
        let ids: Vec<String> = picks
            .iter()
            .map(|pick| if *pick == 0 { String::new() } else { format!("id-{pick}") })
            .collect();
        let mut expected: Vec<String> = Vec::new();
        for id in &ids {
            if !id.is_empty() && !expected.contains(id) {
                expected.push(id.clone());
            }
        }
        for (kind, adapter) in deletion_adapters() {
            let plan = adapter.plan_deletion(&ids, at);
            prop_assert!(plan.is_some(), "{kind}: takes no deletions");
            let sent: Vec<String> = plan.iter().flatten().flat_map(carried_ids).collect();
            prop_assert_eq!(&sent, &expected, "{}", kind);
        }
    }
}

#[test]
fn without_deletion_credentials_no_type_plans_a_deletion() {
    let at = time::OffsetDateTime::UNIX_EPOCH;
    let person = vec!["user-42".to_string()];
    let takes: Vec<(&str, bool)> = adapters()
        .iter()
        .map(|(kind, adapter)| (*kind, adapter.plan_deletion(&person, at).is_some()))
        .collect();
    // A webhook needs nothing more than its URL; the others need a deletion credential.
    assert_eq!(
        takes,
        [
            ("webhook", true),
            ("mixpanel", false),
            ("amplitude", false),
            ("slack", false),
            ("meta_audiences", false),
            ("google_audiences", false),
            ("tiktok_audiences", false),
        ]
    );
    let kinds: Vec<&str> = deletion_adapters().iter().map(|(kind, _)| *kind).collect();
    assert_eq!(kinds, ["webhook", "mixpanel", "amplitude"]);
}

#[test]
fn deletion_answers_read_the_same_for_every_type() {
    for (kind, adapter) in adapters() {
        assert_eq!(
            adapter.classify_deletion(&response(200, &[], "{}")),
            Verdict::Delivered,
            "{kind}"
        );
        for status in [429, 500, 503] {
            assert!(
                matches!(
                    adapter.classify_deletion(&response(status, &[], "{}")),
                    Verdict::Retry { .. }
                ),
                "{kind} {status}"
            );
        }
        for status in [400, 401, 403, 404] {
            assert!(
                matches!(
                    adapter.classify_deletion(&response(status, &[], "{}")),
                    Verdict::Reject { .. }
                ),
                "{kind} {status}"
            );
        }
    }
}

#[test]
fn shared_answers_read_the_same_for_every_type() {
    for (kind, adapter) in adapters() {
        assert_eq!(
            adapter.classify(&response(200, &[], ok_body(kind)), 2),
            Verdict::Delivered,
            "{kind}"
        );
        for status in [429, 500, 502, 503, 504] {
            assert!(
                matches!(
                    adapter.classify(&response(status, &[], "{}"), 2),
                    Verdict::Retry { .. }
                ),
                "{kind} {status}"
            );
        }
        assert!(
            matches!(
                adapter.classify(&response(404, &[], "{}"), 2),
                Verdict::Reject { .. }
            ),
            "{kind} 404"
        );
        // A 401 is the token refused for the types whose credential is an OAuth token (the
        // destination waits for a new one); the others reject the events.
        let verdict = adapter.classify(&response(401, &[], "{}"), 2);
        if TOKEN_TYPES.contains(&kind) {
            assert!(
                matches!(&verdict, Verdict::Unauthorized { reason } if reason.contains("401")),
                "{kind}: {verdict:?}"
            );
        } else {
            assert!(matches!(verdict, Verdict::Reject { .. }), "{kind}");
        }
    }
}

/// The types whose credential is an OAuth access token.
const TOKEN_TYPES: [&str; 3] = ["meta_audiences", "google_audiences", "tiktok_audiences"];

#[test]
fn partial_verdicts_have_one_entry_per_event() {
    let bodies = [
        r#"{"failed_records": [{"index": 0, "field": "f", "message": "m"}, {"index": 7, "field": "f", "message": "m"}]}"#,
        r#"{"events_with_invalid_fields": {"time": [0, 7]}}"#,
    ];
    for (kind, adapter) in adapters() {
        for body in bodies {
            if let Verdict::Partial(verdicts) = adapter.classify(&response(400, &[], body), 3) {
                assert_eq!(verdicts.len(), 3, "{kind}");
                assert!(
                    verdicts.iter().all(|v| !matches!(v, Verdict::Partial(_))),
                    "{kind}"
                );
            }
        }
    }
}
