//! Tests of the TikTok audiences adapter: settings, the exact mapping request, consent,
//! batching by action, the reading of TikTok's coded answers, audience creation, and round
//! trips through the TikTok fake.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::*;
use crate::audience::AudiencePlatform;
use crate::audience::hash::{md5_hex, sha256_hex};
use crate::contract::{Adapter, Method, Verdict};
use crate::test_support::{
    self, BuildValues, adapter_for, body_json, invalid_field, response, send,
};
use crate::testkit::credentials::TIKTOK_ADVERTISER_ID;
use crate::testkit::{FakeTool, MISSING_AUDIENCE_ID, Tool};

const BASE: &str = r#""access_token": "tt-token", "advertiser_id": "7001""#;

fn tiktok(extra: &str) -> TikTokAudiences {
    let text = if extra.is_empty() {
        format!("{{{BASE}}}")
    } else {
        format!("{{{BASE}, {extra}}}")
    };
    TikTokAudiences::new(&test_support::settings(&text)).unwrap_or_else(|e| panic!("{e}"))
}

fn membership(audience: &str, user: &str, member: bool, traits: Value, context: Value) -> Value {
    let mut traits_all = json!({"vip": member});
    if let (Value::Object(all), Value::Object(extra)) = (&mut traits_all, traits) {
        all.extend(extra);
    }
    let mut context_all = json!({"personas": {"computation_class": "audience", "computation_key": "vip",
                                              "external_audience_id": audience}});
    if let (Value::Object(all), Value::Object(extra)) = (&mut context_all, context) {
        all.extend(extra);
    }
    json!({"type": "identify", "userId": user, "messageId": format!("m-{user}"),
           "traits": traits_all, "context": context_all})
}

const IDFA: &str = "6D92078A-8246-4BA4-AE5B-76104861E7DC";
const IDFA_SHA256: &str = "31b806b4deec8c4cb1ffb18b9ab4ee1fa82a2b30e1f47902f04d03f5db023376";

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, "{}"), "access_token");
    assert_eq!(
        invalid_field(&TYPE, r#"{"access_token": "t"}"#),
        "advertiser_id"
    );
    for (extra, field) in [
        (r#""max_batch": 0"#, "max_batch"),
        (r#""max_batch": 10001"#, "max_batch"),
        (r#""advertising_id_hash": "sha1""#, "advertising_id_hash"),
        (r#""send_email": "yes""#, "send_email"),
        (
            r#""send_email": false, "send_phone": false, "send_advertising_id": false"#,
            "send_email",
        ),
        (r#""api_url": "business-api.tiktok.com""#, "api_url"),
    ] {
        assert_eq!(
            invalid_field(&TYPE, &format!("{{{BASE}, {extra}}}")),
            field,
            "{extra}"
        );
    }
    assert_eq!(
        invalid_field(&TYPE, r#"{"access_token": "t", "advertiser_id": "adv-1"}"#),
        "advertiser_id"
    );
}

#[test]
fn an_entered_identify_becomes_one_add_with_a_positional_schema() {
    let adapter = tiktok(r#""default_country": "US""#);
    let event = test_support::audience_identify("m-1", true);
    let plan = adapter.build_values(&[&event]);
    assert_eq!(plan.requests.len(), 1, "{plan:?}");
    let request = &plan.requests[0].request;
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        "https://business-api.tiktok.com/open_api/v1.3/segment/mapping/"
    );
    assert_eq!(
        request.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Access-Token".to_string(), "tt-token".to_string()),
        ]
    );
    let audience = json!(["23850000000001"]);
    assert_eq!(
        body_json(request),
        json!({
            "advertiser_ids": ["7001"],
            "action": "add",
            "id_schema": ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256"],
            "batch_data": [[
                {"id": "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79", "audience_ids": audience},
                {"id": sha256_hex("+15559876543").text(), "audience_ids": audience},
                {"id": IDFA_SHA256, "audience_ids": audience}
            ]]
        })
    );
}

#[test]
fn rows_of_one_action_share_a_request_across_audiences_with_placeholders() {
    let adapter = tiktok(r#""advertising_id_hash": "md5""#);
    let android = json!({"device": {"advertisingId": " CDDA802E-FB9C-47AD-9866-0794D394C912 ", "type": "android"}});
    let events = [
        membership(
            "1",
            "a",
            true,
            json!({"email": "jane.doe+promo@example.com"}),
            json!({}),
        ),
        membership("2", "b", true, json!({}), android.clone()),
        membership(
            "1",
            "c",
            false,
            json!({"email": "c@example.com"}),
            json!({}),
        ),
        // An ad id of an unknown platform cannot be sent: nothing left.
        membership(
            "1",
            "d",
            true,
            json!({}),
            json!({"device": {"advertisingId": IDFA}}),
        ),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    let events: Vec<Vec<usize>> = plan.requests.iter().map(|p| p.events.clone()).collect();
    assert_eq!(events, vec![vec![0, 1], vec![2]]);
    assert_eq!(plan.invalid.len(), 1);
    assert_eq!(plan.invalid[0].0, 3);
    let add = body_json(&plan.requests[0].request);
    assert_eq!(add["id_schema"], json!(["EMAIL_SHA256", "AAID_MD5"]));
    assert_eq!(
        add["batch_data"],
        json!([
            [{"id": "86e0b9e56c17cc4d12387e1949b85053fbe73bc3ce5a1188713a9d300cc6133d", "audience_ids": ["1"]}, {}],
            [{}, {"id": md5_hex("cdda802e-fb9c-47ad-9866-0794d394c912").text(), "audience_ids": ["2"]}]
        ])
    );
    let delete = body_json(&plan.requests[1].request);
    assert_eq!(delete["action"], json!("delete"));
    assert_eq!(delete["id_schema"], json!(["EMAIL_SHA256"]));
}

#[test]
fn consent_refusal_deletes_and_identifier_switches_apply() {
    let adapter = tiktok(r#""send_email": false, "send_advertising_id": false"#);
    let mut refused = test_support::audience_identify("m-3", true);
    refused["context"]["consent"]["categoryPreferences"]["advertising"] = json!(false);
    let body = body_json(&adapter.build_values(&[&refused]).requests[0].request);
    assert_eq!(body["action"], json!("delete"));
    assert_eq!(body["id_schema"], json!(["PHONE_SHA256"]));
}

#[test]
fn max_batch_cuts_requests() {
    let adapter = tiktok(r#""max_batch": 3"#);
    assert_eq!(adapter.max_batch(), 3);
    let events: Vec<Value> = (0..7)
        .map(|n| {
            membership(
                "1",
                &format!("u{n}"),
                true,
                json!({"email": format!("p{n}@example.com")}),
                json!({}),
            )
        })
        .collect();
    let refs: Vec<&Value> = events.iter().collect();
    let sizes: Vec<usize> = adapter
        .build_values(&refs)
        .requests
        .iter()
        .map(|p| p.events.len())
        .collect();
    assert_eq!(sizes, [3, 3, 1]);

    let adapter = tiktok("");
    let events: Vec<Value> = (0..10_001)
        .map(|n| {
            membership(
                "1",
                &format!("u{n}"),
                true,
                json!({"email": format!("p{n}@example.com")}),
                json!({}),
            )
        })
        .collect();
    let refs: Vec<&Value> = events.iter().collect();
    let sizes: Vec<usize> = adapter
        .build_values(&refs)
        .requests
        .iter()
        .map(|p| p.events.len())
        .collect();
    assert_eq!(sizes, [10_000, 1]);
}

#[test]
fn every_class_of_tiktok_answer_reads_as_documented() {
    let adapter = tiktok("");
    let coded = |code: i64| {
        let body = json!({"code": code, "message": "bad id for jane@example.com", "request_id": "2026112210abc", "data": {}});
        adapter.classify(&response(200, &[], &body.to_string()), 1)
    };
    assert_eq!(coded(0), Verdict::Delivered);
    assert_eq!(coded(20001), Verdict::Delivered);
    for code in [40100, 40016, 40133] {
        assert!(
            matches!(coded(code), Verdict::Retry { reason, .. } if reason.contains("rate limited")),
            "{code}"
        );
    }
    for code in [40102, 40104, 40105, 40106] {
        assert!(
            matches!(coded(code), Verdict::Unauthorized { reason } if reason.starts_with(&format!("tiktok code {code}:")) && !reason.contains("jane")),
            "{code}"
        );
    }
    for code in [50000, 51001, 59999] {
        assert!(matches!(coded(code), Verdict::Retry { .. }), "{code}");
    }
    assert_eq!(
        coded(40002),
        Verdict::Reject {
            reason: "tiktok: code 40002 (request_id 2026112210abc)".into()
        }
    );
    assert!(
        matches!(coded(40001), Verdict::Reject { reason } if reason.contains("no permission") && !reason.contains("jane"))
    );
    assert!(matches!(
        adapter.classify(&response(200, &[], "<html>"), 1),
        Verdict::Retry { .. }
    ));
    assert!(matches!(
        adapter.classify(&response(503, &[], ""), 1),
        Verdict::Retry { .. }
    ));
    assert!(matches!(
        adapter.classify(&response(429, &[("retry-after", "2")], ""), 1),
        Verdict::Retry { after: Some(_), .. }
    ));
    assert_eq!(
        adapter.classify(&response(404, &[], "404 page not found"), 1),
        Verdict::Reject {
            reason: "tiktok: http 404".into()
        }
    );
}

#[test]
fn creating_an_audience_cuts_long_names() {
    let adapter = tiktok("");
    let request = adapter.plan_create_audience("VIP buyers", "ignored");
    assert_eq!(
        request.url,
        "https://business-api.tiktok.com/open_api/v1.3/segment/audience/"
    );
    assert_eq!(
        body_json(&request),
        json!({"custom_audience_name": "VIP buyers", "advertiser_id": "7001", "action": "create"})
    );
    let long = "é".repeat(71);
    let name = body_json(&adapter.plan_create_audience(&long, ""))["custom_audience_name"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(name, format!("{}…", "é".repeat(67)));
    assert_eq!(
        super::request::audience_name(&"x".repeat(70)),
        "x".repeat(70)
    );
    assert_eq!(
        adapter.parse_created(&response(
            200,
            &[],
            r#"{"code": 0, "message": "OK", "data": {"audience_id": "7100"}}"#
        )),
        Ok("7100".into())
    );
    assert!(matches!(
        adapter.parse_created(&response(200, &[], r#"{"code": 40105, "message": "revoked", "data": {}}"#)),
        Err(Verdict::Unauthorized { reason }) if reason.starts_with("tiktok code 40105")
    ));
}

#[test]
fn debug_output_shows_no_secret() {
    let adapter = tiktok("");
    let plan = adapter.build_values(&[&test_support::audience_identify("m-1", true)]);
    for text in [format!("{adapter:?}"), format!("{plan:?}")] {
        assert!(!text.contains("tt-token"), "{text}");
    }
}

#[tokio::test]
async fn round_trip_creates_an_audience_and_syncs_its_members() {
    let fake = FakeTool::start(Tool::TikTokAudiences).await;
    let adapter = TikTokAudiences::new(&fake.settings()).unwrap();
    let audience = adapter
        .parse_created(&send(&adapter.plan_create_audience("VIP buyers", "")).await)
        .unwrap();
    assert_eq!(
        fake.created_audiences(),
        vec![(audience.clone(), "VIP buyers".to_string())]
    );

    let sync = adapter_for(&fake, &[]);
    let ios = json!({"device": {"advertisingId": IDFA, "type": "ios"}});
    let events = [
        membership(
            &audience,
            "ann",
            true,
            json!({"email": "ann@example.com"}),
            json!({}),
        ),
        membership(
            &audience,
            "bob",
            true,
            json!({"phone": "(657) 777-0000"}),
            json!({}),
        ),
        membership(&audience, "cat", true, json!({}), ios),
    ];
    let refs: Vec<&Value> = events.iter().collect();
    for planned in sync.build_values(&refs).requests {
        let answer = send(&planned.request).await;
        assert_eq!(
            sync.classify(&answer, planned.events.len()),
            Verdict::Delivered,
            "{}",
            String::from_utf8_lossy(&answer.body)
        );
    }
    let members = fake.members(&audience);
    assert_eq!(members.len(), 3);
    // T5: the E.164 phone hash.
    assert!(
        members
            .iter()
            .any(|m| m.get("PHONE_SHA256").map(String::as_str)
                == Some("a6e82c2f4091baff57a4f33d01efb65bfbeacbbfbcfaa9d0ff9f57d28d78fedb"))
    );
    assert!(
        members
            .iter()
            .any(|m| m.get("IDFA_SHA256").map(String::as_str) == Some(IDFA_SHA256))
    );

    let leaves = membership(
        &audience,
        "ann",
        false,
        json!({"email": "ann@example.com"}),
        json!({}),
    );
    let planned = sync.build_values(&[&leaves]).requests.remove(0);
    assert_eq!(
        sync.classify(&send(&planned.request).await, 1),
        Verdict::Delivered
    );
    assert_eq!(fake.members(&audience).len(), 2);
}

#[tokio::test]
async fn round_trip_refusals_and_rate_limits() {
    let fake = FakeTool::start(Tool::TikTokAudiences).await;
    let event = membership(
        "7100000001",
        "ann",
        true,
        json!({"email": "ann@example.com"}),
        json!({}),
    );

    let revoked = adapter_for(&fake, &[("access_token", json!("revoked-token"))]);
    let planned = revoked.build_values(&[&event]).requests.remove(0);
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 200);
    assert!(
        matches!(revoked.classify(&answer, 1), Verdict::Unauthorized { reason } if reason.starts_with("tiktok code 40105"))
    );

    let other = adapter_for(&fake, &[("advertiser_id", json!("1"))]);
    let planned = other.build_values(&[&event]).requests.remove(0);
    assert!(
        matches!(other.classify(&send(&planned.request).await, 1), Verdict::Reject { reason } if reason.contains("40001"))
    );

    let adapter = adapter_for(&fake, &[]);
    let missing = membership(
        MISSING_AUDIENCE_ID,
        "ann",
        true,
        json!({"email": "ann@example.com"}),
        json!({}),
    );
    let planned = adapter.build_values(&[&missing]).requests.remove(0);
    assert!(
        matches!(adapter.classify(&send(&planned.request).await, 1), Verdict::Reject { reason } if reason.contains("40002"))
    );

    // Without the trailing slash TikTok answers 404.
    let mut no_slash = adapter.build_values(&[&event]).requests.remove(0).request;
    no_slash.url = no_slash.url.trim_end_matches('/').to_string();
    assert_eq!(send(&no_slash).await.status, 404);

    fake.set_rate_limit(1);
    let planned = adapter.build_values(&[&event]).requests.remove(0);
    assert_eq!(
        adapter.classify(&send(&planned.request).await, 1),
        Verdict::Delivered
    );
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 200);
    assert!(
        matches!(adapter.classify(&answer, 1), Verdict::Retry { reason, .. } if reason.contains("40100"))
    );
    assert_eq!(TIKTOK_ADVERTISER_ID.len(), 19);
}

#[tokio::test]
async fn a_token_the_platform_stops_taking_is_unauthorized() {
    let event = membership(
        "7100000001",
        "ann",
        true,
        json!({"email": "ann@example.com"}),
        json!({}),
    );
    test_support::token_rotation(Tool::TikTokAudiences, &event).await;
}
