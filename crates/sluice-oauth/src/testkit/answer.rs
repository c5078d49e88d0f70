//! Readers of form-encoded requests the platform modules share (answers and the other
//! readers come from `sluice_destinations::testkit::answer`).

use sluice_destinations::testkit::Recorded;
use sluice_destinations::testkit::answer::content_type_is;

use crate::form;

/// The query's pairs, decoded (none when there is no query or it is broken).
pub(super) fn query(request: &Recorded) -> Vec<(String, String)> {
    request
        .query
        .as_deref()
        .and_then(form::parse)
        .unwrap_or_default()
}

/// A form body's pairs, decoded; `None` when it is not a form.
pub(super) fn form_body(request: &Recorded) -> Option<Vec<(String, String)>> {
    if !content_type_is(request, "application/x-www-form-urlencoded") {
        return None;
    }
    form::parse(std::str::from_utf8(&request.body).ok()?)
}
