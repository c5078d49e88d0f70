//! The message model of the tracking API: identify, track, page, screen, group, alias and batch.
//!
//! This crate turns request bodies into normalized events, or into rejections that name the
//! offending field. It does no IO: the caller supplies the receive time, the client address and
//! the bytes, and gets back events ready to append to the log.
//!
//! - [`request`] splits a body into messages (a single call or a batch envelope) and enforces
//!   the size and count limits.
//! - [`normalize`] validates one message and fills in what the server owns: `messageId`,
//!   `receivedAt`, the skew-corrected `timestamp`, `context.ip`.
//! - [`timestamp`] parses and formats the ISO-8601 times the SDKs send.
//!
//! Fields this crate does not know survive unchanged: a message is kept as a JSON object and
//! only the fields named above are read or written.

pub mod kind;
pub mod normalize;
pub mod raw;
pub mod reject;
pub mod request;
pub mod timestamp;

pub use kind::MessageType;
pub use normalize::{Envelope, Event, Receipt, normalize};
pub use reject::{RejectCode, Rejection};
pub use request::{Limits, ParsedRequest, parse_batch, parse_single};
