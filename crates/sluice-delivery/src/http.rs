//! Sending one adapter request: a client per destination (its own connection pool, so a
//! hanging tool holds only its own connections), a time limit on every request, and an
//! answer read up to a bounded size.

use std::time::Duration;

use sluice_destinations::{HttpRequest, HttpResponse, Method};

/// The most of an answer that is read; the rest is dropped.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// A destination's HTTP client.
#[derive(Clone)]
pub struct Client {
    inner: reqwest::Client,
}

/// Why a request got no answer (the engine retries all of these).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Connect(String),
    #[error("request failed: {0}")]
    Other(String),
}

impl Client {
    /// A client whose requests end after `timeout` (connecting included). TLS is rustls with
    /// the platform's root certificates.
    pub fn new(timeout: Duration) -> Result<Client, TransportError> {
        let inner = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| TransportError::Other(error.to_string()))?;
        Ok(Client { inner })
    }

    /// Sends the request and reads the answer (at most 64 KiB of its body).
    pub async fn send(
        &self,
        request: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, TransportError> {
        let method = match request.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.inner.request(method, &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let mut response = builder
            .body(request.body)
            .send()
            .await
            .map_err(|error| classify(error, timeout))?;
        let status = response.status().as_u16();
        let mut headers = Vec::with_capacity(response.headers().len());
        for (name, value) in response.headers() {
            if let Ok(value) = value.to_str() {
                headers.push((name.as_str().to_ascii_lowercase(), value.to_owned()));
            }
        }
        let mut body = Vec::new();
        while body.len() < MAX_RESPONSE_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(error) => return Err(classify(error, timeout)),
            }
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

/// The URL is left out of the message: for some tools (Slack) it is the credential.
fn classify(error: reqwest::Error, timeout: Duration) -> TransportError {
    let error = error.without_url();
    if error.is_timeout() {
        TransportError::Timeout(timeout)
    } else if error.is_connect() {
        TransportError::Connect(error.to_string())
    } else {
        TransportError::Other(error.to_string())
    }
}
