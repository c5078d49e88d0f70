//! Privacy building blocks for Sluice.
//!
//! - [`vault`] — secrets at rest: AES-256-GCM envelopes sealed under a ring of master keys
//!   that can rotate, bound to the row they belong to by associated data.
//!
//! Architecture invariant: key material never prints (`Debug` is redacted, there is no
//! `Display`) and is zeroed when dropped.

pub mod vault;

pub use vault::{KeyId, KeyRing, MasterKey, Vault, VaultError};
