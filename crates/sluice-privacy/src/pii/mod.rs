//! PII classification: which fields of an event hold personal or secret data.
//!
//! - [`classify`] — one field: its key (the last segment of its path) and its JSON value.
//! - [`scan`] — every field under an event's `properties`, `traits` and `context`, with its
//!   path (`properties.billing.card`, arrays as `[]`) and class. Values are never returned.
//!
//! A class comes from the key, the value, or both:
//! - by key alone: secrets and passwords ([`PiiClass::Secret`]) and dates of birth;
//! - by value alone, when its shape is distinctive: emails, internationally written or
//!   punctuated phone numbers, payment cards (a known card prefix and the Luhn check), US
//!   social security numbers written `AAA-GG-SSSS`, IBANs (the ISO 7064 mod-97 check), IP
//!   addresses, and well-known secret formats (JSON web tokens, AWS access keys, PEM keys);
//! - by both: a key that names the class (`phone`, `ssn`, `card_number`, …) accepts the looser
//!   shapes of that class (bare digits), so `{"order_id": "4155550100"}` is not a phone but
//!   `{"phone": "4155550100"}` is.
//!
//! The matchers are in [`values`] (shapes and checksums) and [`keys`] (key words).

pub mod keys;
pub mod values;

use std::borrow::Cow;

use serde_json::Value;

/// What kind of personal or secret data a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiClass {
    Email,
    Phone,
    PaymentCard,
    UsSsn,
    Iban,
    IpAddress,
    DateOfBirth,
    Secret,
}

impl PiiClass {
    pub const ALL: [PiiClass; 8] = [
        PiiClass::Email,
        PiiClass::Phone,
        PiiClass::PaymentCard,
        PiiClass::UsSsn,
        PiiClass::Iban,
        PiiClass::IpAddress,
        PiiClass::DateOfBirth,
        PiiClass::Secret,
    ];

    /// The stable name used in policies and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiClass::Email => "email",
            PiiClass::Phone => "phone",
            PiiClass::PaymentCard => "payment_card",
            PiiClass::UsSsn => "us_ssn",
            PiiClass::Iban => "iban",
            PiiClass::IpAddress => "ip_address",
            PiiClass::DateOfBirth => "date_of_birth",
            PiiClass::Secret => "secret",
        }
    }

    pub fn parse(name: &str) -> Option<PiiClass> {
        PiiClass::ALL
            .into_iter()
            .find(|class| class.as_str() == name)
    }
}

/// The class of one field, from its key (the last path segment) and value.
pub fn classify(key: &str, value: &Value) -> Option<PiiClass> {
    let named = keys::class_of_key(key);
    match named {
        // A secret's or a birth date's value has no telling shape: the key decides, for any
        // value that holds something.
        Some(class @ (PiiClass::Secret | PiiClass::DateOfBirth)) => {
            return holds_something(value).then_some(class);
        }
        Some(class) => {
            if let Some(text) = scalar_text(value)
                && values::matches_loosely(class, &text)
            {
                return Some(class);
            }
        }
        None => {}
    }
    let text = scalar_text(value)?;
    values::class_of_value(&text)
}

/// A field found by [`scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Dotted path from the event's root, arrays written `[]`: `properties.items[].email`.
    pub path: String,
    pub class: PiiClass,
}

/// The parts of an event that carry user data.
const SCANNED: [&str; 3] = ["properties", "traits", "context"];

/// Deeper fields than this are not looked at (events are at most 32 KB, so this bounds
/// nothing real; it keeps a hostile nesting from costing a deep recursion).
const MAX_DEPTH: usize = 32;

/// Every classified field under the event's `properties`, `traits` and `context`, in document
/// order. A path inside an array may appear once per element.
pub fn scan(event: &Value) -> Vec<Finding> {
    let mut found = Vec::new();
    let Some(object) = event.as_object() else {
        return found;
    };
    for part in SCANNED {
        if let Some(value) = object.get(part) {
            let mut path = part.to_string();
            walk(part, value, &mut path, 0, &mut found);
        }
    }
    found
}

fn walk(key: &str, value: &Value, path: &mut String, depth: usize, found: &mut Vec<Finding>) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(fields) => {
            if let Some(class @ PiiClass::Secret) = keys::class_of_key(key) {
                // `credentials: {…}` is secret as a whole.
                found.push(Finding {
                    path: path.clone(),
                    class,
                });
                return;
            }
            for (name, child) in fields {
                let length = path.len();
                path.push('.');
                path.push_str(name);
                walk(name, child, path, depth + 1, found);
                path.truncate(length);
            }
        }
        Value::Array(items) => {
            let length = path.len();
            path.push_str("[]");
            for item in items {
                walk(key, item, path, depth + 1, found);
            }
            path.truncate(length);
        }
        scalar => {
            if let Some(class) = classify(key, scalar) {
                found.push(Finding {
                    path: path.clone(),
                    class,
                });
            }
        }
    }
}

/// A string as is (not copied), a number written in decimal; nothing for other values.
fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        _ => None,
    }
}

fn holds_something(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::String(text) => !text.trim().is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(fields) => !fields.is_empty(),
        Value::Bool(_) | Value::Number(_) => true,
    }
}

#[cfg(test)]
mod tests;
