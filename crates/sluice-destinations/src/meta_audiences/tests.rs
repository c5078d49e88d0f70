//! Tests of the Meta Custom Audiences adapter: settings, the exact request of each membership
//! form, consent, batching and sessions, the reading of every class of Meta answer, audience
//! creation, and round trips through the Meta fake.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::audience::AudiencePlatform;
use crate::contract::{Method, Verdict};
use crate::test_support::{
    self, BuildValues, adapter_for, body_json, invalid_field, parse, response, send,
};
use crate::testkit::credentials::META_AD_ACCOUNT_ID;
use crate::testkit::{FakeTool, MISSING_AUDIENCE_ID, Tool};

const BASE: &str = r#""access_token": "EAAtoken", "ad_account_id": "act_42""#;

fn meta(extra: &str) -> MetaAudiences {
    let text = if extra.is_empty() {
        format!("{{{BASE}}}")
    } else {
        format!("{{{BASE}, {extra}}}")
    };
    MetaAudiences::new(&test_support::settings(&text)).unwrap_or_else(|e| panic!("{e}"))
}

/// A membership event for `audience`: identify (or track when `track`), `user` entering or not.
fn membership(audience: &str, user: &str, member: bool, traits: Value) -> Value {
    json!({
        "type": "identify",
        "userId": user,
        "messageId": format!("msg-{user}-{member}"),
        "timestamp": "2026-11-22T10:00:00Z",
        "traits": merge(json!({"vip": member}), traits),
        "context": {"personas": {"computation_class": "audience", "computation_key": "vip",
                                 "external_audience_id": audience}}
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Value::Object(base), Value::Object(extra)) = (&mut base, extra) {
        base.extend(extra);
    }
    base
}

const MARY_EMAIL: &str = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79";
const MARY_PHONE: &str = "1ef970831d7963307784fa8688e8fce101a15685d62aa765fed23f3a2c576a4e";

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, "{}"), "access_token");
    assert_eq!(
        invalid_field(&TYPE, r#"{"access_token": "t"}"#),
        "ad_account_id"
    );
    assert_eq!(
        invalid_field(&TYPE, r#"{"access_token": "t", "ad_account_id": "act_x1"}"#),
        "ad_account_id"
    );
    for (extra, field) in [
        (r#""api_version": "25.0""#, "api_version"),
        (r#""api_url": "ftp://graph""#, "api_url"),
        (r#""customer_file_source": "ANY""#, "customer_file_source"),
        (r#""default_country": "Atlantis""#, "default_country"),
        (r#""consent_category": "a b""#, "consent_category"),
        (r#""app_secret": "has space""#, "app_secret"),
        (r#""token": "typo""#, "token"),
    ] {
        assert_eq!(
            invalid_field(&TYPE, &format!("{{{BASE}, {extra}}}")),
            field,
            "{extra}"
        );
    }
    // `act_` is optional.
    assert!(
        MetaAudiences::new(&test_support::settings(
            r#"{"access_token": "t", "ad_account_id": "42"}"#
        ))
        .is_ok()
    );
}

#[test]
fn an_entered_identify_becomes_one_post_with_every_key_meta_takes() {
    let adapter = meta(r#""default_country": "US""#);
    let event = test_support::audience_identify("m-1", true);
    let plan = adapter.build_values(&[&event]);
    assert!(
        plan.unsupported.is_empty() && plan.invalid.is_empty(),
        "{plan:?}"
    );
    assert_eq!(plan.requests.len(), 1);
    let request = &plan.requests[0].request;
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        "https://graph.facebook.com/v25.0/23850000000001/users"
    );
    assert_eq!(
        request.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Authorization".to_string(), "Bearer EAAtoken".to_string()),
        ]
    );
    let body = body_json(request);
    let session_id = body["session"]["session_id"].as_u64().unwrap();
    assert!(session_id > 0 && session_id <= i64::MAX as u64);
    assert_eq!(
        body,
        json!({
            "session": {"session_id": session_id, "batch_seq": 1, "last_batch_flag": true, "estimated_num_total": 1},
            "payload": {
                "schema": ["EXTERN_ID", "EMAIL", "PHONE", "DOBY", "DOBM", "DOBD", "LN", "FN", "FI", "GEN",
                           "CT", "ST", "ZIP", "COUNTRY", "MADID"],
                "data": [[
                    "user-42",
                    MARY_EMAIL,
                    MARY_PHONE,
                    "78e370b587b145920213731b7c7c725e512b3b6577c51c800218a7c764c532ae",
                    "19b100ab7725c612f3d80ff203ca53cea5cadaafae3bf0f88f0fb4089fe08815",
                    "0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5",
                    "b4cb6cb33fe4b865868de825023a1e2790dc12ac01ecc8d7c5afe8254071c8ba",
                    crate::audience::hash::sha256_hex("mary").text(),
                    "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a",
                    "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111",
                    "1a6bd4d9d79dc0a79b53795c70d3349fa9e38968a3fbefbfe8783efb1d2b6aac",
                    "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126",
                    "e73ac16e69f060ee98b0fda5f66f48c4648ee26950e9bab3a097389853fd859e",
                    "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621",
                    "6d92078a-8246-4ba4-ae5b-76104861e7dc"
                ]]
            }
        })
    );
}

#[test]
fn the_track_form_reads_context_traits_and_properties() {
    let adapter = meta("");
    let event = parse(
        r#"{"type": "track", "event": "Audience Entered", "userId": "u7", "messageId": "t1",
            "properties": {"audience_key": "vip", "vip": true, "phone": "+1 (555) 987-6543"},
            "context": {"traits": {"email": "Mary@Example.COM"},
                        "personas": {"computation_class": "audience", "computation_key": "vip",
                                     "external_audience_id": "777"}}}"#,
    );
    let plan = adapter.build_values(&[&event]);
    let body = body_json(&plan.requests[0].request);
    assert_eq!(
        plan.requests[0].request.url,
        "https://graph.facebook.com/v25.0/777/users"
    );
    assert_eq!(
        body["payload"]["schema"],
        json!(["EXTERN_ID", "EMAIL", "PHONE"])
    );
    assert_eq!(
        body["payload"]["data"],
        json!([["u7", MARY_EMAIL, MARY_PHONE]])
    );
}

#[test]
fn rows_with_different_keys_leave_the_others_empty() {
    let adapter = meta("");
    let email_only = membership("777", "", true, json!({"email": "Mary@Example.COM"}));
    // A user id that needs escaping, a phone and a mobile id; no email.
    let mut no_email = membership("777", "u\"7\\", true, json!({"phone": "+1 (555) 987-6543"}));
    no_email["context"]["device"] =
        json!({"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC"});
    // Every key the request has: its cells are copied as they stand.
    let mut every_key = membership(
        "777",
        "u8",
        true,
        json!({"email": "Mary@Example.COM", "phone": "+1 (555) 987-6543"}),
    );
    every_key["context"]["device"] =
        json!({"advertisingId": "00000000-0000-0000-0000-00000000000A"});
    let plan = adapter.build_values(&[&email_only, &no_email, &every_key]);
    assert_eq!(plan.requests.len(), 1, "{plan:?}");
    let body = body_json(&plan.requests[0].request);
    assert_eq!(
        body["payload"]["schema"],
        json!(["EXTERN_ID", "EMAIL", "PHONE", "MADID"])
    );
    assert_eq!(
        body["payload"]["data"],
        json!([
            ["", MARY_EMAIL, "", ""],
            [
                "u\"7\\",
                "",
                MARY_PHONE,
                "6d92078a-8246-4ba4-ae5b-76104861e7dc"
            ],
            [
                "u8",
                MARY_EMAIL,
                MARY_PHONE,
                "00000000-0000-0000-0000-00000000000a"
            ],
        ])
    );
}

#[test]
fn exits_and_refused_consent_are_deletes() {
    let adapter = meta("");
    let exit = test_support::audience_identify("m-2", false);
    let mut refused = test_support::audience_identify("m-3", true);
    refused["context"]["consent"]["categoryPreferences"]["advertising"] = json!(false);
    for event in [exit, refused] {
        let plan = adapter.build_values(&[&event]);
        assert_eq!(plan.requests.len(), 1, "{plan:?}");
        assert_eq!(plan.requests[0].request.method, Method::Delete);
        assert_eq!(
            plan.requests[0].request.url,
            "https://graph.facebook.com/v25.0/23850000000001/users"
        );
    }
    // Another consent category leaves the refused advertising answer out of it.
    let adapter = meta(r#""consent_category": "C0004""#);
    let mut refused = test_support::audience_identify("m-3", true);
    refused["context"]["consent"]["categoryPreferences"]["advertising"] = json!(false);
    let plan = adapter.build_values(&[&refused]);
    assert_eq!(plan.requests[0].request.method, Method::Post);
}

#[test]
fn what_cannot_be_sent_is_set_aside_with_a_reason() {
    let adapter = meta("");
    let no_audience = membership("", "u1", true, json!({"email": "a@b.co"}));
    let no_identifier = json!({
        "type": "identify", "messageId": "x",
        "traits": {"vip": true, "email": "not an email", "gender": "unknown"},
        "context": {"personas": {"computation_class": "audience", "computation_key": "vip",
                                 "external_audience_id": "1"}}
    });
    let nothing = json!({
        "type": "identify", "messageId": "y", "traits": {"vip": true},
        "context": {"personas": {"computation_class": "audience", "computation_key": "vip",
                                 "external_audience_id": "1"}}
    });
    let events = [
        test_support::track(),
        no_audience,
        no_identifier,
        nothing,
        test_support::identify(),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    assert!(plan.requests.is_empty());
    let unsupported: Vec<usize> = plan.unsupported.iter().map(|(i, _)| *i).collect();
    assert_eq!(unsupported, [0, 4]);
    let invalid: Vec<(usize, &str)> = plan.invalid.iter().map(|(i, r)| (*i, r.as_str())).collect();
    assert_eq!(invalid.len(), 3);
    assert!(invalid[0].1.contains("external_audience_id"), "{invalid:?}");
    assert_eq!(
        invalid[1].1,
        "no identifier meta can match on after normalization (present: email, gender)"
    );
    assert_eq!(
        invalid[2].1,
        "no identifier meta can match on: the event carries none"
    );
    // No reason quotes a value.
    assert!(!format!("{plan:?}").contains("not an email"));
}

#[test]
fn runs_follow_the_events_and_sessions_are_stable() {
    let adapter = meta("");
    let email = |n: usize| json!({"email": format!("p{n}@example.com")});
    let events = [
        membership("1", "a", true, email(1)),
        membership("1", "b", true, email(2)),
        membership("2", "c", true, email(3)),
        membership("1", "d", false, email(4)),
        membership("1", "e", true, email(5)),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    let shape: Vec<(Method, String, Vec<usize>)> = plan
        .requests
        .iter()
        .map(|p| {
            (
                p.request.method,
                p.request.url.rsplit('/').nth(1).unwrap().to_string(),
                p.events.clone(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (Method::Post, "1".into(), vec![0, 1]),
            (Method::Post, "2".into(), vec![2]),
            (Method::Delete, "1".into(), vec![3]),
            (Method::Post, "1".into(), vec![4]),
        ]
    );
    let sessions: Vec<u64> = plan
        .requests
        .iter()
        .map(|p| {
            body_json(&p.request)["session"]["session_id"]
                .as_u64()
                .unwrap()
        })
        .collect();
    let mut distinct = sessions.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 4, "one session per run: {sessions:?}");
    // Planning the same events again (a retry) gives the same sessions and bodies.
    assert_eq!(adapter.build_values(&refs), plan);
}

#[test]
fn over_ten_thousand_members_make_two_requests_of_one_session() {
    let adapter = meta("");
    let events: Vec<Value> = (0..10_001)
        .map(|n| membership("9", &format!("u{n}"), true, json!({})))
        .collect();
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    assert_eq!(plan.requests.len(), 2);
    assert_eq!(plan.requests[0].events.len(), 10_000);
    assert_eq!(plan.requests[1].events, vec![10_000]);
    let first = body_json(&plan.requests[0].request);
    let second = body_json(&plan.requests[1].request);
    assert_eq!(
        first["session"]["session_id"],
        second["session"]["session_id"]
    );
    assert_eq!(
        (
            &first["session"]["batch_seq"],
            &first["session"]["last_batch_flag"]
        ),
        (&json!(1), &json!(false))
    );
    assert_eq!(
        (
            &second["session"]["batch_seq"],
            &second["session"]["last_batch_flag"]
        ),
        (&json!(2), &json!(true))
    );
    assert_eq!(first["session"]["estimated_num_total"], json!(10_001));
    assert_eq!(
        first["payload"]["data"].as_array().map(Vec::len),
        Some(10_000)
    );
    assert_eq!(first["payload"]["schema"], json!(["EXTERN_ID"]));
}

#[test]
fn appsecret_proof_and_api_overrides_shape_the_url() {
    let adapter = meta(
        r#""app_secret": "shh", "api_version": "v24.0", "api_url": "https://proxy.test/graph/""#,
    );
    let event = test_support::audience_identify("m-1", true);
    let url = adapter
        .build_values(&[&event])
        .requests
        .remove(0)
        .request
        .url;
    let proof = super::settings::appsecret_proof("shh", "EAAtoken");
    assert_eq!(
        url,
        format!("https://proxy.test/graph/v24.0/23850000000001/users?appsecret_proof={proof}")
    );
}

#[test]
fn every_class_of_meta_answer_reads_as_documented() {
    let adapter = meta("");
    let classify = |status: u16, headers: &[(&str, &str)], body: &str| {
        adapter.classify(&response(status, headers, body), 1)
    };
    let error = |code: i64, subcode: Option<i64>| {
        let mut error = json!({"message": "(#x) about mary@example.com", "type": "OAuthException", "code": code, "fbtrace_id": "AbC_12"});
        if let Some(subcode) = subcode {
            error["error_subcode"] = json!(subcode);
        }
        json!({"error": error}).to_string()
    };
    assert_eq!(
        classify(
            200,
            &[],
            r#"{"audience_id": "1", "session_id": 9, "num_received": 2, "num_invalid_entries": 0, "invalid_entry_samples": {}}"#
        ),
        Verdict::Delivered
    );
    assert!(matches!(
        classify(200, &[], r#"{"audience_id": "1", "num_received": 2, "num_invalid_entries": 2}"#),
        Verdict::Reject { reason } if reason.contains("every row was invalid")
    ));
    // Throttling: the longest wait Meta names.
    let usage = r#"{"42": [{"type": "custom_audience", "call_count": 100, "estimated_time_to_regain_access": 5}, {"estimated_time_to_regain_access": 2}]}"#;
    for code in [4, 17, 32, 613, 80003] {
        assert_eq!(
            classify(
                400,
                &[("x-business-use-case-usage", usage)],
                &error(code, Some(2446079))
            ),
            Verdict::Retry {
                after: Some(Duration::from_secs(300)),
                reason: format!(
                    "meta: rate limited, error {code}/2446079: too many calls (fbtrace_id AbC_12)"
                )
            }
        );
    }
    assert!(matches!(
        classify(400, &[("retry-after", "30")], &error(17, None)),
        Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(30)
    ));
    assert!(matches!(
        classify(400, &[], &error(80003, None)),
        Verdict::Retry { after: None, .. }
    ));
    for code in [1, 2, 341, 368, 5000, 21009] {
        assert!(
            matches!(
                classify(500, &[], &error(code, None)),
                Verdict::Retry { .. }
            ),
            "{code}"
        );
    }
    let transient = r#"{"error": {"code": 9999, "is_transient": true}}"#;
    assert!(matches!(
        classify(400, &[], transient),
        Verdict::Retry { .. }
    ));
    assert_eq!(
        classify(400, &[], &error(190, Some(460))),
        Verdict::Unauthorized {
            reason: "meta error 190/460: the access token is invalid, expired or revoked (fbtrace_id AbC_12)".into()
        }
    );
    for (code, subcode, says) in [
        (100, Some(33), "error 100/33: the audience does not exist"),
        (100, Some(1713230), "integrity"),
        (200, Some(1870090), "terms are not accepted"),
        (294, None, "error 294"),
        (2650, Some(1870147), "error 2650/1870147"),
        (1487366, None, "deleted"),
        (12345, None, "error 12345: refused"),
    ] {
        match classify(400, &[], &error(code, subcode)) {
            Verdict::Reject { reason } => {
                assert!(reason.contains(says), "{reason}");
                assert!(!reason.contains("mary"), "echoes personal data: {reason}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    // Without Meta's error body, the HTTP status.
    assert!(matches!(
        classify(503, &[], "<html>"),
        Verdict::Retry { .. }
    ));
    assert!(matches!(classify(429, &[], ""), Verdict::Retry { .. }));
    assert!(
        matches!(classify(401, &[], ""), Verdict::Unauthorized { reason } if reason.contains("401"))
    );
    assert_eq!(
        classify(404, &[], "mary@example.com not found"),
        Verdict::Reject {
            reason: "meta: http 404".into()
        }
    );
}

#[test]
fn creating_an_audience() {
    let adapter = meta(r#""customer_file_source": "BOTH_USER_AND_PARTNER_PROVIDED""#);
    let request = adapter.plan_create_audience("VIP buyers", "from sluice");
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        "https://graph.facebook.com/v25.0/act_42/customaudiences"
    );
    assert_eq!(
        body_json(&request),
        json!({"name": "VIP buyers", "subtype": "CUSTOM", "description": "from sluice",
               "customer_file_source": "BOTH_USER_AND_PARTNER_PROVIDED"})
    );
    assert_eq!(
        adapter.parse_created(&response(200, &[], r#"{"id": "23850000000009"}"#)),
        Ok("23850000000009".to_string())
    );
    assert!(matches!(
        adapter.parse_created(&response(200, &[], "{}")),
        Err(Verdict::Reject { .. })
    ));
    assert!(matches!(
        adapter.parse_created(&response(400, &[], r#"{"error": {"code": 17}}"#)),
        Err(Verdict::Retry { .. })
    ));
}

#[test]
fn debug_output_shows_no_secret() {
    let adapter = meta(r#""app_secret": "topsecret-app""#);
    let event = test_support::audience_identify("m-1", true);
    let plan = adapter.build_values(&[&event]);
    for text in [format!("{adapter:?}"), format!("{plan:?}")] {
        assert!(
            !text.contains("EAAtoken") && !text.contains("topsecret"),
            "{text}"
        );
        assert!(!text.contains(MARY_EMAIL), "{text}");
    }
}

#[tokio::test]
async fn round_trip_creates_an_audience_and_syncs_its_members() {
    let fake = FakeTool::start(Tool::MetaAudiences).await;
    let adapter = MetaAudiences::new(&fake.settings()).unwrap();
    let created = send(&adapter.plan_create_audience("VIP buyers", "sluice audience aud_1")).await;
    let audience = adapter.parse_created(&created).unwrap();
    assert_eq!(
        fake.created_audiences(),
        vec![(audience.clone(), "VIP buyers".to_string())]
    );

    let sync = adapter_for(&fake, &[]);
    let people = ["ann", "bob", "cat"];
    let enters: Vec<Value> = people
        .iter()
        .enumerate()
        .map(|(n, p)| {
            let traits =
                json!({"email": format!("{p}@example.com"), "phone": format!("(555) 987-600{n}")});
            membership(&audience, p, true, traits)
        })
        .collect();
    let refs: Vec<&Value> = enters.iter().collect();
    for planned in sync.build_values(&refs).requests {
        let answer = send(&planned.request).await;
        assert_eq!(
            sync.classify(&answer, planned.events.len()),
            Verdict::Delivered,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        assert_eq!(
            (
                body["num_received"].clone(),
                body["num_invalid_entries"].clone()
            ),
            (json!(3), json!(0))
        );
    }
    let members = fake.members(&audience);
    assert_eq!(members.len(), 3);
    let bob = crate::audience::hash::sha256_hex("bob@example.com");
    assert!(
        members
            .iter()
            .any(|m| m.get("EMAIL").map(String::as_str) == Some(bob.text().as_str()))
    );

    // Bob leaves; Cat enters again but refused advertising: removed.
    let bob_leaves = membership(&audience, "bob", false, json!({"email": "bob@example.com"}));
    let mut cat_refuses = membership(&audience, "cat", true, json!({"email": "cat@example.com"}));
    cat_refuses["context"]["consent"] = json!({"categoryPreferences": {"advertising": false}});
    for planned in sync.build_values(&[&bob_leaves, &cat_refuses]).requests {
        assert_eq!(planned.request.method, Method::Delete);
        let answer = send(&planned.request).await;
        assert_eq!(sync.classify(&answer, 2), Verdict::Delivered);
    }
    let left: Vec<String> = fake
        .members(&audience)
        .iter()
        .filter_map(|m| m.get("EXTERN_ID").cloned())
        .collect();
    assert_eq!(left, ["ann"]);
    // Every request carried the session and the proof the fake's app requires.
    assert!(fake.requests().iter().all(|r| {
        r.query
            .as_deref()
            .is_some_and(|q| q.starts_with("appsecret_proof="))
    }));
}

#[tokio::test]
async fn round_trip_refusals_and_rate_limits() {
    let fake = FakeTool::start(Tool::MetaAudiences).await;
    let event = membership(
        "23850000000001",
        "ann",
        true,
        json!({"email": "ann@example.com"}),
    );

    let revoked = adapter_for(&fake, &[("access_token", json!("EAArevoked"))]);
    let planned = revoked.build_values(&[&event]).requests.remove(0);
    let verdict = revoked.classify(&send(&planned.request).await, 1);
    assert!(
        matches!(&verdict, Verdict::Unauthorized { reason } if reason.starts_with("meta error 190")),
        "{verdict:?}"
    );

    let no_proof = adapter_for(&fake, &[("app_secret", Value::Null)]);
    let planned = no_proof.build_values(&[&event]).requests.remove(0);
    assert!(matches!(
        no_proof.classify(&send(&planned.request).await, 1),
        Verdict::Reject { .. }
    ));

    let adapter = adapter_for(&fake, &[]);
    let missing = membership(
        MISSING_AUDIENCE_ID,
        "ann",
        true,
        json!({"email": "ann@example.com"}),
    );
    let planned = adapter.build_values(&[&missing]).requests.remove(0);
    let verdict = adapter.classify(&send(&planned.request).await, 1);
    assert!(
        matches!(&verdict, Verdict::Reject { reason } if reason.contains("100/33")),
        "{verdict:?}"
    );

    fake.set_rate_limit(1);
    let planned = adapter.build_values(&[&event]).requests.remove(0);
    assert_eq!(
        adapter.classify(&send(&planned.request).await, 1),
        Verdict::Delivered
    );
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 400);
    assert!(matches!(
        adapter.classify(&answer, 1),
        Verdict::Retry { after: Some(wait), reason } if wait == Duration::from_secs(60) && reason.contains("80003")
    ));
    assert_eq!(META_AD_ACCOUNT_ID.len(), 16);
}

#[tokio::test]
async fn a_token_the_platform_stops_taking_is_unauthorized() {
    let event = membership(
        "23850000000001",
        "ann",
        true,
        json!({"email": "ann@example.com"}),
    );
    test_support::token_rotation(Tool::MetaAudiences, &event).await;
}
