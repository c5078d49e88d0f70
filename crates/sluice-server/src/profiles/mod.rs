//! Profiles: the consumer that builds them from the log, and the Segment-compatible Profile API.
//!
//! - [`consumer`] — follows every source of every workspace from its durable cursor and hands
//!   batches to [`sluice_store::ProfileStore::ingest`].
//! - [`api`] — `/v1/spaces/{space}/collections/{users|accounts}/profiles/{type}:{value}/…`,
//!   authenticated by a Profile API token (Basic auth, token as user name).

pub mod api;
pub mod consumer;

pub use consumer::Profiles;
