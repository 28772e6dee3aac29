//! Property tests of the query language and the matcher.
//!
//! - Printing and parsing are inverse for every predicate the parser can produce: rules store predicates as
//!   query text, so a predicate must survive `to_query_string` then `parse` unchanged. The generator below
//!   builds such predicates directly (not from query text), so it also reaches forms nobody thought to type.
//! - The parser is fed arbitrary text: it must never panic, errors must point inside the query, and whatever
//!   it accepts must print back, compile and run.
//! - The matcher's hand-written pieces (numeric text check, glob compilation, word matching) are compared
//!   with simple reference implementations of the semantics in `ir.rs`.
use isms_query::ir::{NUMERIC_TEXT_PATTERN, TIME_FIELDS, is_numeric_text, tokenize};
use isms_query::{
    Bound, CompiledPredicate, FieldPath, FieldTest, Predicate, RangeKind, TextTest, TimeComponent,
    parse, to_query_string,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------------------
// Generators of parser-producible predicates
// ---------------------------------------------------------------------------------------------------------

/// Field names the parser can produce, other than the special ones.
fn plain_field() -> impl Strategy<Value = FieldPath> {
    "[a-z0-9_@.][a-z0-9_@.-]{0,10}"
        .prop_filter("special field", |name| {
            name != "_exists_" && name != "summary" && !TIME_FIELDS.contains(&name.as_str())
        })
        .prop_map(|name| FieldPath::parse_dotted(&name))
}

fn time_field() -> impl Strategy<Value = FieldPath> {
    prop::sample::select(TIME_FIELDS.to_vec()).prop_map(FieldPath::parse_dotted)
}

fn summary() -> FieldPath {
    FieldPath::parse_dotted("summary")
}

/// Any text, including the characters the syntax gives meaning to.
fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,10}",
        "[ a-zA-Z0-9:*?\\\\\"/()\\[\\]{}<>=!+&|-]{0,10}",
        "(AND|OR|NOT|TO| |\\*|é|İ){0,4}",
    ]
}

/// The (character, escaped) units of a word containing at least one unescaped glob character, as the parser
/// reads them: only `*`, `?` and `\` keep their escape in the IR.
fn glob_units() -> impl Strategy<Value = Vec<(char, bool)>> {
    let unit = (
        prop::sample::select(vec![
            'a', 'B', 'é', 'É', '*', '?', '\\', ' ', ':', '(', '"', '/', '[', '>', '-',
        ]),
        any::<bool>(),
    )
        .prop_map(|(character, escaped)| (character, escaped || character == '\\'));
    prop::collection::vec(unit, 1..8).prop_filter("needs a glob", |units| {
        units
            .iter()
            .any(|&(character, escaped)| !escaped && matches!(character, '*' | '?'))
            && units != &[('*', false)]
    })
}

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

/// Regexes the parser can produce (valid, and without `\/`, which the parser turns into `/`).
fn regex() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "a", "B", ".", "*", "+", "?", "|", "\\d", "/", "[a-z]", "(", ")", "(?i)", "é", " ", "\\\\",
        "\\.", "{2}", "\"",
    ]);
    prop::collection::vec(piece, 0..6)
        .prop_map(|pieces| pieces.concat())
        .prop_filter("valid regex", |expression| {
            regex::Regex::new(expression).is_ok()
                && regex::Regex::new(&format!("^(?:{expression})$")).is_ok()
        })
}

fn number() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("not NaN", |value| !value.is_nan()),
        -1e6..1e6f64,
        (-1000i64..1000).prop_map(|value| value as f64),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
}

fn bound<T: std::fmt::Debug + Clone>(
    value: impl Strategy<Value = T>,
) -> impl Strategy<Value = Option<Bound<T>>> {
    prop::option::of(
        (value, any::<bool>()).prop_map(|(value, inclusive)| Bound { value, inclusive }),
    )
}

fn micros() -> impl Strategy<Value = i64> {
    prop_oneof![
        -377_705_023_201_000_000i64..=253_402_207_200_000_000,
        1_600_000_000_000_000i64..1_800_000_000_000_000,
        (1_600_000_000i64..1_800_000_000).prop_map(|seconds| seconds * 1_000_000),
    ]
}

/// Networks in canonical text, IPv4 and IPv6, every prefix length.
fn network() -> impl Strategy<Value = String> {
    prop_oneof![
        (any::<u32>(), 0u8..=32).prop_map(|(bits, length)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(length)).unwrap_or(0);
            format!("{}/{length}", std::net::Ipv4Addr::from(bits & mask))
        }),
        (any::<u128>(), 0u8..=128).prop_map(|(bits, length)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(length)).unwrap_or(0);
            format!("{}/{length}", std::net::Ipv6Addr::from(bits & mask))
        }),
    ]
}

/// Time-part tests with every value each component can take.
fn time_part() -> impl Strategy<Value = FieldTest> {
    prop::sample::select(TimeComponent::ALL.to_vec()).prop_flat_map(|part| {
        part.possible_values()
            .prop_map(move |value| FieldTest::TimePart { part, value })
    })
}

/// The tests written as functions (`cidr(...)`, `fieldref(...)`, `hour(...)`), on any field.
fn function_test() -> impl Strategy<Value = FieldTest> {
    prop_oneof![
        network().prop_map(FieldTest::Cidr),
        prop_oneof![plain_field(), time_field(), Just(summary())].prop_map(FieldTest::FieldRef),
        time_part(),
    ]
}

fn field_test() -> impl Strategy<Value = FieldTest> {
    prop_oneof![
        function_test(),
        Just(FieldTest::Exists),
        any_text().prop_map(FieldTest::Equals),
        glob_units().prop_map(|units| FieldTest::Wildcard(pattern_of(&units))),
        regex().prop_map(FieldTest::Regex),
        (bound(number()), bound(number()))
            .prop_filter("numeric ranges have a bound", |(lower, upper)| lower
                .is_some()
                || upper.is_some())
            .prop_map(|(lower, upper)| FieldTest::Range(RangeKind::Number { lower, upper })),
        (bound(any_text()), bound(any_text())).prop_map(|(lower, upper)| {
            let lowercase = |bound: Option<Bound<String>>| {
                bound.map(|bound| Bound {
                    value: bound.value.to_ascii_lowercase(),
                    inclusive: bound.inclusive,
                })
            };
            FieldTest::Range(RangeKind::Text {
                lower: lowercase(lower),
                upper: lowercase(upper),
            })
        }),
    ]
}

fn time_test() -> impl Strategy<Value = FieldTest> {
    prop_oneof![
        Just(FieldTest::Exists),
        micros().prop_map(FieldTest::TimeEquals),
        function_test(),
        (bound(micros()), bound(micros()))
            .prop_map(|(lower, upper)| FieldTest::Range(RangeKind::Time { lower, upper })),
        glob_units().prop_map(|units| FieldTest::Wildcard(pattern_of(&units))),
        regex().prop_map(FieldTest::Regex),
    ]
}

/// Lowercase alphanumeric words that tokenize to themselves.
fn token() -> impl Strategy<Value = String> {
    "[a-z0-9éßж中٣]{1,6}"
}

/// Whether the parser would read the free-text glob `units` as a word prefix instead.
fn is_prefix_form(units: &[(char, bool)]) -> bool {
    match units.split_last() {
        Some((&('*', false), rest)) => {
            !rest
                .iter()
                .any(|&(character, escaped)| !escaped && matches!(character, '*' | '?'))
                && tokenize(&rest.iter().map(|unit| unit.0).collect::<String>()).len() == 1
        }
        _ => false,
    }
}

fn summary_test() -> impl Strategy<Value = Predicate> {
    let field = |test: FieldTest| Predicate::Field {
        field: summary(),
        test,
    };
    prop_oneof![
        token().prop_map(|word| Predicate::Text(TextTest::Word(word))),
        token().prop_map(|prefix| Predicate::Text(TextTest::Prefix(prefix))),
        prop::collection::vec(token(), 2..5)
            .prop_map(|words| Predicate::Text(TextTest::Phrase(words))),
        Just(field(FieldTest::Exists)),
        function_test().prop_map(field),
        regex().prop_map(move |expression| field(FieldTest::Regex(expression))),
        glob_units()
            .prop_filter("not a prefix", |units| !is_prefix_form(units))
            .prop_map(move |units| field(FieldTest::Wildcard(format!("*{}*", pattern_of(&units))))),
        (bound(any_text()), bound(any_text())).prop_map(move |(lower, upper)| {
            let lowercase = |bound: Option<Bound<String>>| {
                bound.map(|bound| Bound {
                    value: bound.value.to_ascii_lowercase(),
                    inclusive: bound.inclusive,
                })
            };
            field(FieldTest::Range(RangeKind::Text {
                lower: lowercase(lower),
                upper: lowercase(upper),
            }))
        }),
    ]
}

fn leaf() -> impl Strategy<Value = Predicate> {
    prop_oneof![
        1 => Just(Predicate::All),
        4 => (plain_field(), field_test()).prop_map(|(field, test)| Predicate::Field { field, test }),
        2 => (time_field(), time_test()).prop_map(|(field, test)| Predicate::Field { field, test }),
        3 => summary_test(),
    ]
}

fn predicate() -> impl Strategy<Value = Predicate> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Predicate::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Predicate::Or),
            inner.prop_map(|child| Predicate::Not(Box::new(child))),
        ]
    })
}

fn sample_event() -> Map<String, Value> {
    let value = json!({
        "utctimestamp": "2024-01-30T13:24:43.123456+00:00",
        "category": "authentication",
        "summary": "Failed password for root from 10.0.0.1",
        "tags": ["a", 1, true],
        "details": {"username": "root", "port": 22, "count": "17"},
    });
    match value {
        Value::Object(map) => map,
        _ => unreachable!(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn printing_then_parsing_gives_the_predicate_back(predicate in predicate()) {
        let printed = to_query_string(&predicate);
        prop_assert_eq!(parse(&printed), Ok(predicate.clone()), "printed as {}", printed);
        // What the parser makes, the matcher can run.
        prop_assert!(CompiledPredicate::compile(&predicate).is_ok());
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(query in prop_oneof![
        any::<String>(),
        "[ a-zA-Z0-9_.:*?\\\\\"/()\\[\\]{}<>=!+&|-]{0,30}",
        "((AND|OR|NOT|TO|&&|\\|\\||[-+!]|\\(|\\)|\\[|\\]|\\{|\\}|a:|_exists_:|utctimestamp:|summary:|\"|/|\\*|\\?|\\\\|>=?|<=?|x|2024-01-01|5|é) ?){0,12}",
        "((a:|b:|cidr\\(|fieldref\\(|hour\\(|Week\\(|10\\.0\\.0\\.0/8|::1/128|1\\.2\\.3\\.4/33|x\\.y|-1|24|\\(|\\)|OR| ) ?){0,10}",
    ]) {
        match parse(&query) {
            Ok(predicate) => {
                let compiled = CompiledPredicate::compile(&predicate);
                prop_assert!(compiled.is_ok(), "{:?} does not compile: {:?}", predicate, compiled.err());
                let _ = compiled.map(|compiled| compiled.matches(&sample_event()));
                // `İ` lowercases to `i` plus a combining dot, which `tokenize` splits on when reading the
                // printed word back (see the crate report); everything else must round-trip.
                if !query.contains('İ') {
                    let printed = to_query_string(&predicate);
                    prop_assert_eq!(parse(&printed), Ok(predicate), "{:?} printed as {:?}", query, printed);
                }
            }
            Err(error) => {
                prop_assert!(error.position <= query.chars().count(), "{:?}: {}", query, error);
                prop_assert!(!error.expected.is_empty() && !error.found.is_empty());
            }
        }
    }

    #[test]
    fn numeric_text_check_is_the_pattern(text in prop_oneof!["[-+0-9.eE ]{0,8}", "-?[0-9]{1,3}(\\.[0-9]{0,2})?([eE][-+]?[0-9]{0,2})?\n?", any::<String>()]) {
        let pattern = regex::Regex::new(NUMERIC_TEXT_PATTERN).expect("the pattern compiles");
        prop_assert_eq!(is_numeric_text(&text), pattern.is_match(&text), "{:?}", text);
    }

    #[test]
    fn globs_follow_the_reference(
        pattern in "[aAbéÉ*?\\\\\n]{0,8}",
        text in "[aAbéÉ*?\\\\\n]{0,8}",
    ) {
        let predicate = Predicate::Field { field: FieldPath::parse_dotted("f"), test: FieldTest::Wildcard(pattern.clone()) };
        let mut document = Map::new();
        document.insert("f".to_owned(), Value::String(text.clone()));
        let compiled = CompiledPredicate::compile(&predicate).expect("compiles");
        prop_assert_eq!(compiled.matches(&document), reference_glob(&pattern, &text), "{:?} on {:?}", pattern, text);
    }

    #[test]
    fn words_follow_the_reference(
        summary in "[aAbBéÉİß .-]{0,16}",
        words in prop::collection::vec("[abéßi\u{307}]{1,2}", 1..3),
        prefix in any::<bool>(),
    ) {
        let tokens = tokenize(&summary);
        let (test, expected) = if prefix {
            (TextTest::Prefix(words[0].clone()), tokens.iter().any(|token| token.starts_with(&words[0])))
        } else if words.len() == 1 {
            (TextTest::Word(words[0].clone()), tokens.contains(&words[0]))
        } else {
            (TextTest::Phrase(words.clone()), tokens.windows(words.len()).any(|window| window == words.as_slice()))
        };
        let mut document = Map::new();
        document.insert("summary".to_owned(), Value::String(summary.clone()));
        let compiled = CompiledPredicate::compile(&Predicate::Text(test)).expect("compiles");
        prop_assert_eq!(compiled.matches(&document), expected, "{:?} in {:?}", words, summary);
    }
}

/// The glob semantics of `ir.rs` written plainly: ASCII case folded, `*` any run, `?` one character,
/// `\` makes the next character literal (a final `\` is itself).
fn reference_glob(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy)]
    enum Unit {
        Any,
        One,
        Literal(char),
    }
    let mut units = Vec::new();
    let mut characters = pattern.chars();
    while let Some(character) = characters.next() {
        units.push(match character {
            '*' => Unit::Any,
            '?' => Unit::One,
            '\\' => Unit::Literal(characters.next().unwrap_or('\\')),
            other => Unit::Literal(other),
        });
    }
    fn matches(units: &[Unit], text: &[char]) -> bool {
        match units.split_first() {
            None => text.is_empty(),
            Some((Unit::Any, rest)) => (0..=text.len()).any(|skip| matches(rest, &text[skip..])),
            Some((Unit::One, rest)) => !text.is_empty() && matches(rest, &text[1..]),
            Some((Unit::Literal(expected), rest)) => {
                text.first()
                    .is_some_and(|actual| actual.eq_ignore_ascii_case(expected))
                    && matches(rest, &text[1..])
            }
        }
    }
    matches(&units, &text.chars().collect::<Vec<_>>())
}
