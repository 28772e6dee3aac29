//! One entry point for lines of any log: [`LineDecoder`].
//!
//! A file or stream given to `isms decode` may hold syslog lines, a daemon's own log format, JSON
//! records of a network sensor or audit.log records, sometimes mixed. The line decoder recognizes
//! each: a JSON object goes to [`Decoders::decode_json`], an audit record to an
//! [`AuditAssembler`] it owns, anything else is read as syslog with `isms_syslog::parse` and
//! decoded with [`Decoders::decode_message`].
//!
//! Log files stretch syslog further than senders do, so when `isms_syslog::parse` finds no program
//! name the line decoder reads a looser header itself: ISO times without an offset (read in the
//! context's time zone), `2013-11-16 21:59:30,121`, ctime (`Fri Jan 19 12:20:33 2007`, vsftpd's own
//! log), tai64n labels (`@4000...`, daemontools), a journal export's `host prog[pid]:`, and tags
//! such as `prog[pid] ` without a colon (proftpd), `[prog]: `, `prog(detail):` (dovecot) and
//! `prog(pam_unix)[pid]:` (old Linux-PAM), and Apple's `[Time ...] [Sender sshd] [Message ...]`.
//!
//! sshd logs one connection from one process, and some of its lines name no address (`Disconnecting:
//! Too many authentication failures [preauth]`, `fatal: Unable to negotiate a key exchange method`).
//! The line decoder remembers, per host and sshd (or dropbear) process, the last address that
//! process logged, and fills it into such lines. A failure logged before any address is known is
//! carried to the connection's next line that names one, which then counts as that failure
//! (`details.deferredfailure`), so every failed connection is attributed to its address exactly once.
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use isms_event::{Delivery, Event, EventFields, NormalizeError, normalize_delivered};
use isms_syslog::ParseContext;
use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::audit::{AuditAssembler, parse_audit_record};
use crate::decoded::Decoded;
use crate::{Decoders, merge_into_event};

/// Processes remembered for address correlation.
const MAX_REMEMBERED_CONNECTIONS: usize = 4096;

/// Longest program name read from a loose header.
const MAX_PROGRAM_CHARS: usize = 48;

/// Words dovecot writes where a tag would be (`Info: imap-login: ...`).
const LOG_LEVEL_WORDS: &[&str] = &[
    "Info", "Warn", "Warning", "Error", "Fatal", "Debug", "Panic",
];

/// Decodes lines of a log into raw MozDef events.
#[derive(Debug)]
pub struct LineDecoder {
    decoders: Arc<Decoders>,
    context: ParseContext,
    audit: AuditAssembler,
    default_program: Option<String>,
    sender_host: Option<String>,
    connections: Connections,
}

impl LineDecoder {
    /// A line decoder using `decoders`; `context` gives the receipt time (the year of times without
    /// one) and the time zone of times without an offset.
    pub fn new(decoders: Arc<Decoders>, context: ParseContext) -> LineDecoder {
        LineDecoder {
            decoders,
            context,
            audit: AuditAssembler::new(),
            default_program: None,
            sender_host: None,
            connections: Connections::default(),
        }
    }

    /// The program of lines that name none: for a daemon's own log file (`/var/log/vsftpd.log`,
    /// `/var/log/proftpd/proftpd.log`), whose lines carry no syslog tag.
    pub fn with_default_program(mut self, program: impl Into<String>) -> LineDecoder {
        self.default_program = Some(program.into());
        self
    }

    /// The `hostname` of events whose line names no host.
    pub fn with_sender_host(mut self, host: impl Into<String>) -> LineDecoder {
        self.sender_host = Some(host.into());
        self
    }

    /// When the next lines were received (a tailed file's lines arrive over months): the year of a
    /// time without one is inferred from it.
    pub fn set_received(&mut self, received: Timestamp) {
        self.context.received = received;
    }

    /// Decodes one line. Returns the events it yields: usually one; none for a blank line or an
    /// audit record whose event is not complete yet; several when an audit record completes
    /// older events.
    pub fn push_line(&mut self, line: &str) -> Vec<Value> {
        self.push_line_typed(line)
            .into_iter()
            .map(LineEvent::into_raw)
            .collect()
    }

    /// [`LineDecoder::push_line`] with a text line's event kept as typed fields, for a caller that
    /// stores or detects on events ([`LineEvent::into_event`]) rather than printing JSON.
    pub fn push_line_typed(&mut self, line: &str) -> Vec<LineEvent> {
        let line = line.trim_end_matches(['\n', '\r', '\0']);
        let trimmed = line.trim_start();
        if trimmed.is_empty() {
            return Vec::new();
        }
        if let Some(raw) = json_line_event(&self.decoders, trimmed) {
            return vec![LineEvent::Raw(raw)];
        }
        if line.contains("audit(")
            && let Some(record) = parse_audit_record(line)
        {
            return raw_events(self.audit.push_record(record));
        }
        let (event, time) = self.text_event(line);
        if self.audit.open_events() > 0
            && let Some(time) = time
        {
            let mut events = raw_events(self.audit.expire(time));
            events.push(event);
            return events;
        }
        vec![event]
    }

    /// Whether a JSON object line holding a member of this key may come out of
    /// [`LineDecoder::push_line_typed`] changed: the keys a sensor record is recognized by (Suricata's
    /// `event_type` and `timestamp`, Zeek's `ts`) and the `summary` decoders read. An object line
    /// with none of them comes out as the object it is, and changes nothing in the decoder, so a
    /// reader may judge the line before it is decoded (or skip it).
    pub fn json_key_may_be_decoded(key: &str) -> bool {
        matches!(key, "event_type" | "timestamp" | "ts" | "summary")
    }

    /// Emits what is still held (audit events waiting for more records), at the end of the input.
    pub fn finish(&mut self) -> Vec<Value> {
        self.audit.flush()
    }

    /// Whether lines already pushed still wait in the decoder for the rest of their event (audit
    /// records before their EOE): a source that saves its place must not move it past them yet.
    pub fn holds_lines(&self) -> bool {
        self.audit.open_events() > 0
    }

    /// Emits the audit events held longer than the assembler's age limit before `now`: for a
    /// source that has gone quiet (lines of other programs do this on their own, by their times).
    pub fn expire(&mut self, now: Timestamp) -> Vec<Value> {
        self.audit.expire(now)
    }

    /// What decodes this decoder's JSON object lines, for other threads: such a line needs none of
    /// the decoder's state and changes none of it, so a reader may decode those lines in parallel
    /// and pass only the others through [`LineDecoder::push_line_typed`], in order.
    pub fn json_lines(&self) -> JsonLines {
        JsonLines {
            decoders: self.decoders.clone(),
        }
    }

    /// The typed fields of a text line with what its decoder found, and the line's time when it
    /// had one.
    fn text_event(&mut self, line: &str) -> (LineEvent, Option<Timestamp>) {
        let message = isms_syslog::parse(line.as_bytes(), &self.context);
        let mut program = message.app_name.clone();
        let mut pid = message.proc_id.clone();
        let mut hostname = message.hostname.clone();
        let mut time = message.timestamp;
        let text_place = {
            let mut text: &str = &message.message;
            // `[sshd] User ...`: the bracketed program was taken for a host name.
            if program.is_none()
                && let Some(name) = hostname
                    .as_deref()
                    .and_then(|host| host.strip_prefix('['))
                    .and_then(|host| host.strip_suffix(']'))
                    .filter(|name| is_program_name(name))
            {
                program = Some(name.to_owned());
                hostname = None;
            }
            if program.is_none() {
                let header = read_loose_header(text, &self.context);
                if header.program.is_some() || header.time.is_some() {
                    time = time.or(header.time);
                    hostname = hostname.or(header.host.map(str::to_owned));
                    program = header.program.map(str::to_owned);
                    pid = pid.or(header.pid.map(str::to_owned));
                    text = header.message;
                }
            }
            if program
                .as_deref()
                .is_some_and(|name| LOG_LEVEL_WORDS.contains(&name))
                && let (Some(tag), rest) = read_tag(text)
            {
                program = Some(tag.program.to_owned());
                pid = tag.pid.map(str::to_owned).or(pid);
                text = rest;
            }
            // Where the text lies in the message (usually a part of it; copied when it is not).
            let message_start = message.message.as_ptr() as usize;
            let start = (text.as_ptr() as usize).wrapping_sub(message_start);
            if start <= message.message.len() && start + text.len() <= message.message.len() {
                Ok(start..start + text.len())
            } else {
                Err(text.to_owned())
            }
        };
        let program_name = program
            .as_deref()
            .or(self.default_program.as_deref())
            .unwrap_or("")
            .to_owned();
        let text = match &text_place {
            Ok(range) => &message.message[range.clone()],
            Err(text) => text.as_str(),
        };
        let decoded = self.decoders.decode_message(&program_name, text);
        let mut fields = message.into_fields(self.sender_host.as_deref());
        match text_place {
            Ok(range) => {
                if let Some(summary) = &mut fields.summary {
                    summary.truncate(range.end);
                    summary.drain(..range.start);
                }
            }
            Err(text) => fields.summary = Some(text),
        }
        if !program_name.is_empty() {
            fields.processname = Some(program_name.clone());
        }
        if let Some(pid) = &pid {
            match pid.parse::<i64>() {
                Ok(number) => fields.processid = Some(number),
                // RFC 5424 allows any text as PROCID; MozDef's processid is a number, and normalize
                // refuses anything else. Kept where `SyslogMessage::into_fields` keeps it.
                Err(_) => {
                    fields
                        .details
                        .insert("procid".into(), Value::String(pid.clone()));
                }
            }
        }
        if let Some(host) = &hostname {
            fields.hostname = Some(host.clone());
        }
        if let Some(time) = time {
            fields.utctimestamp_micros = Some(time.as_microsecond());
        }
        let decoded = decoded.map(|mut decoded| {
            if correlates(&program_name)
                && let Some(pid) = &pid
            {
                let host = hostname.as_deref().unwrap_or_default();
                self.connections
                    .correlate(host, &program_name, pid, &mut decoded);
            }
            decoded
        });
        (LineEvent::Text { fields, decoded }, time)
    }
}

/// What a line (or an audit record completing its event) became: a raw MozDef event (JSON lines,
/// audit events), or the typed fields of a text line with what its decoder found. Typed fields
/// become the stored event without a round trip through JSON ([`LineEvent::into_event`]); both
/// forms give the same event (`tests/typed_fields.rs`).
#[derive(Debug, Clone)]
// Nearly every line is `Text`: boxing it would cost every line an allocation to save the rare raw
// event some bytes.
#[allow(clippy::large_enum_variant)]
pub enum LineEvent {
    /// A raw event, for `normalize`.
    Raw(Value),
    /// A text line's fields and its decoder's result.
    Text {
        /// The line's MozDef fields.
        fields: EventFields,
        /// What the decoder for its program found, not merged yet.
        decoded: Option<Decoded>,
    },
}

impl LineEvent {
    /// The raw MozDef event (for `isms decode`, `isms send`, anything that works on JSON).
    pub fn into_raw(self) -> Value {
        match self {
            LineEvent::Raw(raw) => raw,
            LineEvent::Text { fields, decoded } => {
                let mut event = match fields.to_json() {
                    Value::Object(map) => map,
                    _ => Map::new(),
                };
                if let Some(decoded) = decoded {
                    merge_into_event(&mut event, decoded);
                }
                Value::Object(event)
            }
        }
    }

    /// The normalized event: the same as `normalize_delivered` of [`LineEvent::into_raw`].
    pub fn into_event(self, delivery: &Delivery) -> Result<Event, NormalizeError> {
        match self {
            LineEvent::Raw(raw) => normalize_delivered(raw, delivery),
            LineEvent::Text { fields, decoded } => {
                crate::event_of_decoded(fields, decoded, delivery)
            }
        }
    }
}

fn raw_events(events: Vec<Value>) -> Vec<LineEvent> {
    events.into_iter().map(LineEvent::Raw).collect()
}

/// Decodes the lines of a file that are one JSON object each, on any thread (see
/// [`LineDecoder::json_lines`]).
#[derive(Clone)]
pub struct JsonLines {
    decoders: Arc<Decoders>,
}

impl JsonLines {
    /// The raw event of a line that is one JSON object, as [`LineDecoder::push_line_typed`] gives
    /// it; `None` for any other line, which must go through the decoder in order.
    pub fn decode(&self, line: &str) -> Option<Value> {
        json_line_event(&self.decoders, json_object_text(line)?)
    }
}

/// The text of a line that may be a JSON object: trimmed as [`LineDecoder::push_line_typed`] trims
/// lines, and starting with `{`.
pub fn json_object_text(line: &str) -> Option<&str> {
    let trimmed = line.trim_end_matches(['\n', '\r', '\0']).trim_start();
    trimmed.starts_with('{').then_some(trimmed)
}

/// The raw event of a trimmed line that is one JSON object: a sensor record decoded, any other
/// object kept as it is (perhaps already an event) and decoded if it can be.
fn json_line_event(decoders: &Decoders, trimmed: &str) -> Option<Value> {
    if !trimmed.starts_with('{') {
        return None;
    }
    let Ok(isms_event::IncomingValue(Value::Object(mut object))) = serde_json::from_str(trimmed)
    else {
        return None;
    };
    if let Some(event) = decoders.decode_json(&object) {
        return Some(event);
    }
    decoders.apply(&mut object);
    Some(Value::Object(object))
}

/// Programs that log one connection per process, whose lines may be joined by pid.
fn correlates(program: &str) -> bool {
    matches!(program, "sshd" | "sshd-session" | "sshd-auth" | "dropbear")
}

/// What is known about one process' connection.
#[derive(Debug, Default, Clone)]
struct Connection {
    /// `sourceipaddress` or `sourcehostname`, with the value, and the port.
    address: Option<(&'static str, String, Option<Value>)>,
    /// A failure was logged before the address was known.
    pending_failure: bool,
}

/// The connections of the last [`MAX_REMEMBERED_CONNECTIONS`] processes, keyed by host, program
/// and pid written as one string (`host\0program\0pid`): every sshd line looks its process up, so
/// the key is built once, in a reused buffer, and hashed with a fast hash.
#[derive(Debug, Default)]
struct Connections {
    by_process: HashMap<String, Connection, foldhash::fast::RandomState>,
    order: VecDeque<String>,
    key: String,
}

impl Connections {
    fn correlate(&mut self, host: &str, program: &str, pid: &str, decoded: &mut Decoded) {
        self.key.clear();
        for (index, part) in [host, program, pid].into_iter().enumerate() {
            if index > 0 {
                self.key.push('\0');
            }
            self.key.push_str(part);
        }
        if !self.by_process.contains_key(&self.key) {
            if self.order.len() >= MAX_REMEMBERED_CONNECTIONS
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_process.remove(&oldest);
            }
            self.order.push_back(self.key.clone());
            self.by_process
                .insert(self.key.clone(), Connection::default());
        }
        let Some(connection) = self.by_process.get_mut(&self.key) else {
            return;
        };
        let address = ["sourceipaddress", "sourcehostname"]
            .into_iter()
            .find_map(|name| Some((name, decoded.details.get(name)?.as_str()?.to_owned())));
        match address {
            Some((name, value)) => {
                let port = decoded.details.get("sourceport").cloned();
                connection.address = Some((name, value, port));
                if connection.pending_failure && decoded.result().is_none() {
                    decoded.failure();
                    decoded.set("deferredfailure", true);
                }
                connection.pending_failure = false;
            }
            None => match &connection.address {
                Some((name, value, port)) => {
                    decoded.text(name, value);
                    if let Some(port) = port {
                        decoded.set("sourceport", port.clone());
                    }
                }
                None if decoded.result() == Some("failure") => connection.pending_failure = true,
                None => {}
            },
        }
    }
}

/// A header read by [`read_loose_header`].
#[derive(Debug, Default)]
struct LooseHeader<'a> {
    time: Option<Timestamp>,
    host: Option<&'a str>,
    program: Option<&'a str>,
    pid: Option<&'a str>,
    message: &'a str,
}

/// A tag read by [`read_tag`].
struct Tag<'a> {
    program: &'a str,
    pid: Option<&'a str>,
}

fn is_program_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_PROGRAM_CHARS
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@'))
}

/// `[time] [host] tag message` with the looser forms log files have.
fn read_loose_header<'a>(text: &'a str, context: &ParseContext) -> LooseHeader<'a> {
    let text = text.trim_start();
    if let Some(header) = read_apple_system_log(text) {
        return header;
    }
    let (time, rest) = match read_loose_time(text, context) {
        Some((time, rest)) => (Some(time), rest.trim_start()),
        None => (None, text),
    };
    if let (Some(tag), message) = read_tag(rest) {
        return LooseHeader {
            time,
            host: None,
            program: Some(tag.program),
            pid: tag.pid,
            message,
        };
    }
    if let Some((host, after_host)) = rest.split_once(' ')
        && !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        && let (Some(tag), message) = read_tag(after_host.trim_start())
    {
        return LooseHeader {
            time,
            host: Some(host),
            program: Some(tag.program),
            pid: tag.pid,
            message,
        };
    }
    LooseHeader {
        time,
        message: rest,
        ..LooseHeader::default()
    }
}

/// Apple's system log lines: `[Time 2006.12.28 15:53:55 UTC] [Facility auth] [Sender sshd] [PID 483]
/// [Message ...] [Level 3] [UID -2] [GID -2] [Host name]`. The message ends at the last
/// `] [Level ` (what follows it is the logger's, not the message's).
fn read_apple_system_log(text: &str) -> Option<LooseHeader<'_>> {
    let rest = text.strip_prefix("[Time ")?;
    let (time, _) = rest.split_once(']')?;
    let value = |key: &str| -> Option<&str> {
        let start = text.find(key)? + key.len();
        let end = text[start..].find(']')?;
        Some(&text[start..start + end])
    };
    let message_start = text.find("[Message ")? + 9;
    let message_end = text
        .rfind("] [Level ")
        .filter(|end| *end >= message_start)?;
    let time = time
        .strip_suffix(" UTC")
        .and_then(|time| {
            time.replacen('.', "-", 2)
                .replace(' ', "T")
                .parse::<jiff::civil::DateTime>()
                .ok()
        })
        .and_then(|civil| civil.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|zoned| zoned.timestamp());
    Some(LooseHeader {
        time,
        host: value("[Host "),
        program: value("[Sender ").filter(|name| is_program_name(name)),
        pid: value("[PID "),
        message: &text[message_start..message_end],
    })
}

/// A tag at the start of `text` and the message after it: `prog[pid]: `, `prog[pid] `, `prog: `,
/// `[prog]: `, `[prog] `, `prog(x)[pid]: `; and `prog(x): ` / `prog(x)<id>: `, whose message keeps
/// the tag (dovecot puts the user and address in the parentheses).
fn read_tag(text: &str) -> (Option<Tag<'_>>, &str) {
    if let Some(inside) = text.strip_prefix('[')
        && let Some((name, rest)) = inside.split_once(']')
        && is_program_name(name)
    {
        if let Some(message) = rest.strip_prefix(": ").or_else(|| rest.strip_prefix(' ')) {
            return (
                Some(Tag {
                    program: name,
                    pid: None,
                }),
                message,
            );
        }
        return (None, text);
    }
    let name_end = text
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '@')))
        .map_or(text.len(), |(index, _)| index);
    let program = &text[..name_end];
    if !is_program_name(program) {
        return (None, text);
    }
    let mut rest = &text[name_end..];
    let mut detail_kept = false;
    if let Some(inside) = rest.strip_prefix('(') {
        let Some(close) = inside.find(')') else {
            return (None, text);
        };
        rest = &inside[close + 1..];
        detail_kept = true;
        if let Some(id) = rest.strip_prefix('<') {
            let Some((_, after)) = id.split_once('>') else {
                return (None, text);
            };
            rest = after;
        }
    }
    let mut pid = None;
    if let Some(inside) = rest.strip_prefix('[') {
        let Some((digits, after)) = inside.split_once(']') else {
            return (None, text);
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return (None, text);
        }
        pid = Some(digits);
        rest = after;
        detail_kept = false;
    }
    let message = if let Some(message) = rest.strip_prefix(": ") {
        message
    } else if let Some(message) = rest.strip_prefix(':').filter(|message| message.is_empty()) {
        message
    } else if pid.is_some() && !detail_kept {
        // proftpd: `proftpd[123] server (client[addr]): ...` without a colon.
        match rest.strip_prefix(' ') {
            Some(message) => message,
            None => return (None, text),
        }
    } else {
        return (None, text);
    };
    let message = if detail_kept { text } else { message };
    (Some(Tag { program, pid }), message)
}

/// A time at the start of `text` in one of the forms syslog parsing does not read, and the rest.
fn read_loose_time<'a>(text: &'a str, context: &ParseContext) -> Option<(Timestamp, &'a str)> {
    if let Some(label) = text.strip_prefix('@') {
        return read_tai64n(label);
    }
    let bytes = text.as_bytes();
    if bytes.len() >= 19 && bytes[..4].iter().all(u8::is_ascii_digit) && bytes[4] == b'-' {
        return read_iso_time(text, context);
    }
    read_ctime(text, context)
}

/// `@4000000065a1b2c3xxxxxxxx` (TAI64N: 2^62 + TAI seconds, then nanoseconds).
fn read_tai64n(label: &str) -> Option<(Timestamp, &str)> {
    let hex = label.get(..24)?;
    let rest = label.get(24..)?;
    let seconds = u64::from_str_radix(hex.get(..16)?, 16).ok()?;
    let nanoseconds = u32::from_str_radix(hex.get(16..)?, 16).ok()?;
    // TAI is ahead of UTC; daemontools' labels use the 10 s of 1970.
    let unix = i64::try_from(seconds.checked_sub(1 << 62)?).ok()? - 10;
    let time = Timestamp::new(unix, i32::try_from(nanoseconds).ok()?).ok()?;
    Some((time, rest))
}

/// `2013-11-16 21:59:30,121`, `2025-03-04T01:06:36.645577`, `2020-03-23 06:47:42.801612-0700`.
fn read_iso_time<'a>(text: &'a str, context: &ParseContext) -> Option<(Timestamp, &'a str)> {
    let bytes = text.as_bytes();
    if !(bytes[10] == b'T' || bytes[10] == b' ') {
        return None;
    }
    let end = text[11..]
        .find(' ')
        .map_or(text.len(), |position| 11 + position);
    let candidate = &text[..end];
    let clock = &candidate[11..];
    let has_offset =
        clock.ends_with('Z') || clock.get(8..).is_some_and(|tail| tail.contains(['+', '-']));
    let time = if has_offset {
        isms_event::parse_time(candidate).ok()?
    } else {
        let civil_text: String = candidate
            .chars()
            .map(|c| match c {
                ' ' => 'T',
                ',' => '.',
                other => other,
            })
            .collect();
        let civil: jiff::civil::DateTime = civil_text.parse().ok()?;
        civil.to_zoned(context.time_zone.clone()).ok()?.timestamp()
    };
    Some((time, &text[end..]))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Fri Jan 19 12:20:33 2007` (the day may be space padded).
fn read_ctime<'a>(text: &'a str, context: &ParseContext) -> Option<(Timestamp, &'a str)> {
    let mut words = text.splitn(2, ' ');
    let weekday = words.next()?;
    if weekday.len() != 3 || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let rest = words.next()?;
    let month = MONTHS.iter().position(|name| rest.starts_with(name))? as i8 + 1;
    let rest = rest.get(4..)?.trim_start();
    let (day, rest) = rest.split_once(' ')?;
    let (clock, rest) = rest.split_once(' ')?;
    let (year, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut parts = clock.split(':').map(|part| part.parse::<i8>().ok());
    let (Some(Some(hour)), Some(Some(minute)), Some(Some(second))) =
        (parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let date = jiff::civil::Date::new(year.parse().ok()?, month, day.parse().ok()?).ok()?;
    let civil = date.to_datetime(jiff::civil::Time::new(hour, minute, second, 0).ok()?);
    let time = civil.to_zoned(context.time_zone.clone()).ok()?.timestamp();
    Some((time, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoder() -> LineDecoder {
        LineDecoder::new(
            Arc::new(Decoders::builtin()),
            ParseContext::utc("2026-06-01T00:00:00Z".parse().expect("time")),
        )
    }

    fn one(decoder: &mut LineDecoder, line: &str) -> Value {
        let mut events = decoder.push_line(line);
        assert_eq!(events.len(), 1, "{line}");
        events.remove(0)
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// A reader may judge (or skip) an object line before it is decoded when no key of it is one
        /// `json_key_may_be_decoded` names: the decoder gives it back as the object it is.
        #[test]
        fn object_lines_without_a_decoded_key_come_out_as_they_are(
            members in proptest::collection::btree_map(
                proptest::sample::select(vec![
                    "event_type", "timestamp", "ts", "summary", "uid", "_path", "id.orig_h", "id",
                    "host", "port_num", "processname", "program", "Image", "src_ip", "alert",
                    "message",
                ]),
                proptest::prop_oneof![
                    proptest::sample::select(vec!["alert", "dns", "sshd", "Failed password for root from 198.51.100.8 port 22 ssh2"]).prop_map(Value::from),
                    (0u64..100).prop_map(Value::from),
                    proptest::strategy::Just(serde_json::json!({"orig_h": "10.0.0.1"})),
                ],
                1..6,
            )
        ) {
            let object: Map<String, Value> = members
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect();
            let line = serde_json::to_string(&object).unwrap();
            let events = decoder().push_line(&line);
            if !object.keys().any(|key| LineDecoder::json_key_may_be_decoded(key)) {
                proptest::prop_assert_eq!(events, vec![Value::Object(object)]);
            }
        }
    }

    #[test]
    fn syslog_lines_are_decoded_into_events() {
        let mut lines = decoder();
        let event = one(
            &mut lines,
            "Mar 12 06:25:14 web01 sshd[4141]: Failed password for root from 198.51.100.8 port 2200 ssh2",
        );
        assert_eq!(event["hostname"], "web01");
        assert_eq!(event["processname"], "sshd");
        assert_eq!(event["processid"], 4141);
        assert_eq!(event["category"], "authentication");
        assert_eq!(event["utctimestamp"], "2026-03-12T06:25:14.000000+00:00");
        assert_eq!(event["details"]["result"], "failure");
        assert_eq!(event["details"]["facility"], "user");
        assert_eq!(event["tags"], serde_json::json!(["syslog", "decoder:sshd"]));
    }

    #[test]
    fn a_procid_that_is_not_a_number_is_a_detail_and_the_line_is_stored() {
        let mut lines = decoder();
        let event = one(
            &mut lines,
            "<14>1 2026-11-21T22:21:23Z vm worker worker-7 - - job done",
        );
        assert!(event.get("processid").is_none(), "{event}");
        assert_eq!(event["details"]["procid"], "worker-7");
        let origin = isms_event::Origin {
            peer: None,
            endpoint: "file:/var/log/syslog".into(),
            key_name: None,
        };
        let stored = isms_event::normalize(event, &origin, Timestamp::now()).expect("stored");
        assert_eq!(stored.document["details"]["procid"], "worker-7");
    }

    #[test]
    fn loose_headers_of_log_files() {
        let mut lines = decoder();
        let event = one(
            &mut lines,
            "2013-11-16 21:59:30,121 ftp1 proftpd[25891] ftp1 (client[198.51.100.9]): USER amy (Login failed): Incorrect password",
        );
        assert_eq!(event["processname"], "proftpd");
        assert_eq!(event["hostname"], "ftp1");
        assert_eq!(event["utctimestamp"], "2013-11-16T21:59:30.121000+00:00");
        assert_eq!(event["details"]["sourceipaddress"], "198.51.100.9");
        // The summary is the text after the header the line decoder read, not the whole line.
        assert_eq!(
            event["summary"],
            "ftp1 (client[198.51.100.9]): USER amy (Login failed): Incorrect password"
        );
        let event = one(
            &mut lines,
            "Fri Jan 19 12:20:33 2007 [pid 27202] [anonymous] FAIL LOGIN: Client \"198.51.100.10\"",
        );
        assert_eq!(event["utctimestamp"], "2007-01-19T12:20:33.000000+00:00");
        assert_eq!(event["details"]["result"], "failure");
        let event = one(&mut lines, "srv sshd[1]: Invalid user x from 198.51.100.11");
        assert_eq!(event["hostname"], "srv");
        assert_eq!(event["details"]["action"], "invalid_user");
        let event = one(
            &mut lines,
            "Jan 13 20:51:05 mail auth-worker(304): pam(bea,198.51.100.12): unknown user",
        );
        assert_eq!(event["processname"], "auth-worker");
        assert_eq!(event["details"]["username"], "bea");
    }

    #[test]
    fn sshd_lines_without_an_address_take_their_connection_s() {
        let mut lines = decoder();
        one(
            &mut lines,
            "Feb 1 10:00:00 h sshd[77]: Connection from 198.51.100.13 port 5000 on 10.0.0.1 port 22",
        );
        let event = one(
            &mut lines,
            "Feb 1 10:00:01 h sshd[77]: Disconnecting: Too many authentication failures [preauth]",
        );
        assert_eq!(event["details"]["sourceipaddress"], "198.51.100.13");
        assert_eq!(event["details"]["result"], "failure");
        one(
            &mut lines,
            "Feb 1 10:00:02 h sshd[78]: error: kex_exchange_identification: Connection closed by remote host",
        );
        let event = one(
            &mut lines,
            "Feb 1 10:00:03 h sshd[78]: Connection closed by 198.51.100.14 port 5001",
        );
        assert_eq!(event["details"]["result"], "failure");
        assert_eq!(event["details"]["deferredfailure"], true);
    }

    #[test]
    fn json_and_audit_lines() {
        let mut lines = decoder();
        let event = one(
            &mut lines,
            r#"{"timestamp":"2026-01-01T00:00:00Z","event_type":"alert","src_ip":"1.2.3.4","alert":{"signature":"x","severity":2}}"#,
        );
        assert_eq!(event["category"], "ids");
        let passthrough = one(&mut lines, r#"{"summary":"hello","details":{"a":1}}"#);
        assert_eq!(passthrough["summary"], "hello");
        assert!(
            lines
                .push_line(
                    "type=SYSCALL msg=audit(1700000000.100:9): arch=c000003e syscall=2 success=yes"
                )
                .is_empty()
        );
        let events = lines.finish();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["details"]["syscall"], "open");
        assert!(lines.push_line("   ").is_empty());
    }

    #[test]
    fn audit_records_without_eoe_leave_with_later_lines_of_other_programs() {
        let mut lines = LineDecoder::new(
            Arc::new(Decoders::builtin()),
            ParseContext::utc("2023-11-15T00:00:00Z".parse().expect("time")),
        );
        let avc = "type=AVC msg=audit(1700000000.000:10): apparmor=\"DENIED\" operation=\"open\" profile=\"x\" name=\"/etc/shadow\" pid=5 comm=\"cat\"";
        assert!(lines.push_line(avc).is_empty());
        let soon = lines.push_line("Nov 14 22:13:25 h sshd[1]: Server listening on :: port 22.");
        assert_eq!(soon.len(), 1, "5 s later the record may still get company");
        let later = lines.push_line("Nov 14 22:14:00 h sshd[1]: Server listening on :: port 22.");
        assert_eq!(later.len(), 2);
        assert_eq!(later[0]["details"]["recordtype"], "AVC");
        assert_eq!(later[0]["details"]["name"], "/etc/shadow");
        assert!(
            lines
                .expire("2030-01-01T00:00:00Z".parse().expect("time"))
                .is_empty()
        );
    }
}
