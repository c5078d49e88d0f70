//! Disconnecting: the destinations using the connection are disabled (their runners stop),
//! the token is revoked at the provider where it allows (the answer is kept; a failed
//! revocation still disconnects), the sealed tokens are deleted, and what Sluice held for
//! those destinations is purged.

use std::sync::Arc;

use sluice_delivery::consumer_name;
use sluice_oauth::{OAuthError, parse_revoke, revoke_request};
use sluice_store::{
    Connection, ConnectionStatus, DestinationChange, DestinationId, StoreError, WorkspaceId,
};

use super::tokens::open_tokens;
use super::{ConnectionError, Connections, provider_of};
use crate::store_call;

/// What a disconnection did.
#[derive(Debug, Clone)]
pub struct Disconnected {
    pub connection: Connection,
    /// The destinations that used the connection, disabled now.
    pub destinations: Vec<String>,
    pub purged: Purged,
}

/// What [`Connections::purge_connection_data`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Destinations whose dead letters, replays and delivery ledger were deleted.
    pub destinations: u64,
    /// Log cursors forgotten.
    pub cursors: u64,
    /// Audience and computed-trait syncs deleted with their generated events.
    pub syncs: u64,
    /// Generated events of those syncs erased from the log.
    pub sync_events: u64,
}

/// The status message of a connection an admin disconnected.
const DISCONNECTED_BY_ADMIN: &str = "disconnected by an admin";

impl Connections {
    /// Disconnects a connection of `workspace`. Disconnecting one already disconnected
    /// changes nothing and answers it as it is.
    pub async fn disconnect(
        &self,
        workspace: &WorkspaceId,
        id: &str,
    ) -> Result<Disconnected, ConnectionError> {
        let (state, ws, wanted) = (Arc::clone(&self.state), workspace.clone(), id.to_string());
        let (connection, using) = store_call(move || {
            let connection = state.get_connection(&ws, &wanted)?;
            let using = state.destinations_using_connection(&ws, &wanted)?;
            Ok((connection, using))
        })
        .await?;
        let destinations: Vec<String> = using.iter().map(|d| d.id.0.clone()).collect();
        if connection.status == ConnectionStatus::Disconnected {
            return Ok(Disconnected {
                connection,
                destinations,
                purged: Purged::default(),
            });
        }

        // First the destinations stop, so nothing is sent with a token being revoked.
        let (state, ws) = (Arc::clone(&self.state), workspace.clone());
        let enabled: Vec<String> = using
            .iter()
            .filter(|d| d.enabled)
            .map(|d| d.id.0.clone())
            .collect();
        store_call(move || {
            for id in &enabled {
                state.update_destination(&ws, id, |_| {
                    Ok::<_, StoreError>(DestinationChange {
                        enabled: Some(false),
                        ..DestinationChange::default()
                    })
                })?;
            }
            Ok(())
        })
        .await?;
        self.deliveries.reconcile().await;

        let revocation = self.revoke(&connection).await;
        let (state, ws, wanted) = (Arc::clone(&self.state), workspace.clone(), id.to_string());
        let record = revocation.clone();
        let connection = store_call(move || {
            state.disconnect_connection(&ws, &wanted, DISCONNECTED_BY_ADMIN, &record)
        })
        .await?;
        let ids: Vec<DestinationId> = destinations.iter().cloned().map(DestinationId).collect();
        let purged = self.purge_connection_data(workspace, &ids).await?;
        tracing::info!(
            workspace = %workspace,
            connection = %id,
            provider = %connection.provider,
            %revocation,
            destinations = destinations.len(),
            "connection disconnected"
        );
        self.connection_changed();
        Ok(Disconnected {
            connection,
            destinations,
            purged,
        })
    }

    /// Revokes the connection's token at its provider: what the provider answered, in
    /// words (`revoked`, `already revoked or expired: …`, `failed: …`, `not revoked: …`).
    async fn revoke(&self, connection: &Connection) -> String {
        let provider = match provider_of(connection) {
            Ok(provider) => provider,
            Err(error) => return format!("not revoked: {error}"),
        };
        let tokens = match open_tokens(&self.vault, connection) {
            Ok(tokens) => tokens,
            Err(error) => return format!("not revoked: {error}"),
        };
        let app = match self.app(&connection.workspace_id, provider).await {
            Ok(app) => app,
            Err(error) => return format!("not revoked: {error}"),
        };
        let request = revoke_request(self.settings.endpoints(provider), &app.client, &tokens);
        let outcome = match self.send(provider, request).await {
            Ok(answer) => parse_revoke(provider, &answer).map_err(ConnectionError::from),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => "revoked".to_string(),
            Err(ConnectionError::OAuth(
                error @ (OAuthError::TokenRevoked { .. } | OAuthError::TokenExpired { .. }),
            )) => {
                format!("already revoked or expired: {error}")
            }
            Err(error) => {
                tracing::warn!(connection = %connection.id, %provider, %error, "revoking a token failed; disconnecting anyway");
                format!("failed: {error}")
            }
        }
    }

    /// Deletes what Sluice holds for destinations whose connection went away: their dead
    /// letters, replay jobs and delivery ledger (`delivery.db`), their cursors in the log (a
    /// destination enabled again starts from the oldest event the log keeps), and the
    /// audience syncs feeding them with the events generated for them (the syncs' progress
    /// goes at the audience consumer's next pass).
    pub async fn purge_connection_data(
        &self,
        workspace: &WorkspaceId,
        destinations: &[DestinationId],
    ) -> Result<Purged, StoreError> {
        let mut purged = Purged::default();
        for destination in destinations {
            let (store, ws, id) = (
                Arc::clone(&self.deliveries.store),
                workspace.clone(),
                destination.0.clone(),
            );
            store_call(move || store.forget_destination(&ws, &id)).await?;
            purged.destinations += 1;
            let (state, ws, id) = (
                Arc::clone(&self.state),
                workspace.clone(),
                destination.0.clone(),
            );
            let syncs = store_call(move || {
                let syncs = state.destination_syncs(&ws, &id)?;
                for sync in &syncs {
                    state.delete_sync(&ws, &sync.id)?;
                }
                Ok(syncs)
            })
            .await?;
            for sync in &syncs {
                purged.syncs += 1;
                purged.sync_events +=
                    crate::audiences::purge_output(self.log.as_ref(), workspace, sync).await?;
            }
            purged.cursors += self
                .log
                .forget_consumer(workspace, &consumer_name(&destination.0))
                .await?;
        }
        Ok(purged)
    }
}
