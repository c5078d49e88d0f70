//! [`Query`]: FQL parsed once, then evaluated against many events.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use crate::ast::{Expr, ExprKind, Root};
use crate::error::ParseError;
use crate::eval::Program;
use crate::{ir, parser};

/// A parsed and compiled FQL query.
///
/// ```
/// let query = sluice_fql::parse(r#"type = "track" and event = "Order Completed""#)?;
/// assert!(query.matches(&serde_json::json!({"type": "track", "event": "Order Completed"})));
/// assert_eq!(query.to_string(), r#"type = "track" and event = "Order Completed""#);
/// # Ok::<(), sluice_fql::ParseError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Query {
    root: Root,
    /// `None` for `all`.
    program: Option<Program>,
}

impl Query {
    /// Parses FQL text (at most [`MAX_QUERY_BYTES`](crate::MAX_QUERY_BYTES)).
    pub fn parse(source: &str) -> Result<Query, ParseError> {
        parser::parse(source).map(Query::from_root)
    }

    /// A query from a tree built by hand.
    pub fn from_root(root: Root) -> Query {
        let program = match &root {
            Root::All => None,
            Root::Expr(expr) => Some(Program::compile(expr)),
        };
        Query { root, program }
    }

    /// The syntax tree.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// Whether this is `all`.
    pub fn is_all(&self) -> bool {
        self.program.is_none()
    }

    /// Whether `event` matches, as Segment's engine decides it.
    pub fn matches(&self, event: &Value) -> bool {
        self.program.as_ref().is_none_or(|p| p.matches(event))
    }

    /// The tsub IR (`None` for `all`).
    pub fn to_ir(&self) -> Option<Value> {
        ir::compile_root(&self.root)
    }

    /// The tsub matcher: `{"type": "fql", "ir": "<IR text>"}` or `{"type": "all", "ir": ""}`.
    pub fn to_matcher(&self) -> Value {
        ir::matcher(&self.root)
    }

    /// Whether Segment's browser engine can evaluate this query: it calls only functions tsub
    /// knows (see [`Func::in_tsub`](crate::ast::Func::in_tsub)).
    pub fn tsub_compatible(&self) -> bool {
        match &self.root {
            Root::All => true,
            Root::Expr(expr) => tsub_compatible(expr),
        }
    }
}

fn tsub_compatible(expr: &Expr) -> bool {
    match &expr.kind {
        ExprKind::Or(items) | ExprKind::And(items) | ExprKind::List(items) => {
            items.iter().all(tsub_compatible)
        }
        ExprKind::Not(inner) => tsub_compatible(inner),
        ExprKind::Compare(_, left, right) => tsub_compatible(left) && tsub_compatible(right),
        ExprKind::In(item, list) => tsub_compatible(item) && list.iter().all(tsub_compatible),
        ExprKind::Call(func, args) => func.in_tsub() && args.iter().all(tsub_compatible),
        ExprKind::Path(_)
        | ExprKind::Str(_)
        | ExprKind::Num(_)
        | ExprKind::Bool(_)
        | ExprKind::Null => true,
    }
}

impl PartialEq for Query {
    fn eq(&self, other: &Query) -> bool {
        self.root == other.root
    }
}

/// The canonical FQL text, which parses back to the same query.
impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.root.fmt(f)
    }
}

impl FromStr for Query {
    type Err = ParseError;

    fn from_str(source: &str) -> Result<Query, ParseError> {
        Query::parse(source)
    }
}
