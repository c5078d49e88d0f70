//! The engine end to end: computed traits of every type, audiences entering and exiting once as
//! windows slide, timers, merges, stored states across edits, and the property that a backfill
//! over a history equals evaluating as each event arrives.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Map, Value, json};
use sluice_audience::{Catalog, Change, Engine, EventRef, ProfileState, read_audience, read_trait};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

fn iso(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap();
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn track(id: &str, name: &str, at: i64, properties: Value) -> Value {
    json!({"type": "track", "event": name, "messageId": id, "timestamp": iso(at),
           "properties": properties, "context": {"page": {"path": "/shop/x"}}})
}

fn engine(traits: &[Value], audiences: &[Value]) -> Engine {
    Engine::new(&Catalog {
        traits: traits.iter().map(|t| read_trait(t).unwrap()).collect(),
        audiences: audiences
            .iter()
            .map(|a| read_audience(a).unwrap())
            .collect(),
    })
    .unwrap()
}

/// Applies one event then evaluates at `now`.
fn step(engine: &Engine, state: &mut ProfileState, event: &Value, now: i64) -> Vec<Change> {
    engine.apply(state, &EventRef::read(event).unwrap(), now);
    engine.evaluate(state, &Map::new(), now)
}

fn entered(key: &str) -> Change {
    Change::Entered(key.into())
}

fn exited(key: &str) -> Change {
    Change::Exited(key.into())
}

fn trait_change(key: &str, value: Value) -> Change {
    Change::Trait {
        key: key.into(),
        value,
    }
}

#[test]
fn an_audience_is_entered_and_exited_once_as_its_window_slides() {
    let engine = engine(
        &[],
        &[
            json!({"key": "buyers", "name": "Buyers", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": ">=", "value": 2},
            "within": {"days": 7}}}}),
        ],
    );
    let mut state = engine.fresh();
    let first = track("m1", "Order Completed", T0, json!({}));
    assert_eq!(step(&engine, &mut state, &first, T0), vec![]);
    let second = track("m2", "Order Completed", T0 + 2 * DAY, json!({}));
    assert_eq!(
        step(&engine, &mut state, &second, T0 + 2 * DAY),
        vec![entered("buyers")]
    );
    // A third order changes nothing: already a member.
    let third = track("m3", "Order Completed", T0 + 3 * DAY, json!({}));
    assert_eq!(step(&engine, &mut state, &third, T0 + 3 * DAY), vec![]);
    // An event nobody counts changes nothing either.
    let other = track("m4", "Signed Up", T0 + 3 * DAY, json!({}));
    assert!(!engine.apply(&mut state, &EventRef::read(&other).unwrap(), T0 + 3 * DAY));
    // An order already out of its window leaves a counted series as it was...
    let old = track("m0", "Order Completed", T0 - 30 * DAY, json!({}));
    let before = state.clone();
    assert!(!engine.apply(&mut state, &EventRef::read(&old).unwrap(), T0 + 3 * DAY));
    assert_eq!(state, before);
    // ...and only starts a missing one (a count of 0 rather than never).
    let mut empty = engine.fresh();
    assert!(engine.apply(&mut empty, &EventRef::read(&old).unwrap(), T0 + 3 * DAY));
    assert_ne!(empty, engine.fresh());
    assert_eq!(engine.outputs(&empty), engine.outputs(&engine.fresh()));

    // The first order leaves the window at the end of its hour plus 7 days: still 2 orders.
    let expiry = T0 + HOUR + 7 * DAY;
    let traits = Map::new();
    assert_eq!(
        engine.next_change(&state, &traits, T0 + 3 * DAY),
        Some(expiry)
    );
    assert_eq!(engine.evaluate(&mut state, &traits, expiry - 1), vec![]);
    assert_eq!(engine.evaluate(&mut state, &traits, expiry), vec![]);
    // The second leaves at its hour's end plus 7 days: one order left, the person exits.
    let next = engine.next_change(&state, &traits, expiry).unwrap();
    assert_eq!(next, T0 + 2 * DAY + HOUR + 7 * DAY);
    assert_eq!(
        engine.evaluate(&mut state, &traits, next),
        vec![exited("buyers")]
    );
    // The last order expires too; then nothing is left to wait for.
    let last = engine.next_change(&state, &traits, next).unwrap();
    assert_eq!(last, T0 + 3 * DAY + HOUR + 7 * DAY);
    assert_eq!(engine.evaluate(&mut state, &traits, last), vec![]);
    assert_eq!(engine.next_change(&state, &traits, last), None);
}

#[test]
fn computed_traits_of_every_type() {
    let definition = |key: &str, kind: &str, property: Option<&str>| {
        let mut value = json!({"key": key, "name": key, "type": kind, "event": "Order Completed",
                               "where": [{"context": "page.path", "op": "starts_with", "value": "/shop"}]});
        if let Some(property) = property {
            value["property"] = json!(property);
        }
        value
    };
    let engine = engine(
        &[
            definition("orders", "count", None),
            definition("revenue", "sum", Some("total")),
            definition("basket", "average", Some("total")),
            definition("smallest", "minimum", Some("total")),
            definition("largest", "maximum", Some("total")),
            definition("favourite", "most_frequent", Some("category")),
            definition("first_category", "first", Some("category")),
            definition("last_category", "last", Some("category")),
            definition("categories", "unique_list", Some("category")),
            definition("category_count", "unique_count", Some("category")),
        ],
        &[],
    );
    let mut state = engine.fresh();
    let events = [
        track(
            "a",
            "Order Completed",
            T0 + 3 * HOUR,
            json!({"total": 10, "category": "shoes"}),
        ),
        track(
            "b",
            "Order Completed",
            T0 + HOUR,
            json!({"total": "30.5", "category": "hats"}),
        ),
        track(
            "c",
            "Order Completed",
            T0 + 5 * HOUR,
            json!({"total": 20, "category": "shoes"}),
        ),
        track(
            "d",
            "Order Completed",
            T0 + 4 * HOUR,
            json!({"category": "hats"}),
        ),
    ];
    let mut last = Vec::new();
    for event in &events {
        last = step(&engine, &mut state, event, T0 + DAY);
    }
    assert!(!last.is_empty());
    let outputs = &engine.outputs(&state).traits;
    assert_eq!(outputs["orders"], json!(4));
    assert_eq!(outputs["revenue"], json!(60.5));
    assert_eq!(outputs["basket"], json!(60.5 / 3.0));
    assert_eq!(outputs["smallest"], json!(10));
    assert_eq!(outputs["largest"], json!(30.5));
    // hats and shoes both twice: the alphabetically first wins.
    assert_eq!(outputs["favourite"], json!("hats"));
    // First and last by timestamp, not by arrival.
    assert_eq!(outputs["first_category"], json!("hats"));
    assert_eq!(outputs["last_category"], json!("shoes"));
    assert_eq!(outputs["categories"], json!(["hats", "shoes"]));
    assert_eq!(outputs["category_count"], json!(2));

    // Events outside the condition or without the property are not counted.
    let elsewhere = json!({"type": "track", "event": "Order Completed", "messageId": "e",
        "timestamp": iso(T0), "properties": {"total": 1000}, "context": {"page": {"path": "/blog"}}});
    assert_eq!(step(&engine, &mut state, &elsewhere, T0 + DAY), vec![]);
}

#[test]
fn most_frequent_needs_its_minimum_and_traits_change_only_when_their_value_does() {
    let engine = engine(
        &[
            json!({"key": "fav", "name": "fav", "type": "most_frequent", "event": "Viewed",
                  "property": "genre", "within": {"hours": 2}}),
        ],
        &[],
    );
    let mut state = engine.fresh();
    let view = |id: &str, at: i64, genre: &str| track(id, "Viewed", at, json!({"genre": genre}));
    // Seen once: below the default minimum of 2.
    assert_eq!(
        step(&engine, &mut state, &view("1", T0, "jazz"), T0),
        vec![]
    );
    assert_eq!(
        step(&engine, &mut state, &view("2", T0, "jazz"), T0),
        vec![trait_change("fav", json!("jazz"))]
    );
    assert_eq!(
        step(&engine, &mut state, &view("3", T0, "rock"), T0),
        vec![]
    );
    // The window (end of the hour plus 2 hours) passes: no value any more.
    assert_eq!(
        engine.evaluate(&mut state, &Map::new(), T0 + 3 * HOUR),
        vec![trait_change("fav", Value::Null)]
    );
    assert!(engine.outputs(&state).traits.is_empty());
}

#[test]
fn audiences_combine_traits_computed_traits_and_other_audiences() {
    let engine = engine(
        &[
            json!({"key": "orders_total", "name": "x", "type": "sum", "event": "Order Completed",
                  "property": "total"}),
        ],
        &[
            json!({"key": "vip", "name": "VIP", "condition": {"and": [
                {"trait": {"key": "orders_total", "op": ">=", "value": 100}},
                {"trait": {"key": "address.country", "op": "one_of", "value": ["FR", "DE"]}}]}}),
            json!({"key": "regular", "name": "Regular", "condition": {"and": [
                {"performed": {"event": "Order Completed"}},
                {"not": {"audience": "vip"}}]}}),
            json!({"key": "new_users", "name": "New", "condition": {
                "trait": {"key": "created_at", "op": "within_last", "value": {"days": 7}}}}),
        ],
    );
    let mut state = engine.fresh();
    let mut traits = Map::new();
    traits.insert("address".into(), json!({"country": "FR"}));
    traits.insert("created_at".into(), json!(iso(T0)));
    let order = |id: &str, total: i64| track(id, "Order Completed", T0, json!({"total": total}));
    engine.apply(&mut state, &EventRef::read(&order("1", 60)).unwrap(), T0);
    assert_eq!(
        engine.evaluate(&mut state, &traits, T0),
        vec![
            trait_change("orders_total", json!(60)),
            entered("regular"),
            entered("new_users")
        ]
    );
    engine.apply(&mut state, &EventRef::read(&order("2", 50)).unwrap(), T0);
    assert_eq!(
        engine.evaluate(&mut state, &traits, T0),
        vec![
            trait_change("orders_total", json!(110)),
            entered("vip"),
            exited("regular")
        ]
    );
    // Moving away from the countries takes the person out of vip and back into regular.
    traits.insert("address".into(), json!({"country": "US"}));
    assert_eq!(
        engine.evaluate(&mut state, &traits, T0),
        vec![exited("vip"), entered("regular")]
    );
    // within_last: the timer is set for the end of the 7 days.
    assert_eq!(engine.next_change(&state, &traits, T0), Some(T0 + 7 * DAY));
    assert_eq!(
        engine.evaluate(&mut state, &traits, T0 + 7 * DAY),
        vec![exited("new_users")]
    );
    assert_eq!(engine.next_change(&state, &traits, T0 + 7 * DAY), None);
}

#[test]
fn conditions_read_only_the_traits_they_name_in_either_form() {
    let engine = engine(
        &[json!({"key": "orders", "name": "x", "type": "count", "event": "Order Completed"})],
        &[
            json!({"key": "vip", "name": "VIP", "condition": {"and": [
                {"trait": {"key": "orders", "op": ">=", "value": 2}},
                {"trait": {"key": "address.country", "op": "=", "value": "FR"}}]}}),
            json!({"key": "pros", "name": "Pros", "condition": {"or": [
                {"trait": {"key": "plan", "op": "=", "value": "pro"}},
                {"trait": {"key": "address.country", "op": "=", "value": "DE"}}]}}),
            json!({"key": "new_users", "name": "New", "condition": {
                "trait": {"key": "created_at", "op": "within_last", "value": {"days": 7}}}}),
        ],
    );
    // Each name once, computed traits not among them, in the order conditions name them.
    assert_eq!(
        engine.profile_trait_names(),
        ["address", "plan", "created_at"]
    );
    let profiles = [
        json!({"address": {"country": "FR"}, "plan": "pro", "created_at": iso(T0), "x": 1}),
        json!({"address": {"country": "DE"}, "email": "a@example.com"}),
        json!({"plan": "free", "created_at": iso(T0 - 3 * DAY)}),
        json!({}),
    ];
    for profile in profiles {
        let Value::Object(all) = profile else {
            unreachable!()
        };
        let selected: Vec<Option<Value>> = engine
            .profile_trait_names()
            .iter()
            .map(|name| all.get(name).cloned())
            .collect();
        let (mut by_name, mut by_position) = (engine.fresh(), engine.fresh());
        for (n, at) in [T0, T0 + DAY, T0 + 5 * DAY].into_iter().enumerate() {
            let order = track(&n.to_string(), "Order Completed", at, json!({}));
            let order = EventRef::read(&order).unwrap();
            engine.apply(&mut by_name, &order, at);
            engine.apply(&mut by_position, &order, at);
            assert_eq!(
                engine.evaluate(&mut by_name, &all, at),
                engine.evaluate(&mut by_position, selected.as_slice(), at),
                "{all:?} at {at}"
            );
            assert_eq!(
                engine.next_change(&by_name, &all, at),
                engine.next_change(&by_position, selected.as_slice(), at)
            );
        }
        assert_eq!(engine.outputs(&by_name), engine.outputs(&by_position));
    }
    // The selected form is what decides: FR with two orders is a vip, DE a pro.
    let selected = [Some(json!({"country": "FR"})), None, None];
    let mut state = engine.fresh();
    for n in 0..2 {
        let order = track(&n.to_string(), "Order Completed", T0, json!({}));
        engine.apply(&mut state, &EventRef::read(&order).unwrap(), T0);
    }
    assert_eq!(
        engine.evaluate(&mut state, selected.as_slice(), T0),
        vec![trait_change("orders", json!(2)), entered("vip")]
    );
    let selected = [Some(json!({"country": "DE"})), None, None];
    assert_eq!(
        engine.evaluate(&mut state, selected.as_slice(), T0),
        vec![exited("vip"), entered("pros")]
    );
}

#[test]
fn not_performing_is_a_membership_from_the_first_evaluation() {
    let engine = engine(
        &[],
        &[
            json!({"key": "no_orders", "name": "x", "condition": {"performed": {
            "event": "Order Completed", "count": {"op": "=", "value": 0}, "within": {"days": 30}}}}),
        ],
    );
    let mut state = engine.fresh();
    assert_eq!(
        engine.evaluate(&mut state, &Map::new(), T0),
        vec![entered("no_orders")]
    );
    let order = track("1", "Order Completed", T0, json!({}));
    assert_eq!(
        step(&engine, &mut state, &order, T0),
        vec![exited("no_orders")]
    );
}

#[test]
fn merged_profiles_count_both_histories_and_report_exits_of_either() {
    let engine = engine(
        &[json!({"key": "orders", "name": "x", "type": "count", "event": "Order Completed"})],
        &[
            json!({"key": "one", "name": "x", "condition": {"performed": {"event": "Order Completed",
                "count": {"op": "=", "value": 1}}}}),
            json!({"key": "two", "name": "x", "condition": {"performed": {"event": "Order Completed",
                "count": {"op": ">=", "value": 2}}}}),
        ],
    );
    let mut a = engine.fresh();
    let mut b = engine.fresh();
    step(
        &engine,
        &mut a,
        &track("1", "Order Completed", T0, json!({})),
        T0,
    );
    step(
        &engine,
        &mut b,
        &track("2", "Order Completed", T0 + HOUR, json!({})),
        T0 + HOUR,
    );
    assert!(engine.outputs(&a).audiences.contains("one"));
    assert!(engine.outputs(&b).audiences.contains("one"));
    engine.merge(&mut a, b);
    assert_eq!(
        engine.evaluate(&mut a, &Map::new(), T0 + HOUR),
        vec![
            trait_change("orders", json!(2)),
            exited("one"),
            entered("two")
        ]
    );
}

#[test]
fn stored_states_survive_edits_of_other_definitions() {
    let count = json!({"key": "orders", "name": "x", "type": "count", "event": "Order Completed",
                       "within": {"days": 30}});
    let before = engine(std::slice::from_ref(&count), &[]);
    let mut state = before.fresh();
    step(
        &before,
        &mut state,
        &track("1", "Order Completed", T0, json!({})),
        T0,
    );
    let stored = before.store(state);
    let text = serde_json::to_string(&stored).unwrap();
    assert!(text.len() < 200, "{text}");
    let stored: sluice_audience::StoredState = serde_json::from_str(&text).unwrap();

    // A new audience over the same events shares the series; a new trait starts empty.
    let after = engine(
        &[
            count,
            json!({"key": "views", "name": "x", "type": "count", "event": "Viewed"}),
        ],
        &[
            json!({"key": "ordered", "name": "x", "condition": {"performed": {
            "event": "Order Completed", "within": {"days": 30}}}}),
        ],
    );
    let mut state = after.load(stored);
    assert_eq!(
        after.evaluate(&mut state, &Map::new(), T0),
        vec![entered("ordered")]
    );
    assert_eq!(after.outputs(&state).traits["orders"], json!(1));
    assert!(!after.outputs(&state).traits.contains_key("views"));

    // Deleting a definition drops its outputs without an exit.
    let fewer = engine(&[], &[]);
    let mut state = fewer.load(after.store(state));
    assert_eq!(fewer.evaluate(&mut state, &Map::new(), T0), vec![]);
    let outputs = fewer.outputs(&state);
    assert!(outputs.audiences.is_empty() && outputs.traits.is_empty());
}

/// The definitions the property test evaluates: windows of several sizes, every reducer.
fn property_engine() -> Engine {
    engine(
        &[
            json!({"key": "c1", "name": "x", "type": "count", "event": "A", "within": {"hours": 3}}),
            json!({"key": "c2", "name": "x", "type": "count", "event": "B"}),
            json!({"key": "s1", "name": "x", "type": "sum", "event": "A", "property": "n",
                   "within": {"days": 1}}),
            json!({"key": "v1", "name": "x", "type": "average", "event": "B", "property": "n"}),
            json!({"key": "m1", "name": "x", "type": "minimum", "event": "A", "property": "n",
                   "within": {"hours": 5}}),
            json!({"key": "x1", "name": "x", "type": "maximum", "event": "B", "property": "n",
                   "within": {"hours": 2}}),
            json!({"key": "f1", "name": "x", "type": "most_frequent", "event": "A", "property": "k",
                   "within": {"hours": 6}, "min_frequency": 1}),
            json!({"key": "p1", "name": "x", "type": "first", "event": "B", "property": "k",
                   "within": {"hours": 4}}),
            json!({"key": "l1", "name": "x", "type": "last", "event": "A", "property": "k"}),
            json!({"key": "u1", "name": "x", "type": "unique_list", "event": "B", "property": "k",
                   "within": {"days": 1}}),
        ],
        &[
            json!({"key": "a1", "name": "x", "condition": {"performed": {"event": "A",
                "count": {"op": ">=", "value": 2}, "within": {"hours": 3}}}}),
            json!({"key": "a2", "name": "x", "condition": {"or": [
                {"performed": {"event": "B", "where": [{"property": "n", "op": ">", "value": 5}],
                               "within": {"hours": 1}}},
                {"trait": {"key": "s1", "op": ">=", "value": 20}}]}}),
            json!({"key": "a3", "name": "x", "condition": {"and": [
                {"audience": "a1"}, {"not": {"audience": "a2"}}]}}),
            json!({"key": "a4", "name": "x", "condition": {"performed": {"event": "B",
                "count": {"op": "<", "value": 2}, "within": {"hours": 2}}}}),
        ],
    )
}

#[derive(Clone, Debug)]
struct Generated {
    /// Minutes after T0 the event is stamped with.
    stamp: i64,
    /// Minutes after the previous arrival it arrives (clocks skew: stamps may be older).
    delay: i64,
    name: &'static str,
    n: i64,
    k: &'static str,
}

fn generated() -> impl Strategy<Value = Generated> {
    (
        0i64..(48 * 60),
        0i64..90,
        prop::sample::select(vec!["A", "B", "C"]),
        0i64..12,
        prop::sample::select(vec!["x", "y", "z"]),
    )
        .prop_map(|(stamp, delay, name, n, k)| Generated {
            stamp,
            delay,
            name,
            n,
            k,
        })
}

fn as_event(index: usize, generated: &Generated) -> Value {
    track(
        &format!("m{index:04}"),
        generated.name,
        T0 + generated.stamp * 60_000,
        json!({"n": generated.n, "k": generated.k}),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Evaluating after every arrival and evaluating once over the whole history end in the
    /// same outputs; and the changes reported along the way, replayed, give those outputs
    /// (each entry and exit reported exactly once).
    #[test]
    fn backfill_equals_incremental(events in prop::collection::vec(generated(), 0..40)) {
        let engine = property_engine();
        let traits = Map::new();
        let mut incremental = engine.fresh();
        let mut replayed = sluice_audience::Outputs::default();
        let mut now = T0;
        let mut values = Vec::new();
        for (index, generated) in events.iter().enumerate() {
            now += generated.delay * 60_000;
            let event = as_event(index, generated);
            values.push((event, now));
            let (event, at) = values.last().unwrap();
            engine.apply(&mut incremental, &EventRef::read(event).unwrap(), *at);
            // Timers fire on the way, as the consumer's would.
            for change in engine.evaluate(&mut incremental, &traits, *at) {
                replay(&mut replayed, change);
            }
        }
        let end = now + 7 * HOUR;
        while let Some(at) = engine.next_change(&incremental, &traits, now) {
            if at > end { break; }
            now = at;
            for change in engine.evaluate(&mut incremental, &traits, now) {
                replay(&mut replayed, change);
            }
        }
        for change in engine.evaluate(&mut incremental, &traits, end) {
            replay(&mut replayed, change);
        }

        let mut backfill = engine.fresh();
        for (event, _) in &values {
            engine.apply(&mut backfill, &EventRef::read(event).unwrap(), end);
        }
        engine.evaluate(&mut backfill, &traits, end);
        let expected = engine.outputs(&backfill);
        prop_assert_eq!(&engine.outputs(&incremental), &expected);
        prop_assert_eq!(&replayed, &expected);
    }

    /// Two profiles' states merged evaluate like one profile that had both histories.
    #[test]
    fn merging_equals_one_history(
        left in prop::collection::vec(generated(), 0..20),
        right in prop::collection::vec(generated(), 0..20),
    ) {
        let engine = property_engine();
        let traits = Map::new();
        let end = T0 + 50 * HOUR;
        let mut a = engine.fresh();
        let mut b = engine.fresh();
        let mut both = engine.fresh();
        for (index, generated) in left.iter().enumerate() {
            let event = as_event(index, generated);
            engine.apply(&mut a, &EventRef::read(&event).unwrap(), end);
            engine.apply(&mut both, &EventRef::read(&event).unwrap(), end);
        }
        for (index, generated) in right.iter().enumerate() {
            let event = as_event(1000 + index, generated);
            engine.apply(&mut b, &EventRef::read(&event).unwrap(), end);
            engine.apply(&mut both, &EventRef::read(&event).unwrap(), end);
        }
        engine.merge(&mut a, b);
        engine.evaluate(&mut a, &traits, end);
        engine.evaluate(&mut both, &traits, end);
        prop_assert_eq!(engine.outputs(&a), engine.outputs(&both));
    }
}

fn replay(outputs: &mut sluice_audience::Outputs, change: Change) {
    match change {
        Change::Trait { key, value } if value.is_null() => {
            assert!(outputs.traits.remove(&key).is_some(), "cleared {key} twice");
        }
        Change::Trait { key, value } => {
            assert_ne!(
                outputs.traits.insert(key.clone(), value.clone()),
                Some(value),
                "{key}"
            );
        }
        Change::Entered(key) => assert!(outputs.audiences.insert(key), "entered twice"),
        Change::Exited(key) => assert!(outputs.audiences.remove(&key), "exited twice"),
    }
}
