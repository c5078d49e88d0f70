//! Prometheus metrics: their names, the process-wide recorder, `/metrics`, and the request
//! latency middleware.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `sluice_events_accepted_total` | counter | `source` |
//! | `sluice_events_rejected_total` | counter | `source` (`unknown` before authentication), `reason` (an error code) |
//! | `sluice_events_deduplicated_total` | counter | `source` |
//! | `sluice_http_request_duration_seconds` | histogram | `route`, `method`, `status` |
//! | `sluice_log_commit_events` | histogram | — (events per group commit) |
//! | `sluice_log_commit_seconds` | histogram | — (transaction + fsync time) |

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const EVENTS_ACCEPTED: &str = "sluice_events_accepted_total";
pub const EVENTS_REJECTED: &str = "sluice_events_rejected_total";
pub const EVENTS_DEDUPLICATED: &str = "sluice_events_deduplicated_total";
/// Times the idle node gave its caches back (`idle.rs`).
pub const IDLE_RELEASES: &str = "sluice_idle_releases_total";
pub const HTTP_REQUEST_DURATION: &str = "sluice_http_request_duration_seconds";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it). `None` when
/// another recorder was installed first.
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let latency = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ];
            let counts = [
                1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &latency)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(sluice_store::log::sqlite::METRIC_COMMIT_EVENTS.into()),
                        &counts,
                    )
                });
            match builder.and_then(|b| b.install_recorder()) {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(%error, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// `GET /metrics`: the Prometheus text format.
pub async fn render(handle: Option<PrometheusHandle>) -> Response {
    let body = handle.map(|h| h.render()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Records every request's latency by route template, method and status.
pub async fn track_latency(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    metrics::histogram!(
        HTTP_REQUEST_DURATION,
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string(),
    )
    .record(started.elapsed().as_secs_f64());
    response
}
