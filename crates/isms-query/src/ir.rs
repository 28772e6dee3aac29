//! The predicate IR: the one representation every query front end compiles to.
//!
//! Searches typed by people, native rules and (later) Sigma rules all become a [`Predicate`]. Two executors
//! read it: the in-memory [`crate::matcher`] (the detection engine's hot path) and the SQL compiler of each
//! store backend. Keeping the IR small and its semantics written down here is what lets both executors
//! give the same answer; `isms-store` has a property test that checks they do.
//!
//! # Semantics (both executors MUST follow these exactly)
//!
//! *Resolving a path.* A [`FieldPath`] is a list of lowercase object keys. Resolution walks objects only.
//! The value found at the end yields the *scalars* of the path: a string, number or boolean yields itself;
//! an array yields its elements that are strings, numbers or booleans (nested arrays and objects inside
//! the array are ignored); `null`, an object or a missing key yields nothing.
//!
//! *Rendering a scalar as text* ([`render_scalar`]): a string is itself, a number is its JSON text as
//! stored (serde_json's rendering), `true`/`false` are those words.
//!
//! *Tests* (a field test matches when ANY scalar of the path satisfies it):
//! - [`FieldTest::Exists`]: the value at the path holds a non-null scalar at or anywhere below it (through
//!   nested objects and arrays too), so `_exists_:details` is true when details holds anything.
//! - [`FieldTest::Equals`]: the rendered text equals the value, ignoring ASCII case.
//! - [`FieldTest::Wildcard`]: the rendered text matches the whole pattern, `*` = any run of characters,
//!   `?` = exactly one character, ignoring ASCII case.
//! - [`FieldTest::Regex`]: the rendered text matches the regular expression anchored at both ends
//!   (`^(?:re)$`), case-sensitive unless the expression says `(?i)`.
//! - [`FieldTest::Range`]: see [`RangeKind`]; each present bound must hold.
//! - [`FieldTest::Cidr`]: the rendered text parses as an IP address (Rust's `std::net::IpAddr`
//!   parsing: no surrounding spaces, no zone, no leading zeros in IPv4) of the network's family
//!   (IPv4 or IPv6; `::ffff:10.0.0.1` is IPv6) whose first prefix-length bits are the network's.
//!   The network is written `address/length` without host bits (see [`crate::network`]).
//! - [`FieldTest::FieldRef`]: some scalar of the field and some scalar of the other path (resolved
//!   by the same rule, in the same event) have rendered texts equal ignoring ASCII case. A missing
//!   or scalar-less other path matches nothing, even against a missing field.
//! - [`FieldTest::TimePart`]: the rendered text, read as a time by `isms_event::parse_time` (the
//!   time fields' parser: RFC 3339 / ISO 8601, text without an offset as UTC, RFC 2822, and decimal
//!   epoch numbers in seconds, milliseconds, microseconds or nanoseconds by magnitude), has that
//!   component in UTC equal to the value: [`TimeComponent`] says which (minute 0-59, hour 0-23,
//!   day of the month 1-31, ISO 8601 week number 1-53, month 1-12, calendar year). Text that is not
//!   a time matches nothing. Unlike [`FieldTest::TimeEquals`], this works on any field.
//!
//! *Time fields* ([`TIME_FIELDS`]): `utctimestamp` and `receivedtimestamp` hold RFC 3339 text in events,
//! written by normalization with microsecond precision. `Equals` and `Range` on them compare instants
//! (microseconds since the epoch, see [`RangeKind::Time`] and [`FieldTest::TimeEquals`]); the parser
//! produces those variants for these fields. On any other field, `TimeEquals` and `RangeKind::Time`
//! match nothing (the parser never produces them there).
//!
//! *Free text* ([`TextTest`]) is over the `summary` field only, by words: the summary is split into
//! tokens by [`tokenize`] (runs of alphanumeric characters, lowercased). The SQL executor indexes the
//! same tokens and runs the matcher's own word test on each row (`matcher::summary_has_word` and
//! friends), so the two executors cannot disagree on what a word is.
use serde::{Deserialize, Serialize};

/// The fields whose values are instants rather than text.
pub const TIME_FIELDS: [&str; 2] = ["utctimestamp", "receivedtimestamp"];

/// A decimal number in text, the only strings that take part in numeric ranges. Both executors use this
/// exact pattern (the SQL executor through `REGEXP`/`~`).
pub const NUMERIC_TEXT_PATTERN: &str = r"^-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?$";

/// A boolean combination of tests over one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Predicate {
    /// Matches every event (the empty query, `*`, `*:*`).
    All,
    /// Every child matches. An empty list matches everything.
    And(Vec<Predicate>),
    /// At least one child matches. An empty list matches nothing.
    Or(Vec<Predicate>),
    /// The child does not match.
    Not(Box<Predicate>),
    /// A test on the scalars of one field.
    Field { field: FieldPath, test: FieldTest },
    /// A test on the words of the summary.
    Text(TextTest),
}

/// A dotted path of lowercase object keys, e.g. `details.username`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FieldPath(pub Vec<String>);

impl FieldPath {
    /// Splits `a.b.c` on dots and lowercases each segment.
    pub fn parse_dotted(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .map(|segment| segment.to_ascii_lowercase())
                .collect(),
        )
    }

    /// The dotted form, `details.username`.
    pub fn dotted(&self) -> String {
        self.0.join(".")
    }

    /// Whether this path is one of [`TIME_FIELDS`].
    pub fn is_time_field(&self) -> bool {
        self.0.len() == 1 && TIME_FIELDS.contains(&self.0[0].as_str())
    }
}

impl std::fmt::Display for FieldPath {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.dotted())
    }
}

/// What a field's scalars are tested against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldTest {
    /// A non-null scalar is present at or below the path (see the module doc).
    Exists,
    /// Rendered text equals this value, ASCII case-insensitively.
    Equals(String),
    /// Whole-value glob with `*` and `?`, ASCII case-insensitive. `\*`, `\?` and `\\` are literal.
    Wildcard(String),
    /// Anchored regular expression over the rendered text.
    Regex(String),
    /// An ordered comparison.
    Range(RangeKind),
    /// A time field equals this instant (microseconds since the Unix epoch).
    TimeEquals(i64),
    /// The rendered text is an IP address inside this network, written canonically
    /// (`10.0.0.0/8`, `2001:db8::/32`; see [`crate::network::IpNetwork`]).
    Cidr(String),
    /// The rendered text equals (ASCII case-insensitively) that of a scalar of this other field
    /// of the same event (Sigma's `fieldref`).
    FieldRef(FieldPath),
    /// The text read as a time has this UTC component (Sigma's `hour`, `day`, ... modifiers).
    TimePart { part: TimeComponent, value: i64 },
}

/// A component of a UTC time, for [`FieldTest::TimePart`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeComponent {
    /// Minute of the hour, 0-59.
    Minute,
    /// Hour of the day, 0-23.
    Hour,
    /// Day of the month, 1-31.
    Day,
    /// ISO 8601 week number, 1-53 (the week of the year's first Thursday is week 1).
    Week,
    /// Month of the year, 1-12.
    Month,
    /// Calendar year (not the ISO week-numbering year).
    Year,
}

impl TimeComponent {
    /// Every component, in order from the smallest.
    pub const ALL: [TimeComponent; 6] = [
        TimeComponent::Minute,
        TimeComponent::Hour,
        TimeComponent::Day,
        TimeComponent::Week,
        TimeComponent::Month,
        TimeComponent::Year,
    ];

    /// The name used in queries and by Sigma: `minute`, `hour`, `day`, `week`, `month`, `year`.
    pub fn name(self) -> &'static str {
        match self {
            TimeComponent::Minute => "minute",
            TimeComponent::Hour => "hour",
            TimeComponent::Day => "day",
            TimeComponent::Week => "week",
            TimeComponent::Month => "month",
            TimeComponent::Year => "year",
        }
    }

    /// The component named `name` (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<TimeComponent> {
        TimeComponent::ALL
            .into_iter()
            .find(|component| component.name().eq_ignore_ascii_case(name))
    }

    /// The values the component can take (years as far as `isms_event`'s times reach); a value
    /// outside can never match, so front ends refuse it.
    pub fn possible_values(self) -> std::ops::RangeInclusive<i64> {
        match self {
            TimeComponent::Minute => 0..=59,
            TimeComponent::Hour => 0..=23,
            TimeComponent::Day => 1..=31,
            TimeComponent::Week => 1..=53,
            TimeComponent::Month => 1..=12,
            TimeComponent::Year => -9999..=9999,
        }
    }

    /// This component of `timestamp`, in UTC.
    pub fn of(self, timestamp: jiff::Timestamp) -> i64 {
        let datetime = jiff::tz::Offset::UTC.to_datetime(timestamp);
        match self {
            TimeComponent::Minute => i64::from(datetime.minute()),
            TimeComponent::Hour => i64::from(datetime.hour()),
            TimeComponent::Day => i64::from(datetime.day()),
            TimeComponent::Week => i64::from(datetime.date().iso_week_date().week()),
            TimeComponent::Month => i64::from(datetime.month()),
            TimeComponent::Year => i64::from(datetime.year()),
        }
    }

    /// This component of `text` read as a time by `isms_event::parse_time`; `None` when the text is
    /// not a time. Both executors decide [`FieldTest::TimePart`] with this.
    pub fn of_text(self, text: &str) -> Option<i64> {
        isms_event::parse_time(text)
            .ok()
            .map(|timestamp| self.of(timestamp))
    }
}

/// A range test. Unbounded sides are `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RangeKind {
    /// Numeric: only scalars that are JSON numbers, or strings matching [`NUMERIC_TEXT_PATTERN`], take
    /// part; they are compared as `f64`.
    Number {
        lower: Option<Bound<f64>>,
        upper: Option<Bound<f64>>,
    },
    /// Text: the rendered text, ASCII-lowercased, compared byte-wise with the ASCII-lowercased bounds.
    Text {
        lower: Option<Bound<String>>,
        upper: Option<Bound<String>>,
    },
    /// Time fields only: instants in microseconds since the Unix epoch.
    Time {
        lower: Option<Bound<i64>>,
        upper: Option<Bound<i64>>,
    },
}

/// One side of a range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bound<T> {
    pub value: T,
    pub inclusive: bool,
}

/// A test on the words of the summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextTest {
    /// Some token equals this (already tokenized, lowercase) word.
    Word(String),
    /// Some token starts with this (lowercase) prefix.
    Prefix(String),
    /// These tokens appear consecutively, in order. Always two or more tokens.
    Phrase(Vec<String>),
}

/// Renders a JSON scalar as the text tests see. `None` for null, arrays and objects.
pub fn render_scalar(value: &serde_json::Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        serde_json::Value::String(text) => Some(std::borrow::Cow::Borrowed(text.as_str())),
        serde_json::Value::Number(number) => Some(std::borrow::Cow::Owned(number.to_string())),
        serde_json::Value::Bool(true) => Some(std::borrow::Cow::Borrowed("true")),
        serde_json::Value::Bool(false) => Some(std::borrow::Cow::Borrowed("false")),
        serde_json::Value::Null | serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            None
        }
    }
}

/// The value at `path`, walking objects only (no arrays), or `None` when a key is missing.
pub fn value_at<'a>(
    document: &'a serde_json::Map<String, serde_json::Value>,
    path: &FieldPath,
) -> Option<&'a serde_json::Value> {
    let (first, rest) = path.0.split_first()?;
    let mut current = document.get(first)?;
    for segment in rest {
        current = current.as_object()?.get(segment)?;
    }
    Some(current)
}

/// Whether a non-null scalar sits anywhere at or below `value` (the [`FieldTest::Exists`] rule).
pub fn contains_scalar(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Null => false,
        serde_json::Value::Array(elements) => elements.iter().any(contains_scalar),
        serde_json::Value::Object(members) => members.values().any(contains_scalar),
        serde_json::Value::Bool(_)
        | serde_json::Value::Number(_)
        | serde_json::Value::String(_) => true,
    }
}

/// Calls `visit` for every scalar of `path` in `document`, following the resolution rule above.
pub fn for_each_scalar<'a>(
    document: &'a serde_json::Map<String, serde_json::Value>,
    path: &FieldPath,
    visit: impl FnMut(&'a serde_json::Value),
) {
    if let Some(value) = value_at(document, path) {
        for_each_scalar_of(value, visit);
    }
}

/// The scalars [`for_each_scalar`] visits for the value found at a path: the value itself, or
/// the scalar elements of an array.
pub fn for_each_scalar_of<'a>(
    current: &'a serde_json::Value,
    mut visit: impl FnMut(&'a serde_json::Value),
) {
    match current {
        serde_json::Value::Array(elements) => {
            for element in elements {
                if matches!(
                    element,
                    serde_json::Value::String(_)
                        | serde_json::Value::Number(_)
                        | serde_json::Value::Bool(_)
                ) {
                    visit(element);
                }
            }
        }
        serde_json::Value::String(_)
        | serde_json::Value::Number(_)
        | serde_json::Value::Bool(_) => visit(current),
        serde_json::Value::Null | serde_json::Value::Object(_) => {}
    }
}

/// Splits text into lowercase word tokens: maximal runs of alphanumeric characters.
///
/// The SQLite store indexes exactly these tokens (see `isms-store`'s `terms.rs`).
pub fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for_each_token(text, &mut String::new(), |token| {
        tokens.push(token.to_owned())
    });
    tokens
}

/// Calls `each` with every token [`tokenize`] makes of `text`, in order, built in `scratch` (so a
/// caller that only looks at each token allocates nothing per word).
pub fn for_each_token(text: &str, scratch: &mut String, mut each: impl FnMut(&str)) {
    if text.is_ascii() {
        // Nearly every summary: words are runs of ASCII letters and digits, handed over in place
        // unless they hold a capital (then lowercased in `scratch`). The same tokens as below.
        let bytes = text.as_bytes();
        let mut index = 0;
        loop {
            while index < bytes.len() && !bytes[index].is_ascii_alphanumeric() {
                index += 1;
            }
            let start = index;
            let mut capital = false;
            while index < bytes.len() && bytes[index].is_ascii_alphanumeric() {
                capital |= bytes[index].is_ascii_uppercase();
                index += 1;
            }
            if start == index {
                return;
            }
            let word = &text[start..index];
            if capital {
                scratch.clear();
                scratch.push_str(word);
                scratch.make_ascii_lowercase();
                each(scratch);
                scratch.clear();
            } else {
                each(word);
            }
        }
    }
    tokens_by_character(text, scratch, each);
}

/// [`for_each_token`] one character at a time: the rule itself, for any text.
fn tokens_by_character(text: &str, scratch: &mut String, mut each: impl FnMut(&str)) {
    scratch.clear();
    for character in text.chars() {
        if character.is_ascii_alphanumeric() {
            scratch.push(character.to_ascii_lowercase());
        } else if !character.is_ascii() && character.is_alphanumeric() {
            scratch.extend(character.to_lowercase());
        } else if !scratch.is_empty() {
            each(scratch);
            scratch.clear();
        }
    }
    if !scratch.is_empty() {
        each(scratch);
        scratch.clear();
    }
}

/// Whether `text` matches [`NUMERIC_TEXT_PATTERN`], without a regex (the matcher's hot path and the
/// parser's range detection use this; a test checks it against the pattern).
pub fn is_numeric_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits_from = |mut at: usize| {
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        at
    };
    let mut at = usize::from(bytes.first() == Some(&b'-'));
    let end = digits_from(at);
    if end == at {
        return false;
    }
    at = end;
    if bytes.get(at) == Some(&b'.') {
        let end = digits_from(at + 1);
        if end == at + 1 {
            return false;
        }
        at = end;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits_from(at);
        if end == at {
            return false;
        }
        at = end;
    }
    at == bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A way of calling back with each token of a text.
    type Tokenizer = fn(&str, &mut String, &mut dyn FnMut(&str));

    fn collected(text: &str, tokens: Tokenizer) -> Vec<String> {
        let mut found = Vec::new();
        tokens(text, &mut String::new(), &mut |token| {
            found.push(token.to_owned())
        });
        found
    }

    proptest! {
        /// The ASCII fast path makes exactly the tokens of the rule.
        #[test]
        fn ascii_words_are_the_tokens_of_the_character_rule(
            text in "[ -~\\t\\n]{0,80}",
        ) {
            prop_assert_eq!(
                collected(&text, |text, scratch, each| for_each_token(text, scratch, each)),
                collected(&text, |text, scratch, each| tokens_by_character(text, scratch, each))
            );
        }
    }
}
