//! `match()`'s glob: a whole-string, case-sensitive pattern, as Segment's engines read it.
//!
//! `*` matches any run of characters (`/` included), `?` one character, `[abc]`, `[a-z]` and
//! `[^...]` one character of (or not of) a class, and `\x` the character `x`. The pattern is
//! cut into chunks at each unescaped `*` outside a class; each chunk must match at the earliest
//! place that lets the rest match, as Go's `path.Match` does. A malformed class never matches.
//!
//! A "character" is a UTF-16 code unit, as in the browser engine: `?` does not match an emoji
//! (two units), `??` does. ASCII text is matched byte by byte without converting it.

/// Whether `subject` matches `pattern` as a whole.
pub fn matches(pattern: &str, subject: &str) -> bool {
    if pattern.is_ascii() && subject.is_ascii() {
        glob(pattern.as_bytes(), subject.as_bytes())
    } else {
        let pattern: Vec<u16> = pattern.encode_utf16().collect();
        let subject: Vec<u16> = subject.encode_utf16().collect();
        glob(&pattern, &subject)
    }
}

/// A code unit: a byte of ASCII text or a UTF-16 unit.
trait Unit: Copy + Eq + Ord {
    fn is(self, c: u8) -> bool;
}

impl Unit for u8 {
    fn is(self, c: u8) -> bool {
        self == c
    }
}

impl Unit for u16 {
    fn is(self, c: u8) -> bool {
        self == u16::from(c)
    }
}

fn glob<U: Unit>(mut pattern: &[U], mut subject: &[U]) -> bool {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches whatever is left.
            return true;
        }
        match match_chunk(chunk, subject) {
            Chunk::Bad => return false,
            Chunk::Matched(left) if left.is_empty() || !pattern.is_empty() => {
                subject = left;
                continue;
            }
            _ => {}
        }
        if star {
            // Let the star eat 1, 2, ... units and try the chunk again.
            for skip in 1..=subject.len() {
                match match_chunk(chunk, &subject[skip..]) {
                    Chunk::Matched(left) => {
                        if pattern.is_empty() && !left.is_empty() {
                            continue;
                        }
                        subject = left;
                        continue 'chunks;
                    }
                    Chunk::Bad => return false,
                    Chunk::NoMatch => {}
                }
            }
        }
        return false;
    }
    subject.is_empty()
}

/// Splits off leading stars (`star` tells whether there were any) and the chunk up to the next
/// unescaped star outside a class.
fn scan_chunk<U: Unit>(pattern: &[U]) -> (bool, &[U], &[U]) {
    let stars = pattern.iter().take_while(|u| u.is(b'*')).count();
    let pattern = &pattern[stars..];
    let mut in_class = false;
    let mut i = 0;
    while i < pattern.len() {
        let u = pattern[i];
        if u.is(b'\\') {
            if i + 1 < pattern.len() {
                i += 1;
            }
        } else if u.is(b'[') {
            in_class = true;
        } else if u.is(b']') {
            in_class = false;
        } else if u.is(b'*') && !in_class {
            break;
        }
        i += 1;
    }
    (stars > 0, &pattern[..i], &pattern[i..])
}

enum Chunk<'a, U> {
    /// The chunk matched a prefix; what is left of the subject.
    Matched(&'a [U]),
    NoMatch,
    /// The pattern ends in a lone `\`: nothing can match.
    Bad,
}

/// Matches `chunk` (no stars) against the start of `subject`.
fn match_chunk<'a, U: Unit>(mut chunk: &[U], mut subject: &'a [U]) -> Chunk<'a, U> {
    while let Some(&first) = chunk.first() {
        let Some((&unit, rest)) = subject.split_first() else {
            return Chunk::NoMatch;
        };
        if first.is(b'[') {
            subject = rest;
            chunk = &chunk[1..];
            let negated = chunk.first().is_some_and(|u| u.is(b'^'));
            if negated {
                chunk = &chunk[1..];
            }
            let mut found = false;
            let mut ranges = 0;
            loop {
                if ranges > 0 && chunk.first().is_some_and(|u| u.is(b']')) {
                    chunk = &chunk[1..];
                    break;
                }
                let Some((lo, after)) = class_char(chunk) else {
                    return Chunk::NoMatch;
                };
                chunk = after;
                let mut hi = lo;
                if chunk.first().is_some_and(|u| u.is(b'-')) {
                    let Some((end, after)) = class_char(&chunk[1..]) else {
                        return Chunk::NoMatch;
                    };
                    hi = end;
                    chunk = after;
                }
                if lo <= unit && unit <= hi {
                    found = true;
                }
                ranges += 1;
            }
            if found == negated {
                return Chunk::NoMatch;
            }
        } else if first.is(b'?') {
            subject = rest;
            chunk = &chunk[1..];
        } else {
            let literal = if first.is(b'\\') {
                chunk = &chunk[1..];
                match chunk.first() {
                    Some(&escaped) => escaped,
                    None => return Chunk::Bad,
                }
            } else {
                first
            };
            if literal != unit {
                return Chunk::NoMatch;
            }
            subject = rest;
            chunk = &chunk[1..];
        }
    }
    Chunk::Matched(subject)
}

/// One (possibly escaped) character of a class, and what follows it. `None` when the class is
/// malformed: a bare `-` or `]`, or nothing after the character (the class is unterminated).
fn class_char<U: Unit>(chunk: &[U]) -> Option<(U, &[U])> {
    let (&first, mut rest) = chunk.split_first()?;
    if first.is(b'-') || first.is(b']') {
        return None;
    }
    let mut c = first;
    if first.is(b'\\') {
        let (&escaped, after) = rest.split_first()?;
        c = escaped;
        rest = after;
    }
    if rest.is_empty() {
        return None;
    }
    Some((c, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Case {
        str: String,
        pattern: String,
        expected: bool,
    }

    #[test]
    fn tsub_glob_cases() {
        let data = include_str!("../tests/data/tsub-glob-cases.jsonl");
        let mut count = 0;
        for line in data.lines().filter(|l| !l.trim().is_empty()) {
            let case: Case = serde_json::from_str(line).expect("case");
            assert_eq!(
                matches(&case.pattern, &case.str),
                case.expected,
                "match({:?}, {:?})",
                case.str,
                case.pattern
            );
            count += 1;
        }
        assert_eq!(count, 57);
    }

    #[test]
    fn star_and_question_mark() {
        assert!(matches(
            "https://*.example.com/*",
            "https://www.example.com/docs"
        ));
        assert!(!matches(
            "https://*.example.com/*",
            "http://www.example.com/docs"
        ));
        assert!(matches("*", ""));
        assert!(matches("", ""));
        assert!(!matches("", "a"));
        assert!(!matches("?", ""));
        assert!(matches("Order *", "Order Completed"));
        assert!(!matches("order *", "Order Completed"), "case-sensitive");
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYYcd"));
    }

    #[test]
    fn units_are_utf16_code_units() {
        assert!(matches("a?b", "aéb"));
        assert!(!matches("a?b", "a😀b"), "an emoji is two units");
        assert!(matches("a??b", "a😀b"));
        assert!(matches("*😀", "ab😀"));
        assert!(matches("[à-ÿ]", "é"));
    }

    #[test]
    fn escapes_and_classes() {
        assert!(matches("\\*", "*"));
        assert!(!matches("\\*", "a"));
        assert!(matches("[*]x", "*x"), "a star inside a class is literal");
        assert!(matches("[a-c][^0-9]", "bz"));
        assert!(!matches("[a-c][^0-9]", "b5"));
        assert!(!matches("ab\\", "ab"), "a trailing backslash never matches");
        assert!(!matches("*\\", "abc"));
        assert!(!matches("[]", "]"));
    }
}
