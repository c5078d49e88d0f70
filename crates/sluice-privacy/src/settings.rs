//! A workspace's privacy settings.

use serde::{Deserialize, Serialize};

/// What a workspace decides about privacy. Missing fields take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Events without a consent object do not reach destinations mapped to consent
    /// categories (Segment lets them through).
    pub require_consent: bool,
}
