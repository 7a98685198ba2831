//! Jinja2 3.1 as the seed renders templates (`jinja2.Template(text)`): minijinja, with what differs
//! from Jinja2 replaced, what paw cannot match refused by name, and values printed as Python does.
//! Each replacement follows Jinja2's own code; `tests/jinja/corpus.txt` holds the proof, compared
//! byte for byte with what Jinja2 renders.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, ObjectRepr, Rest, Tuple, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, UndefinedBehavior, Value};

mod compare;
#[cfg(test)]
mod differential;
mod filters;
#[cfg(test)]
mod fuzz;
mod methods;
pub mod packer_syntax;
mod printf;
mod python;
pub mod syntax;

use filters::*;
use methods::*;
use printf::*;
pub use python::python_str;
use python::*;

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
    env.add_function("cycler", |items: Rest<Value>| {
        if items.0.is_empty() {
            return Err(Error::new(ErrorKind::InvalidOperation, "cycler: at least one item has to be provided"));
        }
        Ok(Value::from_object(Cycler { items: items.0, position: 0.into() }))
    });
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
    // Jinja2 makes text of the value first (`str()`: Python's form of a float, `-1e+300`).
    for (name, change) in [
        ("capitalize", python_capitalize as fn(&str) -> String),
        ("lower", |text: &str| text.to_lowercase()),
        ("upper", |text: &str| text.to_uppercase()),
    ] {
        env.add_filter(name, move |state: &State, value: &Value| -> Result<String, Error> {
            not_undefined(state, value)?;
            Ok(change(&python_str(value)))
        });
    }
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
    env.add_function(compare::COMPARE_FUNCTION, compare::compare_chain);
    env.add_function(compare::CONCAT_FUNCTION, compare::concat);
    for (names, op) in
        [(["lt", "lessthan"], "<"), (["le", "le"], "<="), (["gt", "greaterthan"], ">"), (["ge", "ge"], ">=")]
    {
        for name in names {
            env.add_test(name, move |value: &Value, other: &Value| compare::compare(value, op, other));
        }
    }
    env.add_test("even", |value: &Value| compare::remainder_is(value, &Value::from(2), 0));
    env.add_test("odd", |value: &Value| compare::remainder_is(value, &Value::from(2), 1));
    env.add_test("divisibleby", |value: &Value, by: &Value| compare::remainder_is(value, by, 0));
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

/// Python's `str.capitalize`: the first character upper case, the rest lower case.
fn python_capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
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
