//! The isms event: MozDef's JSON event format, and how incoming data is normalized into it.
//!
//! # Why this crate exists
//!
//! The event format is the contract between every stage of isms. Sources and decoders produce
//! it, enrichers add to it, the store indexes it, the query language and Sigma rules address its
//! fields, the detection engine matches and groups on them, alerts are events again, and the
//! console and the REST API show it. If two stages disagreed on a field name, a time format or a
//! severity spelling, a rule would silently never fire. So there is exactly one definition, here:
//! one function ([`normalize`]) that every source calls, one alias table ([`FIELD_ALIASES`]), one
//! time format ([`format_time`]) and one time parser ([`parse_time`], which the query parser uses
//! too).
//!
//! ```
//! use isms_event::{Origin, Severity, normalize};
//! use serde_json::json;
//!
//! let raw = json!({"Message": "joe login failed", "srcip": "10.0.0.1", "level": "warn"});
//! let origin = Origin { endpoint: "http:/events".into(), ..Origin::default() };
//! let event = normalize(raw, &origin, jiff::Timestamp::UNIX_EPOCH)?;
//! assert_eq!(event.document["summary"], "joe login failed");
//! assert_eq!(event.get("details.sourceipaddress"), Some(&json!("10.0.0.1")));
//! assert_eq!(event.document["severity"], Severity::Warning.name());
//! assert_eq!(event.document["utctimestamp"], "1970-01-01T00:00:00.000000+00:00");
//! # Ok::<(), isms_event::NormalizeError>(())
//! ```
//!
//! # The normalized event
//!
//! A normalized event ([`Event::document`]) is a JSON object with these top-level fields and no
//! others. Keys are lowercase and contain no `.` at any depth, so a dotted path such as
//! `details.sourceipaddress` always names exactly one value.
//!
//! | field | type | always present | meaning |
//! |---|---|---|---|
//! | `id` | string | yes | UUID v7 (lowercase, hyphenated), set by the server |
//! | `utctimestamp` | string | yes | event time in UTC, `2014-01-30T13:24:43.123456+00:00` (always six fractional digits, always `+00:00`); drives windows and searches |
//! | `receivedtimestamp` | string | yes | when the server received the event, same format; always set by the server |
//! | `timestamp` | string | yes | event time as the sender wrote it (its own offset), else the same as `utctimestamp` |
//! | `hostname` | string | no | host the event is about / came from |
//! | `processname` | string | no | program that logged it |
//! | `processid` | integer | no | its process id |
//! | `severity` | string | yes | RFC 5424 name in upper case: `EMERGENCY`, `ALERT`, `CRITICAL`, `ERROR`, `WARNING`, `NOTICE`, `INFO`, `DEBUG`; default `INFO` |
//! | `category` | string | yes | what kind of event (`authentication`, ...); default `event` |
//! | `source` | string | no | where it was read (file, system or component name) |
//! | `summary` | string | no | human-readable one-line description |
//! | `tags` | array of strings | yes | labels; default `[]` |
//! | `details` | object | yes | every other field; default `{}`; spelled-out names (`sourceipaddress`, `destinationport`, `username`, ...) |
//! | `origin` | object | yes | who sent it, set by the server: `{"peer": "addr:port", "endpoint": "...", "key": "key name"}`, absent members left out |
//!
//! An event always has a `summary` or a non-empty `details` (or both).
//!
//! # Normalization rules
//!
//! [`normalize`] applies these rules, in this order:
//!
//! | # | rule | example (in → out) |
//! |---|---|---|
//! | 1 | The input must be a JSON object, else [`NormalizeError::NotAnObject`]. | `[1]` → error "an event must be a JSON object, found an array" |
//! | 2 | Every key is lowercased (Unicode), at every depth (through arrays too), and `.` in a key becomes `_`. If two keys become equal, the later one in the object's iteration order wins (serde_json's default map iterates in key order, so `summary` beats `Summary`). Nesting deeper than [`MAX_DEPTH`] is refused. | `{"SourceIP.Addr": 1}` → `details.sourceip_addr` |
//! | 3 | `details` must be an object (null = `{}`), else [`NormalizeError::WrongType`]. | `"details": "x"` → error |
//! | 4 | Top-level aliases ([`FIELD_ALIASES`]), tried in table order: `message`, `msg` → `summary`; `program`, `process` → `processname`; `pid` → `processid`; `host` → `hostname`; `type` → `category`; `@timestamp`, `time` → `timestamp`; `level` → `severity`; `tag` → `tags`. An alias moves its value only while the target is absent or null, so the first alias present wins and a target the sender set is never overwritten; an alias that did not move stays and ends up in `details` under its own name (rule 7). | `{"msg": "a", "message": "b"}` → `summary: "b"`, `details.msg: "a"` |
//! | 5 | `fields` (logstash/GELF style): if it is an object, its members are merged into `details`; a member `details` already has is kept as `<key>_1` (see rule 7). If it is not an object, it is kept as `details.fields`. | `{"fields": {"env": "prod"}}` → `details.env` |
//! | 6 | Network and user aliases go into `details`, from the top level and also from inside `details`: `srcip`, `src_ip`, `sourceip`, `source_ip`, `sourceipaddress` → `details.sourceipaddress`; `dstip`, `dst_ip`, `destinationip`, `destination_ip`, `destinationipaddress` → `details.destinationipaddress`; `srcport`, `src_port`, `sourceport` → `details.sourceport`; `dstport`, `dst_port`, `destport`, `destinationport` → `details.destinationport`; `user`, `user_name`, `username` → `details.username`. Same precedence as rule 4: if the target is already set, the alias keeps its own name (both are kept). | `{"srcip": "10.0.0.1"}` → `details.sourceipaddress` |
//! | 7 | Every top-level key that is not a MozDef field (`timestamp`, `utctimestamp`, `receivedtimestamp`, `hostname`, `processname`, `processid`, `severity`, `category`, `source`, `summary`, `tags`, `details`) moves into `details` under its own name. This includes an incoming `id` and `origin`, which are never trusted. If `details` already holds a non-null value under that name, details' value stays and the moved one is stored as `<key>_1` (or `_2`, ... the first free name). | `{"id": "x", "details": {"id": 1}}` → `details.id: 1`, `details.id_1: "x"`, new top-level `id` |
//! | 8 | Text fields `hostname`, `processname`, `category`, `source`, `summary`: a string as is; a number or boolean becomes its JSON text; null is absent; an array or object is [`NormalizeError::WrongType`]. A blank `summary` counts as absent. | `"hostname": 42` → `"42"` |
//! | 9 | `processid`: a JSON integer, an integral float (`4000.0`), or a string holding an integer (MozDef samples send `"0"`); stored as a JSON integer. `""` and the syslog nil value `"-"` mean absent. Anything else is [`NormalizeError::WrongType`]. | `"pid": "abc"` → error "field \`pid\`: expected an integer, found the string \"abc\"" |
//! | 10 | `tags`: an array; string members as they are, numbers/booleans/arrays/objects become their JSON text, nulls are dropped. A single string (even `"a,b"`) or number becomes a one-element array; null is `[]`; an object is [`NormalizeError::WrongType`]. | `"tags": "a,b"` → `["a,b"]` |
//! | 11 | `severity` (absent or null: `INFO`), case-insensitive and trimmed: the eight names; `informational`, `warn`, `err`, `crit`, `emerg`, `panic` (→ `EMERGENCY`), `fatal` (→ `CRITICAL`), `trace` (→ `DEBUG`); Sigma levels `low` (→ `NOTICE`), `medium` (→ `WARNING`), `high` (→ `ERROR`), `critical`; RFC 5424 numbers 0–7 as numbers or numeric strings (0 = `EMERGENCY` … 7 = `DEBUG`). Anything else is [`NormalizeError::BadSeverity`]. Stored as the upper-case name. | `"level": "warn"` → `"severity": "WARNING"` |
//! | 12 | `category` defaults to `"event"`. `hostname`, `processname`, `source`, `processid` and `summary` stay absent when not given: isms does not invent them. | |
//! | 13 | If there is no `summary` and `details` is empty after rules 4–7: [`NormalizeError::NoSummaryOrDetails`]. Without a summary but with details, `summary` stays absent. | `{"hostname": "a"}` → error "an event needs a summary or details" |
//! | 14 | Event time: `utctimestamp` if given, else `timestamp`, else the receipt time. Both fields, when given, must be readable times (below), else [`NormalizeError::BadTime`]. `utctimestamp` is rewritten with [`format_time`]. `timestamp` keeps the sender's text when it is a calendar string (trimmed); epoch numbers and numeric strings are rewritten with [`format_time`]; when absent it is the event time. | `"timestamp": 1391088283` → `utctimestamp` and `timestamp` `"2014-01-30T13:24:43.000000+00:00"` |
//! | 15 | `receivedtimestamp` is always the server's receipt time; an incoming one is discarded. `id` is a new UUID v7 and `origin` is written from the [`Origin`] given to [`normalize`]. | |
//!
//! Normalization never panics, whatever the input.
//!
//! # Times
//!
//! [`parse_time`] (text) and [`parse_time_value`] (JSON string or number) accept:
//!
//! | form | example | read as |
//! |---|---|---|
//! | RFC 3339 / ISO 8601 with offset | `2014-02-14T11:48:19.035762739-05:00`, `...Z`, `...+0500`, space instead of `T`, `,` before the fraction | that instant; up to 9 fractional digits |
//! | ISO 8601 without offset | `2014-02-14T11:48:19`, `2014-02-14` | **UTC** (a date alone is midnight UTC) |
//! | RFC 9557 time zone annotation without offset | `2014-02-14T11:48:19[America/New_York]` | that zone, if the time zone database is available, else an error |
//! | RFC 2822 | `Fri, 14 Feb 2014 11:48:19 -0500` | that instant |
//! | decimal number (JSON number or string; sign, fraction and exponent allowed) | `1391088283`, `1391088283.5`, `"1391088283123"` | since the Unix epoch; the magnitude decides the unit: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds |
//!
//! Anything else (`"yesterday"`, `"2014-02-30"`) is a [`TimeError`], as is a time outside years
//! -9999 to 9999. A string of digits is always an epoch number, never an ISO 8601 basic date.
//! Stored times keep microseconds; finer digits are truncated.

mod alias;
mod id;
mod incoming;
mod json_text;
mod normalize;
mod severity;
mod time;
mod util;

pub use alias::{AliasTarget, FIELD_ALIASES, FieldAlias};
pub use id::new_event_id;
pub use incoming::IncomingValue;
pub use json_text::object_text;
pub use normalize::{
    DEFAULT_CATEGORY, Delivery, Event, EventFields, MAX_DEPTH, MOZDEF_FIELDS, NormalizeError,
    Origin, normalize, normalize_delivered, normalizes_to_details_only, stays_in_details,
    stored_key,
};
pub use severity::Severity;
pub use time::{TimeError, format_time, micros_of, parse_time, parse_time_value};
