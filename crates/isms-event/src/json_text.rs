//! Compact JSON text of a document, byte for byte what `serde_json::to_string` writes, faster.
//!
//! Every ingested event is written out as JSON once for the store, and most of that time goes to
//! checking each byte of each string for characters that need escaping. Here strings are checked
//! eight bytes at a time (one word test finds whether any byte is a control character, `"` or `\`),
//! and only a word that has one is looked at byte by byte. Escapes, key order (the map's) and number
//! text (serde_json's own) are the same as serde_json's, so the stored text does not depend on which
//! writer made it; a property test holds the two to it.
use serde_json::{Map, Value};

/// The compact JSON text of an object, as `serde_json::to_string` writes it.
pub fn object_text(object: &Map<String, Value>) -> String {
    let mut out = Vec::with_capacity(1024);
    write_object(&mut out, object);
    // Only whole UTF-8 strings and ASCII were written.
    String::from_utf8(out).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into())
}

fn write_object(out: &mut Vec<u8>, object: &Map<String, Value>) {
    out.push(b'{');
    for (position, (key, value)) in object.iter().enumerate() {
        if position > 0 {
            out.push(b',');
        }
        write_string(out, key);
        out.push(b':');
        write_value(out, value);
    }
    out.push(b'}');
}

fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            // serde_json's own number text (writing into a Vec cannot fail).
            let _ = serde_json::to_writer(&mut *out, number);
        }
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push(b'[');
            for (position, item) in items.iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(object) => write_object(out, object),
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `word` may need escaping: below 0x20, `"` or `\`. May say yes for a byte just
/// above one that does (borrows carry), never no for one that does.
fn word_may_need_escaping(word: u64) -> bool {
    let below_space = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let has_zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (below_space | has_zero(quote) | has_zero(backslash)) & HIGH_BITS != 0
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // Bytes before `clean_from` are written.
    let mut clean_from = 0;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in words.by_ref() {
        let word = u64::from_le_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        if word_may_need_escaping(word) {
            escape_range(out, bytes, at, at + 8, &mut clean_from);
        }
        at += 8;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // Padded with spaces, which never need escaping.
        let mut word = [b' '; 8];
        word[..tail.len()].copy_from_slice(tail);
        if word_may_need_escaping(u64::from_le_bytes(word)) {
            escape_range(out, bytes, at, bytes.len(), &mut clean_from);
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
    out.push(b'"');
}

/// Writes the clean bytes before each byte of `bytes[from..to]` that needs escaping, then its escape.
fn escape_range(out: &mut Vec<u8>, bytes: &[u8], from: usize, to: usize, clean_from: &mut usize) {
    for (index, &byte) in bytes.iter().enumerate().take(to).skip(from) {
        if let Some(escape) = escape_of(byte) {
            out.extend_from_slice(&bytes[*clean_from..index]);
            push_escape(out, escape, byte);
            *clean_from = index + 1;
        }
    }
}

/// How serde_json escapes a byte: `Some(b'u')` for `\u00XX`, `Some(c)` for `\c`, `None` for as is.
fn escape_of(byte: u8) -> Option<u8> {
    match byte {
        b'"' => Some(b'"'),
        b'\\' => Some(b'\\'),
        0x08 => Some(b'b'),
        0x0C => Some(b'f'),
        b'\n' => Some(b'n'),
        b'\r' => Some(b'r'),
        b'\t' => Some(b't'),
        0x00..=0x1F => Some(b'u'),
        _ => None,
    }
}

fn push_escape(out: &mut Vec<u8>, escape: u8, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    if escape == b'u' {
        out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0x0F)],
        ]);
    } else {
        out.extend_from_slice(&[b'\\', escape]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn same_as_serde_json(object: &Map<String, Value>) {
        let expected = serde_json::to_string(object).expect("serializes");
        assert_eq!(object_text(object), expected);
    }

    #[test]
    fn every_escape_and_kind_of_value() {
        let all_low: String = (0u8..0x20).map(char::from).collect();
        let object = json!({
            "low": all_low,
            "quote \" and \\ backslash": "a\"b\\c/d\u{7f}é😀",
            "long clean string longer than a word": "abcdefghijklmnopqrstuvwxyz0123456789",
            "escape at a word edge": "1234567\n12345678\"",
            "numbers": [0, -1, 1.5, 1e300, u64::MAX, i64::MIN, 0.1],
            "nested": {"a": [null, true, false, {"b": []}], "c": {}},
            "": "",
        });
        same_as_serde_json(object.as_object().expect("object"));
    }

    fn value_strategy() -> impl Strategy<Value = Value> {
        let text = proptest::collection::vec(
            prop_oneof![
                Just('"'),
                Just('\\'),
                Just('\n'),
                Just('\u{1}'),
                Just('\u{1f}'),
                Just(' '),
                Just('é'),
                Just('😀'),
                proptest::char::range('a', 'z'),
            ],
            0..40,
        )
        .prop_map(|chars| chars.into_iter().collect::<String>());
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            text.clone().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map(text.clone(), inner, 0..6)
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn writes_what_serde_json_writes(value in value_strategy()) {
            let mut object = Map::new();
            object.insert("v".to_owned(), value);
            let expected = serde_json::to_string(&object).expect("serializes");
            prop_assert_eq!(object_text(&object), expected);
        }
    }
}
