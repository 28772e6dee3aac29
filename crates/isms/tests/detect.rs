//! Detection in a running server: rules from its rules directory (reloaded while it runs), events
//! from HTTP, detections stored and listed by `/api/detections` and `isms detections`, rule states
//! by `/api/rules`, and window state that survives a kill -9 and a graceful restart.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use harness::{ServerProcess, run_test};
use serde_json::{Value, json};

const THRESHOLD_RULE: &str = "
id: failures-per-user
title: Repeated login failures for one user
kind: threshold
severity: WARNING
match: 'category:authentication AND details.result:failure'
parameters: {group_by: [details.username], interval: 10m, threshold: 5}
message: '{count} failed logins for {details.username} within {interval}'
";

fn failure(user: &str, seconds_ago: i64) -> Value {
    let time = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
    json!({
        "summary": format!("Failed password for {user} from 203.0.113.5"),
        "category": "authentication",
        "utctimestamp": time.to_string(),
        "hostname": "web1",
        "details": {"result": "failure", "username": user, "sourceipaddress": "203.0.113.5"}
    })
}

/// A server with detection on, no built-in rules, and a rules directory holding one file (the
/// directory lives as long as the returned guard).
fn server_with_rule_file(name: &str, text: &str) -> (tempfile::TempDir, ServerProcess) {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join(name), text).unwrap();
    let rules_dir = rules.path().to_str().unwrap().to_owned();
    let server = ServerProcess::start(&[
        ("ISMS_DETECT_ENABLED", "on"),
        ("ISMS_DETECT_BUILTIN_RULES", "off"),
        ("ISMS_DETECT_RULES_DIR", &rules_dir),
    ]);
    (rules, server)
}

/// The rule with `id` in a `/api/rules` answer.
fn listed_rule(listed: &Value, id: &str) -> Option<Value> {
    listed["rules"]
        .as_array()?
        .iter()
        .find(|rule| rule["definition"]["id"] == id)
        .cloned()
}

/// Polls `/api/detections` with `query` until `expected` detections are there (at most 20 s).
async fn wait_for_detections(
    server: &ServerProcess,
    query: &[(&str, &str)],
    expected: usize,
) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = server.get_json("/api/detections", query).await;
        let detections = answer["detections"].as_array().cloned().unwrap_or_default();
        if detections.len() >= expected {
            return detections;
        }
        if std::time::Instant::now() > deadline {
            server.fail(format!(
                "waited 20 s for {expected} detections ({query:?}); have {detections:#?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn a_running_server_detects_from_its_rules_and_keeps_window_state_across_restarts() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("ssh.yml"), THRESHOLD_RULE).unwrap();
    std::fs::write(
        rules.path().join("broken.yml"),
        "id: broken\ntitle: t\nkind: sometimes\n",
    )
    .unwrap();
    let rules_dir = rules.path().to_str().unwrap().to_owned();
    let mut server = ServerProcess::start(&[
        ("ISMS_DETECT_ENABLED", "on"),
        ("ISMS_DETECT_BUILTIN_RULES", "off"),
        ("ISMS_DETECT_RULES_DIR", &rules_dir),
        ("ISMS_DETECT_ALLOWED_LATENESS_SECONDS", "0"),
        // Saved at start and at shutdown only: the kills below always find events to read again.
        ("ISMS_DETECT_SNAPSHOT_INTERVAL_SECONDS", "3600"),
    ]);
    run_test(Duration::from_secs(120), async {
        let listed = server.get_json("/api/rules", &[]).await;
        assert_eq!(listed["rules"].as_array().unwrap().len(), 1, "{listed:#}");
        assert_eq!(listed["rules"][0]["status"]["colour"], "gray");
        let not_loaded = listed["not_loaded"].as_array().unwrap();
        assert_eq!(not_loaded.len(), 1, "{listed:#}");
        assert!(
            not_loaded[0]["reason"]
                .as_str()
                .unwrap()
                .contains("unknown kind `sometimes`")
        );
        let kinds = server.get_json("/api/rules/kinds", &[]).await;
        let threshold = kinds["kinds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kind| kind["name"] == "threshold")
            .expect("the threshold kind is published");
        assert!(
            threshold["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|parameter| {
                    parameter["name"] == "threshold"
                        && parameter["type"] == "count"
                        && parameter["default"].is_null()
                })
        );

        // Three failures, then a kill -9: the engine must not forget them.
        let three: Vec<Value> = (0..3).map(|index| failure("root", 60 - index)).collect();
        server
            .post_events_ok(serde_json::to_vec(&three).unwrap())
            .await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let listed = server.get_json("/api/rules", &[]).await;
            if listed["rules"][0]["status"]["matched_events"] == 3 {
                assert_eq!(listed["rules"][0]["status"]["colour"], "green");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the three events were not seen: {listed:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    server.restart();
    run_test(Duration::from_secs(120), async {
        let two: Vec<Value> = (0..2).map(|index| failure("root", 50 - index)).collect();
        server
            .post_events_ok(serde_json::to_vec(&two).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", "failures-per-user")], 1).await;
        assert_eq!(detections.len(), 1, "{detections:#?}");
        let detection = &detections[0];
        assert_eq!(detection["state"], "fired");
        assert_eq!(detection["count"], 5, "three before the kill and two after");
        assert_eq!(detection["message"], "5 failed logins for root within 10m");
        assert_eq!(detection["severity"], "WARNING");
        assert_eq!(detection["group"]["details_username"], "root");
        assert_eq!(detection["related_event_ids"].as_array().unwrap().len(), 5);
        // The detection is an event too, found by id and by search.
        let stored = server
            .get_json(
                &format!("/api/events/{}", detection["id"].as_str().unwrap()),
                &[],
            )
            .await;
        assert_eq!(stored["category"], "alert");
        assert_eq!(stored["details"]["username"], "root");
        let listed = server.get_json("/api/rules", &[]).await;
        assert_eq!(listed["rules"][0]["status"]["colour"], "red");

        let output =
            server.run_client_command(&["detections", "--json", "--rule", "failures-per-user"]);
        output.assert_success("isms detections");
        let lines: Vec<Value> = output
            .stdout_text()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["id"], detection["id"]);
        let table = server.run_client_command(&["detections"]);
        table.assert_success("isms detections (table)");
        assert!(
            table.stdout_text().contains("failures-per-user"),
            "{}",
            table.stdout_text()
        );
    });

    // A rule file added while the server runs applies without a restart.
    std::fs::write(
        rules.path().join("eve.yml"),
        "id: eve-appears\ntitle: Eve appears\nkind: match\nseverity: CRITICAL\nmatch: 'details.username:eve'\n",
    )
    .unwrap();
    run_test(Duration::from_secs(120), async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let listed = server.get_json("/api/rules", &[]).await;
            if listed["rules"].as_array().unwrap().len() == 2 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the new rule was not loaded: {listed:#}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
            .post_events_ok(serde_json::to_vec(&failure("eve", 1)).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", "eve-appears")], 1).await;
        assert_eq!(detections[0]["severity"], "CRITICAL");
    });

    // A kill -9 before the next snapshot: the events since the last one are processed again to
    // rebuild the state, and the detections they raise are not stored a second time. The kill
    // comes once the seq the detections were stored through is written (a kill between their
    // append and that small write may store them twice, as `isms_server::detect` says): when it
    // covers every stored event, detections included.
    run_test(Duration::from_secs(30), async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let stored = server.count("").await;
            let progress = std::fs::read(server.data_dir().join("detect-progress.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
                .and_then(|progress| progress["detections_stored_through_seq"].as_u64());
            if progress == Some(stored) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "detection progress {progress:?} never reached the {stored} stored events"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let saved: Value = serde_json::from_slice(
        &std::fs::read(server.data_dir().join("detect-state.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["processed_seq"], 0,
        "the state was saved after the events (the snapshot interval is an hour): {saved:#}"
    );
    server.restart();
    run_test(Duration::from_secs(60), async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let listed = server.get_json("/api/rules", &[]).await;
            let eve = listed_rule(&listed, "eve-appears");
            if eve.is_some_and(|eve| eve["status"]["matched_events"] == 1) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "eve's event was not processed again after the kill: {listed:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Time for any detection the catch-up made to be stored.
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (rule, state) in [("eve-appears", "fired"), ("failures-per-user", "fired")] {
            let answer = server
                .get_json("/api/detections", &[("rule", rule), ("state", state)])
                .await;
            assert_eq!(
                answer["detections"].as_array().unwrap().len(),
                1,
                "{rule} stored again after the kill: {answer:#}"
            );
        }
    });

    // A graceful stop saves where detection stands; the active entity is still active after it.
    server.stop_gracefully();
    server.start_again();
    run_test(Duration::from_secs(60), async {
        let listed = server.get_json("/api/rules", &[]).await;
        let threshold = listed_rule(&listed, "failures-per-user").unwrap();
        assert_eq!(threshold["status"]["active"], 1, "{listed:#}");
        // Another failure attaches to the open detection instead of firing again.
        server
            .post_events_ok(serde_json::to_vec(&failure("root", 1)).unwrap())
            .await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let fired = server
            .get_json(
                "/api/detections",
                &[("rule", "failures-per-user"), ("state", "fired")],
            )
            .await;
        assert_eq!(
            fired["detections"].as_array().unwrap().len(),
            1,
            "{fired:#}"
        );
        let bad_state = server.get("/api/detections", &[("state", "open")]).await;
        assert_eq!(bad_state.status, 400);
    });
}

/// A request with the server's key, its status and JSON answer.
async fn call(
    server: &ServerProcess,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{}{path}", server.base))
        .bearer_auth(&server.key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn rules_and_lists_are_made_changed_and_removed_through_the_api() {
    let rules = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("ssh.yml"), THRESHOLD_RULE).unwrap();
    let rules_dir = rules.path().to_str().unwrap().to_owned();
    let mut server = ServerProcess::start(&[
        ("ISMS_DETECT_ENABLED", "on"),
        ("ISMS_DETECT_RULES_DIR", &rules_dir),
        ("ISMS_DETECT_ALLOWED_LATENESS_SECONDS", "0"),
    ]);
    run_test(Duration::from_secs(120), async {
        use reqwest::Method;
        // Suggest, then create a list rule through the API.
        let (status, suggestion) = call(
            &server,
            Method::POST,
            "/api/rules/suggest-message",
            Some(json!({"title": "Login from a watched address", "kind": "list", "parameters": {"field": "details.sourceipaddress", "list": "watched"}})),
        )
        .await;
        assert_eq!(status, 200, "{suggestion}");
        let message = suggestion["message"].as_str().unwrap().to_owned();
        assert!(
            message.starts_with("Login from a watched address")
                && message.contains("{details.sourceipaddress}"),
            "{message}"
        );
        let rule = json!({
            "id": "watched-login",
            "title": "Login from a watched address",
            "kind": "list",
            "severity": "ERROR",
            "match": "category:authentication",
            "parameters": {"field": "details.sourceipaddress", "list": "watched"},
            "message": message,
        });
        let (status, created) = call(&server, Method::POST, "/api/rules", Some(rule.clone())).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["definition"]["id"], "watched-login");
        assert!(created["source"].as_str().unwrap().contains("rules-api"));
        // A body over the limit is refused before it is read.
        let request = format!(
            "POST /api/rules HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{{",
            server.key,
            2 * 1024 * 1024
        );
        let answer = harness::raw_exchange(server.address, request.as_bytes()).expect("exchange");
        assert_eq!(answer.status, 413, "{:?}", answer.json());
        let (status, again) = call(&server, Method::POST, "/api/rules", Some(rule.clone())).await;
        assert_eq!(status, 409, "{again}");

        // Lists through the API; the rule fires for a listed address only.
        let (status, added) = call(
            &server,
            Method::POST,
            "/api/lists/watched",
            Some(json!({"entries": ["198.51.100.0/24", "203.0.113.9"]})),
        )
        .await;
        assert_eq!((status, added["added"].as_u64()), (200, Some(2)), "{added}");
        let (status, bad) = call(
            &server,
            Method::POST,
            "/api/lists/..%2Fetc",
            Some(json!({"entries": ["x"]})),
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        let (_, listed) = call(&server, Method::GET, "/api/lists/watched", None).await;
        assert_eq!(listed["entries"].as_array().unwrap().len(), 2, "{listed}");
        let mut login = failure("alice", 1);
        login["details"]["sourceipaddress"] = json!("198.51.100.77");
        server
            .post_events_ok(serde_json::to_vec(&login).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", "watched-login")], 1).await;
        assert_eq!(detections[0]["severity"], "ERROR");
        assert!(
            detections[0]["message"]
                .as_str()
                .unwrap()
                .contains("198.51.100.77"),
            "{:#}",
            detections[0]
        );
        let (status, removed) = call(
            &server,
            Method::DELETE,
            "/api/lists/watched",
            Some(json!({"entries": ["198.51.100.0/24"]})),
        )
        .await;
        assert_eq!(
            (status, removed["removed"].as_u64()),
            (200, Some(1)),
            "{removed}"
        );
        server
            .post_events_ok(serde_json::to_vec(&login).unwrap())
            .await;
        let mut listed_login = failure("alice", 1);
        listed_login["details"]["sourceipaddress"] = json!("203.0.113.9");
        server
            .post_events_ok(serde_json::to_vec(&listed_login).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", "watched-login")], 2).await;
        assert_eq!(
            detections.len(),
            2,
            "the address taken off the list no longer fires: {detections:#?}"
        );
        assert!(
            detections[0]["message"]
                .as_str()
                .unwrap()
                .contains("203.0.113.9")
        );

        // Parameters changed at run time: refused with the reason when wrong, applied when right,
        // for a rule of the rules directory too.
        let (status, refused) = call(
            &server,
            Method::PATCH,
            "/api/rules/failures-per-user",
            Some(json!({"parameters": {"threshold": -1}})),
        )
        .await;
        assert_eq!(status, 400, "{refused}");
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("parameter `threshold` must be a whole number"),
            "{refused}"
        );
        let (status, unknown) = call(
            &server,
            Method::PATCH,
            "/api/rules/failures-per-user",
            Some(json!({"parameters": {"treshold": 2}})),
        )
        .await;
        assert_eq!(status, 400, "{unknown}");
        let (status, changed) = call(
            &server,
            Method::PATCH,
            "/api/rules/failures-per-user",
            Some(json!({"parameters": {"threshold": 2}})),
        )
        .await;
        assert_eq!(status, 200, "{changed}");
        assert_eq!(changed["definition"]["parameters"]["threshold"], 2);
        let two: Vec<Value> = (0..2).map(|index| failure("bob", 10 - index)).collect();
        server
            .post_events_ok(serde_json::to_vec(&two).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", "failures-per-user")], 1).await;
        assert_eq!(detections[0]["count"], 2);
        // A file rule is not replaced or deleted through the API.
        let mut replacement = rule.clone();
        replacement["id"] = json!("failures-per-user");
        let (status, _) = call(
            &server,
            Method::PUT,
            "/api/rules/failures-per-user",
            Some(replacement),
        )
        .await;
        assert_eq!(status, 409);
        let (status, _) = call(
            &server,
            Method::DELETE,
            "/api/rules/failures-per-user",
            None,
        )
        .await;
        assert_eq!(status, 409);
        // Disabled: listed without a state, not run.
        let (status, disabled) = call(
            &server,
            Method::PATCH,
            "/api/rules/watched-login",
            Some(json!({"enabled": false})),
        )
        .await;
        assert_eq!(status, 200, "{disabled}");
        assert!(disabled["status"].is_null(), "{disabled}");
        assert_eq!(disabled["definition"]["enabled"], false);
    });
    // Changes last across a restart.
    server.restart();
    run_test(Duration::from_secs(60), async {
        use reqwest::Method;
        let (_, rule) = call(&server, Method::GET, "/api/rules/failures-per-user", None).await;
        assert_eq!(rule["definition"]["parameters"]["threshold"], 2, "{rule}");
        let (_, rule) = call(&server, Method::GET, "/api/rules/watched-login", None).await;
        assert_eq!(rule["definition"]["enabled"], false, "{rule}");
        let (status, _) = call(&server, Method::DELETE, "/api/rules/watched-login", None).await;
        assert_eq!(status, 204);
        let (status, _) = call(&server, Method::GET, "/api/rules/watched-login", None).await;
        assert_eq!(status, 404);
        let (_, listed) = call(&server, Method::GET, "/api/rules", None).await;
        assert!(
            listed["rules"]
                .as_array()
                .unwrap()
                .iter()
                .any(|rule| rule["definition"]["id"] == "isms-auth-failures-per-user"),
            "the built-in pack runs by default"
        );
    });
}

#[test]
fn a_scheduled_rule_searches_the_store_on_its_schedule() {
    let (_rules, server) = server_with_rule_file(
        "scheduled.yml",
        "id: noisy-sources
title: Sources with failures in the last hour
kind: scheduled
match: 'category:authentication AND details.result:failure'
parameters: {schedule: '* * * * * *', look_back: 1h, group_by: [details.sourceipaddress], threshold: 3}
message: '{count} failures from {details.sourceipaddress} in the last {interval}'
",
    );
    run_test(Duration::from_secs(60), async {
        let mut events: Vec<Value> = (0..3).map(|index| failure("root", 30 - index)).collect();
        let mut other = failure("alice", 5);
        other["details"]["sourceipaddress"] = json!("198.51.100.3");
        events.push(other);
        server
            .post_events_ok(serde_json::to_vec(&events).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", "noisy-sources")], 1).await;
        let detection = &detections[0];
        assert_eq!(detection["count"], 3, "{detection:#}");
        assert_eq!(detection["group"]["details_sourceipaddress"], "203.0.113.5");
        assert_eq!(
            detection["message"],
            "3 failures from 203.0.113.5 in the last 1h"
        );
        // The address with one failure never reaches the threshold.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let all = server
            .get_json("/api/detections", &[("rule", "noisy-sources")])
            .await;
        assert!(
            all["detections"]
                .as_array()
                .unwrap()
                .iter()
                .all(|detection| detection["group"]["details_sourceipaddress"] == "203.0.113.5"),
            "{all:#}"
        );
    });
}

#[test]
fn a_scheduled_run_missed_while_the_server_was_down_is_made_up_at_start() {
    // Due once a day, 12 s from now: the server is stopped before and started after.
    let due = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(12);
    let due_utc = due.to_zoned(jiff::tz::TimeZone::UTC);
    let (_rules, mut server) = server_with_rule_file(
        "daily.yml",
        &format!(
            "id: daily-failures
title: Failures of the day
kind: scheduled
match: 'category:authentication AND details.result:failure'
parameters: {{schedule: '{} {} {} * * *', look_back: 1h, threshold: 3}}
",
            due_utc.second(),
            due_utc.minute(),
            due_utc.hour()
        ),
    );
    run_test(Duration::from_secs(30), async {
        let events: Vec<Value> = (0..3).map(|index| failure("root", 30 - index)).collect();
        server
            .post_events_ok(serde_json::to_vec(&events).unwrap())
            .await;
        // A tick of the clock has looked at the schedule (the next run is known, not yet due).
        tokio::time::sleep(Duration::from_millis(1500)).await;
    });
    server.stop_gracefully();
    assert!(
        jiff::Timestamp::now() < due,
        "the server ran past the rule's time before it was stopped; the test needs it stopped first"
    );
    let wait = due.duration_since(jiff::Timestamp::now()) + jiff::SignedDuration::from_secs(1);
    std::thread::sleep(Duration::try_from(wait).unwrap());
    server.start_again();
    run_test(Duration::from_secs(60), async {
        let detections = wait_for_detections(&server, &[("rule", "daily-failures")], 1).await;
        assert_eq!(detections.len(), 1, "{detections:#?}");
        assert_eq!(detections[0]["count"], 3, "{detections:#?}");
    });
}

#[test]
fn a_sigma_rule_in_the_rules_directory_detects_in_a_running_server() {
    let (_rules, server) = server_with_rule_file(
        "whoami.yml",
        "title: Whoami run
id: 8b000000-0000-4000-8000-000000000001
logsource: {product: windows, category: process_creation}
level: high
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    filter:
        User: SYSTEM
    condition: selection and not filter
",
    );
    run_test(Duration::from_secs(60), async {
        let listed = server.get_json("/api/rules", &[]).await;
        let rule = listed_rule(&listed, "sigma-8b000000-0000-4000-8000-000000000001")
            .unwrap_or_else(|| panic!("the Sigma rule is loaded: {listed:#}"));
        assert_eq!(rule["definition"]["kind"], "match");
        let events = json!([
            {"summary": "process", "Image": "C:\\Windows\\System32\\whoami.exe", "User": "SYSTEM"},
            {"summary": "process", "Image": "C:\\Windows\\System32\\whoami.exe", "User": "mallory"}
        ]);
        server
            .post_events_ok(serde_json::to_vec(&events).unwrap())
            .await;
        let detections = wait_for_detections(
            &server,
            &[("rule", "sigma-8b000000-0000-4000-8000-000000000001")],
            1,
        )
        .await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let all = server
            .get_json(
                "/api/detections",
                &[("rule", "sigma-8b000000-0000-4000-8000-000000000001")],
            )
            .await;
        assert_eq!(all["detections"].as_array().unwrap().len(), 1, "{all:#}");
        assert_eq!(detections[0]["severity"], "ERROR");
        // Each rule's detections are counted for Prometheus.
        let metrics = reqwest::Client::new()
            .get(format!("{}/metrics", server.base))
            .bearer_auth(&server.key)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        assert!(
            metrics.contains(
                "isms_detect_detections_total{rule=\"sigma-8b000000-0000-4000-8000-000000000001\"} 1"
            ),
            "{metrics}"
        );
    });
}

/// A Sigma rule whose `User|expand` takes `%list%`.
fn expand_rule(number: u32, list: &str) -> String {
    format!(
        "title: Expanded from {list}
id: 6b000000-0000-4000-8000-{number:012}
logsource: {{product: acme}}
detection:
    selection:
        User|expand: '%{list}%'
    condition: selection
"
    )
}

fn login_of(user: &str) -> Value {
    json!({
        "summary": format!("login of {user}"),
        "utctimestamp": jiff::Timestamp::now().to_string(),
        "User": user
    })
}

#[test]
fn sigma_rules_expanded_from_lists_follow_the_lists_as_they_change() {
    let rules = tempfile::tempdir().unwrap();
    let lists = tempfile::tempdir().unwrap();
    std::fs::write(rules.path().join("admins.yml"), expand_rule(1, "admins")).unwrap();
    std::fs::write(
        rules.path().join("watchers.yml"),
        expand_rule(2, "watchers"),
    )
    .unwrap();
    std::fs::write(lists.path().join("admins.txt"), "alice\n").unwrap();
    let rules_dir = rules.path().to_str().unwrap().to_owned();
    let lists_dir = lists.path().to_str().unwrap().to_owned();
    let server = ServerProcess::start(&[
        ("ISMS_DETECT_ENABLED", "on"),
        ("ISMS_DETECT_BUILTIN_RULES", "off"),
        ("ISMS_DETECT_RULES_DIR", &rules_dir),
        ("ISMS_DETECT_LISTS_DIR", &lists_dir),
        ("ISMS_DETECT_ALLOWED_LATENESS_SECONDS", "0"),
    ]);
    let admins_rule = "sigma-6b000000-0000-4000-8000-000000000001";
    let watchers_rule = "sigma-6b000000-0000-4000-8000-000000000002";
    run_test(Duration::from_secs(120), async {
        use reqwest::Method;
        let listed = server.get_json("/api/rules", &[]).await;
        assert!(listed_rule(&listed, admins_rule).is_some(), "{listed:#}");
        let not_loaded = listed["not_loaded"].as_array().unwrap();
        assert_eq!(not_loaded.len(), 1, "{listed:#}");
        assert!(
            not_loaded[0]["reason"]
                .as_str()
                .unwrap()
                .contains("placeholder %watchers% has no list or pipeline placeholder"),
            "{listed:#}"
        );

        server
            .post_events_ok(serde_json::to_vec(&login_of("alice")).unwrap())
            .await;
        wait_for_detections(&server, &[("rule", admins_rule)], 1).await;

        // A value added through the API: the rule is compiled again with it.
        let (status, added) = call(
            &server,
            Method::POST,
            "/api/lists/admins",
            Some(json!({"entries": ["bob"]})),
        )
        .await;
        assert_eq!((status, added["added"].as_u64()), (200, Some(1)), "{added}");
        server
            .post_events_ok(serde_json::to_vec(&login_of("bob")).unwrap())
            .await;
        let detections = wait_for_detections(&server, &[("rule", admins_rule)], 2).await;
        assert!(
            detections.iter().any(|detection| detection["message"]
                .as_str()
                .unwrap_or("")
                .contains("bob")
                || detection["details"].to_string().contains("bob")),
            "{detections:#?}"
        );

        // A list file made by hand: the rule refused for want of it loads at the next look.
        std::fs::write(lists.path().join("watchers.txt"), "carol\n").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let listed = server.get_json("/api/rules", &[]).await;
            if listed_rule(&listed, watchers_rule).is_some() {
                assert!(
                    listed["not_loaded"].as_array().unwrap().is_empty(),
                    "{listed:#}"
                );
                break;
            }
            if std::time::Instant::now() > deadline {
                server.fail(format!("the watchers rule never loaded: {listed:#}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        server
            .post_events_ok(serde_json::to_vec(&login_of("carol")).unwrap())
            .await;
        wait_for_detections(&server, &[("rule", watchers_rule)], 1).await;
        // Dave is on no list: only the three detections above.
        server
            .post_events_ok(serde_json::to_vec(&login_of("dave")).unwrap())
            .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let all = server.get_json("/api/detections", &[]).await;
        assert_eq!(all["detections"].as_array().unwrap().len(), 3, "{all:#}");
    });
}
