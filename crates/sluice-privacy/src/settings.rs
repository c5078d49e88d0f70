//! A workspace's privacy settings: consent policy, PII policy, retention and the children
//! policy, with their validation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::pii::PiiPolicy;

/// The longest retention period accepted, in days (ten years).
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// The default age under which the children policy applies.
pub const DEFAULT_MINIMUM_AGE: u32 = 16;

/// What a workspace decides about privacy. Missing fields take their defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivacySettings {
    /// Events without a consent object do not reach destinations mapped to consent
    /// categories (Segment lets them through).
    pub require_consent: bool,
    /// What happens to each class of personal data, at the gate and per destination.
    pub pii: PiiPolicy,
    /// How long events are kept.
    pub retention: Retention,
    /// Whether people shown by their traits to be children are suppressed and deleted.
    pub children: ChildrenPolicy,
}

/// How long a workspace keeps events, in days after they were received. `None` keeps them
/// until deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Every source of the workspace, unless it has its own.
    pub days: Option<u32>,
    /// Per source id.
    pub sources: BTreeMap<String, u32>,
}

impl Retention {
    /// The period of one source, in days.
    pub fn days_for(&self, source_id: &str) -> Option<u32> {
        self.sources.get(source_id).copied().or(self.days)
    }

    /// Whether any source has a period.
    pub fn any(&self) -> bool {
        self.days.is_some() || !self.sources.is_empty()
    }
}

/// The children policy: a person whose traits show an age under `minimum_age` (an `age`
/// trait, or a birth date) is suppressed and deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChildrenPolicy {
    pub enabled: bool,
    pub minimum_age: u32,
}

impl Default for ChildrenPolicy {
    fn default() -> ChildrenPolicy {
        ChildrenPolicy {
            enabled: false,
            minimum_age: DEFAULT_MINIMUM_AGE,
        }
    }
}

/// A setting that cannot be saved, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

impl PrivacySettings {
    /// Checks every part; `known_sources` are the workspace's source ids and
    /// `known_destinations` its destination ids (overrides must name one of them).
    pub fn validate(
        &self,
        known_sources: &[String],
        known_destinations: &[String],
    ) -> Result<(), SettingsError> {
        self.pii.validate().map_err(|error| SettingsError {
            field: error.field,
            message: error.message,
        })?;
        for id in self.pii.destinations.keys() {
            if !known_destinations.contains(id) {
                return Err(SettingsError {
                    field: format!("pii.destinations.{id}"),
                    message: "no destination with this id in the workspace".into(),
                });
            }
        }
        if let Some(days) = self.retention.days {
            check_days("retention.days", days)?;
        }
        for (id, days) in &self.retention.sources {
            let field = format!("retention.sources.{id}");
            if !known_sources.contains(id) {
                return Err(SettingsError {
                    field,
                    message: "no source with this id in the workspace".into(),
                });
            }
            check_days(&field, *days)?;
        }
        if self.children.minimum_age == 0 || self.children.minimum_age > 21 {
            return Err(SettingsError {
                field: "children.minimum_age".into(),
                message: "must be between 1 and 21".into(),
            });
        }
        Ok(())
    }
}

fn check_days(field: &str, days: u32) -> Result<(), SettingsError> {
    if days == 0 || days > MAX_RETENTION_DAYS {
        return Err(SettingsError {
            field: field.to_owned(),
            message: format!("must be between 1 and {MAX_RETENTION_DAYS} days"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parse(value: serde_json::Value) -> PrivacySettings {
        serde_json::from_value(value).expect("settings")
    }

    #[test]
    fn defaults_keep_everything_and_allow_everything() {
        let settings = parse(json!({}));
        assert!(!settings.require_consent);
        assert!(!settings.retention.any());
        assert!(!settings.children.enabled);
        assert_eq!(settings.children.minimum_age, 16);
        assert!(settings.pii.gate().is_none());
        assert_eq!(settings.validate(&[], &[]), Ok(()));
    }

    #[test]
    fn a_source_period_overrides_the_workspace_one() {
        let settings = parse(json!({"retention": {"days": 30, "sources": {"src_a": 7}}}));
        assert_eq!(settings.retention.days_for("src_a"), Some(7));
        assert_eq!(settings.retention.days_for("src_b"), Some(30));
        assert_eq!(
            settings.validate(&["src_a".into(), "src_b".into()], &[]),
            Ok(())
        );
        let none = parse(json!({"retention": {"sources": {"src_a": 7}}}));
        assert_eq!(none.retention.days_for("src_b"), None);
    }

    #[test]
    fn bad_settings_name_their_field() {
        for (value, field) in [
            (json!({"retention": {"days": 0}}), "retention.days"),
            (json!({"retention": {"days": 3651}}), "retention.days"),
            (
                json!({"retention": {"sources": {"src_gone": 7}}}),
                "retention.sources.src_gone",
            ),
            (
                json!({"retention": {"sources": {"src_a": 0}}}),
                "retention.sources.src_a",
            ),
            (
                json!({"children": {"enabled": true, "minimum_age": 0}}),
                "children.minimum_age",
            ),
            (
                json!({"pii": {"destinations": {"dst_gone": {"email": "hash"}}}}),
                "pii.destinations.dst_gone",
            ),
            (
                json!({"pii": {"classes": {"payment_card": "redact"},
                    "destinations": {"dst_a": {"payment_card": "allow"}}}}),
                "pii.destinations.dst_a.payment_card",
            ),
        ] {
            let error = parse(value.clone())
                .validate(&["src_a".into()], &["dst_a".into()])
                .expect_err("refused");
            assert_eq!(error.field, field, "{value}");
        }
        for value in [
            json!({"retention": {"days": "30"}}),
            json!({"retention": {"weeks": 3}}),
            json!({"children": {"enabled": "yes"}}),
            json!({"pii": {"classes": {"shoe_size": "hash"}}}),
            json!({"unknown": true}),
        ] {
            assert!(
                serde_json::from_value::<PrivacySettings>(value.clone()).is_err(),
                "{value}"
            );
        }
    }
}
