use proptest::prelude::*;
use serde_json::{Value, json};

use crate::query::Query;

fn event() -> Value {
    json!({
        "type": "track",
        "event": "Order Completed",
        "userId": "user-1",
        "properties": {
            "revenue": 42.5,
            "count": 3,
            "zero": 0,
            "flag": true,
            "off": false,
            "nothing": null,
            "email": "Ann@Example.com",
            "empty": "",
            "jp": "アイ",
            "emoji": "😀",
            "items": [1, 2, 3],
            "tags": ["a", "b"],
            "obj": {"a": 1, "b": 2},
            "same": {"a": 1, "b": 2},
            "swapped": {"b": 2, "a": 1},
            "version": "2.10.0",
        },
        "context": {"library": {"name": "analytics-python"}},
    })
}

fn check(source: &str) -> bool {
    Query::parse(source)
        .unwrap_or_else(|e| panic!("{source:?}: {e}"))
        .matches(&event())
}

fn assert_all(expected: bool, sources: &[&str]) {
    for source in sources {
        assert_eq!(check(source), expected, "{source}");
    }
}

#[test]
fn all_matches_everything() {
    assert!(Query::parse("all").expect("all").matches(&json!(null)));
}

#[test]
fn equality_has_no_coercion() {
    assert_all(
        true,
        &[
            "event = 'Order Completed'",
            "properties.count = 3",
            "properties.count = 3.0",
            "properties.revenue = 42.5",
            "properties.flag = true",
            "properties.nothing = null",
            "type != 'identify'",
            "properties.count != '3'",
            "properties.flag != 'true'",
            "properties.zero != false",
            "properties.empty != null",
            "properties.missing != null",
            "properties.missing = properties.other_missing",
        ],
    );
    assert_all(
        false,
        &[
            "event = 'order completed'",
            "properties.count = '3'",
            "properties.flag = 'true'",
            "properties.zero = false",
            "properties.empty = null",
            "properties.missing = null",
            "properties.nothing = properties.missing",
        ],
    );
}

#[test]
fn objects_and_lists_compare_by_json_text() {
    assert_all(
        true,
        &[
            "properties.obj = properties.same",
            "properties.obj != properties.swapped",
            "[1, 2] = [1, 2]",
            "[] = []",
            "properties.tags = properties.tags",
            // Paths inside a list literal are not read for `=`: the IR is compared.
            "[properties.count] = [properties.count]",
        ],
    );
    assert_all(
        false,
        &[
            "properties.obj = properties.swapped",
            "[1, 2] = [2, 1]",
            // A list literal is compared as its IR ({"value": ...} items), as tsub does.
            "properties.items = [1, 2, 3]",
            "[properties.count] = [3]",
            "properties.obj = null",
        ],
    );
    assert!(
        !check("properties.empty_list = []"),
        "undefined is not an object"
    );
    let q = Query::parse("properties.list = []").expect("parses");
    assert!(q.matches(&json!({"properties": {"list": []}})));
}

#[test]
fn ordering_only_between_numbers() {
    assert_all(
        true,
        &[
            "properties.revenue > 40",
            "properties.revenue >= 42.5",
            "properties.count < 3.5",
            "properties.count <= 3",
            "properties.zero >= -1",
            "length(properties.items) >= 2",
            "3 > length(properties.tags)",
        ],
    );
    assert_all(
        false,
        &[
            "properties.revenue < 40",
            "properties.count > 3",
            "'b' > 'a'",
            "properties.flag > 0",
            "properties.nothing < 1",
            "properties.nothing >= 0",
            "properties.missing < 1",
            "properties.count > '1'",
            "length(properties.obj) >= 0",
            "length(properties.obj) < 0",
        ],
    );
}

#[test]
fn in_compares_each_item() {
    assert_all(
        true,
        &[
            "event in ['Signed Up', 'Order Completed']",
            "properties.count in [1, 3]",
            "properties.nothing in [null]",
            "properties.missing in [properties.also_missing]",
            "'user-1' in [properties.x, userId]",
            "properties.obj in [properties.obj]",
        ],
    );
    assert_all(
        false,
        &[
            "event in []",
            "properties.count in ['3']",
            "properties.missing in [null]",
            "properties.obj in [properties.same]",
            "[1] in [[1]]",
            "lowercase(event) in ['order completed']",
            "'a' in [lowercase('A')]",
        ],
    );
}

#[test]
fn and_or_not() {
    assert_all(
        true,
        &[
            "type = 'track' and event = 'Order Completed'",
            "type = 'x' or event = 'Order Completed'",
            "!(type = 'x')",
            "!properties.missing",
            "!properties.nothing",
            "!properties.off",
            "properties.flag",
            "properties.flag and properties.flag",
            "(false or true) and true",
            "!(properties.revenue > 40) or contains(context.library.name, 'python')",
            "true and true and true",
            "false or false or true",
        ],
    );
    assert_all(
        false,
        &[
            "type = 'track' and event = 'x'",
            "!properties.flag",
            "properties.count",
            "properties.email",
            "'true'",
            "1",
            "null",
            "[true]",
            "properties.missing",
            "properties.nothing or properties.missing",
            "true and true and false",
            "false or false or false",
        ],
    );
}

#[test]
fn operators_use_javascript_truthiness_on_function_results() {
    assert_all(
        true,
        &[
            "!lowercase(properties.empty)",
            "!lowercase(properties.count)",
            "!length(properties.empty)",
            "!length(properties.obj)",
            "lowercase(event) and true",
            "length(properties.items) or false",
            "typeof(properties.x) and true",
        ],
    );
    assert_all(
        false,
        &[
            "!lowercase(event)",
            "!length(properties.items)",
            // Alone, a non-boolean result is not a match.
            "lowercase(event)",
            "length(properties.items)",
            "typeof(event)",
        ],
    );
}

#[test]
fn contains_and_match() {
    assert_all(
        true,
        &[
            "contains(properties.email, '@Example')",
            "contains(properties.email, '')",
            "match(event, 'Order *')",
            "match(event, '*Completed')",
            "match(event, 'Order?Completed')",
            "match(userId, 'user-[0-9]')",
            "match('test@test.com', '*.com')",
            "match(properties.emoji, '??')",
        ],
    );
    assert_all(
        false,
        &[
            "contains(properties.email, '@example')",
            "contains(properties.nothing, 'a')",
            "contains(properties.missing, 'a')",
            "contains(properties.count, '3')",
            "contains(properties.tags, 'a')",
            "match(event, 'order *')",
            "match(event, 'Order')",
            "match(properties.nothing, '*')",
            "match(properties.count, '*')",
            "match(event, properties.count)",
            "match(properties.emoji, '?')",
        ],
    );
}

#[test]
fn length_counts_utf16_units_and_list_items() {
    assert_all(
        true,
        &[
            "length(event) = 15",
            "length(properties.jp) = 2",
            "length(properties.emoji) = 2",
            "length(properties.items) = 3",
            "length(properties.nothing) = 0",
            "length(properties.empty) = 0",
            "length([1, 2]) = 2",
            "length('ア') = 1",
            "length(userId) < 10",
        ],
    );
    assert_all(
        false,
        &[
            "length(properties.missing) = 0",
            "length(properties.count) = 0",
            "length(properties.obj) = 2",
            "length(properties.obj) = length(properties.obj)",
        ],
    );
    assert!(
        check("length(properties.obj) != length(properties.obj)"),
        "NaN != NaN"
    );
}

#[test]
fn lowercase_and_typeof() {
    assert_all(
        true,
        &[
            "lowercase(properties.email) = 'ann@example.com'",
            "'test' = lowercase('TEST')",
            "lowercase(properties.count) = null",
            "lowercase(properties.missing) = null",
            "typeof(event) = 'string'",
            "typeof(properties.count) = 'number'",
            "typeof(properties.flag) = 'boolean'",
            "typeof(properties.nothing) = 'object'",
            "typeof(properties.items) = 'object'",
            "typeof(properties.obj) = 'object'",
            "typeof(properties.missing) = 'undefined'",
            "'boolean' = typeof(true)",
        ],
    );
    assert_all(
        false,
        &[
            "'TEST' = lowercase('TEST')",
            "typeof(properties.nothing) = 'null'",
            "typeof(properties.items) = 'list'",
            "typeof(properties.flag) = 'bool'",
            "'boolean' = typeof('str')",
        ],
    );
}

#[test]
fn nested_calls_get_the_inner_call_unevaluated() {
    assert_all(
        true,
        &[
            "length(lowercase(event)) = 2",
            "length(semver(a, b, c)) = 4",
            "typeof(lowercase(event)) = 'object'",
            "lowercase(length(event)) = null",
        ],
    );
    assert_all(
        false,
        &[
            "contains(lowercase(event), 'order')",
            "match(lowercase(event), '*')",
        ],
    );
}

#[test]
fn semver_compares_versions() {
    assert_all(
        true,
        &[
            "semver(properties.version, '>=', '2.1')",
            "semver(properties.version, '>', '2.9.9')",
            "semver('1.5', '=', '1.5.0')",
            "semver('2.0', '=', '2')",
        ],
    );
    assert_all(
        false,
        &[
            "semver(properties.version, '<', '2.1')",
            "semver(null, '>=', '1.0.0')",
            "semver(properties.missing, '>=', '1.0.0')",
            "semver('1.0.0', '~=', '1.0.0')",
            "semver('1.2.3.4', '>=', '1.0.0')",
        ],
    );
}

#[test]
fn sluice_only_functions() {
    assert_all(
        true,
        &[
            "uppercase(userId) = 'USER-1'",
            "snakecase(event) = 'order_completed'",
            "kebabcase(event) = 'order-completed'",
            "titlecase('order completed') = 'Order Completed'",
            "bool('true')",
            "bool(properties.count)",
            "string(properties.count) = '3'",
            "string(properties.revenue) = '42.5'",
            "number('42.5') = properties.revenue",
            "number(properties.count) > 2",
            "!bool(properties.zero)",
        ],
    );
    assert_all(
        false,
        &[
            "uppercase(properties.count) = '3'",
            "bool('yes')",
            "number('x') = 0",
        ],
    );
}

#[test]
fn paths_follow_dlv() {
    assert_all(
        true,
        &[
            "properties.items.0 = 1",
            "properties.items.length = 3",
            "properties.tags.1 = 'b'",
            "event.length = 15",
            "event.0 = 'O'",
            "properties.product\\ name = 'x' or true",
        ],
    );
    assert_all(
        false,
        &[
            "properties.empty.length = 0",
            "properties.items.01 = 2",
            "properties.count.x = null",
        ],
    );
}

fn arb_event() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i16>().prop_map(Value::from),
        "[aA1 é]{0,3}".prop_map(Value::String),
    ];
    let value = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[ab0]", inner), 0..3)
                .prop_map(|e| Value::Object(e.into_iter().collect())),
        ]
    });
    prop::collection::vec(("[ab0]", value), 0..4)
        .prop_map(|e| Value::Object(e.into_iter().collect()))
}

fn arb_query() -> impl Strategy<Value = String> {
    let operand = prop_oneof![
        "[ab](\\.[ab0]|\\.length){0,2}",
        "'[aA1 é*?\\[\\]-]{0,3}'",
        "-?[0-9]{1,2}",
        "true|false|null",
        "\\[([ab]|[0-9]|'a')?\\]",
    ];
    let call = (
        prop::sample::select(crate::ast::Func::ALL.to_vec()),
        prop::collection::vec(operand.clone(), 3),
    )
        .prop_map(|(f, args)| format!("{}({})", f.name(), args[..f.arity()].join(", ")));
    let value = prop_oneof![operand, call];
    let op = prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]);
    let leaf = prop_oneof![
        value.clone(),
        (value.clone(), op, value.clone()).prop_map(|(a, op, b)| format!("{a} {op} {b}")),
        (value.clone(), value).prop_map(|(a, b)| format!("{a} in [{b}]")),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|q| format!("!({q})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
        ]
    })
}

proptest! {
    #[test]
    fn evaluation_never_panics(query in arb_query(), event in arb_event()) {
        let query = Query::parse(&query).map_err(|e| TestCaseError::fail(format!("{query}: {e}")))?;
        let _ = query.matches(&event);
        let _ = query.matches(&Value::Null);
        let _ = query.matches(&json!("scalar event"));
    }

    #[test]
    fn not_and_or_follow_de_morgan(a in arb_query(), b in arb_query(), event in arb_event()) {
        let parse = |q: String| Query::parse(&q).map_err(|e| TestCaseError::fail(format!("{q}: {e}")));
        let left = parse(format!("!(({a}) and ({b}))"))?;
        let right = parse(format!("!({a}) or !({b})"))?;
        prop_assert_eq!(left.matches(&event), right.matches(&event));
        let left = parse(format!("!(({a}) or ({b}))"))?;
        let right = parse(format!("!({a}) and !({b})"))?;
        prop_assert_eq!(left.matches(&event), right.matches(&event));
    }

    #[test]
    fn a_match_is_never_also_a_match_of_its_negation(a in arb_query(), event in arb_event()) {
        let query = Query::parse(&a).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let negated = Query::parse(&format!("!({a})")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!(query.matches(&event) && negated.matches(&event)));
        let twice = Query::parse(&format!("!(!({a}))")).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!query.matches(&event) || twice.matches(&event));
    }
}
