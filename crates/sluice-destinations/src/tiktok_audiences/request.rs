//! TikTok requests and answers.
//!
//! Members: `POST /open_api/v1.3/segment/mapping/` (the trailing slash is required), header
//! `Access-Token`, body `{"advertiser_ids": [..], "action": "add"|"delete", "id_schema": [..],
//! "batch_data": [[{"id", "audience_ids": [..]} | {}, ..], ..]}`: one inner array per person,
//! positional under `id_schema`, `{}` where the person lacks that id. One schema a request:
//! the id types at least one of its people has, in the order `EMAIL_SHA256`, `PHONE_SHA256`,
//! `IDFA_*`, `AAID_*`. Each id names its own audience, so a request holds consecutive events of
//! one action for any audiences.
//!
//! Answers ([`classify`]): TikTok answers HTTP 200 even for errors, with `code`: 0 (and 20001,
//! partial success) delivered; 40100, 40016, 40133 (rate limits) retried after `Retry-After`;
//! 40102, 40104, 40105, 40106 (token missing, expired, revoked, or not for this advertiser)
//! and an HTTP 401 are [`Verdict::Unauthorized`]; 5xxxx retried; any other code rejected with the code and the
//! request id (never TikTok's message). A 200 that is not TikTok's JSON is retried; other HTTP
//! statuses read as usual (408, 429, 5xx retried).

use serde::Deserialize;
use serde_json::{Value, json};

use crate::audience::hash::Hex;
use crate::audience::member::{self, Action, DeviceOs, Field};
use crate::audience::memo::Scratch;
use crate::audience::normalize::{Digest, Identifier, IdentifierKind, Platform};
use crate::audience::{
    Chunk, no_identifier, plan_runs, push_json_str, push_plain_str, status_reason,
};
use crate::contract::{HttpRequest, HttpResponse, Plan, Verdict, retry_after};
use crate::request::{json_post, to_bytes};

use super::settings::TikTokSettings;

/// The columns, in order: email, phone, IDFA, AAID.
pub(super) type TikTokRow = [Option<Hex>; 4];

/// The `id_schema` name of a column.
fn schema_name(column: usize, mobile: Digest) -> &'static str {
    match (column, mobile) {
        (0, _) => "EMAIL_SHA256",
        (1, _) => "PHONE_SHA256",
        (2, Digest::Sha256) => "IDFA_SHA256",
        (2, Digest::Md5) => "IDFA_MD5",
        (_, Digest::Sha256) => "AAID_SHA256",
        (_, Digest::Md5) => "AAID_MD5",
    }
}

fn row(
    settings: &TikTokSettings,
    member: &member::Membership<'_>,
    scratch: &mut Scratch,
) -> TikTokRow {
    let traits = &member.traits;
    let context = settings.common.context(traits);
    let mut take = |kind: IdentifierKind, value: Option<&str>, digest: Digest| match scratch
        .identifier(Platform::TikTok, kind, value?, &context, digest)?
    {
        Identifier::Hashed(hex) => Some(hex),
        Identifier::Plain(_) => None,
    };
    let email = settings
        .send_email
        .then(|| {
            take(
                IdentifierKind::Email,
                traits.get(Field::Email),
                Digest::Sha256,
            )
        })
        .flatten();
    let phone = settings
        .send_phone
        .then(|| {
            take(
                IdentifierKind::Phone,
                traits.get(Field::Phone),
                Digest::Sha256,
            )
        })
        .flatten();
    let (mut idfa, mut aaid) = (None, None);
    let advertising_id = traits
        .advertising_id
        .as_ref()
        .filter(|_| settings.send_advertising_id);
    if let Some((id, os)) = advertising_id {
        let hashed = take(
            IdentifierKind::MobileAdId,
            Some(id.as_ref()),
            settings.advertising_id_hash,
        );
        match *os {
            DeviceOs::Ios => idfa = hashed,
            DeviceOs::Android => aaid = hashed,
            // IDFA or AAID? TikTok needs to know: the id is not sent.
            DeviceOs::Unknown => {}
        }
    }
    [email, phone, idfa, aaid]
}

pub(super) fn plan(settings: &TikTokSettings, events: &[&str]) -> Plan {
    plan_runs(
        events,
        settings.max_batch,
        |text, scratch| {
            let member = member::read(text, &settings.common.consent_category)?;
            let row = row(settings, &member, scratch);
            if row.iter().all(Option::is_none) {
                return Err(member::Refusal::Invalid(no_identifier(
                    "tiktok (email, phone, or an ad id of a known ios/android device)",
                    &member.traits,
                )));
            }
            Ok((member.audience_id, member.action, row))
        },
        |a, b| a.action == b.action,
        |chunk| request(settings, chunk),
    )
}

fn request(settings: &TikTokSettings, chunk: &Chunk<'_, TikTokRow>) -> HttpRequest {
    let used: Vec<usize> = (0..4)
        .filter(|column| chunk.rows.iter().any(|row| row.data[*column].is_some()))
        .collect();
    let action = match chunk.rows[0].action {
        Action::Add => "add",
        Action::Remove => "delete",
    };
    let mut body = Vec::with_capacity(128 + chunk.rows.len() * (used.len() * 100 + 2));
    body.extend_from_slice(b"{\"advertiser_ids\":[");
    push_plain_str(&mut body, &settings.advertiser_id);
    body.extend_from_slice(b"],\"action\":");
    push_plain_str(&mut body, action);
    body.extend_from_slice(b",\"id_schema\":[");
    for (position, column) in used.iter().enumerate() {
        if position > 0 {
            body.push(b',');
        }
        push_plain_str(
            &mut body,
            schema_name(*column, settings.advertising_id_hash),
        );
    }
    body.extend_from_slice(b"],\"batch_data\":[");
    for (index, row) in chunk.rows.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        body.push(b'[');
        for (position, column) in used.iter().enumerate() {
            if position > 0 {
                body.push(b',');
            }
            match &row.data[*column] {
                Some(hex) => {
                    body.extend_from_slice(b"{\"id\":");
                    hex.push_quoted(&mut body);
                    body.extend_from_slice(b",\"audience_ids\":[");
                    push_json_str(&mut body, &row.audience);
                    body.extend_from_slice(b"]}");
                }
                None => body.extend_from_slice(b"{}"),
            }
        }
        body.push(b']');
    }
    body.extend_from_slice(b"]}");
    json_post(
        format!("{}/segment/mapping/", settings.base),
        vec![(
            "Access-Token".to_string(),
            settings.access_token.expose().to_string(),
        )],
        body,
    )
}

/// Longest audience name TikTok's segment API takes; longer ones are cut to 67 characters and
/// `…`.
const MAX_NAME: usize = 70;

/// `name` cut to TikTok's length.
pub(super) fn audience_name(name: &str) -> String {
    if name.chars().count() <= MAX_NAME {
        return name.to_string();
    }
    let mut cut: String = name.chars().take(MAX_NAME - 3).collect();
    cut.push('…');
    cut
}

/// The request that creates an audience segment.
pub(super) fn create(settings: &TikTokSettings, name: &str) -> HttpRequest {
    let body = json!({
        "custom_audience_name": audience_name(name),
        "advertiser_id": settings.advertiser_id,
        "action": "create",
    });
    json_post(
        format!("{}/segment/audience/", settings.base),
        vec![(
            "Access-Token".to_string(),
            settings.access_token.expose().to_string(),
        )],
        to_bytes(&body),
    )
}

/// `data.audience_id` of the answer to [`create`].
pub(super) fn parse_created(response: &HttpResponse) -> Result<String, Verdict> {
    let verdict = classify(response);
    if verdict != Verdict::Delivered {
        return Err(verdict);
    }
    let answer: Option<Value> = serde_json::from_slice(&response.body).ok();
    let id = answer
        .as_ref()
        .and_then(|answer| answer.pointer("/data/audience_id"))
        .and_then(|id| match id {
            Value::String(id) if !id.is_empty() => Some(id.clone()),
            Value::Number(id) => Some(id.to_string()),
            _ => None,
        });
    id.ok_or_else(|| Verdict::Reject {
        reason: "tiktok: the answer to creating an audience has no data.audience_id".into(),
    })
}

#[derive(Deserialize)]
struct Answer {
    code: Option<i64>,
    request_id: Option<String>,
}

/// Rate limits: app or advertiser queries per second.
const RATE_LIMITED: [i64; 3] = [40100, 40016, 40133];
/// The token is missing, expired, revoked or not for this advertiser.
const UNAUTHORIZED: [i64; 4] = [40102, 40104, 40105, 40106];

pub(super) fn classify(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if !(200..300).contains(&status) {
        let reason = status_reason("tiktok", status);
        return if status == 408 || status == 429 || status >= 500 {
            Verdict::Retry {
                after: retry_after(response),
                reason,
            }
        } else if status == 401 {
            Verdict::Unauthorized { reason }
        } else {
            Verdict::Reject { reason }
        };
    }
    let Some(answer) = serde_json::from_slice::<Answer>(&response.body)
        .ok()
        .filter(|answer| answer.code.is_some())
    else {
        return Verdict::Retry {
            after: retry_after(response),
            reason: format!("tiktok: http {status} without tiktok's json answer"),
        };
    };
    let code = answer.code.unwrap_or_default();
    let request_id = answer
        .request_id
        .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|id| format!(" (request_id {id})"))
        .unwrap_or_default();
    match code {
        0 | 20001 => Verdict::Delivered,
        _ if RATE_LIMITED.contains(&code) => Verdict::Retry {
            after: retry_after(response),
            reason: format!("tiktok: rate limited, code {code}{request_id}"),
        },
        _ if UNAUTHORIZED.contains(&code) => Verdict::Unauthorized {
            reason: format!(
                "tiktok code {code}: the access token is missing, expired, revoked or not for this advertiser{request_id}"
            ),
        },
        50000..=59999 => Verdict::Retry {
            after: retry_after(response),
            reason: format!("tiktok: service error, code {code}{request_id}"),
        },
        40001 => Verdict::Reject {
            reason: format!("tiktok: code {code}: no permission{request_id}"),
        },
        _ => Verdict::Reject {
            reason: format!("tiktok: code {code}{request_id}"),
        },
    }
}
