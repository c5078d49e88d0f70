//! An answer a fake gives, and small readers of the request shared by the tool fakes.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::server::Recorded;

/// Status, headers and body of one answer.
#[derive(Clone, Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Answer {
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A JSON answer.
    pub(crate) fn json(status: u16, body: &Value) -> Answer {
        Answer::new(
            status,
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(body).unwrap_or_default(),
        )
    }

    /// A plain-text answer.
    pub(crate) fn text(status: u16, body: &str) -> Answer {
        Answer::new(
            status,
            vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body.as_bytes().to_vec(),
        )
    }

    /// Adds a header.
    pub(crate) fn with_header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
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
pub(crate) fn content_type_is(request: &Recorded, expected: &str) -> bool {
    request
        .header("content-type")
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// The value of query parameter `name`.
pub(crate) fn query_param<'a>(request: &'a Recorded, name: &str) -> Option<&'a str> {
    request
        .query
        .as_deref()?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Milliseconds since the epoch, now.
pub(crate) fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}
