//! Write keys and admin tokens.
//!
//! Both are random (32 letters and digits, about 190 bits), shown to the user once, and stored only as a SHA-256 hash, so a
//! copy of the database does not reveal them. A presented key is hashed and compared with the
//! stored hash in constant time. `Debug` never prints the secret.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::StoreError;

/// Characters of a generated secret: letters and digits only, so a key never starts with a
/// dash and needs no quoting in a shell, a URL or a Basic auth header.
const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Characters in a generated secret: 32 of 62 symbols, about 190 bits.
const SECRET_CHARS: usize = 32;

fn random_text(prefix: &str) -> Result<String, StoreError> {
    random_id_text(prefix, SECRET_CHARS)
}

/// `prefix` followed by `chars` random letters and digits.
pub(crate) fn random_id_text(prefix: &str, chars: usize) -> Result<String, StoreError> {
    let mut text = String::with_capacity(prefix.len() + chars);
    text.push_str(prefix);
    let mut bytes = [0u8; 64];
    while text.len() < prefix.len() + chars {
        getrandom::fill(&mut bytes)
            .map_err(|error| StoreError::Io(std::io::Error::other(error.to_string())))?;
        for byte in bytes {
            // Rejection sampling: 248 = 4 * 62, so every symbol is equally likely.
            if byte < 248 && text.len() < prefix.len() + chars {
                text.push(char::from(ALPHABET[usize::from(byte % 62)]));
            }
        }
    }
    Ok(text)
}

/// The SHA-256 hash of a key or token: what the database keeps.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(secret: &str) -> KeyHash {
        KeyHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// Constant-time equality.
    pub fn matches(&self, other: &KeyHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn from_slice(bytes: &[u8]) -> Option<KeyHash> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(KeyHash(array))
    }
}

impl fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyHash(..)")
    }
}

macro_rules! secret_type {
    ($name:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// A new random secret.
            pub fn generate() -> Result<$name, StoreError> {
                Ok($name(random_text($prefix)?))
            }

            /// Wraps a secret the user presented or configured.
            pub fn parse(text: &str) -> Result<$name, StoreError> {
                if text.len() < 16
                    || text.len() > 256
                    || text.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(StoreError::Invalid {
                        field: stringify!($name),
                        message: "must be 16 to 256 printable characters".into(),
                    });
                }
                Ok($name(text.to_owned()))
            }

            /// The secret itself, for showing once to its owner.
            pub fn expose(&self) -> &str {
                &self.0
            }

            pub fn hash(&self) -> KeyHash {
                KeyHash::of(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(redacted)"))
            }
        }
    };
}

secret_type!(
    WriteKey,
    "",
    "A source's write key: the credential an SDK sends."
);
secret_type!(
    AdminToken,
    "sla_",
    "A workspace admin token: the credential of the admin API."
);
secret_type!(
    ProfileToken,
    "slp_",
    "A Profile API access token: read access to one workspace's profiles."
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_are_long_random_and_distinct() {
        let a = WriteKey::generate().unwrap();
        let b = WriteKey::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 32);
        assert!(a.expose().chars().all(|c| c.is_ascii_alphanumeric()));
        assert!(AdminToken::generate().unwrap().expose().starts_with("sla_"));
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let key = WriteKey::generate().unwrap();
        let shown = format!("{key:?} {:?}", key.hash());
        assert!(!shown.contains(key.expose()));
        let token = AdminToken::generate().unwrap();
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn hashes_compare() {
        let key = WriteKey::generate().unwrap();
        assert!(key.hash().matches(&KeyHash::of(key.expose())));
        assert!(!key.hash().matches(&KeyHash::of("something else entirely")));
    }

    #[test]
    fn parse_refuses_short_or_odd_secrets() {
        assert!(AdminToken::parse("short").is_err());
        assert!(AdminToken::parse("has a space in the middle!").is_err());
        assert!(AdminToken::parse("a-perfectly-fine-token").is_ok());
    }
}
