//! Sigma rules, compiled onto the engine.
//!
//! Sigma (SigmaHQ's YAML rule format) is how the field shares detections; isms runs its rules
//! natively rather than through another engine. `rsigma-parser` reads the YAML (its AST: named
//! detections, modifiers, the condition) and this module compiles each rule into the project's own
//! predicate IR (`isms_query::Predicate`), printed as the query of a `match` rule: the rule then
//! loads, runs, lists and persists like any native one, and `/api/rules` shows what it became.
//!
//! Field names are Sigma's (`CommandLine`, `EventID`, `User`): [`SigmaFieldMapping`] says which
//! isms field each becomes. By default a name lands where normalization puts the same key of an
//! incoming JSON event (lowercased; MozDef's fields and their aliases at the top level, `user` as
//! `details.username`, everything else under `details`), so a rule matches the events made from
//! the JSON it was written for. Processing pipelines ([`crate::sigma_pipeline`]) change that per
//! log source: the shipped ones put a Linux process_creation rule's `Image` where the audit decoder
//! puts the executable, and AND a `service: sshd` rule with `processname:sshd`.
//!
//! Semantics, as in the Sigma specification: strings compare case-insensitively (ASCII, as the IR
//! does) and whole-value, `*` and `?` are wildcards (`\*`, `\?`, `\\` literal), a list of values is
//! any-of (`|all`: every one), a map is all-of, a list of maps any-of; keywords (values without a
//! field) are searched in the summary; `null` means the field is absent; `neq` needs the field to
//! have a value (as rsigma-eval reads it). `base64offset` follows pySigma: each alignment's
//! characters that depend on the bytes around the value are left out (rsigma-eval 0.23 keeps the
//! trailing ones and misses a value inside longer encoded text).
//!
//! Filters add their condition to the rules they name (or every rule of their log source).
//! Correlations run on the engine's windowed kinds over the events their rules match, so they
//! keep their state across restarts like native rules: event_count as `threshold`, value_sum,
//! value_avg, value_median and value_percentile as `threshold` with that `aggregate` of the
//! condition's field (values that are not numbers, nor text holding one, are not counted),
//! value_count as `distinct_count`, temporal and temporal_ordered as `sequence`; their rules stop
//! alerting on their own unless the correlation says `generate: true`. A condition of several
//! comparisons (`gte: 10, lte: 20`) is a range, as are `eq` and `neq`: the group fires when its
//! count (or aggregate) enters the range and clears when it leaves it (the threshold kind's
//! lifecycle, `condition` parameter). `aliases` name the group's field per rule: the kinds'
//! `group_by_per_rule` keys each rule's events by its own field, the detection shows the alias.
//! A correlation may name another correlation: it takes the other's fired detections (fed back
//! as events, `category:alert`, `details.rule_id`), grouped by the values the other's detections
//! hold under `details.group` (so it can only group by fields the other groups by); correlations
//! naming each other in a cycle are refused. Unlike a detection rule, a named correlation keeps
//! making its own detections (the engine runs it to feed the other).
//!
//! `cidr` takes networks (a list: any of them) and matches IP addresses of the network's family
//! inside it ([`FieldTest::Cidr`]). As in pySigma (Python's strict `ip_network`), a network with
//! host bits set (`10.1.0.0/8`) is refused and a bare address is the network of that one address
//! (`/32`, `/128`); rsigma-eval 0.23 widens the first to `10.0.0.0/8` and refuses the second.
//! `fieldref` names another Sigma field, mapped like any field name ([`FieldTest::FieldRef`]): the
//! two fields' values are compared as text (`4625` equals `"4625"`), ASCII case ignored, any value
//! of each (a list's values one by one); rsigma-eval 0.23 folds all of Unicode and compares a list
//! as a whole. The time-part modifiers `minute`, `hour`, `day` (of the month),
//! `week` (ISO 8601), `month` and `year` take integers a time can have (`hour: 24` is refused)
//! and read the field as a UTC time by isms's time parser ([`FieldTest::TimePart`]); it reads
//! every format rsigma-eval reads (RFC 3339, `YYYY-MM-DD[T ]hh:mm:ss[.f]` as UTC, epoch seconds and
//! milliseconds as numbers) and more (a date alone, RFC 2822, offsets without a colon, epochs as
//! text). These take `all` and `neq` and no other modifier (`cidr|contains`, `fieldref|base64`,
//! `hour|gte` are refused; `fieldref` with `contains`, `startswith` or `endswith` is not
//! supported yet).
//!
//! `expand` (pySigma's placeholders): each `%name%` in the value stands for every value of a
//! named set, and the value becomes one alternative per combination (any of them matches; at most
//! [`MAX_EXPANSIONS`], past that the rule is refused). A placeholder's values come from the
//! `placeholders` of a pipeline entry covering the rule's log source, else from the named list of
//! that name ([`SigmaFieldMapping::lists`]: the lists directory the rules run with); a name that is
//! neither refuses the rule ("placeholder %name% has no list or pipeline placeholder"); a known but
//! empty set matches nothing (and `neq` everything that has a value). The other modifiers apply to
//! each alternative (`|expand|endswith`, `|expand|cidr` over a list of addresses and networks,
//! `|expand|windash`, encodings); `neq` means none of them; `all` still joins the values as
//! written. `expand` with `re`, `fieldref`, a comparison or a time part is refused (their values are
//! not text made of placeholders), and `cased` with a list (lists keep text in lower case).
//! Placeholder values are literal text (a `*` in a list entry is a star). rsigma-eval 0.23 reads
//! `expand` without a pipeline differently (placeholders are other fields of the event, at match
//! time); pySigma and this compiler fill them in when the rule is compiled.
//!
//! Lists change at run time (files, the API, rules that add values), so a rule expanded from a list
//! is compiled again when its lists change, rather than testing membership when it runs: the
//! expansion may be inside a longer value (`C:\Users\%user%\`), under any modifier, which a
//! membership test cannot express, and the IR (shared by the store's SQL) has no notion of lists.
//! [`expand_placeholder_names`] says which names a set of files depends on; the server recompiles
//! its rules when a list changes and some rule expands a placeholder (rules whose match did not
//! change keep their state), and `isms replay` does when a rule adds a value to such a list.
//!
//! What cannot be compiled yet is refused with the reason, never dropped: windows other than sliding; temporal conditions other than all of their rules (rsigma-parser
//! writes a missing condition as `gte: 1`, read here as the specification's default, all rules)
//! and condition expressions; value_count and value_* over several fields or over another
//! correlation's detections; array blocks.
use std::collections::HashMap;

use isms_query::{Bound, FieldPath, FieldTest, Predicate, RangeKind, TimeComponent};
use rsigma_parser::{
    ConditionExpr, Detection, DetectionItem, Level, Modifier, Quantifier, SelectorPattern,
    SigmaRule, SigmaString, SigmaValue, SpecialChar, StringPart,
};
use serde_json::{Map, Value};

use crate::rule::RuleDefinition;

/// Most combinations an `N of` selector may expand into.
const MAX_SELECTOR_COMBINATIONS: usize = 256;

/// Where each Sigma field name lands among isms fields.
#[derive(Debug, Clone, Default)]
pub struct SigmaFieldMapping {
    /// Explicit renames (Sigma name, case as written → dotted isms path), tried first.
    pub renames: HashMap<String, String>,
    /// Processing pipelines, applied in order to each rule by its log source
    /// ([`crate::sigma_pipeline`]).
    pub pipelines: Vec<std::sync::Arc<crate::sigma_pipeline::SigmaPipeline>>,
    /// What the pipelines give the log source of the rule being compiled.
    pub(crate) logsource: Option<std::sync::Arc<crate::sigma_pipeline::LogsourceMapping>>,
    /// The named lists `%name%` placeholders of `|expand` values take their values from, when no
    /// pipeline gives the placeholder (the lists the rules run with).
    pub lists: std::sync::Arc<crate::lists::Lists>,
}

impl SigmaFieldMapping {
    /// This mapping, with `%name%` placeholders taking their values from `lists`.
    pub fn with_lists(self, lists: std::sync::Arc<crate::lists::Lists>) -> SigmaFieldMapping {
        SigmaFieldMapping { lists, ..self }
    }

    /// The isms field a Sigma field name means (the first, when a pipeline gives several).
    pub fn path_of(&self, sigma_field: &str) -> FieldPath {
        if let Some(path) = self.renames.get(sigma_field) {
            return FieldPath::parse_dotted(path);
        }
        if let Some(path) = self.pipeline_path_of(sigma_field) {
            return path;
        }
        default_path(sigma_field)
    }
}

/// Where normalization would put the key `name` of an incoming JSON event: MozDef fields and their
/// aliases at the top level (or in `details` for the network and user aliases), anything else
/// under `details`. Dots separate path segments (nested objects).
pub(crate) fn default_path(name: &str) -> FieldPath {
    let lowered = name.to_lowercase();
    let mut segments: Vec<String> = lowered.split('.').map(str::to_owned).collect();
    let first = segments[0].clone();
    if isms_event::MOZDEF_FIELDS.contains(&first.as_str()) && first != "details" {
        return FieldPath(segments);
    }
    if first == "details" {
        return FieldPath(segments);
    }
    for alias in isms_event::FIELD_ALIASES {
        if alias.from == first {
            match alias.to {
                isms_event::AliasTarget::Top(target) => {
                    segments[0] = target.to_owned();
                    return FieldPath(segments);
                }
                isms_event::AliasTarget::Details(target) => {
                    segments[0] = target.to_owned();
                    segments.insert(0, "details".to_owned());
                    return FieldPath(segments);
                }
                isms_event::AliasTarget::MergeIntoDetails => {
                    segments[0] = "details".to_owned();
                    return FieldPath(segments);
                }
            }
        }
    }
    segments.insert(0, "details".to_owned());
    FieldPath(segments)
}

/// The predicate of a rule's (or filter's) detection section: its named detections combined by
/// its condition (several conditions: any of them).
fn compile_detections(
    detections: &rsigma_parser::Detections,
    mapping: &SigmaFieldMapping,
) -> Result<Predicate, String> {
    let mut named = HashMap::new();
    for (name, detection) in &detections.named {
        let predicate = compile_detection(detection, mapping)
            .map_err(|reason| format!("detection `{name}`: {reason}"))?;
        named.insert(name.clone(), predicate);
    }
    let mut conditions = Vec::new();
    for condition in &detections.conditions {
        conditions.push(compile_condition(condition, &named)?);
    }
    Ok(match conditions.len() {
        0 => return Err("the detection has no condition".into()),
        1 => conditions.remove(0),
        _ => Predicate::Or(conditions),
    })
}

fn match_definition(rule: &SigmaRule, id: String, predicate: &Predicate) -> RuleDefinition {
    let mut tags = rule.tags.clone();
    tags.push(format!("sigma:{}", rule.id.as_deref().unwrap_or_default()));
    RuleDefinition {
        id,
        title: rule.title.clone(),
        description: rule.description.clone().unwrap_or_default(),
        severity: severity_of(rule.level).to_owned(),
        enabled: true,
        tags,
        kind: "match".into(),
        query: isms_query::to_query_string(predicate),
        parameters: Map::new(),
        message: None,
        add_to_list: None,
    }
}

/// The Sigma documents of one file.
pub struct SigmaFile {
    /// Where they were read (a path, or `api`).
    pub source: String,
    /// The file's text (to find each rule's line).
    pub text: String,
    /// What rsigma-parser made of it.
    pub collection: rsigma_parser::SigmaCollection,
}

/// A rule definition compiled from Sigma, or why not, with where it came from.
pub struct CompiledSigma {
    /// The file.
    pub source: String,
    /// The line of the rule's id, where found.
    pub line: Option<usize>,
    /// The isms rule id, when the document has an id.
    pub rule_id: Option<String>,
    /// The definition, or the reason it could not be made.
    pub result: Result<RuleDefinition, String>,
}

/// One detection rule on its way through filters and correlations.
struct Pending<'a> {
    file: &'a SigmaFile,
    rule: &'a SigmaRule,
    predicate: Result<Predicate, String>,
    /// A correlation that does not `generate` uses this rule only through itself.
    used_only_by_correlation: bool,
}

/// Compiles the Sigma documents of several files together: detection rules, then the filters
/// that add exclusions to them, then the correlations built on them (references resolve across
/// files, by id or name).
pub fn compile_files(files: &[SigmaFile], mapping: &SigmaFieldMapping) -> Vec<CompiledSigma> {
    // Each file's `id:` lines, read once (looked up per rule, a scan of its file each time was a
    // sixth of loading a thousand rules).
    let id_lines: HashMap<usize, HashMap<&str, usize>> = files
        .iter()
        .map(|file| (std::ptr::from_ref(file) as usize, id_lines_of(&file.text)))
        .collect();
    let line_of_id = |file: &SigmaFile, id: Option<&str>| -> Option<usize> {
        id_lines
            .get(&(std::ptr::from_ref(file) as usize))
            .and_then(|lines| lines.get(id?).copied())
    };
    let mut pending: Vec<Pending> = Vec::new();
    for file in files {
        for rule in &file.collection.rules {
            let predicate = match &rule.id {
                Some(_) => {
                    let mapping = mapping.for_logsource(&rule.logsource);
                    compile_detections(&rule.detection, &mapping)
                        .map(|predicate| mapping.with_conditions(predicate))
                }
                None => Err("the rule has no id (Sigma rules need one to be told apart)".into()),
            };
            pending.push(Pending {
                file,
                rule,
                predicate,
                used_only_by_correlation: false,
            });
        }
    }
    let find = |pending: &[Pending], reference: &str| {
        pending.iter().position(|candidate| {
            candidate.rule.id.as_deref() == Some(reference)
                || candidate.rule.name.as_deref() == Some(reference)
        })
    };
    let mut compiled = Vec::new();
    for file in files {
        for filter in &file.collection.filters {
            let outcome = apply_filter(filter, &mut pending, mapping, &find);
            if let Err(reason) = outcome {
                compiled.push(CompiledSigma {
                    source: file.source.clone(),
                    line: line_of_id(file, filter.id.as_deref()),
                    rule_id: filter.id.as_deref().map(sigma_rule_id),
                    result: Err(format!("Sigma filter `{}`: {reason}", filter.title)),
                });
            }
        }
    }
    let correlations: Vec<(&SigmaFile, &rsigma_parser::CorrelationRule)> = files
        .iter()
        .flat_map(|file| {
            file.collection
                .correlations
                .iter()
                .map(move |correlation| (file, correlation))
        })
        .collect();
    let mut progress: Vec<CorrelationProgress> = correlations
        .iter()
        .map(|_| CorrelationProgress::NotStarted)
        .collect();
    let mut compiling = Correlations {
        all: &correlations,
        progress: &mut progress,
        pending: &mut pending,
        mapping,
        find: &find,
    };
    for index in 0..correlations.len() {
        compiling.compile(index, &mut Vec::new());
    }
    for ((file, correlation), progress) in correlations.iter().zip(progress) {
        let CorrelationProgress::Done(result) = progress else {
            unreachable!("every correlation was compiled above")
        };
        compiled.push(CompiledSigma {
            source: file.source.clone(),
            line: line_of_id(file, correlation.id.as_deref()),
            rule_id: correlation.id.as_deref().map(sigma_rule_id),
            result: (*result)
                .map(|(definition, _)| definition)
                .map_err(|reason| format!("Sigma correlation `{}`: {reason}", correlation.title)),
        });
    }
    let mut rules: Vec<CompiledSigma> = pending
        .into_iter()
        .map(|pending| {
            let rule_id = pending.rule.id.as_deref().map(sigma_rule_id);
            let result = pending
                .predicate
                .map(|predicate| {
                    let mut definition = match_definition(
                        pending.rule,
                        rule_id.clone().unwrap_or_default(),
                        &predicate,
                    );
                    if pending.used_only_by_correlation {
                        definition.enabled = false;
                    }
                    definition
                })
                .map_err(|reason| format!("Sigma rule `{}`: {reason}", pending.rule.title));
            CompiledSigma {
                source: pending.file.source.clone(),
                line: line_of_id(pending.file, pending.rule.id.as_deref()),
                rule_id,
                result,
            }
        })
        .collect();
    rules.extend(compiled);
    rules
}

/// The 1-based line where each `id: ...` of a text is written (the first, if written twice).
fn id_lines_of(text: &str) -> HashMap<&str, usize> {
    let mut lines = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        if let Some(value) = line.trim_start().strip_prefix("id:") {
            let value = value.split(" #").next().unwrap_or_default();
            let id = value
                .trim()
                .trim_matches(|quote| quote == '"' || quote == '\'');
            lines.entry(id).or_insert(index + 1);
        }
    }
    lines
}

type Finder<'f> = dyn Fn(&[Pending], &str) -> Option<usize> + 'f;

/// Adds a filter's condition to the rules it names (or every rule of a matching log source).
fn apply_filter(
    filter: &rsigma_parser::FilterRule,
    pending: &mut [Pending],
    mapping: &SigmaFieldMapping,
    find: &Finder,
) -> Result<(), String> {
    // Compiled for each rule under that rule's log source (its pipelines); once here for errors.
    let logsource = filter.logsource.clone().unwrap_or_default();
    compile_detections(&filter.detection, &mapping.for_logsource(&logsource))?;
    let targets: Vec<usize> = match &filter.rules {
        rsigma_parser::FilterRuleTarget::Any => (0..pending.len()).collect(),
        rsigma_parser::FilterRuleTarget::Specific(references) => {
            let mut targets = Vec::new();
            for reference in references {
                match find(pending, reference) {
                    Some(index) => targets.push(index),
                    None => {
                        return Err(format!("it names rule `{reference}`, which is not loaded"));
                    }
                }
            }
            targets
        }
    };
    for index in targets {
        let target = &mut pending[index];
        if let Some(logsource) = &filter.logsource
            && !logsource_applies(logsource, &target.rule.logsource)
        {
            continue;
        }
        if let Ok(predicate) = &mut target.predicate {
            let condition = compile_detections(
                &filter.detection,
                &mapping.for_logsource(&target.rule.logsource),
            )?;
            *predicate = Predicate::And(vec![predicate.clone(), condition]);
        }
    }
    Ok(())
}

/// Whether a filter's log source covers a rule's: each of category, product and service the
/// filter names must be the rule's too.
fn logsource_applies(filter: &rsigma_parser::LogSource, rule: &rsigma_parser::LogSource) -> bool {
    let same = |wanted: &Option<String>, actual: &Option<String>| match wanted {
        None => true,
        Some(wanted) => actual
            .as_deref()
            .is_some_and(|actual| actual.eq_ignore_ascii_case(wanted)),
    };
    same(&filter.category, &rule.category)
        && same(&filter.product, &rule.product)
        && same(&filter.service, &rule.service)
}

/// What another correlation needs of a compiled correlation that it names: the isms rule id its
/// detections carry, and its group: each group-by name as the correlation wrote it, with the isms
/// field the detections show it under.
#[derive(Clone)]
struct CorrelationOutput {
    rule_id: String,
    group: Vec<(String, FieldPath)>,
}

enum CorrelationProgress {
    NotStarted,
    /// Being compiled: met again through a reference, it closes a cycle.
    InProgress,
    Done(Box<Result<(RuleDefinition, CorrelationOutput), String>>),
}

/// The correlations of the files compiled together, each compiled once, those it names first.
struct Correlations<'c, 'p, 'f> {
    all: &'c [(&'c SigmaFile, &'c rsigma_parser::CorrelationRule)],
    progress: &'c mut [CorrelationProgress],
    pending: &'c mut [Pending<'p>],
    mapping: &'c SigmaFieldMapping,
    find: &'c Finder<'f>,
}

/// One rule or correlation a correlation names.
enum Referenced {
    /// A detection rule: its events.
    Rule { index: usize, predicate: Predicate },
    /// Another correlation: its (fired) detections, fed back to the rules as events.
    Correlation(CorrelationOutput),
}

impl Correlations<'_, '_, '_> {
    /// Compiles correlation `index` (and first those it names); `chain` holds the correlations
    /// being compiled that led here, to tell a cycle.
    fn compile(&mut self, index: usize, chain: &mut Vec<usize>) {
        if !matches!(self.progress[index], CorrelationProgress::NotStarted) {
            return;
        }
        self.progress[index] = CorrelationProgress::InProgress;
        chain.push(index);
        let result = self.compile_one(index, chain);
        chain.pop();
        self.progress[index] = CorrelationProgress::Done(Box::new(result));
    }

    fn find_correlation(&self, reference: &str) -> Option<usize> {
        self.all.iter().position(|(_, correlation)| {
            correlation.id.as_deref() == Some(reference)
                || correlation.name.as_deref() == Some(reference)
        })
    }

    fn compile_one(
        &mut self,
        index: usize,
        chain: &mut Vec<usize>,
    ) -> Result<(RuleDefinition, CorrelationOutput), String> {
        let correlation = self.all[index].1;
        let mut referenced = Vec::new();
        for reference in &correlation.rules {
            if let Some(rule) = (self.find)(self.pending, reference) {
                let predicate = self.pending[rule].predicate.clone().map_err(|reason| {
                    format!("its rule `{reference}` could not be compiled: {reason}")
                })?;
                referenced.push((
                    reference.as_str(),
                    Referenced::Rule {
                        index: rule,
                        predicate,
                    },
                ));
                continue;
            }
            let Some(inner) = self.find_correlation(reference) else {
                return Err(format!("it names rule `{reference}`, which is not loaded"));
            };
            if let Some(start) = chain.iter().position(|&known| known == inner) {
                let names: Vec<String> = chain[start..]
                    .iter()
                    .chain([&inner])
                    .map(|&known| {
                        let other = self.all[known].1;
                        other
                            .name
                            .clone()
                            .or_else(|| other.id.clone())
                            .unwrap_or_else(|| other.title.clone())
                    })
                    .collect();
                return Err(format!(
                    "correlations name each other in a cycle ({}): none of them can run",
                    names.join(" → ")
                ));
            }
            self.compile(inner, chain);
            let CorrelationProgress::Done(result) = &self.progress[inner] else {
                unreachable!("compiled above")
            };
            let output = match result.as_ref() {
                Ok((_, output)) => output.clone(),
                Err(reason) => {
                    return Err(format!(
                        "its correlation `{reference}` could not be compiled: {reason}"
                    ));
                }
            };
            referenced.push((reference.as_str(), Referenced::Correlation(output)));
        }
        compile_correlation(correlation, &referenced, self.pending, self.mapping)
    }
}

/// How a Sigma correlation condition's operator is written in a kind's parameters.
fn comparison_name(operator: rsigma_parser::ConditionOperator) -> &'static str {
    use rsigma_parser::ConditionOperator;
    match operator {
        ConditionOperator::Lt => "lt",
        ConditionOperator::Lte => "le",
        ConditionOperator::Gt => "gt",
        ConditionOperator::Gte => "ge",
        ConditionOperator::Eq => "eq",
        ConditionOperator::Neq => "ne",
    }
}

/// A correlation as a rule of the engine's windowed kinds: event_count as threshold, value_sum,
/// value_avg, value_median and value_percentile as threshold with that aggregate, value_count as
/// distinct_count, temporal (ordered) as sequence; over the events its rules match, and the
/// detections of the correlations it names.
fn compile_correlation(
    correlation: &rsigma_parser::CorrelationRule,
    referenced: &[(&str, Referenced)],
    pending: &mut [Pending],
    mapping: &SigmaFieldMapping,
) -> Result<(RuleDefinition, CorrelationOutput), String> {
    use rsigma_parser::{ConditionOperator, CorrelationCondition, CorrelationType};
    let Some(sigma_id) = &correlation.id else {
        return Err("the correlation has no id".into());
    };
    if correlation.window != rsigma_parser::WindowMode::Sliding {
        return Err(format!(
            "the `{}` window is not supported yet (sliding windows are)",
            correlation.window.as_str()
        ));
    }
    if referenced.is_empty() {
        return Err("it names no rule".into());
    }
    for alias in &correlation.aliases {
        if !correlation.group_by.contains(&alias.alias) {
            return Err(format!(
                "alias `{}` is not one of its group-by fields",
                alias.alias
            ));
        }
    }
    // Each referenced rule's fields are named as in its own log source; an alias names a
    // different field per rule.
    let mappings: Vec<Option<SigmaFieldMapping>> = referenced
        .iter()
        .map(|(_, item)| match item {
            Referenced::Rule { index, .. } => {
                Some(mapping.for_logsource(&pending[*index].rule.logsource))
            }
            Referenced::Correlation(_) => None,
        })
        .collect();
    let mut per_rule_fields: Vec<Vec<FieldPath>> = Vec::new();
    for ((reference, item), rule_mapping) in referenced.iter().zip(&mappings) {
        let mut fields = Vec::new();
        for name in &correlation.group_by {
            let field = match correlation
                .aliases
                .iter()
                .find(|alias| alias.alias == *name)
            {
                None => name.as_str(),
                Some(alias) => {
                    let identities: Vec<&str> = match item {
                        Referenced::Rule { index, .. } => {
                            let rule = pending[*index].rule;
                            [Some(*reference), rule.id.as_deref(), rule.name.as_deref()]
                                .into_iter()
                                .flatten()
                                .collect()
                        }
                        Referenced::Correlation(_) => vec![*reference],
                    };
                    identities
                        .iter()
                        .find_map(|identity| alias.mapping.get(*identity))
                        .ok_or_else(|| {
                            format!(
                                "alias `{name}` gives no field for rule `{reference}` (an alias maps every rule of the correlation)"
                            )
                        })?
                        .as_str()
                }
            };
            fields.push(match (item, rule_mapping) {
                (Referenced::Rule { .. }, Some(rule_mapping)) => rule_mapping.path_of(field),
                (Referenced::Correlation(output), _) => {
                    // Its detections hold their group under `details.group`, keys dotted paths
                    // made `_` and lowercased as normalization makes keys.
                    let (_, path) = output
                        .group
                        .iter()
                        .find(|(inner, _)| inner == field)
                        .or_else(|| {
                            output
                                .group
                                .iter()
                                .find(|(inner, _)| inner.eq_ignore_ascii_case(field))
                        })
                        .ok_or_else(|| {
                            format!(
                                "it groups by `{field}`, which correlation `{reference}` does not group by (its detections carry only their group's fields)"
                            )
                        })?;
                    FieldPath(vec![
                        "details".to_owned(),
                        "group".to_owned(),
                        path.dotted().to_lowercase().replace('.', "_"),
                    ])
                }
                (Referenced::Rule { .. }, None) => unreachable!("a rule has its mapping"),
            });
        }
        per_rule_fields.push(fields);
    }
    // The names the detections show the key under: an alias's own name; another field as the
    // first rule names it (a correlation's detections: as that correlation showed it).
    let first_mapping = mappings
        .iter()
        .flatten()
        .next()
        .cloned()
        .unwrap_or_default();
    let group_names: Vec<FieldPath> = correlation
        .group_by
        .iter()
        .enumerate()
        .map(|(position, name)| {
            if correlation.aliases.iter().any(|alias| alias.alias == *name) {
                return first_mapping.path_of(name);
            }
            match &referenced[0].1 {
                Referenced::Rule { .. } => per_rule_fields[0][position].clone(),
                Referenced::Correlation(output) => output
                    .group
                    .iter()
                    .find(|(inner, _)| inner.eq_ignore_ascii_case(name))
                    .map(|(_, path)| path.clone())
                    .unwrap_or_else(|| first_mapping.path_of(name)),
            }
        })
        .collect();
    let predicates: Vec<Predicate> = referenced
        .iter()
        .map(|(_, item)| match item {
            Referenced::Rule { predicate, .. } => predicate.clone(),
            Referenced::Correlation(output) => Predicate::And(vec![
                equals("category", "alert"),
                equals("details.rule_id", &output.rule_id),
                equals("details.state", "fired"),
            ]),
        })
        .collect();
    let mut parameters = Map::new();
    parameters.insert(
        "group_by".into(),
        Value::Array(
            group_names
                .iter()
                .map(|path| Value::String(path.dotted()))
                .collect(),
        ),
    );
    let per_rule: Vec<Value> = predicates
        .iter()
        .zip(&per_rule_fields)
        .filter(|(_, fields)| **fields != group_names)
        .map(|(predicate, fields)| {
            serde_json::json!({
                "match": isms_query::to_query_string(predicate),
                "group_by": fields.iter().map(FieldPath::dotted).collect::<Vec<_>>(),
            })
        })
        .collect();
    if !per_rule.is_empty() {
        parameters.insert("group_by_per_rule".into(), Value::Array(per_rule));
    }
    parameters.insert(
        "interval".into(),
        Value::String(format!("{}s", correlation.timespan.seconds.max(1))),
    );
    let (comparisons, condition_field, percentile) = match &correlation.condition {
        CorrelationCondition::Threshold {
            predicates,
            field,
            percentile,
        } => (predicates.as_slice(), field.as_deref(), *percentile),
        CorrelationCondition::Extended(_) => {
            return Err(
                "condition expressions (rule names with and/or) are not supported yet".into(),
            );
        }
    };
    // One comparison as compare and threshold (as a native rule writes it), several as a range.
    let counted_condition = |parameters: &mut Map<String, Value>| match comparisons {
        [(operator, count)] => {
            parameters.insert(
                "compare".into(),
                Value::String(comparison_name(*operator).into()),
            );
            parameters.insert("threshold".into(), Value::from(*count));
        }
        _ => {
            parameters.insert("condition".into(), range_of(comparisons));
        }
    };
    // The condition's field, one field, on a rule's events (a correlation's detections hold only
    // their group).
    let single_field = |what: &str| -> Result<String, String> {
        let Some(fields) = condition_field else {
            return Err(format!("{what} needs the field of its condition"));
        };
        let [field] = fields else {
            return Err(format!(
                "{what} over more than one field is not supported yet"
            ));
        };
        if referenced
            .iter()
            .any(|(_, item)| matches!(item, Referenced::Correlation(_)))
        {
            return Err(format!(
                "{what} over another correlation's detections is not supported (they carry only their group's fields)"
            ));
        }
        Ok(first_mapping.path_of(field).dotted())
    };
    let either = || -> Predicate {
        if predicates.len() == 1 {
            predicates[0].clone()
        } else {
            Predicate::Or(predicates.clone())
        }
    };
    let (kind, query) = match correlation.correlation_type {
        CorrelationType::EventCount => {
            counted_condition(&mut parameters);
            ("threshold", either())
        }
        CorrelationType::ValueCount => {
            let field = single_field("value_count")?;
            counted_condition(&mut parameters);
            parameters.insert("field".into(), Value::String(field));
            ("distinct_count", either())
        }
        CorrelationType::ValueSum
        | CorrelationType::ValueAvg
        | CorrelationType::ValueMedian
        | CorrelationType::ValuePercentile => {
            let what = correlation.correlation_type.as_str();
            let field = single_field(what)?;
            let aggregate = match correlation.correlation_type {
                CorrelationType::ValueSum => "sum",
                CorrelationType::ValueAvg => "avg",
                CorrelationType::ValueMedian => "median",
                _ => "percentile",
            };
            parameters.insert("aggregate".into(), Value::String(aggregate.into()));
            parameters.insert("field".into(), Value::String(field));
            if correlation.correlation_type == CorrelationType::ValuePercentile {
                parameters.insert("percentile".into(), Value::from(percentile.unwrap_or(50)));
            }
            parameters.insert("condition".into(), range_of(comparisons));
            ("threshold", either())
        }
        CorrelationType::Temporal | CorrelationType::TemporalOrdered => {
            if predicates.len() < 2 {
                return Err("a temporal correlation needs two or more rules".into());
            }
            // Without a condition, every rule (the specification's default, which rsigma-parser
            // writes as `gte: 1`); `gte` the number of rules says the same.
            let every_rule = matches!(
                comparisons,
                [(ConditionOperator::Gte, count)] if *count == 1 || *count == predicates.len() as u64
            );
            if !every_rule {
                return Err(
                    "a temporal condition other than all of its rules (`gte` their number) is not supported yet"
                        .into(),
                );
            }
            let steps: Vec<Value> = predicates
                .iter()
                .map(|predicate| {
                    serde_json::json!({"match": isms_query::to_query_string(predicate)})
                })
                .collect();
            parameters.insert("steps".into(), Value::Array(steps));
            parameters.insert(
                "ordered".into(),
                Value::Bool(correlation.correlation_type == CorrelationType::TemporalOrdered),
            );
            ("sequence", Predicate::All)
        }
    };
    if !correlation.generate {
        for (_, item) in referenced {
            if let Referenced::Rule { index, .. } = item {
                pending[*index].used_only_by_correlation = true;
            }
        }
    }
    let mut tags = correlation.tags.clone();
    tags.push(format!("sigma:{sigma_id}"));
    let rule_id = sigma_rule_id(sigma_id);
    let output = CorrelationOutput {
        rule_id: rule_id.clone(),
        group: correlation
            .group_by
            .iter()
            .cloned()
            .zip(group_names)
            .collect(),
    };
    Ok((
        RuleDefinition {
            id: rule_id,
            title: correlation.title.clone(),
            description: correlation.description.clone().unwrap_or_default(),
            severity: severity_of(correlation.level).to_owned(),
            enabled: true,
            tags,
            kind: kind.into(),
            query: isms_query::to_query_string(&query),
            parameters,
            message: None,
            add_to_list: None,
        },
        output,
    ))
}

/// A condition's comparisons as the kinds' `condition` parameter: `{ge: 10, le: 20}`.
fn range_of(comparisons: &[(rsigma_parser::ConditionOperator, u64)]) -> Value {
    Value::Object(
        comparisons
            .iter()
            .map(|(operator, count)| (comparison_name(*operator).to_owned(), Value::from(*count)))
            .collect(),
    )
}

/// `field` equals `value`.
fn equals(field: &str, value: &str) -> Predicate {
    Predicate::Field {
        field: FieldPath::parse_dotted(field),
        test: FieldTest::Equals(value.to_owned()),
    }
}

/// A Sigma rule's id as an isms rule id (`sigma-` and the id; ids are usually UUIDs).
pub fn sigma_rule_id(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("sigma-{cleaned}")
}

/// Sigma's level as an RFC 5424 severity name (the same table normalization uses).
fn severity_of(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Informational) => "INFO",
        Some(Level::Low) => "NOTICE",
        Some(Level::Medium) | None => "WARNING",
        Some(Level::High) => "ERROR",
        Some(Level::Critical) => "CRITICAL",
    }
}

fn compile_condition(
    condition: &ConditionExpr,
    named: &HashMap<String, Predicate>,
) -> Result<Predicate, String> {
    Ok(match condition {
        ConditionExpr::And(children) => Predicate::And(
            children
                .iter()
                .map(|child| compile_condition(child, named))
                .collect::<Result<_, _>>()?,
        ),
        ConditionExpr::Or(children) => Predicate::Or(
            children
                .iter()
                .map(|child| compile_condition(child, named))
                .collect::<Result<_, _>>()?,
        ),
        ConditionExpr::Not(child) => Predicate::Not(Box::new(compile_condition(child, named)?)),
        ConditionExpr::Identifier(name) => named.get(name).cloned().ok_or_else(|| {
            format!("the condition names `{name}`, which the detection does not define")
        })?,
        ConditionExpr::Selector {
            quantifier,
            pattern,
        } => {
            let mut names: Vec<&String> = named
                .keys()
                .filter(|name| match pattern {
                    // `them` leaves out identifiers starting with an underscore (as pySigma does).
                    SelectorPattern::Them => !name.starts_with('_'),
                    SelectorPattern::Pattern(pattern) => {
                        rsigma_parser::detection_name_matches(pattern, name)
                    }
                })
                .collect();
            names.sort();
            if names.is_empty() {
                return Err(format!(
                    "`{quantifier} of {pattern}` names no detection of the rule"
                ));
            }
            let children: Vec<Predicate> = names.iter().map(|name| named[*name].clone()).collect();
            match quantifier {
                Quantifier::Any => Predicate::Or(children),
                Quantifier::All => Predicate::And(children),
                Quantifier::Count(count) => at_least(*count as usize, children)?,
            }
        }
    })
}

/// At least `count` of `children`: an OR of the ANDs of every `count`-combination.
fn at_least(count: usize, children: Vec<Predicate>) -> Result<Predicate, String> {
    if count == 0 {
        return Ok(Predicate::All);
    }
    if count > children.len() {
        return Ok(Predicate::Or(Vec::new()));
    }
    if count == 1 {
        return Ok(Predicate::Or(children));
    }
    if count == children.len() {
        return Ok(Predicate::And(children));
    }
    let mut combinations = Vec::new();
    let mut chosen = Vec::new();
    fn choose(
        start: usize,
        count: usize,
        children: &[Predicate],
        chosen: &mut Vec<usize>,
        combinations: &mut Vec<Predicate>,
    ) -> Result<(), String> {
        if chosen.len() == count {
            if combinations.len() >= MAX_SELECTOR_COMBINATIONS {
                return Err(format!(
                    "`{count} of` over {} detections makes more than {MAX_SELECTOR_COMBINATIONS} combinations",
                    children.len()
                ));
            }
            combinations.push(Predicate::And(
                chosen
                    .iter()
                    .map(|index| children[*index].clone())
                    .collect(),
            ));
            return Ok(());
        }
        for index in start..children.len() {
            chosen.push(index);
            choose(index + 1, count, children, chosen, combinations)?;
            chosen.pop();
        }
        Ok(())
    }
    choose(0, count, &children, &mut chosen, &mut combinations)?;
    Ok(Predicate::Or(combinations))
}

fn compile_detection(
    detection: &Detection,
    mapping: &SigmaFieldMapping,
) -> Result<Predicate, String> {
    Ok(match detection {
        Detection::AllOf(items) => Predicate::And(
            items
                .iter()
                .map(|item| crate::sigma_pipeline::compile_mapped_item(item, mapping, compile_item))
                .collect::<Result<_, _>>()?,
        ),
        Detection::AnyOf(children) => Predicate::Or(
            children
                .iter()
                .map(|child| compile_detection(child, mapping))
                .collect::<Result<_, _>>()?,
        ),
        Detection::And(children) => Predicate::And(
            children
                .iter()
                .map(|child| compile_detection(child, mapping))
                .collect::<Result<_, _>>()?,
        ),
        Detection::Keywords(values) => Predicate::Or(
            values
                .iter()
                .map(|value| {
                    value_test(
                        &FieldPath::parse_dotted("summary"),
                        value,
                        &[Modifier::Contains],
                        mapping,
                    )
                })
                .collect::<Result<_, _>>()?,
        ),
        Detection::ArrayMatch { .. } | Detection::Conditional { .. } => {
            return Err("array blocks (`field[any]:`) are not supported yet".into());
        }
    })
}

fn compile_item(item: &DetectionItem, mapping: &SigmaFieldMapping) -> Result<Predicate, String> {
    let modifiers = &item.field.modifiers;
    check_modifiers(modifiers)?;
    let path = match &item.field.name {
        Some(name) => mapping.path_of(name),
        // Keywords with modifiers (`|contains` on a keyword list): searched in the summary.
        None => FieldPath::parse_dotted("summary"),
    };
    if modifiers.contains(&Modifier::Exists) {
        let wanted = match item.values.as_slice() {
            [SigmaValue::Bool(wanted)] => *wanted,
            _ => return Err("`exists` takes one value, true or false".into()),
        };
        let exists = Predicate::Field {
            field: path,
            test: FieldTest::Exists,
        };
        return Ok(if wanted {
            exists
        } else {
            Predicate::Not(Box::new(exists))
        });
    }
    if item.values.is_empty() {
        return Err(format!("`{}` has no value", field_text(item)));
    }
    let tests = item
        .values
        .iter()
        .map(|value| value_test(&path, value, modifiers, mapping))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|reason| format!("`{}`: {reason}", field_text(item)))?;
    Ok(if modifiers.contains(&Modifier::All) {
        Predicate::And(tests)
    } else if tests.len() == 1 {
        tests.into_iter().next().expect("one test")
    } else {
        Predicate::Or(tests)
    })
}

/// Refuses modifier chains that make no sense together (`|base64|re`, `|contains|startswith`,
/// `|i` without `|re`, ...), naming the pair.
fn check_modifiers(modifiers: &[Modifier]) -> Result<(), String> {
    use Modifier::*;
    let has = |modifier: Modifier| modifiers.contains(&modifier);
    let conflict = |a: Modifier, b: Modifier| {
        Err(format!(
            "the modifiers `{}` and `{}` cannot be combined",
            modifier_name(a),
            modifier_name(b)
        ))
    };
    let placement = [Contains, StartsWith, EndsWith];
    let encodings = [Base64, Base64Offset, Wide, Utf16be, Utf16, WindAsh];
    let comparisons = [Gt, Gte, Lt, Lte];
    for (index, first) in placement.iter().enumerate() {
        for second in &placement[index + 1..] {
            if has(*first) && has(*second) {
                return conflict(*first, *second);
            }
        }
    }
    if has(Base64) && has(Base64Offset) {
        return conflict(Base64, Base64Offset);
    }
    if has(Re) {
        for other in placement
            .iter()
            .chain(&encodings)
            .chain(&comparisons)
            .chain(&[Cased])
        {
            if has(*other) {
                return conflict(Re, *other);
            }
        }
    } else {
        for flag in [IgnoreCase, Multiline, DotAll] {
            if has(flag) {
                return Err(format!(
                    "the modifier `{}` is a regex flag and needs `re`",
                    modifier_name(flag)
                ));
            }
        }
    }
    for comparison in comparisons {
        if has(comparison) {
            for other in placement.iter().chain(&encodings).chain(&[Cased]) {
                if has(*other) {
                    return conflict(comparison, *other);
                }
            }
        }
    }
    // `expand` makes text (or networks, with `cidr`) of placeholders' values: a regex, a field
    // name, a number or a time part is not made of them.
    if has(Expand) {
        for other in [Re, FieldRef, Minute, Hour, Day, Week, Month, Year]
            .iter()
            .chain(&comparisons)
        {
            if has(*other) {
                return conflict(Expand, *other);
            }
        }
    }
    // Modifiers that make the value something else than text to match: a network, a field name, a
    // time component. They take `all` and `neq` only (and `cidr` takes `expand`: networks from a
    // list or a pipeline's placeholder).
    for special in [Cidr, FieldRef, Minute, Hour, Day, Week, Month, Year] {
        if !has(special) {
            continue;
        }
        for other in modifiers {
            if *other == special
                || matches!(other, All | Neq)
                || (special == Cidr && *other == Expand)
            {
                continue;
            }
            if special == FieldRef && placement.contains(other) {
                return Err(format!(
                    "`fieldref` with `{}` is not supported yet",
                    modifier_name(*other)
                ));
            }
            return conflict(special, *other);
        }
    }
    if has(Exists) && modifiers.len() > 1 {
        let other = modifiers
            .iter()
            .find(|modifier| **modifier != Exists)
            .copied()
            .unwrap_or(Exists);
        return conflict(Exists, other);
    }
    Ok(())
}

fn field_text(item: &DetectionItem) -> String {
    let mut text = item.field.name.clone().unwrap_or_default();
    for modifier in &item.field.modifiers {
        text.push('|');
        text.push_str(modifier_name(*modifier));
    }
    text
}

fn modifier_name(modifier: Modifier) -> &'static str {
    match modifier {
        Modifier::Contains => "contains",
        Modifier::StartsWith => "startswith",
        Modifier::EndsWith => "endswith",
        Modifier::All => "all",
        Modifier::Base64 => "base64",
        Modifier::Base64Offset => "base64offset",
        Modifier::Wide => "wide",
        Modifier::Utf16be => "utf16be",
        Modifier::Utf16 => "utf16",
        Modifier::WindAsh => "windash",
        Modifier::Re => "re",
        Modifier::Cidr => "cidr",
        Modifier::Cased => "cased",
        Modifier::Exists => "exists",
        Modifier::Expand => "expand",
        Modifier::FieldRef => "fieldref",
        Modifier::Gt => "gt",
        Modifier::Gte => "gte",
        Modifier::Lt => "lt",
        Modifier::Lte => "lte",
        Modifier::Neq => "neq",
        Modifier::IgnoreCase => "i",
        Modifier::Multiline => "m",
        Modifier::DotAll => "s",
        Modifier::Minute => "minute",
        Modifier::Hour => "hour",
        Modifier::Day => "day",
        Modifier::Week => "week",
        Modifier::Month => "month",
        Modifier::Year => "year",
    }
}

/// The component a time-part modifier (`hour`, `day`, ...) asks for, if any.
fn time_component_of(modifiers: &[Modifier]) -> Option<TimeComponent> {
    modifiers.iter().find_map(|modifier| match modifier {
        Modifier::Minute => Some(TimeComponent::Minute),
        Modifier::Hour => Some(TimeComponent::Hour),
        Modifier::Day => Some(TimeComponent::Day),
        Modifier::Week => Some(TimeComponent::Week),
        Modifier::Month => Some(TimeComponent::Month),
        Modifier::Year => Some(TimeComponent::Year),
        _ => None,
    })
}

/// The value as written, for errors: text as in the rule, numbers and booleans as YAML shows them.
fn value_text(value: &SigmaValue) -> String {
    match value {
        SigmaValue::String(text) => text.original.clone(),
        SigmaValue::Integer(number) => number.to_string(),
        SigmaValue::Float(number) => number.to_string(),
        SigmaValue::Bool(flag) => flag.to_string(),
        SigmaValue::Null => "null".to_owned(),
    }
}

/// `cidr`: the value as a network in canonical text (a bare address is its own network, as in
/// pySigma).
fn network_of(value: &SigmaValue) -> Result<String, String> {
    let text = match value {
        SigmaValue::String(text) => text.original.trim().to_owned(),
        other => return Err(format!("`{}` is not a network", value_text(other))),
    };
    let written = if text.contains('/') {
        text.clone()
    } else {
        match text.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(_)) => format!("{text}/32"),
            Ok(std::net::IpAddr::V6(_)) => format!("{text}/128"),
            Err(_) => text.clone(),
        }
    };
    written
        .parse::<isms_query::network::IpNetwork>()
        .map(|network| network.to_string())
        .map_err(|problem| format!("`{text}` is not a network: {problem}"))
}

/// `fieldref`: the other field's isms path.
fn referenced_field(value: &SigmaValue, mapping: &SigmaFieldMapping) -> Result<FieldPath, String> {
    let name = match value {
        SigmaValue::String(text) => text.as_plain().ok_or_else(|| {
            format!(
                "`{}`: a field reference is a field name, without wildcards",
                text.original
            )
        })?,
        SigmaValue::Integer(number) => number.to_string(),
        other => {
            return Err(format!(
                "`{}` is not a field name to refer to",
                value_text(other)
            ));
        }
    };
    if name.is_empty() {
        return Err("a field reference needs a field name".into());
    }
    Ok(mapping.path_of(&name))
}

/// A time-part modifier's value: an integer the component can take.
fn time_part_value(value: &SigmaValue, part: TimeComponent) -> Result<i64, String> {
    let number = match value {
        SigmaValue::Integer(number) => Some(*number),
        SigmaValue::String(text) => text.as_plain().and_then(|plain| plain.trim().parse().ok()),
        _ => None,
    };
    let range = part.possible_values();
    match number {
        Some(number) if range.contains(&number) => Ok(number),
        _ => Err(format!(
            "`{}` needs an integer from {} to {}, not `{}`",
            part.name(),
            range.start(),
            range.end(),
            value_text(value)
        )),
    }
}

/// The test of one value under the item's modifiers (with `expand`: any of the value's
/// alternatives, see [`expanded_alternatives`]); `neq` over the whole of it.
fn value_test(
    path: &FieldPath,
    value: &SigmaValue,
    modifiers: &[Modifier],
    mapping: &SigmaFieldMapping,
) -> Result<Predicate, String> {
    let test = match value {
        SigmaValue::String(text) if modifiers.contains(&Modifier::Expand) => {
            let mut tests = expanded_alternatives(text, modifiers, mapping)?
                .into_iter()
                .map(|alternative| {
                    unnegated_value_test(path, &SigmaValue::String(alternative), modifiers, mapping)
                })
                .collect::<Result<Vec<_>, _>>()?;
            if tests.len() == 1 {
                tests.remove(0)
            } else {
                Predicate::Or(tests)
            }
        }
        _ => unnegated_value_test(path, value, modifiers, mapping)?,
    };
    // `neq`: the field has a value and it is not this one (a missing field has no value that
    // differs); with `expand`, none of its alternatives.
    Ok(if modifiers.contains(&Modifier::Neq) {
        Predicate::And(vec![
            Predicate::Field {
                field: path.clone(),
                test: FieldTest::Exists,
            },
            Predicate::Not(Box::new(test)),
        ])
    } else {
        test
    })
}

/// The test of one value (one alternative of an expanded one) under the item's modifiers,
/// `neq` left to the caller.
fn unnegated_value_test(
    path: &FieldPath,
    value: &SigmaValue,
    modifiers: &[Modifier],
    mapping: &SigmaFieldMapping,
) -> Result<Predicate, String> {
    let field = |test: FieldTest| Predicate::Field {
        field: path.clone(),
        test,
    };
    let time_component = time_component_of(modifiers);
    let test = match value {
        _ if modifiers.contains(&Modifier::Cidr) => field(FieldTest::Cidr(network_of(value)?)),
        _ if modifiers.contains(&Modifier::FieldRef) => {
            field(FieldTest::FieldRef(referenced_field(value, mapping)?))
        }
        _ if let Some(part) = time_component => field(FieldTest::TimePart {
            part,
            value: time_part_value(value, part)?,
        }),
        SigmaValue::Null => Predicate::Not(Box::new(field(FieldTest::Exists))),
        SigmaValue::Integer(_) | SigmaValue::Float(_) if is_comparison(modifiers) => {
            let number = match value {
                SigmaValue::Integer(number) => *number as f64,
                SigmaValue::Float(number) => *number,
                _ => unreachable!("a number"),
            };
            let bound = |inclusive| {
                Some(Bound {
                    value: number,
                    inclusive,
                })
            };
            let (lower, upper) = if modifiers.contains(&Modifier::Gt) {
                (bound(false), None)
            } else if modifiers.contains(&Modifier::Gte) {
                (bound(true), None)
            } else if modifiers.contains(&Modifier::Lt) {
                (None, bound(false))
            } else {
                (None, bound(true))
            };
            field(FieldTest::Range(RangeKind::Number { lower, upper }))
        }
        SigmaValue::Integer(number) => field(FieldTest::Equals(number.to_string())),
        SigmaValue::Float(number) => field(FieldTest::Equals(Value::from(*number).to_string())),
        SigmaValue::Bool(flag) => field(FieldTest::Equals(flag.to_string())),
        SigmaValue::String(_) if is_comparison(modifiers) => {
            return Err("a comparison (gt, gte, lt, lte) needs a number".into());
        }
        SigmaValue::String(text) => string_test(path, text, modifiers)?,
    };
    Ok(test)
}

/// Most alternatives one `|expand` value may become (every combination of its placeholders'
/// values; each is a test in the rule's match, which is bounded in size).
pub const MAX_EXPANSIONS: usize = 256;

/// A stretch of a value's literal text: text, or a `%name%` placeholder.
#[derive(Debug, PartialEq)]
enum PlaceholderPiece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

/// The literal text and the `%name%` placeholders of `plain`, in order; a `%` that does not open
/// a placeholder (no closing `%`, or something else than a name between) is literal.
fn placeholder_pieces(plain: &str) -> Vec<PlaceholderPiece<'_>> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut search_from = 0;
    while let Some(offset) = plain[search_from..].find('%') {
        let open = search_from + offset;
        let Some(length) = plain[open + 1..].find('%') else {
            break;
        };
        let name = &plain[open + 1..open + 1 + length];
        if crate::sigma_pipeline::is_placeholder_name(name) {
            if open > literal_start {
                pieces.push(PlaceholderPiece::Literal(&plain[literal_start..open]));
            }
            pieces.push(PlaceholderPiece::Placeholder(name));
            literal_start = open + length + 2;
            search_from = literal_start;
        } else {
            // The closing `%` may open the next placeholder.
            search_from = open + 1;
        }
    }
    if literal_start < plain.len() {
        pieces.push(PlaceholderPiece::Literal(&plain[literal_start..]));
    }
    pieces
}

/// The names of the `%name%` placeholders of `|expand` values in the Sigma rules and filters of
/// `files`: the lists (or pipeline placeholders) their compiled rules depend on.
pub fn expand_placeholder_names(files: &[SigmaFile]) -> std::collections::BTreeSet<String> {
    fn walk(detection: &Detection, names: &mut std::collections::BTreeSet<String>) {
        match detection {
            Detection::AllOf(items) => {
                for item in items {
                    if !item.field.modifiers.contains(&Modifier::Expand) {
                        continue;
                    }
                    for value in &item.values {
                        let SigmaValue::String(text) = value else {
                            continue;
                        };
                        for part in &text.parts {
                            if let StringPart::Plain(plain) = part {
                                for piece in placeholder_pieces(plain) {
                                    if let PlaceholderPiece::Placeholder(name) = piece {
                                        names.insert(name.to_owned());
                                    }
                                }
                            }
                        }
                    }
                }
            }
            Detection::AnyOf(children) | Detection::And(children) => {
                for child in children {
                    walk(child, names);
                }
            }
            _ => {}
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for file in files {
        let detections = file
            .collection
            .rules
            .iter()
            .map(|rule| &rule.detection)
            .chain(
                file.collection
                    .filters
                    .iter()
                    .map(|filter| &filter.detection),
            );
        for detections in detections {
            for detection in detections.named.values() {
                walk(detection, &mut names);
            }
        }
    }
    names
}

/// The values placeholder `%name%` stands for: a pipeline's placeholder of the rule's log source,
/// else the named list (its entries: addresses, networks, text in lower case).
fn placeholder_values(
    name: &str,
    modifiers: &[Modifier],
    mapping: &SigmaFieldMapping,
) -> Result<Vec<String>, String> {
    if let Some(values) = mapping.pipeline_placeholder(name) {
        return Ok(values.to_vec());
    }
    let Some(list) = mapping.lists.get(name) else {
        return Err(format!(
            "placeholder %{name}% has no list or pipeline placeholder"
        ));
    };
    if modifiers.contains(&Modifier::Cased) {
        return Err(format!(
            "placeholder %{name}% is a list, whose text entries are kept in lower case: `cased` cannot be used with it"
        ));
    }
    let mut entries = list.entries();
    if modifiers.contains(&Modifier::Cidr) {
        // A list takes `10.1.0.0/8` as `10.0.0.0/8`; so does its expansion (a network written in a
        // rule with host bits is refused as a likely typo, a list's is the list's own business).
        for entry in &mut entries {
            if let Err(isms_query::network::NetworkError::HostBitsSet { network }) =
                entry.parse::<isms_query::network::IpNetwork>()
            {
                *entry = network.to_string();
            }
        }
    }
    Ok(entries)
}

/// `expand`: the value with each `%name%` placeholder replaced by each of its values, one
/// alternative per combination (at most [`MAX_EXPANSIONS`]). Placeholders' values are literal
/// text (a `*` in one is not a wildcard); the value's own wildcards are kept.
fn expanded_alternatives(
    text: &SigmaString,
    modifiers: &[Modifier],
    mapping: &SigmaFieldMapping,
) -> Result<Vec<SigmaString>, String> {
    let mut alternatives: Vec<Vec<StringPart>> = vec![Vec::new()];
    let mut expanded: Vec<String> = Vec::new();
    for part in &text.parts {
        let plain = match part {
            StringPart::Special(_) => {
                for alternative in &mut alternatives {
                    alternative.push(part.clone());
                }
                continue;
            }
            StringPart::Plain(plain) => plain,
        };
        for piece in placeholder_pieces(plain) {
            match piece {
                PlaceholderPiece::Literal(literal) => {
                    for alternative in &mut alternatives {
                        push_plain(alternative, literal);
                    }
                }
                PlaceholderPiece::Placeholder(name) => {
                    let values = placeholder_values(name, modifiers, mapping)?;
                    expanded.push(format!("%{name}%"));
                    if alternatives.len() * values.len() > MAX_EXPANSIONS {
                        return Err(format!(
                            "`{}`: {} make more than {MAX_EXPANSIONS} alternatives",
                            text.original,
                            expanded.join(", ")
                        ));
                    }
                    alternatives = alternatives
                        .iter()
                        .flat_map(|alternative| {
                            values.iter().map(move |value| {
                                let mut next = alternative.clone();
                                push_plain(&mut next, value);
                                next
                            })
                        })
                        .collect();
                }
            }
        }
    }
    Ok(alternatives
        .into_iter()
        .map(|parts| SigmaString {
            original: wildcard_text(&parts),
            parts,
        })
        .collect())
}

/// Appends literal text, joined to a literal part before it (windash looks at the character
/// before a dash, across what was a placeholder).
fn push_plain(parts: &mut Vec<StringPart>, text: &str) {
    if text.is_empty() {
        return;
    }
    match parts.last_mut() {
        Some(StringPart::Plain(previous)) => previous.push_str(text),
        _ => parts.push(StringPart::Plain(text.to_owned())),
    }
}

fn is_comparison(modifiers: &[Modifier]) -> bool {
    modifiers.iter().any(|modifier| {
        matches!(
            modifier,
            Modifier::Gt | Modifier::Gte | Modifier::Lt | Modifier::Lte
        )
    })
}

/// A string value: its encodings (windash, base64, UTF-16) as alternatives, then contains /
/// startswith / endswith, a regex, or a case-sensitive match.
fn string_test(
    path: &FieldPath,
    text: &SigmaString,
    modifiers: &[Modifier],
) -> Result<Predicate, String> {
    let field = |test: FieldTest| Predicate::Field {
        field: path.clone(),
        test,
    };
    if modifiers.contains(&Modifier::Re) {
        // Sigma's regex searches (unanchored) and is case-sensitive unless `|i`; the IR's is
        // anchored, so it is wrapped.
        let mut flags = String::new();
        if modifiers.contains(&Modifier::IgnoreCase) {
            flags.push('i');
        }
        if modifiers.contains(&Modifier::Multiline) {
            flags.push('m');
        }
        if modifiers.contains(&Modifier::DotAll) {
            flags.push('s');
        }
        let pattern = &text.original;
        // Its syntax only (the query parser builds it, within its size limit).
        regex_syntax::Parser::new()
            .parse(pattern)
            .map_err(|error| format!("invalid regex: {error}"))?;
        let flags = if flags.is_empty() {
            String::new()
        } else {
            format!("(?{flags})")
        };
        return Ok(field(FieldTest::Regex(format!(
            "(?s:.*?)(?:{flags}(?:{pattern}))(?s:.*)"
        ))));
    }
    let mut variants = vec![text.parts.clone()];
    if modifiers.contains(&Modifier::WindAsh) {
        // One value: `variants` holds only the value itself here.
        variants = windash_variants(&text.parts)?;
    }
    let encoded = modifiers.iter().any(|modifier| {
        matches!(
            modifier,
            Modifier::Wide
                | Modifier::Utf16be
                | Modifier::Utf16
                | Modifier::Base64
                | Modifier::Base64Offset
        )
    });
    if encoded {
        variants = variants
            .iter()
            .map(|parts| encode(parts, modifiers))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .flatten()
            .collect();
    }
    let contains =
        modifiers.contains(&Modifier::Contains) || modifiers.contains(&Modifier::Base64Offset);
    let starts = contains || modifiers.contains(&Modifier::EndsWith);
    let ends = contains || modifiers.contains(&Modifier::StartsWith);
    let cased = modifiers.contains(&Modifier::Cased);
    let tests: Vec<Predicate> = variants
        .into_iter()
        .map(|mut parts| {
            if starts {
                parts.insert(0, StringPart::Special(SpecialChar::WildcardMulti));
            }
            if ends {
                parts.push(StringPart::Special(SpecialChar::WildcardMulti));
            }
            if cased {
                return field(FieldTest::Regex(case_sensitive_regex(&parts)));
            }
            let plain = parts
                .iter()
                .all(|part| matches!(part, StringPart::Plain(_)));
            if plain {
                field(FieldTest::Equals(
                    parts
                        .iter()
                        .map(|part| match part {
                            StringPart::Plain(text) => text.as_str(),
                            StringPart::Special(_) => "",
                        })
                        .collect(),
                ))
            } else {
                field(FieldTest::Wildcard(wildcard_text(&parts)))
            }
        })
        .collect();
    Ok(if tests.len() == 1 {
        tests.into_iter().next().expect("one test")
    } else {
        Predicate::Or(tests)
    })
}

/// The IR's wildcard text of Sigma string parts (`*`, `?` and `\` in plain text escaped).
pub(crate) fn wildcard_text(parts: &[StringPart]) -> String {
    let mut text = String::new();
    for part in parts {
        match part {
            StringPart::Plain(plain) => {
                for c in plain.chars() {
                    if matches!(c, '*' | '?' | '\\') {
                        text.push('\\');
                    }
                    text.push(c);
                }
            }
            StringPart::Special(SpecialChar::WildcardMulti) => text.push('*'),
            StringPart::Special(SpecialChar::WildcardSingle) => text.push('?'),
        }
    }
    text
}

/// A case-sensitive, anchored regex for Sigma string parts (`|cased`).
fn case_sensitive_regex(parts: &[StringPart]) -> String {
    let mut pattern = String::from("(?s)");
    for part in parts {
        match part {
            StringPart::Plain(plain) => pattern.push_str(&regex::escape(plain)),
            StringPart::Special(SpecialChar::WildcardMulti) => pattern.push_str(".*"),
            StringPart::Special(SpecialChar::WildcardSingle) => pattern.push('.'),
        }
    }
    pattern
}

/// The dashes Windows command lines accept for an option's leading `-` (windash): `-`, `/`, the
/// en dash, the em dash and the horizontal bar.
const WINDASH_CHARACTERS: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// Most alternatives windash may produce for one value (three option dashes; each alternative is
/// a test in the rule's match, which is bounded in size).
const MAX_WINDASH_VARIANTS: usize = 125;

/// Every way of writing the value's option dashes (a `-` at the start or after a space); refused
/// when that makes more than [`MAX_WINDASH_VARIANTS`] alternatives (four dashes give 625).
fn windash_variants(parts: &[StringPart]) -> Result<Vec<Vec<StringPart>>, String> {
    let too_many = || {
        format!(
            "windash would write this value in more than {MAX_WINDASH_VARIANTS} ways (too many option dashes)"
        )
    };
    let mut variants: Vec<Vec<StringPart>> = vec![Vec::new()];
    for part in parts {
        match part {
            StringPart::Special(_) => {
                for variant in &mut variants {
                    variant.push(part.clone());
                }
            }
            StringPart::Plain(plain) => {
                let mut texts = vec![String::new()];
                let mut previous: Option<char> = None;
                for c in plain.chars() {
                    let option_dash = c == '-' && previous.is_none_or(|p| p == ' ');
                    if option_dash {
                        if texts.len() * WINDASH_CHARACTERS.len() > MAX_WINDASH_VARIANTS {
                            return Err(too_many());
                        }
                        texts = texts
                            .iter()
                            .flat_map(|text| {
                                WINDASH_CHARACTERS.iter().map(move |dash| {
                                    let mut next = text.clone();
                                    next.push(*dash);
                                    next
                                })
                            })
                            .collect();
                    } else {
                        for text in &mut texts {
                            text.push(c);
                        }
                    }
                    previous = Some(c);
                }
                if variants.len() * texts.len() > MAX_WINDASH_VARIANTS {
                    return Err(too_many());
                }
                variants = variants
                    .iter()
                    .flat_map(|variant| {
                        texts.iter().map(move |text| {
                            let mut next = variant.clone();
                            next.push(StringPart::Plain(text.clone()));
                            next
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(variants)
}

/// The value's bytes under the encodings of its modifiers (UTF-16 first, then base64), as
/// alternatives (base64offset gives the three alignments). Wildcards cannot be encoded.
fn encode(parts: &[StringPart], modifiers: &[Modifier]) -> Result<Vec<Vec<StringPart>>, String> {
    let mut plain = String::new();
    for part in parts {
        match part {
            StringPart::Plain(text) => plain.push_str(text),
            StringPart::Special(_) => {
                return Err("a value with wildcards cannot be base64 or UTF-16 encoded".into());
            }
        }
    }
    let mut bytes = plain.clone().into_bytes();
    if modifiers.contains(&Modifier::Wide) {
        bytes = plain.encode_utf16().flat_map(u16::to_le_bytes).collect();
    } else if modifiers.contains(&Modifier::Utf16be) {
        bytes = plain.encode_utf16().flat_map(u16::to_be_bytes).collect();
    } else if modifiers.contains(&Modifier::Utf16) {
        bytes = vec![0xFF, 0xFE];
        bytes.extend(plain.encode_utf16().flat_map(u16::to_le_bytes));
    }
    let texts = if modifiers.contains(&Modifier::Base64Offset) {
        base64_offsets(&bytes)
    } else if modifiers.contains(&Modifier::Base64) {
        vec![base64(&bytes)]
    } else {
        // UTF-16 without base64: the bytes as text (what a log holding them shows).
        vec![String::from_utf8_lossy(&bytes).into_owned()]
    };
    Ok(texts
        .into_iter()
        .map(|text| vec![StringPart::Plain(text)])
        .collect())
}

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let value = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                text.push(BASE64_ALPHABET[((value >> (18 - 6 * index)) & 63) as usize] as char);
            } else {
                text.push('=');
            }
        }
    }
    text
}

/// The parts of the base64 of `bytes` that stay the same whatever precedes them (the value at
/// offsets 0, 1 and 2 of a 3-byte group), as Sigma's base64offset defines them.
fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    const START_TRIM: [usize; 3] = [0, 2, 3];
    const END_TRIM: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|shift| {
            let mut shifted = vec![b' '; shift];
            shifted.extend_from_slice(bytes);
            let encoded = base64(&shifted);
            let end = (bytes.len() + shift) % 3;
            let text = &encoded[START_TRIM[shift]..encoded.len() - END_TRIM[end]];
            text.to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_names_between_percent_signs_and_other_percents_are_text() {
        use PlaceholderPiece::{Literal, Placeholder};
        assert_eq!(
            placeholder_pieces(r"C:\Users\%user%\x"),
            [Literal(r"C:\Users\"), Placeholder("user"), Literal(r"\x")]
        );
        assert_eq!(
            placeholder_pieces("%a%%b.c-d%"),
            [Placeholder("a"), Placeholder("b.c-d")]
        );
        assert_eq!(placeholder_pieces("100% sure"), [Literal("100% sure")]);
        assert_eq!(
            placeholder_pieces("50% or %more%"),
            [Literal("50% or "), Placeholder("more")]
        );
        assert_eq!(
            placeholder_pieces("%not a name%x%"),
            [Literal("%not a name"), Placeholder("x")]
        );
        assert_eq!(placeholder_pieces("%%"), [Literal("%%")]);
    }
}
