//! The engine: one runner task per destination instance, started, replaced and stopped as
//! destinations change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_store::WorkspaceId;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::runner::{self, DestinationSpec, Shared, Status};

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    status: Arc<Mutex<Status>>,
    workspace_id: WorkspaceId,
}

/// The delivery engine. See the module documentation.
pub struct Engine {
    shared: Arc<Shared>,
    running: tokio::sync::Mutex<HashMap<String, Running>>,
}

impl Engine {
    pub fn new(shared: Shared) -> Engine {
        Engine {
            shared: Arc::new(shared),
            running: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Starts delivering to a destination, or restarts it with a new configuration (the old
    /// runner finishes its requests in flight and saves its cursors first).
    pub async fn upsert(&self, spec: DestinationSpec) {
        let mut running = self.running.lock().await;
        if let Some(old) = running.remove(&spec.id) {
            stop(old).await;
        }
        let (stop_sender, stop_receiver) = watch::channel(false);
        let status = Arc::new(Mutex::new(Status::default()));
        let id = spec.id.clone();
        let workspace_id = spec.workspace_id.clone();
        let task = tokio::spawn(runner::run(
            spec,
            Arc::clone(&self.shared),
            Arc::clone(&status),
            stop_receiver,
        ));
        running.insert(
            id,
            Running {
                stop: stop_sender,
                task,
                status,
                workspace_id,
            },
        );
    }

    /// Stops delivering to a destination (disabled or deleted).
    pub async fn remove(&self, destination_id: &str) {
        let old = self.running.lock().await.remove(destination_id);
        if let Some(old) = old {
            stop(old).await;
        }
    }

    /// A destination's status, if it runs and belongs to the workspace.
    pub async fn status(&self, workspace_id: &WorkspaceId, destination_id: &str) -> Option<Status> {
        let running = self.running.lock().await;
        let entry = running.get(destination_id)?;
        if &entry.workspace_id != workspace_id {
            return None;
        }
        entry.status.lock().ok().map(|status| status.clone())
    }

    /// How many of the workspace's recent attempts carried any of `message_ids` or recorded
    /// an answer mentioning any of `values` (the find half of the erase/find contract for the
    /// in-memory attempts views).
    pub async fn count_attempts(
        &self,
        workspace_id: &WorkspaceId,
        message_ids: &[String],
        values: &[String],
    ) -> u64 {
        self.person_attempts(workspace_id, message_ids, values, false)
            .await
    }

    /// Forgets the attempts [`Engine::count_attempts`] counts; returns how many.
    pub async fn forget_attempts(
        &self,
        workspace_id: &WorkspaceId,
        message_ids: &[String],
        values: &[String],
    ) -> u64 {
        self.person_attempts(workspace_id, message_ids, values, true)
            .await
    }

    async fn person_attempts(
        &self,
        workspace_id: &WorkspaceId,
        message_ids: &[String],
        values: &[String],
        forget: bool,
    ) -> u64 {
        let ids: std::collections::HashSet<&str> = message_ids.iter().map(String::as_str).collect();
        let concerns = |attempt: &crate::Attempt| {
            attempt
                .message_ids
                .iter()
                .any(|id| ids.contains(id.as_str()))
                || values
                    .iter()
                    .any(|value| !value.is_empty() && attempt.detail.contains(value.as_str()))
        };
        let running = self.running.lock().await;
        let mut matched = 0u64;
        for entry in running.values() {
            if &entry.workspace_id != workspace_id {
                continue;
            }
            let Ok(mut status) = entry.status.lock() else {
                continue;
            };
            let before = status.attempts.len();
            if forget {
                status.attempts.retain(|attempt| !concerns(attempt));
                matched += (before - status.attempts.len()) as u64;
            } else {
                matched += status.attempts.iter().filter(|a| concerns(a)).count() as u64;
            }
        }
        matched
    }

    /// Destinations whose oldest unfinished event is older than `after` (with that age), for
    /// `/ready` and the admin API.
    pub async fn stuck(&self, after: Duration, now_ms: i64) -> Vec<(String, Duration)> {
        let running = self.running.lock().await;
        let mut stuck = Vec::new();
        for (id, entry) in running.iter() {
            let oldest = entry
                .status
                .lock()
                .ok()
                .and_then(|status| status.oldest_unfinished_ms);
            if let Some(oldest) = oldest {
                let age = Duration::from_millis((now_ms - oldest).max(0) as u64);
                if age > after {
                    stuck.push((id.clone(), age));
                }
            }
        }
        stuck.sort();
        stuck
    }

    /// Stops every runner: requests in flight finish, cursors are saved.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for old in all {
            stop(old).await;
        }
    }
}

async fn stop(running: Running) {
    let _ = running.stop.send(true);
    if let Err(error) = running.task.await {
        tracing::error!(%error, "a destination runner panicked");
    }
}
