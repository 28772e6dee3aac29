//! Decoding an HTTP ingestion body into event items, compatible with MozDef's `loginput` and the
//! clients written for it.
//!
//! Why it is shaped this way:
//!
//! - **A pure function over bytes.** [`decode_body`] knows nothing about HTTP types, so it is tested
//!   without a server and can be reused by any source that receives batches of JSON (files, AMQP).
//!   The HTTP handler maps headers to [`ContentEncoding`] and [`BodyFormat`], and
//!   [`BodyError::http_status`] back to a status code.
//! - **Two kinds of failure.** A [`BodyError`] condemns the whole request (it cannot be decompressed,
//!   is empty, or is too large) and becomes one HTTP error. A problem with one event is a
//!   [`DecodedItem::Rejected`] carrying its index in the body, so the good events of a batch are
//!   still stored and a client can tell exactly which ones were not.
//! - **Bounded work on hostile input.** Decompression streams and stops one byte past
//!   `max_decompressed_bytes`, so a compression bomb costs at most that much memory; the item count
//!   is checked as items are produced; serde_json's own recursion limit (128) protects the stack,
//!   and `max_depth` / `max_fields` are checked on each parsed event.
//! - **Forgiving framing for `/events`.** Clients send one object, an array, NDJSON, or
//!   concatenated pretty-printed objects (the PyPI `mozdef_client` posts
//!   `json.dumps(ev, sort_keys=True, indent=4)`). All are read as a stream of JSON values. After a
//!   syntax error the parser resynchronizes at the first later line that *starts* (column 1) with
//!   `{` or `[`, counted from the line where the broken value began. For NDJSON that is the next
//!   line, so good lines around a bad one survive (even when the bad line is missing its closing
//!   brace and the error is only detected on the following line); for pretty-printed objects,
//!   whose inner lines are indented, it skips to the next top-level object instead of turning the
//!   remains of the broken one into bogus events. Lines skipped that way are part of the one
//!   rejected item.
//! - **Lenient `/_bulk`.** Elasticsearch bulk NDJSON is honoured (action lines are skipped, `update`
//!   takes its `doc`, `delete` has no source), but a plain object where an action line was
//!   expected is taken as an event, because shippers pointed at `/_bulk` often send bare NDJSON.
//!   MozDef's `loginput` also accepted a JSON array on `/_bulk`; an array body is read as if each
//!   element were a line.

use std::borrow::Cow;
use std::io::Read;

use flate2::read::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use isms_event::IncomingValue;
use serde_json::Value;

/// Bounds applied while decoding one body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyLimits {
    /// Most bytes after content decoding (also applies to an uncompressed body).
    pub max_decompressed_bytes: usize,
    /// Deepest nesting of objects and arrays in one event (an empty object has depth 1).
    pub max_depth: usize,
    /// Most object keys in one event, counted recursively.
    pub max_fields: usize,
    /// Most items (accepted and rejected) in one body.
    pub max_items: usize,
}

impl From<&isms_config::HttpConfig> for BodyLimits {
    fn from(http: &isms_config::HttpConfig) -> Self {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        BodyLimits {
            max_decompressed_bytes: size(http.max_decompressed_bytes),
            max_depth: size(u64::from(http.max_depth)),
            max_fields: size(u64::from(http.max_fields)),
            max_items: size(u64::from(http.max_items)),
        }
    }
}

impl Default for BodyLimits {
    /// The limits of the default configuration.
    fn default() -> Self {
        BodyLimits::from(&isms_config::HttpConfig::default())
    }
}

/// How the body frames its events; chosen by the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `/events`: one object, an array, NDJSON, or concatenated (pretty-printed) JSON values.
    Events,
    /// `/_bulk`: Elasticsearch bulk NDJSON (or, as MozDef accepted, a JSON array).
    Bulk,
}

/// The `Content-Encoding` of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentEncoding {
    /// Not compressed.
    Identity,
    /// Gzip, possibly several concatenated members.
    Gzip,
    /// Zlib-wrapped deflate as RFC 9110 says, or raw deflate as some clients send; detected from
    /// the first two bytes.
    Deflate,
}

impl ContentEncoding {
    /// Interpret a `Content-Encoding` header value: `gzip`, `x-gzip`, `deflate`, `identity`, or
    /// absent/empty (identity); case-insensitive, surrounding spaces ignored.
    pub fn from_header(value: Option<&str>) -> Result<ContentEncoding, BodyError> {
        let value = value.unwrap_or("").trim();
        if value.is_empty() || value.eq_ignore_ascii_case("identity") {
            Ok(ContentEncoding::Identity)
        } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
            Ok(ContentEncoding::Gzip)
        } else if value.eq_ignore_ascii_case("deflate") {
            Ok(ContentEncoding::Deflate)
        } else {
            Err(BodyError::UnsupportedEncoding(value.to_owned()))
        }
    }
}

/// The items of a body, in body order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DecodedBody {
    /// Every item, accepted or rejected, in body order; an item's position is its index.
    pub items: Vec<DecodedItem>,
}

/// One item of a body: an event, or the reason a would-be event was refused.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodedItem {
    /// Always a JSON object.
    Event(Value),
    /// `index` counts every item of the body (accepted and rejected) from 0, in order.
    Rejected {
        /// Position of the item in the body.
        index: usize,
        /// What kind of problem it is, for sources that sort their rejections (AMQP's dead letters).
        kind: RejectionKind,
        /// What was wrong and where (line and column when the JSON itself was broken).
        reason: String,
    },
}

/// Why an item was rejected, in a form a program can act on; the item's `reason` says it for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The text is not JSON; the reason starts with [`RejectionKind::reason_prefix`] and ends with
    /// the line and column.
    InvalidJson,
    /// JSON, but not an object (a number, a string, null...).
    NotAnObject,
    /// An object nested deeper than `max_depth` or holding more than `max_fields` keys.
    TooLarge,
    /// An Elasticsearch bulk action without a usable source.
    BulkFraming,
}

impl RejectionKind {
    /// What the reason of this kind starts with before the details (empty when nothing does).
    pub const fn reason_prefix(&self) -> &'static str {
        match self {
            RejectionKind::InvalidJson => INVALID_JSON_PREFIX,
            RejectionKind::NotAnObject | RejectionKind::TooLarge | RejectionKind::BulkFraming => "",
        }
    }
}

/// The start of every [`RejectionKind::InvalidJson`] reason.
const INVALID_JSON_PREFIX: &str = "invalid JSON: ";

/// A problem with the body as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// The body is empty or only whitespace (400).
    #[error("request body is empty: expected JSON events")]
    Empty,
    /// The `Content-Encoding` is not one we decode (415); holds the header value.
    #[error("unsupported content-encoding {0:?}: expected gzip, deflate or identity")]
    UnsupportedEncoding(String),
    /// The body, after content decoding, is larger than `max_decompressed_bytes` (413).
    #[error("decompressed body exceeds max_decompressed_bytes ({limit})")]
    DecompressedTooLarge {
        /// The configured bound, in bytes.
        limit: usize,
    },
    /// The compressed body is corrupt or truncated (400); holds the whole message.
    #[error("{0}")]
    BadCompression(String),
    /// The body holds more than `max_items` items (413).
    #[error("body has more than max_items ({limit}) items")]
    TooManyItems {
        /// The configured bound.
        limit: usize,
    },
}

impl BodyError {
    /// The HTTP status this error should be answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            BodyError::Empty | BodyError::BadCompression(_) => 400,
            BodyError::UnsupportedEncoding(_) => 415,
            BodyError::DecompressedTooLarge { .. } | BodyError::TooManyItems { .. } => 413,
        }
    }
}

/// Decode `raw` (as received, possibly compressed) into items.
pub fn decode_body(
    raw: &[u8],
    encoding: ContentEncoding,
    format: BodyFormat,
    limits: &BodyLimits,
) -> Result<DecodedBody, BodyError> {
    if raw.is_empty() {
        return Err(BodyError::Empty);
    }
    let data = decompress(raw, encoding, limits.max_decompressed_bytes)?;
    // Tolerate a UTF-8 byte order mark (some Windows tools write one); JSON forbids it.
    let data = data.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&data);
    if data.iter().all(|b| is_json_whitespace(*b)) {
        return Err(BodyError::Empty);
    }
    let mut items = Items {
        items: Vec::new(),
        limits,
    };
    match format {
        BodyFormat::Events => decode_events(data, &mut items)?,
        BodyFormat::Bulk => decode_bulk(data, &mut items)?,
    }
    Ok(DecodedBody { items: items.items })
}

fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

// ---------------------------------------------------------------------------------------------
// Decompression

fn decompress(
    raw: &[u8],
    encoding: ContentEncoding,
    limit: usize,
) -> Result<Cow<'_, [u8]>, BodyError> {
    match encoding {
        ContentEncoding::Identity if raw.len() > limit => {
            Err(BodyError::DecompressedTooLarge { limit })
        }
        ContentEncoding::Identity => Ok(Cow::Borrowed(raw)),
        // Multi-member: concatenated gzip files are one valid gzip stream.
        ContentEncoding::Gzip => {
            read_bounded(MultiGzDecoder::new(raw), limit, "gzip").map(Cow::Owned)
        }
        ContentEncoding::Deflate if looks_like_zlib(raw) => {
            read_bounded(ZlibDecoder::new(raw), limit, "deflate (zlib)").map(Cow::Owned)
        }
        ContentEncoding::Deflate => {
            read_bounded(DeflateDecoder::new(raw), limit, "deflate (raw)").map(Cow::Owned)
        }
    }
}

/// A zlib header: compression method 8, window at most 32 KiB, header checksum divisible by 31.
fn looks_like_zlib(raw: &[u8]) -> bool {
    match raw {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Read everything `reader` produces, failing as soon as it exceeds `limit` bytes. Never asks the
/// decoder for more than `limit + 1` bytes and never allocates more than `limit` bytes.
fn read_bounded(mut reader: impl Read, limit: usize, what: &str) -> Result<Vec<u8>, BodyError> {
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let room = limit.saturating_add(1) - out.len();
        let want = room.min(chunk.len());
        let n = match reader.read(&mut chunk[..want]) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                return Err(BodyError::BadCompression(format!(
                    "{what} body cannot be decompressed: {err}"
                )));
            }
        };
        if out.len() + n > limit {
            return Err(BodyError::DecompressedTooLarge { limit });
        }
        if out.capacity() - out.len() < n {
            // Grow geometrically like Vec would, but never past the limit.
            let target = (out.capacity() * 2)
                .max(out.len() + n)
                .max(8 * 1024)
                .min(limit);
            out.reserve_exact(target - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

// ---------------------------------------------------------------------------------------------
// Items and per-event bounds

struct Items<'a> {
    items: Vec<DecodedItem>,
    limits: &'a BodyLimits,
}

impl Items<'_> {
    fn push(&mut self, item: DecodedItem) -> Result<(), BodyError> {
        if self.items.len() >= self.limits.max_items {
            return Err(BodyError::TooManyItems {
                limit: self.limits.max_items,
            });
        }
        self.items.push(item);
        Ok(())
    }

    fn reject(&mut self, kind: RejectionKind, reason: String) -> Result<(), BodyError> {
        let index = self.items.len();
        self.push(DecodedItem::Rejected {
            index,
            kind,
            reason,
        })
    }

    /// One would-be event: accepted if it is an object within the bounds.
    fn event(&mut self, value: Value) -> Result<(), BodyError> {
        if !value.is_object() {
            return self.reject(
                RejectionKind::NotAnObject,
                format!("expected a JSON object, found {}", describe(&value)),
            );
        }
        let Shape { depth, fields } = shape(&value);
        if depth > self.limits.max_depth {
            return self.reject(
                RejectionKind::TooLarge,
                format!(
                    "nesting depth {depth} exceeds max_depth ({})",
                    self.limits.max_depth
                ),
            );
        }
        if fields > self.limits.max_fields {
            return self.reject(
                RejectionKind::TooLarge,
                format!(
                    "{fields} fields exceed max_fields ({})",
                    self.limits.max_fields
                ),
            );
        }
        self.push(DecodedItem::Event(value))
    }

    /// A top-level value of an `/events` body: an array contributes each element.
    fn top_level(&mut self, value: Value) -> Result<(), BodyError> {
        match value {
            Value::Array(elements) => {
                if self.items.len().saturating_add(elements.len()) > self.limits.max_items {
                    return Err(BodyError::TooManyItems {
                        limit: self.limits.max_items,
                    });
                }
                elements.into_iter().try_for_each(|e| self.event(e))
            }
            other => self.event(other),
        }
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// How deep a value nests and how many object keys it holds.
struct Shape {
    /// Nesting depth: a scalar is 0, `{}` and `[]` are 1.
    depth: usize,
    /// Object keys, counted recursively (through arrays too).
    fields: usize,
}

/// Both bounds' measures in one walk. Recursion is bounded by serde_json's parser limit (128), so this
/// cannot overflow the stack.
fn shape(value: &Value) -> Shape {
    fn nested<'a>(own_fields: usize, children: impl Iterator<Item = &'a Value>) -> Shape {
        children.fold(
            Shape {
                depth: 1,
                fields: own_fields,
            },
            |total, child| {
                let child = shape(child);
                Shape {
                    depth: total.depth.max(child.depth + 1),
                    fields: total.fields + child.fields,
                }
            },
        )
    }
    match value {
        Value::Object(map) => nested(map.len(), map.values()),
        Value::Array(items) => nested(0, items.iter()),
        _ => Shape {
            depth: 0,
            fields: 0,
        },
    }
}

/// serde_json's message with its line moved by `line_base` (the lines before the parsed slice).
fn located(err: &serde_json::Error, line_base: usize) -> String {
    let text = err.to_string();
    if err.line() == 0 {
        return text;
    }
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    let bare = text.strip_suffix(&suffix).unwrap_or(&text);
    format!(
        "{bare} at line {} column {}",
        err.line() + line_base,
        err.column()
    )
}

// ---------------------------------------------------------------------------------------------
// /events

fn decode_events(data: &[u8], items: &mut Items<'_>) -> Result<(), BodyError> {
    // A body that is UTF-8 throughout (the usual case) is checked once here, so the parser need not
    // check each string again; any other body is parsed as bytes and its bad items named.
    let text = std::str::from_utf8(data).ok();
    // `offset` is always a line start, so serde_json's columns are right and its lines only need
    // `line_base` added. (A line start follows a newline byte: always a character boundary.)
    let mut offset = 0;
    let mut line_base = 0;
    while offset < data.len() {
        let slice = &data[offset..];
        let stopped = match text {
            Some(text) => parse_stream(
                serde_json::Deserializer::from_str(&text[offset..]).into_iter(),
                items,
            )?,
            None => parse_stream(
                serde_json::Deserializer::from_slice(slice).into_iter(),
                items,
            )?,
        };
        let Some((before, err)) = stopped else {
            return Ok(());
        };
        items.reject(
            RejectionKind::InvalidJson,
            format!("{INVALID_JSON_PREFIX}{}", located(&err, line_base)),
        )?;

        let start = before
            + slice[before..]
                .iter()
                .take_while(|b| is_json_whitespace(**b))
                .count();
        let Some(resume) = resume_point(slice, start) else {
            return Ok(());
        };
        line_base += slice[..resume].iter().filter(|b| **b == b'\n').count();
        offset += resume;
    }
    Ok(())
}

/// Hands every value of `stream` to `items` until the end (`None`) or the first error: then the byte
/// offset where the failed value began, and the error.
fn parse_stream<'de, R: serde_json::de::Read<'de>>(
    mut stream: serde_json::StreamDeserializer<'de, R, IncomingValue>,
    items: &mut Items<'_>,
) -> Result<Option<(usize, serde_json::Error)>, BodyError> {
    loop {
        let before = stream.byte_offset();
        match stream.next() {
            None => return Ok(None),
            Some(Ok(IncomingValue(value))) => items.top_level(value)?,
            Some(Err(err)) => return Ok(Some((before, err))),
        }
    }
}

/// The first line start after the line containing `start` whose first byte opens an object or
/// an array: the next plausible beginning of a top-level value.
fn resume_point(slice: &[u8], start: usize) -> Option<usize> {
    let mut position = start;
    loop {
        let newline = position + slice[position..].iter().position(|b| *b == b'\n')?;
        let line_start = newline + 1;
        if matches!(slice.get(line_start), Some(b'{' | b'[')) {
            return Some(line_start);
        }
        position = line_start;
    }
}

// ---------------------------------------------------------------------------------------------
// /_bulk

fn decode_bulk(data: &[u8], items: &mut Items<'_>) -> Result<(), BodyError> {
    let mut bulk = Bulk::default();
    let first = data.iter().find(|b| !is_json_whitespace(**b));
    if first == Some(&b'[')
        && let Ok(IncomingValue(Value::Array(elements))) = serde_json::from_slice(data)
    {
        for (i, element) in elements.into_iter().enumerate() {
            bulk.feed(Ok(element), Place::Element(i), items)?;
        }
        return bulk.finish(items);
    }
    // As in `decode_events`: a body that is UTF-8 throughout is checked once, not string by string.
    let text = std::str::from_utf8(data).ok();
    let mut line_start = 0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let line_range = line_start..line_start + line.len();
        line_start = line_range.end + 1;
        if line.iter().all(|b| is_json_whitespace(*b)) {
            continue;
        }
        let parsed = match text {
            // Lines end at newline bytes: character boundaries.
            Some(text) => serde_json::from_str::<IncomingValue>(&text[line_range]),
            None => serde_json::from_slice::<IncomingValue>(line),
        }
        .map(|IncomingValue(value)| value)
        .map_err(|err| format!("{INVALID_JSON_PREFIX}{}", located(&err, i)));
        bulk.feed(parsed, Place::Line(i + 1), items)?;
    }
    bulk.finish(items)
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Line(usize),
    Element(usize),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Line(n) => write!(f, "line {n}"),
            Place::Element(n) => write!(f, "array element {n}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Index,
    Create,
    Update,
    Delete,
}

impl Action {
    /// `{"index": {...}}` and friends: exactly one key naming an action, whose value is an object.
    fn of(value: &Value) -> Option<Action> {
        let map = value.as_object()?;
        if map.len() != 1 {
            return None;
        }
        let (name, meta) = map.iter().next()?;
        if !meta.is_object() {
            return None;
        }
        match name.as_str() {
            "index" => Some(Action::Index),
            "create" => Some(Action::Create),
            "update" => Some(Action::Update),
            "delete" => Some(Action::Delete),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Action::Index => "index",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

/// What the next bulk line is expected to be.
#[derive(Debug, Default)]
enum Bulk {
    #[default]
    Action,
    /// The source of an `index`/`create`/`update` action found at `Place`.
    Source(Action, Place),
}

impl Bulk {
    fn feed(
        &mut self,
        parsed: Result<Value, String>,
        place: Place,
        items: &mut Items<'_>,
    ) -> Result<(), BodyError> {
        match std::mem::take(self) {
            Bulk::Action => match parsed {
                Err(reason) => items.reject(RejectionKind::InvalidJson, reason),
                Ok(value) => match Action::of(&value) {
                    Some(Action::Delete) => Ok(()),
                    Some(action) => {
                        *self = Bulk::Source(action, place);
                        Ok(())
                    }
                    // Lenient: a bare event where an action line was expected.
                    None => items.event(value),
                },
            },
            Bulk::Source(action, action_place) => match parsed {
                Err(reason) => items.reject(RejectionKind::InvalidJson, reason),
                Ok(value) if action == Action::Update => {
                    let doc = match value {
                        Value::Object(mut map) => map.remove("doc").filter(Value::is_object),
                        _ => None,
                    };
                    match doc {
                        Some(doc) => items.event(doc),
                        None => items.reject(RejectionKind::BulkFraming, format!(
                            "bulk update on {action_place} needs a source with a \"doc\" object at {place}"
                        )),
                    }
                }
                Ok(value) => items.event(value),
            },
        }
    }

    fn finish(self, items: &mut Items<'_>) -> Result<(), BodyError> {
        match self {
            Bulk::Action => Ok(()),
            Bulk::Source(action, place) => items.reject(
                RejectionKind::BulkFraming,
                format!(
                    "bulk {} action on {place} is not followed by a source",
                    action.name()
                ),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use serde_json::json;
    use std::io::Write;
    use std::time::{Duration, Instant};

    fn limits() -> BodyLimits {
        BodyLimits {
            max_decompressed_bytes: 1024 * 1024,
            max_depth: 32,
            max_fields: 1000,
            max_items: 100_000,
        }
    }

    fn events(body: &[u8]) -> Vec<DecodedItem> {
        decode_body(
            body,
            ContentEncoding::Identity,
            BodyFormat::Events,
            &limits(),
        )
        .unwrap()
        .items
    }

    fn bulk(body: &[u8]) -> Vec<DecodedItem> {
        decode_body(body, ContentEncoding::Identity, BodyFormat::Bulk, &limits())
            .unwrap()
            .items
    }

    fn ev(value: Value) -> DecodedItem {
        DecodedItem::Event(value)
    }

    /// The reason of the rejected item at `index`, checking the index is recorded right.
    fn rejected(items: &[DecodedItem], index: usize) -> &str {
        match &items[index] {
            DecodedItem::Rejected {
                index: i, reason, ..
            } => {
                assert_eq!(*i, index, "rejected item records the wrong index");
                reason
            }
            other => panic!("item {index} should be rejected, is {other:?}"),
        }
    }

    #[test]
    fn rejections_say_their_kind() {
        let mut limits = limits();
        limits.max_depth = 2;
        let body = b"{\"summary\":\"ok\"}\n7\n{broken\n{\"a\":{\"b\":{}}}\n";
        let items = decode_body(body, ContentEncoding::Identity, BodyFormat::Events, &limits)
            .unwrap()
            .items;
        let kinds: Vec<Option<RejectionKind>> = items
            .iter()
            .map(|item| match item {
                DecodedItem::Event(_) => None,
                DecodedItem::Rejected { kind, .. } => Some(*kind),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                None,
                Some(RejectionKind::NotAnObject),
                Some(RejectionKind::InvalidJson),
                Some(RejectionKind::TooLarge)
            ]
        );
        let reason = rejected(&items, 2);
        let detail = reason
            .strip_prefix(RejectionKind::InvalidJson.reason_prefix())
            .unwrap_or_else(|| panic!("{reason}"));
        assert!(detail.ends_with("at line 3 column 2"), "{detail}");
        let items = bulk(b"{\"index\":{}}\n");
        assert!(matches!(
            items.as_slice(),
            [DecodedItem::Rejected {
                kind: RejectionKind::BulkFraming,
                ..
            }]
        ));
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn nested(depth: usize) -> String {
        // depth 1 is {"a":1}; each level wraps in {"n": ...}
        let mut text = String::from(r#"{"a":1}"#);
        for _ in 1..depth {
            text = format!(r#"{{"n":{text}}}"#);
        }
        text
    }

    const MOZDEF_CLIENT_EVENT: &str = r#"{
    "category": "authentication",
    "details": {
        "sourceipaddress": "10.1.2.3",
        "success": true,
        "username": "jos\u00e9"
    },
    "hostname": "host.example.com",
    "processid": 4242,
    "processname": "sshd",
    "severity": "INFO",
    "source": "mozdef_client",
    "summary": "user jos\u00e9 logged in",
    "tags": [
        "auth",
        "ssh"
    ],
    "timestamp": "2024-05-01T12:00:00.123456+00:00",
    "utctimestamp": "2024-05-01T12:00:00.123456+00:00"
}"#;

    #[test]
    fn single_object() {
        assert_eq!(
            events(br#"{"summary":"hello","details":{"username":"jo"}}"#),
            vec![ev(
                json!({"summary": "hello", "details": {"username": "jo"}})
            )]
        );
    }

    #[test]
    fn pretty_printed_object_as_mozdef_client_sends_it() {
        let items = events(MOZDEF_CLIENT_EVENT.as_bytes());
        assert_eq!(items.len(), 1);
        let DecodedItem::Event(event) = &items[0] else {
            panic!("{items:?}")
        };
        assert_eq!(event["details"]["username"], "josé");
        assert_eq!(event["tags"], json!(["auth", "ssh"]));
        assert_eq!(event["processid"], 4242);

        // Several of them concatenated, as a batching client might.
        let body = format!("{MOZDEF_CLIENT_EVENT}\n{MOZDEF_CLIENT_EVENT}{MOZDEF_CLIENT_EVENT}\n");
        let items = events(body.as_bytes());
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(|i| matches!(i, DecodedItem::Event(_))));
    }

    #[test]
    fn array_contributes_each_element() {
        let items = events(b"[{\"a\":1}, 2, {\"b\":2}, [], null]");
        assert_eq!(items[0], ev(json!({"a": 1})));
        assert_eq!(
            rejected(&items, 1),
            "expected a JSON object, found a number"
        );
        assert_eq!(items[2], ev(json!({"b": 2})));
        assert_eq!(
            rejected(&items, 3),
            "expected a JSON object, found an array"
        );
        assert_eq!(rejected(&items, 4), "expected a JSON object, found null");
        assert_eq!(items.len(), 5);

        // An empty array is a valid body with nothing in it.
        assert!(events(b"[]").is_empty());
    }

    #[test]
    fn ndjson_with_blank_lines_and_crlf() {
        let items = events(b"{\"a\":1}\r\n\r\n{\"a\":2}\n\n\n{\"a\":3}");
        assert_eq!(
            items,
            vec![
                ev(json!({"a": 1})),
                ev(json!({"a": 2})),
                ev(json!({"a": 3}))
            ]
        );
    }

    #[test]
    fn ndjson_bad_middle_line_keeps_the_good_ones() {
        let body = b"{\"a\":1}\n{\"a\": ?}\n{\"a\":3}\n\n{\"a\":4}\n";
        let items = events(body);
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(items[0], ev(json!({"a": 1})));
        let reason = rejected(&items, 1);
        assert!(
            reason.starts_with("invalid JSON: expected value"),
            "{reason}"
        );
        assert!(reason.ends_with("at line 2 column 7"), "{reason}");
        assert_eq!(items[2], ev(json!({"a": 3})));
        assert_eq!(items[3], ev(json!({"a": 4})));
    }

    #[test]
    fn line_numbers_stay_right_after_several_errors() {
        let body = b"x\n{\"a\":1}\ny\n\n{\"a\":2}\n{oops\n{\"a\":3}";
        let items = events(body);
        assert_eq!(items.len(), 6, "{items:?}");
        assert!(rejected(&items, 0).contains("at line 1 column 1"));
        assert_eq!(items[1], ev(json!({"a": 1})));
        assert!(rejected(&items, 2).contains("at line 3 column 1"));
        assert_eq!(items[3], ev(json!({"a": 2})));
        assert!(rejected(&items, 4).contains("at line 6 column 2"));
        assert_eq!(items[5], ev(json!({"a": 3})));
    }

    #[test]
    fn ndjson_line_missing_its_brace_does_not_swallow_the_next_line() {
        // The error is detected on line 2, but line 2 itself is a good event.
        let items = events(b"{\"a\":1\n{\"b\":2}\n{\"c\":3}\n");
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(rejected(&items, 0).contains("line 2"), "{items:?}");
        assert_eq!(items[1], ev(json!({"b": 2})));
        assert_eq!(items[2], ev(json!({"c": 3})));
    }

    #[test]
    fn broken_pretty_printed_object_yields_one_rejection_not_fragments() {
        let broken = MOZDEF_CLIENT_EVENT.replace("\"sshd\"", "sshd");
        let body = format!("{broken}\n{MOZDEF_CLIENT_EVENT}\n");
        let items = events(body.as_bytes());
        assert_eq!(items.len(), 2, "{items:?}");
        let reason = rejected(&items, 0);
        assert!(reason.contains("at line 10 column"), "{reason}");
        assert!(matches!(&items[1], DecodedItem::Event(e) if e["processname"] == "sshd"));
    }

    #[test]
    fn invalid_utf8_in_a_line_rejects_only_that_line() {
        let items = events(b"{\"a\":\"ok\"}\n{\"a\":\"bad \xff\xfe\"}\n{\"a\":\"fine\"}\n");
        assert_eq!(items.len(), 3, "{items:?}");
        assert_eq!(items[0], ev(json!({"a": "ok"})));
        let reason = rejected(&items, 1);
        assert!(reason.contains("line 2"), "{reason}");
        assert!(
            reason.contains("unicode") || reason.contains("UTF-8"),
            "{reason}"
        );
        assert_eq!(items[2], ev(json!({"a": "fine"})));
    }

    #[test]
    fn scalars_are_rejected() {
        for (body, found) in [
            (&b"42"[..], "a number"),
            (b"\"hello\"", "a string"),
            (b"true", "a boolean"),
            (b"null", "null"),
        ] {
            let items = events(body);
            assert_eq!(items.len(), 1);
            assert_eq!(
                rejected(&items, 0),
                format!("expected a JSON object, found {found}")
            );
        }
    }

    #[test]
    fn empty_bodies() {
        for body in [&b""[..], b"   ", b"\n\r\n\t ", b"\xEF\xBB\xBF \n"] {
            for format in [BodyFormat::Events, BodyFormat::Bulk] {
                let err =
                    decode_body(body, ContentEncoding::Identity, format, &limits()).unwrap_err();
                assert_eq!(err, BodyError::Empty, "{body:?}");
                assert_eq!(err.http_status(), 400);
            }
        }
        let err = decode_body(
            &gzip(b" \n "),
            ContentEncoding::Gzip,
            BodyFormat::Events,
            &limits(),
        )
        .unwrap_err();
        assert_eq!(err, BodyError::Empty);
        assert_eq!(
            decode_body(b"", ContentEncoding::Gzip, BodyFormat::Events, &limits()).unwrap_err(),
            BodyError::Empty
        );
    }

    #[test]
    fn byte_order_mark_is_tolerated() {
        assert_eq!(events(b"\xEF\xBB\xBF{\"a\":1}"), vec![ev(json!({"a": 1}))]);
    }

    #[test]
    fn gzip_and_deflate_bodies() {
        let body = b"{\"a\":1}\n{\"a\":2}\n";
        let expected = vec![ev(json!({"a": 1})), ev(json!({"a": 2}))];
        for (encoded, encoding) in [
            (gzip(body), ContentEncoding::Gzip),
            (zlib(body), ContentEncoding::Deflate),
            (raw_deflate(body), ContentEncoding::Deflate),
        ] {
            let decoded = decode_body(&encoded, encoding, BodyFormat::Events, &limits()).unwrap();
            assert_eq!(decoded.items, expected, "{encoding:?}");
        }
        // Concatenated gzip members are one gzip stream.
        let mut two = gzip(b"{\"a\":1}\n");
        two.extend(gzip(b"{\"a\":2}\n"));
        let decoded =
            decode_body(&two, ContentEncoding::Gzip, BodyFormat::Events, &limits()).unwrap();
        assert_eq!(decoded.items, expected);
    }

    #[test]
    fn gzip_bomb_fails_fast() {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..200 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 2 * 1024 * 1024, "bomb is {} bytes", bomb.len());

        let limits = BodyLimits {
            max_decompressed_bytes: 1024 * 1024,
            ..limits()
        };
        let started = Instant::now();
        let err =
            decode_body(&bomb, ContentEncoding::Gzip, BodyFormat::Events, &limits).unwrap_err();
        let elapsed = started.elapsed();
        assert_eq!(err, BodyError::DecompressedTooLarge { limit: 1024 * 1024 });
        assert_eq!(err.http_status(), 413);
        assert_eq!(
            err.to_string(),
            "decompressed body exceeds max_decompressed_bytes (1048576)"
        );
        assert!(
            elapsed < Duration::from_secs(5),
            "took {elapsed:?} to refuse the bomb"
        );
    }

    #[test]
    fn bounded_read_never_allocates_past_the_limit() {
        let data = vec![b' '; 100_000];
        let out = read_bounded(&data[..], 100_000, "test").unwrap();
        assert_eq!(out.len(), 100_000);
        assert!(out.capacity() <= 100_000, "capacity {}", out.capacity());
        assert_eq!(
            read_bounded(&data[..], 99_999, "test").unwrap_err(),
            BodyError::DecompressedTooLarge { limit: 99_999 }
        );
        assert_eq!(
            read_bounded(&data[..0], 0, "test").unwrap(),
            Vec::<u8>::new()
        );
    }

    #[test]
    fn identity_body_is_bound_by_the_same_limit() {
        let limits = BodyLimits {
            max_decompressed_bytes: 8,
            ..limits()
        };
        let err = decode_body(
            b"{\"abc\":123}",
            ContentEncoding::Identity,
            BodyFormat::Events,
            &limits,
        )
        .unwrap_err();
        assert_eq!(err, BodyError::DecompressedTooLarge { limit: 8 });
        let ok = decode_body(
            b"{\"a\":1}",
            ContentEncoding::Identity,
            BodyFormat::Events,
            &limits,
        );
        assert!(ok.is_ok());
    }

    #[test]
    fn corrupt_compressed_bodies() {
        let good = gzip(b"{\"a\":1}\n".repeat(100).as_slice());
        let mut flipped = good.clone();
        let middle = flipped.len() / 2;
        for b in &mut flipped[middle..middle + 8] {
            *b ^= 0x5a;
        }
        let truncated = good[..good.len() - 12].to_vec();
        let cases = [
            (b"this is not gzip".to_vec(), ContentEncoding::Gzip),
            (flipped, ContentEncoding::Gzip),
            (truncated, ContentEncoding::Gzip),
            (
                b"\xff\xff\xff\xff not deflate".to_vec(),
                ContentEncoding::Deflate,
            ),
        ];
        for (body, encoding) in cases {
            let err = decode_body(&body, encoding, BodyFormat::Events, &limits()).unwrap_err();
            let BodyError::BadCompression(message) = &err else {
                panic!("{encoding:?}: expected bad compression, got {err:?}");
            };
            assert!(message.contains("body cannot be decompressed"), "{message}");
            assert_eq!(err.http_status(), 400);
        }
    }

    #[test]
    fn content_encoding_header() {
        use ContentEncoding::*;
        for (header, expected) in [
            (None, Identity),
            (Some(""), Identity),
            (Some("identity"), Identity),
            (Some("GZIP"), Gzip),
            (Some(" x-gzip "), Gzip),
            (Some("Deflate"), Deflate),
        ] {
            assert_eq!(ContentEncoding::from_header(header).unwrap(), expected);
        }
        let err = ContentEncoding::from_header(Some("br")).unwrap_err();
        assert_eq!(err, BodyError::UnsupportedEncoding("br".to_owned()));
        assert_eq!(err.http_status(), 415);
        assert_eq!(
            err.to_string(),
            "unsupported content-encoding \"br\": expected gzip, deflate or identity"
        );
    }

    #[test]
    fn depth_limit() {
        assert_eq!(shape(&json!(1)).depth, 0);
        assert_eq!(shape(&json!({})).depth, 1);
        assert_eq!(shape(&json!({"a": [1, {"b": []}]})).depth, 4);

        let ok = nested(32);
        let too_deep = nested(33);
        let body = format!("{ok}\n{too_deep}\n");
        let items = events(body.as_bytes());
        assert!(matches!(items[0], DecodedItem::Event(_)));
        assert_eq!(
            rejected(&items, 1),
            "nesting depth 33 exceeds max_depth (32)"
        );
    }

    #[test]
    fn field_limit_counts_recursively() {
        assert_eq!(
            shape(&json!({"a": 1, "b": {"c": [{"d": 1}, {"e": 2}]}})).fields,
            5
        );

        let limits = BodyLimits {
            max_fields: 4,
            ..limits()
        };
        let body = br#"{"a":1,"b":{"c":1,"d":1}}
{"a":1,"b":{"c":1,"d":[{"e":1}]}}"#;
        let items = decode_body(body, ContentEncoding::Identity, BodyFormat::Events, &limits)
            .unwrap()
            .items;
        assert!(matches!(items[0], DecodedItem::Event(_)));
        assert_eq!(rejected(&items, 1), "5 fields exceed max_fields (4)");

        let wide: serde_json::Map<String, Value> =
            (0..1001).map(|i| (format!("k{i}"), json!(i))).collect();
        let body = serde_json::to_vec(&Value::Object(wide)).unwrap();
        let items = events(&body);
        assert_eq!(rejected(&items, 0), "1001 fields exceed max_fields (1000)");
    }

    #[test]
    fn hundred_thousand_brackets_are_rejected_not_a_crash() {
        let body = vec![b'['; 100_000];
        let items = events(&body);
        assert_eq!(items.len(), 1);
        let reason = rejected(&items, 0);
        assert!(reason.contains("recursion limit"), "{reason}");

        let body = "{\"a\":".repeat(100_000);
        let items = events(body.as_bytes());
        assert_eq!(items.len(), 1);
        assert!(rejected(&items, 0).contains("recursion limit"));

        // One per line: each line is a fresh start, still one item each and no crash.
        let body = "[[[[[[[[[[\n".repeat(1000);
        let items = decode_body(
            body.as_bytes(),
            ContentEncoding::Identity,
            BodyFormat::Events,
            &limits(),
        )
        .unwrap()
        .items;
        assert!(!items.is_empty());
        assert!(
            items
                .iter()
                .all(|i| matches!(i, DecodedItem::Rejected { .. }))
        );
    }

    #[test]
    fn bulk_with_actions() {
        let body = br#"{"index":{"_index":"events","_type":"_doc"}}
{"summary":"one"}
{"create":{}}
{"summary":"two"}
{"delete":{"_id":"x"}}
{"update":{"_id":"y"}}
{"doc":{"summary":"three"},"doc_as_upsert":true}

{"index":{}}
{"index":{"looks":"like an action, but it is the source"}}
"#;
        let items = bulk(body);
        assert_eq!(
            items,
            vec![
                ev(json!({"summary": "one"})),
                ev(json!({"summary": "two"})),
                ev(json!({"summary": "three"})),
                ev(json!({"index": {"looks": "like an action, but it is the source"}})),
            ]
        );
    }

    #[test]
    fn bulk_is_lenient_and_reports_bad_lines() {
        let body = br#"{"summary":"bare event, no action"}
{"index":{}}
{"summary": broken}
{"update":{"_id":"1"}}
{"script":"ctx._source.x = 1"}
{"create":{}}
42
{"index":{}}"#;
        let items = bulk(body);
        assert_eq!(items.len(), 5, "{items:?}");
        assert_eq!(items[0], ev(json!({"summary": "bare event, no action"})));
        let reason = rejected(&items, 1);
        assert!(reason.starts_with("invalid JSON"), "{reason}");
        assert!(reason.contains("at line 3 column"), "{reason}");
        assert_eq!(
            rejected(&items, 2),
            "bulk update on line 4 needs a source with a \"doc\" object at line 5"
        );
        assert_eq!(
            rejected(&items, 3),
            "expected a JSON object, found a number"
        );
        assert_eq!(
            rejected(&items, 4),
            "bulk index action on line 8 is not followed by a source"
        );
    }

    #[test]
    fn bulk_accepts_a_json_array_like_mozdef() {
        let body = br#"[{"index":{"_index":"events"}},{"summary":"one"},{"summary":"two"}]"#;
        assert_eq!(
            bulk(body),
            vec![ev(json!({"summary": "one"})), ev(json!({"summary": "two"}))]
        );
        let body = br#"[{"index":{}}]"#;
        assert_eq!(
            rejected(&bulk(body), 0),
            "bulk index action on array element 0 is not followed by a source"
        );
    }

    #[test]
    fn bulk_applies_event_bounds() {
        let limits = BodyLimits {
            max_depth: 2,
            ..limits()
        };
        let body = b"{\"index\":{}}\n{\"a\":{\"b\":{}}}\n";
        let items = decode_body(body, ContentEncoding::Identity, BodyFormat::Bulk, &limits)
            .unwrap()
            .items;
        assert_eq!(rejected(&items, 0), "nesting depth 3 exceeds max_depth (2)");
    }

    #[test]
    fn max_items() {
        let limits = BodyLimits {
            max_items: 2,
            ..limits()
        };
        let decode =
            |body: &[u8], format| decode_body(body, ContentEncoding::Identity, format, &limits);
        assert_eq!(
            decode(b"{}\n{}", BodyFormat::Events).unwrap().items.len(),
            2
        );
        for (body, format) in [
            (&b"{}\n{}\n{}"[..], BodyFormat::Events),
            (b"[{}, {}, {}]", BodyFormat::Events),
            (b"{}\n[{}, {}]", BodyFormat::Events),
            (b"{}\nbad\n{}", BodyFormat::Events),
            (
                b"{\"index\":{}}\n{}\n{}\n{\"create\":{}}\n{}",
                BodyFormat::Bulk,
            ),
        ] {
            let err = decode(body, format).unwrap_err();
            assert_eq!(err, BodyError::TooManyItems { limit: 2 }, "{body:?}");
            assert_eq!(err.http_status(), 413);
            assert_eq!(err.to_string(), "body has more than max_items (2) items");
        }
        // Action lines are not items.
        let body = b"{\"index\":{}}\n{}\n{\"delete\":{}}\n{\"create\":{}}\n{}";
        assert_eq!(decode(body, BodyFormat::Bulk).unwrap().items.len(), 2);
    }

    #[test]
    fn a_scalar_between_objects_is_rejected_alone() {
        let decoded = decode_body(
            b"{\"a\":1}\n2\n{\"a\":3}",
            ContentEncoding::Identity,
            BodyFormat::Events,
            &limits(),
        )
        .unwrap();
        assert!(matches!(
            decoded.items.as_slice(),
            [
                DecodedItem::Event(_),
                DecodedItem::Rejected { index: 1, .. },
                DecodedItem::Event(_)
            ]
        ));
    }

    #[test]
    fn limits_follow_the_config() {
        let limits = BodyLimits::default();
        assert_eq!(limits.max_decompressed_bytes, 64 * 1024 * 1024);
        assert_eq!(limits.max_depth, 32);
        assert_eq!(limits.max_fields, 1000);
        assert_eq!(limits.max_items, 100_000);
    }
}
