//! The in-memory executor: decides whether one event (a JSON object) matches a [`Predicate`].
//!
//! This is the streaming engine's hot path, so a predicate is compiled once ([`CompiledPredicate::compile`])
//! and then run against many events: regular expressions and globs are compiled up front, range bounds are
//! normalized, and matching itself allocates only where the semantics need it (rendering a number as text,
//! parsing a time, splitting the summary into words once per event when a word test is present).
//!
//! The semantics are exactly those written in [`crate::ir`]; the SQL executors follow the same text, and a
//! property test in `isms-store` compares the two. Points worth repeating:
//!
//! - Equality and globs ignore ASCII case only: `É` and `é` are different, `A` and `a` are not. Globs are
//!   compiled to a regex in which each ASCII letter is a two-letter class (`[aA]`) and the regex itself is
//!   case-sensitive, because the regex crate's `(?i)` folds all of Unicode. In a glob, `\` makes the next
//!   character literal and a final lone `\` is a literal backslash.
//! - Regexes are anchored (`^(?:re)$`), case-sensitive unless they say `(?i)`, and limited in size.
//! - Time tests ([`FieldTest::TimeEquals`], [`RangeKind::Time`]) compare instants read with
//!   `isms_event::parse_time`; a value that is not a time does not match. On a field that is not a time
//!   field they match nothing, as in the SQL executor (which can only compare its time columns).
//! - Word tests look at the top-level `summary` when it is a string.
//! - CIDR and time-part tests call the very functions the SQL executor registers as SQL functions
//!   ([`crate::network::text_is_in_network`], [`crate::ir::TimeComponent::of_text`]); a field
//!   reference compares the two fields' rendered texts as `Equals` does.
use std::cell::OnceCell;

use serde_json::{Map, Value};

use crate::ir::{
    Bound, FieldPath, FieldTest, Predicate, RangeKind, TextTest, TimeComponent, contains_scalar,
    for_each_scalar, for_each_scalar_of, is_numeric_text, render_scalar, value_at,
};
use crate::network::{IpNetwork, text_is_in_network};
use crate::parser::{REGEX_SIZE_LIMIT, compile_anchored};

/// Deepest predicate tree accepted by [`CompiledPredicate::compile`] (the parser's own limit keeps its
/// output far below this).
pub const MAX_COMPILE_DEPTH: usize = 256;

/// Why a predicate could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum CompileError {
    /// A regular expression does not compile (syntax, or over the size limit).
    #[error("the regular expression /{pattern}/ on {field} is not usable: {problem}")]
    Regex {
        field: String,
        pattern: String,
        problem: String,
    },
    /// A glob does not compile (only possible for enormous patterns).
    #[error("the wildcard pattern {pattern:?} on {field} is not usable: {problem}")]
    Wildcard {
        field: String,
        pattern: String,
        problem: String,
    },
    /// A CIDR test's network is not a network (only possible in hand-built IR: the parser checks).
    #[error("the network {network:?} on {field} is not usable: {problem}")]
    Network {
        field: String,
        network: String,
        problem: String,
    },
    /// A phrase test without any word.
    #[error("a phrase needs at least one word")]
    EmptyPhrase,
    /// The predicate is nested too deeply.
    #[error("the predicate is nested deeper than {limit} levels")]
    TooDeep { limit: usize },
}

/// A predicate ready to be run against events.
#[derive(Debug, Clone)]
pub struct CompiledPredicate {
    root: Node,
}

#[derive(Debug, Clone)]
enum Node {
    All,
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Field {
        path: FieldPath,
        /// The path's number, under which an event's value there is looked up once.
        id: PathId,
        test: Test,
    },
    Text(Text),
    Never,
}

#[derive(Debug, Clone)]
enum Test {
    Exists,
    Equals(String),
    /// A glob compiled to an anchored regex with ASCII-only case folding.
    Wildcard(Regex),
    /// A glob whose stars are only at its ends (`lit*`, `*lit`, `*lit*`, `a*b`): compared byte by
    /// byte, ASCII case folded, without a regex (Sigma's contains, startswith and endswith).
    Affix(Affix),
    Regex(Regex),
    /// Text bounds are ASCII-lowercased once, here.
    Range(RangeKind),
    TimeEquals(i64),
    Cidr(IpNetwork),
    /// Another field of the same event (see [`fields_share_a_value`]).
    FieldRef(FieldPath),
    TimePart(TimeComponent, i64),
}

#[derive(Debug, Clone)]
enum Text {
    Word(String),
    Prefix(String),
    Phrase(Vec<String>),
}

/// Compiles `predicate`; the same as [`CompiledPredicate::compile`].
pub fn compile(predicate: &Predicate) -> Result<CompiledPredicate, CompileError> {
    CompiledPredicate::compile(predicate)
}

impl CompiledPredicate {
    /// Compiles `predicate` for repeated matching.
    pub fn compile(predicate: &Predicate) -> Result<CompiledPredicate, CompileError> {
        Ok(CompiledPredicate {
            root: compile_node(predicate, 0)?,
        })
    }

    /// Whether `document` (an event) satisfies the predicate.
    pub fn matches(&self, document: &Map<String, Value>) -> bool {
        self.matches_with(&mut FieldLookups::new(document))
    }

    /// Whether the event of `lookups` satisfies the predicate; the fields it reads are looked up
    /// once for all the predicates run on the same `lookups` (many rules test the same fields).
    pub fn matches_with(&self, lookups: &mut FieldLookups<'_>) -> bool {
        evaluate(&self.root, lookups)
    }
}

/// A field path's number: equal paths have the same one in this process (see [`FieldLookups`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathId(u32);

/// The number of `path`, the same for every equal path in this process.
pub fn path_id(path: &FieldPath) -> PathId {
    static NUMBERS: std::sync::OnceLock<
        std::sync::Mutex<std::collections::HashMap<FieldPath, u32>>,
    > = std::sync::OnceLock::new();
    let mut numbers = NUMBERS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let next = numbers.len() as u32;
    PathId(*numbers.entry(path.clone()).or_insert(next))
}

/// Most paths of one event [`FieldLookups`] remembers (others are looked up each time).
const REMEMBERED_PATHS: usize = 32;

/// One event's field values as the predicates run on it read them: each path is looked up in the
/// document once, however many predicates test it (with a thousand rules, the same few fields were
/// looked up in the event's maps a hundred times per event). Also the summary's words, split once.
pub struct FieldLookups<'a> {
    document: &'a Map<String, Value>,
    found: Vec<(PathId, Option<&'a Value>)>,
    /// The summary's words (as slices of the original text, not yet lowercased), computed on first use.
    summary_words: OnceCell<Vec<&'a str>>,
}

impl<'a> FieldLookups<'a> {
    pub fn new(document: &'a Map<String, Value>) -> FieldLookups<'a> {
        FieldLookups {
            document,
            found: Vec::new(),
            summary_words: OnceCell::new(),
        }
    }

    /// The value at `path` (numbered `id`), as [`value_at`] finds it.
    pub fn value(&mut self, path: &FieldPath, id: PathId) -> Option<&'a Value> {
        if let Some((_, value)) = self.found.iter().find(|(found, _)| *found == id) {
            return *value;
        }
        let value = value_at(self.document, path);
        if self.found.len() < REMEMBERED_PATHS {
            self.found.push((id, value));
        }
        value
    }

    fn summary_words(&self) -> &[&'a str] {
        self.summary_words
            .get_or_init(|| match self.document.get("summary") {
                Some(Value::String(summary)) => word_runs(summary),
                _ => Vec::new(),
            })
    }
}

fn compile_node(predicate: &Predicate, depth: usize) -> Result<Node, CompileError> {
    if depth > MAX_COMPILE_DEPTH {
        return Err(CompileError::TooDeep {
            limit: MAX_COMPILE_DEPTH,
        });
    }
    let children = |children: &[Predicate]| {
        children
            .iter()
            .map(|child| compile_node(child, depth + 1))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match predicate {
        Predicate::All => Node::All,
        Predicate::And(list) => Node::And(children(list)?),
        Predicate::Or(list) => Node::Or(children(list)?),
        Predicate::Not(child) => Node::Not(Box::new(compile_node(child, depth + 1)?)),
        Predicate::Text(TextTest::Word(word)) => Node::Text(Text::Word(word.clone())),
        Predicate::Text(TextTest::Prefix(prefix)) => Node::Text(Text::Prefix(prefix.clone())),
        Predicate::Text(TextTest::Phrase(words)) => match words.as_slice() {
            [] => return Err(CompileError::EmptyPhrase),
            [word] => Node::Text(Text::Word(word.clone())),
            _ => Node::Text(Text::Phrase(words.clone())),
        },
        Predicate::Field { field, test } => match compile_test(field, test)? {
            Some(test) => Node::Field {
                path: field.clone(),
                id: path_id(field),
                test,
            },
            None => Node::Never,
        },
    })
}

/// `None` when the test can never match.
fn compile_test(field: &FieldPath, test: &FieldTest) -> Result<Option<Test>, CompileError> {
    let lowercase = |bound: &Option<Bound<String>>| {
        bound.as_ref().map(|bound| Bound {
            value: bound.value.to_ascii_lowercase(),
            inclusive: bound.inclusive,
        })
    };
    Ok(Some(match test {
        FieldTest::Exists => Test::Exists,
        FieldTest::Equals(value) => Test::Equals(value.clone()),
        FieldTest::Wildcard(pattern) if affix_of(pattern).is_some() => {
            Test::Affix(affix_of(pattern).expect("checked in the guard"))
        }
        FieldTest::Wildcard(pattern) => {
            let regex = compile_glob(pattern).map_err(|error| CompileError::Wildcard {
                field: field.dotted(),
                pattern: pattern.clone(),
                problem: error.to_string(),
            })?;
            Test::Wildcard(regex)
        }
        FieldTest::Regex(expression) => {
            let regex = compile_anchored(expression).map_err(|problem| CompileError::Regex {
                field: field.dotted(),
                pattern: expression.clone(),
                problem,
            })?;
            Test::Regex(regex)
        }
        FieldTest::Range(RangeKind::Text { lower, upper }) => Test::Range(RangeKind::Text {
            lower: lowercase(lower),
            upper: lowercase(upper),
        }),
        FieldTest::Range(RangeKind::Time { .. }) | FieldTest::TimeEquals(_)
            if !field.is_time_field() =>
        {
            return Ok(None);
        }
        FieldTest::Range(range) => Test::Range(range.clone()),
        FieldTest::TimeEquals(micros) => Test::TimeEquals(*micros),
        FieldTest::Cidr(network) => Test::Cidr(network.parse().map_err(
            |error: crate::network::NetworkError| CompileError::Network {
                field: field.dotted(),
                network: network.clone(),
                problem: error.to_string(),
            },
        )?),
        FieldTest::FieldRef(other) => Test::FieldRef(other.clone()),
        FieldTest::TimePart { part, value } => Test::TimePart(*part, *value),
    }))
}

/// A glob with stars only at its ends, its literal parts ASCII-lowercased.
#[derive(Debug, Clone)]
enum Affix {
    /// No star: the whole text.
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// `*lit*` (`*` alone: any text).
    Contains(String),
    /// `a*b`: starts with `a`, ends with `b`, the two not overlapping.
    PrefixSuffix(String, String),
}

impl Affix {
    fn matches(&self, text: &str) -> bool {
        let text = text.as_bytes();
        let starts = |prefix: &str| {
            text.len() >= prefix.len()
                && text[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        };
        let ends = |suffix: &str| {
            text.len() >= suffix.len()
                && text[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
        };
        match self {
            Affix::Exact(literal) => text.eq_ignore_ascii_case(literal.as_bytes()),
            Affix::Prefix(prefix) => starts(prefix),
            Affix::Suffix(suffix) => ends(suffix),
            Affix::Contains(literal) => contains_ignoring_ascii_case(text, literal.as_bytes()),
            Affix::PrefixSuffix(prefix, suffix) => {
                text.len() >= prefix.len() + suffix.len() && starts(prefix) && ends(suffix)
            }
        }
    }
}

/// The glob as an [`Affix`] when its stars are only at its ends and it has no `?`.
fn affix_of(pattern: &str) -> Option<Affix> {
    let mut parts = vec![String::new()];
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '*' => parts.push(String::new()),
            '?' => return None,
            '\\' => parts
                .last_mut()
                .expect("one part at least")
                .push(characters.next().unwrap_or('\\')),
            other => parts.last_mut().expect("one part at least").push(other),
        }
    }
    for part in &mut parts {
        part.make_ascii_lowercase();
    }
    if parts.len() == 1 {
        return parts.pop().map(Affix::Exact);
    }
    let last = parts.pop().expect("two parts at least");
    let first = parts.remove(0);
    let mut middle: Vec<String> = parts.into_iter().filter(|part| !part.is_empty()).collect();
    match (first.is_empty(), middle.len(), last.is_empty()) {
        (true, 0, true) => Some(Affix::Contains(String::new())),
        (true, 0, false) => Some(Affix::Suffix(last)),
        (false, 0, true) => Some(Affix::Prefix(first)),
        (false, 0, false) => Some(Affix::PrefixSuffix(first, last)),
        (true, 1, true) => middle.pop().map(Affix::Contains),
        _ => None,
    }
}

/// Whether `needle` (ASCII lowercase) is in `haystack`, ASCII case folded: candidates found by
/// `memchr` on the needle's first byte in both cases, then compared.
fn contains_ignoring_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    let Some(&first) = needle.first() else {
        return true;
    };
    if haystack.len() < needle.len() {
        return false;
    }
    let last_start = haystack.len() - needle.len();
    let (lower, upper) = (first.to_ascii_lowercase(), first.to_ascii_uppercase());
    let mut from = 0;
    while from <= last_start {
        let window = &haystack[from..=last_start];
        let found = if lower == upper {
            memchr::memchr(lower, window)
        } else {
            memchr::memchr2(lower, upper, window)
        };
        let Some(offset) = found else {
            return false;
        };
        let start = from + offset;
        if haystack[start..start + needle.len()].eq_ignore_ascii_case(needle) {
            return true;
        }
        from = start + 1;
    }
    false
}

/// The regexes of tests: `regex`'s engine without its full DFAs. Another dependency turns on the
/// building of full DFAs, which `regex` then builds for every small expression when it is
/// compiled: most of the time a thousand rules took to load, for searches over values of a few
/// dozen bytes, where the lazy DFA is as fast.
pub(crate) type Regex = regex_automata::meta::Regex;

/// Regexes built last on this thread, kept for [`build_regex`]: a query's regexes and globs are
/// built when it is parsed (to report one too big at its place) and again when it is compiled,
/// and building one was most of the time a thousand Sigma rules took to load.
const RECENT_REGEXES: usize = 32;

thread_local! {
    static RECENT: std::cell::RefCell<std::collections::VecDeque<(String, Regex)>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
}

/// Builds a test's regex within [`REGEX_SIZE_LIMIT`] (the same engine and limits `regex` uses),
/// or gives back the same one built a moment ago on this thread (a regex is shared, not copied).
pub(crate) fn build_regex(pattern: &str) -> Result<Regex, Box<regex_automata::meta::BuildError>> {
    if let Some(regex) = RECENT.with_borrow(|recent| {
        recent
            .iter()
            .find(|(built, _)| built == pattern)
            .map(|(_, regex)| regex.clone())
    }) {
        return Ok(regex);
    }
    let regex = regex_automata::meta::Builder::new()
        .configure(
            regex_automata::meta::Config::new()
                .nfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .dfa(false),
        )
        .build(pattern)
        .map_err(Box::new)?;
    RECENT.with_borrow_mut(|recent| {
        if recent.len() == RECENT_REGEXES {
            recent.pop_front();
        }
        recent.push_back((pattern.to_owned(), regex.clone()));
    });
    Ok(regex)
}

/// Whether the matcher runs an IR glob as a regex: any glob but a literal with stars only at its
/// ends (compared byte by byte, see `Affix`).
pub(crate) fn glob_needs_regex(pattern: &str) -> bool {
    affix_of(pattern).is_none()
}

/// Compiles an IR glob (the parser checks its globs with this too), within [`REGEX_SIZE_LIMIT`].
pub(crate) fn compile_glob(pattern: &str) -> Result<Regex, Box<regex_automata::meta::BuildError>> {
    build_regex(&glob_to_regex(pattern))
}

/// An IR glob as an anchored regex: `*` any run, `?` one character, ASCII letters as `[xX]` classes so
/// that only ASCII case is folded.
fn glob_to_regex(pattern: &str) -> String {
    let mut regex = String::with_capacity(pattern.len() * 2 + 8);
    regex.push_str("(?s)^");
    let mut characters = pattern.chars().peekable();
    let mut previous_star = false;
    while let Some(character) = characters.next() {
        let literal = match character {
            '*' => {
                if !previous_star {
                    regex.push_str(".*");
                }
                previous_star = true;
                continue;
            }
            '?' => {
                regex.push('.');
                previous_star = false;
                continue;
            }
            '\\' => characters.next().unwrap_or('\\'),
            other => other,
        };
        previous_star = false;
        if literal.is_ascii_alphabetic() {
            regex.push('[');
            regex.push(literal.to_ascii_lowercase());
            regex.push(literal.to_ascii_uppercase());
            regex.push(']');
        } else {
            let mut buffer = [0; 4];
            regex.push_str(&regex::escape(literal.encode_utf8(&mut buffer)));
        }
    }
    regex.push('$');
    regex
}

/// The maximal runs of alphanumeric characters: [`crate::ir::tokenize`] before lowercasing.
fn word_runs(text: &str) -> Vec<&str> {
    let mut runs = Vec::new();
    let mut start = None;
    for (index, character) in text.char_indices() {
        match (character.is_alphanumeric(), start) {
            (true, None) => start = Some(index),
            (false, Some(begin)) => {
                runs.push(&text[begin..index]);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(begin) = start {
        runs.push(&text[begin..]);
    }
    runs
}

/// Whether the token made from `run` (lowercased as `tokenize` does) equals `word`.
fn token_equals(run: &str, word: &str) -> bool {
    if run.is_ascii() {
        run.len() == word.len()
            && run
                .bytes()
                .map(|byte| byte.to_ascii_lowercase())
                .eq(word.bytes())
    } else {
        run.chars().flat_map(char::to_lowercase).eq(word.chars())
    }
}

/// Whether the token made from `run` starts with `prefix`.
fn token_starts_with(run: &str, prefix: &str) -> bool {
    if run.is_ascii() {
        run.len() >= prefix.len()
            && run
                .bytes()
                .zip(prefix.bytes())
                .all(|(byte, expected)| byte.to_ascii_lowercase() == expected)
    } else {
        let mut token = run.chars().flat_map(char::to_lowercase);
        prefix
            .chars()
            .all(|expected| token.next() == Some(expected))
    }
}

fn runs_have_word(runs: &[&str], word: &str) -> bool {
    runs.iter().any(|run| token_equals(run, word))
}

fn runs_have_prefix(runs: &[&str], prefix: &str) -> bool {
    runs.iter().any(|run| token_starts_with(run, prefix))
}

fn runs_have_phrase<W: AsRef<str>>(runs: &[&str], words: &[W]) -> bool {
    !words.is_empty()
        && runs.windows(words.len()).any(|window| {
            window
                .iter()
                .zip(words)
                .all(|(run, word)| token_equals(run, word.as_ref()))
        })
}

/// Whether `summary` holds the word `word` (a lowercase token), decided exactly as the matcher decides
/// `Predicate::Text(TextTest::Word(word))`: the SQL executor's row test calls this.
pub fn summary_has_word(summary: &str, word: &str) -> bool {
    runs_have_word(&word_runs(summary), word)
}

/// Whether a word of `summary` starts with `prefix`, as the matcher decides `TextTest::Prefix`.
pub fn summary_has_prefix(summary: &str, prefix: &str) -> bool {
    runs_have_prefix(&word_runs(summary), prefix)
}

/// Whether `summary` holds `words` as consecutive words, as the matcher decides `TextTest::Phrase`
/// (an empty phrase matches nothing).
pub fn summary_has_phrase<W: AsRef<str>>(summary: &str, words: &[W]) -> bool {
    runs_have_phrase(&word_runs(summary), words)
}

fn evaluate(node: &Node, context: &mut FieldLookups<'_>) -> bool {
    match node {
        Node::All => true,
        Node::Never => false,
        Node::And(children) => children.iter().all(|child| evaluate(child, context)),
        Node::Or(children) => children.iter().any(|child| evaluate(child, context)),
        Node::Not(child) => !evaluate(child, context),
        Node::Text(text) => {
            let runs = context.summary_words();
            match text {
                Text::Word(word) => runs_have_word(runs, word),
                Text::Prefix(prefix) => runs_have_prefix(runs, prefix),
                Text::Phrase(words) => runs_have_phrase(runs, words),
            }
        }
        Node::Field {
            path,
            id,
            test: Test::Exists,
        } => context.value(path, *id).is_some_and(contains_scalar),
        Node::Field {
            path,
            test: Test::FieldRef(other),
            ..
        } => fields_share_a_value(context.document, path, other),
        Node::Field { path, id, test } => {
            let Some(value) = context.value(path, *id) else {
                return false;
            };
            let mut found = false;
            for_each_scalar_of(value, |scalar| {
                if !found && scalar_matches(test, scalar) {
                    found = true;
                }
            });
            found
        }
    }
}

fn holds<T: PartialOrd>(value: &T, lower: &Option<Bound<T>>, upper: &Option<Bound<T>>) -> bool {
    let above = match lower {
        None => true,
        Some(bound) if bound.inclusive => *value >= bound.value,
        Some(bound) => *value > bound.value,
    };
    let below = match upper {
        None => true,
        Some(bound) if bound.inclusive => *value <= bound.value,
        Some(bound) => *value < bound.value,
    };
    above && below
}

/// A byte-wise comparison of `text`, ASCII-lowercased, with an already lowercased bound.
fn text_holds(text: &str, lower: &Option<Bound<String>>, upper: &Option<Bound<String>>) -> bool {
    use std::cmp::Ordering;
    let compare = |bound: &str| {
        text.bytes()
            .map(|byte| byte.to_ascii_lowercase())
            .cmp(bound.bytes())
    };
    let above = match lower {
        None => true,
        Some(bound) => match compare(&bound.value) {
            Ordering::Greater => true,
            Ordering::Equal => bound.inclusive,
            Ordering::Less => false,
        },
    };
    let below = match upper {
        None => true,
        Some(bound) => match compare(&bound.value) {
            Ordering::Less => true,
            Ordering::Equal => bound.inclusive,
            Ordering::Greater => false,
        },
    };
    above && below
}

fn number_of(scalar: &Value) -> Option<f64> {
    match scalar {
        Value::Number(number) => number.as_f64(),
        Value::String(text) if is_numeric_text(text) => text.parse().ok(),
        _ => None,
    }
}

fn micros_of_scalar(scalar: &Value) -> Option<i64> {
    let text = render_scalar(scalar)?;
    isms_event::parse_time(&text)
        .ok()
        .map(isms_event::micros_of)
}

fn scalar_matches(test: &Test, scalar: &Value) -> bool {
    match test {
        Test::Exists => true,
        Test::Equals(value) => {
            render_scalar(scalar).is_some_and(|text| text.eq_ignore_ascii_case(value))
        }
        Test::Wildcard(regex) | Test::Regex(regex) => {
            render_scalar(scalar).is_some_and(|text| regex.is_match(text.as_ref() as &str))
        }
        Test::Affix(affix) => render_scalar(scalar).is_some_and(|text| affix.matches(&text)),
        Test::Range(RangeKind::Number { lower, upper }) => {
            number_of(scalar).is_some_and(|number| holds(&number, lower, upper))
        }
        Test::Range(RangeKind::Text { lower, upper }) => {
            render_scalar(scalar).is_some_and(|text| text_holds(&text, lower, upper))
        }
        Test::Range(RangeKind::Time { lower, upper }) => {
            micros_of_scalar(scalar).is_some_and(|micros| holds(&micros, lower, upper))
        }
        Test::TimeEquals(expected) => micros_of_scalar(scalar) == Some(*expected),
        Test::Cidr(network) => {
            render_scalar(scalar).is_some_and(|text| text_is_in_network(&text, network))
        }
        Test::TimePart(part, expected) => {
            render_scalar(scalar).is_some_and(|text| part.of_text(&text) == Some(*expected))
        }
        // Decided over the whole document in `evaluate`.
        Test::FieldRef(_) => false,
    }
}

/// Whether some scalar of `path` and some scalar of `other` render to the same text, ignoring
/// ASCII case ([`FieldTest::FieldRef`]).
pub fn fields_share_a_value(
    document: &Map<String, Value>,
    path: &FieldPath,
    other: &FieldPath,
) -> bool {
    let mut other_texts = Vec::new();
    for_each_scalar(document, other, |scalar| {
        if let Some(text) = render_scalar(scalar) {
            other_texts.push(text);
        }
    });
    if other_texts.is_empty() {
        return false;
    }
    let mut found = false;
    for_each_scalar(document, path, |scalar| {
        if !found && let Some(text) = render_scalar(scalar) {
            found = other_texts
                .iter()
                .any(|other_text| other_text.eq_ignore_ascii_case(&text));
        }
    });
    found
}

#[cfg(test)]
mod affix_tests {
    //! Globs with stars only at their ends skip the regex: they must match exactly what the regex
    //! of the same glob matches.
    use proptest::prelude::*;

    use super::*;

    fn glob() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("B"),
                Just("ab"),
                Just("*"),
                Just("\\*"),
                Just("\\\\"),
                Just("\\"),
                Just("é"),
                Just("."),
                Just("?"),
            ],
            0..6,
        )
        .prop_map(|parts| parts.concat())
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("A"),
                Just("b"),
                Just("B"),
                Just("*"),
                Just("\\"),
                Just("é"),
                Just("É"),
                Just("."),
                Just("\n"),
            ],
            0..8,
        )
        .prop_map(|parts| parts.concat())
    }

    proptest! {
        #[test]
        fn an_affix_matches_what_the_glob_regex_matches(pattern in glob(), texts in proptest::collection::vec(text(), 1..8)) {
            let regex = compile_glob(&pattern).unwrap();
            if let Some(affix) = affix_of(&pattern) {
                for text in &texts {
                    prop_assert_eq!(affix.matches(text), regex.is_match(text), "{:?} on {:?} ({:?})", pattern, text, affix);
                }
            } else {
                prop_assert!(pattern.contains('?') || pattern.matches('*').count() >= 2, "{:?}", pattern);
            }
        }
    }

    #[test]
    fn the_affix_forms() {
        assert!(
            matches!(affix_of("*Lsass*"), Some(Affix::Contains(literal)) if literal == "lsass")
        );
        assert!(
            matches!(affix_of("*\\\\cmd.exe"), Some(Affix::Suffix(literal)) if literal == "\\cmd.exe")
        );
        assert!(matches!(affix_of("C:*"), Some(Affix::Prefix(literal)) if literal == "c:"));
        assert!(matches!(affix_of("a*b"), Some(Affix::PrefixSuffix(..))));
        assert!(affix_of("*a*b*").is_none());
        assert!(affix_of("a?").is_none());
        assert!(Affix::Contains("lsass".into()).matches("procdump -ma LSASS.exe"));
        assert!(!Affix::PrefixSuffix("ab".into(), "ba".into()).matches("aba"));
    }
}

#[cfg(test)]
mod tests {
    //! The semantics of `ir.rs`, one test kind at a time, on small events. Queries are written in the search
    //! language where that is clearer; the IR is built directly for what the parser never produces.
    use serde_json::json;

    use super::*;
    use crate::parser::parse;

    fn event(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn sample() -> Map<String, Value> {
        event(json!({
            "utctimestamp": "2024-01-30T13:24:43.123456+00:00",
            "receivedtimestamp": "not a time",
            "hostname": "Web-01.Example.com",
            "severity": "WARNING",
            "category": "authentication",
            "processid": 4242,
            "summary": "Failed password for root from 10.0.0.1 port 2222 ssh2; École fermée",
            "tags": ["sshd", "Brute", 7, true, null, {"nested": "x"}, ["inner"]],
            "details": {
                "username": "Root",
                "sourceipaddress": "10.0.0.1",
                "destinationport": 22,
                "ratio": 0.5,
                "count": "17",
                "big": "1e3",
                "hex": "0x10",
                "padded": " 5",
                "name": "É",
                "empty": "",
                "none": null,
                "flag": false,
                "object": {"deeper": {"key": "value"}},
                "multiline": "line one\nline two",
                "slash": "a/b",
            },
        }))
    }

    fn compiled(query: &str) -> CompiledPredicate {
        let predicate = parse(query).unwrap_or_else(|error| panic!("{query:?}: {error}"));
        CompiledPredicate::compile(&predicate).unwrap_or_else(|error| panic!("{query:?}: {error}"))
    }

    #[track_caller]
    fn check(document: &Map<String, Value>, query: &str, expected: bool) {
        assert_eq!(compiled(query).matches(document), expected, "{query:?}");
    }

    #[track_caller]
    fn check_all(document: &Map<String, Value>, cases: &[(&str, bool)]) {
        for (query, expected) in cases {
            check(document, query, *expected);
        }
    }

    #[test]
    fn exists_needs_a_scalar_at_or_below_the_path() {
        check_all(
            &sample(),
            &[
                ("hostname:*", true),
                ("_exists_:details.username", true),
                ("_exists_:details.flag", true),
                ("_exists_:details.empty", true),
                ("_exists_:tags", true),
                ("_exists_:details.none", false),
                ("_exists_:details.object", true),
                ("_exists_:details.object.deeper.key", true),
                ("_exists_:details.missing", false),
                ("_exists_:details.username.deeper", false),
                ("_exists_:Details.UserName", true),
            ],
        );
        let only_containers = event(json!({"a": [null, {"b": 1}, [1]], "e": []}));
        check_all(
            &only_containers,
            // Presence counts scalars at any depth; paths never go through arrays.
            &[("a:*", true), ("e:*", false), ("_exists_:a.b", false)],
        );
    }

    #[test]
    fn equals_ignores_ascii_case_only() {
        check_all(
            &sample(),
            &[
                ("details.username:root", true),
                ("details.username:ROOT", true),
                ("details.username:roo", false),
                ("hostname:web-01.example.COM", true),
                ("details.name:É", true),
                ("details.name:é", false),
                ("details.destinationport:22", true),
                ("details.destinationport:22.0", false),
                ("details.ratio:0.5", true),
                ("details.flag:false", true),
                ("details.flag:FALSE", true),
                ("details.empty:\"\"", true),
                ("details.none:\"\"", false),
                ("details.none:null", false),
                ("details.object:*", true),
                ("details.object.deeper.key:VALUE", true),
                ("processid:4242", true),
            ],
        );
    }

    #[test]
    fn arrays_match_when_any_scalar_does() {
        check_all(
            &sample(),
            &[
                ("tags:sshd", true),
                ("tags:brute", true),
                ("tags:7", true),
                ("tags:true", true),
                ("tags:x", false),
                ("tags:inner", false),
                ("tags:null", false),
                ("tags:>5", true),
                ("tags:>7", false),
                ("NOT tags:sshd", false),
                ("-tags:missing", true),
            ],
        );
    }

    #[test]
    fn wildcards() {
        check_all(
            &sample(),
            &[
                ("details.username:r*", true),
                ("details.username:R?OT", true),
                ("details.username:r?t", false),
                ("details.username:*", true),
                ("hostname:*.example.com", true),
                ("hostname:web-0?.*", true),
                ("hostname:web", false),
                ("details.name:?", true),
                ("details.name:é*", false),
                ("details.multiline:line*two", true),
                ("details.multiline:line?one?line*", true),
                ("details.destinationport:2?", true),
                ("details.slash:a\\/*", true),
                ("details.slash:a/b*", true),
                ("details.empty:*", true),
            ],
        );
        let literal = event(json!({"a": "x*y?z\\w", "b": "xAy", "c": "[x]+(y)"}));
        check_all(
            &literal,
            &[
                (r"a:x\*y\?z\\w*", true),
                (r"a:x\*Y?z*", true),
                (r"a:x\**", true),
                (r"a:xx\**", false),
                ("b:x?y", true),
                ("b:X*Y", true),
                (r"c:\[x\]+\(y\)*", true),
                (r"c:\[?\]*", true),
            ],
        );
        // Hand-built patterns: a `\` before any character makes it literal, a final `\` is a backslash.
        let glob = |pattern: &str| {
            compile(&Predicate::Field {
                field: FieldPath::parse_dotted("a"),
                test: FieldTest::Wildcard(pattern.to_owned()),
            })
            .expect("compiles")
        };
        assert!(glob(r"x\*y\?z\\w").matches(&literal));
        assert!(glob(r"\x*").matches(&literal));
        assert!(glob(r"*\w").matches(&literal));
        assert!(glob(r"*\").matches(&event(json!({"a": "ends with \\"}))));
        assert!(!glob(r"*\").matches(&event(json!({"a": "ends with w"}))));
        assert!(glob("").matches(&event(json!({"a": ""}))));
        assert!(!glob("").matches(&event(json!({"a": "x"}))));
    }

    #[test]
    fn regexes_are_anchored_and_case_sensitive() {
        check_all(
            &sample(),
            &[
                ("details.username:/Ro+t/", true),
                ("details.username:/root/", false),
                ("details.username:/(?i)root/", true),
                ("details.username:/oo/", false),
                ("details.username:/.*oo.*/", true),
                ("details.username:/R|x/", false),
                ("details.sourceipaddress:/10\\.0\\.0\\.\\d+/", true),
                ("details.destinationport:/2+/", true),
                ("details.slash:/a\\/b/", true),
                ("details.multiline:/line.*/", false),
                ("details.multiline:/(?s)line.*/", true),
                ("/Failed.*/", true),
                ("/failed.*/", false),
                ("tags:/[0-9]/", true),
            ],
        );
    }

    #[test]
    fn number_ranges_take_numbers_and_numeric_text() {
        check_all(
            &sample(),
            &[
                ("details.destinationport:[1 TO 1024]", true),
                ("details.destinationport:{22 TO 1024]", false),
                ("details.destinationport:[22 TO 22]", true),
                ("details.destinationport:[1 TO 22}", false),
                ("details.destinationport:<=22", true),
                ("details.ratio:[0.25 TO 0.75]", true),
                ("details.count:>9", true),
                ("details.count:[1 TO 2]", false),
                ("details.big:[999 TO 1001]", true),
                ("details.hex:>0", false),
                ("details.padded:>0", false),
                ("details.flag:<1", false),
                ("details.username:>0", false),
                ("details.destinationport:[-1e999 TO 1e999]", true),
            ],
        );
    }

    #[test]
    fn text_ranges_compare_lowercased_bytes() {
        check_all(
            &sample(),
            &[
                ("details.username:[r TO s]", true),
                ("details.username:[ROOT TO ROOT]", true),
                ("details.username:{root TO z]", false),
                ("hostname:[web TO wex]", true),
                // "10" < "9" as text: a quoted bound makes the range textual.
                ("details.count:[\"1\" TO \"9\"]", true),
                ("details.count:[1 TO 9]", false),
                ("details.destinationport:[\"2\" TO \"3\"]", true),
                ("details.name:[a TO z]", false),
                ("details.name:>z", true),
                ("details.flag:[f TO g]", true),
                ("details.missing:[* TO *]", false),
                ("details.empty:[* TO *]", true),
                ("details.empty:<a", true),
                ("summary:[f TO g]", true),
            ],
        );
        // Bounds the parser did not lowercase are lowercased too.
        let upper = Predicate::Field {
            field: FieldPath::parse_dotted("details.username"),
            test: FieldTest::Range(RangeKind::Text {
                lower: Some(Bound {
                    value: "ROOT".to_owned(),
                    inclusive: true,
                }),
                upper: Some(Bound {
                    value: "ROOT".to_owned(),
                    inclusive: true,
                }),
            }),
        };
        assert!(compile(&upper).expect("compiles").matches(&sample()));
    }

    #[test]
    fn time_tests_compare_instants() {
        check_all(
            &sample(),
            &[
                ("utctimestamp:[2024-01-30 TO 2024-01-31]", true),
                ("utctimestamp:[2024-01-30T13:24:43.123456Z TO *]", true),
                ("utctimestamp:{2024-01-30T13:24:43.123456Z TO *]", false),
                ("utctimestamp:<2024-01-30T14:24:43.123457+01:00", true),
                ("utctimestamp:<2024-01-30T14:24:43.123456+01:00", false),
                ("utctimestamp:2024-01-30T14:24:43.123456+01:00", true),
                ("utctimestamp:\"2024-01-30 13:24:43.123456\"", true),
                ("utctimestamp:2024-01-30T13:24:43Z", false),
                ("utctimestamp:2024-01-30*", true),
                ("utctimestamp:[* TO *]", true),
                ("receivedtimestamp:[* TO *]", false),
                ("receivedtimestamp:>1970-01-01", false),
                ("_exists_:receivedtimestamp", true),
                (
                    "utctimestamp:>1970-01-01 AND NOT receivedtimestamp:>1970-01-01",
                    true,
                ),
            ],
        );
        let epoch = event(json!({"utctimestamp": 1_706_621_083}));
        check(&epoch, "utctimestamp:2024-01-30T13:24:43Z", true);
        // Time tests on a field that is not a time field match nothing (like the SQL executor).
        let on_text = Predicate::Field {
            field: FieldPath::parse_dotted("timestamp"),
            test: FieldTest::TimeEquals(0),
        };
        let document = event(json!({"timestamp": "1970-01-01T00:00:00Z"}));
        assert!(!compile(&on_text).expect("compiles").matches(&document));
    }

    #[test]
    fn cidr_takes_addresses_of_the_network_family() {
        let document = event(json!({
            "v4": "10.1.2.3",
            "v6": "2001:DB8::1",
            "mapped": "::ffff:10.0.0.1",
            "list": ["host", "192.168.1.5", 7],
            "spaced": " 10.0.0.1",
            "number": 10,
            "nested": {"ip": "172.16.0.1"},
        }));
        check_all(
            &document,
            &[
                ("v4:cidr(10.0.0.0/8)", true),
                ("v4:cidr(10.1.2.3/32)", true),
                ("v4:cidr(10.1.2.2/32)", false),
                ("v4:cidr(11.0.0.0/8)", false),
                ("v4:cidr(0.0.0.0/0)", true),
                ("v4:cidr(::/0)", false),
                ("v6:cidr(2001:db8::/32)", true),
                ("v6:cidr(2001:db9::/32)", false),
                ("v6:cidr(0.0.0.0/0)", false),
                ("mapped:cidr(10.0.0.0/8)", false),
                ("mapped:cidr(::ffff:0:0/96)", true),
                ("list:cidr(192.168.0.0/16)", true),
                ("list:cidr(10.0.0.0/8)", false),
                ("spaced:cidr(10.0.0.0/8)", false),
                ("number:cidr(0.0.0.0/0)", false),
                ("nested:cidr(0.0.0.0/0)", false),
                ("nested.ip:cidr(172.16.0.0/12)", true),
                ("missing:cidr(0.0.0.0/0)", false),
                ("NOT missing:cidr(0.0.0.0/0)", true),
            ],
        );
        let hand_built = Predicate::Field {
            field: FieldPath::parse_dotted("v4"),
            test: FieldTest::Cidr("10.0.0.0/33".to_owned()),
        };
        let error = compile(&hand_built).expect_err("not a network");
        assert_eq!(
            error.to_string(),
            "the network \"10.0.0.0/33\" on v4 is not usable: the prefix length 33 is longer than the 32 bits of an IPv4 address"
        );
    }

    #[test]
    fn field_references_compare_rendered_texts_of_two_fields() {
        let document = event(json!({
            "user": "Root",
            "target": "rOOT",
            "other": "bob",
            "port": 22,
            "port_text": "22",
            "names": ["x", "BOB"],
            "empty": [],
            "none": null,
            "flag": true,
            "flag_text": "TRUE",
            "unicode": "É",
            "unicode_lower": "é",
            "details": {"user": "root"},
        }));
        check_all(
            &document,
            &[
                ("user:fieldref(target)", true),
                ("user:fieldref(details.user)", true),
                ("user:fieldref(other)", false),
                ("other:fieldref(names)", true),
                ("names:fieldref(other)", true),
                ("port:fieldref(port_text)", true),
                ("flag:fieldref(flag_text)", true),
                ("unicode:fieldref(unicode_lower)", false),
                ("user:fieldref(user)", true),
                ("user:fieldref(missing)", false),
                ("missing:fieldref(user)", false),
                ("missing:fieldref(missing)", false),
                ("empty:fieldref(empty)", false),
                ("none:fieldref(none)", false),
                ("details:fieldref(details)", false),
                ("NOT user:fieldref(other)", true),
            ],
        );
    }

    #[test]
    fn time_parts_read_any_field_as_a_utc_time() {
        let document = event(json!({
            "utctimestamp": "2024-12-30T23:59:43.123456+00:00",
            "local": "2024-12-31T01:15:00+02:00",
            "naive": "2021-01-03 07:08:09",
            "epoch": 1_706_621_083,
            "epoch_text": "1706621083",
            "date": "2024-02-29",
            "list": ["no", "2020-06-15T12:00:00Z"],
            "text": "yesterday",
            "empty": "",
        }));
        check_all(
            &document,
            &[
                ("utctimestamp:minute(59)", true),
                ("utctimestamp:hour(23)", true),
                ("utctimestamp:day(30)", true),
                // 2024-12-30 is a Monday in the first ISO week of 2025.
                ("utctimestamp:week(1)", true),
                ("utctimestamp:week(53)", false),
                ("utctimestamp:month(12)", true),
                ("utctimestamp:year(2024)", true),
                ("utctimestamp:year(2025)", false),
                // Components are UTC: 01:15 at +02:00 is 23:15 the day before.
                ("local:hour(23)", true),
                ("local:hour(1)", false),
                ("local:day(30)", true),
                ("local:minute(15)", true),
                // 2021-01-03 is a Sunday in week 53 of 2020.
                ("naive:week(53)", true),
                ("naive:year(2021)", true),
                // 2024-01-30T13:24:43Z.
                ("epoch:hour(13)", true),
                ("epoch:minute(24)", true),
                ("epoch_text:week(5)", true),
                ("date:day(29)", true),
                ("date:hour(0)", true),
                ("list:month(6)", true),
                ("list:month(1)", false),
                ("text:year(2024)", false),
                ("empty:minute(0)", false),
                ("missing:minute(0)", false),
            ],
        );
    }

    #[test]
    fn words_of_the_summary() {
        check_all(
            &sample(),
            &[
                ("failed", true),
                ("FAILED", true),
                ("fail", false),
                ("fail*", true),
                ("passw*", true),
                ("password*", true),
                ("passwords*", false),
                ("\"password for root\"", true),
                ("\"root for password\"", false),
                ("\"failed root\"", false),
                ("\"10.0.0.1 port\"", true),
                ("10.0.0.1", true),
                ("ssh2", true),
                ("ssh", false),
                ("école", true),
                ("ÉCOLE", true),
                ("fermée", true),
                ("fermee", false),
                ("summary:(failed AND NOT accepted)", true),
                ("*ssword*", true),
                ("f?iled", true),
                // Two terms: `*port` and the prefix `2222*`.
                ("*port 2222*", true),
                ("*port 2223*", false),
                ("*port\\ 2222*", true),
                ("summary:*", true),
                ("_exists_:summary", true),
            ],
        );
        let no_summary = event(json!({"details": {"summary": "failed"}}));
        check_all(
            &no_summary,
            &[
                ("failed", false),
                ("NOT failed", true),
                ("summary:*", false),
            ],
        );
        let number_summary = event(json!({"summary": 42}));
        check_all(&number_summary, &[("42", false), ("summary:*", true)]);
        let array_summary = event(json!({"summary": ["failed", "login"]}));
        check_all(&array_summary, &[("failed", false)]);
    }

    #[test]
    fn booleans() {
        let document = sample();
        check_all(
            &document,
            &[
                ("*", true),
                ("NOT *", false),
                ("category:authentication AND details.username:ro*", true),
                ("category:authentication AND details.username:x*", false),
                ("category:x OR details.username:ro*", true),
                ("category:x OR details.username:x", false),
                ("category:authentication -details.username:root", false),
                ("NOT NOT category:authentication", true),
                (
                    "(category:x OR tags:sshd) AND (severity:warning || severity:error)",
                    true,
                ),
            ],
        );
        let always =
            |predicate: Predicate| compile(&predicate).expect("compiles").matches(&document);
        assert!(always(Predicate::And(vec![])));
        assert!(!always(Predicate::Or(vec![])));
    }

    #[test]
    fn compile_errors() {
        let regex = Predicate::Field {
            field: FieldPath::parse_dotted("a"),
            test: FieldTest::Regex("a(".to_owned()),
        };
        let error = compile(&regex).expect_err("a bad regex");
        assert!(
            matches!(&error, CompileError::Regex { field, pattern, .. } if field == "a" && pattern == "a("),
            "{error}"
        );
        assert!(
            error
                .to_string()
                .starts_with("the regular expression /a(/ on a is not usable"),
            "{error}"
        );
        let big = Predicate::Field {
            field: FieldPath::parse_dotted("a"),
            test: FieldTest::Regex("x{1000}{1000}".to_owned()),
        };
        assert!(matches!(compile(&big), Err(CompileError::Regex { .. })));
        assert_eq!(
            compile(&Predicate::Text(TextTest::Phrase(vec![]))).err(),
            Some(CompileError::EmptyPhrase)
        );
        let one = compile(&Predicate::Text(TextTest::Phrase(vec![
            "failed".to_owned(),
        ])))
        .expect("compiles");
        assert!(one.matches(&sample()));
        let mut deep = Predicate::All;
        for _ in 0..=MAX_COMPILE_DEPTH {
            deep = Predicate::Not(Box::new(deep));
        }
        assert_eq!(
            compile(&deep).err(),
            Some(CompileError::TooDeep {
                limit: MAX_COMPILE_DEPTH
            })
        );
        assert_eq!(
            serde_json::to_value(CompileError::TooDeep { limit: 3 }).expect("serializes"),
            json!({"kind": "too_deep", "limit": 3})
        );
    }

    #[test]
    fn a_huge_glob_still_compiles() {
        let pattern = format!("*{}?*", "aé\\*".repeat(4000));
        let predicate = Predicate::Field {
            field: FieldPath::parse_dotted("a"),
            test: FieldTest::Wildcard(pattern),
        };
        let compiled = compile(&predicate).expect("compiles");
        let document = event(json!({"a": format!("x{}yz", "Aé*".repeat(4000))}));
        assert!(compiled.matches(&document));
    }

    #[test]
    fn word_runs_are_the_tokens_before_lowercasing() {
        for text in [
            "",
            "  ",
            "Failed password for ROOT",
            "a-b_c.d",
            "École–fermée 中文 x1y2",
            "İx ß ǅ",
        ] {
            let lowered: Vec<String> = word_runs(text)
                .iter()
                .map(|run| run.chars().flat_map(char::to_lowercase).collect())
                .collect();
            assert_eq!(lowered, crate::ir::tokenize(text), "{text:?}");
        }
    }
}
