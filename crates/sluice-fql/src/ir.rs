//! Compiling the tree to the IR Segment's browser engine (`@segment/tsub`) evaluates.
//!
//! The IR is JSON in prefix form: `["=", "event", {"value": "Test"}]`. A bare string is an
//! event path, `{"value": v}` a literal (a list literal's items are IR too), and arrays are
//! operators (`"or"`, `"and"`, `"!"`, the comparisons, `"in"`) or function calls named by
//! the function. Chains of `and`/`or` become one array: `["and", a, b, c]`. The matcher tsub
//! takes (as in Segment's CDN settings) carries the IR as JSON text:
//! `{"type": "fql", "ir": "[...]"}`, or `{"type": "all", "ir": ""}` for `all`.

use serde_json::{Map, Number, Value, json};

use crate::ast::{Expr, ExprKind, Root};

/// The IR of an expression.
pub fn compile(expr: &Expr) -> Value {
    match &expr.kind {
        ExprKind::Or(items) => operator("or", items.iter()),
        ExprKind::And(items) => operator("and", items.iter()),
        ExprKind::Not(inner) => operator("!", std::iter::once(inner.as_ref())),
        ExprKind::Compare(op, left, right) => {
            operator(op.as_str(), [left.as_ref(), right.as_ref()].into_iter())
        }
        ExprKind::In(item, list) => Value::Array(vec![
            Value::from("in"),
            compile(item),
            literal(Value::Array(list.iter().map(compile).collect())),
        ]),
        ExprKind::Call(func, args) => operator(func.name(), args.iter()),
        ExprKind::Path(segments) => Value::String(segments.join(".")),
        ExprKind::Str(s) => literal(Value::String(s.clone())),
        ExprKind::Num(n) => literal(number(*n)),
        ExprKind::Bool(b) => literal(Value::Bool(*b)),
        ExprKind::Null => literal(Value::Null),
        ExprKind::List(items) => literal(Value::Array(items.iter().map(compile).collect())),
    }
}

/// The IR of a whole query; `None` for `all`, which tsub expresses as a matcher type.
pub fn compile_root(root: &Root) -> Option<Value> {
    match root {
        Root::All => None,
        Root::Expr(expr) => Some(compile(expr)),
    }
}

/// The tsub matcher for a query: `{"type": "fql", "ir": "<IR as JSON text>"}`, or
/// `{"type": "all", "ir": ""}`.
pub fn matcher(root: &Root) -> Value {
    match compile_root(root) {
        None => json!({"type": "all", "ir": ""}),
        Some(ir) => json!({"type": "fql", "ir": ir.to_string()}),
    }
}

fn operator<'a>(name: &str, operands: impl Iterator<Item = &'a Expr>) -> Value {
    let mut items = vec![Value::from(name)];
    items.extend(operands.map(compile));
    Value::Array(items)
}

fn literal(value: Value) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert("value".to_owned(), value);
    Value::Object(map)
}

/// A number as JSON: integers within JavaScript's safe range without a fraction.
fn number(n: f64) -> Value {
    const SAFE: f64 = 9_007_199_254_740_992.0;
    if n.fract() == 0.0 && n.abs() < SAFE {
        Value::from(n as i64)
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parser::parse;

    fn ir(source: &str) -> Value {
        compile_root(&parse(source).expect("parses")).expect("not all")
    }

    #[test]
    fn shapes() {
        assert_eq!(
            ir("event = 'Test'"),
            json!(["=", "event", {"value": "Test"}])
        );
        assert_eq!(
            ir("a = 1 and b or !c"),
            json!(["or", ["and", ["=", "a", {"value": 1}], "b"], ["!", "c"]])
        );
        assert_eq!(
            ir("(a or b) and c and d"),
            json!(["and", ["or", "a", "b"], "c", "d"])
        );
        assert_eq!(
            ir("x in [1, 'a', y, [2]]"),
            json!(["in", "x", {"value": [{"value": 1}, {"value": "a"}, "y", {"value": [{"value": 2}]}]}])
        );
        assert_eq!(
            ir("properties.product\\ 1.price > -1.5"),
            json!([">", "properties.product 1.price", {"value": -1.5}])
        );
        assert_eq!(
            ir("null != true"),
            json!(["!=", {"value": null}, {"value": true}])
        );
        assert_eq!(
            ir("uppercase(a) = 'A'"),
            json!(["=", ["uppercase", "a"], {"value": "A"}])
        );
    }

    #[test]
    fn matchers() {
        assert_eq!(
            matcher(&parse(" all ").expect("parses")),
            json!({"type": "all", "ir": ""})
        );
        let m = matcher(&parse("a = 1").expect("parses"));
        assert_eq!(m["type"], "fql");
        let text = m["ir"].as_str().expect("ir text");
        assert_eq!(
            serde_json::from_str::<Value>(text).expect("json"),
            json!(["=", "a", {"value": 1}])
        );
    }

    #[test]
    fn numbers_are_plain_json() {
        assert_eq!(number(4.0).to_string(), "4");
        assert_eq!(number(-0.0).to_string(), "0");
        assert_eq!(number(0.5).to_string(), "0.5");
        assert_eq!(number(1e300).as_f64(), Some(1e300));
    }
}
