//! The crate's errors and their stable codes. A provider's own error text is kept short and
//! scrubbed of anything that looks like a credential before it goes into a message.

use crate::provider::Provider;

/// Why a step of an OAuth flow failed. [`OAuthError::code`] is the stable string the API shows.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OAuthError {
    /// No pending authorization has this state: never issued, already used, or unreadable.
    #[error("no authorization is pending for this state")]
    StateUnknown,
    /// The pending authorization outlived its time to live before the callback came.
    #[error("the authorization request expired before the platform answered")]
    StateExpired,
    /// The callback's state or provider is not the pending authorization's.
    #[error("the callback does not match the pending authorization")]
    StateMismatch,
    /// The authorization code is unknown, expired, already used, or was issued for another
    /// redirect URI or PKCE challenge (or the user refused, see `detail`).
    #[error("{provider} refused the authorization code: {detail}")]
    CodeInvalid { provider: Provider, detail: String },
    /// The token (or refresh token) was revoked or is otherwise no longer valid: reconnect.
    #[error("{provider} no longer accepts the token: {detail}")]
    TokenRevoked { provider: Provider, detail: String },
    /// The token expired: reconnect.
    #[error("{provider} says the token expired: {detail}")]
    TokenExpired { provider: Provider, detail: String },
    /// The provider (or this connection) has no way to renew its token.
    #[error("{provider} cannot renew this token: {reason}")]
    RefreshUnsupported {
        provider: Provider,
        reason: &'static str,
    },
    /// Any other error the provider answered: its own code (`invalid_client`, `190`, `40100`)
    /// and description, never a token.
    #[error("{provider} answered http {status} with error {provider_code}: {detail}")]
    ProviderError {
        provider: Provider,
        status: u16,
        provider_code: String,
        detail: String,
        /// Whether trying again later may work (rate limits, the provider's own failures).
        retryable: bool,
    },
    /// The answer is not one of the provider's documented shapes.
    #[error("{provider} answered something unreadable: {reason}")]
    MalformedResponse { provider: Provider, reason: String },
}

impl OAuthError {
    /// The stable code (`state_unknown`, `code_invalid`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::StateUnknown => "state_unknown",
            OAuthError::StateExpired => "state_expired",
            OAuthError::StateMismatch => "state_mismatch",
            OAuthError::CodeInvalid { .. } => "code_invalid",
            OAuthError::TokenRevoked { .. } => "token_revoked",
            OAuthError::TokenExpired { .. } => "token_expired",
            OAuthError::RefreshUnsupported { .. } => "refresh_unsupported",
            OAuthError::ProviderError { .. } => "provider_error",
            OAuthError::MalformedResponse { .. } => "malformed_response",
        }
    }

    /// Whether the same request may succeed later (only some `provider_error`s).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            OAuthError::ProviderError {
                retryable: true,
                ..
            }
        )
    }

    /// Whether the connection must be made again by a person (the token is dead).
    pub fn needs_reconnect(&self) -> bool {
        matches!(
            self,
            OAuthError::TokenRevoked { .. } | OAuthError::TokenExpired { .. }
        )
    }
}

/// Longest provider description kept in a message.
const MAX_DETAIL: usize = 200;
/// Runs of token characters at least this long are taken for credentials and hidden.
const TOKEN_LIKE: usize = 24;

/// A provider's description made fit for a message: whitespace collapsed, runs of
/// token-like characters (24 or more of `A-Z a-z 0-9 - . _ ~ + /`) replaced by
/// `[redacted]`, cut to 200 characters.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::new();
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        let mut run = String::new();
        for c in word.chars() {
            if c.is_ascii_alphanumeric() || "-._~+/".contains(c) {
                run.push(c);
            } else {
                flush(&mut out, &mut run);
                out.push(c);
            }
        }
        flush(&mut out, &mut run);
    }
    if out.chars().count() > MAX_DETAIL {
        out = out.chars().take(MAX_DETAIL).collect();
        out.push('…');
    }
    out
}

fn flush(out: &mut String, run: &mut String) {
    if run.chars().count() >= TOKEN_LIKE {
        out.push_str("[redacted]");
    } else {
        out.push_str(run);
    }
    run.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let provider = Provider::Google;
        let detail = String::new();
        let cases = [
            (OAuthError::StateUnknown, "state_unknown"),
            (OAuthError::StateExpired, "state_expired"),
            (OAuthError::StateMismatch, "state_mismatch"),
            (
                OAuthError::CodeInvalid {
                    provider,
                    detail: detail.clone(),
                },
                "code_invalid",
            ),
            (
                OAuthError::TokenRevoked {
                    provider,
                    detail: detail.clone(),
                },
                "token_revoked",
            ),
            (
                OAuthError::TokenExpired {
                    provider,
                    detail: detail.clone(),
                },
                "token_expired",
            ),
            (
                OAuthError::RefreshUnsupported {
                    provider,
                    reason: "none",
                },
                "refresh_unsupported",
            ),
            (
                OAuthError::ProviderError {
                    provider,
                    status: 400,
                    provider_code: "invalid_client".into(),
                    detail: detail.clone(),
                    retryable: false,
                },
                "provider_error",
            ),
            (
                OAuthError::MalformedResponse {
                    provider,
                    reason: detail,
                },
                "malformed_response",
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.code(), code);
            let message = error.to_string();
            assert!(!message.ends_with('.'), "{message}");
            let first = message.chars().next().unwrap_or('x');
            assert!(!first.is_uppercase(), "{message}");
        }
    }

    #[test]
    fn scrub_hides_token_like_runs_and_cuts() {
        assert_eq!(
            scrub("Error validating access token: EAAGm0PX4ZCpsBAKZBZCmore0123456789abc is bad"),
            "Error validating access token: [redacted] is bad"
        );
        assert_eq!(
            scrub("  Token has been\nexpired or revoked. "),
            "Token has been expired or revoked."
        );
        assert_eq!(scrub(&"word ".repeat(100)).chars().count(), MAX_DETAIL + 1);
        assert_eq!(
            scrub("token=ya29.a0AfH6SMBx0123456789abcdefghij&x=1"),
            "token=[redacted]&x=1"
        );
    }
}
