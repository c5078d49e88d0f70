//! Evaluating a query against an event, with the answers Segment's engine (`@segment/tsub`)
//! gives for the IR the query compiles to.
//!
//! The tree is compiled once into [`Program`]; evaluation borrows from the program and the
//! event and allocates only where a function builds a new string. tsub's rules, which this
//! module reproduces:
//!
//! - A value used as a condition (a path, a literal) holds only when it is exactly `true`; a
//!   whole query holds only when it evaluates to exactly `true`.
//! - `!`, `and` and `or` use JavaScript truthiness on what their operands evaluate to.
//! - `=`/`!=` compare with `===`, except that two objects to JavaScript (`null`, arrays,
//!   objects) are compared by their `JSON.stringify` text. There is no type coercion, and a
//!   missing field (`undefined`) is not `null`.
//! - `>`, `>=`, `<`, `<=` hold only between two numbers.
//! - A function call is evaluated when it is a condition or a comparison operand. As the
//!   argument of another function, or on either side of `in`, tsub passes the call's IR (a
//!   JSON array) instead of its result, so `contains(lowercase(x), "a")` is always false and
//!   `length(lowercase(x))` is 2. A list literal likewise reaches functions and `=` as its IR:
//!   an array of `{"value": item}` objects.
//! - `x in [a, b]` compares `x` with each item by `===` (arrays and objects by identity).

use serde_json::Value;

use crate::ast::{CompareOp, Expr, ExprKind, Func};
use crate::functions;
use crate::ir;
use crate::js::{self, JsVal};

/// A compiled condition.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    /// A value or a call in condition position.
    Value(Operand),
    Not(Box<Cond>),
    And(Box<[Cond]>),
    Or(Box<[Cond]>),
    Equal {
        negate: bool,
        left: Operand,
        right: Operand,
    },
    Order {
        op: CompareOp,
        left: Operand,
        right: Operand,
    },
    In {
        item: Operand,
        list: Box<[Operand]>,
    },
}

/// A compiled value.
#[derive(Debug, Clone)]
pub(crate) enum Operand {
    Path(Box<[Box<str>]>),
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    Null,
    /// A list literal, as tsub sees it: the array of its items' IR.
    List(Value),
    Call(Box<Call>),
}

/// A compiled function call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) func: Func,
    pub(crate) args: Box<[Operand]>,
    /// The call's IR, which is what tsub hands over when the call is an argument.
    raw: Value,
}

/// A query compiled for evaluation.
#[derive(Debug, Clone)]
pub(crate) struct Program {
    root: Cond,
}

impl Program {
    pub(crate) fn compile(expr: &Expr) -> Program {
        Program {
            root: compile_cond(expr),
        }
    }

    /// Whether the event matches: the condition must evaluate to exactly `true`.
    pub(crate) fn matches(&self, event: &Value) -> bool {
        self.root.eval(event).is_true()
    }
}

fn compile_cond(expr: &Expr) -> Cond {
    match &expr.kind {
        ExprKind::Or(items) => Cond::Or(items.iter().map(compile_cond).collect()),
        ExprKind::And(items) => Cond::And(items.iter().map(compile_cond).collect()),
        ExprKind::Not(inner) => Cond::Not(Box::new(compile_cond(inner))),
        ExprKind::Compare(op, left, right) => {
            let (left, right) = (compile_operand(left), compile_operand(right));
            match op {
                CompareOp::Eq | CompareOp::NotEq => Cond::Equal {
                    negate: *op == CompareOp::NotEq,
                    left,
                    right,
                },
                _ => Cond::Order {
                    op: *op,
                    left,
                    right,
                },
            }
        }
        ExprKind::In(item, list) => Cond::In {
            item: compile_operand(item),
            list: list.iter().map(compile_operand).collect(),
        },
        _ => Cond::Value(compile_operand(expr)),
    }
}

fn compile_operand(expr: &Expr) -> Operand {
    match &expr.kind {
        ExprKind::Path(segments) => {
            Operand::Path(segments.iter().map(|s| s.as_str().into()).collect())
        }
        ExprKind::Str(s) => Operand::Str(s.as_str().into()),
        ExprKind::Num(n) => Operand::Num(*n),
        ExprKind::Bool(b) => Operand::Bool(*b),
        ExprKind::Null => Operand::Null,
        ExprKind::List(items) => {
            Operand::List(Value::Array(items.iter().map(ir::compile).collect()))
        }
        ExprKind::Call(func, args) => Operand::Call(Box::new(Call {
            func: *func,
            args: args.iter().map(compile_operand).collect(),
            raw: ir::compile(expr),
        })),
        // The parser never puts a condition where a value goes; should a hand-built tree do
        // so, tsub would see its IR array, as it sees a call's.
        _ => Operand::List(ir::compile(expr)),
    }
}

impl Cond {
    fn eval<'a>(&'a self, event: &'a Value) -> JsVal<'a> {
        let holds = match self {
            Cond::Value(Operand::Call(call)) => return call.eval(event),
            Cond::Value(value) => value.get(event).is_true(),
            Cond::Not(inner) => !inner.eval(event).truthy(),
            Cond::And(items) => items.iter().all(|c| c.eval(event).truthy()),
            Cond::Or(items) => items.iter().any(|c| c.eval(event).truthy()),
            Cond::Equal {
                negate,
                left,
                right,
            } => js::tsub_equal(&left.resolve(event), &right.resolve(event)) != *negate,
            Cond::Order { op, left, right } => match (left.resolve(event), right.resolve(event)) {
                (JsVal::Num(a), JsVal::Num(b)) => match op {
                    CompareOp::Gt => a > b,
                    CompareOp::GtEq => a >= b,
                    CompareOp::Lt => a < b,
                    CompareOp::LtEq => a <= b,
                    CompareOp::Eq => a == b,
                    CompareOp::NotEq => a != b,
                },
                _ => false,
            },
            Cond::In { item, list } => {
                let item = item.get(event);
                list.iter().any(|x| js::strict_equal(&item, &x.get(event)))
            }
        };
        JsVal::Bool(holds)
    }
}

impl Operand {
    /// tsub's `getValue`: a path's value, a literal, or (for calls and lists) the IR itself.
    pub(crate) fn get<'a>(&'a self, event: &'a Value) -> JsVal<'a> {
        match self {
            Operand::Path(segments) => js::lookup(event, segments.iter()),
            Operand::Str(s) => JsVal::Str(std::borrow::Cow::Borrowed(s)),
            Operand::Num(n) => JsVal::Num(*n),
            Operand::Bool(b) => JsVal::Bool(*b),
            Operand::Null => JsVal::Null,
            Operand::List(raw) => JsVal::Json(raw),
            Operand::Call(call) => JsVal::Json(&call.raw),
        }
    }

    /// A comparison operand: calls are evaluated, everything else is [`Operand::get`].
    fn resolve<'a>(&'a self, event: &'a Value) -> JsVal<'a> {
        match self {
            Operand::Call(call) => call.eval(event),
            other => other.get(event),
        }
    }
}

impl Call {
    fn eval<'a>(&'a self, event: &'a Value) -> JsVal<'a> {
        let arg = |i: usize| self.args.get(i).map_or(JsVal::Undefined, |a| a.get(event));
        functions::call(self.func, arg)
    }
}

#[cfg(test)]
mod tests;
