//! Computed-trait and audience definitions: the JSON a user writes, read into checked types
//! with errors that name the field.
//!
//! A computed trait:
//! ```json
//! {"key": "orders_30d", "name": "Orders, 30 days", "type": "count",
//!  "event": "Order Completed", "where": [{"property": "total", "op": ">=", "value": 50}],
//!  "within": {"days": 30}}
//! ```
//! `type` is `count`, `sum`, `average`, `minimum`, `maximum` (of a numeric `property`),
//! `most_frequent` (with `min_frequency`, default 2), `first`, `last`, `unique_list` or
//! `unique_count` (of `property`). `within` is optional (all history when absent).
//!
//! An audience:
//! ```json
//! {"key": "big_spenders", "name": "Big spenders", "condition": {"and": [
//!   {"performed": {"event": "Order Completed", "count": {"op": ">=", "value": 3},
//!                  "within": {"days": 30}, "where": []}},
//!   {"trait": {"key": "plan", "op": "=", "value": "pro"}},
//!   {"not": {"audience": "churned"}}]}}
//! ```
//! Conditions combine with `and`, `or`, `not`; leaves are `performed` (an event counted within
//! a window, compared with `>`, `>=`, `=`, `<`, `<=`; `count` defaults to at least 1), `trait`
//! (a custom or computed trait, or a dotted path into the traits) and `audience` (membership
//! of another audience).
//!
//! Events are named as in Segment: a track event by its name, page calls as `Page Viewed`,
//! screen calls as `Screen Viewed`. Event conditions read `property` (a dotted path into
//! `properties`) or `context` (into `context`). Windows are `{"days": N}` or `{"hours": N}`,
//! at most three years.

use serde_json::{Map, Value};

use crate::compare::{Operand, Operator, Test};

/// A definition that cannot be used; `field` is a path into the submitted JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct DefinitionError {
    pub field: String,
    pub message: String,
}

fn invalid(field: &str, message: impl Into<String>) -> DefinitionError {
    DefinitionError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The longest window: three years of hours (Segment's event lookback limit).
pub const MAX_WINDOW_HOURS: i64 = 3 * 365 * 24;
/// Most leaf conditions in one audience (Segment's limit on primary expressions).
pub const MAX_CONDITIONS: usize = 50;
/// Most event conditions in one `where`.
pub const MAX_WHERE: usize = 20;
/// Deepest nesting of `and` / `or` / `not`.
pub const MAX_DEPTH: usize = 10;
/// Longest key.
pub const MAX_KEY_LEN: usize = 100;
const HOUR_MS: i64 = 3_600_000;

/// Keys a definition may not take: traits Sluice reads identifiers from.
const RESERVED_KEYS: &[&str] = &[
    "email",
    "phone",
    "user_id",
    "userid",
    "anonymous_id",
    "id",
    "name",
    "first_name",
    "last_name",
    "address",
];

/// A time window, hour-precise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub hours: i64,
}

impl Window {
    pub fn millis(self) -> i64 {
        self.hours * HOUR_MS
    }
}

/// Which calls an event condition looks at.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// Track calls with this `event` name.
    Track(String),
    /// Page calls (`Page Viewed`).
    Page,
    /// Screen calls (`Screen Viewed`).
    Screen,
}

/// Where an event condition reads its value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// A dotted path into `properties`.
    Property(Vec<String>),
    /// A dotted path into `context`.
    Context(Vec<String>),
}

/// One event condition.
#[derive(Clone, Debug, PartialEq)]
pub struct EventCondition {
    pub field: Field,
    pub test: Test,
}

/// The events a trait or a `performed` condition counts.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSelection {
    pub kind: EventKind,
    pub conditions: Vec<EventCondition>,
}

/// How a computed trait reduces its events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduce {
    Count,
    Sum,
    Average,
    Minimum,
    Maximum,
    MostFrequent { min_frequency: u32 },
    First,
    Last,
    UniqueList,
    UniqueCount,
}

/// A checked computed trait.
#[derive(Clone, Debug, PartialEq)]
pub struct ComputedTrait {
    pub key: String,
    pub name: String,
    pub reduce: Reduce,
    pub events: EventSelection,
    /// The property reduced (every type but `count`).
    pub property: Option<Vec<String>>,
    pub window: Option<Window>,
    /// The definition as submitted, with `key` filled in.
    pub source: Value,
}

/// How a `performed` condition compares the count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CountOp {
    Greater,
    AtLeast,
    Equals,
    Less,
    AtMost,
}

impl CountOp {
    pub fn holds(self, count: u64, value: u64) -> bool {
        match self {
            CountOp::Greater => count > value,
            CountOp::AtLeast => count >= value,
            CountOp::Equals => count == value,
            CountOp::Less => count < value,
            CountOp::AtMost => count <= value,
        }
    }
}

/// A `performed` condition.
#[derive(Clone, Debug, PartialEq)]
pub struct Performed {
    pub events: EventSelection,
    pub op: CountOp,
    pub count: u64,
    pub window: Option<Window>,
}

/// An audience condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Performed(Performed),
    /// A trait, by dotted path; the first segment may be a computed trait's key.
    Trait {
        path: Vec<String>,
        test: Test,
    },
    /// Membership of the audience with this key.
    Audience(String),
}

impl Condition {
    /// The keys of the audiences this condition refers to, in order.
    pub fn audiences(&self) -> Vec<&str> {
        let mut keys = Vec::new();
        let mut pending = vec![self];
        while let Some(condition) = pending.pop() {
            match condition {
                Condition::And(parts) | Condition::Or(parts) => {
                    pending.extend(parts.iter().rev());
                }
                Condition::Not(inner) => pending.push(inner),
                Condition::Audience(key) => keys.push(key.as_str()),
                Condition::Performed(_) | Condition::Trait { .. } => {}
            }
        }
        keys
    }

    /// Whether this condition reads `key`: as an audience, or as the first segment of a
    /// trait path (a computed trait).
    pub fn refers_to(&self, key: &str) -> bool {
        match self {
            Condition::And(parts) | Condition::Or(parts) => {
                parts.iter().any(|part| part.refers_to(key))
            }
            Condition::Not(inner) => inner.refers_to(key),
            Condition::Audience(other) => other == key,
            Condition::Trait { path, .. } => path.first().is_some_and(|first| first == key),
            Condition::Performed(_) => false,
        }
    }
}

/// A checked audience.
#[derive(Clone, Debug, PartialEq)]
pub struct Audience {
    pub key: String,
    pub name: String,
    pub condition: Condition,
    /// The definition as submitted, with `key` filled in.
    pub source: Value,
}

/// Reads a computed-trait definition. Keys of other definitions are checked by
/// [`crate::Catalog::check`].
pub fn read_trait(value: &Value) -> Result<ComputedTrait, DefinitionError> {
    let map = object(value, "definition")?;
    known_fields(
        map,
        "",
        &[
            "key",
            "name",
            "description",
            "type",
            "event",
            "where",
            "property",
            "within",
            "min_frequency",
        ],
    )?;
    let (key, name) = key_and_name(map)?;
    let kind = text(map, "type", "type")?;
    let reduce = match kind {
        "count" => Reduce::Count,
        "sum" => Reduce::Sum,
        "average" => Reduce::Average,
        "minimum" => Reduce::Minimum,
        "maximum" => Reduce::Maximum,
        "most_frequent" => {
            let min_frequency = match map.get("min_frequency") {
                None => 2,
                Some(value) => value
                    .as_u64()
                    .filter(|n| (1..=1_000_000).contains(n))
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| invalid("min_frequency", "must be a whole number from 1"))?,
            };
            Reduce::MostFrequent { min_frequency }
        }
        "first" => Reduce::First,
        "last" => Reduce::Last,
        "unique_list" => Reduce::UniqueList,
        "unique_count" => Reduce::UniqueCount,
        other => {
            return Err(invalid(
                "type",
                format!(
                    "unknown type {other:?}: use count, sum, average, minimum, maximum, \
                     most_frequent, first, last, unique_list or unique_count"
                ),
            ));
        }
    };
    if map.contains_key("min_frequency") && !matches!(reduce, Reduce::MostFrequent { .. }) {
        return Err(invalid("min_frequency", "only for type most_frequent"));
    }
    let property = match (reduce, map.get("property")) {
        (Reduce::Count, None) => None,
        (Reduce::Count, Some(_)) => {
            return Err(invalid("property", "a count takes no property"));
        }
        (_, None) => return Err(invalid("property", format!("required for type {kind}"))),
        (_, Some(value)) => Some(path(value, "property")?),
    };
    let events = read_events(map, "")?;
    let window = optional_window(map.get("within"), "within")?;
    let mut source = value.clone();
    if let Some(map) = source.as_object_mut() {
        map.insert("key".into(), Value::String(key.clone()));
    }
    Ok(ComputedTrait {
        key,
        name,
        reduce,
        events,
        property,
        window,
        source,
    })
}

/// Reads an audience definition. References to other audiences are checked by
/// [`crate::Catalog::check`].
pub fn read_audience(value: &Value) -> Result<Audience, DefinitionError> {
    let map = object(value, "definition")?;
    known_fields(map, "", &["key", "name", "description", "condition"])?;
    let (key, name) = key_and_name(map)?;
    let condition = map
        .get("condition")
        .ok_or_else(|| invalid("condition", "required"))?;
    let mut leaves = 0;
    let condition = read_condition(condition, "condition", 0, &mut leaves)?;
    let mut source = value.clone();
    if let Some(map) = source.as_object_mut() {
        map.insert("key".into(), Value::String(key.clone()));
    }
    Ok(Audience {
        key,
        name,
        condition,
        source,
    })
}

/// A key from a name, as Segment makes them: lowercase, runs of anything but letters and
/// digits become one `_`.
pub fn key_from_name(name: &str) -> String {
    let mut key = String::new();
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if gap && !key.is_empty() {
                key.push('_');
            }
            gap = false;
            key.push(c.to_ascii_lowercase());
        } else {
            gap = true;
        }
    }
    key
}

fn key_and_name(map: &Map<String, Value>) -> Result<(String, String), DefinitionError> {
    let name = match map.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() && name.len() <= 200 => {
            name.trim().to_string()
        }
        Some(_) => return Err(invalid("name", "must be text of 1 to 200 characters")),
        None => return Err(invalid("name", "required")),
    };
    let key = match map.get("key") {
        Some(Value::String(key)) => key.clone(),
        Some(_) => return Err(invalid("key", "must be text")),
        None => key_from_name(&name),
    };
    check_key(&key)?;
    Ok((key, name))
}

fn check_key(key: &str) -> Result<(), DefinitionError> {
    let mut chars = key.chars();
    let good_start = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let good_rest = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !good_start || !good_rest || key.len() > MAX_KEY_LEN {
        return Err(invalid(
            "key",
            format!(
                "{key:?} is not a key: lowercase letters, digits and _, starting with a letter, \
                 at most {MAX_KEY_LEN} characters"
            ),
        ));
    }
    if RESERVED_KEYS.contains(&key) {
        return Err(invalid(
            "key",
            format!("{key:?} is a trait Sluice reads identifiers from"),
        ));
    }
    Ok(())
}

fn read_condition(
    value: &Value,
    at: &str,
    depth: usize,
    leaves: &mut usize,
) -> Result<Condition, DefinitionError> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            at,
            format!("nested deeper than {MAX_DEPTH} levels"),
        ));
    }
    let map = object(value, at)?;
    let mut entries = map.iter();
    let (Some((kind, inner)), None) = (entries.next(), entries.next()) else {
        return Err(invalid(
            at,
            "must have exactly one of and, or, not, performed, trait, audience",
        ));
    };
    let here = format!("{at}.{kind}");
    match kind.as_str() {
        "and" | "or" => {
            let items = inner
                .as_array()
                .filter(|items| !items.is_empty())
                .ok_or_else(|| invalid(&here, "must be a non-empty list of conditions"))?;
            let mut parts = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                parts.push(read_condition(
                    item,
                    &format!("{here}[{index}]"),
                    depth + 1,
                    leaves,
                )?);
            }
            Ok(if kind == "and" {
                Condition::And(parts)
            } else {
                Condition::Or(parts)
            })
        }
        "not" => Ok(Condition::Not(Box::new(read_condition(
            inner,
            &here,
            depth + 1,
            leaves,
        )?))),
        "performed" => {
            count_leaf(leaves, at)?;
            Ok(Condition::Performed(read_performed(inner, &here)?))
        }
        "trait" => {
            count_leaf(leaves, at)?;
            let map = object(inner, &here)?;
            known_fields(map, &here, &["key", "op", "value"])?;
            let key = map
                .get("key")
                .ok_or_else(|| invalid(&format!("{here}.key"), "required"))?;
            let path = path(key, &format!("{here}.key"))?;
            let test = read_test(map, &here, true)?;
            Ok(Condition::Trait { path, test })
        }
        "audience" => {
            count_leaf(leaves, at)?;
            let key = inner
                .as_str()
                .ok_or_else(|| invalid(&here, "must be an audience key"))?;
            Ok(Condition::Audience(key.to_string()))
        }
        other => Err(invalid(
            at,
            format!("unknown condition {other:?}: use and, or, not, performed, trait or audience"),
        )),
    }
}

fn count_leaf(leaves: &mut usize, at: &str) -> Result<(), DefinitionError> {
    *leaves += 1;
    if *leaves > MAX_CONDITIONS {
        return Err(invalid(
            at,
            format!("an audience has at most {MAX_CONDITIONS} conditions"),
        ));
    }
    Ok(())
}

fn read_performed(value: &Value, at: &str) -> Result<Performed, DefinitionError> {
    let map = object(value, at)?;
    known_fields(map, at, &["event", "where", "count", "within"])?;
    let events = read_events(map, at)?;
    let (op, count) = match map.get("count") {
        None => (CountOp::AtLeast, 1),
        Some(value) => {
            let here = format!("{at}.count");
            let count = object(value, &here)?;
            known_fields(count, &here, &["op", "value"])?;
            let op = match count.get("op").and_then(Value::as_str) {
                Some(">") => CountOp::Greater,
                Some(">=") => CountOp::AtLeast,
                Some("=") => CountOp::Equals,
                Some("<") => CountOp::Less,
                Some("<=") => CountOp::AtMost,
                _ => {
                    return Err(invalid(
                        &format!("{here}.op"),
                        "must be one of >, >=, =, <, <=",
                    ));
                }
            };
            let n = count
                .get("value")
                .and_then(Value::as_u64)
                .filter(|n| *n <= 1_000_000_000)
                .ok_or_else(|| {
                    invalid(&format!("{here}.value"), "must be a whole number from 0")
                })?;
            (op, n)
        }
    };
    let window = optional_window(map.get("within"), &format!("{at}.within"))?;
    Ok(Performed {
        events,
        op,
        count,
        window,
    })
}

/// `event` and `where` of `map` (at `at`).
fn read_events(map: &Map<String, Value>, at: &str) -> Result<EventSelection, DefinitionError> {
    let field = join(at, "event");
    let name = match map.get("event") {
        Some(Value::String(name)) if !name.is_empty() && name.len() <= 200 => name,
        Some(_) => return Err(invalid(&field, "must be an event name")),
        None => return Err(invalid(&field, "required")),
    };
    let kind = match name.as_str() {
        "Page Viewed" => EventKind::Page,
        "Screen Viewed" => EventKind::Screen,
        name => EventKind::Track(name.to_string()),
    };
    let mut conditions = Vec::new();
    if let Some(list) = map.get("where") {
        let field = join(at, "where");
        let list = list
            .as_array()
            .ok_or_else(|| invalid(&field, "must be a list of conditions"))?;
        if list.len() > MAX_WHERE {
            return Err(invalid(&field, format!("at most {MAX_WHERE} conditions")));
        }
        for (index, item) in list.iter().enumerate() {
            let here = format!("{field}[{index}]");
            let item = object(item, &here)?;
            known_fields(item, &here, &["property", "context", "op", "value"])?;
            let target = match (item.get("property"), item.get("context")) {
                (Some(path_value), None) => {
                    Field::Property(path(path_value, &format!("{here}.property"))?)
                }
                (None, Some(path_value)) => {
                    Field::Context(path(path_value, &format!("{here}.context"))?)
                }
                _ => return Err(invalid(&here, "needs exactly one of property, context")),
            };
            let test = read_test(item, &here, false)?;
            conditions.push(EventCondition {
                field: target,
                test,
            });
        }
    }
    Ok(EventSelection { kind, conditions })
}

/// `op` and `value` of a condition at `at`; `relative` allows `within_last`.
fn read_test(map: &Map<String, Value>, at: &str, relative: bool) -> Result<Test, DefinitionError> {
    let op_field = format!("{at}.op");
    let name = map
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&op_field, "required"))?;
    let operator = Operator::parse(name).ok_or_else(|| {
        let names: Vec<&str> = crate::compare::OPERATORS.iter().map(|(n, _)| *n).collect();
        invalid(
            &op_field,
            format!("unknown operator {name:?}: use one of {}", names.join(", ")),
        )
    })?;
    let field = format!("{at}.value");
    let value = map.get("value");
    let operand = match operator {
        Operator::Exists | Operator::NotExists => {
            if value.is_some() {
                return Err(invalid(&field, format!("{name} takes no value")));
            }
            Operand::Nothing
        }
        Operator::Equals | Operator::NotEquals => match value {
            Some(value @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => {
                Operand::Value(value.clone())
            }
            _ => return Err(invalid(&field, "must be text, a number or true/false")),
        },
        Operator::Greater | Operator::AtLeast | Operator::Less | Operator::AtMost => {
            let number = value
                .filter(|value| value.is_number())
                .and_then(crate::compare::number)
                .ok_or_else(|| invalid(&field, "must be a number"))?;
            Operand::Number(number)
        }
        Operator::Contains | Operator::NotContains | Operator::StartsWith | Operator::EndsWith => {
            match value {
                Some(Value::String(text)) if !text.is_empty() => Operand::Text(text.clone()),
                _ => return Err(invalid(&field, "must be non-empty text")),
            }
        }
        Operator::OneOf | Operator::NoneOf => {
            let items = value
                .and_then(Value::as_array)
                .filter(|items| !items.is_empty() && items.len() <= 1000)
                .ok_or_else(|| invalid(&field, "must be a list of 1 to 1000 values"))?;
            if items
                .iter()
                .any(|item| !(item.is_string() || item.is_number() || item.is_boolean()))
            {
                return Err(invalid(
                    &field,
                    "must hold only text, numbers or true/false",
                ));
            }
            Operand::List(items.clone())
        }
        Operator::Before | Operator::After => {
            let at = value
                .and_then(Value::as_str)
                .and_then(crate::compare::parse_time)
                .ok_or_else(|| invalid(&field, "must be an ISO-8601 date or date-time"))?;
            Operand::Time(at)
        }
        Operator::WithinLast => {
            if !relative {
                return Err(invalid(
                    &op_field,
                    "within_last is for trait conditions; use within on the event",
                ));
            }
            let window = window(value.ok_or_else(|| invalid(&field, "required"))?, &field)?;
            Operand::Duration(window.millis())
        }
    };
    Ok(Test { operator, operand })
}

fn optional_window(value: Option<&Value>, at: &str) -> Result<Option<Window>, DefinitionError> {
    value.map(|value| window(value, at)).transpose()
}

fn window(value: &Value, at: &str) -> Result<Window, DefinitionError> {
    let map = object(value, at)?;
    let hours = match (map.get("days"), map.get("hours"), map.len()) {
        (Some(days), None, 1) => days.as_i64().map(|days| days.saturating_mul(24)),
        (None, Some(hours), 1) => hours.as_i64(),
        _ => return Err(invalid(at, "must be {\"days\": N} or {\"hours\": N}")),
    };
    let hours = hours
        .filter(|hours| (1..=MAX_WINDOW_HOURS).contains(hours))
        .ok_or_else(|| invalid(at, "must be from 1 hour to 3 years"))?;
    Ok(Window { hours })
}

/// A dotted path (`address.city`), each segment non-empty.
fn path(value: &Value, at: &str) -> Result<Vec<String>, DefinitionError> {
    let text = value
        .as_str()
        .filter(|text| !text.is_empty() && text.len() <= 200)
        .ok_or_else(|| invalid(at, "must be a name or a dotted path"))?;
    let segments: Vec<String> = text.split('.').map(str::to_string).collect();
    if segments.iter().any(String::is_empty) {
        return Err(invalid(at, format!("{text:?} has an empty segment")));
    }
    Ok(segments)
}

fn object<'a>(value: &'a Value, at: &str) -> Result<&'a Map<String, Value>, DefinitionError> {
    value
        .as_object()
        .ok_or_else(|| invalid(at, "must be a JSON object"))
}

fn text<'a>(map: &'a Map<String, Value>, key: &str, at: &str) -> Result<&'a str, DefinitionError> {
    match map.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(invalid(at, "must be text")),
        None => Err(invalid(at, "required")),
    }
}

fn known_fields(map: &Map<String, Value>, at: &str, known: &[&str]) -> Result<(), DefinitionError> {
    for key in map.keys() {
        if !known.contains(&key.as_str()) {
            return Err(invalid(
                &join(at, key),
                format!("unknown field; expected one of {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trait_error(value: Value) -> String {
        read_trait(&value).unwrap_err().to_string()
    }

    fn audience_error(value: Value) -> String {
        read_audience(&value).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_computed_trait() {
        let read = read_trait(&json!({
            "name": "Revenue, 30 days", "type": "sum", "event": "Order Completed",
            "property": "total", "within": {"days": 30},
            "where": [{"property": "currency", "op": "=", "value": "EUR"},
                      {"context": "page.path", "op": "starts_with", "value": "/shop"}]
        }))
        .unwrap();
        assert_eq!(read.key, "revenue_30_days");
        assert_eq!(read.source["key"], "revenue_30_days");
        assert_eq!(read.reduce, Reduce::Sum);
        assert_eq!(read.property, Some(vec!["total".to_string()]));
        assert_eq!(read.window, Some(Window { hours: 720 }));
        assert_eq!(read.events.kind, EventKind::Track("Order Completed".into()));
        assert_eq!(
            read.events.conditions[1].field,
            Field::Context(vec!["page".into(), "path".into()])
        );
        let most = read_trait(
            &json!({"key": "fav", "name": "Fav", "type": "most_frequent",
            "event": "Page Viewed", "property": "category"}),
        )
        .unwrap();
        assert_eq!(most.reduce, Reduce::MostFrequent { min_frequency: 2 });
        assert_eq!(most.events.kind, EventKind::Page);
        assert_eq!(most.window, None);
    }

    #[test]
    fn trait_errors_name_the_field() {
        let base = json!({"key": "k", "name": "N", "type": "count", "event": "E"});
        let with = |key: &str, value: Value| {
            let mut definition = base.clone();
            definition[key] = value;
            trait_error(definition)
        };
        assert_eq!(
            trait_error(json!({"type": "count", "event": "E"})),
            "name: required"
        );
        assert!(with("type", json!("median")).starts_with("type: unknown type \"median\""));
        assert_eq!(
            with("property", json!("x")),
            "property: a count takes no property"
        );
        assert_eq!(
            trait_error(json!({"name": "N", "type": "sum", "event": "E"})),
            "property: required for type sum"
        );
        assert_eq!(with("event", json!(3)), "event: must be an event name");
        assert_eq!(
            with("within", json!({"weeks": 2})),
            "within: must be {\"days\": N} or {\"hours\": N}"
        );
        assert_eq!(
            with("within", json!({"days": 2000})),
            "within: must be from 1 hour to 3 years"
        );
        assert_eq!(with("key", json!("Bad Key")).split(':').next(), Some("key"));
        assert_eq!(
            with("key", json!("email")),
            "key: \"email\" is a trait Sluice reads identifiers from"
        );
        assert_eq!(
            with("colour", json!(1)),
            "colour: unknown field; expected one of key, name, description, type, event, \
             where, property, within, min_frequency"
        );
        assert_eq!(
            with("min_frequency", json!(3)),
            "min_frequency: only for type most_frequent"
        );
        assert_eq!(
            with("where", json!([{"property": "p", "op": "~", "value": 1}])),
            "where[0].op: unknown operator \"~\": use one of =, !=, >, >=, <, <=, contains, \
             not_contains, starts_with, ends_with, exists, not_exists, one_of, none_of, \
             before, after, within_last"
        );
        assert_eq!(
            with(
                "where",
                json!([{"property": "p", "op": ">", "value": "ten"}])
            ),
            "where[0].value: must be a number"
        );
        assert_eq!(
            with(
                "where",
                json!([{"property": "p", "op": "exists", "value": 1}])
            ),
            "where[0].value: exists takes no value"
        );
        assert_eq!(
            with("where", json!([{"op": "exists"}])),
            "where[0]: needs exactly one of property, context"
        );
        assert_eq!(
            with("where", json!([{"property": "a..b", "op": "exists"}])),
            "where[0].property: \"a..b\" has an empty segment"
        );
        assert_eq!(
            with(
                "where",
                json!([{"property": "at", "op": "within_last", "value": {"days": 1}}])
            ),
            "where[0].op: within_last is for trait conditions; use within on the event"
        );
        assert_eq!(
            with(
                "where",
                json!([{"property": "at", "op": "before", "value": "soon"}])
            ),
            "where[0].value: must be an ISO-8601 date or date-time"
        );
    }

    #[test]
    fn reads_an_audience() {
        let read = read_audience(&json!({"name": "Big spenders", "condition": {"and": [
            {"performed": {"event": "Order Completed", "count": {"op": ">=", "value": 3},
                           "within": {"hours": 12}}},
            {"trait": {"key": "address.country", "op": "one_of", "value": ["FR", "DE"]}},
            {"not": {"audience": "churned"}},
            {"trait": {"key": "signed_up", "op": "within_last", "value": {"days": 7}}}
        ]}}))
        .unwrap();
        assert_eq!(read.key, "big_spenders");
        let Condition::And(parts) = &read.condition else {
            panic!("{:?}", read.condition)
        };
        assert_eq!(parts.len(), 4);
        let Condition::Performed(performed) = &parts[0] else {
            panic!()
        };
        assert_eq!((performed.op, performed.count), (CountOp::AtLeast, 3));
        assert_eq!(performed.window, Some(Window { hours: 12 }));
        assert!(matches!(&parts[1], Condition::Trait { path, .. } if path.len() == 2));
        assert_eq!(
            parts[2],
            Condition::Not(Box::new(Condition::Audience("churned".into())))
        );
        let plain = read_audience(&json!({"key": "any_order", "name": "x",
            "condition": {"performed": {"event": "Order Completed"}}}))
        .unwrap();
        let Condition::Performed(performed) = plain.condition else {
            panic!()
        };
        assert_eq!((performed.op, performed.count), (CountOp::AtLeast, 1));
    }

    #[test]
    fn audience_errors_name_the_field() {
        let named = |condition: Value| audience_error(json!({"name": "A", "condition": condition}));
        assert_eq!(audience_error(json!({"name": "A"})), "condition: required");
        assert_eq!(
            named(json!({"and": []})),
            "condition.and: must be a non-empty list of conditions"
        );
        assert_eq!(
            named(json!({"and": [{"performed": {"event": "E"}}, {"xor": 1}]})),
            "condition.and[1]: unknown condition \"xor\": use and, or, not, performed, trait \
             or audience"
        );
        assert_eq!(
            named(json!({"performed": {"event": "E"}, "trait": {}})),
            "condition: must have exactly one of and, or, not, performed, trait, audience"
        );
        assert_eq!(
            named(json!({"performed": {"event": "E", "count": {"op": "=>", "value": 1}}})),
            "condition.performed.count.op: must be one of >, >=, =, <, <="
        );
        assert_eq!(
            named(json!({"performed": {"event": "E", "count": {"op": ">", "value": -1}}})),
            "condition.performed.count.value: must be a whole number from 0"
        );
        assert_eq!(
            named(json!({"not": {"performed": {"event": "E", "where": [
                {"property": "p", "op": "=", "value": {"a": 1}}]}}})),
            "condition.not.performed.where[0].value: must be text, a number or true/false"
        );
        assert_eq!(
            named(json!({"trait": {"key": "plan", "op": "="}})),
            "condition.trait.value: must be text, a number or true/false"
        );
        assert_eq!(
            named(json!({"audience": 7})),
            "condition.audience: must be an audience key"
        );
        let many: Vec<Value> = (0..51).map(|_| json!({"audience": "x"})).collect();
        assert_eq!(
            named(json!({"or": many})),
            "condition.or[50]: an audience has at most 50 conditions"
        );
        let mut deep = json!({"audience": "x"});
        for _ in 0..12 {
            deep = json!({"not": deep});
        }
        assert!(named(deep).ends_with("nested deeper than 10 levels"));
    }

    #[test]
    fn keys_from_names() {
        assert_eq!(key_from_name("Big Spenders (EU)"), "big_spenders_eu");
        assert_eq!(key_from_name("  --Orders, 30 days"), "orders_30_days");
        assert_eq!(key_from_name("élan"), "lan");
    }
}
