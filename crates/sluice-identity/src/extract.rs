//! The identifiers, traits and account of one message.
//!
//! | type | read from |
//! |---|---|
//! | `user_id` | `userId` |
//! | `anonymous_id` | `anonymousId` |
//! | `email` | `traits.email`, `context.traits.email` (trimmed, lowercased) |
//! | `phone` | `traits.phone`, `context.traits.phone` (trimmed) |
//! | `android.id`, `ios.id` | `context.device.id` when `context.device.type` is `android` / `ios` |
//! | `android.idfa`, `ios.idfa` | `context.device.advertisingId` when `adTrackingEnabled` is `true` |
//! | `android.push_token`, `ios.push_token` | `context.device.token` |
//! | `ga_client_id` | `integrations["Google Analytics"].clientId` or the same under `context` |
//! | `group_id` (accounts) | `groupId` of a group call |
//! | any | `context.externalIds: [{id, type, collection, encoding}]` |
//! | custom | the paths configured for the type |
//!
//! Values are strings or numbers (numbers are written in decimal); empty values and values over
//! 1,000 bytes are ignored. Blocked values stay in the event but are not identifiers. An alias
//! call's `previousId` is returned apart: the resolver decides whether it was a user id or an
//! anonymous id.

use serde_json::{Map, Value};

use crate::identifier::{self, Collection, Identifier};
use crate::settings::Rules;

/// Longer identifier values are ignored.
pub const MAX_VALUE_BYTES: usize = 1_000;

/// What identity resolution reads from one message.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Extracted<'a> {
    /// The person's identifiers, blocked values removed, without duplicates.
    pub user_ids: Vec<Identifier>,
    /// The account's identifiers (a group call's `groupId`, account external ids).
    pub account_ids: Vec<Identifier>,
    /// Values a blocked rule kept out.
    pub blocked: Vec<Identifier>,
    /// An alias call's `previousId`.
    pub alias_previous: Option<String>,
    /// An identify call's `traits` (the person's traits).
    pub user_traits: Option<&'a Map<String, Value>>,
    /// A group call's `traits` (the account's traits).
    pub account_traits: Option<&'a Map<String, Value>>,
}

/// Reads a message (a normalized event as a JSON object).
pub fn extract<'a>(message: &'a Value, rules: &Rules) -> Extracted<'a> {
    let mut out = Extracted::default();
    let message_type = message.get("type").and_then(Value::as_str).unwrap_or("");
    let context = message.get("context");
    let traits = message.get("traits");
    let context_traits = context.and_then(|c| c.get("traits"));

    let mut users: Vec<Identifier> = Vec::new();
    let mut accounts: Vec<Identifier> = Vec::new();
    push(&mut users, identifier::USER_ID, message.get("userId"));
    push(
        &mut users,
        identifier::ANONYMOUS_ID,
        message.get("anonymousId"),
    );
    if message_type == "identify" {
        push_email(&mut users, traits.and_then(|t| t.get("email")));
        push(
            &mut users,
            identifier::PHONE,
            traits.and_then(|t| t.get("phone")),
        );
    }
    push_email(&mut users, context_traits.and_then(|t| t.get("email")));
    push(
        &mut users,
        identifier::PHONE,
        context_traits.and_then(|t| t.get("phone")),
    );

    if let Some(device) = context.and_then(|c| c.get("device")) {
        let platform = device
            .get("type")
            .and_then(Value::as_str)
            .map(str::to_ascii_lowercase);
        let kinds = match platform.as_deref() {
            Some("android") => Some((
                identifier::ANDROID_ID,
                identifier::ANDROID_IDFA,
                identifier::ANDROID_PUSH_TOKEN,
            )),
            Some("ios") => Some((
                identifier::IOS_ID,
                identifier::IOS_IDFA,
                identifier::IOS_PUSH_TOKEN,
            )),
            _ => None,
        };
        if let Some((id_kind, idfa_kind, token_kind)) = kinds {
            push(&mut users, id_kind, device.get("id"));
            if device.get("adTrackingEnabled") == Some(&Value::Bool(true)) {
                push(&mut users, idfa_kind, device.get("advertisingId"));
            }
            push(&mut users, token_kind, device.get("token"));
        }
    }
    for integrations in [
        message.get("integrations"),
        context.and_then(|c| c.get("integrations")),
    ] {
        let client_id = integrations
            .and_then(|i| i.get("Google Analytics"))
            .and_then(|ga| ga.get("clientId"));
        push(&mut users, identifier::GA_CLIENT_ID, client_id);
    }

    if let Some(Value::Array(external)) = context.and_then(|c| c.get("externalIds")) {
        for entry in external.iter().take(100) {
            let (Some(id), Some(kind), Some(collection), Some(_encoding)) = (
                entry.get("id"),
                entry.get("type").and_then(Value::as_str),
                entry
                    .get("collection")
                    .and_then(Value::as_str)
                    .and_then(Collection::parse),
                entry.get("encoding").and_then(Value::as_str),
            ) else {
                continue;
            };
            if !identifier::valid_kind(kind) {
                continue;
            }
            match collection {
                Collection::Users => push(&mut users, kind, Some(id)),
                Collection::Accounts => push(&mut accounts, kind, Some(id)),
            }
        }
    }

    for custom in rules.custom_types() {
        for path in &custom.paths {
            let value = lookup(message, path);
            if value.is_some_and(|v| scalar(v).is_some()) {
                push(&mut users, &custom.kind, value);
                break;
            }
        }
    }

    match message_type {
        "identify" => out.user_traits = traits.and_then(Value::as_object),
        "group" => {
            push(&mut accounts, identifier::GROUP_ID, message.get("groupId"));
            out.account_traits = traits.and_then(Value::as_object);
        }
        "alias" => {
            out.alias_previous = message
                .get("previousId")
                .and_then(scalar)
                .filter(|v| usable(v))
        }
        _ => {}
    }

    for id in users {
        if rules.is_blocked(&id) {
            out.blocked.push(id);
        } else if !out.user_ids.contains(&id) {
            out.user_ids.push(id);
        }
    }
    for id in accounts {
        if rules.is_blocked(&id) {
            out.blocked.push(id);
        } else if !out.account_ids.contains(&id) {
            out.account_ids.push(id);
        }
    }
    out
}

fn lookup<'a>(message: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut at = message;
    for segment in path {
        at = at.get(segment)?;
    }
    Some(at)
}

/// A string or number as text.
fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn usable(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_VALUE_BYTES
}

fn push(ids: &mut Vec<Identifier>, kind: &str, value: Option<&Value>) {
    if let Some(text) = value.and_then(scalar).filter(|v| usable(v)) {
        ids.push(Identifier::new(kind, text));
    }
}

fn push_email(ids: &mut Vec<Identifier>, value: Option<&Value>) {
    if let Some(text) = value
        .and_then(Value::as_str)
        .map(|s| s.trim().to_lowercase())
        .filter(|v| usable(v))
    {
        ids.push(Identifier::new(identifier::EMAIL, text));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::settings::{IdentifierRule, IdentitySettings, Window};

    fn ids(list: &[(&str, &str)]) -> Vec<Identifier> {
        list.iter().map(|(k, v)| Identifier::new(*k, *v)).collect()
    }

    #[test]
    fn identify_with_email_phone_and_device() {
        let rules = Rules::compile(&IdentitySettings::default()).unwrap();
        let message = json!({
            "type": "identify", "userId": "u1", "anonymousId": "a1",
            "traits": {"email": " Jane@Example.COM ", "phone": "+1 555 0100", "plan": "pro"},
            "context": {"device": {"type": "ios", "id": "dev-1", "advertisingId": "idfa-1",
                                   "adTrackingEnabled": true, "token": "tok-1"}}
        });
        let out = extract(&message, &rules);
        assert_eq!(
            out.user_ids,
            ids(&[
                ("user_id", "u1"),
                ("anonymous_id", "a1"),
                ("email", "jane@example.com"),
                ("phone", "+1 555 0100"),
                ("ios.id", "dev-1"),
                ("ios.idfa", "idfa-1"),
                ("ios.push_token", "tok-1"),
            ])
        );
        assert_eq!(out.user_traits.unwrap()["plan"], "pro");
        assert!(out.account_ids.is_empty());
    }

    #[test]
    fn advertising_id_needs_tracking_enabled_and_a_known_platform() {
        let rules = Rules::compile(&IdentitySettings::default()).unwrap();
        let message = json!({"type": "track", "event": "x", "anonymousId": "a1",
            "context": {"device": {"type": "android", "id": "d", "advertisingId": "ad", "adTrackingEnabled": false}}});
        assert_eq!(
            extract(&message, &rules).user_ids,
            ids(&[("anonymous_id", "a1"), ("android.id", "d")])
        );
        let message = json!({"type": "track", "event": "x", "anonymousId": "a1",
            "context": {"device": {"type": "tv", "id": "d"}}});
        assert_eq!(
            extract(&message, &rules).user_ids,
            ids(&[("anonymous_id", "a1")])
        );
    }

    #[test]
    fn track_reads_email_only_from_context_traits() {
        let rules = Rules::compile(&IdentitySettings::default()).unwrap();
        let message = json!({"type": "track", "event": "x", "userId": 42,
            "properties": {"email": "p@x.io"}, "traits": {"email": "t@x.io"},
            "context": {"traits": {"email": "c@x.io"}}});
        let out = extract(&message, &rules);
        assert_eq!(out.user_ids, ids(&[("user_id", "42"), ("email", "c@x.io")]));
        assert!(out.user_traits.is_none());
    }

    #[test]
    fn group_alias_external_ids_and_ga() {
        let rules = Rules::compile(&IdentitySettings::default()).unwrap();
        let message = json!({"type": "group", "userId": "u1", "groupId": "g1", "traits": {"name": "Acme"},
        "integrations": {"Google Analytics": {"clientId": "GA1.2.3"}},
        "context": {"externalIds": [
            {"id": "c-9", "type": "crm_id", "collection": "users", "encoding": "none"},
            {"id": "org-7", "type": "salesforce_account", "collection": "accounts", "encoding": "none"},
            {"id": "bad", "type": "Upper", "collection": "users", "encoding": "none"},
            {"id": "no-encoding", "type": "crm_id", "collection": "users"}
        ]}});
        let out = extract(&message, &rules);
        assert_eq!(
            out.user_ids,
            ids(&[
                ("user_id", "u1"),
                ("ga_client_id", "GA1.2.3"),
                ("crm_id", "c-9")
            ])
        );
        assert_eq!(
            out.account_ids,
            ids(&[("salesforce_account", "org-7"), ("group_id", "g1")])
        );
        assert_eq!(out.account_traits.unwrap()["name"], "Acme");

        let alias = json!({"type": "alias", "userId": "u2", "previousId": "a-old"});
        let out = extract(&alias, &rules);
        assert_eq!(out.alias_previous.as_deref(), Some("a-old"));
        assert_eq!(out.user_ids, ids(&[("user_id", "u2")]));
    }

    #[test]
    fn blocked_empty_and_oversized_values_are_not_identifiers() {
        let mut settings = IdentitySettings::default();
        settings.identifiers[0].blocked_values = vec!["anonymous".into()];
        settings.identifiers[0].blocked_patterns = vec!["^[0-]*$".into()];
        let rules = Rules::compile(&settings).unwrap();
        let message = json!({"type": "identify", "userId": "anonymous", "anonymousId": "",
            "traits": {"email": "x".repeat(MAX_VALUE_BYTES + 1)}});
        let out = extract(&message, &rules);
        assert!(out.user_ids.is_empty());
        assert_eq!(out.blocked, ids(&[("user_id", "anonymous")]));
        let message =
            json!({"type": "track", "event": "x", "userId": "0000-00", "anonymousId": "a"});
        let out = extract(&message, &rules);
        assert_eq!(out.user_ids, ids(&[("anonymous_id", "a")]));
        assert_eq!(out.blocked, ids(&[("user_id", "0000-00")]));
    }

    #[test]
    fn custom_identifier_from_the_first_present_path() {
        let mut settings = IdentitySettings::default();
        let mut rule: IdentifierRule = serde_json::from_value(
            json!({"type": "customer_number", "limit": 1, "window": "ever"}),
        )
        .unwrap();
        rule.paths = vec![
            "traits.customer_number".into(),
            "properties.customer.number".into(),
        ];
        settings.identifiers.push(rule);
        assert_eq!(settings.identifiers.last().unwrap().window, Window::Ever);
        let rules = Rules::compile(&settings).unwrap();
        let message = json!({"type": "track", "event": "Order", "anonymousId": "a",
            "properties": {"customer": {"number": 1234}}});
        assert_eq!(
            extract(&message, &rules).user_ids,
            ids(&[("anonymous_id", "a"), ("customer_number", "1234")])
        );
        let message = json!({"type": "identify", "anonymousId": "a",
            "traits": {"customer_number": "C-1"}, "properties": {"customer": {"number": 1}}});
        assert_eq!(
            extract(&message, &rules).user_ids,
            ids(&[("anonymous_id", "a"), ("customer_number", "C-1")])
        );
    }
}
