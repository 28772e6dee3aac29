//! The search language: Lucene-style query text to a [`Predicate`], and back.
//!
//! # Grammar
//!
//! ```text
//! query   := or | (empty)                       the empty query matches everything
//! or      := and (("OR" | "||") and)*
//! and     := unary (("AND" | "&&")? unary)*     juxtaposition is AND: `a b` means `a AND b`
//! unary   := ("NOT" | "!" | "-") unary          negation
//!          | "+" unary                          "required": the same as the term itself
//!          | primary
//! primary := "(" or ")"
//!          | "*:*" | "*"                        everything
//!          | "_exists_:" name                   the field has a value
//!          | field ":" value                    a test on one field
//!          | value                              free text (over the summary)
//! value   := "(" or ")"                         a group of values applied to the field: `port:(22 OR 2222)`
//!          | "*"                                the field has a value
//!          | '"' phrase '"'                     exact text (backslash escapes inside)
//!          | "/" regex "/"                      an anchored regular expression (`\/` is a slash)
//!          | ("[" | "{") bound "TO" bound ("]" | "}")  a range, `[` `]` inclusive, `{` `}` exclusive,
//!                                               `*` for an open side; a quoted bound is always text
//!          | (">" | ">=" | "<" | "<=") bound     a range with one side
//!          | function "(" argument ")"          after a field only, see below
//!          | word                               exact text, or a glob if it has an unescaped `*` or `?`
//! function := "cidr"                            argument: a network, `ip:cidr(10.0.0.0/8)`
//!          | "fieldref"                         argument: another field, `user:fieldref(details.target)`
//!          | "minute" | "hour" | "day" | "week" | "month" | "year"
//!                                               argument: an integer, `utctimestamp:hour(3)`
//! ```
//!
//! The keywords `AND`, `OR`, `NOT` and `TO` are upper case only (`and` is an ordinary word) and only count
//! as keywords when they stand alone (`ANDROID` is a word). `&&`, `||`, `!`, `-` and `+` are operators only
//! where a term starts (`foo-bar` and `a&&b` are single words). A word runs to the next unescaped space
//! or parenthesis; a backslash makes the next character literal (`a\ b`, `\(`, `\*`, `\-x`). Field names
//! are `[A-Za-z0-9_@.-]+` directly followed by `:` and are lowercased. There must be no space between the
//! `:` and the value. A phrase, regex or range must be followed by a space, `)` or the end of the query.
//!
//! A function is recognized only as a field's value (also inside a field group, `ip:(cidr(10.0.0.0/8)
//! OR cidr(::1/128))`), with its name (any ASCII case) directly followed by `(`; its argument runs
//! to the `)`, without spaces or escapes, and the `)` ends the term like a phrase's closing quote.
//! Elsewhere `cidr` is an ordinary word, and `ip:cidr (x)` is `ip:cidr AND x`. The exact value
//! `cidr(x)` is written `ip:"cidr(x)"`. A network must be `address/length` without host bits (see
//! [`crate::network`]); a time component's value must be one it can take (an hour 0 to 23, a
//! week 1 to 53, ...): anything else is an error at the argument's position.
//!
//! # What a term becomes
//!
//! - On an ordinary field: a word is [`FieldTest::Equals`] (or [`FieldTest::Wildcard`] with a glob), a
//!   phrase is `Equals`, and a range is numeric when every bound is an unquoted decimal number (see
//!   [`crate::ir::NUMERIC_TEXT_PATTERN`]), otherwise a text range with ASCII-lowercased bounds.
//!   `[* TO *]` is a text range without bounds, i.e. "has a value", like Lucene's.
//! - On a time field ([`FieldPath::is_time_field`]): words, phrases and range bounds are read with
//!   `isms_event::parse_time` into [`FieldTest::TimeEquals`] and [`RangeKind::Time`]; globs and regexes
//!   stay text tests.
//! - A function is [`FieldTest::Cidr`] (the network printed canonically: `2001:DB8::/32` becomes
//!   `2001:db8::/32`), [`FieldTest::FieldRef`] (the other field lowercased like field names) or
//!   [`FieldTest::TimePart`], on any field (time fields and `summary` included).
//! - Free text (a term without a field, or a term on `summary`) is a search by words
//!   ([`Predicate::Text`]): the term is split with [`tokenize`]; one token is a [`TextTest::Word`], several
//!   a [`TextTest::Phrase`], none an error. `word*` (one token, one final `*`, no other glob character) is
//!   a [`TextTest::Prefix`]. Any other glob cannot be answered by a word index, so it becomes a substring
//!   glob over the whole summary: `f?il` is `Field { summary, Wildcard("*f?il*") }`. A regex or a range
//!   on free text applies to the whole summary text; ranges on the summary are always text ranges.
//!
//! # Limits
//!
//! Queries come from anyone allowed to search, so the parser bounds the work they can cause: at most
//! [`MAX_QUERY_BYTES`] of text, [`MAX_DEPTH`] levels of nesting, [`MAX_REGEXES`] regexes, and every
//! regex and glob must compile within [`REGEX_SIZE_LIMIT`] (checked here, so the error has a position
//! and the matcher never meets a parsed predicate it cannot compile). Errors are [`ParseError`]s: a
//! character position, what was expected there and what was found.
//!
//! [`to_query_string`] prints a predicate in this syntax; for every predicate the parser produces,
//! parsing the printed text gives the same predicate back (tests check this with generated predicates),
//! which lets rules store and show queries as text.
use crate::ir::{
    Bound, FieldPath, FieldTest, Predicate, RangeKind, TextTest, TimeComponent, is_numeric_text,
    tokenize,
};

/// Longest query accepted, in bytes.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses, field groups and prefix operators accepted.
pub const MAX_DEPTH: usize = 64;
/// Size limit for compiled regular expressions (the parser and the matcher use the same).
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Most regular expressions accepted in one query: each may compile to [`REGEX_SIZE_LIMIT`] bytes, and
/// a query is typed by anyone allowed to search.
pub const MAX_REGEXES: usize = 32;

/// Why a query could not be parsed: at `position` (0-based, in characters) the parser expected
/// `expected` but found `found`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("at position {position}: expected {expected}, found {found}")]
pub struct ParseError {
    /// 0-based character offset in the query.
    pub position: usize,
    /// What would have been valid there.
    pub expected: String,
    /// What was there instead.
    pub found: String,
}

/// Parses a query in the search language (see the module documentation).
pub fn parse(query: &str) -> Result<Predicate, ParseError> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(ParseError {
            position: 0,
            expected: format!("a query of at most {MAX_QUERY_BYTES} bytes"),
            found: format!("a query of {} bytes", query.len()),
        });
    }
    let mut parser = Parser {
        chars: query.chars().collect(),
        pos: 0,
        depth: 0,
        regexes: 0,
    };
    parser.skip_whitespace();
    if parser.at_end() {
        return Ok(Predicate::All);
    }
    let predicate = parser.parse_or(Target::Free)?;
    parser.skip_whitespace();
    if !parser.at_end() {
        // `parse_or` only stops early at a `)`.
        return Err(parser.error(parser.pos, "end of query", "\")\" without a matching \"(\""));
    }
    Ok(predicate)
}

/// What the values being parsed are tested against.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// No field: free text, and field names are allowed.
    Free,
    /// Inside `field:` or `field:( ... )`.
    Field(&'a FieldPath),
}

/// One side of a range as written.
struct RawBound {
    text: String,
    quoted: bool,
    inclusive: bool,
    position: usize,
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
    /// Regular expressions seen so far.
    regexes: usize,
}

fn is_field_char(character: char) -> bool {
    character.is_ascii_alphanumeric() || matches!(character, '_' | '@' | '.' | '-')
}

/// A function written as a field's value (see the grammar).
#[derive(Clone, Copy)]
enum FieldFunction {
    Cidr,
    FieldRef,
    TimePart(TimeComponent),
}

impl FieldFunction {
    fn named(name: &str) -> Option<FieldFunction> {
        if name.eq_ignore_ascii_case("cidr") {
            Some(FieldFunction::Cidr)
        } else if name.eq_ignore_ascii_case("fieldref") {
            Some(FieldFunction::FieldRef)
        } else {
            TimeComponent::from_name(name).map(FieldFunction::TimePart)
        }
    }
}

/// What a time component's argument must be, for errors.
fn time_component_expectation(part: TimeComponent) -> String {
    let what = match part {
        TimeComponent::Minute => "a minute",
        TimeComponent::Hour => "an hour",
        TimeComponent::Day => "a day of the month",
        TimeComponent::Week => "an ISO week number",
        TimeComponent::Month => "a month",
        TimeComponent::Year => "a year",
    };
    let range = part.possible_values();
    format!("{what} ({} to {})", range.start(), range.end())
}

fn is_summary(field: &FieldPath) -> bool {
    field.0.len() == 1 && field.0[0] == "summary"
}

fn summary_path() -> FieldPath {
    FieldPath(vec!["summary".to_owned()])
}

impl Parser {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, position: usize) -> Option<char> {
        self.chars.get(position).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn error(
        &self,
        position: usize,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> ParseError {
        ParseError {
            position,
            expected: expected.into(),
            found: found.into(),
        }
    }

    /// A short description of what is at `position`, for error messages.
    fn found_at(&self, position: usize) -> String {
        match self.peek_at(position) {
            None => "end of query".to_owned(),
            Some(character) if character.is_whitespace() => "whitespace".to_owned(),
            Some(character) if "()[]{}".contains(character) => {
                format!("{:?}", character.to_string())
            }
            Some(_) => {
                let mut text = String::new();
                let mut at = position;
                while let Some(character) = self.peek_at(at) {
                    if character.is_whitespace() || character == '(' || character == ')' {
                        break;
                    }
                    if at - position == 20 {
                        text.push('…');
                        break;
                    }
                    text.push(character);
                    at += 1;
                }
                format!("{text:?}")
            }
        }
    }

    fn unexpected(&self, position: usize, expected: impl Into<String>) -> ParseError {
        self.error(position, expected, self.found_at(position))
    }

    fn is_delimiter(&self, position: usize) -> bool {
        match self.peek_at(position) {
            None => true,
            Some(character) => character.is_whitespace() || character == '(' || character == ')',
        }
    }

    /// Whether the upper-case keyword `word` stands alone at the cursor.
    fn at_keyword(&self, word: &str) -> bool {
        let mut at = self.pos;
        for expected in word.chars() {
            if self.peek_at(at) != Some(expected) {
                return false;
            }
            at += 1;
        }
        self.is_delimiter(at)
    }

    fn at_pair(&self, pair: [char; 2]) -> bool {
        self.peek() == Some(pair[0]) && self.peek_at(self.pos + 1) == Some(pair[1])
    }

    /// Length of an AND operator at the cursor.
    fn at_and(&self) -> Option<usize> {
        if self.at_keyword("AND") {
            Some(3)
        } else if self.at_pair(['&', '&']) {
            Some(2)
        } else {
            None
        }
    }

    /// Length of an OR operator at the cursor.
    fn at_or(&self) -> Option<usize> {
        if self.at_keyword("OR") || self.at_pair(['|', '|']) {
            Some(2)
        } else {
            None
        }
    }

    /// A prefix operator at the cursor: its length and whether it negates.
    fn at_prefix(&self) -> Option<(usize, bool)> {
        if self.at_keyword("NOT") {
            return Some((3, true));
        }
        match self.peek() {
            Some('!' | '-') => Some((1, true)),
            Some('+') => Some((1, false)),
            _ => None,
        }
    }

    fn enter(&mut self, position: usize) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(
                position,
                format!("at most {MAX_DEPTH} nested parentheses or operators"),
                "deeper nesting",
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn parse_or(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        let mut children = vec![self.parse_and(target)?];
        loop {
            self.skip_whitespace();
            match self.at_or() {
                Some(length) => {
                    self.pos += length;
                    children.push(self.parse_and(target)?);
                }
                None => break,
            }
        }
        Ok(if children.len() == 1 {
            children.pop().unwrap_or(Predicate::All)
        } else {
            Predicate::Or(children)
        })
    }

    fn parse_and(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        let mut children = vec![self.parse_unary(target)?];
        loop {
            self.skip_whitespace();
            if matches!(self.peek(), None | Some(')')) || self.at_or().is_some() {
                break;
            }
            if let Some(length) = self.at_and() {
                self.pos += length;
            }
            children.push(self.parse_unary(target)?);
        }
        Ok(if children.len() == 1 {
            children.pop().unwrap_or(Predicate::All)
        } else {
            Predicate::And(children)
        })
    }

    fn parse_unary(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        self.skip_whitespace();
        let Some((length, negate)) = self.at_prefix() else {
            return self.parse_primary(target);
        };
        self.enter(self.pos)?;
        self.pos += length;
        let inner = self.parse_unary(target)?;
        self.leave();
        Ok(if negate {
            Predicate::Not(Box::new(inner))
        } else {
            inner
        })
    }

    fn parse_group(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        let open = self.pos;
        self.enter(open)?;
        self.pos += 1;
        self.skip_whitespace();
        let inner = self.parse_or(target)?;
        self.skip_whitespace();
        if self.peek() != Some(')') {
            return Err(self.error(
                self.pos,
                format!("\")\" closing the \"(\" at position {open}"),
                self.found_at(self.pos),
            ));
        }
        self.pos += 1;
        self.leave();
        Ok(inner)
    }

    fn parse_primary(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        self.skip_whitespace();
        let start = self.pos;
        match self.peek() {
            None | Some(')') => return Err(self.unexpected(start, "a term")),
            Some('(') => return self.parse_group(target),
            _ => {}
        }
        if self.at_and().is_some() || self.at_or().is_some() {
            return Err(self.unexpected(start, "a term"));
        }
        let Target::Free = target else {
            return self.parse_value(target);
        };
        if self.peek() == Some('*') && self.peek_at(start + 1) == Some(':') {
            if self.peek_at(start + 2) == Some('*') && self.is_delimiter(start + 3) {
                self.pos += 3;
                return Ok(Predicate::All);
            }
            return Err(self.unexpected(start + 2, "\"*\" after \"*:\""));
        }
        let mut end = start;
        while self.peek_at(end).is_some_and(is_field_char) {
            end += 1;
        }
        if end > start && self.peek_at(end) == Some(':') {
            let name: String = self.chars[start..end].iter().collect();
            let field = FieldPath::parse_dotted(&name);
            self.pos = end + 1;
            if field.0.len() == 1 && field.0[0] == "_exists_" {
                return self.parse_exists();
            }
            return self.parse_value(Target::Field(&field));
        }
        self.parse_value(Target::Free)
    }

    /// After `_exists_:`, a field name.
    fn parse_exists(&mut self) -> Result<Predicate, ParseError> {
        let start = self.pos;
        let mut end = start;
        while self.peek_at(end).is_some_and(is_field_char) {
            end += 1;
        }
        if end == start || !self.is_delimiter(end) {
            return Err(self.unexpected(start, "a field name after \"_exists_:\""));
        }
        let name: String = self.chars[start..end].iter().collect();
        self.pos = end;
        Ok(Predicate::Field {
            field: FieldPath::parse_dotted(&name),
            test: FieldTest::Exists,
        })
    }

    /// After a phrase, regex or range: the term must end here.
    fn expect_term_end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None | Some(')') => Ok(()),
            Some(character) if character.is_whitespace() => Ok(()),
            Some(_) => Err(self.unexpected(self.pos, "a space, \")\" or the end of the query")),
        }
    }

    fn parse_value(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        let start = self.pos;
        let expected_value = || match target {
            Target::Free => "a term".to_owned(),
            Target::Field(field) => format!("a value after \"{}:\"", field.dotted()),
        };
        match self.peek() {
            None | Some(')') => Err(self.unexpected(start, expected_value())),
            Some(character) if character.is_whitespace() => {
                Err(self.unexpected(start, expected_value()))
            }
            Some('(') => self.parse_group(target),
            Some('"') => {
                let text = self.parse_quoted()?;
                self.expect_term_end()?;
                self.literal_predicate(target, text, start)
            }
            Some('/') => {
                let expression = self.parse_regex()?;
                self.expect_term_end()?;
                Ok(Predicate::Field {
                    field: target_field(target),
                    test: FieldTest::Regex(expression),
                })
            }
            Some('[' | '{') => {
                let (lower, upper) = self.parse_range()?;
                self.expect_term_end()?;
                self.range_predicate(target, lower, upper)
            }
            Some('>' | '<') => self.parse_comparison(target),
            Some(_)
                if let Target::Field(field) = target
                    && let Some((function, name_length)) = self.at_function() =>
            {
                self.parse_function(field, function, name_length)
            }
            Some(_) => {
                let units = self.parse_word(|character| character == '(' || character == ')')?;
                self.word_predicate(target, &units, start)
            }
        }
    }

    /// A function name directly followed by `(` at the cursor: the function and the name's length.
    fn at_function(&self) -> Option<(FieldFunction, usize)> {
        let mut end = self.pos;
        while self
            .peek_at(end)
            .is_some_and(|character| character.is_ascii_alphabetic())
        {
            end += 1;
        }
        if end == self.pos || self.peek_at(end) != Some('(') {
            return None;
        }
        let name: String = self.chars[self.pos..end].iter().collect();
        FieldFunction::named(&name).map(|function| (function, end - self.pos))
    }

    /// `function(argument)` on `field`; the cursor is on the function's name.
    fn parse_function(
        &mut self,
        field: &FieldPath,
        function: FieldFunction,
        name_length: usize,
    ) -> Result<Predicate, ParseError> {
        let name: String = self.chars[self.pos..self.pos + name_length]
            .iter()
            .collect::<String>()
            .to_ascii_lowercase();
        self.pos += name_length + 1;
        let argument_start = self.pos;
        while self.peek().is_some_and(|character| {
            !character.is_whitespace() && character != '(' && character != ')'
        }) {
            self.pos += 1;
        }
        let argument: String = self.chars[argument_start..self.pos].iter().collect();
        let argument_end = self.pos;
        let test = match function {
            FieldFunction::Cidr => {
                let expected = "a network such as 10.0.0.0/8 or 2001:db8::/32";
                if argument.is_empty() {
                    return Err(self.unexpected(argument_start, expected));
                }
                match argument.parse::<crate::network::IpNetwork>() {
                    Ok(network) => FieldTest::Cidr(network.to_string()),
                    Err(problem) => {
                        return Err(self.error(
                            argument_start,
                            expected,
                            format!("{argument:?} ({problem})"),
                        ));
                    }
                }
            }
            FieldFunction::FieldRef => {
                if argument.is_empty() || !argument.chars().all(is_field_char) {
                    return Err(self.unexpected(argument_start, "a field name"));
                }
                FieldTest::FieldRef(FieldPath::parse_dotted(&argument))
            }
            FieldFunction::TimePart(part) => {
                let value = argument
                    .parse::<i64>()
                    .ok()
                    .filter(|value| part.possible_values().contains(value));
                match value {
                    Some(value) => FieldTest::TimePart { part, value },
                    None => {
                        return Err(
                            self.unexpected(argument_start, time_component_expectation(part))
                        );
                    }
                }
            }
        };
        if self.peek() != Some(')') {
            return Err(self.unexpected(argument_end, format!("\")\" closing \"{name}(\"")));
        }
        self.pos += 1;
        self.expect_term_end()?;
        Ok(Predicate::Field {
            field: field.clone(),
            test,
        })
    }

    /// A word: characters up to whitespace or a `stop` character, with backslash escapes. Returns each
    /// character with whether it was escaped.
    fn parse_word(&mut self, stop: impl Fn(char) -> bool) -> Result<Vec<(char, bool)>, ParseError> {
        let mut units = Vec::new();
        while let Some(character) = self.peek() {
            if character.is_whitespace() || stop(character) {
                break;
            }
            if character == '\\' {
                match self.peek_at(self.pos + 1) {
                    Some(escaped) => {
                        units.push((escaped, true));
                        self.pos += 2;
                    }
                    None => return Err(self.unexpected(self.pos + 1, "a character after \"\\\"")),
                }
            } else {
                units.push((character, false));
                self.pos += 1;
            }
        }
        Ok(units)
    }

    /// A `"phrase"` with backslash escapes; the cursor is on the opening quote.
    fn parse_quoted(&mut self) -> Result<String, ParseError> {
        self.pos += 1;
        let mut text = String::new();
        loop {
            match self.peek() {
                None => return Err(self.unexpected(self.pos, "closing \"")),
                Some('"') => {
                    self.pos += 1;
                    return Ok(text);
                }
                Some('\\') => match self.peek_at(self.pos + 1) {
                    Some(escaped) => {
                        text.push(escaped);
                        self.pos += 2;
                    }
                    None => return Err(self.unexpected(self.pos + 1, "closing \"")),
                },
                Some(character) => {
                    text.push(character);
                    self.pos += 1;
                }
            }
        }
    }

    /// A `/regex/`; the cursor is on the opening slash. `\/` is a slash, other escapes are kept for the
    /// regex engine. The expression is validated here so that a bad one is reported with its position.
    fn parse_regex(&mut self) -> Result<String, ParseError> {
        let start = self.pos;
        self.regexes += 1;
        if self.regexes > MAX_REGEXES {
            return Err(self.error(
                start,
                format!("at most {MAX_REGEXES} regular expressions in one query"),
                "another one",
            ));
        }
        self.pos += 1;
        let mut expression = String::new();
        loop {
            match self.peek() {
                None => return Err(self.unexpected(self.pos, "closing /")),
                Some('/') => {
                    self.pos += 1;
                    break;
                }
                Some('\\') => match self.peek_at(self.pos + 1) {
                    Some('/') => {
                        expression.push('/');
                        self.pos += 2;
                    }
                    Some(escaped) => {
                        expression.push('\\');
                        expression.push(escaped);
                        self.pos += 2;
                    }
                    None => return Err(self.unexpected(self.pos + 1, "closing /")),
                },
                Some(character) => {
                    expression.push(character);
                    self.pos += 1;
                }
            }
        }
        if let Err(problem) = check_regex(&expression) {
            return Err(self.error(start, "a valid regular expression", problem));
        }
        Ok(expression)
    }

    /// `[a TO b]` and its variants; the cursor is on the opening bracket.
    fn parse_range(&mut self) -> Result<(Option<RawBound>, Option<RawBound>), ParseError> {
        let lower_inclusive = self.peek() == Some('[');
        self.pos += 1;
        self.skip_whitespace();
        let lower = self.parse_bound(lower_inclusive, true)?;
        let before_to = self.pos;
        self.skip_whitespace();
        if self.pos == before_to
            || !(self.at_pair(['T', 'O'])
                && self.peek_at(self.pos + 2).is_none_or(char::is_whitespace))
        {
            return Err(self.unexpected(self.pos, "\" TO \" between the bounds of the range"));
        }
        self.pos += 2;
        self.skip_whitespace();
        let mut upper = self.parse_bound(true, false)?;
        self.skip_whitespace();
        match self.peek() {
            Some(close @ (']' | '}')) => {
                self.pos += 1;
                if let Some(bound) = upper.as_mut() {
                    bound.inclusive = close == ']';
                }
            }
            _ => return Err(self.unexpected(self.pos, "\"]\" or \"}\" closing the range")),
        }
        Ok((lower, upper))
    }

    /// One range bound: a quoted phrase, a word, or `*` for an open side (`None`).
    fn parse_bound(
        &mut self,
        inclusive: bool,
        lower: bool,
    ) -> Result<Option<RawBound>, ParseError> {
        let position = self.pos;
        if self.peek() == Some('"') {
            let text = self.parse_quoted()?;
            match self.peek() {
                Some(']' | '}') => {}
                Some(character) if character.is_whitespace() => {}
                _ => {
                    return Err(self
                        .unexpected(self.pos, "a space or the end of the range after the bound"));
                }
            }
            return Ok(Some(RawBound {
                text,
                quoted: true,
                inclusive,
                position,
            }));
        }
        let units = self.parse_word(|character| character == ']' || character == '}')?;
        if units.is_empty() {
            let which = if lower {
                "a lower bound (or *)"
            } else {
                "an upper bound (or *)"
            };
            return Err(self.unexpected(position, which));
        }
        if units == [('*', false)] {
            return Ok(None);
        }
        Ok(Some(RawBound {
            text: literal_of(&units),
            quoted: false,
            inclusive,
            position,
        }))
    }

    /// `>5`, `>=5`, `<5`, `<=5`.
    fn parse_comparison(&mut self, target: Target<'_>) -> Result<Predicate, ParseError> {
        let greater = self.peek() == Some('>');
        self.pos += 1;
        let inclusive = self.peek() == Some('=');
        if inclusive {
            self.pos += 1;
        }
        let operator = match (greater, inclusive) {
            (true, true) => ">=",
            (true, false) => ">",
            (false, true) => "<=",
            (false, false) => "<",
        };
        let position = self.pos;
        let bound = if self.peek() == Some('"') {
            let text = self.parse_quoted()?;
            self.expect_term_end()?;
            RawBound {
                text,
                quoted: true,
                inclusive,
                position,
            }
        } else {
            let units = self.parse_word(|character| character == '(' || character == ')')?;
            if units.is_empty() || units == [('*', false)] {
                return Err(self.unexpected(position, format!("a value after \"{operator}\"")));
            }
            RawBound {
                text: literal_of(&units),
                quoted: false,
                inclusive,
                position,
            }
        };
        if greater {
            self.range_predicate(target, Some(bound), None)
        } else {
            self.range_predicate(target, None, Some(bound))
        }
    }

    /// A range test on the target's field, its kind chosen from the field and the bounds.
    fn range_predicate(
        &self,
        target: Target<'_>,
        lower: Option<RawBound>,
        upper: Option<RawBound>,
    ) -> Result<Predicate, ParseError> {
        let field = target_field(target);
        let kind = if field.is_time_field() {
            let time = |bound: RawBound| -> Result<Bound<i64>, ParseError> {
                match isms_event::parse_time(&bound.text) {
                    Ok(timestamp) => Ok(Bound {
                        value: isms_event::micros_of(timestamp),
                        inclusive: bound.inclusive,
                    }),
                    Err(_) => {
                        Err(self.error(bound.position, "a time", format!("{:?}", bound.text)))
                    }
                }
            };
            RangeKind::Time {
                lower: lower.map(time).transpose()?,
                upper: upper.map(time).transpose()?,
            }
        } else {
            let bounds = [&lower, &upper];
            let present = bounds.iter().filter(|bound| bound.is_some()).count();
            let numeric = !is_summary(&field)
                && present > 0
                && bounds.iter().flat_map(|bound| bound.as_ref()).all(|bound| {
                    !bound.quoted
                        && is_numeric_text(&bound.text)
                        && bound.text.parse::<f64>().is_ok()
                });
            if numeric {
                let number = |bound: RawBound| Bound {
                    value: bound.text.parse::<f64>().unwrap_or(0.0),
                    inclusive: bound.inclusive,
                };
                RangeKind::Number {
                    lower: lower.map(number),
                    upper: upper.map(number),
                }
            } else {
                let text = |bound: RawBound| Bound {
                    value: bound.text.to_ascii_lowercase(),
                    inclusive: bound.inclusive,
                };
                RangeKind::Text {
                    lower: lower.map(text),
                    upper: upper.map(text),
                }
            }
        };
        Ok(Predicate::Field {
            field,
            test: FieldTest::Range(kind),
        })
    }

    /// A phrase (or an unwildcarded word) on the target.
    fn literal_predicate(
        &self,
        target: Target<'_>,
        text: String,
        position: usize,
    ) -> Result<Predicate, ParseError> {
        match target {
            Target::Field(field) if !is_summary(field) => {
                if field.is_time_field() {
                    match isms_event::parse_time(&text) {
                        Ok(timestamp) => Ok(Predicate::Field {
                            field: field.clone(),
                            test: FieldTest::TimeEquals(isms_event::micros_of(timestamp)),
                        }),
                        Err(_) => Err(self.error(position, "a time", format!("{text:?}"))),
                    }
                } else {
                    Ok(Predicate::Field {
                        field: field.clone(),
                        test: FieldTest::Equals(text),
                    })
                }
            }
            _ => self.words_predicate(&text, position),
        }
    }

    /// Free text: the words of `text`.
    fn words_predicate(&self, text: &str, position: usize) -> Result<Predicate, ParseError> {
        let mut tokens = tokenize(text);
        match tokens.len() {
            0 => Err(self.error(
                position,
                "a word of letters or digits",
                format!("{text:?} (the phrase has no words)"),
            )),
            1 => Ok(Predicate::Text(TextTest::Word(
                tokens.pop().unwrap_or_default(),
            ))),
            _ => Ok(Predicate::Text(TextTest::Phrase(tokens))),
        }
    }

    /// A bare word on the target.
    fn word_predicate(
        &self,
        target: Target<'_>,
        units: &[(char, bool)],
        position: usize,
    ) -> Result<Predicate, ParseError> {
        let is_glob = |unit: &(char, bool)| !unit.1 && (unit.0 == '*' || unit.0 == '?');
        let free = match target {
            Target::Free => true,
            Target::Field(field) => is_summary(field),
        };
        if units == [('*', false)] {
            return Ok(match target {
                Target::Free => Predicate::All,
                Target::Field(field) => Predicate::Field {
                    field: field.clone(),
                    test: FieldTest::Exists,
                },
            });
        }
        if !units.iter().any(is_glob) {
            return self.literal_predicate(target, literal_of(units), position);
        }
        if !free {
            let pattern = pattern_of(units);
            self.check_glob(&pattern, position)?;
            return Ok(Predicate::Field {
                field: target_field(target),
                test: FieldTest::Wildcard(pattern),
            });
        }
        if let Some((last, rest)) = units.split_last()
            && *last == ('*', false)
            && !rest.iter().any(is_glob)
        {
            let mut tokens = tokenize(&literal_of(rest));
            if tokens.len() == 1 {
                return Ok(Predicate::Text(TextTest::Prefix(
                    tokens.pop().unwrap_or_default(),
                )));
            }
        }
        let pattern = format!("*{}*", pattern_of(units));
        self.check_glob(&pattern, position)?;
        Ok(Predicate::Field {
            field: summary_path(),
            test: FieldTest::Wildcard(pattern),
        })
    }

    /// A glob other than a literal with stars at its ends is run as a regex (see
    /// [`crate::matcher`]); one too large to compile is refused here, with its position, rather
    /// than when the predicate is compiled. (Literals are compared as they are: nothing to build.)
    fn check_glob(&self, pattern: &str, position: usize) -> Result<(), ParseError> {
        if !crate::matcher::glob_needs_regex(pattern) {
            return Ok(());
        }
        match crate::matcher::compile_glob(pattern) {
            Ok(_) => Ok(()),
            Err(error) => Err(self.error(
                position,
                "a wildcard pattern small enough to run",
                describe_build_error(&error),
            )),
        }
    }
}

/// The field a target tests: free text is the summary.
fn target_field(target: Target<'_>) -> FieldPath {
    match target {
        Target::Free => summary_path(),
        Target::Field(field) => field.clone(),
    }
}

/// The literal text of a word (escapes resolved).
fn literal_of(units: &[(char, bool)]) -> String {
    units.iter().map(|unit| unit.0).collect()
}

/// The IR glob of a word: unescaped `*` and `?` are wildcards; escaped `*`, `?` and `\` stay escaped.
fn pattern_of(units: &[(char, bool)]) -> String {
    let mut pattern = String::new();
    for &(character, escaped) in units {
        if escaped && matches!(character, '*' | '?' | '\\') {
            pattern.push('\\');
        }
        pattern.push(character);
    }
    pattern
}

/// Compiles `^(?:expression)$` with the size limit the matcher uses; the problem in words if it fails.
pub(crate) fn compile_anchored(expression: &str) -> Result<crate::matcher::Regex, String> {
    // The bare expression must be a regex too: `a)(?:b` is not, though its anchored form would compile.
    // Only its syntax matters, so it is built with no room at all: a size error means the syntax is fine.
    match regex::RegexBuilder::new(expression).size_limit(0).build() {
        Ok(_) | Err(regex::Error::CompiledTooBig(_)) => {}
        Err(error) => return Err(describe_regex_error(&error)),
    }
    crate::matcher::build_regex(&format!("^(?:{expression})$"))
        .map_err(|error| describe_build_error(&error))
}

fn check_regex(expression: &str) -> Result<(), String> {
    compile_anchored(expression).map(|_| ())
}

fn describe_build_error(error: &regex_automata::meta::BuildError) -> String {
    if let Some(limit) = error.size_limit() {
        return describe_regex_error(&regex::Error::CompiledTooBig(limit));
    }
    match error.syntax_error() {
        Some(syntax) => describe_regex_error(&regex::Error::Syntax(syntax.to_string())),
        None => format!("an invalid one ({error})"),
    }
}

fn describe_regex_error(error: &regex::Error) -> String {
    match error {
        regex::Error::CompiledTooBig(limit) => {
            format!("an expression larger than the size limit of {limit} bytes once compiled")
        }
        regex::Error::Syntax(message) => {
            // The message draws the expression with a caret under the problem; keep its last line.
            let reason = message
                .lines()
                .rev()
                .find_map(|line| line.strip_prefix("error: "))
                .unwrap_or(message.as_str())
                .trim();
            format!("an invalid one ({reason})")
        }
        other => format!("an invalid one ({other})"),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Printing
// ---------------------------------------------------------------------------------------------------------

/// Prints a predicate in the search language.
///
/// For every predicate [`parse`] produces, `parse(&to_query_string(p)) == Ok(p)` (as long as the printed
/// text stays within [`MAX_QUERY_BYTES`]: it can be longer than the query, e.g. a field group is printed
/// term by term; it never nests deeper than the query did). Predicates the parser
/// never produces are printed as an equivalent query where the language can say it (e.g. an empty `Or`
/// is `NOT *`) and as the closest query otherwise (a whole-value glob on `summary` is printed as
/// `summary:glob`, which reads back as a substring glob).
pub fn to_query_string(predicate: &Predicate) -> String {
    let mut out = String::new();
    write_predicate(predicate, &mut out);
    out
}

fn write_predicate(predicate: &Predicate, out: &mut String) {
    match predicate {
        Predicate::All => out.push('*'),
        Predicate::And(children) | Predicate::Or(children) if children.len() == 1 => {
            write_predicate(&children[0], out);
        }
        Predicate::And(children) if children.is_empty() => out.push('*'),
        Predicate::Or(children) if children.is_empty() => out.push_str("NOT *"),
        Predicate::And(children) | Predicate::Or(children) => {
            let is_or = matches!(predicate, Predicate::Or(_));
            for (index, child) in children.iter().enumerate() {
                if index > 0 {
                    out.push_str(if is_or { " OR " } else { " AND " });
                }
                // AND binds tighter than OR, so an AND inside an OR needs no parentheses; leaving them out
                // keeps the printed nesting within what the parser accepted (see `MAX_DEPTH`).
                match child {
                    Predicate::And(grandchildren) if is_or && grandchildren.len() >= 2 => {
                        write_predicate(child, out)
                    }
                    _ => write_operand(child, out),
                }
            }
        }
        Predicate::Not(child) => {
            out.push_str("NOT ");
            write_operand(child, out);
        }
        Predicate::Field { field, test } => write_field(field, test, out),
        Predicate::Text(test) => write_text(test, out),
    }
}

/// A child of a boolean operator: compound children get parentheses.
fn write_operand(predicate: &Predicate, out: &mut String) {
    match predicate {
        Predicate::And(children) | Predicate::Or(children) if children.len() == 1 => {
            write_operand(&children[0], out)
        }
        Predicate::And(children) | Predicate::Or(children) if children.len() >= 2 => {
            out.push('(');
            write_predicate(predicate, out);
            out.push(')');
        }
        _ => write_predicate(predicate, out),
    }
}

fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|character| {
            character.is_alphanumeric() || matches!(character, '_' | '@' | '.' | '-')
        })
}

fn write_quoted(text: &str, out: &mut String) {
    out.push('"');
    for character in text.chars() {
        if matches!(character, '"' | '\\') {
            out.push('\\');
        }
        out.push(character);
    }
    out.push('"');
}

/// Exact text as a value: a bare word when that is unambiguous, else a phrase.
fn write_literal(text: &str, out: &mut String) {
    if is_plain_word(text) {
        out.push_str(text);
    } else {
        write_quoted(text, out);
    }
}

/// Splits an IR glob into (character, escaped) units: `\x` is an escaped `x`, a final lone `\` is itself.
fn glob_units(pattern: &str) -> Vec<(char, bool)> {
    let mut units = Vec::new();
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        if character == '\\' {
            units.push((characters.next().unwrap_or('\\'), true));
        } else {
            units.push((character, false));
        }
    }
    units
}

/// A glob as a word that parses back to the same pattern.
fn write_glob(units: &[(char, bool)], out: &mut String) {
    for &(character, escaped) in units {
        let wildcard = matches!(character, '*' | '?');
        let plain = character.is_alphanumeric() || matches!(character, '_' | '@' | '.' | '-');
        // Escaped glob characters stay escaped; anything else that could end or change the word is escaped.
        if (escaped && (wildcard || character == '\\')) || !(wildcard || plain) {
            out.push('\\');
        }
        out.push(character);
    }
}

fn write_regex(expression: &str, out: &mut String) {
    out.push('/');
    let mut characters = expression.chars();
    while let Some(character) = characters.next() {
        match character {
            '/' => out.push_str("\\/"),
            '\\' => match characters.next() {
                // `\/` in a regex is a slash; so is `\/` in the query.
                Some('/') => out.push_str("\\/"),
                Some(escaped) => {
                    out.push('\\');
                    out.push(escaped);
                }
                None => out.push_str("\\\\"),
            },
            other => out.push(other),
        }
    }
    out.push('/');
}

fn format_number(value: f64) -> String {
    if value.is_infinite() {
        // `1e999` is a decimal number that reads back as infinity.
        if value > 0.0 {
            "1e999".to_owned()
        } else {
            "-1e999".to_owned()
        }
    } else {
        format!("{value}")
    }
}

fn format_micros(micros: i64) -> String {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(timestamp) => timestamp.to_string(),
        Err(_) => micros.to_string(),
    }
}

fn write_range<T>(
    lower: &Option<Bound<T>>,
    upper: &Option<Bound<T>>,
    out: &mut String,
    mut write_value: impl FnMut(&T, &mut String),
) {
    out.push(if lower.as_ref().is_none_or(|bound| bound.inclusive) {
        '['
    } else {
        '{'
    });
    match lower {
        Some(bound) => write_value(&bound.value, out),
        None => out.push('*'),
    }
    out.push_str(" TO ");
    match upper {
        Some(bound) => write_value(&bound.value, out),
        None => out.push('*'),
    }
    out.push(if upper.as_ref().is_none_or(|bound| bound.inclusive) {
        ']'
    } else {
        '}'
    });
}

fn write_field(field: &FieldPath, test: &FieldTest, out: &mut String) {
    let name = field.dotted();
    // `-x:*` would be a negation and `_exists_:*` is not a field test: say these with `_exists_:`.
    if matches!(test, FieldTest::Exists) && (name == "_exists_" || name.starts_with('-')) {
        out.push_str("_exists_:");
        out.push_str(&name);
        return;
    }
    out.push_str(&name);
    out.push(':');
    match test {
        FieldTest::Exists => out.push('*'),
        FieldTest::Equals(value) => write_literal(value, out),
        FieldTest::Wildcard(pattern) => {
            let units = glob_units(pattern);
            match units.as_slice() {
                // The parser's substring glob over the summary: print the inner glob.
                [('*', false), inner @ .., ('*', false)]
                    if is_summary(field) && !inner.is_empty() =>
                {
                    write_glob(inner, out);
                }
                [] => out.push_str("\"\""),
                _ => write_glob(&units, out),
            }
        }
        FieldTest::Regex(expression) => write_regex(expression, out),
        FieldTest::Range(RangeKind::Number { lower, upper }) => {
            write_range(lower, upper, out, |value, out| {
                out.push_str(&format_number(*value))
            });
        }
        FieldTest::Range(RangeKind::Text { lower, upper }) => {
            write_range(lower, upper, out, |value, out| write_quoted(value, out));
        }
        FieldTest::Range(RangeKind::Time { lower, upper }) => {
            write_range(lower, upper, out, |value, out| {
                out.push_str(&format_micros(*value))
            });
        }
        FieldTest::TimeEquals(micros) => out.push_str(&format_micros(*micros)),
        FieldTest::Cidr(network) => {
            out.push_str("cidr(");
            out.push_str(network);
            out.push(')');
        }
        FieldTest::FieldRef(other) => {
            out.push_str("fieldref(");
            out.push_str(&other.dotted());
            out.push(')');
        }
        FieldTest::TimePart { part, value } => {
            out.push_str(part.name());
            out.push('(');
            out.push_str(&value.to_string());
            out.push(')');
        }
    }
}

fn write_text(test: &TextTest, out: &mut String) {
    match test {
        TextTest::Word(word) => {
            if !word.is_empty() && word.chars().all(char::is_alphanumeric) {
                out.push_str(word);
            } else {
                write_quoted(word, out);
            }
        }
        TextTest::Prefix(prefix) => {
            let units: Vec<(char, bool)> =
                prefix.chars().map(|character| (character, false)).collect();
            write_glob(&units, out);
            out.push('*');
        }
        TextTest::Phrase(words) => write_quoted(&words.join(" "), out),
    }
}

#[cfg(test)]
mod tests {
    //! Every syntax form and every error of the language, with positions, plus printing. The property tests
    //! (generated predicates and arbitrary text) are in `tests/properties.rs`.
    use super::*;

    fn field(name: &str, test: FieldTest) -> Predicate {
        Predicate::Field {
            field: FieldPath::parse_dotted(name),
            test,
        }
    }

    fn equals(name: &str, value: &str) -> Predicate {
        field(name, FieldTest::Equals(value.to_owned()))
    }

    fn word(text: &str) -> Predicate {
        Predicate::Text(TextTest::Word(text.to_owned()))
    }

    fn phrase(words: &[&str]) -> Predicate {
        Predicate::Text(TextTest::Phrase(
            words.iter().map(|word| (*word).to_owned()).collect(),
        ))
    }

    fn not(predicate: Predicate) -> Predicate {
        Predicate::Not(Box::new(predicate))
    }

    fn number(lower: Option<(f64, bool)>, upper: Option<(f64, bool)>) -> FieldTest {
        let bound = |(value, inclusive)| Bound { value, inclusive };
        FieldTest::Range(RangeKind::Number {
            lower: lower.map(bound),
            upper: upper.map(bound),
        })
    }

    fn text_range(lower: Option<(&str, bool)>, upper: Option<(&str, bool)>) -> FieldTest {
        let bound = |(value, inclusive): (&str, bool)| Bound {
            value: value.to_owned(),
            inclusive,
        };
        FieldTest::Range(RangeKind::Text {
            lower: lower.map(bound),
            upper: upper.map(bound),
        })
    }

    fn ok(query: &str) -> Predicate {
        match parse(query) {
            Ok(predicate) => {
                // Every parsed query also prints and reads back.
                let printed = to_query_string(&predicate);
                assert_eq!(
                    parse(&printed).as_ref(),
                    Ok(&predicate),
                    "round trip of {query:?} via {printed:?}"
                );
                predicate
            }
            Err(error) => panic!("{query:?} should parse: {error}"),
        }
    }

    fn err(query: &str) -> ParseError {
        match parse(query) {
            Ok(predicate) => panic!("{query:?} should not parse, got {predicate:?}"),
            Err(error) => error,
        }
    }

    fn micros(text: &str) -> i64 {
        isms_event::micros_of(isms_event::parse_time(text).expect("a time"))
    }

    #[test]
    fn everything() {
        for query in ["", "   \t\n", "*", "*:*", " * ", "( * )"] {
            assert_eq!(ok(query), Predicate::All, "{query:?}");
        }
        assert_eq!(to_query_string(&Predicate::All), "*");
    }

    #[test]
    fn field_values() {
        assert_eq!(
            ok("category:authentication"),
            equals("category", "authentication")
        );
        assert_eq!(
            ok("Details.UserName:Bob"),
            equals("details.username", "Bob")
        );
        assert_eq!(ok("a_b@c-d.e:-5"), equals("a_b@c-d.e", "-5"));
        assert_eq!(ok("a:b:c"), equals("a", "b:c"));
        assert_eq!(ok(r"a:foo\:bar\ baz\(x\)"), equals("a", "foo:bar baz(x)"));
        assert_eq!(ok("a:AND"), equals("a", "AND"));
        assert_eq!(ok(r#"a:"hello world""#), equals("a", "hello world"));
        assert_eq!(
            ok(r#"a:"say \"hi\" \\ *x?""#),
            equals("a", r#"say "hi" \ *x?"#)
        );
        assert_eq!(ok(r#"a:"""#), equals("a", ""));
        assert_eq!(ok("a:*"), field("a", FieldTest::Exists));
        assert_eq!(
            ok("_exists_:Details.Username"),
            field("details.username", FieldTest::Exists)
        );
        assert_eq!(ok("_exists_:summary"), field("summary", FieldTest::Exists));
        assert_eq!(ok("summary:*"), field("summary", FieldTest::Exists));
    }

    #[test]
    fn wildcards_keep_escaped_glob_characters_escaped() {
        let wildcard =
            |name: &str, pattern: &str| field(name, FieldTest::Wildcard(pattern.to_owned()));
        assert_eq!(
            ok("details.username:jo*"),
            wildcard("details.username", "jo*")
        );
        assert_eq!(ok("a:j?e"), wildcard("a", "j?e"));
        assert_eq!(ok("a:*x*"), wildcard("a", "*x*"));
        assert_eq!(ok("a:**"), wildcard("a", "**"));
        assert_eq!(ok(r"a:jo\*"), equals("a", "jo*"));
        assert_eq!(ok(r"a:jo\?"), equals("a", "jo?"));
        assert_eq!(ok(r"a:jo\**"), wildcard("a", r"jo\**"));
        assert_eq!(ok(r"a:a\\b*"), wildcard("a", r"a\\b*"));
        assert_eq!(ok(r"a:a\:b\?*"), wildcard("a", r"a:b\?*"));
        assert_eq!(ok(r"a:\*"), equals("a", "*"));
    }

    #[test]
    fn regexes() {
        let regex =
            |name: &str, expression: &str| field(name, FieldTest::Regex(expression.to_owned()));
        assert_eq!(ok("a:/fo+|ba[rz]/"), regex("a", "fo+|ba[rz]"));
        assert_eq!(ok(r"a:/a\/b/"), regex("a", "a/b"));
        assert_eq!(ok(r"a:/\d+\.\\/"), regex("a", r"\d+\.\\"));
        assert_eq!(ok("a:/with space/"), regex("a", "with space"));
        assert_eq!(ok("a://"), regex("a", ""));
        assert_eq!(ok("/fail(ed)?/"), regex("summary", "fail(ed)?"));
        assert_eq!(ok("summary:/x.*/"), regex("summary", "x.*"));
        assert_eq!(ok("(a:/x/)"), regex("a", "x"));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            ok("port:[1 TO 1024]"),
            field("port", number(Some((1.0, true)), Some((1024.0, true))))
        );
        assert_eq!(
            ok("port:{1 TO 1024}"),
            field("port", number(Some((1.0, false)), Some((1024.0, false))))
        );
        assert_eq!(
            ok("port:[1 TO 1024}"),
            field("port", number(Some((1.0, true)), Some((1024.0, false))))
        );
        assert_eq!(
            ok("port:{-1.5 TO 2e3]"),
            field("port", number(Some((-1.5, false)), Some((2000.0, true))))
        );
        assert_eq!(
            ok("port:[ * TO 5 ]"),
            field("port", number(None, Some((5.0, true))))
        );
        assert_eq!(
            ok("port:{5 TO *}"),
            field("port", number(Some((5.0, false)), None))
        );
        assert_eq!(
            ok("port:>=5"),
            field("port", number(Some((5.0, true)), None))
        );
        assert_eq!(
            ok("port:>5"),
            field("port", number(Some((5.0, false)), None))
        );
        assert_eq!(
            ok("port:<5"),
            field("port", number(None, Some((5.0, false))))
        );
        assert_eq!(
            ok("port:<=5"),
            field("port", number(None, Some((5.0, true))))
        );
        assert_eq!(
            ok("port:[1e400 TO *]"),
            field("port", number(Some((f64::INFINITY, true)), None))
        );
        // Anything that is not a plain decimal number makes a text range, lowercased.
        assert_eq!(
            ok("name:[a TO M]"),
            field("name", text_range(Some(("a", true)), Some(("m", true))))
        );
        assert_eq!(
            ok("port:[1 TO x]"),
            field("port", text_range(Some(("1", true)), Some(("x", true))))
        );
        assert_eq!(
            ok("port:[0x10 TO *]"),
            field("port", text_range(Some(("0x10", true)), None))
        );
        assert_eq!(
            ok("port:[+5 TO *]"),
            field("port", text_range(Some(("+5", true)), None))
        );
        assert_eq!(
            ok("port:[.5 TO *]"),
            field("port", text_range(Some((".5", true)), None))
        );
        assert_eq!(
            ok(r#"port:["1" TO 5]"#),
            field("port", text_range(Some(("1", true)), Some(("5", true))))
        );
        assert_eq!(
            ok(r#"name:>"B C""#),
            field("name", text_range(Some(("b c", false)), None))
        );
        assert_eq!(
            ok(r#"name:["a]" TO "\"z\""}"#),
            field(
                "name",
                text_range(Some(("a]", true)), Some(("\"z\"", false)))
            )
        );
        assert_eq!(ok("x:[* TO *]"), field("x", text_range(None, None)));
        // Free text ranges are over the whole summary, always as text.
        assert_eq!(
            ok("summary:[1 TO 5]"),
            field("summary", text_range(Some(("1", true)), Some(("5", true))))
        );
        assert_eq!(
            ok("[A TO b]"),
            field("summary", text_range(Some(("a", true)), Some(("b", true))))
        );
        assert_eq!(
            ok("<m"),
            field("summary", text_range(None, Some(("m", false))))
        );
    }

    #[test]
    fn time_fields_compare_instants() {
        let time = |lower: Option<(&str, bool)>, upper: Option<(&str, bool)>| {
            let bound = |(text, inclusive): (&str, bool)| Bound {
                value: micros(text),
                inclusive,
            };
            FieldTest::Range(RangeKind::Time {
                lower: lower.map(bound),
                upper: upper.map(bound),
            })
        };
        assert_eq!(
            ok("utctimestamp:[2024-01-01T00:00:00Z TO 2024-01-02T00:00:00.5+02:00}"),
            field(
                "utctimestamp",
                time(
                    Some(("2024-01-01T00:00:00Z", true)),
                    Some(("2024-01-02T00:00:00.5+02:00", false))
                )
            )
        );
        assert_eq!(
            ok(r#"ReceivedTimestamp:>="2024-01-01 10:00:00""#),
            field(
                "receivedtimestamp",
                time(Some(("2024-01-01T10:00:00Z", true)), None)
            )
        );
        assert_eq!(
            ok("utctimestamp:[* TO *]"),
            field("utctimestamp", time(None, None))
        );
        assert_eq!(
            ok("utctimestamp:2024-01-01T00:00:00.000001Z"),
            field("utctimestamp", FieldTest::TimeEquals(1_704_067_200_000_001))
        );
        assert_eq!(
            ok(r#"utctimestamp:"2024-01-01 00:00:00""#),
            field("utctimestamp", FieldTest::TimeEquals(1_704_067_200_000_000))
        );
        assert_eq!(
            ok("utctimestamp:1704067200"),
            field("utctimestamp", FieldTest::TimeEquals(1_704_067_200_000_000))
        );
        // Globs and regexes on time fields stay text tests.
        assert_eq!(
            ok("utctimestamp:2024*"),
            field("utctimestamp", FieldTest::Wildcard("2024*".to_owned()))
        );
        assert_eq!(
            ok("utctimestamp:/2024.*/"),
            field("utctimestamp", FieldTest::Regex("2024.*".to_owned()))
        );
        assert_eq!(
            ok("utctimestamp:*"),
            field("utctimestamp", FieldTest::Exists)
        );
        // `timestamp` is the sender's text, not a time field.
        assert_eq!(ok("timestamp:2024"), equals("timestamp", "2024"));
        assert_eq!(
            to_query_string(&ok("utctimestamp:>2024-01-01")),
            "utctimestamp:{2024-01-01T00:00:00Z TO *]"
        );
    }

    #[test]
    fn free_text_is_words_of_the_summary() {
        assert_eq!(ok("failed"), word("failed"));
        assert_eq!(ok("FAILED"), word("failed"));
        assert_eq!(ok("ÉCOLE"), word("école"));
        assert_eq!(ok("summary:Failed"), word("failed"));
        assert_eq!(ok("Failed-Login"), phrase(&["failed", "login"]));
        assert_eq!(ok("foo.example.com"), phrase(&["foo", "example", "com"]));
        assert_eq!(
            ok(r#""failed  LOGIN for""#),
            phrase(&["failed", "login", "for"])
        );
        assert_eq!(ok(r#""--x--""#), word("x"));
        assert_eq!(ok(r#"summary:"a b""#), phrase(&["a", "b"]));
        assert_eq!(ok(r"\-x"), word("x"));
        assert_eq!(ok(r"\AND"), word("and"));
        assert_eq!(
            ok("fail*"),
            Predicate::Text(TextTest::Prefix("fail".to_owned()))
        );
        assert_eq!(
            ok("summary:Fail*"),
            Predicate::Text(TextTest::Prefix("fail".to_owned()))
        );
        assert_eq!(
            ok("-fail*"),
            not(Predicate::Text(TextTest::Prefix("fail".to_owned())))
        );
        assert_eq!(
            ok("fail.*"),
            Predicate::Text(TextTest::Prefix("fail".to_owned()))
        );
        let glob = |pattern: &str| field("summary", FieldTest::Wildcard(pattern.to_owned()));
        assert_eq!(ok("*ogin"), glob("**ogin*"));
        assert_eq!(ok("f?il"), glob("*f?il*"));
        assert_eq!(ok("a*b*"), glob("*a*b**"));
        assert_eq!(ok("foo-bar*"), glob("*foo-bar**"));
        assert_eq!(ok("fail**"), glob("*fail***"));
        assert_eq!(ok("**"), glob("****"));
        assert_eq!(
            ok("summary:(failed OR *ogin)"),
            Predicate::Or(vec![word("failed"), glob("**ogin*")])
        );
        assert_eq!(ok("summary:(*)"), field("summary", FieldTest::Exists));
    }

    #[test]
    fn boolean_structure() {
        let (a, b, c) = (equals("a", "1"), equals("b", "2"), equals("c", "3"));
        let and = |list: &[&Predicate]| Predicate::And(list.iter().map(|p| (*p).clone()).collect());
        let or = |list: &[&Predicate]| Predicate::Or(list.iter().map(|p| (*p).clone()).collect());
        // Juxtaposition is AND.
        assert_eq!(ok("a:1 b:2"), and(&[&a, &b]));
        assert_eq!(ok("a:1 AND b:2"), and(&[&a, &b]));
        assert_eq!(ok("a:1 && b:2"), and(&[&a, &b]));
        assert_eq!(ok("a:1 &&b:2"), and(&[&a, &b]));
        assert_eq!(ok("a:1 OR b:2"), or(&[&a, &b]));
        assert_eq!(ok("a:1 || b:2"), or(&[&a, &b]));
        assert_eq!(ok("a:1 b:2 OR c:3"), or(&[&and(&[&a, &b]), &c]));
        assert_eq!(ok("a:1 OR b:2 c:3"), or(&[&a, &and(&[&b, &c])]));
        assert_eq!(ok("a:1 AND (b:2 OR c:3)"), and(&[&a, &or(&[&b, &c])]));
        assert_eq!(ok("(a:1 AND b:2) AND c:3"), and(&[&and(&[&a, &b]), &c]));
        assert_eq!(ok("((a:1))"), a);
        assert_eq!(ok("(a:1)(b:2)"), and(&[&a, &b]));
        // Lower-case keywords are words; keywords glued to other text are words.
        assert_eq!(ok("a:1 and b:2"), and(&[&a, &word("and"), &b]));
        assert_eq!(ok("ANDROID"), word("android"));
        assert_eq!(ok("a&&b"), phrase(&["a", "b"]));
        // Negation and "required".
        assert_eq!(ok("NOT a:1"), not(a.clone()));
        assert_eq!(ok("!a:1"), not(a.clone()));
        assert_eq!(ok("-a:1"), not(a.clone()));
        assert_eq!(ok("- a:1"), not(a.clone()));
        assert_eq!(ok("NOT(a:1)"), not(a.clone()));
        assert_eq!(ok("+a:1 -b:2"), and(&[&a, &not(b.clone())]));
        assert_eq!(ok("NOT NOT a:1"), not(not(a.clone())));
        assert_eq!(ok("NOT *"), not(Predicate::All));
        assert_eq!(ok("a:1 -(b:2 OR c:3)"), and(&[&a, &not(or(&[&b, &c]))]));
    }

    #[test]
    fn field_groups_apply_to_the_field() {
        let port = |value: &str| equals("port", value);
        assert_eq!(
            ok("port:(22 OR 2222 -23)"),
            Predicate::Or(vec![
                port("22"),
                Predicate::And(vec![port("2222"), not(port("23"))])
            ])
        );
        assert_eq!(ok("port:(22)"), port("22"));
        assert_eq!(
            ok("port:((22 || 23))"),
            Predicate::Or(vec![port("22"), port("23")])
        );
        assert_eq!(
            ok("port:(>1000 NOT 8080)"),
            Predicate::And(vec![
                field("port", number(Some((1000.0, false)), None)),
                not(port("8080"))
            ])
        );
        assert_eq!(
            ok(r#"a:(x:y "p q" /r/ *)"#),
            Predicate::And(vec![
                equals("a", "x:y"),
                equals("a", "p q"),
                field("a", FieldTest::Regex("r".to_owned())),
                field("a", FieldTest::Exists),
            ])
        );
        assert_eq!(
            ok("summary:(failed login)"),
            Predicate::And(vec![word("failed"), word("login")])
        );
        assert_eq!(
            ok("utctimestamp:(1704067200 OR 1704067201)"),
            Predicate::Or(vec![
                field("utctimestamp", FieldTest::TimeEquals(1_704_067_200_000_000)),
                field("utctimestamp", FieldTest::TimeEquals(1_704_067_201_000_000)),
            ])
        );
    }

    #[track_caller]
    fn assert_error(query: &str, position: usize, expected: &str, found: &str) {
        let error = err(query);
        assert_eq!(
            (
                error.position,
                error.expected.as_str(),
                error.found.as_str()
            ),
            (position, expected, found),
            "error for {query:?}"
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        let error = err("details.username:");
        assert_eq!(
            error.to_string(),
            "at position 17: expected a value after \"details.username:\", found end of query"
        );
        assert_error("a: b", 2, "a value after \"a:\"", "whitespace");
        assert_error("(a:)", 3, "a value after \"a:\"", "\")\"");
        assert_error(r#"a:"abc"#, 6, "closing \"", "end of query");
        assert_error(r#"x a:"abc\"#, 9, "closing \"", "end of query");
        assert_error(r#""abc"#, 4, "closing \"", "end of query");
        assert_error("a:/abc", 6, "closing /", "end of query");
        assert_error(r"a:/abc\/", 8, "closing /", "end of query");
        assert_error("/abc", 4, "closing /", "end of query");
        assert_error(
            "a:/a(b/",
            2,
            "a valid regular expression",
            "an invalid one (unclosed group)",
        );
        assert_error(
            "x /a)(?:b/",
            2,
            "a valid regular expression",
            "an invalid one (unopened group)",
        );
        let too_big = err("a:/x{1000}{1000}/");
        assert_eq!(
            (too_big.position, too_big.expected.as_str()),
            (2, "a valid regular expression")
        );
        assert!(too_big.found.contains("size limit"), "{too_big}");
        assert_error(
            "(a:1",
            4,
            "\")\" closing the \"(\" at position 0",
            "end of query",
        );
        assert_error(
            "a:1 (b:2 c:3",
            12,
            "\")\" closing the \"(\" at position 4",
            "end of query",
        );
        assert_error("a:1)", 3, "end of query", "\")\" without a matching \"(\"");
        assert_error(")", 0, "a term", "\")\"");
        assert_error("()", 1, "a term", "\")\"");
        assert_error("a:1 AND", 7, "a term", "end of query");
        for (query, position) in [
            (format!("x a:{}", "?".repeat(8000)), 4),
            (format!("x {}", "?".repeat(8000)), 2),
        ] {
            let error = err(&query);
            assert_eq!(
                (error.position, error.expected.as_str()),
                (position, "a wildcard pattern small enough to run")
            );
            assert!(error.found.contains("size limit"), "{error}");
        }
        let regexes = "a:/x/ ".repeat(MAX_REGEXES);
        assert!(parse(&regexes).is_ok());
        assert_error(
            &format!("{regexes}/y/"),
            6 * MAX_REGEXES,
            "at most 32 regular expressions in one query",
            "another one",
        );
        assert_error("a:1 AND OR b:2", 8, "a term", "\"OR\"");
        assert_error("OR a", 0, "a term", "\"OR\"");
        assert_error("|| a", 0, "a term", "\"||\"");
        assert_error("NOT", 3, "a term", "end of query");
        assert_error("a -", 3, "a term", "end of query");
        assert_error("*:foo", 2, "\"*\" after \"*:\"", "\"foo\"");
        assert_error(
            "_exists_:",
            9,
            "a field name after \"_exists_:\"",
            "end of query",
        );
        assert_error(
            "_exists_:a/b",
            9,
            "a field name after \"_exists_:\"",
            "\"a/b\"",
        );
        assert_error(r"a:b\", 4, "a character after \"\\\"", "end of query");
        assert_error(
            r#""a"b"#,
            3,
            "a space, \")\" or the end of the query",
            "\"b\"",
        );
        assert_error(
            "a:/x/y",
            5,
            "a space, \")\" or the end of the query",
            "\"y\"",
        );
        assert_error(
            "port:[1 TO 2]x",
            13,
            "a space, \")\" or the end of the query",
            "\"x\"",
        );
        assert_error(
            "port:[1 5]",
            8,
            "\" TO \" between the bounds of the range",
            "\"5]\"",
        );
        assert_error(
            "port:[1 TO]",
            8,
            "\" TO \" between the bounds of the range",
            "\"TO]\"",
        );
        // Regression: a range cut short after TO used to blame the TO.
        assert_error("port:[1 TO", 10, "an upper bound (or *)", "end of query");
        assert_error(
            "port:[1 to 5]",
            8,
            "\" TO \" between the bounds of the range",
            "\"to\"",
        );
        assert_error(
            "port:[1 TO 5",
            12,
            "\"]\" or \"}\" closing the range",
            "end of query",
        );
        assert_error(
            "port:[1 TO 5 6]",
            13,
            "\"]\" or \"}\" closing the range",
            "\"6]\"",
        );
        assert_error("port:[]", 6, "a lower bound (or *)", "\"]\"");
        assert_error("port:[1 TO ]", 11, "an upper bound (or *)", "\"]\"");
        assert_error(
            r#"port:["a"x TO b]"#,
            9,
            "a space or the end of the range after the bound",
            "\"x\"",
        );
        assert_error("port:>", 6, "a value after \">\"", "end of query");
        assert_error("port:<=*", 7, "a value after \"<=\"", "\"*\"");
        assert_error("utctimestamp:yesterday", 13, "a time", "\"yesterday\"");
        assert_error(
            "utctimestamp:[2024-01-01 TO soon]",
            28,
            "a time",
            "\"soon\"",
        );
        assert_error(r#"utctimestamp:"""#, 13, "a time", "\"\"");
        assert_error(
            r#"summary:"--""#,
            8,
            "a word of letters or digits",
            "\"--\" (the phrase has no words)",
        );
        assert_error(
            "x ...",
            2,
            "a word of letters or digits",
            "\"...\" (the phrase has no words)",
        );
        assert_error(
            "a:1 abcdefghijklmnopqrstuvwxyz)",
            30,
            "end of query",
            "\")\" without a matching \"(\"",
        );
        assert_error(
            "*:abcdefghijklmnopqrstuvwxyz",
            2,
            "\"*\" after \"*:\"",
            "\"abcdefghijklmnopqrst…\"",
        );
    }

    #[test]
    fn functions_make_cidr_field_reference_and_time_part_tests() {
        let cidr = |name: &str, network: &str| field(name, FieldTest::Cidr(network.to_owned()));
        assert_eq!(
            ok("details.sourceipaddress:cidr(10.0.0.0/8)"),
            cidr("details.sourceipaddress", "10.0.0.0/8")
        );
        assert_eq!(ok("ip:CIDR(2001:DB8:0::/32)"), cidr("ip", "2001:db8::/32"));
        assert_eq!(ok("ip:cidr(::/0)"), cidr("ip", "::/0"));
        assert_eq!(
            ok("ip:(cidr(10.0.0.0/8) OR cidr(::1/128))"),
            Predicate::Or(vec![cidr("ip", "10.0.0.0/8"), cidr("ip", "::1/128")])
        );
        assert_eq!(
            ok("-ip:cidr(192.168.0.0/16)"),
            not(cidr("ip", "192.168.0.0/16"))
        );
        assert_eq!(
            ok("summary:cidr(10.0.0.0/8)"),
            cidr("summary", "10.0.0.0/8")
        );
        assert_eq!(
            ok("User:fieldref(Details.Target_User)"),
            field(
                "user",
                FieldTest::FieldRef(FieldPath::parse_dotted("details.target_user"))
            )
        );
        let part = |name: &str, part: TimeComponent, value: i64| {
            field(name, FieldTest::TimePart { part, value })
        };
        assert_eq!(
            ok("utctimestamp:hour(3)"),
            part("utctimestamp", TimeComponent::Hour, 3)
        );
        assert_eq!(
            ok("details.created:(minute(0) week(53) Day(31) month(1))"),
            Predicate::And(vec![
                part("details.created", TimeComponent::Minute, 0),
                part("details.created", TimeComponent::Week, 53),
                part("details.created", TimeComponent::Day, 31),
                part("details.created", TimeComponent::Month, 1),
            ])
        );
        assert_eq!(
            ok("t:year(-9999) t:year(2024) t:hour(03)"),
            Predicate::And(vec![
                part("t", TimeComponent::Year, -9999),
                part("t", TimeComponent::Year, 2024),
                part("t", TimeComponent::Hour, 3),
            ])
        );
        // Only directly before `(`, and only as a field's value: elsewhere these are words.
        assert_eq!(
            ok("ip:cidr (x)"),
            Predicate::And(vec![equals("ip", "cidr"), word("x")])
        );
        assert_eq!(
            ok("cidr(10.0.0.0/8)"),
            Predicate::And(vec![word("cidr"), phrase(&["10", "0", "0", "0", "8"])])
        );
        assert_eq!(ok(r#"ip:"cidr(x)""#), equals("ip", "cidr(x)"));
        assert_eq!(ok(r"ip:cidr\(x\)"), equals("ip", "cidr(x)"));
        assert_eq!(ok("ip:hours"), equals("ip", "hours"));
        assert_eq!(
            to_query_string(&ok("ip:CIDR(2001:DB8::/32) AND a:Hour(3) b:FieldRef(C)")),
            "ip:cidr(2001:db8::/32) AND a:hour(3) AND b:fieldref(c)"
        );
    }

    #[test]
    fn bad_function_arguments_are_errors_at_the_argument() {
        let network = "a network such as 10.0.0.0/8 or 2001:db8::/32";
        assert_error(
            "ip:cidr(10.0.0.0/33)",
            8,
            network,
            "\"10.0.0.0/33\" (the prefix length 33 is longer than the 32 bits of an IPv4 address)",
        );
        assert_error(
            "x ip:cidr(300.1.1.1/8)",
            10,
            network,
            "\"300.1.1.1/8\" (\"300.1.1.1\" is not an IP address)",
        );
        assert_error(
            "ip:cidr(10.0.0.0)",
            8,
            network,
            "\"10.0.0.0\" (no prefix length (write a network as address/length, e.g. 10.0.0.0/8))",
        );
        assert_error(
            "ip:cidr(10.1.0.0/8)",
            8,
            network,
            "\"10.1.0.0/8\" (host bits are set past the prefix (the network is 10.0.0.0/8))",
        );
        assert_error("ip:cidr()", 8, network, "\")\"");
        assert_error("ip:cidr(", 8, network, "end of query");
        assert_error(
            "ip:cidr(10.0.0.0/8",
            18,
            "\")\" closing \"cidr(\"",
            "end of query",
        );
        assert_error(
            "ip:cidr(10.0.0.0/8 x)",
            18,
            "\")\" closing \"cidr(\"",
            "whitespace",
        );
        assert_error(
            "ip:cidr(10.0.0.0/8)x",
            19,
            "a space, \")\" or the end of the query",
            "\"x\"",
        );
        assert_error("a:fieldref()", 11, "a field name", "\")\"");
        assert_error("a:fieldref(b/c)", 11, "a field name", "\"b/c\"");
        assert_error("t:hour(24)", 7, "an hour (0 to 23)", "\"24\"");
        assert_error("t:minute(x)", 9, "a minute (0 to 59)", "\"x\"");
        assert_error("t:day(0)", 6, "a day of the month (1 to 31)", "\"0\"");
        assert_error("t:week(54)", 7, "an ISO week number (1 to 53)", "\"54\"");
        assert_error("t:month(1.0)", 8, "a month (1 to 12)", "\"1.0\"");
        assert_error(
            "t:year(99999999999999999999)",
            7,
            "a year (-9999 to 9999)",
            "\"99999999999999999999\"",
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        assert_error("éé a:", 5, "a value after \"a:\"", "end of query");
    }

    #[test]
    fn bounds_on_depth_and_length() {
        let nested = |depth: usize| format!("{}a:1{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(ok(&nested(MAX_DEPTH)), equals("a", "1"));
        // Printing never needs more nesting than the query had.
        let deep = format!(
            "{}a:1 OR b:2 c:3 OR NOT d:(4 5){}",
            "(".repeat(MAX_DEPTH - 2),
            ")".repeat(MAX_DEPTH - 2)
        );
        assert!(matches!(ok(&deep), Predicate::Or(_)));
        assert_error(
            &nested(MAX_DEPTH + 1),
            MAX_DEPTH,
            "at most 64 nested parentheses or operators",
            "deeper nesting",
        );
        let negations = |depth: usize| format!("{}a:1", "NOT ".repeat(depth));
        assert!(parse(&negations(MAX_DEPTH)).is_ok());
        assert_error(
            &negations(MAX_DEPTH + 1),
            4 * MAX_DEPTH,
            "at most 64 nested parentheses or operators",
            "deeper nesting",
        );
        assert_error(
            &"-".repeat(10_000),
            MAX_DEPTH,
            "at most 64 nested parentheses or operators",
            "deeper nesting",
        );
        assert_error(
            &format!("a:({})", "(".repeat(MAX_DEPTH)),
            2 + MAX_DEPTH,
            "at most 64 nested parentheses or operators",
            "deeper nesting",
        );
        // Long flat queries are fine up to the length bound.
        let flat = "a:1 ".repeat(MAX_QUERY_BYTES / 4);
        assert_eq!(flat.len(), MAX_QUERY_BYTES);
        assert!(
            matches!(parse(&flat), Ok(Predicate::And(children)) if children.len() == MAX_QUERY_BYTES / 4)
        );
        let long = format!("{flat}b");
        assert_error(
            &long,
            0,
            "a query of at most 16384 bytes",
            "a query of 16385 bytes",
        );
    }

    #[test]
    fn printing() {
        let cases = [
            (
                "category:authentication AND details.username:jo*",
                "category:authentication AND details.username:jo*",
            ),
            ("a:1 b:2 OR c:3", "a:1 AND b:2 OR c:3"),
            (
                "(a:1 OR b:2) c:3 OR ((d:4 OR e:5))",
                "(a:1 OR b:2) AND c:3 OR (d:4 OR e:5)",
            ),
            ("-(a:1 b:2)", "NOT (a:1 AND b:2)"),
            (
                r#"a:"x y" b:"" c:"q\"\\""#,
                r#"a:"x y" AND b:"" AND c:"q\"\\""#,
            ),
            (r"a:x\ y* b:\(\)?", r"a:x\ y* AND b:\(\)?"),
            (r"a:a\\b*", r"a:a\\b*"),
            (r"a:/a\/b\d/", r"a:/a\/b\d/"),
            ("port:>5 port:<=6", "port:{5 TO *] AND port:[* TO 6]"),
            ("port:[1.50 TO 2E3}", "port:[1.5 TO 2000}"),
            ("name:[A TO z]", r#"name:["a" TO "z"]"#),
            (
                "Failed LOGIN* f?il \"a b\"",
                r#"failed AND login* AND summary:f?il AND "a b""#,
            ),
            ("_exists_:x summary:*", "x:* AND summary:*"),
            (
                "utctimestamp:2024-01-01T00:00:00.25+01:00",
                "utctimestamp:2023-12-31T23:00:00.25Z",
            ),
        ];
        for (query, printed) in cases {
            assert_eq!(to_query_string(&ok(query)), printed, "{query:?}");
        }
    }

    #[test]
    fn printing_predicates_the_parser_never_makes() {
        let print = |predicate: Predicate| to_query_string(&predicate);
        assert_eq!(print(Predicate::And(vec![])), "*");
        assert_eq!(print(Predicate::Or(vec![])), "NOT *");
        assert_eq!(print(Predicate::And(vec![equals("a", "1")])), "a:1");
        assert_eq!(
            print(not(Predicate::Or(vec![Predicate::And(vec![
                equals("a", "1"),
                equals("b", "2")
            ])]))),
            "NOT (a:1 AND b:2)"
        );
        assert_eq!(
            print(field("_exists_", FieldTest::Exists)),
            "_exists_:_exists_"
        );
        assert_eq!(
            ok("_exists_:_exists_"),
            field("_exists_", FieldTest::Exists)
        );
        assert_eq!(
            print(field("a", FieldTest::Wildcard(String::new()))),
            "a:\"\""
        );
        assert_eq!(
            print(field("a", FieldTest::Regex(r"x\/y/z".to_owned()))),
            r"a:/x\/y\/z/"
        );
        assert_eq!(
            print(field("a", number(Some((f64::NEG_INFINITY, true)), None))),
            "a:[-1e999 TO *]"
        );
        assert_eq!(
            print(Predicate::Text(TextTest::Word("a b".to_owned()))),
            "\"a b\""
        );
    }
}
