//! Decoders: the text of common security logs turned into MozDef events with a category and
//! spelled-out details.
//!
//! # Why
//!
//! A syslog line is a `summary` and a program name. Detection rules need more: "failed logins from
//! one address" is `category:authentication AND details.result:failure`, counted by
//! `details.sourceipaddress`. Every daemon words the same facts differently (sshd's `Failed password
//! for`, PAM's `authentication failure; ... rhost=`, dovecot's `rip=`, vsftpd's `FAIL LOGIN: Client`),
//! so this crate reads each wording once and writes the same detail names for all of them. A rule
//! written against the names below works for every source this crate decodes.
//!
//! # What comes in, what comes out
//!
//! - [`Decoders::decode_message`]: a program name and a message (what `isms_syslog::parse` gives);
//!   the hot path, one dispatch on the program, then literal prefixes, no regex for the built-ins.
//! - [`Decoders::apply`]: the same on a raw MozDef event (`processname`, `summary`), merging the
//!   result into it.
//! - [`Decoders::decode_json`]: a Suricata EVE record or a Zeek JSON log record, as a whole event.
//! - [`AuditAssembler`]: Linux audit.log records, joined by event serial into one event each.
//! - [`LineDecoder`]: any line of a log file or stream, recognizing each of the above, for the
//!   `isms decode` command and the file sources.
//!
//! # Categories
//!
//! | category | what |
//! |---|---|
//! | `authentication` | logins and other credential checks (sshd, PAM, su, dropbear, FTP, mail logins, Zeek ssh/ntlm/kerberos/rdp/ftp outcomes, audit USER_AUTH/USER_LOGIN) |
//! | `authorization` | sudo's policy decisions |
//! | `session` | PAM sessions opened and closed |
//! | `account` | users and groups created, deleted, changed; passwords changed |
//! | `execution` | commands run: cron jobs, audited execve |
//! | `configuration` | crontab changes |
//! | `mail` | refused or abusive SMTP clients (postfix) |
//! | `network` | connections and network records (Zeek, Suricata other than alerts) |
//! | `ids` | Snort and Suricata alerts, Zeek notices |
//! | `audit` | other Linux audit events |
//!
//! # Details
//!
//! | detail | meaning |
//! |---|---|
//! | `result` | `success` or `failure` of the attempt; absent when the line states no outcome |
//! | `action` | a short verb: `login`, `logout`, `invalid_user`, `disconnect`, `max_attempts`, `protocol_error`, `session_opened`, `session_closed`, `command`, `su`, `useradd`, `userdel`, `usermod`, `groupadd`, `groupdel`, `passwd`, `chage`, `add_to_group`, `reject`, `connect`, ... |
//! | `username` | the account the attempt was for (sudo/su: the user who asked) |
//! | `targetuser` | the account su or sudo was asked to become |
//! | `sourceipaddress`, `sourceport` | the remote end (an IPv4-mapped IPv6 address is written as IPv4) |
//! | `sourcehostname` | the remote end when the log names a host instead of an address |
//! | `destinationipaddress`, `destinationport` | the local end, when logged |
//! | `authmethod` | `password`, `publickey`, `keyboard-interactive`, `hostbased`, `plain`, `login`, ... |
//! | `invaliduser` | `true` when the daemon said the user does not exist |
//! | `attempts` | how many attempts the line counts |
//! | `command`, `tty`, `pwd` | sudo and cron commands, terminal, working directory |
//! | `service` | the PAM service (or dovecot's protocol) |
//! | `reason` | the daemon's own words for why |
//! | `sourceambiguous` | `true` when an sshd line holds two whole `from HOST port N sshN` phrases: the first is recorded (as fail2ban reads such lines), but a user name can imitate the phrase, so the source is in doubt |
//!
//! # What counts as a failure
//!
//! `result: failure` marks an attempt that did not get in, counted the way fail2ban's aggressive
//! mode counts them, so a rule such as "20 failures from one address in 5 minutes" sees password
//! guessing and scanning alike:
//!
//! - refused credentials, unknown users, refused users (`not allowed because`), too many attempts;
//! - clients that left or were cut off before authenticating: sshd's `[preauth]` disconnects, no
//!   identification string, failed key exchange or negotiation; dovecot's `no auth attempts`;
//!   postfix's postscreen rejections and `lost connection after CONNECT`;
//! - not: a public key refused for an existing account (clients offer each of their keys in turn;
//!   too many end in `Too many authentication failures`, which is a failure), a server-side error
//!   (postfix lost its SASL service), a disconnect after a login.
//!
//! sshd with PAM logs one wrong password twice, as PAM's `authentication failure; ... rhost=` and
//! as sshd's `Failed password`; both are failures (other programs only log the PAM line). A rule
//! counting attempts per address can keep to one of them with `processname`/`details.pammodule`.
//!
//! # Attacker-controlled text
//!
//! User names, client identification strings and the like are chosen by whoever connects, and
//! most daemons print them unescaped. A user name such as `x from 6.6.6.6 port 22 ssh2` must not
//! move the recorded source address. Each decoder documents which part of the line it trusts for the
//! address (the part the daemon writes after the attacker's text) and has tests with such names.
//!
//! Nothing here panics on any input; `tests/never_panics.rs` feeds random text to every entry point.
#![warn(missing_docs)]

mod audit;
mod builtin;
mod decoded;
mod json;
mod line;
mod scan;
mod user;

use std::collections::HashMap;

use isms_event::{Delivery, Event, EventFields, NormalizeError, normalize_delivered};
use serde_json::{Map, Value};

pub use audit::{AuditAssembler, AuditRecord, parse_audit_record, syscall_name};
pub use decoded::Decoded;
pub use line::{JsonLines, LineDecoder, LineEvent, json_object_text};
pub use user::{USER_PATTERN_MAX_BYTES, USER_PATTERN_SIZE_LIMIT, UserDecoderSpec};

use user::UserDecoder;

/// A user decoder that could not be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecoderError {
    /// The pattern is not a valid regex (or compiles beyond [`USER_PATTERN_SIZE_LIMIT`]).
    #[error("decoder `{name}`: invalid pattern: {reason}")]
    InvalidPattern {
        /// The decoder's name.
        name: String,
        /// What the regex compiler said.
        reason: String,
    },
    /// Something else in the spec is wrong (empty name, no capture groups, a static field that
    /// cannot be set, a duplicate name).
    #[error("decoder `{name}`: {reason}")]
    InvalidSpec {
        /// The decoder's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The decoders: the built-in ones and an operator's own. Built once and shared by every thread
/// (`Send + Sync`, nothing mutable inside).
#[derive(Debug, Clone, Default)]
pub struct Decoders {
    user: Vec<UserDecoder>,
    /// Indices into `user` of the decoders for each exact program name, in spec order.
    user_by_program: HashMap<String, Vec<usize>>,
    /// Indices into `user` of the decoders for every program (`*`), in spec order.
    user_any_program: Vec<usize>,
}

impl Decoders {
    /// Only the built-in decoders.
    pub fn builtin() -> Decoders {
        Decoders::default()
    }

    /// The built-in decoders and `specs`. A user decoder is tried before the built-in ones for the
    /// programs it names, in the order given. Every spec is checked first: the first mistake is the
    /// error, naming the decoder.
    pub fn with_user(specs: Vec<UserDecoderSpec>) -> Result<Decoders, DecoderError> {
        let mut decoders = Decoders::default();
        for spec in specs {
            if decoders.user.iter().any(|known| known.name == spec.name) {
                return Err(DecoderError::InvalidSpec {
                    name: spec.name,
                    reason: "another decoder has the same name".into(),
                });
            }
            let compiled = UserDecoder::compile(spec)?;
            let index = decoders.user.len();
            if compiled.program == "*" {
                decoders.user_any_program.push(index);
            } else {
                decoders
                    .user_by_program
                    .entry(compiled.program.clone())
                    .or_default()
                    .push(index);
            }
            decoders.user.push(compiled);
        }
        Ok(decoders)
    }

    /// Decodes `message` as logged by `program` (the syslog tag's program, `""` when unknown):
    /// the user decoders for that program and for every program first, then the built-in one.
    pub fn decode_message(&self, program: &str, message: &str) -> Option<Decoded> {
        if !self.user.is_empty()
            && let Some(decoded) = self.decode_user(program, message)
        {
            return Some(decoded);
        }
        builtin::decode(program, message)
    }

    fn decode_user(&self, program: &str, message: &str) -> Option<Decoded> {
        let specific = self
            .user_by_program
            .get(program)
            .map_or(&[][..], Vec::as_slice);
        let (mut specific, mut any) = (
            specific.iter().peekable(),
            self.user_any_program.iter().peekable(),
        );
        loop {
            let next = match (specific.peek(), any.peek()) {
                (Some(a), Some(b)) if a < b => specific.next(),
                (Some(_), Some(_)) => any.next(),
                (Some(_), None) => specific.next(),
                (None, Some(_)) => any.next(),
                (None, None) => return None,
            };
            let decoder = &self.user[*next?];
            if let Some(decoded) = decoder.decode(message) {
                return Some(decoded);
            }
        }
    }

    /// Decodes a raw MozDef event in place from its `processname` and `summary`. On a match:
    /// `category` is set when the event has none; decoded details are added to `details` where the
    /// event has no value of that name yet (nothing the event had is replaced or removed); the tag
    /// `decoder:<name>` and the decoder's tags are added; a decoder's replacement summary replaces
    /// `summary`, the original kept as `details.originalsummary`; a user decoder's top-level static
    /// fields are set. Returns whether a decoder matched.
    pub fn apply(&self, event: &mut Map<String, Value>) -> bool {
        let Some(summary) = event.get("summary").and_then(Value::as_str) else {
            return false;
        };
        let program = event
            .get("processname")
            .and_then(Value::as_str)
            .unwrap_or("");
        let Some(decoded) = self.decode_message(program, summary) else {
            return false;
        };
        merge_into_event(event, decoded);
        true
    }

    /// The normalized event of typed fields (a syslog message's), decoded: the same event as
    /// [`Decoders::apply`] on [`EventFields::to_json`] and then `normalize_delivered`, but a decoder's
    /// category, details and tags are merged into the fields directly. Only a result that replaces
    /// the summary or sets other top-level fields (a user decoder's static fields) goes through JSON.
    pub fn event_of(
        &self,
        fields: EventFields,
        delivery: &Delivery,
    ) -> Result<Event, NormalizeError> {
        let decoded = match &fields.summary {
            Some(summary) => {
                self.decode_message(fields.processname.as_deref().unwrap_or(""), summary)
            }
            None => None,
        };
        event_of_decoded(fields, decoded, delivery)
    }

    /// A whole raw MozDef event from a Suricata EVE record (it has `event_type` and `timestamp`) or
    /// a Zeek JSON log record (`ts` and `uid`, `id.orig_h`, `_path` or another Zeek log's keys);
    /// `None` for any other object.
    pub fn decode_json(&self, object: &Map<String, Value>) -> Option<Value> {
        json::decode(object)
    }
}

/// The normalized event of typed fields and their decoder's result (not merged yet): the same as
/// merging them into [`EventFields::to_json`] and `normalize_delivered`. Only a result that replaces
/// the summary or sets other top-level fields (a user decoder's static fields) goes through JSON.
pub(crate) fn event_of_decoded(
    mut fields: EventFields,
    decoded: Option<Decoded>,
    delivery: &Delivery,
) -> Result<Event, NormalizeError> {
    match decoded {
        None => fields.into_event(delivery),
        Some(decoded) if decoded.summary.is_none() && decoded.fields.is_empty() => {
            merge_into_fields(&mut fields, decoded);
            fields.into_event(delivery)
        }
        Some(decoded) => {
            let mut raw = match fields.to_json() {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            merge_into_event(&mut raw, decoded);
            normalize_delivered(Value::Object(raw), delivery)
        }
    }
}

/// Merges `decoded` into `event` as [`Decoders::apply`] describes.
pub(crate) fn merge_into_event(event: &mut Map<String, Value>, decoded: Decoded) {
    let has_category = event
        .get("category")
        .is_some_and(|category| !category.is_null() && category.as_str() != Some(""));
    if !has_category {
        event.insert(
            "category".into(),
            Value::String(decoded.category.into_owned()),
        );
    }
    if let Some(summary) = decoded.summary {
        let original = event.insert("summary".into(), Value::String(summary));
        if let Some(original) = original {
            with_details(event, |details| {
                details.entry("originalsummary").or_insert(original);
            });
        }
    }
    with_details(event, |details| {
        for (key, value) in decoded.details {
            match details.get(&key) {
                Some(existing) if !existing.is_null() => {}
                _ => {
                    details.insert(key, value);
                }
            }
        }
    });
    with_tags(event, |tags| {
        for tag in std::iter::once(format!("decoder:{}", decoded.decoder)).chain(decoded.tags) {
            if !tags
                .iter()
                .any(|existing| existing.as_str() == Some(tag.as_str()))
            {
                tags.push(Value::String(tag));
            }
        }
    });
    for (key, value) in decoded.fields {
        event.insert(key, Value::String(value));
    }
}

/// [`merge_into_event`] for typed fields, for a result without a summary or top-level fields.
fn merge_into_fields(fields: &mut EventFields, decoded: Decoded) {
    if fields.category.as_deref().is_none_or(str::is_empty) {
        fields.category = Some(decoded.category.into_owned());
    }
    for (key, value) in decoded.details {
        match fields.details.get(&key) {
            Some(existing) if !existing.is_null() => {}
            _ => {
                fields.details.insert(key, value);
            }
        }
    }
    for tag in std::iter::once(format!("decoder:{}", decoded.decoder)).chain(decoded.tags) {
        if !fields.tags.contains(&tag) {
            fields.tags.push(tag);
        }
    }
}

/// Runs `change` on the event's `details` object, created when absent or null. A `details` that is
/// some other JSON value (which normalization would refuse) is kept as `details.value`.
fn with_details(event: &mut Map<String, Value>, change: impl FnOnce(&mut Map<String, Value>)) {
    let slot = event.entry("details").or_insert(Value::Null);
    if !slot.is_object() {
        let previous = std::mem::take(slot);
        let mut details = Map::new();
        if !previous.is_null() {
            details.insert("value".into(), previous);
        }
        *slot = Value::Object(details);
    }
    if let Value::Object(details) = slot {
        change(details);
    }
}

/// Runs `change` on the event's `tags` array, created when absent or null; a single tag becomes a
/// one-element array.
fn with_tags(event: &mut Map<String, Value>, change: impl FnOnce(&mut Vec<Value>)) {
    let slot = event.entry("tags").or_insert(Value::Null);
    if !slot.is_array() {
        let previous = std::mem::take(slot);
        *slot = Value::Array(if previous.is_null() {
            Vec::new()
        } else {
            vec![previous]
        });
    }
    if let Value::Array(tags) = slot {
        change(tags);
    }
}
