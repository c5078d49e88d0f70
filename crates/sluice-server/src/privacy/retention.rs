//! Retention: the background job that forgets what is older than each source's period.
//!
//! Every `retention_interval_secs` (and once at start), for each source of each workspace
//! with a period (`retention.days`, or its own in `retention.sources`):
//! - the log's events received before the cut-off go, a chunk per commit so ingestion never
//!   waits long behind it;
//! - the profiles' history entries of the source applied before it, and every profile left
//!   without history (with the profile consumer held back, as for a deletion);
//! - the dead letters of its events received before it.
//!
//! Every store erases physically (SQLite's `secure_delete` and WAL truncation; the profile
//! store zeroes its change log entries and writes a new snapshot). The sweep also forgets the
//! log cursors of destinations that no longer exist (deleted with the CLI, or while the node
//! was down). Reports hold counts, never identifiers.
//!
//! Time comes from a [`Clock`] that moves with tokio's clock, so tests can let months pass
//! with paused time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sluice_delivery::consumer_name;
use sluice_store::log::sqlite::cursors_in_file;
use sluice_store::{DeliveryStore, EventLog, SourceScope, StateStore, StoreError, WorkspaceId};
use tokio::sync::watch;

use crate::audiences::Audiences;
use crate::clock::Clock;
use crate::profiles::Profiles;
use crate::store_call;

/// Most log events removed in one commit.
const CHUNK: usize = 5_000;
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Metric name: rows removed by retention, by store.
pub const EXPIRED: &str = "sluice_retention_expired_total";

/// What one sweep removed from one source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceSweep {
    pub source_id: String,
    pub days: u32,
    /// Events received before this time were removed.
    pub cutoff: String,
    pub events: u64,
    pub profile_events: u64,
    pub profiles: u64,
    /// Events recorded in the audience history.
    pub audience_history: u64,
    pub dead_letters: u64,
}

/// What one sweep of one workspace removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sweep {
    pub sources: Vec<SourceSweep>,
    /// Log cursors of deleted destinations.
    pub destination_cursors: u64,
}

/// The retention job. See the module documentation.
pub struct Retention {
    state: Arc<StateStore>,
    log: Arc<dyn EventLog>,
    profiles: Arc<Profiles>,
    audiences: Arc<Audiences>,
    delivery: Arc<DeliveryStore>,
    log_path: PathBuf,
    clock: Clock,
    interval: Duration,
    /// How many sweeps of every workspace have finished.
    done: watch::Sender<u64>,
}

impl Retention {
    pub fn new(
        state: Arc<StateStore>,
        log: Arc<dyn EventLog>,
        profiles: Arc<Profiles>,
        audiences: Arc<Audiences>,
        delivery: Arc<DeliveryStore>,
        log_path: PathBuf,
        interval: Duration,
    ) -> Retention {
        Retention {
            state,
            log,
            profiles,
            audiences,
            delivery,
            log_path,
            clock: Clock::start(),
            interval: interval.max(Duration::from_secs(1)),
            done: watch::channel(0).0,
        }
    }

    /// The clock sweeps read.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Counts finished sweeps of every workspace (tests wait on it).
    pub fn sweeps(&self) -> watch::Receiver<u64> {
        self.done.subscribe()
    }

    /// Sweeps every workspace at start and then every interval, until `stopping` turns true.
    pub async fn run(self: Arc<Self>, mut stopping: watch::Receiver<bool>) {
        loop {
            if *stopping.borrow() {
                return;
            }
            match self.sweep_all().await {
                Ok(()) => {}
                Err(error) => tracing::error!(%error, "retention sweep failed"),
            }
            self.done.send_modify(|count| *count += 1);
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stopping.changed() => return,
            }
        }
    }

    async fn sweep_all(&self) -> Result<(), StoreError> {
        let state = Arc::clone(&self.state);
        let workspaces = store_call(move || state.workspace_ids()).await?;
        for workspace in workspaces {
            let sweep = self.sweep(&workspace).await?;
            let events: u64 = sweep.sources.iter().map(|s| s.events).sum();
            let profiles: u64 = sweep.sources.iter().map(|s| s.profiles).sum();
            if events > 0 || profiles > 0 || sweep.destination_cursors > 0 {
                tracing::info!(
                    workspace = %workspace.0,
                    events,
                    profiles,
                    destination_cursors = sweep.destination_cursors,
                    "retention sweep"
                );
            }
        }
        Ok(())
    }

    /// Sweeps one workspace now.
    pub async fn sweep(&self, workspace: &WorkspaceId) -> Result<Sweep, StoreError> {
        let now = self.clock.now_ms();
        let state = Arc::clone(&self.state);
        let ws = workspace.clone();
        let (settings, sources, destinations) = store_call(move || {
            let (settings, _) = state.privacy_settings(&ws)?;
            // Syncs' output sources hold generated events with identifiers: they expire under
            // the workspace's retention too.
            let mut sources: Vec<String> = state
                .list_sources(&ws)?
                .into_iter()
                .map(|source| source.id)
                .collect();
            for sync in state.syncs(&ws, None)? {
                sources.push(sync.source_id());
            }
            let destinations: Vec<String> = state
                .list_destinations(&ws)?
                .into_iter()
                .map(|destination| consumer_name(&destination.id.0))
                .collect();
            Ok((settings, sources, destinations))
        })
        .await?;
        let mut sweep = Sweep::default();
        for source in sources {
            let Some(days) = settings.retention.days_for(&source) else {
                continue;
            };
            let cutoff = now.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
            let mut line = self.expire_source(workspace, &source, cutoff).await?;
            line.days = days;
            sweep.sources.push(line);
        }
        sweep.destination_cursors = self.forget_orphan_cursors(workspace, &destinations).await?;
        Ok(sweep)
    }

    async fn expire_source(
        &self,
        workspace: &WorkspaceId,
        source_id: &str,
        cutoff: i64,
    ) -> Result<SourceSweep, StoreError> {
        let scope = SourceScope {
            workspace_id: workspace.clone(),
            source_id: source_id.to_owned(),
        };
        let mut line = SourceSweep {
            source_id: source_id.to_owned(),
            cutoff: sluice_spec::timestamp::format_ms(cutoff).unwrap_or_default(),
            ..SourceSweep::default()
        };
        {
            // A batch the profile or audience consumer read before the log's expiry must not
            // be stored after the profiles' or the audience history's expiry: hold both back
            // across all three.
            let _held = self.profiles.gate.lock().await;
            let _audiences_held = self.audiences.gate.lock().await;
            loop {
                let removed = self.log.expire(&scope, cutoff, CHUNK).await?;
                line.events += removed;
                if removed < CHUNK as u64 {
                    break;
                }
            }
            let store = Arc::clone(&self.profiles.store);
            let (ws, source) = (workspace.clone(), source_id.to_owned());
            let expired = store_call(move || store.expire(&ws, &source, cutoff)).await?;
            line.profile_events = expired.events;
            line.profiles = expired.profiles;
            let store = Arc::clone(&self.audiences.store);
            let (ws, source) = (workspace.clone(), source_id.to_owned());
            line.audience_history =
                store_call(move || store.expire_history(&ws, &source, cutoff)).await?;
        }
        let delivery = Arc::clone(&self.delivery);
        let (ws, source) = (workspace.clone(), source_id.to_owned());
        line.dead_letters = store_call(move || delivery.expire(&ws, &source, cutoff)).await?;
        for (store, count) in [
            ("log", line.events),
            ("profile_events", line.profile_events),
            ("profiles", line.profiles),
            ("audience_history", line.audience_history),
            ("dead_letters", line.dead_letters),
        ] {
            if count > 0 {
                metrics::counter!(EXPIRED, "store" => store).increment(count);
            }
        }
        Ok(line)
    }

    /// Forgets the log cursors of destinations that are gone.
    async fn forget_orphan_cursors(
        &self,
        workspace: &WorkspaceId,
        live: &[String],
    ) -> Result<u64, StoreError> {
        let path = self.log_path.clone();
        let ws = workspace.clone();
        let cursors = store_call(move || cursors_in_file(&path, &ws)).await?;
        let mut orphans: Vec<String> = Vec::new();
        for (_, consumer, _) in cursors {
            if consumer.starts_with(&consumer_name(""))
                && !live.contains(&consumer)
                && !orphans.contains(&consumer)
            {
                orphans.push(consumer);
            }
        }
        let mut forgotten = 0;
        for consumer in orphans {
            forgotten += self.log.forget_consumer(workspace, &consumer).await?;
        }
        Ok(forgotten)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sluice_identity::Rules;
    use sluice_privacy::PrivacySettings;
    use sluice_store::{
        AudienceStore, Commit, HistoryRow, NewDeadLetter, NewEvent, ProfileStore, SqliteLog,
        SqliteLogConfig, StoredEvent,
    };

    use super::*;

    struct Node {
        _dir: tempfile::TempDir,
        state: Arc<StateStore>,
        log: Arc<SqliteLog>,
        profiles: Arc<ProfileStore>,
        audiences: Arc<AudienceStore>,
        delivery: Arc<DeliveryStore>,
        retention: Arc<Retention>,
        workspace: WorkspaceId,
    }

    fn node() -> Node {
        let dir = tempfile::tempdir().unwrap();
        let state = Arc::new(StateStore::open(&dir.path().join("state.db")).unwrap());
        let (workspace, _) = state.ensure_default_workspace().unwrap();
        let log =
            Arc::new(SqliteLog::open(SqliteLogConfig::new(dir.path().join("log.db"))).unwrap());
        let profile_store = Arc::new(ProfileStore::open(&dir.path().join("profiles.db")).unwrap());
        let delivery = Arc::new(DeliveryStore::open(&dir.path().join("delivery.db")).unwrap());
        let shared: Arc<dyn EventLog> = log.clone();
        let profiles = Arc::new(Profiles::new(
            Arc::clone(&profile_store),
            Arc::clone(&shared),
            Arc::clone(&state),
        ));
        let audience_store =
            Arc::new(AudienceStore::open(&dir.path().join("audiences.db")).unwrap());
        let audiences = Arc::new(Audiences::new(
            Arc::clone(&audience_store),
            Arc::clone(&profiles),
            Arc::clone(&shared),
            Arc::clone(&state),
        ));
        let retention = Arc::new(Retention::new(
            Arc::clone(&state),
            shared,
            profiles,
            audiences,
            Arc::clone(&delivery),
            dir.path().join("log.db"),
            Duration::from_secs(3600),
        ));
        Node {
            _dir: dir,
            state,
            log,
            profiles: profile_store,
            audiences: audience_store,
            delivery,
            retention,
            workspace: workspace.id,
        }
    }

    impl Node {
        /// Logs an identify of `user` in `source`, received now by the retention clock, and
        /// builds its profile.
        async fn identify(&self, source: &str, user: &str) {
            let body = json!({"type": "identify", "userId": user, "messageId": format!("m-{user}"),
                "traits": {"email": format!("{user}@example.com")}});
            let event = NewEvent {
                workspace_id: self.workspace.clone(),
                source_id: source.to_owned(),
                message_id: format!("m-{user}"),
                user_id: Some(user.to_owned()),
                anonymous_id: None,
                received_at_ms: self.retention.clock().now_ms(),
                body: body.to_string(),
            };
            let outcomes = self.log.append(vec![event.clone()]).await.unwrap();
            let sluice_store::AppendOutcome::Appended(seq) = outcomes[0] else {
                panic!("not appended");
            };
            let rules = Rules::compile(&Default::default()).unwrap();
            self.profiles
                .ingest(
                    &self.workspace,
                    &rules,
                    source,
                    &[StoredEvent {
                        seq,
                        event: event.clone(),
                    }],
                )
                .unwrap();
            // The audience consumer's copy of the event, as it records one.
            let profile = self.profile_of(user).unwrap();
            self.audiences
                .commit(
                    &self.workspace,
                    &Commit {
                        history: vec![HistoryRow {
                            profile_id: profile,
                            seq,
                            source_id: source.to_owned(),
                            received_at: event.received_at_ms,
                            record: b"recorded".to_vec(),
                        }],
                        ..Commit::default()
                    },
                )
                .unwrap();
            self.delivery
                .add_dead_letters(&[NewDeadLetter {
                    workspace_id: self.workspace.clone(),
                    destination_id: "dst_gone".into(),
                    source_id: source.to_owned(),
                    seq,
                    message_id: event.message_id.clone(),
                    user_id: event.user_id.clone(),
                    anonymous_id: None,
                    received_at_ms: event.received_at_ms,
                    body: event.body.clone(),
                    reason: "http 400".into(),
                    status: Some(400),
                    response: None,
                    attempts: 1,
                    failed_at_ms: event.received_at_ms,
                }])
                .unwrap();
        }

        async fn logged(&self, source: &str) -> usize {
            let scope = SourceScope {
                workspace_id: self.workspace.clone(),
                source_id: source.to_owned(),
            };
            self.log.read(&scope, 0, 100).await.unwrap().len()
        }

        fn profile_of(&self, user: &str) -> Option<i64> {
            self.profiles
                .lookup(
                    &self.workspace,
                    sluice_identity::Collection::Users,
                    &sluice_identity::Identifier::new("user_id", user),
                )
                .unwrap()
                .map(|profile| profile.id)
        }

        fn has_profile(&self, user: &str) -> bool {
            self.profile_of(user).is_some()
        }

        /// Recorded events in the audience history.
        fn recorded(&self) -> usize {
            self.audiences
                .histories_after(&self.workspace, 0, 100, 100)
                .unwrap()
                .len()
        }

        fn dead_letters(&self) -> u64 {
            self.delivery
                .count_dead_letters(&self.workspace, "dst_gone")
                .unwrap()
        }
    }

    /// Waits until the job has finished `count` sweeps.
    async fn sweeps_done(sweeps: &mut watch::Receiver<u64>, count: u64) {
        while *sweeps.borrow_and_update() < count {
            sweeps.changed().await.unwrap();
        }
    }

    const DAY: Duration = Duration::from_secs(24 * 3600);

    #[tokio::test(start_paused = true)]
    async fn each_source_forgets_its_events_after_its_own_period() {
        let node = node();
        let (a, _) = node.state.create_source(&node.workspace, "web").unwrap();
        let (b, _) = node.state.create_source(&node.workspace, "app").unwrap();
        let settings: PrivacySettings = serde_json::from_value(json!({
            "retention": {"days": 30, "sources": {b.id.clone(): 7}}
        }))
        .unwrap();
        node.state
            .set_privacy_settings(&node.workspace, &settings)
            .unwrap();
        node.identify(&a.id, "web-user").await;
        node.identify(&b.id, "app-user").await;
        // A destination that was deleted left its cursor behind.
        let scope = SourceScope {
            workspace_id: node.workspace.clone(),
            source_id: a.id.clone(),
        };
        node.log
            .ack(&scope, &consumer_name("dst_gone"), 1)
            .await
            .unwrap();

        let (stop, stopping) = watch::channel(false);
        let mut sweeps = node.retention.sweeps();
        let job = tokio::spawn(Arc::clone(&node.retention).run(stopping));
        sweeps_done(&mut sweeps, 1).await;
        assert_eq!((node.logged(&a.id).await, node.logged(&b.id).await), (1, 1));
        assert_eq!(node.dead_letters(), 2);
        assert_eq!(node.recorded(), 2);
        assert_eq!(
            node.log
                .cursor(&scope, &consumer_name("dst_gone"))
                .await
                .unwrap(),
            0,
            "the first sweep forgets a deleted destination's cursors"
        );

        // Six days on: nothing has reached its period.
        tokio::time::advance(6 * DAY).await;
        sweeps_done(&mut sweeps, 2).await;
        assert_eq!((node.logged(&a.id).await, node.logged(&b.id).await), (1, 1));

        // Eight days on: the app's seven days have passed, the web's thirty have not.
        tokio::time::advance(2 * DAY).await;
        sweeps_done(&mut sweeps, 3).await;
        assert_eq!((node.logged(&a.id).await, node.logged(&b.id).await), (1, 0));
        assert!(node.has_profile("web-user"));
        assert!(
            !node.has_profile("app-user"),
            "a profile with no history left goes"
        );
        assert_eq!(node.dead_letters(), 1);
        assert_eq!(
            node.recorded(),
            1,
            "the audience history expires with the log"
        );

        // Thirty-one days on: everything has gone.
        tokio::time::advance(23 * DAY).await;
        sweeps_done(&mut sweeps, 4).await;
        assert_eq!((node.logged(&a.id).await, node.logged(&b.id).await), (0, 0));
        assert!(!node.has_profile("web-user"));
        assert_eq!(node.dead_letters(), 0);
        assert_eq!(node.recorded(), 0);

        let _ = stop.send(true);
        job.await.unwrap();
    }

    #[tokio::test]
    async fn a_workspace_without_a_period_keeps_everything() {
        let node = node();
        let (a, _) = node.state.create_source(&node.workspace, "web").unwrap();
        node.identify(&a.id, "kept").await;
        let sweep = node.retention.sweep(&node.workspace).await.unwrap();
        assert_eq!(sweep, Sweep::default());
        assert_eq!(node.logged(&a.id).await, 1);
        assert!(node.has_profile("kept"));
    }
}
