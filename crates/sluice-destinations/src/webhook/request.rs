//! Building webhook requests: the event's JSON as stored (key order and number digits kept),
//! or a JSON array of events when batching, signed when a `secret` is set.
//!
//! Signature: `X-Signature: sha256=<hex>`, the lowercase hex HMAC-SHA256 of the exact body
//! bytes keyed with the secret's UTF-8 bytes. A retry sends the same bytes, so the same
//! signature. (Segment's Webhooks destination signs with HMAC-SHA1 and no `sha256=` prefix; the
//! prefix makes a receiver built for that fail loudly instead of comparing the wrong hash.)

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::contract::{HttpRequest, Outgoing, Plan, Planned};
use crate::request::{Encoded, hex, join, json_post};

use super::settings::WebhookSettings;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Signature";

/// The signature header's value for `body`: `sha256=` and the lowercase hex HMAC-SHA256.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map(|mut mac| {
        mac.update(body);
        mac.finalize().into_bytes()
    });
    let digest = mac.map(|bytes| hex(&bytes)).unwrap_or_default();
    format!("sha256={digest}")
}

/// One request per `batch_size` events, in order.
pub(super) fn plan(settings: &WebhookSettings, events: &[Outgoing<'_>]) -> Plan {
    let mut plan = Plan::default();
    let encoded: Vec<Encoded> = events
        .iter()
        .enumerate()
        .map(|(event, outgoing)| Encoded {
            event,
            bytes: outgoing.json().as_bytes().to_vec(),
        })
        .collect();
    for chunk in encoded.chunks(settings.batch_size) {
        let body = if settings.batch_size == 1 {
            join(b"", chunk, b"")
        } else {
            join(b"[", chunk, b"]")
        };
        plan.requests.push(Planned {
            request: post(settings, body),
            events: chunk.iter().map(|record| record.event).collect(),
        });
    }
    plan
}

/// A JSON `POST` of `body` to the URL, with the user's headers and, when a `secret` is set,
/// the signature.
pub(super) fn post(settings: &WebhookSettings, body: Vec<u8>) -> HttpRequest {
    let mut headers: Vec<(String, String)> = settings
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose().to_string()))
        .collect();
    if let Some(secret) = &settings.secret {
        headers.push((SIGNATURE_HEADER.to_string(), sign(secret.expose(), &body)));
    }
    json_post(settings.url.clone(), headers, body)
}
