//! The PII policy: what a workspace does with each class of personal data, and doing it.
//!
//! A [`PiiPolicy`] gives each [`PiiClass`] a [`PiiAction`] — allow, hash (keyed), redact or
//! block the whole event — and lets destinations override it. Two places apply it:
//! - the ingest gate, before an event is stored: the workspace's `redact` and `block` classes
//!   ([`PiiPolicy::gate`]). What the gate removes is gone for every destination, so a
//!   destination can only be stricter about those classes ([`PiiPolicy::validate`]);
//! - delivery, per destination ([`PiiPolicy::for_destination`]): `hash`, and a destination's
//!   own overrides. A workspace's `hash` may be loosened to `allow` for one destination (a
//!   trusted warehouse) or tightened.
//!
//! [`apply`] does a set of [`Rules`] to an event, over the fields [`scan`](super::scan) looks
//! at. A hash is the lowercase hex HMAC-SHA-256 of the trimmed value (emails also
//! lowercased), so one person hashes the same everywhere under one key; applying twice
//! changes nothing more.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::PiiClass;
use super::walk::{self, Node, Place, Step};
use crate::keyed::hmac_sha256;

/// What is done with a class of personal data, from the loosest to the strictest.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum PiiAction {
    /// Left as it is.
    #[default]
    Allow,
    /// Replaced by a keyed hash of its value.
    Hash,
    /// Removed from the event.
    Redact,
    /// The whole event is refused.
    Block,
}

impl PiiAction {
    pub const ALL: [PiiAction; 4] = [
        PiiAction::Allow,
        PiiAction::Hash,
        PiiAction::Redact,
        PiiAction::Block,
    ];

    /// The stable name used in policies and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAction::Allow => "allow",
            PiiAction::Hash => "hash",
            PiiAction::Redact => "redact",
            PiiAction::Block => "block",
        }
    }

    /// Done at the ingest gate, before the event is stored, when the workspace decides it.
    fn at_gate(self) -> bool {
        matches!(self, PiiAction::Redact | PiiAction::Block)
    }
}

/// A workspace's PII policy. Missing classes are allowed; both fields default to empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PiiPolicy {
    /// The workspace's action per class.
    pub classes: BTreeMap<PiiClass, PiiAction>,
    /// Overrides per destination id.
    pub destinations: BTreeMap<String, BTreeMap<PiiClass, PiiAction>>,
}

/// A policy that cannot be applied as written, naming the field at fault
/// (`pii.destinations.dst_abc.payment_card`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {message}")]
pub struct PolicyError {
    pub field: String,
    pub message: String,
}

impl PiiPolicy {
    /// The workspace's action for a class (allow when the policy does not name it).
    pub fn action(&self, class: PiiClass) -> PiiAction {
        self.classes.get(&class).copied().unwrap_or_default()
    }

    /// Refuses a destination override that loosens what the workspace does at the gate: a
    /// class the workspace redacts or blocks is gone before events are stored.
    pub fn validate(&self) -> Result<(), PolicyError> {
        for (destination, overrides) in &self.destinations {
            if destination.trim().is_empty() {
                return Err(PolicyError {
                    field: "pii.destinations".to_owned(),
                    message: "a destination id must not be empty".to_owned(),
                });
            }
            for (&class, &action) in overrides {
                let workspace = self.action(class);
                if !workspace.at_gate() || action >= workspace {
                    continue;
                }
                let done = match workspace {
                    PiiAction::Block => "blocks events with",
                    _ => "redacts",
                };
                return Err(PolicyError {
                    field: format!("pii.destinations.{destination}.{}", class.as_str()),
                    message: format!(
                        "the workspace {done} {} before events are stored; a destination can \
                         only be stricter",
                        class.as_str()
                    ),
                });
            }
        }
        Ok(())
    }

    /// What the ingest gate applies: the workspace's `redact` and `block` classes. `None`
    /// when the gate has nothing to do.
    pub fn gate(&self) -> Option<Rules> {
        let mut rules = Rules::default();
        for class in PiiClass::ALL {
            let action = self.action(class);
            if action.at_gate() {
                rules.set(class, action);
            }
        }
        rules.some()
    }

    /// What delivery to one destination applies: the destination's override of a class, else
    /// the workspace's action — except for classes the gate already redacted or blocked,
    /// which only a stricter override (`block`) touches again. `None` when everything is
    /// allowed.
    pub fn for_destination(&self, destination_id: &str) -> Option<Rules> {
        let overrides = self.destinations.get(destination_id);
        let mut rules = Rules::default();
        for class in PiiClass::ALL {
            let workspace = self.action(class);
            let chosen = overrides.and_then(|overrides| overrides.get(&class).copied());
            let action = if workspace.at_gate() {
                match chosen {
                    Some(action) if action > workspace => action,
                    _ => PiiAction::Allow,
                }
            } else {
                chosen.unwrap_or(workspace)
            };
            rules.set(class, action);
        }
        rules.some()
    }
}

/// One action per class; everything allowed by default.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    actions: [PiiAction; PiiClass::ALL.len()],
}

impl Rules {
    pub fn action(&self, class: PiiClass) -> PiiAction {
        self.actions[class.index()]
    }

    pub fn set(&mut self, class: PiiClass, action: PiiAction) {
        self.actions[class.index()] = action;
    }

    /// Whether every class is allowed.
    pub fn allows_all(&self) -> bool {
        self.actions
            .iter()
            .all(|action| *action == PiiAction::Allow)
    }

    fn some(self) -> Option<Rules> {
        (!self.allows_all()).then_some(self)
    }
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for class in PiiClass::ALL {
            map.entry(&class.as_str(), &self.action(class).as_str());
        }
        map.finish()
    }
}

/// What [`apply`] did to an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Unchanged,
    /// Fields were hashed or removed.
    Changed,
    /// The event holds a blocked class: it must not go on. Named by the first such field
    /// (its path, never its value).
    Blocked {
        path: String,
        class: PiiClass,
    },
}

/// Applies `rules` to the fields of `event` that [`scan`](super::scan) looks at, with the same
/// classification:
/// - `block`: [`Applied::Blocked`] at the first blocked field (the event is left as it was);
/// - `redact`: the field is removed from its object, or from its array; a secret object
///   (`credentials: {…}`) as a whole;
/// - `hash`: a string or number becomes the lowercase hex HMAC-SHA-256 under `hash_key` of its
///   trimmed text (an email's also lowercased); a value that already is 64 lowercase hex
///   digits is left alone, so applying twice hashes once. A secret object cannot be hashed:
///   it is removed.
///
/// A part nested deeper than the classification looks is removed when any class is not
/// allowed: it cannot be checked, so it does not pass.
pub fn apply(rules: &Rules, event: &mut Value, hash_key: &[u8]) -> Applied {
    if rules.allows_all() {
        return Applied::Unchanged;
    }
    let mut edits: Vec<Edit> = Vec::new();
    let mut blocked = None;
    let _ = walk::walk(event, |place, node| {
        let class = match node {
            Node::TooDeep => {
                edits.push(Edit::new(place, Change::Remove));
                return ControlFlow::Continue(());
            }
            _ => node.class(),
        };
        let Some(class) = class else {
            return ControlFlow::Continue(());
        };
        match rules.action(class) {
            PiiAction::Allow => {}
            PiiAction::Block => {
                blocked = Some(Applied::Blocked {
                    path: place.path.to_owned(),
                    class,
                });
                return ControlFlow::Break(());
            }
            PiiAction::Redact => edits.push(Edit::new(place, Change::Remove)),
            PiiAction::Hash => match node {
                Node::Leaf { value, .. } => {
                    if let Some(hashed) = hashed(value, class, hash_key) {
                        edits.push(Edit::new(place, Change::Replace(hashed)));
                    }
                }
                Node::SecretObject | Node::TooDeep => {
                    edits.push(Edit::new(place, Change::Remove));
                }
            },
        }
        ControlFlow::Continue(())
    });
    if let Some(blocked) = blocked {
        return blocked;
    }
    // The walk found the fields in document order and none inside another: changed from the
    // last to the first, a removal from an array never moves an element still to change.
    let mut changed = false;
    while let Some(edit) = edits.pop() {
        changed |= edit.apply(event);
    }
    if changed {
        Applied::Changed
    } else {
        Applied::Unchanged
    }
}

/// A step from the root of the event, owned so the event can change once the walk is over.
#[derive(Debug)]
enum At {
    Key(String),
    Index(usize),
}

#[derive(Debug)]
enum Change {
    Remove,
    Replace(String),
}

/// A change noted during the walk.
#[derive(Debug)]
struct Edit {
    steps: Vec<At>,
    change: Change,
}

impl Edit {
    fn new(place: &Place<'_, '_>, change: Change) -> Edit {
        let mut steps = Vec::with_capacity(place.steps.len());
        for step in place.steps {
            steps.push(match *step {
                Step::Key(key) => At::Key(key.to_owned()),
                Step::Index(index) => At::Index(index),
            });
        }
        Edit { steps, change }
    }

    /// Makes the change; whether the place was found.
    fn apply(self, event: &mut Value) -> bool {
        let Some((last, parents)) = self.steps.split_last() else {
            return false;
        };
        let mut parent = event;
        for step in parents {
            let child = match step {
                At::Key(key) => parent.get_mut(key.as_str()),
                At::Index(index) => parent.get_mut(*index),
            };
            match child {
                Some(child) => parent = child,
                None => return false,
            }
        }
        match (self.change, last) {
            (Change::Remove, At::Key(key)) => match parent.as_object_mut() {
                Some(object) => object.shift_remove(key.as_str()).is_some(),
                None => false,
            },
            (Change::Remove, At::Index(index)) => match parent.as_array_mut() {
                Some(items) if *index < items.len() => {
                    items.remove(*index);
                    true
                }
                _ => false,
            },
            (Change::Replace(text), at) => {
                let slot = match at {
                    At::Key(key) => parent.get_mut(key.as_str()),
                    At::Index(index) => parent.get_mut(*index),
                };
                match slot {
                    Some(slot) => {
                        *slot = Value::String(text);
                        true
                    }
                    None => false,
                }
            }
        }
    }
}

/// The keyed hash of a scalar's normalised text; `None` when there is nothing to hash or the
/// value already is a hash.
fn hashed(value: &Value, class: PiiClass, key: &[u8]) -> Option<String> {
    let text = match value {
        Value::String(text) => {
            if is_hash(text) {
                return None;
            }
            text.trim().to_owned()
        }
        Value::Number(number) => number.to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => return None,
    };
    let normalised = if class == PiiClass::Email {
        text.to_lowercase()
    } else {
        text
    };
    Some(keyed_hash(key, &normalised))
}

/// Lowercase hex HMAC-SHA-256 of `text` under `key`.
fn keyed_hash(key: &[u8], text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in hmac_sha256(key, &[text.as_bytes()]) {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// 64 lowercase hex digits: what [`keyed_hash`] writes.
fn is_hash(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests;
