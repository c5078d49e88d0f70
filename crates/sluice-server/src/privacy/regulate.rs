//! The regulation worker: takes each pending regulation and carries it out.
//!
//! 1. `RUNNING`; the subjects are opened from their sealed form.
//! 2. The profile consumer catches up with the log (bounded), then each subject is resolved
//!    through the identity graph to every identifier of its person.
//! 3. Suppressing types add the digests of every value; the tracking API refuses them from
//!    then on. `UNSUPPRESS` lifts the suppressions holding any subject.
//! 4. Deleting types erase, with the profile consumer held back: the log, the profiles and
//!    identity graph, the dead letters and the recent-attempts views. Each store cleans up
//!    after itself (SQLite stores: `secure_delete`, WAL checkpointed and truncated; the profile
//!    store: change log entries zeroed in place, a new snapshot).
//! 5. Forwarding types tell the destinations ([`super::forward`]).
//! 6. The report (rows per store, each destination's answer) is saved with the final status,
//!    and the subjects are erased from the regulation.
//!
//! A regulation left `RUNNING` by a stopped node runs again from the start at the next start:
//! every step is safe to repeat.

use std::collections::BTreeSet;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sluice_identity::Identifier;
use sluice_identity::identifier::{ANONYMOUS_ID, USER_ID};
use sluice_privacy::regulation::digest;
use sluice_privacy::{RegulationType, Status, SubjectDigest, SubjectType, Vault};
use sluice_store::{EventLog, PersonList, Regulation, StateStore, StoreError, WorkspaceId};
use tokio::sync::{Notify, watch};

use super::forward::{self, DestinationOutcome};
use super::gate::Gate;
use super::lists::Lists;
use crate::audiences::Audiences;
use crate::delivery::Deliveries;
use crate::profiles::Profiles;
use crate::store_call;

/// How often the worker looks for regulations made elsewhere (the CLI).
const POLL: Duration = Duration::from_secs(1);
/// How often the gate's policies are read again.
const GATE_RELOAD: Duration = Duration::from_secs(5);
/// The longest a deletion waits for the profile consumer to catch up before resolving.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Metric names.
pub const EVENTS_SUPPRESSED: &str = "sluice_events_suppressed_total";
pub const REGULATIONS: &str = "sluice_regulations_total";

/// The vault context a regulation's subjects are sealed under.
pub fn subjects_context<'a>(workspace: &'a WorkspaceId, id: &'a str) -> [&'a str; 3] {
    [workspace.0.as_str(), id, "regulation-subjects"]
}

/// Suppressions and the regulation worker. See the module documentation.
pub struct Privacy {
    /// People whose events the tracking API refuses.
    pub suppressed: Arc<Lists>,
    /// People who opted out of sale and sharing.
    pub do_not_sell: Arc<Lists>,
    /// Each workspace's policy before the log.
    pub gate: Gate,
    state: Arc<StateStore>,
    log: Arc<dyn EventLog>,
    profiles: Arc<Profiles>,
    audiences: Arc<Audiences>,
    deliveries: Arc<Deliveries>,
    vault: Arc<Vault>,
    pub data_dir: PathBuf,
    wake: Notify,
}

/// The log consumers whose stores hold personal data derived from the log.
pub struct Consumers {
    pub profiles: Arc<Profiles>,
    pub audiences: Arc<Audiences>,
}

/// Why a regulation could not be carried out in Sluice's own stores.
#[derive(Debug, thiserror::Error)]
enum RegulateError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("the subjects cannot be opened: {0}")]
    Vault(#[from] sluice_privacy::VaultError),
    #[error("the subjects of the regulation are missing")]
    NoSubjects,
}

impl Privacy {
    pub fn new(
        state: Arc<StateStore>,
        log: Arc<dyn EventLog>,
        consumers: Consumers,
        deliveries: Arc<Deliveries>,
        vault: Arc<Vault>,
        data_dir: PathBuf,
        suppressed: Arc<Lists>,
    ) -> Privacy {
        let Consumers {
            profiles,
            audiences,
        } = consumers;
        let do_not_sell = Arc::clone(&deliveries.do_not_sell);
        Privacy {
            suppressed,
            do_not_sell,
            gate: Gate::default(),
            state,
            log,
            profiles,
            audiences,
            deliveries,
            vault,
            data_dir,
            wake: Notify::new(),
        }
    }

    /// Records a regulation (subjects sealed) and wakes the worker.
    pub async fn submit(
        &self,
        workspace: &WorkspaceId,
        request: sluice_privacy::RegulationRequest,
    ) -> Result<Regulation, StoreError> {
        let state = Arc::clone(&self.state);
        let vault = Arc::clone(&self.vault);
        let ws = workspace.clone();
        let regulation = store_call(move || record(&state, &vault, &ws, &request)).await?;
        self.wake.notify_one();
        Ok(regulation)
    }

    /// Reads every workspace's gate policy again.
    pub async fn reload_gate(self: &Arc<Self>) -> Result<(), StoreError> {
        let privacy = Arc::clone(self);
        store_call(move || privacy.gate.reload(&privacy.state)).await
    }

    /// The children policy's sweep: asks for the suppression and deletion of every person
    /// whose profile's traits show an age under the threshold, in each workspace where the
    /// policy is on. Returns how many were asked for.
    pub async fn sweep_children(&self) -> Result<usize, StoreError> {
        let state = Arc::clone(&self.state);
        let settings = store_call(move || state.all_privacy_settings()).await?;
        let today = time::OffsetDateTime::now_utc().date();
        let mut asked = 0;
        for (workspace, settings) in settings {
            if !settings.children.enabled {
                continue;
            }
            let store = Arc::clone(&self.profiles.store);
            let (ws, minimum_age) = (workspace.clone(), settings.children.minimum_age);
            let children = store_call(move || store.children(&ws, minimum_age, today)).await?;
            for child in children {
                let subject = format!("{}:{}", child.kind, child.value);
                if !self.gate.first_report(&workspace, &subject) {
                    continue;
                }
                let request = sluice_privacy::RegulationRequest::new(
                    RegulationType::SuppressWithDelete,
                    SubjectType::Identifier,
                    &[subject.as_str()],
                );
                match request {
                    Ok(request) => {
                        self.submit(&workspace, request).await?;
                        asked += 1;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "children policy: a profile cannot be regulated")
                    }
                }
            }
        }
        if asked > 0 {
            tracing::info!(
                people = asked,
                "children policy: suppression and deletion requested"
            );
        }
        Ok(asked)
    }

    /// Carries out pending regulations until `stopping` turns true; reloads the gate's
    /// policies every few seconds (changes made with the CLI) and runs the children policy's
    /// sweep every `sweep_interval`.
    pub async fn run(
        self: Arc<Self>,
        mut stopping: watch::Receiver<bool>,
        sweep_interval: Duration,
    ) {
        let mut gate_loaded = Instant::now();
        let mut swept: Option<Instant> = None;
        loop {
            if *stopping.borrow() {
                return;
            }
            if gate_loaded.elapsed() >= GATE_RELOAD {
                gate_loaded = Instant::now();
                if let Err(error) = self.reload_gate().await {
                    tracing::error!(%error, "cannot read the privacy policies");
                }
            }
            if swept.is_none_or(|at| at.elapsed() >= sweep_interval) {
                swept = Some(Instant::now());
                if let Err(error) = self.sweep_children().await {
                    tracing::error!(%error, "children policy sweep failed");
                }
            }
            let state = Arc::clone(&self.state);
            match store_call(move || state.pending_regulations()).await {
                Ok(pending) => {
                    for regulation in pending {
                        if *stopping.borrow() {
                            return;
                        }
                        self.carry_out(&regulation).await;
                    }
                }
                Err(error) => tracing::error!(%error, "cannot read pending regulations"),
            }
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
                _ = stopping.changed() => return,
            }
        }
    }

    /// Runs one regulation to its final status.
    pub async fn carry_out(&self, regulation: &Regulation) {
        let started = Instant::now();
        let workspace = regulation.workspace_id.clone();
        let (status, report) = match self.regulate(regulation).await {
            Ok((status, mut report)) => {
                report["durationMs"] = json!(started.elapsed().as_millis() as u64);
                (status, report)
            }
            Err(error) => (
                Status::Failed,
                json!({"error": error.to_string(), "durationMs": started.elapsed().as_millis() as u64}),
            ),
        };
        let state = Arc::clone(&self.state);
        let id = regulation.id.clone();
        let saved = report.clone();
        let finished =
            store_call(move || state.finish_regulation(&workspace, &id, status, &saved)).await;
        metrics::counter!(REGULATIONS, "type" => regulation.regulation_type.as_str(), "status" => status.as_str())
            .increment(1);
        match finished {
            Ok(()) => tracing::info!(
                regulation = %regulation.id,
                kind = regulation.regulation_type.as_str(),
                status = status.as_str(),
                duration_ms = started.elapsed().as_millis() as u64,
                "regulation done"
            ),
            Err(error) => {
                tracing::error!(regulation = %regulation.id, %error, "cannot save a regulation's outcome")
            }
        }
    }

    async fn regulate(&self, regulation: &Regulation) -> Result<(Status, Value), RegulateError> {
        let workspace = regulation.workspace_id.clone();
        let state = Arc::clone(&self.state);
        let (ws, id) = (workspace.clone(), regulation.id.clone());
        let sealed = store_call(move || {
            state.start_regulation(&ws, &id)?;
            state.regulation_subjects(&ws, &id)
        })
        .await?
        .ok_or(RegulateError::NoSubjects)?;
        let opened = self
            .vault
            .open(&sealed, &subjects_context(&workspace, &regulation.id))?;
        let subjects: Vec<Identifier> =
            serde_json::from_slice(&opened).map_err(|_| RegulateError::NoSubjects)?;
        let kind = regulation.regulation_type;
        if kind == RegulationType::Unsuppress {
            let digests = self.digests(&workspace, &subjects).await?;
            let state = Arc::clone(&self.state);
            let ws = workspace.clone();
            let lifted =
                store_call(move || state.remove_from_list(&ws, PersonList::Suppressed, &digests))
                    .await?;
            self.reload(&self.suppressed).await?;
            return Ok((
                Status::Finished,
                json!({"subjects": subjects.len(), "unsuppressed": lifted}),
            ));
        }

        if kind.deletes() {
            self.profiles.catch_up(CATCH_UP).await?;
        }
        let identifiers = self.resolve(&workspace, &subjects).await?;
        let mut values: Vec<String> = Vec::new();
        for identifier in &identifiers {
            if !values.contains(&identifier.value) {
                values.push(identifier.value.clone());
            }
        }
        let mut report = json!({
            "subjects": subjects.len(),
            "identifiers": identifiers.len(),
        });

        if kind.suppresses() {
            let digests = self.digests(&workspace, &identifiers).await?;
            let state = Arc::clone(&self.state);
            let (ws, id) = (workspace.clone(), regulation.id.clone());
            let added =
                store_call(move || state.add_to_list(&ws, PersonList::Suppressed, &id, &digests))
                    .await?;
            self.reload(&self.suppressed).await?;
            report["suppressed"] = json!(added);
        }

        // Removals from ad-platform audiences are built while the person's memberships and
        // identifiers still exist, and sent with the other forwarded deletions.
        let removals = if kind.forwards() {
            let store = Arc::clone(&self.profiles.store);
            let (ws, ids) = (workspace.clone(), identifiers.clone());
            let person = store_call(move || store.find_person(&ws, &ids)).await?;
            self.audiences
                .removals(&workspace, person.profile_ids)
                .await?
        } else {
            HashMap::new()
        };
        if kind.deletes() {
            let stores = self.erase(&workspace, &identifiers, &values).await?;
            report["stores"] = Value::Array(
                stores
                    .into_iter()
                    .map(|(store, erased)| json!({"store": store, "erased": erased}))
                    .collect(),
            );
        }

        let mut status = Status::Finished;
        if kind.forwards() {
            let user_ids: Vec<String> = identifiers
                .iter()
                .filter(|id| id.kind == USER_ID || id.kind == ANONYMOUS_ID)
                .map(|id| id.value.clone())
                .collect();
            let outcomes = forward::forward(
                &self.state,
                &self.vault,
                &workspace,
                &user_ids,
                &removals,
                &values,
            )
            .await?;
            if outcomes.iter().any(|o| o.status == Status::Failed) {
                status = Status::PartialSuccess;
            }
            report["destinations"] =
                Value::Array(outcomes.iter().map(DestinationOutcome::to_json).collect());
        }
        Ok((status, report))
    }

    /// Puts the people holding any subject (every identifier the graph joins to it) on the
    /// "do not sell or share" list, as one entry; returns the entry's id and how many values
    /// were new. Advertising and sale destinations skip their events from now on, and ad-platform
    /// audience syncs remove them.
    pub async fn opt_out(
        &self,
        workspace: &WorkspaceId,
        subjects: &[Identifier],
    ) -> Result<(String, usize), StoreError> {
        let identifiers = self.resolve(workspace, subjects).await?;
        let digests = self.digests(workspace, &identifiers).await?;
        let entry = sluice_store::regulations::new_opt_out_id()?;
        let state = Arc::clone(&self.state);
        let (ws, id) = (workspace.clone(), entry.clone());
        let added =
            store_call(move || state.add_to_list(&ws, PersonList::DoNotSell, &id, &digests))
                .await?;
        self.reload(&self.do_not_sell).await?;
        self.audiences_consent_changed(workspace, &identifiers)
            .await?;
        Ok((entry, added))
    }

    /// Tells the audience syncs that the person's opt-outs changed (an ad platform then
    /// removes or re-adds them).
    async fn audiences_consent_changed(
        &self,
        workspace: &WorkspaceId,
        identifiers: &[Identifier],
    ) -> Result<(), StoreError> {
        let store = Arc::clone(&self.profiles.store);
        let (ws, ids) = (workspace.clone(), identifiers.to_vec());
        let person = store_call(move || store.find_person(&ws, &ids)).await?;
        self.audiences
            .consent_changed(workspace, person.profile_ids)
            .await?;
        Ok(())
    }

    /// Takes the people holding any subject off the "do not sell or share" list (each whole
    /// entry); returns how many values were removed.
    pub async fn opt_in(
        &self,
        workspace: &WorkspaceId,
        subjects: &[Identifier],
    ) -> Result<usize, StoreError> {
        let digests = self.digests(workspace, subjects).await?;
        let state = Arc::clone(&self.state);
        let ws = workspace.clone();
        let removed =
            store_call(move || state.remove_from_list(&ws, PersonList::DoNotSell, &digests))
                .await?;
        self.reload(&self.do_not_sell).await?;
        let identifiers = self.resolve(workspace, subjects).await?;
        self.audiences_consent_changed(workspace, &identifiers)
            .await?;
        Ok(removed)
    }

    /// The digests of the identifiers' values under the workspace's key.
    async fn digests(
        &self,
        workspace: &WorkspaceId,
        identifiers: &[Identifier],
    ) -> Result<Vec<SubjectDigest>, StoreError> {
        let state = Arc::clone(&self.state);
        let ws = workspace.clone();
        let key = store_call(move || state.digest_key(&ws)).await?;
        let mut digests = Vec::with_capacity(identifiers.len());
        for identifier in identifiers {
            digests.push(digest(&key, &workspace.0, &identifier.value));
        }
        Ok(digests)
    }

    /// Every identifier of the people holding any subject (the subjects included).
    async fn resolve(
        &self,
        workspace: &WorkspaceId,
        subjects: &[Identifier],
    ) -> Result<Vec<Identifier>, StoreError> {
        let store = Arc::clone(&self.profiles.store);
        let ws = workspace.clone();
        let subjects = subjects.to_vec();
        store_call(move || {
            let mut all: BTreeSet<Identifier> = subjects.iter().cloned().collect();
            for subject in &subjects {
                let found = store.find_person(&ws, std::slice::from_ref(subject))?;
                all.extend(found.identifiers);
            }
            Ok(all.into_iter().collect())
        })
        .await
    }

    /// Erases the person from every store; returns rows erased per store.
    async fn erase(
        &self,
        workspace: &WorkspaceId,
        identifiers: &[Identifier],
        values: &[String],
    ) -> Result<Vec<(&'static str, u64)>, StoreError> {
        // No profile or audience batch is read or stored while the person is erased.
        let _held = self.profiles.gate.lock().await;
        let _audiences_held = self.audiences.gate.lock().await;
        let message_ids: Vec<String> = self
            .log
            .find_person(workspace, values)
            .await?
            .into_iter()
            .map(|found| found.event.message_id)
            .collect();
        let log = self.log.erase_person(workspace, values).await?;
        // Audience states are keyed by profile: erased while the profiles still say which.
        let (profiles, audiences) = (
            Arc::clone(&self.profiles.store),
            Arc::clone(&self.audiences.store),
        );
        let (ws, ids) = (workspace.clone(), identifiers.to_vec());
        let audience_rows = store_call(move || {
            let person = profiles.find_person(&ws, &ids)?;
            audiences.erase_person(&ws, &person.profile_ids)
        })
        .await?;
        let store = Arc::clone(&self.profiles.store);
        let (ws, ids) = (workspace.clone(), identifiers.to_vec());
        let profiles = store_call(move || store.erase_person(&ws, &ids)).await?;
        let store = Arc::clone(&self.deliveries.store);
        let (ws, all) = (workspace.clone(), values.to_vec());
        let dead_letters = store_call(move || store.erase_person(&ws, &all)).await?;
        let attempts = self
            .deliveries
            .engine
            .forget_attempts(workspace, &message_ids, values)
            .await;
        Ok(vec![
            ("log", log),
            ("profiles", profiles),
            ("audiences", audience_rows),
            ("dead_letters", dead_letters),
            ("delivery_attempts", attempts),
        ])
    }

    /// Reads a list again after a change (cheap, and rare).
    pub async fn reload(&self, lists: &Lists) -> Result<(), StoreError> {
        let state = Arc::clone(&self.state);
        let kind = lists.kind();
        let loaded = store_call(move || Lists::load(&state, kind)).await?;
        lists.set(loaded);
        Ok(())
    }
}

/// Seals the subjects and records the regulation (`INITIALIZED`); the worker of a running
/// node picks it up. Blocking (also used by the CLI).
pub fn record(
    state: &StateStore,
    vault: &Vault,
    workspace: &WorkspaceId,
    request: &sluice_privacy::RegulationRequest,
) -> Result<Regulation, StoreError> {
    let id = sluice_store::regulations::new_regulation_id()?;
    let sealing = |message: String| StoreError::Invalid {
        field: "subjectIds",
        message,
    };
    let plain = serde_json::to_vec(&request.subjects).map_err(|e| sealing(e.to_string()))?;
    let sealed = vault
        .seal(&plain, &subjects_context(workspace, &id))
        .map_err(|e| sealing(e.to_string()))?;
    state.create_regulation(
        workspace,
        &id,
        request.regulation_type,
        request.subject_type,
        request.subjects.len(),
        &sealed,
    )
}
