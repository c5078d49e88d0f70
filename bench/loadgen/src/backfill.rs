//! The audience backfill benchmark, against DuckDB over the same data.
//!
//! - `loadgen audience-history --out DIR`: writes a deterministic synthetic history:
//!   `DIR/events.jsonl` (EVENTS logged track events of PROFILES people, one JSON object a line,
//!   in log order, stamped over the 90 days before `now`), `DIR/profiles.jsonl` (each person's
//!   custom traits, as the profile store has them) and `DIR/history.json` (sizes, `now`, and the
//!   ten audience definitions). `bench/audience_duckdb.py` reads the same files.
//! - `loadgen audience-backfill --data DIR`: times the audience engine's backfill path over that
//!   history — what the server's backfill does per profile (`sluice-server`'s
//!   `audiences/backfill.rs`): every profile's state starts fresh, the profile's logged events
//!   are applied in log order, then every state is evaluated once at `now` (with its traits;
//!   `next_change` too, for the timers). The SQLite reads and writes around it are not
//!   modelled. Prints one JSON line: per round, the seconds spent parsing the JSON text, applying
//!   the events and evaluating the states, and per audience the members and the sum of their
//!   user numbers (a checksum the DuckDB side computes too).
//!
//! What is timed. The file is read in blocks of `--block-kib` (512 KiB, about 1,650 events, by
//! default); reading a block is not timed (neither is DuckDB's loading of the file, see the
//! script). Each block is then, on `--threads`
//! threads: parsed (each line into a `serde_json::Value`, as the server parses a logged body,
//! and routed to a thread by a hash of `userId`) — the "parse" time; then each thread applies
//! its people's events in log order to their states (the `userId` → state lookup, reading the
//! event, `Engine::apply`) — the "apply" time. After the last block each thread evaluates its
//! states — the "evaluate" time. "engine" = apply + evaluate: events already in memory, as
//! DuckDB's query starts from a loaded table; "from text" = parse + apply + evaluate.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Barrier, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use clap::Args;
use serde_json::{Map, Value, json};
use sluice_audience::{Catalog, Change, Engine, EventRef, ProfileState, read_audience};

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
    /// Threads: the people are split between them by a hash of `userId`.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// KiB of lines read per block: 512 is about 1,650 events, near the server's backfill
    /// batch (2,000 events), and keeps a block's parsed events in cache.
    #[arg(long, default_value_t = 512)]
    block_kib: usize,
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

/// FNV-1a (the engine's), for the tables keyed by user id (the stand-in for the profile
/// store's lookup).
type Fnv64 = std::hash::BuildHasherDefault<sluice_audience::Fnv>;

/// A user id of up to 23 bytes kept in place, so finding a person's entry follows no pointer
/// (the profile store's index is the stand-in this replaces; longer ids go to a second table).
#[derive(Clone, Copy, PartialEq, Eq)]
struct UserKey {
    len: u8,
    bytes: [u8; 23],
}

impl UserKey {
    fn new(user: &str) -> Option<UserKey> {
        let len = u8::try_from(user.len()).ok().filter(|len| *len <= 23)?;
        let mut bytes = [0u8; 23];
        bytes[..user.len()].copy_from_slice(user.as_bytes());
        Some(UserKey { len, bytes })
    }

    fn as_str(&self) -> &str {
        // Copied from a &str whole.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::hash::Hash for UserKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write(&self.bytes[..usize::from(self.len)]);
    }
}

/// People's entries by user id.
struct ByUser<V> {
    short: HashMap<UserKey, V, Fnv64>,
    long: HashMap<String, V, Fnv64>,
}

impl<V> ByUser<V> {
    fn with_capacity(capacity: usize) -> ByUser<V> {
        ByUser {
            short: HashMap::with_capacity_and_hasher(capacity, Fnv64::default()),
            long: HashMap::default(),
        }
    }

    fn get(&self, user: &str) -> Option<&V> {
        match UserKey::new(user) {
            Some(key) => self.short.get(&key),
            None => self.long.get(user),
        }
    }

    fn insert(&mut self, user: &str, value: V) {
        match UserKey::new(user) {
            Some(key) => self.short.insert(key, value),
            None => self.long.insert(user.to_string(), value),
        };
    }

    fn entry_or(&mut self, user: &str, make: impl FnOnce() -> V) -> &mut V {
        match UserKey::new(user) {
            Some(key) => self.short.entry(key).or_insert_with(make),
            None => self.long.entry(user.to_string()).or_insert_with(make),
        }
    }

    fn len(&self) -> usize {
        self.short.len() + self.long.len()
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut V)> {
        self.short
            .iter_mut()
            .map(|(key, value)| (key.as_str(), value))
            .chain(
                self.long
                    .iter_mut()
                    .map(|(key, value)| (key.as_str(), value)),
            )
    }
}

type Traits = ByUser<Map<String, Value>>;

/// The `userId` of a logged event (one pass over its keys).
fn user_id(event: &Value) -> Option<&str> {
    event
        .as_object()?
        .iter()
        .find(|(key, _)| key.as_str() == "userId")
        .and_then(|(_, value)| value.as_str())
}

/// One thread's share of the people: their states by user id.
struct Partition {
    states: ByUser<ProfileState>,
}

/// A block's events parsed by one thread, split by the thread that owns their person.
type Parsed = Vec<Vec<Value>>;

/// FNV-1a of a user id: which thread owns the person.
fn owner(user: &str, threads: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    (hash % threads as u64) as usize
}

/// Parses the lines of `text` into one list per owning thread (log order kept in each).
fn parse_lines(text: &[u8], threads: usize) -> Parsed {
    let mut out: Parsed = (0..threads)
        .map(|_| Vec::with_capacity(text.len() / 300 / threads + 16))
        .collect();
    for line in text.split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let Ok(value) = serde_json::from_slice::<Value>(line) else {
            continue;
        };
        let to = user_id(&value).map_or(0, |user| owner(user, threads));
        out[to].push(value);
    }
    out
}

/// Splits `text` into `parts` ranges at line ends.
fn piece_ranges(text: &[u8], parts: usize) -> Vec<(usize, usize)> {
    let mut ranges = Vec::with_capacity(parts);
    let mut from = 0;
    for left in (1..=parts).rev() {
        let rest = &text[from..];
        let end = if left == 1 {
            text.len()
        } else {
            let cut = rest.len() / left;
            rest[cut..]
                .iter()
                .position(|b| *b == b'\n')
                .map_or(text.len(), |at| from + cut + at + 1)
        };
        ranges.push((from, end));
        from = end;
    }
    ranges
}

/// Applies a thread's events of one block, in log order, to its people's states (a person's
/// state starts fresh at their first event).
fn apply_events(engine: &Engine, partition: &mut Partition, lists: &[&Vec<Value>], now: i64) {
    for list in lists {
        for value in list.iter() {
            let Some(user) = user_id(value) else {
                continue;
            };
            let state = partition.states.entry_or(user, || engine.fresh());
            if let Some(event) = EventRef::read(value) {
                engine.apply(state, &event, now);
            }
        }
    }
}

/// Members and the sum of their user numbers, per audience (in catalog order).
struct Tally {
    members: Vec<u64>,
    sums: Vec<u64>,
    next_changes: u64,
}

/// Evaluates a thread's states once at `now`.
fn evaluate_states(
    engine: &Engine,
    keys: &[String],
    partition: &mut Partition,
    traits: &Traits,
    now: i64,
) -> Tally {
    let empty = Map::new();
    let mut tally = Tally {
        members: vec![0; keys.len()],
        sums: vec![0; keys.len()],
        next_changes: 0,
    };
    for (user, state) in partition.states.iter_mut() {
        let traits = traits.get(user).unwrap_or(&empty);
        let changes = engine.evaluate(state, traits, now);
        if engine.next_change(state, traits, now).is_some() {
            tally.next_changes += 1;
        }
        for change in changes {
            if let Change::Entered(key) = change
                && let Some(at) = keys.iter().position(|k| *k == key)
            {
                tally.members[at] += 1;
                tally.sums[at] += user
                    .strip_prefix('u')
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    tally
}

/// Reads the next block of whole lines (at least `size` bytes unless the file ends).
fn next_block(reader: &mut BufReader<File>, block: &mut Vec<u8>, size: usize) -> Result<bool> {
    block.clear();
    let mut limited = reader.by_ref().take(size as u64);
    limited.read_to_end(block)?;
    if block.is_empty() {
        return Ok(false);
    }
    if block.last() != Some(&b'\n') {
        reader.read_until(b'\n', block)?;
    }
    Ok(true)
}

fn read_traits(path: &Path) -> Result<Traits> {
    let reader = BufReader::new(File::open(path).with_context(|| format!("{}", path.display()))?);
    let mut traits = Traits::with_capacity(1 << 16);
    for line in reader.lines() {
        let row: Value = serde_json::from_str(&line?)?;
        let (Some(user), Some(Value::Object(map))) =
            (row.get("userId").and_then(Value::as_str), row.get("traits"))
        else {
            continue;
        };
        traits.insert(user, map.clone());
    }
    Ok(traits)
}

struct Round {
    parse: Duration,
    apply: Duration,
    evaluate: Duration,
    profiles: usize,
    events: usize,
    tally: Tally,
}

/// A block of lines and each worker's piece of it (start and end).
type Block = (Vec<u8>, Vec<(usize, usize)>);

/// What the workers share for one round.
struct Shared<'a> {
    engine: &'a Engine,
    keys: &'a [String],
    traits: &'a Traits,
    now: i64,
    threads: usize,
    /// People in the history.
    profiles: usize,
    /// The current block of lines, and where each worker's piece of it starts and ends.
    block: RwLock<Block>,
    /// Each worker's parse of its piece, by owning worker.
    parsed: Vec<RwLock<Parsed>>,
    /// Set when the file is consumed: the workers evaluate instead of parsing.
    done: AtomicBool,
    /// Every worker and the timing thread meet here between phases.
    barrier: Barrier,
}

/// One worker: for each block, parse its piece (phase 1), apply its people's events from every
/// piece in log order (phase 2), free its parse (phase 3, not timed); at the end evaluate its
/// states. The timing thread measures each phase between barriers.
fn worker(shared: &Shared<'_>, me: usize) -> (Tally, usize) {
    // Sized for the history's people, as a profile store's index already is.
    let mut partition = Partition {
        states: ByUser::with_capacity(shared.profiles / shared.threads + 1024),
    };
    loop {
        shared.barrier.wait();
        if shared.done.load(Ordering::Acquire) {
            break;
        }
        {
            let block = read_lock(&shared.block);
            let (from, to) = block.1[me];
            let mine = parse_lines(&block.0[from..to], shared.threads);
            *write_lock(&shared.parsed[me]) = mine;
        }
        shared.barrier.wait();
        {
            let pieces: Vec<_> = shared.parsed.iter().map(read_lock).collect();
            let lists: Vec<&Vec<Value>> = pieces.iter().map(|piece| &piece[me]).collect();
            apply_events(shared.engine, &mut partition, &lists, shared.now);
        }
        shared.barrier.wait();
        write_lock(&shared.parsed[me]).clear();
        shared.barrier.wait();
    }
    let tally = evaluate_states(
        shared.engine,
        shared.keys,
        &mut partition,
        shared.traits,
        shared.now,
    );
    shared.barrier.wait();
    let profiles = partition.states.len();
    // Freeing the states is not timed.
    drop(partition);
    (tally, profiles)
}

fn read_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A poisoned lock means a worker panicked; its join reports it.
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What every round works with.
struct Setup<'a> {
    engine: &'a Engine,
    keys: &'a [String],
    traits: &'a Traits,
    threads: usize,
    block_size: usize,
    profiles: usize,
    now: i64,
}

fn round(setup: &Setup<'_>, events_path: &Path) -> Result<Round> {
    let Setup {
        engine,
        keys,
        traits,
        threads,
        block_size,
        profiles,
        now,
    } = *setup;
    let shared = Shared {
        engine,
        keys,
        traits,
        now,
        threads,
        profiles,
        block: RwLock::new((Vec::with_capacity(block_size + 4096), Vec::new())),
        parsed: (0..threads).map(|_| RwLock::new(Vec::new())).collect(),
        done: AtomicBool::new(false),
        barrier: Barrier::new(threads + 1),
    };
    let mut reader = BufReader::with_capacity(
        1 << 20,
        File::open(events_path).with_context(|| format!("{}", events_path.display()))?,
    );
    let (mut parse, mut apply) = (Duration::ZERO, Duration::ZERO);
    let mut events = 0usize;
    let shared = &shared;
    let (evaluate, results) = std::thread::scope(|scope| -> Result<_> {
        let handles: Vec<_> = (0..threads)
            .map(|me| scope.spawn(move || worker(shared, me)))
            .collect();
        // If reading fails the workers must still be released, so errors wait until then.
        let mut failure = None;
        loop {
            let more = {
                let mut block = write_lock(&shared.block);
                let (text, pieces) = &mut *block;
                match next_block(&mut reader, text, block_size) {
                    Ok(more) => {
                        *pieces = piece_ranges(text, threads);
                        more
                    }
                    Err(error) => {
                        failure = Some(error);
                        false
                    }
                }
            };
            if !more {
                shared.done.store(true, Ordering::Release);
                shared.barrier.wait();
                break;
            }
            shared.barrier.wait();
            let started = Instant::now();
            shared.barrier.wait();
            parse += started.elapsed();
            events += shared
                .parsed
                .iter()
                .map(|piece| read_lock(piece).iter().map(Vec::len).sum::<usize>())
                .sum::<usize>();
            let started = Instant::now();
            shared.barrier.wait();
            apply += started.elapsed();
            shared.barrier.wait();
        }
        let started = Instant::now();
        shared.barrier.wait();
        let evaluate = started.elapsed();
        let results = handles
            .into_iter()
            .map(|handle| handle.join().map_err(|_| anyhow!("a worker panicked")))
            .collect::<Result<Vec<_>>>()?;
        match failure {
            Some(error) => Err(error),
            None => Ok((evaluate, results)),
        }
    })?;
    let mut tally = Tally {
        members: vec![0; keys.len()],
        sums: vec![0; keys.len()],
        next_changes: 0,
    };
    let mut profiles = 0;
    for (part, count) in &results {
        for at in 0..keys.len() {
            tally.members[at] += part.members[at];
            tally.sums[at] += part.sums[at];
        }
        tally.next_changes += part.next_changes;
        profiles += count;
    }
    Ok(Round {
        parse,
        apply,
        evaluate,
        profiles,
        events,
        tally,
    })
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
    let people = meta["profiles"].as_u64().unwrap_or(0) as usize;
    let engine = Engine::new(&catalog()?).map_err(|e| anyhow!("{e}"))?;
    // The order results are reported in: the definitions' order.
    let keys: Vec<String> = audiences()
        .iter()
        .filter_map(|a| a["key"].as_str().map(str::to_string))
        .collect();
    let traits = read_traits(&args.data.join("profiles.jsonl"))?;
    let threads = args.threads.max(1);
    let setup = Setup {
        engine: &engine,
        keys: &keys,
        traits: &traits,
        threads,
        block_size: args.block_kib.max(1) << 10,
        profiles: people,
        now,
    };
    let mut rounds = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let result = round(&setup, &args.data.join("events.jsonl"))?;
        eprintln!(
            "   sluice round: parse {:.3} s, apply {:.3} s, evaluate {:.3} s",
            result.parse.as_secs_f64(),
            result.apply.as_secs_f64(),
            result.evaluate.as_secs_f64()
        );
        rounds.push(result);
    }
    let last = rounds.last().ok_or_else(|| anyhow!("no round ran"))?;
    for other in &rounds {
        if other.tally.members != last.tally.members || other.tally.sums != last.tally.sums {
            bail!("rounds disagree: the backfill is not deterministic");
        }
    }
    let secs = |f: fn(&Round) -> Duration| -> Vec<f64> {
        rounds.iter().map(|r| f(r).as_secs_f64()).collect()
    };
    let parse = secs(|r| r.parse);
    let apply = secs(|r| r.apply);
    let evaluate = secs(|r| r.evaluate);
    let engine_s = secs(|r| r.apply + r.evaluate);
    let text_s = secs(|r| r.parse + r.apply + r.evaluate);
    let audiences: Vec<Value> = keys
        .iter()
        .enumerate()
        .map(|(at, key)| {
            json!({"key": key, "members": last.tally.members[at], "sum": last.tally.sums[at]})
        })
        .collect();
    println!(
        "{}",
        json!({
            "events": last.events, "profiles": last.profiles, "threads": threads,
            "rounds": rounds.len(), "now_ms": now,
            "parse_s": parse, "apply_s": apply, "evaluate_s": evaluate,
            "engine_s": engine_s, "from_text_s": text_s,
            "engine_s_median": median(engine_s.clone()),
            "from_text_s_median": median(text_s.clone()),
            "parse_s_median": median(parse.clone()),
            "apply_s_median": median(apply.clone()),
            "evaluate_s_median": median(evaluate.clone()),
            "with_next_change": last.tally.next_changes,
            "audiences": audiences,
        })
    );
    Ok(())
}
