//! Recursive-descent parser from tokens to the syntax tree.
//!
//! ```text
//! query      := "all" | or
//! or         := and { "or" and }
//! and        := unary { "and" unary }
//! unary      := "!" unary | "(" or ")" | comparison
//! comparison := operand [ ("=" | "!=" | ">" | ">=" | "<" | "<=") operand | "in" list ]
//! operand    := path | string | number | "true" | "false" | "null" | list | call
//! call       := name "(" [ operand { "," operand } ] ")"
//! list       := "[" [ operand { "," operand } ] "]"
//! ```
//!
//! So `!` applies to the comparison, group or `!` that follows it, comparisons bind tighter
//! than `and`, `and` tighter than `or`, and chains read left to right (`a and b and c` is one
//! node). A parenthesized condition is not a comparison operand, and `in` takes a list
//! literal: Segment's browser engine cannot evaluate the other forms. Nesting (parentheses,
//! `!`, lists, calls) is bounded by [`MAX_DEPTH`].

use crate::ast::{Expr, ExprKind, Func, Root, Span};
use crate::error::ParseError;
use crate::lexer::{Token, TokenKind, tokenize};

/// Deepest nesting of parentheses, `!`, lists and calls accepted.
pub const MAX_DEPTH: usize = 64;

/// Parses FQL text into its tree.
pub fn parse(source: &str) -> Result<Root, ParseError> {
    let tokens = tokenize(source)?;
    if is_all(&tokens) {
        return Ok(Root::All);
    }
    let mut parser = Parser {
        source,
        tokens,
        pos: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    if parser.peek().kind != TokenKind::End {
        return Err(parser.unexpected("expected 'and', 'or' or end of input"));
    }
    Ok(Root::Expr(expr))
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // `tokenize` always ends the list with `End`, and `advance` never moves past it.
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let token = self.peek().clone();
        if token.kind != TokenKind::End {
            self.pos += 1;
        }
        token
    }

    /// `"{expected}, found {next token}"` at the next token.
    fn unexpected(&self, expected: &str) -> ParseError {
        let next = self.peek();
        ParseError::new(
            self.source,
            next.span.start,
            format!("{expected}, found {}", next.describe(self.source)),
        )
    }

    fn enter(&mut self, at: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                self.source,
                at,
                format!("query is nested too deeply (more than {MAX_DEPTH} levels)"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.chain(TokenKind::Or, Parser::and, ExprKind::Or)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        self.chain(TokenKind::And, Parser::unary, ExprKind::And)
    }

    fn chain(
        &mut self,
        separator: TokenKind,
        item: fn(&mut Self) -> Result<Expr, ParseError>,
        build: fn(Vec<Expr>) -> ExprKind,
    ) -> Result<Expr, ParseError> {
        let first = item(self)?;
        if self.peek().kind != separator {
            return Ok(first);
        }
        let start = first.span.start;
        let mut items = vec![first];
        while self.peek().kind == separator {
            self.advance();
            items.push(item(self)?);
        }
        let end = items.last().map_or(start, |e| e.span.end);
        Ok(Expr::new(build(items), Span { start, end }))
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        match token.kind {
            TokenKind::Bang => {
                self.enter(token.span.start)?;
                self.advance();
                let inner = self.unary()?;
                self.leave();
                let span = Span {
                    start: token.span.start,
                    end: inner.span.end,
                };
                Ok(Expr::new(ExprKind::Not(Box::new(inner)), span))
            }
            TokenKind::LParen => {
                self.enter(token.span.start)?;
                self.advance();
                let inner = self.or()?;
                if self.peek().kind != TokenKind::RParen {
                    return Err(self.unexpected(&format!(
                        "expected ')' to close the '(' at {}",
                        token.span.start
                    )));
                }
                self.advance();
                self.leave();
                if is_comparison(&self.peek().kind) {
                    return Err(
                        self.unexpected("expected 'and' or 'or' after a parenthesized condition")
                    );
                }
                Ok(inner)
            }
            _ => self.comparison(),
        }
    }

    fn comparison(&mut self) -> Result<Expr, ParseError> {
        let left = self.operand("expected a condition")?;
        let op = match self.peek().kind {
            TokenKind::Compare(op) => op,
            TokenKind::In => {
                self.advance();
                if self.peek().kind != TokenKind::LBracket {
                    return Err(self.unexpected("expected a list after 'in'"));
                }
                let list = self.operand("expected a list after 'in'")?;
                let span = Span {
                    start: left.span.start,
                    end: list.span.end,
                };
                let ExprKind::List(items) = list.kind else {
                    return Err(self.unexpected("expected a list after 'in'"));
                };
                return Ok(Expr::new(ExprKind::In(Box::new(left), items), span));
            }
            _ => return Ok(left),
        };
        self.advance();
        let right = self.operand(&format!("expected a value after '{}'", op.as_str()))?;
        let span = Span {
            start: left.span.start,
            end: right.span.end,
        };
        Ok(Expr::new(
            ExprKind::Compare(op, Box::new(left), Box::new(right)),
            span,
        ))
    }

    fn operand(&mut self, expected: &str) -> Result<Expr, ParseError> {
        let token = self.peek().clone();
        let kind = match token.kind {
            TokenKind::Str(text) => ExprKind::Str(text),
            TokenKind::Num(n) => ExprKind::Num(n),
            TokenKind::True => ExprKind::Bool(true),
            TokenKind::False => ExprKind::Bool(false),
            TokenKind::Null => ExprKind::Null,
            TokenKind::LBracket => return self.list(token.span),
            TokenKind::Path { segments, escaped } => {
                let call =
                    self.tokens.get(self.pos + 1).map(|t| &t.kind) == Some(&TokenKind::LParen);
                if call {
                    return self.call(&segments, escaped, token.span);
                }
                ExprKind::Path(segments)
            }
            _ => return Err(self.unexpected(expected)),
        };
        self.advance();
        Ok(Expr::new(kind, token.span))
    }

    /// `[a, b]`, starting at the `[`.
    fn list(&mut self, open: Span) -> Result<Expr, ParseError> {
        self.enter(open.start)?;
        self.advance();
        let items = self.items(TokenKind::RBracket, "the list", "']'")?;
        let end = self.advance().span.end;
        self.leave();
        Ok(Expr::new(
            ExprKind::List(items),
            Span {
                start: open.start,
                end,
            },
        ))
    }

    /// `name(args)`, starting at the name.
    fn call(&mut self, segments: &[String], escaped: bool, name: Span) -> Result<Expr, ParseError> {
        let func = match segments {
            [single] if !escaped => Func::from_name(single),
            _ => None,
        };
        let Some(func) = func else {
            let text = self.source.get(name.start..name.end).unwrap_or("");
            return Err(ParseError::new(
                self.source,
                name.start,
                format!("unknown function '{text}'"),
            ));
        };
        self.enter(name.start)?;
        self.advance();
        self.advance();
        let args = self.items(
            TokenKind::RParen,
            &format!("the arguments of {}()", func.name()),
            "')'",
        )?;
        let end = self.advance().span.end;
        self.leave();
        if args.len() != func.arity() {
            let plural = if func.arity() == 1 { "" } else { "s" };
            return Err(ParseError::new(
                self.source,
                name.start,
                format!(
                    "{}() takes {} argument{plural}, found {}",
                    func.name(),
                    func.arity(),
                    args.len()
                ),
            ));
        }
        Ok(Expr::new(
            ExprKind::Call(func, args),
            Span {
                start: name.start,
                end,
            },
        ))
    }

    /// Comma-separated operands up to (not including) `close`.
    fn items(
        &mut self,
        close: TokenKind,
        what: &str,
        close_text: &str,
    ) -> Result<Vec<Expr>, ParseError> {
        let mut items = Vec::new();
        if self.peek().kind == close {
            return Ok(items);
        }
        loop {
            let expected = if items.is_empty() {
                format!("expected a value or {close_text} in {what}")
            } else {
                format!("expected a value after ',' in {what}")
            };
            items.push(self.operand(&expected)?);
            match self.peek().kind {
                TokenKind::Comma => {
                    self.advance();
                }
                ref kind if *kind == close => return Ok(items),
                _ => {
                    return Err(self.unexpected(&format!("expected ',' or {close_text} in {what}")));
                }
            }
        }
    }
}

/// Whether the tokens are the single unescaped word `all`.
fn is_all(tokens: &[Token]) -> bool {
    match tokens {
        [first, end] => {
            end.kind == TokenKind::End
                && matches!(
                    &first.kind,
                    TokenKind::Path { segments, escaped: false }
                        if segments.len() == 1 && segments[0] == "all"
                )
        }
        _ => false,
    }
}

fn is_comparison(kind: &TokenKind) -> bool {
    matches!(kind, TokenKind::Compare(_) | TokenKind::In)
}

#[cfg(test)]
mod tests;
