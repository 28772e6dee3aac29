//! Black-box integration tests: the real `isms` binary, over HTTP and raw TCP on 127.0.0.1.
//!
//! Every test starts its own `isms serve` on a temporary data directory and a free port, so tests run in
//! parallel and never see each other's events.
mod harness;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use harness::{
    ServerProcess, TEST_KEY, raw_exchange, raw_exchanges, run_bounded, run_test, shared_data,
};
use serde_json::{Value, json};

const LIMIT: Duration = Duration::from_secs(20);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}

/// `2026-11-21T22:21:35.879296+00:00`: six fractional digits, always `+00:00`.
fn assert_normalized_time(value: &Value, what: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    let bytes = text.as_bytes();
    let shape_ok = text.len() == 32
        && text.ends_with("+00:00")
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'.'
        && bytes[20..26].iter().all(u8::is_ascii_digit);
    assert!(
        shape_ok,
        "{what} {text:?} is not in the normalized form YYYY-MM-DDTHH:MM:SS.ffffff+00:00"
    );
    assert!(
        isms_event::parse_time(text).is_ok(),
        "{what} {text:?} is not a readable time"
    );
}

fn micros(value: &Value) -> i64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time string: {value}"));
    isms_event::micros_of(
        isms_event::parse_time(text).unwrap_or_else(|error| panic!("{text:?}: {error}")),
    )
}

fn assert_uuid(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("id is not a string: {value}"));
    let groups: Vec<&str> = text.split('-').collect();
    assert_eq!(
        groups.iter().map(|group| group.len()).collect::<Vec<_>>(),
        vec![8, 4, 4, 4, 12],
        "id {text:?} is not a UUID"
    );
    assert!(
        text.chars()
            .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "id {text:?} is not lowercase hex"
    );
}

/// True when no object key at any depth has an upper-case letter or a dot.
fn keys_are_normalized(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.iter().all(|(key, value)| {
            !key.chars().any(|c| c.is_uppercase() || c == '.') && keys_are_normalized(value)
        }),
        Value::Array(items) => items.iter().all(keys_are_normalized),
        _ => true,
    }
}

// ------------------------------------------------------------------------------------------------
// 1. Captured PyPI mozdef-client requests, replayed byte for byte

/// The captured request with only its request line changed to carry `?key=KEY`.
fn with_key_in_request_line(captured: &[u8], key: &str) -> Vec<u8> {
    let original = b"POST /events HTTP/1.1\r\n";
    assert!(
        captured.starts_with(original),
        "the capture does not start with {:?}",
        String::from_utf8_lossy(original)
    );
    let mut edited = format!("POST /events?key={key} HTTP/1.1\r\n").into_bytes();
    edited.extend_from_slice(&captured[original.len()..]);
    edited
}

#[test]
fn captured_mozdef_client_requests_replay_byte_for_byte() {
    let Some(directory) = shared_data("clients-captured") else {
        return;
    };
    let first =
        std::fs::read(directory.join("mozdef-client-http.tcp.01.bin")).expect("read capture 01");
    let second =
        std::fs::read(directory.join("mozdef-client-http.tcp.02.bin")).expect("read capture 02");
    run_test(LIMIT, async move {
        let server = ServerProcess::start(&[]);
        for (name, capture) in [("01", &first), ("02", &second)] {
            let head =
                String::from_utf8_lossy(&capture[..capture.len().min(400)]).to_ascii_lowercase();
            assert!(
                !head.contains("content-type"),
                "capture {name} is expected to carry no Content-Type"
            );
            // As captured: no key, so the server must refuse it.
            let response = raw_exchange(server.address, capture)
                .unwrap_or_else(|error| server.fail(format!("replay {name}: {error}")));
            assert_eq!(
                response.status,
                401,
                "unkeyed replay {name}: {:?}",
                String::from_utf8_lossy(&response.body)
            );
            let body = response.json();
            assert_eq!(body["code"], 401);
            assert!(
                body["error"].as_str().unwrap_or_default().contains("key"),
                "{body}"
            );
            assert!(
                response
                    .headers
                    .iter()
                    .any(|(name, value)| name == "www-authenticate" && value.starts_with("Bearer")),
                "{:?}",
                response.headers
            );
        }
        assert_eq!(
            server.count("").await,
            0,
            "a refused request must store nothing"
        );

        let started = jiff::Timestamp::now().as_microsecond();
        for (name, capture) in [("01", &first), ("02", &second)] {
            let edited = with_key_in_request_line(capture, &server.key);
            let response = raw_exchange(server.address, &edited)
                .unwrap_or_else(|error| server.fail(format!("keyed replay {name}: {error}")));
            assert_eq!(
                response.status,
                200,
                "keyed replay {name}: {:?}",
                String::from_utf8_lossy(&response.body)
            );
            let body = response.json();
            assert_eq!(body["accepted"], 1, "{body}");
            assert_eq!(body["rejected"], json!([]), "{body}");
        }
        let finished = jiff::Timestamp::now().as_microsecond();
        assert_eq!(server.count("").await, 2);

        // MozDefEvent (capture 01).
        let event = server
            .search_one("details.sourceipaddress:10.0.0.1 AND tags:tag1")
            .await;
        assert_eq!(event["category"], "authentication");
        assert_eq!(
            event["details"],
            json!({"alert": true, "hostname": "test", "sourceipaddress": "10.0.0.1"})
        );
        assert_eq!(event["hostname"], "localhost");
        assert_eq!(event["processid"], json!(4000));
        assert_eq!(event["processname"], "-");
        assert_eq!(event["severity"], "WARNING");
        assert!(
            event.get("source").is_none(),
            "source was null: it must be absent, found {}",
            event["source"]
        );
        assert_eq!(event["summary"], "a test message");
        assert_eq!(event["tags"], json!(["tag1", "tag2"]));
        assert_eq!(
            event["timestamp"], "2026-11-21T22:21:35.879296+00:00",
            "the sender's timestamp is kept"
        );
        assert_eq!(event["utctimestamp"], "2026-11-21T22:21:35.879296+00:00");
        assert_normalized_time(&event["utctimestamp"], "utctimestamp");
        assert_normalized_time(&event["receivedtimestamp"], "receivedtimestamp");
        let received = micros(&event["receivedtimestamp"]);
        assert!(
            (started - 1_000_000..=finished + 1_000_000).contains(&received),
            "receivedtimestamp {} is not the receipt time",
            event["receivedtimestamp"]
        );
        assert_uuid(&event["id"]);
        assert_eq!(event["origin"]["endpoint"], "/events");
        assert_eq!(
            event["origin"]["key"], "admin",
            "origin.key is the key's name"
        );
        assert!(
            event["origin"]["peer"]
                .as_str()
                .is_some_and(|peer| peer.starts_with("127.0.0.1:")),
            "{}",
            event["origin"]
        );
        let expected_keys: BTreeSet<&str> = [
            "category",
            "details",
            "hostname",
            "id",
            "origin",
            "processid",
            "processname",
            "receivedtimestamp",
            "severity",
            "summary",
            "tags",
            "timestamp",
            "utctimestamp",
        ]
        .into_iter()
        .collect();
        let keys: BTreeSet<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, expected_keys, "top-level fields of {event:#}");
        let by_id = server
            .get_json(
                &format!("/api/events/{}", event["id"].as_str().unwrap()),
                &[],
            )
            .await;
        assert_eq!(by_id, event, "the event by id is the event found by search");

        // Legacy MozDefMsg (capture 02).
        let legacy = server.search_one("tags:legacy").await;
        assert_eq!(legacy["category"], "event");
        assert_eq!(legacy["details"], json!({"k": "v"}));
        assert_eq!(legacy["hostname"], "localhost");
        assert_eq!(legacy["processid"], json!(4000));
        assert_eq!(legacy["processname"], "-");
        assert_eq!(legacy["severity"], "CRITICAL");
        assert!(legacy.get("source").is_none(), "{legacy}");
        assert_eq!(legacy["summary"], "legacy summary");
        assert_eq!(legacy["tags"], json!(["legacy"]));
        assert_eq!(legacy["timestamp"], "2026-11-21T22:21:36.888781+00:00");
        assert_eq!(legacy["utctimestamp"], "2026-11-21T22:21:36.888781+00:00");
        assert_normalized_time(&legacy["receivedtimestamp"], "receivedtimestamp");
        assert_uuid(&legacy["id"]);
        assert_ne!(legacy["id"], event["id"]);
        assert_eq!(legacy["origin"]["endpoint"], "/events");
        assert_eq!(legacy["origin"]["key"], "admin");
        assert_eq!(server.search("severity:CRITICAL").await.len(), 1);

        assert_eq!(
            server.search("\"legacy summary\"").await.len(),
            1,
            "free text finds the summary"
        );

        // One keep-alive connection, as a long-lived client session would use it: the refused request's
        // unread body must not leak into the next request.
        let keyed = with_key_in_request_line(&second, &server.key);
        let responses = raw_exchanges(server.address, &[&second, &keyed, &keyed])
            .unwrap_or_else(|error| server.fail(format!("keep-alive replay: {error}")));
        let statuses: Vec<u16> = responses.iter().map(|response| response.status).collect();
        assert_eq!(
            statuses,
            vec![401, 200, 200],
            "{:?}",
            responses
                .iter()
                .map(|response| String::from_utf8_lossy(&response.body))
                .collect::<Vec<_>>()
        );
        assert_eq!(server.count("tags:legacy").await, 3);
        assert_eq!(server.count("").await, 4);
    });
}

// ------------------------------------------------------------------------------------------------
// 2. MozDef's demo sample events

/// What MozDef's severity spellings in the samples become.
fn expected_severity(raw: Option<&Value>) -> &'static str {
    match raw.and_then(Value::as_str) {
        None => "INFO",
        Some("7") => "DEBUG",
        Some("INFO") => "INFO",
        Some("NOTICE") => "NOTICE",
        Some("WARNING") => "WARNING",
        Some(other) => panic!("the samples have a severity this test does not know: {other:?}"),
    }
}

#[test]
fn mozdef_sample_events_are_accepted_and_normalized() {
    let Some(directory) = shared_data("mozdef/scripts/demo/sample_events") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&directory)
        .expect("list the sample events")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "json")
        })
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "expected the ten MozDef sample files, found {files:?}"
    );
    run_test(LIMIT, async move {
        let server = ServerProcess::start(&[]);
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut stored_by_file: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut total = 0;
        for path in &files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let bytes = std::fs::read(path).expect("read a sample file");
            let raw: Vec<Value> = serde_json::from_slice(&bytes)
                .unwrap_or_else(|error| panic!("{name} is not a JSON array: {error}"));
            // The file's bytes as they are: a pretty-printed JSON array.
            let answer = server.post_events_ok(bytes).await;
            assert_eq!(answer["accepted"], raw.len(), "{name}: {answer}");
            total += raw.len() as u64;

            // The new events are exactly the ones this file produced.
            let all = server.search("").await;
            let new: Vec<Value> = all
                .into_iter()
                .filter(|event| !seen.contains(event["id"].as_str().unwrap()))
                .collect();
            assert_eq!(new.len(), raw.len(), "{name}: new events");
            seen.extend(
                new.iter()
                    .map(|event| event["id"].as_str().unwrap().to_string()),
            );

            // Every raw event has its stored counterpart with the MozDef fields carried over.
            let signature = |summary: Option<&Value>, tags: &Value, hostname: Option<&Value>| {
                format!(
                    "{:?}|{}|{:?}",
                    summary.and_then(Value::as_str),
                    tags,
                    hostname.and_then(Value::as_str)
                )
            };
            let mut unmatched: Vec<&Value> = new.iter().collect();
            for raw_event in &raw {
                let raw_tags = raw_event.get("tags").cloned().unwrap_or(json!([]));
                let wanted = signature(
                    raw_event.get("summary"),
                    &raw_tags,
                    raw_event.get("hostname"),
                );
                // Several events share a summary (auditd's "Unix Exec"): their event time tells them apart.
                let raw_time = raw_event
                    .get("utctimestamp")
                    .or(raw_event.get("timestamp"))
                    .map(micros);
                let position = unmatched
                    .iter()
                    .position(|stored| {
                        signature(
                            stored.get("summary"),
                            &stored["tags"],
                            stored.get("hostname"),
                        ) == wanted
                            && raw_time.is_none_or(|time| micros(&stored["utctimestamp"]) == time)
                    })
                    .unwrap_or_else(|| {
                        panic!(
                            "{name}: no stored event for {wanted} at {raw_time:?}; stored: {new:#?}"
                        )
                    });
                let stored = unmatched.remove(position);
                let expected_category = raw_event
                    .get("category")
                    .and_then(Value::as_str)
                    .unwrap_or("event");
                assert_eq!(stored["category"], expected_category, "{name}: {stored}");
                assert_eq!(
                    stored["severity"],
                    expected_severity(raw_event.get("severity")),
                    "{name}: {stored}"
                );
                if let Some(processid) = raw_event.get("processid") {
                    let expected: i64 = processid
                        .as_str()
                        .map(|text| text.parse().unwrap())
                        .or(processid.as_i64())
                        .unwrap();
                    assert_eq!(
                        stored["processid"],
                        json!(expected),
                        "{name}: processid must be an integer: {stored}"
                    );
                }
                assert_uuid(&stored["id"]);
                assert_normalized_time(&stored["utctimestamp"], "utctimestamp");
                assert_normalized_time(&stored["receivedtimestamp"], "receivedtimestamp");
                assert!(stored["details"].is_object(), "{name}: {stored}");
                assert_eq!(stored["origin"]["endpoint"], "/events");
                assert!(
                    keys_are_normalized(stored),
                    "{name}: keys must be lowercase without dots: {stored:#}"
                );
                if let Some(utc) = raw_event.get("utctimestamp") {
                    assert_eq!(
                        micros(&stored["utctimestamp"]),
                        micros(utc),
                        "{name}: utctimestamp"
                    );
                } else if let Some(timestamp) = raw_event.get("timestamp") {
                    assert_eq!(
                        micros(&stored["utctimestamp"]),
                        micros(timestamp),
                        "{name}: event time from timestamp"
                    );
                }
                if let Some(timestamp) = raw_event.get("timestamp") {
                    assert_eq!(
                        &stored["timestamp"], timestamp,
                        "{name}: the sender's timestamp text is kept"
                    );
                }
                if raw_event.get("receivedtimestamp").is_some() {
                    assert_ne!(
                        stored["receivedtimestamp"], raw_event["receivedtimestamp"],
                        "{name}: an incoming receivedtimestamp is never trusted"
                    );
                }
            }
            stored_by_file.insert(name, new);
        }
        assert_eq!(server.count("").await, total);
        assert_eq!(total, 44, "the ten MozDef sample files hold 44 events");

        let find = |file: &str, predicate: &dyn Fn(&Value) -> bool| -> Value {
            stored_by_file[file]
                .iter()
                .find(|event| predicate(event))
                .cloned()
                .unwrap_or_else(|| panic!("{file}: no such event"))
        };

        // events-logins-failure: user and source address where detection rules look for them.
        let failure = find("events-logins-failure.json", &|event: &Value| {
            event["summary"]
                .as_str()
                .is_some_and(|summary| summary.starts_with("LDAP_INVALID_CREDENTIALS john@"))
        });
        assert_eq!(failure["details"]["username"], "john@example.com");
        assert_eq!(failure["details"]["sourceipaddress"], "10.20.0.200");
        assert_eq!(
            failure["details"]["srcip"], "10.20.0.200",
            "an alias whose target is already set keeps its own name"
        );
        assert_eq!(failure["details"]["success"], false);
        assert_eq!(failure["utctimestamp"], "2014-08-05T20:38:39.000000+00:00");
        assert_eq!(failure["timestamp"], "2014-08-05T20:38:39+00:00");
        assert_eq!(failure["tags"], json!(["ldap", "example"]));
        assert_eq!(
            stored_by_file["events-logins-failure.json"]
                .iter()
                .filter(|event| event["details"]["success"] == false)
                .count(),
            8
        );
        assert_eq!(
            server
                .count("details.username:\"john@example.com\" AND details.success:false")
                .await,
            2
        );
        assert_eq!(
            server.count("details.username:\"john@example.com\"").await,
            4,
            "two failures and two successes"
        );
        assert_eq!(
            server
                .count("category:authentication AND details.sourceipaddress:10.20.0.200")
                .await,
            4
        );

        // events-cloudtrail: camelCase keys, no summary, accepted with everything in details.
        let cloudtrail = &stored_by_file["events-cloudtrail.json"];
        assert!(
            cloudtrail
                .iter()
                .all(|event| event.get("summary").is_none()),
            "no summary is invented: {cloudtrail:#?}"
        );
        let describe = find("events-cloudtrail.json", &|event: &Value| {
            event["details"]["eventname"] == "DescribeInstances"
        });
        assert_eq!(describe["details"]["eventsource"], "ec2.amazonaws.com");
        assert_eq!(describe["details"]["awsregion"], "us-east-1");
        assert_eq!(describe["details"]["useridentity"]["username"], "John");
        assert_eq!(
            describe["details"]["useridentity"]["accountid"],
            "646131927850"
        );
        assert_eq!(
            describe["details"]["sourceipaddress"], "59.15.171.43",
            "top-level sourceIPAddress lands in details"
        );
        assert_eq!(describe["details"]["eventtime"], "2014-04-17T06:32:05Z");
        assert_eq!(describe["utctimestamp"], "2014-04-17T06:32:05.000000+00:00");
        assert_eq!(describe["category"], "event");
        assert!(
            describe["details"].get("eventName").is_none() && describe.get("eventName").is_none()
        );
        assert_eq!(server.count("details.eventname:DescribeInstances").await, 1);
        assert_eq!(server.count("details.useridentity.username:John").await, 2);
        assert_eq!(server.count("details.useridentity.username:jeff").await, 1);

        // alertcreating-bruteforce-ssh: processid "0" becomes 0, the summary is kept, unknown keys go to details.
        let ssh = &stored_by_file["alertcreating-bruteforce-ssh.json"][0];
        assert_eq!(ssh["processid"], json!(0));
        assert_eq!(
            ssh["summary"],
            "%-SSHD_LOGIN_FAILED: Login failed for user 'ch' from host <randomipaddress>"
        );
        assert_eq!(ssh["severity"], "NOTICE");
        assert_eq!(ssh["category"], "syslog");
        assert_eq!(ssh["hostname"], "example.com");
        assert_eq!(
            ssh["details"]["processid"], "188",
            "details keep their own values"
        );
        assert_eq!(ssh["details"]["program"], "sshd");
        assert_eq!(ssh["details"]["duplicate"], 12);
        assert_eq!(ssh["details"]["file"], "systemslogs");

        // alertcreating-bro-intel: numeric severity "7" is DEBUG; details.severity untouched.
        let intel = &stored_by_file["alertcreating-bro-intel.json"][0];
        assert_eq!(intel["severity"], "DEBUG");
        assert_eq!(intel["details"]["severity"], "NOTICE");
        assert_eq!(intel["details"]["destinationport"], 443);

        // events-auditd: utctimestamp wins over timestamp; both kept.
        let auditd = find("events-auditd.json", &|event: &Value| {
            event["timestamp"] == "2014-04-17T05:31:33.631170+00:00"
        });
        assert_eq!(auditd["utctimestamp"], "2014-04-17T05:33:33.631170+00:00");
        assert_eq!(auditd["details"]["suser"], "root");

        // events-benign: a timestamp without offset next to a utctimestamp.
        let ldap = find("events-benign.json", &|event: &Value| {
            event["timestamp"] == "2014-04-17T00:05:02"
        });
        assert_eq!(ldap["utctimestamp"], "2014-04-17T07:05:02.000000+00:00");
        let sshd = find("events-benign.json", &|event: &Value| {
            event["summary"] == "Did not receive identification string from 10.0.0.1\n"
        });
        assert_eq!(sshd["details"]["eventsource"], "systemslogs");
        assert_eq!(sshd["processid"], json!(0));

        // events-network: strings stay strings in details.
        let flow = find("events-network.json", &|event: &Value| {
            event["details"]["service"] == "junos-https"
        });
        assert_eq!(flow["details"]["destinationport"], "443");
        assert_eq!(flow["details"]["sourceipaddress"], "10.2.2.59");
        assert_eq!(server.count("details.sourceipaddress:10.2.2.59").await, 1);
    });
}

// ------------------------------------------------------------------------------------------------
// 3. The real PyPI mozdef-client

/// A Python with `mozdef-client` installed, in a venv cached under the cargo target directory; `None` (with
/// a note) when Python, venv or pip cannot provide it, which fails the test when `CI` is set.
fn mozdef_client_python() -> Option<std::path::PathBuf> {
    let unavailable = |why: String| -> Option<std::path::PathBuf> {
        harness::required_tool(None, &format!("the PyPI mozdef-client ({why})"))
    };
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    let venv = root.join("mozdef-client-venv");
    let python = venv.join("bin/python");
    let works = |python: &std::path::Path| {
        let mut command = std::process::Command::new(python);
        command.args(["-c", "import mozdef_client"]);
        python.exists()
            && run_bounded(command, Duration::from_secs(60))
                .status
                .success()
    };
    if works(&python) {
        return Some(python);
    }
    let interpreter = std::env::var("ISMS_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let building = root.join(format!("mozdef-client-venv.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&building);
    if let Err(error) = std::process::Command::new(&interpreter)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
    {
        return unavailable(format!("cannot run {interpreter}: {error}"));
    }
    let mut create = std::process::Command::new(&interpreter);
    create.arg("-m").arg("venv").arg(&building);
    let created = run_bounded(create, Duration::from_secs(120));
    if !created.status.success() {
        return unavailable(format!("{interpreter} -m venv failed: {}", created.stderr));
    }
    let mut install = std::process::Command::new(building.join("bin/python"));
    install.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "mozdef-client",
    ]);
    let installed = run_bounded(install, Duration::from_secs(300));
    if !installed.status.success() {
        let _ = std::fs::remove_dir_all(&building);
        return unavailable(format!(
            "pip install mozdef-client failed: {}",
            installed.stderr
        ));
    }
    // Publish atomically; if another test process won the race, use its venv.
    if std::fs::rename(&building, &venv).is_err() {
        let _ = std::fs::remove_dir_all(&building);
    }
    if works(&python) {
        Some(python)
    } else {
        unavailable(format!("{} cannot import mozdef_client", python.display()))
    }
}

const MOZDEF_CLIENT_SCRIPT: &str = r#"
import json, os, sys
from mozdef_client import MozDefEvent

url, marker = sys.argv[1], sys.argv[2]
ev = MozDefEvent(url)
statuses = []
# mozdef-client's own response hook has the wrong signature (it raises inside the request future), so
# record the status with a hook that runs first.
ev._httpsession.hooks['response'].insert(0, lambda response, *args, **kwargs: statuses.append(response.status_code))
ev.summary = 'mozdef-client says hello ' + marker
ev.tags = ['pypi', 'mozdef-client']
ev.details = {'sourceipaddress': '192.0.2.7', 'username': 'alice', 'Nested': {'Count': 3}, 'marker': marker}
ev.set_category('authentication')
ev.set_severity(MozDefEvent.SEVERITY_ERROR)
ev.send()
ev._httpsession.close()  # waits for the request in flight
print(json.dumps({'statuses': statuses, 'pid': os.getpid(), 'hostname': ev.hostname, 'processname': sys.argv[0]}))
"#;

#[test]
fn pypi_mozdef_client_events_are_searchable() {
    let Some(python) = mozdef_client_python() else {
        return;
    };
    run_test(LIMIT, async move {
        let server = ServerProcess::start(&[]);
        let script = server.data_dir().join("send_event.py");
        std::fs::write(&script, MOZDEF_CLIENT_SCRIPT).expect("write the client script");
        let marker = format!("m{}", server.address.port());
        let url = format!("{}/events?key={}", server.base, server.key);
        let mut command = std::process::Command::new(&python);
        command.arg(&script).arg(&url).arg(&marker);
        let output =
            tokio::task::spawn_blocking(move || run_bounded(command, Duration::from_secs(15)))
                .await
                .expect("join");
        output.assert_success("the mozdef-client script");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "the script printed no report ({error}): {}\n{}",
                output.stdout_text(),
                output.stderr
            )
        });
        assert_eq!(
            report["statuses"],
            json!([200]),
            "the client saw these statuses: {report}\n{}",
            output.stderr
        );

        let event = server.search_one(&format!("details.marker:{marker}")).await;
        assert_eq!(
            event["summary"],
            format!("mozdef-client says hello {marker}")
        );
        assert_eq!(event["tags"], json!(["pypi", "mozdef-client"]));
        assert_eq!(event["category"], "authentication");
        assert_eq!(event["severity"], "ERROR");
        assert_eq!(event["details"]["sourceipaddress"], "192.0.2.7");
        assert_eq!(event["details"]["username"], "alice");
        assert_eq!(
            event["details"]["nested"],
            json!({"count": 3}),
            "keys are lowercased at every depth"
        );
        assert_eq!(
            event["processid"], report["pid"],
            "processid is the client's process id, as an integer"
        );
        assert_eq!(event["processname"], report["processname"]);
        assert_eq!(event["hostname"], report["hostname"]);
        assert!(
            event.get("source").is_none(),
            "the client sends source: null: {event}"
        );
        let timestamp = event["timestamp"].as_str().expect("timestamp");
        assert!(
            timestamp.ends_with("+00:00"),
            "the client's own timestamp is kept: {timestamp}"
        );
        assert_eq!(micros(&event["utctimestamp"]), micros(&event["timestamp"]));
        assert_normalized_time(&event["utctimestamp"], "utctimestamp");
        assert_eq!(event["origin"]["key"], "admin");
        assert_eq!(event["origin"]["endpoint"], "/events");
        assert_eq!(
            server
                .count("details.username:alice AND severity:ERROR AND tags:pypi")
                .await,
            1
        );
    });
}

// ------------------------------------------------------------------------------------------------
// 4. Bad input

#[test]
fn invalid_json_line_is_rejected_and_good_lines_are_stored() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let body = "{\"summary\":\"good one\",\"details\":{\"n\":1}}\n{\"summary\": not json}\n{\"summary\":\"good two\",\"details\":{\"n\":2}}\n";
        let reply = server.post_events(body).await;
        let message = reply.error_message(400);
        assert!(message.contains("1 of 3 items rejected"), "{message}");
        assert!(
            message.contains("invalid JSON") && message.contains("line 2"),
            "the error says what and where: {message}"
        );
        let answer = reply.json();
        assert_eq!(answer["accepted"], 2, "{answer}");
        assert_eq!(answer["rejected_count"], 1, "{answer}");
        assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
        assert!(
            answer["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains("line 2 column"),
            "{answer}"
        );
        assert_eq!(server.count("").await, 2);
        assert_eq!(server.count("details.n:[1 TO 2]").await, 2);
        server.assert_still_up().await;
    });
}

#[test]
fn invalid_utf8_line_is_rejected_and_good_lines_are_stored() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let mut body = b"{\"summary\":\"before\"}\n".to_vec();
        body.extend_from_slice(b"{\"summary\":\"broken \xff\xfe bytes\"}\n");
        body.extend_from_slice(b"{\"summary\":\"after\"}\n");
        let reply = server.post_events(body).await;
        let message = reply.error_message(400);
        assert!(message.contains("line 2"), "{message}");
        assert!(
            message.to_lowercase().contains("unicode") || message.contains("UTF-8"),
            "the error names the encoding problem: {message}"
        );
        let answer = reply.json();
        assert_eq!(answer["accepted"], 2, "{answer}");
        assert_eq!(answer["rejected"][0]["index"], 1, "{answer}");
        assert_eq!(server.count("").await, 2);
        assert_eq!(server.count("before OR after").await, 2);
        server.assert_still_up().await;
    });
}

#[test]
fn json_scalar_is_rejected() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let reply = server.post_events("42").await;
        let message = reply.error_message(400);
        assert!(
            message.contains("expected a JSON object, found a number"),
            "{message}"
        );
        assert_eq!(reply.json()["accepted"], 0);

        let reply = server
            .post_events("{\"summary\":\"object\"}\n\"just a string\"\n")
            .await;
        let message = reply.error_message(400);
        assert!(message.contains("found a string"), "{message}");
        assert_eq!(reply.json()["accepted"], 1);
        assert_eq!(server.count("").await, 1);
        server.assert_still_up().await;
    });
}

#[test]
fn wrong_types_are_rejected_naming_the_field() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let body = concat!(
            "{\"summary\":\"bad time\",\"timestamp\":\"yesterday\"}\n",
            "{\"summary\":\"fine\",\"processid\":\"42\"}\n",
            "{\"summary\":\"bad pid\",\"processid\":\"abc\"}\n",
            "{\"summary\":\"bad pid alias\",\"pid\":[1]}\n",
        );
        let reply = server.post_events(body).await;
        let message = reply.error_message(400);
        assert!(message.contains("3 of 4 items rejected"), "{message}");
        let answer = reply.json();
        assert_eq!(answer["accepted"], 1);
        let rejected: HashMap<u64, String> = answer["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                (
                    item["index"].as_u64().unwrap(),
                    item["error"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert!(
            rejected[&0].contains("`timestamp`") && rejected[&0].contains("yesterday"),
            "{rejected:?}"
        );
        assert_eq!(
            rejected[&2],
            "field `processid`: expected an integer, found the string \"abc\""
        );
        assert!(
            rejected[&3].contains("`pid`"),
            "the error names the field as the sender spelled it: {rejected:?}"
        );
        assert!(!rejected.contains_key(&1));
        let stored = server.search_one("").await;
        assert_eq!(stored["summary"], "fine");
        assert_eq!(stored["processid"], 42);
        server.assert_still_up().await;
    });
}

#[test]
fn body_over_max_body_bytes_is_413() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[("ISMS_HTTP_MAX_BODY_BYTES", "1000")]);
        let mut body = String::from("{\"summary\":\"small enough\"}\n");
        while body.len() <= 1000 {
            body.push_str("{\"summary\":\"padding the body past the limit\"}\n");
        }
        let reply = server.post_events(body.clone()).await;
        let message = reply.error_message(413);
        assert!(
            message.contains("max_body_bytes") && message.contains("1000"),
            "{message}"
        );

        // Without Content-Length (chunked): refused while reading.
        let mut request = format!(
            "POST /events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            server.address, server.key
        )
        .into_bytes();
        for piece in body.as_bytes().chunks(300) {
            request.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            request.extend_from_slice(piece);
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"0\r\n\r\n");
        let response = raw_exchange(server.address, &request)
            .unwrap_or_else(|error| server.fail(format!("chunked request: {error}")));
        assert_eq!(
            response.status,
            413,
            "{:?}",
            String::from_utf8_lossy(&response.body)
        );
        assert!(
            response.json()["error"]
                .as_str()
                .unwrap()
                .contains("max_body_bytes")
        );

        assert_eq!(
            server.count("").await,
            0,
            "nothing of a refused body is stored"
        );
        server.assert_still_up().await;
    });
}

#[test]
fn nesting_deeper_than_max_depth_is_rejected() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[("ISMS_HTTP_MAX_DEPTH", "4")]);
        let body = concat!(
            "{\"summary\":\"shallow\",\"details\":{\"a\":{\"b\":1}}}\n",
            "{\"summary\":\"deep\",\"details\":{\"a\":{\"b\":{\"c\":{}}}}}\n",
        );
        let reply = server.post_events(body).await;
        let message = reply.error_message(400);
        assert!(message.contains("max_depth (4)"), "{message}");
        let answer = reply.json();
        assert_eq!(
            answer["rejected"][0]["error"],
            "nesting depth 5 exceeds max_depth (4)"
        );
        assert_eq!(answer["accepted"], 1);
        assert_eq!(server.search_one("").await["summary"], "shallow");
        server.assert_still_up().await;
    });
}

#[test]
fn event_with_ten_thousand_keys_is_rejected_by_max_fields() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let wide: serde_json::Map<String, Value> =
            (0..10_000).map(|i| (format!("k{i}"), json!(i))).collect();
        let mut body = serde_json::to_string(&json!({"summary": "wide", "details": wide})).unwrap();
        body.push_str("\n{\"summary\":\"narrow\"}\n");
        let reply = server.post_events(body).await;
        let message = reply.error_message(400);
        assert!(message.contains("max_fields (1000)"), "{message}");
        let answer = reply.json();
        assert_eq!(answer["rejected"][0]["index"], 0);
        assert!(
            answer["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .starts_with("10002 fields exceed"),
            "{answer}"
        );
        assert_eq!(answer["accepted"], 1);
        assert_eq!(server.search_one("").await["summary"], "narrow");
        server.assert_still_up().await;
    });
}

#[test]
fn empty_body_is_400() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        for body in ["", " \n\t\r\n"] {
            let reply = server.post_events(body).await;
            let message = reply.error_message(400);
            assert!(message.contains("empty"), "{message}");
        }
        assert_eq!(server.count("").await, 0);
        server.assert_still_up().await;
    });
}

#[test]
fn unsupported_content_encoding_is_415() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let reply = server
            .post_with(
                "/events",
                Some(&server.key),
                &[("content-encoding", "br")],
                "{\"summary\":\"compressed?\"}",
            )
            .await;
        let message = reply.error_message(415);
        assert!(
            message.contains("\"br\"") && message.contains("gzip"),
            "the error names the encoding and what works: {message}"
        );
        assert_eq!(server.count("").await, 0);
        server.assert_still_up().await;
    });
}

#[test]
fn gzip_bomb_is_refused_fast() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[
            ("ISMS_HTTP_MAX_DECOMPRESSED_BYTES", "1000000"),
            ("ISMS_HTTP_MAX_BODY_BYTES", "1000000"),
        ]);
        let bomb = tokio::task::spawn_blocking(|| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            let zeros = vec![0u8; 1 << 20];
            for _ in 0..100 {
                encoder.write_all(&zeros).unwrap();
            }
            encoder.finish().unwrap()
        })
        .await
        .unwrap();
        assert!(
            bomb.len() < 1_000_000,
            "the bomb itself ({} bytes) must fit under max_body_bytes",
            bomb.len()
        );
        let started = Instant::now();
        let reply = server
            .post_with(
                "/events",
                Some(&server.key),
                &[("content-encoding", "gzip")],
                bomb,
            )
            .await;
        let elapsed = started.elapsed();
        let message = reply.error_message(413);
        assert!(
            message.contains("max_decompressed_bytes") && message.contains("1000000"),
            "{message}"
        );
        assert!(
            elapsed < Duration::from_secs(3),
            "refusing the bomb took {elapsed:?}"
        );
        assert_eq!(server.count("").await, 0);
        server.assert_still_up().await;
    });
}

#[test]
fn missing_key_is_401() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let reply = server
            .post_with("/events", None, &[], "{\"summary\":\"no key\"}")
            .await;
        let message = reply.error_message(401);
        assert!(
            message.contains("needs a key") && message.contains("Bearer"),
            "the error tells how to send a key: {message}"
        );
        assert!(
            reply.headers.get("www-authenticate").is_some(),
            "{:?}",
            reply.headers
        );
        let search = server.get_without_key("/api/events").await;
        search.error_message(401);
        assert_eq!(server.count("").await, 0);
        server.assert_still_up().await;
    });
}

#[test]
fn wrong_key_is_401() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let wrong = format!("{TEST_KEY}x");
        for (path, key) in [
            ("/events".to_string(), Some(wrong.as_str())),
            (format!("/events?key={wrong}"), None),
        ] {
            let reply = server
                .post_with(&path, key, &[], "{\"summary\":\"wrong key\"}")
                .await;
            let message = reply.error_message(401);
            assert!(message.contains("wrong or revoked"), "{message}");
        }
        // A bearer header wins over the query parameter: a wrong header with a right ?key= is refused.
        let reply = server
            .post_with(
                &format!("/events?key={}", server.key),
                Some(&wrong),
                &[],
                "{\"summary\":\"mixed\"}",
            )
            .await;
        reply.error_message(401);
        // Nothing of what they sent is stored; each refusal is in the activity log.
        assert_eq!(server.count("NOT category:audit").await, 0);
        assert_eq!(
            server
                .count("category:audit AND details.action:authenticate AND details.outcome:refused")
                .await,
            3
        );
        server.assert_still_up().await;
    });
}

#[test]
fn query_syntax_error_is_400_with_position() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        server.post_events_ok("{\"summary\":\"something\"}").await;
        let reply = server
            .get("/api/events", &[("q", "(category:authentication OR")])
            .await;
        let message = reply.error_message(400);
        assert!(
            message.starts_with("query q: at position 27: expected a term"),
            "{message}"
        );
        let reply = server
            .get("/api/events/count", &[("q", "details.x:[1 TO 5")])
            .await;
        let message = reply.error_message(400);
        assert!(
            message.contains("at position 17") && message.contains("closing the range"),
            "{message}"
        );
        let reply = server
            .get(
                "/api/events/histogram",
                &[("q", "a AND"), ("interval", "1h")],
            )
            .await;
        assert!(reply.error_message(400).contains("at position 5"));
        server.assert_still_up().await;
    });
}

#[test]
fn unterminated_regex_names_the_closing_slash() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let reply = server.get("/api/events", &[("q", "details.x:/abc")]).await;
        let message = reply.error_message(400);
        assert!(message.contains("closing /"), "{message}");
        assert!(message.contains("position"), "{message}");
        // The terminated regex works.
        server
            .post_events_ok("{\"summary\":\"r\",\"details\":{\"x\":\"abc\"}}")
            .await;
        assert_eq!(server.count("details.x:/abc/").await, 1);
        assert_eq!(
            server.count("details.x:/ab/").await,
            0,
            "regexes are anchored"
        );
        server.assert_still_up().await;
    });
}

#[test]
fn gzip_and_deflate_bodies_with_good_events_are_accepted() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let lines: String = (0..50)
            .map(|i| format!("{{\"summary\":\"gzipped {i}\",\"details\":{{\"i\":{i}}}}}\n"))
            .collect();
        let reply = server
            .post_with(
                "/events",
                Some(&server.key),
                &[("content-encoding", "gzip")],
                gzip(lines.as_bytes()),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["accepted"], 50);

        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(b"{\"summary\":\"deflated\",\"details\":{\"i\":1000}}")
            .unwrap();
        let reply = server
            .post_with(
                "/events",
                Some(&server.key),
                &[("content-encoding", "deflate")],
                zlib.finish().unwrap(),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);

        let reply = server
            .post_with(
                "/events",
                Some(&server.key),
                &[("content-encoding", "gzip")],
                b"not gzip at all".to_vec(),
            )
            .await;
        let message = reply.error_message(400);
        assert!(message.contains("cannot be decompressed"), "{message}");

        assert_eq!(server.count("").await, 51);
        assert_eq!(server.count("details.i:[0 TO 49]").await, 50);
        assert_eq!(
            server.search_one("details.i:1000").await["summary"],
            "deflated"
        );
    });
}

#[test]
fn errors_the_framework_answers_are_json_too() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        // A method the path does not take.
        let reply = server.get("/events", &[]).await;
        let message = reply.error_message(405);
        assert!(message.contains("GET"), "{message}");
        let allow = reply
            .headers
            .get("allow")
            .map(|value| value.to_str().unwrap().to_string())
            .unwrap_or_default();
        assert!(
            allow.contains("POST"),
            "the Allow header is kept: {:?}",
            reply.headers
        );
        let reply = server.post_with("/status", None, &[], "{}").await;
        reply.error_message(405);
        // A path parameter that is not UTF-8.
        let reply = server.get("/api/events/%FF", &[]).await;
        let message = reply.error_message(400);
        assert!(message.contains("UTF-8"), "{message}");
        // A query string that cannot be decoded.
        let reply = server.get("/api/events?q=a&q=b", &[]).await;
        let message = reply.error_message(400);
        assert!(message.contains("duplicate field `q`"), "{message}");
        // No such endpoint.
        let reply = server.get_without_key("/nothing/here").await;
        assert!(reply.error_message(404).contains("/nothing/here"));
        server.assert_still_up().await;
    });
}

// ------------------------------------------------------------------------------------------------
// 5. Elasticsearch bulk

#[test]
fn bulk_actions_are_skipped_and_sources_stored() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let body = concat!(
            "{\"index\":{\"_index\":\"events\",\"_type\":\"_doc\"}}\n",
            "{\"summary\":\"bulk one\",\"details\":{\"n\":1}}\n",
            "{\"create\":{\"_index\":\"events\"}}\n",
            "{\"summary\":\"bulk two\",\"details\":{\"n\":2}}\n",
            "{\"delete\":{\"_index\":\"events\",\"_id\":\"abc\"}}\n",
            "{\"index\":{}}\n",
            "{\"summary\":\"bulk three\",\"details\":{\"n\":3}}\n",
        );
        let reply = server
            .post_with(
                "/_bulk",
                Some(&server.key),
                &[("content-type", "application/x-ndjson")],
                body,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let answer = reply.json();
        assert_eq!(answer["accepted"], 3, "{answer}");
        assert_eq!(server.count("").await, 3, "action lines are not events");
        assert_eq!(
            server
                .count(
                    "_exists_:details.index OR _exists_:details.create OR _exists_:details.delete"
                )
                .await,
            0
        );
        assert_eq!(
            server
                .count("_exists_:details._index OR _exists_:details._id")
                .await,
            0
        );
        let events = server.search("").await;
        let summaries: BTreeSet<&str> = events
            .iter()
            .map(|event| event["summary"].as_str().unwrap())
            .collect();
        assert_eq!(
            summaries,
            BTreeSet::from(["bulk one", "bulk two", "bulk three"])
        );
        assert!(
            events
                .iter()
                .all(|event| event["origin"]["endpoint"] == "/_bulk"),
            "{events:#?}"
        );

        // An index action without its source is reported, not silently dropped.
        let reply = server
            .post_with(
                "/_bulk",
                Some(&server.key),
                &[],
                "{\"summary\":\"bare\"}\n{\"index\":{}}\n",
            )
            .await;
        let message = reply.error_message(400);
        assert!(message.contains("not followed by a source"), "{message}");
        assert_eq!(reply.json()["accepted"], 1);
        assert_eq!(server.count("").await, 4);
    });
}

// ------------------------------------------------------------------------------------------------
// 6. Keys

#[test]
fn keys_are_created_used_revoked_and_listed() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let created = server.run_key_command(&["create", "--name", "x"]);
        created.assert_success("isms key create");
        let key = created.stdout_text().trim().to_string();
        assert!(
            key.starts_with("isms_") && key.len() == 48 && !key.contains(char::is_whitespace),
            "stdout is the key alone: {key:?}"
        );
        assert!(created.stderr.contains("\"x\""), "{}", created.stderr);

        let reply = server
            .post_with("/events", Some(&key), &[], "{\"summary\":\"sent with x\"}")
            .await;
        assert_eq!(
            reply.status, 200,
            "a key made by the CLI works on the running server: {}",
            reply.text
        );
        assert_eq!(
            server.search_one("\"sent with x\"").await["origin"]["key"],
            "x"
        );

        let duplicate = server.run_key_command(&["create", "--name", "x"]);
        assert!(
            !duplicate.status.success(),
            "a second live key named x must be refused: {}",
            duplicate.stdout_text()
        );

        let revoked = server.run_key_command(&["revoke", "x"]);
        revoked.assert_success("isms key revoke");
        let revoked_at = Instant::now();
        loop {
            let reply = server
                .post_with("/events", Some(&key), &[], "{\"summary\":\"after revoke\"}")
                .await;
            if reply.status == 401 {
                break;
            }
            assert_eq!(reply.status, 200, "{}", reply.text);
            if revoked_at.elapsed() > Duration::from_secs(7) {
                server.fail("the revoked key still works after 7 s");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        assert!(
            revoked_at.elapsed() <= Duration::from_millis(6500),
            "revocation took {:?}",
            revoked_at.elapsed()
        );
        let reply = server.get("/api/events/count", &[]).await;
        assert_eq!(reply.status, 200, "the admin key is unaffected");

        let listed = server.run_key_command(&["list"]);
        listed.assert_success("isms key list");
        let text = listed.stdout_text();
        let x_line = text
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some("x"))
            .unwrap_or_else(|| panic!("x not listed:\n{text}"));
        assert!(x_line.contains("revoked 20"), "{x_line}");
        let admin_line = text
            .lines()
            .find(|line| line.split_whitespace().nth(1) == Some("admin"))
            .unwrap_or_else(|| panic!("admin not listed:\n{text}"));
        assert!(admin_line.trim_end().ends_with("live"), "{admin_line}");
        assert!(
            !text.contains(&key) && !text.contains(TEST_KEY),
            "key list must never show secrets"
        );

        let listed = server.run_key_command(&["list", "--json"]);
        listed.assert_success("isms key list --json");
        let records: Vec<Value> = listed
            .stdout_text()
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect();
        assert_eq!(records.len(), 2, "{records:?}");
        let x = records
            .iter()
            .find(|record| record["name"] == "x")
            .expect("x in the JSON list");
        assert!(x["revoked_micros"].is_i64(), "{x}");
        assert!(x.get("hash").is_none(), "the hash is never printed: {x}");

        let again = server.run_key_command(&["revoke", "x"]);
        assert!(
            !again.status.success(),
            "revoking a revoked key is an error"
        );
        assert!(again.stderr.contains("no live key"), "{}", again.stderr);
    });
}

#[test]
fn bootstrap_key_from_environment_or_generated() {
    run_test(LIMIT, async {
        // ISMS_BOOTSTRAP_KEY sets the first key.
        let chosen = "chosen-by-the-operator-0123456789abcdef";
        let server = ServerProcess::start(&[("ISMS_BOOTSTRAP_KEY", chosen)]);
        assert!(
            server
                .banner
                .iter()
                .any(|line| line.contains("the value of ISMS_BOOTSTRAP_KEY")
                    && line.contains("\"admin\"")),
            "{:#?}",
            server.banner
        );
        assert!(
            !server.banner.iter().any(|line| line.contains(chosen)),
            "the banner must not print a key the operator chose"
        );
        assert_eq!(server.key, chosen);
        let reply = server
            .post_with("/events", Some(chosen), &[], "{\"summary\":\"bootstrap\"}")
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        drop(server);

        // Without it, a key is generated and shown once, and it survives a restart.
        let mut server = ServerProcess::start(&[("ISMS_BOOTSTRAP_KEY", "")]);
        assert!(
            server.key.starts_with("isms_") && server.key.len() == 48,
            "generated key {:?}",
            server.key
        );
        let reply = server
            .post_with(
                "/events",
                Some(&server.key.clone()),
                &[],
                "{\"summary\":\"generated\"}",
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let key = server.key.clone();
        server.restart();
        assert!(
            server
                .banner
                .iter()
                .any(|line| line.starts_with("  keys       1 live key(s)")),
            "{:#?}",
            server.banner
        );
        assert!(
            !server.banner.iter().any(|line| line.contains(&key)),
            "the key is shown only once"
        );
        let reply = server
            .post_with(
                "/events",
                Some(&key),
                &[],
                "{\"summary\":\"after restart\"}",
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(server.count("").await, 2);

        // A chosen key that is too short is refused at start-up.
        let mut command = harness::isms_command();
        let data = tempfile::tempdir().unwrap();
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("ISMS_BOOTSTRAP_KEY", "short");
        let output = run_bounded(command, Duration::from_secs(15));
        assert!(
            !output.status.success(),
            "a short bootstrap key must stop the server"
        );
        assert!(
            output.stderr.contains("at least 24 characters"),
            "{}",
            output.stderr
        );
    });
}

// ------------------------------------------------------------------------------------------------
// 7. The CLI client

#[test]
fn cli_send_reports_rejected_items_and_stores_the_rest() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let file = server.data_dir().join("events.jsonl");
        std::fs::write(
            &file,
            concat!(
                "{\"summary\":\"cli one\",\"details\":{\"cli\":\"yes\"}}\n",
                "{\"summary\": this line is broken}\n",
                "{\"summary\":\"cli two\",\"details\":{\"cli\":\"yes\"}}\n",
                "{\"summary\":\"cli bad pid\",\"processid\":\"abc\"}\n",
                "{\"summary\":\"cli three\",\"details\":{\"cli\":\"yes\"}}\n",
            ),
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let output = tokio::task::block_in_place(|| {
            server.run_client_command(&["send", path, "--batch", "2"])
        });
        let stdout = output.stdout_text();
        assert!(
            !output.status.success(),
            "rejections must make `isms send` fail:\n{stdout}\n{}",
            output.stderr
        );
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stdout.contains("sent 5 items: 3 accepted, 2 rejected"),
            "summary line:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("rejected {path}:2: ")),
            "the broken line is named with its line number:\n{stdout}"
        );
        assert!(
            stdout.contains("expected an integer, found the string \"abc\""),
            "the server's reason is shown:\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("rejected {path} item 3: ")),
            "the rejected item is named by its position:\n{stdout}"
        );
        assert_eq!(
            stdout.matches("  rejected ").count(),
            2,
            "each rejection is listed once:\n{stdout}"
        );
        assert!(
            output.stderr.contains("2 of 5 items were rejected"),
            "{}",
            output.stderr
        );
        assert_eq!(server.count("details.cli:yes").await, 3);
        assert_eq!(server.count("").await, 3);

        // A clean file, gzipped on the way: success.
        let good = server.data_dir().join("good.json");
        std::fs::write(&good, "[{\"summary\":\"gz one\",\"details\":{\"gz\":1}},{\"summary\":\"gz two\",\"details\":{\"gz\":1}}]").unwrap();
        let output = tokio::task::block_in_place(|| {
            server.run_client_command(&["send", good.to_str().unwrap(), "--gzip"])
        });
        output.assert_success("isms send --gzip");
        assert!(
            output
                .stdout_text()
                .contains("sent 2 items: 2 accepted, 0 rejected"),
            "{}",
            output.stdout_text()
        );
        assert_eq!(server.count("details.gz:1").await, 2);
    });
}

#[test]
fn cli_search_prints_json_lines_and_a_terminal_safe_table() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let body = concat!(
            "{\"summary\":\"red \\u001b[31malert\\u001b[0m here\",\"hostname\":\"h\\u0007ost\",\"details\":{\"cli\":\"search\"}}\n",
            "{\"summary\":\"plain one\",\"details\":{\"cli\":\"search\"}}\n",
            "{\"summary\":\"other\",\"details\":{\"cli\":\"no\"}}\n",
        );
        server.post_events_ok(body).await;

        let output = tokio::task::block_in_place(|| {
            server.run_client_command(&["search", "details.cli:search", "--json"])
        });
        output.assert_success("isms search --json");
        let events: Vec<Value> = output
            .stdout_text()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("not a JSON line ({error}): {line:?}"))
            })
            .collect();
        assert_eq!(events.len(), 2, "{events:#?}");
        assert!(
            events
                .iter()
                .all(|event| event["details"]["cli"] == "search")
        );
        assert!(
            events
                .iter()
                .any(|event| event["summary"] == "red \u{1b}[31malert\u{1b}[0m here"),
            "JSON output is exact"
        );

        let output = tokio::task::block_in_place(|| {
            server.run_client_command(&["search", "details.cli:search"])
        });
        output.assert_success("isms search");
        assert!(
            !output.stdout.contains(&0x1b),
            "raw ESC from event content reached the terminal: {:?}",
            output.stdout_text()
        );
        assert!(
            !output.stdout.contains(&0x07),
            "raw BEL from event content reached the terminal"
        );
        let text = output.stdout_text();
        assert!(
            text.contains("red \\u{1b}[31malert\\u{1b}[0m here"),
            "control characters are shown escaped:\n{text}"
        );
        assert!(
            text.lines().next().unwrap().starts_with("TIME (UTC)"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "a header and two rows:\n{text}");

        let output = tokio::task::block_in_place(|| {
            server.run_client_command(&["search", "details.cli:search", "--count"])
        });
        output.assert_success("isms search --count");
        assert_eq!(output.stdout_text().trim(), "2");

        let output = tokio::task::block_in_place(|| {
            server.run_client_command(&["search", "details.x:/abc"])
        });
        assert!(!output.status.success());
        assert!(
            output.stderr.contains("400") && output.stderr.contains("closing /"),
            "{}",
            output.stderr
        );
    });
}

// ------------------------------------------------------------------------------------------------
// 8. Search API

#[test]
fn pagination_with_cursors_covers_every_event_once() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        // 250 events over 50 distinct times: five share each time, so the cursor must break ties.
        let body: String = (0..250)
            .map(|i| format!("{{\"summary\":\"page {i}\",\"utctimestamp\":\"2026-03-01T00:{:02}:00Z\",\"details\":{{\"i\":{i}}}}}\n", i % 50))
            .collect();
        server.post_events_ok(body).await;
        for sort in ["desc", "asc"] {
            let mut cursor = String::new();
            let mut ids = Vec::new();
            let mut times = Vec::new();
            let mut pages = 0;
            loop {
                let mut query = vec![("limit", "40"), ("sort", sort)];
                if !cursor.is_empty() {
                    query.push(("cursor", cursor.as_str()));
                }
                let page = server.get_json("/api/events", &query).await;
                pages += 1;
                let events = page["events"].as_array().unwrap();
                assert!(
                    !events.is_empty() && events.len() <= 40,
                    "page {pages}: {} events",
                    events.len()
                );
                ids.extend(
                    events
                        .iter()
                        .map(|event| event["id"].as_str().unwrap().to_string()),
                );
                times.extend(events.iter().map(|event| micros(&event["utctimestamp"])));
                match page["next_cursor"].as_str() {
                    Some(next) => cursor = next.to_string(),
                    None => break,
                }
                assert!(pages < 20, "the cursor does not advance");
            }
            assert_eq!(pages, 7, "{sort}: 250 events in pages of 40");
            assert_eq!(ids.len(), 250, "{sort}");
            assert_eq!(
                ids.iter().collect::<BTreeSet<_>>().len(),
                250,
                "{sort}: an event appeared twice"
            );
            let sorted = times.windows(2).all(|pair| {
                if sort == "desc" {
                    pair[0] >= pair[1]
                } else {
                    pair[0] <= pair[1]
                }
            });
            assert!(sorted, "{sort}: events out of order");
        }
        let reply = server.get("/api/events", &[("cursor", "garbage")]).await;
        assert!(reply.error_message(400).contains("cursor"));
        let reply = server.get("/api/events", &[("limit", "0")]).await;
        assert!(reply.error_message(400).contains("limit"));
    });
}

#[test]
fn histogram_top_values_and_event_by_id() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let body = concat!(
            "{\"summary\":\"h1\",\"hostname\":\"alpha\",\"utctimestamp\":\"2026-01-01T10:05:00Z\"}\n",
            "{\"summary\":\"h2\",\"hostname\":\"alpha\",\"utctimestamp\":\"2026-01-01T10:55:00Z\"}\n",
            "{\"summary\":\"h3\",\"hostname\":\"alpha\",\"utctimestamp\":\"2026-01-01T12:30:00Z\"}\n",
            "{\"summary\":\"h4\",\"hostname\":\"beta\",\"utctimestamp\":\"2026-01-01T12:31:00Z\"}\n",
            "{\"summary\":\"h5\",\"hostname\":\"beta\",\"utctimestamp\":\"2026-01-01T12:32:00Z\"}\n",
            "{\"summary\":\"h6\",\"hostname\":\"gamma\",\"utctimestamp\":\"2026-01-01T13:00:00Z\"}\n",
        );
        server.post_events_ok(body).await;

        let histogram = server
            .get_json("/api/events/histogram", &[("interval", "1h")])
            .await;
        assert_eq!(histogram["interval_micros"], 3_600_000_000i64);
        let buckets: Vec<(String, u64)> = histogram["buckets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|bucket| {
                (
                    bucket["start"].as_str().unwrap().to_string(),
                    bucket["count"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            buckets,
            vec![
                ("2026-01-01T10:00:00.000000+00:00".to_string(), 2),
                ("2026-01-01T12:00:00.000000+00:00".to_string(), 3),
                ("2026-01-01T13:00:00.000000+00:00".to_string(), 1),
            ],
            "empty buckets are left out: {histogram}"
        );
        let filtered = server
            .get_json(
                "/api/events/histogram",
                &[("interval", "1d"), ("q", "hostname:beta")],
            )
            .await;
        assert_eq!(filtered["buckets"].as_array().unwrap().len(), 1);
        assert_eq!(filtered["buckets"][0]["count"], 2);
        server
            .get("/api/events/histogram", &[("interval", "fortnight")])
            .await
            .error_message(400);

        let top = server
            .get_json("/api/events/top", &[("field", "hostname"), ("n", "2")])
            .await;
        assert_eq!(top["field"], "hostname");
        assert_eq!(
            top["values"],
            json!([{"value": "alpha", "count": 3}, {"value": "beta", "count": 2}])
        );
        let reply = server.get("/api/events/top", &[]).await;
        assert!(reply.error_message(400).contains("field"));

        let event = server.search_one("h4").await;
        let id = event["id"].as_str().unwrap();
        let by_id = server.get_json(&format!("/api/events/{id}"), &[]).await;
        assert_eq!(by_id, event);
        let missing = server
            .get("/api/events/01900000-0000-7000-8000-000000000000", &[])
            .await;
        assert!(missing.error_message(404).contains("no event with id"));
        let unknown = server.get("/api/nothing-here", &[]).await;
        unknown.error_message(404);
    });
}

#[test]
fn from_and_to_accept_relative_times() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let now = jiff::Timestamp::now();
        let two_hours_ago = now - jiff::SignedDuration::from_hours(2);
        let half_hour_ago = now - jiff::SignedDuration::from_mins(30);
        let body = format!(
            "{{\"summary\":\"two hours ago\",\"utctimestamp\":\"{two_hours_ago}\"}}\n{{\"summary\":\"half an hour ago\",\"utctimestamp\":\"{half_hour_ago}\"}}\n{{\"summary\":\"just now\"}}\n"
        );
        server.post_events_ok(body).await;
        let count = |from: &'static str, to: &'static str| {
            let server = &server;
            async move {
                let mut query = vec![];
                if !from.is_empty() {
                    query.push(("from", from));
                }
                if !to.is_empty() {
                    query.push(("to", to));
                }
                server.get_json("/api/events/count", &query).await["count"]
                    .as_u64()
                    .unwrap()
            }
        };
        assert_eq!(count("", "").await, 3);
        assert_eq!(count("-1h", "").await, 2);
        assert_eq!(count("now-1h", "now+1m").await, 2);
        assert_eq!(count("", "-1h").await, 1);
        assert_eq!(count("-3h", "now-1h").await, 1);
        assert_eq!(count("-45m", "-15m").await, 1);
        assert_eq!(count("1d", "").await, 0, "a bound in the future");
        let events = server
            .get_json("/api/events", &[("from", "-1h"), ("sort", "asc")])
            .await;
        let summaries: Vec<&str> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|event| event["summary"].as_str().unwrap())
            .collect();
        assert_eq!(summaries, vec!["half an hour ago", "just now"]);
        let reply = server.get("/api/events", &[("from", "yesterday")]).await;
        let message = reply.error_message(400);
        assert!(
            message.contains("parameter from") && message.contains("is not a time"),
            "{message}"
        );
    });
}

// ------------------------------------------------------------------------------------------------
// 9. Durability under kill -9

#[test]
fn acknowledged_events_survive_kill_9() {
    run_test(LIMIT, async {
        let mut server = ServerProcess::start(&[]);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let url = format!("{}/events", server.base);
        let next_batch = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
        let mut loaders = Vec::new();
        for _ in 0..4 {
            let (client, url, key) = (client.clone(), url.clone(), server.key.clone());
            let (next_batch, stop, acknowledged) =
                (next_batch.clone(), stop.clone(), acknowledged.clone());
            loaders.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let batch = next_batch.fetch_add(1, Ordering::SeqCst);
                    let body: String = (0..100)
                        .map(|i| format!("{{\"summary\":\"load {batch} {i}\",\"details\":{{\"batch\":{batch},\"seq\":{}}}}}\n", batch * 100 + i))
                        .collect();
                    let Ok(response) = client.post(&url).bearer_auth(&key).body(body).send().await else { break };
                    let status = response.status().as_u16();
                    let Ok(text) = response.text().await else { break };
                    if status == 200 && serde_json::from_str::<Value>(&text).is_ok_and(|answer| answer["accepted"] == 100) {
                        acknowledged.lock().unwrap().push(batch);
                    } else {
                        panic!("batch {batch} answered {status}: {text}");
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for loader in loaders {
            tokio::time::timeout(Duration::from_secs(12), loader)
                .await
                .expect("a loader hung after the kill")
                .expect("a loader failed");
        }
        let acknowledged: BTreeSet<u64> = acknowledged.lock().unwrap().iter().copied().collect();
        let issued = next_batch.load(Ordering::SeqCst);
        assert!(
            !acknowledged.is_empty(),
            "no batch was acknowledged in 2 s; the test proves nothing"
        );

        server.restart();
        let total = server.count("").await;
        assert!(
            total >= acknowledged.len() as u64 * 100,
            "{total} events stored, {} batches acknowledged",
            acknowledged.len()
        );
        assert_eq!(total % 100, 0, "a request is committed whole or not at all");
        let mut stored_batches = 0;
        for batch in 0..issued {
            let count = server.count(&format!("details.batch:{batch}")).await;
            if acknowledged.contains(&batch) {
                assert_eq!(
                    count, 100,
                    "acknowledged batch {batch} lost events after kill -9"
                );
            } else {
                assert!(
                    count == 0 || count == 100,
                    "batch {batch} was half stored: {count}"
                );
            }
            stored_batches += u64::from(count == 100);
        }
        assert_eq!(stored_batches * 100, total);
        let status = server.get_json("/status", &[]).await;
        assert_eq!(status["store"]["events"], total);
        eprintln!(
            "kill -9: {} batches acknowledged, {stored_batches} stored, {issued} issued",
            acknowledged.len()
        );
    });
}

// ------------------------------------------------------------------------------------------------
// 10. Status and metrics

#[test]
fn status_and_metrics() {
    run_test(LIMIT, async {
        let server = ServerProcess::start(&[]);
        let status = server.get_without_key("/status").await;
        assert_eq!(status.status, 200);
        let body = status.json();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["code"], 200);
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
        assert!(body["uptime_seconds"].is_u64(), "{body}");
        assert_eq!(body["store"]["backend"], "sqlite");
        assert_eq!(body["store"]["events"], 0);
        assert!(
            body["store"]["bytes"]
                .as_u64()
                .is_some_and(|bytes| bytes > 0),
            "{body}"
        );

        server
            .post_events_ok("{\"summary\":\"m1\"}\n{\"summary\":\"m2\"}\n{\"summary\":\"m3\"}\n")
            .await;
        server
            .post_events("{\"summary\":\"m4\"}\n[1]\n")
            .await
            .error_message(400);
        let body = server.get_without_key("/status").await.json();
        assert_eq!(body["store"]["events"], 4);

        let metrics = server.get_without_key("/metrics").await;
        assert_eq!(metrics.status, 200);
        assert!(
            metrics.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let value_of = |labels: &[&str]| -> Option<f64> {
            metrics
                .text
                .lines()
                .filter(|line| line.starts_with("isms_ingest_events_total{"))
                .find_map(|line| {
                    let (series, value) = line.rsplit_once(' ')?;
                    labels
                        .iter()
                        .all(|label| series.contains(label))
                        .then(|| value.parse().ok())?
                })
        };
        assert_eq!(
            value_of(&["endpoint=\"/events\"", "outcome=\"accepted\""]),
            Some(4.0),
            "{}",
            metrics.text
        );
        assert_eq!(
            value_of(&["endpoint=\"/events\"", "outcome=\"rejected\""]),
            Some(1.0),
            "{}",
            metrics.text
        );
        // Durations and batch sizes are histograms with buckets (which Prometheus can add up across
        // servers), not summaries.
        for series in [
            "isms_store_commit_seconds_bucket{le=\"+Inf\"}",
            "isms_store_commit_events_bucket{le=\"+Inf\"}",
        ] {
            assert!(metrics.text.contains(series), "{series}: {}", metrics.text);
        }
        assert!(!metrics.text.contains("quantile="), "{}", metrics.text);
        // Without amqp.url the AMQP consumer is off: no banner line, no series.
        assert_eq!(server.amqp, None, "{:#?}", server.banner);
        assert_eq!(server.metric("isms_amqp_connected").await, None);
    });
}
