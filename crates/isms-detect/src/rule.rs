//! Rules: what a rule file (or an API call) says, and the checked, compiled rule the engine runs.
//!
//! A rule file is YAML with one rule per document (`---` between documents):
//!
//! ```yaml
//! id: ssh-failures-per-user
//! title: Repeated login failures for one user
//! description: Five failed logins for one account within five minutes.
//! severity: WARNING
//! tags: [attack.credential_access, attack.t1110]
//! kind: threshold
//! match: 'category:authentication AND details.result:failure'
//! parameters: {group_by: [details.username], interval: 5m, threshold: 5}
//! message: '{count} failed logins for {details.username} within {interval}'
//! add_to_list: {list: blocklist, field: details.sourceipaddress}
//! ```
//!
//! [`RuleDefinition`] is that text as data (what the API stores and returns); [`Rule`] is a
//! definition checked and compiled. Every refusal is a [`RuleError`] naming the file, the line where
//! one is known and the rule id, and loading a directory keeps every good rule when some are bad.
use std::path::{Path, PathBuf};

use isms_event::Severity;
use isms_query::{CompiledPredicate, FieldPath};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::parameters::KindConfig;
use crate::template::{Template, suggest_message};

/// Largest rule file read, in bytes.
pub const MAX_RULE_FILE_BYTES: u64 = 1024 * 1024;

/// Most rules loaded from one directory.
pub const MAX_RULES: usize = 10_000;

/// A rule as written: the file's (or the API's) form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// An RFC 5424 severity name (INFO, NOTICE, WARNING, ERROR, CRITICAL, ...).
    #[serde(default = "default_severity")]
    pub severity: String,
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    #[serde(default)]
    pub tags: Vec<String>,
    pub kind: String,
    /// A query in the search language; every event the rule considers must match it.
    #[serde(rename = "match", default = "default_match")]
    pub query: String,
    #[serde(default)]
    pub parameters: Map<String, Value>,
    /// The alert message; a suggested one when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// When the rule fires, a value to add to a named list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add_to_list: Option<AddToList>,
}

fn default_severity() -> String {
    "WARNING".to_owned()
}

fn default_enabled() -> bool {
    true
}

fn default_match() -> String {
    "*".to_owned()
}

/// Adds the value of `field` (from the event that made the rule fire) to list `list`: seed 002's
/// port scanner that lands on the blocklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddToList {
    pub list: String,
    pub field: String,
}

/// A rule ready to run.
#[derive(Debug, Clone)]
pub struct Rule {
    pub definition: RuleDefinition,
    pub severity: Severity,
    pub predicate: CompiledPredicate,
    /// The match as parsed (the engine reads what each rule needs of an event from it).
    pub ir: isms_query::Predicate,
    pub kind: KindConfig,
    pub template: Template,
    pub add_to_list: Option<(String, FieldPath)>,
    /// Where it came from: a file path, `built-in` or `api`.
    pub source: String,
    /// The definition's id, title and tags as every detection of the rule shares them.
    pub shared: SharedRuleText,
}

/// A rule's id, title and tags, made once and shared by its detections (a rule may fire millions of
/// times; each detection copied them).
#[derive(Debug, Clone)]
pub struct SharedRuleText {
    pub id: std::sync::Arc<str>,
    pub title: std::sync::Arc<str>,
    pub tags: std::sync::Arc<[String]>,
}

/// Why a rule was not loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("{}{}{}: {reason}", .origin, .line.map(|line| format!(":{line}")).unwrap_or_default(), .rule_id.as_ref().map(|id| format!(": rule `{id}`")).unwrap_or_default())]
pub struct RuleError {
    /// The file, `built-in` or `api`.
    pub origin: String,
    /// 1-based line in the file, where known.
    pub line: Option<usize>,
    pub rule_id: Option<String>,
    pub reason: String,
}

impl Rule {
    /// Checks and compiles a definition. `source` names where it came from in errors.
    pub fn compile(definition: RuleDefinition, source: &str) -> Result<Rule, RuleError> {
        let error = |reason: String| RuleError {
            origin: source.to_owned(),
            line: None,
            rule_id: Some(definition.id.clone()),
            reason,
        };
        check_id(&definition.id).map_err(|reason| RuleError {
            rule_id: None,
            ..error(reason)
        })?;
        if definition.title.trim().is_empty() {
            return Err(error("the title is empty".to_owned()));
        }
        let severity = Severity::parse(&Value::String(definition.severity.clone())).ok_or_else(|| {
            error(format!(
                "severity `{}` is not one of DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL, ALERT, EMERGENCY",
                definition.severity
            ))
        })?;
        let match_error = |reason: String| {
            error(format!(
                "match `{}`: {reason}",
                shortened(&definition.query)
            ))
        };
        let ir = isms_query::parse(&definition.query)
            .map_err(|problem| match_error(problem.to_string()))?;
        let predicate =
            CompiledPredicate::compile(&ir).map_err(|problem| match_error(problem.to_string()))?;
        let kind =
            KindConfig::from_parameters(&definition.kind, &definition.parameters).map_err(error)?;
        let message = definition
            .message
            .clone()
            .unwrap_or_else(|| suggest_message(&definition.title, &kind));
        let template = Template::parse(&message).map_err(error)?;
        let add_to_list = match &definition.add_to_list {
            None => None,
            Some(add) => {
                if add.list.trim().is_empty() {
                    return Err(error("add_to_list names no list".to_owned()));
                }
                let field = crate::parameters::KindConfig::from_parameters(
                    "list",
                    serde_json::json!({"field": add.field, "list": add.list})
                        .as_object()
                        .expect("an object"),
                )
                .map_err(|reason| error(format!("add_to_list: {reason}")))?;
                let KindConfig::List(list) = field else {
                    unreachable!("the list kind reads a list config")
                };
                Some((add.list.clone(), list.field))
            }
        };
        Ok(Rule {
            severity,
            predicate,
            ir,
            kind,
            template,
            add_to_list,
            source: source.to_owned(),
            shared: SharedRuleText {
                id: definition.id.as_str().into(),
                title: definition.title.as_str().into(),
                tags: definition.tags.as_slice().into(),
            },
            definition,
        })
    }

    pub fn id(&self) -> &str {
        &self.definition.id
    }
}

/// A query as an error quotes it: whole up to 200 characters, else its start and how long it is.
fn shortened(query: &str) -> String {
    const SHOWN: usize = 200;
    match query.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}… ({} bytes)", &query[..end], query.len()),
        None => query.to_owned(),
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 {
        return Err(format!("rule id `{id}` must have 1 to 128 characters"));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(format!(
            "rule id `{id}` may hold only letters, digits and - _ . :"
        ));
    }
    Ok(())
}

/// The 1-based line of the first `key:` at the start of a line (after indentation) at or after
/// `from_line`, to point semantic errors at their line.
fn line_of_key(text: &str, key: &str, from_line: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(from_line.saturating_sub(1))
        .find(|(_, line)| {
            let trimmed = line.trim_start().trim_start_matches("- ");
            trimmed
                .strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with(':'))
                // In a flow map: `parameters: {threshold: -1}`.
                || line.contains(&format!("{{{key}:"))
                || line.contains(&format!(", {key}:"))
        })
        .map(|(index, _)| index + 1)
}

/// Which key a semantic error is about, from its text (parameter names come first).
fn key_of_reason(reason: &str) -> Option<&str> {
    let start = reason.find("parameter `")? + "parameter `".len();
    let end = reason[start..].find('`')? + start;
    Some(&reason[start..end])
}

/// Reads every rule of one YAML text; returns the good ones and an error for each bad one.
pub fn parse_rules(text: &str, source: &str) -> (Vec<Rule>, Vec<RuleError>) {
    if looks_like_sigma(text) {
        return parse_sigma_rules(text, source);
    }
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    // Where each document starts, to find keys' lines inside it.
    let document_lines = document_start_lines(text);
    for (index, document) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let first_line = document_lines.get(index).copied().unwrap_or(1);
        let value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                errors.push(RuleError {
                    origin: source.to_owned(),
                    line: error.location().map(|location| location.line()),
                    rule_id: None,
                    reason: yaml_reason(&error),
                });
                // A syntax error leaves the rest of the stream unreadable.
                break;
            }
        };
        if value.is_null() {
            continue;
        }
        let rule_id = value.get("id").and_then(Value::as_str).map(str::to_owned);
        let definition: RuleDefinition = match serde_json::from_value(value) {
            Ok(definition) => definition,
            Err(error) => {
                let reason = error.to_string();
                let line = reason
                    .split('`')
                    .nth(1)
                    .and_then(|key| line_of_key(text, key, first_line))
                    .or(Some(first_line));
                errors.push(RuleError {
                    origin: source.to_owned(),
                    line,
                    rule_id,
                    reason: format!("not a rule: {reason}"),
                });
                continue;
            }
        };
        match Rule::compile(definition, source) {
            Ok(rule) => rules.push(rule),
            Err(mut error) => {
                let key = key_of_reason(&error.reason)
                    .or_else(|| {
                        [
                            "match",
                            "severity",
                            "message",
                            "add_to_list",
                            "kind",
                            "title",
                            "id",
                        ]
                        .into_iter()
                        .find(|key| {
                            error.reason.starts_with(key)
                                || error.reason.contains(&format!("{key} `"))
                                || error.reason.starts_with(&format!("unknown {key}"))
                        })
                    })
                    .unwrap_or("id");
                error.line = line_of_key(text, key, first_line).or(Some(first_line));
                errors.push(error);
            }
        }
    }
    (rules, errors)
}

/// Whether a rule file holds Sigma rules rather than native ones: a top-level `detection:`,
/// `correlation:`, `filter:` or `logsource:` key (native rules have none of these), and no `kind:`.
fn looks_like_sigma(text: &str) -> bool {
    let top_level = |key: &str| {
        text.lines()
            .any(|line| line.starts_with(key) && line[key.len()..].trim_start().starts_with(':'))
    };
    !top_level("kind")
        && ["detection", "correlation", "filter", "logsource"]
            .into_iter()
            .any(top_level)
}

/// Sigma rules of one file, compiled with the default field mapping; every document that cannot be
/// used is reported with the rule's id where it has one.
fn parse_sigma_rules(text: &str, source: &str) -> (Vec<Rule>, Vec<RuleError>) {
    let mut errors = Vec::new();
    let files: Vec<crate::sigma::SigmaFile> = read_sigma_file(text, source, &mut errors)
        .into_iter()
        .collect();
    let mapping = crate::sigma::SigmaFieldMapping::with_shipped_pipelines();
    let (rules, more_errors) = compile_sigma_files(&files, &mapping);
    errors.extend(more_errors);
    (rules, errors)
}

/// The Sigma documents of a file's text; a text rsigma-parser cannot read at all, and each
/// document it could not read, are reported.
fn read_sigma_file(
    text: &str,
    source: &str,
    errors: &mut Vec<RuleError>,
) -> Option<crate::sigma::SigmaFile> {
    let error = |reason: String| RuleError {
        origin: source.to_owned(),
        line: None,
        rule_id: None,
        reason,
    };
    let collection = match rsigma_parser::parse_sigma_yaml(text) {
        Ok(collection) => collection,
        Err(parse_error) => {
            errors.push(error(format!("not a Sigma rule: {parse_error}")));
            return None;
        }
    };
    if !collection.errors.is_empty() {
        // rsigma-parser says what is wrong but not in which document: each document is read alone,
        // once, and each error is given to the first document that gave the same one.
        let mut alone: Vec<(usize, Option<String>, Vec<String>)> = sigma_documents(text)
            .into_iter()
            .map(|(line, document)| {
                let id = document.lines().find_map(|line| {
                    line.strip_prefix("id:")
                        .map(|id| crate::sigma::sigma_rule_id(id.trim().trim_matches(['\'', '"'])))
                });
                let errors = rsigma_parser::parse_sigma_yaml(&document)
                    .map(|parsed| parsed.errors)
                    .unwrap_or_default();
                (line, id, errors)
            })
            .collect();
        for reason in &collection.errors {
            let found = alone.iter_mut().find_map(|(line, id, document_errors)| {
                let position = document_errors.iter().position(|other| other == reason)?;
                document_errors.remove(position);
                Some((*line, id.clone()))
            });
            errors.push(RuleError {
                origin: source.to_owned(),
                line: found.as_ref().map(|(line, _)| *line),
                rule_id: found.and_then(|(_, id)| id),
                reason: format!("not a Sigma rule: {reason}"),
            });
        }
    }
    Some(crate::sigma::SigmaFile {
        source: source.to_owned(),
        text: text.to_owned(),
        collection,
    })
}

/// The YAML documents of a text with the line each starts on.
fn sigma_documents(text: &str) -> Vec<(usize, String)> {
    let mut documents = vec![(1, String::new())];
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("---") {
            documents.push((index + 2, String::new()));
            continue;
        }
        let current = &mut documents.last_mut().expect("one document at least").1;
        current.push_str(line);
        current.push('\n');
    }
    documents.retain(|(_, document)| !document.trim().is_empty());
    documents
}

/// Compiles Sigma files together (filters and correlations may name rules of other files).
fn compile_sigma_files(
    files: &[crate::sigma::SigmaFile],
    mapping: &crate::sigma::SigmaFieldMapping,
) -> (Vec<Rule>, Vec<RuleError>) {
    let mut rules = Vec::new();
    let mut errors = Vec::new();
    for compiled in crate::sigma::compile_files(files, mapping) {
        match compiled.result {
            Ok(definition) => match Rule::compile(definition, &compiled.source) {
                Ok(rule) => rules.push(rule),
                Err(mut compile_error) => {
                    compile_error.line = compiled.line;
                    errors.push(compile_error);
                }
            },
            Err(reason) => errors.push(RuleError {
                origin: compiled.source,
                line: compiled.line,
                rule_id: compiled.rule_id,
                reason,
            }),
        }
    }
    (rules, errors)
}

pub(crate) fn yaml_reason(error: &yaml_serde::Error) -> String {
    // The location is given separately; keep the reason itself.
    let text = error.to_string();
    match text.find(" at line ") {
        Some(position) => format!("invalid YAML: {}", &text[..position]),
        None => format!("invalid YAML: {text}"),
    }
}

/// The 1-based line where each YAML document of `text` starts.
fn document_start_lines(text: &str) -> Vec<usize> {
    let mut starts = vec![1];
    for (index, line) in text.lines().enumerate() {
        if line.starts_with("---") && index > 0 {
            starts.push(index + 2);
        }
    }
    if text
        .lines()
        .next()
        .is_some_and(|line| line.starts_with("---"))
    {
        starts[0] = 2;
    }
    starts
}

/// What loading a directory of rules gave.
#[derive(Debug, Default)]
pub struct LoadedRules {
    pub rules: Vec<Rule>,
    pub errors: Vec<RuleError>,
    /// Files read.
    pub files: usize,
    /// The Sigma pipelines read from the directories (`NAME.pipeline.yml`): name and file.
    pub pipelines: Vec<(String, String)>,
    /// The `%name%` placeholders of the Sigma rules' `|expand` values: when a list of one of these
    /// names changes, the rules must be loaded again ([`crate::sigma`]).
    pub expand_placeholders: std::collections::BTreeSet<String>,
}

/// Loads every `*.yml` and `*.yaml` file under `directory` (sorted, recursively), keeping the good
/// rules of every file. A rule id defined twice keeps the first and reports the second. Sigma
/// rules are compiled under the shipped pipelines and the directory's own pipeline files
/// (`*.pipeline.yml`, `*.pipeline.yaml`, by path), which are not rule files.
pub fn load_directory(directory: &Path) -> Result<LoadedRules, std::io::Error> {
    load_directory_with_pipelines(directory, &[])
}

/// [`load_directory`], with `more_pipelines` applied to its Sigma rules after the directory's own
/// (`isms replay --pipeline`).
pub fn load_directory_with_pipelines(
    directory: &Path,
    more_pipelines: &[std::sync::Arc<crate::sigma_pipeline::SigmaPipeline>],
) -> Result<LoadedRules, std::io::Error> {
    load_directory_with_lists(directory, more_pipelines, &std::sync::Arc::default())
}

/// [`load_directory_with_pipelines`], with the named lists the rules run with: `%name%`
/// placeholders of Sigma `|expand` values take their values from them (when no pipeline gives the
/// placeholder). Load again when those lists change ([`LoadedRules::expand_placeholders`]).
pub fn load_directory_with_lists(
    directory: &Path,
    more_pipelines: &[std::sync::Arc<crate::sigma_pipeline::SigmaPipeline>],
    lists: &std::sync::Arc<crate::lists::Lists>,
) -> Result<LoadedRules, std::io::Error> {
    let mut files = Vec::new();
    collect_rule_files(directory, &mut files, 0)?;
    files.sort();
    let mut loaded = LoadedRules::default();
    let mut pipelines: Vec<std::sync::Arc<crate::sigma_pipeline::SigmaPipeline>> =
        crate::sigma_pipeline::shipped_pipelines().to_vec();
    let (pipeline_files, files): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|path| crate::sigma_pipeline::is_pipeline_file(path));
    for path in pipeline_files {
        loaded.files += 1;
        match crate::sigma_pipeline::read_pipeline_file(&path) {
            Ok(pipeline) => {
                loaded
                    .pipelines
                    .push((pipeline.name.clone(), pipeline.source.clone()));
                pipelines.push(std::sync::Arc::new(pipeline));
            }
            Err(error) => loaded.errors.push(RuleError {
                origin: error.origin,
                line: error.line,
                rule_id: None,
                reason: error.reason,
            }),
        }
    }
    pipelines.extend(more_pipelines.iter().cloned());
    // Sigma files are compiled together once all are read: filters and correlations name rules
    // of other files.
    let mut sigma_files = Vec::new();
    for path in files {
        loaded.files += 1;
        let source = path.display().to_string();
        let text = match read_rule_file(&path) {
            Ok(text) => text,
            Err(reason) => {
                loaded.errors.push(RuleError {
                    origin: source,
                    line: None,
                    rule_id: None,
                    reason,
                });
                continue;
            }
        };
        if looks_like_sigma(&text) {
            sigma_files.extend(read_sigma_file(&text, &source, &mut loaded.errors));
            continue;
        }
        let (rules, errors) = parse_rules(&text, &source);
        loaded.errors.extend(errors);
        for rule in rules {
            add_unique(&mut loaded, rule);
        }
    }
    let mapping =
        crate::sigma::SigmaFieldMapping::with_pipelines(pipelines).with_lists(lists.clone());
    loaded.expand_placeholders = crate::sigma::expand_placeholder_names(&sigma_files);
    let (rules, errors) = compile_sigma_files(&sigma_files, &mapping);
    loaded.errors.extend(errors);
    for rule in rules {
        add_unique(&mut loaded, rule);
    }
    Ok(loaded)
}

/// Adds `rule` unless its id is taken or the rule count is at its bound; says why not in `loaded`.
pub fn add_unique(loaded: &mut LoadedRules, rule: Rule) {
    if let Some(first) = loaded.rules.iter().find(|known| known.id() == rule.id()) {
        loaded.errors.push(RuleError {
            origin: rule.source.clone(),
            line: None,
            rule_id: Some(rule.id().to_owned()),
            reason: format!("the id is already used by a rule of {}", first.source),
        });
    } else if loaded.rules.len() >= MAX_RULES {
        loaded.errors.push(RuleError {
            origin: rule.source.clone(),
            line: None,
            rule_id: Some(rule.id().to_owned()),
            reason: format!("more than {MAX_RULES} rules; this one and the rest are not loaded"),
        });
    } else {
        loaded.rules.push(rule);
    }
}

/// Rules that build on another rule's detections (`details.rule_id:X` required by their match) when
/// no loaded rule has id X: they can never fire. Each is reported (the rule still loads: the rule it
/// names may come later, through the API or another file).
pub fn chain_problems(rules: &[Rule]) -> Vec<RuleError> {
    let known: std::collections::HashSet<String> = rules
        .iter()
        .map(|rule| rule.id().to_ascii_lowercase())
        .collect();
    let mut problems = Vec::new();
    for rule in rules {
        let mut named = Vec::new();
        rule_ids_required(&rule.ir, &mut named);
        for id in named {
            if !known.contains(&id.to_ascii_lowercase()) {
                problems.push(RuleError {
                    origin: rule.source.clone(),
                    line: None,
                    rule_id: Some(rule.id().to_owned()),
                    reason: format!(
                        "match builds on the detections of rule `{id}`, which is not loaded: this rule cannot fire until it is"
                    ),
                });
            }
        }
    }
    problems
}

/// The rule ids a predicate requires through `details.rule_id` equalities (in an AND, or alone).
fn rule_ids_required(predicate: &isms_query::Predicate, found: &mut Vec<String>) {
    match predicate {
        isms_query::Predicate::Field {
            field,
            test: isms_query::FieldTest::Equals(value),
        } if field.dotted() == "details.rule_id" => found.push(value.clone()),
        isms_query::Predicate::And(children) => {
            for child in children {
                rule_ids_required(child, found);
            }
        }
        _ => {}
    }
}

fn read_rule_file(path: &Path) -> Result<String, String> {
    let metadata = std::fs::metadata(path).map_err(|error| format!("cannot read: {error}"))?;
    if metadata.len() > MAX_RULE_FILE_BYTES {
        return Err(format!(
            "the file has {} bytes, more than the {MAX_RULE_FILE_BYTES} a rule file may have",
            metadata.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read: {error}"))?;
    String::from_utf8(bytes).map_err(|error| {
        format!(
            "not UTF-8 text (byte {} is not valid)",
            error.utf8_error().valid_up_to()
        )
    })
}

fn collect_rule_files(
    directory: &Path,
    files: &mut Vec<PathBuf>,
    depth: usize,
) -> Result<(), std::io::Error> {
    if depth > 16 {
        return Ok(());
    }
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            collect_rule_files(&path, files, depth + 1)?;
        } else if matches!(
            path.extension().and_then(|extension| extension.to_str()),
            Some("yml" | "yaml")
        ) {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
id: ssh-failures-per-user
title: Repeated login failures for one user
kind: threshold
match: 'category:authentication AND details.result:failure'
parameters: {group_by: [details.username], interval: 5m, threshold: 5}
tags: [attack.t1110]
";

    #[test]
    fn a_rule_file_becomes_a_compiled_rule_with_defaults() {
        let (rules, errors) = parse_rules(GOOD, "rules/ssh.yml");
        assert!(errors.is_empty(), "{errors:?}");
        let rule = &rules[0];
        assert_eq!(rule.id(), "ssh-failures-per-user");
        assert_eq!(rule.severity, Severity::Warning);
        assert!(rule.definition.enabled);
        assert_eq!(rule.definition.tags, vec!["attack.t1110"]);
        assert!(matches!(rule.kind, KindConfig::Threshold(_)));
    }

    #[test]
    fn bad_rules_are_reported_with_file_line_and_reason_and_good_ones_kept() {
        let text = format!(
            "{GOOD}---\nid: broken-threshold\ntitle: t\nkind: threshold\nparameters:\n  threshold: -1\n---\nid: bad-kind\ntitle: t\nkind: frequency\n---\nid: bad-match\ntitle: t\nkind: match\nmatch: 'a:(b'\n"
        );
        let (rules, errors) = parse_rules(&text, "rules/mixed.yml");
        assert_eq!(rules.len(), 1);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0].rule_id.as_deref(), Some("broken-threshold"));
        assert_eq!(errors[0].line, Some(12), "{}", errors[0]);
        assert!(
            errors[0]
                .to_string()
                .starts_with("rules/mixed.yml:12: rule `broken-threshold`: parameter `threshold`"),
            "{}",
            errors[0]
        );
        assert!(errors[1].reason.contains("unknown kind `frequency`"));
        assert_eq!(errors[1].line, Some(16));
        assert!(
            errors[2].reason.starts_with("match `a:(b`"),
            "{}",
            errors[2]
        );
        assert_eq!(errors[2].line, Some(21));
    }

    #[test]
    fn yaml_that_does_not_parse_says_where() {
        let (rules, errors) = parse_rules("id: x\ntitle: [unclosed\n", "rules/bad.yml");
        assert!(rules.is_empty());
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].reason.starts_with("invalid YAML"),
            "{}",
            errors[0]
        );
        assert!(errors[0].line.is_some());
        let (_, errors) = parse_rules("id: x\ntitle: t\nkind: match\nseverity_level: 3\n", "r.yml");
        assert!(
            errors[0].reason.contains("unknown field `severity_level`"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[0].line, Some(4));
    }

    #[test]
    fn a_regex_over_the_size_limit_and_a_chain_on_a_missing_rule_are_reported() {
        let text = format!(
            "id: huge-regex\ntitle: t\nkind: match\nmatch: 'summary:/(a{{1,1000}}){{1,1000}}/'\n---\n{GOOD}---\nid: on-missing\ntitle: t\nkind: match\nmatch: 'category:alert AND details.rule_id:no-such-rule'\n---\nid: on-known\ntitle: t\nkind: match\nmatch: 'category:alert AND details.rule_id:ssh-failures-per-user'\n"
        );
        let (rules, errors) = parse_rules(&text, "rules/x.yml");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].rule_id.as_deref(), Some("huge-regex"));
        assert!(
            errors[0].reason.contains("regular expression"),
            "{}",
            errors[0]
        );
        assert_eq!(errors[0].line, Some(4), "{}", errors[0]);
        let problems = chain_problems(&rules);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].rule_id.as_deref(), Some("on-missing"));
        assert!(problems[0].reason.contains("`no-such-rule`"));
    }

    #[test]
    fn yaml_aliases_that_expand_without_bound_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for level in 1..12 {
            let previous = level - 1;
            text.push_str(&format!(
                "a{level}: &a{level} [*a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}, *a{previous}]\n"
            ));
        }
        let (rules, errors) = parse_rules(&text, "bomb.yml");
        assert!(rules.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
    }

    #[test]
    fn a_directory_keeps_good_rules_and_reports_duplicates_and_oversized_files() {
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("a.yml"), GOOD).unwrap();
        std::fs::create_dir(directory.path().join("more")).unwrap();
        std::fs::write(directory.path().join("more/b.yaml"), GOOD).unwrap();
        std::fs::write(directory.path().join("notes.txt"), "not a rule").unwrap();
        std::fs::write(
            directory.path().join("huge.yml"),
            "x".repeat(MAX_RULE_FILE_BYTES as usize + 1),
        )
        .unwrap();
        let loaded = load_directory(directory.path()).unwrap();
        assert_eq!(loaded.files, 3);
        assert_eq!(loaded.rules.len(), 1);
        assert_eq!(loaded.errors.len(), 2, "{:?}", loaded.errors);
        assert!(
            loaded
                .errors
                .iter()
                .any(|error| error.reason.contains("more than the 1048576"))
        );
        assert!(
            loaded
                .errors
                .iter()
                .any(|error| error.reason.contains("already used"))
        );
    }
}
