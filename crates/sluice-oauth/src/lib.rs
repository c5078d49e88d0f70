//! OAuth 2.0 authorization-code flows for the ad platforms (Google, Meta, TikTok), with PKCE
//! and a `state` bound to the connection being made. No IO: the library builds URLs and
//! [`HttpRequest`]s and reads [`HttpResponse`]s; the server sends them and stores what must
//! be kept (sealed).
//!
//! A connection is made in two halves:
//!
//! 1. The admin asks to connect. The server draws random bytes for a [`CodeVerifier`] and an
//!    [`AuthState`], stores a [`PendingAuthorization`] (sealed, keyed by
//!    [`PendingAuthorization::key`]) and sends the admin's browser to [`authorization_url`].
//! 2. The platform sends the browser back to the redirect URI. The server reads the query with
//!    [`parse_callback`], finds the pending authorization by [`StateKey::of`] the returned
//!    state, checks it with [`verify_callback`] (`state_unknown`, `state_expired`,
//!    `state_mismatch`), sends [`token_request`] and reads the answer with [`parse_token`].
//!    For Meta, [`long_lived_request`] then trades the short-lived token for a long-lived one.
//!
//! Later, [`refresh_request`] renews the token (Google: refresh token; Meta: re-exchange of a
//! still-valid long-lived token; TikTok: its token does not expire, so `refresh_unsupported`),
//! and [`revoke_request`] disconnects. Every failure is an [`OAuthError`] with a stable
//! [`code`](OAuthError::code).
//!
//! Modules: [`provider`] (each platform's facts and endpoints), [`client`] (the app's
//! credentials), [`pkce`] (RFC 7636), [`state`] (the `state` parameter and the pending
//! authorization), [`flow`] (URLs, requests, answers), [`error`]. The `testkit` feature adds
//! `testkit`, a local fake of each platform's OAuth endpoints.
//!
//! Architecture invariant: no token, code, verifier or client secret is ever printed: they are
//! held as [`Secret`] (or types wrapping it) whose `Debug` is redacted, and error messages carry
//! the platform's error code and a scrubbed description, never a credential.

pub mod client;
pub mod error;
pub mod flow;
pub mod pkce;
pub mod provider;
pub mod state;

mod form;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use client::ClientCredentials;
pub use error::OAuthError;
pub use flow::{
    Callback, Tokens, authorization_url, long_lived_request, parse_callback, parse_refresh,
    parse_revoke, parse_token, refresh_request, revoke_request, token_request,
};
pub use pkce::{CodeChallenge, CodeVerifier};
pub use provider::{Provider, ProviderEndpoints, Renewal};
pub use sluice_destinations::{HttpRequest, HttpResponse, Method, Secret};
pub use state::{AuthState, Binding, PendingAuthorization, STATE_TTL, StateKey, verify_callback};
