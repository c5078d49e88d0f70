//! The recorded form of an event: what the engine reads from it (call, name, timestamp,
//! `messageId`, `properties`, `context`) in a compact binary layout that is read where it
//! lies. The audience history keeps events this way, so a backfill never parses JSON: it
//! walks bytes to the few values its conditions name and turns only those into JSON values.
//!
//! Layout (every length and count is an unsigned LEB128 varint):
//!
//! ```text
//! record = 1:u8 call:u8 timestamp:i64 (little-endian) name:text message_id:text
//!          properties:part context:part
//! part   = 7 (absent) | node
//! node   = 0 null | 1 false | 2 true | 3 number:text (its JSON digits, as written)
//!        | 4 string:text | 5 array: length count node*
//!        | 6 object: length count (key:text node)*
//! text   = length bytes (UTF-8)
//! ```
//!
//! An array's or object's `length` counts the bytes after it, so a lookup steps over a whole
//! nested value at once. Objects keep their keys in the event's order.

use serde_json::{Map, Number, Value};

use crate::compare::Probe;
use crate::engine::{Call, EventRef, Part};

/// The layout's version, the first byte of every record.
const VERSION: u8 = 1;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const NUMBER: u8 = 3;
const STRING: u8 = 4;
const ARRAY: u8 = 5;
const OBJECT: u8 = 6;
const ABSENT: u8 = 7;

/// Appends the recorded form of `event` (read from parsed JSON) to `out`.
pub fn record(event: &EventRef<'_>, out: &mut Vec<u8>) {
    out.push(VERSION);
    out.push(match event.call {
        Call::Track => 0,
        Call::Page => 1,
        Call::Screen => 2,
        Call::Other => 3,
    });
    out.extend_from_slice(&event.timestamp.to_le_bytes());
    push_text(out, event.name);
    push_text(out, event.message_id);
    for part in [event.properties, event.context] {
        match part {
            None => out.push(ABSENT),
            Some(Part::Json(value)) => push_value(out, value),
            Some(Part::Recorded(node)) => out.extend_from_slice(node.bytes),
        }
    }
}

/// Reads a record; `None` when the bytes are not one (a record from a newer layout, or
/// damaged). `rest` receives what follows it, so records can be stored back to back.
#[inline]
pub fn read<'a>(bytes: &'a [u8], rest: &mut &'a [u8]) -> Option<EventRef<'a>> {
    let mut at = Reader { bytes, at: 0 };
    if at.byte()? != VERSION {
        return None;
    }
    let call = match at.byte()? {
        0 => Call::Track,
        1 => Call::Page,
        2 => Call::Screen,
        3 => Call::Other,
        _ => return None,
    };
    let timestamp = i64::from_le_bytes(at.take(8)?.try_into().ok()?);
    let name = at.text()?;
    let message_id = at.text()?;
    let properties = at.part()?;
    let context = at.part()?;
    *rest = &bytes[at.at..];
    let part = |bytes: &'a [u8]| (!bytes.is_empty()).then_some(Part::Recorded(Node { bytes }));
    Some(EventRef {
        call,
        name,
        timestamp,
        message_id,
        properties: part(properties),
        context: part(context),
    })
}

/// One value inside a record: its bytes, from its tag to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    bytes: &'a [u8],
}

impl<'a> Node<'a> {
    /// The value at `path` below this one (`None` when missing or the bytes are damaged).
    #[inline]
    pub fn lookup(self, path: &[String]) -> Option<Node<'a>> {
        let mut at = self;
        for segment in path {
            at = at.child(segment.as_bytes())?;
        }
        Some(at)
    }

    fn tag(self) -> Option<u8> {
        self.bytes.first().copied()
    }

    /// The bytes of a number's digits or a string's text, when this is a node of `tag`.
    #[inline]
    fn text_of(self, tag: u8) -> Option<&'a [u8]> {
        if self.tag() != Some(tag) {
            return None;
        }
        let mut reader = Reader {
            bytes: self.bytes,
            at: 1,
        };
        reader.text()
    }

    /// `self[key]` for an object.
    #[inline]
    fn child(self, key: &[u8]) -> Option<Node<'a>> {
        if self.bytes.first() != Some(&OBJECT) {
            return None;
        }
        let mut reader = Reader {
            bytes: self.bytes,
            at: 1,
        };
        let _length = reader.varint()?;
        let count = reader.varint()?;
        for _ in 0..count {
            let name = reader.text()?;
            let value = reader.node()?;
            if name == key {
                return Some(value);
            }
        }
        None
    }

    /// The value as JSON (what conditions compare).
    pub fn to_value(self) -> Option<Value> {
        let mut reader = Reader {
            bytes: self.bytes,
            at: 0,
        };
        reader.value()
    }
}

impl<'a> Probe<'a> for Node<'a> {
    fn is_null(self) -> bool {
        self.tag() == Some(NULL)
    }

    fn is_number(self) -> bool {
        self.tag() == Some(NUMBER)
    }

    fn as_str(self) -> Option<&'a str> {
        let text = self.text_of(STRING)?;
        std::str::from_utf8(text).ok()
    }

    fn number(self) -> Option<f64> {
        match self.tag()? {
            NUMBER => crate::compare::parse_number(self.text_of(NUMBER)?),
            STRING => crate::compare::parse_number(self.text_of(STRING)?),
            _ => None,
        }
    }

    fn equals(self, operand: &Value) -> bool {
        match (self.tag(), operand) {
            (Some(NULL), Value::Null) => true,
            (Some(FALSE), Value::Bool(false)) | (Some(TRUE), Value::Bool(true)) => true,
            (Some(NUMBER), Value::Number(number)) => {
                self.text_of(NUMBER) == Some(number.as_str().as_bytes())
            }
            (Some(STRING), Value::String(text)) => self.text_of(STRING) == Some(text.as_bytes()),
            // Operands are scalars; an array or object is compared whole, as JSON.
            (Some(ARRAY | OBJECT), Value::Array(_) | Value::Object(_)) => {
                self.to_value().as_ref() == Some(operand)
            }
            _ => false,
        }
    }

    fn has_item(self, text: &str) -> bool {
        if self.tag() != Some(ARRAY) {
            return false;
        }
        let mut reader = Reader {
            bytes: self.bytes,
            at: 1,
        };
        let (Some(_length), Some(count)) = (reader.varint(), reader.varint()) else {
            return false;
        };
        for _ in 0..count {
            let Some(item) = reader.node() else {
                return false;
            };
            if item.text_of(STRING) == Some(text.as_bytes()) {
                return true;
            }
        }
        false
    }

    fn scalar_text(self) -> Option<String> {
        match self.tag()? {
            NUMBER => Some(std::str::from_utf8(self.text_of(NUMBER)?).ok()?.to_owned()),
            STRING => serde_json::to_string(self.as_str()?).ok(),
            FALSE => Some("false".into()),
            TRUE => Some("true".into()),
            _ => None,
        }
    }
}

fn push_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn push_text(out: &mut Vec<u8>, text: &[u8]) {
    push_varint(out, text.len());
    out.extend_from_slice(text);
}

fn push_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.push(NULL),
        Value::Bool(false) => out.push(FALSE),
        Value::Bool(true) => out.push(TRUE),
        Value::Number(number) => {
            out.push(NUMBER);
            push_text(out, number.as_str().as_bytes());
        }
        Value::String(text) => {
            out.push(STRING);
            push_text(out, text.as_bytes());
        }
        Value::Array(items) => {
            out.push(ARRAY);
            push_nested(out, items.len(), |body| {
                for item in items {
                    push_value(body, item);
                }
            });
        }
        Value::Object(map) => {
            out.push(OBJECT);
            push_nested(out, map.len(), |body| {
                for (key, item) in map {
                    push_text(body, key.as_bytes());
                    push_value(body, item);
                }
            });
        }
    }
}

/// Writes a nested value's body after its byte length, which is only known once written: the
/// body goes to the end of `out` first and is then moved past the length.
fn push_nested(out: &mut Vec<u8>, count: usize, write: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    push_varint(out, count);
    write(out);
    let body = out.len() - start;
    let mut length = Vec::with_capacity(4);
    push_varint(&mut length, body);
    out.splice(start..start, length);
}

/// A position in a record's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    // The readers below run several times for every event of a backfill: kept inline, with
    // the longer varints (lengths of 128 bytes and more) out of line.
    #[inline(always)]
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    #[inline(always)]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let taken = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(taken)
    }

    #[inline(always)]
    fn varint(&mut self) -> Option<usize> {
        // Most lengths and counts fit one byte.
        let first = *self.bytes.get(self.at)?;
        if first < 0x80 {
            self.at += 1;
            return Some(usize::from(first));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Option<usize> {
        let mut n: usize = 0;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            n |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte < 0x80 {
                return Some(n);
            }
        }
        None
    }

    #[inline(always)]
    fn text(&mut self) -> Option<&'a [u8]> {
        let n = self.varint()?;
        self.take(n)
    }

    /// Steps over one node and returns it.
    #[inline]
    fn node(&mut self) -> Option<Node<'a>> {
        let start = self.at;
        match self.byte()? {
            NULL | FALSE | TRUE => {}
            NUMBER | STRING => {
                self.text()?;
            }
            ARRAY | OBJECT => {
                let n = self.varint()?;
                self.take(n)?;
            }
            _ => return None,
        }
        Some(Node {
            bytes: &self.bytes[start..self.at],
        })
    }

    /// Steps over an event's part: its node's bytes, empty when the part is absent (a node
    /// is never empty). Bytes rather than an `Option<Part>`, so that the answer comes back in
    /// registers: a larger one goes through memory, and reading it back whole stalls.
    #[inline]
    fn part(&mut self) -> Option<&'a [u8]> {
        if self.bytes.get(self.at) == Some(&ABSENT) {
            self.at += 1;
            return Some(&[]);
        }
        Some(self.node()?.bytes)
    }

    fn value(&mut self) -> Option<Value> {
        Some(match self.byte()? {
            NULL => Value::Null,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            NUMBER => {
                let digits = std::str::from_utf8(self.text()?).ok()?;
                Value::Number(serde_json::from_str::<Number>(digits).ok()?)
            }
            STRING => Value::String(std::str::from_utf8(self.text()?).ok()?.to_owned()),
            ARRAY => {
                let _length = self.varint()?;
                let count = self.varint()?;
                let mut items = Vec::with_capacity(count.min(1024));
                for _ in 0..count {
                    items.push(self.value()?);
                }
                Value::Array(items)
            }
            OBJECT => {
                let _length = self.varint()?;
                let count = self.varint()?;
                let mut map = Map::new();
                for _ in 0..count {
                    let key = std::str::from_utf8(self.text()?).ok()?.to_owned();
                    let value = self.value()?;
                    map.insert(key, value);
                }
                Value::Object(map)
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::{Catalog, Engine, read_audience, read_trait};

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            // Numbers keep their digits as written.
            prop::sample::select(vec![
                "0",
                "-0",
                "7",
                "12.50",
                "1e3",
                "-2.5E-7",
                "100",
                "99.99",
                "123456789012345678901234567890",
            ])
            .prop_map(|digits| serde_json::from_str(digits).unwrap()),
            "[a-c ]{0,3}|é|\"|\\\\|\u{1F600}|\u{0}".prop_map(Value::String),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        scalar().prop_recursive(3, 24, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{1,2}|.{0,3}", inner), 0..5)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    fn object() -> impl Strategy<Value = Value> {
        prop::collection::vec(("[a-c]{1,2}", value()), 0..6)
            .prop_map(|entries| Value::Object(entries.into_iter().collect()))
    }

    /// Every path of `value` (objects' keys, one level after another), and some that miss.
    fn paths(value: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(prefix.clone());
        prefix.push("zz".into());
        out.push(prefix.clone());
        prefix.pop();
        if let Value::Object(map) = value {
            for (key, child) in map {
                prefix.push(key.clone());
                paths(child, prefix, out);
                prefix.pop();
            }
        }
    }

    /// A value read where it lies in a record answers every question as the parsed value.
    fn same_answers(value: &Value, node: Node<'_>) -> Result<(), TestCaseError> {
        prop_assert_eq!(node.is_null(), value.is_null());
        prop_assert_eq!(node.is_number(), value.is_number());
        prop_assert_eq!(node.as_str(), value.as_str());
        prop_assert_eq!(
            node.number().map(f64::to_bits),
            Probe::number(value).map(f64::to_bits)
        );
        prop_assert_eq!(node.scalar_text(), value.scalar_text());
        for text in ["a", "b", "é", ""] {
            prop_assert_eq!(node.has_item(text), value.has_item(text));
        }
        let operands = [
            Value::Null,
            json!(true),
            json!(false),
            json!(7),
            json!("7"),
            json!(12.50),
            json!("a"),
            json!(""),
            json!(["a"]),
            json!({}),
            value.clone(),
        ];
        for operand in &operands {
            prop_assert_eq!(node.equals(operand), value.equals(operand), "{}", operand);
        }
        Ok(())
    }

    fn recorded_bytes(event: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        record(&EventRef::read(event).unwrap(), &mut out);
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A record reads back as the event it was made from: every value at every path of
        /// its properties and context is the JSON the event had there.
        #[test]
        fn a_record_reads_back_as_its_event(
            properties in prop::option::of(object()),
            context in prop::option::of(object()),
            call in prop::sample::select(vec!["track", "page", "screen", "identify"]),
            name in ".{0,8}",
            ms in -1_000_000_000_000i64..4_000_000_000_000,
        ) {
            let mut event = json!({"type": call, "event": name, "messageId": "m-1",
                                   "timestamp": sluice_spec::timestamp::format_ms(ms).unwrap()});
            if let Some(properties) = &properties {
                event["properties"] = properties.clone();
            }
            if let Some(context) = &context {
                event["context"] = context.clone();
            }
            let parsed = EventRef::read(&event).unwrap();
            let mut bytes = recorded_bytes(&event);
            bytes.extend_from_slice(b"next");
            let mut rest: &[u8] = &[];
            let read = read(&bytes, &mut rest).unwrap();
            prop_assert_eq!(rest, b"next");
            prop_assert_eq!(read.call, parsed.call);
            prop_assert_eq!(read.name, parsed.name);
            prop_assert_eq!(read.timestamp, parsed.timestamp);
            prop_assert_eq!(read.message_id, parsed.message_id);
            for (original, part) in [(&properties, read.properties), (&context, read.context)] {
                let Some(original) = original else {
                    prop_assert!(part.is_none());
                    continue;
                };
                let Some(Part::Recorded(node)) = part else {
                    panic!("a record's part is recorded");
                };
                let mut all = Vec::new();
                paths(original, &mut Vec::new(), &mut all);
                for path in all {
                    let expected = crate::engine::lookup(original, &path);
                    let found = node.lookup(&path);
                    let value = found.and_then(Node::to_value);
                    prop_assert_eq!(value.as_ref(), expected, "at {:?}", path);
                    if let (Some(expected), Some(found)) = (expected, found) {
                        same_answers(expected, found)?;
                    }
                }
            }
        }

        /// Damaged or cut records are refused, never misread into a panic.
        #[test]
        fn damaged_records_are_refused(properties in object(), cut in 0usize..400, flip in any::<u8>()) {
            let event = json!({"type": "track", "event": "A", "messageId": "m",
                               "timestamp": "2026-01-01T00:00:00.000Z", "properties": properties});
            let bytes = recorded_bytes(&event);
            let mut rest: &[u8] = &[];
            if cut < bytes.len() {
                prop_assert!(read(&bytes[..cut], &mut rest).is_none());
                let mut damaged = bytes.clone();
                damaged[cut] ^= flip;
                // A flipped byte may still make a record; reading it must not panic.
                if let Some(event) = read(&damaged, &mut rest)
                    && let Some(Part::Recorded(node)) = event.properties
                {
                    let _ = node.lookup(&["a".into(), "b".into()]);
                    let _ = node.to_value();
                    let _ = (node.number(), node.scalar_text(), node.has_item("a"));
                }
            }
        }
    }

    /// Definitions reading properties and context at several depths, with every reducer.
    fn engine() -> Engine {
        let traits = [
            json!({"key": "n_sum", "name": "x", "type": "sum", "event": "A", "property": "n"}),
            json!({"key": "deep", "name": "x", "type": "maximum", "event": "A",
                   "property": "item.price"}),
            json!({"key": "first_k", "name": "x", "type": "first", "event": "B", "property": "k"}),
            json!({"key": "last_k", "name": "x", "type": "last", "event": "A", "property": "k"}),
            json!({"key": "top_k", "name": "x", "type": "most_frequent", "event": "A",
                   "property": "k", "min_frequency": 1}),
            json!({"key": "ks", "name": "x", "type": "unique_list", "event": "B", "property": "k"}),
            json!({"key": "pages", "name": "x", "type": "count", "event": "Page Viewed"}),
        ];
        let audiences = [
            json!({"key": "a1", "name": "x", "condition": {"performed": {"event": "A",
                "where": [{"property": "k", "op": "one_of", "value": ["x", 2]},
                          {"context": "page.path", "op": "starts_with", "value": "/shop"}]}}}),
            json!({"key": "a2", "name": "x", "condition": {"performed": {"event": "B",
                "where": [{"property": "tags", "op": "contains", "value": "vip"},
                          {"property": "n", "op": ">=", "value": 3}]}}}),
            json!({"key": "a3", "name": "x", "condition": {"performed": {"event": "A",
                "where": [{"property": "item", "op": "exists"},
                          {"context": "campaign.name", "op": "!=", "value": "spring"}]}}}),
        ];
        Engine::new(&Catalog {
            traits: traits.iter().map(|t| read_trait(t).unwrap()).collect(),
            audiences: audiences
                .iter()
                .map(|a| read_audience(a).unwrap())
                .collect(),
        })
        .unwrap()
    }

    fn event() -> impl Strategy<Value = Value> {
        let k = prop_oneof![
            Just(json!("x")),
            Just(json!("y")),
            Just(json!(2)),
            Just(json!("2")),
            Just(json!(true)),
            Just(Value::Null),
            Just(json!(["x"])),
        ];
        (
            prop::sample::select(vec!["track", "page", "identify"]),
            prop::sample::select(vec!["A", "B", "C"]),
            0i64..100_000,
            prop::option::of(scalar()),
            prop::option::of(k),
            prop::option::of(prop_oneof![
                Just(json!({"price": "12.5"})),
                Just(json!({"price": 7})),
                Just(json!([1])),
                Just(json!({}))
            ]),
            prop::option::of(prop_oneof![
                Just(json!(["vip", "new"])),
                Just(json!("vip")),
                Just(json!(["VIP"]))
            ]),
            prop::option::of(prop_oneof![Just("/shop/a"), Just("/home")]),
            prop::option::of(prop_oneof![Just("spring"), Just("fall")]),
        )
            .prop_map(|(call, name, minutes, n, k, item, tags, path, campaign)| {
                let mut properties = Map::new();
                for (key, value) in [("n", n), ("k", k), ("item", item), ("tags", tags.clone())] {
                    if let Some(value) = value {
                        properties.insert(key.into(), value);
                    }
                }
                let mut context = json!({"library": {"name": "analytics.js"}});
                if let Some(path) = path {
                    context["page"] = json!({"path": path});
                }
                if let Some(campaign) = campaign {
                    context["campaign"] = json!({"name": campaign});
                }
                json!({"type": call, "event": name, "messageId": format!("m{minutes}"),
                       "timestamp": sluice_spec::timestamp::format_ms(
                           1_767_225_600_000 + minutes * 60_000).unwrap(),
                       "properties": properties, "context": context})
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Applying the recorded forms of a history gives the state applying the parsed
        /// events gives: the same series, values and memberships.
        #[test]
        fn the_engine_reads_records_as_it_reads_events(events in prop::collection::vec(event(), 0..30)) {
            let engine = engine();
            let now = 1_767_225_600_000 + 100_000 * 60_000;
            let mut parsed = engine.fresh();
            let mut records = Vec::new();
            for event in &events {
                let read = EventRef::read(event).unwrap();
                engine.apply(&mut parsed, &read, now);
                record(&read, &mut records);
            }
            let mut replayed = engine.fresh();
            let mut rest: &[u8] = &records;
            while !rest.is_empty() {
                let bytes = rest;
                let event = read(bytes, &mut rest).unwrap();
                engine.apply(&mut replayed, &event, now);
            }
            prop_assert_eq!(&replayed, &parsed);
            let traits = Map::new();
            prop_assert_eq!(engine.evaluate(&mut replayed, &traits, now),
                            engine.evaluate(&mut parsed, &traits, now));
            prop_assert_eq!(engine.outputs(&replayed), engine.outputs(&parsed));
        }
    }
}
