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

pub(super) fn string_method(text: &str, method: &str, args: &[Value]) -> Result<Option<Value>, Error> {
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
