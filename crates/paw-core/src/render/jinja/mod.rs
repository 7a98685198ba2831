//! Jinja2 3.1 as the seed renders templates (`jinja2.Template(text)`): minijinja, with what differs
//! from Jinja2 replaced, what paw cannot match refused by name, and values printed as Python does.
//! Each replacement follows Jinja2's own code; `tests/jinja/corpus.txt` holds the proof, compared
//! byte for byte with what Jinja2 renders.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Tuple, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

#[cfg(test)]
mod fuzz;
pub mod packer_syntax;
pub mod syntax;

/// The work one render may do, in minijinja's fuel: one per instruction, one per 64 bytes that
/// operators and filters make or read. A real template needs thousands; a runaway loop or a
/// gigabyte value stops at its line instead of hanging or exhausting memory.
pub const FUEL: u64 = 5_000_000;

/// The most one rendered file, or one value that a filter or method of paw's makes, may hold.
pub const MAX_BYTES: usize = 64 << 20;

/// minijinja's own additions, which Jinja2 does not know: refused as Jinja2 refuses them.
const NOT_JINJA2_FILTERS: [&str; 5] = ["split", "lines", "bool", "chain", "zip"];
const NOT_JINJA2_TESTS: [&str; 4] = ["safe", "int", "startingwith", "endingwith"];

/// Jinja2's filters and globals whose output paw does not reproduce, and why.
const REFUSED_FILTERS: [(&str, &str); 3] = [
    ("random", "its output changes on every render"),
    ("urlize", "Jinja2's URL detection rules are not reproduced"),
    ("wordwrap", "Python's textwrap rules are not reproduced"),
];

/// The environment every template renders in.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Jinja2's default Undefined is falsy in tests, `default` and boolean operators; printing or
    // iterating one is an error here (Jinja2 prints nothing, which hides typos).
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(FUEL));
    env.set_unknown_method_callback(call_method);
    env.set_formatter(|out, _state, value| out.write_str(&python_str(value)).map_err(Error::from));
    for name in NOT_JINJA2_FILTERS {
        env.remove_filter(name);
    }
    for name in NOT_JINJA2_TESTS {
        env.remove_test(name);
    }
    env.remove_global("debug");
    for (name, why) in REFUSED_FILTERS {
        env.add_filter(name, move |_: Rest<Value>, _: Kwargs| -> Result<Value, Error> {
            Err(unsupported("filter", name, why))
        });
    }
    env.add_function("lipsum", |_: Rest<Value>| -> Result<Value, Error> {
        Err(unsupported("function", "lipsum", "its output changes on every render"))
    });
    env.add_filter("attr", |_: Rest<Value>| -> Result<Value, Error> {
        Err(unsupported("filter", "attr", "use `value.name` or `value[\"name\"]`"))
    });
    env.add_function("cycler", |items: Rest<Value>| Value::from_object(Cycler { items: items.0, position: 0.into() }));
    env.add_function("joiner", minijinja_contrib::globals::joiner);
    env.add_filter("center", |value: String, args: Rest<Value>, kwargs: Kwargs| {
        let [width] = params(&args, &kwargs, ["width"])?;
        center(&value, opt_int(width, 80)?, ' ')
    });
    env.add_filter("dictsort", dictsort);
    env.add_filter("filesizeformat", filesizeformat);
    env.add_filter("float", float);
    // markupsafe's entities (`&#39;`), not minijinja's (`&#x27;`); paw never autoescapes, so
    // `forceescape` is `escape`.
    for name in ["escape", "e", "forceescape"] {
        env.add_filter(name, |value: &Value| Value::from_safe_string(markup_escape(&python_str(value))));
    }
    env.add_filter("format", format);
    env.add_filter("groupby", groupby);
    env.add_filter("indent", indent);
    env.add_filter("int", int);
    env.add_filter("items", |value: &Value| dict_view("dict_items", value));
    env.add_filter("pprint", pprint);
    env.add_filter("striptags", minijinja_contrib::filters::striptags);
    env.add_filter("tojson", tojson);
    env.add_filter("truncate", truncate);
    env.add_filter("urlencode", urlencode);
    env.add_filter("wordcount", |value: String| {
        let words = value.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|word| !word.is_empty());
        words.count()
    });
    env.add_filter("xmlattr", xmlattr);
    add_positional_filters(&mut env);
    env.add_filter(syntax::ITERABLE_FILTER, |value: Value| {
        if value.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "'NoneType' object is not iterable (a loop over none)",
            ));
        }
        Ok(value)
    });
    // Jinja2: whatever `iter()` takes: strings, lists, dicts, and its Undefined; not none.
    env.add_test("iterable", |value: &Value| value.is_undefined() || value.try_iter().is_ok() && !value.is_none());
    // Jinja2: whatever has __call__; its Undefined has one, and methods are callable.
    env.add_test("callable", |value: &Value| {
        value.is_undefined() || matches!(value.kind(), ValueKind::Plain) && value.as_object().is_some()
    });
    // Jinja2: whatever has a length and item access: strings, lists, dicts, and Undefined.
    env.add_test("sequence", |value: &Value| {
        value.is_undefined() || matches!(value.kind(), ValueKind::String | ValueKind::Seq | ValueKind::Map)
    });
    env
}

fn unsupported(what: &str, name: &str, why: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("paw does not support Jinja2's `{name}` {what}: {why}"))
}

/// Binds a filter's positional and keyword arguments to its parameters, as Python does.
fn params<const N: usize>(args: &[Value], kwargs: &Kwargs, names: [&str; N]) -> Result<[Option<Value>; N], Error> {
    if args.len() > N {
        return Err(Error::new(ErrorKind::TooManyArguments, format!("takes at most {N} arguments")));
    }
    let mut bound: [Option<Value>; N] = std::array::from_fn(|index| args.get(index).cloned());
    for (index, name) in names.iter().enumerate() {
        if let Some(value) = kwargs.get::<Option<Value>>(name)? {
            if bound[index].is_some() {
                return Err(Error::new(ErrorKind::InvalidOperation, format!("got multiple values for `{name}`")));
            }
            bound[index] = Some(value);
        }
    }
    kwargs.assert_all_used()?;
    Ok(bound)
}

/// An integer argument as Python takes one: an int or a bool, never a float or a string.
fn opt_int(value: Option<Value>, default: i64) -> Result<i64, Error> {
    value.map_or(Ok(default), |value| python_index(&value))
}

fn python_index(value: &Value) -> Result<i64, Error> {
    let integer = match value.kind() {
        ValueKind::Bool => Some(i64::from(value.is_true())),
        ValueKind::Number if value.is_integer() => value.as_i64(),
        _ => None,
    };
    integer.ok_or_else(|| {
        Error::new(ErrorKind::InvalidOperation, format!("{} cannot be interpreted as an integer", python_repr(value)))
    })
}

/// Refuses, before allocating it, a value of `bytes` that a slip such as `center(10**9)` asks for.
fn ensure_size(what: &str, bytes: u128) -> Result<(), Error> {
    if bytes > MAX_BYTES as u128 {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{what} would make a value of {} MiB; paw's limit is {} MiB", bytes >> 20, MAX_BYTES >> 20),
        ));
    }
    Ok(())
}

/// Text repeated `times` times (a negative count is none, as in Python), within the size limit.
fn repeated(what: &str, text: &str, times: i64) -> Result<String, Error> {
    let times = times.max(0) as u128;
    ensure_size(what, times * text.len() as u128)?;
    Ok(text.repeat(times as usize))
}

fn named<const N: usize>(names: [&'static str; N], bound: [Option<Value>; N]) -> Kwargs {
    Kwargs::from_iter(names.into_iter().zip(bound).filter_map(|(name, value)| value.map(|value| (name, value))))
}

/// minijinja's filters that take keyword arguments only, where Jinja2 also takes them by
/// position (`sort(true)`, `unique(false, "name")`).
fn add_positional_filters(env: &mut Environment<'static>) {
    const SORT: [&str; 3] = ["reverse", "case_sensitive", "attribute"];
    const UNIQUE: [&str; 2] = ["case_sensitive", "attribute"];
    env.add_filter("sort", |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
        minijinja::filters::sort(state, value, named(SORT, params(&args, &kwargs, SORT)?))
    });
    env.add_filter("unique", |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
        minijinja::filters::unique(state, value, named(UNIQUE, params(&args, &kwargs, UNIQUE)?))
    });
    env.add_filter("min", |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
        minijinja::filters::min(state, value, named(UNIQUE, params(&args, &kwargs, UNIQUE)?))
    });
    env.add_filter("max", |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
        minijinja::filters::max(state, value, named(UNIQUE, params(&args, &kwargs, UNIQUE)?))
    });
}

fn opt_bool(value: Option<Value>) -> bool {
    value.is_some_and(|value| value.is_true())
}

// ---------------------------------------------------------------------------------------------
// Printing values as Python does

/// Python's `str()`, as Jinja2 prints a value.
pub fn python_str(value: &Value) -> String {
    match value.as_str() {
        Some(text) => text.to_string(),
        None => python_repr(value),
    }
}

/// Python's `repr()`, as Jinja2 shows values inside lists and dicts.
fn python_repr(value: &Value) -> String {
    repr_with(value, false)
}

fn repr_with(value: &Value, sort_dicts: bool) -> String {
    let items = |value: &Value| -> Vec<String> {
        value.try_iter().into_iter().flatten().map(|item| repr_with(&item, sort_dicts)).collect()
    };
    if let Some(view) = value.downcast_object_ref::<DictView>() {
        let inner: Vec<String> = view.items.iter().map(|item| repr_with(item, sort_dicts)).collect();
        return format!("{}([{}])", view.kind, inner.join(", "));
    }
    match value.kind() {
        ValueKind::Undefined => String::new(),
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
fn python_exponent(formatted: &str) -> String {
    let (mantissa, exponent) = formatted.split_once(['e', 'E']).expect("an exponent");
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    let e = if formatted.contains('E') { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{digits:0>2}")
}

fn python_string_repr(text: &str) -> String {
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
struct DictView {
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

fn dict_view(kind: &'static str, value: &Value) -> Result<Value, Error> {
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
struct Group {
    grouper: Value,
    list: Value,
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

/// Jinja2's `cycler(*items)`: `next()`, `reset()` and `current`.
#[derive(Debug)]
struct Cycler {
    items: Vec<Value>,
    position: std::sync::atomic::AtomicUsize,
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

// ---------------------------------------------------------------------------------------------
// Python methods on strings, lists and dicts

/// The methods minijinja-contrib's pycompat lacks or renders differently; the rest go to it.
fn call_method(state: &mut State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(text) = value.as_str()
        && let Some(result) = string_method(text, method, args)?
    {
        return Ok(result);
    }
    match (value.kind(), method) {
        (ValueKind::Map, "keys") => return dict_view("dict_keys", value),
        (ValueKind::Map, "values") => return dict_view("dict_values", value),
        (ValueKind::Map, "items") => return dict_view("dict_items", value),
        (ValueKind::Seq, "index") => {
            let [needle] = args else { return Err(Error::from(ErrorKind::MissingArgument)) };
            let position = value.try_iter()?.position(|item| &item == needle);
            return position.map(Value::from).ok_or_else(|| {
                Error::new(ErrorKind::InvalidOperation, format!("{} is not in list", python_repr(needle)))
            });
        }
        _ => {}
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn string_method(text: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    let arg_str = |index: usize| args.get(index).and_then(Value::as_str);
    // Python: `str.center(width[, fillchar])`, the width an integer, the fill one character.
    let width = || match args.first() {
        Some(width) => python_index(width),
        None => Err(Error::new(ErrorKind::MissingArgument, format!("str.{method}() takes a width"))),
    };
    let fill = || match args.get(1) {
        None => Ok(' '),
        Some(fill) => {
            let mut chars = fill.as_str().unwrap_or_default().chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Ok(c),
                _ => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    "The fill character must be exactly one character long",
                )),
            }
        }
    };
    let count = text.chars().count() as i64;
    let result = match method {
        "center" => Value::from(center(text, width()?, fill()?)?),
        "ljust" => Value::from(format!(
            "{text}{}",
            repeated("str.ljust", &fill()?.to_string(), width()?.saturating_sub(count))?
        )),
        "rjust" => Value::from(format!(
            "{}{text}",
            repeated("str.rjust", &fill()?.to_string(), width()?.saturating_sub(count))?
        )),
        "zfill" => {
            let pad = repeated("str.zfill", "0", width()?.saturating_sub(count))?;
            match text.strip_prefix(['-', '+']) {
                Some(rest) => Value::from(format!("{}{pad}{rest}", &text[..1])),
                None => Value::from(format!("{pad}{text}")),
            }
        }
        // Python: a letter after a cased letter is lowered, any other is raised ("It'S", "2Nd").
        "title" => {
            let mut previous_cased = false;
            let mut out = String::with_capacity(text.len());
            for c in text.chars() {
                let cased = c.is_lowercase() || c.is_uppercase();
                if previous_cased {
                    out.extend(c.to_lowercase())
                } else {
                    out.extend(c.to_uppercase())
                }
                previous_cased = cased;
            }
            Value::from(out)
        }
        "swapcase" => Value::from(
            text.chars()
                .flat_map(|c| {
                    if c.is_uppercase() { c.to_lowercase().collect::<Vec<_>>() } else { c.to_uppercase().collect() }
                })
                .collect::<String>(),
        ),
        "rsplit" => {
            let limit = args.get(1).and_then(Value::as_i64).filter(|limit| *limit >= 0).map(|limit| limit as usize);
            let mut parts: Vec<Value> = match (arg_str(0), limit) {
                (Some(separator), Some(limit)) => text.rsplitn(limit + 1, separator).map(Value::from).collect(),
                (Some(separator), None) => text.rsplit(separator).map(Value::from).collect(),
                (None, _) => {
                    // Whitespace runs, from the right; what is left of the last split keeps its own.
                    let mut rest = text.trim_end();
                    let mut parts = Vec::new();
                    while !rest.is_empty() && limit.is_none_or(|limit| parts.len() < limit) {
                        match rest.rfind(char::is_whitespace) {
                            Some(at) => {
                                parts.push(Value::from(rest[at..].trim_start()));
                                rest = rest[..at].trim_end();
                            }
                            None => break,
                        }
                    }
                    if !rest.is_empty() {
                        parts.push(Value::from(rest));
                    }
                    parts
                }
            };
            parts.reverse();
            Value::from(parts)
        }
        "startswith" | "endswith" => {
            let chars: Vec<char> = text.chars().collect();
            let bound = |index: usize, default: usize| {
                args.get(index).and_then(Value::as_i64).map_or(default, |at| {
                    let at = if at < 0 { chars.len() as i64 + at } else { at };
                    at.clamp(0, chars.len() as i64) as usize
                })
            };
            let (start, end) = (bound(1, 0), bound(2, chars.len()));
            let slice: String = chars.get(start..end.max(start)).unwrap_or_default().iter().collect();
            let candidates: Vec<Value> = match args.first() {
                Some(tuple) if tuple.is_tuple() => tuple.try_iter()?.collect(),
                Some(single) => vec![single.clone()],
                None => return Err(Error::from(ErrorKind::MissingArgument)),
            };
            let found = candidates.iter().filter_map(Value::as_str).any(|candidate| {
                if method == "startswith" { slice.starts_with(candidate) } else { slice.ends_with(candidate) }
            });
            Value::from(found)
        }
        "index" | "rindex" => {
            let Some(needle) = arg_str(0) else { return Ok(None) };
            let found = if method == "index" { text.find(needle) } else { text.rfind(needle) };
            let byte = found.ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "substring not found"))?;
            Value::from(text[..byte].chars().count())
        }
        "removeprefix" => Value::from(arg_str(0).and_then(|prefix| text.strip_prefix(prefix)).unwrap_or(text)),
        "removesuffix" => Value::from(arg_str(0).and_then(|suffix| text.strip_suffix(suffix)).unwrap_or(text)),
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// Python's `str.center`: the odd pad goes left when the width is odd; a width at most the
/// text's length (or negative) leaves it as it is.
fn center(text: &str, width: i64, fill: char) -> Result<String, Error> {
    let count = text.chars().count() as i64;
    if width <= count {
        return Ok(text.to_string());
    }
    let margin = width - count;
    let left = margin / 2 + (margin & width & 1);
    let fill = fill.to_string();
    Ok(format!("{}{text}{}", repeated("center", &fill, left)?, repeated("center", &fill, margin - left)?))
}

// ---------------------------------------------------------------------------------------------
// Filters that follow Jinja2's code

/// `dictsort(case_sensitive=False, by="key", reverse=False)`: a list of `(key, value)` tuples.
fn dictsort(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [case_sensitive, by, reverse] = params(&args, &kwargs, ["case_sensitive", "by", "reverse"])?;
    let mut named: Vec<(&str, Value)> = vec![("case_sensitive", Value::from(opt_bool(case_sensitive)))];
    named.push(("reverse", Value::from(opt_bool(reverse))));
    if let Some(by) = by {
        named.push(("by", by));
    }
    let sorted = minijinja::filters::dictsort(value, Kwargs::from_iter(named))?;
    let pairs: Vec<Value> = sorted
        .try_iter()?
        .map(|pair| Value::from(Tuple::from(pair.try_iter().into_iter().flatten().collect::<Vec<_>>())))
        .collect();
    Ok(Value::from(pairs))
}

/// `groupby(attribute, default=None, case_sensitive=False)`: `(grouper, list)` tuples.
fn groupby(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [attribute, default, case_sensitive] = params(&args, &kwargs, ["attribute", "default", "case_sensitive"])?;
    let attribute = attribute.ok_or_else(|| Error::from(ErrorKind::MissingArgument))?;
    let mut named: Vec<(&str, Value)> = vec![("case_sensitive", Value::from(opt_bool(case_sensitive)))];
    if let Some(default) = default {
        named.push(("default", default));
    }
    let attribute = attribute.as_str().map(str::to_string).unwrap_or_else(|| attribute.to_string());
    let groups = minijinja::filters::groupby(value, Some(&attribute), Kwargs::from_iter(named))?;
    let groups: Vec<Value> = groups
        .try_iter()?
        .map(|group| {
            let grouper = group.get_attr("grouper")?;
            let list = group.get_attr("list")?;
            Ok(Value::from_object(Group { grouper, list }))
        })
        .collect::<Result<_, Error>>()?;
    Ok(Value::from(groups))
}

/// `filesizeformat(binary=False)`.
fn filesizeformat(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let [binary] = params(&args, &kwargs, ["binary"])?;
    let bytes = python_float_of(value).ok_or_else(|| Error::new(ErrorKind::InvalidOperation, "not a number"))?;
    let (base, prefixes) = if opt_bool(binary) {
        (1024.0, ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"])
    } else {
        (1000.0, ["kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"])
    };
    if bytes == 1.0 {
        return Ok("1 Byte".into());
    }
    if bytes < base {
        return Ok(format!("{} Bytes", bytes.trunc() as i64));
    }
    let mut unit = base;
    for (index, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(index as i32 + 2);
        if bytes < unit {
            return Ok(format!("{:.1} {prefix}", base * bytes / unit));
        }
    }
    Ok(format!("{:.1} {}", base * bytes / unit, prefixes[prefixes.len() - 1]))
}

/// Python's `float(x)` of a number, a bool or a string; None where Python raises.
fn python_float_of(value: &Value) -> Option<f64> {
    match value.kind() {
        ValueKind::Bool => Some(if value.is_true() { 1.0 } else { 0.0 }),
        ValueKind::Number => f64::try_from(value.clone()).ok(),
        ValueKind::String => {
            let text = value.as_str()?.trim();
            let plain = text.replace('_', "");
            let valid = !text.starts_with('_') && !text.ends_with('_') && !text.contains("__");
            let lower = plain.to_ascii_lowercase();
            let digits = lower.trim_start_matches(['+', '-']);
            let word = matches!(digits, "inf" | "infinity" | "nan");
            let numeric = digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | '+' | '-'));
            (valid && (word || numeric)).then(|| plain.parse().ok()).flatten()
        }
        _ => None,
    }
}

/// Python's `int(text, base)` (base 0 or 2 to 36); None where Python raises, an error where its
/// integer would not fit in 128 bits.
fn python_int_of_str(text: &str, base: u32) -> Result<Option<i128>, Error> {
    if base != 0 && !(2..=36).contains(&base) {
        return Ok(None);
    }
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let lower = digits.to_ascii_lowercase();
    let prefixed = |prefix: &str| lower.strip_prefix(prefix).map(str::to_string);
    let (base, digits) = match base {
        0 => match (prefixed("0x"), prefixed("0o"), prefixed("0b")) {
            (Some(rest), _, _) => (16, rest),
            (_, Some(rest), _) => (8, rest),
            (_, _, Some(rest)) => (2, rest),
            _ if lower.len() > 1 && lower.starts_with('0') && lower.trim_start_matches('0').is_empty() => (10, lower),
            _ if lower.starts_with('0') && lower.len() > 1 => return Ok(None),
            _ => (10, lower),
        },
        16 => (16, prefixed("0x").unwrap_or(lower)),
        8 => (8, prefixed("0o").unwrap_or(lower)),
        2 => (2, prefixed("0b").unwrap_or(lower)),
        base => (base, lower),
    };
    let digits = digits.strip_prefix('_').unwrap_or(&digits);
    let misplaced = digits.is_empty() || digits.ends_with('_') || digits.contains("__");
    let digits = digits.replace('_', "");
    if misplaced || !digits.chars().all(|c| c.is_digit(base)) {
        return Ok(None);
    }
    let magnitude = i128::from_str_radix(&digits, base).map_err(|_| big_integer())?;
    Ok(Some(if negative { -magnitude } else { magnitude }))
}

/// Python's integers have no bound; paw's stop at 128 bits and refuse what lies beyond.
fn big_integer() -> Error {
    Error::new(ErrorKind::InvalidOperation, "paw does not support integers beyond 128 bits (Jinja2's have no bound)")
}

/// An integral float as an integer, as Python's `int(x)` (Python: any size; paw: 128 bits).
fn float_to_int(float: f64) -> Result<i128, Error> {
    let truncated = float.trunc();
    if truncated.abs() >= 2f64.powi(127) {
        return Err(big_integer());
    }
    Ok(truncated as i128)
}

/// `float(default=0.0)`.
fn float(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [default] = params(&args, &kwargs, ["default"])?;
    Ok(python_float_of(value).map(Value::from).unwrap_or_else(|| default.unwrap_or(Value::from(0.0))))
}

/// `int(default=0, base=10)`: `int(text, base)`, else `int(float(value))`, else the default
/// (a base Python refuses is such a failure too).
fn int(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [default, base] = params(&args, &kwargs, ["default", "base"])?;
    let base = match base {
        None => Some(10),
        Some(base) => python_index(&base).ok().filter(|&base| base == 0 || (2..=36).contains(&base)),
    };
    let parsed = match (value.kind(), base) {
        (ValueKind::String, Some(base)) => {
            python_int_of_str(value.as_str().unwrap_or_default(), base as u32)?.map(Value::from)
        }
        (ValueKind::Number, _) if value.is_integer() => Some(value.clone()),
        (ValueKind::Bool, _) => Some(Value::from(i64::from(value.is_true()))),
        _ => None,
    };
    if let Some(parsed) = parsed {
        return Ok(parsed);
    }
    match python_float_of(value).filter(|float| float.is_finite()) {
        Some(float) => Ok(Value::from(float_to_int(float)?)),
        None => Ok(default.unwrap_or(Value::from(0))),
    }
}

/// Python's `str.splitlines()`: every line boundary Python knows, the ends dropped.
fn python_splitlines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        let boundary =
            matches!(c, '\n' | '\r' | '\x0b' | '\x0c' | '\x1c' | '\x1d' | '\x1e' | '\u{85}' | '\u{2028}' | '\u{2029}');
        if boundary {
            lines.push(&text[start..index]);
            start = index + c.len_utf8();
            if c == '\r' && chars.peek().is_some_and(|(_, next)| *next == '\n') {
                chars.next();
                start += 1;
            }
        }
    }
    if start < text.len() {
        lines.push(&text[start..]);
    }
    lines
}

/// `indent(width=4, first=False, blank=False)`; a string width is the indentation itself.
fn indent(value: String, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let [width, first, blank] = params(&args, &kwargs, ["width", "first", "blank"])?;
    let indentation = match &width {
        Some(width) if width.as_str().is_some() => width.as_str().unwrap_or_default().to_string(),
        width => repeated("indent", " ", opt_int(width.clone(), 4)?)?,
    };
    let text = format!("{value}\n");
    let lines = python_splitlines(&text);
    ensure_size("indent", (lines.len() as u128 + 1) * indentation.len() as u128 + text.len() as u128)?;
    let mut out = if opt_bool(blank) {
        lines.join(&format!("\n{indentation}"))
    } else {
        let (head, rest) = lines.split_first().map_or(("", &[][..]), |(head, rest)| (*head, rest));
        let mut out = head.to_string();
        if !rest.is_empty() {
            let indented: Vec<String> = rest
                .iter()
                .map(|line| if line.is_empty() { String::new() } else { format!("{indentation}{line}") })
                .collect();
            out.push('\n');
            out.push_str(&indented.join("\n"));
        }
        out
    };
    if opt_bool(first) {
        out.insert_str(0, &indentation);
    }
    Ok(out)
}

/// `pprint`: Python's `pprint.pformat`, which is `repr` with sorted dicts while it fits in 80
/// columns; longer values it breaks over lines by rules paw does not reproduce.
fn pprint(value: &Value) -> Result<String, Error> {
    let text = repr_with(value, true);
    if text.chars().count() > 80 {
        return Err(unsupported("filter", "pprint", "values longer than 80 characters are laid out by pprint's rules"));
    }
    Ok(text)
}

/// `tojson(indent=None)`: `json.dumps(value, sort_keys=True)`, ASCII only, with `<`, `>`, `&`
/// and `'` escaped for HTML.
fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [indent] = params(&args, &kwargs, ["indent"])?;
    let indent = indent.map(|indent| opt_int(Some(indent), 0)).transpose()?;
    let mut out = String::new();
    python_json(value, indent.map(|width| width.max(0) as usize), 0, &mut out)?;
    let out = out.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\'', "\\u0027");
    Ok(Value::from_safe_string(out))
}

fn python_json(value: &Value, indent: Option<usize>, depth: usize, out: &mut String) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| -> Result<(), Error> {
        if let Some(width) = indent {
            ensure_size("tojson", out.len() as u128 + width as u128 * depth as u128)?;
            out.push('\n');
            out.push_str(&" ".repeat(width * depth));
        }
        Ok(())
    };
    let separator = if indent.is_some() { "," } else { ", " };
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number if value.is_integer() => out.push_str(&value.to_string()),
        ValueKind::Number => {
            let float = f64::try_from(value.clone()).unwrap_or(f64::NAN);
            out.push_str(match python_float(float).as_str() {
                "nan" => "NaN",
                "inf" => "Infinity",
                "-inf" => "-Infinity",
                _ => "",
            });
            if float.is_finite() {
                out.push_str(&python_float(float));
            }
        }
        ValueKind::String => json_string(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1)?;
                python_json(item, indent, depth + 1, out)?;
            }
            newline(out, depth)?;
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = value.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            keys.sort();
            out.push('{');
            for (index, key) in keys.iter().enumerate() {
                if index > 0 {
                    out.push_str(separator);
                }
                newline(out, depth + 1)?;
                json_string(&python_str(key), out);
                out.push_str(": ");
                python_json(&value.get_item(key)?, indent, depth + 1, out)?;
            }
            newline(out, depth)?;
            out.push('}');
        }
        kind => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("Object of type {kind} is not JSON serializable"),
            ));
        }
    }
    Ok(())
}

/// A JSON string as Python's `json.dumps` writes it (`ensure_ascii`: `\u00e9`, surrogate pairs).
fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `truncate(length=255, killwords=False, end="...", leeway=5)`.
fn truncate(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let [length, killwords, end, leeway] = params(&args, &kwargs, ["length", "killwords", "end", "leeway"])?;
    let text = python_str(value);
    let length = opt_int(length, 255)?.max(0) as usize;
    let end = end.map_or_else(|| "...".to_string(), |end| python_str(&end));
    let leeway = opt_int(leeway, 5)?.max(0) as usize;
    let chars: Vec<char> = text.chars().collect();
    let end_len = end.chars().count();
    if length < end_len {
        return Err(Error::new(ErrorKind::InvalidOperation, format!("expected length >= {end_len}, got {length}")));
    }
    if chars.len() <= length + leeway {
        return Ok(text);
    }
    let kept: String = chars[..length - end_len].iter().collect();
    if opt_bool(killwords) {
        return Ok(format!("{kept}{end}"));
    }
    // Jinja2: `s[: length - len(end)].rsplit(" ", 1)[0]`.
    let kept = kept.rsplit_once(' ').map_or(kept.as_str(), |(head, _)| head);
    Ok(format!("{kept}{end}"))
}

/// `urlencode`: a string quoted with `/` kept; a dict or pairs as a query string (spaces as `+`).
fn urlencode(value: &Value) -> Result<String, Error> {
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::Map => {
            value.try_iter()?.map(|key| value.get_item(&key).map(|item| (key, item))).collect::<Result<_, _>>()?
        }
        ValueKind::Seq | ValueKind::Iterable => value
            .try_iter()?
            .map(|pair| Ok((pair.get_item_by_index(0)?, pair.get_item_by_index(1)?)))
            .collect::<Result<_, Error>>()?,
        _ => return Ok(url_quote(&python_str(value), false)),
    };
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(key, item)| format!("{}={}", url_quote(&python_str(key), true), url_quote(&python_str(item), true)))
        .collect();
    Ok(encoded.join("&"))
}

/// Python's `urllib.parse.quote_from_bytes`, safe `/` unless for a query string.
fn url_quote(text: &str, for_query: bool) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => out.push(byte as char),
            b'/' if !for_query => out.push('/'),
            b' ' if for_query => out.push('+'),
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// markupsafe's `escape`.
fn markup_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `xmlattr(autospace=True)`: `key="value"` pairs, escaped; None and undefined values left out.
fn xmlattr(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [autospace] = params(&args, &kwargs, ["autospace"])?;
    let mut attributes = Vec::new();
    for key in value.try_iter()? {
        let item = value.get_item(&key)?;
        if item.is_none() || item.is_undefined() {
            continue;
        }
        let key = python_str(&key);
        if key.chars().any(|c| c.is_whitespace() || matches!(c, '/' | '>' | '=')) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("Invalid character in attribute name: {key:?}"),
            ));
        }
        attributes.push(format!("{}=\"{}\"", markup_escape(&key), markup_escape(&python_str(&item))));
    }
    let mut out = attributes.join(" ");
    if autospace.is_none_or(|autospace| autospace.is_true()) && !out.is_empty() {
        out.insert(0, ' ');
    }
    Ok(Value::from_safe_string(out))
}

// ---------------------------------------------------------------------------------------------
// printf-style formatting: the `format` filter, `"..." % args` in Python

/// `format(*args, **kwargs)`: `value % args`, or `value % kwargs` for `%(name)s`.
fn format(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let names: Vec<String> = kwargs.args().map(str::to_string).collect();
    if !args.is_empty() && !names.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "can't handle positional and keyword arguments at the same time",
        ));
    }
    let mapping: Option<Vec<(String, Value)>> = if names.is_empty() {
        None
    } else {
        Some(names.iter().map(|name| Ok((name.clone(), kwargs.get::<Value>(name)?))).collect::<Result<_, Error>>()?)
    };
    printf(&python_str(value), &args, mapping.as_deref())
}

fn format_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Python's `%` operator on a string, with positional `args` or a `mapping`.
fn printf(template: &str, args: &[Value], mapping: Option<&[(String, Value)]>) -> Result<String, Error> {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    let mut next_arg = args.iter();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut key = None;
        if chars.peek() == Some(&'(') {
            chars.next();
            let name: String = chars.by_ref().take_while(|&c| c != ')').collect();
            key = Some(name);
        }
        let mut flags = String::new();
        while let Some(&flag) = chars.peek().filter(|c| "-+ #0".contains(**c)) {
            flags.push(flag);
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars>| -> Result<Option<usize>, Error> {
            if chars.peek() == Some(&'*') {
                return Err(format_error("`*` widths are not supported by paw"));
            }
            let digits: String = std::iter::from_fn(|| chars.next_if(char::is_ascii_digit)).collect();
            match digits.as_str() {
                "" => Ok(None),
                digits => digits.parse().map(Some).map_err(|_| format_error("width or precision too big")),
            }
        };
        let width = number(&mut chars)?;
        let precision = if chars.next_if_eq(&'.').is_some() { Some(number(&mut chars)?.unwrap_or(0)) } else { None };
        while chars.next_if(|c| matches!(c, 'h' | 'l' | 'L')).is_some() {}
        let conversion = chars.next().ok_or_else(|| format_error("incomplete format"))?;
        if conversion == '%' {
            out.push('%');
            continue;
        }
        let arg = match (&key, mapping) {
            (Some(name), Some(mapping)) => mapping
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .ok_or_else(|| format_error(format!("KeyError: {name:?}")))?,
            (Some(_), None) => return Err(format_error("format requires a mapping")),
            (None, _) => {
                next_arg.next().cloned().ok_or_else(|| format_error("not enough arguments for format string"))?
            }
        };
        let spec = Spec { flags: &flags, width, precision };
        out.push_str(&spec.convert(conversion, &arg)?);
    }
    if mapping.is_none() && next_arg.next().is_some() {
        return Err(format_error("not all arguments converted during string formatting"));
    }
    Ok(out)
}

struct Spec<'a> {
    flags: &'a str,
    width: Option<usize>,
    precision: Option<usize>,
}

impl Spec<'_> {
    fn convert(&self, conversion: char, arg: &Value) -> Result<String, Error> {
        let number = || -> Result<f64, Error> {
            match arg.kind() {
                ValueKind::Number | ValueKind::Bool => Ok(f64::try_from(arg.clone()).unwrap_or(0.0)),
                kind => Err(format_error(format!("%{conversion} format: a real number is required, not {kind}"))),
            }
        };
        let integer = || -> Result<i128, Error> {
            match arg.kind() {
                ValueKind::Number if arg.is_integer() => Ok(i128::try_from(arg.clone()).unwrap_or(0)),
                ValueKind::Bool => Ok(i128::from(arg.is_true())),
                ValueKind::Number => float_to_int(number()?),
                kind => Err(format_error(format!("%{conversion} format: a number is required, not {kind}"))),
            }
        };
        let alternate = self.flags.contains('#');
        ensure_size("format", self.width.unwrap_or(0) as u128 + self.precision.unwrap_or(0) as u128)?;
        // (negative, prefix, digits) of a number; text is never padded with zeros.
        let (negative, prefix, body) = match conversion {
            's' => return Ok(self.pad_text(self.truncated(python_str(arg)))),
            'r' | 'a' => return Ok(self.pad_text(self.truncated(python_repr(arg)))),
            'c' => {
                let text = match arg.as_str() {
                    Some(text) => text.to_string(),
                    None => u32::try_from(integer()?)
                        .ok()
                        .and_then(char::from_u32)
                        .map(String::from)
                        .ok_or_else(|| format_error("%c arg not in range(0x110000)"))?,
                };
                return Ok(self.pad_text(text));
            }
            'd' | 'i' | 'u' => (integer()? < 0, "", self.digits(integer()?.unsigned_abs().to_string())),
            'x' | 'X' | 'o' => {
                let value = integer()?;
                let (prefix, digits) = match conversion {
                    'x' => ("0x", format!("{:x}", value.unsigned_abs())),
                    'X' => ("0X", format!("{:X}", value.unsigned_abs())),
                    _ => ("0o", format!("{:o}", value.unsigned_abs())),
                };
                (value < 0, if alternate { prefix } else { "" }, self.digits(digits))
            }
            'f' | 'F' => {
                (number()?.is_sign_negative(), "", format!("{:.*}", self.precision.unwrap_or(6), number()?.abs()))
            }
            'e' | 'E' => {
                let text = python_exponent(&format!("{:.*e}", self.precision.unwrap_or(6), number()?.abs()));
                (number()?.is_sign_negative(), "", if conversion == 'E' { text.to_uppercase() } else { text })
            }
            'g' | 'G' => {
                let text = general(number()?.abs(), self.precision.unwrap_or(6), alternate);
                (number()?.is_sign_negative(), "", if conversion == 'G' { text.to_uppercase() } else { text })
            }
            other => return Err(format_error(format!("unsupported format character '{other}'"))),
        };
        let sign = match negative {
            true => "-",
            false if self.flags.contains('+') => "+",
            false if self.flags.contains(' ') => " ",
            false => "",
        };
        let length = sign.len() + prefix.len() + body.chars().count();
        let pad = self.width.unwrap_or(0).saturating_sub(length);
        Ok(if self.flags.contains('-') {
            format!("{sign}{prefix}{body}{}", " ".repeat(pad))
        } else if self.flags.contains('0') {
            format!("{sign}{prefix}{}{body}", "0".repeat(pad))
        } else {
            format!("{}{sign}{prefix}{body}", " ".repeat(pad))
        })
    }

    fn pad_text(&self, text: String) -> String {
        let pad = " ".repeat(self.width.unwrap_or(0).saturating_sub(text.chars().count()));
        if self.flags.contains('-') { format!("{text}{pad}") } else { format!("{pad}{text}") }
    }

    fn truncated(&self, text: String) -> String {
        match self.precision {
            Some(precision) => text.chars().take(precision).collect(),
            None => text,
        }
    }

    /// An integer's digits, zero-padded to the precision.
    fn digits(&self, digits: String) -> String {
        format!("{}{digits}", "0".repeat(self.precision.unwrap_or(0).saturating_sub(digits.len())))
    }
}

/// Python's `%g`: `%e` or `%f` by the exponent, trailing zeros dropped unless `#`.
fn general(x: f64, precision: usize, alternate: bool) -> String {
    let precision = precision.max(1);
    if x == 0.0 {
        return if alternate { format!("{:.*}", precision - 1, 0.0) } else { "0".into() };
    }
    let exponent_form = format!("{:.*e}", precision - 1, x);
    let exponent: i32 = exponent_form.split_once('e').and_then(|(_, e)| e.parse().ok()).unwrap_or(0);
    let text = if exponent < -4 || exponent >= precision as i32 {
        python_exponent(&exponent_form)
    } else {
        format!("{:.*}", (precision as i32 - 1 - exponent).max(0) as usize, x)
    };
    if alternate {
        return text;
    }
    let (mantissa, exponent) = match text.split_once('e') {
        Some((mantissa, exponent)) => (mantissa.to_string(), format!("e{exponent}")),
        None => (text, String::new()),
    };
    let mantissa = if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        mantissa
    };
    format!("{mantissa}{exponent}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        let value = Value::from(minijinja::value::Serde(serde_json::json!({
            "s": "it's", "q": "a\"b'c", "n": null, "t": true, "i": 3, "f": 0.5, "l": [1, "x", false]
        })));
        assert_eq!(
            python_str(&value),
            r#"{'s': "it's", 'q': 'a"b\'c', 'n': None, 't': True, 'i': 3, 'f': 0.5, 'l': [1, 'x', False]}"#
        );
        assert_eq!(python_str(&Value::from("plain")), "plain");
        assert_eq!(python_str(&Value::from(Tuple::from([Value::from(1)]))), "(1,)");
    }

    #[test]
    fn python_floats() {
        assert_eq!(python_float(5.0), "5.0");
        assert_eq!(python_float(1e16), "1e+16");
        assert_eq!(python_float(1e15), "1000000000000000.0");
        assert_eq!(python_float(1.5e-5), "1.5e-05");
        assert_eq!(python_float(0.0001), "0.0001");
        assert_eq!(python_float(-2.25), "-2.25");
    }

    #[test]
    fn python_ints() {
        let int = |text: &str, base: u32| python_int_of_str(text, base).unwrap();
        assert_eq!(int(" 42 ", 10), Some(42));
        assert_eq!(int("0x1A", 16), Some(26));
        assert_eq!(int("0x1A", 0), Some(26));
        assert_eq!(int("1_000", 10), Some(1000));
        assert_eq!(int("3.7", 10), None);
        assert_eq!(int("-12", 8), Some(-10));
        assert_eq!(int("", 10), None);
        assert_eq!(int("19", 8), None);
        assert!(python_int_of_str("1".repeat(50).as_str(), 10).is_err());
    }
}
