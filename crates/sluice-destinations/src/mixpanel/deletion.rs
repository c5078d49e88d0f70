//! Forwarded deletions through Mixpanel's GDPR API (v3).
//!
//! Requests: `POST <base>/api/app/data-deletions/v3.0/?token=<project token>`
//! (`https://mixpanel.com`, `https://eu.mixpanel.com` or `https://in.mixpanel.com` by
//! `region`), `Authorization: Bearer <gdpr_api_token>` (a project owner's or admin's GDPR
//! token, valid a year), JSON `{"distinct_ids": [..], "compliance_type": "GDPR"}`, at most 2000
//! ids a request. Every id is sent as a `distinct_id`: the import mapping makes the userId, else
//! the anonymousId, an event's `distinct_id`, so either may be one Mixpanel holds.
//!
//! Answers: `200`/`201` with `{"status": "ok", "results": {"task_id"}}` (Mixpanel deletes within
//! 30 days); `400` rejected; `401`/`403` (token expired, no access to the project) rejected;
//! `429` (one request a second) retried after `Retry-After`, else a second; `5xx` retried.

use std::time::Duration;

use serde_json::json;

use crate::contract::{HttpRequest, HttpResponse, Verdict};
use crate::deletion::{classify as classify_answer, unique_ids};
use crate::request::{json_post, to_bytes};

use super::settings::DeletionAccess;

/// Most ids in one request.
pub(super) const MAX_IDS: usize = 2000;

pub(super) fn plan(access: &DeletionAccess, user_ids: &[String]) -> Vec<HttpRequest> {
    unique_ids(user_ids)
        .chunks(MAX_IDS)
        .map(|ids| {
            let body = json!({"distinct_ids": ids, "compliance_type": "GDPR"});
            let headers = vec![(
                "Authorization".to_string(),
                access.authorization.expose().to_string(),
            )];
            json_post(access.url.expose().to_string(), headers, to_bytes(&body))
        })
        .collect()
}

pub(super) fn classify(response: &HttpResponse) -> Verdict {
    classify_answer("mixpanel", response, Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::contract::Adapter;
    use crate::request::basic_auth;
    use crate::test_support::{
        self, BuildValues, adapter_for, body_json, invalid_field, response, send,
    };
    use crate::testkit::credentials::{
        MIXPANEL_GDPR_API_TOKEN, MIXPANEL_PROJECT_TOKEN, MIXPANEL_SERVICE_ACCOUNT,
        MIXPANEL_SERVICE_SECRET,
    };
    use crate::testkit::{FakeTool, Tool};

    const AT: time::OffsetDateTime = datetime!(2026-11-22 10:24:47.014 UTC);
    const SERVICE_ACCOUNT: &str = r#""service_account_username": "sa.user", "service_account_secret": "sa-secret-value", "project_id": "3141592""#;

    fn adapter(text: &str) -> Box<dyn Adapter> {
        crate::build("mixpanel", &test_support::settings(text))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn ids(values: &[&str]) -> Vec<String> {
        values.iter().map(|id| id.to_string()).collect()
    }

    fn first(adapter: &dyn Adapter, user_ids: &[String]) -> HttpRequest {
        adapter
            .plan_deletion(user_ids, AT)
            .unwrap_or_default()
            .remove(0)
    }

    #[test]
    fn deletions_need_the_gdpr_token_and_the_project_token() {
        for settings in [
            format!("{{{SERVICE_ACCOUNT}}}"),
            r#"{"api_secret": "a"}"#.to_string(),
            r#"{"project_token": "t"}"#.to_string(),
        ] {
            assert_eq!(
                adapter(&settings).plan_deletion(&ids(&["u"]), AT),
                None,
                "{settings}"
            );
        }
        let mixpanel = crate::find("mixpanel").unwrap_or_else(|error| panic!("{error}"));
        for settings in [
            format!(r#"{{{SERVICE_ACCOUNT}, "gdpr_api_token": "g"}}"#),
            r#"{"api_secret": "a", "gdpr_api_token": "g"}"#.to_string(),
            // Beside another credential, project_token is for deletions only.
            format!(r#"{{{SERVICE_ACCOUNT}, "project_token": "t"}}"#),
        ] {
            assert_eq!(
                invalid_field(mixpanel, &settings),
                "project_token",
                "{settings}"
            );
        }
        assert_eq!(
            invalid_field(
                mixpanel,
                r#"{"project_token": "t", "gdpr_api_token": "g h"}"#
            ),
            "gdpr_api_token"
        );
        assert_eq!(
            invalid_field(
                mixpanel,
                r#"{"api_secret": "a", "project_token": "t", "gdpr_api_token": "g", "service_account_username": "u", "service_account_secret": "s", "project_id": "1"}"#
            ),
            "api_secret"
        );
        let token_only = adapter(r#"{"project_token": "t", "gdpr_api_token": "g"}"#);
        assert_eq!(token_only.plan_deletion(&[], AT), Some(Vec::new()));
    }

    #[test]
    fn the_import_keeps_its_credential_beside_the_deletion_token() {
        let adapter = adapter(&format!(
            r#"{{{SERVICE_ACCOUNT}, "project_token": "tok", "gdpr_api_token": "gdpr-1"}}"#
        ));
        let event = test_support::track();
        let import = adapter.build_values(&[&event]).requests.remove(0).request;
        assert_eq!(
            import.url,
            "https://api.mixpanel.com/import?strict=1&project_id=3141592"
        );
        assert_eq!(
            import.headers[1].1,
            basic_auth("sa.user", "sa-secret-value")
        );
        let deletion = first(adapter.as_ref(), &ids(&["user-42"]));
        assert_eq!(
            deletion.url,
            "https://mixpanel.com/api/app/data-deletions/v3.0/?token=tok"
        );
        assert_eq!(
            deletion.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Authorization".to_string(), "Bearer gdpr-1".to_string()),
            ]
        );
        assert_eq!(
            body_json(&deletion),
            json!({"distinct_ids": ["user-42"], "compliance_type": "GDPR"})
        );
    }

    #[test]
    fn the_region_chooses_the_gdpr_host_and_the_token_is_escaped() {
        let url = |extra: &str| {
            let text = format!(r#"{{"project_token": "t+k/1", "gdpr_api_token": "g"{extra}}}"#);
            first(adapter(&text).as_ref(), &ids(&["u"])).url
        };
        let path = "/api/app/data-deletions/v3.0/?token=t%2Bk%2F1";
        assert_eq!(url(""), format!("https://mixpanel.com{path}"));
        assert_eq!(
            url(r#", "region": "eu""#),
            format!("https://eu.mixpanel.com{path}")
        );
        assert_eq!(
            url(r#", "region": "in""#),
            format!("https://in.mixpanel.com{path}")
        );
        assert_eq!(
            url(r#", "region": "eu", "api_url": "http://127.0.0.1:9/""#),
            format!("http://127.0.0.1:9{path}")
        );
    }

    #[test]
    fn ids_are_sent_once_in_order_2000_a_request() {
        let mut many: Vec<String> = (0..4500).map(|n| format!("id-{n}")).collect();
        many.push("id-7".into());
        many.push(String::new());
        let plan = adapter(r#"{"project_token": "t", "gdpr_api_token": "g"}"#)
            .plan_deletion(&many, AT)
            .unwrap_or_default();
        let batches: Vec<Vec<Value>> = plan
            .iter()
            .map(|request| match body_json(request)["distinct_ids"].clone() {
                Value::Array(ids) => ids,
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            [2000, 2000, 500]
        );
        let sent: Vec<Value> = batches.into_iter().flatten().collect();
        let expected: Vec<Value> = (0..4500).map(|n| json!(format!("id-{n}"))).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn debug_output_shows_no_token() {
        let text = r#"{"project_token": "topsecret-token", "gdpr_api_token": "topsecret-gdpr"}"#;
        let plan = format!("{:?}", adapter(text).plan_deletion(&ids(&["u"]), AT));
        assert!(
            !plan.contains("topsecret") && !plan.contains("Bearer"),
            "{plan}"
        );
        let settings =
            super::super::settings::MixpanelSettings::read(&test_support::settings(text));
        let settings = format!("{settings:?}");
        assert!(!settings.contains("topsecret"), "{settings}");
    }

    #[test]
    fn answers_are_read_as_the_gdpr_api_documents_them() {
        let adapter = adapter(r#"{"project_token": "t", "gdpr_api_token": "g"}"#);
        let created = r#"{"status": "ok", "results": {"task_id": "job-tracking-id"}}"#;
        for status in [200, 201] {
            assert_eq!(
                adapter.classify_deletion(&response(status, &[], created)),
                Verdict::Delivered
            );
        }
        for status in [400, 401, 403] {
            assert!(
                matches!(
                    adapter.classify_deletion(&response(
                        status,
                        &[],
                        r#"{"error": "x", "status": "error"}"#
                    )),
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
            adapter.classify_deletion(&response(500, &[], "")),
            Verdict::Retry { .. }
        ));
    }

    #[tokio::test]
    async fn round_trip_creates_a_deletion_task() {
        let fake = FakeTool::start(Tool::Mixpanel).await;
        let adapter = adapter_for(&fake, &[]);
        // The fake's settings import with the service account and delete with the tokens.
        let event = test_support::track();
        let planned = adapter.build_values(&[&event]).requests.remove(0);
        assert_eq!(send(&planned.request).await.status, 200);
        let import = &fake.requests()[0];
        assert_eq!(
            import.header("authorization"),
            Some(basic_auth(MIXPANEL_SERVICE_ACCOUNT, MIXPANEL_SERVICE_SECRET).as_str())
        );

        let person = ids(&["user-42", "a0fe94da-119a-4e6c-8108-4c860fd3a784"]);
        let request = first(adapter.as_ref(), &person);
        let answer = send(&request).await;
        assert_eq!(answer.status, 201);
        assert_eq!(adapter.classify_deletion(&answer), Verdict::Delivered);
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
        assert_eq!(body["status"], json!("ok"));
        assert!(body["results"]["task_id"].is_string(), "{body}");
        assert_eq!(fake.deleted(), person);
        let recorded = fake.deletions();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path, "/api/app/data-deletions/v3.0/");
        assert_eq!(
            recorded[0].query.as_deref(),
            Some(format!("token={MIXPANEL_PROJECT_TOKEN}").as_str())
        );
        assert_eq!(
            recorded[0].header("authorization"),
            Some(format!("Bearer {MIXPANEL_GDPR_API_TOKEN}").as_str())
        );
        assert_eq!(fake.accepted().len(), 1);
    }

    #[tokio::test]
    async fn round_trip_refusals_throttling_and_outages() {
        let fake = FakeTool::start(Tool::Mixpanel).await;
        let person = ids(&["user-42"]);
        for (change, status) in [("gdpr_api_token", 401), ("project_token", 403)] {
            let wrong = adapter_for(&fake, &[(change, json!("not-the-right-one"))]);
            let answer = send(&first(wrong.as_ref(), &person)).await;
            assert_eq!(answer.status, status, "{change}");
            let body: Value = serde_json::from_slice(&answer.body).unwrap_or_default();
            assert_eq!(body["status"], json!("error"));
            assert!(matches!(
                wrong.classify_deletion(&answer),
                Verdict::Reject { .. }
            ));
        }

        let adapter = adapter_for(&fake, &[]);
        let request = first(adapter.as_ref(), &person);
        fake.push_answer(502, &[], "bad gateway");
        assert!(matches!(
            adapter.classify_deletion(&send(&request).await),
            Verdict::Retry { .. }
        ));
        fake.set_rate_limit(1);
        let first_answer = send(&request).await;
        let second = send(&request).await;
        assert_eq!(first_answer.status, 201);
        assert_eq!(second.status, 429);
        assert!(matches!(
            adapter.classify_deletion(&second),
            Verdict::Retry { after: Some(after), .. } if after == Duration::from_secs(1)
        ));
        assert_eq!(fake.deleted(), person);
        assert_eq!(fake.deletions().len(), 5);
    }

    #[tokio::test]
    async fn the_fake_checks_the_body_like_mixpanel() {
        let fake = FakeTool::start(Tool::Mixpanel).await;
        let adapter = adapter_for(&fake, &[]);
        let request = first(adapter.as_ref(), &ids(&["someone"]));
        let with_body = |body: Value| {
            let mut changed = request.clone();
            changed.body = serde_json::to_vec(&body).unwrap_or_default();
            changed
        };
        let too_many: Vec<String> = (0..=MAX_IDS).map(|n| format!("id-{n}")).collect();
        for body in [
            json!({"distinct_ids": too_many}),
            json!({"distinct_ids": []}),
            json!({"distinct_ids": [1, 2]}),
            json!({"distinct_ids": ["a"], "compliance_type": "HIPAA"}),
        ] {
            let answer = send(&with_body(body.clone())).await;
            assert_eq!(answer.status, 400, "{body}");
        }
        let mut no_token = request.clone();
        no_token.url = no_token.url.replace(MIXPANEL_PROJECT_TOKEN, "");
        assert_eq!(send(&no_token).await.status, 400);
        assert!(fake.deleted().is_empty());
    }
}
