//! Identity resolution for Sluice: how events become profiles, the way Segment Unify does it.
//!
//! This crate does no IO. The caller reads the graph through the [`Graph`] trait and writes
//! what [`resolve()`] decides.
//!
//! - [`identifier`] — identifiers (`type:value`) and the two collections (users, accounts).
//! - [`settings`] — per-type limits with windows, priorities, blocked values and custom
//!   identifiers; Segment's defaults; validation with errors that name the field.
//! - [`extract`] — the identifiers, traits and account of one message.
//! - [`resolve`] — the merge algorithm: look up, merge, and when a rule would break, drop the
//!   lowest-priority identifier of the event and try again; the merge and identifier caps.
//! - [`memory`] — an in-memory [`Graph`] (tests, and re-resolution after an unmerge).

pub mod extract;
pub mod identifier;
pub mod memory;
pub mod resolve;
pub mod settings;

pub use extract::{Extracted, extract};
pub use identifier::{Collection, Identifier};
pub use memory::MemoryGraph;
pub use resolve::{Decision, DropReason, Graph, IdState, ProfileId, ProfileView, resolve};
pub use settings::{IdentifierRule, IdentitySettings, Rules, SettingsError, Window};
