//! Ruling out incoming events no rule can match, before the stored event is built.
//!
//! Most of a routine log matches no rule, and building each stored event (parsing the JSON into
//! a `Value`, normalizing it, giving it an id and times) was most of what a replay of match rules
//! cost. [`EventPrefilter`] answers "could any rule match this?" from the event as it came: for an
//! event normalization keeps as details only (`isms_event::normalizes_to_details_only`), each
//! incoming value is stored under `details` at the key normalization makes of its own
//! (`isms_event::stored_key`, or where a details alias moves it), so the test reads each incoming
//! value at the path it will be stored at. A rule needs, in each of its sets of alternatives (from
//! the engine's dispatch: equalities and literals every match holds), one that some value holds.
//!
//! It reads an event two ways: an incoming `Value` ([`EventPrefilter::may_match`]), or a JSON line
//! straight from its text ([`EventPrefilter::judge_json_line`]), walking the parser's tokens without
//! building anything and skipping, unread, every member no rule names. The second is what makes a
//! routine line cheap; both walk the same tree of paths and give the same answer.
//!
//! A false answer must be right (the event is dropped); a true one may be wrong (the engine then
//! tests the event fully). Everything the walk is unsure of (nesting too deep, a key that is not
//! stored as sent) answers true or leaves the line unjudged.
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use isms_query::ir::render_scalar;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use crate::engine::Alternative;

type Hasher = foldhash::fast::RandomState;

/// Nesting deeper than this (under `details`) is not walked: the event may match.
const MAX_WALK_DEPTH: usize = 64;

/// A test of an incoming event that is false only when no rule can match it (see the module
/// documentation). Made by `Engine::event_prefilter`.
pub struct EventPrefilter {
    /// This prefilter's number in the process: a scratch used with another forgets its keys.
    number: u64,
    /// The nodes of the paths rules are filed under; the first is `details`, where they all start.
    nodes: Vec<PathNode>,
    /// Per alternative, the rules with a set it is in.
    rules_of: Vec<Vec<usize>>,
    /// Per rule, its sets of alternatives (each must have one that holds).
    rule_sets: Vec<Vec<Vec<usize>>>,
}

/// One key of a stored path: the alternatives a value there can hold, and the keys below it.
#[derive(Default)]
struct PathNode {
    tests: Option<PathTests>,
    children: HashMap<String, NodeId, Hasher>,
}

/// A node's place in [`EventPrefilter::nodes`].
type NodeId = u32;

/// The node every path starts at: `details`.
const ROOT: NodeId = 0;

/// Most top-level keys a scratch remembers the nodes of (past that it forgets them all: a log
/// whose keys never repeat).
const MAX_REMEMBERED_KEYS: usize = 4096;

/// The alternatives of one path.
struct PathTests {
    /// Whole values (ASCII lowercase) and the alternatives they are.
    values: HashMap<String, Vec<usize>, Hasher>,
    /// Literals found anywhere in a value (ASCII case folded), and the alternative of each.
    literals: Option<(aho_corasick::AhoCorasick, Vec<usize>)>,
}

/// What the walk of one event found, kept between events so that its memory is reused.
#[derive(Default)]
pub struct PrefilterScratch {
    /// Per alternative, whether some value holds it.
    held: Vec<bool>,
    /// The alternatives set in `held`, to clear them for the next event.
    touched: Vec<usize>,
    lowered: String,
    number: String,
    /// Top-level incoming keys seen before, and their nodes (`None`: not stored under `details`
    /// as sent). Most logs repeat the same few keys: looking them up again made a lowercase copy
    /// of each and searched the alias and MozDef tables, per key of every event.
    top_keys: HashMap<Box<str>, Option<Nodes>, Hasher>,
    /// The prefilter whose nodes `top_keys` holds.
    used_with: Option<u64>,
}

impl PrefilterScratch {
    fn begin(&mut self, prefilter: &EventPrefilter) {
        for &id in &self.touched {
            self.held[id] = false;
        }
        self.touched.clear();
        if self.used_with != Some(prefilter.number) {
            self.top_keys.clear();
            self.held.clear();
            self.used_with = Some(prefilter.number);
        }
        self.held.resize(prefilter.rules_of.len(), false);
    }

    fn hold(&mut self, id: usize) {
        if !self.held[id] {
            self.held[id] = true;
            self.touched.push(id);
        }
    }
}

/// The nodes a value's path reaches: one, or two where a details alias may also have moved it.
#[derive(Clone, Copy, Default)]
struct Nodes {
    first: Option<NodeId>,
    second: Option<NodeId>,
}

impl Nodes {
    fn is_empty(&self) -> bool {
        self.first.is_none() && self.second.is_none()
    }

    fn iter(self) -> impl Iterator<Item = NodeId> {
        self.first.into_iter().chain(self.second)
    }
}

impl EventPrefilter {
    /// From each rule's sets of alternatives (a set on a field not kept as sent is left out: fewer
    /// conditions only rule out less); `None` when a rule has no set left.
    pub(crate) fn new(rules: &[Vec<Vec<Alternative>>]) -> Option<EventPrefilter> {
        let mut ids: HashMap<&Alternative, usize, Hasher> = HashMap::default();
        let mut alternatives: Vec<&Alternative> = Vec::new();
        let mut rule_sets = Vec::new();
        for sets in rules {
            let mut kept = Vec::new();
            for set in sets {
                let as_sent = set.iter().all(|alternative| {
                    let (Alternative::Equals(field, _) | Alternative::Contains(field, _)) =
                        alternative;
                    field.0.len() > 1 && field.0[0] == "details"
                });
                if !as_sent {
                    continue;
                }
                kept.push(
                    set.iter()
                        .map(|alternative| {
                            *ids.entry(alternative).or_insert_with(|| {
                                alternatives.push(alternative);
                                alternatives.len() - 1
                            })
                        })
                        .collect::<Vec<usize>>(),
                );
            }
            if kept.is_empty() {
                return None;
            }
            rule_sets.push(kept);
        }
        let mut rules_of = vec![Vec::new(); alternatives.len()];
        for (rule, sets) in rule_sets.iter().enumerate() {
            for &id in sets.iter().flatten() {
                if rules_of[id].last() != Some(&rule) {
                    rules_of[id].push(rule);
                }
            }
        }
        type Gathered = (HashMap<String, Vec<usize>, Hasher>, Vec<(String, usize)>);
        let mut gathered: HashMap<&[String], Gathered, Hasher> = HashMap::default();
        for (id, alternative) in alternatives.iter().enumerate() {
            let (Alternative::Equals(field, text) | Alternative::Contains(field, text)) =
                alternative;
            let (values, literals) = gathered.entry(&field.0[1..]).or_default();
            match alternative {
                Alternative::Equals(..) => values.entry(text.clone()).or_default().push(id),
                Alternative::Contains(..) => literals.push((text.clone(), id)),
            }
        }
        let mut nodes = vec![PathNode::default()];
        for (path, (values, literals)) in gathered {
            let literals = if literals.is_empty() {
                None
            } else {
                let automaton = aho_corasick::AhoCorasick::builder()
                    .ascii_case_insensitive(true)
                    .build(literals.iter().map(|(literal, _)| literal))
                    .ok()?;
                Some((automaton, literals.into_iter().map(|(_, id)| id).collect()))
            };
            let mut node = ROOT;
            for key in path {
                let next = nodes.len() as NodeId;
                let child = *nodes[node as usize]
                    .children
                    .entry(key.clone())
                    .or_insert(next);
                if child == next {
                    nodes.push(PathNode::default());
                }
                node = child;
            }
            nodes[node as usize].tests = Some(PathTests { values, literals });
        }
        static NUMBERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Some(EventPrefilter {
            number: NUMBERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            nodes,
            rules_of,
            rule_sets,
        })
    }

    /// Whether some rule may match the event whose incoming form is `raw`, an object normalization
    /// keeps as details only (`isms_event::normalizes_to_details_only`).
    pub fn may_match(&self, raw: &Value) -> bool {
        self.may_match_with(raw, &mut PrefilterScratch::default())
    }

    /// [`EventPrefilter::may_match`] reusing `scratch` from event to event.
    pub fn may_match_with(&self, raw: &Value, scratch: &mut PrefilterScratch) -> bool {
        let Value::Object(map) = raw else {
            return true;
        };
        scratch.begin(self);
        for (key, value) in map {
            let nodes = self.top_nodes(key).unwrap_or_default();
            if !nodes.is_empty() && self.walk_value(value, nodes, scratch, 1, false) {
                return true;
            }
        }
        self.decide(scratch)
    }

    /// Judges a JSON line from its text (trimmed; it starts with `{`): `Some(false)` when no rule
    /// can match its event, `Some(true)` when one may, `None` when it cannot be judged from the
    /// text (not one JSON object, an empty one, a member normalization does not keep under
    /// `details`, one `keeps_key` refuses, nesting too deep); the line is then decoded and judged
    /// as usual. `keeps_key` says whether the reader's decoder keeps an object with a member of
    /// that key as it is.
    pub fn judge_json_line(
        &self,
        line: &str,
        scratch: &mut PrefilterScratch,
        keeps_key: &dyn Fn(&str) -> bool,
    ) -> Option<bool> {
        scratch.begin(self);
        let mut deserializer = serde_json::Deserializer::from_str(line);
        let walked = TopSeed {
            prefilter: self,
            scratch: &mut *scratch,
            keeps_key,
        }
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end());
        match walked {
            Ok(()) => Some(self.decide(scratch)),
            Err(_) => None,
        }
    }

    /// The nodes of a key (as stored) below `nodes`.
    fn child(&self, nodes: Nodes, key: &str) -> Nodes {
        let child_of = |node: NodeId| self.nodes[node as usize].children.get(key).copied();
        Nodes {
            first: nodes.first.and_then(child_of),
            second: nodes.second.and_then(child_of),
        }
    }

    /// The nodes of a top-level incoming key as a scratch remembers them ([`Self::top_nodes`]).
    fn remembered_top_nodes(&self, key: &str, scratch: &mut PrefilterScratch) -> Option<Nodes> {
        if let Some(&nodes) = scratch.top_keys.get(key) {
            return nodes;
        }
        let nodes = self.top_nodes(key);
        if scratch.top_keys.len() >= MAX_REMEMBERED_KEYS {
            scratch.top_keys.clear();
        }
        scratch.top_keys.insert(key.into(), nodes);
        nodes
    }

    /// The nodes of a top-level incoming key: where normalization stores it, and where a details
    /// alias may move it (`user` to `username`; it stays when the target is taken: both are read);
    /// `None` when normalization does not keep it under `details` as sent.
    fn top_nodes(&self, key: &str) -> Option<Nodes> {
        if !isms_event::stays_in_details(key) {
            return None;
        }
        let key = isms_event::stored_key(key);
        let alias = isms_event::FIELD_ALIASES
            .iter()
            .find_map(|alias| match alias.to {
                isms_event::AliasTarget::Details(target) if alias.from == key && target != key => {
                    Some(target)
                }
                _ => None,
            });
        let root = &self.nodes[ROOT as usize];
        Some(Nodes {
            first: root.children.get(key.as_ref()).copied(),
            second: alias.and_then(|target| root.children.get(target).copied()),
        })
    }

    /// Marks the alternatives `value` holds at `nodes`; true when too deep to tell. Objects inside
    /// arrays are not reached (as the rules do not reach them).
    fn walk_value(
        &self,
        value: &Value,
        nodes: Nodes,
        scratch: &mut PrefilterScratch,
        depth: usize,
        in_array: bool,
    ) -> bool {
        if depth > MAX_WALK_DEPTH {
            return true;
        }
        match value {
            Value::Object(_) if in_array => false,
            Value::Object(map) => map.iter().any(|(key, value)| {
                let next = self.child(nodes, &isms_event::stored_key(key));
                !next.is_empty() && self.walk_value(value, next, scratch, depth + 1, false)
            }),
            Value::Array(items) => items
                .iter()
                .any(|item| self.walk_value(item, nodes, scratch, depth + 1, true)),
            scalar => {
                if let Some(text) = render_scalar(scalar) {
                    self.test_scalar(nodes, &text, scratch);
                }
                false
            }
        }
    }

    /// Marks the alternatives `text`, a value at `nodes`, holds.
    fn test_scalar(&self, nodes: Nodes, text: &str, scratch: &mut PrefilterScratch) {
        for node in nodes.iter() {
            let Some(tests) = &self.nodes[node as usize].tests else {
                continue;
            };
            if let Some((automaton, ids)) = &tests.literals {
                for found in automaton.find_overlapping_iter(text.as_bytes()) {
                    scratch.hold(ids[found.pattern().as_usize()]);
                }
            }
            if !tests.values.is_empty() {
                let mut lowered = std::mem::take(&mut scratch.lowered);
                lowered.clear();
                lowered.push_str(text);
                lowered.make_ascii_lowercase();
                if let Some(ids) = tests.values.get(lowered.as_str()) {
                    for &id in ids {
                        scratch.hold(id);
                    }
                }
                scratch.lowered = lowered;
            }
        }
    }

    /// Whether some rule has, in each of its sets, an alternative the event held.
    fn decide(&self, scratch: &PrefilterScratch) -> bool {
        let held = &scratch.held;
        scratch
            .touched
            .iter()
            .flat_map(|&id| &self.rules_of[id])
            .any(|&rule| {
                self.rule_sets[rule]
                    .iter()
                    .all(|set| set.iter().any(|&id| held[id]))
            })
    }
}

/// An error that only ends the walk of a line: the line is then judged the usual way.
#[derive(Debug)]
struct Unjudged;

impl fmt::Display for Unjudged {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("not judged from its text")
    }
}

/// A key as the parser gives it: borrowed from the line unless it had escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
            fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The line's top-level object: each member's key checked, its value walked at its nodes.
struct TopSeed<'p, 's> {
    prefilter: &'p EventPrefilter,
    scratch: &'s mut PrefilterScratch,
    keeps_key: &'p dyn Fn(&str) -> bool,
}

impl<'de> DeserializeSeed<'de> for TopSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TopSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut members = 0usize;
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            members += 1;
            let Some(nodes) = self
                .prefilter
                .remembered_top_nodes(&key, self.scratch)
                .filter(|_| (self.keeps_key)(&key))
            else {
                return Err(serde::de::Error::custom(Unjudged));
            };
            member_value(&mut map, self.prefilter, self.scratch, nodes, 1)?;
        }
        if members == 0 {
            // `{}` is refused by normalization: it is reported the usual way.
            return Err(serde::de::Error::custom(Unjudged));
        }
        Ok(())
    }
}

/// The value of the member whose key was just read: skipped unread where no rule looks, else
/// walked at `nodes`.
fn member_value<'de, A: MapAccess<'de>>(
    map: &mut A,
    prefilter: &EventPrefilter,
    scratch: &mut PrefilterScratch,
    nodes: Nodes,
    depth: usize,
) -> Result<(), A::Error> {
    if nodes.is_empty() {
        map.next_value::<IgnoredAny>().map(|_| ())
    } else {
        map.next_value_seed(ValueSeed {
            prefilter,
            scratch,
            nodes,
            depth,
            in_array: false,
        })
    }
}

/// A value below the top level, walked at `nodes` as [`EventPrefilter::walk_value`] walks one.
struct ValueSeed<'p, 's> {
    prefilter: &'p EventPrefilter,
    scratch: &'s mut PrefilterScratch,
    nodes: Nodes,
    depth: usize,
    in_array: bool,
}

impl ValueSeed<'_, '_> {
    fn scalar(self, text: &str) {
        self.prefilter.test_scalar(self.nodes, text, self.scratch);
    }

    fn number(self, number: serde_json::Number) {
        use std::fmt::Write;
        let mut text = std::mem::take(&mut self.scratch.number);
        text.clear();
        // As `render_scalar` renders the number the parser would have put in a `Value`.
        let _ = write!(text, "{number}");
        self.prefilter.test_scalar(self.nodes, &text, self.scratch);
        self.scratch.number = text;
    }
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        if self.depth > MAX_WALK_DEPTH {
            return Err(serde::de::Error::custom(Unjudged));
        }
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("any JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.scalar(if value { "true" } else { "false" });
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.number(value.into());
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.number(value.into());
        Ok(())
    }

    fn visit_f64<E>(self, value: f64) -> Result<(), E> {
        // What is not a JSON number becomes null in a `Value`: no value to test.
        if let Some(number) = serde_json::Number::from_f64(value) {
            self.number(number);
        }
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.scalar(value);
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.in_array {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        }
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let next = self
                .prefilter
                .child(self.nodes, &isms_event::stored_key(&key));
            member_value(&mut map, self.prefilter, self.scratch, next, self.depth + 1)?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        while items
            .next_element_seed(ValueSeed {
                prefilter: self.prefilter,
                scratch: &mut *self.scratch,
                nodes: self.nodes,
                depth: self.depth + 1,
                in_array: true,
            })?
            .is_some()
        {}
        Ok(())
    }
}
