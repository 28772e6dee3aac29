//! The conformance suite every [`Store`] backend must pass.
//!
//! Backends differ in SQL and in indexes, never in answers. Each check here is a plain async function
//! over a fresh, empty store; [`store_conformance_suite!`](crate::store_conformance_suite) turns them all
//! into `#[tokio::test]`s for one backend:
//!
//! ```ignore
//! isms_store::store_conformance_suite!(my_backend_tests, || async { make_fresh_store().await });
//! ```
//!
//! Expected answers are written out by hand from a small fixture, not computed by the in-memory matcher
//! (that agreement is checked separately, by property test).
use std::sync::Arc;

use isms_event::{Event, Origin, normalize};
use isms_query::ir::{FieldPath, Predicate};
use serde_json::{Value, json};

use crate::{
    EventFilter, EventPreparer, KeyRecord, RetentionPolicy, SearchRequest, SortOrder, Store,
    StoreError,
};

/// A store for one check, with whatever keeps it alive (a temporary directory, a schema).
pub struct StoreUnderTest {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Dropped after the check.
    pub guard: Box<dyn std::any::Any + Send>,
}

/// Expands to one `#[tokio::test]` per conformance check, in a module named `$module`.
#[macro_export]
macro_rules! store_conformance_suite {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::store_conformance_suite!(@tests $make;
                appended_events_are_counted_and_found_by_id,
                search_pages_cover_every_event_once_in_time_order,
                field_queries_find_exactly_the_expected_events,
                free_text_finds_words_phrases_and_prefixes,
                time_bounds_and_time_fields_restrict_results,
                networks_field_references_and_time_parts_find_exactly_the_expected_events,
                histogram_and_top_values_aggregate_matches,
                keys_are_stored_listed_and_revoked,
                control_records_keep_live_names_unique_and_deleted_rows,
                retention_deletes_oldest_events_first,
                concurrent_appends_are_all_committed,
                invalid_cursor_is_refused,
                sub_second_times_keep_their_exact_order_in_pages_and_bounds,
                prepared_events_are_stored_and_found_like_appended_ones,
                committed_events_are_followed_in_commit_order_from_any_seq
            );
        }
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                let under_test: $crate::conformance::StoreUnderTest = ($make)().await;
                $crate::conformance::$check(under_test.store.as_ref()).await;
                drop(under_test.guard);
            }
        )*
    };
}

fn event_at(second: i64, body: Value) -> Event {
    let mut body = body;
    if let Value::Object(map) = &mut body {
        map.insert("utctimestamp".into(), json!(1_700_000_000 + second));
    }
    normalize(
        body,
        &Origin {
            peer: None,
            endpoint: "conformance".into(),
            key_name: None,
        },
        jiff::Timestamp::now(),
    )
    .expect("fixture events are valid")
}

/// The fixture: eight events with known fields, one per second.
fn fixture() -> Vec<Event> {
    vec![
        event_at(
            0,
            json!({"summary": "Failed password for joe from 10.0.0.1", "category": "authentication",
            "hostname": "web1", "details": {"username": "joe", "sourceipaddress": "10.0.0.1", "success": false, "destinationport": 22}}),
        ),
        event_at(
            1,
            json!({"summary": "Failed password for mary from 10.0.0.2", "category": "authentication",
            "hostname": "web1", "details": {"username": "Mary", "sourceipaddress": "10.0.0.2", "success": false, "destinationport": "22"}}),
        ),
        event_at(
            2,
            json!({"summary": "Accepted publickey for joe", "category": "authentication",
            "hostname": "web2", "details": {"username": "joe", "success": true, "destinationport": 2222}}),
        ),
        event_at(
            3,
            json!({"summary": "session opened for user root", "category": "session",
            "hostname": "db1", "tags": ["pam", "root"], "details": {"username": "root"}}),
        ),
        event_at(
            4,
            json!({"summary": "connection from 192.168.1.5 port 443", "category": "network",
            "hostname": "fw1", "details": {"sourceipaddress": "192.168.1.5", "destinationport": 443, "bytes": 1.5}}),
        ),
        event_at(
            5,
            json!({"category": "network", "hostname": "fw1",
            "details": {"sourceipaddress": "192.168.1.6", "destinationport": "8080", "note": "no summary here"}}),
        ),
        event_at(
            6,
            json!({"summary": "disk usage at 91 percent on /var", "category": "system",
            "hostname": "db1", "severity": "WARNING", "details": {"mount": "/var", "percent": 91}}),
        ),
        event_at(
            7,
            json!({"summary": "joe ran sudo: COMMAND=/bin/ls", "category": "authorization",
            "hostname": "web2", "tags": ["sudo"], "details": {"username": "joe", "command": "/bin/ls", "nested": {"level": {"deep": "yes"}}}}),
        ),
    ]
}

async fn load_fixture(store: &dyn Store) -> Vec<Event> {
    let events = fixture();
    store
        .append(events.clone())
        .await
        .expect("append the fixture");
    events
}

/// The summaries (or hostnames when absent) of the events a query finds, oldest first.
async fn found(store: &dyn Store, query: &str) -> Vec<i64> {
    let predicate =
        isms_query::parser::parse(query).unwrap_or_else(|error| panic!("query {query:?}: {error}"));
    let request = SearchRequest {
        filter: EventFilter::matching(predicate.clone()),
        limit: 1000,
        cursor: None,
        sort: SortOrder::Asc,
    };
    let page = store
        .search(&request)
        .await
        .unwrap_or_else(|error| panic!("query {query:?}: {error}"));
    let count = store
        .count(&EventFilter::matching(predicate))
        .await
        .expect("count");
    assert_eq!(
        count as usize,
        page.events.len(),
        "count and search disagree for {query:?}"
    );
    page.events.iter().map(second_of).collect()
}

fn second_of(document: &serde_json::Map<String, Value>) -> i64 {
    let text = document["utctimestamp"]
        .as_str()
        .expect("utctimestamp is text");
    let timestamp: jiff::Timestamp = text.parse().expect("utctimestamp parses");
    timestamp.as_second() - 1_700_000_000
}

/// Appended events are counted, and each one is found again by its id with every field intact.
pub async fn appended_events_are_counted_and_found_by_id(store: &dyn Store) {
    let events = load_fixture(store).await;
    assert_eq!(
        store
            .count(&EventFilter::everything())
            .await
            .expect("count"),
        events.len() as u64
    );
    for event in &events {
        let stored = store
            .get_event(&event.id)
            .await
            .expect("get")
            .expect("the event is there");
        assert_eq!(
            stored, event.document,
            "stored document differs from the appended one"
        );
        // Any spelling of the UUID finds it by id; a query on `id` wants the stored text (any case).
        let simple = uuid::Uuid::parse_str(&event.id)
            .expect("ids are UUIDs")
            .simple()
            .to_string()
            .to_ascii_uppercase();
        let by_other_spelling = store.get_event(&simple).await.expect("get");
        assert_eq!(by_other_spelling.as_ref(), Some(&event.document));
        let second = second_of(&event.document);
        assert_eq!(
            found(store, &format!("id:{}", event.id)).await,
            vec![second]
        );
        assert_eq!(
            found(store, &format!("id:{}", event.id.to_ascii_uppercase())).await,
            vec![second]
        );
        assert_eq!(
            found(store, &format!("id:{simple}")).await,
            Vec::<i64>::new()
        );
    }
    assert_eq!(
        store
            .get_event("00000000-0000-0000-0000-000000000000")
            .await
            .expect("get"),
        None
    );
    assert_eq!(store.get_event("not-an-id").await.expect("get"), None);
    let health = store.health().await.expect("health");
    assert_eq!(health.events, events.len() as u64);
    assert!(health.bytes > 0);
}

/// The events of every page of a search, page after page through the cursors.
async fn every_page(
    store: &dyn Store,
    filter: &EventFilter,
    limit: usize,
    sort: SortOrder,
) -> Vec<serde_json::Map<String, Value>> {
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let request = SearchRequest {
            filter: filter.clone(),
            limit,
            cursor: cursor.clone(),
            sort,
        };
        let page = store.search(&request).await.expect("search");
        seen.extend(page.events);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return seen,
        }
    }
}

/// Paging with cursors visits every event exactly once, in event-time order both ways.
pub async fn search_pages_cover_every_event_once_in_time_order(store: &dyn Store) {
    load_fixture(store).await;
    for (sort, expected) in [
        (SortOrder::Asc, (0..8).collect::<Vec<i64>>()),
        (SortOrder::Desc, (0..8).rev().collect()),
    ] {
        let seen: Vec<i64> = every_page(store, &EventFilter::everything(), 3, sort)
            .await
            .iter()
            .map(second_of)
            .collect();
        assert_eq!(seen, expected, "{sort:?}");
    }
}

/// Field tests: equality (case-insensitive), numbers and numeric strings, wildcards, regexes, ranges,
/// existence, arrays, nesting and boolean structure.
pub async fn field_queries_find_exactly_the_expected_events(store: &dyn Store) {
    load_fixture(store).await;
    let cases: &[(&str, &[i64])] = &[
        ("details.username:joe", &[0, 2, 7]),
        ("details.username:MARY", &[1]),
        ("details.username:jo*", &[0, 2, 7]),
        ("details.username:*ar?", &[1]),
        ("details.username:/[jm].*/", &[0, 2, 7]),
        ("details.username:/Mary/", &[1]),
        ("details.username:/mary/", &[]),
        ("details.destinationport:22", &[0, 1]),
        ("details.destinationport:>=443", &[2, 4, 5]),
        ("details.destinationport:[22 TO 2222]", &[0, 1, 2, 4]),
        ("details.destinationport:{22 TO 2222]", &[2, 4]),
        ("details.bytes:1.5", &[4]),
        ("details.success:false", &[0, 1]),
        ("details.sourceipaddress:10.0.0.*", &[0, 1]),
        ("details.sourceipaddress:[10.0.0.2 TO 192.168.1.5]", &[1, 4]),
        ("tags:root", &[3]),
        ("tags:sudo OR tags:pam", &[3, 7]),
        ("_exists_:tags", &[3, 7]),
        ("_exists_:details.nested", &[7]),
        ("details.nested.level.deep:yes", &[7]),
        ("_exists_:summary", &[0, 1, 2, 3, 4, 6, 7]),
        ("NOT _exists_:summary", &[5]),
        ("category:authentication AND NOT details.username:joe", &[1]),
        ("category:authentication -details.success:true", &[0, 1]),
        (
            "(hostname:web1 OR hostname:db1) AND category:authentication",
            &[0, 1],
        ),
        ("hostname:(fw1 OR db1)", &[3, 4, 5, 6]),
        ("severity:warning", &[6]),
        ("details.username:nobody", &[]),
        ("details.nosuchfield:*", &[]),
        ("*", &[0, 1, 2, 3, 4, 5, 6, 7]),
    ];
    for (query, expected) in cases {
        assert_eq!(
            found(store, query).await,
            expected.to_vec(),
            "query {query:?}"
        );
    }
}

/// Free text: words are case-insensitive, phrases need adjacency, `word*` is a prefix.
pub async fn free_text_finds_words_phrases_and_prefixes(store: &dyn Store) {
    load_fixture(store).await;
    let cases: &[(&str, &[i64])] = &[
        ("failed", &[0, 1]),
        ("FAILED password", &[0, 1]),
        ("\"password for joe\"", &[0]),
        ("\"joe password\"", &[]),
        ("summary:accepted", &[2]),
        ("pass*", &[0, 1]),
        ("sess*", &[3]),
        ("joe -failed", &[2, 7]),
        ("percent", &[6]),
        ("*percent*", &[6]),
        ("summary:/disk.*/", &[6]),
        ("nosuchword", &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(
            found(store, query).await,
            expected.to_vec(),
            "query {query:?}"
        );
    }
}

/// The filter's time bounds and queries on `utctimestamp` restrict by event time.
pub async fn time_bounds_and_time_fields_restrict_results(store: &dyn Store) {
    load_fixture(store).await;
    let base = 1_700_000_000_000_000i64;
    let filter = EventFilter {
        predicate: Predicate::All,
        from_micros: Some(base + 2_000_000),
        to_micros: Some(base + 5_000_000),
    };
    let request = SearchRequest {
        filter: filter.clone(),
        limit: 100,
        cursor: None,
        sort: SortOrder::Asc,
    };
    let seconds: Vec<i64> = store
        .search(&request)
        .await
        .expect("search")
        .events
        .iter()
        .map(second_of)
        .collect();
    assert_eq!(seconds, vec![2, 3, 4]);
    assert_eq!(store.count(&filter).await.expect("count"), 3);
    assert_eq!(
        found(
            store,
            "utctimestamp:[2023-11-14T22:13:22Z TO 2023-11-14T22:13:24Z]"
        )
        .await,
        vec![2, 3, 4]
    );
    assert_eq!(
        found(store, "utctimestamp:\"2023-11-14T22:13:27+00:00\"").await,
        vec![7]
    );
}

/// CIDR tests take IP addresses of the network's family only; a field reference compares two fields of
/// one event (ASCII case ignored, any value of each); time parts read any field as a UTC time.
pub async fn networks_field_references_and_time_parts_find_exactly_the_expected_events(
    store: &dyn Store,
) {
    let events = vec![
        event_at(
            0,
            json!({"summary": "first", "details": {"sourceipaddress": "10.0.0.1",
            "destinationipaddress": "10.0.0.1", "username": "joe", "targetuser": "JOE",
            "created": "2024-01-30T13:24:43Z"}}),
        ),
        event_at(
            1,
            json!({"details": {"sourceipaddress": "10.200.3.4", "destinationipaddress": "192.168.1.5",
            "username": "joe", "targetuser": "mary", "created": "2024-01-30T23:30:00-02:00"}}),
        ),
        event_at(
            2,
            json!({"details": {"sourceipaddress": "2001:db8::5", "username": "root",
            "targetuser": ["x", "Root"], "created": 1_706_621_083}}),
        ),
        event_at(
            3,
            json!({"details": {"sourceipaddress": ["192.168.1.5", "172.16.0.1"], "username": 22,
            "targetuser": "22", "created": "not a time"}}),
        ),
        event_at(
            4,
            json!({"details": {"sourceipaddress": "::ffff:10.0.0.1", "destinationipaddress": "10.0.0.1 ",
            "created": "2020-12-31T23:59:59Z"}}),
        ),
        event_at(
            5,
            json!({"details": {"sourceipaddress": "not an address", "username": "É",
            "targetuser": "é", "created": "2021-01-04"}}),
        ),
    ];
    store.append(events).await.expect("append");
    let cases: &[(&str, &[i64])] = &[
        ("details.sourceipaddress:cidr(10.0.0.0/8)", &[0, 1]),
        ("details.sourceipaddress:cidr(192.168.0.0/16)", &[3]),
        ("details.sourceipaddress:cidr(172.16.0.0/12)", &[3]),
        ("details.sourceipaddress:cidr(2001:db8::/32)", &[2]),
        ("details.sourceipaddress:cidr(::/0)", &[2, 4]),
        ("details.sourceipaddress:cidr(0.0.0.0/0)", &[0, 1, 3]),
        ("details.destinationipaddress:cidr(10.0.0.1/32)", &[0]),
        (
            "NOT details.sourceipaddress:cidr(10.0.0.0/8)",
            &[2, 3, 4, 5],
        ),
        ("details.username:fieldref(details.targetuser)", &[0, 2, 3]),
        ("details.targetuser:fieldref(details.username)", &[0, 2, 3]),
        (
            "details.sourceipaddress:fieldref(details.destinationipaddress)",
            &[0],
        ),
        ("details.username:fieldref(details.missing)", &[]),
        ("details.missing:fieldref(details.username)", &[]),
        (
            "details.sourceipaddress:cidr(10.0.0.0/8) AND details.username:fieldref(details.targetuser)",
            &[0],
        ),
        ("details.created:hour(13)", &[0, 2]),
        ("details.created:hour(1)", &[1]),
        ("details.created:minute(59)", &[4]),
        ("details.created:day(31)", &[1, 4]),
        ("details.created:week(53)", &[4]),
        ("details.created:week(5)", &[0, 1, 2]),
        ("details.created:week(1)", &[5]),
        ("details.created:month(1)", &[0, 1, 2, 5]),
        ("details.created:year(2021)", &[5]),
        ("NOT details.created:year(2024)", &[3, 4, 5]),
        (
            "utctimestamp:hour(22) AND utctimestamp:minute(13)",
            &[0, 1, 2, 3, 4, 5],
        ),
        ("utctimestamp:year(2024)", &[]),
    ];
    for (query, expected) in cases {
        assert_eq!(found(store, query).await, expected.to_vec(), "{query}");
    }
}

/// Histograms bucket matches by event time; top values count events per distinct value.
pub async fn histogram_and_top_values_aggregate_matches(store: &dyn Store) {
    load_fixture(store).await;
    let buckets = store
        .histogram(&EventFilter::everything(), 4_000_000)
        .await
        .expect("histogram");
    let counts: Vec<u64> = buckets.iter().map(|bucket| bucket.count).collect();
    assert_eq!(counts.iter().sum::<u64>(), 8);
    assert!(
        buckets
            .windows(2)
            .all(|pair| pair[0].start_micros < pair[1].start_micros)
    );
    assert!(
        buckets
            .iter()
            .all(|bucket| bucket.start_micros % 4_000_000 == 0)
    );
    let authentication =
        EventFilter::matching(isms_query::parser::parse("category:authentication").expect("parse"));
    let only = store
        .histogram(&authentication, 3_600_000_000)
        .await
        .expect("histogram");
    assert_eq!(only.iter().map(|bucket| bucket.count).sum::<u64>(), 3);
    assert!(matches!(
        store.histogram(&EventFilter::everything(), 0).await,
        Err(StoreError::InvalidRequest(_))
    ));

    let top = store
        .top_values(
            &EventFilter::everything(),
            &FieldPath::parse_dotted("hostname"),
            2,
        )
        .await
        .expect("top");
    let pairs: Vec<(String, u64)> = top
        .into_iter()
        .map(|value| (value.value, value.count))
        .collect();
    assert_eq!(pairs, vec![("db1".to_string(), 2), ("fw1".to_string(), 2)]);
    let users = store
        .top_values(
            &authentication,
            &FieldPath::parse_dotted("details.username"),
            10,
        )
        .await
        .expect("top");
    let pairs: Vec<(String, u64)> = users
        .into_iter()
        .map(|value| (value.value, value.count))
        .collect();
    assert_eq!(pairs, vec![("joe".to_string(), 2), ("Mary".to_string(), 1)]);
    let ports = store
        .top_values(
            &EventFilter::everything(),
            &FieldPath::parse_dotted("details.destinationport"),
            10,
        )
        .await
        .expect("top");
    let pairs: Vec<(String, u64)> = ports
        .into_iter()
        .map(|value| (value.value, value.count))
        .collect();
    assert_eq!(
        pairs[0],
        ("22".to_string(), 2),
        "22 as a number and as text have the same text: {pairs:?}"
    );
    assert_eq!(pairs.len(), 4, "{pairs:?}");
}

/// Keys: stored with their hash, names unique among live keys, revocation by id or name.
pub async fn keys_are_stored_listed_and_revoked(store: &dyn Store) {
    let record = |id: &str, name: &str| KeyRecord {
        id: id.into(),
        name: name.into(),
        hash: format!("hash-of-{id}"),
        created_micros: 1,
        revoked_micros: None,
    };
    store
        .insert_key(record("k1", "first"))
        .await
        .expect("insert");
    store
        .insert_key(record("k2", "second"))
        .await
        .expect("insert");
    assert!(
        matches!(store.insert_key(record("k3", "first")).await, Err(StoreError::DuplicateKeyName(name)) if name == "first")
    );
    assert_eq!(
        store
            .key_by_id("k1")
            .await
            .expect("get")
            .expect("present")
            .hash,
        "hash-of-k1"
    );
    assert_eq!(store.key_by_id("nope").await.expect("get"), None);
    assert_eq!(store.revoke_key("first", 5).await.expect("revoke"), 1);
    assert_eq!(
        store.revoke_key("first", 6).await.expect("revoke"),
        0,
        "already revoked"
    );
    assert_eq!(store.revoke_key("k2", 7).await.expect("revoke"), 1);
    store
        .insert_key(record("k4", "first"))
        .await
        .expect("a revoked name can be reused");
    let keys = store.list_keys().await.expect("list");
    assert_eq!(
        keys.iter().map(|key| key.id.as_str()).collect::<Vec<_>>(),
        vec!["k1", "k2", "k4"]
    );
    assert_eq!(keys[0].revoked_micros, Some(5));
    assert_eq!(keys[2].revoked_micros, None);
}

/// Control records: names unique among live records of a kind in a scope, updates by id, deleted
/// rows kept and their names free again.
pub async fn control_records_keep_live_names_unique_and_deleted_rows(store: &dyn Store) {
    let record = |kind: &str, scope: &str, name: &str| crate::ControlRecord {
        id: 0,
        kind: kind.into(),
        scope: scope.into(),
        name: name.into(),
        document: json!({"name": name, "author": "admin"}),
        created_micros: 10,
        updated_micros: 10,
        deleted_micros: None,
    };
    let hids = store
        .insert_record(record("generator", "", "HIDS"))
        .await
        .expect("insert");
    let nids = store
        .insert_record(record("generator", "", "NIDS"))
        .await
        .expect("insert");
    assert_ne!(hids, nids);
    assert!(matches!(
        store.insert_record(record("generator", "", "HIDS")).await,
        Err(StoreError::DuplicateRecordName { kind, name }) if kind == "generator" && name == "HIDS"
    ));
    // Another kind or another scope may use the name.
    store
        .insert_record(record("group", &hids.to_string(), "HIDS"))
        .await
        .expect("a group may share a generator's name");
    store
        .insert_record(record("group", &nids.to_string(), "HIDS"))
        .await
        .expect("the same name under another generator");
    let mut renamed = record("generator", "", "HIDS");
    renamed.id = nids;
    assert!(matches!(
        store.update_record(renamed).await,
        Err(StoreError::DuplicateRecordName { .. })
    ));
    let mut deleted = record("generator", "", "HIDS");
    deleted.id = hids;
    deleted.document = json!({"name": "HIDS", "author": "someone else"});
    deleted.updated_micros = 20;
    deleted.deleted_micros = Some(20);
    assert!(store.update_record(deleted).await.expect("update"));
    let mut missing = record("generator", "", "ghost");
    missing.id = 999_999;
    assert!(!store.update_record(missing).await.expect("update"));
    let again = store
        .insert_record(record("generator", "", "HIDS"))
        .await
        .expect("a deleted record's name is free again");
    let generators = store.records("generator").await.expect("records");
    assert_eq!(
        generators
            .iter()
            .map(|record| (record.id, record.deleted_micros))
            .collect::<Vec<_>>(),
        vec![(hids, Some(20)), (nids, None), (again, None)]
    );
    assert_eq!(generators[0].document["author"], "someone else");
    assert_eq!(generators[0].updated_micros, 20);
    assert_eq!(generators[0].created_micros, 10);
    assert_eq!(store.records("group").await.expect("records").len(), 2);
    assert!(store.records("class").await.expect("records").is_empty());
}

/// Retention removes the oldest arrivals, by age and by size, and keeps the rest searchable.
pub async fn retention_deletes_oldest_events_first(store: &dyn Store) {
    let old_received = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    let origin = Origin {
        peer: None,
        endpoint: "conformance".into(),
        key_name: None,
    };
    let old: Vec<Event> = (0..10)
        .map(|index| {
            normalize(
                json!({"summary": format!("old {index}")}),
                &origin,
                old_received,
            )
            .expect("valid")
        })
        .collect();
    store.append(old).await.expect("append");
    load_fixture(store).await;
    let outcome = store
        .apply_retention(RetentionPolicy {
            max_age_micros: Some(24 * 3_600_000_000),
            max_bytes: None,
        })
        .await
        .expect("retention");
    assert_eq!(outcome.deleted_for_age, 10);
    assert_eq!(
        store
            .count(&EventFilter::everything())
            .await
            .expect("count"),
        8
    );
    assert_eq!(
        found(store, "old").await,
        Vec::<i64>::new(),
        "deleted events leave the word index too"
    );
    assert_eq!(found(store, "failed").await, vec![0, 1]);

    let padding = "x".repeat(2000);
    let bulk: Vec<Event> = (0..400)
        .map(|index| {
            normalize(
                json!({"summary": format!("bulk {index} {padding}")}),
                &origin,
                jiff::Timestamp::now(),
            )
            .expect("valid")
        })
        .collect();
    store.append(bulk).await.expect("append");
    let before = store.health().await.expect("health").bytes;
    let bound = before / 2;
    let outcome = store
        .apply_retention(RetentionPolicy {
            max_age_micros: None,
            max_bytes: Some(bound),
        })
        .await
        .expect("retention");
    assert!(outcome.deleted_for_size > 0);
    let after = store.health().await.expect("health");
    assert!(
        after.bytes <= bound,
        "{} bytes after retention, bound {bound}",
        after.bytes
    );
    assert!(after.events > 0 && after.events < 408);
    assert_eq!(
        found(store, "failed").await,
        Vec::<i64>::new(),
        "the oldest arrivals went first"
    );
}

/// Many concurrent appends: each returns only after commit, and every event is there.
pub async fn concurrent_appends_are_all_committed(store: &dyn Store) {
    let origin = Origin {
        peer: None,
        endpoint: "conformance".into(),
        key_name: None,
    };
    let mut batches = Vec::new();
    for task in 0..20 {
        let events: Vec<Event> = (0..50)
            .map(|index| {
                normalize(json!({"summary": format!("task {task} event {index}"), "details": {"task": task}}), &origin, jiff::Timestamp::now())
                    .expect("valid")
            })
            .collect();
        batches.push(events);
    }
    let results =
        futures_util::future::join_all(batches.into_iter().map(|events| store.append(events)))
            .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        store
            .count(&EventFilter::everything())
            .await
            .expect("count"),
        1000
    );
    let one_task =
        EventFilter::matching(isms_query::parser::parse("details.task:7").expect("parse"));
    assert_eq!(store.count(&one_task).await.expect("count"), 50);
}

/// A cursor the store did not make is refused with a clear error.
pub async fn invalid_cursor_is_refused(store: &dyn Store) {
    let request = SearchRequest {
        filter: EventFilter::everything(),
        limit: 10,
        cursor: Some("garbage".into()),
        sort: SortOrder::Desc,
    };
    assert!(matches!(
        store.search(&request).await,
        Err(StoreError::InvalidCursor(_))
    ));
}

/// Times within the same second, out of arrival order, tied, and on both sides of 1970 (where a
/// backend's coarse time key may round toward zero): every page in both orders and every time bound
/// still follow the exact time, then the arrival order.
pub async fn sub_second_times_keep_their_exact_order_in_pages_and_bounds(store: &dyn Store) {
    // Microseconds from the epoch, in arrival order; two pairs tie.
    let times: [i64; 12] = [
        900_000, -1_500_000, 300_000, -200_000, 1_100_000, 300_000, -999_999, 2_000_001, -500_000,
        -200_000, 999_999, 0,
    ];
    let events: Vec<Event> = times
        .iter()
        .enumerate()
        .map(|(arrival, micros)| {
            let time = jiff::Timestamp::from_microsecond(*micros).expect("time in range");
            normalize(
                json!({"summary": "tick", "utctimestamp": time.to_string(), "details": {"arrival": arrival}}),
                &Origin {
                    peer: None,
                    endpoint: "conformance".into(),
                    key_name: None,
                },
                jiff::Timestamp::now(),
            )
            .expect("valid event")
        })
        .collect();
    for event in &events {
        // One append per event: arrival order is storage order.
        store.append(vec![event.clone()]).await.expect("append");
    }
    let arrival_of = |document: &serde_json::Map<String, Value>| {
        document["details"]["arrival"].as_u64().expect("arrival") as usize
    };
    let mut ascending: Vec<usize> = (0..times.len()).collect();
    ascending.sort_by_key(|arrival| (times[*arrival], *arrival));
    let bounds = [
        (None, None),
        (Some(-600_000), Some(950_000)),
        (Some(-200_000), Some(300_001)),
        (Some(0), None),
        (None, Some(0)),
        (Some(999_999), Some(2_000_001)),
    ];
    for (from_micros, to_micros) in bounds {
        let within: Vec<usize> = ascending
            .iter()
            .copied()
            .filter(|arrival| {
                from_micros.is_none_or(|from| times[*arrival] >= from)
                    && to_micros.is_none_or(|to| times[*arrival] < to)
            })
            .collect();
        let filter = EventFilter {
            predicate: Predicate::All,
            from_micros,
            to_micros,
        };
        assert_eq!(
            store.count(&filter).await.expect("count"),
            within.len() as u64,
            "count from {from_micros:?} to {to_micros:?}"
        );
        for sort in [SortOrder::Asc, SortOrder::Desc] {
            let mut expected = within.clone();
            if sort == SortOrder::Desc {
                expected.reverse();
            }
            let seen: Vec<usize> = every_page(store, &filter, 2, sort)
                .await
                .iter()
                .map(arrival_of)
                .collect();
            assert_eq!(
                seen, expected,
                "{sort:?} from {from_micros:?} to {to_micros:?}"
            );
        }
    }
}

/// Events the caller prepared ([`EventPreparer`], as the syslog receivers do) are stored, indexed
/// and found exactly like events given whole, in one store beside them.
pub async fn prepared_events_are_stored_and_found_like_appended_ones(store: &dyn Store) {
    let events = fixture();
    let (whole, prepared) = events.split_at(4);
    store.append(whole.to_vec()).await.expect("append");
    let mut preparer = EventPreparer::default();
    store
        .append_prepared(
            prepared
                .iter()
                .map(|event| preparer.prepare(event))
                .collect(),
        )
        .await
        .expect("append prepared");
    assert_eq!(
        store
            .count(&EventFilter::everything())
            .await
            .expect("count"),
        8
    );
    // Field values, words and presence, on both sides of the split.
    assert_eq!(found(store, "details.username:joe").await, vec![0, 2, 7]);
    assert_eq!(found(store, "hostname:fw1").await, vec![4, 5]);
    assert_eq!(found(store, "percent").await, vec![6]);
    assert_eq!(
        found(store, "_exists_:details.nested.level.deep").await,
        vec![7]
    );
    // And by id.
    for (second, event) in events.iter().enumerate() {
        assert_eq!(
            found(store, &format!("id:{}", event.id)).await,
            vec![second as i64]
        );
    }
}

/// What detection relies on: `events_after` hands every committed event once, in commit order, from
/// any seq on, and `committed_seq` moves with each commit.
pub async fn committed_events_are_followed_in_commit_order_from_any_seq(store: &dyn Store) {
    let committed = store.committed_seq();
    let start = *committed.borrow();
    assert!(
        store
            .events_after(start, 10)
            .await
            .expect("read")
            .is_empty()
    );
    for batch in 0..3 {
        let events: Vec<Event> = (0..4)
            .map(|index| {
                // Event times out of order: the order followed is the commit's, not the time's.
                event_at(
                    100 - batch * 10 - index,
                    json!({"summary": format!("batch {batch} event {index}")}),
                )
            })
            .collect();
        store.append(events).await.expect("append");
    }
    let latest = *store.committed_seq().borrow();
    assert!(
        latest >= start + 12,
        "committed_seq moved from {start} to {latest}"
    );
    let mut seen = Vec::new();
    let mut after = start;
    loop {
        let page = store.events_after(after, 5).await.expect("read");
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 5);
        for stored in page {
            assert!(stored.seq > after, "seqs increase");
            after = stored.seq;
            seen.push(
                stored.document["summary"]
                    .as_str()
                    .expect("summary")
                    .to_owned(),
            );
        }
    }
    let expected: Vec<String> = (0..3)
        .flat_map(|batch| (0..4).map(move |index| format!("batch {batch} event {index}")))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(after, latest);
}
