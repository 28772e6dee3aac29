//! Decoders an operator writes: a program name, a regex with named captures and static fields.
//!
//! Operators meet daemons no built-in decoder knows. A regex with named captures is the smallest
//! thing they can write that still yields spelled-out details: each capture becomes
//! `details.<name>`, static fields add the rest (`details.result = failure`, a tag, a severity).
//! The patterns come from configuration, so each is compiled with a size limit and every mistake is
//! reported with the decoder's name before anything runs.
use std::borrow::Cow;

use regex::{Regex, RegexBuilder};
use serde_json::Value;

use crate::DecoderError;
use crate::decoded::Decoded;

/// Most bytes a user pattern may compile to (regex's own limit is 10 MiB; a decoder needs far less).
pub const USER_PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Longest user pattern accepted, in bytes.
pub const USER_PATTERN_MAX_BYTES: usize = 8 * 1024;

/// Top-level event fields a static field may set (besides `tags` and `details.*`).
const SETTABLE_TOP_LEVEL_FIELDS: &[&str] =
    &["summary", "severity", "hostname", "processname", "source"];

/// Detail names whose captures are stored as numbers when they are numbers.
const NUMERIC_DETAILS: &[&str] = &["sourceport", "destinationport", "attempts"];

/// An operator's decoder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDecoderSpec {
    /// Its name, recorded in the tag `decoder:<name>` of what it decodes.
    pub name: String,
    /// The exact program name (`processname`) it applies to, or `*` for every program.
    pub program: String,
    /// A regex with named captures; each capture that matched becomes `details.<name>`
    /// (lowercased). Unanchored: add `^` to match from the start of the message.
    pub pattern: String,
    /// The category of what it decodes (`authentication`, ...).
    pub category: String,
    /// Static fields: `details.<key>` sets a detail (`details.result` = `failure`), `tags` adds a
    /// tag, and `summary`, `severity`, `hostname`, `processname` or `source` set that top-level
    /// field.
    pub fields: Vec<(String, String)>,
}

/// A static field, checked and split at compile time.
#[derive(Debug, Clone)]
enum StaticField {
    Detail(String, String),
    Tag(String),
    TopLevel(String, String),
    Summary(String),
}

/// A compiled user decoder.
#[derive(Debug, Clone)]
pub(crate) struct UserDecoder {
    pub(crate) name: String,
    pub(crate) program: String,
    regex: Regex,
    /// Capture group index and the detail name it fills.
    captures: Vec<(usize, String)>,
    category: String,
    fields: Vec<StaticField>,
}

impl UserDecoder {
    /// Checks and compiles a spec.
    pub(crate) fn compile(spec: UserDecoderSpec) -> Result<UserDecoder, DecoderError> {
        let invalid = |reason: String| DecoderError::InvalidSpec {
            name: spec.name.clone(),
            reason,
        };
        if spec.name.trim().is_empty() {
            return Err(invalid("the name is empty".into()));
        }
        if spec.program.trim().is_empty() {
            return Err(invalid(
                "the program is empty (use \"*\" for every program)".into(),
            ));
        }
        if spec.category.trim().is_empty() {
            return Err(invalid("the category is empty".into()));
        }
        if spec.pattern.len() > USER_PATTERN_MAX_BYTES {
            return Err(invalid(format!(
                "the pattern is {} bytes long, more than the {USER_PATTERN_MAX_BYTES} allowed",
                spec.pattern.len()
            )));
        }
        let regex = RegexBuilder::new(&spec.pattern)
            .size_limit(USER_PATTERN_SIZE_LIMIT)
            .dfa_size_limit(USER_PATTERN_SIZE_LIMIT)
            .build()
            .map_err(|error| DecoderError::InvalidPattern {
                name: spec.name.clone(),
                reason: error.to_string(),
            })?;
        let captures: Vec<(usize, String)> = regex
            .capture_names()
            .enumerate()
            .filter_map(|(index, name)| Some((index, name?.to_lowercase())))
            .collect();
        if captures.is_empty() {
            return Err(invalid(
                "the pattern has no named capture group (write (?P<username>...) for details.username)"
                    .into(),
            ));
        }
        let mut fields = Vec::with_capacity(spec.fields.len());
        for (key, value) in &spec.fields {
            fields.push(static_field(key, value).map_err(&invalid)?);
        }
        Ok(UserDecoder {
            name: spec.name,
            program: spec.program,
            regex,
            captures,
            category: spec.category,
            fields,
        })
    }

    /// Runs the decoder on one message.
    pub(crate) fn decode(&self, message: &str) -> Option<Decoded> {
        let found = self.regex.captures(message)?;
        let mut decoded = Decoded {
            decoder: Cow::Owned(self.name.clone()),
            category: Cow::Owned(self.category.clone()),
            details: serde_json::Map::new(),
            summary: None,
            tags: Vec::new(),
            fields: Vec::new(),
        };
        for (index, detail) in &self.captures {
            let Some(text) = found.get(*index) else {
                continue;
            };
            let text = text.as_str();
            let value = if NUMERIC_DETAILS.contains(&detail.as_str()) {
                text.parse::<u64>()
                    .map_or_else(|_| Value::String(text.to_owned()), Value::from)
            } else {
                Value::String(text.to_owned())
            };
            decoded.details.insert(detail.clone(), value);
        }
        for field in &self.fields {
            match field {
                StaticField::Detail(key, value) => {
                    decoded
                        .details
                        .insert(key.clone(), Value::String(value.clone()));
                }
                StaticField::Tag(tag) => decoded.tags.push(tag.clone()),
                StaticField::TopLevel(key, value) => {
                    decoded.fields.push((key.clone(), value.clone()))
                }
                StaticField::Summary(summary) => decoded.summary = Some(summary.clone()),
            }
        }
        Some(decoded)
    }
}

fn static_field(key: &str, value: &str) -> Result<StaticField, String> {
    if let Some(detail) = key.strip_prefix("details.") {
        if detail.is_empty() || detail.contains('.') {
            return Err(format!(
                "static field `{key}`: write details.<name> with a name and no further dots"
            ));
        }
        return Ok(StaticField::Detail(detail.to_lowercase(), value.to_owned()));
    }
    match key {
        "tags" | "tag" => Ok(StaticField::Tag(value.to_owned())),
        "summary" => Ok(StaticField::Summary(value.to_owned())),
        "category" => Err("static field `category`: set the decoder's category instead".into()),
        _ if SETTABLE_TOP_LEVEL_FIELDS.contains(&key) => {
            Ok(StaticField::TopLevel(key.to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "static field `{key}` cannot be set: use details.<name>, tags, or one of {}",
            SETTABLE_TOP_LEVEL_FIELDS.join(", ")
        )),
    }
}
