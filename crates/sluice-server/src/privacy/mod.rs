//! Privacy regulations on a running node: suppression at the ingest edge, and the worker that
//! carries out suppression and deletion requests.
//!
//! - [`lists`] — the listed digests in memory: the suppressed, checked for every event before
//!   the log; those who opted out of sale and sharing, checked by advertising destinations.
//! - [`gate`] — each workspace's policy before the log: PII block and redact, the children
//!   policy.
//! - [`inventory`] — the data inventory's log consumer (field paths, classes, counts).
//! - [`regulate`] — the worker: resolves a request's subjects through the identity graph to
//!   every identifier of the person, suppresses them, erases them from every store through
//!   its erase/find contract, forwards the deletion to destinations, and writes the report.
//! - [`forward`] — deletion requests to the destinations' tools, answers recorded.
//! - [`export`] — everything held about a person, as JSON (data-subject access).
//! - [`verify`] — looks for a person in every store and in the bytes of the data directory.
//! - [`scan`] — the byte scan.
//!
//! Architecture invariant: events of a suppressed person are answered 200 and never written;
//! a regulation's subjects are stored only sealed and only until it is done; no log line
//! names an identifier.

pub mod export;
pub mod forward;
pub mod gate;
pub mod inventory;
pub mod lists;
pub mod regulate;
pub mod retention;
pub mod scan;
pub mod verify;

pub use regulate::Privacy;

use sluice_store::{AudienceStore, DeliveryStore, ProfileStore};

/// The stores a person is looked for in by `verify` and `export` (beside the log, read from
/// its file): profiles and the identity graph, dead letters and the delivery ledger, audience
/// states and changes.
pub struct PersonStores<'a> {
    pub profiles: &'a ProfileStore,
    pub delivery: &'a DeliveryStore,
    pub audiences: &'a AudienceStore,
}
