//! The contract every destination adapter follows.
//!
//! An adapter does no IO. It validates its settings, turns events into HTTP requests, and reads
//! the tool's answer as a [`Verdict`]. The delivery engine (crate `sluice-delivery`) does the
//! sending, the waiting, the retries and the bookkeeping, the same way for every adapter.
//!
//! Forwarded deletions follow the same split. When a privacy regulation deletes a person, the
//! caller asks each destination's adapter for [`Adapter::plan_deletion`]: the requests that ask
//! the tool to delete what it holds about the person's ids, or `None` when the destination
//! cannot take deletions (the tool has no deletion API, or the settings lack the credential it
//! needs). The caller sends each request, reads the answer with [`Adapter::classify_deletion`]
//! (`Delivered`: the tool took the deletion; `Retry`; `Reject`) and records it. Both methods
//! are provided: a type without a deletion API overrides neither.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

/// One event handed to an adapter: its JSON text, exactly as it is to be sent, and its parsed
/// form, parsed on first use — an adapter that forwards the text as it is (the webhook) never
/// pays for parsing.
#[derive(Clone, Copy)]
pub struct Outgoing<'a> {
    json: &'a str,
    value: &'a OnceLock<Value>,
}

impl<'a> Outgoing<'a> {
    /// `value`, when already set, must be the parse of `json`.
    pub fn new(json: &'a str, value: &'a OnceLock<Value>) -> Outgoing<'a> {
        Outgoing { json, value }
    }

    /// The event's JSON text.
    pub fn json(&self) -> &'a str {
        self.json
    }

    /// The parsed event (`null` if the text is not JSON, which the log never holds).
    pub fn value(&self) -> &'a Value {
        self.value
            .get_or_init(|| serde_json::from_str(self.json).unwrap_or(Value::Null))
    }
}

/// The JSON text of each event, for adapters that read it without parsing it.
pub fn texts<'a>(events: &[Outgoing<'a>]) -> Vec<&'a str> {
    events.iter().map(Outgoing::json).collect()
}

/// The parsed form of each event, for adapters that map fields.
pub fn values<'a>(events: &[Outgoing<'a>]) -> Vec<&'a Value> {
    events.iter().map(Outgoing::value).collect()
}

impl fmt::Debug for Outgoing<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Outgoing")
            .field("json_bytes", &self.json.len())
            .finish()
    }
}

/// An HTTP request an adapter wants sent.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: Method,
    pub url: String,
    /// Header names and values, in order. Values may hold credentials: `Debug` hides them.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    /// With or without a body: Meta removes audience members with `DELETE /{audience_id}/users`
    /// and revokes OAuth grants with `DELETE /me/permissions`.
    Delete,
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &"[redacted]")
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

/// What came back from the tool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    /// Header names in lowercase, with their values.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of a header (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One request and the events it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Planned {
    pub request: HttpRequest,
    /// Indices, into the slice given to [`Adapter::build`], of the events this request
    /// carries, in the order the request carries them.
    pub events: Vec<usize>,
}

/// What an adapter made of a batch of events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub requests: Vec<Planned>,
    /// Events the tool does not take (an event type it has no use for, e.g. `alias` for
    /// Slack): counted as filtered, never sent, never retried.
    pub unsupported: Vec<(usize, String)>,
    /// Events that can never be delivered (e.g. a field the tool requires is missing):
    /// dead-lettered with this reason, never sent.
    pub invalid: Vec<(usize, String)>,
}

/// How the tool's answer is read. The engine turns transport failures (timeouts, refused or
/// reset connections, DNS) into `Retry` itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every event of the request arrived.
    Delivered,
    /// Try the whole request again later, no sooner than `after` when the tool said so
    /// (`Retry-After`).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// Never retry: the events go to the dead letters with this reason.
    Reject { reason: String },
    /// The tool refused the destination's credentials (a token missing, invalid, expired or
    /// revoked). Nothing is wrong with the events and sending them again with the same
    /// credentials cannot help: the engine keeps them (neither dead-lettered nor dropped),
    /// sends nothing more to the destination and shows the reason until its credentials
    /// change.
    Unauthorized { reason: String },
    /// One verdict per event of the request, in the request's order (only `Delivered`,
    /// `Retry` and `Reject` appear inside).
    Partial(Vec<Verdict>),
}

/// A destination type's adapter, built from validated settings.
pub trait Adapter: Send + Sync {
    /// Most events in one request (1: the tool takes one event per request).
    fn max_batch(&self) -> usize;

    /// Requests for these events. Every index appears exactly once: in one request, or in
    /// `unsupported`, or in `invalid`. Events of one person keep their relative order within
    /// and across the requests (the engine sends the requests in order).
    fn build(&self, events: &[Outgoing<'_>]) -> Plan;

    /// Reads the answer to one request that carried `events` events.
    fn classify(&self, response: &HttpResponse, events: usize) -> Verdict;

    /// Requests that ask the tool to delete everything it holds about the users known by
    /// `user_ids` (their userIds and anonymousIds, as the tool received them), or `None` when
    /// this destination cannot take deletions. `requested_at` is when the deletion was asked
    /// for; the requests depend only on the ids, the time and the settings, so planning the
    /// same deletion again gives the same requests. Each distinct id is carried once; empty
    /// ids are skipped, and no ids at all give `Some` of no requests.
    fn plan_deletion(
        &self,
        _user_ids: &[String],
        _requested_at: OffsetDateTime,
    ) -> Option<Vec<HttpRequest>> {
        None
    }

    /// Reads the tool's answer to one deletion request (by default with [`classify_status`]).
    /// `Delivered` means the tool accepted the deletion; most tools then delete later, on
    /// their own schedule. Never `Partial`.
    fn classify_deletion(&self, response: &HttpResponse) -> Verdict {
        classify_status(response)
    }
}

/// The classification shared by most tools: 2xx delivered; 408, 429 and 5xx retried
/// (honouring `Retry-After`); any other status rejected. (A 401 is rejected too: most of these
/// tools answer it for a wrong key in one event's payload as well; the adapters whose
/// credentials are OAuth tokens say [`Verdict::Unauthorized`] themselves.)
pub fn classify_status(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if (200..300).contains(&status) {
        return Verdict::Delivered;
    }
    let reason = format!("http {status}: {}", excerpt(&response.body));
    if status == 408 || status == 429 || status >= 500 {
        return Verdict::Retry {
            after: retry_after(response),
            reason,
        };
    }
    Verdict::Reject { reason }
}

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3), capped at one day.
pub fn retry_after(response: &HttpResponse) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(24 * 3600);
    let value = response.header("retry-after")?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds).min(MAX));
    }
    let format = time::format_description::well_known::Rfc2822;
    let at = time::OffsetDateTime::parse(value, &format).ok()?;
    let wait = at - time::OffsetDateTime::now_utc();
    let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX))
}

/// The first 512 bytes of a body, as text, for reasons and dead letters.
pub fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 512;
    let cut = body.len().min(MAX);
    let mut text = String::from_utf8_lossy(&body[..cut]).into_owned();
    if body.len() > MAX {
        text.push('…');
    }
    text
}
