//! The Google Data Manager API fake (Customer Match):
//!
//! - every request: `Authorization: Bearer` with the fake's token, else `401
//!   UNAUTHENTICATED`; a JSON body, else `400 INVALID_ARGUMENT`; unknown paths `404
//!   NOT_FOUND`. Errors are `google.rpc.Status`: `{"error": {"code", "message", "status",
//!   "details"}}`, field problems as `google.rpc.BadRequest` `fieldViolations`.
//! - `POST /v1/audienceMembers:ingest` and `:remove`: only the request's documented fields
//!   (`termsOfService` and `consent` exist on ingest only); 1 to 10 `destinations` whose
//!   `operatingAccount` is `GOOGLE_ADS` and the fake's account (another account: `403
//!   PERMISSION_DENIED`), with a numeric `productDestinationId` ([`MISSING_AUDIENCE_ID`]: not
//!   found); 1 to 10,000 `audienceMembers`, each with exactly one of `userData`, `mobileData`,
//!   `userIdData`; 1 to 10 identifiers a member, each exactly one of `emailAddress`,
//!   `phoneNumber`, `address` (all four parts); hashes in the declared `encoding` (`HEX`: 64
//!   lowercase hex; `BASE64`: 32 bytes), required whenever `userData` is sent; `regionCode`
//!   two uppercase letters and `postalCode`, mobile ids and user ids never hash-like; ingest of
//!   contact data needs `termsOfService.customerMatchTermsOfServiceStatus` `ACCEPTED`; consent
//!   values from the API's enum. A member whose consent (its own, else the request's) denies
//!   ad user data is not added. Success: `{"requestId"}`.
//! - `POST /v1/accountTypes/GOOGLE_ADS/accounts/{id}/userLists`: `displayName`,
//!   `membershipDuration` in whole days up to 540, `ingestedUserListInfo` with exactly one
//!   upload key type (and, for `MOBILE_ID`, `mobileIdInfo.appId` and `keySpace`); an optional
//!   `login-account` header naming a Google Ads account. Answers the `UserList`.
//! - Over the rate limit: `429 RESOURCE_EXHAUSTED` with an `ErrorInfo` naming the quota.

use base64::Engine;
use serde_json::{Map, Value, json};

use super::answer::{Answer, content_type_is};
use super::audiences::{
    AdState, MISSING_AUDIENCE_ID, Member, is_lower_hex, looks_hashed, request_id,
};
use super::credentials::{GOOGLE_ACCESS_TOKEN, GOOGLE_OPERATING_ACCOUNT_ID};
use super::server::Recorded;

const MAX_MEMBERS: usize = 10_000;
const MAX_IDENTIFIERS: usize = 10;
const MAX_DESTINATIONS: usize = 10;
/// The first id the fake gives a new user list.
const FIRST_LIST_ID: u64 = 9_000_000_001;

const INGEST_FIELDS: [&str; 7] = [
    "destinations",
    "audienceMembers",
    "consent",
    "validateOnly",
    "encoding",
    "encryptionInfo",
    "termsOfService",
];
const REMOVE_FIELDS: [&str; 5] = [
    "destinations",
    "audienceMembers",
    "validateOnly",
    "encoding",
    "encryptionInfo",
];
const CONSENT_VALUES: [&str; 3] = [
    "CONSENT_GRANTED",
    "CONSENT_DENIED",
    "CONSENT_STATUS_UNSPECIFIED",
];

pub(super) fn settings(base: &str) -> Map<String, Value> {
    let mut map = Map::new();
    map.insert("access_token".into(), json!(GOOGLE_ACCESS_TOKEN));
    map.insert(
        "operating_account_id".into(),
        json!(format!(
            "{}-{}-{}",
            &GOOGLE_OPERATING_ACCOUNT_ID[..3],
            &GOOGLE_OPERATING_ACCOUNT_ID[3..6],
            &GOOGLE_OPERATING_ACCOUNT_ID[6..]
        )),
    );
    map.insert("default_country".into(), json!("US"));
    map.insert("api_url".into(), json!(base));
    map
}

fn status(code: u16, status: &str, message: &str, details: Value) -> Answer {
    let mut error = json!({"code": code, "message": message, "status": status});
    if details.as_array().is_some_and(|d| !d.is_empty()) {
        error["details"] = details;
    }
    Answer::json(code, &json!({"error": error}))
}

/// `400 INVALID_ARGUMENT` naming a field.
fn bad(field: &str, description: &str) -> Answer {
    status(
        400,
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
        json!([{
            "@type": "type.googleapis.com/google.rpc.BadRequest",
            "fieldViolations": [{"field": field, "description": description}],
        }]),
    )
}

pub(super) fn throttled() -> Answer {
    status(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Ingestion requests' and limit 'Ingestion requests per minute per project' of service 'datamanager.googleapis.com'.",
        json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "RATE_LIMIT_EXCEEDED",
            "domain": "googleapis.com",
            "metadata": {
                "service": "datamanager.googleapis.com",
                "quota_limit": "IngestionRequestsPerMinutePerProject",
            },
        }]),
    )
}

pub(super) fn respond(
    request: &Recorded,
    state: &mut AdState,
    accepted: &mut Vec<Value>,
) -> Answer {
    let bearer = request
        .header("authorization")
        .and_then(|value| value.strip_prefix("Bearer "));
    let route = match (request.method.as_str(), request.path.as_str()) {
        ("POST", "/v1/audienceMembers:ingest") => Some(true),
        ("POST", "/v1/audienceMembers:remove") => Some(false),
        _ => None,
    };
    let list_path = request
        .path
        .strip_prefix("/v1/accountTypes/GOOGLE_ADS/accounts/")
        .and_then(|rest| rest.strip_suffix("/userLists"))
        .filter(|_| request.method == "POST");
    if route.is_none() && list_path.is_none() {
        return status(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            json!([]),
        );
    }
    if !bearer.is_some_and(|token| state.takes(token, GOOGLE_ACCESS_TOKEN)) {
        return status(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            json!([{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
                "domain": "googleapis.com",
            }]),
        );
    }
    let body = match (content_type_is(request, "application/json"), request.json()) {
        (true, Some(Value::Object(body))) => body,
        _ => return bad("", "Invalid JSON payload received."),
    };
    if let Some(account) = list_path {
        return create_list(request, account, &body, state);
    }
    members(request, route == Some(true), &body, state, accepted)
}

fn create_list(
    request: &Recorded,
    account: &str,
    body: &Map<String, Value>,
    state: &mut AdState,
) -> Answer {
    if account != GOOGLE_OPERATING_ACCOUNT_ID {
        return status(
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
            json!([]),
        );
    }
    if let Some(login) = request.header("login-account") {
        let ok = login
            .strip_prefix("accountTypes/GOOGLE_ADS/accounts/")
            .is_some_and(|id| id.len() == 10 && id.bytes().all(|b| b.is_ascii_digit()));
        if !ok {
            return bad(
                "login-account",
                "Must be accountTypes/{type}/accounts/{id}.",
            );
        }
    }
    let name = body
        .get("displayName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if name.trim().is_empty() {
        return bad("display_name", "Required field is missing.");
    }
    if let Some(duration) = body.get("membershipDuration") {
        let seconds = duration
            .as_str()
            .and_then(|text| text.strip_suffix('s'))
            .and_then(|digits| digits.parse::<u64>().ok());
        match seconds {
            Some(seconds) if seconds % 86_400 == 0 && seconds / 86_400 <= 540 && seconds > 0 => {}
            _ => {
                return bad(
                    "membership_duration",
                    "Must be whole days, at most 540 days.",
                );
            }
        }
    }
    let info = body.get("ingestedUserListInfo").and_then(Value::as_object);
    let keys: Vec<&str> = info
        .and_then(|info| info.get("uploadKeyTypes"))
        .and_then(Value::as_array)
        .map(|keys| keys.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let key_ok = matches!(
        keys.as_slice(),
        ["CONTACT_ID"] | ["MOBILE_ID"] | ["USER_ID"]
    );
    if !key_ok {
        return bad(
            "ingested_user_list_info.upload_key_types",
            "The uploadKeyTypes list must contain exactly one supported entry.",
        );
    }
    if keys == ["MOBILE_ID"] {
        let mobile = info.and_then(|info| info.get("mobileIdInfo"));
        let app = mobile.and_then(|m| m.get("appId")).and_then(Value::as_str);
        let space = mobile
            .and_then(|m| m.get("keySpace"))
            .and_then(Value::as_str);
        if app.is_none_or(str::is_empty) || !matches!(space, Some("IOS" | "ANDROID")) {
            return bad(
                "ingested_user_list_info.mobile_id_info",
                "appId and keySpace are required for MOBILE_ID lists.",
            );
        }
    }
    let id = state.create(FIRST_LIST_ID, name);
    let mut list = body.clone();
    list.insert(
        "name".into(),
        json!(format!(
            "accountTypes/GOOGLE_ADS/accounts/{account}/userLists/{id}"
        )),
    );
    list.insert("id".into(), json!(id));
    list.insert("membershipStatus".into(), json!("OPEN"));
    Answer::json(200, &Value::Object(list))
}

fn members(
    request: &Recorded,
    ingest: bool,
    body: &Map<String, Value>,
    state: &mut AdState,
    accepted: &mut Vec<Value>,
) -> Answer {
    let known: &[&str] = if ingest {
        &INGEST_FIELDS
    } else {
        &REMOVE_FIELDS
    };
    if let Some(field) = body.keys().find(|key| !known.contains(&key.as_str())) {
        return bad(
            "",
            &format!("Invalid JSON payload received. Unknown name \"{field}\": Cannot find field."),
        );
    }
    let Some(destinations) = body.get("destinations").and_then(Value::as_array) else {
        return bad("destinations", "Required field is missing.");
    };
    if destinations.is_empty() || destinations.len() > MAX_DESTINATIONS {
        return bad(
            "destinations",
            "Between 1 and 10 destinations are required.",
        );
    }
    let mut lists = Vec::new();
    for (index, destination) in destinations.iter().enumerate() {
        let account = destination.get("operatingAccount");
        let kind = account
            .and_then(|a| a.get("accountType"))
            .and_then(Value::as_str);
        let id = account
            .and_then(|a| a.get("accountId"))
            .and_then(Value::as_str);
        if kind != Some("GOOGLE_ADS")
            || id.is_none_or(|id| id.len() != 10 || !id.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad(
                &format!("destinations[{index}].operating_account"),
                "accountType GOOGLE_ADS and a 10-digit accountId are required.",
            );
        }
        if id != Some(GOOGLE_OPERATING_ACCOUNT_ID) {
            return status(
                403,
                "PERMISSION_DENIED",
                "The caller does not have permission",
                json!([]),
            );
        }
        if let Some(login) = destination.get("loginAccount") {
            let ok = login.get("accountType").and_then(Value::as_str) == Some("GOOGLE_ADS")
                && login
                    .get("accountId")
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.len() == 10 && id.bytes().all(|b| b.is_ascii_digit()));
            if !ok {
                return bad(
                    &format!("destinations[{index}].login_account"),
                    "Invalid login account.",
                );
            }
        }
        let list = destination
            .get("productDestinationId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if list.is_empty() || !list.bytes().all(|b| b.is_ascii_digit()) {
            return bad(
                &format!("destinations[{index}].product_destination_id"),
                "Required field is missing.",
            );
        }
        if list == MISSING_AUDIENCE_ID {
            return status(
                404,
                "NOT_FOUND",
                "The user list was not found.",
                json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "USER_LIST_NOT_FOUND", "domain": "datamanager.googleapis.com"}]),
            );
        }
        lists.push(list.to_string());
    }
    let Some(items) = body.get("audienceMembers").and_then(Value::as_array) else {
        return bad("audience_members", "Required field is missing.");
    };
    if items.is_empty() || items.len() > MAX_MEMBERS {
        return bad(
            "audience_members",
            "Between 1 and 10000 audience members are required.",
        );
    }
    let encoding = body.get("encoding").and_then(Value::as_str);
    if encoding.is_some_and(|e| !matches!(e, "HEX" | "BASE64")) {
        return bad("encoding", "Invalid value.");
    }
    let request_consent = match body.get("consent") {
        None => None,
        Some(consent) => match consent_of(consent) {
            Some(denied) => Some(denied),
            None => return bad("consent", "Invalid consent value."),
        },
    };
    let mut changes = Vec::with_capacity(items.len());
    let mut contact = false;
    for (index, item) in items.iter().enumerate() {
        let at = |field: &str| format!("audience_members[{index}].{field}");
        let Some(item) = item.as_object() else {
            return bad(&at(""), "Must be an object.");
        };
        if let Some(field) = item.keys().find(|key| {
            !matches!(
                key.as_str(),
                "userData" | "mobileData" | "userIdData" | "consent" | "destinationReferences"
            )
        }) {
            return bad(
                "",
                &format!(
                    "Invalid JSON payload received. Unknown name \"{field}\": Cannot find field."
                ),
            );
        }
        let kinds = ["userData", "mobileData", "userIdData"]
            .iter()
            .filter(|key| item.contains_key(**key))
            .count();
        if kinds != 1 {
            return bad(
                &at("data"),
                "Exactly one of userData, mobileData, userIdData is required.",
            );
        }
        let denied = match item.get("consent") {
            None => request_consent.unwrap_or(false),
            Some(consent) => match consent_of(consent) {
                Some(denied) => denied,
                None => return bad(&at("consent"), "Invalid consent value."),
            },
        };
        let member = if let Some(user) = item.get("userData") {
            contact = true;
            match user_data(user, encoding, &at("user_data")) {
                Ok(member) => member,
                Err(answer) => return answer,
            }
        } else if let Some(mobile) = item.get("mobileData") {
            let ids: Option<Vec<&str>> = mobile
                .get("mobileIds")
                .and_then(Value::as_array)
                .map(|ids| ids.iter().filter_map(Value::as_str).collect());
            let Some(ids) = ids.filter(|ids| (1..=MAX_IDENTIFIERS).contains(&ids.len())) else {
                return bad(
                    &at("mobile_data.mobile_ids"),
                    "Between 1 and 10 mobile ids are required.",
                );
            };
            if ids.iter().any(|id| id.is_empty() || looks_hashed(id)) {
                return bad(
                    &at("mobile_data.mobile_ids"),
                    "Mobile ids are sent unhashed.",
                );
            }
            ids.iter()
                .map(|id| ("mobileId".to_string(), (*id).to_string()))
                .collect()
        } else {
            let id = item
                .get("userIdData")
                .and_then(|data| data.get("userId"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            if id.is_empty() {
                return bad(&at("user_id_data.user_id"), "Required field is missing.");
            }
            Member::from([("userId".to_string(), id.to_string())])
        };
        changes.push((member, denied));
    }
    if contact && encoding.is_none() {
        return bad("encoding", "Encoding is required for UserData uploads.");
    }
    if ingest && contact {
        let terms = body
            .get("termsOfService")
            .and_then(|terms| terms.get("customerMatchTermsOfServiceStatus"))
            .and_then(Value::as_str);
        if terms != Some("ACCEPTED") {
            return bad(
                "terms_of_service.customer_match_terms_of_service_status",
                "The Customer Match terms of service must be accepted.",
            );
        }
    }
    for list in &lists {
        for (member, denied) in &changes {
            if ingest && *denied {
                continue;
            }
            accepted.push(json!({"audience": list, "action": if ingest { "add" } else { "remove" }, "ids": member}));
            if ingest {
                state.add(list, member.clone());
            } else {
                state.remove(list, member);
            }
        }
    }
    Answer::json(200, &json!({"requestId": request_id(&request.body)}))
}

/// `Some(ad user data denied)` for a valid consent object.
fn consent_of(consent: &Value) -> Option<bool> {
    let consent = consent.as_object()?;
    for (key, value) in consent {
        if !matches!(key.as_str(), "adUserData" | "adPersonalization") {
            return None;
        }
        if !value.as_str().is_some_and(|v| CONSENT_VALUES.contains(&v)) {
            return None;
        }
    }
    Some(consent.get("adUserData").and_then(Value::as_str) == Some("CONSENT_DENIED"))
}

/// A hash in the declared encoding.
fn hash_ok(value: &str, encoding: Option<&str>) -> bool {
    match encoding {
        Some("BASE64") => base64::engine::general_purpose::STANDARD
            .decode(value)
            .is_ok_and(|bytes| bytes.len() == 32),
        _ => is_lower_hex(value, 64),
    }
}

fn user_data(user: &Value, encoding: Option<&str>, at: &str) -> Result<Member, Answer> {
    let ids = user
        .get("userIdentifiers")
        .and_then(Value::as_array)
        .filter(|ids| (1..=MAX_IDENTIFIERS).contains(&ids.len()))
        .ok_or_else(|| {
            bad(
                &format!("{at}.user_identifiers"),
                "Between 1 and 10 identifiers are required.",
            )
        })?;
    let mut member = Member::new();
    for (index, id) in ids.iter().enumerate() {
        let field = format!("{at}.user_identifiers[{index}]");
        let Some(id) = id.as_object().filter(|id| id.len() == 1) else {
            return Err(bad(
                &field,
                "Exactly one of emailAddress, phoneNumber, address is required.",
            ));
        };
        let (key, value) = id
            .iter()
            .next()
            .map(|(k, v)| (k.as_str(), v))
            .unwrap_or(("", &Value::Null));
        match key {
            "emailAddress" | "phoneNumber" => {
                let text = value.as_str().unwrap_or_default();
                if !hash_ok(text, encoding) {
                    return Err(bad(
                        &field,
                        "The value is not a hash in the declared encoding.",
                    ));
                }
                member.insert(key.to_string(), text.to_string());
            }
            "address" => {
                let part = |name: &str| value.get(name).and_then(Value::as_str).unwrap_or_default();
                let (given, family, region, postal) = (
                    part("givenName"),
                    part("familyName"),
                    part("regionCode"),
                    part("postalCode"),
                );
                let region_ok = region.len() == 2 && region.bytes().all(|b| b.is_ascii_uppercase());
                if !hash_ok(given, encoding)
                    || !hash_ok(family, encoding)
                    || !region_ok
                    || postal.is_empty()
                    || looks_hashed(postal)
                {
                    return Err(bad(
                        &format!("{field}.address"),
                        "givenName and familyName hashed, regionCode and postalCode unhashed, all required.",
                    ));
                }
                member.insert(
                    "address".to_string(),
                    format!("{given}|{family}|{region}|{postal}"),
                );
            }
            _ => {
                return Err(bad(
                    "",
                    &format!(
                        "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
                    ),
                ));
            }
        }
    }
    Ok(member)
}
