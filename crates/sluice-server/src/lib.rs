//! Sluice's HTTP side and the wiring of one node.
//!
//! - [`config`] — the settings of a node (the binary layers file, environment and flags).
//! - [`startup`] — opens the data directory, binds the listener, runs until shutdown.
//! - [`tracking`] — the Segment-compatible tracking API (`/v1/*`).
//! - [`admin`] — the admin API (`/api/v1/*`): sources, recent events, live tail.
//! - [`profiles`] — the profile consumer (identity resolution from the log) and the Profile
//!   API (`/v1/spaces/…`).
//! - [`connections`] — OAuth connections to ad accounts (Google, Meta, TikTok): connecting,
//!   renewal, the tokens destinations use, disconnection.
//! - [`follow`] — the loop every log consumer runs (profiles, data inventory).
//! - [`privacy`] — suppression and the privacy gate at the edge, the regulation worker
//!   (suppression, deletion across every store, forwarded deletions), verification by byte
//!   scan, retention, the data inventory.
//! - [`health`] — `/health`, `/ready`.
//! - [`telemetry`] — Prometheus metrics (`/metrics`) and their names.
//! - [`error`] — the table of public error codes every API answers with.

pub mod admin;
pub mod audiences;
pub mod clock;
pub mod config;
pub mod connections;
pub mod delivery;
pub mod error;
pub mod follow;
pub mod health;
pub mod idle;
pub mod privacy;
pub mod profiles;
pub mod startup;
pub mod telemetry;
pub mod tracking;

pub use config::{Config, SecretString};

/// Runs a store call (SQLite, blocking) on a blocking thread.
pub(crate) async fn store_call<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, sluice_store::StoreError> + Send + 'static,
) -> Result<T, sluice_store::StoreError> {
    tokio::task::spawn_blocking(work).await.map_err(|_| {
        sluice_store::StoreError::CommitFailed("a blocking store task failed".into())
    })?
}
pub use startup::{App, StartupReport};
