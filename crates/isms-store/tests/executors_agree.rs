//! The property the whole query design rests on: for any event and any predicate, the in-memory matcher
//! (the detection engine's executor) and the SQL executor (searches) give the same answer, under every
//! read plan the store can choose.
//!
//! Events and predicates are generated from small vocabularies chosen to hit the edges: case (ASCII and
//! not), numbers vs numeric strings vs text, arrays, nesting, missing and null fields, long values past
//! the index's truncation, words and phrases, IP addresses in and out of networks (both families,
//! IPv4-mapped, with a zone or a space), texts and numbers that are times or epochs.
use std::collections::BTreeSet;
use std::sync::Arc;

use isms_event::{Event, Origin, normalize};
use isms_query::ir::{Bound, FieldPath, FieldTest, Predicate, RangeKind, TextTest, TimeComponent};
use isms_query::matcher::CompiledPredicate;
use isms_store::sqlite::{PlanChoice, SqliteOptions, SqliteStore};
use isms_store::{EventFilter, SearchRequest, SortOrder, Store};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

const EVENTS: usize = 120;

fn long_value() -> String {
    format!("{}{}", "a".repeat(60), "tail")
}

fn text_values() -> Vec<Value> {
    vec![
        json!("joe"),
        json!("Joe"),
        json!("JOE"),
        json!("jo"),
        json!("mary"),
        json!("Émile"),
        json!("émile"),
        json!(""),
        json!("10.0.0.1"),
        json!("a b"),
        json!("50%_off"),
        json!(long_value()),
        json!(format!("{}x", "a".repeat(47))),
        json!("10.255.0.3"),
        json!("192.168.1.5"),
        json!("::ffff:10.0.0.1"),
        json!("2001:DB8::1"),
        json!("2001:db9::"),
        json!("fe80::1%eth0"),
        json!(" 10.0.0.1"),
        json!("2024-01-30T13:24:43Z"),
        json!("2023-12-31T23:59:59-02:00"),
        json!("2024-12-30 03:04:05"),
        json!("1700000000"),
        json!("2021-01-03"),
    ]
}

fn number_values() -> Vec<Value> {
    vec![
        json!(22),
        json!(-1),
        json!(22.5),
        json!(1000),
        json!("22"),
        json!("22.5"),
        json!("abc"),
        json!(true),
        json!(0.1),
        json!(1_706_621_083),
    ]
}

fn words() -> Vec<&'static str> {
    vec![
        "failed", "Failed", "password", "for", "joe", "root", "émile", "ÉCOLE", "port", "22", "x1",
    ]
}

fn value_strategy() -> impl Strategy<Value = Value> {
    let mut all = text_values();
    all.extend(number_values());
    prop_oneof![
        4 => proptest::sample::select(all.clone()),
        1 => proptest::collection::vec(proptest::sample::select(all), 0..3).prop_map(Value::Array),
        1 => Just(Value::Null),
    ]
}

/// Values of `details.alias` and `details.owner`: few, so that field references between them (and
/// `details.username`) often meet equal texts, in another case, as a number and its text, in arrays.
fn reference_value_strategy() -> impl Strategy<Value = Value> {
    proptest::sample::select(vec![
        json!("joe"),
        json!("Joe"),
        json!("JOE"),
        json!("mary"),
        json!("Émile"),
        json!("émile"),
        json!(22),
        json!("22"),
        json!(true),
        json!("TRUE"),
        json!(["x", "JOE"]),
        json!({"joe": "joe"}),
        Value::Null,
    ])
}

fn event_strategy() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(reference_value_strategy()),
        proptest::option::of(reference_value_strategy()),
        (
            proptest::option::of(proptest::collection::vec(
                proptest::sample::select(words()),
                1..6,
            )),
            proptest::option::of(value_strategy()),
            proptest::option::of(value_strategy()),
            proptest::option::of(value_strategy()),
            proptest::option::of(proptest::sample::select(vec!["web1", "WEB1", "db1", "Ünï"])),
            proptest::option::of(value_strategy()),
            0i64..20,
        ),
    )
        .prop_map(
            |(alias, owner, (summary_words, username, port, nested, hostname, tags, second))| {
                let mut details = serde_json::Map::new();
                details.insert("always".into(), json!("here"));
                if let Some(alias) = alias {
                    details.insert("alias".into(), alias);
                }
                if let Some(owner) = owner {
                    details.insert("owner".into(), owner);
                }
                if let Some(username) = username {
                    details.insert("username".into(), username);
                }
                if let Some(port) = port {
                    details.insert("port".into(), port);
                }
                if let Some(nested) = nested {
                    details.insert("inner".into(), json!({"value": nested}));
                }
                let mut event = json!({"details": details, "utctimestamp": 1_700_000_000 + second});
                if let Some(words) = summary_words {
                    event["summary"] = json!(words.join(" "));
                }
                if let Some(hostname) = hostname {
                    event["hostname"] = json!(hostname);
                }
                if let Some(tags) = tags {
                    event["tags"] = tags;
                }
                event
            },
        )
}

fn field_strategy() -> impl Strategy<Value = FieldPath> {
    proptest::sample::select(vec![
        "details.username",
        "details.port",
        "details.inner.value",
        "details.inner",
        "details",
        "hostname",
        "tags",
        "summary",
        "details.missing",
        "category",
        "origin",
        "origin.endpoint",
        "origin.peer",
    ])
    .prop_map(FieldPath::parse_dotted)
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn leaf_strategy() -> impl Strategy<Value = Predicate> {
    let equals_values: Vec<String> = text_values()
        .iter()
        .chain(number_values().iter())
        .map(scalar_text)
        .chain(["JOE".to_string(), "ÉMILE".to_string()])
        .collect();
    let patterns = vec![
        "jo*", "*oe", "?oe", "J*", "*", "*e*", "w*1", "50\\%*", "a*tail", "aaaa*", "*.0.*", "2?",
    ];
    let regexes = vec!["jo.*", "[a-z]+", "(?i)JOE", "2.*", ".*", "É.*", "a{60}tail"];
    let numbers = vec![-1.0, 0.0, 22.0, 22.5, 100.0];
    let range_texts = vec!["a", "joe", "m", "10", "z", "É"];
    prop_oneof![
        field_strategy().prop_map(|field| Predicate::Field {
            field,
            test: FieldTest::Exists
        }),
        (field_strategy(), proptest::sample::select(equals_values)).prop_map(|(field, value)| {
            Predicate::Field {
                field,
                test: FieldTest::Equals(value),
            }
        }),
        (field_strategy(), proptest::sample::select(patterns)).prop_map(|(field, pattern)| {
            Predicate::Field {
                field,
                test: FieldTest::Wildcard(pattern.to_string()),
            }
        }),
        (field_strategy(), proptest::sample::select(regexes)).prop_map(|(field, regex)| {
            Predicate::Field {
                field,
                test: FieldTest::Regex(regex.to_string()),
            }
        }),
        (
            field_strategy(),
            proptest::option::of(proptest::sample::select(numbers.clone())),
            proptest::option::of(proptest::sample::select(numbers)),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(field, lower, upper, lower_inclusive, upper_inclusive)| {
                Predicate::Field {
                    field,
                    test: FieldTest::Range(RangeKind::Number {
                        lower: lower.map(|value| Bound {
                            value,
                            inclusive: lower_inclusive,
                        }),
                        upper: upper.map(|value| Bound {
                            value,
                            inclusive: upper_inclusive,
                        }),
                    }),
                }
            }),
        (
            field_strategy(),
            proptest::option::of(proptest::sample::select(range_texts.clone())),
            proptest::option::of(proptest::sample::select(range_texts)),
            any::<bool>()
        )
            .prop_map(|(field, lower, upper, inclusive)| Predicate::Field {
                field,
                test: FieldTest::Range(RangeKind::Text {
                    lower: lower.map(|value| Bound {
                        value: value.to_ascii_lowercase(),
                        inclusive
                    }),
                    upper: upper.map(|value| Bound {
                        value: value.to_ascii_lowercase(),
                        inclusive: !inclusive
                    }),
                }),
            }),
        (0i64..20, 0i64..20).prop_map(|(start, length)| Predicate::Field {
            field: FieldPath::parse_dotted("utctimestamp"),
            test: FieldTest::Range(RangeKind::Time {
                lower: Some(Bound {
                    value: (1_700_000_000 + start) * 1_000_000,
                    inclusive: true
                }),
                upper: Some(Bound {
                    value: (1_700_000_000 + start + length) * 1_000_000,
                    inclusive: false
                }),
            }),
        }),
        (0i64..20).prop_map(|second| Predicate::Field {
            field: FieldPath::parse_dotted("utctimestamp"),
            test: FieldTest::TimeEquals((1_700_000_000 + second) * 1_000_000),
        }),
        proptest::sample::select(words()).prop_map(|word| Predicate::Text(TextTest::Word(
            isms_query::ir::tokenize(word).join("")
        ))),
        proptest::sample::select(vec!["fa", "pass", "jo", "é", "éc", "2"])
            .prop_map(|prefix| Predicate::Text(TextTest::Prefix(prefix.to_string()))),
        (
            proptest::sample::select(words()),
            proptest::sample::select(words())
        )
            .prop_map(|(first, second)| {
                Predicate::Text(TextTest::Phrase(vec![
                    first.to_lowercase(),
                    second.to_lowercase(),
                ]))
            }),
    ]
}

/// CIDR, field-reference and time-part tests, with networks and values that the generated events
/// fall in and out of.
fn function_leaf_strategy() -> impl Strategy<Value = Predicate> {
    let networks = vec![
        "10.0.0.0/8",
        "10.0.0.1/32",
        "192.168.0.0/16",
        "0.0.0.0/0",
        "::/0",
        "2001:db8::/32",
        "::ffff:0:0/96",
        "fe80::/10",
    ];
    let parts = (
        proptest::sample::select(TimeComponent::ALL.to_vec()),
        proptest::sample::select(vec![
            0i64, 1, 3, 5, 12, 13, 14, 22, 24, 30, 31, 46, 53, 59, 1970, 2023, 2024,
        ]),
    );
    let time_fields = proptest::sample::select(vec![
        "details.username",
        "details.port",
        "details.inner.value",
        "tags",
        "utctimestamp",
        "receivedtimestamp",
    ])
    .prop_map(FieldPath::parse_dotted);
    // Fields whose values come from one vocabulary, so that references find equal values (in
    // another case, a number and its text, inside arrays) as often as different ones.
    let reference_fields = proptest::sample::select(vec![
        "details.alias",
        "details.owner",
        "details.username",
        "details.port",
        "details.inner.value",
        "details.inner",
        "tags",
        "details.missing",
    ])
    .prop_map(FieldPath::parse_dotted);
    prop_oneof![
        (field_strategy(), proptest::sample::select(networks)).prop_map(|(field, network)| {
            Predicate::Field {
                field,
                test: FieldTest::Cidr(network.to_string()),
            }
        }),
        (reference_fields.clone(), reference_fields).prop_map(|(field, other)| Predicate::Field {
            field,
            test: FieldTest::FieldRef(other),
        }),
        (prop_oneof![field_strategy(), time_fields], parts).prop_map(|(field, (part, value))| {
            Predicate::Field {
                field,
                test: FieldTest::TimePart { part, value },
            }
        }),
    ]
}

fn predicate_strategy() -> impl Strategy<Value = Predicate> {
    let leaf_strategy = prop_oneof![2 => leaf_strategy(), 1 => function_leaf_strategy()];
    leaf_strategy.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Predicate::And),
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Predicate::Or),
            inner.prop_map(|child| Predicate::Not(Box::new(child))),
        ]
    })
}

async fn sql_matches(store: &SqliteStore, predicate: &Predicate) -> (BTreeSet<String>, u64) {
    let request = SearchRequest {
        filter: EventFilter::matching(predicate.clone()),
        limit: 10_000,
        cursor: None,
        sort: SortOrder::Asc,
    };
    let page = store.search(&request).await.expect("search");
    let ids = page
        .events
        .iter()
        .map(|document| document["id"].as_str().expect("id").to_string())
        .collect();
    let count = store
        .count(&EventFilter::matching(predicate.clone()))
        .await
        .expect("count");
    (ids, count)
}

#[test]
fn sql_and_in_memory_executors_agree() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let directory = tempfile::tempdir().expect("temporary directory");
    let store = runtime
        .block_on(SqliteStore::open(SqliteOptions::new(
            directory.path().join("isms.db"),
        )))
        .expect("open");
    let store = Arc::new(store);

    let mut runner = TestRunner::new(Config {
        cases: 1,
        ..Config::default()
    });
    let origin = Origin {
        peer: None,
        endpoint: "property".into(),
        key_name: None,
    };
    let events: Vec<Event> = (0..EVENTS)
        .map(|_| {
            let raw = event_strategy()
                .new_tree(&mut runner)
                .expect("generate")
                .current();
            normalize(raw, &origin, jiff::Timestamp::now()).expect("generated events are valid")
        })
        .collect();
    runtime
        .block_on(store.append(events.clone()))
        .expect("append");

    let cases = std::env::var("ISMS_PROPTEST_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(400);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 2000,
        ..Config::default()
    });
    let result = runner.run(&predicate_strategy(), |predicate| {
        let matcher = CompiledPredicate::compile(&predicate).expect("generated predicates compile");
        let expected: BTreeSet<String> = events
            .iter()
            .filter(|event| matcher.matches(&event.document))
            .map(|event| event.id.clone())
            .collect();
        for plan in [
            PlanChoice::Automatic,
            PlanChoice::ForceScan,
            PlanChoice::ForceDriven,
        ] {
            store.set_plan_choice(plan);
            let (found, count) = runtime.block_on(sql_matches(&store, &predicate));
            prop_assert_eq!(
                &found,
                &expected,
                "plan {:?} disagrees with the matcher for {:?}",
                plan,
                predicate
            );
            prop_assert_eq!(
                count as usize,
                expected.len(),
                "count under plan {:?} for {:?}",
                plan,
                predicate
            );
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
