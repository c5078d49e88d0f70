//! PII classification: which fields of an event hold personal or secret data.
//!
//! - [`classify`] — one field: its key (the last segment of its path) and its JSON value.
//! - [`scan`] — every field under an event's `properties`, `traits` and `context`, with its
//!   path (`properties.billing.card`, arrays as `[]`) and class. Values are never returned,
//!   not even a value used as a key: such a key is written `*` in a path.
//! - [`fields`] — every leaf field of those parts once per path, classified or not: what the
//!   data inventory records.
//! - [`policy`] — what a workspace does with each class ([`PiiPolicy`]: allow, hash, redact,
//!   block), at the ingest gate and per destination, and [`apply`], which does it to an event.
//!
//! [`scan`], [`fields`] and [`apply`] read an event through one traversal (`walk`).
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
pub mod policy;
pub mod values;
mod walk;

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::ControlFlow;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

pub use policy::{Applied, PiiAction, PiiPolicy, PolicyError, Rules, apply};
use walk::Node;

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

    /// The class's place in [`PiiClass::ALL`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A class is written by its [`PiiClass::as_str`] name, also as a map key.
impl Serialize for PiiClass {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Only the [`PiiClass::as_str`] names are read; any other name is refused.
impl<'de> Deserialize<'de> for PiiClass {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match PiiClass::parse(&name) {
            Some(class) => Ok(class),
            None => {
                let mut expected = String::new();
                for class in PiiClass::ALL {
                    if !expected.is_empty() {
                        expected.push_str(", ");
                    }
                    expected.push_str(class.as_str());
                }
                Err(D::Error::custom(format!(
                    "unknown pii class `{name}`, expected one of {expected}"
                )))
            }
        }
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
    /// Dotted path from the event's root, arrays written `[]`: `properties.items[].email`; a
    /// key that itself looks like personal data (`{"jane@example.com": true}`) is written `*`.
    pub path: String,
    pub class: PiiClass,
}

/// Every classified field under the event's `properties`, `traits` and `context`, in document
/// order. A path inside an array may appear once per element.
pub fn scan(event: &Value) -> Vec<Finding> {
    let mut found = Vec::new();
    let _ = walk::walk(event, |place, node| {
        if let Some(class) = node.class() {
            found.push(Finding {
                path: place.path.to_owned(),
                class,
            });
        }
        ControlFlow::Continue(())
    });
    found
}

/// A field found by [`fields`]: where it is and its class, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The path, written as in [`Finding::path`].
    pub path: String,
    pub class: Option<PiiClass>,
}

/// Every leaf field under the event's `properties`, `traits` and `context` (scalars, null
/// included, and empty objects and arrays; a secret object such as `credentials: {…}` is one
/// field), once per path, in order of first appearance. A path inside an array takes the
/// class of the first element that has one.
pub fn fields(event: &Value) -> Vec<Field> {
    let mut found: Vec<Field> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let _ = walk::walk(event, |place, node| {
        if matches!(node, Node::TooDeep) {
            return ControlFlow::Continue(());
        }
        let class = node.class();
        match seen.get(place.path) {
            Some(&index) => {
                if let Some(field) = found.get_mut(index)
                    && field.class.is_none()
                {
                    field.class = class;
                }
            }
            None => {
                seen.insert(place.path.to_owned(), found.len());
                found.push(Field {
                    path: place.path.to_owned(),
                    class,
                });
            }
        }
        ControlFlow::Continue(())
    });
    found
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
