//! Connecting: the authorization URL (with its pending authorization kept sealed under the
//! hash of the state) and the callback that turns the code into stored tokens.

use std::sync::Arc;

use sluice_oauth::{
    AuthState, Binding, CodeVerifier, OAuthError, PendingAuthorization, Provider, StateKey,
    authorization_url, long_lived_request, parse_callback, parse_refresh, parse_token,
    token_request, verify_callback,
};
use sluice_store::{
    ConnectedTokens, Connection, PendingRecord, WorkspaceId, new_connection_id, pending_context,
};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::tokens::{appsecret_proof, ms_of_time, seal_tokens};
use super::{ConnectionError, Connections, provider_of, random32};
use crate::store_call;

/// An authorization under way: where to send the admin's browser.
#[derive(Debug, Clone)]
pub struct Started {
    /// The connection the callback will create (or connect again).
    pub connection_id: String,
    pub provider: Provider,
    /// The provider's consent page, with the state and the PKCE challenge. Not a secret, but
    /// it works once and only until `state_expires_at`.
    pub authorization_url: String,
    pub state_expires_at: OffsetDateTime,
}

impl Connections {
    /// Starts connecting `workspace` to `provider` (`google`, `meta`, `tiktok`): a new
    /// connection, labelled `label`.
    pub async fn start(
        &self,
        workspace: &WorkspaceId,
        provider: &str,
        label: Option<String>,
    ) -> Result<Started, ConnectionError> {
        let provider = Provider::parse(provider.trim())
            .ok_or_else(|| ConnectionError::UnknownProvider(provider.to_string()))?;
        let id = new_connection_id()?;
        self.authorize(workspace, provider, id, label).await
    }

    /// Starts connecting an existing connection again (new tokens for it, whatever its status).
    pub async fn reconnect(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Started, ConnectionError> {
        let (state, ws, wanted) = (Arc::clone(&self.state), workspace.clone(), id.to_string());
        let connection = store_call(move || state.get_connection(&ws, &wanted)).await?;
        let provider = provider_of(&connection)?;
        self.authorize(workspace, provider, connection.id, None)
            .await
    }

    async fn authorize(
        &self,
        workspace: &WorkspaceId,
        provider: Provider,
        id: String,
        label: Option<String>,
    ) -> Result<Started, ConnectionError> {
        let redirect_uri = self
            .settings
            .redirect_uri()
            .ok_or_else(|| ConnectionError::NotConfigured {
                provider,
                reason: "public_url is not set, so the provider cannot send the browser back"
                    .into(),
            })?
            .to_string();
        let app = self.app(workspace, provider).await?;
        let state = AuthState::from_random(random32()?);
        let verifier = CodeVerifier::from_random(random32()?);
        let binding = Binding {
            workspace: workspace.0.clone(),
            provider,
            connection: id.clone(),
        };
        let pending =
            PendingAuthorization::new(&state, binding, redirect_uri.clone(), verifier, self.now());
        let scopes: Vec<&str> = app.scopes.iter().map(String::as_str).collect();
        let url = authorization_url(
            self.settings.endpoints(provider),
            &app.client,
            &redirect_uri,
            &state,
            &pending.verifier.challenge(),
            &scopes,
        );
        let key = pending.key();
        let encoded = Zeroizing::new(pending.encode());
        let sealed = self
            .vault
            .seal(&encoded, &pending_context(workspace, key.as_str()))?;
        let record = PendingRecord {
            workspace_id: workspace.clone(),
            label,
            sealed,
            expires_at_ms: ms_of_time(pending.expires_at),
        };
        let now_ms = self.clock.now_ms();
        let store = Arc::clone(&self.state);
        store_call(move || store.add_pending_authorization(key.as_str(), &record, now_ms)).await?;
        tracing::info!(workspace = %workspace, connection = %id, %provider, "authorization started");
        Ok(Started {
            connection_id: id,
            provider,
            authorization_url: url,
            state_expires_at: pending.expires_at,
        })
    }

    /// The provider sent the browser back with `query` (`code=…&state=…`, or an `error`).
    /// The pending authorization of the state is taken (it works once, whatever happens
    /// next) and checked; then the code is exchanged (and, for Meta, the short-lived token
    /// for a long-lived one) and the tokens stored, sealed.
    pub async fn callback(&self, query: &str) -> Result<Connection, ConnectionError> {
        // Nothing happens without the state of a pending authorization.
        let first = parse_callback(Provider::Google, query).map_err(|error| match error {
            OAuthError::MalformedResponse { reason, .. } => ConnectionError::BadCallback(reason),
            other => other.into(),
        })?;
        let key = StateKey::of(&first.state);
        let store = Arc::clone(&self.state);
        let taken_key = key.clone();
        let record = store_call(move || store.take_pending_authorization(taken_key.as_str()))
            .await?
            .ok_or(OAuthError::StateUnknown)?;
        let pending = match self.vault.open(
            &record.sealed,
            &pending_context(&record.workspace_id, key.as_str()),
        ) {
            Ok(opened) => PendingAuthorization::decode(&opened)?,
            Err(error) => {
                tracing::warn!(%error, "a pending authorization could not be opened");
                return Err(OAuthError::StateUnknown.into());
            }
        };
        let provider = pending.binding.provider;
        let callback = parse_callback(provider, query)?;
        verify_callback(Some(&pending), &callback.state, provider, self.now())?;
        if pending.binding.workspace != record.workspace_id.0 {
            return Err(OAuthError::StateMismatch.into());
        }
        let code = match callback.code {
            Ok(code) => code,
            Err(OAuthError::CodeInvalid { detail, .. }) if carries_error(query) => {
                let detail = detail.trim_end_matches([':', ' ']).to_string();
                return Err(ConnectionError::Denied { provider, detail });
            }
            Err(error) => return Err(error.into()),
        };
        let workspace = record.workspace_id.clone();
        let app = self.app(&workspace, provider).await?;
        let endpoints = self.settings.endpoints(provider);
        let request = token_request(
            endpoints,
            &app.client,
            &code,
            &pending.verifier,
            &pending.redirect_uri,
        );
        let answer = self.send(provider, request).await?;
        let mut tokens = parse_token(provider, &answer, self.now())?;
        if let Some(request) = long_lived_request(endpoints, &app.client, &tokens) {
            let answer = self.send(provider, request).await?;
            tokens = parse_refresh(provider, &answer, self.now())?.keep_missing(&tokens);
        }
        let id = pending.binding.connection.clone();
        let proof = appsecret_proof(provider, &app, &tokens);
        let sealed = seal_tokens(
            &self.vault,
            &workspace,
            &id,
            &tokens,
            proof.as_deref().map(String::as_str),
        )?;
        let connected = ConnectedTokens {
            id: id.clone(),
            provider: provider.name().to_string(),
            label: record.label.clone(),
            scopes: tokens.scopes.clone(),
            accounts: tokens.advertiser_ids.clone(),
            sealed,
            access_expires_at_ms: tokens.expires_at.map(ms_of_time),
            at_ms: self.clock.now_ms(),
        };
        let store = Arc::clone(&self.state);
        let ws = workspace.clone();
        let connection = store_call(move || store.connect(&ws, connected)).await?;
        tracing::info!(workspace = %workspace, connection = %id, %provider, "connected");
        self.connection_changed();
        Ok(connection)
    }
}

/// Whether the callback's query carries an `error` parameter (the user or the provider
/// refused).
fn carries_error(query: &str) -> bool {
    let query = query.split_once('?').map_or(query, |(_, query)| query);
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_parameter_is_a_refusal() {
        assert!(carries_error("error=access_denied&state=x"));
        assert!(carries_error("https://x/cb?state=x&error=access_denied"));
        assert!(!carries_error("code=1&state=x&error_description=y"));
        assert!(!carries_error("code=1&state=x"));
    }
}
