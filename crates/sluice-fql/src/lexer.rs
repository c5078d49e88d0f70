//! Turning FQL text into tokens, each with its byte span.
//!
//! Paths are dot-separated segments of `[A-Za-z0-9_-]`; any other character is written with a
//! `\` before it (`properties.product\ 1.price`). A path starts with a letter, `_` or `\`, so
//! `-1` and `1` are numbers. Strings take single or double quotes and JSON's escapes plus `\'`.
//! Numbers are an optional sign, digits, and at most one `.` followed by digits.

use crate::ast::{CompareOp, Span};
use crate::error::ParseError;

/// Longest query accepted, in bytes (Segment's limit is 5 KB per filter).
pub const MAX_QUERY_BYTES: usize = 5 * 1024;

/// What a token is.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A path (or a function name), split into segments, escapes resolved. `escaped` tells
    /// whether any `\` was used: an escaped word is never a keyword.
    Path {
        /// The segments, in order.
        segments: Vec<String>,
        /// Whether a `\` escape occurred.
        escaped: bool,
    },
    /// A quoted string, escapes resolved.
    Str(String),
    /// A number.
    Num(f64),
    /// `and`
    And,
    /// `or`
    Or,
    /// `in`
    In,
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
    /// `=`, `!=`, `>`, `>=`, `<`, `<=`
    Compare(CompareOp),
    /// `!`
    Bang,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `,`
    Comma,
    /// The end of the query.
    End,
}

/// A token and where it stands in the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    /// What the token is.
    pub kind: TokenKind,
    /// Its bytes in the query.
    pub span: Span,
}

impl Token {
    /// How an error message names this token: `end of input`, `a string`, `'and'`...
    pub fn describe(&self, source: &str) -> String {
        let text = source.get(self.span.start..self.span.end).unwrap_or("");
        match &self.kind {
            TokenKind::End => "end of input".to_owned(),
            TokenKind::Str(_) => "a string".to_owned(),
            TokenKind::Num(_) => format!("number {text}"),
            _ => {
                const MAX: usize = 32;
                if text.chars().count() > MAX {
                    let short: String = text.chars().take(MAX).collect();
                    format!("'{short}…'")
                } else {
                    format!("'{text}'")
                }
            }
        }
    }
}

/// Splits `source` into tokens; the last one is always [`TokenKind::End`].
pub fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    if source.len() > MAX_QUERY_BYTES {
        return Err(ParseError::new(
            source,
            MAX_QUERY_BYTES,
            format!("query is longer than {MAX_QUERY_BYTES} bytes"),
        ));
    }
    let mut lexer = Lexer { source, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let end = token.kind == TokenKind::End;
        tokens.push(token);
        if end {
            return Ok(tokens);
        }
    }
}

/// Whether `c` may stand unescaped inside a path segment.
pub(crate) fn is_segment_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

struct Lexer<'a> {
    source: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.source[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.source[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&self, position: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(self.source, position, message)
    }

    fn next_token(&mut self) -> Result<Token, ParseError> {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.pos += 1;
        }
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Ok(self.token(TokenKind::End, start));
        };
        let kind = match c {
            '"' | '\'' => self.string()?,
            '0'..='9' => self.number()?,
            '-' | '+' if self.peek_second().is_some_and(|d| d.is_ascii_digit()) => self.number()?,
            'a'..='z' | 'A'..='Z' | '_' | '\\' => self.path()?,
            '=' => self.symbol(TokenKind::Compare(CompareOp::Eq), 1),
            '!' if self.peek_second() == Some('=') => {
                self.symbol(TokenKind::Compare(CompareOp::NotEq), 2)
            }
            '!' => self.symbol(TokenKind::Bang, 1),
            '>' if self.peek_second() == Some('=') => {
                self.symbol(TokenKind::Compare(CompareOp::GtEq), 2)
            }
            '>' => self.symbol(TokenKind::Compare(CompareOp::Gt), 1),
            '<' if self.peek_second() == Some('=') => {
                self.symbol(TokenKind::Compare(CompareOp::LtEq), 2)
            }
            '<' => self.symbol(TokenKind::Compare(CompareOp::Lt), 1),
            '(' => self.symbol(TokenKind::LParen, 1),
            ')' => self.symbol(TokenKind::RParen, 1),
            '[' => self.symbol(TokenKind::LBracket, 1),
            ']' => self.symbol(TokenKind::RBracket, 1),
            ',' => self.symbol(TokenKind::Comma, 1),
            other => {
                return Err(self.error(start, format!("unexpected character {other:?}")));
            }
        };
        Ok(self.token(kind, start))
    }

    fn token(&self, kind: TokenKind, start: usize) -> Token {
        Token {
            kind,
            span: Span {
                start,
                end: self.pos,
            },
        }
    }

    fn symbol(&mut self, kind: TokenKind, len: usize) -> TokenKind {
        self.pos += len;
        kind
    }

    fn number(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        self.digits();
        if self.peek() == Some('.') {
            self.pos += 1;
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(self.error(self.pos, "expected a digit after '.' in a number"));
            }
            self.digits();
        }
        if let Some(c) = self.peek().filter(|c| is_segment_char(*c) || *c == '.') {
            return Err(self.error(
                self.pos,
                format!("unexpected character {c:?} after a number"),
            ));
        }
        let text = self.source[start..self.pos].trim_start_matches('+');
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(TokenKind::Num(value)),
            _ => Err(self.error(start, "number out of range")),
        }
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn path(&mut self) -> Result<TokenKind, ParseError> {
        let mut segments = Vec::new();
        let mut segment = String::new();
        let mut escaped = false;
        loop {
            match self.peek() {
                Some(c) if is_segment_char(c) => {
                    segment.push(c);
                    self.pos += 1;
                }
                Some('\\') => {
                    let at = self.pos;
                    self.pos += 1;
                    match self.bump() {
                        None => {
                            return Err(self.error(at, "expected a character after '\\' in a path"));
                        }
                        Some('.') => {
                            return Err(self.error(
                                at,
                                "a path segment cannot contain '.': filter engines split paths on '.'",
                            ));
                        }
                        Some(c) => segment.push(c),
                    }
                    escaped = true;
                }
                Some('.') => {
                    self.pos += 1;
                    if !self.peek().is_some_and(|c| is_segment_char(c) || c == '\\') {
                        return Err(self.error(self.pos, "expected a path segment after '.'"));
                    }
                    segments.push(std::mem::take(&mut segment));
                }
                _ => break,
            }
        }
        segments.push(segment);
        if !escaped && segments.len() == 1 {
            let keyword = match segments[0].as_str() {
                "and" => Some(TokenKind::And),
                "or" => Some(TokenKind::Or),
                "in" => Some(TokenKind::In),
                "true" => Some(TokenKind::True),
                "false" => Some(TokenKind::False),
                "null" => Some(TokenKind::Null),
                _ => None,
            };
            if let Some(keyword) = keyword {
                return Ok(keyword);
            }
        }
        Ok(TokenKind::Path { segments, escaped })
    }

    fn string(&mut self) -> Result<TokenKind, ParseError> {
        let start = self.pos;
        let quote = self.bump();
        let mut text = String::new();
        loop {
            let at = self.pos;
            match self.bump() {
                None => return Err(self.error(start, "unterminated string")),
                Some(c) if Some(c) == quote => return Ok(TokenKind::Str(text)),
                Some('\\') => {
                    let c = match self.bump() {
                        None => return Err(self.error(start, "unterminated string")),
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some(c @ ('\\' | '"' | '\'' | '/')) => c,
                        Some('u') => self.unicode_escape(at)?,
                        Some(other) => {
                            return Err(
                                self.error(at, format!("invalid escape '\\{other}' in a string"))
                            );
                        }
                    };
                    text.push(c);
                }
                Some(c) => text.push(c),
            }
        }
    }

    /// After `\u`: four hex digits, and a second `\uXXXX` when the first is a high surrogate.
    fn unicode_escape(&mut self, at: usize) -> Result<char, ParseError> {
        let high = self.hex4(at)?;
        let code = match high {
            0xD800..=0xDBFF => {
                if !self.source[self.pos..].starts_with("\\u") {
                    return Err(self.error(at, "unpaired surrogate in a '\\u' escape"));
                }
                self.pos += 2;
                let low = self.hex4(at)?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    return Err(self.error(at, "unpaired surrogate in a '\\u' escape"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                return Err(self.error(at, "unpaired surrogate in a '\\u' escape"));
            }
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error(at, "invalid '\\u' escape"))
    }

    fn hex4(&mut self, at: usize) -> Result<u32, ParseError> {
        let digits = self.source.get(self.pos..self.pos + 4).unwrap_or("");
        if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.error(at, "expected four hex digits after '\\u'"));
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| self.error(at, "invalid '\\u' escape"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<TokenKind> {
        tokenize(source)
            .expect("lexes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    fn path(segments: &[&str], escaped: bool) -> TokenKind {
        TokenKind::Path {
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            escaped,
        }
    }

    fn error(source: &str) -> ParseError {
        tokenize(source).expect_err("refused")
    }

    #[test]
    fn operators_and_punctuation() {
        assert_eq!(
            kinds("= != > >= < <= ! ( ) [ ] ,"),
            vec![
                TokenKind::Compare(CompareOp::Eq),
                TokenKind::Compare(CompareOp::NotEq),
                TokenKind::Compare(CompareOp::Gt),
                TokenKind::Compare(CompareOp::GtEq),
                TokenKind::Compare(CompareOp::Lt),
                TokenKind::Compare(CompareOp::LtEq),
                TokenKind::Bang,
                TokenKind::LParen,
                TokenKind::RParen,
                TokenKind::LBracket,
                TokenKind::RBracket,
                TokenKind::Comma,
                TokenKind::End,
            ]
        );
        assert_eq!(kinds("a!=b")[1], TokenKind::Compare(CompareOp::NotEq));
        assert_eq!(kinds("!a")[0], TokenKind::Bang);
    }

    #[test]
    fn keywords_only_when_bare_and_single_segment() {
        assert_eq!(
            kinds("and or in true false null"),
            vec![
                TokenKind::And,
                TokenKind::Or,
                TokenKind::In,
                TokenKind::True,
                TokenKind::False,
                TokenKind::Null,
                TokenKind::End
            ]
        );
        assert_eq!(kinds("\\true")[0], path(&["true"], true));
        assert_eq!(kinds("a.and")[0], path(&["a", "and"], false));
        assert_eq!(kinds("android")[0], path(&["android"], false));
        assert_eq!(kinds("True")[0], path(&["True"], false));
    }

    #[test]
    fn paths_split_on_dots_and_resolve_escapes() {
        assert_eq!(
            kinds("context.library.version")[0],
            path(&["context", "library", "version"], false)
        );
        assert_eq!(
            kinds("properties.product\\ 1.price")[0],
            path(&["properties", "product 1", "price"], true)
        );
        assert_eq!(
            kinds("items.0.sku-id")[0],
            path(&["items", "0", "sku-id"], false)
        );
        assert_eq!(kinds("_x")[0], path(&["_x"], false));
        assert_eq!(kinds("a\\é")[0], path(&["aé"], true));
    }

    #[test]
    fn path_errors_point_at_the_fault() {
        assert_eq!(error("a.").position, 2);
        assert_eq!(error("a..b").message, "expected a path segment after '.'");
        assert_eq!(error("a\\").position, 1);
        let dot = error("a\\.b");
        assert_eq!(dot.position, 1);
        assert!(dot.message.contains("cannot contain '.'"), "{dot}");
        assert_eq!(error("properties.prénom").position, 13);
    }

    #[test]
    fn numbers() {
        assert_eq!(kinds("12")[0], TokenKind::Num(12.0));
        assert_eq!(kinds("-1.5")[0], TokenKind::Num(-1.5));
        assert_eq!(kinds("+3")[0], TokenKind::Num(3.0));
        assert_eq!(kinds("0.25")[0], TokenKind::Num(0.25));
        assert_eq!(kinds("a=-1")[2], TokenKind::Num(-1.0));
        assert_eq!(
            error("1.").message,
            "expected a digit after '.' in a number"
        );
        assert_eq!(error("1.2.3").position, 3);
        assert_eq!(
            error("12abc").message,
            "unexpected character 'a' after a number"
        );
        assert_eq!(error(&"9".repeat(400)).message, "number out of range");
        assert_eq!(error("- 1").message, "unexpected character '-'");
    }

    #[test]
    fn strings_take_both_quotes_and_json_escapes() {
        assert_eq!(kinds("'it''s'")[0], TokenKind::Str("it".into()));
        assert_eq!(
            kinds(r#""a\"b\n\t\\\/""#)[0],
            TokenKind::Str("a\"b\n\t\\/".into())
        );
        assert_eq!(kinds(r"'don\'t'")[0], TokenKind::Str("don't".into()));
        assert_eq!(
            kinds(r#""\u00e9\ud83d\ude00""#)[0],
            TokenKind::Str("é😀".into())
        );
        assert_eq!(kinds("\"ア\"")[0], TokenKind::Str("ア".into()));
    }

    #[test]
    fn string_errors() {
        let e = error("a = \"abc");
        assert_eq!((e.position, e.message.as_str()), (4, "unterminated string"));
        let e = error(r#"a = "x\q""#);
        assert_eq!(
            (e.position, e.message.as_str()),
            (6, "invalid escape '\\q' in a string")
        );
        assert_eq!(
            error(r#""\u12""#).message,
            "expected four hex digits after '\\u'"
        );
        assert_eq!(
            error(r#""\ud800""#).message,
            "unpaired surrogate in a '\\u' escape"
        );
        assert_eq!(
            error(r#""\udc00""#).message,
            "unpaired surrogate in a '\\u' escape"
        );
        assert_eq!(
            error(r#""\ud800\u0041""#).message,
            "unpaired surrogate in a '\\u' escape"
        );
    }

    #[test]
    fn unexpected_characters_are_named() {
        let e = error("a = 1 & b");
        assert_eq!(
            (e.position, e.message.as_str()),
            (6, "unexpected character '&'")
        );
        assert_eq!(
            error("a = 1\n  $").to_string(),
            "at 8: unexpected character '$'"
        );
        assert_eq!(error("a = 1\n  $").line, 2);
    }

    #[test]
    fn queries_over_the_limit_are_refused_before_lexing() {
        let long = format!("a = \"{}\"", "x".repeat(MAX_QUERY_BYTES));
        let e = error(&long);
        assert_eq!(e.position, MAX_QUERY_BYTES);
        assert_eq!(e.message, "query is longer than 5120 bytes");
        let fits = format!("a = \"{}\"", "x".repeat(MAX_QUERY_BYTES - 6));
        assert_eq!(fits.len(), MAX_QUERY_BYTES);
        assert!(tokenize(&fits).is_ok());
    }

    #[test]
    fn spans_cover_the_token_text() {
        let tokens = tokenize("  event != 'x'").expect("lexes");
        let spans: Vec<(usize, usize)> =
            tokens.iter().map(|t| (t.span.start, t.span.end)).collect();
        assert_eq!(spans, vec![(2, 7), (8, 10), (11, 14), (14, 14)]);
        assert_eq!(tokens[0].describe("  event != 'x'"), "'event'");
        assert_eq!(tokens[2].describe("  event != 'x'"), "a string");
        assert_eq!(tokens[3].describe("  event != 'x'"), "end of input");
    }
}
