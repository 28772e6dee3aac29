//! JSON records from network sensors: Suricata's EVE log and Zeek's JSON logs, each turned into a
//! whole raw MozDef event.
//!
//! Both are already structured, so the work is naming: the sensor's own address fields become
//! `sourceipaddress` / `destinationipaddress` / `sourceport` / `destinationport` (the names every
//! other decoder writes), the record's time becomes `utctimestamp`, a summary is written for people,
//! and the category says what kind of record it is. The other fields are kept under `details` with
//! their keys lowercased and dots turned into underscores (what `isms_event::normalize` would do),
//! so a Zeek `id.orig_h` and a nested Suricata `alert.signature` stay addressable.
mod suricata;
mod zeek;

use std::fmt::Write as _;

use serde_json::{Map, Value};

/// Deepest nesting rewritten key by key; deeper values are kept as their JSON text.
const MAX_CLEAN_DEPTH: usize = 32;

/// Longest summary written, in bytes (cut at a character boundary).
const MAX_SUMMARY_BYTES: usize = 400;

/// A Suricata or Zeek record as a raw MozDef event; `None` for anything else.
pub(crate) fn decode(object: &Map<String, Value>) -> Option<Value> {
    if suricata::recognizes(object) {
        return Some(suricata::decode(object));
    }
    if zeek::recognizes(object) {
        return Some(zeek::decode(object));
    }
    None
}

/// A detail key: lowercased, dots as underscores.
pub(crate) fn clean_key(key: &str) -> String {
    key.chars()
        .map(|c| if c == '.' { '_' } else { c })
        .flat_map(char::to_lowercase)
        .collect()
}

/// `value` with every object key cleaned ([`clean_key`]), at most [`MAX_CLEAN_DEPTH`] levels deep.
pub(crate) fn clean_value(value: &Value, depth: usize) -> Value {
    match value {
        Value::Object(map) if depth < MAX_CLEAN_DEPTH => Value::Object(
            map.iter()
                .map(|(key, value)| (clean_key(key), clean_value(value, depth + 1)))
                .collect(),
        ),
        Value::Array(items) if depth < MAX_CLEAN_DEPTH => Value::Array(
            items
                .iter()
                .map(|item| clean_value(item, depth + 1))
                .collect(),
        ),
        Value::Object(_) | Value::Array(_) => Value::String(value.to_string()),
        other => other.clone(),
    }
}

/// The record's time as `utctimestamp` text, if it is a readable time.
pub(crate) fn utc_time(value: &Value) -> Option<String> {
    let timestamp = isms_event::parse_time_value(value).ok()?;
    Some(isms_event::format_time(isms_event::micros_of(timestamp)))
}

/// A JSON scalar as summary text (`true`, `53`, `text`); arrays joined with `,`.
pub(crate) fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Array(items) => items.iter().map(text_of).collect::<Vec<_>>().join(","),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `address:port` (`[address]:port` for IPv6), or just the address.
pub(crate) fn endpoint(address: Option<&Value>, port: Option<&Value>) -> Option<String> {
    let address = text_of(address?);
    if address.is_empty() {
        return None;
    }
    let mut text = if address.contains(':') {
        format!("[{address}]")
    } else {
        address
    };
    if let Some(port) = port.filter(|port| !port.is_null()) {
        let _ = write!(text, ":{}", text_of(port));
    }
    Some(text)
}

/// Assembles a summary from its parts, skipping empty ones, cut to [`MAX_SUMMARY_BYTES`].
pub(crate) fn summary(head: &str, parts: &[String]) -> String {
    let mut text = head.to_owned();
    for part in parts.iter().filter(|part| !part.trim().is_empty()) {
        text.push(' ');
        text.push_str(part.trim());
    }
    if text.len() > MAX_SUMMARY_BYTES {
        let mut cut = MAX_SUMMARY_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// `src -> dst` for a summary.
pub(crate) fn flow_text(source: Option<String>, destination: Option<String>) -> String {
    match (source, destination) {
        (Some(source), Some(destination)) => format!("{source} -> {destination}"),
        (Some(source), None) => source,
        (None, Some(destination)) => format!("-> {destination}"),
        (None, None) => String::new(),
    }
}

/// An address value normalized like the syslog decoders' (`::ffff:1.2.3.4` as `1.2.3.4`).
pub(crate) fn address_value(value: &Value) -> Value {
    match value {
        Value::String(text) => Value::String(crate::scan::strip_v4_mapped(text).to_owned()),
        other => other.clone(),
    }
}
