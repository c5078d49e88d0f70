//! The delivery benchmark's destination: a minimal HTTP server standing in for a tool. It
//! takes webhook posts (one event or a JSON array of events), counts the events, and measures
//! each one's latency from Sluice's `receivedAt` to its arrival here (same machine, same
//! clock). `--behaviour` makes it a failing neighbour instead: 500 for everything, or never
//! answering.
//!
//! `GET /stats` answers `{"events":N,"requests":N,"p50_ms":..,"p99_ms":..,"max_ms":..}` over
//! the events since the last `POST /reset`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::TcpListener;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Behaviour {
    /// Answer 200 to everything.
    Ok,
    /// Answer 500 to everything.
    Fail,
    /// Never answer (until the client gives up).
    Hang,
}

#[derive(Debug, Clone, clap::Args)]
pub struct SinkArgs {
    /// Loopback address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: SocketAddr,
    #[arg(long, value_enum, default_value_t = Behaviour::Ok)]
    pub behaviour: Behaviour,
    /// Worker threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Exit after this many seconds, so a forgotten server does not run forever.
    #[arg(long, default_value_t = 900)]
    pub max_seconds: u64,
}

#[derive(Default)]
struct Stats {
    requests: u64,
    /// Latency of each event since the last reset, in microseconds.
    latencies_us: Vec<u32>,
}

type Shared = Arc<Mutex<Stats>>;

/// The `receivedAt` of every event in a body, found by a plain search (no JSON parse: the
/// sink should cost as little as possible on a machine it shares with Sluice).
fn received_ats(body: &[u8]) -> Vec<OffsetDateTime> {
    const KEY: &[u8] = b"\"receivedAt\":\"";
    let mut found = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.windows(KEY.len()).position(|w| w == KEY) {
        rest = &rest[at + KEY.len()..];
        let end = rest.iter().position(|b| *b == b'"').unwrap_or(0);
        if let Ok(text) = std::str::from_utf8(&rest[..end])
            && let Ok(time) = OffsetDateTime::parse(text, &Rfc3339)
        {
            found.push(time);
        }
        rest = &rest[end..];
    }
    found
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[index]) / 1e3
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
}

async fn answer(
    request: Request<Incoming>,
    stats: Shared,
    behaviour: Behaviour,
) -> Result<Response<Full<Bytes>>, Infallible> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/stats") => {
            let mut latencies = match stats.lock() {
                Ok(stats) => (stats.latencies_us.clone(), stats.requests),
                Err(_) => (Vec::new(), 0),
            };
            latencies.0.sort_unstable();
            let body = serde_json::json!({
                "events": latencies.0.len(),
                "requests": latencies.1,
                "p50_ms": percentile(&latencies.0, 0.50),
                "p99_ms": percentile(&latencies.0, 0.99),
                "max_ms": percentile(&latencies.0, 1.0),
            });
            return Ok(json(StatusCode::OK, body.to_string()));
        }
        (&Method::POST, "/reset") => {
            if let Ok(mut stats) = stats.lock() {
                *stats = Stats::default();
            }
            return Ok(json(StatusCode::OK, "{}".into()));
        }
        _ => {}
    }
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return Ok(json(StatusCode::BAD_REQUEST, "{}".into())),
    };
    if behaviour != Behaviour::Ok
        && let Ok(mut stats) = stats.lock()
    {
        stats.requests += 1;
    }
    match behaviour {
        Behaviour::Ok => {}
        Behaviour::Fail => return Ok(json(StatusCode::INTERNAL_SERVER_ERROR, "{}".into())),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
    }
    let now = OffsetDateTime::now_utc();
    let times = received_ats(&body);
    if let Ok(mut stats) = stats.lock() {
        stats.requests += 1;
        for time in times {
            let micros = (now - time)
                .whole_microseconds()
                .clamp(0, i128::from(u32::MAX));
            stats.latencies_us.push(micros as u32);
        }
    }
    Ok(json(StatusCode::OK, "{\"ok\":true}".into()))
}

pub fn serve(args: SinkArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!("the sink listens on loopback addresses only");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    let stats: Shared = Arc::default();
    runtime.block_on(async move {
        let listener = TcpListener::bind(args.listen).await?;
        eprintln!("sink listening on {}", listener.local_addr()?);
        let stop = tokio::time::sleep(Duration::from_secs(args.max_seconds));
        tokio::pin!(stop);
        loop {
            let (stream, _) = tokio::select! {
                accepted = listener.accept() => accepted?,
                () = &mut stop => return Ok(()),
            };
            stream.set_nodelay(true)?;
            let stats = Arc::clone(&stats);
            let behaviour = args.behaviour;
            tokio::spawn(async move {
                let service =
                    service_fn(move |request| answer(request, Arc::clone(&stats), behaviour));
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_received_at() {
        let body = br#"[{"a":1,"receivedAt":"2026-11-23T10:00:00.000Z"},{"receivedAt":"2026-11-23T10:00:01.500Z"},{"receivedAt":"nonsense"}]"#;
        let times = received_ats(body);
        assert_eq!(times.len(), 2);
        assert_eq!((times[1] - times[0]).whole_milliseconds(), 1_500);
    }

    #[test]
    fn percentiles_of_sorted_microseconds() {
        let sorted: Vec<u32> = (1..=100).map(|ms| ms * 1_000).collect();
        assert_eq!(percentile(&sorted, 0.5), 50.0);
        assert_eq!(percentile(&sorted, 0.99), 99.0);
        assert_eq!(percentile(&sorted, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.99), 0.0);
    }
}
