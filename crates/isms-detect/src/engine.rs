//! The streaming engine: events in, detections out, windows on event time.
//!
//! # Time
//!
//! Windows are on event time (`utctimestamp`). The engine's *watermark* is the newest event time it
//! has seen minus the allowed lateness: an event older than the watermark by more than a rule's
//! interval cannot change any window still open and is counted as late instead
//! (`isms_detect_late_events_total`). Timers (a threshold's count falling back, a silent key of an
//! absence rule) run when the watermark passes them, in sweeps every eighth of the rule's interval,
//! so in a replay they follow the data, not the wall clock. Absence also has a clock timer,
//! [`Engine::tick`]: when nothing arrives at all the watermark stands still, and a silent key must
//! still fire.
//!
//! # Entities
//!
//! State is keyed by rule and group key (the values of the rule's `group_by` fields, in order, or
//! of the fields of the first `group_by_per_rule` entry the event matches: events of different
//! sources naming one thing differently). A threshold entity keeps the times of its newest
//! `largest bound + 1` events, which is all a comparison with the condition's bounds needs, so its
//! memory does not grow with the rate; one aggregating a field (sum, avg, median, percentile)
//! keeps the window's numbers, at most [`MAX_AGGREGATED_VALUES`] (the newest).
//!
//! A condition is one comparison or several (a range, `{ge: 10, le: 20}`): an entity fires when
//! its window's value starts satisfying all of them, takes further events while it does, and
//! clears when it no longer does, on an event (a count past the range) or in a sweep (events
//! leaving the window, the clearing dated when the one that made the difference left). Each rule tracks at most
//! `max_entities` keys; past that the least recently seen tenth is evicted and counted
//! (`isms_detect_evictions_total`).
//!
//! # Chains
//!
//! Each detection becomes an event ([`Detection::to_event`]) that goes through every other rule, one
//! level deeper (never through the rule that made it). Past [`EngineOptions::max_chain_depth`] it is not fed back, and that is logged:
//! a rule matching its own detections would otherwise loop.
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use isms_event::Event;
use isms_query::FieldPath;
use isms_query::ir::{for_each_scalar, for_each_scalar_of, render_scalar};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::detection::{Detection, DetectionState, MAX_RELATED_EVENTS};
use crate::duration::format_duration;
use crate::lists::Lists;
use crate::parameters::{
    AbsenceConfig, Aggregate, DistinctCountConfig, FirstSeenConfig, KindConfig, ListConfig,
    RuleGroup, SequenceConfig, ThresholdConfig, ValueCondition,
};
use crate::prefilter::EventPrefilter;
use crate::rule::Rule;
use crate::template::MessageValues;

type Hasher = foldhash::fast::RandomState;
type KeyMap<T> = HashMap<String, T, Hasher>;

/// Most numbers a threshold rule with an aggregate keeps per group key: the window's newest.
pub const MAX_AGGREGATED_VALUES: usize = 10_000;

/// Separates the values of a group key inside the engine's map keys.
const KEY_SEPARATOR: char = '\u{1f}';

/// How the engine treats time and chains.
#[derive(Debug, Clone, Copy)]
pub struct EngineOptions {
    /// How far behind the newest event an event may arrive and still count in its windows; timers
    /// wait this long before they act.
    pub allowed_lateness_micros: i64,
    /// Most times a detection is fed back as an event (a detection of a detection of ...).
    pub max_chain_depth: u32,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            allowed_lateness_micros: 30_000_000,
            max_chain_depth: 5,
        }
    }
}

/// What the engine has done so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct EngineStatistics {
    /// Events processed, detections fed back included.
    pub events: u64,
    pub detections: u64,
    pub late_events: u64,
    pub evictions: u64,
    /// Detections not fed back because of the chain depth limit.
    pub chain_stops: u64,
}

/// A rule's state at a glance, as seed 003 shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleColour {
    /// No entity tracked.
    Gray,
    /// Entities tracked, none active.
    Green,
    /// At least one entity active (fired and not cleared).
    Red,
}

/// One rule's state.
#[derive(Debug, Clone, Serialize)]
pub struct RuleStatus {
    pub rule_id: String,
    pub colour: RuleColour,
    pub tracked: usize,
    pub active: usize,
    pub matched_events: u64,
    pub detections: u64,
}

/// Which rules an event can match at all, so that an event meets only the rules that could match
/// it rather than all of them (500 rules, each a predicate of a few tests, cost 50 µs an event).
///
/// From each rule's match comes a set of *alternatives*, one of which every matching event must
/// hold: an equality (`hostname: web7`: that value in that field) or a literal (`CommandLine:
/// *whoami*`: that text somewhere in that field's value, any case). An AND takes the best of its
/// children's sets (a single equality the fewest rules share, as a host or user name rather than
/// `category:authentication`; else the fewest, longest literals); an OR needs every child to have a
/// set and takes them all. Each rule is filed under its alternatives: equalities in a table per
/// field, literals in one Aho-Corasick automaton per field (Sigma's `contains`, `endswith` and
/// keyword rules; a regex gives the literals every text it matches holds, read from its syntax
/// tree). An event looks up its own values of the filed fields and meets only those rules
/// and the ones with no alternatives. The full match still decides: filing only skips rules that
/// cannot match, so answers are the same (a property test holds it to every rule's own match).
#[derive(Debug, Default)]
struct Dispatch {
    /// Rules tried on every event.
    always: Vec<usize>,
    /// Per field, per value (ASCII lowercase, as equality compares), the rules filed under it.
    by_field: Vec<(FieldPath, isms_query::PathId, RulesByValue)>,
    /// Per field, the literals rules need in its value, and the rules of each literal.
    by_literal: Vec<LiteralIndex>,
    /// Whether some rule could match a detection's event: when none can, detections are not made
    /// into events to be fed back (most of a detection's cost when many rules match).
    takes_detections: bool,
}

/// The rules filed under each value of one field.
type RulesByValue = HashMap<String, Vec<usize>, Hasher>;

/// The literals of one field's rules, found in a value in one pass.
#[derive(Debug)]
struct LiteralIndex {
    field: FieldPath,
    field_id: isms_query::PathId,
    automaton: aho_corasick::AhoCorasick,
    /// The rules of each literal (by pattern index).
    rules: Vec<Vec<usize>>,
}

/// A literal and the rules filed under it, while the dispatch is built.
type LiteralRules = (String, Vec<usize>);

/// Files rule `index` under `value` of `field` (equalities and literals alike).
fn file_under(
    tables: &mut Vec<(FieldPath, isms_query::PathId, RulesByValue)>,
    field: FieldPath,
    value: String,
    index: usize,
) {
    let position = match tables.iter().position(|(known, _, _)| *known == field) {
        Some(position) => position,
        None => {
            let id = isms_query::path_id(&field);
            tables.push((field, id, HashMap::default()));
            tables.len() - 1
        }
    };
    tables[position].2.entry(value).or_default().push(index);
}

/// One way a matching event must look.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Alternative {
    /// The field holds this value (ASCII lowercase).
    Equals(FieldPath, String),
    /// The field's value holds this text (ASCII lowercase).
    Contains(FieldPath, String),
}

/// Literals shorter than this narrow too little to be worth a look in every event.
const MIN_LITERAL_BYTES: usize = 3;

impl Dispatch {
    fn build(rules: &[RuleRuntime]) -> Dispatch {
        let sets: Vec<Vec<Vec<Alternative>>> = rules
            .iter()
            .map(|runtime| candidate_sets(&runtime.rule.ir, MIN_LITERAL_BYTES))
            .collect();
        // How many rules could be filed under each alternative, to file a rule under its rarest.
        let mut shared: HashMap<Alternative, usize, Hasher> = HashMap::default();
        for rule_sets in &sets {
            for alternative in rule_sets.iter().flatten() {
                *shared.entry(alternative.clone()).or_default() += 1;
            }
        }
        let required: Vec<Option<Vec<Alternative>>> = sets
            .into_iter()
            .map(|rule_sets| {
                rule_sets.into_iter().min_by_key(|set| {
                    let sharing: usize = set
                        .iter()
                        .map(|alternative| shared.get(alternative).copied().unwrap_or(0))
                        .sum();
                    (set_cost(set), sharing)
                })
            })
            .collect();
        let mut dispatch = Dispatch::default();
        let mut literals: Vec<(FieldPath, isms_query::PathId, RulesByValue)> = Vec::new();
        // A detection's event copies its group's fields (see `Detection::to_event`).
        let group_fields: Vec<&FieldPath> = rules
            .iter()
            .flat_map(|runtime| runtime.rule.kind.group_by())
            .collect();
        for (index, alternatives) in required.into_iter().enumerate() {
            if matches!(rules[index].rule.kind, KindConfig::Scheduled(_)) {
                // Not run per event at all.
                continue;
            }
            dispatch.takes_detections |=
                detection_could_match(&rules[index].rule.ir, &group_fields);
            let Some(alternatives) = alternatives else {
                dispatch.always.push(index);
                continue;
            };
            for alternative in alternatives {
                match alternative {
                    Alternative::Equals(field, value) => {
                        file_under(&mut dispatch.by_field, field, value, index)
                    }
                    Alternative::Contains(field, literal) => {
                        file_under(&mut literals, field, literal, index)
                    }
                }
            }
        }
        for (field, field_id, patterns) in literals {
            let patterns: Vec<LiteralRules> = patterns.into_iter().collect();
            let automaton = aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .build(patterns.iter().map(|(literal, _)| literal.as_bytes()));
            match automaton {
                Ok(automaton) => dispatch.by_literal.push(LiteralIndex {
                    field_id,
                    field,
                    automaton,
                    rules: patterns.into_iter().map(|(_, rules)| rules).collect(),
                }),
                // Cannot happen for these sizes; the rules are then simply tried on every event.
                Err(_) => {
                    for (_, rules) in patterns {
                        dispatch.always.extend(rules);
                    }
                }
            }
        }
        dispatch.always.sort_unstable();
        dispatch.always.dedup();
        dispatch
    }

    /// The rules the event of `lookups` can match, in rule order, into `candidates` (reused
    /// between events); the fields are looked up through `lookups`, which the rules then share.
    fn candidates(&self, lookups: &mut isms_query::FieldLookups<'_>, candidates: &mut Vec<usize>) {
        candidates.clear();
        candidates.extend_from_slice(&self.always);
        let mut lowered = String::new();
        for (field, id, by_value) in &self.by_field {
            let Some(found) = lookups.value(field, *id) else {
                continue;
            };
            for_each_scalar_of(found, |value| {
                if let Some(text) = render_scalar(value) {
                    lowered.clear();
                    lowered.push_str(&text);
                    lowered.make_ascii_lowercase();
                    if let Some(rules) = by_value.get(lowered.as_str()) {
                        candidates.extend_from_slice(rules);
                    }
                }
            });
        }
        for index in &self.by_literal {
            let Some(found) = lookups.value(&index.field, index.field_id) else {
                continue;
            };
            for_each_scalar_of(found, |value| {
                if let Some(text) = render_scalar(value) {
                    for found in index.automaton.find_overlapping_iter(text.as_bytes()) {
                        candidates.extend_from_slice(&index.rules[found.pattern().as_usize()]);
                    }
                }
            });
        }
        candidates.sort_unstable();
        candidates.dedup();
    }
}

/// Whether a detection's event (`Detection::to_event`) could match `predicate`: false when it
/// needs a field such events never have (their fixed fields, their own `details`, the group fields
/// of any rule) or a value other than the fixed one of `category`, `source` or `processname`.
fn detection_could_match(predicate: &isms_query::Predicate, group_fields: &[&FieldPath]) -> bool {
    use isms_query::{FieldTest, Predicate};
    match predicate {
        Predicate::All | Predicate::Not(_) | Predicate::Text(_) => true,
        Predicate::And(children) => children
            .iter()
            .all(|child| detection_could_match(child, group_fields)),
        Predicate::Or(children) => children
            .iter()
            .any(|child| detection_could_match(child, group_fields)),
        Predicate::Field { field, test } => {
            let fixed_value = match field.0.as_slice() {
                [name] if name == "category" => Some("alert"),
                [name] if name == "source" || name == "processname" => Some("isms-detect"),
                _ => None,
            };
            if let (Some(fixed), FieldTest::Equals(value)) = (fixed_value, test) {
                return fixed.eq_ignore_ascii_case(value);
            }
            let segments: Vec<&str> = field.0.iter().map(String::as_str).collect();
            match segments.as_slice() {
                ["details", name, ..] => {
                    matches!(
                        *name,
                        "rule_id"
                            | "rule_title"
                            | "kind"
                            | "state"
                            | "group"
                            | "count"
                            | "related_event_ids"
                            | "related_events_more"
                            | "depth"
                            | "clears"
                            | "first_event_time"
                            | "last_event_time"
                    ) || group_fields.contains(&field)
                }
                [
                    "details" | "category" | "source" | "processname" | "severity" | "summary"
                    | "tags" | "hostname" | "id" | "utctimestamp" | "receivedtimestamp" | "origin",
                    ..,
                ] => true,
                _ => false,
            }
        }
    }
}

/// Most literals a regex may be filed under (an alternation of many words narrows little).
const MAX_REGEX_LITERALS: usize = 16;

/// Literals (ASCII lowercase) one of which is in every text the regex matches, read from its
/// syntax tree: a literal run of a concatenation, each branch of an alternation, the inside of a
/// group or of a repetition done at least once. `None` when no such set is known or one of its
/// literals is too short to narrow.
fn regex_required_literals(pattern: &str, min_literal: usize) -> Option<Vec<String>> {
    let hir = regex_syntax::Parser::new().parse(pattern).ok()?;
    let literals = required_literals(&hir)?;
    (literals.len() <= MAX_REGEX_LITERALS
        && literals
            .iter()
            .all(|literal| literal.len() >= min_literal.max(1)))
    .then_some(literals)
}

fn required_literals(hir: &regex_syntax::hir::Hir) -> Option<Vec<String>> {
    use regex_syntax::hir::HirKind;
    // The set whose shortest literal is longest narrows most.
    fn better(candidate: &[String], best: &Option<Vec<String>>) -> bool {
        let shortest = |set: &[String]| set.iter().map(String::len).min().unwrap_or(0);
        match best {
            None => shortest(candidate) > 0,
            Some(best) => shortest(candidate) > shortest(best),
        }
    }
    match hir.kind() {
        HirKind::Capture(capture) => required_literals(&capture.sub),
        HirKind::Repetition(repetition) if repetition.min >= 1 => {
            required_literals(&repetition.sub)
        }
        HirKind::Concat(children) => {
            let mut best: Option<Vec<String>> = None;
            let mut run = String::new();
            for child in children {
                if let Some(text) = literal_text(child) {
                    run.push_str(&text);
                    continue;
                }
                if better(std::slice::from_ref(&run), &best) {
                    best = Some(vec![std::mem::take(&mut run)]);
                }
                run.clear();
                if let Some(set) = required_literals(child)
                    && better(&set, &best)
                {
                    best = Some(set);
                }
            }
            if better(std::slice::from_ref(&run), &best) {
                best = Some(vec![run]);
            }
            best
        }
        HirKind::Alternation(children) => {
            let mut union: Vec<String> = Vec::new();
            for child in children {
                for literal in required_literals(child)? {
                    if !union.contains(&literal) {
                        union.push(literal);
                    }
                }
            }
            Some(union)
        }
        _ => literal_text(hir).map(|text| vec![text]),
    }
}

/// The text of a literal (ASCII lowercase), or of a class of one character or of one ASCII
/// letter in both cases (what `(?i)` makes of a letter).
fn literal_text(hir: &regex_syntax::hir::Hir) -> Option<String> {
    use regex_syntax::hir::{Class, HirKind};
    match hir.kind() {
        HirKind::Literal(literal) => std::str::from_utf8(&literal.0)
            .ok()
            .map(str::to_ascii_lowercase),
        HirKind::Class(Class::Unicode(class)) => {
            let characters: Vec<char> = class
                .ranges()
                .iter()
                .flat_map(|range| {
                    // A range of more than two characters is no single letter.
                    if (range.end() as u32).saturating_sub(range.start() as u32) > 1 {
                        vec!['\0', '\0', '\0']
                    } else {
                        (range.start()..=range.end()).collect()
                    }
                })
                .take(3)
                .collect();
            match characters.as_slice() {
                [single] => Some(single.to_ascii_lowercase().to_string()),
                [first, second]
                    if first.is_ascii_alphabetic() && first.eq_ignore_ascii_case(second) =>
                {
                    Some(first.to_ascii_lowercase().to_string())
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// Sets of alternatives every match of `predicate` holds one of (see [`Dispatch`]), each set
/// enough on its own: an AND offers each child's sets, an OR one set made of a set of every child
/// (none when a child has none). Empty when the rule must be tried on every event.
fn candidate_sets(predicate: &isms_query::Predicate, min_literal: usize) -> Vec<Vec<Alternative>> {
    use isms_query::{FieldTest, Predicate};
    match predicate {
        // Time fields compare instants, not text.
        Predicate::Field { field, .. } if field.is_time_field() => Vec::new(),
        Predicate::Field {
            field,
            test: FieldTest::Equals(value),
        } => vec![vec![Alternative::Equals(
            field.clone(),
            value.to_ascii_lowercase(),
        )]],
        Predicate::Field {
            field,
            test: FieldTest::Wildcard(pattern),
        } => longest_literal(pattern)
            .filter(|literal| literal.len() >= min_literal.max(1))
            .map(|literal| vec![vec![Alternative::Contains(field.clone(), literal)]])
            .unwrap_or_default(),
        Predicate::Field {
            field,
            test: FieldTest::Regex(pattern),
        } => regex_required_literals(pattern, min_literal)
            .map(|literals| {
                vec![
                    literals
                        .into_iter()
                        .map(|literal| Alternative::Contains(field.clone(), literal))
                        .collect(),
                ]
            })
            .unwrap_or_default(),
        Predicate::And(children) => children
            .iter()
            .flat_map(|child| candidate_sets(child, min_literal))
            .collect(),
        Predicate::Or(children) if !children.is_empty() => {
            let mut union = Vec::new();
            for child in children {
                let Some(best) = candidate_sets(child, min_literal)
                    .into_iter()
                    .min_by_key(|set| set_cost(set))
                else {
                    return Vec::new();
                };
                for alternative in best {
                    if !union.contains(&alternative) {
                        union.push(alternative);
                    }
                }
            }
            vec![union]
        }
        _ => Vec::new(),
    }
}

/// How much a set of alternatives lets through, roughly: an equality little, a literal more (the
/// shorter the more), each alternative adding its own.
fn set_cost(set: &[Alternative]) -> usize {
    set.iter()
        .map(|alternative| match alternative {
            Alternative::Equals(..) => 1,
            Alternative::Contains(_, literal) => 1 + 64 / literal.len().max(1),
        })
        .sum()
}

/// The longest run of literal text in a wildcard pattern (`\*`, `\?`, `\\` are literal),
/// ASCII-lowercased; `None` when the pattern is all wildcards.
fn longest_literal(pattern: &str) -> Option<String> {
    let mut best = String::new();
    let mut current = String::new();
    let mut characters = pattern.chars();
    while let Some(c) = characters.next() {
        match c {
            '\\' => match characters.next() {
                Some(escaped) => current.push(escaped),
                None => current.push('\\'),
            },
            '*' | '?' => {
                if current.len() > best.len() {
                    best = std::mem::take(&mut current);
                } else {
                    current.clear();
                }
            }
            other => current.push(other),
        }
    }
    if current.len() > best.len() {
        best = current;
    }
    best.make_ascii_lowercase();
    (!best.is_empty()).then_some(best)
}

/// What a rule's state depends on: a state saved under another kind, match or parameters is not
/// taken up.
fn fingerprint(rule: &Rule) -> String {
    format!(
        "{}\u{1f}{}\u{1f}{}",
        rule.definition.kind,
        rule.definition.query,
        Value::Object(rule.definition.parameters.clone())
    )
}

#[derive(Serialize)]
struct SnapshotView<'a> {
    newest_event: Option<i64>,
    clock: u64,
    rules: Vec<RuleSnapshotView<'a>>,
}

#[derive(Serialize)]
struct RuleSnapshotView<'a> {
    id: &'a str,
    fingerprint: String,
    state: &'a State,
    matched: u64,
    detections: u64,
}

#[derive(Deserialize)]
struct SnapshotOwned {
    newest_event: Option<i64>,
    clock: u64,
    rules: Vec<RuleSnapshotOwned>,
}

#[derive(Deserialize)]
struct RuleSnapshotOwned {
    id: String,
    fingerprint: String,
    state: State,
    matched: u64,
    detections: u64,
}

/// The open detection of an active entity.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Active {
    id: String,
    count: u64,
    related: Vec<String>,
    more: u64,
    first: i64,
    last: i64,
    /// The event that made it fire, for the fields of the cleared detection's message.
    #[serde(default)]
    document: Option<Map<String, Value>>,
}

impl Active {
    fn attach(&mut self, time: i64, id: &str) {
        self.count += 1;
        if self.related.len() < MAX_RELATED_EVENTS {
            self.related.push(id.to_owned());
        } else {
            self.more += 1;
        }
        self.first = self.first.min(time);
        self.last = self.last.max(time);
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct CountingEntity {
    /// Threshold: the newest events, oldest first, at most threshold + 1. Distinct count: the newest
    /// events for the related list, at most [`MAX_RELATED_EVENTS`].
    events: VecDeque<(i64, String)>,
    /// Distinct count: each value's newest time.
    values: HashMap<String, i64, Hasher>,
    /// Threshold with an aggregate (sum, avg, ...): the window's numbers with their times, oldest
    /// first, at most [`MAX_AGGREGATED_VALUES`] (the newest).
    #[serde(default, skip_serializing_if = "VecDeque::is_empty")]
    amounts: VecDeque<(i64, f64)>,
    /// Boxed: most tracked entities are not active, and an inline one costs every entity its size.
    active: Option<Box<Active>>,
    touched: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SequenceEntity {
    /// Per step, its matching events, oldest first.
    steps: Vec<VecDeque<(i64, String)>>,
    touched: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct AbsenceEntity {
    last_event: i64,
    last_received: i64,
    /// The last event heard, for the related list.
    last_event_id: Option<String>,
    absent: Option<Box<Active>>,
    touched: u64,
    /// The key's own interval, from `interval_field` of its latest event that had one.
    #[serde(default)]
    interval_micros: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct FirstSeenState {
    first_event: Option<i64>,
    keys: KeyMap<KeyMap<i64>>,
    touched: KeyMap<u64>,
}

#[derive(Debug, Serialize, Deserialize)]
enum State {
    Stateless,
    Counting(KeyMap<CountingEntity>),
    Sequence(KeyMap<SequenceEntity>),
    Absence(KeyMap<AbsenceEntity>),
    FirstSeen(FirstSeenState),
}

impl State {
    fn for_kind(kind: &KindConfig) -> State {
        match kind {
            KindConfig::Match | KindConfig::List(_) | KindConfig::Scheduled(_) => State::Stateless,
            KindConfig::Threshold(_) | KindConfig::DistinctCount(_) => {
                State::Counting(KeyMap::default())
            }
            KindConfig::Sequence(_) => State::Sequence(KeyMap::default()),
            KindConfig::Absence(_) => State::Absence(KeyMap::default()),
            KindConfig::FirstSeen(_) => State::FirstSeen(FirstSeenState::default()),
        }
    }
}

struct RuleRuntime {
    rule: Rule,
    state: State,
    next_sweep: i64,
    matched: u64,
    detections: u64,
    /// `isms_detect_detections_total` of this rule, looked up once (a lookup per detection, with
    /// its label made each time, was a tenth of a detection's cost).
    detections_counter: metrics::Counter,
}

/// A detection about to be emitted, before it has its event and id.
struct Pending<'event> {
    rule: usize,
    state: DetectionState,
    clears: Option<String>,
    key: String,
    count: u64,
    related: Vec<String>,
    more: u64,
    first: Option<i64>,
    last: Option<i64>,
    detected: i64,
    /// The event that made it, for the message's fields and the list to add to: borrowed while
    /// the event is at hand (a copy of every matched event was most of a match's cost).
    event: Option<Cow<'event, Map<String, Value>>>,
    depth: u32,
    /// Where the id of the emitted detection goes: the entity's active state.
    activate: bool,
}

/// Detections to feed back to the rules: their place in the list of detections being made, and
/// their depth.
type ChainQueue = VecDeque<(usize, u32)>;

/// The streaming detection engine.
pub struct Engine {
    rules: Vec<RuleRuntime>,
    lists: Lists,
    options: EngineOptions,
    newest_event: Option<i64>,
    statistics: EngineStatistics,
    clock: u64,
    /// Values rules added to lists since [`Engine::take_list_additions`] was last called.
    list_additions: Vec<(String, String)>,
    /// Which rules an event can match at all.
    dispatch: Dispatch,
    /// The rules the event at hand can match (kept to spare an allocation per event).
    candidates: Vec<usize>,
    /// The earliest watermark at which some rule's timers are due.
    next_sweep: i64,
}

impl Engine {
    pub fn new(rules: Vec<Rule>, lists: Lists, options: EngineOptions) -> Engine {
        let mut engine = Engine {
            rules: Vec::new(),
            lists,
            options,
            newest_event: None,
            statistics: EngineStatistics::default(),
            clock: 0,
            list_additions: Vec::new(),
            dispatch: Dispatch::default(),
            candidates: Vec::new(),
            next_sweep: i64::MIN,
        };
        engine.set_rules(rules);
        engine
    }

    /// Replaces the rules. A rule whose id, kind, match and parameters are unchanged keeps its
    /// state (a new title or message does not forget who is active); any other starts afresh.
    /// Disabled rules are dropped.
    pub fn set_rules(&mut self, rules: Vec<Rule>) {
        let mut previous: HashMap<String, RuleRuntime> = self
            .rules
            .drain(..)
            .map(|runtime| (runtime.rule.id().to_owned(), runtime))
            .collect();
        for rule in rules {
            if !rule.definition.enabled {
                continue;
            }
            let kept = previous.remove(rule.id()).filter(|old| {
                old.rule.definition.kind == rule.definition.kind
                    && old.rule.definition.query == rule.definition.query
                    && old.rule.definition.parameters == rule.definition.parameters
            });
            let runtime = match kept {
                Some(old) => RuleRuntime { rule, ..old },
                None => RuleRuntime {
                    state: State::for_kind(&rule.kind),
                    detections_counter: metrics::counter!("isms_detect_detections_total", "rule" => rule.id().to_owned()),
                    rule,
                    next_sweep: i64::MIN,
                    matched: 0,
                    detections: 0,
                },
            };
            self.rules.push(runtime);
        }
        self.dispatch = Dispatch::build(&self.rules);
        self.next_sweep = i64::MIN;
    }

    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.iter().map(|runtime| &runtime.rule)
    }

    pub fn lists(&self) -> &Lists {
        &self.lists
    }

    pub fn lists_mut(&mut self) -> &mut Lists {
        &mut self.lists
    }

    /// The values rules added to lists since the last call (a server writes them to the lists'
    /// files, so they last).
    pub fn take_list_additions(&mut self) -> Vec<(String, String)> {
        std::mem::take(&mut self.list_additions)
    }

    /// Replaces the lists (a server reloading its lists directory).
    pub fn set_lists(&mut self, lists: Lists) {
        self.lists = lists;
    }

    pub fn statistics(&self) -> &EngineStatistics {
        &self.statistics
    }

    /// The newest event time minus the allowed lateness.
    pub fn watermark(&self) -> Option<i64> {
        self.newest_event
            .map(|newest| newest.saturating_sub(self.options.allowed_lateness_micros))
    }

    /// Writes the engine's state (every rule's windows, active entities, first-seen history, and
    /// the newest event time) as JSON, so that [`Engine::restore`] can take it up after a restart.
    pub fn write_snapshot(&self, writer: impl std::io::Write) -> Result<(), serde_json::Error> {
        let view = SnapshotView {
            newest_event: self.newest_event,
            clock: self.clock,
            rules: self
                .rules
                .iter()
                .map(|runtime| RuleSnapshotView {
                    id: runtime.rule.id(),
                    fingerprint: fingerprint(&runtime.rule),
                    state: &runtime.state,
                    matched: runtime.matched,
                    detections: runtime.detections,
                })
                .collect(),
        };
        serde_json::to_writer(writer, &view)
    }

    /// Takes up a state written by [`Engine::write_snapshot`]: each rule whose id, kind, match and
    /// parameters are unchanged gets its state back; the others start afresh. Returns how many
    /// rules got their state back.
    pub fn restore(&mut self, reader: impl std::io::Read) -> Result<usize, serde_json::Error> {
        let snapshot: SnapshotOwned = serde_json::from_reader(reader)?;
        self.newest_event = match (self.newest_event, snapshot.newest_event) {
            (Some(current), Some(saved)) => Some(current.max(saved)),
            (current, saved) => current.or(saved),
        };
        self.clock = self.clock.max(snapshot.clock);
        self.next_sweep = i64::MIN;
        let mut restored = 0;
        for saved in snapshot.rules {
            if let Some(runtime) = self
                .rules
                .iter_mut()
                .find(|runtime| runtime.rule.id() == saved.id)
                && fingerprint(&runtime.rule) == saved.fingerprint
            {
                runtime.state = saved.state;
                runtime.matched = saved.matched;
                runtime.detections = saved.detections;
                runtime.next_sweep = i64::MIN;
                restored += 1;
            }
        }
        Ok(restored)
    }

    /// The scheduled rules: id, query and schedule, for whoever runs them over a store.
    pub fn scheduled_rules(&self) -> Vec<(String, String, crate::parameters::ScheduledConfig)> {
        self.rules
            .iter()
            .filter_map(|runtime| match &runtime.rule.kind {
                KindConfig::Scheduled(config) => Some((
                    runtime.rule.id().to_owned(),
                    runtime.rule.definition.query.clone(),
                    config.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    /// What one run of a scheduled rule counted: `counts` holds the group value (empty without
    /// group_by) and its count; each that satisfies the rule's comparison becomes a detection at
    /// `detected_micros`, fed to the other rules like any other. Unknown rules give nothing.
    pub fn scheduled_result(
        &mut self,
        rule_id: &str,
        counts: &[(String, u64)],
        detected_micros: i64,
    ) -> Vec<Detection> {
        let Some(index) = self
            .rules
            .iter()
            .position(|runtime| runtime.rule.id() == rule_id)
        else {
            return Vec::new();
        };
        let KindConfig::Scheduled(config) = &self.rules[index].rule.kind else {
            return Vec::new();
        };
        let pending: Vec<Pending> = counts
            .iter()
            .filter(|(_, count)| config.compare.holds(*count, config.threshold))
            .map(|(key, count)| Pending {
                rule: index,
                state: DetectionState::Fired,
                clears: None,
                key: key.replace(KEY_SEPARATOR, " "),
                count: *count,
                related: Vec::new(),
                more: 0,
                first: None,
                last: None,
                detected: detected_micros,
                event: None,
                depth: 0,
                activate: false,
            })
            .collect();
        self.rules[index].matched += counts.iter().map(|(_, count)| count).sum::<u64>();
        let mut detections = Vec::new();
        let mut queue = VecDeque::new();
        for item in pending {
            self.emit(item, &mut detections, &mut queue, None);
        }
        self.run_chains(&mut detections, &mut queue);
        detections
    }

    /// Every rule's state.
    pub fn statuses(&self) -> Vec<RuleStatus> {
        self.rules
            .iter()
            .map(|runtime| {
                let (tracked, active) = match &runtime.state {
                    State::Stateless => (0, 0),
                    State::Counting(entities) => (
                        entities.len(),
                        entities
                            .values()
                            .filter(|entity| entity.active.is_some())
                            .count(),
                    ),
                    State::Sequence(entities) => (entities.len(), 0),
                    State::Absence(entities) => (
                        entities.len(),
                        entities
                            .values()
                            .filter(|entity| entity.absent.is_some())
                            .count(),
                    ),
                    State::FirstSeen(state) => (state.keys.len(), 0),
                };
                RuleStatus {
                    rule_id: runtime.rule.id().to_owned(),
                    colour: if tracked == 0 {
                        RuleColour::Gray
                    } else if active > 0 {
                        RuleColour::Red
                    } else {
                        RuleColour::Green
                    },
                    tracked,
                    active,
                    matched_events: runtime.matched,
                    detections: runtime.detections,
                }
            })
            .collect()
    }

    /// A test that rules out incoming events no rule can match ([`EventPrefilter`]), when every rule
    /// is a `match` rule filed under values or literals of fields events carry as sent; `None`
    /// when some rule must see every event (a window, a timer, a rule with nothing to file it
    /// under).
    pub fn event_prefilter(&self) -> Option<EventPrefilter> {
        if self
            .rules
            .iter()
            .any(|runtime| !matches!(runtime.rule.kind, KindConfig::Match))
        {
            return None;
        }
        let sets: Vec<Vec<Vec<Alternative>>> = self
            .rules
            .iter()
            .map(|runtime| candidate_sets(&runtime.rule.ir, 1))
            .collect();
        EventPrefilter::new(&sets)
    }

    /// A copy of this engine to run events on another thread beside it, when no rule keeps state
    /// from one event to the next (every rule a `match` or `list` rule that adds nothing to a
    /// list): an event's detections, those of the chains it starts included, are then the same
    /// whichever copy runs it, so a replay can run its events on every core. `None` when some rule
    /// keeps state (a window, a timer, a list it grows).
    pub fn stateless_copy(&self) -> Option<Engine> {
        let stateless = self.rules.iter().all(|runtime| {
            matches!(runtime.state, State::Stateless) && runtime.rule.add_to_list.is_none()
        });
        stateless.then(|| {
            Engine::new(
                self.rules().cloned().collect(),
                self.lists.clone(),
                self.options,
            )
        })
    }

    /// Runs one event through every rule; returns the detections it caused, those of the chains it
    /// started included, in the order they were made.
    pub fn process(&mut self, event: &Event) -> Vec<Detection> {
        let mut detections = Vec::new();
        let time = event.utctimestamp_micros;
        self.newest_event = Some(self.newest_event.map_or(time, |newest| newest.max(time)));
        let mut queue = ChainQueue::new();
        // Timers due by now come first: in event-time order they happened before this event.
        if let Some(watermark) = self
            .watermark()
            .filter(|&watermark| watermark >= self.next_sweep)
        {
            self.sweep(watermark, None, &mut detections, &mut queue);
            self.run_chains(&mut detections, &mut queue);
        }
        self.run_rules(event, 0, &mut detections, &mut queue);
        self.run_chains(&mut detections, &mut queue);
        detections
    }

    /// Runs the clock timers (absence) at processing time `now_micros`, and the event-time timers
    /// at the watermark. A server calls this every second; a replay does not (it has no clock).
    pub fn tick(&mut self, now_micros: i64) -> Vec<Detection> {
        let mut detections = Vec::new();
        let mut queue = VecDeque::new();
        let watermark = self.watermark().unwrap_or(i64::MIN);
        self.sweep(watermark, Some(now_micros), &mut detections, &mut queue);
        self.run_chains(&mut detections, &mut queue);
        detections
    }

    /// At the end of a replay: the timers of event time run up to the newest event (no later event
    /// can come, so lateness no longer matters).
    pub fn finish(&mut self) -> Vec<Detection> {
        let mut detections = Vec::new();
        let mut queue = VecDeque::new();
        if let Some(newest) = self.newest_event {
            for runtime in &mut self.rules {
                runtime.next_sweep = i64::MIN;
            }
            self.sweep(newest, None, &mut detections, &mut queue);
        }
        self.run_chains(&mut detections, &mut queue);
        detections
    }

    fn run_chains(&mut self, detections: &mut Vec<Detection>, queue: &mut ChainQueue) {
        while let Some((index, depth)) = queue.pop_front() {
            // Lent out while the rules look at it (they may add detections to the list).
            let event = detections[index]
                .event
                .take()
                .expect("a queued detection has its event");
            self.run_rules(&event, depth, detections, queue);
            detections[index].event = Some(event);
        }
    }

    fn run_rules(
        &mut self,
        event: &Event,
        depth: u32,
        detections: &mut Vec<Detection>,
        queue: &mut ChainQueue,
    ) {
        self.statistics.events += 1;
        self.clock += 1;
        let watermark = self.watermark().unwrap_or(i64::MIN);
        let mut pending = Vec::new();
        let mut candidates = std::mem::take(&mut self.candidates);
        // The fields the dispatch and the candidates test are looked up in the event once.
        let mut lookups = isms_query::FieldLookups::new(&event.document);
        self.dispatch.candidates(&mut lookups, &mut candidates);
        // A detection fed back goes to the other rules: a rule never sees its own detections (an
        // absence rule on `MARK` would take its own "no MARK" alert for a sign of life).
        let own_rule = if depth > 0 {
            event
                .document
                .get("details")
                .and_then(|details| details.get("rule_id"))
                .and_then(Value::as_str)
        } else {
            None
        };
        for &index in &candidates {
            let runtime = &mut self.rules[index];
            if own_rule == Some(runtime.rule.id()) {
                continue;
            }
            if !runtime.rule.predicate.matches_with(&mut lookups) {
                continue;
            }
            runtime.matched += 1;
            let context = EventContext {
                event,
                depth,
                watermark,
                clock: self.clock,
                rule: index,
            };
            let late = match &runtime.rule.kind {
                KindConfig::Match => {
                    pending.push(context.single(String::new()));
                    false
                }
                // Searched on its schedule by the server (`Engine::scheduled_result`), never
                // per event: the dispatch leaves it out.
                KindConfig::Scheduled(_) => false,
                KindConfig::List(config) => {
                    if list_fires(config, &self.lists, &event.document) {
                        pending.push(context.single(String::new()));
                    }
                    false
                }
                KindConfig::Threshold(config) => {
                    let State::Counting(entities) = &mut runtime.state else {
                        unreachable!("a threshold rule has counting state")
                    };
                    threshold_event(config, entities, &context, &mut pending)
                }
                KindConfig::DistinctCount(config) => {
                    let State::Counting(entities) = &mut runtime.state else {
                        unreachable!("a distinct count rule has counting state")
                    };
                    distinct_event(config, entities, &context, &mut pending)
                }
                KindConfig::Sequence(config) => {
                    let State::Sequence(entities) = &mut runtime.state else {
                        unreachable!("a sequence rule has sequence state")
                    };
                    sequence_event(config, entities, &context, &mut pending)
                }
                KindConfig::Absence(config) => {
                    let State::Absence(entities) = &mut runtime.state else {
                        unreachable!("an absence rule has absence state")
                    };
                    absence_event(config, entities, &context, &mut pending);
                    false
                }
                KindConfig::FirstSeen(config) => {
                    let State::FirstSeen(state) = &mut runtime.state else {
                        unreachable!("a first seen rule has first seen state")
                    };
                    first_seen_event(config, state, &context, &mut pending)
                }
            };
            if late {
                self.statistics.late_events += 1;
                metrics::counter!("isms_detect_late_events_total").increment(1);
            }
            let evicted = evict(&mut self.rules[index]);
            if evicted > 0 {
                self.statistics.evictions += evicted;
                metrics::counter!("isms_detect_evictions_total", "rule" => self.rules[index].rule.id().to_owned())
                    .increment(evicted);
            }
        }
        self.candidates = candidates;
        for item in pending {
            // A message of the event at hand reads its fields through the rules' lookups.
            let of_this_event = matches!(&item.event, Some(Cow::Borrowed(document)) if std::ptr::eq(*document, &event.document));
            self.emit(
                item,
                detections,
                queue,
                of_this_event.then_some(&mut lookups),
            );
        }
    }

    /// Runs the timers of every rule due at `watermark` (and, with `now`, the clock timers).
    fn sweep(
        &mut self,
        watermark: i64,
        now: Option<i64>,
        detections: &mut Vec<Detection>,
        queue: &mut ChainQueue,
    ) {
        let mut pending = Vec::new();
        for index in 0..self.rules.len() {
            let runtime = &mut self.rules[index];
            if runtime.next_sweep > watermark && now.is_none() {
                continue;
            }
            let period = match runtime.rule.kind.interval_micros() {
                Some(interval) => (interval / 8).max(1_000_000),
                None => i64::MAX,
            };
            runtime.next_sweep = watermark.saturating_add(period);
            match (&runtime.rule.kind, &mut runtime.state) {
                (KindConfig::Threshold(config), State::Counting(entities)) => sweep_counting(
                    entities,
                    (config.interval_micros, &config.condition),
                    match config.aggregate {
                        Aggregate::Count => Counted::Events,
                        aggregate => Counted::Amounts(aggregate),
                    },
                    watermark,
                    index,
                    &mut pending,
                ),
                (KindConfig::DistinctCount(config), State::Counting(entities)) => sweep_counting(
                    entities,
                    (config.interval_micros, &config.condition),
                    Counted::Values,
                    watermark,
                    index,
                    &mut pending,
                ),
                (KindConfig::Sequence(config), State::Sequence(entities)) => {
                    let cutoff = watermark.saturating_sub(config.interval_micros);
                    entities.retain(|_, entity| {
                        for step in &mut entity.steps {
                            while step.front().is_some_and(|&(time, _)| time <= cutoff) {
                                step.pop_front();
                            }
                        }
                        entity.steps.iter().any(|step| !step.is_empty())
                    });
                }
                (KindConfig::Absence(config), State::Absence(entities)) => {
                    if let Some(list) = &config.expected_list
                        && config.group_by.len() == 1
                        && let Some(expected) = self.lists.get(list)
                    {
                        // Keys of a rule with an expected list are kept as the list keeps its
                        // entries (lower case, canonical addresses), so `WEB1` is `web1`.
                        for entry in expected.entries() {
                            if !entities.contains_key(&entry)
                                && entities.len() < config.max_entities as usize
                            {
                                // Expected from now on: silent for the interval from here fires.
                                entities.insert(
                                    entry,
                                    AbsenceEntity {
                                        last_event: watermark,
                                        last_received: now.unwrap_or(i64::MIN),
                                        last_event_id: None,
                                        absent: None,
                                        touched: 0,
                                        interval_micros: None,
                                    },
                                );
                            }
                        }
                    }
                    for (key, entity) in entities.iter_mut() {
                        if entity.absent.is_some() {
                            continue;
                        }
                        let interval = entity.interval_micros.unwrap_or(config.interval_micros);
                        let silent_in_event_time =
                            watermark.saturating_sub(entity.last_event) > interval;
                        let silent_on_the_clock = now.is_some_and(|now| {
                            entity.last_received != i64::MIN
                                && now.saturating_sub(entity.last_received) > interval
                        });
                        if silent_in_event_time || silent_on_the_clock {
                            let detected = if silent_in_event_time {
                                entity.last_event.saturating_add(interval)
                            } else {
                                watermark.max(entity.last_event)
                            };
                            entity.absent = Some(Box::new(Active {
                                id: String::new(),
                                count: 0,
                                related: entity.last_event_id.iter().cloned().collect(),
                                more: 0,
                                first: entity.last_event,
                                last: entity.last_event,
                                document: None,
                            }));
                            pending.push(Pending {
                                rule: index,
                                state: DetectionState::Fired,
                                clears: None,
                                key: key.clone(),
                                count: 0,
                                related: entity.last_event_id.iter().cloned().collect(),
                                more: 0,
                                first: Some(entity.last_event),
                                last: Some(entity.last_event),
                                detected,
                                event: None,
                                depth: 0,
                                activate: true,
                            });
                        }
                    }
                }
                (KindConfig::FirstSeen(config), State::FirstSeen(state)) => {
                    let cutoff = watermark.saturating_sub(config.look_back_micros);
                    state.keys.retain(|key, values| {
                        values.retain(|_, &mut time| time > cutoff);
                        let keep = !values.is_empty();
                        if !keep {
                            state.touched.remove(key);
                        }
                        keep
                    });
                }
                _ => {}
            }
        }
        self.next_sweep = self
            .rules
            .iter()
            .map(|runtime| runtime.next_sweep)
            .min()
            .unwrap_or(i64::MAX);
        for item in pending {
            self.emit(item, detections, queue, None);
        }
    }

    /// Gives a pending detection its message, event and id; records it as the entity's active
    /// detection where it opens one; adds to a list if the rule says so; queues it for the chains.
    fn emit(
        &mut self,
        item: Pending,
        detections: &mut Vec<Detection>,
        queue: &mut ChainQueue,
        lookups: Option<&mut isms_query::FieldLookups<'_>>,
    ) {
        let runtime = &mut self.rules[item.rule];
        runtime.detections += 1;
        let rule = &runtime.rule;
        let group: Vec<(String, String)> = if item.key.is_empty() && rule.kind.group_by().is_empty()
        {
            Vec::new()
        } else {
            rule.kind
                .group_by()
                .iter()
                .map(FieldPath::dotted)
                .zip(item.key.split(KEY_SEPARATOR).map(str::to_owned))
                .collect()
        };
        let group_text = crate::detection::group_text(&group);
        let interval = rule.kind.interval_text();
        // Without an event (a count that fell back, a silent key), the group key's values still fill
        // their placeholders.
        let group_document = match &item.event {
            Some(_) => None,
            None => Some(group_document(&group)),
        };
        let values = MessageValues {
            count: item.count,
            threshold: rule.kind.threshold(),
            interval: interval.as_deref(),
            group: &group_text,
            rule_title: &rule.definition.title,
            rule_id: rule.id(),
            severity: rule.severity.name(),
            state: item.state.name(),
        };
        let mut message = match lookups {
            Some(lookups) => rule.template.render_with(Some(lookups), &values),
            None => rule
                .template
                .render(item.event.as_deref().or(group_document.as_ref()), &values),
        };
        if item.state == DetectionState::Cleared && !rule.template.mentions_state() {
            message.insert_str(0, "cleared: ");
        }
        let hostname = item
            .event
            .as_ref()
            .and_then(|event| event.get("hostname"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            // A silent host has no event, but its group key names it.
            .or_else(|| {
                group
                    .iter()
                    .find(|(field, _)| field == "hostname")
                    .map(|(_, value)| value.clone())
            });
        let mut detection = Detection {
            id: String::new(),
            clears: item.clears,
            rule_id: rule.shared.id.clone(),
            rule_title: rule.shared.title.clone(),
            kind: rule.kind.kind_name(),
            severity: rule.severity.name(),
            tags: rule.shared.tags.clone(),
            state: item.state,
            group,
            count: item.count,
            related_event_ids: item.related,
            related_events_more: item.more,
            first_event_micros: item.first,
            last_event_micros: item.last,
            detected_micros: item.detected,
            message,
            depth: item.depth,
            hostname,
            event: None,
        };
        detection.id = isms_event::new_event_id(item.detected);
        if item.activate {
            set_active_id(&mut runtime.state, &item.key, &detection.id);
        }
        if item.state == DetectionState::Fired
            && let Some((list, field)) = &rule.add_to_list
        {
            let value = item
                .event
                .as_ref()
                .and_then(|document| first_scalar(document, field))
                .or_else(|| {
                    detection
                        .group
                        .iter()
                        .find(|(name, _)| *name == field.dotted())
                        .map(|(_, value)| value.clone())
                });
            if let Some(value) = value {
                let list = list.clone();
                if self.lists.add(&list, &value) {
                    tracing::info!(rule = %detection.rule_id, list = %list, value = %value, "detection added a value to a list");
                    self.list_additions.push((list, value));
                }
            }
        }
        self.statistics.detections += 1;
        self.rules[item.rule].detections_counter.increment(1);
        let depth = item.depth + 1;
        if !self.dispatch.takes_detections {
            // No rule can match it: not fed back, and its event is made by whoever needs it.
        } else if depth > self.options.max_chain_depth {
            self.statistics.chain_stops += 1;
            tracing::warn!(
                rule = %detection.rule_id,
                depth = item.depth,
                limit = self.options.max_chain_depth,
                "detection not fed back to the rules: chain depth limit reached (a rule may match its own detections)"
            );
        } else {
            detection.event = Some(detection.to_event());
            queue.push_back((detections.len(), depth));
        }
        detections.push(detection);
    }
}

impl KindConfig {
    fn interval_micros(&self) -> Option<i64> {
        match self {
            KindConfig::Threshold(config) => Some(config.interval_micros),
            KindConfig::DistinctCount(config) => Some(config.interval_micros),
            KindConfig::Sequence(config) => Some(config.interval_micros),
            KindConfig::Absence(config) => Some(config.interval_micros),
            KindConfig::FirstSeen(config) => Some(config.look_back_micros),
            // Runs on its schedule, not on event time.
            KindConfig::Match | KindConfig::List(_) | KindConfig::Scheduled(_) => None,
        }
    }

    fn threshold(&self) -> Option<u64> {
        match self {
            KindConfig::Threshold(config) => Some(config.condition.threshold()),
            KindConfig::DistinctCount(config) => Some(config.condition.threshold()),
            KindConfig::Scheduled(config) => Some(config.threshold),
            _ => None,
        }
    }
}

/// What a counting entity counts: a threshold rule's events, a distinct count rule's values, or
/// the numbers a threshold rule aggregates.
#[derive(Clone, Copy)]
enum Counted {
    Events,
    Values,
    Amounts(Aggregate),
}

/// A sweep of a threshold or distinct count rule: what left the window goes, an active entity that
/// no longer holds clears (dated when it stopped holding), an entity with nothing left is
/// forgotten.
fn sweep_counting(
    entities: &mut KeyMap<CountingEntity>,
    (interval, condition): (i64, &ValueCondition),
    counted: Counted,
    watermark: i64,
    rule: usize,
    pending: &mut Vec<Pending>,
) {
    let cutoff = watermark.saturating_sub(interval);
    entities.retain(|key, entity| {
        // Only an active entity needs its times, to date its clearing.
        let mut times: Vec<i64> = match (&entity.active, counted) {
            (None, _) => Vec::new(),
            (Some(_), Counted::Events) => entity.events.iter().map(|&(time, _)| time).collect(),
            (Some(_), Counted::Values) => entity.values.values().copied().collect(),
            (Some(_), Counted::Amounts(_)) => {
                entity.amounts.iter().map(|&(time, _)| time).collect()
            }
        };
        times.sort_unstable();
        let amounts_before: Vec<f64> = match (&entity.active, counted) {
            (Some(_), Counted::Amounts(_)) => {
                entity.amounts.iter().map(|&(_, amount)| amount).collect()
            }
            _ => Vec::new(),
        };
        entity.values.retain(|_, &mut time| time > cutoff);
        while entity
            .events
            .front()
            .is_some_and(|&(time, _)| time <= cutoff)
        {
            entity.events.pop_front();
        }
        while entity
            .amounts
            .front()
            .is_some_and(|&(time, _)| time <= cutoff)
        {
            entity.amounts.pop_front();
        }
        let (holds, left) = match counted {
            Counted::Events | Counted::Values => {
                let count = match counted {
                    Counted::Values => entity.values.len(),
                    _ => entity.events.len(),
                } as u64;
                (count > 0 && condition.holds(count as f64), count > 0)
            }
            Counted::Amounts(aggregate) => (
                aggregate
                    .of(entity.amounts.iter().map(|&(_, amount)| amount))
                    .is_some_and(|value| condition.holds(value)),
                !entity.amounts.is_empty() || !entity.events.is_empty(),
            ),
        };
        if !holds && let Some(active) = entity.active.take() {
            let still_holds = |gone: usize| match counted {
                Counted::Events | Counted::Values => {
                    let remaining = times.len() - gone;
                    remaining > 0 && condition.holds(remaining as f64)
                }
                Counted::Amounts(aggregate) => aggregate
                    .of(amounts_before[gone..].iter().copied())
                    .is_some_and(|value| condition.holds(value)),
            };
            let at = fell_back_at(&times, interval, watermark, still_holds);
            pending.push(cleared(rule, key, *active, at, 0));
        }
        left || entity.active.is_some()
    });
}

/// The event time at which a window stopped satisfying its condition, from the times of what it
/// held (oldest first; each leaves the window `interval` after it happened) and whether it still
/// holds once its `n` oldest are gone. At most `watermark`.
fn fell_back_at(
    times: &[i64],
    interval: i64,
    watermark: i64,
    still_holds: impl Fn(usize) -> bool,
) -> i64 {
    for (index, &time) in times.iter().enumerate() {
        let leaves = time.saturating_add(interval);
        if leaves > watermark {
            break;
        }
        if !still_holds(index + 1) {
            return leaves;
        }
    }
    watermark
}

/// A document holding the group key's values at their fields' places.
fn group_document(group: &[(String, String)]) -> Map<String, Value> {
    let mut document = Map::new();
    for (field, value) in group {
        let mut segments: Vec<&str> = field.split('.').collect();
        let Some(last) = segments.pop() else {
            continue;
        };
        let mut current = &mut document;
        for segment in segments {
            let entry = current
                .entry(segment.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            current = entry.as_object_mut().expect("made an object above");
        }
        current.insert(last.to_owned(), Value::String(value.clone()));
    }
    document
}

fn set_active_id(state: &mut State, key: &str, id: &str) {
    match state {
        State::Counting(entities) => {
            if let Some(active) = entities
                .get_mut(key)
                .and_then(|entity| entity.active.as_mut())
            {
                active.id = id.to_owned();
            }
        }
        State::Absence(entities) => {
            if let Some(absent) = entities
                .get_mut(key)
                .and_then(|entity| entity.absent.as_mut())
            {
                absent.id = id.to_owned();
            }
        }
        _ => {}
    }
}

/// What every kind needs to know about the event at hand.
struct EventContext<'a> {
    event: &'a Event,
    depth: u32,
    watermark: i64,
    clock: u64,
    rule: usize,
}

impl<'event> EventContext<'event> {
    fn time(&self) -> i64 {
        self.event.utctimestamp_micros
    }

    /// A detection made by this one event alone (match, list, first seen).
    fn single(&self, key: String) -> Pending<'event> {
        Pending {
            rule: self.rule,
            state: DetectionState::Fired,
            clears: None,
            key,
            count: 1,
            related: vec![self.event.id.clone()],
            more: 0,
            first: Some(self.time()),
            last: Some(self.time()),
            detected: self.time(),
            event: Some(Cow::Borrowed(&self.event.document)),
            depth: self.depth,
            activate: false,
        }
    }

    fn is_late(&self, interval: i64) -> bool {
        self.time() <= self.watermark.saturating_sub(interval)
    }
}

fn cleared(rule: usize, key: &str, active: Active, detected: i64, depth: u32) -> Pending<'static> {
    Pending {
        rule,
        state: DetectionState::Cleared,
        clears: Some(active.id),
        key: key.to_owned(),
        count: active.count,
        related: active.related,
        more: active.more,
        first: Some(active.first),
        last: Some(active.last),
        detected,
        event: active.document.map(Cow::Owned),
        depth,
        activate: false,
    }
}

/// The first scalar of `path` as text.
fn first_scalar(document: &Map<String, Value>, path: &FieldPath) -> Option<String> {
    let mut found = None;
    for_each_scalar(document, path, |value| {
        if found.is_none() {
            found = render_scalar(value).map(|text| text.into_owned());
        }
    });
    found
}

/// The group key of `document`: each field's first scalar, joined; `None` if one is missing.
fn group_key(document: &Map<String, Value>, fields: &[FieldPath]) -> Option<String> {
    let mut key = String::new();
    for (index, field) in fields.iter().enumerate() {
        let value = first_scalar(document, field)?;
        if index > 0 {
            key.push(KEY_SEPARATOR);
        }
        key.extend(
            value
                .chars()
                .map(|c| if c == KEY_SEPARATOR { ' ' } else { c }),
        );
    }
    Some(key)
}

/// The group key of `document` for a rule with `group_by_per_rule`: read from the fields of the
/// first entry whose match the event satisfies, else from `group_by`.
fn rule_group_key(
    document: &Map<String, Value>,
    group_by: &[FieldPath],
    per_rule: &[RuleGroup],
) -> Option<String> {
    let fields = per_rule
        .iter()
        .find(|group| group.predicate.matches(document))
        .map_or(group_by, |group| group.fields.as_slice());
    group_key(document, fields)
}

/// The field's first value as a finite number: a JSON number, or text holding one (`"1500"`);
/// anything else (absent, other text, true/false) gives `None`.
fn numeric_value(document: &Map<String, Value>, field: &FieldPath) -> Option<f64> {
    first_scalar(document, field)
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|number| number.is_finite())
}

fn list_fires(config: &ListConfig, lists: &Lists, document: &Map<String, Value>) -> bool {
    let mut any_value = false;
    let mut in_list = false;
    for_each_scalar(document, &config.field, |value| {
        if let Some(text) = render_scalar(value) {
            any_value = true;
            in_list |= lists.contains(&config.list, &text);
        }
    });
    any_value && (in_list != config.negate)
}

/// Whether the event passes the threshold kind's own filters (user pattern, source addresses).
fn threshold_filters_pass(config: &ThresholdConfig, document: &Map<String, Value>) -> bool {
    if let Some(pattern) = &config.user_pattern
        && !pattern.matches(document)
    {
        return false;
    }
    if !config.source_addresses.is_empty() {
        let path = FieldPath::parse_dotted("details.sourceipaddress");
        let Some(address) =
            first_scalar(document, &path).and_then(|text| text.parse::<std::net::IpAddr>().ok())
        else {
            return false;
        };
        if !config
            .source_addresses
            .iter()
            .any(|network| network.contains(address))
        {
            return false;
        }
    }
    true
}

/// Counts one event for a threshold rule; returns whether it was late.
fn threshold_event<'event>(
    config: &ThresholdConfig,
    entities: &mut KeyMap<CountingEntity>,
    context: &EventContext<'event>,
    pending: &mut Vec<Pending<'event>>,
) -> bool {
    let document = &context.event.document;
    if !threshold_filters_pass(config, document) {
        return false;
    }
    if config.aggregate != Aggregate::Count {
        return aggregate_event(config, entities, context, pending);
    }
    let Some(key) = rule_group_key(document, &config.group_by, &config.group_by_per_rule) else {
        return false;
    };
    if context.is_late(config.interval_micros) {
        return true;
    }
    let time = context.time();
    let entity = entities.entry(key.clone()).or_default();
    entity.touched = context.clock;
    remember_event(
        &mut entity.events,
        time,
        &context.event.id,
        config.condition.counts_needed(),
    );
    let reference = entity.events.back().map_or(time, |&(newest, _)| newest);
    let cutoff = reference.saturating_sub(config.interval_micros);
    let count = entity
        .events
        .iter()
        .filter(|&&(known, _)| known > cutoff)
        .count() as u64;
    let holds = config.condition.holds(count as f64);
    let opening = (entity.active.is_none() && holds)
        .then(|| Opening::within(&entity.events, cutoff, count, time, reference));
    judge(entity, holds, opening, context, key, pending);
    false
}

/// Puts an event's time and id in their place among an entity's (kept in time order: a late event
/// within the lateness goes where it belongs), keeping the newest `keep`.
fn remember_event(events: &mut VecDeque<(i64, String)>, time: i64, id: &str, keep: usize) {
    insert_in_time_order(events, time, id.to_owned(), keep);
}

/// Puts `item` of `time` in its place among `entries` (kept in time order, ties in arrival order),
/// keeping the newest `keep`.
fn insert_in_time_order<T>(entries: &mut VecDeque<(i64, T)>, time: i64, item: T, keep: usize) {
    let position = entries.partition_point(|&(known, _)| known <= time);
    entries.insert(position, (time, item));
    while entries.len() > keep {
        entries.pop_front();
    }
}

/// Adds one event's number to a threshold rule with an aggregate (sum, avg, median, percentile)
/// and compares the window's aggregate; an event whose field holds no number is not counted.
/// Returns whether it was late.
fn aggregate_event<'event>(
    config: &ThresholdConfig,
    entities: &mut KeyMap<CountingEntity>,
    context: &EventContext<'event>,
    pending: &mut Vec<Pending<'event>>,
) -> bool {
    let document = &context.event.document;
    let Some(key) = rule_group_key(document, &config.group_by, &config.group_by_per_rule) else {
        return false;
    };
    let Some(amount) = config
        .field
        .as_ref()
        .and_then(|field| numeric_value(document, field))
    else {
        return false;
    };
    if context.is_late(config.interval_micros) {
        return true;
    }
    let time = context.time();
    let entity = entities.entry(key.clone()).or_default();
    entity.touched = context.clock;
    insert_in_time_order(&mut entity.amounts, time, amount, MAX_AGGREGATED_VALUES);
    // The newest events only, for the related list.
    remember_event(
        &mut entity.events,
        time,
        &context.event.id,
        MAX_RELATED_EVENTS,
    );
    let reference = entity.amounts.back().map_or(time, |&(newest, _)| newest);
    let cutoff = reference.saturating_sub(config.interval_micros);
    let in_window = || {
        entity
            .amounts
            .iter()
            .filter(move |&&(known, _)| known > cutoff)
            .map(|&(_, amount)| amount)
    };
    let count = in_window().count() as u64;
    let holds = config
        .aggregate
        .of(in_window())
        .is_some_and(|value| config.condition.holds(value));
    let opening = (entity.active.is_none() && holds)
        .then(|| Opening::within(&entity.events, cutoff, count, time, reference));
    judge(entity, holds, opening, context, key, pending);
    false
}

/// What a counting entity's detection opens with when it fires.
struct Opening {
    count: u64,
    related: Vec<String>,
    more: u64,
    first: i64,
    last: i64,
}

impl Opening {
    /// From the window's events (oldest first): the first [`MAX_RELATED_EVENTS`] are related, the
    /// rest of `count` counted.
    fn of(in_window: &[&(i64, String)], count: u64, time: i64, last: i64) -> Opening {
        let related: Vec<String> = in_window
            .iter()
            .take(MAX_RELATED_EVENTS)
            .map(|(_, id)| id.clone())
            .collect();
        Opening {
            count,
            more: count.saturating_sub(related.len() as u64),
            first: in_window.first().map_or(time, |&&(known, _)| known),
            related,
            last,
        }
    }

    /// [`Opening::of`] the events of `events` after `cutoff`.
    fn within(
        events: &VecDeque<(i64, String)>,
        cutoff: i64,
        count: u64,
        time: i64,
        last: i64,
    ) -> Opening {
        let in_window: Vec<&(i64, String)> = events
            .iter()
            .filter(|&&(known, _)| known > cutoff)
            .collect();
        Opening::of(&in_window, count, time, last)
    }
}

/// The one step of every counting kind after an event: an active entity that still holds takes
/// the event in; one that no longer holds clears; one that starts to hold fires with `opening`.
fn judge<'event>(
    entity: &mut CountingEntity,
    holds: bool,
    opening: Option<Opening>,
    context: &EventContext<'event>,
    key: String,
    pending: &mut Vec<Pending<'event>>,
) {
    let time = context.time();
    match (&mut entity.active, holds, opening) {
        (Some(active), true, _) => active.attach(time, &context.event.id),
        (Some(_), false, _) => {
            let active = entity.active.take().expect("checked above");
            pending.push(cleared(context.rule, &key, *active, time, context.depth));
        }
        (None, true, Some(opening)) => {
            let document = &context.event.document;
            entity.active = Some(Box::new(Active {
                id: String::new(),
                count: opening.count,
                related: opening.related.clone(),
                more: opening.more,
                first: opening.first,
                last: opening.last,
                document: Some(document.clone()),
            }));
            pending.push(Pending {
                rule: context.rule,
                state: DetectionState::Fired,
                clears: None,
                key,
                count: opening.count,
                related: opening.related,
                more: opening.more,
                first: Some(opening.first),
                last: Some(opening.last),
                detected: time,
                event: Some(Cow::Borrowed(document)),
                depth: context.depth,
                activate: true,
            });
        }
        _ => {}
    }
}

/// Counts one event's value for a distinct count rule; returns whether it was late.
fn distinct_event<'event>(
    config: &DistinctCountConfig,
    entities: &mut KeyMap<CountingEntity>,
    context: &EventContext<'event>,
    pending: &mut Vec<Pending<'event>>,
) -> bool {
    let document = &context.event.document;
    let Some(key) = rule_group_key(document, &config.group_by, &config.group_by_per_rule) else {
        return false;
    };
    let Some(value) = first_scalar(document, &config.field) else {
        return false;
    };
    if context.is_late(config.interval_micros) {
        return true;
    }
    let time = context.time();
    let entity = entities.entry(key.clone()).or_default();
    entity.touched = context.clock;
    let newest = entity.values.entry(value).or_insert(time);
    *newest = (*newest).max(time);
    // Only the largest bound + 1 most recent values matter for the comparison.
    let keep = config.condition.counts_needed();
    if entity.values.len() > keep
        && let Some(oldest) = entity
            .values
            .iter()
            .min_by_key(|&(_, &time)| time)
            .map(|(value, _)| value.clone())
    {
        entity.values.remove(&oldest);
    }
    remember_event(
        &mut entity.events,
        time,
        &context.event.id,
        MAX_RELATED_EVENTS,
    );
    let reference = entity.values.values().copied().max().unwrap_or(time);
    let cutoff = reference.saturating_sub(config.interval_micros);
    let count = entity
        .values
        .values()
        .filter(|&&seen| seen > cutoff)
        .count() as u64;
    let holds = config.condition.holds(count as f64);
    // Every event of the key in the window (several may carry one value), oldest first.
    let opening = (entity.active.is_none() && holds).then(|| Opening {
        more: 0,
        ..Opening::within(&entity.events, cutoff, count, time, reference)
    });
    judge(entity, holds, opening, context, key, pending);
    false
}

/// Records one event against the steps it matches; fires when the sequence completes. Returns
/// whether it was late.
fn sequence_event<'event>(
    config: &SequenceConfig,
    entities: &mut KeyMap<SequenceEntity>,
    context: &EventContext<'event>,
    pending: &mut Vec<Pending<'event>>,
) -> bool {
    let document = &context.event.document;
    let matched: Vec<usize> = config
        .steps
        .iter()
        .enumerate()
        .filter(|(_, step)| step.predicate.matches(document))
        .map(|(index, _)| index)
        .collect();
    if matched.is_empty() {
        return false;
    }
    let Some(key) = rule_group_key(document, &config.group_by, &config.group_by_per_rule) else {
        return false;
    };
    if context.is_late(config.interval_micros) {
        return true;
    }
    let time = context.time();
    let entity = entities.entry(key.clone()).or_default();
    entity.touched = context.clock;
    if entity.steps.len() != config.steps.len() {
        entity.steps = vec![VecDeque::new(); config.steps.len()];
    }
    let cutoff = time.saturating_sub(config.interval_micros);
    for &index in &matched {
        let events = &mut entity.steps[index];
        let keep = (config.steps[index].count as usize)
            .saturating_mul(2)
            .max(16);
        remember_event(events, time, &context.event.id, keep);
        while events.front().is_some_and(|&(known, _)| known < cutoff) {
            events.pop_front();
        }
    }
    let chain = if config.ordered {
        // Only an event of the last step can complete an ordered sequence.
        if !matched.contains(&(config.steps.len() - 1)) {
            return false;
        }
        ordered_chain(config, entity, time)
    } else {
        unordered_chain(config, entity, time)
    };
    if let Some(chain) = chain {
        let first = chain.first().map_or(time, |(known, _)| *known);
        let count = chain.len() as u64;
        let related: Vec<String> = chain
            .iter()
            .take(MAX_RELATED_EVENTS)
            .map(|(_, id)| id.clone())
            .collect();
        // A completed sequence starts over: the same events do not complete it again.
        entity.steps.iter_mut().for_each(VecDeque::clear);
        pending.push(Pending {
            rule: context.rule,
            state: DetectionState::Fired,
            clears: None,
            key,
            count,
            more: count.saturating_sub(related.len() as u64),
            related,
            first: Some(first),
            last: Some(time),
            detected: time,
            event: Some(Cow::Borrowed(document)),
            depth: context.depth,
            activate: false,
        });
    }
    false
}

/// The most recent chain completing an ordered sequence at `time`: walking back from the last step,
/// each step takes its newest `count` events not after the earliest event of the step after it, and
/// the whole chain fits in the interval. Events in time order, oldest first.
fn ordered_chain(
    config: &SequenceConfig,
    entity: &SequenceEntity,
    time: i64,
) -> Option<Vec<(i64, String)>> {
    let mut bound = time;
    let mut chain: Vec<(i64, String)> = Vec::new();
    for (index, step) in config.steps.iter().enumerate().rev() {
        let mut taken = 0;
        let mut earliest = bound;
        for (known, id) in entity.steps[index].iter().rev() {
            if *known > bound || chain.iter().any(|(_, used)| used == id) {
                continue;
            }
            chain.push((*known, id.clone()));
            earliest = *known;
            taken += 1;
            if taken == step.count {
                break;
            }
        }
        if taken < step.count {
            return None;
        }
        bound = earliest;
    }
    if time.saturating_sub(bound) > config.interval_micros {
        return None;
    }
    chain.sort_by_key(|(known, _)| *known);
    Some(chain)
}

/// The events completing an unordered sequence at `time`: every step has its count within the
/// interval.
fn unordered_chain(
    config: &SequenceConfig,
    entity: &SequenceEntity,
    time: i64,
) -> Option<Vec<(i64, String)>> {
    let cutoff = time.saturating_sub(config.interval_micros);
    let mut chain: Vec<(i64, String)> = Vec::new();
    for (index, step) in config.steps.iter().enumerate() {
        let recent: Vec<&(i64, String)> = entity.steps[index]
            .iter()
            .rev()
            .filter(|(known, id)| {
                *known >= cutoff && *known <= time && !chain.iter().any(|(_, used)| used == id)
            })
            .take(step.count as usize)
            .collect();
        if (recent.len() as u64) < step.count {
            return None;
        }
        chain.extend(recent.into_iter().cloned());
    }
    chain.sort_by_key(|(known, _)| *known);
    Some(chain)
}

/// Notes that a key was heard from; clears its absence if it was absent.
fn absence_event<'event>(
    config: &AbsenceConfig,
    entities: &mut KeyMap<AbsenceEntity>,
    context: &EventContext<'event>,
    pending: &mut Vec<Pending<'event>>,
) {
    let document = &context.event.document;
    let Some(mut key) = group_key(document, &config.group_by) else {
        return;
    };
    if config.expected_list.is_some() {
        key = crate::lists::normalized_entry(&key);
    }
    let time = context.time();
    let entity = entities
        .entry(key.clone())
        .or_insert_with(|| AbsenceEntity {
            last_event: time,
            last_received: context.event.receivedtimestamp_micros,
            last_event_id: None,
            absent: None,
            touched: 0,
            interval_micros: None,
        });
    if let Some(field) = &config.interval_field
        && let Some(interval) = isms_query::ir::value_at(document, field).and_then(interval_of)
    {
        entity.interval_micros = Some(interval);
    }
    entity.touched = context.clock;
    entity.last_event = entity.last_event.max(time);
    entity.last_received = entity
        .last_received
        .max(context.event.receivedtimestamp_micros);
    entity.last_event_id = Some(context.event.id.clone());
    if let Some(mut absent) = entity.absent.take() {
        absent.attach(time, &context.event.id);
        let mut item = cleared(context.rule, &key, *absent, time, context.depth);
        item.event = Some(Cow::Borrowed(document));
        pending.push(item);
    }
}

/// An interval given in an event: whole or fractional seconds (a number or numeric text), or a
/// duration text (`90s`, `5m`); `None` when it is not one, or not positive.
fn interval_of(value: &Value) -> Option<i64> {
    let micros = match value {
        Value::Number(number) => (number.as_f64()? * 1_000_000.0) as i64,
        Value::String(text) => match text.trim().parse::<f64>() {
            Ok(seconds) => (seconds * 1_000_000.0) as i64,
            Err(_) => crate::duration::parse_duration(text.trim()).ok()?,
        },
        _ => return None,
    };
    (micros > 0).then_some(micros)
}

/// Learns one event's values; fires when they are new for the key. Returns whether it was late.
fn first_seen_event<'event>(
    config: &FirstSeenConfig,
    state: &mut FirstSeenState,
    context: &EventContext<'event>,
    pending: &mut Vec<Pending<'event>>,
) -> bool {
    let document = &context.event.document;
    let Some(key) = group_key(document, &config.group_by) else {
        return false;
    };
    let Some(value) = group_key(document, &config.fields) else {
        return false;
    };
    if context.is_late(config.look_back_micros) {
        return true;
    }
    let time = context.time();
    let first_event = *state.first_event.get_or_insert(time);
    state.touched.insert(key.clone(), context.clock);
    let values = state.keys.entry(key.clone()).or_default();
    let new = match values.get(&value) {
        Some(&seen) => time.saturating_sub(seen) > config.look_back_micros,
        None => true,
    };
    let newest = values.entry(value).or_insert(time);
    *newest = (*newest).max(time);
    if new && time.saturating_sub(first_event) >= config.learning_micros {
        pending.push(context.single(key));
    }
    false
}

/// Evicts the least recently seen tenth of a rule's keys when it tracks more than its maximum;
/// returns how many went.
fn evict(runtime: &mut RuleRuntime) -> u64 {
    let most = match &runtime.rule.kind {
        KindConfig::Threshold(config) => config.max_entities,
        KindConfig::DistinctCount(config) => config.max_entities,
        KindConfig::Sequence(config) => config.max_entities,
        KindConfig::Absence(config) => config.max_entities,
        KindConfig::FirstSeen(config) => config.max_entities,
        KindConfig::Match | KindConfig::List(_) | KindConfig::Scheduled(_) => return 0,
    } as usize;
    fn cut<T>(entities: &mut KeyMap<T>, most: usize, touched: impl Fn(&T) -> u64) -> u64 {
        if entities.len() <= most {
            return 0;
        }
        let target = most - most / 10;
        let excess = entities.len() - target;
        let mut ages: Vec<u64> = entities.values().map(&touched).collect();
        let (_, &mut cutoff, _) = ages.select_nth_unstable(excess - 1);
        let before = entities.len();
        let mut removed = 0;
        entities.retain(|_, entity| {
            if removed < excess && touched(entity) <= cutoff {
                removed += 1;
                false
            } else {
                true
            }
        });
        (before - entities.len()) as u64
    }
    match &mut runtime.state {
        State::Counting(entities) => cut(entities, most, |entity| entity.touched),
        State::Sequence(entities) => cut(entities, most, |entity| entity.touched),
        State::Absence(entities) => cut(entities, most, |entity| entity.touched),
        State::FirstSeen(state) => {
            if state.keys.len() <= most {
                return 0;
            }
            let touched = &state.touched;
            let removed = {
                let mut ages: KeyMap<u64> = KeyMap::default();
                for key in state.keys.keys() {
                    ages.insert(key.clone(), touched.get(key).copied().unwrap_or(0));
                }
                let target = most - most / 10;
                let excess = state.keys.len() - target;
                let mut values: Vec<u64> = ages.values().copied().collect();
                let (_, &mut cutoff, _) = values.select_nth_unstable(excess - 1);
                let mut removed = 0;
                state.keys.retain(|key, _| {
                    if removed < excess && ages.get(key).copied().unwrap_or(0) <= cutoff {
                        removed += 1;
                        false
                    } else {
                        true
                    }
                });
                removed
            };
            let keys = &state.keys;
            state.touched.retain(|key, _| keys.contains_key(key));
            removed as u64
        }
        State::Stateless => 0,
    }
}

/// Interval text for callers that show a rule.
pub fn rule_interval_text(rule: &Rule) -> Option<String> {
    rule.kind.interval_micros().map(format_duration)
}
