//! An answer the fake gives, and readers of the request the platform modules share.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::server::Recorded;
use crate::form;

/// Status, headers and body of one answer.
#[derive(Clone, Debug)]
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Answer {
    pub(super) fn json(status: u16, body: &Value) -> Answer {
        Answer {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            )],
            body: body.to_string().into_bytes(),
        }
    }

    pub(super) fn text(status: u16, body: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// A `302 Found` to `location`.
    pub(super) fn redirect(location: &str) -> Answer {
        Answer {
            status: 302,
            headers: vec![("location".into(), location.into())],
            body: Vec::new(),
        }
    }

    pub(super) fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        for (name, value) in self.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                response.headers_mut().append(name, value);
            }
        }
        response
    }
}

/// Whether the request's `Content-Type` is `expected` (parameters such as `charset` ignored).
pub(super) fn content_type_is(request: &Recorded, expected: &str) -> bool {
    request
        .header("content-type")
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

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
