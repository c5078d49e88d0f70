//! The delivery engine: gets the events in the log to the tools a workspace uses.
//!
//! - [`engine`] — one runner per destination instance; start, replace, stop, status.
//! - [`runner`] — one destination's loop: read its sources from durable cursors, apply the
//!   `integrations` object and the destination's filters, send through its adapter, settle
//!   each event as delivered, retried later or dead-lettered.
//! - [`window`] — the unfinished events of a destination and the ordering rule: one event per
//!   person at a time, in log order; cursors never pass an unfinished event.
//! - [`backoff`] — exponential backoff with full jitter, floored by `Retry-After`.
//! - [`http`] — the per-destination HTTP client with time limits and bounded answers.
//! - [`metrics`] — metric names.
//!
//! Architecture invariant: a runner shares nothing with another runner but the read side of
//! the log and the dead-letter store, so a slow or failing destination slows only itself.

pub mod backoff;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod runner;
pub mod window;

pub use backoff::Backoff;
pub use engine::Engine;
pub use runner::{
    Attempt, Consent, DestinationSpec, EventFilter, OptedOut, Options, PiiDelivery, Shared, Status,
    consumer_name,
};
