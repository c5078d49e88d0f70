//! The durable event log: the contract every backend implements.
//!
//! Events are appended in batches; an append returns only once the batch is durable (on the
//! embedded backend: committed and fsynced). Each event gets a sequence number that grows
//! with every append and is never reused, even after erasure. A `messageId` seen before in
//! the same workspace within the dedup window is not stored again.
//!
//! Consumers read a source's events in sequence order from a durable cursor and acknowledge
//! what they have processed; after a restart they resume from the last acknowledgement.
//!
//! Erasure removes every event of a person (matched on `userId` or `anonymousId`) physically;
//! expiry removes a source's events older than its retention period the same way.

pub mod dedup;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::StoreError;
use crate::state::WorkspaceId;

/// A position in the log. 0 means "before the first event".
pub type Seq = i64;

/// The workspace and source a read or cursor is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceScope {
    pub workspace_id: WorkspaceId,
    pub source_id: String,
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    pub workspace_id: WorkspaceId,
    pub source_id: String,
    pub message_id: String,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    /// Server receive time, milliseconds since the Unix epoch. Also the clock of the dedup
    /// window.
    pub received_at_ms: i64,
    /// The normalized message as JSON.
    pub body: String,
}

/// An event as stored: the appended event and its sequence number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: Seq,
    pub event: NewEvent,
}

/// What happened to one appended event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Stored at this sequence number.
    Appended(Seq),
    /// Its `messageId` was already seen in the window; not stored again.
    Duplicate,
}

/// The durable log. See the module documentation for the contract.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends a batch durably. The answer has one outcome per event, in order.
    async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<AppendOutcome>, StoreError>;

    /// Up to `limit` events of the source with a sequence number above `after`, ascending.
    async fn read(
        &self,
        scope: &SourceScope,
        after: Seq,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The source's latest `limit` events, ascending.
    async fn latest(
        &self,
        scope: &SourceScope,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// The last sequence number `consumer` acknowledged for the source (0 when none).
    async fn cursor(&self, scope: &SourceScope, consumer: &str) -> Result<Seq, StoreError>;

    /// Records that `consumer` has processed the source's events up to `seq`. Cursors only
    /// move forward: an older `seq` is ignored.
    async fn ack(&self, scope: &SourceScope, consumer: &str, seq: Seq) -> Result<(), StoreError>;

    /// The workspace's events whose `userId` or `anonymousId` is one of `identifiers`, in log
    /// order (the "find" half of the erase/find contract).
    async fn find_person(
        &self,
        workspace_id: &WorkspaceId,
        identifiers: &[String],
    ) -> Result<Vec<StoredEvent>, StoreError>;

    /// Physically removes every event of the workspace whose `userId` or `anonymousId` is one
    /// of `identifiers`. Returns how many were removed.
    async fn erase_person(
        &self,
        workspace_id: &WorkspaceId,
        identifiers: &[String],
    ) -> Result<u64, StoreError>;

    /// Physically removes up to `limit` of the source's oldest events received before
    /// `received_before_ms` (retention). Returns how many were removed; fewer than `limit`
    /// means none older is left.
    async fn expire(
        &self,
        scope: &SourceScope,
        received_before_ms: i64,
        limit: usize,
    ) -> Result<u64, StoreError>;

    /// Removes every cursor `consumer` holds in the workspace (a deleted destination). Returns
    /// how many.
    async fn forget_consumer(
        &self,
        workspace_id: &WorkspaceId,
        consumer: &str,
    ) -> Result<u64, StoreError>;

    /// Committed events as they are committed (for live tails). Slow receivers miss events.
    fn subscribe(&self) -> broadcast::Receiver<Arc<StoredEvent>>;

    /// Checks that the log can still write durably (for readiness).
    async fn check_writable(&self) -> Result<(), StoreError>;

    /// Gives back memory held only to go faster (page caches), for when the node is idle.
    /// Never waits: a backend busy writing may skip it.
    fn release_memory(&self) {}

    /// Finishes every write already queued, then stops accepting writes.
    async fn close(&self);
}
