//! printf-style formatting: the `format` filter, `"..." % args` in Python.

use super::*;

/// `format(*args, **kwargs)`: `value % args`, or `value % kwargs` for `%(name)s`.
pub(super) fn format(value: &Value, args: Rest<Value>, kwargs: Kwargs) -> Result<String, Error> {
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

pub(super) fn format_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, message.into())
}

/// Python's `%` operator on a string, with positional `args` or a `mapping`.
pub(super) fn printf(template: &str, args: &[Value], mapping: Option<&[(String, Value)]>) -> Result<String, Error> {
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

pub(super) struct Spec<'a> {
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
pub(super) fn general(x: f64, precision: usize, alternate: bool) -> String {
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
