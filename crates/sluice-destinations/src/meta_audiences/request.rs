//! Meta requests and answers.
//!
//! Members: `POST /{v}/{audience_id}/users` adds, `DELETE` on the same path removes, with
//! `{"session": {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"},
//! "payload": {"schema": [...], "data": [[...], ...]}}`: multi-key rows, positional, `""` for a
//! key the person lacks, at most 10,000 rows a request. The schema holds the keys at least one
//! row of the request has, in [`SCHEMA`] order.
//!
//! Sessions: one per run of consecutive events for one audience and action; its id is a
//! positive 63-bit number derived from the run's first event (`messageId`, else the event),
//! the audience and the action, so planning the same events again — a retry — gives the same
//! session. `batch_seq` counts the run's requests from 1 and `last_batch_flag` marks its last.
//! (The engine hands at most 10,000 events at once, so in practice a session is one request.)
//!
//! Answers ([`classify`]): the error body's `code` decides, whatever the HTTP status:
//! throttling (4, 17, 32, 613, 80003) is retried no sooner than `X-Business-Use-Case-Usage`'s
//! `estimated_time_to_regain_access` (minutes) or `Retry-After`; transient errors (1, 2, 341,
//! 368, 5000, 21009, or `is_transient`) are retried; 190 (bad or expired token) and an HTTP
//! 401 without Meta's error body are [`Verdict::Unauthorized`]; anything else is rejected with its code and subcode — never Meta's
//! message, which can quote the rows back. A success where every row was invalid is rejected.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::audience::member::{self, Action, Field};
use crate::audience::memo::Scratch;
use crate::audience::normalize::{Digest, Identifier, IdentifierKind, Platform};
use crate::audience::raw::Raw;
use crate::audience::{
    Chunk, Row, no_identifier, plan_runs, push_json_str, push_plain_str, status_reason,
};
use crate::contract::{HttpRequest, HttpResponse, Method, Plan, Verdict, retry_after};
use crate::request::{json_post, to_bytes};

use super::settings::MetaSettings;

/// Most rows in one request.
pub(super) const MAX_ROWS: usize = 10_000;

/// Meta's multi-key schema, in the order Sluice writes it.
pub(super) const SCHEMA: [&str; 15] = [
    "EXTERN_ID",
    "EMAIL",
    "PHONE",
    "DOBY",
    "DOBM",
    "DOBD",
    "LN",
    "FN",
    "FI",
    "GEN",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "MADID",
];

/// One person's keys.
pub(super) struct MetaRow {
    /// The keys, in [`SCHEMA`] order. Boxed: rows move from the reading threads into one batch
    /// between the planning steps, and a pointer moves where 600 bytes would be copied.
    cells: Box<[Option<Identifier>; 15]>,
    /// Bit `i` set when `cells[i]` is present, and the bytes the present cells take in a body:
    /// found while the cells are fresh, so that a request's schema and size are known without
    /// reading every row's cells again.
    present: u16,
    bytes: usize,
}

impl MetaRow {
    fn new(cells: Box<[Option<Identifier>; 15]>) -> MetaRow {
        let mut present = 0;
        let mut bytes = 0;
        for (column, cell) in cells.iter().enumerate() {
            let Some(cell) = cell else {
                continue;
            };
            present |= 1 << column;
            bytes += match cell {
                Identifier::Hashed(_) => 67,
                Identifier::Plain(text) => text.len() + 3,
            };
        }
        MetaRow {
            cells,
            present,
            bytes,
        }
    }
}

/// The row of one membership: every key Meta takes that the event has, normalized and hashed.
fn row(settings: &MetaSettings, member: &member::Membership<'_>, scratch: &mut Scratch) -> MetaRow {
    let traits = &member.traits;
    let context = settings.common.context(traits);
    let mut take = |kind: IdentifierKind, value: Option<&str>| {
        value.and_then(|value| {
            scratch.identifier(Platform::Meta, kind, value, &context, Digest::Sha256)
        })
    };
    let birth = traits.birth_date();
    let first = traits.get(Field::FirstName);
    MetaRow::new(Box::new([
        take(IdentifierKind::ExternalId, traits.user_id.as_deref()),
        take(IdentifierKind::Email, traits.get(Field::Email)),
        take(IdentifierKind::Phone, traits.get(Field::Phone)),
        take(IdentifierKind::BirthYear, birth.map(|(y, _, _)| y)),
        take(IdentifierKind::BirthMonth, birth.map(|(_, m, _)| m)),
        take(IdentifierKind::BirthDay, birth.map(|(_, _, d)| d)),
        take(IdentifierKind::LastName, traits.get(Field::LastName)),
        take(IdentifierKind::FirstName, first),
        take(IdentifierKind::FirstInitial, first),
        take(IdentifierKind::Gender, traits.get(Field::Gender)),
        take(IdentifierKind::City, traits.get(Field::City)),
        take(IdentifierKind::State, traits.get(Field::State)),
        take(IdentifierKind::PostalCode, traits.get(Field::PostalCode)),
        take(IdentifierKind::Country, traits.get(Field::Country)),
        take(
            IdentifierKind::MobileAdId,
            traits.advertising_id.as_ref().map(|(id, _)| id.as_ref()),
        ),
    ]))
}

pub(super) fn plan(settings: &MetaSettings, events: &[&str]) -> Plan {
    plan_runs(
        events,
        MAX_ROWS,
        |text, scratch| {
            let member = member::read(text, &settings.common.consent_category)?;
            let row = row(settings, &member, scratch);
            if row.present == 0 {
                return Err(member::Refusal::Invalid(no_identifier(
                    "meta",
                    &member.traits,
                )));
            }
            Ok((member.audience_id, member.action, row))
        },
        |a, b| a.audience == b.audience && a.action == b.action,
        |chunk| request(settings, chunk),
    )
}

/// The session id of a run: positive, 63 bits, from its first event, audience and action.
pub(super) fn session_id(first_event: &str, audience: &str, action: Action) -> u64 {
    let mut hasher = Sha256::new();
    let [message_id] = Raw::new(first_event).get(["messageId"]);
    match message_id.and_then(|id| id.as_str()) {
        Some(id) if !id.is_empty() => hasher.update(id.as_bytes()),
        _ => hasher.update(first_event.as_bytes()),
    }
    hasher.update([0]);
    hasher.update(audience.as_bytes());
    hasher.update(match action {
        Action::Add => b"\0add".as_slice(),
        Action::Remove => b"\0remove".as_slice(),
    });
    let digest = hasher.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(bytes) & (u64::MAX >> 1)).max(1)
}

fn request(settings: &MetaSettings, chunk: &Chunk<'_, MetaRow>) -> HttpRequest {
    let first = &chunk.rows[0];
    let mut present = 0u16;
    for row in chunk.rows {
        present |= row.data.present;
    }
    let used: Vec<usize> = (0..SCHEMA.len())
        .filter(|column| present & (1 << column) != 0)
        .collect();
    let session = json!({
        "session_id": session_id(chunk.first_event, &first.audience, first.action),
        "batch_seq": chunk.seq,
        "last_batch_flag": chunk.seq == chunk.chunks,
        "estimated_num_total": chunk.run_rows,
    });
    // Sized for what is written (hashes 64 digits, plain values their length): a buffer much
    // larger than its body costs fresh pages for nothing.
    let mut cells = 0;
    for row in chunk.rows {
        let absent = used.len() - row.data.present.count_ones() as usize;
        cells += row.data.bytes + 3 * absent + 2;
    }
    let mut body = Vec::with_capacity(256 + cells);
    body.extend_from_slice(b"{\"session\":");
    body.extend_from_slice(&to_bytes(&session));
    body.extend_from_slice(b",\"payload\":{\"schema\":[");
    for (position, column) in used.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        push_plain_str(&mut body, SCHEMA[*column]);
    }
    body.extend_from_slice(b"],\"data\":[");
    for (index, row) in chunk.rows.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        push_row(&mut body, row, &used);
    }
    body.extend_from_slice(b"]}}");
    let url = settings.url(&format!("{}/users", first.audience));
    let headers = vec![(
        "Authorization".to_string(),
        settings.authorization.expose().to_string(),
    )];
    let mut request = json_post(url, headers, body);
    if first.action == Action::Remove {
        request.method = Method::Delete;
    }
    request
}

fn push_row(body: &mut Vec<u8>, row: &Row<'_, MetaRow>, used: &[usize]) {
    body.push(b'[');
    for (position, column) in used.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        match &row.data.cells[*column] {
            Some(Identifier::Hashed(hex)) => hex.push_quoted(body),
            Some(Identifier::Plain(text)) => push_json_str(body, text),
            None => body.extend_from_slice(b"\"\""),
        }
    }
    body.push(b']');
}

/// The request that creates a customer-file custom audience.
pub(super) fn create(settings: &MetaSettings, name: &str, description: &str) -> HttpRequest {
    let body = json!({
        "name": name,
        "subtype": "CUSTOM",
        "description": description,
        "customer_file_source": settings.customer_file_source,
    });
    let url = settings.url(&format!("act_{}/customaudiences", settings.ad_account_id));
    let headers = vec![(
        "Authorization".to_string(),
        settings.authorization.expose().to_string(),
    )];
    json_post(url, headers, to_bytes(&body))
}

/// The id in the answer to [`create`].
pub(super) fn parse_created(response: &HttpResponse) -> Result<String, Verdict> {
    #[derive(Deserialize)]
    struct Created {
        id: Option<Value>,
    }
    let verdict = classify(response);
    if verdict != Verdict::Delivered {
        return Err(verdict);
    }
    let id = serde_json::from_slice::<Created>(&response.body)
        .ok()
        .and_then(|created| created.id)
        .and_then(|id| match id {
            Value::String(id) if !id.is_empty() => Some(id),
            Value::Number(id) => Some(id.to_string()),
            _ => None,
        });
    id.ok_or_else(|| Verdict::Reject {
        reason: "meta: the answer to creating an audience has no id".into(),
    })
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<MetaError>,
}

#[derive(Deserialize)]
struct MetaError {
    code: Option<i64>,
    error_subcode: Option<i64>,
    #[serde(default)]
    is_transient: bool,
    fbtrace_id: Option<String>,
}

#[derive(Deserialize)]
struct Success {
    num_received: Option<u64>,
    num_invalid_entries: Option<u64>,
}

/// Codes Meta sends when a rate limit is reached.
const THROTTLED: [i64; 5] = [4, 17, 32, 613, 80003];
/// Codes of temporary failures.
const TRANSIENT: [i64; 6] = [1, 2, 341, 368, 5000, 21009];

pub(super) fn classify(response: &HttpResponse) -> Verdict {
    let body: Option<ErrorBody> = serde_json::from_slice(&response.body).ok();
    let error = body.and_then(|body| body.error);
    let Some(error) = error else {
        return classify_without_error(response);
    };
    let code = error.code.unwrap_or(0);
    let subcode = error.error_subcode;
    let what = describe(code, subcode);
    let numbers = match subcode {
        Some(subcode) => format!("{code}/{subcode}"),
        None => code.to_string(),
    };
    let trace = error
        .fbtrace_id
        .filter(|id| id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(|id| format!(" (fbtrace_id {id})"))
        .unwrap_or_default();
    if THROTTLED.contains(&code) {
        return Verdict::Retry {
            after: throttle_wait(response),
            reason: format!("meta: rate limited, error {numbers}: {what}{trace}"),
        };
    }
    if code == 190 {
        return Verdict::Unauthorized {
            reason: format!("meta error {numbers}: {what}{trace}"),
        };
    }
    if TRANSIENT.contains(&code) || error.is_transient {
        return Verdict::Retry {
            after: retry_after(response),
            reason: format!("meta: temporary error {numbers}: {what}{trace}"),
        };
    }
    Verdict::Reject {
        reason: format!("meta: error {numbers}: {what}{trace}"),
    }
}

fn classify_without_error(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if (200..300).contains(&status) {
        let counts: Option<Success> = serde_json::from_slice(&response.body).ok();
        let (received, invalid) = counts
            .map(|c| {
                (
                    c.num_received.unwrap_or(0),
                    c.num_invalid_entries.unwrap_or(0),
                )
            })
            .unwrap_or((0, 0));
        if received > 0 && invalid >= received {
            return Verdict::Reject {
                reason: format!(
                    "meta: every row was invalid ({invalid} of {received}); check the hashing of the identifiers"
                ),
            };
        }
        return Verdict::Delivered;
    }
    if status == 401 {
        return Verdict::Unauthorized {
            reason: status_reason("meta", status),
        };
    }
    if status == 408 || status == 429 || status >= 500 {
        return Verdict::Retry {
            after: throttle_wait(response),
            reason: status_reason("meta", status),
        };
    }
    Verdict::Reject {
        reason: status_reason("meta", status),
    }
}

/// How long Meta asks to wait: the longest `estimated_time_to_regain_access` (minutes) in
/// `X-Business-Use-Case-Usage`, or `Retry-After`, whichever is longer; at most a day.
pub(super) fn throttle_wait(response: &HttpResponse) -> Option<Duration> {
    const MAX: Duration = Duration::from_secs(24 * 3600);
    let usage = response
        .header("x-business-use-case-usage")
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|usage| {
            let minutes = usage
                .as_object()?
                .values()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(|entry| entry.get("estimated_time_to_regain_access")?.as_u64())
                .max()?;
            (minutes > 0).then(|| Duration::from_secs(minutes.saturating_mul(60)).min(MAX))
        });
    match (usage, retry_after(response)) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

/// What a Meta error means, for the reason (Meta's own message is not used).
fn describe(code: i64, subcode: Option<i64>) -> &'static str {
    match (code, subcode) {
        (100, Some(33)) => "the audience does not exist, or the token may not use it",
        (100, Some(1713230)) => "the audience is blocked by meta's integrity checks",
        (100, _) => "invalid parameter",
        (190, _) => "the access token is invalid, expired or revoked",
        (200, Some(1870090)) => "the custom audience terms are not accepted for the ad account",
        (200, Some(1870050)) => "the ad account is not in a business manager",
        (200, _) => "permission denied",
        (294, _) => "the app may not manage ads",
        (2650, _) => "custom audience update refused",
        (1487301, _) => "the audience is not shared with the ad account",
        (1487366, _) => "the audience was deleted",
        (4, _) | (17, _) | (32, _) | (613, _) | (80003, _) => "too many calls",
        (1, _) | (2, _) | (341, _) | (368, _) | (5000, _) | (21009, _) => "temporary meta error",
        _ => "refused",
    }
}
