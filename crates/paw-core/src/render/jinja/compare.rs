//! Operators as Python has them. minijinja orders any two values (none before numbers, numbers
//! before strings, ...); Python raises `TypeError` for `none < 1`, `{} < {}` or `"3" >= 1`, and so
//! does Jinja2. And minijinja's `~` writes a float in all its digits, where Python's `str()` writes
//! `1e+300`. The source pass (`syntax.rs`) turns each `<`, `<=`, `>`, `>=`, `in` and `~` of a
//! template into a call of a function here, and the tests `lt`, `le`, `gt`, `ge`, `lessthan`,
//! `greaterthan`, `even`, `odd` and `divisibleby` use the same rules, so a template that Jinja2
//! stops is stopped at its line.

use std::cmp::Ordering;

use minijinja::value::{Rest, ValueKind};
use minijinja::{Error, ErrorKind, State, Value};

/// The function every ordering comparison (or chain of them) of a template calls:
/// `__paw_compare(a, "<", b, "<=", c)`.
pub const COMPARE_FUNCTION: &str = "__paw_compare";

/// The function every `~` of a template calls: `__paw_concat(a, b)`.
pub const CONCAT_FUNCTION: &str = "__paw_concat";

/// The function every `+`, `*` and `**` of a template calls: `__paw_arithmetic(a, "*", b)`.
pub const ARITHMETIC_FUNCTION: &str = "__paw_arithmetic";

/// `a + b`, `a * b` and `a ** b` as Python computes them: numbers with numbers (ints exactly,
/// within 128 bits), strings and lists (or tuples) joined, a string or a list repeated an int's
/// number of times; anything else raises.
pub fn arithmetic(state: &State, left: &Value, op: &str, right: &Value) -> Result<Value, Error> {
    super::filters::not_undefined(state, left)?;
    super::filters::not_undefined(state, right)?;
    let type_error = || {
        Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot compute {} {op} {} (Jinja2 raises TypeError here)", type_name(left), type_name(right)),
        )
    };
    match (number(left), number(right), op) {
        (Some(Number::Int(a)), Some(Number::Int(b)), "+") => {
            a.checked_add(b).map(Value::from).ok_or_else(super::filters::big_integer)
        }
        (Some(a), Some(b), "+") => Ok(Value::from(a.float() + b.float())),
        (None, None, "+") => join(left, right).ok_or_else(type_error)?,
        (Some(Number::Int(a)), Some(Number::Int(b)), "*") => {
            a.checked_mul(b).map(Value::from).ok_or_else(super::filters::big_integer)
        }
        (Some(Number::Int(a)), Some(Number::Int(b)), _) if b >= 0 => u32::try_from(b)
            .ok()
            .and_then(|b| a.checked_pow(b))
            .map(Value::from)
            .ok_or_else(super::filters::big_integer),
        (Some(a), Some(b), "*") => Ok(Value::from(a.float() * b.float())),
        (Some(a), Some(b), _) => {
            let (a, b) = (a.float(), b.float());
            if a == 0.0 && b < 0.0 {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "0.0 cannot be raised to a negative power (Jinja2 raises ZeroDivisionError here)",
                ));
            }
            if a < 0.0 && b.fract() != 0.0 && b.is_finite() {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "paw does not support complex numbers (a negative number to a fractional power)",
                ));
            }
            let power = a.powf(b);
            if power.is_infinite() && a.is_finite() && b.is_finite() {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "the power is too large for a float (Jinja2 raises OverflowError here)",
                ));
            }
            Ok(Value::from(power))
        }
        (None, Some(Number::Int(times)), "*") => repeat(left, times).ok_or_else(type_error)?,
        (Some(Number::Int(times)), None, "*") => repeat(right, times).ok_or_else(type_error)?,
        _ => Err(type_error()),
    }
}

/// Two strings, two lists or two tuples one after the other, within paw's size limit; None for
/// any other pair (a range joins nothing in Python).
fn join(left: &Value, right: &Value) -> Option<Result<Value, Error>> {
    if let (Some(a), Some(b)) = (left.as_str(), right.as_str()) {
        // markupsafe: a safe string joined to a plain one escapes the plain one.
        let (safe, escape) = (left.is_safe() || right.is_safe(), |value: &Value, text: &str| {
            if value.is_safe() { text.to_string() } else { super::markup_escape(text) }
        });
        let (a, b) = if safe { (escape(left, a), escape(right, b)) } else { (a.to_string(), b.to_string()) };
        let joined = super::ensure_size("+", a.len() as u128 + b.len() as u128).map(|()| format!("{a}{b}"));
        return Some(joined.map(|text| if safe { Value::from_safe_string(text) } else { Value::from(text) }));
    }
    let sequence = |value: &Value| value.kind() == ValueKind::Seq && !super::is_range(value);
    if !(sequence(left) && sequence(right) && left.is_tuple() == right.is_tuple()) {
        return None;
    }
    let items = left.try_iter().and_then(|a| right.try_iter().map(|b| a.chain(b).collect::<Vec<_>>()));
    Some(items.and_then(|items| {
        super::ensure_size("+", (items.len() * std::mem::size_of::<Value>()) as u128)?;
        Ok(if left.is_tuple() { Value::from(minijinja::value::Tuple::from(items)) } else { Value::from(items) })
    }))
}

/// A string or a list `times` times (none for a count below one), within paw's size limit; None
/// for any other value.
fn repeat(value: &Value, times: i128) -> Option<Result<Value, Error>> {
    if i64::try_from(times).is_err() {
        let overflow = "cannot fit 'int' into an index-sized integer (Jinja2 raises OverflowError here)";
        return Some(Err(Error::new(ErrorKind::InvalidOperation, overflow)));
    }
    let times = times.clamp(0, i128::from(u32::MAX)) as usize;
    let bytes = |unit: usize| super::ensure_size("*", unit as u128 * times as u128);
    if let Some(text) = value.as_str() {
        let repeated = bytes(text.len()).map(|()| text.repeat(times));
        return Some(
            repeated.map(|text| if value.is_safe() { Value::from_safe_string(text) } else { Value::from(text) }),
        );
    }
    if value.kind() != ValueKind::Seq || super::is_range(value) {
        return None;
    }
    let items: Vec<Value> = match value.try_iter() {
        Ok(items) => items.collect(),
        Err(err) => return Some(Err(err)),
    };
    Some(bytes(items.len() * std::mem::size_of::<Value>()).map(|()| {
        let repeated: Vec<Value> = items.iter().cloned().cycle().take(items.len() * times).collect();
        if value.is_tuple() { Value::from(minijinja::value::Tuple::from(repeated)) } else { Value::from(repeated) }
    }))
}

/// `a ~ b`: the text of both, as Jinja2 makes it (`str()`); an undefined one is refused by name.
pub fn concat(state: &State, left: &Value, right: &Value) -> Result<Value, Error> {
    super::filters::not_undefined(state, left)?;
    super::filters::not_undefined(state, right)?;
    Ok(Value::from(format!("{}{}", super::python_str(left), super::python_str(right))))
}

/// A chain of comparisons as Python evaluates it: each pair in turn, stopping at the first that
/// is false.
pub fn compare_chain(args: Rest<Value>) -> Result<bool, Error> {
    let args = args.0;
    let mut at = 0;
    while at + 2 < args.len() {
        let op =
            args[at + 1].as_str().ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "a comparison's operator"))?;
        if !compare(&args[at], op, &args[at + 2])? {
            return Ok(false);
        }
        at += 2;
    }
    Ok(true)
}

/// `left OP right` for one of `<`, `<=`, `>`, `>=`, `==`, `!=`, `in`, `not in`; an error where
/// Python raises.
pub fn compare(left: &Value, op: &str, right: &Value) -> Result<bool, Error> {
    let order = match op {
        "==" => return Ok(left == right),
        "!=" => return Ok(left != right),
        "in" => return contains(right, left),
        "not in" => return contains(right, left).map(|found| !found),
        _ => ordering(left, right)?,
    };
    Ok(match op {
        "<" => order == Ordering::Less,
        "<=" => order != Ordering::Greater,
        ">" => order == Ordering::Greater,
        _ => order != Ordering::Less,
    })
}

/// `needle in haystack` as Python has it: a substring of a string (a string only), an item of a
/// list, a key of a dict; anything else is Python's `TypeError`.
fn contains(haystack: &Value, needle: &Value) -> Result<bool, Error> {
    match haystack.kind() {
        ValueKind::String => match needle.as_str() {
            Some(needle) => Ok(haystack.as_str().unwrap_or_default().contains(needle)),
            None => Err(Error::new(
                ErrorKind::InvalidOperation,
                format!(
                    "'in <string>' takes a string on its left, not {} (Jinja2 raises TypeError here)",
                    type_name(needle)
                ),
            )),
        },
        ValueKind::Seq | ValueKind::Iterable => Ok(haystack.try_iter()?.any(|item| item == *needle)),
        ValueKind::Map => {
            hashable(needle)?;
            Ok(haystack.try_iter()?.any(|key| key == *needle))
        }
        ValueKind::Undefined => Err(Error::from(ErrorKind::UndefinedError)),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("a {} holds nothing to look in (Jinja2 raises TypeError here)", type_name(haystack)),
        )),
    }
}

/// Python's `TypeError: unhashable type` for a value used as a dict's key: a list, a dict, or a
/// tuple holding one.
pub fn hashable(value: &Value) -> Result<(), Error> {
    if super::is_range(value) {
        return Ok(());
    }
    match value.kind() {
        ValueKind::Seq if value.is_tuple() => value.try_iter()?.try_for_each(|item| hashable(&item)),
        ValueKind::Seq | ValueKind::Map => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("a {} cannot be a dict's key (Jinja2 raises TypeError here)", type_name(value)),
        )),
        _ => Ok(()),
    }
}

/// Python's `sorted`, `min` and `max` compare neighbours: where Python cannot order two of the
/// values, they raise `TypeError` (and one value is never compared).
pub fn check_orderable<'v>(values: impl IntoIterator<Item = &'v Value>) -> Result<(), Error> {
    let mut values = values.into_iter().peekable();
    while let (Some(value), Some(next)) = (values.next(), values.peek()) {
        ordering(value, next)?;
    }
    Ok(())
}

/// Python's order of two values: numbers (bools are numbers) with numbers, strings with strings,
/// sequences with sequences (item by item); anything else is Python's `TypeError`.
pub fn ordering(left: &Value, right: &Value) -> Result<Ordering, Error> {
    match (number(left), number(right)) {
        (Some(Number::Int(a)), Some(Number::Int(b))) => return Ok(a.cmp(&b)),
        (Some(a), Some(b)) => return Ok(a.float().partial_cmp(&b.float()).unwrap_or(Ordering::Equal)),
        (Some(_), None) | (None, Some(_)) => return Err(cannot_compare(left, right)),
        (None, None) => {}
    }
    match (left.kind(), right.kind()) {
        (ValueKind::String, ValueKind::String) => Ok(left.as_str().cmp(&right.as_str())),
        (ValueKind::Seq, ValueKind::Seq)
            if left.is_tuple() == right.is_tuple() && !super::is_range(left) && !super::is_range(right) =>
        {
            let (a, b) = (left.try_iter()?.collect::<Vec<_>>(), right.try_iter()?.collect::<Vec<_>>());
            for (x, y) in a.iter().zip(&b) {
                if x != y {
                    return ordering(x, y);
                }
            }
            Ok(a.len().cmp(&b.len()))
        }
        _ => Err(cannot_compare(left, right)),
    }
}

/// A number as Python orders it: ints (bools among them) exactly, against floats as floats.
#[derive(Clone, Copy)]
enum Number {
    Int(i128),
    Float(f64),
}

impl Number {
    fn float(self) -> f64 {
        match self {
            Number::Int(int) => int as f64,
            Number::Float(float) => float,
        }
    }
}

fn number(value: &Value) -> Option<Number> {
    match value.kind() {
        ValueKind::Bool => Some(Number::Int(i128::from(value.is_true()))),
        ValueKind::Number if value.is_integer() => i128::try_from(value.clone()).ok().map(Number::Int),
        ValueKind::Number => f64::try_from(value.clone()).ok().map(Number::Float),
        _ => None,
    }
}

/// `value % by == 0` (or `== 1`: `odd`) as Jinja2's tests `even`, `odd` and `divisibleby`
/// compute it: numbers only, where Python's `%` on anything else raises (or, on a string, formats
/// it, which paw does not).
pub fn remainder_is(value: &Value, by: &Value, wanted: i128) -> Result<bool, Error> {
    let (Some(a), Some(b)) = (number(value), number(by)) else {
        if value.kind() == ValueKind::String {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "paw does not support Python's `%` on a string (it formats the string): test a number",
            ));
        }
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot take {} modulo {} (Jinja2 raises TypeError here)", type_name(value), type_name(by)),
        ));
    };
    let by_zero = || Error::new(ErrorKind::InvalidOperation, "modulo by zero (Jinja2 raises ZeroDivisionError here)");
    match (a, b) {
        (Number::Int(a), Number::Int(b)) => {
            // Python's remainder takes the divisor's sign.
            let rem = a.checked_rem_euclid(b).ok_or_else(by_zero)?;
            Ok(if b < 0 && rem != 0 { rem + b } else { rem } == wanted)
        }
        (_, b) if b.float() == 0.0 => Err(by_zero()),
        (a, b) => {
            let (a, b) = (a.float(), b.float());
            // Python's float remainder: the exact `fmod`, moved to the divisor's sign.
            let rem = a % b;
            let rem = if rem != 0.0 && (rem < 0.0) != (b < 0.0) { rem + b } else { rem };
            Ok(rem == wanted as f64)
        }
    }
}

fn cannot_compare(left: &Value, right: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("cannot compare {} with {} (Jinja2 raises TypeError here)", type_name(left), type_name(right)),
    )
}

/// A value's type as paw's messages name it: none, bool, int, float, string, list, dict, undefined.
pub fn type_name(value: &Value) -> &'static str {
    match value.kind() {
        ValueKind::Undefined => "undefined",
        ValueKind::None => "none",
        ValueKind::Bool => "bool",
        ValueKind::Number if value.is_integer() => "int",
        ValueKind::Number => "float",
        ValueKind::String => "string",
        ValueKind::Bytes => "bytes",
        ValueKind::Seq => "list",
        ValueKind::Map => "dict",
        ValueKind::Iterable => "iterator",
        _ => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_orders_what_it_can_and_raises_for_the_rest() {
        let v = |value: serde_json::Value| Value::from(minijinja::value::Serde(value));
        assert!(compare(&v(json!(1)), "<", &v(json!(2.5))).unwrap());
        assert!(compare(&v(json!(true)), ">=", &v(json!(1))).unwrap());
        assert!(compare(&v(json!("abc")), "<", &v(json!("abd"))).unwrap());
        assert!(compare(&v(json!([1, 2])), "<", &v(json!([1, 2, 0]))).unwrap());
        assert!(!compare(&v(json!([1, 3])), "<=", &v(json!([1, 2, 9]))).unwrap());
        assert!(compare(&Value::from(()), "==", &Value::from(())).unwrap());
        for (left, right, said) in [
            (Value::from(()), v(json!(1)), "cannot compare none with int"),
            (v(json!({})), v(json!({"a": 1})), "cannot compare dict with dict"),
            (v(json!("3")), v(json!({"a": 1})), "cannot compare string with dict"),
            (v(json!([])), Value::from(()), "cannot compare list with none"),
            (v(json!([1])), v(json!(["a"])), "cannot compare int with string"),
        ] {
            let err = compare(&left, ">=", &right).unwrap_err();
            assert!(err.to_string().contains(said), "{err}");
            assert!(err.to_string().contains("(Jinja2 raises TypeError here)"), "{err}");
        }
        let chain = |args: Vec<Value>| compare_chain(Rest(args));
        assert!(chain(vec![v(json!(1)), v(json!("<")), v(json!(2)), v(json!("<")), v(json!(3))]).unwrap());
        // Python stops at the first false pair: `1 > 2 < none` is False, not a TypeError.
        assert!(!chain(vec![v(json!(1)), v(json!(">")), v(json!(2)), v(json!("<")), Value::from(())]).unwrap());
    }
}
