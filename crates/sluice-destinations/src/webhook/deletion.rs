//! Forwarded deletions to a webhook: a `delete` event per id, as Segment's Webhooks destination
//! sends one when a deletion is requested, so the receiver can erase the person on its side.
//!
//! Each request is a JSON object, whatever `batch_size` is, `POST`ed to the URL with the same
//! headers and signature as events:
//!
//! ```json
//! {"type": "delete", "userId": "user-42", "messageId": "delete-…", "timestamp": "2026-11-22T10:24:47.014Z",
//!  "channel": "server", "context": {"library": {"name": "sluice", "version": "0.1.0"}}}
//! ```
//!
//! `timestamp` is when the deletion was requested; `messageId` is derived from the id and that
//! time, so planning the same deletion again sends the same bytes (and signature), and a
//! receiver can recognise a repeat. Answers read like events' (see [`classify_status`]).
//!
//! [`classify_status`]: crate::contract::classify_status

use serde_json::json;
use sha2::{Digest, Sha256};
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::contract::HttpRequest;
use crate::deletion::unique_ids;
use crate::request::{hex, to_bytes};

use super::request::post;
use super::settings::WebhookSettings;

/// ISO 8601 in UTC with milliseconds, as Segment's timestamps are written.
const TIMESTAMP: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub(super) fn plan(
    settings: &WebhookSettings,
    user_ids: &[String],
    requested_at: OffsetDateTime,
) -> Vec<HttpRequest> {
    let timestamp = requested_at
        .to_offset(UtcOffset::UTC)
        .format(TIMESTAMP)
        .unwrap_or_default();
    unique_ids(user_ids)
        .into_iter()
        .map(|id| {
            let body = json!({
                "type": "delete",
                "userId": id,
                "messageId": message_id(id, &timestamp),
                "timestamp": timestamp,
                "channel": "server",
                "context": {"library": {"name": "sluice", "version": env!("CARGO_PKG_VERSION")}},
            });
            post(settings, to_bytes(&body))
        })
        .collect()
}

/// `delete-` and 32 hex digits of the SHA-256 of the id and the time.
fn message_id(id: &str, timestamp: &str) -> String {
    let digest = Sha256::digest(format!("{}:{id}:{timestamp}", id.len()).as_bytes());
    format!("delete-{}", hex(&digest[..16]))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::contract::{Adapter, Verdict};
    use crate::test_support::{self, BuildValues, adapter_for, body_json, send};
    use crate::testkit::credentials::{WEBHOOK_AUTHORIZATION, WEBHOOK_SECRET};
    use crate::testkit::{FakeTool, Tool};
    use crate::webhook::{SIGNATURE_HEADER, sign};

    const AT: OffsetDateTime = datetime!(2026-11-22 10:24:47.014 UTC);

    fn adapter(text: &str) -> Box<dyn Adapter> {
        crate::build("webhook", &test_support::settings(text))
            .unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    fn ids(values: &[&str]) -> Vec<String> {
        values.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn each_id_becomes_a_signed_delete_event() {
        let adapter = adapter(
            r#"{"url": "https://hooks.example/in", "secret": "k3y", "headers": {"X-Team": "growth"}, "batch_size": 50}"#,
        );
        let plan = adapter
            .plan_deletion(&ids(&["user-42", "", "anon-1", "user-42"]), AT)
            .unwrap_or_default();
        assert_eq!(plan.len(), 2);
        let request = &plan[0];
        assert_eq!(request.url, "https://hooks.example/in");
        // Key order as Segment writes it; one object per request even when batching events.
        assert_eq!(
            String::from_utf8_lossy(&request.body),
            format!(
                r#"{{"type":"delete","userId":"user-42","messageId":"{}","timestamp":"2026-11-22T10:24:47.014Z","channel":"server","context":{{"library":{{"name":"sluice","version":"{}"}}}}}}"#,
                message_id("user-42", "2026-11-22T10:24:47.014Z"),
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            request.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("X-Team".to_string(), "growth".to_string()),
                (SIGNATURE_HEADER.to_string(), sign("k3y", &request.body)),
            ]
        );
        assert_eq!(body_json(&plan[1])["userId"], json!("anon-1"));
        let message = body_json(request)["messageId"].clone();
        assert!(
            message
                .as_str()
                .is_some_and(|id| id.len() == 39 && id.starts_with("delete-")),
            "{message}"
        );
    }

    #[test]
    fn planning_again_gives_the_same_bytes_and_the_time_is_written_in_utc() {
        let adapter = adapter(r#"{"url": "https://hooks.example/in", "secret": "k3y"}"#);
        let person = ids(&["user-42"]);
        assert_eq!(
            adapter.plan_deletion(&person, AT),
            adapter.plan_deletion(&person, AT)
        );
        let later = adapter
            .plan_deletion(&person, datetime!(2026-11-22 12:24:47.014 +02:00))
            .unwrap_or_default();
        let body = body_json(&later[0]);
        assert_eq!(body["timestamp"], json!("2026-11-22T10:24:47.014Z"));
        let other_time = adapter
            .plan_deletion(&person, datetime!(2026-11-23 00:00 UTC))
            .unwrap_or_default();
        assert_ne!(body["messageId"], body_json(&other_time[0])["messageId"]);
        assert_eq!(
            adapter.plan_deletion(&[String::new()], AT),
            Some(Vec::new())
        );
    }

    #[tokio::test]
    async fn round_trip_through_the_fake() {
        let fake = FakeTool::start(Tool::Webhook).await;
        let adapter = adapter_for(&fake, &[]);
        let event = test_support::track();
        let planned = adapter.build_values(&[&event]).requests.remove(0);
        assert_eq!(send(&planned.request).await.status, 200);

        let person = ids(&["user-42", "a0fe94da-119a-4e6c-8108-4c860fd3a784"]);
        for request in adapter.plan_deletion(&person, AT).unwrap_or_default() {
            let answer = send(&request).await;
            assert_eq!(adapter.classify_deletion(&answer), Verdict::Delivered);
        }
        assert_eq!(fake.deleted(), person);
        let recorded = fake.deletions();
        assert_eq!(recorded.len(), 2);
        assert_eq!(
            recorded[0].header("authorization"),
            Some(WEBHOOK_AUTHORIZATION)
        );
        assert_eq!(
            recorded[0].header("x-signature"),
            Some(sign(WEBHOOK_SECRET, &recorded[0].body).as_str())
        );
        // The delete events are not counted as events.
        assert_eq!(fake.accepted().len(), 1);
    }

    #[tokio::test]
    async fn round_trip_refusals_throttling_and_outages() {
        let fake = FakeTool::start(Tool::Webhook).await;
        let person = ids(&["user-42"]);
        let wrong = adapter_for(&fake, &[("secret", json!("not-the-secret"))]);
        let answer = send(&wrong.plan_deletion(&person, AT).unwrap_or_default()[0]).await;
        assert_eq!(answer.status, 401);
        assert!(matches!(
            wrong.classify_deletion(&answer),
            Verdict::Reject { .. }
        ));

        let adapter = adapter_for(&fake, &[]);
        let request = adapter
            .plan_deletion(&person, AT)
            .unwrap_or_default()
            .remove(0);
        fake.push_answer(503, &[], "maintenance");
        assert!(matches!(
            adapter.classify_deletion(&send(&request).await),
            Verdict::Retry { .. }
        ));
        fake.set_rate_limit(1);
        assert_eq!(send(&request).await.status, 200);
        let throttled = send(&request).await;
        assert_eq!(throttled.status, 429);
        assert!(matches!(
            adapter.classify_deletion(&throttled),
            Verdict::Retry { after: Some(_), .. }
        ));
        assert_eq!(fake.deleted(), person);

        // A delete event without a userId is refused.
        let mut empty = request.clone();
        let mut body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        body["userId"] = json!("");
        empty.body = serde_json::to_vec(&body).unwrap_or_default();
        empty.headers.retain(|(name, _)| name != SIGNATURE_HEADER);
        fake.set_rate_limit(0);
        assert_eq!(send(&empty).await.status, 400);
        assert_eq!(fake.deletions().len(), 5);
    }
}
