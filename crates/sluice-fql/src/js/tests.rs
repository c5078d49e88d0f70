use proptest::prelude::*;
use serde_json::json;

use super::*;

fn number_text(n: f64) -> String {
    let mut out = String::new();
    write_number(n, &mut out);
    out
}

fn text_of(value: &Value) -> String {
    let mut out = String::new();
    stringify(value, &mut out);
    out
}

#[test]
fn numbers_print_as_javascript_prints_them() {
    let cases: &[(f64, &str)] = &[
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (123_456_789_012_345_680_000.0, "123456789012345680000"),
        (1.5e-7, "1.5e-7"),
        (0.000_001, "0.000001"),
        (1e-7, "1e-7"),
        (5e-324, "5e-324"),
        (1.797_693_134_862_315_7e308, "1.7976931348623157e+308"),
        (9_007_199_254_740_993.0, "9007199254740992"),
        (123.456, "123.456"),
        (2.5e25, "2.5e+25"),
    ];
    for (n, expected) in cases {
        assert_eq!(number_text(*n), *expected, "{n:e}");
    }
}

#[test]
fn stringify_orders_index_keys_first_and_escapes_like_javascript() {
    let value: Value =
        serde_json::from_str(r#"{"b":1,"2":"x","1":[1.0,2.50,-0],"01":null,"a":{"10":1,"9":2}}"#)
            .expect("json");
    assert_eq!(
        text_of(&value),
        r#"{"1":[1,2.5,0],"2":"x","b":1,"01":null,"a":{"9":2,"10":1}}"#
    );
    assert_eq!(
        text_of(&json!("q\"\\\n\r\t\u{8}\u{c}\u{1}\u{7f}é😀/")),
        "\"q\\\"\\\\\\n\\r\\t\\b\\f\\u0001\u{7f}é😀/\""
    );
    let huge: Value = serde_json::from_str("[1e400, -1e400]").expect("json");
    assert_eq!(text_of(&huge), "[null,null]");
    assert_eq!(stringify_js(&JsVal::Undefined), None);
    assert_eq!(stringify_js(&JsVal::Num(3.0)).as_deref(), Some("3"));
}

#[test]
fn array_indexes_are_canonical_u32_below_the_maximum() {
    assert_eq!(array_index("0"), Some(0));
    assert_eq!(array_index("42"), Some(42));
    assert_eq!(array_index("4294967294"), Some(4_294_967_294));
    assert_eq!(array_index("4294967295"), None);
    for not_index in ["", "01", "-1", "1.0", " 1", "1e3", "99999999999"] {
        assert_eq!(array_index(not_index), None, "{not_index:?}");
    }
}

#[test]
fn json_text_equality_is_order_and_type_sensitive() {
    assert!(same_json_text(
        &json!({"a": 1, "b": 2}),
        &json!({"a": 1.0, "b": 2})
    ));
    assert!(!same_json_text(
        &json!({"a": 1, "b": 2}),
        &json!({"b": 2, "a": 1})
    ));
    let one: Value = serde_json::from_str(r#"{"1":1,"a":2}"#).expect("json");
    let two: Value = serde_json::from_str(r#"{"a":2,"1":1}"#).expect("json");
    assert!(same_json_text(&one, &two), "index keys come first in both");
    assert!(!same_json_text(&json!([1]), &json!(["1"])));
    assert!(!same_json_text(&json!([1]), &json!([{"value": 1}])));
    assert!(same_json_text(
        &json!([null, [true]]),
        &json!([null, [true]])
    ));
    assert!(!same_json_text(&json!({"a": null}), &json!({"b": null})));
}

#[test]
fn truthiness_and_typeof() {
    let list = json!([]);
    let falsy = [
        JsVal::Undefined,
        JsVal::Null,
        JsVal::Bool(false),
        JsVal::Num(0.0),
        JsVal::Num(f64::NAN),
        JsVal::Str("".into()),
    ];
    assert!(falsy.iter().all(|v| !v.truthy()));
    let truthy = [
        JsVal::Bool(true),
        JsVal::Num(-1.0),
        JsVal::Str("0".into()),
        JsVal::Json(&list),
    ];
    assert!(truthy.iter().all(JsVal::truthy));
    let types: Vec<&str> = falsy.iter().chain(&truthy).map(JsVal::type_of).collect();
    assert_eq!(
        types,
        [
            "undefined",
            "object",
            "boolean",
            "number",
            "number",
            "string",
            "boolean",
            "number",
            "string",
            "object"
        ]
    );
}

#[test]
fn strict_equality_compares_containers_by_identity() {
    let a = json!({"x": 1});
    let b = json!({"x": 1});
    assert!(strict_equal(&JsVal::Json(&a), &JsVal::Json(&a)));
    assert!(!strict_equal(&JsVal::Json(&a), &JsVal::Json(&b)));
    assert!(tsub_equal(&JsVal::Json(&a), &JsVal::Json(&b)));
    assert!(strict_equal(&JsVal::Undefined, &JsVal::Undefined));
    assert!(!strict_equal(&JsVal::Undefined, &JsVal::Null));
    assert!(!tsub_equal(&JsVal::Undefined, &JsVal::Null));
    assert!(tsub_equal(&JsVal::Null, &JsVal::Null));
    assert!(!tsub_equal(&JsVal::Null, &JsVal::Json(&a)));
    assert!(!strict_equal(&JsVal::Num(1.0), &JsVal::Str("1".into())));
    assert!(!strict_equal(&JsVal::Num(f64::NAN), &JsVal::Num(f64::NAN)));
    assert!(strict_equal(&JsVal::Num(0.0), &JsVal::Num(-0.0)));
}

#[test]
fn lookup_walks_like_dlv() {
    let event = json!({
        "properties": {
            "items": [{"sku": "a"}, {"sku": "b"}],
            "name": "héllo😀",
            "empty": "",
            "zero": 0,
            "no": false,
            "nothing": null,
            "obj": {"length": 7},
        }
    });
    let get = |path: &str| lookup(&event, path.split('.'));
    assert!(matches!(get("properties.items.1.sku"), JsVal::Str(s) if s == "b"));
    assert!(matches!(get("properties.items.length"), JsVal::Num(n) if n == 2.0));
    assert!(matches!(get("properties.items.01"), JsVal::Undefined));
    assert!(matches!(get("properties.items.5.sku"), JsVal::Undefined));
    assert!(matches!(get("properties.name.length"), JsVal::Num(n) if n == 7.0));
    assert!(matches!(get("properties.name.1"), JsVal::Str(s) if s == "é"));
    assert!(matches!(get("properties.name.5"), JsVal::Str(s) if s == "\u{fffd}"));
    assert!(matches!(get("properties.name.7"), JsVal::Undefined));
    assert!(
        matches!(get("properties.empty.length"), JsVal::Undefined),
        "'' is falsy"
    );
    assert!(matches!(get("properties.zero.x"), JsVal::Undefined));
    assert!(matches!(get("properties.no.x"), JsVal::Undefined));
    assert!(matches!(get("properties.nothing"), JsVal::Null));
    assert!(matches!(get("properties.nothing.x"), JsVal::Undefined));
    assert!(matches!(get("properties.obj.length"), JsVal::Num(n) if n == 7.0));
    assert!(matches!(get("properties.missing"), JsVal::Undefined));
    assert!(matches!(get("properties"), JsVal::Json(Value::Object(_))));
}

#[test]
fn lookup_mut_reaches_objects_and_array_elements() {
    let mut event = json!({"a": {"list": [{"x": 1}]}, "s": "text"});
    assert_eq!(
        lookup_mut(&mut event, "a.list.0".split('.')).cloned(),
        Some(json!({"x": 1}))
    );
    assert!(lookup_mut(&mut event, "a.list.length".split('.')).is_none());
    assert!(lookup_mut(&mut event, "s.0".split('.')).is_none());
    assert!(lookup_mut(&mut event, "a.missing".split('.')).is_none());
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        (-1e3f64..1e3).prop_map(|f| json!(f)),
        "[a-c0-9]{0,3}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::vec(("[ab]|[0-9]{1,2}", inner), 0..3)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn same_json_text_agrees_with_stringify(a in arb_json(), b in arb_json()) {
        prop_assert_eq!(same_json_text(&a, &b), text_of(&a) == text_of(&b));
        prop_assert!(same_json_text(&a, &a.clone()));
    }

    #[test]
    fn stringify_is_valid_json_of_the_same_value(a in arb_json()) {
        let back: Value = serde_json::from_str(&text_of(&a)).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(same_json_text(&back, &a) || text_of(&back) == text_of(&a));
    }

    #[test]
    fn number_text_reads_back_as_the_same_number(n in prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO) {
        let text = number_text(n);
        let back: f64 = text.parse().map_err(|_| TestCaseError::fail(text.clone()))?;
        prop_assert_eq!(back, n);
    }
}
