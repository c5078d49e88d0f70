//! What each FQL function returns.
//!
//! `contains`, `match`, `length`, `lowercase`, `typeof` and `semver` behave as in Segment's
//! browser engine (`@segment/tsub`), JavaScript quirks included: `length` counts UTF-16 code
//! units, `typeof` answers JavaScript's type names, and a function given something other than
//! the type it wants answers `false`, `null` or `NaN` rather than failing. The browser engine
//! lacks `uppercase`, `snakecase`, `kebabcase`, `titlecase`, `bool`, `string` and `number`;
//! Sluice defines them here, in the same spirit (wrong types give `null`).

use std::borrow::Cow;

use crate::ast::Func;
use crate::glob;
use crate::js::{self, JsVal};

/// Calls `func`; `arg(i)` gives the i-th argument as tsub's `getValue` would.
pub(crate) fn call<'a>(func: Func, arg: impl Fn(usize) -> JsVal<'a>) -> JsVal<'a> {
    match func {
        Func::Contains => JsVal::Bool(match (arg(0), arg(1)) {
            (JsVal::Str(s), JsVal::Str(part)) => s.contains(part.as_ref()),
            _ => false,
        }),
        Func::Match => JsVal::Bool(match (arg(0), arg(1)) {
            (JsVal::Str(s), JsVal::Str(pattern)) => glob::matches(&pattern, &s),
            _ => false,
        }),
        Func::Length => JsVal::Num(match arg(0) {
            JsVal::Null => 0.0,
            JsVal::Str(s) => js::utf16_len(&s) as f64,
            JsVal::Json(serde_json::Value::Array(items)) => items.len() as f64,
            _ => f64::NAN,
        }),
        Func::Lowercase => map_str(arg(0), |s| {
            if s.is_ascii() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
                s
            } else {
                Cow::Owned(s.to_lowercase())
            }
        }),
        Func::Uppercase => map_str(arg(0), |s| Cow::Owned(s.to_uppercase())),
        Func::Snakecase => map_str(arg(0), |s| Cow::Owned(split_words(&s).join("_"))),
        Func::Kebabcase => map_str(arg(0), |s| Cow::Owned(split_words(&s).join("-"))),
        Func::Titlecase => map_str(arg(0), |s| Cow::Owned(title_case(&s))),
        Func::Typeof => JsVal::Str(Cow::Borrowed(arg(0).type_of())),
        Func::Semver => JsVal::Bool(semver(&arg(0), &arg(1), &arg(2))),
        Func::Bool => to_bool(arg(0)),
        Func::String => to_string(arg(0)),
        Func::Number => to_number(arg(0)),
    }
}

/// Applies `f` to a string; anything else gives `null`.
fn map_str<'a>(value: JsVal<'a>, f: impl FnOnce(Cow<'a, str>) -> Cow<'a, str>) -> JsVal<'a> {
    match value {
        JsVal::Str(s) => JsVal::Str(f(s)),
        _ => JsVal::Null,
    }
}

/// Lowercase words, split at characters other than letters and digits and where a lowercase
/// letter or digit is followed by an uppercase one: `"Order Completed"` and `"orderCompleted"`
/// both give `["order", "completed"]`.
fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut previous_lower = false;
    for c in s.chars() {
        if !c.is_alphanumeric() {
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = false;
            continue;
        }
        if c.is_uppercase() && previous_lower && !word.is_empty() {
            words.push(std::mem::take(&mut word));
        }
        previous_lower = c.is_lowercase() || c.is_numeric();
        word.extend(c.to_lowercase());
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// Words split at white space, `_` and `-`, each with its first letter uppercase and the rest
/// lowercase, joined by single spaces: `"order_completed"` gives `"Order Completed"`.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s
        .split(|c: char| c.is_whitespace() || c == '_' || c == '-')
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.extend(chars.flat_map(char::to_lowercase));
        }
    }
    out
}

/// tsub's `semver(version, operator, version)`: versions are one to three dot-separated
/// integers (`"2"` is `2.0.0`; each part is read like JavaScript's `parseInt`, so `"1.2rc"`
/// is `1.2.0`); anything unreadable, or an unknown operator, gives `false`.
fn semver(left: &JsVal<'_>, op: &JsVal<'_>, right: &JsVal<'_>) -> bool {
    let (JsVal::Str(left), JsVal::Str(op), JsVal::Str(right)) = (left, op, right) else {
        return false;
    };
    let (Some(left), Some(right)) = (parse_version(left), parse_version(right)) else {
        return false;
    };
    let ordering = left
        .iter()
        .zip(&right)
        .find_map(|(a, b)| (a != b).then(|| if a < b { -1 } else { 1 }))
        .unwrap_or(0);
    match op.as_ref() {
        "=" => ordering == 0,
        "!=" => ordering != 0,
        ">" => ordering > 0,
        ">=" => ordering >= 0,
        "<" => ordering < 0,
        "<=" => ordering <= 0,
        _ => false,
    }
}

fn parse_version(version: &str) -> Option<[f64; 3]> {
    let mut parts = [0.0; 3];
    for (i, part) in version.split('.').enumerate() {
        *parts.get_mut(i)? = parse_int(part.trim_matches(is_js_space))?;
    }
    Some(parts)
}

/// JavaScript's `parseInt(s, 10)`: leading white space, an optional sign, then the longest run
/// of digits; `None` (NaN) without digits.
fn parse_int(s: &str) -> Option<f64> {
    let s = s.trim_start_matches(is_js_space);
    let (negative, s) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let value: f64 = s[..digits].parse().ok()?;
    Some(if negative { -value } else { value })
}

/// JavaScript's white space and line terminators (what `trim` and `parseInt` skip).
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `bool(v)`: booleans as they are, `"true"`/`"false"`, numbers (`0` is false); else `null`.
fn to_bool(value: JsVal<'_>) -> JsVal<'_> {
    match value {
        JsVal::Bool(b) => JsVal::Bool(b),
        JsVal::Str(s) if s == "true" => JsVal::Bool(true),
        JsVal::Str(s) if s == "false" => JsVal::Bool(false),
        JsVal::Num(n) => JsVal::Bool(n != 0.0 && !n.is_nan()),
        _ => JsVal::Null,
    }
}

/// `string(v)`: strings as they are, numbers and booleans as JavaScript prints them, `null`
/// as `"null"`, lists and objects as JSON text; a missing field stays `null`.
fn to_string(value: JsVal<'_>) -> JsVal<'_> {
    match value {
        JsVal::Str(s) => JsVal::Str(s),
        JsVal::Undefined => JsVal::Null,
        JsVal::Num(n) if n.is_nan() => JsVal::Str(Cow::Borrowed("NaN")),
        JsVal::Num(n) if n.is_infinite() => JsVal::Str(Cow::Borrowed(if n > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })),
        other => js::stringify_js(&other).map_or(JsVal::Null, |text| JsVal::Str(Cow::Owned(text))),
    }
}

/// `number(v)`: numbers as they are, strings that read as a decimal number (white space
/// around allowed), `true` as 1 and `false` as 0; else `null`.
fn to_number(value: JsVal<'_>) -> JsVal<'_> {
    match value {
        JsVal::Num(n) => JsVal::Num(n),
        JsVal::Bool(b) => JsVal::Num(if b { 1.0 } else { 0.0 }),
        JsVal::Str(s) => parse_decimal(s.trim_matches(is_js_space)).map_or(JsVal::Null, JsVal::Num),
        _ => JsVal::Null,
    }
}

/// `-?digits(.digits)?([eE][+-]?digits)?`, finite.
fn parse_decimal(s: &str) -> Option<f64> {
    let bytes = s.as_bytes();
    let mut i = usize::from(bytes.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while bytes.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i) {
        return None;
    }
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return None;
        }
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return None;
        }
    }
    if i != bytes.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|n| n.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> JsVal<'_> {
        JsVal::Str(Cow::Borrowed(s))
    }

    fn one(func: Func, value: JsVal<'_>) -> JsVal<'_> {
        call(func, |i| {
            if i == 0 {
                value.clone()
            } else {
                JsVal::Undefined
            }
        })
    }

    fn as_str(value: JsVal<'_>) -> Option<String> {
        match value {
            JsVal::Str(s) => Some(s.into_owned()),
            _ => None,
        }
    }

    #[test]
    fn case_conversions() {
        assert_eq!(
            as_str(one(Func::Snakecase, text("Order Completed"))).as_deref(),
            Some("order_completed")
        );
        assert_eq!(
            as_str(one(Func::Snakecase, text("orderCompleted v2"))).as_deref(),
            Some("order_completed_v2")
        );
        assert_eq!(
            as_str(one(Func::Kebabcase, text("  Order--Completed "))).as_deref(),
            Some("order-completed")
        );
        assert_eq!(
            as_str(one(Func::Titlecase, text("order_completed now"))).as_deref(),
            Some("Order Completed Now")
        );
        assert_eq!(
            as_str(one(Func::Titlecase, text("éCOLE"))).as_deref(),
            Some("École")
        );
        assert_eq!(
            as_str(one(Func::Uppercase, text("straße"))).as_deref(),
            Some("STRASSE")
        );
        assert_eq!(
            as_str(one(Func::Lowercase, text("ÀB"))).as_deref(),
            Some("àb")
        );
        assert!(matches!(one(Func::Uppercase, JsVal::Num(1.0)), JsVal::Null));
        assert!(matches!(
            one(Func::Snakecase, JsVal::Undefined),
            JsVal::Null
        ));
    }

    #[test]
    fn conversions() {
        assert!(matches!(one(Func::Bool, text("true")), JsVal::Bool(true)));
        assert!(matches!(one(Func::Bool, text("yes")), JsVal::Null));
        assert!(matches!(
            one(Func::Bool, JsVal::Num(0.0)),
            JsVal::Bool(false)
        ));
        assert!(matches!(one(Func::Bool, JsVal::Null), JsVal::Null));
        assert_eq!(
            as_str(one(Func::String, JsVal::Num(1.5))).as_deref(),
            Some("1.5")
        );
        assert_eq!(
            as_str(one(Func::String, JsVal::Num(3.0))).as_deref(),
            Some("3")
        );
        assert_eq!(
            as_str(one(Func::String, JsVal::Bool(false))).as_deref(),
            Some("false")
        );
        assert_eq!(
            as_str(one(Func::String, JsVal::Null)).as_deref(),
            Some("null")
        );
        let list = serde_json::json!([1, "a"]);
        assert_eq!(
            as_str(one(Func::String, JsVal::Json(&list))).as_deref(),
            Some("[1,\"a\"]")
        );
        assert!(matches!(one(Func::String, JsVal::Undefined), JsVal::Null));
        assert!(matches!(one(Func::Number, text(" 42.5 ")), JsVal::Num(n) if n == 42.5));
        assert!(matches!(one(Func::Number, text("-1e3")), JsVal::Num(n) if n == -1000.0));
        assert!(matches!(one(Func::Number, text("12abc")), JsVal::Null));
        assert!(matches!(one(Func::Number, text("")), JsVal::Null));
        assert!(matches!(one(Func::Number, text("1.")), JsVal::Null));
        assert!(matches!(one(Func::Number, JsVal::Bool(true)), JsVal::Num(n) if n == 1.0));
    }

    #[test]
    fn semver_reads_versions_like_tsub() {
        let cases = [
            ("1.0.1", ">=", "1.0.0", true),
            ("0.9.9", ">=", "1.0.0", false),
            ("1.10.0", ">", "1.9.0", true),
            ("2", ">", "1.9.9", true),
            ("1.5", "=", "1.5.0", true),
            ("1.2.3.4", ">=", "1.0.0", false),
            ("1.a.0", ">=", "1.0.0", false),
            ("1.0.0", "~=", "1.0.0", false),
            ("1.2rc", "=", "1.2.0", true),
            (" 3 . 1", "=", "3.1", true),
            ("-1", "<", "0", true),
            ("", "=", "0", false),
            ("1..2", "=", "1.0.2", false),
        ];
        for (a, op, b, expected) in cases {
            assert_eq!(
                semver(&text(a), &text(op), &text(b)),
                expected,
                "{a} {op} {b}"
            );
        }
        assert!(!semver(&JsVal::Null, &text(">="), &text("1")));
        assert!(!semver(&JsVal::Num(1.0), &text("="), &text("1")));
    }
}
