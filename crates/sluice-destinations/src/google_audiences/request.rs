//! Google Data Manager requests and answers.
//!
//! Members: `POST /v1/audienceMembers:ingest` adds and `POST /v1/audienceMembers:remove`
//! removes, Bearer token, at most 10,000 members a request and 10 identifiers a member:
//!
//! ```json
//! {"destinations": [{"operatingAccount": {"accountType": "GOOGLE_ADS", "accountId": "1234567890"},
//!                    "loginAccount": {…}, "productDestinationId": "<user list id>"}],
//!  "audienceMembers": [{"userData": {"userIdentifiers": [{"emailAddress": "<hex>"},
//!                        {"phoneNumber": "<hex>"}, {"address": {"givenName": "<hex>",
//!                        "familyName": "<hex>", "regionCode": "US", "postalCode": "94105"}}]},
//!                       "consent": {"adUserData": "CONSENT_GRANTED", "adPersonalization": "CONSENT_GRANTED"}}],
//!  "consent": {…}, "encoding": "HEX", "termsOfService": {"customerMatchTermsOfServiceStatus": "ACCEPTED"}}
//! ```
//!
//! A member carries the list's one kind of data: `userData` (contact lists), `mobileData.
//! mobileIds` (mobile lists) or `userIdData.userId` (user-id lists) — Data Manager's union and
//! its one-upload-key-type-per-list rule. An address goes only with all four parts. Members of
//! an ingest carry their own consent when their event granted the category; the request-level
//! `consent` holds the settings' defaults (left out when both are unspecified). A removal
//! carries no consent and no terms (`RemoveAudienceMembersRequest` has neither field); the
//! `encoding` goes with contact data only.
//!
//! Answers ([`classify`]): a `google.rpc.Status` body's `error.code` decides over the HTTP
//! status: 429 / `RESOURCE_EXHAUSTED`, `ABORTED` (concurrent modification) and 5xx are retried
//! (after `RetryInfo.retryDelay` or `Retry-After`), 401 / `UNAUTHENTICATED` is
//! [`Verdict::Unauthorized`] (the access token expired or was revoked), the rest rejected with the status, the `ErrorInfo` reason and the offending field paths (never
//! Google's message text).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::audience::member::{self, Action, Consent, DeviceOs, Field, Membership};
use crate::audience::memo::Scratch;
use crate::audience::normalize::{Digest, Identifier, IdentifierKind, Platform};
use crate::audience::{
    Chunk, no_identifier, plan_runs, push_json_str, push_plain_str, status_reason,
};
use crate::contract::{HttpRequest, HttpResponse, Plan, Verdict, retry_after};
use crate::request::{json_post, to_bytes};

use super::settings::{Encoding, GoogleSettings, KeyType};

/// Most members in one request.
pub(super) const MAX_MEMBERS: usize = 10_000;
/// Most identifiers of one member.
pub(super) const MAX_IDENTIFIERS: usize = 10;

/// One member's data, ready to write.
pub(super) enum Data {
    /// `userData.userIdentifiers`: (key, value) pairs, the address as its four parts.
    Contact(Vec<ContactId>),
    /// `mobileData.mobileIds`.
    Mobile(String),
    /// `userIdData.userId`.
    UserId(String),
}

pub(super) enum ContactId {
    Email(Identifier),
    Phone(Identifier),
    Address(Box<Address>),
}

/// The four parts of an address identifier.
pub(super) struct Address {
    given: Identifier,
    family: Identifier,
    region: Identifier,
    postal: Identifier,
}

pub(super) struct GoogleRow {
    data: Data,
    /// Whether the member's own consent (granted) goes with it.
    granted: bool,
}

fn row(
    settings: &GoogleSettings,
    member: &Membership<'_>,
    scratch: &mut Scratch,
) -> Option<GoogleRow> {
    let traits = &member.traits;
    let data = match settings.key_type {
        KeyType::Contact => {
            let context = settings.common.context(traits);
            let mut take = |kind: IdentifierKind, value: Option<&str>| {
                value.and_then(|value| {
                    scratch.identifier(Platform::Google, kind, value, &context, Digest::Sha256)
                })
            };
            let mut ids = Vec::with_capacity(3);
            if let Some(email) = take(IdentifierKind::Email, traits.get(Field::Email)) {
                ids.push(ContactId::Email(email));
            }
            if let Some(phone) = take(IdentifierKind::Phone, traits.get(Field::Phone)) {
                ids.push(ContactId::Phone(phone));
            }
            let given = take(IdentifierKind::FirstName, traits.get(Field::FirstName));
            let family = take(IdentifierKind::LastName, traits.get(Field::LastName));
            let region = take(
                IdentifierKind::Country,
                traits
                    .get(Field::Country)
                    .or(context.country.as_ref().map(|code| code.as_str())),
            );
            let postal = take(IdentifierKind::PostalCode, traits.get(Field::PostalCode));
            if let (Some(given), Some(family), Some(region), Some(postal)) =
                (given, family, region, postal)
            {
                ids.push(ContactId::Address(Box::new(Address {
                    given,
                    family,
                    region,
                    postal,
                })));
            }
            ids.truncate(MAX_IDENTIFIERS);
            if ids.is_empty() {
                return None;
            }
            Data::Contact(ids)
        }
        KeyType::Mobile => {
            let (id, os) = traits.advertising_id.as_ref()?;
            let os = *os;
            let mismatched =
                os != DeviceOs::Unknown && settings.key_space.is_some_and(|space| space != os);
            if mismatched {
                return None;
            }
            let context = settings.common.context(traits);
            match scratch.identifier(
                Platform::Google,
                IdentifierKind::MobileAdId,
                id.as_ref(),
                &context,
                Digest::Sha256,
            )? {
                Identifier::Plain(id) => Data::Mobile(id),
                Identifier::Hashed(_) => return None,
            }
        }
        KeyType::User => {
            let context = settings.common.context(traits);
            let id = traits.user_id.as_deref()?;
            match scratch.identifier(
                Platform::Google,
                IdentifierKind::ExternalId,
                id,
                &context,
                Digest::Sha256,
            )? {
                Identifier::Plain(id) => Data::UserId(id),
                Identifier::Hashed(_) => return None,
            }
        }
    };
    Some(GoogleRow {
        data,
        granted: member.action == Action::Add && member.consent == Consent::Granted,
    })
}

pub(super) fn plan(settings: &GoogleSettings, events: &[&str]) -> Plan {
    plan_runs(
        events,
        MAX_MEMBERS,
        |text, scratch| {
            let member = member::read(text, &settings.common.consent_category)?;
            let Some(row) = row(settings, &member, scratch) else {
                let what = match settings.key_type {
                    KeyType::Contact => "google (contact list: email, phone or full address)",
                    KeyType::Mobile => "google (mobile-id list: an ad id of the list's platform)",
                    KeyType::User => "google (user-id list: userId)",
                };
                return Err(member::Refusal::Invalid(no_identifier(
                    what,
                    &member.traits,
                )));
            };
            Ok((member.audience_id, member.action, row))
        },
        |a, b| a.audience == b.audience && a.action == b.action,
        |chunk| request(settings, chunk),
    )
}

fn account(id: &str) -> Value {
    json!({"accountType": "GOOGLE_ADS", "accountId": id})
}

fn request(settings: &GoogleSettings, chunk: &Chunk<'_, GoogleRow>) -> HttpRequest {
    let first = &chunk.rows[0];
    let add = first.action == Action::Add;
    let mut destination = Map::new();
    destination.insert(
        "operatingAccount".into(),
        account(&settings.operating_account),
    );
    if let Some(login) = &settings.login_account {
        destination.insert("loginAccount".into(), account(login));
    }
    destination.insert("productDestinationId".into(), json!(first.audience));
    let mut body = Vec::with_capacity(256 + chunk.rows.len() * 250);
    body.extend_from_slice(b"{\"destinations\":[");
    body.extend_from_slice(&to_bytes(&Value::Object(destination)));
    body.extend_from_slice(b"],\"audienceMembers\":[");
    for (index, row) in chunk.rows.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        push_member(
            &mut body,
            &row.data.data,
            settings.encoding,
            add && row.data.granted,
        );
    }
    body.push(b']');
    if settings.key_type == KeyType::Contact {
        body.extend_from_slice(match settings.encoding {
            Encoding::Hex => b",\"encoding\":\"HEX\"".as_slice(),
            Encoding::Base64 => b",\"encoding\":\"BASE64\"".as_slice(),
        });
    }
    if add {
        let (user_data, personalization) = settings.consent;
        if (user_data, personalization)
            != ("CONSENT_STATUS_UNSPECIFIED", "CONSENT_STATUS_UNSPECIFIED")
        {
            let consent = json!({"adUserData": user_data, "adPersonalization": personalization});
            body.extend_from_slice(b",\"consent\":");
            body.extend_from_slice(&to_bytes(&consent));
        }
        body.extend_from_slice(
            b",\"termsOfService\":{\"customerMatchTermsOfServiceStatus\":\"ACCEPTED\"}",
        );
    }
    body.push(b'}');
    let path = if add {
        "audienceMembers:ingest"
    } else {
        "audienceMembers:remove"
    };
    json_post(
        format!("{}/{path}", settings.base),
        vec![(
            "Authorization".to_string(),
            settings.authorization.expose().to_string(),
        )],
        body,
    )
}

fn push_hash(body: &mut Vec<u8>, id: &Identifier, encoding: Encoding) {
    match (id, encoding) {
        (Identifier::Hashed(hex), Encoding::Hex) => hex.push_quoted(body),
        (Identifier::Hashed(hex), Encoding::Base64) => push_plain_str(body, &hex.to_base64()),
        (Identifier::Plain(text), _) => push_json_str(body, text),
    }
}

fn push_member(body: &mut Vec<u8>, data: &Data, encoding: Encoding, consent: bool) {
    match data {
        Data::Contact(ids) => {
            body.extend_from_slice(b"{\"userData\":{\"userIdentifiers\":[");
            for (index, id) in ids.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                match id {
                    ContactId::Email(value) => {
                        body.extend_from_slice(b"{\"emailAddress\":");
                        push_hash(body, value, encoding);
                    }
                    ContactId::Phone(value) => {
                        body.extend_from_slice(b"{\"phoneNumber\":");
                        push_hash(body, value, encoding);
                    }
                    ContactId::Address(address) => {
                        let Address {
                            given,
                            family,
                            region,
                            postal,
                        } = address.as_ref();
                        body.extend_from_slice(b"{\"address\":{\"givenName\":");
                        push_hash(body, given, encoding);
                        body.extend_from_slice(b",\"familyName\":");
                        push_hash(body, family, encoding);
                        body.extend_from_slice(b",\"regionCode\":");
                        push_hash(body, region, encoding);
                        body.extend_from_slice(b",\"postalCode\":");
                        push_hash(body, postal, encoding);
                        body.push(b'}');
                    }
                }
                body.push(b'}');
            }
            body.extend_from_slice(b"]}");
        }
        Data::Mobile(id) => {
            body.extend_from_slice(b"{\"mobileData\":{\"mobileIds\":[");
            push_json_str(body, id);
            body.extend_from_slice(b"]}");
        }
        Data::UserId(id) => {
            body.extend_from_slice(b"{\"userIdData\":{\"userId\":");
            push_json_str(body, id);
            body.push(b'}');
        }
    }
    if consent {
        body.extend_from_slice(
            b",\"consent\":{\"adUserData\":\"CONSENT_GRANTED\",\"adPersonalization\":\"CONSENT_GRANTED\"}",
        );
    }
    body.push(b'}');
}

/// The request that creates a Customer Match user list of the settings' key type.
pub(super) fn create(settings: &GoogleSettings, name: &str, description: &str) -> HttpRequest {
    let source = "DATA_SOURCE_TYPE_FIRST_PARTY";
    let info = match settings.key_type {
        KeyType::Contact => json!({
            "uploadKeyTypes": [KeyType::Contact.api_name()],
            "contactIdInfo": {"dataSourceType": source},
        }),
        KeyType::Mobile => json!({
            "uploadKeyTypes": [KeyType::Mobile.api_name()],
            "mobileIdInfo": {
                "dataSourceType": source,
                "keySpace": match settings.key_space {
                    Some(DeviceOs::Android) => "ANDROID",
                    _ => "IOS",
                },
                "appId": settings.app_id,
            },
        }),
        KeyType::User => json!({
            "uploadKeyTypes": [KeyType::User.api_name()],
            "userIdInfo": {"dataSourceType": source},
        }),
    };
    let body = json!({
        "displayName": name,
        "description": description,
        "membershipDuration": format!("{}s", settings.membership_days * 86_400),
        "ingestedUserListInfo": info,
    });
    let mut headers = vec![(
        "Authorization".to_string(),
        settings.authorization.expose().to_string(),
    )];
    if let Some(login) = &settings.login_account {
        headers.push((
            "login-account".to_string(),
            format!("accountTypes/GOOGLE_ADS/accounts/{login}"),
        ));
    }
    let url = format!(
        "{}/accountTypes/GOOGLE_ADS/accounts/{}/userLists",
        settings.base, settings.operating_account
    );
    json_post(url, headers, to_bytes(&body))
}

/// The list id in the answer to [`create`] (`id`, else the last part of `name`).
pub(super) fn parse_created(response: &HttpResponse) -> Result<String, Verdict> {
    let verdict = classify(response);
    if verdict != Verdict::Delivered {
        return Err(verdict);
    }
    let list: Option<Value> = serde_json::from_slice(&response.body).ok();
    let id = list.as_ref().and_then(|list| {
        list.get("id")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
            .or_else(|| list.get("name")?.as_str()?.rsplit('/').next())
    });
    id.filter(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| Verdict::Reject {
            reason: "google: the answer to creating a user list has no id".into(),
        })
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<Status>,
}

/// `google.rpc.Status`.
#[derive(Deserialize)]
struct Status {
    code: Option<u16>,
    status: Option<String>,
    #[serde(default)]
    details: Vec<Value>,
}

pub(super) fn classify(response: &HttpResponse) -> Verdict {
    let error = serde_json::from_slice::<ErrorBody>(&response.body)
        .ok()
        .and_then(|body| body.error);
    let Some(error) = error else {
        return classify_status_only(response);
    };
    let code = error.code.unwrap_or(response.status);
    let status = error
        .status
        .as_deref()
        .filter(|s| s.len() <= 40 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .unwrap_or("");
    let reason_code = error
        .details
        .iter()
        .filter_map(|detail| detail.get("reason")?.as_str())
        .find(|reason| {
            reason.len() <= 80
                && reason
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    let fields: Vec<&str> = error
        .details
        .iter()
        .filter_map(|detail| detail.get("fieldViolations")?.as_array())
        .flatten()
        .filter_map(|violation| violation.get("field")?.as_str())
        .filter(|field| field.len() <= 120)
        .take(5)
        .collect();
    let mut what = format!("google: error {code} {status}");
    if let Some(reason_code) = reason_code {
        what.push_str(&format!(" ({reason_code})"));
    }
    if !fields.is_empty() {
        what.push_str(&format!("; fields: {}", fields.join(", ")));
    }
    let what = what.trim_end().replace("  ", " ");
    let retry = code == 429
        || code >= 500
        || matches!(
            status,
            "RESOURCE_EXHAUSTED" | "ABORTED" | "UNAVAILABLE" | "INTERNAL" | "DEADLINE_EXCEEDED"
        );
    if retry {
        let after = retry_delay(&error.details).or_else(|| retry_after(response));
        return Verdict::Retry {
            after,
            reason: what,
        };
    }
    if code == 401 || status == "UNAUTHENTICATED" {
        return Verdict::Unauthorized { reason: what };
    }
    Verdict::Reject { reason: what }
}

fn classify_status_only(response: &HttpResponse) -> Verdict {
    let status = response.status;
    if (200..300).contains(&status) {
        return Verdict::Delivered;
    }
    let reason = status_reason("google", status);
    if status == 401 {
        return Verdict::Unauthorized { reason };
    }
    if status == 408 || status == 429 || status >= 500 {
        return Verdict::Retry {
            after: retry_after(response),
            reason,
        };
    }
    Verdict::Reject { reason }
}

/// `google.rpc.RetryInfo.retryDelay` (`"30s"`, `"1.5s"`), at most a day.
fn retry_delay(details: &[Value]) -> Option<Duration> {
    let text = details
        .iter()
        .filter_map(|detail| detail.get("retryDelay")?.as_str())
        .next()?;
    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(seconds.min(86_400.0)))
}
