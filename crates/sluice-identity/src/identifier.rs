//! Identifiers and collections.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Which kind of profile an identifier belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Collection {
    Users,
    Accounts,
}

impl Collection {
    pub fn as_str(self) -> &'static str {
        match self {
            Collection::Users => "users",
            Collection::Accounts => "accounts",
        }
    }

    pub fn parse(text: &str) -> Option<Collection> {
        match text {
            "users" => Some(Collection::Users),
            "accounts" => Some(Collection::Accounts),
            _ => None,
        }
    }
}

/// One identifier: a type (`user_id`, `email`, `ios.idfa`, or a custom type) and a value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "id")]
    pub value: String,
}

impl Identifier {
    pub fn new(kind: impl Into<String>, value: impl Into<String>) -> Identifier {
        Identifier {
            kind: kind.into(),
            value: value.into(),
        }
    }

    /// Parses the `type:value` form of the Profile API (the type never holds a colon). Email
    /// values are lowercased, as extraction stores them.
    pub fn parse_lookup(text: &str) -> Option<Identifier> {
        let (kind, value) = text.split_once(':')?;
        if kind.is_empty() || value.is_empty() {
            return None;
        }
        if kind == EMAIL {
            return Some(Identifier::new(kind, value.to_lowercase()));
        }
        Some(Identifier::new(kind, value))
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

/// The identifier types Sluice knows without configuration.
pub const USER_ID: &str = "user_id";
pub const ANONYMOUS_ID: &str = "anonymous_id";
pub const EMAIL: &str = "email";
pub const PHONE: &str = "phone";
pub const GROUP_ID: &str = "group_id";
pub const GA_CLIENT_ID: &str = "ga_client_id";
pub const ANDROID_ID: &str = "android.id";
pub const ANDROID_IDFA: &str = "android.idfa";
pub const ANDROID_PUSH_TOKEN: &str = "android.push_token";
pub const IOS_ID: &str = "ios.id";
pub const IOS_IDFA: &str = "ios.idfa";
pub const IOS_PUSH_TOKEN: &str = "ios.push_token";

/// Every built-in type, in no particular order.
pub const BUILT_IN: [&str; 12] = [
    USER_ID,
    ANONYMOUS_ID,
    EMAIL,
    PHONE,
    GROUP_ID,
    GA_CLIENT_ID,
    ANDROID_ID,
    ANDROID_IDFA,
    ANDROID_PUSH_TOKEN,
    IOS_ID,
    IOS_IDFA,
    IOS_PUSH_TOKEN,
];

/// Whether `kind` is a valid type name: lowercase letters, digits, `_` and `.`, 1 to 64 long.
pub fn valid_kind(kind: &str) -> bool {
    !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}
