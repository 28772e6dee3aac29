//! Compact JSON text of a document, byte for byte what `serde_json::to_string` writes, faster.
//!
//! Every ingested event is written out as JSON once for the store, and most of that time goes to
//! checking each byte of each string for characters that need escaping. Here strings are checked
//! eight bytes at a time (one word test finds whether any byte is a control character, `"` or `\`);
//! a clean string is copied whole, and only a string that has such a byte is looked at byte by byte.
//! Escapes, key order (the map's) and number text (itoa's for integers, as serde_json uses, and
//! serde_json's own for the rest) are the same as serde_json's, so the stored text does not depend on
//! which writer made it; a property test holds the two to it.
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
            // Integers as serde_json writes them (it uses itoa too), without its serializer's layers;
            // floats by serde_json itself (writing into a Vec cannot fail).
            if let Some(integer) = number.as_u64() {
                out.extend_from_slice(itoa::Buffer::new().format(integer).as_bytes());
            } else if let Some(integer) = number.as_i64() {
                out.extend_from_slice(itoa::Buffer::new().format(integer).as_bytes());
            } else {
                let _ = serde_json::to_writer(&mut *out, number);
            }
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
    if is_clean(bytes) {
        // Nearly every string: one copy.
        out.extend_from_slice(bytes);
    } else {
        write_escaped(out, bytes);
    }
    out.push(b'"');
}

/// True only if no byte of `bytes` needs escaping, tested a word at a time (may say false for a clean
/// string, then the caller looks byte by byte).
fn is_clean(bytes: &[u8]) -> bool {
    let word_at = |at: usize| {
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(word)
    };
    if bytes.len() >= 8 {
        // The last word may overlap the one before it: testing a byte twice is harmless.
        (0..bytes.len() / 8).all(|index| !word_may_need_escaping(word_at(index * 8)))
            && !word_may_need_escaping(word_at(bytes.len() - 8))
    } else {
        // Spaces, which never need escaping, fill the rest of the word.
        let word = bytes
            .iter()
            .enumerate()
            .fold(ONES * u64::from(b' '), |word, (index, &byte)| {
                word & !(0xFF << (8 * index)) | (u64::from(byte) << (8 * index))
            });
        !word_may_need_escaping(word)
    }
}

/// Writes `bytes`, the runs without escapes copied whole, each byte that needs one escaped.
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut clean_from = 0;
    for (index, &byte) in bytes.iter().enumerate() {
        if let Some(escape) = escape_of(byte) {
            out.extend_from_slice(&bytes[clean_from..index]);
            push_escape(out, escape, byte);
            clean_from = index + 1;
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
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
