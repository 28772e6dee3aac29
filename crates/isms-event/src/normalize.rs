//! Turning whatever a sender posted into a normalized MozDef event.
//!
//! The rules are documented as a table in the crate documentation; this module implements them in
//! the same order.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::alias::{AliasTarget, FIELD_ALIASES};
use crate::severity::Severity;
use crate::time::{TimeError, format_time, is_epoch_text, micros_of, parse_time_value};
use crate::util::{describe, kind_of, value_text};

/// The MozDef top-level fields an incoming event may set. Every other incoming top-level key is
/// moved into `details`. (The server adds `id` and `origin`.)
pub const MOZDEF_FIELDS: &[&str] = &[
    "timestamp",
    "utctimestamp",
    "receivedtimestamp",
    "hostname",
    "processname",
    "processid",
    "severity",
    "category",
    "source",
    "summary",
    "tags",
    "details",
];

/// How deeply objects and arrays may nest in an incoming event (counting the event itself).
/// serde_json's own parser stops at 128, so this only limits values built in code.
pub const MAX_DEPTH: usize = 256;

/// The category of an event that did not say.
pub const DEFAULT_CATEGORY: &str = "event";

/// A normalized event, ready to store and match.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// UUID v7 text, lowercase hyphenated; also in `document["id"]`.
    pub id: String,
    /// Event time, microseconds since the Unix epoch; also `document["utctimestamp"]`.
    pub utctimestamp_micros: i64,
    /// Receipt time; also `document["receivedtimestamp"]`.
    pub receivedtimestamp_micros: i64,
    /// The full normalized MozDef event.
    pub document: Map<String, Value>,
}

impl Event {
    /// The document as compact JSON on one line (no trailing newline): the form events take in
    /// NDJSON exports, on the bus and in replays.
    pub fn to_json_line(&self) -> String {
        crate::json_text::object_text(&self.document)
    }

    /// The value at a dotted path such as `details.sourceipaddress`. Keys never contain dots
    /// (normalization replaced them by `_`), so a path names at most one value.
    pub fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let mut current = self.document.get(parts.next()?)?;
        for part in parts {
            current = current.as_object()?.get(part)?;
        }
        Some(current)
    }
}

/// Who sent an event: written into the event as `origin`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Origin {
    /// Network peer (address and port) if there was one.
    pub peer: Option<String>,
    /// The source that accepted it, e.g. `http:/events` or `syslog:udp:514`.
    pub endpoint: String,
    /// The name of the API key or generator the sender authenticated with.
    pub key_name: Option<String>,
}

impl Origin {
    /// The `origin` object stored in the event: `{"peer", "endpoint", "key"}`, null members left
    /// out.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        if let Some(peer) = &self.peer {
            map.insert("peer".to_owned(), Value::String(peer.clone()));
        }
        map.insert("endpoint".to_owned(), Value::String(self.endpoint.clone()));
        if let Some(key) = &self.key_name {
            map.insert("key".to_owned(), Value::String(key.clone()));
        }
        Value::Object(map)
    }
}

/// Why an incoming event was refused. Messages name the field (as the sender spelled it, after
/// lowercasing) and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NormalizeError {
    /// The event is not a JSON object.
    #[error("an event must be a JSON object, found {found}")]
    NotAnObject {
        /// "an array", "a string", "a number", "a boolean" or "null".
        found: &'static str,
    },
    /// A field has a type that cannot be converted.
    #[error("field `{field}`: expected {expected}, found {found}")]
    WrongType {
        /// The field as sent (e.g. `pid` when it was meant as `processid`).
        field: String,
        /// What was expected, e.g. "an integer".
        expected: &'static str,
        /// What was found, e.g. `the string "abc"`.
        found: String,
    },
    /// A time field cannot be read as a time.
    #[error("field `{field}`: {reason}")]
    BadTime {
        /// The field as sent: `utctimestamp`, `timestamp`, `@timestamp` or `time`.
        field: String,
        /// The value as text (strings as they are, other values as JSON), cut to 100 characters.
        value: String,
        /// What was wrong with it.
        reason: TimeError,
    },
    /// The severity is not one of the accepted spellings.
    #[error(
        "field `{field}`: unknown severity {value}; expected EMERGENCY, ALERT, CRITICAL, ERROR, \
         WARNING, NOTICE, INFO or DEBUG (any case, or a common spelling such as warn or err), or \
         a number from 0 to 7"
    )]
    BadSeverity {
        /// `severity` or `level`.
        field: String,
        /// A description of the value, e.g. `the string "loud"`.
        value: String,
    },
    /// Neither a summary nor any details: nothing to store.
    #[error("an event needs a summary or details")]
    NoSummaryOrDetails,
    /// Objects and arrays nest deeper than [`MAX_DEPTH`].
    #[error("the event nests objects and arrays deeper than {limit} levels")]
    TooDeep {
        /// The limit, [`MAX_DEPTH`].
        limit: usize,
    },
}

/// What every event of one delivery shares: who sent it and when it arrived, prepared once (the
/// `origin` object and the receipt time's text) instead of once per event.
#[derive(Debug, Clone)]
pub struct Delivery {
    origin: Value,
    received_micros: i64,
    received_text: String,
}

impl Delivery {
    /// A delivery from `origin` received at `received`.
    pub fn new(origin: &Origin, received: Timestamp) -> Delivery {
        let received_micros = micros_of(received);
        Delivery {
            origin: origin.to_json(),
            received_micros,
            received_text: format_time(received_micros),
        }
    }
}

/// Whether normalization can neither refuse `raw` nor read anything from it but keys and values
/// to put under `details`: it is not empty, no key (once lowercased, `.` as `_`) is a MozDef field
/// or an alias of one (times, host, message, severity, tags... are checked and rewritten), and
/// it nests within [`MAX_DEPTH`]. Such an event's stored values are exactly its incoming ones,
/// so a caller may judge it (a replay ruling out events no rule can match) without building it.
pub fn normalizes_to_details_only(raw: &Map<String, Value>) -> bool {
    fn within(value: &Value, depth: usize) -> bool {
        match value {
            Value::Object(map) => depth < MAX_DEPTH && map.values().all(|v| within(v, depth + 1)),
            Value::Array(items) => depth < MAX_DEPTH && items.iter().all(|v| within(v, depth + 1)),
            _ => true,
        }
    }
    !raw.is_empty()
        && raw.keys().all(|key| stays_in_details(key))
        && raw.values().all(|value| within(value, 2))
}

/// Whether normalization stores a top-level incoming member of this key under `details` as it
/// came (at its [`stored_key`], or where a details alias moves it): the key is neither a MozDef
/// field nor an alias of one. An object of only such keys, nested within [`MAX_DEPTH`], is one
/// [`normalizes_to_details_only`] accepts.
pub fn stays_in_details(key: &str) -> bool {
    let key = stored_key(key);
    !MOZDEF_FIELDS.contains(&key.as_ref())
        && !crate::alias::FIELD_ALIASES.iter().any(|alias| {
            alias.from == key && !matches!(alias.to, crate::alias::AliasTarget::Details(_))
        })
}

/// Normalizes one incoming event (see the crate documentation for the rules).
///
/// `origin` is recorded as the event's `origin`; `received` becomes `receivedtimestamp` and is the
/// event time when the event carries none. A new UUID v7 becomes the event's `id`. For many events
/// of one delivery, [`normalize_delivered`] spares repeating the shared part.
pub fn normalize(
    raw: Value,
    origin: &Origin,
    received: Timestamp,
) -> Result<Event, NormalizeError> {
    normalize_delivered(raw, &Delivery::new(origin, received))
}

/// [`normalize`] for one event of a [`Delivery`].
pub fn normalize_delivered(raw: Value, delivery: &Delivery) -> Result<Event, NormalizeError> {
    let raw = match raw {
        Value::Object(map) => map,
        other => {
            return Err(NormalizeError::NotAnObject {
                found: kind_of(&other),
            });
        }
    };
    let mut top = raw;
    lowercase_map(&mut top, 1)?;

    let mut details = match top.remove("details") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => return Err(wrong_type("details".to_owned(), "an object", &other)),
    };

    let mut names = FieldNames::default();
    apply_top_aliases(&mut top, &mut details, &mut names);

    // One pass hands each MozDef field to its slot (null counts as absent); everything else, including
    // any `id` or `origin` the sender made up, is detail, in the map's order.
    let mut fields = MozdefSlots::default();
    for (key, value) in top {
        let slot = match key.as_str() {
            // Set by the server, never trusted from the sender.
            "receivedtimestamp" => continue,
            "utctimestamp" => &mut fields.utctimestamp,
            "timestamp" => &mut fields.timestamp,
            "hostname" => &mut fields.hostname,
            "processname" => &mut fields.processname,
            "processid" => &mut fields.processid,
            "severity" => &mut fields.severity,
            "category" => &mut fields.category,
            "source" => &mut fields.source,
            "summary" => &mut fields.summary,
            "tags" => &mut fields.tags,
            _ => {
                insert_keeping(&mut details, key, value);
                continue;
            }
        };
        if !value.is_null() {
            *slot = Some(value);
        }
    }
    let utctimestamp = fields.utctimestamp;
    let timestamp = fields.timestamp;
    let hostname = text_field(fields.hostname, "hostname", &names)?;
    let processname = text_field(fields.processname, "processname", &names)?;
    let processid = processid_field(fields.processid, &names)?;
    let severity = match fields.severity {
        None => Severity::default(),
        Some(value) => Severity::parse(&value).ok_or_else(|| NormalizeError::BadSeverity {
            field: names.of("severity"),
            value: describe(&value),
        })?,
    };
    let category = text_field(fields.category, "category", &names)?;
    let source = text_field(fields.source, "source", &names)?;
    let summary = text_field(fields.summary, "summary", &names)?.filter(|s| !s.trim().is_empty());
    let tags = tags_field(fields.tags, &names)?;

    apply_details_aliases(&mut details);

    if summary.is_none() && details.is_empty() {
        return Err(NormalizeError::NoSummaryOrDetails);
    }

    let read_time = |value: Value, field: &'static str| match parse_time_value(&value) {
        Ok(time) => Ok((time, value)),
        Err(reason) => Err(NormalizeError::BadTime {
            field: names.of(field),
            value: value_text(&value),
            reason,
        }),
    };
    let timestamp = timestamp.map(|v| read_time(v, "timestamp")).transpose()?;
    let utctimestamp = utctimestamp
        .map(|v| read_time(v, "utctimestamp"))
        .transpose()?;
    let received_micros = delivery.received_micros;
    let event_micros = utctimestamp
        .as_ref()
        .or(timestamp.as_ref())
        .map_or(received_micros, |(time, _)| micros_of(*time));
    let timestamp_text = match timestamp {
        Some((_, Value::String(text))) if !is_epoch_text(&text) => text.trim().to_owned(),
        Some((time, _)) => format_time(micros_of(time)),
        None => format_time(event_micros),
    };

    Ok(assemble(
        Checked {
            category,
            details,
            hostname,
            processid,
            processname,
            severity,
            source,
            summary,
            tags,
            timestamp_text,
            utctimestamp_text: None,
            event_micros,
        },
        delivery,
    ))
}

/// The fields of an event once read and checked, ready to become the stored document.
struct Checked {
    category: Option<String>,
    details: Map<String, Value>,
    hostname: Option<String>,
    processid: Option<Value>,
    processname: Option<String>,
    severity: Severity,
    source: Option<String>,
    summary: Option<String>,
    tags: Vec<String>,
    timestamp_text: String,
    /// `utctimestamp` as text when the caller has it already (it is `event_micros` formatted).
    utctimestamp_text: Option<String>,
    event_micros: i64,
}

/// The normalized event: checked fields, plus the id, the origin and the receipt time. The one place
/// that lays out a document, for [`normalize_delivered`] and [`EventFields::into_event`] alike.
fn assemble(fields: Checked, delivery: &Delivery) -> Event {
    let event_micros = fields.event_micros;
    let received_micros = delivery.received_micros;
    let id = crate::id::new_event_id(received_micros);
    let received_text = delivery.received_text.clone();
    let utctimestamp_text = if event_micros == received_micros {
        received_text.clone()
    } else {
        fields
            .utctimestamp_text
            .unwrap_or_else(|| format_time(event_micros))
    };
    // Members in key order: the map is built in one go from them instead of searched per insert.
    let text = |key: &str, text: String| (key.to_owned(), Value::String(text));
    let mut members = Vec::with_capacity(14);
    members.push(text(
        "category",
        fields
            .category
            .unwrap_or_else(|| DEFAULT_CATEGORY.to_owned()),
    ));
    members.push(("details".to_owned(), Value::Object(fields.details)));
    members.extend(fields.hostname.map(|hostname| text("hostname", hostname)));
    members.push(text("id", id.clone()));
    members.push(("origin".to_owned(), delivery.origin.clone()));
    members.extend(
        fields
            .processid
            .map(|processid| ("processid".to_owned(), processid)),
    );
    members.extend(
        fields
            .processname
            .map(|processname| text("processname", processname)),
    );
    members.push(text("receivedtimestamp", received_text));
    members.push(text("severity", fields.severity.name().to_owned()));
    members.extend(fields.source.map(|source| text("source", source)));
    members.extend(fields.summary.map(|summary| text("summary", summary)));
    members.push((
        "tags".to_owned(),
        Value::Array(fields.tags.into_iter().map(Value::String).collect()),
    ));
    members.push(text("timestamp", fields.timestamp_text));
    members.push(text("utctimestamp", utctimestamp_text));
    debug_assert!(
        members.is_sorted_by(|a, b| a.0 < b.0),
        "members in key order"
    );
    let document: Map<String, Value> = members.into_iter().collect();

    Event {
        id,
        utctimestamp_micros: event_micros,
        receivedtimestamp_micros: received_micros,
        document,
    }
}

/// The MozDef fields of an event that isms's own code read from a message (a syslog receiver, say),
/// typed. [`EventFields::into_event`] makes the same event [`normalize_delivered`] makes of
/// [`EventFields::to_json`], without writing the fields as JSON and reading them back (that round
/// trip was a fifth of a syslog message's cost). `details` are treated as there: keys lowercased,
/// `.` replaced by `_`, aliases applied. A property of the pair, checked by the callers' tests on
/// every message they have.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFields {
    /// `summary`: the message text.
    pub summary: Option<String>,
    /// `hostname`.
    pub hostname: Option<String>,
    /// `processname`.
    pub processname: Option<String>,
    /// `processid`.
    pub processid: Option<i64>,
    /// `severity`.
    pub severity: Severity,
    /// `category`; [`DEFAULT_CATEGORY`] when `None`.
    pub category: Option<String>,
    /// `source`.
    pub source: Option<String>,
    /// `utctimestamp` (and `timestamp`); the receipt time when `None`.
    pub utctimestamp_micros: Option<i64>,
    /// `tags`.
    pub tags: Vec<String>,
    /// `details`.
    pub details: Map<String, Value>,
}

impl EventFields {
    /// The fields as a raw event for [`normalize_delivered`] (or for a decoder that works on JSON).
    pub fn to_json(&self) -> Value {
        let mut event = Map::new();
        if let Some(summary) = &self.summary {
            event.insert("summary".into(), Value::String(summary.clone()));
        }
        if let Some(hostname) = &self.hostname {
            event.insert("hostname".into(), Value::String(hostname.clone()));
        }
        if let Some(processname) = &self.processname {
            event.insert("processname".into(), Value::String(processname.clone()));
        }
        if let Some(processid) = self.processid {
            event.insert("processid".into(), Value::from(processid));
        }
        event.insert(
            "severity".into(),
            Value::String(self.severity.name().into()),
        );
        if let Some(category) = &self.category {
            event.insert("category".into(), Value::String(category.clone()));
        }
        if let Some(source) = &self.source {
            event.insert("source".into(), Value::String(source.clone()));
        }
        if let Some(micros) = self.utctimestamp_micros {
            event.insert("utctimestamp".into(), Value::String(format_time(micros)));
        }
        event.insert("details".into(), Value::Object(self.details.clone()));
        event.insert(
            "tags".into(),
            Value::Array(self.tags.iter().cloned().map(Value::String).collect()),
        );
        Value::Object(event)
    }

    /// The normalized event of one [`Delivery`]: what [`normalize_delivered`] makes of
    /// [`EventFields::to_json`].
    pub fn into_event(self, delivery: &Delivery) -> Result<Event, NormalizeError> {
        let EventFields {
            summary,
            hostname,
            processname,
            processid,
            severity,
            category,
            source,
            utctimestamp_micros,
            tags,
            mut details,
        } = self;
        // What normalization does to `details` (its depth counts the event and `details` itself).
        lowercase_map(&mut details, 2)?;
        apply_details_aliases(&mut details);
        let summary = summary.filter(|summary| !summary.trim().is_empty());
        if summary.is_none() && details.is_empty() {
            return Err(NormalizeError::NoSummaryOrDetails);
        }
        // Years 1 to 9999 written as text and read back are the same microsecond; any other time is
        // what its text reads as (or the same error), as in the round trip.
        const YEAR_1: i64 = -62_135_596_800_000_000;
        const YEAR_10000: i64 = 253_402_300_800_000_000;
        let event_micros = match utctimestamp_micros {
            Some(micros) if (YEAR_1..YEAR_10000).contains(&micros) => micros,
            Some(micros) => parse_time_value(&Value::String(format_time(micros)))
                .map(micros_of)
                .map_err(|reason| NormalizeError::BadTime {
                    field: "utctimestamp".to_owned(),
                    value: format_time(micros),
                    reason,
                })?,
            None => delivery.received_micros,
        };
        let timestamp_text = format_time(event_micros);
        Ok(assemble(
            Checked {
                category,
                details,
                hostname,
                processid: processid.map(Value::from),
                processname,
                severity,
                source,
                summary,
                tags,
                utctimestamp_text: Some(timestamp_text.clone()),
                timestamp_text,
                event_micros,
            },
            delivery,
        ))
    }
}

/// Remembers which incoming key filled a MozDef field through an alias, so that errors name the
/// key the sender actually used.
#[derive(Default)]
struct FieldNames(Vec<(&'static str, &'static str)>);

impl FieldNames {
    fn of(&self, field: &'static str) -> String {
        self.0
            .iter()
            .find(|(target, _)| *target == field)
            .map_or(field, |(_, from)| *from)
            .to_owned()
    }
}

/// Lowercases every key (recursively, through arrays too) and replaces `.` by `_`. When two keys
/// become equal, the later one in the map's iteration order wins.
///
/// Works in place: a map whose keys are already normalized (the usual case) keeps its keys and only
/// has its values visited, so no key or map is reallocated.
fn lowercase_map(map: &mut Map<String, Value>, depth: usize) -> Result<(), NormalizeError> {
    // One walk checks the keys and visits the values; only a map with a key to change is rebuilt.
    let mut rename = false;
    for (key, value) in map.iter_mut() {
        rename |= key_needs_normalizing(key);
        lowercase_value(value, depth)?;
    }
    if rename {
        let original = std::mem::take(map);
        for (key, value) in original {
            map.insert(normalize_key(key), value);
        }
    }
    Ok(())
}

fn lowercase_value(value: &mut Value, depth: usize) -> Result<(), NormalizeError> {
    let nested = || {
        if depth >= MAX_DEPTH {
            Err(NormalizeError::TooDeep { limit: MAX_DEPTH })
        } else {
            Ok(depth + 1)
        }
    };
    match value {
        Value::Object(map) => lowercase_map(map, nested()?),
        Value::Array(items) => {
            let depth = nested()?;
            items
                .iter_mut()
                .try_for_each(|item| lowercase_value(item, depth))
        }
        _ => Ok(()),
    }
}

fn key_needs_normalizing(key: &str) -> bool {
    // Eight bytes at a time: a word of lowercase ASCII without dots (nearly every key) is passed by a
    // few arithmetic operations; any other word is looked at byte by byte.
    let bytes = key.as_bytes();
    let mut words = bytes.chunks_exact(8);
    let clean = words
        .by_ref()
        .all(|word| word_is_plain(u64::from_le_bytes(word.try_into().unwrap_or([0; 8]))));
    if clean {
        // Padded with `a`, a plain byte.
        let mut tail = [b'a'; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        if word_is_plain(u64::from_le_bytes(tail)) {
            return false;
        }
    }
    key_needs_normalizing_bytewise(key)
}

/// True only if no byte of `word` is an ASCII uppercase letter, `.` or outside ASCII. May say false
/// for a word without any (then the caller looks byte by byte), never true for one with one.
fn word_is_plain(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    if word & HIGH_BITS != 0 {
        return false;
    }
    // With every high bit clear, adding below 0x80 per byte carries into no neighbour: a byte's high
    // bit is then set exactly when it reached the threshold.
    let at_least_upper_a = word + ONES * (0x80 - u64::from(b'A'));
    let above_upper_z = word + ONES * (0x80 - u64::from(b'Z') - 1);
    let uppercase = at_least_upper_a & !above_upper_z;
    let dots = word ^ (ONES * u64::from(b'.'));
    let has_dot = dots.wrapping_sub(ONES) & !dots;
    (uppercase | has_dot) & HIGH_BITS == 0
}

fn key_needs_normalizing_bytewise(key: &str) -> bool {
    for byte in key.bytes() {
        if byte == b'.' || byte.is_ascii_uppercase() {
            return true;
        }
        if !byte.is_ascii() {
            return key.chars().any(|c| c == '.' || c.is_uppercase());
        }
    }
    false
}

/// A key as stored: lowercase, `.` replaced by `_`.
/// The key an incoming key is stored under: lowercased, `.` as `_` (see [`normalize`]).
pub fn stored_key(key: &str) -> std::borrow::Cow<'_, str> {
    if key_needs_normalizing(key) {
        std::borrow::Cow::Owned(key.to_lowercase().replace('.', "_"))
    } else {
        std::borrow::Cow::Borrowed(key)
    }
}

fn normalize_key(key: String) -> String {
    let changed = match stored_key(&key) {
        std::borrow::Cow::Owned(changed) => Some(changed),
        std::borrow::Cow::Borrowed(_) => None,
    };
    changed.unwrap_or(key)
}

/// True if the slot holds a value other than null.
fn present(slot: Option<&Value>) -> bool {
    !matches!(slot, None | Some(Value::Null))
}

fn apply_top_aliases(
    top: &mut Map<String, Value>,
    details: &mut Map<String, Value>,
    names: &mut FieldNames,
) {
    // Most events use the MozDef names already: one pass over their keys spares the table walk.
    // The keys an alias reads are gathered in that pass; the table is then walked in its order
    // against them alone (a search of the map per entry was most of what an event with one alias
    // key cost to normalize).
    let mut sources: Vec<&'static str> = Vec::new();
    for key in top.keys() {
        if is_alias_source(key, false)
            && let Some(alias) = FIELD_ALIASES.iter().find(|alias| alias.from == key)
        {
            sources.push(alias.from);
        }
    }
    if sources.is_empty() {
        return;
    }
    for alias in FIELD_ALIASES {
        if !sources.contains(&alias.from) || !top.contains_key(alias.from) {
            continue;
        }
        match alias.to {
            AliasTarget::Top(target) => {
                if !present(top.get(target))
                    && let Some(value) = top.remove(alias.from)
                {
                    top.insert(target.to_owned(), value);
                    names.0.push((target, alias.from));
                    // What an alias puts in place may be read by a later one.
                    if is_alias_source(target, false) {
                        sources.push(target);
                    }
                }
            }
            AliasTarget::Details(target) => {
                if !present(details.get(target))
                    && let Some(value) = top.remove(alias.from)
                {
                    details.insert(target.to_owned(), value);
                }
            }
            AliasTarget::MergeIntoDetails => {
                // Anything but an object stays and becomes `details.<from>` like an unknown key.
                if matches!(top.get(alias.from), Some(Value::Object(_)))
                    && let Some(Value::Object(fields)) = top.remove(alias.from)
                {
                    for (key, value) in fields {
                        insert_keeping(details, key, value);
                    }
                }
            }
        }
    }
}

fn apply_details_aliases(details: &mut Map<String, Value>) {
    if !details.keys().any(|key| is_alias_source(key, true)) {
        return;
    }
    for alias in FIELD_ALIASES {
        if let AliasTarget::Details(target) = alias.to
            && alias.from != target
            && details.contains_key(alias.from)
            && !present(details.get(target))
            && let Some(value) = details.remove(alias.from)
        {
            details.insert(target.to_owned(), value);
        }
    }
}

/// Whether some alias in [`FIELD_ALIASES`] reads this key: at the top level, or inside `details`,
/// where only [`AliasTarget::Details`] entries that rename apply (a details key already named like its
/// target, the common case, needs nothing). A `match` rather than a walk of the table: it runs for every
/// key of every event (a test checks that both agree).
fn is_alias_source(key: &str, in_details: bool) -> bool {
    match key {
        "srcip" | "src_ip" | "sourceip" | "source_ip" | "dstip" | "dst_ip" | "destinationip"
        | "destination_ip" | "srcport" | "src_port" | "dstport" | "dst_port" | "destport"
        | "user" | "user_name" => true,
        "message"
        | "msg"
        | "program"
        | "process"
        | "pid"
        | "host"
        | "type"
        | "@timestamp"
        | "time"
        | "level"
        | "tag"
        | "fields"
        | "sourceipaddress"
        | "destinationipaddress"
        | "sourceport"
        | "destinationport"
        | "username" => !in_details,
        _ => false,
    }
}

/// Inserts `key` unless the map already holds a non-null value there; then the value goes under
/// the first free name among `key_1`, `key_2`, ... so nothing is lost.
fn insert_keeping(map: &mut Map<String, Value>, key: String, value: Value) {
    if !present(map.get(&key)) {
        map.insert(key, value);
        return;
    }
    let mut n: u64 = 1;
    loop {
        let candidate = format!("{key}_{n}");
        if !map.contains_key(&candidate) {
            map.insert(candidate, value);
            return;
        }
        n += 1;
    }
}

/// The MozDef fields of an incoming event, taken out of its top level (null values left out).
#[derive(Default)]
struct MozdefSlots {
    utctimestamp: Option<Value>,
    timestamp: Option<Value>,
    hostname: Option<Value>,
    processname: Option<Value>,
    processid: Option<Value>,
    severity: Option<Value>,
    category: Option<Value>,
    source: Option<Value>,
    summary: Option<Value>,
    tags: Option<Value>,
}

fn wrong_type(field: String, expected: &'static str, found: &Value) -> NormalizeError {
    NormalizeError::WrongType {
        field,
        expected,
        found: describe(found),
    }
}

/// A text field: strings as they are, numbers and booleans as their JSON text.
fn text_field(
    value: Option<Value>,
    field: &'static str,
    names: &FieldNames,
) -> Result<Option<String>, NormalizeError> {
    match value {
        None => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(other) => Err(wrong_type(names.of(field), "a string", &other)),
    }
}

/// `processid`: an integer, a string holding one, or the syslog nil value `-` / an empty string
/// (both meaning absent).
fn processid_field(
    value: Option<Value>,
    names: &FieldNames,
) -> Result<Option<Value>, NormalizeError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let integer = match &value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(Value::Number(n.clone())),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
            // Exact: f is an integer well inside the i64 range.
            .map(|f| Value::from(f as i64)),
        Value::String(text) => {
            let text = text.trim();
            if text.is_empty() || text == "-" {
                return Ok(None);
            }
            text.parse::<i64>()
                .map(Value::from)
                .or_else(|_| text.parse::<u64>().map(Value::from))
                .ok()
        }
        _ => None,
    };
    match integer {
        Some(integer) => Ok(Some(integer)),
        None => Err(wrong_type(names.of("processid"), "an integer", &value)),
    }
}

/// `tags`: an array of strings. A single scalar becomes a one-element array; numbers, booleans,
/// arrays and objects inside the array become their JSON text; nulls are skipped.
fn tags_field(value: Option<Value>, names: &FieldNames) -> Result<Vec<String>, NormalizeError> {
    let text_of = |value: Value| match value {
        Value::String(text) => Some(text),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    match value {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items.into_iter().filter_map(text_of).collect()),
        Some(Value::Object(map)) => Err(wrong_type(
            names.of("tags"),
            "an array of strings",
            &Value::Object(map),
        )),
        Some(scalar) => Ok(text_of(scalar).into_iter().collect()),
    }
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
