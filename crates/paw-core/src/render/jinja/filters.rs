//! Filters that follow Jinja2's code.

use super::*;

/// `dictsort(case_sensitive=False, by="key", reverse=False)`: a list of `(key, value)` tuples.
pub(super) fn dictsort(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [case_sensitive, by, reverse] = params(&args, &kwargs, ["case_sensitive", "by", "reverse"])?;
    let mut named: Vec<(&str, Value)> = vec![("case_sensitive", Value::from(opt_bool(case_sensitive)))];
    named.push(("reverse", Value::from(opt_bool(reverse))));
    if let Some(by) = by {
        if !matches!(by.as_str(), Some("key" | "value")) {
            return Err(Error::new(ErrorKind::InvalidOperation, r#"You can only sort by either "key" or "value""#));
        }
        named.push(("by", by));
    }
    let sorted = minijinja::filters::dictsort(value, Kwargs::from_iter(named))?;
    let pairs: Vec<Value> = sorted
        .try_iter()?
        .map(|pair| Value::from(Tuple::from(pair.try_iter().into_iter().flatten().collect::<Vec<_>>())))
        .collect();
    Ok(Value::from(pairs))
}

/// `groupby(attribute, default=None, case_sensitive=False)`: `(grouper, list)` tuples, sorted by
/// grouper, as Jinja2 makes them (`sorted`, then `itertools.groupby`).
pub(super) fn groupby(value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [attribute, default, case_sensitive] = params(&args, &kwargs, ["attribute", "default", "case_sensitive"])?;
    let attribute = attribute.ok_or_else(|| Error::from(ErrorKind::MissingArgument))?;
    let default = default.filter(|default| !default.is_none());
    let case_sensitive = opt_bool(case_sensitive);
    // Jinja2 sorts and groups by the lower-cased grouper, and names a group by its first item's.
    let fold = |grouper: &Value| match grouper.as_str() {
        Some(text) if !case_sensitive => Value::from(text.to_lowercase()),
        _ => grouper.clone(),
    };
    not_none(&value)?;
    let mut keyed = Vec::new();
    for item in value.try_iter()? {
        // An attribute of None is the item itself (Jinja2's `make_attrgetter`).
        let found = if attribute.is_none() { Ok(item.clone()) } else { attribute_of(&item, &attribute) };
        let grouper = match (found, &default) {
            (Ok(grouper), _) => grouper,
            (Err(_), Some(default)) => default.clone(),
            (Err(err), None) => return Err(err),
        };
        keyed.push((fold(&grouper), grouper, item));
    }
    super::compare::check_orderable(keyed.iter().map(|(key, _, _)| key))?;
    keyed.sort_by(|a, b| super::compare::ordering(&a.0, &b.0).unwrap_or(std::cmp::Ordering::Equal));
    let mut groups: Vec<(Value, Value, Vec<Value>)> = Vec::new();
    for (key, grouper, item) in keyed {
        match groups.last_mut() {
            Some((last, _, items)) if *last == key => items.push(item),
            _ => groups.push((key, grouper, vec![item])),
        }
    }
    let groups =
        groups.into_iter().map(|(_, grouper, items)| Value::from_object(Group { grouper, list: Value::from(items) }));
    Ok(Value::from(groups.collect::<Vec<_>>()))
}

/// `replace(old, new, count=None)`: Python's `str.replace` on the text of each (`soft_str`).
pub(super) fn replace(state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [old, new, count] = params(&args, &kwargs, ["old", "new", "count"])?;
    let (Some(old), Some(new)) = (old, new) else { return Err(Error::from(ErrorKind::MissingArgument)) };
    let (text, old, new) = (str_of(state, value)?, str_of(state, &old)?, str_of(state, &new)?);
    let count = count.filter(|count| !count.is_none()).map(|count| python_index(&count)).transpose()?;
    let replaced = match count {
        Some(count) if count >= 0 => {
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            ensure_size("replace", text.len() as u128 + new.len() as u128 * count.min(text.len() + 1) as u128)?;
            text.replacen(&old, &new, count)
        }
        _ => {
            ensure_size("replace", text.len() as u128 + new.len() as u128 * (text.len() as u128 + 1))?;
            text.replace(&old, &new)
        }
    };
    Ok(Value::from(replaced))
}

/// `sum(attribute=None, start=0)`.
pub(super) fn sum(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [attribute, start] = params(&args, &kwargs, ["attribute", "start"])?;
    if start.as_ref().is_some_and(|start| start.kind() == ValueKind::String) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "sum() can't sum strings (Jinja2 raises TypeError here): use join",
        ));
    }
    let keys: Vec<Value> = keyed_items(state, &value, attribute, false)?.into_iter().map(|(key, _)| key).collect();
    minijinja::filters::sum(state, Value::from(keys), None, start, Kwargs::from_iter::<[(&str, Value); 0]>([]))
}

/// `join(d="", attribute=None)`: the separator and the items made text as Python's `str()` does.
pub(super) fn join(state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [separator, attribute] = params(&args, &kwargs, ["d", "attribute"])?;
    let separator = separator.map(|separator| str_of(state, &separator)).transpose()?.unwrap_or_default();
    let mut joined = String::new();
    for (index, (key, _)) in keyed_items(state, value, attribute, false)?.into_iter().enumerate() {
        if index > 0 {
            joined.push_str(&separator);
        }
        joined.push_str(&str_of(state, &key)?);
        ensure_size("join", joined.len() as u128)?;
    }
    Ok(Value::from(joined))
}

/// `sort(reverse=False, case_sensitive=False, attribute=None)`: a stable sort by Python's order,
/// which raises where two keys cannot be ordered.
pub(super) fn sort(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [reverse, case_sensitive, attribute] = params(&args, &kwargs, ["reverse", "case_sensitive", "attribute"])?;
    // Python's `sorted(reverse=...)` takes an int that fits a C int.
    let reverse = match reverse {
        None => false,
        Some(reverse) => {
            i32::try_from(python_index(&reverse)?).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    "Python int too large to convert to C int (Jinja2 raises OverflowError here)",
                )
            })? != 0
        }
    };
    let mut keyed = keyed_items(state, &value, attribute, !opt_bool(case_sensitive))?;
    super::compare::check_orderable(keyed.iter().map(|(key, _)| key))?;
    keyed.sort_by(|a, b| {
        let order = super::compare::ordering(&a.0, &b.0).unwrap_or(std::cmp::Ordering::Equal);
        if reverse { order.reverse() } else { order }
    });
    Ok(Value::from(keyed.into_iter().map(|(_, item)| item).collect::<Vec<_>>()))
}

/// `min` and `max` (`case_sensitive=False, attribute=None`): the first item whose key is least
/// (`wanted` Less) or greatest; an empty sequence gives Jinja2's undefined.
pub(super) fn extreme(
    state: &State,
    value: Value,
    args: Rest<Value>,
    kwargs: Kwargs,
    wanted: std::cmp::Ordering,
) -> Result<Value, Error> {
    let [case_sensitive, attribute] = params(&args, &kwargs, ["case_sensitive", "attribute"])?;
    let keyed = keyed_items(state, &value, attribute, !opt_bool(case_sensitive))?;
    super::compare::check_orderable(keyed.iter().map(|(key, _)| key))?;
    let mut best: Option<&(Value, Value)> = None;
    for pair in &keyed {
        if best.is_none_or(|best| super::compare::ordering(&pair.0, &best.0).ok() == Some(wanted)) {
            best = Some(pair);
        }
    }
    Ok(best.map_or(Value::UNDEFINED, |(_, item)| item.clone()))
}

/// `unique(case_sensitive=False, attribute=None)`: the items whose key was not seen before.
pub(super) fn unique(state: &State, value: Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [case_sensitive, attribute] = params(&args, &kwargs, ["case_sensitive", "attribute"])?;
    let mut seen: Vec<Value> = Vec::new();
    let mut kept = Vec::new();
    for (key, item) in keyed_items(state, &value, attribute, !opt_bool(case_sensitive))? {
        super::compare::hashable(&key)?;
        if !seen.contains(&key) {
            seen.push(key);
            kept.push(item);
        }
    }
    Ok(Value::from(kept))
}

/// The items of an iterable, each with the key Jinja2 sorts, compares, sums or joins it by: the
/// item itself or its `attribute=` (`make_attrgetter`), lower case where `fold` is set and it is a
/// string (Jinja2's `ignore_case`).
pub(super) fn keyed_items(
    state: &State,
    value: &Value,
    attribute: Option<Value>,
    fold: bool,
) -> Result<Vec<(Value, Value)>, Error> {
    not_undefined(state, value)?;
    not_none(value)?;
    let attribute = attribute.filter(|attribute| !attribute.is_none());
    if let Some(attribute) = &attribute {
        not_undefined(state, attribute)?;
    }
    value
        .try_iter()?
        .map(|item| {
            let key = match &attribute {
                Some(attribute) => attribute_of(&item, attribute)?,
                None => item.clone(),
            };
            let key = match key.as_str() {
                Some(text) if fold => Value::from(text.to_lowercase()),
                _ => key,
            };
            Ok((key, item))
        })
        .collect()
}

/// `map(attribute=...)` refuses an item without the attribute (unless a `default` is given); the
/// rest is minijinja's.
pub(super) fn map(state: &mut State, value: Value, args: Rest<ValueOrKwargs>) -> Result<Vec<Value>, Error> {
    let args = args.into_values();
    if let Some(kwargs) = args.last().filter(|last| last.is_kwargs())
        && kwargs.get_attr("default").is_ok_and(|default| default.is_undefined())
        && let Ok(attribute) = kwargs.get_attr("attribute")
        && !attribute.is_undefined()
    {
        keyed_items(state, &value, Some(attribute), false)?;
    }
    let args = args.iter().map(|arg| ValueOrKwargs::from_value(Some(arg))).collect::<Result<_, _>>()?;
    minijinja::filters::map(state, value, Rest(args))
}

/// What Jinja2's `attribute=` argument picks from an item (its `make_attrgetter`): a dotted path
/// whose parts of digits index, or an index. Where the item has none, Jinja2 gets its Undefined,
/// which raises where it is compared or added and prints nothing elsewhere; paw refuses it by
/// name (one of the README's documented differences).
pub(super) fn attribute_of(item: &Value, attribute: &Value) -> Result<Value, Error> {
    let parts: Vec<Value> = match attribute.as_str() {
        Some(path) => path
            .split('.')
            .map(|part| match part.parse::<u64>() {
                Ok(index) if part.bytes().all(|byte| byte.is_ascii_digit()) => Value::from(index),
                _ => Value::from(part),
            })
            .collect(),
        None => vec![attribute.clone()],
    };
    let mut found = item.clone();
    for part in &parts {
        // Python indexes a string or a sequence by an int only (a bool is one).
        let indexable = matches!(found.kind(), ValueKind::String | ValueKind::Seq | ValueKind::Iterable);
        let index = part.is_integer() || part.kind() == ValueKind::Bool;
        let part = if part.kind() == ValueKind::Bool { Value::from(i64::from(part.is_true())) } else { part.clone() };
        let looked_up = if indexable && !index { None } else { found.get_item(&part).ok() };
        found = looked_up.filter(|value| !value.is_undefined()).ok_or_else(|| {
            Error::new(
                ErrorKind::UndefinedError,
                format!("an item ({}) has no {}", super::compare::type_name(item), python_repr(attribute)),
            )
        })?;
    }
    Ok(found)
}

/// `trim(chars=None)`: Python's `str.strip`, of whitespace or of the given characters.
pub(super) fn trim(state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [chars] = params(&args, &kwargs, ["chars"])?;
    let text = str_of(state, value)?;
    let trimmed = match chars.filter(|chars| !chars.is_none()) {
        None => text.trim(),
        Some(chars) => {
            let chars: Vec<char> = chars
                .as_str()
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "trim's characters must be a string, not {} (Jinja2 raises TypeError here)",
                            super::compare::type_name(&chars)
                        ),
                    )
                })?
                .chars()
                .collect();
            text.trim_matches(chars.as_slice())
        }
    };
    Ok(Value::from(trimmed))
}

/// `filesizeformat(binary=False)`.
pub(super) fn filesizeformat(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
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
        return Ok(format!("{} Bytes", float_to_int(bytes.trunc())?));
    }
    // Python's `f"{x:.1f}"`: `nan` and `inf` in lower case.
    let one_decimal = |x: f64| if x.is_finite() { format!("{x:.1}") } else { python_float(x) };
    let mut unit = base;
    for (index, prefix) in prefixes.iter().enumerate() {
        unit = base.powi(index as i32 + 2);
        if bytes < unit {
            return Ok(format!("{} {prefix}", one_decimal(base * bytes / unit)));
        }
    }
    Ok(format!("{} {}", one_decimal(base * bytes / unit), prefixes[prefixes.len() - 1]))
}

/// Python's `float(x)` of a number, a bool or a string; None where Python raises.
pub(super) fn python_float_of(value: &Value) -> Option<f64> {
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
pub(super) fn python_int_of_str(text: &str, base: u32) -> Result<Option<i128>, Error> {
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
pub(super) fn big_integer() -> Error {
    Error::new(ErrorKind::InvalidOperation, "paw does not support integers beyond 128 bits (Jinja2's have no bound)")
}

/// An integral float as an integer, as Python's `int(x)` (Python: any size; paw: 128 bits).
pub(super) fn float_to_int(float: f64) -> Result<i128, Error> {
    let truncated = float.trunc();
    if truncated.abs() >= 2f64.powi(127) {
        return Err(big_integer());
    }
    Ok(truncated as i128)
}

/// `float(default=0.0)`.
pub(super) fn float(state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [default] = params(&args, &kwargs, ["default"])?;
    not_undefined(state, value)?;
    Ok(python_float_of(value).map(Value::from).unwrap_or_else(|| default.unwrap_or(Value::from(0.0))))
}

/// `int(default=0, base=10)`: `int(text, base)`, else `int(float(value))`, else the default
/// (a base Python refuses is such a failure too).
pub(super) fn int(state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [default, base] = params(&args, &kwargs, ["default", "base"])?;
    not_undefined(state, value)?;
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
pub(super) fn python_splitlines(text: &str) -> Vec<&str> {
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
pub(super) fn indent(state: &State, value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let value = text_of(state, "indent", value)?;
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
pub(super) fn pprint(value: &Value) -> Result<String, Error> {
    let text = repr_with(value, true);
    if text.chars().count() > 80 {
        return Err(unsupported("filter", "pprint", "values longer than 80 characters are laid out by pprint's rules"));
    }
    Ok(text)
}

/// `tojson(indent=None)`: `json.dumps(value, sort_keys=True)`, ASCII only, with `<`, `>`, `&`
/// and `'` escaped for HTML.
pub(super) fn tojson(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [indent] = params(&args, &kwargs, ["indent"])?;
    // Python's json: an int indents by that many spaces, a string by itself; anything else raises.
    let indent = match indent.filter(|indent| !indent.is_none()) {
        None => None,
        Some(indent) if indent.as_str().is_some() => Some(indent.as_str().unwrap_or_default().to_string()),
        Some(indent) => match python_index(&indent) {
            Ok(width) if value.kind() == ValueKind::String => Some(" ".repeat(width.clamp(0, 64) as usize)),
            Ok(width) => {
                // Python makes the indent string first (`" " * indent`).
                ensure_size("tojson's indent", width.max(0) as u128)?;
                Some(" ".repeat(width.max(0) as usize))
            }
            // Python's json writes a string before it looks at the indent.
            Err(_) if value.kind() == ValueKind::String => None,
            Err(err) => return Err(err),
        },
    };
    let mut out = String::new();
    python_json(value, indent.as_deref(), 0, &mut out)?;
    let out = out.replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026").replace('\'', "\\u0027");
    Ok(Value::from_safe_string(out))
}

pub(super) fn python_json(value: &Value, indent: Option<&str>, depth: usize, out: &mut String) -> Result<(), Error> {
    let newline = |out: &mut String, depth: usize| -> Result<(), Error> {
        if let Some(unit) = indent {
            ensure_size("tojson", out.len() as u128 + unit.len() as u128 * depth as u128)?;
            out.push('\n');
            out.push_str(&unit.repeat(depth));
        }
        Ok(())
    };
    let separator = if indent.is_some() { "," } else { ", " };
    if is_range(value) {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "Object of type range is not JSON serializable (Jinja2 raises TypeError here)",
        ));
    }
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
pub(super) fn json_string(text: &str, out: &mut String) {
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
pub(super) fn truncate(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
    let [length, killwords, end, leeway] = params(&args, &kwargs, ["length", "killwords", "end", "leeway"])?;
    if matches!(value.kind(), ValueKind::Number | ValueKind::Bool | ValueKind::None) {
        return Err(no_len(value));
    }
    let text = python_str(value);
    let chars: Vec<char> = text.chars().collect();
    // `len(s)`: a list's or a dict's is its items'.
    let len = match value.kind() {
        ValueKind::Seq | ValueKind::Map => value.len().unwrap_or(0),
        _ => chars.len(),
    };
    let end = end.unwrap_or(Value::from("..."));
    let end_len = match end.kind() {
        ValueKind::String => end.as_str().unwrap_or_default().chars().count(),
        ValueKind::Seq | ValueKind::Map => end.len().unwrap_or(0),
        _ => return Err(no_len(&end)),
    };
    // Jinja2 asserts `length >= len(end)` and `leeway >= 0`, then compares `len(s) <= length +
    // leeway` (a float length passes all three); only then does it slice by the length.
    let length = length.unwrap_or(Value::from(255));
    let number = |value: &Value| match value.kind() {
        ValueKind::Number | ValueKind::Bool => Ok(python_float_of(value).unwrap_or(f64::NAN)),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot compare {} with int (Jinja2 raises TypeError here)", super::compare::type_name(value)),
        )),
    };
    let assertion = |what: &str, wanted: usize, got: &Value| {
        Error::new(ErrorKind::InvalidOperation, format!("expected {what} >= {wanted}, got {}", python_str(got)))
    };
    if number(&length)? < end_len as f64 {
        return Err(assertion("length", end_len, &length));
    }
    let leeway = leeway.unwrap_or(Value::from(5));
    if number(&leeway)? < 0.0 {
        return Err(assertion("leeway", 0, &leeway));
    }
    if len as f64 <= number(&length)? + number(&leeway)? {
        return Ok(text);
    }
    if len != chars.len() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("truncate cuts text, not a {} (Jinja2 raises here)", super::compare::type_name(value)),
        ));
    }
    let length = python_index(&length)? as usize;
    let Some(end) = end.as_str() else {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("cannot add a {} to a string (Jinja2 raises TypeError here)", super::compare::type_name(&end)),
        ));
    };
    let kept: String = chars[..length - end_len].iter().collect();
    if opt_bool(killwords) {
        return Ok(format!("{kept}{end}"));
    }
    // Jinja2: `s[: length - len(end)].rsplit(" ", 1)[0]`.
    let kept = kept.rsplit_once(' ').map_or(kept.as_str(), |(head, _)| head);
    Ok(format!("{kept}{end}"))
}

/// `urlencode`: a string quoted with `/` kept; a dict or pairs as a query string (spaces as `+`).
pub(super) fn urlencode(value: &Value) -> Result<String, Error> {
    let pairs: Vec<(Value, Value)> = match value.kind() {
        ValueKind::Map => {
            value.try_iter()?.map(|key| value.get_item(&key).map(|item| (key, item))).collect::<Result<_, _>>()?
        }
        ValueKind::Seq | ValueKind::Iterable => value
            .try_iter()?
            .map(|pair| match pair.len() {
                Some(2) => Ok((pair.get_item_by_index(0)?, pair.get_item_by_index(1)?)),
                _ => Err(Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "urlencode takes (key, value) pairs, not {} (Jinja2 raises ValueError here)",
                        python_str(&pair)
                    ),
                )),
            })
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
pub(super) fn url_quote(text: &str, for_query: bool) -> String {
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
pub(super) fn markup_escape(text: &str) -> String {
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
pub(super) fn xmlattr(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<Value, Error> {
    let [autospace] = params(&args, &kwargs, ["autospace"])?;
    if value.kind() != ValueKind::Map {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "xmlattr takes a dict, not {} (Jinja2 raises AttributeError here)",
                super::compare::type_name(value)
            ),
        ));
    }
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

/// The string a filter that works on text gets: Jinja2's string filters take `str`, and raise on
/// anything else where Python would. An undefined value is refused as minijinja refuses it, naming
/// the undefined name.
pub(super) fn text_of(state: &State, filter: &str, value: &Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::String => Ok(value.as_str().unwrap_or_default().to_string()),
        ValueKind::Undefined => not_undefined(state, value).map(|()| String::new()),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("{filter} takes a string, not {} (Jinja2 raises here)", super::compare::type_name(value)),
        )),
    }
}

/// The text Jinja2's string filters make of a value (`soft_str`: Python's `str()`); an undefined
/// value is refused by name.
pub(super) fn str_of(state: &State, value: &Value) -> Result<String, Error> {
    not_undefined(state, value)?;
    Ok(python_str(value))
}

/// Python's `TypeError` where none is iterated (minijinja iterates it as empty).
pub(super) fn not_none(value: &Value) -> Result<(), Error> {
    if value.is_none() {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            "'NoneType' object is not iterable (Jinja2 raises TypeError here)",
        ));
    }
    Ok(())
}

/// minijinja's own refusal of an undefined value where a concrete one is needed (it names the
/// undefined name); Ok for any other value.
pub(super) fn not_undefined(state: &State, value: &Value) -> Result<(), Error> {
    <std::borrow::Cow<'_, str> as minijinja::value::ArgType>::from_state_and_value(Some(state), Some(value)).map(|_| ())
}

/// Python's `len()` of a value that has none.
fn no_len(value: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!("a {} has no length (Jinja2 raises TypeError here)", super::compare::type_name(value)),
    )
}
