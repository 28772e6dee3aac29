//! Index terms: how "a query on any field" finds its candidates without scanning.
//!
//! Every event is turned into a list of opaque alphanumeric tokens, stored in an inverted index (term
//! segment files beside the SQLite store, see `sqlite/segments.rs`). A token names a field path and,
//! for value tokens, the ASCII-lowercased text of one scalar:
//!
//! - presence token `p<path hash>`: the path (or a path below it) holds at least one scalar;
//! - value token `p<path hash>v<hex of value bytes>`: the path holds this scalar; values longer than
//!   [`MAX_INDEXED_VALUE_BYTES`] keep only that many bytes and end in `t` (truncated).
//!
//! Hex keeps the prefix property (a value prefix is a token prefix), so `field:jo*` becomes an index prefix
//! query. Tokens are only a *prefilter*: the exact test always runs on the stored document as well, so a
//! hash collision or a truncated value can widen the candidates but never change an answer. The scheme is
//! backend-neutral (PostgreSQL can keep the same tokens in a GIN-indexed array).
use std::collections::HashMap;

use isms_query::ir::{FieldPath, contains_scalar, render_scalar};
use serde_json::{Map, Value};

/// Longest value prefix, in bytes, kept in a value token.
pub const MAX_INDEXED_VALUE_BYTES: usize = 48;

/// Fields whose values are never indexed as terms: unique per event (ids, times, the sender's port) or
/// free text (summary), they would only bloat the term dictionary. Dotted paths.
pub const UNINDEXED_VALUE_FIELDS: [&str; 6] = [
    "id",
    "utctimestamp",
    "receivedtimestamp",
    "timestamp",
    "summary",
    "origin.peer",
];

/// Fields every normalized event has, with a value: a presence token for them would name every event,
/// so none is written (an existence test on them is answered from the document).
pub const ALWAYS_PRESENT_FIELDS: [&str; 8] = [
    "id",
    "utctimestamp",
    "receivedtimestamp",
    "timestamp",
    "severity",
    "category",
    "origin",
    "origin.endpoint",
];

/// Whether the index holds presence tokens for this path.
pub fn has_presence_token(path: &FieldPath) -> bool {
    !ALWAYS_PRESENT_FIELDS.contains(&path.dotted().as_str())
}

/// Whether the index holds value tokens for this path.
pub fn has_value_tokens(path: &FieldPath) -> bool {
    !UNINDEXED_VALUE_FIELDS.contains(&path.dotted().as_str())
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The presence token of a path.
pub fn presence_token(path: &FieldPath) -> String {
    presence_token_of_dotted(&path.dotted())
}

fn presence_token_of_dotted(dotted: &str) -> String {
    let hash = blake3::hash(dotted.as_bytes());
    let mut token = String::with_capacity(11);
    token.push('p');
    push_hex(&mut token, &hash.as_bytes()[..5], false);
    token
}

fn push_hex(token: &mut String, bytes: &[u8], lowercase_ascii: bool) {
    token.reserve(bytes.len() * 2);
    for byte in bytes {
        let byte = if lowercase_ascii {
            byte.to_ascii_lowercase()
        } else {
            *byte
        };
        token.push(HEX_DIGITS[usize::from(byte >> 4)] as char);
        token.push(HEX_DIGITS[usize::from(byte & 15)] as char);
    }
}

/// Appends `v<hex>` (and `t` if truncated) for a value's text to a presence token.
fn push_value_suffix(token: &mut String, text: &str) -> bool {
    token.push('v');
    let bytes = text.as_bytes();
    let truncated = bytes.len() > MAX_INDEXED_VALUE_BYTES;
    push_hex(
        token,
        &bytes[..bytes.len().min(MAX_INDEXED_VALUE_BYTES)],
        true,
    );
    if truncated {
        token.push('t');
    }
    truncated
}

/// How an equality test on a field looks in the index.
pub struct ValueLookup {
    /// The token to look up.
    pub token: String,
    /// True when the value was longer than the indexed prefix: the token then names every value sharing
    /// that prefix.
    pub truncated: bool,
}

/// The value token for `path = text` (text compared ASCII case-insensitively).
pub fn value_token(path: &FieldPath, text: &str) -> ValueLookup {
    let mut token = presence_token(path);
    let truncated = push_value_suffix(&mut token, text);
    ValueLookup { token, truncated }
}

/// The token prefix matching every value of `path` that starts with `prefix` (ASCII case-insensitively),
/// or `None` when the prefix is longer than the indexed part of values.
pub fn value_prefix_token(path: &FieldPath, prefix: &str) -> Option<String> {
    if prefix.len() > MAX_INDEXED_VALUE_BYTES {
        return None;
    }
    let mut token = presence_token(path);
    push_value_suffix(&mut token, prefix);
    Some(token)
}

/// FNV-1a: the presence cache hashes a short path per scalar of every event, where SipHash's
/// flood resistance buys nothing (the cache is bounded) and costs a tenth of the term writer's time.
#[derive(Default)]
struct PathHasher(u64);

impl std::hash::Hasher for PathHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut hash = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for byte in bytes {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }
}

/// Computes the index terms of documents, caching the hash of every path it has seen.
#[derive(Default)]
pub struct TermWriter {
    presence_tokens: HashMap<String, String, std::hash::BuildHasherDefault<PathHasher>>,
}

impl TermWriter {
    /// The space-separated tokens of one document.
    pub fn terms_of(&mut self, document: &Map<String, Value>) -> String {
        let mut output = String::with_capacity(512);
        let mut path = String::new();
        self.walk_object(document, &mut path, &mut output);
        output
    }

    /// Returns whether the object held at least one scalar (so its own presence token is due).
    fn walk_object(
        &mut self,
        object: &Map<String, Value>,
        path: &mut String,
        output: &mut String,
    ) -> bool {
        let mut any_scalar = false;
        for (key, value) in object {
            let parent_length = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let present = match value {
                Value::Object(child) => self.walk_object(child, path, output),
                Value::Array(elements) => {
                    let mut any = false;
                    for element in elements {
                        if let Some(text) = render_scalar(element) {
                            self.push_value(path, &text, output);
                            any = true;
                        } else if contains_scalar(element) {
                            // Paths do not go through arrays, but presence counts scalars at any depth.
                            any = true;
                        }
                    }
                    any
                }
                Value::Null => false,
                scalar => {
                    if let Some(text) = render_scalar(scalar) {
                        self.push_value(path, &text, output);
                    }
                    true
                }
            };
            if present {
                if !ALWAYS_PRESENT_FIELDS.contains(&path.as_str()) {
                    let token = self.presence(path);
                    output.push_str(token);
                    output.push(' ');
                }
                any_scalar = true;
            }
            path.truncate(parent_length);
        }
        any_scalar
    }

    fn presence(&mut self, dotted: &str) -> &str {
        // Looked up twice on a miss only: the borrow checker cannot return a `get` result and insert.
        if !self.presence_tokens.contains_key(dotted) {
            // Bounded: a pathological stream of unique keys must not grow the cache forever.
            if self.presence_tokens.len() > 100_000 {
                self.presence_tokens.clear();
            }
            self.presence_tokens
                .insert(dotted.to_string(), presence_token_of_dotted(dotted));
        }
        &self.presence_tokens[dotted]
    }

    fn push_value(&mut self, dotted: &str, text: &str, output: &mut String) {
        if UNINDEXED_VALUE_FIELDS.contains(&dotted) {
            return;
        }
        output.push_str(self.presence(dotted));
        push_value_suffix(output, text);
        output.push(' ');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terms(value: Value) -> Vec<String> {
        let Value::Object(map) = value else {
            panic!("object")
        };
        TermWriter::default()
            .terms_of(&map)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn value_and_presence_tokens_for_nested_and_array_scalars() {
        let tokens = terms(
            json!({"details": {"username": "Joe", "ports": [22, "80", {"x": 1}]}, "summary": "s"}),
        );
        let username = FieldPath::parse_dotted("details.username");
        assert!(tokens.contains(&value_token(&username, "joe").token));
        assert!(tokens.contains(&presence_token(&username)));
        assert!(tokens.contains(&presence_token(&FieldPath::parse_dotted("details"))));
        let ports = FieldPath::parse_dotted("details.ports");
        assert!(tokens.contains(&value_token(&ports, "22").token));
        assert!(tokens.contains(&value_token(&ports, "80").token));
        // the summary is present but its text is not a term
        assert!(tokens.contains(&presence_token(&FieldPath::parse_dotted("summary"))));
        assert!(!tokens.contains(&value_token(&FieldPath::parse_dotted("summary"), "s").token));
    }

    #[test]
    fn null_and_empty_containers_are_not_present() {
        let tokens = terms(json!({"details": {"a": null, "b": [], "c": {}}}));
        assert!(tokens.is_empty(), "{tokens:?}");
    }

    #[test]
    fn long_values_are_truncated_and_marked() {
        let long = "x".repeat(100);
        let lookup = value_token(&FieldPath::parse_dotted("details.cmd"), &long);
        assert!(lookup.truncated);
        assert!(lookup.token.ends_with('t'));
        let exactly = "x".repeat(MAX_INDEXED_VALUE_BYTES);
        let short = value_token(&FieldPath::parse_dotted("details.cmd"), &exactly);
        assert!(!short.truncated);
        assert_ne!(short.token, lookup.token);
        assert!(lookup.token.starts_with(&short.token));
    }
}
