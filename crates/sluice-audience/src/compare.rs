//! Conditions on one value: the operators of event-property and trait conditions, and how each
//! compares JSON values.
//!
//! Rules, the same everywhere:
//! - Numbers compare as numbers; a string that reads as a number compares as that number
//!   (`"100"` > `99`), since SDKs send prices both ways.
//! - Text operators (`contains`, `starts_with`, `ends_with`) compare case-sensitively. On an
//!   array, `contains` asks whether an element equals the operand.
//! - A missing value or `null` satisfies only the negative operators (`!=`, `not_contains`,
//!   `none_of`, `not_exists`).
//! - Dates are ISO-8601 date-times or `YYYY-MM-DD` dates (midnight UTC).

use serde_json::Value;

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operator {
    Equals,
    NotEquals,
    Greater,
    AtLeast,
    Less,
    AtMost,
    Contains,
    NotContains,
    StartsWith,
    EndsWith,
    Exists,
    NotExists,
    OneOf,
    NoneOf,
    Before,
    After,
    /// The value is a date no longer ago than a duration (trait conditions only: the answer
    /// changes as time passes).
    WithinLast,
}

/// Every operator with its name in definitions.
pub const OPERATORS: &[(&str, Operator)] = &[
    ("=", Operator::Equals),
    ("!=", Operator::NotEquals),
    (">", Operator::Greater),
    (">=", Operator::AtLeast),
    ("<", Operator::Less),
    ("<=", Operator::AtMost),
    ("contains", Operator::Contains),
    ("not_contains", Operator::NotContains),
    ("starts_with", Operator::StartsWith),
    ("ends_with", Operator::EndsWith),
    ("exists", Operator::Exists),
    ("not_exists", Operator::NotExists),
    ("one_of", Operator::OneOf),
    ("none_of", Operator::NoneOf),
    ("before", Operator::Before),
    ("after", Operator::After),
    ("within_last", Operator::WithinLast),
];

impl Operator {
    /// The operator called `name` in a definition.
    pub fn parse(name: &str) -> Option<Operator> {
        OPERATORS
            .iter()
            .find(|(known, _)| *known == name)
            .map(|(_, operator)| *operator)
    }

    /// Its name in definitions.
    pub fn name(self) -> &'static str {
        OPERATORS
            .iter()
            .find(|(_, operator)| *operator == self)
            .map_or("?", |(name, _)| name)
    }
}

/// What an operator compares against, checked when the definition is read.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// `exists`, `not_exists`.
    Nothing,
    /// `=`, `!=`: any JSON scalar.
    Value(Value),
    /// `>`, `>=`, `<`, `<=`.
    Number(f64),
    /// `contains`, `not_contains`, `starts_with`, `ends_with`.
    Text(String),
    /// `one_of`, `none_of`: scalars.
    List(Vec<Value>),
    /// `before`, `after`: milliseconds since the epoch.
    Time(i64),
    /// `within_last`: milliseconds.
    Duration(i64),
}

/// One operator and its operand.
#[derive(Clone, Debug, PartialEq)]
pub struct Test {
    pub operator: Operator,
    pub operand: Operand,
}

/// A value conditions look at: parsed JSON, or a value in an event's recorded form (see
/// [`crate::recorded`]), read where it lies. Both give the same answers (property-tested).
pub trait Probe<'a>: Copy {
    fn is_null(self) -> bool;
    fn is_number(self) -> bool;
    /// The text of a string.
    fn as_str(self) -> Option<&'a str>;
    /// JSON numbers, and strings that read as one.
    fn number(self) -> Option<f64>;
    /// Whether this is the JSON scalar `operand`, as `==` on JSON values says (numbers by
    /// their digits).
    fn equals(self, operand: &Value) -> bool;
    /// Whether this is an array with the string `text` among its items.
    fn has_item(self, text: &str) -> bool;
    /// A scalar as JSON text (the form series keep values in); `None` for null, arrays and
    /// objects.
    fn scalar_text(self) -> Option<String>;
}

impl<'a> Probe<'a> for &'a Value {
    fn is_null(self) -> bool {
        Value::is_null(self)
    }

    fn is_number(self) -> bool {
        Value::is_number(self)
    }

    fn as_str(self) -> Option<&'a str> {
        Value::as_str(self)
    }

    fn number(self) -> Option<f64> {
        number(self)
    }

    fn equals(self, operand: &Value) -> bool {
        self == operand
    }

    fn has_item(self, text: &str) -> bool {
        self.as_array()
            .is_some_and(|items| items.iter().any(|item| item.as_str() == Some(text)))
    }

    fn scalar_text(self) -> Option<String> {
        match self {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => {
                serde_json::to_string(self).ok()
            }
            _ => None,
        }
    }
}

impl Test {
    /// Whether `value` (`None` when missing) passes, at `now` (milliseconds since the epoch).
    pub fn passes<'a, P: Probe<'a>>(&self, value: Option<P>, now: i64) -> bool {
        let value = value.filter(|value| !value.is_null());
        let Some(value) = value else {
            return matches!(
                self.operator,
                Operator::NotEquals
                    | Operator::NotContains
                    | Operator::NoneOf
                    | Operator::NotExists
            );
        };
        match (&self.operator, &self.operand) {
            (Operator::Exists, _) => true,
            (Operator::NotExists, _) => false,
            (Operator::Equals, Operand::Value(operand)) => same(value, operand),
            (Operator::NotEquals, Operand::Value(operand)) => !same(value, operand),
            (Operator::Greater, Operand::Number(n)) => value.number().is_some_and(|v| v > *n),
            (Operator::AtLeast, Operand::Number(n)) => value.number().is_some_and(|v| v >= *n),
            (Operator::Less, Operand::Number(n)) => value.number().is_some_and(|v| v < *n),
            (Operator::AtMost, Operand::Number(n)) => value.number().is_some_and(|v| v <= *n),
            (Operator::Contains, Operand::Text(text)) => contains(value, text),
            (Operator::NotContains, Operand::Text(text)) => !contains(value, text),
            (Operator::StartsWith, Operand::Text(text)) => {
                value.as_str().is_some_and(|v| v.starts_with(text.as_str()))
            }
            (Operator::EndsWith, Operand::Text(text)) => {
                value.as_str().is_some_and(|v| v.ends_with(text.as_str()))
            }
            (Operator::OneOf, Operand::List(list)) => list.iter().any(|item| same(value, item)),
            (Operator::NoneOf, Operand::List(list)) => !list.iter().any(|item| same(value, item)),
            (Operator::Before, Operand::Time(at)) => time(value).is_some_and(|t| t < *at),
            (Operator::After, Operand::Time(at)) => time(value).is_some_and(|t| t > *at),
            (Operator::WithinLast, Operand::Duration(span)) => {
                time(value).is_some_and(|t| t <= now && t > now - span)
            }
            // A test is only ever built with the operand its operator takes (see
            // `definition::read_test`); any other pairing passes nothing.
            _ => false,
        }
    }

    /// The next moment after `now` at which the answer for `value` changes by time alone, if
    /// it ever does (only `within_last` depends on time).
    pub fn changes_after(&self, value: Option<&Value>, now: i64) -> Option<i64> {
        let (Operator::WithinLast, Operand::Duration(span)) = (&self.operator, &self.operand)
        else {
            return None;
        };
        let t = time(value?)?;
        // Passing from `t` (when `now` reaches it) until `t + span`.
        [t, t + span].into_iter().find(|at| *at > now)
    }
}

/// Equality of a value and a JSON scalar, numbers by value (also when written as text).
pub fn same<'a>(value: impl Probe<'a>, operand: &Value) -> bool {
    if value.equals(operand) {
        return true;
    }
    // Numbers by value only when one side is a number (two strings compare as text).
    if !(value.is_number() || operand.is_number()) {
        return false;
    }
    match (value.number(), number(operand)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A value as a number: JSON numbers, and strings that read as one.
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => parse_number(number.as_str().as_bytes()),
        Value::String(text) => parse_number(text.as_bytes()),
        _ => None,
    }
}

/// The finite number `text` (UTF-8) spells, whitespace around it allowed, as
/// `str::parse::<f64>` reads it. Event properties are mostly short decimals (`129.99`), read here directly: at
/// most 15 digits make an integer below 2^53, exact as a float, and dividing it by a power of
/// ten up to 10^15 (exact too) rounds once, correctly, so the result is the nearest float, as
/// the general parser's would be. Anything else goes to the general parser.
pub fn parse_number(text: &[u8]) -> Option<f64> {
    const POWERS: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    let mut mantissa: u64 = 0;
    let mut count = 0;
    let mut fraction: Option<usize> = None;
    let mut simple = !digits.is_empty() && digits.len() <= 16;
    for (at, byte) in digits.iter().enumerate() {
        if !simple {
            break;
        }
        match byte {
            b'0'..=b'9' => {
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                count += 1;
            }
            // One point, with digits on both sides.
            b'.' if fraction.is_none() && at > 0 && at + 1 < digits.len() => {
                fraction = Some(digits.len() - at - 1);
            }
            _ => simple = false,
        }
    }
    if simple && count <= 15 {
        let value = mantissa as f64 / POWERS[fraction.unwrap_or(0)];
        return Some(if negative { -value } else { value });
    }
    let text = std::str::from_utf8(text).ok()?;
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn contains<'a>(value: impl Probe<'a>, text: &str) -> bool {
    match value.as_str() {
        Some(value) => value.contains(text),
        None => value.has_item(text),
    }
}

/// A value as a time (milliseconds since the epoch): an ISO-8601 date-time or a `YYYY-MM-DD`
/// date at midnight UTC.
pub fn time<'a>(value: impl Probe<'a>) -> Option<i64> {
    parse_time(value.as_str()?)
}

/// Reads an ISO-8601 date-time or a `YYYY-MM-DD` date (midnight UTC).
pub fn parse_time(text: &str) -> Option<i64> {
    if text.len() == 10 {
        return sluice_spec::timestamp::parse(&format!("{text}T00:00:00Z"))
            .map(sluice_spec::timestamp::to_ms);
    }
    sluice_spec::timestamp::parse(text).map(sluice_spec::timestamp::to_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn test(operator: Operator, operand: Operand) -> Test {
        Test { operator, operand }
    }

    #[test]
    fn numbers_compare_by_value_also_when_sent_as_text() {
        let at_least = test(Operator::AtLeast, Operand::Number(100.0));
        assert!(at_least.passes(Some(&json!(100)), 0));
        assert!(at_least.passes(Some(&json!("150.5")), 0));
        assert!(!at_least.passes(Some(&json!(99.99)), 0));
        assert!(!at_least.passes(Some(&json!("lots")), 0));
        assert!(!at_least.passes(Some(&json!(true)), 0));
        let equals = test(Operator::Equals, Operand::Value(json!(3)));
        assert!(equals.passes(Some(&json!("3")), 0));
        assert!(equals.passes(Some(&json!(3.0)), 0));
        let text = test(Operator::Equals, Operand::Value(json!("3")));
        assert!(text.passes(Some(&json!(3)), 0));
        let word = test(Operator::Equals, Operand::Value(json!("pro")));
        assert!(word.passes(Some(&json!("pro")), 0));
        assert!(!word.passes(Some(&json!("Pro")), 0));
    }

    #[test]
    fn short_decimals_read_as_the_general_parser_reads_them() {
        for text in [
            "0",
            "-0",
            "7",
            "007",
            "129.99",
            "-3.5",
            "0.1",
            "0.30000000000000004",
            "1.",
            ".5",
            "-",
            "1e3",
            " 12 ",
            "1.2.3",
            "999999999999999",
            "9999999999999999",
            "123456789.123456",
            "12345678.1234567",
            "0.000000000000001",
            "",
        ] {
            let expected = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
            let found = parse_number(text.as_bytes());
            assert_eq!(
                found.map(f64::to_bits),
                expected.map(f64::to_bits),
                "{text:?}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn decimals_read_as_the_general_parser_reads_them(
            negative in proptest::bool::ANY,
            whole in "[0-9]{1,12}",
            fraction in proptest::option::of("[0-9]{1,8}"),
        ) {
            let mut text = String::new();
            if negative {
                text.push('-');
            }
            text.push_str(&whole);
            if let Some(fraction) = &fraction {
                text.push('.');
                text.push_str(fraction);
            }
            let expected = text.parse::<f64>().ok();
            proptest::prop_assert_eq!(parse_number(text.as_bytes()).map(f64::to_bits), expected.map(f64::to_bits));
        }
    }

    #[test]
    fn missing_values_pass_only_negative_operators() {
        for (name, operator) in OPERATORS {
            let operand = match operator {
                Operator::Exists | Operator::NotExists => Operand::Nothing,
                Operator::Equals | Operator::NotEquals => Operand::Value(json!("x")),
                Operator::Greater | Operator::AtLeast | Operator::Less | Operator::AtMost => {
                    Operand::Number(1.0)
                }
                Operator::OneOf | Operator::NoneOf => Operand::List(vec![json!("x")]),
                Operator::Before | Operator::After => Operand::Time(0),
                Operator::WithinLast => Operand::Duration(1),
                _ => Operand::Text("x".into()),
            };
            let expected = matches!(*name, "!=" | "not_contains" | "none_of" | "not_exists");
            let test = test(*operator, operand);
            assert_eq!(
                test.passes(None::<&Value>, 0),
                expected,
                "{name} on missing"
            );
            assert_eq!(
                test.passes(Some(&Value::Null), 0),
                expected,
                "{name} on null"
            );
        }
    }

    #[test]
    fn text_and_list_operators() {
        let contains = test(Operator::Contains, Operand::Text("shoe".into()));
        assert!(contains.passes(Some(&json!("red shoes")), 0));
        assert!(!contains.passes(Some(&json!("Red Shoes")), 0));
        assert!(contains.passes(Some(&json!(["hat", "shoe"])), 0));
        assert!(!contains.passes(Some(&json!(["shoes"])), 0));
        let starts = test(Operator::StartsWith, Operand::Text("https://".into()));
        assert!(starts.passes(Some(&json!("https://x.io")), 0));
        assert!(!starts.passes(Some(&json!(42)), 0));
        let ends = test(Operator::EndsWith, Operand::Text(".io".into()));
        assert!(ends.passes(Some(&json!("https://x.io")), 0));
        let one_of = test(Operator::OneOf, Operand::List(vec![json!("a"), json!(2)]));
        assert!(one_of.passes(Some(&json!("2")), 0));
        assert!(!one_of.passes(Some(&json!("b")), 0));
        let none_of = test(Operator::NoneOf, Operand::List(vec![json!("a")]));
        assert!(none_of.passes(Some(&json!("b")), 0));
        assert!(!none_of.passes(Some(&json!("a")), 0));
    }

    #[test]
    fn dates_and_relative_windows() {
        let day = 86_400_000;
        let cutoff = parse_time("2026-01-01").unwrap();
        assert_eq!(parse_time("2026-01-01T00:00:00Z"), Some(cutoff));
        let before = test(Operator::Before, Operand::Time(cutoff));
        assert!(before.passes(Some(&json!("2025-12-31T23:59:59Z")), 0));
        assert!(!before.passes(Some(&json!("2026-01-01")), 0));
        assert!(!before.passes(Some(&json!("yesterday")), 0));
        let after = test(Operator::After, Operand::Time(cutoff));
        assert!(after.passes(Some(&json!("2026-01-02")), 0));

        let within = test(Operator::WithinLast, Operand::Duration(7 * day));
        let signed_up = json!("2026-01-01");
        assert!(
            !within.passes(Some(&signed_up), cutoff - 1),
            "in the future"
        );
        assert!(within.passes(Some(&signed_up), cutoff));
        assert!(within.passes(Some(&signed_up), cutoff + 7 * day - 1));
        assert!(!within.passes(Some(&signed_up), cutoff + 7 * day));
        assert_eq!(
            within.changes_after(Some(&signed_up), cutoff - 5),
            Some(cutoff)
        );
        assert_eq!(
            within.changes_after(Some(&signed_up), cutoff),
            Some(cutoff + 7 * day)
        );
        assert_eq!(
            within.changes_after(Some(&signed_up), cutoff + 7 * day),
            None
        );
        assert_eq!(before.changes_after(Some(&signed_up), 0), None);
    }

    #[test]
    fn operator_names_round_trip() {
        for (name, operator) in OPERATORS {
            assert_eq!(Operator::parse(name), Some(*operator));
            assert_eq!(operator.name(), *name);
        }
        assert_eq!(Operator::parse("=>"), None);
    }
}
