//! Index terms: how "a query on any field" and a full-text word find their candidates without scanning.
//!
//! Every event is turned into a list of binary tokens, stored in an inverted index (term segment files
//! beside the SQLite store, see `sqlite/segments.rs`). A token is a kind byte and what it names:
//!
//! - presence token `p <path hash>`: the path (or a path below it) holds at least one scalar;
//! - value token `p <path hash> v <value>`: the path holds this scalar, ASCII-lowercased; values
//!   longer than [`MAX_INDEXED_VALUE_BYTES`] keep only that many bytes and end in `0xFF` (truncated);
//! - word token `w <word>`: the summary holds this word (a maximal run of alphanumeric characters,
//!   lowercased, as [`isms_query::ir::tokenize`] makes them); words longer than
//!   [`MAX_INDEXED_WORD_BYTES`] keep that many bytes and end in `0xFF`;
//! - id token `i <16 bytes>`: the event's id, a UUID, as its bytes. This is how an event is found by
//!   id (cheaper than a b-tree beside the events). Bytes rather than the text a value token would hold:
//!   17 bytes instead of 43, and the first 16 hold random bits of the id (a text token's first 16
//!   are shared by every id of the same minute), which keeps the segment writer's sort fast.
//!
//! The path hash is the first 5 bytes of the dotted path's blake3 hash. A value or word prefix is a token
//! prefix, so `field:jo*` and `jo*` become index prefix queries. Value tokens are only a *prefilter*:
//! the exact test always runs on the stored document as well, so a hash collision or a truncated value
//! can widen the candidates but never change an answer. Word tokens are exact unless truncated. The
//! scheme is backend-neutral (PostgreSQL can keep the same tokens in a GIN-indexed `bytea[]`).
//!
//! Binary, not text: the tokens used to be hex text for FTS5, which doubled every value and cost a
//! tenth of ingestion's CPU to write and to hash again when building segments.
use std::collections::HashMap;

use isms_query::ir::{FieldPath, contains_scalar, render_scalar};
use serde_json::{Map, Value};

/// Longest value prefix, in bytes, kept in a value token.
pub const MAX_INDEXED_VALUE_BYTES: usize = 48;

/// Fields whose values are never indexed as value terms: unique per event (ids, times, the sender's
/// port) or free text (summary), they would only bloat the term dictionary. Dotted paths. (The id has
/// a token of its own kind, see [`id_token`].)
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
    presence_indexed(&path.dotted())
}

/// The rule behind [`has_presence_token`], on a dotted path (the writer's side uses it too).
fn presence_indexed(dotted: &str) -> bool {
    !ALWAYS_PRESENT_FIELDS.contains(&dotted)
}

/// Whether the index holds value tokens for this path.
pub fn has_value_tokens(path: &FieldPath) -> bool {
    values_indexed(&path.dotted())
}

/// The rule behind [`has_value_tokens`], on a dotted path.
fn values_indexed(dotted: &str) -> bool {
    !UNINDEXED_VALUE_FIELDS.contains(&dotted)
}

/// Longest word prefix, in bytes, kept in a word token.
pub const MAX_INDEXED_WORD_BYTES: usize = 64;

const PRESENCE_KIND: u8 = b'p';
const VALUE_SEPARATOR: u8 = b'v';
const WORD_KIND: u8 = b'w';
const ID_KIND: u8 = b'i';
/// Ends a token whose value or word was cut; never part of UTF-8 text.
const TRUNCATED_MARK: u8 = 0xFF;

/// Bytes of a presence token: the kind byte and 5 bytes of the path hash.
const PRESENCE_TOKEN_BYTES: usize = 6;

/// The presence token of a path.
pub fn presence_token(path: &FieldPath) -> Vec<u8> {
    presence_token_of_dotted(&path.dotted()).to_vec()
}

fn presence_token_of_dotted(dotted: &str) -> [u8; PRESENCE_TOKEN_BYTES] {
    let hash = blake3::hash(dotted.as_bytes());
    let mut token = [0u8; PRESENCE_TOKEN_BYTES];
    token[0] = PRESENCE_KIND;
    token[1..].copy_from_slice(&hash.as_bytes()[..PRESENCE_TOKEN_BYTES - 1]);
    token
}

/// Appends `bytes` (ASCII-lowercased when asked), cut to `limit` bytes and then marked; returns whether
/// it was cut.
fn push_limited(token: &mut Vec<u8>, bytes: &[u8], limit: usize, lowercase_ascii: bool) -> bool {
    let kept = &bytes[..bytes.len().min(limit)];
    if lowercase_ascii {
        token.extend(kept.iter().map(u8::to_ascii_lowercase));
    } else {
        token.extend_from_slice(kept);
    }
    let truncated = bytes.len() > limit;
    if truncated {
        token.push(TRUNCATED_MARK);
    }
    truncated
}

/// A token to look up, and whether the index may hold it for values other than the one asked (cut).
pub struct TokenLookup {
    /// The token.
    pub token: Vec<u8>,
    /// The value or word was longer than the index keeps: candidates only, not exact.
    pub truncated: bool,
}

/// The value token for `text` (any case) at `path`.
pub fn value_token(path: &FieldPath, text: &str) -> TokenLookup {
    let mut token = presence_token(path);
    token.push(VALUE_SEPARATOR);
    let truncated = push_limited(&mut token, text.as_bytes(), MAX_INDEXED_VALUE_BYTES, true);
    TokenLookup { token, truncated }
}

/// The token prefix shared by every value token at `path` whose value starts with `prefix`; `None` when
/// the prefix is longer than the index keeps.
pub fn value_prefix_token(path: &FieldPath, prefix: &str) -> Option<Vec<u8>> {
    if prefix.len() > MAX_INDEXED_VALUE_BYTES {
        return None;
    }
    let mut token = presence_token(path);
    token.push(VALUE_SEPARATOR);
    push_limited(&mut token, prefix.as_bytes(), MAX_INDEXED_VALUE_BYTES, true);
    Some(token)
}

/// The word token for `word`, a lowercase token as [`isms_query::ir::tokenize`] makes them.
pub fn word_token(word: &str) -> TokenLookup {
    let mut token = vec![WORD_KIND];
    let truncated = push_limited(&mut token, word.as_bytes(), MAX_INDEXED_WORD_BYTES, false);
    TokenLookup { token, truncated }
}

/// The token prefix shared by every word token starting with `prefix`; `truncated` when the prefix is
/// longer than the index keeps (then only its first bytes are looked up).
pub fn word_prefix_token(prefix: &str) -> TokenLookup {
    let kept = &prefix.as_bytes()[..prefix.len().min(MAX_INDEXED_WORD_BYTES)];
    let mut token = Vec::with_capacity(kept.len() + 1);
    token.push(WORD_KIND);
    token.extend_from_slice(kept);
    TokenLookup {
        token,
        truncated: prefix.len() > MAX_INDEXED_WORD_BYTES,
    }
}

/// The id token of an event id, any spelling of a UUID; `None` when `id` is not one (no event has it).
pub fn id_token(id: &str) -> Option<Vec<u8>> {
    let uuid = uuid::Uuid::try_parse(id).ok()?;
    let mut token = Vec::with_capacity(17);
    token.push(ID_KIND);
    token.extend_from_slice(uuid.as_bytes());
    Some(token)
}

/// The tokens of a term list made by [`TermWriter::terms_of`].
pub fn tokens(terms: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = terms;
    std::iter::from_fn(move || {
        let (&length, after) = rest.split_first()?;
        let length = usize::from(length).min(after.len());
        let (token, remaining) = after.split_at(length);
        rest = remaining;
        Some(token)
    })
}

/// What the writer knows about one path: a node of the tree of paths it has seen.
struct PathNode {
    /// The dotted path (empty at the root).
    dotted: String,
    presence: [u8; PRESENCE_TOKEN_BYTES],
    /// It gets a presence token (not every event has it).
    presence_indexed: bool,
    /// Its values become value tokens.
    values_indexed: bool,
    /// Child paths by key, as indexes into [`TermWriter::nodes`]. Keys come from events: the hasher
    /// is seeded at random and its outputs never shown, so crafted names cannot aim at one bucket.
    children: HashMap<String, usize, foldhash::fast::RandomState>,
}

impl PathNode {
    fn new(dotted: String) -> PathNode {
        PathNode {
            presence: presence_token_of_dotted(&dotted),
            presence_indexed: presence_indexed(&dotted),
            values_indexed: values_indexed(&dotted),
            dotted,
            children: HashMap::default(),
        }
    }
}

/// Paths remembered at most; a stream of ever-new field names starts the tree over.
const MAX_REMEMBERED_PATHS: usize = 100_000;

/// Turns documents into term lists, remembering each path's token and rules in a tree of paths, so a
/// field costs one lookup of its key among its siblings (a process sees few distinct paths, and hashing
/// one for its token costs more than the rest of its terms).
#[derive(Default)]
pub struct TermWriter {
    /// The tree of paths; index 0 is the root (once anything was written).
    nodes: Vec<PathNode>,
    /// Scratch space for one lowercased word.
    word: String,
}

impl TermWriter {
    /// The terms of a normalized document: each token preceded by its length in one byte.
    pub fn terms_of(&mut self, document: &Map<String, Value>) -> Vec<u8> {
        if self.nodes.is_empty() || self.nodes.len() > MAX_REMEMBERED_PATHS {
            self.nodes.clear();
            self.nodes.push(PathNode::new(String::new()));
        }
        let mut output = Vec::with_capacity(512);
        self.walk_object(document, 0, &mut output);
        if let Some(Value::String(summary)) = document.get("summary") {
            self.push_words(summary, &mut output);
        }
        if let Some(token) = document
            .get("id")
            .and_then(Value::as_str)
            .and_then(id_token)
        {
            push_token(&mut output, &token);
        }
        output
    }

    /// The node of `key` below `parent`, made on first sight.
    fn child(&mut self, parent: usize, key: &str) -> usize {
        if let Some(&index) = self.nodes[parent].children.get(key) {
            return index;
        }
        let dotted = if parent == 0 {
            key.to_owned()
        } else {
            format!("{}.{key}", self.nodes[parent].dotted)
        };
        let index = self.nodes.len();
        self.nodes.push(PathNode::new(dotted));
        self.nodes[parent].children.insert(key.to_owned(), index);
        index
    }

    /// Walks an object; returns whether it holds any scalar (then its path is present).
    fn walk_object(
        &mut self,
        object: &Map<String, Value>,
        parent: usize,
        output: &mut Vec<u8>,
    ) -> bool {
        let mut any_scalar = false;
        for (key, value) in object {
            let node = self.child(parent, key);
            let present = match value {
                Value::Object(child) => self.walk_object(child, node, output),
                Value::Array(elements) => {
                    let mut any = false;
                    for element in elements {
                        // A scalar element is pushed; a nested one only makes the path present.
                        if self.push_scalar(node, element, output) || contains_scalar(element) {
                            any = true;
                        }
                    }
                    any
                }
                Value::Null => false,
                scalar => {
                    self.push_scalar(node, scalar, output);
                    true
                }
            };
            if present {
                let node = &self.nodes[node];
                if node.presence_indexed {
                    push_token(output, &node.presence);
                }
                any_scalar = true;
            }
        }
        any_scalar
    }

    /// Pushes the value token of a scalar (not null) as [`render_scalar`] renders it; returns whether
    /// `value` was one.
    fn push_scalar(&self, node: usize, value: &Value, output: &mut Vec<u8>) -> bool {
        match value {
            // Integers are common (ports, ids, counts): their text without `to_string`'s allocation;
            // the same text, as both are the shortest decimal form.
            Value::Number(number) if number.is_u64() || number.is_i64() => {
                let mut digits = itoa::Buffer::new();
                let text = match number.as_u64() {
                    Some(integer) => digits.format(integer),
                    None => digits.format(number.as_i64().unwrap_or_default()),
                };
                self.push_value(node, text, output);
                true
            }
            other => match render_scalar(other) {
                Some(text) => {
                    self.push_value(node, &text, output);
                    true
                }
                None => false,
            },
        }
    }

    fn push_value(&self, node: usize, text: &str, output: &mut Vec<u8>) {
        let node = &self.nodes[node];
        if !node.values_indexed {
            return;
        }
        let length_at = output.len();
        output.push(0);
        output.extend_from_slice(&node.presence);
        output.push(VALUE_SEPARATOR);
        push_limited(output, text.as_bytes(), MAX_INDEXED_VALUE_BYTES, true);
        output[length_at] = (output.len() - length_at - 1) as u8;
    }

    /// Appends a word token for every word of the summary.
    fn push_words(&mut self, summary: &str, output: &mut Vec<u8>) {
        isms_query::ir::for_each_token(summary, &mut self.word, |word| {
            let length_at = output.len();
            output.push(0);
            output.push(WORD_KIND);
            push_limited(output, word.as_bytes(), MAX_INDEXED_WORD_BYTES, false);
            output[length_at] = (output.len() - length_at - 1) as u8;
        });
    }
}

fn push_token(output: &mut Vec<u8>, token: &[u8]) {
    output.push(token.len() as u8);
    output.extend_from_slice(token);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn terms(value: Value) -> Vec<Vec<u8>> {
        let Value::Object(map) = value else {
            panic!("object")
        };
        tokens(&TermWriter::default().terms_of(&map))
            .map(<[u8]>::to_vec)
            .collect()
    }

    #[test]
    fn value_and_presence_tokens_for_nested_and_array_scalars() {
        let tokens = terms(
            json!({"details": {"username": "Joe", "ports": [22, "80", {"x": 1}]}, "summary": "s"}),
        );
        let username = FieldPath::parse_dotted("details.username");
        assert!(tokens.contains(&value_token(&username, "joe").token));
        assert!(tokens.contains(&value_token(&username, "JOE").token));
        assert!(tokens.contains(&presence_token(&username)));
        assert!(tokens.contains(&presence_token(&FieldPath::parse_dotted("details"))));
        let ports = FieldPath::parse_dotted("details.ports");
        assert!(tokens.contains(&value_token(&ports, "22").token));
        assert!(tokens.contains(&value_token(&ports, "80").token));
        // the summary is present but its text is not a value term, only words
        assert!(tokens.contains(&presence_token(&FieldPath::parse_dotted("summary"))));
        assert!(!tokens.contains(&value_token(&FieldPath::parse_dotted("summary"), "s").token));
        assert!(tokens.contains(&word_token("s").token));
    }

    #[test]
    fn the_id_is_one_token_of_its_uuid_bytes_whatever_the_spelling() {
        let id = "0198a3f2-6c1e-7d4b-9a2f-0123456789ab";
        let tokens = terms(json!({"id": id, "summary": "s"}));
        let token = id_token(id).expect("a UUID");
        assert_eq!(token.len(), 17);
        assert!(tokens.contains(&token));
        assert_eq!(
            id_token("0198A3F26C1E7D4B9A2F0123456789AB"),
            Some(token.clone())
        );
        // Not a value token as well.
        let path = FieldPath::parse_dotted("id");
        assert!(!tokens.contains(&value_token(&path, id).token));
        assert_eq!(id_token("not-an-id"), None);
        // An id that is no UUID (only in documents made by hand) has no token.
        assert!(
            terms(json!({"id": "x", "summary": "s"}))
                .iter()
                .all(|t| t[0] != ID_KIND)
        );
    }

    #[test]
    fn number_tokens_hold_the_text_the_query_side_renders() {
        let path = FieldPath::parse_dotted("details.n");
        for number in [
            json!(0),
            json!(-1),
            json!(22),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1.5),
            json!(-2.5e-7),
            json!(1e300),
        ] {
            let text = render_scalar(&number).expect("a scalar").into_owned();
            let tokens = terms(json!({"details": {"n": number, "list": [number]}}));
            assert!(tokens.contains(&value_token(&path, &text).token), "{text}");
            let in_list = FieldPath::parse_dotted("details.list");
            assert!(
                tokens.contains(&value_token(&in_list, &text).token),
                "{text}"
            );
        }
    }

    #[test]
    fn summary_words_are_lowercased_alphanumeric_runs() {
        let tokens =
            terms(json!({"summary": "Failed password for ROOT from 10.0.0.1 Ünïcode_Straße"}));
        for word in
            isms_query::ir::tokenize("Failed password for ROOT from 10.0.0.1 Ünïcode_Straße")
        {
            assert!(tokens.contains(&word_token(&word).token), "{word}");
        }
        assert!(tokens.contains(&word_token("ünïcode").token));
        assert!(!tokens.contains(&word_token("Failed").token));
        let prefix = word_prefix_token("pass");
        assert!(!prefix.truncated);
        assert!(tokens.iter().any(|token| token.starts_with(&prefix.token)));
    }

    #[test]
    fn null_and_empty_containers_are_not_present() {
        let tokens = terms(json!({"details": {"a": null, "b": [], "c": {}}}));
        assert!(tokens.is_empty(), "{tokens:?}");
    }

    #[test]
    fn long_values_and_words_are_truncated_and_marked() {
        let long = "x".repeat(100);
        let lookup = value_token(&FieldPath::parse_dotted("details.cmd"), &long);
        assert!(lookup.truncated);
        assert_eq!(lookup.token.last(), Some(&TRUNCATED_MARK));
        let exactly = "x".repeat(MAX_INDEXED_VALUE_BYTES);
        let short = value_token(&FieldPath::parse_dotted("details.cmd"), &exactly);
        assert!(!short.truncated);
        assert_ne!(short.token, lookup.token);
        assert!(lookup.token.starts_with(&short.token));

        let long_word = "y".repeat(200);
        let tokens = terms(json!({"summary": format!("a {long_word} b")}));
        let lookup = word_token(&long_word);
        assert!(lookup.truncated);
        assert!(tokens.contains(&lookup.token));
        assert!(tokens.iter().all(|token| token.len() < 256));
        assert!(word_prefix_token(&long_word).truncated);
    }
}
