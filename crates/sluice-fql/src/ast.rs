//! The syntax tree of an FQL query, with byte spans, and its canonical printing.
//!
//! Printing (`Display`) writes FQL that parses back to the same tree: strings in double
//! quotes, paths with `\` before every character outside `[A-Za-z0-9_-]`, and parentheses only
//! where the tree needs them.

use std::fmt::{self, Write as _};

use crate::lexer::is_segment_char;

/// Bytes `start..end` of the query text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A whole query: `all`, or a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// `all`: every event matches.
    All,
    /// Any other query.
    Expr(Expr),
}

/// A node of the tree and where it came from. Two expressions are equal when their trees are
/// (spans are ignored).
#[derive(Debug, Clone)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where it stands in the query text (for a parenthesized group: the inside).
    pub span: Span,
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        self.kind == other.kind
    }
}

impl Expr {
    /// A node at `span`.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }
}

/// The kinds of nodes.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// `a or b or ...` (two or more items).
    Or(Vec<Expr>),
    /// `a and b and ...` (two or more items).
    And(Vec<Expr>),
    /// `!a`
    Not(Box<Expr>),
    /// `a = b`, `a > b`...
    Compare(CompareOp, Box<Expr>, Box<Expr>),
    /// `a in [b, c]`: the right side is always a list literal.
    In(Box<Expr>, Vec<Expr>),
    /// `name(args)`
    Call(Func, Vec<Expr>),
    /// A field of the event, as segments (`context.library.name`).
    Path(Vec<String>),
    /// A string literal.
    Str(String),
    /// A number literal.
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`
    Null,
    /// `[a, b]`
    List(Vec<Expr>),
}

/// The comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CompareOp {
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `>`
    Gt,
    /// `>=`
    GtEq,
    /// `<`
    Lt,
    /// `<=`
    LtEq,
}

impl CompareOp {
    /// The operator as written (and as tsub's IR names it).
    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::NotEq => "!=",
            CompareOp::Gt => ">",
            CompareOp::GtEq => ">=",
            CompareOp::Lt => "<",
            CompareOp::LtEq => "<=",
        }
    }
}

/// The functions FQL knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    /// `contains(string, substring)`
    Contains,
    /// `match(string, glob)`
    Match,
    /// `length(list or string)`
    Length,
    /// `lowercase(string)`
    Lowercase,
    /// `uppercase(string)`
    Uppercase,
    /// `snakecase(string)`
    Snakecase,
    /// `kebabcase(string)`
    Kebabcase,
    /// `titlecase(string)`
    Titlecase,
    /// `typeof(value)`
    Typeof,
    /// `bool(value)`
    Bool,
    /// `string(value)`
    String,
    /// `number(value)`
    Number,
    /// `semver(version, operator, version)`
    Semver,
}

impl Func {
    /// Every function, for lookups and tests.
    pub const ALL: [Func; 13] = [
        Func::Contains,
        Func::Match,
        Func::Length,
        Func::Lowercase,
        Func::Uppercase,
        Func::Snakecase,
        Func::Kebabcase,
        Func::Titlecase,
        Func::Typeof,
        Func::Bool,
        Func::String,
        Func::Number,
        Func::Semver,
    ];

    /// The function of that name (names are lowercase and case-sensitive).
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The function's name as written (and as tsub's IR names it).
    pub fn name(self) -> &'static str {
        match self {
            Func::Contains => "contains",
            Func::Match => "match",
            Func::Length => "length",
            Func::Lowercase => "lowercase",
            Func::Uppercase => "uppercase",
            Func::Snakecase => "snakecase",
            Func::Kebabcase => "kebabcase",
            Func::Titlecase => "titlecase",
            Func::Typeof => "typeof",
            Func::Bool => "bool",
            Func::String => "string",
            Func::Number => "number",
            Func::Semver => "semver",
        }
    }

    /// How many arguments the function takes.
    pub fn arity(self) -> usize {
        match self {
            Func::Contains | Func::Match => 2,
            Func::Semver => 3,
            _ => 1,
        }
    }

    /// Whether Segment's browser engine (`@segment/tsub`) can evaluate the function. The others
    /// are evaluated by Sluice only.
    pub fn in_tsub(self) -> bool {
        matches!(
            self,
            Func::Contains
                | Func::Match
                | Func::Length
                | Func::Lowercase
                | Func::Typeof
                | Func::Semver
        )
    }
}

impl fmt::Display for Root {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Root::All => f.write_str("all"),
            Root::Expr(expr) => expr.fmt(f),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ExprKind::Or(items) => join(f, items, " or ", |e| matches!(e, ExprKind::Or(_))),
            ExprKind::And(items) => join(f, items, " and ", |e| {
                matches!(e, ExprKind::Or(_) | ExprKind::And(_))
            }),
            ExprKind::Not(inner) => {
                f.write_char('!')?;
                match inner.kind {
                    ExprKind::Or(_)
                    | ExprKind::And(_)
                    | ExprKind::Compare(..)
                    | ExprKind::In(..) => write!(f, "({inner})"),
                    _ => inner.fmt(f),
                }
            }
            ExprKind::Compare(op, left, right) => write!(f, "{left} {} {right}", op.as_str()),
            ExprKind::In(item, list) => {
                write!(f, "{item} in ")?;
                write_list(f, list)
            }
            ExprKind::Call(func, args) => {
                f.write_str(func.name())?;
                f.write_char('(')?;
                write_items(f, args)?;
                f.write_char(')')
            }
            ExprKind::Path(segments) => write_path(f, segments),
            ExprKind::Str(text) => write_string(f, text),
            ExprKind::Num(n) => write!(f, "{n}"),
            ExprKind::Bool(b) => write!(f, "{b}"),
            ExprKind::Null => f.write_str("null"),
            ExprKind::List(items) => write_list(f, items),
        }
    }
}

fn join(
    f: &mut fmt::Formatter<'_>,
    items: &[Expr],
    separator: &str,
    needs_parens: impl Fn(&ExprKind) -> bool,
) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(separator)?;
        }
        if needs_parens(&item.kind) {
            write!(f, "({item})")?;
        } else {
            write!(f, "{item}")?;
        }
    }
    Ok(())
}

fn write_list(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    f.write_char('[')?;
    write_items(f, items)?;
    f.write_char(']')
}

fn write_items(f: &mut fmt::Formatter<'_>, items: &[Expr]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{item}")?;
    }
    Ok(())
}

fn write_path(f: &mut fmt::Formatter<'_>, segments: &[String]) -> fmt::Result {
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            f.write_char('.')?;
        }
        // An unescaped word that reads as a keyword (or as `all`) is escaped to stay a path.
        let keyword = segments.len() == 1
            && matches!(
                segment.as_str(),
                "and" | "or" | "in" | "true" | "false" | "null" | "all"
            );
        for (j, c) in segment.chars().enumerate() {
            let starts_path = i == 0 && j == 0;
            let plain = if starts_path {
                c.is_ascii_alphabetic() || c == '_'
            } else {
                is_segment_char(c)
            };
            if !plain || (keyword && j == 0) {
                f.write_char('\\')?;
            }
            f.write_char(c)?;
        }
    }
    Ok(())
}

fn write_string(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            c if u32::from(c) < 0x20 => write!(f, "\\u{:04x}", u32::from(c))?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}
