//! Identity resolution settings: which identifier types exist, their limits, their priority and
//! their blocked values.
//!
//! The list order is the priority: the first type is the most trusted, and when an event would
//! break a limit the resolver drops the event's identifier that comes last in the list. Types
//! not in the list (seen in `context.externalIds`) rank after every listed type, by name, with
//! a limit of 5 a year.
//!
//! Defaults follow Segment's guidance: `user_id` 1 ever, `anonymous_id` and `ga_client_id` 5 a
//! week (they rotate), every other type 5 a year; `user_id` first, `email` second, the rest
//! alphabetically. No value is blocked unless configured.

use std::collections::{HashMap, HashSet};

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::identifier::{self, Identifier};

/// Segment's cap on merges into one profile: past it, events still resolve but nothing merges.
pub const MAX_MERGES: u32 = 100;
/// Segment's cap on identifiers of one profile: past it, no identifier is added.
pub const MAX_IDENTIFIERS: u32 = 1_000;
/// At most this many identifier types per workspace.
pub const MAX_TYPES: usize = 50;
/// A limit above this is refused.
pub const MAX_LIMIT: u32 = 1_000;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The window a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Window {
    Ever,
    Weekly,
    Monthly,
    Annually,
}

impl Window {
    /// The window's length; `None` for ever.
    pub fn millis(self) -> Option<i64> {
        match self {
            Window::Ever => None,
            Window::Weekly => Some(7 * DAY_MS),
            Window::Monthly => Some(30 * DAY_MS),
            Window::Annually => Some(365 * DAY_MS),
        }
    }
}

/// The settings of one identifier type, as stored and as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifierRule {
    #[serde(rename = "type")]
    pub kind: String,
    /// At most this many values of the type on one profile within the window.
    pub limit: u32,
    pub window: Window,
    /// Values never promoted to identifiers (they stay in the event).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_values: Vec<String>,
    /// Regular expressions; a value any of them matches is blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked_patterns: Vec<String>,
    /// Custom types only: where the value is read, as dot paths starting with `traits.`,
    /// `context.traits.` or `properties.` (the first one present wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
}

impl IdentifierRule {
    fn new(kind: &str, limit: u32, window: Window) -> IdentifierRule {
        IdentifierRule {
            kind: kind.to_string(),
            limit,
            window,
            blocked_values: Vec::new(),
            blocked_patterns: Vec::new(),
            paths: Vec::new(),
        }
    }
}

/// A workspace's identity resolution settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentitySettings {
    /// In priority order, most trusted first.
    pub identifiers: Vec<IdentifierRule>,
}

impl Default for IdentitySettings {
    fn default() -> IdentitySettings {
        use identifier::*;
        let mut rest: Vec<&str> = BUILT_IN
            .iter()
            .copied()
            .filter(|kind| *kind != USER_ID && *kind != EMAIL)
            .collect();
        rest.sort_unstable();
        let mut identifiers = vec![
            IdentifierRule::new(USER_ID, 1, Window::Ever),
            IdentifierRule::new(EMAIL, 5, Window::Annually),
        ];
        for kind in rest {
            let window = if kind == ANONYMOUS_ID || kind == GA_CLIENT_ID {
                Window::Weekly
            } else {
                Window::Annually
            };
            identifiers.push(IdentifierRule::new(kind, 5, window));
        }
        IdentitySettings { identifiers }
    }
}

/// Settings refused, naming the field (`identifiers[2].limit`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: String,
    pub message: String,
}

fn refuse(field: String, message: impl Into<String>) -> SettingsError {
    SettingsError {
        field,
        message: message.into(),
    }
}

/// One type's compiled rule.
#[derive(Debug)]
struct Compiled {
    limit: u32,
    window_ms: Option<i64>,
    priority: usize,
    blocked_values: HashSet<String>,
    blocked_patterns: Vec<Regex>,
}

/// A custom identifier type read from the message.
#[derive(Debug, Clone)]
pub struct CustomType {
    pub kind: String,
    /// Each path split on dots.
    pub paths: Vec<Vec<String>>,
}

/// Settings ready to use: validated, patterns compiled, lookups by type.
#[derive(Debug)]
pub struct Rules {
    by_kind: HashMap<String, Compiled>,
    custom: Vec<CustomType>,
    unlimited: bool,
    pub max_merges: u32,
    pub max_identifiers: u32,
}

const DEFAULT_LIMIT: u32 = 5;
const DEFAULT_WINDOW: Window = Window::Annually;
const PATH_PREFIXES: [&str; 3] = ["traits.", "context.traits.", "properties."];

impl Rules {
    /// Validates and compiles settings.
    pub fn compile(settings: &IdentitySettings) -> Result<Rules, SettingsError> {
        if settings.identifiers.len() > MAX_TYPES {
            return Err(refuse(
                "identifiers".into(),
                format!("at most {MAX_TYPES} identifier types"),
            ));
        }
        let mut by_kind = HashMap::new();
        let mut custom = Vec::new();
        for (index, rule) in settings.identifiers.iter().enumerate() {
            let field = |name: &str| format!("identifiers[{index}].{name}");
            if !identifier::valid_kind(&rule.kind) {
                return Err(refuse(
                    field("type"),
                    "must be 1 to 64 lowercase letters, digits, '_' or '.'",
                ));
            }
            if by_kind.contains_key(&rule.kind) {
                return Err(refuse(
                    field("type"),
                    format!("'{}' is listed twice", rule.kind),
                ));
            }
            if rule.limit == 0 || rule.limit > MAX_LIMIT {
                return Err(refuse(field("limit"), format!("must be 1 to {MAX_LIMIT}")));
            }
            let mut blocked_patterns = Vec::new();
            for (p, pattern) in rule.blocked_patterns.iter().enumerate() {
                let compiled = regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        refuse(
                            field(&format!("blocked_patterns[{p}]")),
                            first_line(&e.to_string()),
                        )
                    })?;
                blocked_patterns.push(compiled);
            }
            let built_in = identifier::BUILT_IN.contains(&rule.kind.as_str());
            if built_in && !rule.paths.is_empty() {
                return Err(refuse(
                    field("paths"),
                    "built-in types are read from their fixed places",
                ));
            }
            let mut paths = Vec::new();
            for (p, path) in rule.paths.iter().enumerate() {
                let known_prefix = PATH_PREFIXES.iter().any(|prefix| {
                    path.strip_prefix(prefix)
                        .is_some_and(|rest| !rest.is_empty())
                });
                let segments: Vec<String> = path.split('.').map(str::to_string).collect();
                if !known_prefix || segments.len() > 8 || segments.iter().any(String::is_empty) {
                    return Err(refuse(
                        field(&format!("paths[{p}]")),
                        "must be a dot path under traits., context.traits. or properties. (at most 8 parts)",
                    ));
                }
                paths.push(segments);
            }
            if !paths.is_empty() {
                custom.push(CustomType {
                    kind: rule.kind.clone(),
                    paths,
                });
            }
            by_kind.insert(
                rule.kind.clone(),
                Compiled {
                    limit: rule.limit,
                    window_ms: rule.window.millis(),
                    priority: index,
                    blocked_values: rule.blocked_values.iter().cloned().collect(),
                    blocked_patterns,
                },
            );
        }
        Ok(Rules {
            by_kind,
            custom,
            unlimited: false,
            max_merges: MAX_MERGES,
            max_identifiers: MAX_IDENTIFIERS,
        })
    }

    /// Rules with no limits and no caps: resolution becomes a plain union of identifiers.
    pub fn unlimited() -> Rules {
        let mut rules =
            Rules::compile(&IdentitySettings::default()).expect("the defaults are valid");
        rules.unlimited = true;
        rules.max_merges = u32::MAX;
        rules.max_identifiers = u32::MAX;
        rules
    }

    /// The limit of a type and its window (`None`: ever); `None` when there is no limit.
    pub fn limit(&self, kind: &str) -> Option<(u32, Option<i64>)> {
        if self.unlimited {
            return None;
        }
        match self.by_kind.get(kind) {
            Some(rule) => Some((rule.limit, rule.window_ms)),
            None => Some((DEFAULT_LIMIT, DEFAULT_WINDOW.millis())),
        }
    }

    /// The rank of a type: lower is more trusted. Unlisted types rank after every listed one.
    pub fn priority(&self, kind: &str) -> usize {
        self.by_kind
            .get(kind)
            .map_or(self.by_kind.len(), |rule| rule.priority)
    }

    /// Whether the value is blocked for its type.
    pub fn is_blocked(&self, id: &Identifier) -> bool {
        let Some(rule) = self.by_kind.get(&id.kind) else {
            return false;
        };
        rule.blocked_values.contains(&id.value)
            || rule
                .blocked_patterns
                .iter()
                .any(|re| re.is_match(&id.value))
    }

    /// Custom types read from trait or property paths.
    pub fn custom_types(&self) -> &[CustomType] {
        &self.custom
    }

    /// Orders identifiers from most to least trusted (by priority, then type name, then value).
    pub fn sort_by_priority(&self, ids: &mut [Identifier]) {
        ids.sort_by(|a, b| {
            (self.priority(&a.kind), &a.kind, &a.value).cmp(&(
                self.priority(&b.kind),
                &b.kind,
                &b.value,
            ))
        });
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_rank_user_id_then_email_then_alphabetical() {
        let settings = IdentitySettings::default();
        let kinds: Vec<&str> = settings
            .identifiers
            .iter()
            .map(|r| r.kind.as_str())
            .collect();
        assert_eq!(
            &kinds[..4],
            &["user_id", "email", "android.id", "android.idfa"]
        );
        let rules = Rules::compile(&settings).unwrap();
        assert_eq!(rules.limit("user_id"), Some((1, None)));
        assert_eq!(rules.limit("anonymous_id"), Some((5, Some(7 * DAY_MS))));
        assert_eq!(rules.limit("email"), Some((5, Some(365 * DAY_MS))));
        assert!(rules.priority("user_id") < rules.priority("email"));
        assert!(rules.priority("email") < rules.priority("anonymous_id"));
        assert_eq!(rules.priority("made_up"), settings.identifiers.len());
        assert_eq!(rules.limit("made_up"), Some((5, Some(365 * DAY_MS))));
    }

    #[test]
    fn blocked_values_exact_and_patterns() {
        let mut settings = IdentitySettings::default();
        settings.identifiers[0].blocked_values = vec!["-1".into(), "null".into()];
        settings.identifiers[0].blocked_patterns = vec!["^[0-]*$".into()];
        let rules = Rules::compile(&settings).unwrap();
        for value in ["-1", "null", "000-000", "", "0"] {
            assert!(
                rules.is_blocked(&Identifier::new("user_id", value)),
                "{value}"
            );
        }
        for value in ["u1", "-10", "nulls", "0a"] {
            assert!(
                !rules.is_blocked(&Identifier::new("user_id", value)),
                "{value}"
            );
        }
        assert!(!rules.is_blocked(&Identifier::new("email", "-1")));
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let mut settings = IdentitySettings::default();
        settings.identifiers[1].limit = 0;
        assert_eq!(
            Rules::compile(&settings).unwrap_err().field,
            "identifiers[1].limit"
        );

        let mut settings = IdentitySettings::default();
        settings.identifiers[2].blocked_patterns = vec!["(".into()];
        assert_eq!(
            Rules::compile(&settings).unwrap_err().field,
            "identifiers[2].blocked_patterns[0]"
        );

        let mut settings = IdentitySettings::default();
        settings.identifiers.push(settings.identifiers[0].clone());
        let err = Rules::compile(&settings).unwrap_err();
        assert_eq!(
            err.field,
            format!("identifiers[{}].type", settings.identifiers.len() - 1)
        );
        assert!(err.message.contains("twice"));

        let mut settings = IdentitySettings::default();
        settings.identifiers[0].paths = vec!["traits.id".into()];
        assert_eq!(
            Rules::compile(&settings).unwrap_err().field,
            "identifiers[0].paths"
        );

        let mut settings = IdentitySettings::default();
        let mut custom = IdentifierRule::new("Customer", 1, Window::Ever);
        settings.identifiers.push(custom.clone());
        assert!(
            Rules::compile(&settings)
                .unwrap_err()
                .field
                .ends_with(".type")
        );
        custom.kind = "customer_number".into();
        custom.paths = vec!["body.customer".into()];
        settings.identifiers.pop();
        settings.identifiers.push(custom.clone());
        assert!(
            Rules::compile(&settings)
                .unwrap_err()
                .field
                .ends_with(".paths[0]")
        );
        custom.paths = vec![
            "traits.customer_number".into(),
            "properties.customer.number".into(),
        ];
        settings.identifiers.pop();
        settings.identifiers.push(custom);
        let rules = Rules::compile(&settings).unwrap();
        assert_eq!(
            rules.custom_types()[0].paths[1],
            vec!["properties", "customer", "number"]
        );
    }

    #[test]
    fn settings_json_refuses_unknown_fields_and_windows() {
        let bad = r#"{"identifiers":[{"type":"user_id","limit":1,"window":"daily"}]}"#;
        assert!(serde_json::from_str::<IdentitySettings>(bad).is_err());
        let bad = r#"{"identifiers":[{"type":"user_id","limit":1,"window":"ever","colour":1}]}"#;
        assert!(serde_json::from_str::<IdentitySettings>(bad).is_err());
        let good = serde_json::to_string(&IdentitySettings::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<IdentitySettings>(&good).unwrap(),
            IdentitySettings::default()
        );
    }
}
