//! The SQL executor of the predicate IR for SQLite.
//!
//! A [`Predicate`] compiles into two things:
//! - an exact per-row condition on `events e` (the IR's semantics, written in SQL over `e.doc` with
//!   SQLite's JSON functions, and the matcher's own code for full text, CIDR and time-part tests, see
//!   `functions.rs`), and
//! - an optional *driver*: a subquery of candidate `seq`s from the term index (summary words and field
//!   terms, see `segments.rs`) that every matching event is guaranteed to be in, marked *exact* when its
//!   rows are precisely the matches.
//!
//! The store picks a plan per query: when the driver is selective it joins from the candidates; otherwise
//! it walks the time index newest first and tests each row, which stops as soon as a page is full. Both
//! plans must agree with each other and with the in-memory matcher (property-tested in
//! `tests/executors_agree.rs`).
use std::sync::Arc;

use isms_query::ir::{FieldPath, FieldTest, Predicate, RangeKind, TextTest};

use super::segments::TermQuery;

use super::functions::{PHRASE_SEPARATOR, TextKind};
use crate::terms::{
    has_presence_token, has_value_tokens, id_token, presence_token, value_prefix_token,
    value_token, word_prefix_token, word_token,
};

/// A parameter bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SqlParam {
    Text(String),
    Integer(i64),
    Real(f64),
}

/// SQL text with its parameters in placeholder order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SqlFragment {
    pub sql: String,
    pub params: Vec<SqlParam>,
}

impl SqlFragment {
    fn push_sql(&mut self, sql: &str) {
        self.sql.push_str(sql);
    }

    fn push_param(&mut self, param: SqlParam) {
        self.sql.push('?');
        self.params.push(param);
    }

    fn append(&mut self, other: SqlFragment) {
        self.sql.push_str(&other.sql);
        self.params.extend(other.params);
    }
}

/// A set of candidate event `seq`s from the inverted indexes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Driver {
    /// A query on the term index (segment files, see `segments.rs`); replaced by [`Driver::Seqs`]
    /// before any SQL is written.
    Terms(TermQuery),
    /// The seqs a term query named, ascending.
    Seqs(Arc<Vec<i64>>),
    /// Rows in any child.
    Union(Vec<Driver>),
    /// Rows in every child.
    Intersect(Vec<Driver>),
}

impl Driver {
    /// `SELECT rowid ...` producing the candidates. Term queries must have been resolved.
    pub(crate) fn to_sql(&self) -> SqlFragment {
        let mut fragment = SqlFragment::default();
        match self {
            Driver::Terms(_) => {
                debug_assert!(false, "term queries are resolved before SQL is written");
                fragment.push_sql("SELECT seq AS rowid FROM events WHERE 0");
            }
            Driver::Seqs(seqs) => {
                // Scattered seqs travel as a JSON list, read as they are; runs of consecutive seqs as
                // [first, last] pairs, expanded off the rowid b-tree: a term held by most events is a
                // handful of ranges instead of millions of numbers.
                let (singles, runs) = split_runs(seqs);
                fragment.push_sql("SELECT value AS rowid FROM json_each(");
                fragment.push_param(SqlParam::Text(singles));
                fragment.push_sql(")");
                if let Some(runs) = runs {
                    fragment.push_sql(" UNION ALL SELECT candidate.seq AS rowid FROM json_each(");
                    fragment.push_param(SqlParam::Text(runs));
                    fragment.push_sql(
                        ") AS run CROSS JOIN events AS candidate \
                         ON candidate.seq BETWEEN run.value ->> 0 AND run.value ->> 1",
                    );
                }
            }
            Driver::Union(children) | Driver::Intersect(children) => {
                let operator = if matches!(self, Driver::Union(_)) {
                    " UNION "
                } else {
                    " INTERSECT "
                };
                for (position, child) in children.iter().enumerate() {
                    if position > 0 {
                        fragment.push_sql(operator);
                    }
                    // Compound members cannot be parenthesized in SQLite; wrap each in a subquery.
                    fragment.push_sql("SELECT rowid FROM (");
                    fragment.append(child.to_sql());
                    fragment.push_sql(")");
                }
            }
        }
        fragment
    }

    /// Replaces every term query with the seqs it names, using `lookup`.
    pub(crate) fn resolve(self, lookup: &impl Fn(&TermQuery) -> Vec<i64>) -> Driver {
        match self {
            Driver::Terms(query) => Driver::Seqs(Arc::new(lookup(&query))),
            Driver::Union(children) => Driver::Union(
                children
                    .into_iter()
                    .map(|child| child.resolve(lookup))
                    .collect(),
            ),
            Driver::Intersect(children) => Driver::Intersect(
                children
                    .into_iter()
                    .map(|child| child.resolve(lookup))
                    .collect(),
            ),
            other => other,
        }
    }

    /// Drivers of every child of an AND (`conjunction`) or an OR: term queries merge into one (the term
    /// index intersects and unites its lists itself); the rest intersect or unite in SQL. `None` when
    /// there is no child driver.
    fn combine(drivers: Vec<Driver>, conjunction: bool) -> Option<Driver> {
        let mut terms = Vec::new();
        let mut others = Vec::new();
        for driver in drivers {
            match driver {
                Driver::Terms(query) => terms.push(query),
                other => others.push(other),
            }
        }
        if !terms.is_empty() {
            let query = if terms.len() == 1 {
                terms.pop().expect("one term query")
            } else if conjunction {
                TermQuery::And(terms)
            } else {
                TermQuery::Or(terms)
            };
            others.insert(0, Driver::Terms(query));
        }
        match others.len() {
            0 => None,
            1 => others.pop(),
            _ if conjunction => Some(Driver::Intersect(others)),
            _ => Some(Driver::Union(others)),
        }
    }
}

/// Runs of consecutive values shorter than this travel as single values.
const MIN_RUN_LENGTH: usize = 4;

/// For an ascending list: a JSON list of the values outside long runs, and `[[first,last],...]` for
/// the runs of at least [`MIN_RUN_LENGTH`] consecutive values (None when there is none).
fn split_runs(seqs: &[i64]) -> (String, Option<String>) {
    use std::fmt::Write as _;
    let mut singles = String::from("[");
    let mut runs = String::from("[");
    let mut index = 0;
    while index < seqs.len() {
        let first = seqs[index];
        let mut end = index + 1;
        while end < seqs.len() && seqs[end] == seqs[end - 1] + 1 {
            end += 1;
        }
        if end - index >= MIN_RUN_LENGTH {
            if runs.len() > 1 {
                runs.push(',');
            }
            let _ = write!(runs, "[{first},{}]", seqs[end - 1]);
        } else {
            for seq in &seqs[index..end] {
                if singles.len() > 1 {
                    singles.push(',');
                }
                let _ = write!(singles, "{seq}");
            }
        }
        index = end;
    }
    singles.push(']');
    runs.push(']');
    (singles, (runs.len() > 2).then_some(runs))
}

/// A compiled predicate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CompiledPredicate {
    /// Exact per-row condition on `events e`.
    pub condition: SqlFragment,
    /// Candidates from the indexes, if the predicate implies any.
    pub driver: Option<Driver>,
    /// True when the driver's rows are exactly the matching rows (the condition is then redundant).
    pub driver_is_exact: bool,
}

/// The SQL types of JSON scalars, as `json_each` reports them.
const SCALAR_TYPES: &str = "('text','integer','real','true','false')";

/// The rendered text of the scalar `j` (see `isms_query::ir::render_scalar`): numbers keep the exact
/// JSON text stored in the document (SQLite's `->` returns it unchanged).
const SCALAR_TEXT: &str = "(CASE j.type WHEN 'text' THEN j.atom WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE e.doc -> j.fullkey END)";

/// [`SCALAR_TEXT`] of the scalar `k`: a scalar of the other field of a field reference.
const OTHER_SCALAR_TEXT: &str = "(CASE k.type WHEN 'text' THEN k.atom WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' ELSE e.doc -> k.fullkey END)";

/// Compiles a predicate.
pub(crate) fn compile(predicate: &Predicate) -> CompiledPredicate {
    match predicate {
        Predicate::All => CompiledPredicate {
            condition: SqlFragment {
                sql: "1".into(),
                params: vec![],
            },
            driver: None,
            driver_is_exact: false,
        },
        Predicate::And(children) | Predicate::Or(children) => {
            let is_and = matches!(predicate, Predicate::And(_));
            if children.is_empty() {
                return CompiledPredicate {
                    condition: SqlFragment {
                        sql: if is_and { "1" } else { "0" }.into(),
                        params: vec![],
                    },
                    driver: if is_and {
                        None
                    } else {
                        Some(Driver::Terms(TermQuery::Nothing))
                    },
                    driver_is_exact: !is_and,
                };
            }
            let compiled: Vec<CompiledPredicate> = children.iter().map(compile).collect();
            let mut condition = SqlFragment::default();
            condition.push_sql("(");
            for (position, child) in compiled.iter().enumerate() {
                if position > 0 {
                    condition.push_sql(if is_and { " AND " } else { " OR " });
                }
                condition.append(child.condition.clone());
            }
            condition.push_sql(")");
            let all_exact = compiled
                .iter()
                .all(|child| child.driver.is_some() && child.driver_is_exact);
            let drivers: Vec<Driver> = compiled
                .iter()
                .filter_map(|child| child.driver.clone())
                .collect();
            let (driver, driver_is_exact) = if is_and {
                (Driver::combine(drivers, true), all_exact)
            } else if drivers.len() == compiled.len() {
                (Driver::combine(drivers, false), all_exact)
            } else {
                (None, false)
            };
            CompiledPredicate {
                condition,
                driver,
                driver_is_exact,
            }
        }
        Predicate::Not(child) => {
            let compiled = compile(child);
            let mut condition = SqlFragment::default();
            condition.push_sql("NOT (");
            condition.append(compiled.condition);
            condition.push_sql(")");
            CompiledPredicate {
                condition,
                driver: None,
                driver_is_exact: false,
            }
        }
        Predicate::Text(test) => compile_text(test),
        Predicate::Field { field, test } => compile_field(field, test),
    }
}

/// A full-text test: candidates from the word tokens of the term index, and the matcher's own test
/// on the stored summary as the row condition (the only exact one: SQL has no word tokenizer).
fn compile_text(test: &TextTest) -> CompiledPredicate {
    let (kind, argument, driver, driver_is_exact) = match test {
        TextTest::Word(word) => {
            let lookup = word_token(word);
            (
                TextKind::Word,
                word.clone(),
                TermQuery::Token(lookup.token),
                !lookup.truncated,
            )
        }
        TextTest::Prefix(prefix) => {
            let lookup = word_prefix_token(prefix);
            (
                TextKind::Prefix,
                prefix.clone(),
                TermQuery::Prefix(lookup.token),
                !lookup.truncated,
            )
        }
        TextTest::Phrase(words) => match words.as_slice() {
            [] => return never(),
            [word] => return compile_text(&TextTest::Word(word.clone())),
            // A word holding the separator cannot be a token: the phrase never matches.
            _ if words.iter().any(|word| word.contains(PHRASE_SEPARATOR)) => return never(),
            _ => (
                TextKind::Phrase,
                words.join(&PHRASE_SEPARATOR.to_string()),
                TermQuery::And(
                    words
                        .iter()
                        .map(|word| TermQuery::Token(word_token(word).token))
                        .collect(),
                ),
                false,
            ),
        },
    };
    let mut condition = SqlFragment::default();
    condition.push_sql(
        "(json_type(e.doc, '$.summary') = 'text' AND isms_summary_matches(e.doc ->> '$.summary', ",
    );
    condition.push_param(SqlParam::Integer(kind as i64));
    condition.push_sql(", ");
    condition.push_param(SqlParam::Text(argument));
    condition.push_sql("))");
    CompiledPredicate {
        condition,
        driver: Some(Driver::Terms(driver)),
        driver_is_exact,
    }
}

/// JSON path text for `json_each`: `$."details"."username"`.
pub(crate) fn json_path(field: &FieldPath) -> String {
    let mut path = String::from("$");
    for segment in &field.0 {
        path.push_str(".\"");
        path.push_str(&segment.replace('"', "\\\""));
        path.push('"');
    }
    path
}

/// Whether `text` is a valid JSON path segment we can address; segments with control characters or
/// backslashes cannot be written in SQLite's path syntax and never match.
fn addressable(field: &FieldPath) -> bool {
    field.0.iter().all(|segment| {
        !segment.is_empty()
            && !segment
                .chars()
                .any(|c| c.is_control() || c == '\\' || c == '"')
    })
}

fn time_column(field: &FieldPath) -> Option<&'static str> {
    match field.0.as_slice() {
        [name] if name == "utctimestamp" => Some("e.utctimestamp"),
        [name] if name == "receivedtimestamp" => Some("e.receivedtimestamp"),
        _ => None,
    }
}

fn never() -> CompiledPredicate {
    CompiledPredicate {
        condition: SqlFragment {
            sql: "0".into(),
            params: vec![],
        },
        driver: Some(Driver::Terms(TermQuery::Nothing)),
        driver_is_exact: true,
    }
}

fn compile_field(field: &FieldPath, test: &FieldTest) -> CompiledPredicate {
    if !addressable(field) {
        return never();
    }
    // Time fields compare instants through their columns.
    if let Some(column) = time_column(field) {
        match test {
            FieldTest::TimeEquals(micros) => {
                let mut condition = SqlFragment::default();
                condition.push_sql(&format!("{column} = "));
                condition.push_param(SqlParam::Integer(*micros));
                return CompiledPredicate {
                    condition,
                    driver: None,
                    driver_is_exact: false,
                };
            }
            FieldTest::Range(RangeKind::Time { lower, upper }) => {
                let mut condition = SqlFragment::default();
                condition.push_sql("(1");
                if let Some(bound) = lower {
                    condition.push_sql(&format!(
                        " AND {column} {} ",
                        if bound.inclusive { ">=" } else { ">" }
                    ));
                    condition.push_param(SqlParam::Integer(bound.value));
                }
                if let Some(bound) = upper {
                    condition.push_sql(&format!(
                        " AND {column} {} ",
                        if bound.inclusive { "<=" } else { "<" }
                    ));
                    condition.push_param(SqlParam::Integer(bound.value));
                }
                condition.push_sql(")");
                return CompiledPredicate {
                    condition,
                    driver: None,
                    driver_is_exact: false,
                };
            }
            _ => {}
        }
    }
    if matches!(
        test,
        FieldTest::TimeEquals(_) | FieldTest::Range(RangeKind::Time { .. })
    ) {
        // Instants on a field that holds no instants: the matcher parses the text; so do we.
        return compile_time_on_text(field, test);
    }

    let path = json_path(field);
    // Candidates from the field's presence token, when the index has one.
    let presence =
        has_presence_token(field).then(|| Driver::Terms(TermQuery::Token(presence_token(field))));
    let mut condition = SqlFragment::default();
    if matches!(test, FieldTest::Exists) {
        condition.push_sql("EXISTS (SELECT 1 FROM json_tree(e.doc, ");
        condition.push_param(SqlParam::Text(path));
        condition.push_sql(&format!(") j WHERE j.type IN {SCALAR_TYPES})"));
        let driver_is_exact = presence.is_some();
        return CompiledPredicate {
            condition,
            driver: presence,
            driver_is_exact,
        };
    }
    condition.push_sql("EXISTS (SELECT 1 FROM json_each(e.doc, ");
    condition.push_param(SqlParam::Text(path.clone()));
    condition.push_sql(") j WHERE json_type(e.doc, ");
    condition.push_param(SqlParam::Text(path));
    condition.push_sql(&format!(") <> 'object' AND j.type IN {SCALAR_TYPES} AND "));
    let values_indexed = has_value_tokens(field);
    let (driver, driver_is_exact) = match test {
        FieldTest::Equals(value) => {
            condition.push_sql(&format!("lower({SCALAR_TEXT}) = "));
            condition.push_param(SqlParam::Text(value.to_ascii_lowercase()));
            if field.0.len() == 1 && field.0[0] == "id" {
                // Ids have tokens of their own kind, made from the parsed UUID: another spelling of the
                // same UUID finds the event too, so the exact condition stays. A value that is no UUID
                // is no event's id.
                match id_token(value) {
                    Some(token) => (Some(Driver::Terms(TermQuery::Token(token))), false),
                    None => (Some(Driver::Terms(TermQuery::Nothing)), true),
                }
            } else if values_indexed {
                let lookup = value_token(field, value);
                (
                    Some(Driver::Terms(TermQuery::Token(lookup.token))),
                    !lookup.truncated,
                )
            } else {
                (presence, false)
            }
        }
        FieldTest::Wildcard(pattern) => {
            condition.push_sql(&format!("{SCALAR_TEXT} LIKE "));
            condition.push_param(SqlParam::Text(wildcard_to_like(pattern)));
            condition.push_sql(" ESCAPE '\\'");
            let (prefix, pure_prefix) = wildcard_literal_prefix(pattern);
            match (
                prefix.is_empty() || !values_indexed,
                value_prefix_token(field, &prefix),
            ) {
                (false, Some(token)) => {
                    (Some(Driver::Terms(TermQuery::Prefix(token))), pure_prefix)
                }
                _ => (presence, false),
            }
        }
        FieldTest::Regex(expression) => {
            condition.push_sql(&format!("{SCALAR_TEXT} REGEXP "));
            condition.push_param(SqlParam::Text(format!("^(?:{expression})$")));
            (presence, false)
        }
        FieldTest::Range(RangeKind::Number { lower, upper }) => {
            condition
                .push_sql("(j.type IN ('integer','real') OR (j.type = 'text' AND j.atom REGEXP ");
            condition.push_param(SqlParam::Text(
                isms_query::ir::NUMERIC_TEXT_PATTERN.to_string(),
            ));
            condition.push_sql("))");
            if let Some(bound) = lower {
                condition.push_sql(&format!(
                    " AND CAST(j.atom AS REAL) {} ",
                    if bound.inclusive { ">=" } else { ">" }
                ));
                condition.push_param(SqlParam::Real(bound.value));
            }
            if let Some(bound) = upper {
                condition.push_sql(&format!(
                    " AND CAST(j.atom AS REAL) {} ",
                    if bound.inclusive { "<=" } else { "<" }
                ));
                condition.push_param(SqlParam::Real(bound.value));
            }
            (presence, false)
        }
        FieldTest::Range(RangeKind::Text { lower, upper }) => {
            condition.push_sql("1");
            if let Some(bound) = lower {
                condition.push_sql(&format!(
                    " AND lower({SCALAR_TEXT}) {} ",
                    if bound.inclusive { ">=" } else { ">" }
                ));
                condition.push_param(SqlParam::Text(bound.value.to_ascii_lowercase()));
            }
            if let Some(bound) = upper {
                condition.push_sql(&format!(
                    " AND lower({SCALAR_TEXT}) {} ",
                    if bound.inclusive { "<=" } else { "<" }
                ));
                condition.push_param(SqlParam::Text(bound.value.to_ascii_lowercase()));
            }
            (presence, false)
        }
        FieldTest::Cidr(network) => {
            // A network that does not parse is refused by the matcher's compiler; here it matches
            // nothing (the parser never makes one).
            let Ok(network) = network.parse::<isms_query::network::IpNetwork>() else {
                return never();
            };
            condition.push_sql(&format!("isms_in_network({SCALAR_TEXT}, "));
            condition.push_param(SqlParam::Text(network.to_string()));
            condition.push_sql(")");
            (presence, false)
        }
        FieldTest::TimePart { part, value } => {
            condition.push_sql(&format!("isms_time_part({SCALAR_TEXT}, "));
            condition.push_param(SqlParam::Text(part.name().to_owned()));
            condition.push_sql(") = ");
            condition.push_param(SqlParam::Integer(*value));
            (presence, false)
        }
        FieldTest::FieldRef(other) => {
            if !addressable(other) {
                return never();
            }
            // Some scalar `k` of the other path (resolved like `j`'s) with the same text, ASCII
            // case ignored (SQLite's `lower` folds ASCII only, like `eq_ignore_ascii_case`).
            let other_path = json_path(other);
            condition.push_sql("EXISTS (SELECT 1 FROM json_each(e.doc, ");
            condition.push_param(SqlParam::Text(other_path.clone()));
            condition.push_sql(") k WHERE json_type(e.doc, ");
            condition.push_param(SqlParam::Text(other_path));
            condition.push_sql(&format!(
                ") <> 'object' AND k.type IN {SCALAR_TYPES} AND lower({OTHER_SCALAR_TEXT}) = lower({SCALAR_TEXT}))"
            ));
            let other_presence = has_presence_token(other)
                .then(|| Driver::Terms(TermQuery::Token(presence_token(other))));
            (
                Driver::combine(presence.into_iter().chain(other_presence).collect(), true),
                false,
            )
        }
        FieldTest::Exists | FieldTest::TimeEquals(_) | FieldTest::Range(RangeKind::Time { .. }) => {
            unreachable!("handled above")
        }
    };
    condition.push_sql(")");
    let driver_is_exact = driver_is_exact && driver.is_some();
    CompiledPredicate {
        condition,
        driver,
        driver_is_exact,
    }
}

/// Time tests on a field that is not a time column: no SQL can parse arbitrary time text the way the
/// matcher does, so such a test matches nothing in either executor (the parser only produces time tests
/// for time fields; this keeps hand-built IR safe).
fn compile_time_on_text(_field: &FieldPath, _test: &FieldTest) -> CompiledPredicate {
    never()
}

/// Converts an IR wildcard (`*`, `?`, `\` escapes) to a LIKE pattern with `\` as the escape character.
pub(crate) fn wildcard_to_like(pattern: &str) -> String {
    let mut like = String::with_capacity(pattern.len() + 4);
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        match character {
            '*' => like.push('%'),
            '?' => like.push('_'),
            '\\' => match characters.next() {
                Some(escaped) => push_like_literal(&mut like, escaped),
                None => push_like_literal(&mut like, '\\'),
            },
            other => push_like_literal(&mut like, other),
        }
    }
    like
}

fn push_like_literal(like: &mut String, character: char) {
    if matches!(character, '%' | '_' | '\\') {
        like.push('\\');
    }
    like.push(character);
}

/// The literal text before the first wildcard, ASCII-lowercased, and whether the pattern is exactly that
/// prefix followed by one final `*`.
pub(crate) fn wildcard_literal_prefix(pattern: &str) -> (String, bool) {
    let mut prefix = String::new();
    let mut characters = pattern.chars().peekable();
    while let Some(character) = characters.next() {
        match character {
            '*' => {
                let pure = characters.peek().is_none();
                return (prefix.to_ascii_lowercase(), pure);
            }
            '?' => return (prefix.to_ascii_lowercase(), false),
            '\\' => prefix.push(characters.next().unwrap_or('\\')),
            other => prefix.push(other),
        }
    }
    // No wildcard at all: behaves as equality, but we only promise a prefix.
    (prefix.to_ascii_lowercase(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_become_like_patterns_with_escapes() {
        assert_eq!(wildcard_to_like("jo*"), "jo%");
        assert_eq!(wildcard_to_like("j?e"), "j_e");
        assert_eq!(wildcard_to_like(r"50\%_x\*"), r"50\%\_x*");
        assert_eq!(wildcard_to_like(r"a\\b"), r"a\\b");
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard() {
        assert_eq!(wildcard_literal_prefix("Jo*"), ("jo".to_string(), true));
        assert_eq!(wildcard_literal_prefix("jo*e"), ("jo".to_string(), false));
        assert_eq!(wildcard_literal_prefix("*oe"), (String::new(), false));
        assert_eq!(wildcard_literal_prefix(r"a\*b*"), ("a*b".to_string(), true));
    }

    #[test]
    fn conjunctions_of_terms_merge_into_one_term_query() {
        let predicate = Predicate::And(vec![
            Predicate::Field {
                field: FieldPath::parse_dotted("a"),
                test: FieldTest::Equals("x".into()),
            },
            Predicate::Field {
                field: FieldPath::parse_dotted("b"),
                test: FieldTest::Exists,
            },
        ]);
        let compiled = compile(&predicate);
        assert!(
            matches!(compiled.driver, Some(Driver::Terms(TermQuery::And(ref children))) if children.len() == 2)
        );
        assert!(compiled.driver_is_exact);
    }

    #[test]
    fn long_runs_travel_as_ranges_and_the_rest_as_values() {
        assert_eq!(split_runs(&[]), ("[]".to_string(), None));
        assert_eq!(split_runs(&[3, 4, 9]), ("[3,4,9]".to_string(), None));
        assert_eq!(
            split_runs(&[1, 2, 3, 4, 5, 7, 9, 10, 11, 12]),
            ("[7]".to_string(), Some("[[1,5],[9,12]]".to_string()))
        );
    }

    #[test]
    fn negation_has_no_driver() {
        let predicate = Predicate::Not(Box::new(Predicate::Text(TextTest::Word("x".into()))));
        assert_eq!(compile(&predicate).driver, None);
    }
}
