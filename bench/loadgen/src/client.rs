//! The load generator: N keep-alive HTTP/1.1 connections, one task each.
//!
//! Closed loop by default: each connection sends its next request as soon as the previous
//! answer is read. With `--rate` the requests are paced open-loop: connection `c` of `N` sends
//! its `k`-th request at `start + (k + c/N) * N/rate`, and latency is measured from that
//! scheduled time, so a slow answer that delays later requests counts against them too (no
//! coordinated omission). Without `--rate` latency is measured from the moment of sending.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::TcpStream;

use crate::payload::{self, IdGen, Template};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// `POST /v1/batch` with 100 track events.
    Batch,
    /// `POST /v1/track` with one event.
    Single,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Single => "single",
        }
    }
    fn path(self) -> &'static str {
        match self {
            Mode::Batch => "/v1/batch",
            Mode::Single => "/v1/track",
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Base URL of the server; must be a loopback address (e.g. http://127.0.0.1:8088).
    #[arg(long)]
    pub url: String,
    /// The source's write key (sent as Basic auth user name).
    #[arg(long, default_value = "")]
    pub write_key: String,
    #[arg(long, value_enum, default_value = "batch")]
    pub mode: Mode,
    /// Keep-alive connections, one task each.
    #[arg(long, default_value_t = 8)]
    pub connections: u16,
    /// Seconds to send for (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to send before measuring (not counted).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Stop after this many requests in all (warm-up included).
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Requests per second in all, spread across connections (open loop). Default: as fast
    /// as the server answers (closed loop).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Worker threads of the generator's runtime.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds to wait for one answer before counting it as an error.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

/// The `p` quantile (nearest rank) of sorted latencies in µs, as ms with two decimals; `null`
/// when there are none.
pub(crate) fn percentile_ms(sorted_us: &[u32], p: f64) -> Value {
    if sorted_us.is_empty() {
        return Value::Null;
    }
    let index = ((sorted_us.len() as f64 * p).ceil() as usize).clamp(1, sorted_us.len()) - 1;
    json!((f64::from(sorted_us[index]) / 10.0).round() / 100.0)
}

pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) host: HeaderValue,
    pub(crate) path: &'static str,
    pub(crate) authorization: Option<HeaderValue>,
}

fn target(args: &RunArgs) -> Result<Target> {
    loopback_target(&args.url, &args.write_key, args.mode.path())
}

/// A loopback HTTP target with Basic auth (`user` as the user name, none when empty).
pub(crate) fn loopback_target(url: &str, user: &str, path: &'static str) -> Result<Target> {
    let uri: hyper::Uri = url.parse().context("invalid --url")?;
    if uri.scheme_str() != Some("http") {
        bail!("--url must be http://");
    }
    let authority = uri.authority().context("--url needs host:port")?;
    let port = authority.port_u16().unwrap_or(80);
    let addr = (authority.host(), port)
        .to_socket_addrs()
        .context("cannot resolve --url")?
        .next()
        .context("--url resolves to nothing")?;
    if !addr.ip().is_loopback() {
        bail!("refusing to send load to {addr}: only loopback addresses are allowed");
    }
    let authorization = if user.is_empty() {
        None
    } else {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:"));
        Some(HeaderValue::from_str(&format!("Basic {encoded}"))?)
    };
    Ok(Target {
        addr,
        host: HeaderValue::from_str(authority.as_str())?,
        path,
        authorization,
    })
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    requests: u64,
    ok: u64,
    errors: u64,
    accepted: u64,
    duplicates: u64,
    refused: u64,
    answers_with_counts: u64,
    last_done: Option<Instant>,
}

struct Shared {
    sent: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn error(&self, message: String) {
        if let Ok(mut slot) = self.first_error.lock()
            && slot.is_none()
        {
            eprintln!("loadgen: first error: {message}");
            *slot = Some(message);
        }
    }
}

struct Plan {
    start: Instant,
    measure_from: Instant,
    deadline: Instant,
    max_requests: u64,
    interval: Option<Duration>,
    timeout: Duration,
    events_per_request: u64,
    body_bytes: usize,
}

pub fn run(args: RunArgs) -> Result<()> {
    if args.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        bail!("--duration must be in (0, 3600]");
    }
    if !(0.0..=600.0).contains(&args.warmup) {
        bail!("--warmup must be in [0, 600]");
    }
    if let Some(rate) = args.rate
        && (rate.is_nan() || rate <= 0.0)
    {
        bail!("--rate must be positive");
    }
    let target = Arc::new(target(&args)?);
    let now = OffsetDateTime::now_utc();
    let templates = Arc::new(match args.mode {
        Mode::Batch => payload::batch_templates(now),
        Mode::Single => payload::single_templates(now),
    });
    let events_per_request = templates[0].events() as u64;
    let run_id = payload::random_run_id();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let plan = Arc::new(Plan {
            start,
            measure_from,
            deadline: measure_from + Duration::from_secs_f64(args.duration),
            max_requests: args.max_requests.unwrap_or(u64::MAX),
            interval: args
                .rate
                .map(|rate| Duration::from_secs_f64(f64::from(args.connections) / rate)),
            timeout: Duration::from_secs_f64(args.timeout.clamp(0.1, 60.0)),
            events_per_request,
            body_bytes: templates[0].body.len(),
        });
        let shared = Arc::new(Shared {
            sent: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let mut tasks = Vec::new();
        for connection in 0..args.connections {
            tasks.push(tokio::spawn(connection_task(
                connection,
                args.connections,
                IdGen::new(run_id, connection),
                Arc::clone(&templates),
                Arc::clone(&target),
                Arc::clone(&plan),
                Arc::clone(&shared),
            )));
        }
        let mut total = Tally::default();
        for task in tasks {
            let tally = task.await?;
            total.latencies_us.extend_from_slice(&tally.latencies_us);
            total.requests += tally.requests;
            total.ok += tally.ok;
            total.errors += tally.errors;
            total.accepted += tally.accepted;
            total.duplicates += tally.duplicates;
            total.refused += tally.refused;
            total.answers_with_counts += tally.answers_with_counts;
            total.last_done = total.last_done.max(tally.last_done);
        }
        let end = total
            .last_done
            .unwrap_or_else(Instant::now)
            .max(plan.deadline);
        let seconds = end.duration_since(measure_from).as_secs_f64();
        let first_error = shared.first_error.lock().ok().and_then(|slot| slot.clone());
        println!("{}", report(&args, &plan, &mut total, seconds, first_error));
        anyhow::Ok(())
    })
}

fn report(
    args: &RunArgs,
    plan: &Plan,
    total: &mut Tally,
    seconds: f64,
    first_error: Option<String>,
) -> Value {
    total.latencies_us.sort_unstable();
    let pct = |p: f64| -> Value { percentile_ms(&total.latencies_us, p) };
    let events = total.ok * plan.events_per_request;
    json!({
        "mode": args.mode.name(),
        "connections": args.connections,
        "rate": args.rate,
        "body_bytes": plan.body_bytes,
        "requests": total.requests,
        "events": events,
        "errors": total.errors,
        "seconds": (seconds * 1000.0).round() / 1000.0,
        "events_per_s": (events as f64 / seconds).round() as u64,
        "requests_per_s": (total.ok as f64 / seconds).round() as u64,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "p999_ms": pct(0.999),
        "max_ms": pct(1.0),
        "accepted": (total.answers_with_counts > 0).then_some(total.accepted),
        "duplicates": (total.answers_with_counts > 0).then_some(total.duplicates),
        "refused": (total.answers_with_counts > 0).then_some(total.refused),
        "first_error": first_error,
    })
}

async fn connection_task(
    connection: u16,
    connections: u16,
    mut ids: IdGen,
    templates: Arc<Vec<Template>>,
    target: Arc<Target>,
    plan: Arc<Plan>,
    shared: Arc<Shared>,
) -> Tally {
    let mut tally = Tally::default();
    let mut buffer = Vec::with_capacity(templates[0].body.len());
    let mut next_template = usize::from(connection) % templates.len();
    // Pacing: this connection's k-th request is due at start + (k + c/N) * interval.
    let phase = plan
        .interval
        .map(|interval| interval.mul_f64(f64::from(connection) / f64::from(connections)));
    let mut k: u32 = 0;
    // Bounded: every pass either sends a request, or fails to connect and sleeps; both stop
    // at the deadline or the request budget.
    'connect: while Instant::now() < plan.deadline {
        let mut sender = match connect(&target, plan.timeout).await {
            Ok(sender) => sender,
            Err(error) => {
                tally.errors += 1;
                shared.error(format!("connect: {error:#}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        loop {
            let scheduled = match (plan.interval, phase) {
                (Some(interval), Some(phase)) => {
                    let due = plan.start + phase + interval * k;
                    k += 1;
                    if due >= plan.deadline {
                        break 'connect;
                    }
                    tokio::time::sleep_until(due.into()).await;
                    Some(due)
                }
                _ => None,
            };
            if Instant::now() >= plan.deadline {
                break 'connect;
            }
            if shared.sent.fetch_add(1, Ordering::Relaxed) >= plan.max_requests {
                break 'connect;
            }
            ids.fill(&templates[next_template], &mut buffer);
            next_template = (next_template + 1) % templates.len();
            let mut request = Request::post(target.path)
                .header(HOST, target.host.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::copy_from_slice(&buffer)))
                .expect("a valid request");
            if let Some(authorization) = &target.authorization {
                request
                    .headers_mut()
                    .insert(AUTHORIZATION, authorization.clone());
            }

            let sent_at = Instant::now();
            let outcome = tokio::time::timeout(plan.timeout, async {
                sender.ready().await?;
                let response = sender.send_request(request).await?;
                let status = response.status();
                let body = response.into_body().collect().await?.to_bytes();
                anyhow::Ok((status, body))
            })
            .await;
            let done = Instant::now();
            let measured = sent_at >= plan.measure_from;
            if measured {
                tally.requests += 1;
                tally.last_done = Some(done);
            }
            match outcome {
                Ok(Ok((status, body))) if status == StatusCode::OK => {
                    if measured {
                        tally.ok += 1;
                        let from = scheduled.unwrap_or(sent_at);
                        let micros = done.duration_since(from).as_micros();
                        tally
                            .latencies_us
                            .push(u32::try_from(micros).unwrap_or(u32::MAX));
                        count_answer(&body, &mut tally);
                    }
                }
                Ok(Ok((status, body))) => {
                    if measured {
                        tally.errors += 1;
                    }
                    shared.error(format!(
                        "HTTP {status}: {}",
                        String::from_utf8_lossy(&body[..body.len().min(2000)])
                    ));
                }
                Ok(Err(error)) => {
                    if measured {
                        tally.errors += 1;
                    }
                    shared.error(format!("request: {error:#}"));
                    continue 'connect;
                }
                Err(_) => {
                    if measured {
                        tally.errors += 1;
                    }
                    shared.error(format!("no answer within {:?}", plan.timeout));
                    continue 'connect;
                }
            }
        }
    }
    tally
}

/// Sluice answers `{"success":true,"accepted":N,"duplicates":N,"rejected":[...]}`; the
/// baseline answers `{"success":true}`.
fn count_answer(body: &[u8], tally: &mut Tally) {
    if !body.windows(11).any(|w| w == b"\"accepted\":") {
        return;
    }
    if let Ok(answer) = serde_json::from_slice::<Value>(body) {
        tally.answers_with_counts += 1;
        tally.accepted += answer["accepted"].as_u64().unwrap_or(0);
        tally.duplicates += answer["duplicates"].as_u64().unwrap_or(0);
        tally.refused += answer["rejected"].as_array().map_or(0, |r| r.len() as u64);
    }
}

pub(crate) type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

pub(crate) async fn connect(target: &Target, timeout: Duration) -> Result<Sender> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect(target.addr))
        .await
        .context("connect timed out")??;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes the connection.
        let _ = connection.await;
    });
    Ok(sender)
}
