//! The engine: one runner task per destination instance, started, replaced and stopped as
//! destinations change.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_store::{NewReplay, Replay, SourceScope, StoreError, WorkspaceId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::runner::{self, Command, DestinationSpec, Shared, Status};

/// What can go wrong asking the engine for a replay.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("destination {0} is not running")]
    NotRunning(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("store task failed")]
    Task,
}

struct Running {
    stop: watch::Sender<bool>,
    commands: mpsc::UnboundedSender<Command>,
    sources: Vec<String>,
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
        let (commands, command_receiver) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(Status::default()));
        let id = spec.id.clone();
        let workspace_id = spec.workspace_id.clone();
        let sources = spec.sources.clone();
        let task = tokio::spawn(runner::run(
            spec,
            Arc::clone(&self.shared),
            Arc::clone(&status),
            stop_receiver,
            command_receiver,
        ));
        running.insert(
            id,
            Running {
                stop: stop_sender,
                commands,
                sources,
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

    /// Re-delivers a source's logged events received in `[from_ms, to_ms)` (open ends when
    /// `None`) to a running destination, up to the log's current end. Filters and the
    /// `integrations` object still apply; the destination's own cursor does not move.
    pub async fn replay(
        &self,
        workspace_id: &WorkspaceId,
        destination_id: &str,
        source_id: &str,
        from_ms: Option<i64>,
        to_ms: Option<i64>,
    ) -> Result<Replay, EngineError> {
        let commands = self.commands_of(workspace_id, destination_id).await?;
        let scope = SourceScope {
            workspace_id: workspace_id.clone(),
            source_id: source_id.to_owned(),
        };
        let last_seq = match self.shared.log.latest(&scope, 1).await?.last() {
            Some(event) => event.seq,
            None => 0,
        };
        let replay = NewReplay {
            workspace_id: workspace_id.clone(),
            destination_id: destination_id.to_owned(),
            source_id: source_id.to_owned(),
            from_ms,
            to_ms,
            last_seq,
        };
        let store = Arc::clone(&self.shared.store);
        let job = tokio::task::spawn_blocking(move || store.add_replay(&replay, unix_ms()))
            .await
            .map_err(|_| EngineError::Task)??;
        let _ = commands.send(Command::Replay(job.clone()));
        Ok(job)
    }

    /// Sends dead letters of a running destination again (`ids`: these; `None`: all of them,
    /// up to 10,000). Returns how many were queued.
    pub async fn retry_dead_letters(
        &self,
        workspace_id: &WorkspaceId,
        destination_id: &str,
        ids: Option<Vec<i64>>,
    ) -> Result<usize, EngineError> {
        let commands = self.commands_of(workspace_id, destination_id).await?;
        let store = Arc::clone(&self.shared.store);
        let (workspace, destination) = (workspace_id.clone(), destination_id.to_owned());
        let letters = tokio::task::spawn_blocking(move || match ids {
            Some(ids) => {
                let mut letters = Vec::with_capacity(ids.len());
                for id in ids {
                    letters.push(store.dead_letter(&workspace, &destination, id)?);
                }
                Ok(letters)
            }
            None => store.dead_letters(&workspace, &destination, 0, 10_000),
        })
        .await
        .map_err(|_| EngineError::Task)??;
        let count = letters.len();
        let _ = commands.send(Command::RetryDeadLetters(letters));
        Ok(count)
    }

    async fn commands_of(
        &self,
        workspace_id: &WorkspaceId,
        destination_id: &str,
    ) -> Result<mpsc::UnboundedSender<Command>, EngineError> {
        let running = self.running.lock().await;
        match running.get(destination_id) {
            Some(entry) if &entry.workspace_id == workspace_id => Ok(entry.commands.clone()),
            _ => Err(EngineError::NotRunning(destination_id.to_owned())),
        }
    }

    /// Whether a running destination reads this source.
    pub async fn reads_source(&self, destination_id: &str, source_id: &str) -> bool {
        let running = self.running.lock().await;
        running
            .get(destination_id)
            .is_some_and(|entry| entry.sources.iter().any(|s| s == source_id))
    }

    /// Stops every runner: requests in flight finish, cursors are saved.
    pub async fn shutdown(&self) {
        let all: Vec<Running> = self.running.lock().await.drain().map(|(_, r)| r).collect();
        for old in all {
            stop(old).await;
        }
    }
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

async fn stop(running: Running) {
    let _ = running.stop.send(true);
    if let Err(error) = running.task.await {
        tracing::error!(%error, "a destination runner panicked");
    }
}
