//! Keeps the delivery engine in step with the destinations in the state store: every enabled
//! destination runs with its current settings, sources (its own, and the output sources of
//! the audience and computed-trait syncs feeding it) and filters; disabled and deleted ones
//! stop.
//!
//! [`Deliveries::reconcile`] compares the store with what runs and starts, restarts or stops
//! runners. It runs at startup, after every change made through the admin API, and every few
//! seconds (so changes made with the CLI while the node runs are picked up too).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
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
    /// Running destination id → the version it was started with (its `updated_at` and its
    /// workspace's privacy settings' `updated_at`).
    running: Mutex<HashMap<String, String>>,
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
        }
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
                found.push((destination, filters, syncs, settings, saved_at, hash_key));
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
        for (destination, filters, syncs, privacy, privacy_saved_at, hash_key) in destinations {
            let id = destination.id.0.clone();
            let sync_ids: Vec<&str> = syncs.iter().map(|sync| sync.id.as_str()).collect();
            let version = format!(
                "{}|{}|{}",
                destination.updated_at,
                privacy_saved_at.unwrap_or_default(),
                sync_ids.join(",")
            );
            wanted.insert(id.clone(), version.clone());
            if running.get(&id) == Some(&version) {
                continue;
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
            match spec_for(&destination, &filters, &syncs, consent, pii, &self.vault) {
                Ok(spec) => {
                    tracing::info!(destination = %id, kind = %destination.kind, "delivering");
                    self.engine.upsert(spec).await;
                    running.insert(id, version);
                }
                Err(error) => {
                    // Not retried until the destination changes: the settings are what they are.
                    tracing::error!(destination = %id, %error, "destination cannot run");
                    self.engine.remove(&id).await;
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

/// What the engine needs for one destination: settings opened, adapter built, filters parsed.
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

fn spec_for(
    destination: &Destination,
    filters: &[Value],
    syncs: &[AudienceSync],
    consent: Consent,
    pii: Option<PiiDelivery>,
    vault: &Vault,
) -> Result<DestinationSpec, String> {
    let settings = open_settings(vault, destination).map_err(|e| e.to_string())?;
    let kind = sluice_destinations::find(&destination.kind).map_err(|e| e.to_string())?;
    let adapter = (kind.build)(&settings).map_err(|e| e.to_string())?;
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
