//! The `state` parameter (RFC 6749 §10.12) and the pending authorization it points to.
//!
//! The state is an opaque random value (the caller supplies the bytes). Sluice keeps a
//! [`PendingAuthorization`] for it — the workspace, provider and connection it is for, the
//! redirect URI, the PKCE verifier, and when it expires — which the server stores sealed,
//! keyed by [`StateKey`] (a SHA-256 of the state, so the store never holds the value itself).
//! On the callback, [`verify_callback`] checks what the store found against the state that
//! came back: `state_unknown` (nothing found), `state_mismatch` (another state or provider,
//! compared in constant time), `state_expired` (after [`STATE_TTL`], 10 minutes by default).

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sluice_destinations::Secret;
use subtle::ConstantTimeEq;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::error::OAuthError;
use crate::pkce::CodeVerifier;
use crate::provider::Provider;

/// How long an authorization may take, from the redirect to the callback, by default.
pub const STATE_TTL: Duration = Duration::minutes(10);

/// The `state` sent to the provider: 32 random bytes as base64url, 43 characters. `Debug`
/// hides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthState(Secret);

impl AuthState {
    /// A state from 32 random bytes (from a cryptographically secure generator).
    pub fn from_random(bytes: [u8; 32]) -> AuthState {
        AuthState(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// The value, for the authorization URL.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    /// The key its pending authorization is stored under.
    pub fn key(&self) -> StateKey {
        StateKey::of(self.expose())
    }
}

/// The storage key of a pending authorization: the lowercase hex SHA-256 of the state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateKey(String);

impl StateKey {
    /// The key of a state as it came back on a callback.
    pub fn of(state: &str) -> StateKey {
        StateKey(hex(&digest(state)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a connection being made belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Binding {
    pub workspace: String,
    pub provider: Provider,
    /// The connection (destination, ad account link) the tokens are for.
    pub connection: String,
}

/// An authorization under way, stored (sealed: it holds the PKCE verifier) from the redirect
/// to the callback. `Debug` hides the verifier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingAuthorization {
    pub binding: Binding,
    /// The redirect URI sent in the authorization URL; the token request repeats it.
    pub redirect_uri: String,
    pub verifier: CodeVerifier,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// SHA-256 of the state.
    digest: [u8; 32],
}

impl PendingAuthorization {
    /// The pending authorization of `state`, made at `now`, expiring after [`STATE_TTL`].
    pub fn new(
        state: &AuthState,
        binding: Binding,
        redirect_uri: impl Into<String>,
        verifier: CodeVerifier,
        now: OffsetDateTime,
    ) -> PendingAuthorization {
        PendingAuthorization {
            binding,
            redirect_uri: redirect_uri.into(),
            verifier,
            created_at: now,
            expires_at: now.saturating_add(STATE_TTL),
            digest: digest(state.expose()),
        }
    }

    /// The same, expiring `ttl` after it was made.
    pub fn with_ttl(mut self, ttl: Duration) -> PendingAuthorization {
        self.expires_at = self.created_at.saturating_add(ttl);
        self
    }

    /// The key to store it under (the same as [`AuthState::key`]).
    pub fn key(&self) -> StateKey {
        StateKey(hex(&self.digest))
    }

    /// Checks a callback that carried `state` on `provider`'s callback route at `now`:
    /// `state_mismatch` unless both are this authorization's (the state compared in constant
    /// time), then `state_expired` from `expires_at` on.
    pub fn check(
        &self,
        state: &str,
        provider: Provider,
        now: OffsetDateTime,
    ) -> Result<(), OAuthError> {
        let same_state = bool::from(digest(state).ct_eq(&self.digest));
        if !same_state || provider != self.binding.provider {
            return Err(OAuthError::StateMismatch);
        }
        if now >= self.expires_at {
            return Err(OAuthError::StateExpired);
        }
        Ok(())
    }

    /// The bytes to seal and store: JSON holding the verifier in clear, so they must only be
    /// stored sealed.
    pub fn encode(&self) -> Vec<u8> {
        let value = json!({
            "workspace": self.binding.workspace,
            "provider": self.binding.provider.name(),
            "connection": self.binding.connection,
            "redirect_uri": self.redirect_uri,
            "verifier": self.verifier.expose(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
            "digest": hex(&self.digest),
        });
        value.to_string().into_bytes()
    }

    /// Reads [`encode`](Self::encode)'s bytes back; `state_unknown` when they are not such
    /// bytes (a record that cannot be read is as good as none).
    pub fn decode(bytes: &[u8]) -> Result<PendingAuthorization, OAuthError> {
        decode(bytes).ok_or(OAuthError::StateUnknown)
    }
}

fn decode(bytes: &[u8]) -> Option<PendingAuthorization> {
    let value: Value = serde_json::from_slice(bytes).ok()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let time = |key: &str| OffsetDateTime::parse(text(key)?, &Rfc3339).ok();
    let digest = unhex(text("digest")?)?;
    Some(PendingAuthorization {
        binding: Binding {
            workspace: text("workspace")?.to_string(),
            provider: Provider::parse(text("provider")?)?,
            connection: text("connection")?.to_string(),
        },
        redirect_uri: text("redirect_uri")?.to_string(),
        verifier: CodeVerifier::parse(text("verifier")?)?,
        created_at: time("created_at")?,
        expires_at: time("expires_at")?,
        digest,
    })
}

/// Checks a callback against what the store found under [`StateKey::of`] its state:
/// `state_unknown` when nothing, else [`PendingAuthorization::check`]. The server deletes the
/// pending authorization once it has been found, whatever the outcome, so a state works once.
pub fn verify_callback<'a>(
    found: Option<&'a PendingAuthorization>,
    state: &str,
    provider: Provider,
    now: OffsetDateTime,
) -> Result<&'a PendingAuthorization, OAuthError> {
    let pending = found.ok_or(OAuthError::StateUnknown)?;
    pending.check(state, provider, now)?;
    Ok(pending)
}

/// A time as RFC 3339 (an offset date time in UTC always formats).
fn rfc3339(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn digest(state: &str) -> [u8; 32] {
    Sha256::digest(state.as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn unhex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (index, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(text.get(index * 2..index * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-05-01 12:00:00.123456789 UTC);

    fn binding() -> Binding {
        Binding {
            workspace: "ws_1".into(),
            provider: Provider::Google,
            connection: "dest_7".into(),
        }
    }

    fn pending(state: &AuthState) -> PendingAuthorization {
        PendingAuthorization::new(
            state,
            binding(),
            "https://sluice.example/oauth/google/callback",
            CodeVerifier::from_random([7; 32]),
            NOW,
        )
    }

    #[test]
    fn a_state_is_43_characters_and_keyed_by_its_sha256() {
        let state = AuthState::from_random([0; 32]);
        assert_eq!(
            state.expose(),
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        );
        assert_eq!(state.key(), StateKey::of(state.expose()));
        assert_eq!(state.key().as_str().len(), 64);
        assert_eq!(pending(&state).key(), state.key());
        // SHA-256("abc"), FIPS 180-2.
        assert_eq!(
            StateKey::of("abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(!format!("{state:?}").contains(state.expose()));
    }

    #[test]
    fn the_right_state_in_time_passes() {
        let state = AuthState::from_random([1; 32]);
        let pending = pending(&state);
        assert_eq!(pending.expires_at, NOW + Duration::minutes(10));
        let later = NOW + Duration::minutes(9);
        let found = verify_callback(Some(&pending), state.expose(), Provider::Google, later);
        assert_eq!(found.map(|p| &p.binding), Ok(&binding()));
    }

    #[test]
    fn nothing_found_is_unknown() {
        let error = verify_callback(None, "whatever", Provider::Google, NOW).err();
        assert_eq!(error, Some(OAuthError::StateUnknown));
    }

    #[test]
    fn another_state_or_provider_is_a_mismatch() {
        let state = AuthState::from_random([1; 32]);
        let other = AuthState::from_random([2; 32]);
        let pending = pending(&state);
        let check = |state: &str, provider| {
            verify_callback(Some(&pending), state, provider, NOW)
                .err()
                .map(|e| e.code())
        };
        assert_eq!(
            check(other.expose(), Provider::Google),
            Some("state_mismatch")
        );
        assert_eq!(check("", Provider::Google), Some("state_mismatch"));
        assert_eq!(
            check(state.expose(), Provider::Meta),
            Some("state_mismatch")
        );
    }

    #[test]
    fn at_and_after_the_expiry_it_is_expired() {
        let state = AuthState::from_random([1; 32]);
        let pending = pending(&state).with_ttl(Duration::minutes(2));
        let at = |now| {
            verify_callback(Some(&pending), state.expose(), Provider::Google, now)
                .err()
                .map(|e| e.code())
        };
        assert_eq!(at(NOW + Duration::seconds(119)), None);
        assert_eq!(at(NOW + Duration::minutes(2)), Some("state_expired"));
        assert_eq!(at(NOW + Duration::hours(5)), Some("state_expired"));
    }

    #[test]
    fn encode_and_decode_round_trip() {
        let state = AuthState::from_random([3; 32]);
        let pending = pending(&state);
        let decoded = PendingAuthorization::decode(&pending.encode());
        assert_eq!(decoded.as_ref(), Ok(&pending));
        assert_eq!(
            PendingAuthorization::decode(b"{\"workspace\":1}").err(),
            Some(OAuthError::StateUnknown)
        );
        assert_eq!(
            PendingAuthorization::decode(b"not json").err(),
            Some(OAuthError::StateUnknown)
        );
    }

    #[test]
    fn debug_hides_the_verifier() {
        let state = AuthState::from_random([3; 32]);
        let pending = pending(&state);
        let shown = format!("{pending:?}");
        assert!(!shown.contains(pending.verifier.expose()));
        assert!(shown.contains("dest_7"));
    }
}
