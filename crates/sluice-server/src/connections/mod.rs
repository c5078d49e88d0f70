//! OAuth connections to ad accounts (Google, Meta, TikTok): the flows of `sluice-oauth`
//! wired to the vault, the state store, a real HTTP client and the delivery engine.
//!
//! - `flow.rs`: connecting — the authorization URL with a pending authorization sealed and
//!   stored under the hash of its state, then the callback: the state checked (in constant
//!   time, by `sluice-oauth`), the code exchanged (and Meta's long-lived exchange), the
//!   tokens sealed and stored.
//! - `renew.rs`: renewal on request and in the background (Google's refresh token, Meta's
//!   re-exchange; TikTok's token does not expire), and what happens when a platform refuses a
//!   connection's token while delivering: one renewal where the platform has one, else the
//!   connection needs reauthorization.
//! - `disconnect.rs`: revocation, the tokens deleted, the destinations using the connection
//!   disabled and what Sluice held for them purged ([`Connections::purge_connection_data`]).
//! - `tokens.rs`: the tokens sealed and opened.
//! - `settings.rs`: the configuration, checked at startup.
//!
//! A destination of an ad-platform type names a connection with `"connection_id"` in its
//! settings instead of an `access_token`; [`resolve_connection`] puts the connection's current
//! access token in its place whenever an adapter is built, so adapters never see connection
//! ids. A Meta connection also gives its `appsecret_proof`, made with the connected app's
//! secret when the token was sealed, unless the settings give an `app_secret` of their own. Requests to providers go through the delivery engine's HTTP client, with a time limit.
//! No token, code, verifier or client secret is logged or answered.
//!
//! Time is the node's [`Clock`], which moves with tokio's: tests let tokens and states expire
//! with paused time.

mod disconnect;
mod flow;
mod renew;
pub mod settings;
mod tokens;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};
use sluice_delivery::http::Client;
use sluice_oauth::{HttpRequest, HttpResponse, OAuthError, Provider};
use sluice_privacy::{Vault, VaultError};
use sluice_store::{ConnectionStatus, EventLog, StateStore, StoreError, WorkspaceId};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::delivery::Deliveries;
use crate::store_call;

pub use disconnect::{Disconnected, Purged};
pub use flow::Started;
pub use settings::{CALLBACK_PATH, OAuthConfigError, OAuthSettings};

/// The setting that names an OAuth connection in a destination's settings, in place of
/// `access_token`.
pub const CONNECTION_SETTING: &str = "connection_id";

/// The setting a connection's access token is given to the adapter as.
pub const ACCESS_TOKEN_SETTING: &str = "access_token";

/// A Meta destination's own app secret, which its settings may give.
const META_APP_SECRET_SETTING: &str = "app_secret";

/// The setting that carries a Meta connection's `appsecret_proof` to the adapter, in place of
/// the app secret.
const META_PROOF_SETTING: &str = "appsecret_proof";

/// The provider whose connections a destination type takes, if it takes any.
pub fn provider_for_kind(kind: &str) -> Option<Provider> {
    match kind {
        "meta_audiences" => Some(Provider::Meta),
        "google_audiences" => Some(Provider::Google),
        "tiktok_audiences" => Some(Provider::TikTok),
        _ => None,
    }
}

/// Why a connection could not be made, renewed, used or disconnected. Messages carry the
/// provider's error code and a scrubbed description, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("unknown provider {0:?}: use google, meta or tiktok")]
    UnknownProvider(String),
    #[error("{provider} is not configured for this workspace: {reason}")]
    NotConfigured { provider: Provider, reason: String },
    #[error("{provider} says the authorization was refused ({detail})")]
    Denied { provider: Provider, detail: String },
    #[error("the callback is malformed: {0}")]
    BadCallback(String),
    #[error(transparent)]
    OAuth(#[from] OAuthError),
    #[error("{provider} could not be reached: {reason}")]
    Unreachable { provider: Provider, reason: String },
    #[error("connection {0} is disconnected: connect it again")]
    Disconnected(String),
    /// A destination names a connection it cannot use.
    #[error("connection {id} {reason}")]
    Unusable { id: String, reason: String },
    #[error("random number generator failed: {0}")]
    Random(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// The OAuth side of a node. See the module documentation.
pub struct Connections {
    state: Arc<StateStore>,
    vault: Arc<Vault>,
    settings: Arc<OAuthSettings>,
    /// `None` when no client could be built: every provider is then unreachable.
    client: Option<Client>,
    clock: Clock,
    deliveries: Arc<Deliveries>,
    log: Arc<dyn EventLog>,
    /// Refused-token pauses already dealt with: (destination, connection version).
    pauses_seen: Mutex<HashSet<(String, i64)>>,
    /// Connection versions made by a renewal after a platform refused the token: a refusal
    /// of such a version is not answered with another renewal.
    renewed_after_refusal: Mutex<HashSet<(String, i64)>>,
    /// How many background renewal passes have finished (tests wait on it).
    passes: watch::Sender<u64>,
}

impl Connections {
    pub fn new(
        state: Arc<StateStore>,
        vault: Arc<Vault>,
        settings: OAuthSettings,
        deliveries: Arc<Deliveries>,
        log: Arc<dyn EventLog>,
    ) -> Connections {
        let client = match Client::new(settings.request_timeout) {
            Ok(client) => Some(client),
            Err(error) => {
                tracing::error!(%error, "no http client for oauth providers");
                None
            }
        };
        Connections {
            state,
            vault,
            settings: Arc::new(settings),
            client,
            clock: Clock::start(),
            deliveries,
            log,
            pauses_seen: Mutex::new(HashSet::new()),
            renewed_after_refusal: Mutex::new(HashSet::new()),
            passes: watch::channel(0).0,
        }
    }

    pub fn settings(&self) -> &OAuthSettings {
        &self.settings
    }

    /// The clock tokens and states expire by.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Counts the background renewal passes that finished.
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    fn now(&self) -> OffsetDateTime {
        tokens::time_of_ms(self.clock.now_ms()).unwrap_or_else(OffsetDateTime::now_utc)
    }

    /// The workspace's app at `provider`, or `provider_not_configured`.
    async fn app(
        &self,
        workspace: &WorkspaceId,
        provider: Provider,
    ) -> Result<settings::App, ConnectionError> {
        let (state, settings, ws) = (
            Arc::clone(&self.state),
            Arc::clone(&self.settings),
            workspace.clone(),
        );
        store_call(move || settings.app(&state, &ws, provider))
            .await?
            .ok_or_else(|| ConnectionError::NotConfigured {
                provider,
                reason: format!(
                    "no {provider} app is configured for it (oauth.workspaces.<workspace>.{provider})"
                ),
            })
    }

    /// Sends a request to a provider (no redirects followed, a time limit, the answer read up
    /// to a bounded size). Transport errors never carry the URL, which may hold a secret.
    async fn send(
        &self,
        provider: Provider,
        request: HttpRequest,
    ) -> Result<HttpResponse, ConnectionError> {
        let Some(client) = &self.client else {
            return Err(ConnectionError::Unreachable {
                provider,
                reason: "no http client".into(),
            });
        };
        client
            .send(request, self.settings.request_timeout)
            .await
            .map_err(|error| ConnectionError::Unreachable {
                provider,
                reason: error.to_string(),
            })
    }

    /// Lets the delivery engine catch up at once with a connection that changed (its
    /// destinations restart with the new token, or stop).
    fn connection_changed(&self) {
        let deliveries = Arc::clone(&self.deliveries);
        tokio::spawn(async move { deliveries.reconcile().await });
    }
}

/// 32 bytes from the operating system's secure generator.
fn random32() -> Result<[u8; 32], ConnectionError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|error| ConnectionError::Random(error.to_string()))?;
    Ok(bytes)
}

/// The provider of a stored connection.
fn provider_of(connection: &sluice_store::Connection) -> Result<Provider, ConnectionError> {
    Provider::parse(&connection.provider)
        .ok_or_else(|| ConnectionError::UnknownProvider(connection.provider.clone()))
}

/// A destination's settings with the connection they name (`connection_id`) replaced by that
/// connection's current access token (`access_token`) and, for Meta, its `appsecret_proof`,
/// for a destination of type `kind` in `workspace`; settings that name no connection come back
/// as they are. Refused
/// (`Unusable`) when the type takes no connection, when `access_token` is given too, or when
/// the connection is missing from the workspace, is for another provider, or is not active.
/// The answer holds a credential: never log it.
pub fn resolve_connection(
    state: &StateStore,
    vault: &Vault,
    workspace: &WorkspaceId,
    kind: &str,
    settings: Map<String, Value>,
) -> Result<Map<String, Value>, ConnectionError> {
    resolve_connection_with(vault, workspace, kind, settings, |workspace, id| {
        state.get_connection(workspace, id)
    })
}

/// [`resolve_connection`] with the connection read by `find` (for callers already inside a
/// state transaction, which read the workspace's connections before it).
pub fn resolve_connection_with(
    vault: &Vault,
    workspace: &WorkspaceId,
    kind: &str,
    mut settings: Map<String, Value>,
    find: impl FnOnce(&WorkspaceId, &str) -> Result<sluice_store::Connection, StoreError>,
) -> Result<Map<String, Value>, ConnectionError> {
    let Some(named) = settings.remove(CONNECTION_SETTING) else {
        return Ok(settings);
    };
    let unusable = |id: &str, reason: String| ConnectionError::Unusable {
        id: id.to_string(),
        reason,
    };
    let Some(id) = named.as_str().filter(|id| !id.is_empty()) else {
        return Err(unusable(
            &named.to_string(),
            "is not a connection id: connection_id must be a string".into(),
        ));
    };
    let Some(provider) = provider_for_kind(kind) else {
        return Err(unusable(
            id,
            format!(
                "cannot be used by a {kind} destination: only meta_audiences, google_audiences \
                 and tiktok_audiences take oauth connections"
            ),
        ));
    };
    if settings.contains_key(ACCESS_TOKEN_SETTING) {
        return Err(unusable(
            id,
            "is named together with an access_token: give one or the other".into(),
        ));
    }
    let connection = match find(workspace, id) {
        Ok(connection) => connection,
        Err(StoreError::NotFound { .. }) => {
            return Err(unusable(id, "does not exist in this workspace".into()));
        }
        Err(error) => return Err(error.into()),
    };
    if connection.provider != provider.name() {
        return Err(unusable(
            id,
            format!(
                "is a {} connection; a {kind} destination needs a {provider} connection",
                connection.provider
            ),
        ));
    }
    match connection.status {
        ConnectionStatus::Active => {}
        ConnectionStatus::NeedsReauthorization => {
            let why = connection
                .status_message
                .as_deref()
                .unwrap_or("no reason given");
            return Err(unusable(
                id,
                format!("needs reauthorization ({why}): connect it again"),
            ));
        }
        ConnectionStatus::Disconnected => {
            return Err(unusable(id, "is disconnected: connect it again".into()));
        }
    }
    let (tokens, proof) = tokens::open_sealed(vault, &connection)?;
    settings.insert(
        ACCESS_TOKEN_SETTING.into(),
        Value::String(tokens.access.expose().to_string()),
    );
    // A Meta connection's proof was made with the app the token was issued to; settings that
    // give an app secret of their own keep it instead.
    if let Some(proof) = proof
        && !settings.contains_key(META_APP_SECRET_SETTING)
    {
        settings.insert(
            META_PROOF_SETTING.into(),
            Value::String(proof.expose().to_string()),
        );
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_ad_platform_types_take_connections() {
        assert_eq!(provider_for_kind("meta_audiences"), Some(Provider::Meta));
        assert_eq!(
            provider_for_kind("google_audiences"),
            Some(Provider::Google)
        );
        assert_eq!(
            provider_for_kind("tiktok_audiences"),
            Some(Provider::TikTok)
        );
        assert_eq!(provider_for_kind("webhook"), None);
    }

    #[test]
    fn messages_are_lowercase_without_a_period() {
        let errors = [
            ConnectionError::UnknownProvider("x".into()),
            ConnectionError::NotConfigured {
                provider: Provider::Meta,
                reason: "no app".into(),
            },
            ConnectionError::Denied {
                provider: Provider::Google,
                detail: "access_denied".into(),
            },
            ConnectionError::Unreachable {
                provider: Provider::TikTok,
                reason: "timed out".into(),
            },
            ConnectionError::Disconnected("conn_1".into()),
            ConnectionError::Unusable {
                id: "conn_1".into(),
                reason: "is disconnected".into(),
            },
        ];
        for error in errors {
            let message = error.to_string();
            assert!(!message.ends_with('.'), "{message}");
            assert!(!message.starts_with(char::is_uppercase), "{message}");
        }
    }
}
