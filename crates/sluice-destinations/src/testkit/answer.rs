//! An answer a fake gives, and small readers of the request shared by the tool fakes (and by
//! other crates' fakes, e.g. `sluice-oauth`'s).

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::server::Recorded;

/// Status, headers and body of one answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn new(status: u16, headers: Vec<(String, String)>, body: Vec<u8>) -> Answer {
        Answer {
            status,
            headers,
            body,
        }
    }

    /// A JSON answer.
    pub fn json(status: u16, body: &Value) -> Answer {
        Answer::new(
            status,
            vec![("content-type".into(), "application/json".into())],
            serde_json::to_vec(body).unwrap_or_default(),
        )
    }

    /// A plain-text answer.
    pub fn text(status: u16, body: &str) -> Answer {
        Answer::new(
            status,
            vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body.as_bytes().to_vec(),
        )
    }

    /// A `302 Found` to `location`.
    pub fn redirect(location: &str) -> Answer {
        Answer::new(302, vec![("location".into(), location.into())], Vec::new())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Answer {
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
pub fn content_type_is(request: &Recorded, expected: &str) -> bool {
    request
        .header("content-type")
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(expected))
}

/// The value of query parameter `name`.
pub fn query_param<'a>(request: &'a Recorded, name: &str) -> Option<&'a str> {
    request
        .query
        .as_deref()?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Milliseconds since the epoch, now.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A rate limit over a fixed one-second window.
#[derive(Debug)]
pub struct Rate {
    per_second: u32,
    window_start: std::time::Instant,
    count: u32,
}

impl Rate {
    /// At most `per_second` requests in each second from `start`.
    pub fn new(per_second: u32, start: std::time::Instant) -> Rate {
        Rate {
            per_second,
            window_start: start,
            count: 0,
        }
    }

    /// Counts a request; `Some(seconds to wait)` when it is over the limit.
    pub fn over(&mut self, now: std::time::Instant) -> Option<u64> {
        let second = std::time::Duration::from_secs(1);
        if now.duration_since(self.window_start) >= second {
            self.window_start = now;
            self.count = 0;
        }
        self.count += 1;
        if self.count <= self.per_second {
            return None;
        }
        let left = second.saturating_sub(now.duration_since(self.window_start));
        Some(left.as_secs() + u64::from(left.subsec_nanos() > 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn the_rate_window_counts_and_resets() {
        let start = Instant::now();
        let mut rate = Rate::new(2, start);
        assert_eq!(rate.over(start), None);
        assert_eq!(rate.over(start), None);
        assert_eq!(rate.over(start + Duration::from_millis(300)), Some(1));
        assert_eq!(rate.over(start + Duration::from_millis(1000)), None);
    }
}
