//! Privacy building blocks for Sluice.
//!
//! - [`children`] — whether a person's traits show an age under the children policy's
//!   threshold.
//! - [`consent`] — whether an event may reach a destination: Segment's category rules, a
//!   workspace that requires consent, Global Privacy Control and "do not sell" opt-outs for
//!   advertising and sale destinations.
//! - [`keyed`] — HMAC-SHA-256 over parts: digests, keyed hashes, derived keys.
//! - [`pii`] — which fields of an event hold personal or secret data (emails, phones, cards,
//!   SSNs, IBANs, IP addresses, dates of birth, secrets), by key and by value; the PII policy
//!   (allow, hash, redact, block per class, overridden per destination) and applying it.
//! - [`regulation`] — suppression and deletion requests in Segment's shapes (types, subjects,
//!   statuses), and the keyed digests a suppression keeps instead of identifiers.
//! - [`settings`] — a workspace's privacy settings: consent, PII policy, retention, children.
//! - [`vault`] — secrets at rest: AES-256-GCM envelopes sealed under a ring of master keys
//!   that can rotate, bound to the row they belong to by associated data.
//!
//! Architecture invariant: key material never prints (`Debug` is redacted, there is no
//! `Display`) and is zeroed when dropped.

pub mod children;
pub mod consent;
pub mod keyed;
pub mod pii;
pub mod regulation;
pub mod settings;
pub mod vault;

pub use pii::{
    Applied, Field, Finding, PiiAction, PiiClass, PiiPolicy, PolicyError, Rules, apply, classify,
    fields, scan,
};
pub use regulation::{
    RegulationError, RegulationRequest, RegulationType, Status, SubjectDigest, SubjectType,
};
pub use settings::{ChildrenPolicy, PrivacySettings, Retention, SettingsError};
pub use vault::{KeyId, KeyRing, MasterKey, Vault, VaultError};
