//! Keeps the delivery engine in step with the destinations in the state store: every enabled
//! destination runs with its current settings, sources (its own, and the output sources of
//! the audience and computed-trait syncs feeding it) and filters; disabled and deleted ones
//! stop.
//!
//! [`Deliveries::reconcile`] compares the store with what runs and starts, restarts or stops
//! runners. It runs at startup, after every change made through the admin API, and every few
//! seconds (so changes made with the CLI while the node runs are picked up too).
//!
//! A destination that uses an OAuth connection runs with the connection's current access
//! token, and the connection's version is part of the destination's version: a renewed or
//! reconnected token restarts it. While its connection cannot be used (needs
//! reauthorization, disconnected, missing) it is held — not run — and [`Deliveries::held`]
//! says why. [`Deliveries::paused_connections`] names the running ones a platform refused the
//! token of, for the connections' side to act on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sluice_delivery::{Consent, DestinationSpec, Engine, OptedOut, Options, PiiDelivery};
use sluice_fql::DestinationFilter;
use sluice_privacy::consent::DestinationConsent;
use sluice_privacy::keyed::hmac_sha256;
use sluice_privacy::{PrivacySettings, Vault};
use sluice_store::{
    AudienceSync, DeliveryStore, Destination, NewEvent, StateStore, SyncMode, WorkspaceId,
};
use tokio::sync::Mutex;

use crate::admin::destinations::open_settings;
use crate::connections::{CONNECTION_SETTING, ConnectionError};
use crate::privacy::lists::Lists;

/// A workspace's privacy settings, when they were saved, and its key for PII hashes.
type WorkspacePrivacy = (PrivacySettings, Option<String>, Arc<[u8]>);

/// How often the store is compared with what runs.
const RECONCILE_INTERVAL: Duration = Duration::from_secs(5);

/// The engine and what it was last given.
pub struct Deliveries {
    pub engine: Engine,
    pub store: Arc<DeliveryStore>,
    state: Arc<StateStore>,
    vault: Arc<Vault>,
    /// People who opted out of sale and sharing (read by advertising destinations).
    pub do_not_sell: Arc<Lists>,
    /// Running destination id → the version it was started with (its `updated_at`, its
    /// workspace's privacy settings' `updated_at`, and its connection's version).
    running: Mutex<HashMap<String, String>>,
    /// Destinations not run because their settings cannot be opened (their connection
    /// cannot be used), with why.
    held: std::sync::Mutex<HashMap<String, String>>,
    /// Running destinations that use an OAuth connection, and which version of it.
    uses: std::sync::Mutex<HashMap<String, ConnectionUse>>,
}

/// The OAuth connection a running destination was started with.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ConnectionUse {
    workspace: WorkspaceId,
    connection: String,
    version: i64,
}

/// A running destination paused because its platform refused its connection's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PausedUse {
    pub workspace: WorkspaceId,
    pub destination: String,
    pub connection: String,
    /// The connection's version the destination runs with.
    pub version: i64,
    /// What the platform said (the adapter's reading, no credential).
    pub reason: String,
}

/// What reconcile learnt about one enabled destination, read off the async threads.
struct Found {
    destination: Destination,
    filters: Vec<Value>,
    /// The syncs feeding it (their output sources are read too).
    syncs: Vec<AudienceSync>,
    privacy: PrivacySettings,
    privacy_saved_at: Option<String>,
    hash_key: Arc<[u8]>,
    /// The connection it names, and that connection's version if it exists.
    connection: Option<(String, Option<i64>)>,
}

impl Deliveries {
    pub fn new(
        engine: Engine,
        store: Arc<DeliveryStore>,
        state: Arc<StateStore>,
        vault: Arc<Vault>,
        do_not_sell: Arc<Lists>,
    ) -> Deliveries {
        Deliveries {
            engine,
            store,
            state,
            vault,
            do_not_sell,
            running: Mutex::new(HashMap::new()),
            held: std::sync::Mutex::new(HashMap::new()),
            uses: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Why an enabled destination is not running, when reconcile held it back (its
    /// connection cannot be used, or its settings cannot be opened).
    pub fn held(&self, destination: &str) -> Option<String> {
        self.held
            .lock()
            .ok()
            .and_then(|held| held.get(destination).cloned())
    }

    /// The version of its OAuth connection that a running destination holds the token of, if
    /// it runs with one.
    pub fn connection_version_in_use(&self, destination: &str) -> Option<i64> {
        self.uses
            .lock()
            .ok()
            .and_then(|uses| uses.get(destination).map(|using| using.version))
    }

    /// The running destinations that use an OAuth connection and are paused because the
    /// platform refused its token.
    pub async fn paused_connections(&self) -> Vec<PausedUse> {
        let uses: Vec<(String, ConnectionUse)> = match self.uses.lock() {
            Ok(uses) => uses.iter().map(|(id, u)| (id.clone(), u.clone())).collect(),
            Err(_) => return Vec::new(),
        };
        let mut paused = Vec::new();
        for (destination, using) in uses {
            let status = self.engine.status(&using.workspace, &destination).await;
            if let Some(reason) = status.and_then(|status| status.paused) {
                paused.push(PausedUse {
                    workspace: using.workspace,
                    destination,
                    connection: using.connection,
                    version: using.version,
                    reason,
                });
            }
        }
        paused
    }

    /// Starts, restarts and stops runners so that they match the store.
    pub async fn reconcile(&self) {
        let state = Arc::clone(&self.state);
        let destinations = match tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            let mut privacy: HashMap<WorkspaceId, WorkspacePrivacy> = HashMap::new();
            for destination in state.all_enabled_destinations()? {
                let filters =
                    state.destination_filters(&destination.workspace_id, &destination.id.0)?;
                let syncs =
                    state.destination_syncs(&destination.workspace_id, &destination.id.0)?;
                let workspace = destination.workspace_id.clone();
                if !privacy.contains_key(&workspace) {
                    let (settings, saved_at) = state.privacy_settings(&workspace)?;
                    let hash_key = pii_hash_key(&state.digest_key(&workspace)?);
                    privacy.insert(workspace.clone(), (settings, saved_at, hash_key));
                }
                let (settings, saved_at, hash_key) = privacy[&workspace].clone();
                let connection = match destination
                    .settings
                    .plain
                    .get(CONNECTION_SETTING)
                    .and_then(Value::as_str)
                {
                    Some(id) => {
                        let version = state.get_connection(&workspace, id).ok().map(|c| c.version);
                        Some((id.to_string(), version))
                    }
                    None => None,
                };
                found.push(Found {
                    destination,
                    filters,
                    syncs,
                    privacy: settings,
                    privacy_saved_at: saved_at,
                    hash_key,
                    connection,
                });
            }
            Ok::<_, sluice_store::StoreError>(found)
        })
        .await
        {
            Ok(Ok(found)) => found,
            Ok(Err(error)) => {
                tracing::warn!(%error, "reading destinations failed");
                return;
            }
            Err(_) => return,
        };
        let mut running = self.running.lock().await;
        let mut wanted = HashMap::new();
        for found in destinations {
            let Found {
                destination,
                filters,
                syncs,
                privacy,
                privacy_saved_at,
                hash_key,
                connection,
            } = found;
            let id = destination.id.0.clone();
            let connection_version = match &connection {
                Some((connection, Some(version))) => format!("{connection}:{version}"),
                Some((connection, None)) => format!("{connection}:missing"),
                None => String::new(),
            };
            let sync_ids: Vec<&str> = syncs.iter().map(|sync| sync.id.as_str()).collect();
            let version = format!(
                "{}|{}|{connection_version}|{}",
                destination.updated_at,
                privacy_saved_at.unwrap_or_default(),
                sync_ids.join(",")
            );
            wanted.insert(id.clone(), version.clone());
            if running.get(&id) == Some(&version) {
                continue;
            }
            // Opened only for a destination that (re)starts: they hold credentials.
            let (state, vault, opening) = (
                Arc::clone(&self.state),
                Arc::clone(&self.vault),
                destination.clone(),
            );
            let opened =
                tokio::task::spawn_blocking(move || open_settings(&state, &vault, &opening))
                    .await
                    .unwrap_or_else(|_| {
                        Err(ConnectionError::Store(
                            sluice_store::StoreError::CommitFailed("a blocking task failed".into()),
                        ))
                    });
            let settings = match opened {
                Ok(settings) => settings,
                Err(error) => {
                    // Held until the destination or its connection changes.
                    if matches!(
                        error,
                        ConnectionError::Unusable { .. } | ConnectionError::Disconnected(_)
                    ) {
                        tracing::warn!(destination = %id, %error, "destination held: its oauth connection cannot be used");
                    } else {
                        tracing::error!(destination = %id, %error, "destination cannot run: its settings cannot be opened");
                    }
                    self.engine.remove(&id).await;
                    self.set_use(&id, None);
                    if let Ok(mut held) = self.held.lock() {
                        held.insert(id.clone(), error.to_string());
                    }
                    running.insert(id, version);
                    continue;
                }
            };
            if let Ok(mut held) = self.held.lock() {
                held.remove(&id);
            }
            let consent = Consent {
                destination: DestinationConsent {
                    categories: destination.consent_categories.clone(),
                    advertising: destination.advertising,
                },
                require_consent: privacy.require_consent,
                opted_out: Some(opted_out_checker(
                    Arc::clone(&self.do_not_sell),
                    destination.workspace_id.clone(),
                )),
            };
            let pii = privacy
                .pii
                .for_destination(&id)
                .map(|rules| PiiDelivery { rules, hash_key });
            match spec_for(&destination, &settings, &filters, &syncs, consent, pii) {
                Ok(spec) => {
                    tracing::info!(destination = %id, kind = %destination.kind, "delivering");
                    self.engine.upsert(spec).await;
                    let using = match connection {
                        Some((connection, Some(version))) => Some(ConnectionUse {
                            workspace: destination.workspace_id.clone(),
                            connection,
                            version,
                        }),
                        _ => None,
                    };
                    self.set_use(&id, using);
                    running.insert(id, version);
                }
                Err(error) => {
                    // Not retried until the destination changes: the settings are what they are.
                    tracing::error!(destination = %id, %error, "destination cannot run");
                    self.engine.remove(&id).await;
                    self.set_use(&id, None);
                    if let Ok(mut held) = self.held.lock() {
                        held.insert(id.clone(), format!("cannot run: {error}"));
                    }
                    running.insert(id, version);
                }
            }
        }
        let gone: Vec<String> = running
            .keys()
            .filter(|id| !wanted.contains_key(*id))
            .cloned()
            .collect();
        for id in gone {
            tracing::info!(destination = %id, "delivery stopped");
            self.engine.remove(&id).await;
            running.remove(&id);
            self.set_use(&id, None);
            if let Ok(mut held) = self.held.lock() {
                held.remove(&id);
            }
        }
    }

    /// Records which connection version a running destination uses (`None`: none).
    fn set_use(&self, destination: &str, using: Option<ConnectionUse>) {
        if let Ok(mut uses) = self.uses.lock() {
            match using {
                Some(using) => uses.insert(destination.to_string(), using),
                None => uses.remove(destination),
            };
        }
    }

    /// Reconciles every few seconds until `stopping` turns true.
    pub async fn keep_reconciling(
        self: Arc<Self>,
        mut stopping: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(RECONCILE_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => self.reconcile().await,
                _ = stopping.changed() => return,
            }
        }
    }
}

/// Whether an event's person is on the workspace's "do not sell" list, read at each call (the
/// list changes while destinations run).
fn opted_out_checker(lists: Arc<Lists>, workspace: WorkspaceId) -> OptedOut {
    Arc::new(move |event: &NewEvent| {
        lists
            .checker(&workspace)
            .is_some_and(|checker| checker.holds(event))
    })
}

/// The key of a workspace's keyed PII hashes, derived from its digest key so that a hash
/// sent to a tool cannot be compared with a suppression digest.
fn pii_hash_key(digest_key: &[u8]) -> Arc<[u8]> {
    Arc::from(hmac_sha256(digest_key, &[b"sluice-pii-hash"]).as_slice())
}

/// What the engine needs for one destination: adapter built from its opened settings,
/// filters parsed.
fn spec_for(
    destination: &Destination,
    settings: &Map<String, Value>,
    filters: &[Value],
    syncs: &[AudienceSync],
    consent: Consent,
    pii: Option<PiiDelivery>,
) -> Result<DestinationSpec, String> {
    let kind = sluice_destinations::find(&destination.kind).map_err(|e| e.to_string())?;
    let adapter = (kind.build)(settings).map_err(|e| e.to_string())?;
    let mut parsed = Vec::with_capacity(filters.len());
    for filter in filters {
        let filter: DestinationFilter =
            serde_json::from_value(filter.clone()).map_err(|e| format!("filter: {e}"))?;
        if filter.enabled() {
            parsed.push(filter);
        }
    }
    let filter: Option<sluice_delivery::EventFilter> = if parsed.is_empty() {
        None
    } else {
        let parsed = Arc::new(parsed);
        Some(Arc::new(move |event: Value| {
            sluice_fql::apply(&parsed, event)
        }))
    };
    let delivery = &destination.delivery;
    let mut sources = destination.sources.clone();
    let mut list_sources = Vec::new();
    for sync in syncs {
        sources.push(sync.source_id());
        if sync.mode == SyncMode::List {
            list_sources.push(sync.source_id());
        }
    }
    Ok(DestinationSpec {
        id: destination.id.0.clone(),
        workspace_id: destination.workspace_id.clone(),
        integration_name: kind.integration_name.to_owned(),
        sources,
        list_sources,
        adapter: Arc::from(adapter),
        filter,
        consent,
        pii,
        options: Options {
            max_in_flight: delivery.max_in_flight as usize,
            rate_limit: delivery.rate_limit_per_sec.map(f64::from),
            max_attempts: delivery.retry_max_attempts,
            max_age: Duration::from_secs(delivery.retry_max_age_secs),
            ..Options::default()
        },
    })
}
