//! Test helpers: realistic normalized Segment events (as the log stores them: unicode, big
//! numbers, analytics.js context) and a tiny HTTP client that sends a planned request.

use serde_json::{Map, Value};

use crate::contract::{Adapter, HttpRequest, HttpResponse, Method, Planned, Verdict};
use crate::testkit::FakeTool;
use crate::{DestinationType, SettingsError};

/// Parses JSON text (numbers keep their digits: `arbitrary_precision`).
pub(crate) fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| panic!("bad fixture: {error}: {text}"))
}

/// Settings from JSON text.
pub(crate) fn settings(text: &str) -> Map<String, Value> {
    match parse(text) {
        Value::Object(map) => map,
        other => panic!("settings must be an object: {other}"),
    }
}

/// The field `settings` (JSON text) are refused for, by type `of`.
pub(crate) fn invalid_field(of: &DestinationType, text: &str) -> String {
    match (of.build)(&settings(text)).err() {
        Some(SettingsError::Invalid { field, .. }) => field,
        other => panic!("expected invalid settings for {text}, got {other:?}"),
    }
}

/// The adapter for `fake`'s settings with some changed (`null` removes a setting).
pub(crate) fn adapter_for(fake: &FakeTool, change: &[(&str, Value)]) -> Box<dyn Adapter> {
    let mut settings = fake.settings();
    for (key, value) in change {
        if value.is_null() {
            settings.remove(*key);
        } else {
            settings.insert((*key).to_string(), value.clone());
        }
    }
    let kind = fake.tool().map_or("webhook", |tool| tool.kind());
    crate::build(kind, &settings).unwrap_or_else(|error| panic!("{error}"))
}

/// The analytics.js context shared by the browser fixtures.
const BROWSER_CONTEXT: &str = r#"{
    "ip": "203.0.113.7",
    "library": {"name": "analytics.js", "version": "next-1.84.3"},
    "locale": "de-DE",
    "page": {"path": "/kasse", "referrer": "https://suche.example/?q=k\u00e4se", "search": "", "title": "Kasse – Käseladen", "url": "https://käse.example/kasse"},
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
    "campaign": {"name": "herbst", "source": "newsletter", "medium": "email", "term": "käse", "content": "banner"},
    "timezone": "Europe/Berlin",
    "traits": {"email": "zoë@example.com"}
}"#;

/// A track call from analytics.js: unicode, a 20-digit order id, a float with many digits.
pub(crate) fn track() -> Value {
    parse(&format!(
        r#"{{
        "type": "track",
        "event": "Order Completed",
        "userId": "user-42",
        "anonymousId": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "messageId": "ajs-next-1795343087014-94da119a-4e6c-4108-8c86-0fd3a7845775",
        "timestamp": "2026-11-22T10:24:47.014Z",
        "originalTimestamp": "2026-11-22T10:24:46.990Z",
        "receivedAt": "2026-11-22T10:24:47.120Z",
        "sentAt": "2026-11-22T10:24:47.110Z",
        "properties": {{"order_id": 98765432109876543210, "revenue": 42.50, "currency": "EUR", "price": 21.25, "quantity": 2, "productId": "käse-1", "coupon": "🧀 HERBST", "ratio": 0.1000000000000000055511151231257827}},
        "context": {BROWSER_CONTEXT},
        "integrations": {{}}
    }}"#
    ))
}

/// An identify call from a server library, with both ids (an anonymous visitor logging in).
pub(crate) fn identify() -> Value {
    parse(
        r#"{
        "type": "identify",
        "userId": "user-42",
        "anonymousId": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "messageId": "node-5b1e0a5e-0c7a-4b1c-9d0f-3f1f2a6f7c11",
        "timestamp": "2026-11-22T10:25:00.000Z",
        "traits": {"name": "Zoë Çelik", "email": "zoë@example.com", "plan": "pro", "logins": 12345678901234567890},
        "context": {"ip": "198.51.100.4", "library": {"name": "analytics-node", "version": "2.1.0"}},
        "integrations": {}
    }"#,
    )
}

/// A page call from analytics.js.
pub(crate) fn page() -> Value {
    parse(&format!(
        r#"{{
        "type": "page",
        "name": "Kasse",
        "category": "Shop",
        "anonymousId": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "messageId": "ajs-next-1795343087100-0b0c",
        "timestamp": "2026-11-22T10:24:40.000Z",
        "properties": {{"path": "/kasse", "title": "Kasse – Käseladen", "url": "https://käse.example/kasse"}},
        "context": {BROWSER_CONTEXT},
        "integrations": {{}}
    }}"#
    ))
}

/// A screen call from a mobile library.
pub(crate) fn screen() -> Value {
    parse(
        r#"{
        "type": "screen",
        "name": "Warenkorb",
        "userId": "user-42",
        "messageId": "5E1A4C2B-9F0D-4E55-A1B2-C3D4E5F60718",
        "timestamp": "2026-11-22T10:26:00.000Z",
        "properties": {"items": 3},
        "context": {
            "ip": "192.0.2.10",
            "library": {"name": "analytics-ios", "version": "4.1.8"},
            "app": {"name": "Käseladen", "version": "3.5.1", "build": "351", "namespace": "example.kaese"},
            "device": {"id": "2b6f0cc904d137be2e1730235f5664094b831186", "advertisingId": "AEBE52E7-03EE-455A-B3C4-E57283966239", "manufacturer": "Apple", "model": "iPhone15,2", "type": "ios"},
            "os": {"name": "iOS", "version": "17.1"},
            "network": {"carrier": "T-Mobile", "wifi": true, "cellular": false, "bluetooth": false},
            "screen": {"width": 1179, "height": 2556, "density": 3},
            "locale": "de-DE",
            "location": {"country": "Germany", "city": "Köln", "latitude": 50.9375, "longitude": 6.9603}
        },
        "integrations": {}
    }"#,
    )
}

/// A group call.
pub(crate) fn group() -> Value {
    parse(
        r#"{
        "type": "group",
        "groupId": "acme",
        "userId": "user-42",
        "messageId": "node-7c2e",
        "timestamp": "2026-11-22T10:27:00.000Z",
        "traits": {"name": "ACME GmbH"}
    }"#,
    )
}

/// An alias call.
pub(crate) fn alias() -> Value {
    parse(
        r#"{
        "type": "alias",
        "userId": "user-42",
        "previousId": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "messageId": "node-8d3f",
        "timestamp": "2026-11-22T10:28:00.000Z"
    }"#,
    )
}

/// An audience membership identify from the audience engine: `user-42` entering (`true`) or
/// leaving (`false`) audience `vip_buyers`, platform id `23850000000001`, with contact
/// traits, an iOS ad id and advertising consent granted.
pub(crate) fn audience_identify(message_id: &str, member: bool) -> Value {
    parse(&format!(
        r#"{{
        "type": "identify",
        "userId": "user-42",
        "anonymousId": "a0fe94da-119a-4e6c-8108-4c860fd3a784",
        "messageId": "{message_id}",
        "timestamp": "2026-11-22T10:30:00.000Z",
        "traits": {{"vip_buyers": {member}, "email": " Mary@Example.COM ", "phone": "(555) 987-6543",
                    "firstName": "Mary", "lastName": "O'Brien", "birthday": "1985-07-03", "gender": "Female",
                    "address": {{"city": "San Francisco", "state": "California", "postalCode": "94105-1234", "country": "US"}}}},
        "context": {{
            "personas": {{"computation_class": "audience", "computation_id": "aud_2Kx9", "computation_key": "vip_buyers",
                          "space_id": "ws1", "external_audience_id": "23850000000001"}},
            "device": {{"advertisingId": "6D92078A-8246-4BA4-AE5B-76104861E7DC", "type": "ios"}},
            "consent": {{"categoryPreferences": {{"advertising": true}}}},
            "library": {{"name": "sluice-audiences", "version": "0.1.0"}}
        }}
    }}"#
    ))
}

/// Sends `request` and reads the whole answer (headers lowercased).
pub(crate) async fn send(request: &HttpRequest) -> HttpResponse {
    let client = reqwest::Client::new();
    let mut builder = match request.method {
        Method::Post => client.post(&request.url),
        Method::Get => client.get(&request.url),
        Method::Delete => client.delete(&request.url),
    };
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder
        .body(request.body.clone())
        .send()
        .await
        .unwrap_or_else(|error| panic!("send failed: {error}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                value.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let body = response
        .bytes()
        .await
        .unwrap_or_else(|error| panic!("read failed: {error}"))
        .to_vec();
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// Sends a planned request and reads the answer with the adapter that planned it.
pub(crate) async fn round_trip(
    adapter: &dyn Adapter,
    planned: &Planned,
) -> (HttpResponse, Verdict) {
    let answer = send(&planned.request).await;
    let verdict = adapter.classify(&answer, planned.events.len());
    (answer, verdict)
}

/// Sends a planned request that must be delivered, failing with the tool's answer otherwise.
pub(crate) async fn deliver(adapter: &dyn Adapter, planned: &Planned) {
    let (answer, verdict) = round_trip(adapter, planned).await;
    let body = String::from_utf8_lossy(&answer.body);
    assert_eq!(
        verdict,
        Verdict::Delivered,
        "http {}: {body}",
        answer.status
    );
}

/// The JSON body of a request.
pub(crate) fn body_json(request: &HttpRequest) -> Value {
    serde_json::from_slice(&request.body)
        .unwrap_or_else(|error| panic!("body is not JSON: {error}"))
}

/// A response with this status and body.
pub(crate) fn response(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

/// Builds a plan from parsed events, handing them over as the engine does (JSON text plus
/// the parsed value).
pub(crate) trait BuildValues {
    fn build_values(&self, events: &[&Value]) -> crate::Plan;
}

impl<T: crate::Adapter + ?Sized> BuildValues for T {
    fn build_values(&self, events: &[&Value]) -> crate::Plan {
        let texts: Vec<String> = events.iter().map(|value| value.to_string()).collect();
        let cells: Vec<std::sync::OnceLock<Value>> = events
            .iter()
            .map(|value| std::sync::OnceLock::from((*value).clone()))
            .collect();
        let outgoing: Vec<crate::Outgoing<'_>> = texts
            .iter()
            .zip(&cells)
            .map(|(text, cell)| crate::Outgoing::new(text, cell))
            .collect();
        self.build(&outgoing)
    }
}

/// A platform that takes only its live token (the fake's [`FakeTool::set_token_check`]): a
/// token it stops taking (revoked, expired) reads as [`Verdict::Unauthorized`] on every
/// request, the same membership then goes through with the new token. `event` is a
/// membership the fake of `tool` accepts.
pub(crate) async fn token_rotation(tool: crate::testkit::Tool, event: &Value) {
    use std::sync::{Arc, Mutex};
    let fake = FakeTool::start(tool).await;
    let live = Arc::new(Mutex::new(String::from("first-token-0123456789")));
    let check = Arc::clone(&live);
    fake.set_token_check(Arc::new(move |token: &str| {
        check.lock().is_ok_and(|live| *live == token)
    }));
    let token = |value: &str| [("access_token", Value::String(value.to_string()))];
    let first = adapter_for(&fake, &token("first-token-0123456789"));
    let planned = first.build_values(&[event]).requests.remove(0);
    deliver(&*first, &planned).await;

    // The platform no longer takes the first token (the grant was revoked).
    *live.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) =
        String::from("second-token-0123456789");
    for _ in 0..2 {
        let (answer, verdict) = round_trip(&*first, &planned).await;
        match verdict {
            Verdict::Unauthorized { reason } => {
                assert!(!reason.contains("first-token"), "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{tool:?}: http {}: {other:?}", answer.status),
        }
    }
    let second = adapter_for(&fake, &token("second-token-0123456789"));
    let planned = second.build_values(&[event]).requests.remove(0);
    deliver(&*second, &planned).await;
}
