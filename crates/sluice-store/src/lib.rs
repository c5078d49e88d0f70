//! Storage for Sluice: the durable event log and the state store.
//!
//! - [`log`] — the [`EventLog`] trait (append with dedup, read from a cursor, acknowledge,
//!   erase one person, live tail) and its embedded backend [`SqliteLog`], a SQLite file written
//!   by one thread with group commit.
//! - [`state`] — workspaces, sources and admin tokens ([`StateStore`]), in their own SQLite
//!   file so log appends never wait on state writes.
//! - [`delivery`] — dead letters and replay jobs of the delivery engine ([`DeliveryStore`]), in
//!   a third SQLite file so failing destinations never write into the log's file.
//! - [`destinations`] — destination instances (settings with their secrets sealed, consent
//!   categories, delivery options) and their sources, in `state.db` beside the sources.
//! - [`profiles`] — profiles and the identity graph ([`ProfileStore`]), built from the log by
//!   the profile consumer, in `profiles.db`.
//! - [`identity`] — each workspace's identity settings and Profile API tokens, in `state.db`.
//! - [`connections`] — OAuth connections to ad accounts (tokens sealed by the caller, status,
//!   version) and the authorizations under way (sealed, keyed by a hash of their state, single
//!   use), in `state.db`.
//! - [`inventory`] — the data inventory ([`InventoryStore`]): every field path seen per
//!   workspace, source and event, with its PII class, first and last seen and count, never a
//!   value; built from the log, in `inventory.db`.
//! - [`definitions`] — computed-trait and audience definitions and each workspace's catalog
//!   version, in `state.db`.
//! - [`audiences`] — the audience engine's per-profile state, membership, change history,
//!   recorded event history and cursors ([`AudienceStore`]), built from the log, in
//!   `audiences.db`.
//! - [`regulations`] — suppression and deletion requests (subjects sealed, and only until
//!   done) and the suppressed digests, in `state.db`.
//! - [`secret`] — write keys and admin tokens: generated, shown once, stored only as hashes.
//! - `conformance` (feature `testsuite`) — the suite every [`EventLog`] backend must pass, with
//!   a model-based property test.
//!
//! Architecture invariant: every read and write of personal data names a workspace.

pub mod audiences;
pub mod connections;
pub mod definitions;
pub mod delivery;
pub mod destinations;
pub mod error;
pub mod identity;
pub mod inventory;
pub mod log;
pub mod profiles;
pub mod regulations;
pub mod secret;
pub mod state;
pub mod syncs;

#[cfg(feature = "testsuite")]
pub mod conformance;

mod sqlite;

pub use audiences::{
    AudienceStore, CONSENT_KEY, CONSENT_KIND, ChangeRow, Commit, HistoryRow, MovedEvent,
    ProfileHistory, ProfileRow, Progress, SyncProgress,
};
pub use connections::{
    ConnectedTokens, Connection, ConnectionStatus, PendingRecord, RenewedTokens, new_connection_id,
    pending_context, tokens_context,
};
pub use definitions::{DefinitionKind, StoredDefinition};
pub use delivery::{
    DeadLetter, Delivered, DeliveryStore, LedgerEntry, NewDeadLetter, NewReplay, Replay,
    ReplayState,
};
pub use destinations::{
    DeliveryOptions, Destination, DestinationChange, DestinationId, NewDestination, StoredSettings,
    settings_context,
};
pub use error::StoreError;
pub use identity::ProfileTokenInfo;
pub use inventory::{FieldSeen, InventoryField, InventoryQuery, InventoryStore};
pub use log::sqlite::{SqliteLog, SqliteLogConfig};
pub use log::{AppendOutcome, EventLog, NewEvent, Seq, SourceScope, StoredEvent};
pub use profiles::{INGEST_BATCH, ProfileStore};
pub use regulations::{ListEntry, PersonList, Regulation};
pub use secret::{AdminToken, KeyHash, ProfileToken, WriteKey};
pub use state::{Source, SourceAuth, StateStore, Workspace, WorkspaceId};
pub use syncs::{AudienceSync, NewSync, SyncClass, SyncMode};
