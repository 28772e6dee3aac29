//! Tests of [`normalize`](super::normalize), rule by rule.

use super::*;
use crate::time::parse_time;
use serde_json::json;

fn received() -> Timestamp {
    // 2026-01-02T03:04:05.678901Z
    Timestamp::from_microsecond(1_767_323_045_678_901).expect("valid")
}

fn origin() -> Origin {
    Origin {
        peer: Some("192.0.2.7:51000".to_owned()),
        endpoint: "http:/events".to_owned(),
        key_name: Some("agent-1".to_owned()),
    }
}

fn ok(raw: Value) -> Event {
    normalize(raw.clone(), &origin(), received())
        .unwrap_or_else(|e| panic!("{raw} was refused: {e}"))
}

fn err(raw: Value) -> NormalizeError {
    match normalize(raw.clone(), &origin(), received()) {
        Ok(event) => panic!("{raw} was accepted: {}", event.to_json_line()),
        Err(e) => e,
    }
}

fn details(event: &Event) -> &Map<String, Value> {
    event.document["details"]
        .as_object()
        .expect("details is an object")
}

fn with_summary(mut raw: Value) -> Value {
    if let Some(map) = raw.as_object_mut() {
        map.insert("summary".to_owned(), json!("s"));
    }
    raw
}

#[test]
fn mozdef_client_body() {
    let event = ok(json!({
        "category": "authentication",
        "details": {"alert": true, "hostname": "test", "sourceipaddress": "10.0.0.1"},
        "hostname": "localhost",
        "processid": 4000,
        "processname": "-",
        "severity": "WARNING",
        "source": null,
        "summary": "a test message",
        "tags": ["tag1", "tag2"],
        "timestamp": "2026-11-21T22:21:35.879296+00:00"
    }));
    let id = event.id.clone();
    assert_eq!(
        Value::Object(event.document.clone()),
        json!({
            "id": id,
            "utctimestamp": "2026-11-21T22:21:35.879296+00:00",
            "receivedtimestamp": "2026-01-02T03:04:05.678901+00:00",
            "timestamp": "2026-11-21T22:21:35.879296+00:00",
            "category": "authentication",
            "details": {"alert": true, "hostname": "test", "sourceipaddress": "10.0.0.1"},
            "hostname": "localhost",
            "processid": 4000,
            "processname": "-",
            "severity": "WARNING",
            "summary": "a test message",
            "tags": ["tag1", "tag2"],
            "origin": {"peer": "192.0.2.7:51000", "endpoint": "http:/events", "key": "agent-1"}
        })
    );
    assert_eq!(
        event.utctimestamp_micros,
        micros_of(parse_time("2026-11-21T22:21:35.879296Z").unwrap())
    );
    assert_eq!(event.receivedtimestamp_micros, 1_767_323_045_678_901);
}

#[test]
fn mozdef_documentation_example() {
    let event = ok(json!({
        "timestamp": "2014-02-14T11:48:19.035762739-05:00",
        "hostname": "somemachine.in.your.company.com",
        "processname": "/path/to/your/program.exe",
        "processid": 3380,
        "severity": "INFO",
        "summary": "joe login failed",
        "category": "authentication",
        "source": "ldap",
        "tags": ["ldap", "adminAccess", "failure"],
        "details": {
            "username": "joe",
            "task": "access to admin page /admin_secret_radioactiv",
            "result": "10 authentication failures in a row"
        }
    }));
    assert_eq!(
        event.document["utctimestamp"],
        "2014-02-14T16:48:19.035762+00:00"
    );
    assert_eq!(
        event.document["timestamp"],
        "2014-02-14T11:48:19.035762739-05:00"
    );
    // Values are not lowercased, only keys.
    assert_eq!(
        event.document["tags"],
        json!(["ldap", "adminAccess", "failure"])
    );
    assert_eq!(event.get("details.username"), Some(&json!("joe")));
    assert_eq!(event.document["source"], "ldap");
}

#[test]
fn cloudtrail_like_event_without_summary_or_details() {
    let event = ok(json!({
        "eventVersion": "1.08",
        "userIdentity": {"type": "IAMUser", "userName": "alice", "arn": "arn:aws:iam::1:user/alice"},
        "eventTime": "2024-03-01T12:00:00Z",
        "eventSource": "signin.amazonaws.com",
        "eventName": "ConsoleLogin",
        "awsRegion": "us-east-1",
        "sourceIPAddress": "198.51.100.4",
        "userAgent": "Mozilla/5.0",
        "responseElements": {"ConsoleLogin": "Success"}
    }));
    let d = details(&event);
    assert_eq!(d["eventversion"], "1.08");
    assert_eq!(d["eventname"], "ConsoleLogin");
    assert_eq!(d["sourceipaddress"], "198.51.100.4");
    assert_eq!(d["useridentity"]["username"], "alice");
    assert_eq!(d["useridentity"]["type"], "IAMUser");
    assert_eq!(d["responseelements"]["consolelogin"], "Success");
    assert!(!event.document.contains_key("summary"));
    assert_eq!(event.document["category"], "event");
    assert_eq!(event.document["severity"], "INFO");
    assert_eq!(event.document["tags"], json!([]));
    // No timestamp field it knows: event time is the receipt time.
    assert_eq!(event.utctimestamp_micros, event.receivedtimestamp_micros);
    assert_eq!(event.document["timestamp"], event.document["utctimestamp"]);
}

#[test]
fn server_fields() {
    let event = ok(json!({"summary": "x"}));
    let parsed = uuid::Uuid::parse_str(&event.id).expect("uuid");
    assert_eq!(parsed.get_version_num(), 7);
    assert_eq!(event.id, event.id.to_lowercase());
    assert_eq!(event.id.len(), 36);
    assert_eq!(event.document["id"], event.id.as_str());
    assert_ne!(ok(json!({"summary": "x"})).id, event.id);
    assert_eq!(
        event.document["origin"],
        json!({"peer": "192.0.2.7:51000", "endpoint": "http:/events", "key": "agent-1"})
    );

    let bare = normalize(json!({"summary": "x"}), &Origin::default(), received()).unwrap();
    assert_eq!(bare.document["origin"], json!({"endpoint": ""}));
}

#[test]
fn defaults() {
    let event = ok(json!({"summary": "x"}));
    let keys: Vec<&str> = event.document.keys().map(String::as_str).collect();
    let mut expected = vec![
        "category",
        "details",
        "id",
        "origin",
        "receivedtimestamp",
        "severity",
        "summary",
        "tags",
        "timestamp",
        "utctimestamp",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(event.document["category"], "event");
    assert_eq!(event.document["severity"], "INFO");
    assert_eq!(event.document["tags"], json!([]));
    assert_eq!(event.document["details"], json!({}));
    assert_eq!(
        event.document["utctimestamp"],
        "2026-01-02T03:04:05.678901+00:00"
    );
}

#[test]
fn not_an_object() {
    for (raw, found) in [
        (json!([1]), "an array"),
        (json!("x"), "a string"),
        (json!(1), "a number"),
        (json!(true), "a boolean"),
        (json!(null), "null"),
    ] {
        match err(raw) {
            NormalizeError::NotAnObject { found: f } => assert_eq!(f, found),
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        err(json!([])).to_string(),
        "an event must be a JSON object, found an array"
    );
}

#[test]
fn keys_are_lowercased_recursively_and_dots_replaced() {
    let event = ok(json!({
        "Summary": "x",
        "HostName": "h",
        "Details": {"UserName": "joe", "Nested.Key": {"Deep.Er": [{"InArray": 1}]}},
        "Top.Level": 2
    }));
    assert_eq!(event.document["summary"], "x");
    assert_eq!(event.document["hostname"], "h");
    let d = details(&event);
    assert_eq!(d["username"], "joe");
    assert_eq!(d["nested_key"], json!({"deep_er": [{"inarray": 1}]}));
    assert_eq!(d["top_level"], 2);
    assert_eq!(
        event.get("details.nested_key.deep_er"),
        Some(&json!([{"inarray": 1}]))
    );
    assert_eq!(event.get("details.nested_key.nothing"), None);
    assert_eq!(event.get("summary.x"), None);
}

#[test]
fn key_collisions_after_lowercasing() {
    // In serde_json's map order (and in insertion order) `summary` comes after `Summary`.
    let event = ok(json!({"Summary": "first", "summary": "second"}));
    assert_eq!(event.document["summary"], "second");
    let event = ok(json!({"details": {"User": "a", "user": "b"}, "summary": "x"}));
    assert_eq!(details(&event)["username"], "b");
    assert!(!details(&event).contains_key("user"));
    let event = ok(json!({"a.b": 1, "a_b": 2, "summary": "x"}));
    assert_eq!(details(&event)["a_b"], 2);
}

#[test]
fn every_top_level_alias() {
    // (alias, value sent, MozDef field, value stored)
    let cases: &[(&str, Value, &str, Value)] = &[
        ("message", json!("m"), "summary", json!("m")),
        ("msg", json!("m"), "summary", json!("m")),
        ("program", json!("sshd"), "processname", json!("sshd")),
        ("process", json!("sshd"), "processname", json!("sshd")),
        ("pid", json!("42"), "processid", json!(42)),
        ("host", json!("h1"), "hostname", json!("h1")),
        (
            "type",
            json!("authentication"),
            "category",
            json!("authentication"),
        ),
        (
            "@timestamp",
            json!("2014-01-30T13:24:43Z"),
            "timestamp",
            json!("2014-01-30T13:24:43Z"),
        ),
        (
            "time",
            json!("2014-01-30T13:24:43Z"),
            "timestamp",
            json!("2014-01-30T13:24:43Z"),
        ),
        ("level", json!("warn"), "severity", json!("WARNING")),
        ("tag", json!("t"), "tags", json!(["t"])),
    ];
    for (alias, sent, field, stored) in cases {
        let mut raw = Map::new();
        raw.insert((*alias).to_owned(), sent.clone());
        raw.insert("details".to_owned(), json!({"k": 1}));
        let event = ok(Value::Object(raw));
        assert_eq!(&event.document[*field], stored, "{alias}");
        assert!(!details(&event).contains_key(*alias), "{alias}");
        // Uppercase spelling works the same.
        let mut raw = Map::new();
        raw.insert(alias.to_uppercase(), sent.clone());
        raw.insert("details".to_owned(), json!({"k": 1}));
        assert_eq!(&ok(Value::Object(raw)).document[*field], stored, "{alias}");
    }
    let event = ok(json!({"@timestamp": "2014-01-30T13:24:43Z", "summary": "x"}));
    assert_eq!(
        event.document["utctimestamp"],
        "2014-01-30T13:24:43.000000+00:00"
    );
}

#[test]
fn every_details_alias_from_the_top_level_and_inside_details() {
    let mut checked = 0;
    for alias in FIELD_ALIASES {
        let AliasTarget::Details(target) = alias.to else {
            continue;
        };
        checked += 1;
        let event = ok(with_summary(json!({ alias.from: "v" })));
        assert_eq!(details(&event).get(target), Some(&json!("v")), "{alias:?}");
        assert!(!event.document.contains_key(alias.from), "{alias:?}");
        if alias.from != target {
            assert!(!details(&event).contains_key(alias.from), "{alias:?}");
        }

        let event = ok(json!({ "details": { alias.from: "v" } }));
        assert_eq!(details(&event).get(target), Some(&json!("v")), "{alias:?}");
        assert_eq!(details(&event).len(), 1, "{alias:?}");
    }
    assert_eq!(checked, 20);
}

#[test]
fn fields_are_merged_into_details() {
    let event = ok(json!({
        "summary": "x",
        "fields": {"Env": "prod", "keep": "from fields", "srcip": "10.0.0.9"},
        "details": {"keep": "from details"}
    }));
    let d = details(&event);
    assert_eq!(d["env"], "prod");
    assert_eq!(d["keep"], "from details");
    assert_eq!(d["keep_1"], "from fields");
    assert_eq!(d["sourceipaddress"], "10.0.0.9");
    assert!(!d.contains_key("fields"));

    let event = ok(json!({"summary": "x", "fields": "not an object"}));
    assert_eq!(details(&event)["fields"], "not an object");
}

#[test]
fn alias_precedence_first_present_wins_and_targets_are_never_overwritten() {
    let event = ok(json!({"msg": "a", "message": "b"}));
    assert_eq!(event.document["summary"], "b");
    assert_eq!(details(&event)["msg"], "a");

    let event = ok(json!({"summary": "s", "message": "m", "msg": "n"}));
    assert_eq!(event.document["summary"], "s");
    assert_eq!(details(&event)["message"], "m");
    assert_eq!(details(&event)["msg"], "n");

    // A null target counts as absent.
    let event = ok(json!({"summary": null, "message": "m"}));
    assert_eq!(event.document["summary"], "m");

    let event = ok(json!({"hostname": "h", "host": "other", "type": "t", "category": "c"}));
    assert_eq!(event.document["hostname"], "h");
    assert_eq!(event.document["category"], "c");
    assert_eq!(details(&event)["host"], "other");
    assert_eq!(details(&event)["type"], "t");

    let event = ok(json!({"srcip": "1.1.1.1", "src_ip": "2.2.2.2"}));
    assert_eq!(details(&event)["sourceipaddress"], "1.1.1.1");
    assert_eq!(details(&event)["src_ip"], "2.2.2.2");

    // Target already in details: both kept.
    let event = ok(json!({"srcip": "1.1.1.1", "details": {"sourceipaddress": "9.9.9.9"}}));
    assert_eq!(details(&event)["sourceipaddress"], "9.9.9.9");
    assert_eq!(details(&event)["srcip"], "1.1.1.1");

    let event = ok(json!({"details": {"srcip": "1.1.1.1", "sourceipaddress": "9.9.9.9"}}));
    assert_eq!(details(&event)["sourceipaddress"], "9.9.9.9");
    assert_eq!(details(&event)["srcip"], "1.1.1.1");

    let event = ok(json!({"user": "top", "details": {"username": "inner"}}));
    assert_eq!(details(&event)["username"], "inner");
    assert_eq!(details(&event)["user"], "top");

    // Same alias name at the top and in details.
    let event = ok(json!({"srcip": "top", "details": {"srcip": "inner"}}));
    assert_eq!(details(&event)["sourceipaddress"], "top");
    assert_eq!(details(&event)["srcip"], "inner");
}

#[test]
fn unknown_top_level_keys_go_to_details_without_loss() {
    let event = ok(json!({"summary": "x", "foo": 1, "bar": {"Baz": true}}));
    assert_eq!(details(&event)["foo"], 1);
    assert_eq!(details(&event)["bar"], json!({"baz": true}));
    assert!(!event.document.contains_key("foo"));

    let event = ok(json!({"foo": "top", "details": {"foo": "inner", "foo_1": "taken"}}));
    assert_eq!(details(&event)["foo"], "inner");
    assert_eq!(details(&event)["foo_1"], "taken");
    assert_eq!(details(&event)["foo_2"], "top");

    // A null in details gives way.
    let event = ok(json!({"foo": "top", "details": {"foo": null}}));
    assert_eq!(details(&event)["foo"], "top");

    // Unknown keys with null values are kept as data.
    let event = ok(json!({"foo": null}));
    assert_eq!(details(&event)["foo"], Value::Null);
}

#[test]
fn incoming_id_origin_and_receivedtimestamp_are_not_trusted() {
    let event = ok(json!({
        "summary": "x",
        "id": "forged",
        "origin": {"peer": "forged"},
        "receivedtimestamp": "2000-01-01T00:00:00Z"
    }));
    assert_ne!(event.document["id"], "forged");
    assert_eq!(details(&event)["id"], "forged");
    assert_eq!(details(&event)["origin"], json!({"peer": "forged"}));
    assert_eq!(event.document["origin"]["peer"], "192.0.2.7:51000");
    assert_eq!(
        event.document["receivedtimestamp"],
        "2026-01-02T03:04:05.678901+00:00"
    );
    assert!(!details(&event).contains_key("receivedtimestamp"));
}

#[test]
fn text_fields() {
    let event = ok(json!({
        "summary": 12.5, "hostname": 42, "processname": true, "category": "c", "source": null
    }));
    assert_eq!(event.document["summary"], "12.5");
    assert_eq!(event.document["hostname"], "42");
    assert_eq!(event.document["processname"], "true");
    assert!(!event.document.contains_key("source"));

    for field in ["hostname", "processname", "category", "source", "summary"] {
        for bad in [json!([]), json!({"a": 1})] {
            let mut raw = Map::new();
            raw.insert(field.to_owned(), bad.clone());
            raw.insert("details".to_owned(), json!({"k": 1}));
            match err(Value::Object(raw)) {
                NormalizeError::WrongType {
                    field: f, expected, ..
                } => {
                    assert_eq!(f, field);
                    assert_eq!(expected, "a string");
                }
                other => panic!("{other}"),
            }
        }
    }
    assert_eq!(
        err(json!({"message": ["a"]})).to_string(),
        "field `message`: expected a string, found an array"
    );
}

#[test]
fn processid_forms() {
    for (sent, stored) in [
        (json!(4000), Some(json!(4000))),
        (json!("0"), Some(json!(0))),
        (json!(" 17 "), Some(json!(17))),
        (json!("-3"), Some(json!(-3))),
        (json!(4000.0), Some(json!(4000))),
        (json!(u64::MAX), Some(json!(u64::MAX))),
        (json!("-"), None),
        (json!(""), None),
        (json!(null), None),
    ] {
        let event = ok(json!({"summary": "x", "processid": sent}));
        assert_eq!(event.document.get("processid"), stored.as_ref(), "{sent}");
    }
    assert_eq!(
        err(json!({"summary": "x", "processid": "abc"})).to_string(),
        "field `processid`: expected an integer, found the string \"abc\""
    );
    assert_eq!(
        err(json!({"summary": "x", "pid": "abc"})).to_string(),
        "field `pid`: expected an integer, found the string \"abc\""
    );
    for bad in [
        json!(1.5),
        json!(true),
        json!([1]),
        json!({}),
        json!("1.5"),
        json!("1e3"),
    ] {
        assert!(
            matches!(
                err(json!({"summary": "x", "processid": bad})),
                NormalizeError::WrongType { .. }
            ),
            "{bad}"
        );
    }
    assert_eq!(
        err(json!({"summary": "x", "processid": 1.5})).to_string(),
        "field `processid`: expected an integer, found the number 1.5"
    );
}

#[test]
fn tags_forms() {
    for (sent, stored) in [
        (json!(["a", "b"]), json!(["a", "b"])),
        (json!("one"), json!(["one"])),
        (json!("a,b"), json!(["a,b"])),
        (json!(7), json!(["7"])),
        (json!(true), json!(["true"])),
        (json!(null), json!([])),
        (json!([]), json!([])),
        (
            json!([1, true, null, "x", {"A": 1}, [2]]),
            json!(["1", "true", "x", "{\"a\":1}", "[2]"]),
        ),
    ] {
        let event = ok(json!({"summary": "x", "tags": sent}));
        assert_eq!(event.document["tags"], stored, "{sent}");
    }
    assert_eq!(
        err(json!({"summary": "x", "tags": {"a": 1}})).to_string(),
        "field `tags`: expected an array of strings, found an object"
    );
}

#[test]
fn details_must_be_an_object() {
    for bad in [json!("x"), json!([1]), json!(3), json!(false)] {
        match err(json!({"summary": "x", "details": bad})) {
            NormalizeError::WrongType {
                field, expected, ..
            } => {
                assert_eq!(field, "details");
                assert_eq!(expected, "an object");
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(
        err(json!({"summary": "x", "details": "x"})).to_string(),
        "field `details`: expected an object, found the string \"x\""
    );
    let event = ok(json!({"summary": "x", "details": null}));
    assert_eq!(event.document["details"], json!({}));
}

#[test]
fn summary_or_details_required() {
    for raw in [
        json!({}),
        json!({"hostname": "a", "severity": "INFO", "category": "c", "tags": ["t"]}),
        json!({"summary": null}),
        json!({"summary": "  "}),
        json!({"details": {}}),
        json!({"details": null, "timestamp": "2014-01-30T13:24:43Z"}),
    ] {
        assert!(
            matches!(err(raw.clone()), NormalizeError::NoSummaryOrDetails),
            "{raw}"
        );
    }
    assert_eq!(
        err(json!({})).to_string(),
        "an event needs a summary or details"
    );
    let event = ok(json!({"details": {"a": 1}}));
    assert!(!event.document.contains_key("summary"));
    let event = ok(json!({"a": 1}));
    assert!(!event.document.contains_key("summary"));
}

#[test]
fn severity_forms() {
    let stored =
        |sent: Value| ok(json!({"summary": "x", "severity": sent})).document["severity"].clone();
    let cases = [
        (json!("EMERGENCY"), "EMERGENCY"),
        (json!("emerg"), "EMERGENCY"),
        (json!("panic"), "EMERGENCY"),
        (json!("alert"), "ALERT"),
        (json!("Critical"), "CRITICAL"),
        (json!("crit"), "CRITICAL"),
        (json!("fatal"), "CRITICAL"),
        (json!("error"), "ERROR"),
        (json!("err"), "ERROR"),
        (json!("high"), "ERROR"),
        (json!("warning"), "WARNING"),
        (json!("warn"), "WARNING"),
        (json!("medium"), "WARNING"),
        (json!("notice"), "NOTICE"),
        (json!("low"), "NOTICE"),
        (json!("info"), "INFO"),
        (json!("informational"), "INFO"),
        (json!("debug"), "DEBUG"),
        (json!("trace"), "DEBUG"),
        (json!(0), "EMERGENCY"),
        (json!(3), "ERROR"),
        (json!("4"), "WARNING"),
        (json!(7), "DEBUG"),
        (json!(null), "INFO"),
    ];
    for (sent, name) in cases {
        assert_eq!(stored(sent.clone()), name, "{sent}");
    }
    for bad in [
        json!("loud"),
        json!(8),
        json!(-1),
        json!("8"),
        json!(true),
        json!(["INFO"]),
    ] {
        assert!(
            matches!(
                err(json!({"summary": "x", "severity": bad})),
                NormalizeError::BadSeverity { .. }
            ),
            "{bad}"
        );
    }
    let message = err(json!({"summary": "x", "level": "loud"})).to_string();
    assert!(
        message.starts_with("field `level`: unknown severity the string \"loud\""),
        "{message}"
    );
}

#[test]
fn time_sources_and_forms() {
    let t = 1_391_088_283_000_000; // 2014-01-30T13:24:43Z
    let utc = |raw: Value| ok(with_summary(raw)).utctimestamp_micros;

    assert_eq!(utc(json!({"utctimestamp": "2014-01-30T13:24:43+00:00"})), t);
    assert_eq!(utc(json!({"timestamp": "2014-01-30T08:24:43-05:00"})), t);
    assert_eq!(utc(json!({"timestamp": "2014-01-30 13:24:43Z"})), t);
    assert_eq!(utc(json!({"timestamp": "2014-01-30T13:24:43"})), t);
    assert_eq!(utc(json!({"timestamp": 1_391_088_283})), t);
    assert_eq!(utc(json!({"timestamp": 1_391_088_283.25})), t + 250_000);
    assert_eq!(utc(json!({"timestamp": 1_391_088_283_123u64})), t + 123_000);
    assert_eq!(utc(json!({"timestamp": "1391088283123"})), t + 123_000);
    assert_eq!(utc(json!({"timestamp": "1391088283.5"})), t + 500_000);
    assert_eq!(
        utc(json!({"timestamp": 1_391_088_283_123_456u64})),
        t + 123_456
    );
    assert_eq!(
        utc(json!({"timestamp": 1_391_088_283_123_456_789u64})),
        t + 123_456
    );

    // utctimestamp wins over timestamp, and timestamp keeps the sender's text.
    let event = ok(json!({
        "summary": "x",
        "utctimestamp": "2014-01-30T13:24:43Z",
        "timestamp": "2000-01-01T00:00:00+01:00"
    }));
    assert_eq!(event.utctimestamp_micros, t);
    assert_eq!(
        event.document["utctimestamp"],
        "2014-01-30T13:24:43.000000+00:00"
    );
    assert_eq!(event.document["timestamp"], "2000-01-01T00:00:00+01:00");

    // Epoch numbers are rewritten; an absent timestamp is the event time.
    let event = ok(json!({"summary": "x", "timestamp": "1391088283"}));
    assert_eq!(
        event.document["timestamp"],
        "2014-01-30T13:24:43.000000+00:00"
    );
    let event = ok(json!({"summary": "x", "utctimestamp": 1_391_088_283}));
    assert_eq!(
        event.document["timestamp"],
        "2014-01-30T13:24:43.000000+00:00"
    );
    let event = ok(json!({"summary": "x", "timestamp": " 2014-01-30T13:24:43Z "}));
    assert_eq!(event.document["timestamp"], "2014-01-30T13:24:43Z");

    // Null is absent: receipt time.
    let event = ok(json!({"summary": "x", "timestamp": null, "utctimestamp": null}));
    assert_eq!(event.utctimestamp_micros, event.receivedtimestamp_micros);

    // Microsecond truncation is consistent between the field and the number.
    let event = ok(json!({"summary": "x", "timestamp": "2014-02-14T11:48:19.035762739-05:00"}));
    assert_eq!(
        event.document["utctimestamp"],
        format_time(event.utctimestamp_micros).as_str()
    );
}

#[test]
fn bad_times() {
    match err(json!({"summary": "x", "timestamp": "yesterday"})) {
        NormalizeError::BadTime { field, value, .. } => {
            assert_eq!(field, "timestamp");
            assert_eq!(value, "yesterday");
        }
        other => panic!("{other}"),
    }
    let message = err(json!({"summary": "x", "@timestamp": "yesterday"})).to_string();
    assert!(
        message.starts_with("field `@timestamp`: cannot read \"yesterday\" as a time"),
        "{message}"
    );
    match err(json!({"summary": "x", "utctimestamp": "2014-13-01T00:00:00Z"})) {
        NormalizeError::BadTime { field, .. } => assert_eq!(field, "utctimestamp"),
        other => panic!("{other}"),
    }
    // A bad timestamp is refused even when utctimestamp is good.
    assert!(matches!(
        err(json!({"summary": "x", "utctimestamp": "2014-01-30T13:24:43Z", "timestamp": "soon"})),
        NormalizeError::BadTime { .. }
    ));
    for bad in [
        json!(1e300),
        json!("1e30"),
        json!(true),
        json!([1]),
        json!({"a": 1}),
        json!(""),
    ] {
        assert!(
            matches!(
                err(json!({"summary": "x", "timestamp": bad})),
                NormalizeError::BadTime { .. }
            ),
            "{bad}"
        );
    }
    match err(json!({"summary": "x", "timestamp": 1e300})) {
        NormalizeError::BadTime {
            reason: TimeError::OutOfRange { .. },
            ..
        } => {}
        other => panic!("{other}"),
    }
}

#[test]
fn too_deep() {
    let mut value = json!("leaf");
    for _ in 0..(MAX_DEPTH + 5) {
        value = json!({ "a": value });
    }
    assert!(matches!(
        err(json!({"summary": "x", "details": value})),
        NormalizeError::TooDeep { .. }
    ));
    let mut value = json!("leaf");
    for _ in 0..(MAX_DEPTH - 3) {
        value = json!([value]);
    }
    ok(json!({"summary": "x", "deep": value}));
}

#[test]
fn json_line_round_trips() {
    let event = ok(json!({"summary": "line\nbreak", "details": {"a": [1, 2]}}));
    let line = event.to_json_line();
    assert!(!line.contains('\n'));
    let back: Map<String, Value> = serde_json::from_str(&line).unwrap();
    assert_eq!(back, event.document);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("summary".to_owned()),
            Just("Message".to_owned()),
            Just("details".to_owned()),
            Just("timestamp".to_owned()),
            Just("utctimestamp".to_owned()),
            Just("@timestamp".to_owned()),
            Just("severity".to_owned()),
            Just("level".to_owned()),
            Just("processid".to_owned()),
            Just("pid".to_owned()),
            Just("tags".to_owned()),
            Just("fields".to_owned()),
            Just("srcip".to_owned()),
            Just("SourceIPAddress".to_owned()),
            Just("hostname".to_owned()),
            Just("id".to_owned()),
            Just("a.b".to_owned()),
            "[a-zA-Z_.@]{0,6}",
            ".{0,4}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
            "[0-9]{0,20}".prop_map(Value::String),
            "[-+0-9.eE:TZ ]{0,30}".prop_map(Value::String),
            ".{0,12}".prop_map(Value::String),
            Just(json!("2014-01-30T13:24:43Z")),
            Just(json!("warn")),
        ];
        leaf.prop_recursive(5, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..8)
                    .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
            ]
        })
    }

    fn check_keys(value: &Value) -> bool {
        match value {
            Value::Object(map) => map
                .iter()
                .all(|(k, v)| !k.contains('.') && k.to_lowercase() == *k && check_keys(v)),
            Value::Array(items) => items.iter().all(check_keys),
            _ => true,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_word_at_a_time_key_check_agrees_with_the_byte_by_byte_one(
            // Letters and the bytes beside `A`, `Z` and `.`, ASCII and not, keys of any length.
            key in "[a-zA-Z@\\[`{.,/0-9_ÄéΣ\u{7f}\u{80}]{0,40}",
        ) {
            prop_assert_eq!(key_needs_normalizing(&key), key_needs_normalizing_bytewise(&key));
        }

        #[test]
        fn never_panics_and_output_is_well_formed(
            raw in json_value(),
            top in prop::collection::vec((key(), json_value()), 0..10),
        ) {
            // Any value, and objects built mostly from meaningful keys.
            let _ = normalize(raw, &Origin::default(), received());
            let object = Value::Object(top.into_iter().collect());
            // An event normalization takes only as details is never refused, and keeps every
            // incoming value (what a replay relies on to judge it unbuilt).
            if let Value::Object(map) = &object && normalizes_to_details_only(map) {
                let normalized = normalize(object.clone(), &origin(), received());
                prop_assert!(normalized.is_ok(), "{:?}: {:?}", object, normalized.err());
                let mut incoming = Vec::new();
                let mut stored = Vec::new();
                fn scalars(value: &Value, into: &mut Vec<String>) {
                    match value {
                        Value::Object(map) => map.values().for_each(|v| scalars(v, into)),
                        Value::Array(items) => items.iter().for_each(|v| scalars(v, into)),
                        Value::Null => {}
                        other => into.push(other.to_string()),
                    }
                }
                scalars(&object, &mut incoming);
                scalars(&normalized.unwrap().document["details"], &mut stored);
                for value in &stored {
                    prop_assert!(incoming.contains(value), "{} not sent in {:?}", value, object);
                }
            }
            if let Ok(event) = normalize(object, &origin(), received()) {
                let doc = &event.document;
                prop_assert!(check_keys(&Value::Object(doc.clone())));
                prop_assert_eq!(&doc["id"], &Value::String(event.id.clone()));
                prop_assert_eq!(
                    &doc["utctimestamp"],
                    &Value::String(format_time(event.utctimestamp_micros))
                );
                prop_assert!(doc["timestamp"].is_string());
                prop_assert!(parse_time(doc["timestamp"].as_str().unwrap_or("")).is_ok());
                prop_assert!(Severity::parse(&doc["severity"]).is_some());
                prop_assert!(doc["category"].is_string());
                prop_assert!(doc["tags"].as_array().is_some_and(|t| t.iter().all(Value::is_string)));
                prop_assert!(doc["details"].is_object());
                prop_assert!(doc.get("summary").is_none_or(Value::is_string));
                prop_assert!(doc.get("processid").is_none_or(|p| p.is_i64() || p.is_u64()));
                prop_assert!(doc.get("summary").is_some() || !doc["details"].as_object().is_some_and(Map::is_empty));
                for key in doc.keys() {
                    prop_assert!(MOZDEF_FIELDS.contains(&key.as_str()) || key == "id" || key == "origin", "{}", key);
                }
                // Normalizing a normalized event keeps its fields (except the server's).
                let again = normalize(Value::Object(doc.clone()), &origin(), received());
                prop_assert!(again.is_ok(), "{:?}", again.err());
            }
        }
    }
}

#[test]
fn alias_source_check_agrees_with_the_table() {
    let mut keys: Vec<&str> = FIELD_ALIASES.iter().map(|alias| alias.from).collect();
    keys.extend(MOZDEF_FIELDS);
    keys.extend([
        "details",
        "src",
        "sourceipaddress_1",
        "users",
        "",
        "Message",
    ]);
    for key in keys {
        let top = FIELD_ALIASES.iter().any(|alias| alias.from == key);
        let in_details = FIELD_ALIASES.iter().any(
            |alias| matches!(alias.to, AliasTarget::Details(target) if target != alias.from && alias.from == key),
        );
        assert_eq!(is_alias_source(key, false), top, "top-level {key:?}");
        assert_eq!(is_alias_source(key, true), in_details, "details {key:?}");
    }
}

#[test]
fn events_of_one_delivery_share_its_origin_and_receipt_time() {
    let delivery = Delivery::new(&origin(), received());
    let first = normalize_delivered(json!({"summary": "a"}), &delivery).expect("valid");
    let second = normalize_delivered(
        json!({"summary": "b", "utctimestamp": "2020-01-01T00:00:00Z"}),
        &delivery,
    )
    .expect("valid");
    let alone = ok(json!({"summary": "a"}));
    for event in [&first, &second] {
        assert_eq!(event.document["origin"], alone.document["origin"]);
        assert_eq!(
            event.document["receivedtimestamp"],
            alone.document["receivedtimestamp"]
        );
    }
    assert_eq!(
        first.document["utctimestamp"],
        alone.document["utctimestamp"]
    );
    assert_eq!(
        second.document["utctimestamp"],
        json!("2020-01-01T00:00:00.000000+00:00")
    );
    assert_ne!(first.id, second.id);
}
