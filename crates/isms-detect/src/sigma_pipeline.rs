//! Sigma processing pipelines: where a Sigma rule's field names land among isms fields, which events
//! its log source means, and how its values are adjusted, per log source.
//!
//! Why: a Sigma rule names fields as the log it was written for spells them (`Image`,
//! `CommandLine`, `id.orig_h`, `EventID`) and says which log it is about only through its
//! `logsource` (`product: linux, service: sshd`). isms stores every log in one event format, where
//! the decoders put those facts under their own names (auditd's executable is `details.exe`, a
//! Zeek record's originator is `details.sourceipaddress`) and where "sshd's log" is "events whose
//! `processname` is sshd". A pipeline file says so once, for every rule of that log source, in
//! the spirit of pySigma's processing pipelines (much smaller).
//!
//! # The file
//!
//! ```yaml
//! name: my-site                   # shown in errors and by `isms sigma check`
//! logsource: {product: linux}     # optional: every entry applies only to such rules
//! entries:                        # in order; later entries (and later pipelines) win
//!   - logsource: {service: sshd}  # optional: product, category, service; all given must be the
//!                                 # rule's (ASCII case-insensitive)
//!     fields:                     # Sigma field (case as written) -> dotted isms path
//!       User: details.username
//!       Image: [details.exe, details.image]   # a list: the field is any of these paths
//!     other_fields: ['details.{name}']        # where every field `fields` does not name goes
//!     conditions:                 # isms queries ANDed into every rule of the log source
//!       - 'processname:sshd'
//!     values:                     # value transformations, in order
//!       - {fields: [User], transform: lowercase}          # or uppercase
//!       - {fields: [Image], transform: prefix, value: '/usr'}   # or suffix
//!       - {fields: [Image], transform: replace, regex: '\\', replacement: '/'}
//!     placeholders:               # values of `%name%` in `|expand` values (pySigma's vars)
//!       admins: [root, toor]
//! ```
//!
//! - A field's path comes from the last matching entry (of the last pipeline) whose `fields`
//!   names it; else from the last matching `other_fields`; else from the default: where
//!   normalization puts the same key of a JSON event ([`crate::sigma`]). An explicit rename in
//!   [`SigmaFieldMapping::renames`] wins over all of these.
//! - `other_fields` are templates: `{name}` is the Sigma name lowercased with `.` as `_` (one key,
//!   as the decoders and normalization write keys), `{path}` the name lowercased with `.`
//!   separating nested objects, and `{default}` (alone) the default path.
//! - With several paths a value matches when any path holds it; `null` and `exists: false` need
//!   every path to be absent.
//! - Value transformations change the string values of the fields named (as written in the
//!   rule) before the modifiers apply: `lowercase`, `uppercase`, `prefix`/`suffix` (with `value`)
//!   and `replace` (`regex`, with `replacement`, where `$1` and `${name}` are groups; the regex runs
//!   over each literal stretch between wildcards, which it never touches). Numbers, booleans, null
//!   and the values of `re`, `cidr`, `fieldref` and `expand` are left alone.
//! - Conditions are parsed by the query parser when the file is read; a rule compiled under them
//!   shows them in its match.
//! - Placeholders give the values a `%name%` of an `|expand` value stands for (each value one
//!   alternative, see [`crate::sigma`]); the last matching entry naming a placeholder wins. They
//!   win over a named list of the same name: a pipeline is written for its rules and log source,
//!   a list is the site's data (and the fallback). Names are letters, digits, `-`, `_` and `.`, as
//!   list names are; values are text (numbers and booleans as YAML writes them).
//!
//! Every problem is a [`PipelineError`] with the file, the line where one is found and the reason.
//!
//! # Where pipelines come from
//!
//! The shipped pipelines ([`SHIPPED_PIPELINES`], `pipelines/*.pipeline.yml` of this crate) apply
//! to every rule by its log source, first: `linux` (syslog, auth, sshd, sudo, cron, auditd and
//! process_creation from auditd's EXECVE), `windows` (the System fields of event logs as nxlog,
//! evtx_dump and winlogbeat write them as JSON; the EventData fields where nxlog's flat JSON puts
//! them), `zeek` and `suricata` (where isms's decoders put their records' fields). Then the
//! `*.pipeline.yml` (or `.pipeline.yaml`) files of a rules directory, by path, for that directory's
//! rules; then those given on the command line (`--pipeline`), which may also name an optional
//! shipped pipeline ([`OPTIONAL_PIPELINES`]: `windows-evtx`, `windows-winlogbeat`, for EventData
//! nested as those tools write it).
//!
//! The shipped conditions on a service (`processname:sshd`) also let through events that do not
//! say where they come from (no `processname`, no channel): a rule written for JSON events posted
//! without one kept working when the pipelines came, and an event that names another program is
//! still left out.
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use isms_query::{FieldPath, Predicate};
use rsigma_parser::{DetectionItem, LogSource, Modifier, SigmaString, SigmaValue, StringPart};
use serde::Deserialize;

use crate::sigma::SigmaFieldMapping;

/// Largest pipeline file read, in bytes.
pub const MAX_PIPELINE_FILE_BYTES: u64 = 1024 * 1024;

/// How a pipeline file's name ends in a rules directory (it is not read as a rule file).
pub const PIPELINE_FILE_SUFFIXES: [&str; 2] = [".pipeline.yml", ".pipeline.yaml"];

/// Largest compiled `replace` regex (the regex crate's size limit), in bytes.
const MAX_REPLACE_REGEX_BYTES: usize = 1 << 20;

/// The pipelines applied to every rule by its log source, by name.
pub const SHIPPED_PIPELINES: &[(&str, &str)] = &[
    ("linux", include_str!("../pipelines/linux.pipeline.yml")),
    ("windows", include_str!("../pipelines/windows.pipeline.yml")),
    ("zeek", include_str!("../pipelines/zeek.pipeline.yml")),
    (
        "suricata",
        include_str!("../pipelines/suricata.pipeline.yml"),
    ),
];

/// Shipped pipelines applied only when asked for by name (`--pipeline windows-evtx`).
pub const OPTIONAL_PIPELINES: &[(&str, &str)] = &[
    (
        "windows-evtx",
        include_str!("../pipelines/windows-evtx.pipeline.yml"),
    ),
    (
        "windows-winlogbeat",
        include_str!("../pipelines/windows-winlogbeat.pipeline.yml"),
    ),
];

/// Why a pipeline could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}{}: {reason}", .line.map(|line| format!(":{line}")).unwrap_or_default())]
pub struct PipelineError {
    /// The file (or `built-in:NAME`).
    pub origin: String,
    /// 1-based line in the file, where known.
    pub line: Option<usize>,
    pub reason: String,
}

/// A pipeline read and checked.
#[derive(Debug, Clone)]
pub struct SigmaPipeline {
    pub name: String,
    /// Where it was read: a path, or `built-in:NAME`.
    pub source: String,
    logsource: LogsourceCondition,
    entries: Vec<PipelineEntry>,
}

/// Log source values a rule must have (each given one, ASCII case-insensitively).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsourceCondition {
    product: Option<String>,
    category: Option<String>,
    service: Option<String>,
}

impl LogsourceCondition {
    fn covers(&self, rule: &LogSource) -> bool {
        let same = |wanted: &Option<String>, actual: &Option<String>| match wanted {
            None => true,
            Some(wanted) => actual
                .as_deref()
                .is_some_and(|actual| actual.eq_ignore_ascii_case(wanted)),
        };
        same(&self.product, &rule.product)
            && same(&self.category, &rule.category)
            && same(&self.service, &rule.service)
    }
}

#[derive(Debug, Clone)]
struct PipelineEntry {
    logsource: LogsourceCondition,
    fields: Vec<(String, Vec<FieldPath>)>,
    other_fields: Vec<String>,
    conditions: Vec<Predicate>,
    values: Vec<ValueTransformation>,
    placeholders: Vec<(String, Vec<String>)>,
}

/// A change to the string values of some fields.
#[derive(Debug, Clone)]
struct ValueTransformation {
    /// Sigma field names, as written in rules.
    fields: Vec<String>,
    change: ValueChange,
}

#[derive(Debug, Clone)]
enum ValueChange {
    Lowercase,
    Uppercase,
    Prefix(String),
    Suffix(String),
    Replace {
        regex: regex::Regex,
        replacement: String,
    },
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PipelineFile {
    name: String,
    #[serde(default)]
    logsource: LogsourceCondition,
    entries: Vec<EntryFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryFile {
    #[serde(default)]
    logsource: LogsourceCondition,
    #[serde(default)]
    fields: std::collections::BTreeMap<String, OneOrMore>,
    #[serde(default)]
    other_fields: Vec<String>,
    #[serde(default)]
    conditions: Vec<String>,
    #[serde(default)]
    values: Vec<TransformationFile>,
    #[serde(default)]
    placeholders: std::collections::BTreeMap<String, Vec<PlaceholderValueFile>>,
}

/// A placeholder's value as YAML writes it (text, or a number or boolean taken as its text).
#[derive(Deserialize)]
#[serde(untagged)]
enum PlaceholderValueFile {
    Text(String),
    Integer(i64),
    Float(f64),
    Flag(bool),
}

impl PlaceholderValueFile {
    fn into_text(self) -> String {
        match self {
            PlaceholderValueFile::Text(text) => text,
            PlaceholderValueFile::Integer(number) => number.to_string(),
            PlaceholderValueFile::Float(number) => number.to_string(),
            PlaceholderValueFile::Flag(flag) => flag.to_string(),
        }
    }
}

/// Whether `name` may name a placeholder: what a list name may be (letters, digits, `-`, `_`,
/// `.`), so that `%name%` can stand for a list.
pub fn is_placeholder_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMore {
    One(String),
    More(Vec<String>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformationFile {
    fields: Vec<String>,
    transform: String,
    value: Option<String>,
    regex: Option<String>,
    replacement: Option<String>,
}

/// Reads a pipeline file (at most [`MAX_PIPELINE_FILE_BYTES`], UTF-8).
pub fn read_pipeline_file(path: &Path) -> Result<SigmaPipeline, PipelineError> {
    let source = path.display().to_string();
    let error = |reason: String| PipelineError {
        origin: source.clone(),
        line: None,
        reason,
    };
    let metadata = std::fs::metadata(path).map_err(|io| error(format!("cannot read: {io}")))?;
    if metadata.len() > MAX_PIPELINE_FILE_BYTES {
        return Err(error(format!(
            "the file has {} bytes, more than the {MAX_PIPELINE_FILE_BYTES} a pipeline file may have",
            metadata.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|io| error(format!("cannot read: {io}")))?;
    let text = String::from_utf8(bytes).map_err(|utf8| {
        error(format!(
            "not UTF-8 text (byte {} is not valid)",
            utf8.utf8_error().valid_up_to()
        ))
    })?;
    parse_pipeline(&text, &source)
}

/// Whether a file of a rules directory is a pipeline (`NAME.pipeline.yml`), not a rule file.
pub fn is_pipeline_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| {
            PIPELINE_FILE_SUFFIXES
                .iter()
                .any(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
        })
}

/// Reads and checks a pipeline's text; `source` names it in errors.
pub fn parse_pipeline(text: &str, source: &str) -> Result<SigmaPipeline, PipelineError> {
    let error = |line: Option<usize>, reason: String| PipelineError {
        origin: source.to_owned(),
        line,
        reason,
    };
    let file: PipelineFile = yaml_serde::from_str(text).map_err(|yaml| {
        error(
            yaml.location().map(|location| location.line()),
            format!("not a Sigma pipeline: {}", crate::rule::yaml_reason(&yaml)),
        )
    })?;
    if file.name.trim().is_empty() {
        return Err(error(
            line_containing(text, "name:"),
            "the name is empty".into(),
        ));
    }
    let mut entries = Vec::new();
    for (index, entry) in file.entries.into_iter().enumerate() {
        // Where this entry's text starts, to point at what is wrong in it.
        let from = nth_entry_line(text, index);
        let at = |needle: &str| line_containing_from(text, needle, from).or(from);
        let entry_error = |needle: &str, reason: String| {
            error(at(needle), format!("entry {}: {reason}", index + 1))
        };
        let mut fields = Vec::new();
        for (sigma_name, paths) in entry.fields {
            let paths = match paths {
                OneOrMore::One(path) => vec![path],
                OneOrMore::More(paths) => paths,
            };
            if paths.is_empty() {
                return Err(entry_error(
                    &sigma_name,
                    format!("field `{sigma_name}` maps to no path"),
                ));
            }
            let mut parsed = Vec::new();
            for path in &paths {
                parsed.push(checked_path(path).map_err(|reason| {
                    entry_error(path, format!("field `{sigma_name}`: {reason}"))
                })?);
            }
            fields.push((sigma_name, parsed));
        }
        for template in &entry.other_fields {
            check_template(template)
                .map_err(|reason| entry_error(template, format!("other_fields: {reason}")))?;
        }
        let mut conditions = Vec::new();
        for condition in &entry.conditions {
            let predicate = isms_query::parse(condition).map_err(|parse| {
                entry_error(
                    condition,
                    format!("condition `{condition}` is not a query: {parse}"),
                )
            })?;
            conditions.push(predicate);
        }
        let mut values = Vec::new();
        for transformation in entry.values {
            let needle = format!("transform: {}", transformation.transform);
            values.push(
                checked_transformation(transformation)
                    .map_err(|reason| entry_error(&needle, reason))?,
            );
        }
        let mut placeholders = Vec::new();
        for (name, values) in entry.placeholders {
            if !is_placeholder_name(&name) {
                return Err(entry_error(
                    &name,
                    format!(
                        "placeholder `{name}`: a placeholder name is letters, digits, - _ and . (as a list name)"
                    ),
                ));
            }
            placeholders.push((
                name,
                values
                    .into_iter()
                    .map(PlaceholderValueFile::into_text)
                    .collect(),
            ));
        }
        entries.push(PipelineEntry {
            logsource: entry.logsource,
            fields,
            other_fields: entry.other_fields,
            conditions,
            values,
            placeholders,
        });
    }
    Ok(SigmaPipeline {
        name: file.name,
        source: source.to_owned(),
        logsource: file.logsource,
        entries,
    })
}

/// A path as the query language can write it (the compiled rule is kept as query text).
fn checked_path(path: &str) -> Result<FieldPath, String> {
    let parsed = FieldPath::parse_dotted(path.trim());
    let written_back = isms_query::parse(&format!("{}:x", parsed.dotted()));
    match written_back {
        Ok(Predicate::Field { field, .. }) if field == parsed => Ok(parsed),
        _ => Err(format!(
            "`{path}` is not a field path (dotted keys of letters, digits, _ @ -)"
        )),
    }
}

/// An `other_fields` template: `{default}` alone, or a path with `{name}` or `{path}`.
fn check_template(template: &str) -> Result<(), String> {
    if template == "{default}" {
        return Ok(());
    }
    let uses = template.matches("{name}").count() + template.matches("{path}").count();
    if uses != 1 {
        return Err(format!(
            "`{template}` must be `{{default}}` or a path holding `{{name}}` or `{{path}}` once"
        ));
    }
    checked_path(&expand_template(template, "field.name")).map(|_| ())
}

fn expand_template(template: &str, sigma_name: &str) -> String {
    let lowered = sigma_name.to_lowercase();
    template
        .replace("{name}", &lowered.replace('.', "_"))
        .replace("{path}", &lowered)
}

fn checked_transformation(file: TransformationFile) -> Result<ValueTransformation, String> {
    if file.fields.is_empty() {
        return Err(format!(
            "the `{}` transformation names no field",
            file.transform
        ));
    }
    let no_extra = |allowed: &[&str]| -> Result<(), String> {
        for (key, given) in [
            ("value", file.value.is_some()),
            ("regex", file.regex.is_some()),
            ("replacement", file.replacement.is_some()),
        ] {
            if given && !allowed.contains(&key) {
                return Err(format!(
                    "the `{}` transformation takes no `{key}`",
                    file.transform
                ));
            }
        }
        Ok(())
    };
    let needs = |value: &Option<String>, key: &str| {
        value
            .clone()
            .ok_or_else(|| format!("the `{}` transformation needs `{key}`", file.transform))
    };
    let change = match file.transform.as_str() {
        "lowercase" => {
            no_extra(&[])?;
            ValueChange::Lowercase
        }
        "uppercase" => {
            no_extra(&[])?;
            ValueChange::Uppercase
        }
        "prefix" => {
            no_extra(&["value"])?;
            ValueChange::Prefix(needs(&file.value, "value")?)
        }
        "suffix" => {
            no_extra(&["value"])?;
            ValueChange::Suffix(needs(&file.value, "value")?)
        }
        "replace" => {
            no_extra(&["regex", "replacement"])?;
            let pattern = needs(&file.regex, "regex")?;
            let regex = regex::RegexBuilder::new(&pattern)
                .size_limit(MAX_REPLACE_REGEX_BYTES)
                .build()
                .map_err(|bad| format!("regex `{pattern}`: {bad}"))?;
            ValueChange::Replace {
                regex,
                replacement: needs(&file.replacement, "replacement")?,
            }
        }
        other => {
            return Err(format!(
                "unknown transformation `{other}` (known: lowercase, uppercase, prefix, suffix, replace)"
            ));
        }
    };
    Ok(ValueTransformation {
        fields: file.fields,
        change,
    })
}

/// The 1-based line of the first line holding `needle`.
fn line_containing(text: &str, needle: &str) -> Option<usize> {
    line_containing_from(text, needle, Some(1))
}

fn line_containing_from(text: &str, needle: &str, from: Option<usize>) -> Option<usize> {
    let from = from.unwrap_or(1);
    text.lines()
        .enumerate()
        .skip(from.saturating_sub(1))
        .find(|(_, line)| line.contains(needle))
        .map(|(index, _)| index + 1)
}

/// The 1-based line where the `index`th item of `entries:` starts (a `- ` at the list's indent).
fn nth_entry_line(text: &str, index: usize) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|line| line.trim_end() == "entries:" || line.starts_with("entries:"))?;
    let mut indent = None;
    let mut seen = 0;
    for (offset, line) in lines.iter().enumerate().skip(start + 1) {
        let trimmed = line.trim_start();
        if !trimmed.starts_with("- ") && trimmed != "-" {
            continue;
        }
        let this_indent = line.len() - trimmed.len();
        if *indent.get_or_insert(this_indent) != this_indent {
            continue;
        }
        if seen == index {
            return Some(offset + 1);
        }
        seen += 1;
    }
    None
}

/// The shipped pipelines, read once (they are tested to read, so an error here is a bug).
pub fn shipped_pipelines() -> &'static [Arc<SigmaPipeline>] {
    static SHIPPED: OnceLock<Vec<Arc<SigmaPipeline>>> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        SHIPPED_PIPELINES
            .iter()
            .filter_map(|(name, text)| {
                match parse_pipeline(text, &format!("built-in:{name}.pipeline.yml")) {
                    Ok(pipeline) => Some(Arc::new(pipeline)),
                    Err(error) => {
                        tracing::error!(%error, "shipped sigma pipeline not read");
                        None
                    }
                }
            })
            .collect()
    })
}

/// An optional shipped pipeline by name (`windows-evtx`), if there is one.
pub fn optional_pipeline(name: &str) -> Option<Result<SigmaPipeline, PipelineError>> {
    OPTIONAL_PIPELINES
        .iter()
        .find(|(known, _)| *known == name)
        .map(|(name, text)| parse_pipeline(text, &format!("built-in:{name}.pipeline.yml")))
}

/// What the pipelines give one log source: field paths, conditions, value transformations.
#[derive(Debug, Default)]
pub(crate) struct LogsourceMapping {
    fields: HashMap<String, Vec<FieldPath>>,
    other_fields: Vec<String>,
    conditions: Vec<Predicate>,
    values: Vec<ValueTransformation>,
    /// `%name%` of `|expand` values: the values each stands for.
    placeholders: HashMap<String, Vec<String>>,
}

impl LogsourceMapping {
    /// Every path a Sigma field may be at (never empty).
    fn paths_of(&self, sigma_field: &str) -> Vec<FieldPath> {
        if let Some(paths) = self.fields.get(sigma_field) {
            return paths.clone();
        }
        if self.other_fields.is_empty() {
            return vec![crate::sigma::default_path(sigma_field)];
        }
        let mut paths: Vec<FieldPath> = Vec::new();
        for template in &self.other_fields {
            let path = if template == "{default}" {
                crate::sigma::default_path(sigma_field)
            } else {
                FieldPath::parse_dotted(&expand_template(template, sigma_field))
            };
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
        paths
    }

    /// The item with its string values transformed, when a transformation names its field.
    fn transformed(&self, item: &DetectionItem) -> Option<DetectionItem> {
        let name = item.field.name.as_deref()?;
        let untouched = [
            Modifier::Re,
            Modifier::Cidr,
            Modifier::FieldRef,
            Modifier::Expand,
        ];
        if untouched
            .iter()
            .any(|modifier| item.field.modifiers.contains(modifier))
        {
            return None;
        }
        let changes: Vec<&ValueChange> = self
            .values
            .iter()
            .filter(|transformation| transformation.fields.iter().any(|field| field == name))
            .map(|transformation| &transformation.change)
            .collect();
        if changes.is_empty() {
            return None;
        }
        let mut item = item.clone();
        for value in &mut item.values {
            if let SigmaValue::String(text) = value {
                for change in &changes {
                    *text = transform_string(text, change);
                }
            }
        }
        Some(item)
    }
}

/// A Sigma string under one change; wildcards are kept where they are.
fn transform_string(text: &SigmaString, change: &ValueChange) -> SigmaString {
    let mut parts: Vec<StringPart> = text
        .parts
        .iter()
        .map(|part| match (part, change) {
            (StringPart::Plain(plain), ValueChange::Lowercase) => {
                StringPart::Plain(plain.to_lowercase())
            }
            (StringPart::Plain(plain), ValueChange::Uppercase) => {
                StringPart::Plain(plain.to_uppercase())
            }
            (StringPart::Plain(plain), ValueChange::Replace { regex, replacement }) => {
                StringPart::Plain(regex.replace_all(plain, replacement.as_str()).into_owned())
            }
            (other, _) => other.clone(),
        })
        .collect();
    match change {
        ValueChange::Prefix(prefix) => parts.insert(0, StringPart::Plain(prefix.clone())),
        ValueChange::Suffix(suffix) => parts.push(StringPart::Plain(suffix.clone())),
        _ => {}
    }
    // Neighbouring literal parts as one (windash looks at the character before a dash).
    let mut merged: Vec<StringPart> = Vec::with_capacity(parts.len());
    for part in parts {
        match (merged.last_mut(), part) {
            (Some(StringPart::Plain(previous)), StringPart::Plain(next)) => {
                previous.push_str(&next)
            }
            (_, StringPart::Plain(next)) if next.is_empty() => {}
            (_, part) => merged.push(part),
        }
    }
    // Sigma's own text of the parts: wildcards as they are, escaped where plain.
    let original = crate::sigma::wildcard_text(&merged);
    SigmaString {
        parts: merged,
        original,
    }
}

impl SigmaFieldMapping {
    /// A mapping that applies `pipelines` (in order) to each rule by its log source.
    pub fn with_pipelines(pipelines: Vec<Arc<SigmaPipeline>>) -> SigmaFieldMapping {
        SigmaFieldMapping {
            pipelines,
            ..SigmaFieldMapping::default()
        }
    }

    /// The default for rule files: the shipped pipelines.
    pub fn with_shipped_pipelines() -> SigmaFieldMapping {
        SigmaFieldMapping::with_pipelines(shipped_pipelines().to_vec())
    }

    /// This mapping for rules of `logsource`: the matching entries of every pipeline, resolved.
    pub fn for_logsource(&self, logsource: &LogSource) -> SigmaFieldMapping {
        let mut resolved = LogsourceMapping::default();
        let mut any = false;
        for pipeline in &self.pipelines {
            if !pipeline.logsource.covers(logsource) {
                continue;
            }
            for entry in &pipeline.entries {
                if !entry.logsource.covers(logsource) {
                    continue;
                }
                any = true;
                for (name, paths) in &entry.fields {
                    resolved.fields.insert(name.clone(), paths.clone());
                }
                if !entry.other_fields.is_empty() {
                    resolved.other_fields = entry.other_fields.clone();
                }
                resolved.conditions.extend(entry.conditions.iter().cloned());
                resolved.values.extend(entry.values.iter().cloned());
                for (name, values) in &entry.placeholders {
                    resolved.placeholders.insert(name.clone(), values.clone());
                }
            }
        }
        SigmaFieldMapping {
            renames: self.renames.clone(),
            pipelines: self.pipelines.clone(),
            logsource: any.then(|| Arc::new(resolved)),
            lists: self.lists.clone(),
        }
    }

    /// The values a pipeline gives placeholder `%name%` for this log source, if one does.
    pub(crate) fn pipeline_placeholder(&self, name: &str) -> Option<&[String]> {
        self.logsource
            .as_ref()
            .and_then(|logsource| logsource.placeholders.get(name))
            .map(Vec::as_slice)
    }

    /// Every path a Sigma field may be at under this mapping (one unless a pipeline lists more).
    pub fn paths_of(&self, sigma_field: &str) -> Vec<FieldPath> {
        if self.renames.contains_key(sigma_field) {
            return vec![self.path_of(sigma_field)];
        }
        match &self.logsource {
            Some(logsource) => logsource.paths_of(sigma_field),
            None => vec![crate::sigma::default_path(sigma_field)],
        }
    }

    /// The first path of [`SigmaFieldMapping::paths_of`], when a pipeline decides it.
    pub(crate) fn pipeline_path_of(&self, sigma_field: &str) -> Option<FieldPath> {
        self.logsource
            .as_ref()
            .map(|logsource| logsource.paths_of(sigma_field).swap_remove(0))
    }

    /// `predicate` with the log source's conditions ANDed in front.
    pub(crate) fn with_conditions(&self, predicate: Predicate) -> Predicate {
        match &self.logsource {
            Some(logsource) if !logsource.conditions.is_empty() => {
                // One flat AND (conditions first: they reject most events soonest).
                let mut all = Vec::new();
                for part in logsource.conditions.iter().cloned().chain([predicate]) {
                    match part {
                        Predicate::And(children) => all.extend(children),
                        other => all.push(other),
                    }
                }
                Predicate::And(all)
            }
            _ => predicate,
        }
    }
}

/// Compiles one detection item under the pipelines: its values transformed, then `compile_item`
/// once per path the field may be at (any of them; all absent for `null` and `exists: false`).
pub(crate) fn compile_mapped_item(
    item: &DetectionItem,
    mapping: &SigmaFieldMapping,
    compile_item: fn(&DetectionItem, &SigmaFieldMapping) -> Result<Predicate, String>,
) -> Result<Predicate, String> {
    let (Some(name), Some(logsource)) = (&item.field.name, &mapping.logsource) else {
        return compile_item(item, mapping);
    };
    if mapping.renames.contains_key(name) {
        return compile_item(item, mapping);
    }
    let transformed = logsource.transformed(item);
    let item = transformed.as_ref().unwrap_or(item);
    let paths = logsource.paths_of(name);
    if paths.len() == 1 {
        return compile_item(item, mapping);
    }
    let mut per_path = Vec::with_capacity(paths.len());
    for path in paths {
        let mut one_path = mapping.clone();
        one_path.renames.insert(name.clone(), path.dotted());
        per_path.push(compile_item(item, &one_path)?);
    }
    let wants_absent = item.values.iter().any(|value| {
        matches!(value, SigmaValue::Null)
            || (item.field.modifiers.contains(&Modifier::Exists)
                && matches!(value, SigmaValue::Bool(false)))
    });
    Ok(if wants_absent {
        Predicate::And(per_path)
    } else {
        Predicate::Or(per_path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use isms_query::FieldTest;

    fn is_exists(predicate: &Predicate) -> bool {
        matches!(
            predicate,
            Predicate::Field {
                test: FieldTest::Exists,
                ..
            }
        )
    }

    #[test]
    fn every_shipped_pipeline_reads() {
        for (name, text) in SHIPPED_PIPELINES.iter().chain(OPTIONAL_PIPELINES) {
            let pipeline = parse_pipeline(text, name).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(&pipeline.name, name);
        }
        assert_eq!(shipped_pipelines().len(), SHIPPED_PIPELINES.len());
    }

    #[test]
    fn placeholders_are_read_as_text_and_bad_names_are_refused_with_the_line() {
        let pipeline = parse_pipeline(
            "name: t\nentries:\n  - placeholders:\n      ports: [22, '2222']\n      flags: [true]\n",
            "t.yml",
        )
        .unwrap();
        let mapping = SigmaFieldMapping::with_pipelines(vec![Arc::new(pipeline)])
            .for_logsource(&LogSource::default());
        assert_eq!(
            mapping.pipeline_placeholder("ports"),
            Some(&["22".to_owned(), "2222".to_owned()][..])
        );
        assert_eq!(
            mapping.pipeline_placeholder("flags"),
            Some(&["true".to_owned()][..])
        );
        assert_eq!(mapping.pipeline_placeholder("other"), None);
        let error = parse_pipeline(
            "name: t\nentries:\n  - placeholders:\n      'two words': [x]\n",
            "t.yml",
        )
        .unwrap_err();
        assert_eq!(error.line, Some(4), "{error}");
        assert!(error.reason.contains("placeholder `two words`"), "{error}");
    }

    #[test]
    fn transformations_keep_wildcards_and_escape_the_original() {
        let text = SigmaString::new(r"*\Temp\\*.EXE");
        let lowered = transform_string(&text, &ValueChange::Lowercase);
        assert_eq!(lowered.original, "*\\\\temp\\\\*.exe");
        let replaced = transform_string(
            &text,
            &ValueChange::Replace {
                regex: regex::Regex::new(r"\\").unwrap(),
                replacement: "/".into(),
            },
        );
        assert_eq!(replaced.original, "*/Temp/*.EXE");
        let prefixed =
            transform_string(&SigmaString::new("-enc"), &ValueChange::Prefix("x ".into()));
        assert_eq!(prefixed.parts, vec![StringPart::Plain("x -enc".into())]);
    }

    #[test]
    fn null_over_several_paths_needs_every_path_absent() {
        let pipeline = parse_pipeline(
            "name: t\nentries:\n  - fields: {A: [details.a, details.b]}\n",
            "t.yml",
        )
        .unwrap();
        let mapping = SigmaFieldMapping::with_pipelines(vec![Arc::new(pipeline)])
            .for_logsource(&LogSource::default());
        let item = DetectionItem {
            field: rsigma_parser::FieldSpec::new(Some("A".into()), vec![]),
            values: vec![SigmaValue::Null],
        };
        let compiled = compile_mapped_item(&item, &mapping, |item, mapping| {
            let path = mapping.path_of(item.field.name.as_deref().unwrap());
            Ok(Predicate::Not(Box::new(Predicate::Field {
                field: path,
                test: FieldTest::Exists,
            })))
        })
        .unwrap();
        let Predicate::And(children) = compiled else {
            panic!("null over two paths is an AND: {compiled:?}")
        };
        assert_eq!(children.len(), 2);
        assert!(children.iter().all(|child| match child {
            Predicate::Not(inner) => is_exists(inner),
            _ => false,
        }));
    }
}
