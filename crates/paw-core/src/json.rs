//! JSON with comments and trailing commas, read so that every error points at a file, line and column.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Location, Result};

/// A JSON object read from a file, with the comment-free text kept to locate keys in error messages.
#[derive(Debug, Clone)]
pub struct JsonFile {
    pub path: PathBuf,
    /// The file's text with comments and trailing commas blanked out; line and column are unchanged.
    text: String,
    pub object: Map<String, Value>,
    /// The keys set from outside the file (`--param`), with where: messages about them point there.
    overridden: Vec<(String, String)>,
}

impl JsonFile {
    pub fn load(path: &Path) -> Result<JsonFile> {
        let mut text = read_text(path)?;
        if text.trim().is_empty() {
            return Err(config_error("the file is empty; it must hold a JSON object")
                .in_file(path)
                .help("write a JSON object such as {\"key\": \"value\"}"));
        }
        let original = text.clone();
        json_strip_comments::strip(&mut text).map_err(|_| unclosed_comment(path, &original, 0))?;
        let value: Value = serde_json::from_str(&text).map_err(|err| {
            // Stripping blanks an unclosed /* comment up to the end, which then reads as a short file.
            let content_end = text.trim_end().len();
            if err.is_eof() && original[content_end..].trim_start().starts_with("/*") {
                return unclosed_comment(path, &original, content_end);
            }
            let message = err.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message);
            let help = if err.is_eof() {
                "the file ends too early: look for a missing closing brace, bracket or quote"
            } else {
                "fix the JSON syntax there (comments and trailing commas are allowed)"
            };
            config_error(format!("invalid JSON: {message}")).at(Location::at(path, err.line(), err.column())).help(help)
        })?;
        let Value::Object(object) = value else {
            return Err(config_error(format!(
                "the file must hold a JSON object ({{ ... }}), found {}",
                type_name(&value)
            ))
            .in_file(path));
        };
        Ok(JsonFile { path: path.to_path_buf(), text, object, overridden: Vec::new() })
    }

    /// Sets a top-level key from outside the file (`origin` says where, e.g. `--param size`),
    /// over the file's value.
    pub fn set_from(&mut self, key: &str, value: Value, origin: &str) {
        self.object.insert(key.to_string(), value);
        self.overridden.retain(|(set, _)| set != key);
        self.overridden.push((key.to_string(), origin.to_string()));
    }

    /// The keys set from outside the file, with their values, in the order they were set.
    pub fn set_from_outside(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.overridden.iter().map(|(key, _)| (key.as_str(), &self.object[key]))
    }

    /// Where a top-level key is written, for messages about its value: a key of the same name
    /// nested in another value, or inside a string, is not it.
    pub fn key_location(&self, key: &str) -> Location {
        if let Some((_, origin)) = self.overridden.iter().find(|(set, _)| set == key) {
            return Location::file(origin);
        }
        match self.key_offset(key) {
            Some(start) => {
                let before = &self.text[..start];
                let line = before.matches('\n').count() + 1;
                let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                Location::at(&self.path, line, column)
            }
            None => Location::file(&self.path),
        }
    }

    /// The byte offset of a top-level key's opening quote.
    fn key_offset(&self, key: &str) -> Option<usize> {
        let (text, bytes) = (&self.text, self.text.as_bytes());
        let mut depth = 0usize;
        let mut at = 0;
        while at < bytes.len() {
            match bytes[at] {
                b'{' | b'[' => depth += 1,
                b'}' | b']' => depth = depth.saturating_sub(1),
                b'"' => {
                    let start = at;
                    at = string_end(bytes, at);
                    let literal = &text[start..(at + 1).min(text.len())];
                    let is_key = depth == 1 && text[(at + 1).min(text.len())..].trim_start().starts_with(':');
                    if is_key && serde_json::from_str::<String>(literal).is_ok_and(|name| name == key) {
                        return Some(start);
                    }
                }
                _ => {}
            }
            at += 1;
        }
        None
    }

    /// The file's text with the string values of these top-level keys replaced, and everything
    /// else (comments, key order, spacing) as it was.
    pub fn with_string_values(&self, values: &[(&str, &str)]) -> Result<String> {
        let original = read_text(&self.path)?;
        let bytes = self.text.as_bytes();
        let mut spans = Vec::new();
        for (key, value) in values {
            // The value's opening quote: after the key, its colon and blanks (comments are blanks here).
            let start = self.key_offset(key).and_then(|key_start| {
                let after_key = string_end(bytes, key_start) + 1;
                let colon = after_key + self.text[after_key..].find(':')?;
                let rest = &self.text[colon + 1..];
                let start = colon + 1 + rest.len() - rest.trim_start().len();
                (bytes.get(start) == Some(&b'"')).then_some(start)
            });
            // Blanking keeps every byte where it was; a file changed since it was read does not.
            let Some(start) = start.filter(|_| original.len() == self.text.len()) else {
                return Err(self
                    .key_error(key, format!("\"{key}\" is not a string that paw can update"))
                    .help(format!("write \"{key}\": \"...\" in the file, then try again")));
            };
            spans.push((
                start,
                string_end(bytes, start) + 1,
                serde_json::to_string(value).expect("a string serialises"),
            ));
        }
        spans.sort_by_key(|(start, ..)| std::cmp::Reverse(*start));
        let mut text = original;
        for (start, end, literal) in spans {
            text.replace_range(start..end, &literal);
        }
        Ok(text)
    }

    /// An error about the value of `key`, located where the key is written.
    pub fn key_error(&self, key: &str, message: impl Into<String>) -> Error {
        config_error(message).at(self.key_location(key))
    }

    pub fn optional_string(&self, key: &str) -> Result<Option<String>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(other) => Err(self.wrong_type(key, "a string", other)),
        }
    }

    pub fn required_string(&self, key: &str, example: &str) -> Result<String> {
        match self.optional_string(key)? {
            Some(text) if !text.trim().is_empty() => Ok(text),
            Some(_) => Err(self
                .key_error(key, format!("\"{key}\" is empty"))
                .help(format!("give it a value, e.g. \"{key}\": \"{example}\""))),
            None => Err(config_error(format!("missing required key \"{key}\""))
                .in_file(&self.path)
                .help(format!("add it, e.g. \"{key}\": \"{example}\""))),
        }
    }

    /// A map of strings to strings, in the file's order.
    pub fn string_map(&self, key: &str) -> Result<Vec<(String, String)>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(name, value)| match value {
                    Value::String(text) => Ok((name.clone(), text.clone())),
                    other => Err(self
                        .key_error(key, format!("\"{key}\".\"{name}\" must be a string, found {}", type_name(other)))
                        .help(format!("quote the value: \"{name}\": \"{}\"", plain(other)))),
                })
                .collect(),
            Some(other) => Err(self.wrong_type(key, "a map of strings", other)),
        }
    }

    pub fn optional_map(&self, key: &str) -> Result<Map<String, Value>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(other) => Err(self.wrong_type(key, "a map ({ ... })", other)),
        }
    }

    pub fn string_list(&self, key: &str) -> Result<Vec<String>> {
        match self.object.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
                Ok(items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
            }
            Some(other) => Err(self.wrong_type(key, "a list of strings", other)),
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> Error {
        self.key_error(key, format!("\"{key}\" must be {expected}, found {}", type_name(found)))
    }
}

/// The index of the quote that closes the string opened at `start` (or the end of the text).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut at = start + 1;
    while at < bytes.len() && bytes[at] != b'"' {
        at += if bytes[at] == b'\\' { 2 } else { 1 };
    }
    at.min(bytes.len())
}

/// A file's text; a file that is not UTF-8 is bad input, not an I/O failure.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|err| Error::io(path, "read the file", err))?;
    String::from_utf8(bytes)
        .map_err(|_| config_error("the file is not UTF-8 text").in_file(path).help("save it as UTF-8"))
}

fn unclosed_comment(path: &Path, text: &str, search_from: usize) -> Error {
    let start = text[search_from..].find("/*").map_or(0, |found| search_from + found);
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    config_error("a /* comment */ is not closed").at(Location::at(path, line, column)).help("close the comment with */")
}

fn config_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Config, message)
}

fn type_name(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(flag) => format!("a boolean ({flag})"),
        Value::Number(number) => format!("a number ({number})"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "a map".into(),
    }
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<JsonFile> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        std::fs::write(&path, text).unwrap();
        JsonFile::load(&path)
    }

    #[test]
    fn string_values_are_replaced_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let text = "// the base\n{\n  \"id\" :  \"ami-1\", // \"id\": \"no\"\n  \"nested\": {\"id\": \"x\"},\n  \"name\": \"a \\\"b\\\"\",\n}\n";
        std::fs::write(&path, text).unwrap();
        let file = JsonFile::load(&path).unwrap();
        let updated = file.with_string_values(&[("name", "new/name"), ("id", "ami-2")]).unwrap();
        assert_eq!(
            updated,
            "// the base\n{\n  \"id\" :  \"ami-2\", // \"id\": \"no\"\n  \"nested\": {\"id\": \"x\"},\n  \"name\": \"new/name\",\n}\n"
        );
        let err = file.with_string_values(&[("nested", "x")]).unwrap_err();
        assert!(err.to_string().contains("\"nested\" is not a string that paw can update"), "{err}");
    }

    #[test]
    fn comments_and_trailing_commas_are_accepted() {
        let file = load("// top\n{\n  \"a\": \"x\", /* b */\n  \"b\": [1, 2,],\n}\n").unwrap();
        assert_eq!(file.object["a"], "x");
        assert_eq!(file.object["b"], serde_json::json!([1, 2]));
    }

    #[test]
    fn syntax_errors_point_at_the_line() {
        let err = load("{\n  \"a\": \"x\"\n  \"b\": 1\n}").unwrap_err();
        let location = err.location.unwrap();
        assert_eq!((location.line, location.column), (3, 3));
        assert!(err.message.starts_with("invalid JSON: expected `,` or `}`"), "{}", err.message);
    }

    #[test]
    fn keys_are_located_even_after_comments() {
        let file = load("{\n // \"a\": 1\n  \"a\" : 2}").unwrap();
        let location = file.key_location("a");
        assert_eq!((location.line, location.column), (3, 3));
    }

    /// A nested key of the same name, or the name inside a string, earlier in the file, is not
    /// the top-level key.
    #[test]
    fn only_top_level_keys_are_located() {
        let file =
            load("{\n  \"aws_tags\": {\"catalog\": \"x\"},\n  \"note\": \"\\\"catalog\\\": no\",\n  \"catalog\": 5\n}")
                .unwrap();
        let location = file.key_location("catalog");
        assert_eq!((location.line, location.column), (4, 3));
        assert_eq!(file.key_location("missing").line, 0);
    }

    #[test]
    fn key_order_is_kept() {
        let file = load("{\"z\": 1, \"a\": 2, \"m\": 3}").unwrap();
        let keys: Vec<_> = file.object.keys().cloned().collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    #[test]
    fn wrong_types_name_the_key() {
        let file = load("{\n\"t\": {\"k\": 5}, \"s\": true}").unwrap();
        let err = file.string_map("t").unwrap_err();
        assert_eq!(err.message, "\"t\".\"k\" must be a string, found a number (5)");
        assert_eq!(err.location.unwrap().line, 2);
        let err = file.optional_string("s").unwrap_err();
        assert_eq!(err.message, "\"s\" must be a string, found a boolean (true)");
    }
}
