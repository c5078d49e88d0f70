//! The one traversal of an event's user data, shared by [`scan`](super::scan),
//! [`fields`](super::fields) and [`apply`](super::apply): every field under `properties`,
//! `traits` and `context`, in document order, with its path, the steps that reach it and its
//! class.
//!
//! The walk only reads. A caller that changes the event notes the [`Step`]s to what it
//! changes and changes it once the walk is over.

use std::ops::ControlFlow;

use serde_json::Value;

use super::{PiiClass, classify, keys, values};

/// The parts of an event that carry user data.
const SCANNED: [&str; 3] = ["properties", "traits", "context"];

/// Deeper fields than this are not looked at (events are at most 32 KB, so this bounds
/// nothing real; it keeps a hostile nesting from costing a deep recursion).
const MAX_DEPTH: usize = 32;

/// One step from a value to one of its children.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// What the walk found at a place.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    /// A scalar (null included), or an empty object or array, with its class.
    Leaf {
        value: &'a Value,
        class: Option<PiiClass>,
    },
    /// An object under a secret key (`credentials: {…}`): secret as a whole, not entered.
    SecretObject,
    /// A value deeper than the walk goes: not looked at.
    TooDeep,
}

impl Node<'_> {
    /// The class of what was found (a secret object is secret; a value not looked at has
    /// none).
    pub(crate) fn class(&self) -> Option<PiiClass> {
        match self {
            Node::Leaf { class, .. } => *class,
            Node::SecretObject => Some(PiiClass::Secret),
            Node::TooDeep => None,
        }
    }
}

/// Where a node is.
pub(crate) struct Place<'w, 'a> {
    /// Dotted path from the event's root, arrays written `[]`
    /// (`properties.items[].email`); a key that itself looks like personal data is written
    /// `*`, so a path never carries a value used as a key.
    pub path: &'w str,
    /// The steps from the event's root to the node.
    pub steps: &'w [Step<'a>],
}

/// Calls `visit` for every node under the event's `properties`, `traits` and `context`, in
/// document order, until it breaks. A path inside an array is visited once per element.
pub(crate) fn walk<'a, F>(event: &'a Value, visit: F) -> ControlFlow<()>
where
    F: FnMut(&Place<'_, 'a>, Node<'a>) -> ControlFlow<()>,
{
    let Some(object) = event.as_object() else {
        return ControlFlow::Continue(());
    };
    let mut walker = Walker {
        path: String::new(),
        steps: Vec::new(),
        visit,
    };
    for part in SCANNED {
        if let Some((key, value)) = object.get_key_value(part) {
            walker.path.clear();
            walker.path.push_str(part);
            walker.steps.clear();
            walker.steps.push(Step::Key(key));
            walker.node(key, value, 0)?;
        }
    }
    ControlFlow::Continue(())
}

struct Walker<'a, F> {
    path: String,
    steps: Vec<Step<'a>>,
    visit: F,
}

impl<'a, F> Walker<'a, F>
where
    F: FnMut(&Place<'_, 'a>, Node<'a>) -> ControlFlow<()>,
{
    /// `key` is the last object key on the way: an array's elements are read under the
    /// array's key.
    fn node(&mut self, key: &'a str, value: &'a Value, depth: usize) -> ControlFlow<()> {
        if depth > MAX_DEPTH {
            return self.report(Node::TooDeep);
        }
        match value {
            Value::Object(_) if keys::class_of_key(key) == Some(PiiClass::Secret) => {
                self.report(Node::SecretObject)
            }
            Value::Object(fields) if !fields.is_empty() => {
                for (name, child) in fields {
                    let length = self.path.len();
                    self.path.push('.');
                    if values::class_of_value(name).is_some() {
                        self.path.push('*');
                    } else {
                        self.path.push_str(name);
                    }
                    self.steps.push(Step::Key(name));
                    let flow = self.node(name, child, depth + 1);
                    self.steps.pop();
                    self.path.truncate(length);
                    flow?;
                }
                ControlFlow::Continue(())
            }
            Value::Array(items) if !items.is_empty() => {
                let length = self.path.len();
                self.path.push_str("[]");
                let mut flow = ControlFlow::Continue(());
                for (index, item) in items.iter().enumerate() {
                    self.steps.push(Step::Index(index));
                    flow = self.node(key, item, depth + 1);
                    self.steps.pop();
                    if flow.is_break() {
                        break;
                    }
                }
                self.path.truncate(length);
                flow
            }
            leaf => self.report(Node::Leaf {
                value: leaf,
                class: classify(key, leaf),
            }),
        }
    }

    fn report(&mut self, node: Node<'a>) -> ControlFlow<()> {
        let place = Place {
            path: &self.path,
            steps: &self.steps,
        };
        (self.visit)(&place, node)
    }
}
