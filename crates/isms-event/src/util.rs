//! Small helpers for describing JSON values in error messages.

use serde_json::Value;

/// The kind of a JSON value with its article: "null", "a boolean", "a number", "a string",
/// "an array", "an object".
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A short description of a value for error messages: `the string "abc"`, `the number 1.5`,
/// `the boolean true`, `null`, `an array`, `an object`.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", Value::String(truncate(s, DESCRIBE_LIMIT))),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    }
}

/// The value as short text: strings as they are, everything else as compact JSON.
pub(crate) fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => truncate(s, DESCRIBE_LIMIT),
        other => truncate(&other.to_string(), DESCRIBE_LIMIT),
    }
}

const DESCRIBE_LIMIT: usize = 100;

/// At most `limit` characters of `text`, with "…" appended when something was cut.
pub(crate) fn truncate(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…", &text[..cut]),
    }
}
