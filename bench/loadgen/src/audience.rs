//! `loadgen audience-eval`: the audience engine's incremental cost per event.
//!
//! Fifty audiences (and five computed traits) of the shapes marketers build — event counts in
//! windows with property conditions, trait conditions, combinations, membership of other
//! audiences — are compiled once. Then, per round, `events` events of `profiles` people are
//! each applied to their person's state and the person evaluated, exactly what the audience
//! consumer does per event, with the states in memory (no IO). Prints one JSON line: the
//! median nanoseconds per event over the rounds, and the changes produced (to show the work
//! was real).

use std::time::Instant;

use anyhow::{Result, anyhow};
use clap::Args;
use serde_json::{Map, Value, json};
use sluice_audience::{Catalog, Engine, EventRef, ProfileState, read_audience, read_trait};

#[derive(Args)]
pub struct EvalArgs {
    /// Events per round.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// People the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    profiles: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

const EVENTS: [&str; 5] = [
    "Product Viewed",
    "Product Added",
    "Order Completed",
    "Signed In",
    "Coupon Applied",
];

/// Fifty audiences and five computed traits.
pub fn catalog() -> Result<Catalog> {
    let mut catalog = Catalog::default();
    let traits = [
        json!({"key": "orders_30d", "name": "x", "type": "count", "event": "Order Completed",
               "within": {"days": 30}}),
        json!({"key": "revenue_90d", "name": "x", "type": "sum", "event": "Order Completed",
               "property": "total", "within": {"days": 90}}),
        json!({"key": "favourite_category", "name": "x", "type": "most_frequent",
               "event": "Product Viewed", "property": "category", "within": {"days": 30}}),
        json!({"key": "last_coupon", "name": "x", "type": "last", "event": "Coupon Applied",
               "property": "code"}),
        json!({"key": "categories", "name": "x", "type": "unique_count",
               "event": "Product Viewed", "property": "category", "within": {"days": 7}}),
    ];
    for definition in &traits {
        catalog
            .traits
            .push(read_trait(definition).map_err(|e| anyhow!("{e}"))?);
    }
    for index in 0..50 {
        let event = EVENTS[index % EVENTS.len()];
        let days = [1, 7, 30, 90][index % 4];
        let definition = match index % 5 {
            0 => {
                json!({"performed": {"event": event, "count": {"op": ">=", "value": 1 + index % 3},
                                      "within": {"days": days}}})
            }
            1 => json!({"and": [
                {"performed": {"event": event, "within": {"days": days},
                               "where": [{"property": "total", "op": ">", "value": (index * 3) % 100}]}},
                {"trait": {"key": "plan", "op": "=", "value": "pro"}}]}),
            2 => json!({"or": [
                {"trait": {"key": "orders_30d", "op": ">=", "value": 1 + index % 4}},
                {"trait": {"key": "revenue_90d", "op": ">", "value": 100 + index}}]}),
            3 => json!({"and": [
                {"performed": {"event": event, "count": {"op": "<", "value": 3},
                               "within": {"days": days},
                               "where": [{"property": "category", "op": "one_of",
                                          "value": ["shoes", "hats"]}]}},
                {"not": {"audience": format!("a{}", index - 3)}}]}),
            _ => json!({"and": [
                {"audience": format!("a{}", index - 4)},
                {"trait": {"key": "favourite_category", "op": "exists"}}]}),
        };
        let audience = json!({"key": format!("a{index}"), "name": format!("Audience {index}"),
                              "condition": definition});
        catalog
            .audiences
            .push(read_audience(&audience).map_err(|e| anyhow!("{e}"))?);
    }
    Ok(catalog)
}

/// Events of `profiles` people over the last 60 days, already parsed (as the consumer has
/// them).
fn events(count: usize, profiles: usize, now_ms: i64) -> Vec<(usize, Value)> {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let categories = ["shoes", "hats", "bags", "coats", "socks"];
    let mut out = Vec::with_capacity(count);
    for index in 0..count {
        let person = (next() % profiles as u64) as usize;
        let age_ms = (next() % (60 * 86_400_000)) as i64;
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(
            i128::from(now_ms - age_ms) * 1_000_000,
        )
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let timestamp = at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let event = EVENTS[(next() % EVENTS.len() as u64) as usize];
        out.push((
            person,
            json!({"type": "track", "event": event, "messageId": format!("m{index}"),
                   "timestamp": timestamp, "userId": format!("user-{person}"),
                   "properties": {"total": next() % 200,
                                  "category": categories[(next() % 5) as usize],
                                  "code": format!("C{}", next() % 20)}}),
        ));
    }
    out
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let engine = Engine::new(&catalog()?).map_err(|e| anyhow!("{e}"))?;
    let now = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let events = events(args.events, args.profiles, now);
    let mut traits = Map::new();
    traits.insert("plan".into(), json!("pro"));
    let mut per_event = Vec::with_capacity(args.rounds);
    let mut changes = 0usize;
    for _ in 0..args.rounds.max(1) {
        let mut states: Vec<ProfileState> = (0..args.profiles).map(|_| engine.fresh()).collect();
        changes = 0;
        let started = Instant::now();
        for (person, body) in &events {
            let Some(event) = EventRef::read(body) else {
                continue;
            };
            let state = &mut states[*person];
            engine.apply(state, &event, now);
            changes += engine.evaluate(state, &traits, now).len();
        }
        per_event.push(started.elapsed().as_nanos() as f64 / events.len() as f64);
    }
    per_event.sort_by(f64::total_cmp);
    let median = per_event[per_event.len() / 2];
    println!(
        "{}",
        json!({"audiences": 50, "computed_traits": 5, "events": args.events,
               "profiles": args.profiles, "rounds": per_event.len(),
               "ns_per_event_median": median.round(), "ns_per_event_rounds": per_event,
               "changes": changes})
    );
    Ok(())
}
