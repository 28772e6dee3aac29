//! One syslog message: RFC 5424, RFC 3164 (BSD) and the bare `<PRI>text` some libraries send.
//!
//! Real senders stretch both RFCs, so the parser is lenient where they differ and strict only where a
//! wrong guess would put text in the wrong field:
//!
//! - no PRI, or one that is not a number from 0 to 191: the RFC 3164 default priority 13
//!   (user.notice); the whole text is the message, unless it starts with a time (a line of a log
//!   file such as `/var/log/auth.log`), whose RFC 3164 header is then read;
//! - RFC 5424 (`<PRI>1 ...`): every header field, `-` for absent, structured data with its escapes
//!   (`\"`, `\\`, `\]`); the message loses a UTF-8 BOM and leading spaces (rsyslog writes two spaces
//!   after a `-` structured data);
//! - RFC 3164: a `Mmm dd hh:mm:ss` time (its year inferred from the receipt time, see [`infer_year`],
//!   read in the source's time zone) or an RFC 3339 time (rsyslog's forward format), then a host name,
//!   then a tag `program[pid]:` or `program:`; without a time (Python's `SysLogHandler`) there is no host
//!   name, but a leading tag is still read;
//! - trailing NUL, CR and LF bytes are not part of the message; bytes that are not UTF-8 become U+FFFD
//!   and the message is flagged (`invalid_utf8`).
use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;

/// The RFC 3164 default priority for a message without one: facility user (1), severity notice (5).
pub const DEFAULT_PRIORITY: u8 = 13;

/// Longest tag (program name) read from an RFC 3164 message; longer runs are message text.
const MAX_TAG_CHARS: usize = 48;

/// Which shape the message had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
    Rfc5424,
    /// `<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`, or with an RFC 3339 time.
    Rfc3164,
    /// `<PRI>` and text without a time (no host name), or text without a valid PRI.
    Bare,
}

/// A structured data element of RFC 5424: `[id name="value" ...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructuredElement {
    /// The SD-ID, e.g. `timeQuality` or `meta`.
    pub id: String,
    /// Parameters in the order sent.
    pub params: Vec<(String, String)>,
}

/// A parsed syslog message.
#[derive(Debug, Clone, PartialEq)]
pub struct SyslogMessage {
    /// The shape it had.
    pub format: SyslogFormat,
    /// Facility, 0 to 23.
    pub facility: u8,
    /// Severity, 0 (emergency) to 7 (debug).
    pub severity: u8,
    /// When the sender says it happened; `None` when it did not say (or said it unreadably).
    pub timestamp: Option<Timestamp>,
    /// The sending host as the message names it.
    pub hostname: Option<String>,
    /// RFC 5424 APP-NAME, or the RFC 3164 tag's program.
    pub app_name: Option<String>,
    /// RFC 5424 PROCID, or the pid in an RFC 3164 tag `program[pid]:`.
    pub proc_id: Option<String>,
    /// RFC 5424 MSGID.
    pub msg_id: Option<String>,
    /// RFC 5424 structured data.
    pub structured_data: Vec<StructuredElement>,
    /// The free text.
    pub message: String,
    /// Some bytes were not UTF-8 and became U+FFFD (`details.invalidutf8` in the event).
    pub invalid_utf8: bool,
}

/// What the parser needs to know about where a message came from.
#[derive(Debug, Clone)]
pub struct ParseContext {
    /// When the message arrived: the year of an RFC 3164 time is inferred from it.
    pub received: Timestamp,
    /// The time zone of RFC 3164 times, which carry none (RFC 5424 times carry their offset).
    pub time_zone: TimeZone,
}

impl ParseContext {
    /// A context for a message received at `received` from a source whose clock is in UTC.
    pub fn utc(received: Timestamp) -> ParseContext {
        ParseContext {
            received,
            time_zone: TimeZone::UTC,
        }
    }
}

/// The RFC 5424 severity names, by number, as isms spells them.
pub const SEVERITY_NAMES: [&str; 8] = [
    "EMERGENCY",
    "ALERT",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "NOTICE",
    "INFO",
    "DEBUG",
];

/// Facility names, by number (RFC 5424 table 1, with the names syslog daemons use).
pub const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Parses one message (one UDP datagram, or one frame of a TCP stream). Never fails: text that fits no
/// format is a [`SyslogFormat::Bare`] message with the default priority.
pub fn parse(bytes: &[u8], context: &ParseContext) -> SyslogMessage {
    let bytes = trim_trailing_terminators(bytes);
    // Valid UTF-8 (nearly every message) is checked by the standard library's fast validation;
    // `from_utf8_lossy` walks it in chunks, at a tenth of parsing's cost.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let invalid_utf8 = matches!(text, std::borrow::Cow::Owned(_));
    let mut message = parse_text(&text, context);
    message.invalid_utf8 = invalid_utf8;
    message
}

fn parse_text(text: &str, context: &ParseContext) -> SyslogMessage {
    let Some((priority, rest)) = split_priority(text) else {
        // A line of a log file, or a sender that leaves the PRI out: the header is still read when
        // the text starts with a time.
        if starts_with_time(text, context) {
            return parse_rfc3164(DEFAULT_PRIORITY, text, context);
        }
        return bare(DEFAULT_PRIORITY, text.to_owned());
    };
    if let Some(after_version) = rest.strip_prefix("1 ")
        && let Some(message) = parse_rfc5424(priority, after_version)
    {
        return message;
    }
    parse_rfc3164(priority, rest, context)
}

fn starts_with_time(text: &str, context: &ParseContext) -> bool {
    read_bsd_time(text, context).is_some()
        || next_field(text).is_some_and(|(field, _)| field.parse::<Timestamp>().is_ok())
}

fn bare(priority: u8, message: String) -> SyslogMessage {
    SyslogMessage {
        format: SyslogFormat::Bare,
        facility: priority / 8,
        severity: priority % 8,
        timestamp: None,
        hostname: None,
        app_name: None,
        proc_id: None,
        msg_id: None,
        structured_data: Vec::new(),
        message,
        invalid_utf8: false,
    }
}

fn trim_trailing_terminators(mut bytes: &[u8]) -> &[u8] {
    while let [rest @ .., b'\0' | b'\n' | b'\r'] = bytes {
        bytes = rest;
    }
    bytes
}

/// `<PRI>` at the start: the priority and the text after it.
fn split_priority(text: &str) -> Option<(u8, &str)> {
    let inner = text.strip_prefix('<')?;
    let close = inner.find('>')?;
    let digits = &inner[..close];
    if digits.is_empty() || digits.len() > 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let priority: u16 = digits.parse().ok()?;
    if priority > 191 {
        return None;
    }
    Some((priority as u8, &inner[close + 1..]))
}

/// The next space-separated field and the text after its space; `None` at the end.
fn next_field(text: &str) -> Option<(&str, &str)> {
    if text.is_empty() {
        return None;
    }
    Some(match text.find(' ') {
        Some(space) => (&text[..space], &text[space + 1..]),
        None => (text, ""),
    })
}

fn nil_or(field: &str) -> Option<String> {
    (field != "-" && !field.is_empty()).then(|| field.to_owned())
}

fn parse_rfc5424(priority: u8, text: &str) -> Option<SyslogMessage> {
    let (timestamp, text) = next_field(text)?;
    let (hostname, text) = next_field(text)?;
    let (app_name, text) = next_field(text)?;
    let (proc_id, text) = next_field(text)?;
    let (msg_id, text) = next_field(text)?;
    let timestamp = match timestamp {
        "-" => None,
        other => Some(other.parse::<Timestamp>().ok()?),
    };
    let (structured_data, message) = if let Some(rest) = text.strip_prefix('-') {
        (Vec::new(), rest)
    } else if text.starts_with('[') {
        parse_structured_data(text)?
    } else if text.is_empty() {
        (Vec::new(), "")
    } else {
        return None;
    };
    // A BOM marks UTF-8 text; rsyslog puts a second space after a `-` structured data.
    let message = message
        .trim_start_matches(' ')
        .trim_start_matches('\u{feff}');
    Some(SyslogMessage {
        format: SyslogFormat::Rfc5424,
        facility: priority / 8,
        severity: priority % 8,
        timestamp,
        hostname: nil_or(hostname),
        app_name: nil_or(app_name),
        proc_id: nil_or(proc_id),
        msg_id: nil_or(msg_id),
        structured_data,
        message: message.to_owned(),
        invalid_utf8: false,
    })
}

/// `[id name="value" ...]...` at the start of `text`: the elements and the text after them.
fn parse_structured_data(mut text: &str) -> Option<(Vec<StructuredElement>, &str)> {
    let mut elements = Vec::new();
    while let Some(inside) = text.strip_prefix('[') {
        let id_end = inside.find([' ', ']'])?;
        let id = &inside[..id_end];
        if id.is_empty() {
            return None;
        }
        let mut rest = &inside[id_end..];
        let mut params = Vec::new();
        loop {
            if let Some(after) = rest.strip_prefix(']') {
                rest = after;
                break;
            }
            rest = rest.strip_prefix(' ')?;
            let equals = rest.find('=')?;
            let name = &rest[..equals];
            let quoted = rest[equals + 1..].strip_prefix('"')?;
            let (value, after) = read_param_value(quoted)?;
            params.push((name.to_owned(), value));
            rest = after;
        }
        elements.push(StructuredElement {
            id: id.to_owned(),
            params,
        });
        text = rest;
    }
    Some((elements, text.strip_prefix(' ').unwrap_or(text)))
}

/// A PARAM-VALUE up to its closing quote, with `\"`, `\\` and `\]` unescaped (a backslash before any
/// other character is kept, as RFC 5424 says).
fn read_param_value(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[index + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped @ ('"' | '\\' | ']'))) => value.push(escaped),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => return None,
            },
            other => value.push(other),
        }
    }
    None
}

fn parse_rfc3164(priority: u8, text: &str, context: &ParseContext) -> SyslogMessage {
    let (timestamp, after_time) = match read_bsd_time(text, context) {
        Some((timestamp, rest)) => (Some(timestamp), Some(rest)),
        None => match next_field(text)
            .and_then(|(field, rest)| field.parse::<Timestamp>().ok().map(|time| (time, rest)))
        {
            Some((timestamp, rest)) => (Some(timestamp), Some(rest)),
            None => (None, None),
        },
    };
    let Some(rest) = after_time else {
        // No time, so no host name either (Python's SysLogHandler): a leading tag is still a tag.
        let mut message = bare(priority, String::new());
        let (tag, text) = read_tag(text);
        if let Some((program, pid)) = tag {
            message.app_name = Some(program);
            message.proc_id = pid;
        }
        message.message = text.to_owned();
        return message;
    };
    // A host name unless the next field is already the tag.
    let (hostname, rest) = match next_field(rest) {
        Some((field, after)) if !field.is_empty() && !field.ends_with(':') => {
            (Some(field.to_owned()), after)
        }
        _ => (None, rest),
    };
    let (tag, message) = read_tag(rest);
    let (app_name, proc_id) = match tag {
        Some((program, pid)) => (Some(program), pid),
        None => (None, None),
    };
    SyslogMessage {
        format: SyslogFormat::Rfc3164,
        facility: priority / 8,
        severity: priority % 8,
        timestamp,
        hostname,
        app_name,
        proc_id,
        msg_id: None,
        structured_data: Vec::new(),
        message: message.to_owned(),
        invalid_utf8: false,
    }
}

/// `program[pid]: ` or `program: ` at the start of `text`: the program, the pid, and the text after.
fn read_tag(text: &str) -> (Option<(String, Option<String>)>, &str) {
    let end = text
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@')))
        .map_or(text.len(), |(index, _)| index);
    let program = &text[..end];
    if program.is_empty() || program.chars().count() > MAX_TAG_CHARS {
        return (None, text);
    }
    let rest = &text[end..];
    let (pid, rest) = match rest.strip_prefix('[') {
        Some(inside) => match inside.find(']') {
            Some(close) if close > 0 && inside[..close].bytes().all(|b| b.is_ascii_digit()) => {
                (Some(inside[..close].to_owned()), &inside[close + 1..])
            }
            _ => return (None, text),
        },
        None => (None, rest),
    };
    match rest.strip_prefix(':') {
        Some(message) => (
            Some((program.to_owned(), pid)),
            message.strip_prefix(' ').unwrap_or(message),
        ),
        None => (None, text),
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss ` (the day may be space-padded, `Nov  1`) at the start of `text`, read in the
/// context's time zone in the year [`infer_year`] picks; and the text after it.
fn read_bsd_time<'a>(text: &'a str, context: &ParseContext) -> Option<(Timestamp, &'a str)> {
    let month = MONTHS.iter().position(|name| text.starts_with(name))? as i8 + 1;
    let rest = text.get(3..)?.strip_prefix(' ')?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    let day_end = rest.find(' ')?;
    let day: i8 = rest[..day_end].parse().ok()?;
    let rest = &rest[day_end + 1..];
    let clock = rest.get(..8)?;
    let bytes = clock.as_bytes();
    if bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| clock.get(range)?.parse::<i8>().ok();
    let (hour, minute, second) = (number(0..2)?, number(3..5)?, number(6..8)?);
    let rest = &rest[8..];
    let rest = match rest.strip_prefix(' ') {
        Some(after) => after,
        None if rest.is_empty() => rest,
        None => return None,
    };
    let year = infer_year(month, context);
    let date = Date::new(year, month, day).ok()?;
    let local = DateTime::from_parts(date, jiff::civil::Time::new(hour, minute, second, 0).ok()?);
    let zoned = local.to_zoned(context.time_zone.clone()).ok()?;
    Some((zoned.timestamp(), rest))
}

/// The year of an RFC 3164 time, which has none: the receipt year, except around new year. A December
/// message received in January is from the year before; a January message received in December (a
/// sender whose clock runs ahead) is from the year after.
pub fn infer_year(month: i8, context: &ParseContext) -> i16 {
    let received = context.received.to_zoned(context.time_zone.clone());
    let year = received.year();
    let received_month = received.month();
    if month == 12 && received_month == 1 {
        year - 1
    } else if month == 1 && received_month == 12 {
        year + 1
    } else {
        year
    }
}

impl SyslogMessage {
    /// The severity's name as isms spells it (`INFO`, `WARNING`, ...).
    pub fn severity_name(&self) -> &'static str {
        SEVERITY_NAMES[usize::from(self.severity.min(7))]
    }

    /// The facility's name (`auth`, `local0`, ...).
    pub fn facility_name(&self) -> &'static str {
        FACILITY_NAMES[usize::from(self.facility.min(23))]
    }

    /// The message as a raw MozDef event for `isms_event::normalize`: [`SyslogMessage::into_fields`]
    /// as JSON.
    pub fn to_event(&self, sender_host: Option<&str>) -> serde_json::Value {
        self.clone().into_fields(sender_host).to_json()
    }

    /// The message's MozDef fields: `summary`, `hostname` (the message's, else `sender_host`),
    /// `processname`, `processid` (a PROCID that is not a number is `details.procid` instead:
    /// RFC 5424 allows any text there), `severity`, `utctimestamp` (when the message has a time), the
    /// tag `syslog`, and `details` with the facility, the format, the MSGID and the structured data
    /// (`details.structureddata.<sd-id>.<param>`). `EventFields::into_event` makes them the stored
    /// event without a round trip through JSON.
    pub fn into_fields(self, sender_host: Option<&str>) -> isms_event::EventFields {
        use serde_json::{Map, Value};
        let mut details = Map::new();
        details.insert(
            "facility".into(),
            Value::String(self.facility_name().into()),
        );
        details.insert(
            "syslogformat".into(),
            Value::String(
                match self.format {
                    SyslogFormat::Rfc5424 => "rfc5424",
                    SyslogFormat::Rfc3164 => "rfc3164",
                    SyslogFormat::Bare => "bare",
                }
                .into(),
            ),
        );
        if self.invalid_utf8 {
            details.insert("invalidutf8".into(), Value::Bool(true));
        }
        let processid = match self.proc_id {
            Some(pid) => match pid.parse::<i64>() {
                Ok(number) => Some(number),
                Err(_) => {
                    details.insert("procid".into(), Value::String(pid));
                    None
                }
            },
            None => None,
        };
        if let Some(msg_id) = self.msg_id {
            details.insert("msgid".into(), Value::String(msg_id));
        }
        if !self.structured_data.is_empty() {
            let mut elements = Map::new();
            for element in self.structured_data {
                let params: Map<String, Value> = element
                    .params
                    .into_iter()
                    .map(|(name, value)| (name, Value::String(value)))
                    .collect();
                elements.insert(element.id, Value::Object(params));
            }
            details.insert("structureddata".into(), Value::Object(elements));
        }
        isms_event::EventFields {
            summary: Some(self.message),
            hostname: self.hostname.or_else(|| sender_host.map(str::to_owned)),
            processname: self.app_name,
            processid,
            severity: isms_event::Severity::from_number(u64::from(self.severity.min(7)))
                .unwrap_or_default(),
            category: None,
            source: None,
            utctimestamp_micros: self.timestamp.map(|time| time.as_microsecond()),
            tags: vec!["syslog".to_owned()],
            details,
        }
    }
}
