//! Computed traits and audiences, evaluated incrementally (no IO).
//!
//! - [`definition`] — the JSON definitions (computed traits, audiences and their conditions),
//!   read into checked types with errors naming the field.
//! - [`catalog`] — a workspace's definitions together: unique keys, existing references, no
//!   cycles, the evaluation order.
//! - [`compare`] — the operators of event and trait conditions.
//! - [`series`] — one profile's hour buckets for one aggregator, so windows slide.
//! - [`recorded`] — an event's recorded form: the parts the engine reads, in a binary layout
//!   read in place (what the audience history keeps, so backfills parse no JSON).
//! - [`engine`] — the compiled catalog: apply events, evaluate, say what changed and when time
//!   will change something next, merge two profiles' states.
//! - [`split`] — how a backfill shares a batch of profiles among threads (runs of equal work).
//!
//! The caller (the server's audience consumer) keeps each profile's [`StoredState`], feeds the
//! profile's events in log order and sends the [`Change`]s on.

pub mod catalog;
pub mod compare;
pub mod definition;
pub mod engine;
pub mod recorded;
pub mod series;
pub mod split;

pub use catalog::Catalog;
pub use definition::{
    Audience, ComputedTrait, Condition, DefinitionError, read_audience, read_trait,
};
pub use engine::{
    Call, Change, Engine, EventRef, Outputs, Part, ProfileState, ProfileTraits, StoredState,
};
