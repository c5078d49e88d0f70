//! Segment's destination filters: the FQL condition language and the filter actions.
//!
//! A destination filter says "when this FQL condition matches an event, drop it, sample it, or
//! remove some of its properties". This crate parses FQL (keeping byte positions for error
//! messages), evaluates it against events, compiles it to the IR Segment's browser engine
//! (`@segment/tsub`) runs, and applies a destination's filters to an event. It does no IO.
//!
//! Evaluation gives the answers tsub gives, JavaScript quirks included (`docs/filters.md` lists
//! them); the differential test `tests/tsub.rs` checks this against tsub itself.
//!
//! - [`lexer`] and [`parser`] turn text into the tree of [`ast`]; [`ParseError`] says where and
//!   what was expected.
//! - [`Query`] is a parsed, compiled condition: [`Query::matches`], [`Query::to_ir`].
//! - [`ir`] compiles the tree to tsub's IR.
//! - [`Action`], [`DestinationFilter`], [`apply`] and [`validate_filters`] are the filters the
//!   delivery engine runs per event and destination.
//!
//! ```
//! use serde_json::json;
//! use sluice_fql::{Action, DestinationFilter, apply};
//!
//! let filters = vec![
//!     DestinationFilter::new("no tests", "match(event, 'Test *')", vec![Action::Drop], true)?,
//!     DestinationFilter::new(
//!         "no emails",
//!         "all",
//!         vec![Action::DropProperties { fields: [("properties".into(), vec!["email".into()])].into() }],
//!         true,
//!     )?,
//! ];
//! assert_eq!(apply(&filters, json!({"event": "Test Event"})), None);
//! assert_eq!(
//!     apply(&filters, json!({"event": "Signed Up", "properties": {"email": "a@b.c", "plan": "pro"}})),
//!     Some(json!({"event": "Signed Up", "properties": {"plan": "pro"}})),
//! );
//! # Ok::<(), sluice_fql::FilterError>(())
//! ```

pub mod actions;
pub mod ast;
pub mod error;
mod eval;
pub mod filter;
mod functions;
pub mod glob;
pub mod ir;
mod js;
pub mod lexer;
pub mod parser;
pub mod query;
pub mod sample;

pub use actions::{Action, Fields};
pub use error::{FilterError, ParseError};
pub use filter::{
    DestinationFilter, MAX_FILTERS_PER_DESTINATION, MAX_TITLE_CHARS, apply, validate_filters,
};
pub use lexer::MAX_QUERY_BYTES;
pub use parser::MAX_DEPTH;
pub use query::Query;

/// Parses FQL text into a [`Query`].
pub fn parse(source: &str) -> Result<Query, ParseError> {
    Query::parse(source)
}
