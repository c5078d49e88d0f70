//! The identity benchmark's two halves.
//!
//! - `loadgen identity-fill`: makes a data directory Sluice can serve (a workspace, a source, a
//!   Profile API token), appends EVENTS synthetic events of PEOPLE people to its log (untimed),
//!   then runs the profile consumer's work on one thread: read a batch from the log, ingest it
//!   into the profile store, until the log is consumed (timed). Also resolves the same
//!   identifier sets with the rules off in memory (timed) and writes them to `--edges` for the
//!   networkx comparison. Prints one JSON line.
//! - `loadgen profile-get`: GETs `…/traits` of random people through the Profile API over
//!   keep-alive connections and prints the latency percentiles.
//!
//! A person has a user id, an email and up to three devices (anonymous ids). 60% of events
//! carry the user id, 15% are identify calls with the email and a few traits; the rest are
//! anonymous tracks, so devices get their own profiles first and merge later.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::{Value, json};
use sluice_identity::{Collection, MemoryGraph, Rules, extract, resolve};
use sluice_store::{
    EventLog, INGEST_BATCH, NewEvent, ProfileStore, SourceScope, SqliteLog, SqliteLogConfig,
    StateStore, WorkspaceId,
};

#[derive(Args)]
pub struct FillArgs {
    /// The data directory to create (must not exist).
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 200_000)]
    people: usize,
    /// Where to write each event's identifiers (one line per event) for networkx.
    #[arg(long)]
    edges: Option<PathBuf>,
    /// Reuse the log of a directory an earlier run filled: its profiles are deleted and the
    /// consumer's work is timed again (the in-memory comparison is skipped). For profiling.
    #[arg(long)]
    reuse: bool,
}

/// splitmix64: a well-spread hash of the event number.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const PLANS: [&str; 2] = ["free", "pro"];
const EVENT_NAMES: [&str; 3] = ["Product Viewed", "Product Added", "Order Completed"];

fn person_event(n: usize, people: usize, base_ms: i64) -> Value {
    let person = (mix(n as u64) % people as u64) as usize;
    let device = (mix(n as u64 ^ 0xD1B5_4A32_D192_ED03) % 3) as usize;
    let roll = mix(n as u64 ^ 0x8CB9_2BA7_2F3D_8DD7) % 100;
    let timestamp =
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(base_ms + n as i64) * 1_000_000)
            .map(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            })
            .unwrap_or_default();
    let mut event = json!({
        "anonymousId": format!("anon-{person}-{device}"),
        "messageId": format!("m-{n}"),
        "timestamp": timestamp,
        "context": {"library": {"name": "analytics.js", "version": "5.2.1"}, "locale": "en-US"},
    });
    if roll < 15 {
        event["type"] = json!("identify");
        event["userId"] = json!(format!("user-{person}"));
        event["traits"] = json!({"email": format!("p{person}@example.com"), "plan": PLANS[n % 2],
                                 "name": format!("Person {person}"), "logins": n % 50});
    } else {
        event["type"] = json!("track");
        event["event"] = json!(EVENT_NAMES[n % 3]);
        event["properties"] =
            json!({"sku": format!("SKU-{}", n % 997), "price": (n % 100) as f64 + 0.99});
        if roll < 60 {
            event["userId"] = json!(format!("user-{person}"));
        }
    }
    event
}

pub fn fill(args: FillArgs) -> Result<()> {
    if args.reuse {
        return refill(&args);
    }
    if args.data_dir.exists() {
        bail!("{} exists; give a new directory", args.data_dir.display());
    }
    std::fs::create_dir_all(&args.data_dir)?;
    let state = StateStore::open(&args.data_dir.join("state.db"))?;
    let (workspace, _) = state.ensure_default_workspace()?;
    let (source, _) = state.create_source(&workspace.id, "bench")?;
    let (_, token) = state.create_profile_token(&workspace.id, "bench")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let log = SqliteLog::open(SqliteLogConfig::new(args.data_dir.join("log.db")))?;
    let base_ms = 1_790_000_000_000_i64;
    let mut bodies = Vec::with_capacity(args.events);
    let mut batch = Vec::with_capacity(2_500);
    for n in 0..args.events {
        let event = person_event(n, args.people, base_ms);
        batch.push(NewEvent {
            workspace_id: workspace.id.clone(),
            source_id: source.id.clone(),
            message_id: format!("m-{n}"),
            user_id: event
                .get("userId")
                .and_then(Value::as_str)
                .map(str::to_string),
            anonymous_id: event
                .get("anonymousId")
                .and_then(Value::as_str)
                .map(str::to_string),
            received_at_ms: base_ms + n as i64,
            body: event.to_string(),
        });
        bodies.push(event);
        if batch.len() == 2_500 {
            runtime.block_on(log.append(std::mem::take(&mut batch)))?;
        }
    }
    if !batch.is_empty() {
        runtime.block_on(log.append(batch))?;
    }

    // The consumer's work, timed: read from the log, resolve, write, move the cursor.
    let profiles = ProfileStore::open(&args.data_dir.join("profiles.db"))?;
    let rules = Rules::compile(&state.identity_settings(&workspace.id)?)?;
    let timed = consume(&runtime, &log, &profiles, &workspace.id, &rules, &source.id)?;
    let (consumed, merges, consumer_secs, users) =
        (timed.events, timed.merges, timed.secs, timed.profiles);

    // The same identifier sets, rules off, in memory; and for networkx.
    let unlimited = Rules::unlimited();
    let mut sets = Vec::with_capacity(bodies.len());
    for body in &bodies {
        sets.push(extract(body, &unlimited).user_ids);
    }
    let started = Instant::now();
    let mut graph = MemoryGraph::default();
    for (n, ids) in sets.iter().enumerate() {
        let Ok(decision) = resolve(&mut graph, &unlimited, Collection::Users, ids, n as i64);
        graph.apply(Collection::Users, &decision, n as i64);
    }
    let memory_secs = started.elapsed().as_secs_f64();
    let components = graph.profiles().count();
    if let Some(path) = &args.edges {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).context("edges file")?);
        for ids in &sets {
            let line: Vec<String> = ids.iter().map(ToString::to_string).collect();
            writeln!(out, "{}", line.join(" "))?;
        }
    }
    println!(
        "{}",
        json!({
            "events": consumed,
            "people": args.people,
            "consumer_secs": consumer_secs,
            "consumer_events_per_s": consumed as f64 / consumer_secs,
            "profiles": users,
            "merges": merges,
            "memory_rules_off_secs": memory_secs,
            "memory_rules_off_events_per_s": sets.len() as f64 / memory_secs,
            "components_rules_off": components,
            "space": workspace.id.0,
            "token": token.expose(),
        })
    );
    Ok(())
}

/// What the timed consumer did.
struct Consumed {
    events: usize,
    merges: u64,
    secs: f64,
    profiles: u64,
}

/// The consumer's work, timed: read the source from the log, resolve, write, move the cursor;
/// then closes the log.
fn consume(
    runtime: &tokio::runtime::Runtime,
    log: &SqliteLog,
    profiles: &ProfileStore,
    workspace: &WorkspaceId,
    rules: &Rules,
    source_id: &str,
) -> Result<Consumed> {
    let scope = SourceScope {
        workspace_id: workspace.clone(),
        source_id: source_id.to_owned(),
    };
    let started = Instant::now();
    let mut cursor = 0;
    let mut merges = 0;
    let mut events_read = 0;
    loop {
        let events = runtime.block_on(log.read(&scope, cursor, INGEST_BATCH))?;
        let Some(last) = events.last() else { break };
        cursor = last.seq;
        let report = profiles.ingest(workspace, rules, source_id, &events)?;
        merges += report.merges;
        events_read += events.len();
    }
    let secs = started.elapsed().as_secs_f64();
    let users = profiles.count_profiles(workspace, Collection::Users)?;
    runtime.block_on(log.close());
    Ok(Consumed {
        events: events_read,
        merges,
        secs,
        profiles: users,
    })
}

/// A data directory `identity-fill` filled, opened to consume its log again.
struct Filled {
    workspace: WorkspaceId,
    source_id: String,
    /// The workspace's identity rules.
    rules: Rules,
    runtime: tokio::runtime::Runtime,
    log: SqliteLog,
}

impl Filled {
    fn open(data_dir: &Path) -> Result<Filled> {
        let state = StateStore::open(&data_dir.join("state.db"))?;
        let (workspace, _) = state.ensure_default_workspace()?;
        let source = state
            .list_sources(&workspace.id)?
            .into_iter()
            .next()
            .context("no source in the data directory")?;
        let rules = Rules::compile(&state.identity_settings(&workspace.id)?)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let log = SqliteLog::open(SqliteLogConfig::new(data_dir.join("log.db")))?;
        Ok(Filled {
            workspace: workspace.id,
            source_id: source.id,
            rules,
            runtime,
            log,
        })
    }
}

/// `--reuse`: the consumer's work again over a log filled before.
fn refill(args: &FillArgs) -> Result<()> {
    for name in [
        "profiles.db",
        "profiles.db-wal",
        "profiles.db-shm",
        "profiles.log",
        "profiles.snapshot",
    ] {
        let path = args.data_dir.join(name);
        if path.exists() {
            std::fs::remove_file(path)?;
        }
    }
    let Filled {
        workspace,
        source_id,
        rules,
        runtime,
        log,
    } = Filled::open(&args.data_dir)?;
    let profiles = ProfileStore::open(&args.data_dir.join("profiles.db"))?;
    let timed = consume(&runtime, &log, &profiles, &workspace, &rules, &source_id)?;
    let (consumed, merges, consumer_secs, users) =
        (timed.events, timed.merges, timed.secs, timed.profiles);
    println!(
        "{}",
        json!({
            "events": consumed,
            "consumer_secs": consumer_secs,
            "consumer_events_per_s": consumed as f64 / consumer_secs,
            "profiles": users,
            "merges": merges,
        })
    );
    Ok(())
}

#[derive(Args)]
pub struct GetArgs {
    /// Sluice's base URL (loopback only).
    #[arg(long)]
    url: String,
    #[arg(long)]
    space: String,
    #[arg(long)]
    token: String,
    /// People in the data directory (`user-0` … `user-{people-1}`).
    #[arg(long)]
    people: usize,
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
}

/// Closed-loop GETs of random people's traits; prints requests/s and latency percentiles.
pub fn get(args: GetArgs) -> Result<()> {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full};
    use hyper::Request;
    use hyper::header::{AUTHORIZATION, HOST};

    if args.people == 0 || !(args.duration > 0.0 && args.duration <= 600.0) {
        bail!("--people must be positive and --duration in (0, 600]");
    }
    let target = std::sync::Arc::new(crate::client::loopback_target(&args.url, &args.token, "/")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let deadline = Instant::now() + std::time::Duration::from_secs_f64(args.duration);
    let (latencies, errors) = runtime.block_on(async {
        let mut tasks = Vec::new();
        for connection in 0..args.connections {
            let target = std::sync::Arc::clone(&target);
            let space = args.space.clone();
            let people = args.people;
            tasks.push(tokio::spawn(async move {
                let mut latencies: Vec<u32> = Vec::new();
                let mut errors = 0u64;
                let mut sender = match crate::client::connect(
                    &target,
                    std::time::Duration::from_secs(5),
                )
                .await
                {
                    Ok(sender) => sender,
                    Err(_) => return (latencies, 1),
                };
                let mut n = connection as u64 * 1_000_003;
                while Instant::now() < deadline {
                    n = n
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let person = (n >> 33) as usize % people;
                    let path = format!(
                        "/v1/spaces/{space}/collections/users/profiles/user_id:user-{person}/traits"
                    );
                    let mut request = Request::get(path)
                        .header(HOST, target.host.clone())
                        .body(Full::new(Bytes::new()))
                        .expect("a valid request");
                    if let Some(auth) = &target.authorization {
                        request.headers_mut().insert(AUTHORIZATION, auth.clone());
                    }
                    let started = Instant::now();
                    let answer = async {
                        sender.ready().await?;
                        let response = sender.send_request(request).await?;
                        let status = response.status();
                        response.into_body().collect().await?;
                        anyhow::Ok(status)
                    }
                    .await;
                    match answer {
                        // 404: a person whose every event was anonymous has no user id yet.
                        Ok(status) if status.is_success() || status.as_u16() == 404 => {
                            latencies.push(
                                u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX),
                            );
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for task in tasks {
            if let Ok((latencies, e)) = task.await {
                all.extend(latencies);
                errors += e;
            }
        }
        (all, errors)
    });
    let mut latencies = latencies;
    latencies.sort_unstable();
    let pct = |p: f64| crate::client::percentile_ms(&latencies, p);
    println!(
        "{}",
        json!({
            "requests": latencies.len(),
            "errors": errors,
            "requests_per_s": latencies.len() as f64 / args.duration,
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        })
    );
    Ok(())
}
