//! Reading membership events straight from their JSON text, without building a
//! `serde_json::Value`. Two readers: [`Cursor`] walks the text forward once, entering the
//! objects the caller wants and passing over the rest (strings with a word-at-a-time search for
//! their closing quote), decoding a value only where it is read; [`Raw`] is one value's text,
//! looked into afterwards (an object's keys found by walking its entries). A membership event
//! is read once, for a handful of fields, so this costs one pass over its text instead of a
//! tree of maps and strings built, walked cold and freed.
//!
//! The text comes from the log, which holds only bodies that parsed at ingestion. Text that is
//! not well-formed JSON never panics here: what cannot be read reads as absent. A key that
//! appears twice reads as `serde_json` reads it: the last one wins.

use std::borrow::Cow;

/// The text of one JSON value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Raw<'a> {
    text: &'a str,
}

/// JSON's whitespace.
const WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

impl<'a> Raw<'a> {
    /// The whole of `text` as one value (whitespace around it ignored).
    pub fn new(text: &'a str) -> Raw<'a> {
        Raw {
            text: text.trim_matches(WHITESPACE),
        }
    }

    /// The value's text, as written.
    #[cfg(test)]
    pub fn text(&self) -> &'a str {
        self.text
    }

    pub fn is_null(&self) -> bool {
        self.text == "null"
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self.text {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// A number's text, as written (what `serde_json`'s arbitrary-precision numbers print).
    pub fn as_number(&self) -> Option<&'a str> {
        let first = *self.text.as_bytes().first()?;
        (first == b'-' || first.is_ascii_digit()).then_some(self.text)
    }

    /// A string's contents, borrowed when it has no escapes, decoded when it has.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        let inner = self.text.strip_prefix('"')?.strip_suffix('"')?;
        if !inner.as_bytes().contains(&b'\\') {
            return Some(Cow::Borrowed(inner));
        }
        unescape(inner).map(Cow::Owned)
    }

    /// The entries of an object, in order (none for anything else).
    pub fn entries(&self) -> Entries<'a> {
        let mut cursor = Cursor::new(self.text);
        let done = !cursor.enter();
        Entries { cursor, done }
    }

    /// The values of `keys` in one pass over an object's entries (all `None` for anything
    /// else).
    pub fn get<const N: usize>(&self, keys: [&str; N]) -> [Option<Raw<'a>>; N] {
        let mut found = [None; N];
        for (key, value) in self.entries() {
            if let Some(at) = keys.iter().position(|wanted| key == *wanted) {
                found[at] = Some(value);
            }
        }
        found
    }
}

/// The entries of an object: key (decoded) and value.
pub struct Entries<'a> {
    cursor: Cursor<'a>,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = (Cow<'a, str>, Raw<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let Some(key) = self.cursor.key() else {
            self.done = true;
            return None;
        };
        let start = self.cursor.position();
        self.cursor.skip();
        if self.cursor.broken {
            self.done = true;
            return None;
        }
        Some((key, self.cursor.since(start)))
    }
}

/// A value read where it stands by a [`Cursor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scalar<'a> {
    /// A string's contents, borrowed when it has no escapes.
    Str(Cow<'a, str>),
    /// A number's text, as written.
    Number(&'a str),
    Bool(bool),
    Null,
    /// An object or an array (passed over), or text that is not a value.
    Other,
}

impl<'a> Scalar<'a> {
    pub fn into_str(self) -> Option<Cow<'a, str>> {
        match self {
            Scalar::Str(text) => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(*b),
            _ => None,
        }
    }
}

/// A reader that walks JSON text forward, once: an object is entered and its keys read in
/// order, and each value is read, entered or passed over where it stands. Nested objects the
/// caller wants are read in the same pass that passes over them, where [`Raw`] finds a value's
/// end first and reads it afterwards.
///
/// After a [`Cursor::key`] the caller consumes the value exactly once: [`Cursor::read`],
/// [`Cursor::skip`], or [`Cursor::enter`] and keys until `None`. Text that stops making sense
/// ends the walk: from there on every key reads as absent.
pub struct Cursor<'a> {
    text: &'a str,
    at: usize,
    broken: bool,
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Cursor<'a> {
        Cursor {
            text,
            at: 0,
            broken: false,
        }
    }

    /// Where the next value starts (whitespace passed over), for [`Cursor::since`].
    pub fn position(&mut self) -> usize {
        self.at = skip_whitespace(self.text.as_bytes(), self.at);
        self.at
    }

    /// The text read since `start` (a [`Cursor::position`]) as one value.
    pub fn since(&self, start: usize) -> Raw<'a> {
        Raw {
            text: self.text.get(start..self.at).unwrap_or_default(),
        }
    }

    /// Enters the object that starts here (`true`), or passes over a value that is not one.
    pub fn enter(&mut self) -> bool {
        let at = self.position();
        if self.text.as_bytes().get(at) == Some(&b'{') {
            self.at = at + 1;
            return true;
        }
        self.skip();
        false
    }

    /// The next key of the object being read, the cursor left on its value; `None` after the
    /// object's closing brace (consumed) or where the text breaks.
    pub fn key(&mut self) -> Option<Cow<'a, str>> {
        if self.broken {
            return None;
        }
        let key = self.next_key();
        if key.is_none() && !self.broken && self.text.as_bytes().get(self.at) == Some(&b'}') {
            self.at += 1;
            return None;
        }
        if key.is_none() {
            self.broken = true;
        }
        key
    }

    fn next_key(&mut self) -> Option<Cow<'a, str>> {
        let bytes = self.text.as_bytes();
        let mut at = skip_whitespace(bytes, self.at);
        if *bytes.get(at)? == b',' {
            at = skip_whitespace(bytes, at + 1);
        }
        self.at = at;
        if *bytes.get(at)? != b'"' {
            return None;
        }
        let (key_end, escaped) = string_end_escaped(bytes, at)?;
        let key_text = self.text.get(at + 1..key_end - 1)?;
        let key = if escaped {
            Cow::Owned(unescape(key_text)?)
        } else {
            Cow::Borrowed(key_text)
        };
        at = skip_whitespace(bytes, key_end);
        if *bytes.get(at)? != b':' {
            return None;
        }
        self.at = at + 1;
        Some(key)
    }

    /// Passes over the value here.
    pub fn skip(&mut self) {
        let start = self.position();
        match value_end(self.text.as_bytes(), start) {
            Some(end) => self.at = end,
            None => self.broken = true,
        }
    }

    /// Reads the value here (an object or array is passed over and reads as
    /// [`Scalar::Other`]).
    pub fn read(&mut self) -> Scalar<'a> {
        let start = self.position();
        let bytes = self.text.as_bytes();
        if bytes.get(start) == Some(&b'"') {
            let Some((end, escaped)) = string_end_escaped(bytes, start) else {
                self.broken = true;
                return Scalar::Other;
            };
            self.at = end;
            let inner = self.text.get(start + 1..end - 1).unwrap_or_default();
            if !escaped {
                return Scalar::Str(Cow::Borrowed(inner));
            }
            return match unescape(inner) {
                Some(text) => Scalar::Str(Cow::Owned(text)),
                None => Scalar::Other,
            };
        }
        self.skip();
        let raw = self.since(start);
        if let Some(b) = raw.as_bool() {
            Scalar::Bool(b)
        } else if raw.is_null() {
            Scalar::Null
        } else if let Some(number) = raw.as_number() {
            Scalar::Number(number)
        } else {
            Scalar::Other
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes
        .get(at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        at += 1;
    }
    at
}

/// Where the value starting at `start` ends.
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match *bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => container_end(bytes, start),
        _ => {
            let mut at = start;
            while bytes
                .get(at)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
            {
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

/// Where the string whose opening quote is at `start` ends (after its closing quote).
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    string_end_escaped(bytes, start).map(|(end, _)| end)
}

/// [`string_end`], and whether the string has escapes.
fn string_end_escaped(bytes: &[u8], start: usize) -> Option<(usize, bool)> {
    let mut at = start + 1;
    let mut escaped = false;
    loop {
        let (found, quote) = quote_or_backslash(bytes, at)?;
        if quote {
            return Some((found + 1, escaped));
        }
        // A backslash: the character after it is escaped.
        escaped = true;
        at = found + 2;
    }
}

/// The first `"` or `\` at or after `from`, and whether it is the quote (told from the masks,
/// so the byte is not read again). Eight bytes at a time: strings in events are mostly a few
/// dozen bytes, too short for a vectorized search to pay for setting up; sixteen at a time, in
/// a `u128`, measured slower.
fn quote_or_backslash(bytes: &[u8], from: usize) -> Option<(usize, bool)> {
    const ONES: u64 = u64::MAX / 0xFF;
    const HIGHS: u64 = ONES << 7;
    /// The high bit of each byte of `word` equal to `byte` (and, above the lowest, possibly
    /// of a few others: only the lowest set bit is used).
    fn matches(word: u64, byte: u8) -> u64 {
        let x = word ^ (ONES * u64::from(byte));
        x.wrapping_sub(ONES) & !x & HIGHS
    }
    let mut at = from;
    while let Some(chunk) = bytes.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_le_bytes(word);
        let quotes = matches(word, b'"');
        let found = quotes | matches(word, b'\\');
        if found != 0 {
            // The lowest match is exact in both masks, so it is a quote exactly when the
            // quotes' mask has it.
            let lowest = found & found.wrapping_neg();
            return Some((
                at + (found.trailing_zeros() / 8) as usize,
                quotes & lowest != 0,
            ));
        }
        at += 8;
    }
    let rest = bytes.get(at..)?;
    let offset = rest.iter().position(|b| *b == b'"' || *b == b'\\')?;
    Some((at + offset, rest[offset] == b'"'))
}

/// Where the object or array opened at `start` ends (after its closing bracket). Brackets of
/// either kind are counted together: in well-formed JSON they pair up.
fn container_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    while let Some(byte) = bytes.get(at) {
        match byte {
            b'"' => {
                at = string_end(bytes, at)?;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// A string's contents with its escapes decoded; `None` for a malformed escape.
fn unescape(inner: &str) -> Option<String> {
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escape = &rest[at + 1..];
        let used = match escape.as_bytes().first()? {
            b'"' => push(&mut out, '"'),
            b'\\' => push(&mut out, '\\'),
            b'/' => push(&mut out, '/'),
            b'b' => push(&mut out, '\u{8}'),
            b'f' => push(&mut out, '\u{c}'),
            b'n' => push(&mut out, '\n'),
            b'r' => push(&mut out, '\r'),
            b't' => push(&mut out, '\t'),
            b'u' => {
                let (c, used) = unicode_escape(escape)?;
                out.push(c);
                used
            }
            _ => return None,
        };
        rest = escape.get(used..)?;
    }
    out.push_str(rest);
    Some(out)
}

fn push(out: &mut String, c: char) -> usize {
    out.push(c);
    1
}

/// The character of `uXXXX` (or of a surrogate pair `uXXXX\uXXXX`) at the start of `escape`,
/// and how many bytes it took. A lone surrogate is malformed (`serde_json` refuses it too).
fn unicode_escape(escape: &str) -> Option<(char, usize)> {
    let unit = |at: usize| u32::from_str_radix(escape.get(at..at + 4)?, 16).ok();
    let first = unit(1)?;
    match first {
        0xD800..=0xDBFF => {
            if escape.get(5..7)? != "\\u" {
                return None;
            }
            let second = unit(7)?;
            if !(0xDC00..=0xDFFF).contains(&second) {
                return None;
            }
            let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
            Some((char::from_u32(code)?, 11))
        }
        0xDC00..=0xDFFF => None,
        _ => Some((char::from_u32(first)?, 5)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    /// What the raw reader makes of `raw`, as a `Value` (objects rebuilt from their entries,
    /// arrays and numbers through `serde_json`).
    fn rebuild(raw: Raw<'_>) -> Option<Value> {
        if raw.text().starts_with('{') {
            let mut map = serde_json::Map::new();
            for (key, value) in raw.entries() {
                map.insert(key.into_owned(), rebuild(value)?);
            }
            return Some(Value::Object(map));
        }
        if raw.is_null() {
            return Some(Value::Null);
        }
        if let Some(b) = raw.as_bool() {
            return Some(Value::Bool(b));
        }
        if let Some(text) = raw.as_str() {
            return Some(Value::String(text.into_owned()));
        }
        serde_json::from_str(raw.text()).ok()
    }

    /// What a [`Cursor`] makes of the value it stands on (objects entered key by key, arrays
    /// passed over and parsed by `serde_json`).
    fn rebuild_with(cursor: &mut Cursor<'_>) -> Option<Value> {
        let start = cursor.position();
        match cursor.text.as_bytes().get(start)? {
            b'{' => {
                assert!(cursor.enter());
                let mut map = serde_json::Map::new();
                while let Some(key) = cursor.key() {
                    let value = rebuild_with(cursor)?;
                    map.insert(key.into_owned(), value);
                }
                // A break inside the object ends the walk: what was read is incomplete.
                (!cursor.broken).then_some(Value::Object(map))
            }
            b'[' => {
                cursor.skip();
                serde_json::from_str(cursor.since(start).text()).ok()
            }
            _ => match cursor.read() {
                Scalar::Str(text) => Some(Value::String(text.into_owned())),
                Scalar::Number(number) => serde_json::from_str(number).ok(),
                Scalar::Bool(b) => Some(Value::Bool(b)),
                Scalar::Null => Some(Value::Null),
                Scalar::Other => None,
            },
        }
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| json!(f)),
            // Quotes, backslashes, controls, accents, emoji (surrogate pairs when escaped).
            "[a-z\"\\\\/\u{0}-\u{1f}éß😀 {}\\[\\],:]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec(("[a-zA-Z_\"\\\\é]{0,8}", inner), 0..6)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn reads_what_serde_json_reads(value in value()) {
            let compact = value.to_string();
            prop_assert_eq!(rebuild(Raw::new(&compact)), Some(value.clone()));
            let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
            prop_assert_eq!(rebuild(Raw::new(&pretty)), Some(value));
        }

        #[test]
        fn the_cursor_reads_what_serde_json_reads(value in value()) {
            let compact = value.to_string();
            prop_assert_eq!(rebuild_with(&mut Cursor::new(&compact)), Some(value.clone()));
            let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
            prop_assert_eq!(rebuild_with(&mut Cursor::new(&pretty)), Some(value));
        }

        #[test]
        fn never_panics_on_any_text(text in "[{}\\[\\]\":,\\\\a-z0-9 ]{0,40}") {
            let raw = Raw::new(&text);
            let _ = raw.entries().count();
            let _ = raw.as_str();
            let _ = rebuild_with(&mut Cursor::new(&text));
        }
    }

    #[test]
    fn escapes_and_surrogates() {
        let raw = Raw::new(r#""a\"b\\c\/d\u00e9\ud83d\ude00\n""#);
        assert_eq!(raw.as_str().as_deref(), Some("a\"b\\c/dé😀\n"));
        assert!(matches!(
            Raw::new(r#""plain""#).as_str(),
            Some(Cow::Borrowed("plain"))
        ));
        for lone in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\ud83dx""#,
            r#""\x""#,
            r#""\u12""#,
        ] {
            assert_eq!(Raw::new(lone).as_str(), None, "{lone}");
        }
    }

    #[test]
    fn get_reads_the_last_of_a_repeated_key_and_skips_nested_values() {
        let raw = Raw::new(r#"{"a": 1, "b": {"a": 2, "c": [1, {"a": "}"}]}, "a": 3}"#);
        let [a, b, missing] = raw.get(["a", "b", "missing"]);
        assert_eq!(a.and_then(|a| a.as_number()), Some("3"));
        assert_eq!(
            b.map(|b| b.get(["c"])[0].map(|c| c.text())),
            Some(Some(r#"[1, {"a": "}"}]"#))
        );
        assert_eq!(missing, None);
        assert_eq!(Raw::new("[1, 2]").get(["a"]), [None]);
        assert_eq!(Raw::new(r#""text""#).entries().count(), 0);
    }

    #[test]
    fn the_word_search_finds_what_a_byte_search_finds() {
        // Quotes, backslashes and bytes one bit away from them (`#`, `]`, `\x22 | 0x80`), at
        // every place in texts up to 40 bytes, searched from every start.
        let fillers = [b'a', b'#', b']', 0xA2, 0xDC, 0x00];
        for len in 0..40 {
            for place in 0..len {
                for (byte, filler) in [b'"', b'\\']
                    .into_iter()
                    .flat_map(|byte| fillers.map(|filler| (byte, filler)))
                {
                    let mut text = vec![filler; len];
                    text[place] = byte;
                    // A second match after the first must not hide it.
                    if place + 3 < len {
                        text[place + 3] = if byte == b'"' { b'\\' } else { b'"' };
                    }
                    for from in 0..=len {
                        let expected = text[from.min(len)..]
                            .iter()
                            .position(|b| *b == b'"' || *b == b'\\')
                            .map(|offset| (from + offset, text[from + offset] == b'"'));
                        assert_eq!(
                            quote_or_backslash(&text, from),
                            expected,
                            "{text:?} from {from}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn truncated_text_reads_what_comes_before_the_break() {
        let raw = Raw::new(r#"{"a": "x", "b": {"c": 1"#);
        let entries: Vec<_> = raw.entries().map(|(key, _)| key.into_owned()).collect();
        assert_eq!(entries, vec!["a"]);
    }

    #[test]
    fn a_cursor_stops_where_the_text_breaks() {
        let mut cursor = Cursor::new(r#"{"a": "x", "b": {"c": 1, "d" 2}, "e": 3}"#);
        assert!(cursor.enter());
        assert_eq!(cursor.key().as_deref(), Some("a"));
        assert_eq!(cursor.read(), Scalar::Str(Cow::Borrowed("x")));
        assert_eq!(cursor.key().as_deref(), Some("b"));
        assert!(cursor.enter());
        assert_eq!(cursor.key().as_deref(), Some("c"));
        assert_eq!(cursor.read(), Scalar::Number("1"));
        // `"d" 2` has no colon: nothing more is read, in this object or the one around it.
        assert_eq!(cursor.key(), None);
        assert_eq!(cursor.key(), None);
        // A value that is not an object is passed over by `enter`.
        let mut cursor = Cursor::new(r#"{"a": [1, {"b": 2}], "c": true}"#);
        assert!(cursor.enter());
        assert_eq!(cursor.key().as_deref(), Some("a"));
        assert!(!cursor.enter());
        assert_eq!(cursor.key().as_deref(), Some("c"));
        assert_eq!(cursor.read(), Scalar::Bool(true));
        assert_eq!(cursor.key(), None);
    }
}
