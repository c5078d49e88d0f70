//! The engine: a workspace's catalog compiled into aggregators, applied to one profile's events
//! as they arrive and evaluated into computed-trait values and audience memberships.
//!
//! - [`Engine::apply`] adds an event to the profile's series (only the aggregators its name
//!   selects are looked at).
//! - [`Engine::evaluate`] drops expired buckets, computes every trait and audience at `now`
//!   and returns what changed since the last evaluation: each entry into and exit from an
//!   audience once, each computed trait when its value changes.
//! - [`Engine::next_change`] says when time alone will change something (a bucket leaving a
//!   window, a `within_last` trait condition ending), for the caller's timers.
//! - [`Engine::merge`] combines two profiles' states when identity resolution merges them.
//!
//! Aggregators are shared: two audiences counting the same events over the same window read
//! one series. A series is stored under its aggregator's id (a hash of what it counts), so a
//! state stays valid across edits of other definitions.
//!
//! A backfill is the same code: apply a profile's logged events in order, then evaluate once.
//! Because an event's contribution ends at a time fixed by its timestamp (see `series.rs`),
//! that gives the same answer as evaluating after every event (`tests/engine.rs` checks it).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::catalog::Catalog;
use crate::compare::{Operand, Operator, Probe, Test, number};
use crate::definition::{
    Condition, CountOp, DefinitionError, EventKind, EventSelection, Field, Reduce,
};
use crate::recorded;
use crate::series::{self, Data, Kind, Pick, Series, Stats};

/// The call type of an event, as far as the engine cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    Track,
    Page,
    Screen,
    /// identify, group, alias: only their traits matter, read from the profile.
    Other,
}

/// The parts of an event the engine reads.
#[derive(Clone, Copy, Debug)]
pub struct EventRef<'a> {
    pub call: Call,
    /// A track event's name, as UTF-8 bytes (empty for other calls).
    pub name: &'a [u8],
    /// `timestamp`, milliseconds since the epoch.
    pub timestamp: i64,
    /// `messageId`'s bytes (UTF-8; read only by first and last values).
    pub message_id: &'a [u8],
    pub properties: Option<Part<'a>>,
    pub context: Option<Part<'a>>,
}

/// An event's `properties` or `context`: parsed JSON, or the same in an event's recorded form
/// (see [`crate::recorded`]).
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    Json(&'a Value),
    Recorded(recorded::Node<'a>),
}

impl<'a> Part<'a> {
    /// The value at `path`.
    fn lookup(self, path: &[String]) -> Option<Found<'a>> {
        match self {
            Part::Json(value) => lookup(value, path).map(Found::Json),
            Part::Recorded(node) => node.lookup(path).map(Found::Recorded),
        }
    }
}

/// A value found in an event's `properties` or `context`, of either form.
#[derive(Clone, Copy, Debug)]
enum Found<'a> {
    Json(&'a Value),
    Recorded(recorded::Node<'a>),
}

impl<'a> Probe<'a> for Found<'a> {
    fn is_null(self) -> bool {
        match self {
            Found::Json(value) => value.is_null(),
            Found::Recorded(node) => node.is_null(),
        }
    }

    fn is_number(self) -> bool {
        match self {
            Found::Json(value) => value.is_number(),
            Found::Recorded(node) => node.is_number(),
        }
    }

    fn as_str(self) -> Option<&'a str> {
        match self {
            Found::Json(value) => value.as_str(),
            Found::Recorded(node) => node.as_str(),
        }
    }

    fn number(self) -> Option<f64> {
        match self {
            Found::Json(value) => number(value),
            Found::Recorded(node) => node.number(),
        }
    }

    fn equals(self, operand: &Value) -> bool {
        match self {
            Found::Json(value) => value.equals(operand),
            Found::Recorded(node) => node.equals(operand),
        }
    }

    fn has_item(self, text: &str) -> bool {
        match self {
            Found::Json(value) => value.has_item(text),
            Found::Recorded(node) => node.has_item(text),
        }
    }

    fn scalar_text(self) -> Option<String> {
        match self {
            Found::Json(value) => value.scalar_text(),
            Found::Recorded(node) => node.scalar_text(),
        }
    }
}

impl<'a> EventRef<'a> {
    /// Reads a logged (normalized) event; `None` without a `timestamp` or `messageId`.
    pub fn read(event: &'a Value) -> Option<EventRef<'a>> {
        let map = event.as_object()?;
        let (mut kind, mut name, mut timestamp, mut message_id) = (None, None, None, None);
        let (mut properties, mut context) = (None, None);
        // One pass over the keys (a logged event has a dozen) instead of a hashed lookup each.
        for (key, value) in map {
            match key.as_str() {
                "type" => kind = value.as_str(),
                "event" => name = value.as_str(),
                "timestamp" => timestamp = value.as_str(),
                "messageId" => message_id = value.as_str(),
                "properties" => properties = Some(Part::Json(value)),
                "context" => context = Some(Part::Json(value)),
                _ => {}
            }
        }
        let call = match kind {
            Some("track") => Call::Track,
            Some("page") => Call::Page,
            Some("screen") => Call::Screen,
            _ => Call::Other,
        };
        Some(EventRef {
            call,
            name: name.unwrap_or("").as_bytes(),
            timestamp: timestamp_ms(timestamp?)?,
            message_id: message_id?.as_bytes(),
            properties,
            context,
        })
    }
}

/// A timestamp in milliseconds since the epoch. The form Sluice writes to the log
/// (`2026-11-22T10:08:09.231Z`) is read directly; anything else goes through the full
/// ISO-8601 reader.
pub fn timestamp_ms(text: &str) -> Option<i64> {
    logged_timestamp_ms(text)
        .or_else(|| sluice_spec::timestamp::parse(text).map(sluice_spec::timestamp::to_ms))
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` in milliseconds, `None` for any other text (or an impossible
/// date, left to the full reader to refuse).
fn logged_timestamp_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let digits = |from: usize, to: usize| -> Option<i64> {
        b[from..to].iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 7)?, digits(8, 10)?);
    let (hour, minute, second) = (digits(11, 13)?, digits(14, 16)?, digits(17, 19)?);
    let millis = digits(20, 23)?;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > month_days || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

/// What changed for a profile at an evaluation.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A computed trait took a new value (`null` when it no longer has one).
    Trait {
        key: String,
        value: Value,
    },
    Entered(String),
    Exited(String),
}

/// The profile's last evaluated values: computed traits (those with a value) and the
/// audiences it belongs to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Outputs {
    #[serde(rename = "t", default)]
    pub traits: BTreeMap<String, Value>,
    #[serde(rename = "a", default)]
    pub audiences: BTreeSet<String>,
}

/// A profile's state as stored: series by aggregator id, and the last outputs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StoredState {
    #[serde(rename = "s", default)]
    pub series: BTreeMap<String, Series>,
    #[serde(rename = "o", default)]
    pub outputs: Outputs,
}

/// A profile's state laid out for one engine: series by aggregator, computed-trait values
/// (`null`: none) and memberships by position, so evaluating compares no keys.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileState {
    series: Vec<Option<Series>>,
    values: Vec<Value>,
    /// By position in evaluation order.
    members: Vec<bool>,
}

struct Aggregator {
    id: String,
    selection: EventSelection,
    property: Option<Vec<String>>,
    kind: Kind,
    window: Option<i64>,
}

struct TraitSlot {
    key: String,
    reduce: Reduce,
    aggregator: usize,
}

struct AudienceSlot {
    key: String,
    condition: Node,
}

enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Performed {
        aggregator: usize,
        op: CountOp,
        count: u64,
    },
    /// A trait's value at `path` (what follows the trait's key).
    Trait {
        source: TraitSource,
        path: Vec<String>,
        test: Test,
    },
    /// The audience at this position of the evaluation order.
    Audience(usize),
}

/// Where a trait condition reads its trait.
#[derive(Debug)]
enum TraitSource {
    /// The computed trait of this slot.
    Computed(usize),
    /// The profile trait of this position in [`Engine::profile_trait_names`].
    Profile(usize),
}

/// A profile's own (custom) traits, as the engine reads them: by the position of the trait's
/// name in [`Engine::profile_trait_names`], or by the name itself.
pub trait ProfileTraits {
    fn trait_value(&self, position: usize, name: &str) -> Option<&Value>;
}

/// All of a profile's traits, found by name.
impl ProfileTraits for Map<String, Value> {
    fn trait_value(&self, _position: usize, name: &str) -> Option<&Value> {
        // Profiles have a handful of traits: comparing their names is cheaper than hashing.
        if self.len() <= 16 {
            self.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value)
        } else {
            self.get(name)
        }
    }
}

/// Only the traits the engine's conditions read, in [`Engine::profile_trait_names`] order
/// (what a backfill reads for each profile).
impl ProfileTraits for [Option<Value>] {
    fn trait_value(&self, position: usize, _name: &str) -> Option<&Value> {
        self.get(position)?.as_ref()
    }
}

/// A compiled catalog.
pub struct Engine {
    aggregators: Vec<Aggregator>,
    track: EventNames,
    pages: Vec<usize>,
    screens: Vec<usize>,
    traits: Vec<TraitSlot>,
    /// In evaluation order.
    audiences: Vec<AudienceSlot>,
    /// Whether any audience has a `within_last` trait condition.
    relative: bool,
    /// The profile traits conditions read, each name once.
    profile_traits: Vec<String>,
}

impl ProfileState {
    fn empty(engine: &Engine) -> ProfileState {
        ProfileState {
            series: vec![None; engine.aggregators.len()],
            values: vec![Value::Null; engine.traits.len()],
            members: vec![false; engine.audiences.len()],
        }
    }
}

impl Engine {
    /// Compiles a catalog (checked here).
    pub fn new(catalog: &Catalog) -> Result<Engine, DefinitionError> {
        let order = catalog.check()?;
        let mut engine = Engine {
            aggregators: Vec::new(),
            track: EventNames::default(),
            pages: Vec::new(),
            screens: Vec::new(),
            traits: Vec::new(),
            audiences: Vec::new(),
            relative: false,
            profile_traits: Vec::new(),
        };
        let mut ids: HashMap<String, usize> = HashMap::new();
        for definition in &catalog.traits {
            let kind = match definition.reduce {
                Reduce::Count
                | Reduce::Sum
                | Reduce::Average
                | Reduce::Minimum
                | Reduce::Maximum => Kind::Stats,
                Reduce::First => Kind::First,
                Reduce::Last => Kind::Last,
                Reduce::MostFrequent { .. } | Reduce::UniqueList | Reduce::UniqueCount => {
                    Kind::Frequency
                }
            };
            let aggregator = engine.aggregator(
                &mut ids,
                &definition.events,
                definition.property.clone(),
                kind,
                definition.window.map(|w| w.millis()),
            );
            engine.traits.push(TraitSlot {
                key: definition.key.clone(),
                reduce: definition.reduce,
                aggregator,
            });
        }
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(position, index)| (catalog.audiences[*index].key.as_str(), position))
            .collect();
        for index in order {
            let definition = &catalog.audiences[index];
            let condition = engine.compile(&definition.condition, &mut ids, &position);
            engine.audiences.push(AudienceSlot {
                key: definition.key.clone(),
                condition,
            });
        }
        engine.group_by_event();
        Ok(engine)
    }

    /// Orders the aggregators by the events they read, so the series one event feeds lie side
    /// by side in a profile's state (an event then touches one or two cache lines of it, not
    /// one per aggregator). Series are stored by aggregator id, so the order is free.
    fn group_by_event(&mut self) {
        let mut order: Vec<usize> = (0..self.aggregators.len()).collect();
        order.sort_by(|a, b| {
            let key = |index: usize| {
                let aggregator = &self.aggregators[index];
                let (rank, name) = match &aggregator.selection.kind {
                    EventKind::Track(name) => (0, name.as_str()),
                    EventKind::Page => (1, ""),
                    EventKind::Screen => (2, ""),
                };
                (rank, name, index)
            };
            key(*a).cmp(&key(*b))
        });
        // `moved[old] = new`.
        let mut moved = vec![0; order.len()];
        for (new, old) in order.iter().enumerate() {
            moved[*old] = new;
        }
        let mut aggregators: Vec<Option<Aggregator>> = std::mem::take(&mut self.aggregators)
            .into_iter()
            .map(Some)
            .collect();
        self.aggregators = order
            .iter()
            .filter_map(|old| aggregators[*old].take())
            .collect();
        let renumber = |list: &mut Vec<usize>| {
            for index in list.iter_mut() {
                *index = moved[*index];
            }
            list.sort_unstable();
        };
        for (_, list) in &mut self.track.entries {
            renumber(list);
        }
        renumber(&mut self.pages);
        renumber(&mut self.screens);
        for slot in &mut self.traits {
            slot.aggregator = moved[slot.aggregator];
        }
        fn walk(node: &mut Node, moved: &[usize]) {
            match node {
                Node::And(parts) | Node::Or(parts) => {
                    for part in parts {
                        walk(part, moved);
                    }
                }
                Node::Not(inner) => walk(inner, moved),
                Node::Performed { aggregator, .. } => *aggregator = moved[*aggregator],
                Node::Trait { .. } | Node::Audience(_) => {}
            }
        }
        for slot in &mut self.audiences {
            walk(&mut slot.condition, &moved);
        }
    }

    /// The aggregator counting these events, shared when one exists.
    fn aggregator(
        &mut self,
        ids: &mut HashMap<String, usize>,
        selection: &EventSelection,
        property: Option<Vec<String>>,
        kind: Kind,
        window: Option<i64>,
    ) -> usize {
        let id = aggregator_id(selection, property.as_deref(), kind, window);
        if let Some(index) = ids.get(&id) {
            return *index;
        }
        let index = self.aggregators.len();
        match &selection.kind {
            EventKind::Track(name) => self.track.entry(name.as_bytes()).push(index),
            EventKind::Page => self.pages.push(index),
            EventKind::Screen => self.screens.push(index),
        }
        ids.insert(id.clone(), index);
        self.aggregators.push(Aggregator {
            id,
            selection: selection.clone(),
            property,
            kind,
            window,
        });
        index
    }

    fn compile(
        &mut self,
        condition: &Condition,
        ids: &mut HashMap<String, usize>,
        position: &HashMap<&str, usize>,
    ) -> Node {
        match condition {
            Condition::And(parts) => Node::And(
                parts
                    .iter()
                    .map(|part| self.compile(part, ids, position))
                    .collect(),
            ),
            Condition::Or(parts) => Node::Or(
                parts
                    .iter()
                    .map(|part| self.compile(part, ids, position))
                    .collect(),
            ),
            Condition::Not(inner) => Node::Not(Box::new(self.compile(inner, ids, position))),
            Condition::Performed(performed) => Node::Performed {
                aggregator: self.aggregator(
                    ids,
                    &performed.events,
                    None,
                    Kind::Stats,
                    performed.window.map(|w| w.millis()),
                ),
                op: performed.op,
                count: performed.count,
            },
            Condition::Trait { path, test } => {
                self.relative |= test.operator == Operator::WithinLast;
                let computed = self.traits.iter().position(|slot| slot.key == path[0]);
                let source = match computed {
                    Some(slot) => TraitSource::Computed(slot),
                    None => {
                        let known = self.profile_traits.iter().position(|name| *name == path[0]);
                        TraitSource::Profile(known.unwrap_or_else(|| {
                            self.profile_traits.push(path[0].clone());
                            self.profile_traits.len() - 1
                        }))
                    }
                };
                Node::Trait {
                    source,
                    path: path.clone(),
                    test: test.clone(),
                }
            }
            // `Catalog::check` made sure the audience exists and comes earlier.
            Condition::Audience(key) => {
                Node::Audience(position.get(key.as_str()).map_or(usize::MAX, |p| *p))
            }
        }
    }

    /// A new profile's state.
    pub fn fresh(&self) -> ProfileState {
        ProfileState::empty(self)
    }

    /// A stored state laid out for this engine; series of aggregators it no longer has are
    /// dropped, and so are outputs of deleted definitions (quietly: no exit is reported).
    pub fn load(&self, mut stored: StoredState) -> ProfileState {
        let mut state = ProfileState::empty(self);
        for (index, aggregator) in self.aggregators.iter().enumerate() {
            state.series[index] = stored.series.remove(&aggregator.id);
        }
        for (index, slot) in self.traits.iter().enumerate() {
            if let Some(value) = stored.outputs.traits.remove(&slot.key) {
                state.values[index] = value;
            }
        }
        for (index, slot) in self.audiences.iter().enumerate() {
            state.members[index] = stored.outputs.audiences.contains(&slot.key);
        }
        state
    }

    /// The profile's computed-trait values and memberships, by key.
    pub fn outputs(&self, state: &ProfileState) -> Outputs {
        let mut outputs = Outputs::default();
        for (slot, value) in self.traits.iter().zip(&state.values) {
            if !value.is_null() {
                outputs.traits.insert(slot.key.clone(), value.clone());
            }
        }
        for (slot, member) in self.audiences.iter().zip(&state.members) {
            if *member {
                outputs.audiences.insert(slot.key.clone());
            }
        }
        outputs
    }

    /// The state to store.
    pub fn store(&self, state: ProfileState) -> StoredState {
        let outputs = self.outputs(&state);
        let mut series = BTreeMap::new();
        for (aggregator, kept) in self.aggregators.iter().zip(state.series) {
            if let Some(kept) = kept {
                series.insert(aggregator.id.clone(), kept);
            }
        }
        StoredState { series, outputs }
    }

    /// Whether any definition reads events of this call and name: the caller can skip
    /// loading a state for events no aggregator looks at.
    pub fn wants(&self, event: &EventRef<'_>) -> bool {
        !self.candidates(event).is_empty()
    }

    #[inline]
    fn candidates(&self, event: &EventRef<'_>) -> &[usize] {
        match event.call {
            Call::Track => self.track.get(event.name),
            Call::Page => &self.pages,
            Call::Screen => &self.screens,
            Call::Other => &[],
        }
    }

    /// Adds an event to the profile's series; true when that changed the state (an event out
    /// of its window only creates its series, if missing). `now` only decides whether an old
    /// event still counts anywhere.
    pub fn apply(&self, state: &mut ProfileState, event: &EventRef<'_>, now: i64) -> bool {
        let mut touched = false;
        for &index in self.candidates(event) {
            let aggregator = &self.aggregators[index];
            let counts = series::counts_at(event.timestamp, aggregator.window, now);
            // An event out of its window only marks the series as seen: nothing to do when it
            // is already (most of a long history is older than a short window).
            if !counts && state.series[index].is_some() {
                continue;
            }
            let selected = aggregator
                .selection
                .conditions
                .iter()
                .all(|condition| condition.test.passes(field(event, &condition.field), now));
            if !selected {
                continue;
            }
            let Some(data) = contribution(aggregator, event) else {
                continue;
            };
            // The series exists once an event matched, even one already out of its window:
            // a count then reads 0, not "never".
            let series = state.series[index].get_or_insert_with(Series::default);
            touched = true;
            if counts {
                series.add(event.timestamp, aggregator.window, aggregator.kind, data);
            }
        }
        touched
    }

    /// Computes every trait and audience at `now`, records them as the profile's outputs and
    /// returns what changed. `traits` are the profile's (custom) traits.
    pub fn evaluate(
        &self,
        state: &mut ProfileState,
        traits: &(impl ProfileTraits + ?Sized),
        now: i64,
    ) -> Vec<Change> {
        for (aggregator, series) in self.aggregators.iter().zip(state.series.iter_mut()) {
            if let Some(series) = series {
                series.prune(aggregator.window, now);
            }
        }
        let computed: Vec<Value> = self
            .traits
            .iter()
            .map(|slot| self.reduce(slot, state, now))
            .collect();
        let mut members = Vec::with_capacity(self.audiences.len());
        for slot in &self.audiences {
            let member = self.holds(&slot.condition, state, traits, &computed, &members, now);
            members.push(member);
        }

        let mut changes = Vec::new();
        for ((slot, value), kept) in self.traits.iter().zip(computed).zip(&mut state.values) {
            if *kept != value {
                changes.push(Change::Trait {
                    key: slot.key.clone(),
                    value: value.clone(),
                });
                *kept = value;
            }
        }
        for ((slot, member), was) in self.audiences.iter().zip(members).zip(&mut state.members) {
            if member && !*was {
                changes.push(Change::Entered(slot.key.clone()));
            } else if !member && *was {
                changes.push(Change::Exited(slot.key.clone()));
            }
            *was = member;
        }
        changes
    }

    /// The next moment after `now` at which time alone changes something for this profile,
    /// evaluated last with `traits`.
    pub fn next_change(
        &self,
        state: &ProfileState,
        traits: &(impl ProfileTraits + ?Sized),
        now: i64,
    ) -> Option<i64> {
        let mut next: Option<i64> = None;
        let mut consider = |at: Option<i64>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |next| next.min(at)));
            }
        };
        for (aggregator, series) in self.aggregators.iter().zip(&state.series) {
            if let Some(series) = series {
                consider(series.next_expiry(aggregator.window, now));
            }
        }
        if self.relative {
            for slot in &self.audiences {
                self.relative_changes(&slot.condition, state, traits, now, &mut consider);
            }
        }
        next
    }

    fn relative_changes(
        &self,
        node: &Node,
        state: &ProfileState,
        traits: &(impl ProfileTraits + ?Sized),
        now: i64,
        consider: &mut impl FnMut(Option<i64>),
    ) {
        match node {
            Node::And(parts) | Node::Or(parts) => {
                for part in parts {
                    self.relative_changes(part, state, traits, now, consider);
                }
            }
            Node::Not(inner) => self.relative_changes(inner, state, traits, now, consider),
            Node::Trait { source, path, test } if test.operator == Operator::WithinLast => {
                let value = trait_at(source, path, traits, &state.values);
                consider(test.changes_after(value, now));
            }
            _ => {}
        }
    }

    /// Combines `from` (a profile merged away) into `into`. Memberships of either count as
    /// held before, so the next evaluation reports exits of the merged person.
    pub fn merge(&self, into: &mut ProfileState, from: ProfileState) {
        for ((aggregator, kept), other) in self
            .aggregators
            .iter()
            .zip(into.series.iter_mut())
            .zip(from.series)
        {
            if let Some(other) = other {
                kept.get_or_insert_with(Series::default)
                    .merge(other, aggregator.kind);
            }
        }
        for (member, other) in into.members.iter_mut().zip(from.members) {
            *member |= other;
        }
        for (value, other) in into.values.iter_mut().zip(from.values) {
            if value.is_null() {
                *value = other;
            }
        }
    }

    /// Whether the catalog defines nothing.
    pub fn is_empty(&self) -> bool {
        self.traits.is_empty() && self.audiences.is_empty()
    }

    /// The names of the profile traits conditions read: what [`ProfileTraits`] given as a
    /// slice holds, in this order.
    pub fn profile_trait_names(&self) -> &[String] {
        &self.profile_traits
    }

    /// The computed-trait keys, in definition order.
    pub fn trait_keys(&self) -> impl Iterator<Item = &str> {
        self.traits.iter().map(|slot| slot.key.as_str())
    }

    /// The audience keys, in evaluation order.
    pub fn audience_keys(&self) -> impl Iterator<Item = &str> {
        self.audiences.iter().map(|slot| slot.key.as_str())
    }

    fn reduce(&self, slot: &TraitSlot, state: &ProfileState, now: i64) -> Value {
        let aggregator = &self.aggregators[slot.aggregator];
        let Some(series) = &state.series[slot.aggregator] else {
            return Value::Null;
        };
        if aggregator.kind == Kind::Stats {
            let stats = series.live_stats(aggregator.window, now);
            return match (slot.reduce, stats) {
                (Reduce::Count, stats) => Value::from(stats.map_or(0, |s| s.count)),
                (Reduce::Sum, stats) => number_value(stats.map_or(0.0, |s| s.sum)),
                (_, None) => Value::Null,
                (Reduce::Average, Some(s)) => number_value(s.sum / s.count as f64),
                (Reduce::Minimum, Some(s)) => number_value(s.min),
                (Reduce::Maximum, Some(s)) => number_value(s.max),
                _ => Value::Null,
            };
        }
        let live = series.live(aggregator.kind, aggregator.window, now);
        match (slot.reduce, live) {
            (Reduce::First | Reduce::Last, Some(Data::Pick(pick))) => parse_value(&pick.value),
            (Reduce::MostFrequent { min_frequency }, Some(Data::Frequency(counts))) => {
                let mut best: Option<(&String, u32)> = None;
                for (value, count) in &counts {
                    // Ascending keys: on a tie the alphabetically first value stays.
                    if *count >= min_frequency && best.is_none_or(|(_, most)| *count > most) {
                        best = Some((value, *count));
                    }
                }
                best.map_or(Value::Null, |(value, _)| parse_value(value))
            }
            (Reduce::UniqueList, Some(Data::Frequency(counts))) => {
                Value::Array(counts.keys().map(|value| parse_value(value)).collect())
            }
            (Reduce::UniqueList, None) => Value::Array(Vec::new()),
            (Reduce::UniqueCount, Some(Data::Frequency(counts))) => Value::from(counts.len()),
            (Reduce::UniqueCount, None) => Value::from(0),
            _ => Value::Null,
        }
    }

    fn holds(
        &self,
        node: &Node,
        state: &ProfileState,
        traits: &(impl ProfileTraits + ?Sized),
        computed: &[Value],
        members: &[bool],
        now: i64,
    ) -> bool {
        match node {
            Node::And(parts) => parts
                .iter()
                .all(|part| self.holds(part, state, traits, computed, members, now)),
            Node::Or(parts) => parts
                .iter()
                .any(|part| self.holds(part, state, traits, computed, members, now)),
            Node::Not(inner) => !self.holds(inner, state, traits, computed, members, now),
            Node::Performed {
                aggregator,
                op,
                count,
            } => {
                let window = self.aggregators[*aggregator].window;
                let seen = state.series[*aggregator]
                    .as_ref()
                    .and_then(|series| series.live_stats(window, now))
                    .map_or(0, |stats| stats.count);
                op.holds(seen, *count)
            }
            Node::Trait { source, path, test } => {
                test.passes(trait_at(source, path, traits, computed), now)
            }
            Node::Audience(position) => members.get(*position).copied().unwrap_or(false),
        }
    }
}

/// What one event adds to an aggregator, or `None` when the event lacks the property it
/// reduces (a number for statistics, a scalar for the others).
fn contribution(aggregator: &Aggregator, event: &EventRef<'_>) -> Option<Data> {
    let Some(path) = &aggregator.property else {
        return Some(Data::Stats(Stats::one(None)));
    };
    let value = event.properties?.lookup(path)?;
    match aggregator.kind {
        Kind::Stats => {
            let n = value.number()?;
            Some(Data::Stats(Stats::one(Some(n))))
        }
        Kind::First | Kind::Last => Some(Data::Pick(Pick {
            timestamp: event.timestamp,
            message_id: String::from_utf8_lossy(event.message_id).into_owned(),
            value: value.scalar_text()?,
        })),
        Kind::Frequency => {
            let mut counts = BTreeMap::new();
            counts.insert(value.scalar_text()?, 1);
            Some(Data::Frequency(counts))
        }
    }
}

fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// A number as JSON: whole numbers without a fraction.
fn number_value(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9_007_199_254_740_992.0 {
        Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn field<'a>(event: &EventRef<'a>, field: &Field) -> Option<Found<'a>> {
    match field {
        Field::Property(path) => event.properties?.lookup(path),
        Field::Context(path) => event.context?.lookup(path),
    }
}

pub(crate) fn lookup<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut at = value;
    for segment in path {
        at = child(at, segment)?;
    }
    Some(at)
}

/// `value[key]` for an object. Event properties are small objects: comparing a handful of
/// keys is cheaper than hashing the one looked for.
fn child<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    let map = value.as_object()?;
    if map.len() <= 16 {
        map.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    } else {
        map.get(key)
    }
}

/// The value a trait condition reads: the trait (`path[0]`), computed or the profile's, then
/// the rest of `path` inside it.
fn trait_at<'a>(
    source: &TraitSource,
    path: &[String],
    traits: &'a (impl ProfileTraits + ?Sized),
    computed: &'a [Value],
) -> Option<&'a Value> {
    let (name, rest) = path.split_first()?;
    let value = match source {
        TraitSource::Computed(slot) => computed.get(*slot)?,
        TraitSource::Profile(position) => traits.trait_value(*position, name)?,
    };
    lookup(value, rest)
}

/// The aggregators reading each track event name, sorted by the name's length, then its
/// bytes, with where each length's names start. A workspace's definitions name a few events,
/// mostly of different lengths, so finding an event's aggregators is one look at its length
/// and a comparison of words, rather than hashing the name or a search with its branches.
#[derive(Default)]
struct EventNames {
    entries: Vec<(Box<[u8]>, Vec<usize>)>,
    /// `by_length[n]..by_length[n + 1]`: the entries whose names are `n` bytes long.
    by_length: Vec<usize>,
}

impl EventNames {
    fn position(&self, name: &[u8]) -> Result<usize, usize> {
        self.entries
            .binary_search_by(|(known, _)| (known.len(), &known[..]).cmp(&(name.len(), name)))
    }

    /// The aggregators reading events called `name` (none for a name no definition reads).
    #[inline]
    fn get(&self, name: &[u8]) -> &[usize] {
        let (Some(&start), Some(&end)) = (
            self.by_length.get(name.len()),
            self.by_length.get(name.len() + 1),
        ) else {
            return &[];
        };
        for (known, aggregators) in &self.entries[start..end] {
            if same_length_equal(known, name) {
                return aggregators;
            }
        }
        &[]
    }

    /// The list of `name`, added empty when new.
    fn entry(&mut self, name: &[u8]) -> &mut Vec<usize> {
        let at = match self.position(name) {
            Ok(at) => at,
            Err(at) => {
                self.entries.insert(at, (name.into(), Vec::new()));
                self.index_lengths();
                at
            }
        };
        &mut self.entries[at].1
    }

    fn index_lengths(&mut self) {
        let longest = self.entries.last().map_or(0, |(name, _)| name.len());
        self.by_length.clear();
        let mut at = 0;
        for length in 0..=longest + 1 {
            while self
                .entries
                .get(at)
                .is_some_and(|(name, _)| name.len() < length)
            {
                at += 1;
            }
            self.by_length.push(at);
        }
    }
}

/// Whether two byte strings of the same length are equal: names of 8 to 16 bytes in two
/// overlapping words each, without a call to `memcmp`.
#[inline]
fn same_length_equal(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n < 8 || n != b.len() {
        return a == b;
    }
    let word = |bytes: &[u8], at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if word(a, 0) != word(b, 0) || word(a, n - 8) != word(b, n - 8) {
        return false;
    }
    n <= 16 || a[8..n - 8] == b[8..n - 8]
}

/// An aggregator's id: a hash of what it counts, stable across restarts.
fn aggregator_id(
    selection: &EventSelection,
    property: Option<&[String]>,
    kind: Kind,
    window: Option<i64>,
) -> String {
    let mut text = format!("{kind:?}|");
    match &selection.kind {
        EventKind::Track(name) => text.push_str(&format!("track:{name:?}")),
        EventKind::Page => text.push_str("page"),
        EventKind::Screen => text.push_str("screen"),
    }
    for condition in &selection.conditions {
        let (side, path) = match &condition.field {
            Field::Property(path) => ("p", path),
            Field::Context(path) => ("c", path),
        };
        let operand = match &condition.test.operand {
            Operand::Nothing => String::new(),
            Operand::Value(value) => value.to_string(),
            Operand::Number(n) => format!("{n:?}"),
            Operand::Text(text) => format!("{text:?}"),
            Operand::List(items) => Value::Array(items.clone()).to_string(),
            Operand::Time(at) | Operand::Duration(at) => at.to_string(),
        };
        text.push_str(&format!(
            "|{side}:{:?} {} {operand}",
            path,
            condition.test.operator.name()
        ));
    }
    text.push_str(&format!("|prop:{property:?}|window:{window:?}"));
    let digest = Sha256::digest(text.as_bytes());
    let mut id = String::with_capacity(16);
    for byte in &digest[..8] {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn event_names_find_their_aggregators_and_nothing_else() {
        let known = [
            "Signed In",
            "Coupon Applied",
            "Product Viewed",
            "Order Completed",
            "A",
            "",
            "Newsletter Opened Twice",
            "Newsletter Opened Twicf",
        ];
        let mut names = EventNames::default();
        for (index, name) in known.iter().enumerate() {
            names.entry(name.as_bytes()).push(index);
        }
        names.entry(b"Signed In").push(100);
        for (index, name) in known.iter().enumerate() {
            let expected = if *name == "Signed In" {
                vec![index, 100]
            } else {
                vec![index]
            };
            assert_eq!(names.get(name.as_bytes()), expected.as_slice(), "{name:?}");
        }
        // Same lengths, differing only in the middle, the first or the last byte; longer
        // and shorter than every name.
        for unknown in [
            "Product Viewe_",
            "_roduct Viewed",
            "Product_Viewed",
            "Newsletter Opened_Twice",
            "B",
            "Signed  In",
            "A much longer event name than any defined",
        ] {
            assert!(names.get(unknown.as_bytes()).is_empty(), "{unknown:?}");
        }
        assert!(EventNames::default().get(b"Signed In").is_empty());
    }

    #[test]
    fn words_compare_as_bytes_do() {
        let texts: Vec<Vec<u8>> = (0..40u8)
            .flat_map(|len| {
                let base: Vec<u8> = (0..len).map(|i| b'a' + i % 26).collect();
                let mut variants = vec![base.clone()];
                for at in 0..base.len() {
                    let mut changed = base.clone();
                    changed[at] ^= 1;
                    variants.push(changed);
                }
                variants
            })
            .collect();
        for a in &texts {
            for b in texts.iter().filter(|b| b.len() == a.len()) {
                assert_eq!(same_length_equal(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    fn full(text: &str) -> Option<i64> {
        sluice_spec::timestamp::parse(text).map(sluice_spec::timestamp::to_ms)
    }

    #[test]
    fn logged_timestamps_are_read_directly_and_agree_with_the_full_reader() {
        for text in [
            "2026-11-22T10:08:09.231Z",
            "1970-01-01T00:00:00.000Z",
            "1969-12-31T23:59:59.999Z",
            "2024-02-29T23:59:59.999Z",
            "2000-03-01T00:00:00.001Z",
            "0001-01-01T00:00:00.000Z",
            "9999-12-31T23:59:59.999Z",
        ] {
            assert_eq!(logged_timestamp_ms(text), full(text), "{text}");
            assert!(logged_timestamp_ms(text).is_some(), "{text}");
        }
        // Other forms go to the full reader, which takes what it takes.
        for text in [
            "2026-11-22T10:08:09Z",
            "2026-11-22T10:08:09.231+00:00",
            "2026-11-22T10:08:09.231456Z",
            "2026-11-22T10:08:09.231z",
            "2023-02-29T00:00:00.000Z",
            "2026-04-31T00:00:00.000Z",
            "2026-11-22T24:00:00.000Z",
            "2026-11-22T10:08:60.000Z",
            "2026-13-01T00:00:00.000Z",
            "+026-11-22T10:08:09.231Z",
            "not a time at all, 24 b.",
        ] {
            assert_eq!(logged_timestamp_ms(text), None, "{text}");
            assert_eq!(timestamp_ms(text), full(text), "{text}");
        }
    }

    proptest! {
        #[test]
        fn the_direct_reader_agrees_with_the_full_one(ms in -62_135_596_800_000i64..253_402_300_800_000) {
            let text = sluice_spec::timestamp::format_ms(ms).unwrap();
            prop_assert_eq!(logged_timestamp_ms(&text), Some(ms));
            prop_assert_eq!(timestamp_ms(&text), full(&text));
        }

        #[test]
        fn any_24_characters_read_the_same(text in "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z") {
            prop_assert_eq!(timestamp_ms(&text), full(&text));
        }
    }
}
