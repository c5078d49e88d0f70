//! Hashing identifiers for the ad platforms: SHA-256 (and MD5 where TikTok takes it) written as
//! lowercase hex on the stack, the Base64 form Google's Data Manager also takes, and the check
//! for values that arrive already hashed (`^[0-9a-fA-F]{64}$`: lowercased, never hashed again).

use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256};

/// A digest as lowercase hex, kept on the stack: 64 characters for SHA-256, 32 for MD5.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Hex {
    text: [u8; 64],
    len: u8,
}

impl Hex {
    /// The hex text.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written into `text`, so this cannot fail.
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or_default()
    }

    fn from_digest(digest: &[u8]) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 64];
        let len = digest.len().min(32);
        for (index, byte) in digest[..len].iter().enumerate() {
            text[index * 2] = DIGITS[usize::from(byte >> 4)];
            text[index * 2 + 1] = DIGITS[usize::from(byte & 15)];
        }
        Hex {
            text,
            // At most 64: `len` is capped at 32 bytes above.
            len: u8::try_from(len * 2).unwrap_or(64),
        }
    }

    /// A value that is already a SHA-256 in hex (any case), lowercased; `None` otherwise.
    pub fn from_sha256_hex(value: &str) -> Option<Hex> {
        if !is_sha256_hex(value) {
            return None;
        }
        let mut text = [0u8; 64];
        for (slot, byte) in text.iter_mut().zip(value.bytes()) {
            *slot = byte.to_ascii_lowercase();
        }
        Some(Hex { text, len: 64 })
    }

    /// The digest's bytes (the hex decoded).
    fn bytes(&self) -> ([u8; 32], usize) {
        let mut bytes = [0u8; 32];
        let len = usize::from(self.len) / 2;
        for (index, slot) in bytes.iter_mut().take(len).enumerate() {
            let high = nibble(self.text[index * 2]);
            let low = nibble(self.text[index * 2 + 1]);
            *slot = (high << 4) | low;
        }
        (bytes, len)
    }

    /// The digest in standard Base64 (Google's `encoding: BASE64`).
    pub fn to_base64(&self) -> String {
        let (bytes, len) = self.bytes();
        base64::engine::general_purpose::STANDARD.encode(&bytes[..len])
    }
}

impl std::fmt::Debug for Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A hash of personal data is still personal data: never shown whole.
        write!(f, "Hex({}…)", &self.as_str()[..8.min(self.as_str().len())])
    }
}

fn nibble(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => 0,
    }
}

/// SHA-256 of the UTF-8 bytes, lowercase hex.
pub fn sha256_hex(value: &str) -> Hex {
    Hex::from_digest(&Sha256::digest(value.as_bytes()))
}

/// MD5 of the UTF-8 bytes, lowercase hex (TikTok's `IDFA_MD5` / `AAID_MD5`).
pub fn md5_hex(value: &str) -> Hex {
    Hex::from_digest(&Md5::digest(value.as_bytes()))
}

/// Whether `value` is exactly 64 hex digits (a SHA-256 someone already computed).
pub fn is_sha256_hex(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|byte| byte.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_is_lowercase_hex() {
        let hash = sha256_hex("mary@example.com");
        assert_eq!(
            hash.as_str(),
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79"
        );
        assert_eq!(sha256_hex("").as_str().len(), 64);
    }

    #[test]
    fn md5_is_lowercase_hex() {
        // T12.
        assert_eq!(
            md5_hex("6d92078a-8246-4ba4-ae5b-76104861e7dc").as_str(),
            "0c2074fb86930fc4a2a7bb791240a7d3"
        );
    }

    #[test]
    fn base64_form_of_a_digest() {
        // G15.
        assert_eq!(
            sha256_hex("mary@example.com").to_base64(),
            "8ZBM8anXOlX6XeCsgjxEA97XGv1MMkjQC9zQhmVSu3k="
        );
        let given = Hex::from_sha256_hex(
            "F1904CF1A9D73A55FA5DE0AC823C4403DED71AFD4C3248D00BDCD0866552BB79",
        );
        assert_eq!(
            given.map(|hex| hex.to_base64()).as_deref(),
            Some("8ZBM8anXOlX6XeCsgjxEA97XGv1MMkjQC9zQhmVSu3k=")
        );
    }

    #[test]
    fn already_hashed_values_are_recognised_and_lowercased() {
        let upper = "F1904CF1A9D73A55FA5DE0AC823C4403DED71AFD4C3248D00BDCD0866552BB79";
        assert!(is_sha256_hex(upper));
        assert_eq!(
            Hex::from_sha256_hex(upper).map(|hex| hex.as_str().to_string()),
            Some("f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79".into())
        );
        for not in [
            "",
            "f1904cf1",
            // 63 and 65 digits.
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb7",
            "f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb790",
            // A `g`.
            "g1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
            // Surrounding spaces are not trimmed here.
            " f1904cf1a9d73a55fa5de0ac823c4403ded71afd4c3248d00bdcd0866552bb79",
        ] {
            assert!(!is_sha256_hex(not), "{not:?}");
            assert!(Hex::from_sha256_hex(not).is_none());
        }
    }

    #[test]
    fn debug_shows_only_a_prefix() {
        let text = format!("{:?}", sha256_hex("mary@example.com"));
        assert_eq!(text, "Hex(f1904cf1…)");
    }
}
