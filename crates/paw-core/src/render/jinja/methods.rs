//! Python's methods on strings, lists and dicts, where minijinja-contrib's pycompat lacks or
//! renders them differently.

use super::*;

/// The methods minijinja-contrib's pycompat lacks or renders differently; the rest go to it.
pub(super) fn call_method(state: &mut State, value: &Value, method: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(text) = value.as_str()
        && let Some(result) = string_method(text, method, args)?
    {
        return Ok(result);
    }
    match (value.kind(), method) {
        (ValueKind::Map, "keys" | "values" | "items") if !args.is_empty() => {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("dict.{method}() takes no arguments (Jinja2 raises TypeError here)"),
            ));
        }
        // Python's `dict.get(key, default=None)`: the default as it is, an undefined one too.
        (ValueKind::Map, "get") if (1..=2).contains(&args.len()) && !args[1..].iter().any(Value::is_kwargs) => {
            super::compare::hashable(&args[0])?;
            let found = value.get_item(&args[0]).ok().filter(|found| !found.is_undefined());
            return Ok(found.unwrap_or_else(|| args.get(1).cloned().unwrap_or(Value::from(()))));
        }
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
    // pycompat takes `keepends` as a bool only; Python takes any int.
    if method == "splitlines" && args.first().is_some_and(Value::is_integer) {
        if args[0].as_i64().and_then(|keepends| i32::try_from(keepends).ok()).is_none() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "Python int too large to convert to C int (Jinja2 raises OverflowError here)",
            ));
        }
        let keepends = [Value::from(args[0].is_true())];
        return minijinja_contrib::pycompat::unknown_method_callback(state, value, method, &keepends);
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

pub(super) fn string_method(text: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
    check_str_arguments(method, args)?;
    if matches!(method, "split" | "rsplit" | "partition" | "rpartition")
        && args.first().and_then(Value::as_str) == Some("")
    {
        return Err(Error::new(ErrorKind::InvalidOperation, "empty separator (Jinja2 raises ValueError here)"));
    }
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
            let Some(slice) = sliced(text, args) else { return Ok(Some(Value::from(false))) };
            let candidates: Vec<Value> = match args.first() {
                Some(tuple) if tuple.is_tuple() => tuple.try_iter()?.collect(),
                Some(single) => vec![single.clone()],
                None => return Err(Error::from(ErrorKind::MissingArgument)),
            };
            let found = candidates.iter().filter_map(Value::as_str).any(|candidate| {
                if method == "startswith" { slice.1.starts_with(candidate) } else { slice.1.ends_with(candidate) }
            });
            Value::from(found)
        }
        "count" => Value::from(
            sliced(text, args).map_or(0, |(_, slice)| slice.matches(arg_str(0).unwrap_or_default()).count()),
        ),
        "find" | "rfind" | "index" | "rindex" => {
            let needle = arg_str(0).unwrap_or_default();
            let found = sliced(text, args).and_then(|(start, slice)| {
                let byte = if method.starts_with('r') { slice.rfind(needle) } else { slice.find(needle) };
                byte.map(|byte| start + slice[..byte].chars().count())
            });
            match (found, method) {
                (Some(at), _) => Value::from(at),
                (None, "find" | "rfind") => Value::from(-1),
                (None, _) => return Err(Error::new(ErrorKind::InvalidOperation, "substring not found")),
            }
        }
        "removeprefix" => Value::from(arg_str(0).and_then(|prefix| text.strip_prefix(prefix)).unwrap_or(text)),
        "removesuffix" => Value::from(arg_str(0).and_then(|suffix| text.strip_suffix(suffix)).unwrap_or(text)),
        _ => return Ok(None),
    };
    Ok(Some(result))
}

/// The part of `text` that a str method's `start` and `end` (its second and third arguments,
/// ints or None) select, as Python's slice does, with where it starts in characters; None where
/// the start is past the end of the text (Python's `find` then finds nothing, even "").
fn sliced(text: &str, args: &[Value]) -> Option<(usize, String)> {
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len() as i64;
    let bound = |index: usize, default: i64| {
        args.get(index).and_then(Value::as_i64).map_or(default, |at| if at < 0 { (len + at).max(0) } else { at })
    };
    let (start, end) = (bound(1, 0), bound(2, len).min(len));
    if start > len {
        return None;
    }
    let (start, end) = (start as usize, end.max(start) as usize);
    Some((start, chars[start..end].iter().collect()))
}

/// What a parameter of a str method takes, as Python checks it.
#[derive(Clone, Copy)]
enum Param {
    Str,
    /// A string or None (`strip`'s characters, `split`'s separator).
    StrOrNone,
    /// An int (a bool is one).
    Int,
    /// An int or None: a slice's bound.
    Bound,
    /// A string or a tuple of strings (`startswith`).
    Prefixes,
    /// Anything that iterates over strings (`join`).
    Strings,
}

/// Python's signature of the str methods paw and pycompat implement: how many arguments are
/// required, and each parameter; None for a method paw does not check.
fn str_signature(method: &str) -> Option<(usize, &'static [Param])> {
    use Param::*;
    Some(match method {
        "capitalize" | "casefold" | "isalnum" | "isalpha" | "isascii" | "isdecimal" | "isdigit" | "isidentifier"
        | "islower" | "isnumeric" | "isprintable" | "isspace" | "istitle" | "isupper" | "lower" | "swapcase"
        | "title" | "upper" => (0, &[]),
        "strip" | "lstrip" | "rstrip" => (0, &[StrOrNone]),
        "split" | "rsplit" => (0, &[StrOrNone, Int]),
        "splitlines" | "expandtabs" => (0, &[Int]),
        "startswith" | "endswith" => (1, &[Prefixes, Bound, Bound]),
        "count" | "find" | "rfind" | "index" | "rindex" => (1, &[Str, Bound, Bound]),
        "removeprefix" | "removesuffix" | "partition" | "rpartition" => (1, &[Str]),
        "replace" => (2, &[Str, Str, Int]),
        "center" | "ljust" | "rjust" => (1, &[Int, Str]),
        "zfill" => (1, &[Int]),
        "join" => (1, &[Strings]),
        _ => return None,
    })
}

/// Refuses a str method's arguments where Python raises `TypeError`: too few or too many, a
/// keyword where the method takes none, or a value of the wrong type.
fn check_str_arguments(method: &str, args: &[Value]) -> Result<(), Error> {
    let Some((required, params)) = str_signature(method) else { return Ok(()) };
    let type_error = |what: String| {
        Error::new(ErrorKind::InvalidOperation, format!("str.{method}() {what} (Jinja2 raises TypeError here)"))
    };
    if let Some(kwargs) = args.last().filter(|last| last.is_kwargs()) {
        // Python's keywords (`split(maxsplit=1)`) go to pycompat as they are.
        let keywords: &[&str] = match method {
            "split" | "rsplit" => &["sep", "maxsplit"],
            "splitlines" => &["keepends"],
            "expandtabs" => &["tabsize"],
            _ => return Err(type_error("takes no keyword arguments".into())),
        };
        let names: Vec<Value> = kwargs.try_iter()?.collect();
        if let Some(name) = names.iter().find(|name| !name.as_str().is_some_and(|name| keywords.contains(&name))) {
            return Err(type_error(format!("takes no keyword argument {}", python_repr(name))));
        }
        if args.len() - 1 + names.len() > params.len() {
            return Err(type_error(format!("takes at most {} arguments", params.len())));
        }
        return Ok(());
    }
    if args.len() < required || args.len() > params.len() {
        let takes = match (required, params.len()) {
            (0, 0) => "no arguments".to_string(),
            (low, high) if low == high => format!("exactly {low} argument{}", if low == 1 { "" } else { "s" }),
            (low, high) => format!("{low} to {high} arguments"),
        };
        return Err(type_error(format!("takes {takes} ({} given)", args.len())));
    }
    for (index, (arg, param)) in args.iter().zip(params).enumerate() {
        let int = matches!(arg.kind(), ValueKind::Bool) || arg.is_integer();
        let fits = match param {
            Param::Str => arg.as_str().is_some(),
            Param::StrOrNone => arg.as_str().is_some() || arg.is_none(),
            Param::Int => int,
            Param::Bound => int || arg.is_none(),
            Param::Prefixes if arg.is_tuple() => arg.try_iter()?.all(|item| item.as_str().is_some()),
            Param::Prefixes => arg.as_str().is_some(),
            Param::Strings => match arg.try_iter() {
                Ok(mut items) => items.all(|item| item.as_str().is_some()),
                Err(_) => false,
            },
        };
        if !fits {
            let wanted = match param {
                Param::Str => "a string",
                Param::StrOrNone => "a string or None",
                Param::Int => "an int",
                Param::Bound => "an int or None",
                Param::Prefixes => "a string or a tuple of strings",
                Param::Strings => "an iterable of strings",
            };
            return Err(type_error(format!(
                "takes {wanted} as argument {}, not {}",
                index + 1,
                super::compare::type_name(arg)
            )));
        }
    }
    Ok(())
}

/// Python's `str.center`: the odd pad goes left when the width is odd; a width at most the
/// text's length (or negative) leaves it as it is.
pub(super) fn center(text: &str, width: i64, fill: char) -> Result<String, Error> {
    let count = text.chars().count() as i64;
    if width <= count {
        return Ok(text.to_string());
    }
    let margin = width - count;
    let left = margin / 2 + (margin & width & 1);
    let fill = fill.to_string();
    Ok(format!("{}{text}{}", repeated("center", &fill, left)?, repeated("center", &fill, margin - left)?))
}
