//! Printing values as Python does: `str()`, `repr()`, floats, and the objects Jinja2's filters
//! return (dict views, groups, cyclers).

use super::*;

/// Python's `str()`, as Jinja2 prints a value.
pub fn python_str(value: &Value) -> String {
    match value.as_str() {
        Some(text) => text.to_string(),
        None if value.is_undefined() => String::new(),
        None => python_repr(value),
    }
}

/// Python's `repr()`, as Jinja2 shows values inside lists and dicts.
pub(super) fn python_repr(value: &Value) -> String {
    repr_with(value, false)
}

pub(super) fn repr_with(value: &Value, sort_dicts: bool) -> String {
    let items = |value: &Value| -> Vec<String> {
        value.try_iter().into_iter().flatten().map(|item| repr_with(&item, sort_dicts)).collect()
    };
    if let Some(range) = value.downcast_object_ref::<PyRange>() {
        return range.to_string();
    }
    if let Some(view) = value.downcast_object_ref::<DictView>() {
        let inner: Vec<String> = view.items.iter().map(|item| repr_with(item, sort_dicts)).collect();
        return format!("{}([{}])", view.kind, inner.join(", "));
    }
    match value.kind() {
        ValueKind::Undefined => "Undefined".into(),
        ValueKind::None => "None".into(),
        ValueKind::Bool => if value.is_true() { "True" } else { "False" }.into(),
        ValueKind::Number if value.is_integer() => value.to_string(),
        ValueKind::Number => python_float(f64::try_from(value.clone()).unwrap_or(f64::NAN)),
        ValueKind::String => python_string_repr(value.as_str().unwrap_or_default()),
        ValueKind::Seq | ValueKind::Iterable => {
            let items = items(value);
            let tuple = value.is_tuple() || value.downcast_object_ref::<Group>().is_some();
            match items.as_slice() {
                [only] if tuple => format!("({only},)"),
                _ if tuple => format!("({})", items.join(", ")),
                _ => format!("[{}]", items.join(", ")),
            }
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter().into_iter().flatten().collect();
            if sort_dicts {
                keys.sort();
            }
            let entries: Vec<String> = keys
                .iter()
                .map(|key| {
                    let item = value.get_item(key).unwrap_or_default();
                    format!("{}: {}", repr_with(key, sort_dicts), repr_with(&item, sort_dicts))
                })
                .collect();
            format!("{{{}}}", entries.join(", "))
        }
        _ => value.to_string(),
    }
}

/// Python's `repr()` of a float: the shortest text that reads back, exponent from 1e16 and below 1e-4.
pub(crate) fn python_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let magnitude = x.abs();
    if magnitude >= 1e16 || (magnitude != 0.0 && magnitude < 1e-4) {
        return python_exponent(&format!("{x:e}"));
    }
    let formatted = x.to_string();
    if formatted.contains('.') { formatted } else { format!("{formatted}.0") }
}

/// Rust's `1.5e-5` as Python writes it: `1.5e-05` (a sign, and two digits at least).
pub(super) fn python_exponent(formatted: &str) -> String {
    let (mantissa, exponent) = formatted.split_once(['e', 'E']).expect("an exponent");
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    let e = if formatted.contains('E') { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{digits:0>2}")
}

pub(super) fn python_string_repr(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `dict.keys()`, `.values()`, `.items()`: iterate as lists, print as `dict_keys([...])`.
#[derive(Debug)]
pub(super) struct DictView {
    kind: &'static str,
    items: Vec<Value>,
}

impl Object for DictView {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.items.get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.items.len())
    }
}

pub(super) fn dict_view(kind: &'static str, value: &Value) -> Result<Value, Error> {
    if value.is_undefined() {
        return Err(Error::from(ErrorKind::UndefinedError));
    }
    if value.kind() != ValueKind::Map {
        return Err(Error::new(ErrorKind::InvalidOperation, format!("{kind} needs a dict, not {}", value.kind())));
    }
    let keys: Vec<Value> = value.try_iter()?.collect();
    let items = keys
        .into_iter()
        .map(|key| {
            let item = value.get_item(&key)?;
            Ok(match kind {
                "dict_keys" => key,
                "dict_values" => item,
                _ => Value::from(Tuple::from([key, item])),
            })
        })
        .collect::<Result<_, Error>>()?;
    Ok(Value::from_object(DictView { kind, items }))
}

/// One group of `groupby`: a tuple `(grouper, list)` with those two names, as Jinja2's `_GroupTuple`.
#[derive(Debug)]
pub(super) struct Group {
    pub(super) grouper: Value,
    pub(super) list: Value,
}

impl Object for Group {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match (key.as_usize(), key.as_str()) {
            (Some(0), _) | (_, Some("grouper")) => Some(self.grouper.clone()),
            (Some(1), _) | (_, Some("list")) => Some(self.list.clone()),
            _ => None,
        }
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(2)
    }
}

/// Whether a value is a `range()`.
pub(super) fn is_range(value: &Value) -> bool {
    value.downcast_object_ref::<PyRange>().is_some()
}

/// Python's `range(start, stop, step)`: a sequence that prints as `range(0, 3)`, and is not
/// JSON (Jinja2's `tojson` raises on it). Its items are computed, never stored.
#[derive(Debug)]
pub(super) struct PyRange {
    start: i64,
    stop: i64,
    step: i64,
}

impl PyRange {
    /// `range(stop)`, `range(start, stop)` or `range(start, stop, step)`: ints (bools are ints),
    /// the step not zero.
    pub(super) fn new(args: &[Value]) -> Result<PyRange, Error> {
        let ints = args
            .iter()
            .map(|arg| match python_index(arg) {
                Err(_) if arg.is_integer() => {
                    Err(Error::new(ErrorKind::InvalidOperation, "paw does not support a range past 64-bit integers"))
                }
                index => index,
            })
            .collect::<Result<Vec<i64>, Error>>()?;
        let (start, stop, step) = match ints[..] {
            [stop] => (0, stop, 1),
            [start, stop] => (start, stop, 1),
            [start, stop, step] => (start, stop, step),
            _ => {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!("range expected 1 to 3 arguments, got {} (Jinja2 raises TypeError here)", args.len()),
                ));
            }
        };
        if step == 0 {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "range() arg 3 must not be zero (Jinja2 raises ValueError here)",
            ));
        }
        Ok(PyRange { start, stop, step })
    }

    fn len(&self) -> usize {
        let (start, stop, step) = (i128::from(self.start), i128::from(self.stop), i128::from(self.step));
        let span = if step > 0 { stop - start } else { start - stop };
        let len = (span + step.abs() - 1).div_euclid(step.abs());
        len.clamp(0, i128::from(u32::MAX) * i128::from(u32::MAX)) as usize
    }
}

impl std::fmt::Display for PyRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            1 => write!(f, "range({}, {})", self.start, self.stop),
            step => write!(f, "range({}, {}, {step})", self.start, self.stop),
        }
    }
}

impl Object for PyRange {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let index = usize::try_from(key.as_i64()?).ok().filter(|&index| index < self.len())?;
        Some(Value::from(i128::from(self.start) + index as i128 * i128::from(self.step)))
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Seq(self.len())
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self.as_ref(), f)
    }
}

/// Jinja2's `cycler(*items)`: `next()`, `reset()` and `current`.
#[derive(Debug)]
pub(super) struct Cycler {
    pub(super) items: Vec<Value>,
    pub(super) position: std::sync::atomic::AtomicUsize,
}

impl Object for Cycler {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let position = self.position.load(std::sync::atomic::Ordering::Relaxed);
        (key.as_str() == Some("current")).then(|| self.items.get(position).cloned()).flatten()
    }

    fn call_method(self: &Arc<Self>, _: &mut State, method: &str, _: &[Value]) -> Result<Value, Error> {
        use std::sync::atomic::Ordering::Relaxed;
        match method {
            "next" => {
                let position = self.position.load(Relaxed);
                self.position.store((position + 1) % self.items.len().max(1), Relaxed);
                Ok(self.items.get(position).cloned().unwrap_or_default())
            }
            "reset" => {
                self.position.store(0, Relaxed);
                Ok(Value::from(()))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}
