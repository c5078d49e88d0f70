//! PKCE, RFC 7636: the code verifier kept by Sluice and the `S256` challenge sent in the
//! authorization URL, so that a code caught on its way back cannot be exchanged by anyone
//! else. The random bytes come from the caller (no IO here).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use sluice_destinations::Secret;
use subtle::ConstantTimeEq;

/// The only challenge method Sluice uses.
pub const METHOD: &str = "S256";

/// A code verifier: 43 to 128 characters of `A-Z a-z 0-9 - . _ ~` (RFC 7636 §4.1). `Debug`
/// hides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeVerifier(Secret);

impl CodeVerifier {
    /// A verifier from 32 random bytes: their base64url encoding without padding, 43
    /// characters (RFC 7636 §4.1's recommendation). The bytes must come from a
    /// cryptographically secure generator.
    pub fn from_random(bytes: [u8; 32]) -> CodeVerifier {
        CodeVerifier(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A verifier read back (from storage, or a test vector); `None` unless it has RFC 7636's
    /// length and alphabet.
    pub fn parse(text: &str) -> Option<CodeVerifier> {
        let valid = (43..=128).contains(&text.len())
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte));
        valid.then(|| CodeVerifier(Secret::new(text)))
    }

    /// The verifier itself, for the token request.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// Its `S256` challenge.
    pub fn challenge(&self) -> CodeChallenge {
        CodeChallenge(s256(self.expose()))
    }
}

/// An `S256` code challenge: `BASE64URL(SHA256(ASCII(verifier)))`, 43 characters. It is sent
/// in the clear, so it may be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct CodeChallenge(String);

impl CodeChallenge {
    /// A challenge as received (by a fake provider, from an authorization URL).
    pub fn new(text: impl Into<String>) -> CodeChallenge {
        CodeChallenge(text.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The method to send with it: always `S256`.
    pub fn method(&self) -> &'static str {
        METHOD
    }

    /// Whether `verifier` is the one this challenge was made from, compared in constant time
    /// (what the provider checks at the token endpoint).
    pub fn is_challenge_of(&self, verifier: &str) -> bool {
        bool::from(s256(verifier).as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl fmt::Debug for CodeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CodeChallenge").field(&self.0).finish()
    }
}

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7636 Appendix B.
    const RFC_OCTETS: [u8; 32] = [
        116, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37,
        77, 105, 214, 191, 240, 91, 88, 5, 88, 83, 132, 141, 121,
    ];
    const RFC_VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const RFC_CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc_7636_appendix_b() {
        let verifier = CodeVerifier::from_random(RFC_OCTETS);
        assert_eq!(verifier.expose(), RFC_VERIFIER);
        let challenge = verifier.challenge();
        assert_eq!(challenge.as_str(), RFC_CHALLENGE);
        assert_eq!(challenge.method(), "S256");
        assert!(challenge.is_challenge_of(RFC_VERIFIER));
        assert!(!challenge.is_challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXK"));
    }

    #[test]
    fn a_verifier_from_32_bytes_has_43_unreserved_characters() {
        let verifier = CodeVerifier::from_random([0xff; 32]);
        assert_eq!(verifier.expose().len(), 43);
        assert!(CodeVerifier::parse(verifier.expose()).is_some());
    }

    #[test]
    fn parse_checks_length_and_alphabet() {
        assert!(CodeVerifier::parse(RFC_VERIFIER).is_some());
        assert!(CodeVerifier::parse(&"a".repeat(42)).is_none());
        assert!(CodeVerifier::parse(&"a".repeat(128)).is_some());
        assert!(CodeVerifier::parse(&"a".repeat(129)).is_none());
        assert!(CodeVerifier::parse(&format!("{}+", "a".repeat(42))).is_none());
    }

    #[test]
    fn debug_hides_the_verifier() {
        let verifier = CodeVerifier::from_random(RFC_OCTETS);
        assert!(!format!("{verifier:?}").contains(RFC_VERIFIER));
    }
}
