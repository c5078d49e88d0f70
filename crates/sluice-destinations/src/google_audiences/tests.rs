//! Tests of the Google Customer Match adapter: settings, the exact ingest and remove requests
//! for each list type, consent, batching, the reading of `google.rpc.Status` answers, list
//! creation, and round trips through the Data Manager fake.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::audience::AudiencePlatform;
use crate::audience::hash::sha256_hex;
use crate::contract::{Method, Verdict};
use crate::test_support::{
    self, BuildValues, adapter_for, body_json, invalid_field, response, send,
};
use crate::testkit::{FakeTool, MISSING_AUDIENCE_ID, Tool};

const BASE: &str = r#""access_token": "ya29.t", "operating_account_id": "123-456-7890""#;

fn google(extra: &str) -> GoogleAudiences {
    let text = if extra.is_empty() {
        format!("{{{BASE}}}")
    } else {
        format!("{{{BASE}, {extra}}}")
    };
    GoogleAudiences::new(&test_support::settings(&text)).unwrap_or_else(|e| panic!("{e}"))
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

const MARY_EMAIL: &str = "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79";

#[test]
fn bad_settings_name_the_field() {
    assert_eq!(invalid_field(&TYPE, "{}"), "access_token");
    assert_eq!(
        invalid_field(&TYPE, r#"{"access_token": "t"}"#),
        "operating_account_id"
    );
    for (extra, field) in [
        (
            r#""operating_account_id": "123-456-789""#,
            "operating_account_id",
        ),
        (r#""login_account_id": "abc""#, "login_account_id"),
        (
            r#""consent": {"ad_user_data": "CONSENT_DENIED"}"#,
            "consent.ad_user_data",
        ),
        (
            r#""consent": {"ad_storage": "CONSENT_GRANTED"}"#,
            "consent.ad_storage",
        ),
        (r#""upload_key_type": "email""#, "upload_key_type"),
        (r#""upload_key_type": "mobile_id""#, "app_id"),
        (
            r#""upload_key_type": "mobile_id", "app_id": "com.example""#,
            "mobile_key_space",
        ),
        (r#""mobile_key_space": "windows""#, "mobile_key_space"),
        (r#""membership_days": 541"#, "membership_days"),
        (r#""encoding": "hex64""#, "encoding"),
        (r#""developer_token": "x""#, "developer_token"),
    ] {
        let text = if field == "operating_account_id" {
            format!(r#"{{"access_token": "t", {extra}}}"#)
        } else {
            format!("{{{BASE}, {extra}}}")
        };
        assert_eq!(invalid_field(&TYPE, &text), field, "{extra}");
    }
}

#[test]
fn an_entered_identify_becomes_an_ingest_of_contact_data() {
    let adapter = google(r#""login_account_id": "999-000-1111""#);
    let event = test_support::audience_identify("m-1", true);
    let plan = adapter.build_values(&[&event]);
    assert_eq!(plan.requests.len(), 1, "{plan:?}");
    let request = &plan.requests[0].request;
    assert_eq!(request.method, Method::Post);
    assert_eq!(
        request.url,
        "https://datamanager.googleapis.com/v1/audienceMembers:ingest"
    );
    assert_eq!(
        request.headers,
        vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Authorization".to_string(), "Bearer ya29.t".to_string()),
        ]
    );
    assert_eq!(
        body_json(request),
        json!({
            "destinations": [{
                "operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
                "loginAccount": {"accountType": "GOOGLE_ADS", "accountId": "9990001111"},
                "productDestinationId": "23850000000001"
            }],
            "audienceMembers": [{
                "userData": {"userIdentifiers": [
                    {"emailAddress": MARY_EMAIL},
                    {"phoneNumber": sha256_hex("+15559876543").text()},
                    {"address": {
                        "givenName": "6915771be1c5aa0c886870b6951b03d7eafc121fea0e80a5ea83beb7c449f4ec",
                        "familyName": sha256_hex("obrien").text(),
                        "regionCode": "US",
                        "postalCode": "94105-1234"
                    }}
                ]},
                "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}
            }],
            "encoding": "HEX",
            "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"},
            "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"}
        })
    );
}

#[test]
fn removals_carry_neither_consent_nor_terms() {
    let adapter = google("");
    let exit = test_support::audience_identify("m-2", false);
    let mut refused = test_support::audience_identify("m-3", true);
    refused["context"]["consent"]["categoryPreferences"]["advertising"] = json!(false);
    let plan = adapter.build_values(&[&exit, &refused]);
    assert_eq!(plan.requests.len(), 1);
    let request = &plan.requests[0].request;
    assert_eq!(
        request.url,
        "https://datamanager.googleapis.com/v1/audienceMembers:remove"
    );
    let body = body_json(request);
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["destinations", "audienceMembers", "encoding"]);
    assert!(
        body["audienceMembers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m.get("consent").is_none())
    );
}

#[test]
fn member_consent_only_when_granted_and_unspecified_defaults_are_left_out() {
    let adapter = google(
        r#""consent": {"ad_user_data": "CONSENT_STATUS_UNSPECIFIED", "ad_personalization": "CONSENT_STATUS_UNSPECIFIED"}"#,
    );
    let unknown = membership("5", "u1", true, json!({"email": "a@b.co"}), json!({}));
    let body = body_json(&adapter.build_values(&[&unknown]).requests[0].request);
    assert!(body.get("consent").is_none(), "{body}");
    assert!(
        body["audienceMembers"][0].get("consent").is_none(),
        "{body}"
    );
    assert_eq!(
        body["termsOfService"]["customerMatchTermsOfServiceStatus"],
        json!("ACCEPTED")
    );
}

#[test]
fn addresses_need_all_four_parts_and_unusable_members_are_invalid() {
    let adapter = google("");
    // No last name: no address; the email alone is sent.
    let partial = membership(
        "5",
        "u1",
        true,
        json!({"email": "a@b.co", "first_name": "Ann", "postal_code": "10115", "country": "DE"}),
        json!({}),
    );
    let body = body_json(&adapter.build_values(&[&partial]).requests[0].request);
    assert_eq!(
        body["audienceMembers"][0]["userData"]["userIdentifiers"],
        json!([{"emailAddress": sha256_hex("a@b.co").text()}])
    );
    // A contact list cannot use a user id or an ad id.
    let only_ids = membership(
        "5",
        "u1",
        true,
        json!({}),
        json!({"device": {"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "type": "ios"}}),
    );
    let plan = adapter.build_values(&[&only_ids]);
    assert!(plan.requests.is_empty());
    assert_eq!(
        plan.invalid[0].1,
        "no identifier google (contact list: email, phone or full address) can match on after normalization (present: advertisingId, userId)"
    );
}

#[test]
fn mobile_and_user_id_lists_send_their_one_kind_of_data() {
    let mobile =
        google(r#""upload_key_type": "mobile_id", "app_id": "id1234", "mobile_key_space": "ios""#);
    let ios = membership(
        "5",
        "u1",
        true,
        json!({"email": "a@b.co"}),
        json!({"device": {"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "type": "ios"}}),
    );
    let body = body_json(&mobile.build_values(&[&ios]).requests[0].request);
    assert_eq!(
        body["audienceMembers"],
        json!([{"mobileData": {"mobileIds": ["6D92078A-8246-4BA4-AE5B-76104861E7DC"]}}])
    );
    assert!(body.get("encoding").is_none());
    let android = membership(
        "5",
        "u2",
        true,
        json!({}),
        json!({"device": {"advertisingId": "cdda802e-fb9c-47ad-9866-0794d394c912", "type": "android"}}),
    );
    assert_eq!(mobile.build_values(&[&android]).invalid.len(), 1);

    let users = google(r#""upload_key_type": "user_id""#);
    let body = body_json(&users.build_values(&[&ios]).requests[0].request);
    assert_eq!(
        body["audienceMembers"],
        json!([{"userIdData": {"userId": "u1"}}])
    );
}

#[test]
fn base64_encoding_is_declared_and_used() {
    let adapter = google(r#""encoding": "base64""#);
    let event = membership(
        "5",
        "u1",
        true,
        json!({"email": "  Mary@Example.COM "}),
        json!({}),
    );
    let body = body_json(&adapter.build_values(&[&event]).requests[0].request);
    assert_eq!(body["encoding"], json!("BASE64"));
    assert_eq!(
        body["audienceMembers"][0]["userData"]["userIdentifiers"][0]["emailAddress"],
        json!("8ZBM8anXOlX6XeCsgjxEA97XGv1MMkjQC9zQhmVSu3k=")
    );
}

#[test]
fn over_ten_thousand_members_make_two_requests() {
    let adapter = google("");
    let events: Vec<Value> = (0..10_001)
        .map(|n| {
            membership(
                "5",
                &format!("u{n}"),
                true,
                json!({"email": format!("p{n}@example.com")}),
                json!({}),
            )
        })
        .collect();
    let refs: Vec<&Value> = events.iter().collect();
    let plan = adapter.build_values(&refs);
    let sizes: Vec<usize> = plan.requests.iter().map(|p| p.events.len()).collect();
    assert_eq!(sizes, [10_000, 1]);
    let first = body_json(&plan.requests[0].request);
    assert_eq!(
        first["audienceMembers"].as_array().map(Vec::len),
        Some(10_000)
    );
}

#[test]
fn every_class_of_google_answer_reads_as_documented() {
    let adapter = google("");
    let classify = |status: u16, headers: &[(&str, &str)], body: &str| {
        adapter.classify(&response(status, headers, body), 1)
    };
    let rpc = |code: u16, status: &str, details: Value| {
        json!({"error": {"code": code, "message": "bad value for mary@example.com", "status": status, "details": details}}).to_string()
    };
    assert_eq!(
        classify(200, &[], r#"{"requestId": "abc"}"#),
        Verdict::Delivered
    );
    assert!(matches!(
        classify(429, &[], &rpc(429, "RESOURCE_EXHAUSTED", json!([{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "30s"}]))),
        Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(30)
    ));
    assert!(matches!(
        classify(429, &[("retry-after", "7")], &rpc(429, "RESOURCE_EXHAUSTED", json!([]))),
        Verdict::Retry { after: Some(wait), .. } if wait == Duration::from_secs(7)
    ));
    // The body's code decides over the HTTP status.
    assert!(matches!(
        classify(200, &[], &rpc(503, "UNAVAILABLE", json!([]))),
        Verdict::Retry { .. }
    ));
    assert!(matches!(
        classify(400, &[], &rpc(500, "INTERNAL", json!([]))),
        Verdict::Retry { .. }
    ));
    assert!(matches!(
        classify(409, &[], &rpc(409, "ABORTED", json!([]))),
        Verdict::Retry { .. }
    ));
    assert!(matches!(
        classify(504, &[], &rpc(504, "DEADLINE_EXCEEDED", json!([]))),
        Verdict::Retry { .. }
    ));
    assert_eq!(
        classify(401, &[], &rpc(401, "UNAUTHENTICATED", json!([]))),
        Verdict::Unauthorized {
            reason: "google: error 401 UNAUTHENTICATED".into()
        }
    );
    let invalid = rpc(
        400,
        "INVALID_ARGUMENT",
        json!([
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "INVALID_HEX_ENCODING"},
            {"@type": "type.googleapis.com/google.rpc.BadRequest",
             "fieldViolations": [{"field": "audience_members[3].user_data", "description": "mary@example.com"}]}
        ]),
    );
    assert_eq!(
        classify(400, &[], &invalid),
        Verdict::Reject {
            reason: "google: error 400 INVALID_ARGUMENT (INVALID_HEX_ENCODING); fields: audience_members[3].user_data".into()
        }
    );
    assert!(
        matches!(classify(403, &[], &rpc(403, "PERMISSION_DENIED", json!([]))), Verdict::Reject { reason } if !reason.contains("mary"))
    );
    assert!(matches!(
        classify(502, &[], "<html>bad gateway</html>"),
        Verdict::Retry { .. }
    ));
    assert_eq!(
        classify(404, &[], "nope"),
        Verdict::Reject {
            reason: "google: http 404".into()
        }
    );
}

#[test]
fn creating_a_user_list() {
    let adapter = google(r#""login_account_id": "9990001111", "membership_days": 30"#);
    let request = adapter.plan_create_audience("VIP buyers", "from sluice");
    assert_eq!(
        request.url,
        "https://datamanager.googleapis.com/v1/accountTypes/GOOGLE_ADS/accounts/1234567890/userLists"
    );
    assert!(request.headers.contains(&(
        "login-account".to_string(),
        "accountTypes/GOOGLE_ADS/accounts/9990001111".to_string()
    )));
    assert_eq!(
        body_json(&request),
        json!({
            "displayName": "VIP buyers",
            "description": "from sluice",
            "membershipDuration": "2592000s",
            "ingestedUserListInfo": {
                "uploadKeyTypes": ["CONTACT_ID"],
                "contactIdInfo": {"dataSourceType": "DATA_SOURCE_TYPE_FIRST_PARTY"}
            }
        })
    );
    let mobile = google(
        r#""upload_key_type": "mobile_id", "app_id": "com.example.app", "mobile_key_space": "android""#,
    );
    let body = body_json(&mobile.plan_create_audience("Apps", ""));
    assert_eq!(body["membershipDuration"], json!("46656000s"));
    assert_eq!(
        body["ingestedUserListInfo"],
        json!({"uploadKeyTypes": ["MOBILE_ID"], "mobileIdInfo": {
            "dataSourceType": "DATA_SOURCE_TYPE_FIRST_PARTY", "keySpace": "ANDROID", "appId": "com.example.app"}})
    );
    assert_eq!(
        adapter.parse_created(&response(
            200,
            &[],
            r#"{"name": "accountTypes/GOOGLE_ADS/accounts/1234567890/userLists/777"}"#
        )),
        Ok("777".into())
    );
    assert!(matches!(
        adapter.parse_created(&response(401, &[], r#"{"error": {"code": 401, "status": "UNAUTHENTICATED"}}"#)),
        Err(Verdict::Unauthorized { reason }) if reason.contains("401")
    ));
}

#[tokio::test]
async fn round_trip_creates_a_list_and_syncs_its_members() {
    let fake = FakeTool::start(Tool::GoogleAudiences).await;
    let adapter = GoogleAudiences::new(&fake.settings()).unwrap();
    let list = adapter
        .parse_created(&send(&adapter.plan_create_audience("VIP buyers", "aud_1")).await)
        .unwrap();
    assert_eq!(
        fake.created_audiences(),
        vec![(list.clone(), "VIP buyers".to_string())]
    );

    let sync = adapter_for(&fake, &[]);
    let granted = json!({"consent": {"categoryPreferences": {"advertising": true}}});
    let events = [
        membership(
            &list,
            "ann",
            true,
            json!({"email": "ann@example.com", "phone": "(555) 987-6001"}),
            granted.clone(),
        ),
        membership(
            &list,
            "bob",
            true,
            json!({"email": "bob@example.com", "firstName": "Bob", "lastName": "Smith Jr.", "postalCode": "94105", "country": "US"}),
            json!({}),
        ),
        membership(
            &list,
            "cat",
            true,
            json!({"email": "cat@gmail.com"}),
            granted,
        ),
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
    let members = fake.members(&list);
    assert_eq!(members.len(), 3);
    let bob = members
        .iter()
        .find(|m| {
            m.get("emailAddress").map(String::as_str)
                == Some(sha256_hex("bob@example.com").text().as_str())
        })
        .unwrap();
    assert_eq!(
        bob.get("address").cloned(),
        Some(format!(
            "{}|{}|US|94105",
            sha256_hex("bob").text(),
            sha256_hex("smith").text()
        ))
    );

    let leaves = membership(
        &list,
        "bob",
        false,
        json!({"email": "bob@example.com"}),
        json!({}),
    );
    let planned = sync.build_values(&[&leaves]).requests.remove(0);
    assert_eq!(
        sync.classify(&send(&planned.request).await, 1),
        Verdict::Delivered
    );
    assert_eq!(fake.members(&list).len(), 2);
}

#[tokio::test]
async fn round_trip_refusals_and_rate_limits() {
    let fake = FakeTool::start(Tool::GoogleAudiences).await;
    let event = membership(
        "5",
        "ann",
        true,
        json!({"email": "ann@example.com"}),
        json!({}),
    );

    let expired = adapter_for(&fake, &[("access_token", json!("ya29.expired"))]);
    let planned = expired.build_values(&[&event]).requests.remove(0);
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 401);
    assert!(
        matches!(expired.classify(&answer, 1), Verdict::Unauthorized { reason } if reason.contains("UNAUTHENTICATED"))
    );

    let other_account = adapter_for(&fake, &[("operating_account_id", json!("1112223333"))]);
    let planned = other_account.build_values(&[&event]).requests.remove(0);
    assert!(
        matches!(other_account.classify(&send(&planned.request).await, 1), Verdict::Reject { reason } if reason.contains("PERMISSION_DENIED"))
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
        matches!(adapter.classify(&send(&planned.request).await, 1), Verdict::Reject { reason } if reason.contains("NOT_FOUND"))
    );

    fake.set_rate_limit(1);
    let planned = adapter.build_values(&[&event]).requests.remove(0);
    assert_eq!(
        adapter.classify(&send(&planned.request).await, 1),
        Verdict::Delivered
    );
    let answer = send(&planned.request).await;
    assert_eq!(answer.status, 429);
    assert!(
        matches!(adapter.classify(&answer, 1), Verdict::Retry { reason, .. } if reason.contains("RESOURCE_EXHAUSTED"))
    );
}

#[tokio::test]
async fn a_token_the_platform_stops_taking_is_unauthorized() {
    let event = membership(
        "5",
        "ann",
        true,
        json!({"email": "ann@example.com"}),
        json!({}),
    );
    test_support::token_rotation(Tool::GoogleAudiences, &event).await;
}
