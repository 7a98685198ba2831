//! Jinja2 3.1 as the seed renders templates (`jinja2.Template(text)`): minijinja, with what differs
//! from Jinja2 replaced, what paw cannot match refused by name, and values printed as Python does.
//! Each replacement follows Jinja2's own code; `tests/jinja/corpus.txt` holds the proof, compared
//! byte for byte with what Jinja2 renders.

use std::fmt::Write as _;
use std::sync::Arc;

use minijinja::value::{ArgType, Enumerator, Kwargs, Object, ObjectRepr, Rest, Tuple, ValueKind, ValueOrKwargs};
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
    // Jinja2: `namespace(mapping, **values)`, as `dict()` takes them.
    env.add_function("namespace", |state: &State, args: Rest<Value>, kwargs: Kwargs| {
        let (dict, values) = dict_arguments(state, "namespace", &args, &kwargs)?;
        let mut merged: Vec<(String, Value)> = Vec::new();
        if let Some(dict) = dict {
            for key in dict.try_iter()? {
                merged.push((python_str(&key), dict.get_item(&key)?));
            }
        }
        merged.extend(values.into_iter().map(|(name, value)| (name.to_string(), value)));
        minijinja::functions::namespace(Some(ValueOrKwargs::from_value(Some(&Value::from(Kwargs::from_iter(merged))))?))
    });
    env.add_function("dict", |state: &State, args: Rest<Value>, kwargs: Kwargs| {
        let (dict, values) = dict_arguments(state, "dict", &args, &kwargs)?;
        minijinja::functions::dict(dict, Kwargs::from_iter(values))
    });
    env.add_function("range", |args: Rest<Value>| Ok::<_, Error>(Value::from_object(PyRange::new(&args)?)));
    env.add_function("joiner", minijinja_contrib::globals::joiner);
    env.add_filter("center", |state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs| {
        let [width] = params(&args, &kwargs, ["width"])?;
        center(&str_of(state, value)?, opt_int(width, 80)?, ' ')
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
    // Jinja2's string filters make text of the value first (`soft_str`: Python's `str()`, so a
    // float reads `-1e+300`).
    for (name, change) in [
        ("capitalize", python_capitalize as fn(&str) -> String),
        ("lower", str::to_lowercase),
        ("upper", str::to_uppercase),
        ("title", |text: &str| minijinja::filters::title(text.into())),
        ("string", str::to_string),
    ] {
        env.add_filter(name, move |state: &State, value: &Value| Ok::<_, Error>(change(&str_of(state, value)?)));
    }
    env.add_filter("safe", |state: &State, value: &Value| {
        Ok::<_, Error>(Value::from_safe_string(str_of(state, value)?))
    });
    env.add_filter("trim", trim);
    env.add_filter("int", int);
    env.add_filter("items", |value: &Value| dict_view("dict_items", value));
    env.add_filter("pprint", pprint);
    env.add_filter("striptags", |state: &State, value: &Value| {
        Ok::<_, Error>(minijinja_contrib::filters::striptags(str_of(state, value)?))
    });
    env.add_filter("tojson", tojson);
    env.add_filter("truncate", truncate);
    env.add_filter("urlencode", urlencode);
    env.add_filter("wordcount", |state: &State, value: &Value| -> Result<usize, Error> {
        let value = str_of(state, value)?;
        let words = value.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|word| !word.is_empty());
        Ok(words.count())
    });
    env.add_filter("xmlattr", xmlattr);
    env.add_filter("sort", sort);
    env.add_filter("unique", unique);
    env.add_filter("min", |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
        extreme(state, value, args, kwargs, std::cmp::Ordering::Less)
    });
    env.add_filter("max", |state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs| {
        extreme(state, value, args, kwargs, std::cmp::Ordering::Greater)
    });
    env.add_filter("sum", sum);
    env.add_filter("replace", replace);
    env.add_filter("list", |state: &State, value: Value| {
        not_undefined(state, &value)?;
        not_none(&value)?;
        minijinja::filters::list(state, value)
    });
    env.add_filter("join", join);
    env.add_filter("map", map);
    env.add_filter(syntax::ITERABLE_FILTER, |value: Value| not_none(&value).map(|()| value));
    // Python's `abs` and `round` take a bool as the int it is.
    let int_of_bool =
        |value: Value| if value.kind() == ValueKind::Bool { Value::from(i64::from(value.is_true())) } else { value };
    env.add_filter("abs", move |value: Value| minijinja::filters::abs(int_of_bool(value)));
    // `round(x, None)` is an int in Python.
    // (minijinja reads an explicit none as no argument, so the arguments come as they are).
    env.add_filter("round", move |value: Value, args: Rest<Value>, kwargs: Kwargs| {
        let [precision, method] = params(&args, &kwargs, ["precision", "method"])?;
        let method = method
            .map(|method| {
                method.as_str().map(str::to_string).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "method must be 'common', 'ceil' or 'floor'")
                })
            })
            .transpose()?;
        let to_int = precision.as_ref().is_some_and(Value::is_none);
        let precision = precision.filter(|precision| !precision.is_none()).map(|p| python_index(&p)).transpose()?;
        let precision = precision.map(|p| i32::try_from(p).unwrap_or(if p < 0 { i32::MIN } else { i32::MAX }));
        let none = Kwargs::from_iter::<[(&str, Value); 0]>([]);
        let rounded = minijinja::filters::round(int_of_bool(value), precision, method.as_deref(), none)?;
        match f64::try_from(rounded.clone()) {
            Ok(float) if to_int && !rounded.is_integer() => float_to_int(float).map(Value::from),
            _ => Ok(rounded),
        }
    });
    env.add_function(compare::COMPARE_FUNCTION, compare::compare_chain);
    env.add_function(compare::CONCAT_FUNCTION, compare::concat);
    env.add_function(compare::ARITHMETIC_FUNCTION, compare::arithmetic);
    env.add_test("in", |value: &Value, container: &Value| compare::compare(value, "in", container));
    for (names, op) in
        [(["lt", "lessthan"], "<"), (["le", "le"], "<="), (["gt", "greaterthan"], ">"), (["ge", "ge"], ">=")]
    {
        for name in names {
            env.add_test(name, move |value: &Value, other: &Value| compare::compare(value, op, other));
        }
    }
    // Jinja2: `value is other`, Python's identity. None, True and False are one object each, and
    // CPython keeps one object for each int from -5 to 256; whether two equal strings or other
    // numbers are one depends on CPython's interning.
    env.add_test("sameas", |value: &Value, other: &Value| {
        let singleton =
            |value: &Value| matches!(value.kind(), ValueKind::None | ValueKind::Bool | ValueKind::Undefined);
        let small_int =
            |value: &Value| value.is_integer() && value.as_i64().is_some_and(|int| (-5..=256).contains(&int));
        if singleton(value) || singleton(other) || small_int(value) && small_int(other) {
            return Ok(value.kind() == other.kind() && value.is_integer() == other.is_integer() && value == other);
        }
        Err(unsupported("test", "sameas", "on strings and most numbers, Python's answer depends on its interning"))
    });
    env.add_test("even", |value: &Value| compare::remainder_is(value, &Value::from(2), 0));
    env.add_test("odd", |value: &Value| compare::remainder_is(value, &Value::from(2), 1));
    env.add_test("divisibleby", |value: &Value, by: &Value| compare::remainder_is(value, by, 0));
    // Jinja2: `str(value).islower()`, `.isupper()`: some cased letter, and none of the other case.
    env.add_test("lower", |value: &Value| python_is_case(&python_str(value), char::is_lowercase, char::is_uppercase));
    env.add_test("upper", |value: &Value| python_is_case(&python_str(value), char::is_uppercase, char::is_lowercase));
    // Jinja2: `value in env.filters`; a list or a dict is no key ("unhashable").
    env.add_test("filter", |state: &State, value: &Value| {
        compare::hashable(value).map(|()| value.as_str().is_some_and(|name| minijinja::tests::is_filter(state, name)))
    });
    env.add_test("test", |state: &State, value: &Value| {
        compare::hashable(value).map(|()| value.as_str().is_some_and(|name| minijinja::tests::is_test(state, name)))
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

/// Python's `str.capitalize`: the first character upper case, the rest lower case.
fn python_capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars.flat_map(char::to_lowercase)).collect(),
        None => String::new(),
    }
}

fn python_is_case(text: &str, this: fn(char) -> bool, other: fn(char) -> bool) -> bool {
    text.chars().any(this) && !text.chars().any(other)
}

fn unsupported(what: &str, name: &str, why: &str) -> Error {
    Error::new(ErrorKind::InvalidOperation, format!("paw does not support Jinja2's `{name}` {what}: {why}"))
}

/// A dict given as an argument, and keyword arguments in their order.
type DictArguments<'k> = (Option<Value>, Vec<(&'k str, Value)>);

/// The arguments of `dict()` and `namespace()`: at most one dict (minijinja reads none or an
/// undefined value as none given; Python raises), then keywords, in their order.
fn dict_arguments<'k>(
    state: &State,
    function: &str,
    args: &[Value],
    kwargs: &'k Kwargs,
) -> Result<DictArguments<'k>, Error> {
    let dict = match args {
        [] => None,
        [dict] => {
            not_undefined(state, dict)?;
            if dict.kind() != ValueKind::Map {
                return Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "paw does not support {function}() of a {}: give it a dict and keywords",
                        compare::type_name(dict)
                    ),
                ));
            }
            Some(dict.clone())
        }
        _ => {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!("{function}() takes at most one dict (Jinja2 raises TypeError here)"),
            ));
        }
    };
    let values = kwargs.args().map(|name| Ok((name, kwargs.get(name)?))).collect::<Result<_, Error>>()?;
    Ok((dict, values))
}

/// Binds a filter's positional and keyword arguments to its parameters, as Python does.
fn params<const N: usize>(args: &[Value], kwargs: &Kwargs, names: [&str; N]) -> Result<[Option<Value>; N], Error> {
    if args.len() > N {
        return Err(Error::new(ErrorKind::TooManyArguments, format!("takes at most {N} arguments")));
    }
    let mut bound: [Option<Value>; N] = std::array::from_fn(|index| args.get(index).cloned());
    for (index, name) in names.iter().enumerate() {
        if kwargs.has(name) {
            if bound[index].is_some() {
                return Err(Error::new(ErrorKind::InvalidOperation, format!("got multiple values for `{name}`")));
            }
            // An undefined value stays (minijinja's `Option` would read it as none given).
            let value: Value = kwargs.get(name)?;
            if !value.is_none() {
                bound[index] = Some(value);
            }
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

    fn render(template: &str) -> Result<String, String> {
        crate::render::render_template_with(std::path::Path::new("t.pkr.hcl"), template, Value::UNDEFINED)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn namespaces_and_dicts_take_a_dict_and_keywords() {
        let counted = "{% set ns = namespace({'a': 1}, b=2) %}{% for x in [1, 2] %}{% set ns.a = ns.a + x %}{% endfor %}{{ ns.a }},{{ ns.b }}";
        assert_eq!(render(counted).unwrap(), "4,2");
        assert_eq!(render("{{ dict({'z': 1}, b=2, a=3) }}").unwrap(), "{'z': 1, 'b': 2, 'a': 3}");
        assert!(
            render("{% set ns = namespace() %}{{ ns }}")
                .unwrap_err()
                .contains("paw does not support a namespace used as a value")
        );
        assert!(render("{{ dict(none) }}").unwrap_err().contains("dict() of a none"));
    }

    #[test]
    fn ranges_print_and_index_as_python_s() {
        assert_eq!(
            render("{{ range(3) }} {{ range(1, 9, 3)[-1] }} {{ range(5, 0, -2)|list }}").unwrap(),
            "range(0, 3) 7 [5, 3, 1]"
        );
        assert!(render("{{ range(3)|tojson }}").unwrap_err().contains("not JSON serializable"));
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
