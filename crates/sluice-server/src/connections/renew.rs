//! Renewal: on request ([`Connections::refresh`]), in the background before tokens expire
//! ([`Connections::run`]), and once when a platform refuses a connection's token while
//! delivering. A renewal the provider refuses for good (the grant revoked, the token expired)
//! marks the connection `needs_reauthorization` with the reason, and logs a warning (never a
//! token).

use std::sync::Arc;
use std::time::Duration;

use sluice_oauth::{Provider, Renewal, parse_refresh, refresh_request};
use sluice_store::{Connection, ConnectionStatus, RenewedTokens, WorkspaceId};
use tokio::sync::watch;

use super::tokens::{appsecret_proof, ms_of_time, open_tokens, seal_tokens};
use super::{ConnectionError, Connections, provider_of};
use crate::store_call;

/// How often destinations paused by a refused token are looked for.
const PAUSES_EVERY: Duration = Duration::from_secs(1);

impl Connections {
    /// Renews a connection's access token now (Google: its refresh token; Meta: the
    /// long-lived token exchanged again). TikTok's token does not expire: `refresh_unsupported`.
    pub async fn refresh(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Connection, ConnectionError> {
        let (state, ws, wanted) = (Arc::clone(&self.state), workspace.clone(), id.to_string());
        let connection = store_call(move || state.get_connection(&ws, &wanted)).await?;
        self.renew(connection).await
    }

    /// Renews `connection` as read. When it changed meanwhile (another renewal, a
    /// reconnection), the renewal's tokens are dropped and the connection is answered as it
    /// now is.
    async fn renew(&self, connection: Connection) -> Result<Connection, ConnectionError> {
        let provider = provider_of(&connection)?;
        if connection.status == ConnectionStatus::Disconnected {
            return Err(ConnectionError::Disconnected(connection.id));
        }
        let workspace = connection.workspace_id.clone();
        let tokens = open_tokens(&self.vault, &connection)?;
        let app = self.app(&workspace, provider).await?;
        let endpoints = self.settings.endpoints(provider);
        let renewed = async {
            let request = refresh_request(endpoints, &app.client, &tokens)?;
            let answer = self.send(provider, request).await?;
            Ok::<_, ConnectionError>(
                parse_refresh(provider, &answer, self.now())?.keep_missing(&tokens),
            )
        }
        .await;
        let renewed = match renewed {
            Ok(renewed) => renewed,
            Err(ConnectionError::OAuth(error)) if error.needs_reconnect() => {
                tracing::warn!(
                    workspace = %workspace,
                    connection = %connection.id,
                    %provider,
                    code = error.code(),
                    %error,
                    "the provider refused to renew a connection's token: it needs reauthorization"
                );
                let message = format!("renewing the token failed: {error}");
                self.mark(&connection, &message).await?;
                return Err(error.into());
            }
            Err(error) => return Err(error),
        };
        let stored_tokens = RenewedTokens {
            sealed: seal_tokens(
                &self.vault,
                &workspace,
                &connection.id,
                &renewed,
                appsecret_proof(provider, &app, &renewed)
                    .as_deref()
                    .map(String::as_str),
            )?,
            access_expires_at_ms: renewed.expires_at.map(ms_of_time),
            scopes: renewed.scopes.clone(),
            at_ms: self.clock.now_ms(),
        };
        let (state, id, version) = (
            Arc::clone(&self.state),
            connection.id.clone(),
            connection.version,
        );
        let ws = workspace.clone();
        let stored = store_call(move || {
            match state.renew_connection(&ws, &id, version, &stored_tokens)? {
                Some(renewed) => Ok(renewed),
                None => state.get_connection(&ws, &id),
            }
        })
        .await?;
        if stored.version > connection.version {
            tracing::info!(workspace = %workspace, connection = %stored.id, %provider, "token renewed");
            self.connection_changed();
        }
        Ok(stored)
    }

    /// Marks the connection (as read) `needs_reauthorization` with `message`, unless it
    /// changed since.
    async fn mark(&self, connection: &Connection, message: &str) -> Result<(), ConnectionError> {
        let (state, ws, id, version, message) = (
            Arc::clone(&self.state),
            connection.workspace_id.clone(),
            connection.id.clone(),
            connection.version,
            message.to_string(),
        );
        let marked = store_call(move || {
            state.mark_connection(
                &ws,
                &id,
                Some(version),
                ConnectionStatus::NeedsReauthorization,
                Some(&message),
            )
        })
        .await?;
        if marked.is_some() {
            self.connection_changed();
        }
        Ok(())
    }

    /// The background work, until `stopping` turns true: every `refresh_interval`, tokens
    /// about to expire are renewed; every second, destinations paused because a platform
    /// refused their connection's token are dealt with.
    pub async fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        let mut renewals = tokio::time::interval(self.settings.refresh_interval);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut pauses = tokio::time::interval(PAUSES_EVERY);
        pauses.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if *stopping.borrow() {
                return;
            }
            tokio::select! {
                _ = renewals.tick() => {
                    self.renew_due().await;
                    self.passes.send_modify(|passes| *passes += 1);
                }
                _ = pauses.tick() => self.follow_refusals().await,
                _ = stopping.changed() => return,
            }
        }
    }

    /// Renews every active connection whose token expires within its provider's margin. A
    /// token that expired without being renewed makes its connection need reauthorization.
    async fn renew_due(&self) {
        let now_ms = self.clock.now_ms();
        let horizon = now_ms.saturating_add(millis(self.settings.longest_margin()));
        let state = Arc::clone(&self.state);
        let due = match store_call(move || state.connections_to_renew(horizon)).await {
            Ok(due) => due,
            Err(error) => {
                tracing::error!(%error, "reading the connections to renew failed");
                return;
            }
        };
        for connection in due {
            let (Ok(provider), Some(expires)) =
                (provider_of(&connection), connection.access_expires_at_ms)
            else {
                continue;
            };
            if expires.saturating_sub(now_ms) > millis(self.settings.margin(provider)) {
                continue;
            }
            let failure = match self.renew(connection.clone()).await {
                Ok(_) => continue,
                // Already marked.
                Err(ConnectionError::OAuth(error)) if error.needs_reconnect() => continue,
                Err(error) => error,
            };
            if now_ms >= expires {
                tracing::warn!(
                    workspace = %connection.workspace_id,
                    connection = %connection.id,
                    %provider,
                    error = %failure,
                    "a connection's token expired and could not be renewed: it needs reauthorization"
                );
                let message =
                    format!("the access token expired and could not be renewed: {failure}");
                if let Err(error) = self.mark(&connection, &message).await {
                    tracing::error!(%error, "marking a connection failed");
                }
            } else {
                tracing::warn!(
                    workspace = %connection.workspace_id,
                    connection = %connection.id,
                    %provider,
                    error = %failure,
                    "renewing a connection's token failed; trying again later"
                );
            }
        }
    }

    /// Destinations paused because the platform refused their connection's token: the
    /// connection is renewed once where the provider can renew (a token that merely expired
    /// comes back to life, and the destination restarts with it); otherwise, or when the
    /// renewed token is refused too, the connection needs reauthorization and says why.
    async fn follow_refusals(&self) {
        for paused in self.deliveries.paused_connections().await {
            let first = self
                .pauses_seen
                .lock()
                .map(|mut seen| seen.insert((paused.destination.clone(), paused.version)))
                .unwrap_or(false);
            if !first {
                continue;
            }
            let (state, ws, id) = (
                Arc::clone(&self.state),
                paused.workspace.clone(),
                paused.connection.clone(),
            );
            let Ok(connection) = store_call(move || state.get_connection(&ws, &id)).await else {
                continue;
            };
            if connection.version != paused.version || connection.status != ConnectionStatus::Active
            {
                // Changed since the destination started: it restarts with the change.
                continue;
            }
            let Ok(provider) = provider_of(&connection) else {
                continue;
            };
            let renewed_before = self
                .renewed_after_refusal
                .lock()
                .map(|seen| seen.contains(&(connection.id.clone(), connection.version)))
                .unwrap_or(true);
            if provider.renewal() != Renewal::None && !renewed_before {
                match self.renew(connection.clone()).await {
                    Ok(renewed) => {
                        tracing::info!(
                            connection = %renewed.id,
                            destination = %paused.destination,
                            "the platform refused a connection's token: renewed it once"
                        );
                        if let Ok(mut seen) = self.renewed_after_refusal.lock() {
                            seen.insert((renewed.id.clone(), renewed.version));
                        }
                        continue;
                    }
                    Err(ConnectionError::OAuth(error)) if error.needs_reconnect() => continue,
                    Err(error) => {
                        tracing::warn!(connection = %connection.id, %error, "renewing a refused token failed");
                    }
                }
            }
            tracing::warn!(
                workspace = %connection.workspace_id,
                connection = %connection.id,
                destination = %paused.destination,
                %provider,
                reason = %paused.reason,
                "the platform refused a connection's token: it needs reauthorization"
            );
            let message = refusal_message(provider, &paused.destination, &paused.reason);
            if let Err(error) = self.mark(&connection, &message).await {
                tracing::error!(%error, "marking a connection failed");
            }
        }
    }
}

/// Why a connection needs reauthorization after a platform refused its token.
fn refusal_message(provider: Provider, destination: &str, reason: &str) -> String {
    format!(
        "{provider} refused the access token while delivering to destination {destination}: {reason}"
    )
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_message_names_the_destination_and_reason() {
        assert_eq!(
            refusal_message(
                Provider::Meta,
                "d-1",
                "meta error 190/460: the access token is invalid"
            ),
            "meta refused the access token while delivering to destination d-1: meta error 190/460: the access token is invalid"
        );
    }
}
