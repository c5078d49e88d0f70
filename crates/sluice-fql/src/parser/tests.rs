use proptest::prelude::*;

use super::*;
use crate::ast::CompareOp;
use crate::lexer::MAX_QUERY_BYTES;

fn expr(source: &str) -> Expr {
    match parse(source) {
        Ok(Root::Expr(expr)) => expr,
        other => panic!("{source:?} gave {other:?}"),
    }
}

fn error(source: &str) -> ParseError {
    parse(source).expect_err("refused")
}

fn path(p: &str) -> Expr {
    Expr::new(
        ExprKind::Path(p.split('.').map(str::to_owned).collect()),
        Span::default(),
    )
}

fn node(kind: ExprKind) -> Expr {
    Expr::new(kind, Span::default())
}

fn num(n: f64) -> Expr {
    node(ExprKind::Num(n))
}

fn string(s: &str) -> Expr {
    node(ExprKind::Str(s.to_owned()))
}

fn cmp(op: CompareOp, left: Expr, right: Expr) -> Expr {
    node(ExprKind::Compare(op, Box::new(left), Box::new(right)))
}

#[test]
fn all_alone_matches_everything_and_is_a_path_elsewhere() {
    assert_eq!(parse("all"), Ok(Root::All));
    assert_eq!(parse("  all\n"), Ok(Root::All));
    assert_eq!(expr("all = 1"), cmp(CompareOp::Eq, path("all"), num(1.0)));
    assert_eq!(expr("\\all"), path("all"));
    assert_eq!(expr("(all)"), path("all"));
}

#[test]
fn every_comparison_operator() {
    for (text, op) in [
        ("=", CompareOp::Eq),
        ("!=", CompareOp::NotEq),
        (">", CompareOp::Gt),
        (">=", CompareOp::GtEq),
        ("<", CompareOp::Lt),
        ("<=", CompareOp::LtEq),
    ] {
        assert_eq!(
            expr(&format!("properties.total {text} 10.5")),
            cmp(op, path("properties.total"), num(10.5))
        );
    }
}

#[test]
fn literals() {
    assert_eq!(expr("'a'"), string("a"));
    assert_eq!(expr("true"), node(ExprKind::Bool(true)));
    assert_eq!(expr("false"), node(ExprKind::Bool(false)));
    assert_eq!(expr("null"), node(ExprKind::Null));
    assert_eq!(expr("-3"), num(-3.0));
    assert_eq!(
        expr("[1, 'a', [null]]"),
        node(ExprKind::List(vec![
            num(1.0),
            string("a"),
            node(ExprKind::List(vec![node(ExprKind::Null)]))
        ]))
    );
    assert_eq!(expr("[]"), node(ExprKind::List(vec![])));
}

#[test]
fn precedence_not_then_comparison_then_and_then_or() {
    let a = cmp(CompareOp::Eq, path("a"), num(1.0));
    let b = cmp(CompareOp::Eq, path("b"), num(2.0));
    let c = path("c");
    assert_eq!(
        expr("a = 1 or b = 2 and c"),
        node(ExprKind::Or(vec![
            a.clone(),
            node(ExprKind::And(vec![b.clone(), c.clone()]))
        ]))
    );
    assert_eq!(
        expr("(a = 1 or b = 2) and c"),
        node(ExprKind::And(vec![
            node(ExprKind::Or(vec![a.clone(), b.clone()])),
            c.clone()
        ]))
    );
    assert_eq!(
        expr("!a = 1 and c"),
        node(ExprKind::And(vec![
            node(ExprKind::Not(Box::new(a.clone()))),
            c.clone()
        ]))
    );
    assert_eq!(
        expr("!!c"),
        node(ExprKind::Not(Box::new(node(ExprKind::Not(Box::new(
            c.clone()
        ))))))
    );
    assert_eq!(
        expr("a = 1 and b = 2 and c"),
        node(ExprKind::And(vec![a, b, c])),
        "chains are flat and keep their order"
    );
}

#[test]
fn in_takes_a_list() {
    assert_eq!(
        expr("event in ['A', \"B\"]"),
        node(ExprKind::In(
            Box::new(path("event")),
            vec![string("A"), string("B")]
        ))
    );
    let e = error("'dark-mode' in properties.features");
    assert_eq!(e.position, 15);
    assert_eq!(
        e.message,
        "expected a list after 'in', found 'properties.features'"
    );
}

#[test]
fn calls_check_name_and_arity() {
    assert_eq!(
        expr("contains(email, '.com')"),
        node(ExprKind::Call(
            Func::Contains,
            vec![path("email"), string(".com")]
        ))
    );
    assert_eq!(
        expr("length(lowercase(a)) > 2"),
        cmp(
            CompareOp::Gt,
            node(ExprKind::Call(
                Func::Length,
                vec![node(ExprKind::Call(Func::Lowercase, vec![path("a")]))]
            )),
            num(2.0)
        )
    );
    for func in Func::ALL {
        let args = vec!["x"; func.arity()].join(", ");
        assert!(
            parse(&format!("{}({args})", func.name())).is_ok(),
            "{}",
            func.name()
        );
    }
    let e = error("a = 1 and lengthy(b) = 2");
    assert_eq!(
        (e.position, e.message.as_str()),
        (10, "unknown function 'lengthy'")
    );
    assert_eq!(error("a.b(1)").message, "unknown function 'a.b'");
    assert_eq!(
        error("Contains(a, b)").message,
        "unknown function 'Contains'"
    );
    let e = error("x or contains(email)");
    assert_eq!(
        (e.position, e.message.as_str()),
        (5, "contains() takes 2 arguments, found 1")
    );
    assert_eq!(
        error("typeof()").message,
        "typeof() takes 1 argument, found 0"
    );
    assert_eq!(
        error("match(a, 'x', 'y')").message,
        "match() takes 2 arguments, found 3"
    );
}

#[test]
fn error_positions_and_messages() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "properties.a =",
            14,
            "expected a value after '=', found end of input",
        ),
        (
            "properties.a = ",
            15,
            "expected a value after '=', found end of input",
        ),
        ("a >= )", 5, "expected a value after '>=', found ')'"),
        ("", 0, "expected a condition, found end of input"),
        ("   ", 3, "expected a condition, found end of input"),
        ("a = 1 and", 9, "expected a condition, found end of input"),
        ("a = 1 or or", 9, "expected a condition, found 'or'"),
        (
            "a = 1 b = 2",
            6,
            "expected 'and', 'or' or end of input, found 'b'",
        ),
        (
            "a = 1)",
            5,
            "expected 'and', 'or' or end of input, found ')'",
        ),
        (
            "a = 1 = 2",
            6,
            "expected 'and', 'or' or end of input, found '='",
        ),
        (
            "(a = 1",
            6,
            "expected ')' to close the '(' at 0, found end of input",
        ),
        (
            "x and (a = 1 'q'",
            13,
            "expected ')' to close the '(' at 6, found a string",
        ),
        (
            "(a) = 1",
            4,
            "expected 'and' or 'or' after a parenthesized condition, found '='",
        ),
        (
            "[1, 2",
            5,
            "expected ',' or ']' in the list, found end of input",
        ),
        (
            "[1,]",
            3,
            "expected a value after ',' in the list, found ']'",
        ),
        ("[,]", 1, "expected a value or ']' in the list, found ','"),
        (
            "contains(a b)",
            11,
            "expected ',' or ')' in the arguments of contains(), found 'b'",
        ),
        ("a in 1", 5, "expected a list after 'in', found number 1"),
        ("! ", 2, "expected a condition, found end of input"),
        ("a = and", 4, "expected a value after '=', found 'and'"),
    ];
    for (source, position, message) in cases {
        let e = error(source);
        assert_eq!(
            (e.position, e.message.as_str()),
            (*position, *message),
            "{source:?}"
        );
        assert_eq!(e.to_string(), format!("at {position}: {message}"));
    }
}

#[test]
fn spans_point_into_the_source() {
    let source = "  event = 'x' and contains(a, \"b\")";
    let e = expr(source);
    assert_eq!((e.span.start, e.span.end), (2, source.len()));
    let ExprKind::And(items) = &e.kind else {
        panic!("and");
    };
    assert_eq!(
        &source[items[0].span.start..items[0].span.end],
        "event = 'x'"
    );
    assert_eq!(
        &source[items[1].span.start..items[1].span.end],
        "contains(a, \"b\")"
    );
}

#[test]
fn nesting_is_bounded() {
    let fits = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
    assert_eq!(expr(&fits), path("a"));
    let deep = format!(
        "{}a{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    let e = error(&deep);
    assert_eq!(e.position, MAX_DEPTH);
    assert_eq!(
        e.message,
        "query is nested too deeply (more than 64 levels)"
    );
    for hostile in [
        "(".repeat(5000),
        "!".repeat(5000),
        "[".repeat(5000),
        "length(".repeat(700),
        format!("a in {}", "[".repeat(4000)),
    ] {
        let e = error(&hostile);
        assert!(
            e.message.starts_with("query is nested too deeply"),
            "{}",
            e.message
        );
    }
}

#[test]
fn long_flat_queries_are_fine_up_to_the_limit() {
    let mut source = String::from("a = 1");
    while source.len() + 12 <= MAX_QUERY_BYTES {
        source.push_str(" or b = 1234");
    }
    let Root::Expr(e) = parse(&source).expect("parses") else {
        panic!("expr");
    };
    let ExprKind::Or(items) = e.kind else {
        panic!("or");
    };
    assert!(items.len() > 400);
    let too_long = format!("{source}{}", " or c = 1".repeat(10));
    assert_eq!(
        error(&too_long).message,
        format!("query is longer than {MAX_QUERY_BYTES} bytes")
    );
}

#[test]
fn printing_is_canonical() {
    for (source, printed) in [
        ("a=1 and(b or c)", "a = 1 and (b or c)"),
        ("!(a = 1)", "!(a = 1)"),
        ("!a=1", "!(a = 1)"),
        ("!contains(a,'x')", "!contains(a, \"x\")"),
        ("x in [1,'y',[]]", "x in [1, \"y\", []]"),
        ("'it\\'s \"q\"\\n'", "\"it's \\\"q\\\"\\n\""),
        (
            "properties.product\\ 1.price",
            "properties.product\\ 1.price",
        ),
        ("\\true = \\null", "\\true = \\null"),
        ("\\1a.0", "\\1a.0"),
        ("(a and b) and c", "(a and b) and c"),
        ("a or (b or c)", "a or (b or c)"),
        ("1.50 = +2", "1.5 = 2"),
        ("all", "all"),
    ] {
        let root = parse(source).expect("parses");
        assert_eq!(root.to_string(), printed, "{source}");
        assert_eq!(parse(printed).expect("printed text parses"), root);
    }
}

/// Trees of every shape the parser can produce.
fn arb_expr() -> impl Strategy<Value = Expr> {
    let segment = prop_oneof![
        "[a-z][a-z0-9_-]{0,6}",
        "[0-9]{1,3}",
        "[ a-zA-Z0-9éア$@'\"()\\[\\],=!<>*\\\\-]{1,6}",
    ];
    let first = prop_oneof![
        "[a-zA-Z_][a-z0-9]{0,5}",
        "[0-9 é$-][a-z]{0,3}",
        "and|or|in|true|false|null|all"
    ];
    let path = (first, prop::collection::vec(segment, 0..3)).prop_map(|(first, rest)| {
        let mut segments = vec![first];
        segments.extend(rest);
        node(ExprKind::Path(segments))
    });
    let number = prop_oneof![
        any::<i32>().prop_map(f64::from),
        (-1e6f64..1e6),
        prop::num::f64::NORMAL,
    ];
    let leaf = prop_oneof![
        path,
        any::<String>().prop_map(|s| node(ExprKind::Str(s))),
        number.prop_map(|n| node(ExprKind::Num(n))),
        any::<bool>().prop_map(|b| node(ExprKind::Bool(b))),
        Just(node(ExprKind::Null)),
    ];
    let operand = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3)
                .prop_map(|items| node(ExprKind::List(items))),
            (
                prop::sample::select(Func::ALL.to_vec()),
                prop::collection::vec(inner, 3)
            )
                .prop_map(|(func, mut args)| {
                    args.truncate(func.arity());
                    node(ExprKind::Call(func, args))
                }),
        ]
    });
    let op = prop::sample::select(vec![
        CompareOp::Eq,
        CompareOp::NotEq,
        CompareOp::Gt,
        CompareOp::GtEq,
        CompareOp::Lt,
        CompareOp::LtEq,
    ]);
    let condition = prop_oneof![
        operand.clone(),
        (op, operand.clone(), operand.clone()).prop_map(|(op, l, r)| cmp(op, l, r)),
        (operand.clone(), prop::collection::vec(operand, 0..3))
            .prop_map(|(item, list)| node(ExprKind::In(Box::new(item), list))),
    ];
    condition.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| node(ExprKind::Not(Box::new(e)))),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|items| node(ExprKind::And(items))),
            prop::collection::vec(inner, 2..4).prop_map(|items| node(ExprKind::Or(items))),
        ]
    })
}

proptest! {
    #[test]
    fn print_then_parse_gives_the_same_tree(e in arb_expr()) {
        let printed = e.to_string();
        prop_assume!(printed.len() <= MAX_QUERY_BYTES);
        let parsed = parse(&printed).map_err(|err| TestCaseError::fail(format!("{printed:?}: {err}")))?;
        prop_assert_eq!(parsed, Root::Expr(e), "{}", printed);
    }

    #[test]
    fn parsing_never_panics(source in "\\PC{0,200}") {
        let _ = parse(&source);
    }

    #[test]
    fn parsing_fql_like_noise_never_panics(
        source in "[a-z()\\[\\]!=<>,.'\"\\\\ 0-9-]{0,120}",
    ) {
        if let Err(e) = parse(&source) {
            prop_assert!(e.position <= source.len());
            prop_assert!(!e.message.is_empty());
            prop_assert!(!e.message.ends_with('.'));
        }
    }
}
