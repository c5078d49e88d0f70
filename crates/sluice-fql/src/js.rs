//! The JavaScript value semantics Segment's filter engine (`@segment/tsub`) relies on.
//!
//! tsub evaluates filters in JavaScript, so its answers depend on JavaScript's rules:
//! truthiness, `typeof`, `===`, `JSON.stringify` (property order, number formatting) and how
//! `dlv` walks a dotted path. This module reproduces those rules over `serde_json` values so
//! that Sluice answers as tsub does.
//!
//! Numbers are compared by value (`f64`), never by their JSON text.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// A JavaScript value as tsub sees it while evaluating: a scalar, or a reference to a JSON
/// array or object (of the event, or of the filter's own IR).
#[derive(Debug, Clone)]
pub(crate) enum JsVal<'a> {
    /// A missing field.
    Undefined,
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// An array or an object (never a scalar).
    Json(&'a Value),
}

impl<'a> JsVal<'a> {
    /// The JavaScript view of a JSON value.
    pub(crate) fn of(value: &'a Value) -> JsVal<'a> {
        match value {
            Value::Null => JsVal::Null,
            Value::Bool(b) => JsVal::Bool(*b),
            Value::Number(n) => JsVal::Num(number_value(n)),
            Value::String(s) => JsVal::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => JsVal::Json(value),
        }
    }

    /// JavaScript truthiness: `false`, `0`, `NaN`, `""`, `null` and `undefined` are false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            JsVal::Undefined | JsVal::Null => false,
            JsVal::Bool(b) => *b,
            JsVal::Num(n) => *n != 0.0 && !n.is_nan(),
            JsVal::Str(s) => !s.is_empty(),
            JsVal::Json(_) => true,
        }
    }

    /// `value === true`
    pub(crate) fn is_true(&self) -> bool {
        matches!(self, JsVal::Bool(true))
    }

    /// JavaScript's `typeof`.
    pub(crate) fn type_of(&self) -> &'static str {
        match self {
            JsVal::Undefined => "undefined",
            JsVal::Null | JsVal::Json(_) => "object",
            JsVal::Bool(_) => "boolean",
            JsVal::Num(_) => "number",
            JsVal::Str(_) => "string",
        }
    }
}

/// The `f64` JavaScript would read from this JSON number (`JSON.parse` rounds the same way).
pub(crate) fn number_value(n: &Number) -> f64 {
    n.as_f64().unwrap_or_else(|| {
        // Out of `f64` range: JavaScript reads such a literal as ±Infinity.
        if n.to_string().starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }
    })
}

/// `a === b`: scalars by value, arrays and objects by identity.
pub(crate) fn strict_equal(a: &JsVal<'_>, b: &JsVal<'_>) -> bool {
    match (a, b) {
        (JsVal::Undefined, JsVal::Undefined) | (JsVal::Null, JsVal::Null) => true,
        (JsVal::Bool(x), JsVal::Bool(y)) => x == y,
        (JsVal::Num(x), JsVal::Num(y)) => x == y,
        (JsVal::Str(x), JsVal::Str(y)) => x == y,
        (JsVal::Json(x), JsVal::Json(y)) => std::ptr::eq(*x, *y),
        _ => false,
    }
}

/// tsub's `=`: when both sides are objects to JavaScript (`null`, arrays, objects) they are
/// equal when their `JSON.stringify` texts are; otherwise `===`.
pub(crate) fn tsub_equal(a: &JsVal<'_>, b: &JsVal<'_>) -> bool {
    match (a, b) {
        (JsVal::Null, JsVal::Null) => true,
        (JsVal::Json(x), JsVal::Json(y)) => same_json_text(x, y),
        _ => strict_equal(a, b),
    }
}

/// Whether `JSON.stringify(a) === JSON.stringify(b)`, without building the texts: same
/// structure, same numbers, same property order as JavaScript enumerates it.
pub(crate) fn same_json_text(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (number_value(x), number_value(y));
            // JSON.stringify writes every non-finite number as `null`.
            x == y || (!x.is_finite() && !y.is_finite())
        }
        (Value::Number(x), Value::Null) | (Value::Null, Value::Number(x)) => {
            !number_value(x).is_finite()
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json_text(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            if x.len() != y.len() {
                return false;
            }
            let same = |(kx, vx): (&String, &Value), (ky, vy): (&String, &Value)| {
                kx == ky && same_json_text(vx, vy)
            };
            if has_index_key(x) || has_index_key(y) {
                js_entries(x)
                    .into_iter()
                    .zip(js_entries(y))
                    .all(|(a, b)| same(a, b))
            } else {
                x.iter().zip(y).all(|(a, b)| same(a, b))
            }
        }
        _ => false,
    }
}

/// Whether JavaScript would treat `key` as an array index ("0", "17"; not "01" or "-1").
pub(crate) fn array_index(key: &str) -> Option<usize> {
    let bytes = key.as_bytes();
    if bytes.is_empty() || bytes.len() > 10 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if bytes.len() > 1 && bytes[0] == b'0' {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    if n >= u64::from(u32::MAX) {
        return None;
    }
    usize::try_from(n).ok()
}

fn has_index_key(map: &Map<String, Value>) -> bool {
    map.keys().any(|k| array_index(k).is_some())
}

/// An object's entries in JavaScript's order: array-index keys ascending, then the others in
/// insertion order.
fn js_entries(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut indexed: Vec<(usize, (&String, &Value))> = map
        .iter()
        .filter_map(|(k, v)| array_index(k).map(|i| (i, (k, v))))
        .collect();
    indexed.sort_by_key(|(i, _)| *i);
    let mut entries: Vec<(&String, &Value)> = indexed.into_iter().map(|(_, e)| e).collect();
    entries.extend(map.iter().filter(|(k, _)| array_index(k).is_none()));
    entries
}

/// `JSON.stringify(value)` appended to `out`.
pub(crate) fn stringify(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let n = number_value(n);
            if n.is_finite() {
                write_number(n, out);
            } else {
                out.push_str("null");
            }
        }
        Value::String(s) => quote(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                stringify(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut write = |i: usize, (key, item): (&String, &Value)| {
                if i > 0 {
                    out.push(',');
                }
                quote(key, out);
                out.push(':');
                stringify(item, out);
            };
            if has_index_key(map) {
                js_entries(map)
                    .into_iter()
                    .enumerate()
                    .for_each(|(i, e)| write(i, e));
            } else {
                map.iter().enumerate().for_each(|(i, e)| write(i, e));
            }
            out.push('}');
        }
    }
}

/// `JSON.stringify(value)` of an evaluation value; `None` for `undefined` (JavaScript returns
/// `undefined` there, not a string).
pub(crate) fn stringify_js(value: &JsVal<'_>) -> Option<String> {
    let mut out = String::new();
    match value {
        JsVal::Undefined => return None,
        JsVal::Null => out.push_str("null"),
        JsVal::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        JsVal::Num(n) if n.is_finite() => write_number(*n, &mut out),
        JsVal::Num(_) => out.push_str("null"),
        JsVal::Str(s) => quote(s, &mut out),
        JsVal::Json(v) => stringify(v, &mut out),
    }
    Some(out)
}

/// A JSON string literal as `JSON.stringify` writes it.
fn quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// JavaScript's `Number.prototype.toString()` for a finite number.
pub(crate) fn write_number(n: f64, out: &mut String) {
    if n == 0.0 {
        out.push('0');
        return;
    }
    if n < 0.0 {
        out.push('-');
    }
    // Rust's `{:e}` gives the shortest digits that read back as the same number, as
    // JavaScript uses; only the layout differs.
    let scientific = format!("{:e}", n.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let k = digits.len() as i64;
    let n = exponent.parse::<i64>().unwrap_or(0) + 1;
    if k <= n && n <= 21 {
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        out.push_str(&digits[..n as usize]);
        out.push('.');
        out.push_str(&digits[n as usize..]);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        out.push_str(&digits[..1]);
        if k > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let e = n - 1;
        let _ = write!(out, "e{}{}", if e >= 0 { "+" } else { "-" }, e.abs());
    }
}

/// A string's `.length` in JavaScript: UTF-16 code units.
pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// `dlv(root, path)`: walks the segments as JavaScript property reads; a falsy value on the
/// way gives `undefined`. Arrays answer indexes and `length`, strings answer `length` and
/// indexes (one UTF-16 unit each). Properties JavaScript inherits from its built-in prototypes
/// (`constructor`, `toString`...) are not emulated: only the event's own data is read.
pub(crate) fn lookup<'a, S: AsRef<str>>(
    root: &'a Value,
    segments: impl IntoIterator<Item = S>,
) -> JsVal<'a> {
    let mut current = JsVal::of(root);
    for segment in segments {
        if !current.truthy() {
            return JsVal::Undefined;
        }
        let segment = segment.as_ref();
        current = match current {
            JsVal::Json(Value::Object(map)) => map.get(segment).map_or(JsVal::Undefined, JsVal::of),
            JsVal::Json(Value::Array(items)) => {
                if segment == "length" {
                    JsVal::Num(items.len() as f64)
                } else {
                    array_index(segment)
                        .and_then(|i| items.get(i))
                        .map_or(JsVal::Undefined, JsVal::of)
                }
            }
            JsVal::Str(s) => {
                if segment == "length" {
                    JsVal::Num(utf16_len(&s) as f64)
                } else {
                    array_index(segment)
                        .and_then(|i| utf16_unit(&s, i))
                        .map_or(JsVal::Undefined, |c| JsVal::Str(Cow::Owned(c.to_string())))
                }
            }
            _ => JsVal::Undefined,
        };
    }
    current
}

/// The character at UTF-16 index `i`. Half of a surrogate pair cannot be a Rust `char`; it
/// reads as U+FFFD (JavaScript would give a lone surrogate, equal to no literal either).
fn utf16_unit(s: &str, i: usize) -> Option<char> {
    let mut at = 0;
    for c in s.chars() {
        let width = c.len_utf16();
        if i < at + width {
            return Some(if width == 1 {
                c
            } else {
                char::REPLACEMENT_CHARACTER
            });
        }
        at += width;
    }
    None
}

/// The mutable JSON value `dlv` would reach along `segments`, when it is an array or object
/// (the only values property filters act on).
pub(crate) fn lookup_mut<'a, 's>(
    root: &'a mut Value,
    segments: impl IntoIterator<Item = &'s str>,
) -> Option<&'a mut Value> {
    let mut current = root;
    for segment in segments {
        current = match current {
            Value::Object(map) => map.get_mut(segment)?,
            Value::Array(items) => items.get_mut(array_index(segment)?)?,
            _ => return None,
        };
    }
    Some(current)
}

#[cfg(test)]
mod tests;
