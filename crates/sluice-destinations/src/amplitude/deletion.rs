//! Forwarded deletions through Amplitude's User Privacy API.
//!
//! Requests: `POST <base>/api/2/deletions/users` (`https://amplitude.com`, or
//! `https://analytics.eu.amplitude.com` for EU projects), Basic auth with the API key and the
//! secret key, JSON `{"user_ids": [..], "requester": "sluice", "ignore_invalid_id": "true"}`,
//! at most 100 ids a request. `ignore_invalid_id` makes Amplitude schedule the ids it knows
//! and list the others as `invalid_ids` instead of refusing the whole request (an anonymousId
//! is never an Amplitude user id, so a person's id list nearly always holds one).
//!
//! Answers: `200` with the deletion jobs the ids joined (Amplitude deletes them 10 to 13 days
//! later); `400` (bad body) and `401` (bad keys) rejected; `429` (one request a second)
//! retried after `Retry-After`, else a second; `5xx` retried.

use std::time::Duration;

use serde_json::json;

use crate::contract::{HttpRequest, HttpResponse, Verdict};
use crate::deletion::{classify as classify_answer, unique_ids};
use crate::request::{json_post, to_bytes};

use super::settings::DeletionAccess;

/// Most ids in one request.
pub(super) const MAX_IDS: usize = 100;

/// Who the deletion is asked by, for Amplitude's audit trail.
const REQUESTER: &str = "sluice";

pub(super) fn plan(access: &DeletionAccess, user_ids: &[String]) -> Vec<HttpRequest> {
    unique_ids(user_ids)
        .chunks(MAX_IDS)
        .map(|ids| {
            let body = json!({
                "user_ids": ids,
                "requester": REQUESTER,
                "ignore_invalid_id": "true",
            });
            let headers = vec![
                ("Accept".to_string(), "application/json".to_string()),
                (
                    "Authorization".to_string(),
                    access.authorization.expose().to_string(),
                ),
            ];
            json_post(access.url.clone(), headers, to_bytes(&body))
        })
        .collect()
}

pub(super) fn classify(response: &HttpResponse) -> Verdict {
    classify_answer("amplitude", response, Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::contract::Adapter;
    use crate::request::basic_auth;
    use crate::test_support::{self, BuildValues, adapter_for, body_json, response, send};
    use crate::testkit::credentials::{AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY};
    use crate::testkit::{FakeTool, Tool};

    const AT: time::OffsetDateTime = datetime!(2026-11-22 10:24:47.014 UTC);

    fn adapter(text: &str) -> Box<dyn Adapter> {
        crate::build("amplitude", &test_support::settings(text))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn ids(values: &[&str]) -> Vec<String> {
        values.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn deletions_need_the_secret_key() {
        assert_eq!(
            adapter(r#"{"api_key": "k"}"#).plan_deletion(&ids(&["u"]), AT),
            None
        );
        let with_secret = adapter(r#"{"api_key": "k", "secret_key": "s"}"#);
        assert_eq!(
            with_secret.plan_deletion(&ids(&["u"]), AT).map(|r| r.len()),
            Some(1)
        );
        assert_eq!(with_secret.plan_deletion(&[], AT), Some(Vec::new()));
    }

    #[test]
    fn the_request_goes_to_the_privacy_api_of_the_region_with_both_keys() {
        let request = |extra: &str| {
            let text = format!(r#"{{"api_key": "key-1", "secret_key": "sec-2"{extra}}}"#);
            adapter(&text)
                .plan_deletion(&ids(&["user-42", "a0fe94da"]), AT)
                .unwrap_or_default()
                .remove(0)
        };
        let us = request("");
        assert_eq!(us.url, "https://amplitude.com/api/2/deletions/users");
        assert_eq!(
            us.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Accept".to_string(), "application/json".to_string()),
                ("Authorization".to_string(), basic_auth("key-1", "sec-2")),
            ]
        );
        assert_eq!(
            body_json(&us),
            json!({"user_ids": ["user-42", "a0fe94da"], "requester": "sluice", "ignore_invalid_id": "true"})
        );
        assert_eq!(
            request(r#", "region": "eu""#).url,
            "https://analytics.eu.amplitude.com/api/2/deletions/users"
        );
        assert_eq!(
            request(r#", "region": "eu", "api_url": "http://127.0.0.1:9/""#).url,
            "http://127.0.0.1:9/api/2/deletions/users"
        );
    }

    #[test]
    fn ids_are_sent_once_in_order_100_a_request() {
        let mut many: Vec<String> = (0..250).map(|n| format!("user-{n}")).collect();
        many.insert(10, "user-3".into());
        many.insert(20, String::new());
        let plan = adapter(r#"{"api_key": "k", "secret_key": "s"}"#)
            .plan_deletion(&many, AT)
            .unwrap_or_default();
        let batches: Vec<Vec<Value>> = plan
            .iter()
            .map(|request| match body_json(request)["user_ids"].clone() {
                Value::Array(ids) => ids,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [100, 100, 50]
        );
        let sent: Vec<Value> = batches.into_iter().flatten().collect();
        let expected: Vec<Value> = (0..250).map(|n| json!(format!("user-{n}"))).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn debug_output_shows_no_secret_key() {
        let adapter = adapter(r#"{"api_key": "k", "secret_key": "topsecret-privacy"}"#);
        let plan = format!("{:?}", adapter.plan_deletion(&ids(&["u"]), AT));
        assert!(
            !plan.contains("topsecret") && !plan.contains("Basic"),
            "{plan}"
        );
        let settings = super::super::settings::AmplitudeSettings::read(&test_support::settings(
            r#"{"api_key": "k", "secret_key": "topsecret-privacy"}"#,
        ));
        let settings = format!("{settings:?}");
        assert!(
            !settings.contains("topsecret") && !settings.contains("Basic"),
            "{settings}"
        );
    }

    #[test]
    fn answers_are_read_as_the_privacy_api_documents_them() {
        let adapter = adapter(r#"{"api_key": "k", "secret_key": "s"}"#);
        let job = r#"[{"active_scrub_done_date": null, "amplitude_ids": [], "day": "2026-12-02", "status": "staging"}]"#;
        assert_eq!(
            adapter.classify_deletion(&response(200, &[], job)),
            Verdict::Delivered
        );
        for status in [400, 401, 403] {
            assert!(
                matches!(
                    adapter.classify_deletion(&response(status, &[], "{}")),
                    Verdict::Reject { .. }
                ),
                "{status}"
            );
        }
        assert!(matches!(
            adapter.classify_deletion(&response(429, &[], "{}")),
            Verdict::Retry { after: Some(after), .. } if after == Duration::from_secs(1)
        ));
        assert!(matches!(
            adapter.classify_deletion(&response(502, &[], "")),
            Verdict::Retry { .. }
        ));
    }

    #[tokio::test]
    async fn round_trip_schedules_known_users_and_lists_the_others() {
        let fake = FakeTool::start(Tool::Amplitude).await;
        let adapter = adapter_for(&fake, &[]);
        // Amplitude knows user-42 once an event of theirs arrived.
        let event = test_support::track();
        let planned = adapter.build_values(&[&event]).requests.remove(0);
        assert_eq!(send(&planned.request).await.status, 200);

        let person = ids(&["user-42", "a0fe94da-119a-4e6c-8108-4c860fd3a784"]);
        let plan = adapter.plan_deletion(&person, AT).unwrap_or_default();
        assert_eq!(plan.len(), 1);
        let answer = send(&plan[0]).await;
        assert_eq!(adapter.classify_deletion(&answer), Verdict::Delivered);
        let jobs: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        assert_eq!(jobs[0]["status"], json!("staging"));
        let day = jobs[0]["day"].as_str().unwrap_or_default();
        assert!(
            day.len() == 10 && day.as_bytes()[4] == b'-' && day.as_bytes()[7] == b'-',
            "{day}"
        );
        assert_eq!(jobs[0]["amplitude_ids"][0]["requester"], json!("sluice"));
        assert_eq!(
            jobs[0]["invalid_ids"],
            json!(["a0fe94da-119a-4e6c-8108-4c860fd3a784"])
        );
        assert_eq!(fake.deleted(), ["user-42"]);
        let recorded = fake.deletions();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path, "/api/2/deletions/users");
        assert_eq!(
            recorded[0].header("authorization"),
            Some(basic_auth(AMPLITUDE_API_KEY, AMPLITUDE_SECRET_KEY).as_str())
        );
        // Events and deletions are told apart.
        assert_eq!(fake.accepted().len(), 1);
        assert_eq!(fake.requests().len(), 2);
    }

    #[tokio::test]
    async fn round_trip_refusals_throttling_and_outages() {
        let fake = FakeTool::start(Tool::Amplitude).await;
        let person = ids(&["user-42"]);

        let wrong = adapter_for(&fake, &[("secret_key", json!("not-the-secret"))]);
        let answer = send(&wrong.plan_deletion(&person, AT).unwrap_or_default()[0]).await;
        assert_eq!(answer.status, 401);
        assert!(matches!(
            wrong.classify_deletion(&answer),
            Verdict::Reject { reason } if reason.starts_with("amplitude: deletion credentials refused (http 401)")
        ));

        let adapter = adapter_for(&fake, &[]);
        let request = adapter
            .plan_deletion(&person, AT)
            .unwrap_or_default()
            .remove(0);
        fake.push_answer(503, &[], "upstream down");
        let answer = send(&request).await;
        assert!(matches!(
            adapter.classify_deletion(&answer),
            Verdict::Retry { .. }
        ));

        fake.set_rate_limit(1);
        let first = send(&request).await;
        let second = send(&request).await;
        assert_eq!(first.status, 200);
        assert_eq!(second.status, 429);
        assert_eq!(
            adapter.classify_deletion(&second),
            Verdict::Retry {
                after: Some(Duration::from_secs(1)),
                reason: format!(
                    "amplitude: deletion throttled (http 429): {}",
                    String::from_utf8_lossy(&second.body)
                ),
            }
        );
        assert_eq!(fake.deletions().len(), 4);
        // Nothing known to Amplitude, but `ignore_invalid_id` keeps the request valid.
        assert!(fake.deleted().is_empty());
    }

    #[tokio::test]
    async fn the_fake_checks_the_body_like_amplitude() {
        let fake = FakeTool::start(Tool::Amplitude).await;
        let adapter = adapter_for(&fake, &[]);
        let request = adapter
            .plan_deletion(&ids(&["someone"]), AT)
            .unwrap_or_default()
            .remove(0);
        let with_body = |body: Value| {
            let mut changed = request.clone();
            changed.body = serde_json::to_vec(&body).unwrap_or_default();
            changed
        };
        // Without ignore_invalid_id an unknown user fails the whole request.
        let strict = send(&with_body(
            json!({"user_ids": ["someone"], "requester": "sluice"}),
        ))
        .await;
        assert_eq!(strict.status, 400);
        let too_many: Vec<String> = (0..=MAX_IDS).map(|n| format!("user-{n}")).collect();
        let answer = send(&with_body(
            json!({"user_ids": too_many, "ignore_invalid_id": "true"}),
        ))
        .await;
        assert_eq!(answer.status, 400);
        assert_eq!(
            send(&with_body(json!({"requester": "sluice"})))
                .await
                .status,
            400
        );
        assert_eq!(
            send(&with_body(json!({"user_ids": "someone"})))
                .await
                .status,
            400
        );
        assert!(fake.deleted().is_empty());
    }
}
