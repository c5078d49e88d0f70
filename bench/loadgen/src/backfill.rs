//! The audience backfill benchmark, against DuckDB over the same data.
//!
//! - `loadgen audience-history --out DIR`: writes a deterministic synthetic history:
//!   `DIR/events.jsonl` (EVENTS logged track events of PROFILES people, one JSON object a line,
//!   in log order, stamped over the 90 days before `now`), `DIR/profiles.jsonl` (each person's
//!   custom traits, as the profile store has them) and `DIR/history.json` (sizes, `now`, and the
//!   ten audience definitions). `bench/audience_duckdb.py` reads the same files.
//! - `loadgen audience-backfill --data DIR`: times the audience engine's backfill over that
//!   history as the server runs it (`sluice-server`'s `audiences/backfill.rs`): the audience
//!   history holds each profile's events in recorded form, clustered by profile id
//!   (`audiences.db`'s `history` table); each profile in turn gets a fresh state, its recorded
//!   events applied in log order, an evaluation at `now` with its traits and `next_change` (for
//!   the timers). Prints one JSON line: the seconds of each round and per audience the members
//!   and the sum of their user numbers (a checksum the DuckDB side computes too).
//!
//! What is timed. First, not timed (as DuckDB's loading of the file is not): every line is
//! parsed and recorded under its person's profile, as the audience consumer records events as
//! they are logged ("record", reported apart); the traits the audiences read are loaded into a
//! table by profile id, the profile store's own kind (the stand-in for its
//! `live_trait_values`). Then each round walks the profiles in the server's batches, each batch
//! cut into runs of neighbouring ids of about equal work that `--threads` threads take in
//! turn, as the server shares a batch: the "engine" time. "From text" = record + engine. Not modelled: the SQLite reads of
//! the history and states and the writes of the new states around it.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde_json::{Map, Value, json};
use sluice_audience::{Catalog, Change, Engine, EventRef, read_audience, recorded, split};
use sluice_store::profiles::ProfileMap;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// The history's span before `now`.
const SPAN_MS: i64 = 90 * DAY_MS;
/// `now`: 2026-10-01T00:23:45.678Z, inside an hour so hour-precise windows are exercised.
const NOW_MS: i64 = 1_790_813_025_678;

#[derive(Args)]
pub struct HistoryArgs {
    /// Directory to write the history into (created when missing).
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    #[arg(long, default_value_t = 1_000_000)]
    profiles: usize,
}

#[derive(Args)]
pub struct BackfillArgs {
    /// A directory written by `audience-history`.
    #[arg(long)]
    data: PathBuf,
    /// Rounds (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Threads: each recomputes a run of neighbouring profile ids.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

/// The ten audiences, in Sluice's definition language. `bench/audience_duckdb.py` has the
/// same ten in SQL, in the same order.
pub fn audiences() -> Vec<Value> {
    let performed = |event: &str, op: &str, count: u64, within: Value, conditions: Value| {
        let mut performed = json!({"event": event, "count": {"op": op, "value": count},
                                   "where": conditions});
        if !within.is_null() {
            performed["within"] = within;
        }
        json!({"performed": performed})
    };
    let days = |n: u64| json!({"days": n});
    let none = json!([]);
    let definitions = [
        // Bought in the last 30 days.
        (
            "recent_buyers",
            performed("Order Completed", ">=", 1, days(30), none.clone()),
        ),
        // Two orders over 100 in 90 days.
        (
            "big_spenders",
            performed(
                "Order Completed",
                ">=",
                2,
                days(90),
                json!([{"property": "total", "op": ">", "value": 100}]),
            ),
        ),
        // Browsed three times this week but bought nothing in 30 days.
        (
            "browsers_not_buyers",
            json!({"and": [
                performed("Product Viewed", ">=", 3, days(7), none.clone()),
                {"not": performed("Order Completed", ">=", 1, days(30), none.clone())}]}),
        ),
        // Viewed shoes or hats at least twice in the last 36 hours.
        (
            "shoe_fans",
            performed(
                "Product Viewed",
                ">=",
                2,
                json!({"hours": 36}),
                json!([{"property": "category", "op": "one_of", "value": ["shoes", "hats"]}]),
            ),
        ),
        // Pro plan, signed in this week.
        (
            "active_pros",
            json!({"and": [
                {"trait": {"key": "plan", "op": "=", "value": "pro"}},
                performed("Signed In", ">=", 1, days(7), none.clone())]}),
        ),
        // Added to cart in the last 48 hours and ordered nothing then.
        (
            "cart_abandoners",
            json!({"and": [
                performed("Product Added", ">=", 1, json!({"hours": 48}), none.clone()),
                performed("Order Completed", "=", 0, json!({"hours": 48}), none.clone())]}),
        ),
        // Ever used a spring coupon (no window: all history).
        (
            "spring_coupon",
            performed(
                "Coupon Applied",
                ">=",
                1,
                Value::Null,
                json!([{"property": "code", "op": "starts_with", "value": "SPRING"}]),
            ),
        ),
        // Big spenders, or team-plan recent buyers.
        (
            "vip",
            json!({"or": [
                {"audience": "big_spenders"},
                {"and": [{"trait": {"key": "plan", "op": "=", "value": "team"}},
                         {"audience": "recent_buyers"}]}]}),
        ),
        // Signed in within 90 days, fewer than 2 times in the last 30.
        (
            "lapsed",
            json!({"and": [
                performed("Signed In", ">=", 1, days(90), none.clone()),
                performed("Signed In", "<", 2, days(30), none.clone())]}),
        ),
        // Lapsed, not an active pro, not on the free plan, and looked at something over 50
        // in the last 60 days.
        (
            "win_back",
            json!({"and": [
                {"audience": "lapsed"},
                {"not": {"audience": "active_pros"}},
                {"trait": {"key": "plan", "op": "!=", "value": "free"}},
                performed("Product Viewed", ">", 0, days(60),
                          json!([{"property": "price", "op": ">=", "value": 50}]))]}),
        ),
    ];
    definitions
        .into_iter()
        .map(|(key, condition)| json!({"key": key, "name": key, "condition": condition}))
        .collect()
}

fn catalog() -> Result<Catalog> {
    let mut catalog = Catalog::default();
    for definition in audiences() {
        catalog
            .audiences
            .push(read_audience(&definition).map_err(|e| anyhow!("{e}"))?);
    }
    Ok(catalog)
}

/// splitmix64.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn iso(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.millisecond()
    )
}

const CATEGORIES: [&str; 5] = ["shoes", "hats", "bags", "coats", "socks"];
const COUPONS: [&str; 4] = ["SPRING10", "SPRING25", "SUMMER5", "WELCOME"];
const PLANS: [&str; 4] = ["pro", "team", "free", "free"];
const COUNTRIES: [&str; 4] = ["US", "GB", "DE", "FR"];

/// Event `n` of the history: its person and its line.
fn history_event(n: usize, events: usize, profiles: usize, out: &mut String) {
    use std::fmt::Write as _;
    let r = |salt: u64| mix((n as u64) ^ salt.wrapping_mul(0xA24B_AED4_963E_E407));
    // Half the events come from the most active tenth of the people.
    let person = if r(1) % 2 == 0 {
        r(2) % profiles as u64
    } else {
        r(2) % (profiles as u64 / 10).max(1)
    };
    // Log order is roughly time order; some events arrive up to an hour late.
    let start = NOW_MS - SPAN_MS;
    let step = SPAN_MS as f64 / events.max(1) as f64;
    let jitter = (r(3) % HOUR_MS as u64) as i64;
    let at = (start + (n as f64 * step) as i64 - jitter).clamp(start, NOW_MS - 1);
    let received = at + jitter + (r(4) % 2_000) as i64;
    let roll = r(5) % 100;
    let (name, properties) = match roll {
        0..45 => (
            "Product Viewed",
            format!(
                "{{\"product_id\":\"p{}\",\"category\":\"{}\",\"price\":{}.{:02}}}",
                r(6) % 5_000,
                CATEGORIES[(r(7) % 5) as usize],
                5 + r(8) % 150,
                r(9) % 100
            ),
        ),
        45..60 => (
            "Product Added",
            format!(
                "{{\"product_id\":\"p{}\",\"category\":\"{}\",\"price\":{}.{:02},\"quantity\":{}}}",
                r(6) % 5_000,
                CATEGORIES[(r(7) % 5) as usize],
                5 + r(8) % 150,
                r(9) % 100,
                1 + r(10) % 3
            ),
        ),
        60..70 => (
            "Order Completed",
            format!(
                "{{\"order_id\":\"o{}\",\"total\":{}.{:02},\"currency\":\"USD\"}}",
                n,
                10 + r(8) % 250,
                r(9) % 100
            ),
        ),
        70..90 => (
            "Signed In",
            format!(
                "{{\"method\":\"{}\"}}",
                ["password", "google", "apple"][(r(11) % 3) as usize]
            ),
        ),
        90..95 => (
            "Coupon Applied",
            format!(
                "{{\"code\":\"{}\",\"order_id\":\"o{}\"}}",
                COUPONS[(r(12) % 4) as usize],
                n
            ),
        ),
        // Read by no audience: the engine skips it.
        _ => (
            "Newsletter Opened",
            format!("{{\"campaign\":\"c{}\"}}", r(13) % 40),
        ),
    };
    out.clear();
    let _ = write!(
        out,
        "{{\"type\":\"track\",\"event\":\"{name}\",\"messageId\":\"{:016x}\",\
         \"timestamp\":\"{}\",\"receivedAt\":\"{}\",\"userId\":\"u{person}\",\
         \"properties\":{properties},\"context\":{{\"library\":{{\"name\":\"analytics.js\",\
         \"version\":\"2.11.1\"}},\"ip\":\"203.0.113.{}\"}}}}",
        r(14),
        iso(at),
        iso(received),
        r(15) % 256
    );
}

/// Person `p`'s traits: a plan for four in five, a country for everyone.
fn profile_traits(p: usize) -> Value {
    let r = mix(p as u64 ^ 0x5851_F42D_4C95_7F2D);
    let mut traits = Map::new();
    if !r.is_multiple_of(5) {
        traits.insert("plan".into(), json!(PLANS[((r >> 8) % 4) as usize]));
    }
    traits.insert("country".into(), json!(COUNTRIES[((r >> 16) % 4) as usize]));
    Value::Object(traits)
}

pub fn history(args: HistoryArgs) -> Result<()> {
    if args.profiles == 0 {
        bail!("--profiles must be at least 1");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let started = Instant::now();
    let mut events = BufWriter::with_capacity(
        1 << 20,
        File::create(args.out.join("events.jsonl")).context("cannot create events.jsonl")?,
    );
    let mut line = String::with_capacity(512);
    let mut bytes = 0u64;
    for n in 0..args.events {
        history_event(n, args.events, args.profiles, &mut line);
        line.push('\n');
        bytes += line.len() as u64;
        events.write_all(line.as_bytes())?;
    }
    events.flush()?;
    let mut profiles = BufWriter::new(
        File::create(args.out.join("profiles.jsonl")).context("cannot create profiles.jsonl")?,
    );
    for p in 0..args.profiles {
        let row = json!({"userId": format!("u{p}"), "traits": profile_traits(p)});
        writeln!(profiles, "{row}")?;
    }
    profiles.flush()?;
    let meta = json!({"events": args.events, "profiles": args.profiles, "now_ms": NOW_MS,
                      "now": iso(NOW_MS), "events_bytes": bytes, "audiences": audiences()});
    std::fs::write(args.out.join("history.json"), format!("{meta}\n"))?;
    println!(
        "{}",
        json!({"events": args.events, "profiles": args.profiles, "events_bytes": bytes,
               "seconds": started.elapsed().as_secs_f64()})
    );
    Ok(())
}

/// Each profile's traits that the audiences read (`Engine::profile_trait_names`, in that
/// order), by profile id, in the table the profile store keeps its profiles in: what the
/// profile store's `live_trait_values` gives the server's backfill.
type Traits = ProfileMap<Vec<Option<Value>>>;

/// The audience history as `audiences.db` keeps it and a backfill reads it: profiles in id
/// order, each one's events in recorded form, back to back in log order.
struct History {
    records: Vec<u8>,
    /// Per profile (id = position + 1).
    profiles: Vec<Span>,
    events: usize,
    /// Profile ids by user id (to attach traits).
    ids: HashMap<String, i64>,
}

/// One profile's part of the history.
struct Span {
    /// Where its records start and end in `History::records`.
    records: std::ops::Range<usize>,
    /// How many events it has.
    events: usize,
    /// The number of its user id (`u123` → 123, for the checksum).
    number: u64,
}

/// The `userId` of a logged event (one pass over its keys).
fn user_id(event: &Value) -> Option<&str> {
    event
        .as_object()?
        .iter()
        .find(|(key, _)| key.as_str() == "userId")
        .and_then(|(_, value)| value.as_str())
}

/// Records every event of the file under its person's profile, as the audience consumer does
/// as events are logged (profile ids given in order of first appearance, as the profile
/// store gives them).
fn record_history(path: &Path) -> Result<History> {
    let reader = BufReader::with_capacity(
        1 << 20,
        File::open(path).with_context(|| format!("{}", path.display()))?,
    );
    let mut ids: HashMap<String, i64> = HashMap::new();
    let mut per_profile: Vec<(Vec<u8>, usize, u64)> = Vec::new();
    let mut events = 0;
    for line in reader.split(b'\n') {
        let line = line?;
        let Ok(value) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        let (Some(user), Some(event)) = (user_id(&value), EventRef::read(&value)) else {
            continue;
        };
        let id = match ids.get(user) {
            Some(id) => *id,
            None => {
                per_profile.push((Vec::new(), 0, user_number(user)));
                let id = per_profile.len() as i64;
                ids.insert(user.to_string(), id);
                id
            }
        };
        let (records, count, _) = &mut per_profile[(id - 1) as usize];
        recorded::record(&event, records);
        *count += 1;
        events += 1;
    }
    let total = per_profile
        .iter()
        .map(|(records, _, _)| records.len())
        .sum();
    let mut history = History {
        records: Vec::with_capacity(total),
        profiles: Vec::with_capacity(per_profile.len()),
        events,
        ids,
    };
    for (records, events, number) in per_profile {
        let start = history.records.len();
        history.records.extend_from_slice(&records);
        history.profiles.push(Span {
            records: start..history.records.len(),
            events,
            number,
        });
    }
    Ok(history)
}

fn user_number(user: &str) -> u64 {
    user.strip_prefix('u')
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
}

fn read_traits(path: &Path, ids: &HashMap<String, i64>, names: &[String]) -> Result<Traits> {
    let reader = BufReader::new(File::open(path).with_context(|| format!("{}", path.display()))?);
    let mut traits = Traits::default();
    for line in reader.lines() {
        let row: Value = serde_json::from_str(&line?)?;
        let (Some(user), Some(Value::Object(map))) =
            (row.get("userId").and_then(Value::as_str), row.get("traits"))
        else {
            continue;
        };
        if let Some(id) = ids.get(user) {
            let values = names.iter().map(|name| map.get(name).cloned()).collect();
            traits.insert(*id, values);
        }
    }
    Ok(traits)
}

/// Members and the sum of their user numbers, per audience (in catalog order).
#[derive(PartialEq)]
struct Tally {
    members: Vec<u64>,
    sums: Vec<u64>,
    next_changes: u64,
}

impl Tally {
    fn new(audiences: usize) -> Tally {
        Tally {
            members: vec![0; audiences],
            sums: vec![0; audiences],
            next_changes: 0,
        }
    }

    fn add(&mut self, other: &Tally) {
        for (at, (members, sum)) in other.members.iter().zip(&other.sums).enumerate() {
            self.members[at] += members;
            self.sums[at] += sum;
        }
        self.next_changes += other.next_changes;
    }
}

/// What the backfill works with.
struct Setup<'a> {
    engine: &'a Engine,
    keys: &'a [String],
    history: &'a History,
    traits: &'a Traits,
    now: i64,
}

/// A batch of the server's backfill (`sluice-server`'s `audiences/backfill.rs`): at most this
/// many profiles, and it stops after the profile that reaches [`BATCH_EVENTS`] events.
const BATCH_PROFILES: usize = 2_000;
const BATCH_EVENTS: usize = 80_000;

/// Recomputes the profiles at positions `part` as the server's backfill does a part of a
/// batch: their traits read at once (copied out of the table, as the profile store answers
/// with values of its own), then each profile in turn: a fresh state, its recorded events
/// applied in order, evaluated at `now` with its traits, and its next timer.
fn recompute(setup: &Setup<'_>, part: std::ops::Range<usize>) -> Tally {
    let Setup {
        engine,
        keys,
        history,
        traits,
        now,
    } = *setup;
    let mut tally = Tally::new(keys.len());
    let mut part_traits = Vec::with_capacity(part.len());
    for at in part.clone() {
        let profile = at as i64 + 1;
        let values = match traits.get(&profile) {
            Some(values) => values.clone(),
            None => vec![None; engine.profile_trait_names().len()],
        };
        part_traits.push(values);
    }
    for (span, traits) in history.profiles[part].iter().zip(&part_traits) {
        let mut state = engine.fresh();
        let mut rest = &history.records[span.records.clone()];
        while !rest.is_empty() {
            let bytes = rest;
            let Some(event) = recorded::read(bytes, &mut rest) else {
                break;
            };
            engine.apply(&mut state, &event, now);
        }
        let changes = engine.evaluate(&mut state, traits.as_slice(), now);
        if engine.next_change(&state, traits.as_slice(), now).is_some() {
            tally.next_changes += 1;
        }
        for change in changes {
            if let Change::Entered(key) = change
                && let Some(at) = keys.iter().position(|k| *k == key)
            {
                tally.members[at] += 1;
                tally.sums[at] += span.number;
            }
        }
    }
    tally
}

/// One timed backfill, batch after batch as the server walks them: each batch's profiles cut
/// into runs of about equal work (`split::balanced_runs`), several per thread, which
/// `threads` threads started for the batch take in turn (`split::on_threads`).
fn round(setup: &Setup<'_>, threads: usize) -> Result<(Duration, Tally)> {
    let profiles = &setup.history.profiles;
    let started = Instant::now();
    let mut tally = Tally::new(setup.keys.len());
    let mut start = 0;
    let mut weights = Vec::with_capacity(BATCH_PROFILES);
    while start < profiles.len() {
        let (mut end, mut events) = (start, 0);
        while end < profiles.len() && end - start < BATCH_PROFILES && events < BATCH_EVENTS {
            events += profiles[end].events;
            end += 1;
        }
        weights.clear();
        for span in &profiles[start..end] {
            weights.push(split::profile_weight(span.records.len()));
        }
        let runs = split::balanced_runs(&weights, threads * split::RUNS_PER_THREAD);
        let parts = split::on_threads(&runs, threads, |run| {
            recompute(setup, (start + run.start)..(start + run.end))
        });
        for part in &parts {
            tally.add(part);
        }
        start = end;
    }
    Ok((started.elapsed(), tally))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

pub fn backfill(args: BackfillArgs) -> Result<()> {
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(args.data.join("history.json"))
            .context("no history.json: run `loadgen audience-history` first")?,
    )?;
    let now = meta["now_ms"]
        .as_i64()
        .ok_or_else(|| anyhow!("history.json has no now_ms"))?;
    let engine = Engine::new(&catalog()?).map_err(|e| anyhow!("{e}"))?;
    // The order results are reported in: the definitions' order.
    let keys: Vec<String> = audiences()
        .iter()
        .filter_map(|a| a["key"].as_str().map(str::to_string))
        .collect();
    let started = Instant::now();
    let history = record_history(&args.data.join("events.jsonl"))?;
    let record_s = started.elapsed().as_secs_f64();
    eprintln!(
        "   sluice: recorded {} events of {} profiles in {record_s:.2} s ({} bytes)",
        history.events,
        history.profiles.len(),
        history.records.len()
    );
    let traits = read_traits(
        &args.data.join("profiles.jsonl"),
        &history.ids,
        engine.profile_trait_names(),
    )?;
    let threads = args.threads.max(1);
    let setup = Setup {
        engine: &engine,
        keys: &keys,
        history: &history,
        traits: &traits,
        now,
    };
    let mut seconds = Vec::new();
    let mut last: Option<Tally> = None;
    for _ in 0..args.rounds.max(1) {
        let (elapsed, tally) = round(&setup, threads)?;
        eprintln!("   sluice round: {:.3} s", elapsed.as_secs_f64());
        if last.as_ref().is_some_and(|last| *last != tally) {
            bail!("rounds disagree: the backfill is not deterministic");
        }
        seconds.push(elapsed.as_secs_f64());
        last = Some(tally);
    }
    let last = last.ok_or_else(|| anyhow!("no round ran"))?;
    let engine_median = median(seconds.clone());
    let audiences: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(at, key)| json!({"key": key, "members": last.members[at], "sum": last.sums[at]}))
        .collect();
    println!(
        "{}",
        json!({
            "events": history.events, "profiles": history.profiles.len(), "threads": threads,
            "rounds": seconds.len(), "now_ms": now,
            "record_s": record_s, "history_bytes": history.records.len(),
            "engine_s": seconds, "engine_s_median": engine_median,
            "from_text_s_median": record_s + engine_median,
            "with_next_change": last.next_changes,
            "audiences": audiences,
        })
    );
    Ok(())
}
