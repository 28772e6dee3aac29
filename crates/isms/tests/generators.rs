//! The registry of alert generators in a running server (seed 000): a generator registered with
//! an operator's key gets its own key once; with it, it verifies and updates itself, registers its
//! groups and classes, and sends events that record which generator sent them. Keys rotate and
//! revoke; a key bound to addresses is refused elsewhere; another generator's key, duplicates,
//! bad references and cycles are precise 4xx answers that change nothing; every operation is in
//! the activity log (`/api/audit`, events of category `audit`); wrong keys are rate-limited.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use harness::{Reply, ServerProcess, run_test};
use reqwest::Method;
use serde_json::{Value, json};

/// The seed's answer shape: `status` text and `code` equal to the HTTP status.
fn seed_status(reply: &Reply, code: u16) -> String {
    assert_eq!(reply.status, code, "{}", reply.text);
    let body = reply.json();
    assert_eq!(body["code"], code, "{body}");
    body["status"].as_str().unwrap_or_default().to_owned()
}

/// Registers a generator with the operator's key; returns its key.
async fn register(server: &ServerProcess, body: Value) -> String {
    let reply = server
        .send(
            Method::POST,
            "/api/generators",
            Some(&server.key),
            Some(&body),
        )
        .await;
    assert_eq!(seed_status(&reply, 201), "Generator registered");
    let answer = reply.json();
    assert_eq!(answer["generator"]["name"], body["name"]);
    answer["key"].as_str().unwrap().to_owned()
}

/// The generator registers, with its own key, the group `network` and the seed's class
/// `TCP_MISSING` (a required port).
async fn register_network_class(server: &ServerProcess, generator: &str, key: &str) {
    for (path, body) in [
        ("groups", json!({"name": "network"})),
        (
            "classes",
            json!({"name": "TCP_MISSING", "group": "network",
                   "syntax": [{"name": "port", "type": "port", "required": true}]}),
        ),
    ] {
        let reply = server
            .send(
                Method::POST,
                &format!("/api/generators/{generator}/{path}"),
                Some(key),
                Some(&body),
            )
            .await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
}

#[test]
fn generators_register_with_keys_act_on_their_own_records_and_are_logged() {
    let server = ServerProcess::start(&[]);
    run_test(Duration::from_secs(60), async {
        let hids = register(
            &server,
            json!({"name": "HIDS", "author": "admin", "ip": "127.0.0.1", "expected_interval_seconds": 60}),
        )
        .await;
        assert!(hids.starts_with("isms_"), "{hids}");
        // The key is shown once: the generator as listed has only its public id.
        let listed = server.get_json("/api/generators", &[]).await;
        assert!(!listed.to_string().contains(&hids));
        assert!(listed["generators"][0]["key_id"].is_string(), "{listed}");

        // Registering it again is the seed's "Generator already exists", and makes no key.
        let again = server
            .send(
                Method::POST,
                "/api/generators",
                Some(&server.key),
                Some(&json!({"name": "HIDS", "author": "admin"})),
            )
            .await;
        assert_eq!(seed_status(&again, 409), "Generator already exists");
        assert!(again.json()["error"].as_str().unwrap().contains("\"HIDS\""));
        // A registration with a bad field is refused before any key is made for it.
        let bad = server
            .send(
                Method::POST,
                "/api/generators",
                Some(&server.key),
                Some(&json!({"name": "BAD", "author": "admin", "ip": "300.1.1.1"})),
            )
            .await;
        assert_eq!(seed_status(&bad, 422), "Invalid request");
        assert_eq!(
            bad.json()["error"],
            "ip: \"300.1.1.1\" is not an IP address"
        );
        let keys = server.run_key_command(&["list", "--json"]);
        keys.assert_success("isms key list");
        assert!(
            keys.stdout_text().contains("generator:HIDS"),
            "{}",
            keys.stdout_text()
        );
        assert!(
            !keys.stdout_text().contains("generator:BAD"),
            "{}",
            keys.stdout_text()
        );

        // With its own key it verifies and updates itself, and registers its group and classes.
        let verify = server
            .send(
                Method::POST,
                "/api/generators/HIDS/verify",
                Some(&hids),
                Some(&json!({"author": "admin", "ip": "127.0.0.1"})),
            )
            .await;
        assert_eq!(seed_status(&verify, 200), "Generator verified");
        let mismatch = server
            .send(
                Method::POST,
                "/api/generators/HIDS/verify",
                Some(&hids),
                Some(&json!({"author": "mallory"})),
            )
            .await;
        assert_eq!(seed_status(&mismatch, 409), "Generator does not match");
        let update = server
            .send(
                Method::PATCH,
                "/api/generators/HIDS",
                Some(&hids),
                Some(&json!({"author": "secteam"})),
            )
            .await;
        assert_eq!(seed_status(&update, 200), "Generator updated");
        assert_eq!(update.json()["generator"]["author"], "secteam");
        let group = server
            .send(
                Method::POST,
                "/api/generators/HIDS/groups",
                Some(&hids),
                Some(&json!({"name": "network", "description": "ports"})),
            )
            .await;
        assert_eq!(seed_status(&group, 201), "Group registered");
        let class = server
            .send(
                Method::POST,
                "/api/generators/HIDS/classes",
                Some(&hids),
                Some(&json!({
                    "name": "TCP_MISSING", "group": "network", "help": "a port stopped listening",
                    "syntax": [{"name": "port", "type": "port", "required": true}],
                    "filter_syntax": ["details.destinationport"]
                })),
            )
            .await;
        assert_eq!(seed_status(&class, 201), "Class registered");
        let child = server
            .send(
                Method::POST,
                "/api/generators/HIDS/classes",
                Some(&hids),
                Some(&json!({
                    "name": "HTTP_MISSING", "group": "network", "parent": "TCP_MISSING",
                    "syntax": [{"name": "path", "type": "string", "default": "/"}]
                })),
            )
            .await;
        assert_eq!(seed_status(&child, 201), "Class registered");
        assert_eq!(
            child.json()["class"]["parameters"],
            json!([
                {"name": "port", "type": "port", "description": "", "required": true},
                {"name": "path", "type": "string", "description": "", "required": false, "default": "/"}
            ])
        );

        // Bad requests: each a precise 4xx, nothing changed.
        let cycle = server
            .send(
                Method::PATCH,
                "/api/generators/HIDS/classes/TCP_MISSING",
                Some(&hids),
                Some(&json!({"parent": "HTTP_MISSING"})),
            )
            .await;
        assert_eq!(seed_status(&cycle, 422), "Class parent cycle");
        assert_eq!(
            cycle.json()["error"],
            "parent: the class parents make a cycle: TCP_MISSING -> HTTP_MISSING -> TCP_MISSING"
        );
        let unknown_parent = server
            .send(
                Method::POST,
                "/api/generators/HIDS/classes",
                Some(&hids),
                Some(&json!({"name": "UDP_MISSING", "group": "network", "parent": "NOPE"})),
            )
            .await;
        assert_eq!(seed_status(&unknown_parent, 422), "Invalid request");
        let unknown_field = server
            .send(
                Method::POST,
                "/api/generators/HIDS/groups",
                Some(&hids),
                Some(&json!({"name": "disks", "colour": "red"})),
            )
            .await;
        assert_eq!(seed_status(&unknown_field, 422), "Invalid request");
        assert!(
            unknown_field.json()["error"]
                .as_str()
                .unwrap()
                .contains("unknown field `colour`"),
            "{}",
            unknown_field.text
        );
        let deleted = server
            .send(
                Method::DELETE,
                "/api/generators/HIDS/groups/network",
                Some(&hids),
                None,
            )
            .await;
        assert_eq!(seed_status(&deleted, 200), "Group deleted");
        let into_deleted = server
            .send(
                Method::POST,
                "/api/generators/HIDS/classes",
                Some(&hids),
                Some(&json!({"name": "UDP_MISSING", "group": "network"})),
            )
            .await;
        assert_eq!(seed_status(&into_deleted, 409), "Group is deleted");
        let classes = server
            .send(
                Method::GET,
                "/api/generators/HIDS/classes",
                Some(&hids),
                None,
            )
            .await;
        assert_eq!(
            classes.json()["classes"],
            json!([]),
            "deleted with their group"
        );

        // A generator's key cannot register generators nor touch another generator.
        let nids = register(&server, json!({"name": "NIDS", "author": "admin"})).await;
        let by_generator = server
            .send(
                Method::POST,
                "/api/generators",
                Some(&hids),
                Some(&json!({"name": "ROGUE", "author": "x"})),
            )
            .await;
        assert_eq!(seed_status(&by_generator, 403), "Forbidden");
        let other = server
            .send(
                Method::PATCH,
                "/api/generators/NIDS",
                Some(&hids),
                Some(&json!({"author": "hids was here"})),
            )
            .await;
        assert_eq!(seed_status(&other, 403), "Forbidden");
        assert_eq!(
            other.json()["error"],
            "this key belongs to generator \"HIDS\"; it cannot act on generator \"NIDS\""
        );
        let nids_record = server
            .send(Method::GET, "/api/generators/NIDS", Some(&nids), None)
            .await;
        assert_eq!(nids_record.json()["generator"]["author"], "admin");
        // A generator lists only itself.
        let own = server
            .send(Method::GET, "/api/generators", Some(&nids), None)
            .await
            .json();
        assert_eq!(own["generators"].as_array().unwrap().len(), 1, "{own}");

        // Events it sends record which generator sent them.
        let sent = server
            .post_with(
                "/events",
                Some(&hids),
                &[],
                json!({"summary": "port 80 stopped listening", "category": "hids"}).to_string(),
            )
            .await;
        assert_eq!(sent.status, 200, "{}", sent.text);
        let event = server
            .search_one("summary:\"port 80 stopped listening\"")
            .await;
        assert_eq!(event["origin"]["key"], "generator:HIDS", "{event}");
        // Its key sends events and acts on its registration, nothing else.
        for (method, path) in [(Method::GET, "/api/events"), (Method::GET, "/api/rules")] {
            let refused = server.send(method, path, Some(&hids), None).await;
            assert_eq!(seed_status(&refused, 403), "Forbidden");
            assert!(
                refused.json()["error"]
                    .as_str()
                    .unwrap()
                    .contains("may send events and act on its own registration only"),
                "{}",
                refused.text
            );
        }

        // Rotation: the new key works at once, the old one no longer.
        let rotated = server
            .send(Method::POST, "/api/generators/HIDS/key", Some(&hids), None)
            .await;
        assert_eq!(seed_status(&rotated, 201), "Generator key rotated");
        let new_key = rotated.json()["key"].as_str().unwrap().to_owned();
        assert_ne!(new_key, hids);
        let old = server
            .send(Method::GET, "/api/generators/HIDS", Some(&hids), None)
            .await;
        assert_eq!(old.status, 401, "{}", old.text);
        let with_new = server
            .send(Method::GET, "/api/generators/HIDS", Some(&new_key), None)
            .await;
        assert_eq!(seed_status(&with_new, 200), "Generator found");

        // Binding: from outside the bound network, the key is refused (and logged).
        let bound = server
            .send(
                Method::PATCH,
                "/api/generators/NIDS",
                Some(&server.key),
                Some(&json!({"bind": "10.0.0.0/8"})),
            )
            .await;
        assert_eq!(seed_status(&bound, 200), "Generator updated");
        let outside = server
            .send(Method::GET, "/api/generators/NIDS", Some(&nids), None)
            .await;
        assert_eq!(seed_status(&outside, 403), "Address not allowed");
        assert!(
            outside.json()["error"]
                .as_str()
                .unwrap()
                .contains("used from 127.0.0.1, outside its bound addresses (10.0.0.0/8)"),
            "{}",
            outside.text
        );
        let rebound = server
            .send(
                Method::PATCH,
                "/api/generators/NIDS",
                Some(&server.key),
                Some(&json!({"bind": "127.0.0.1"})),
            )
            .await;
        assert_eq!(rebound.status, 200, "{}", rebound.text);
        let inside = server
            .send(Method::GET, "/api/generators/NIDS", Some(&nids), None)
            .await;
        assert_eq!(inside.status, 200, "{}", inside.text);

        // Revocation by the operator; then deletion revokes any key it has.
        let revoked = server
            .send(
                Method::DELETE,
                "/api/generators/NIDS/key",
                Some(&server.key),
                None,
            )
            .await;
        assert_eq!(seed_status(&revoked, 200), "Generator key revoked");
        let after_revoke = server
            .send(Method::GET, "/api/generators/NIDS", Some(&nids), None)
            .await;
        assert_eq!(after_revoke.status, 401, "{}", after_revoke.text);
        let gone = server
            .send(Method::DELETE, "/api/generators/HIDS", Some(&new_key), None)
            .await;
        assert_eq!(seed_status(&gone, 200), "Generator deleted");
        let after_delete = server
            .send(Method::GET, "/api/generators/HIDS", Some(&new_key), None)
            .await;
        assert_eq!(after_delete.status, 401, "{}", after_delete.text);
        let missing = server
            .send(Method::GET, "/api/generators/HIDS", Some(&server.key), None)
            .await;
        assert_eq!(seed_status(&missing, 404), "Generator not found");

        // The activity log: every operation, done or refused, with its outcome.
        let log = server
            .get_json("/api/audit", &[("generator", "HIDS"), ("limit", "1000")])
            .await;
        let entries = log["entries"].as_array().unwrap();
        let seen = |action: &str, outcome: &str| {
            entries
                .iter()
                .any(|entry| entry["action"] == action && entry["outcome"] == outcome)
        };
        for (action, outcome) in [
            ("register_generator", "ok"),
            ("register_generator", "refused"),
            ("verify_generator", "ok"),
            ("verify_generator", "refused"),
            ("update_generator", "ok"),
            ("register_group", "ok"),
            ("register_class", "ok"),
            ("update_class", "refused"),
            ("delete_group", "ok"),
            ("rotate_key", "ok"),
            ("delete_generator", "ok"),
            // Its key used on /api/events and /api/rules.
            ("authenticate", "refused"),
        ] {
            assert!(seen(action, outcome), "no {action} {outcome} in {log:#}");
        }
        let refused_cycle = entries
            .iter()
            .find(|entry| entry["action"] == "update_class")
            .unwrap();
        assert_eq!(refused_cycle["level"], "WARNING");
        assert_eq!(refused_cycle["object"], "class TCP_MISSING");
        assert_eq!(refused_cycle["address"], "127.0.0.1");
        assert!(
            refused_cycle["reason"].as_str().unwrap().contains("cycle"),
            "{refused_cycle}"
        );
        let outside_logged = server
            .get_json(
                "/api/audit",
                &[
                    ("generator", "NIDS"),
                    ("action", "authenticate"),
                    ("outcome", "refused"),
                ],
            )
            .await;
        assert_eq!(
            outside_logged["entries"].as_array().unwrap().len(),
            1,
            "{outside_logged:#}"
        );
        // The log is events too, for searches and rules.
        assert!(
            server
                .count("category:audit AND details.generator:HIDS")
                .await
                >= 11
        );
    });
}

/// The allowance is `generators.max_key_failures_per_minute` (20 by default; 6 here).
#[test]
fn repeated_wrong_keys_from_one_address_are_refused_for_a_while() {
    let server = ServerProcess::start(&[("ISMS_GENERATORS_MAX_KEY_FAILURES_PER_MINUTE", "6")]);
    run_test(Duration::from_secs(60), async {
        let wrong = || server.send(Method::GET, "/api/generators", Some("isms_wrong"), None);
        for attempt in 1..=5 {
            let reply = wrong().await;
            assert_eq!(reply.status, 401, "attempt {attempt}: {}", reply.text);
        }
        // Below the allowance a good key still works.
        let good = server
            .send(Method::GET, "/api/generators", Some(&server.key), None)
            .await;
        assert_eq!(good.status, 200, "{}", good.text);
        // Each refusal is in the activity log.
        let log = server
            .get_json(
                "/api/audit",
                &[
                    ("action", "authenticate"),
                    ("outcome", "refused"),
                    ("limit", "100"),
                ],
            )
            .await;
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 5, "{log:#}");
        assert_eq!(entries[0]["address"], "127.0.0.1");
        assert_eq!(
            entries[0]["reason"],
            "a wrong or revoked key on GET /api/generators"
        );
        // The sixth uses up the allowance: past it, even a good key is refused from this
        // address, without a check.
        assert_eq!(wrong().await.status, 401);
        let limited = server
            .send(Method::GET, "/api/generators", Some(&server.key), None)
            .await;
        assert_eq!(seed_status(&limited, 429), "Too many failed keys");
        assert!(
            limited.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("too many wrong keys from this address; try again in "),
            "{}",
            limited.text
        );
    });
}

/// The whole exchange between two real processes: `isms serve`, and `isms generator` as the
/// generator (registered with an operator's key, then its own): a pull that waits for the
/// collector to instantiate a class, takes the instance and acknowledges it; a profile report;
/// verification; and the activity log of it all through `isms audit`.
#[test]
fn a_generator_process_pulls_acknowledges_and_profiles_what_the_collector_instantiates() {
    let server = ServerProcess::start(&[]);
    let cli = |key: &str, arguments: &[&str]| {
        let mut all = arguments.to_vec();
        all.extend_from_slice(&["--url", server.base.as_str(), "--key", key]);
        harness::run_isms(&all, &[])
    };
    let registered = cli(
        &server.key,
        &[
            "generator",
            "register",
            "--name",
            "HIDS",
            "--author",
            "admin",
            "--ip",
            "127.0.0.1",
            "--bind",
            "registered",
        ],
    );
    registered.assert_success("isms generator register");
    let answer: Value = serde_json::from_str(&registered.stdout_text()).unwrap();
    assert_eq!(answer["status"], "Generator registered");
    let key = answer["key"].as_str().unwrap().to_owned();
    run_test(Duration::from_secs(60), async {
        register_network_class(&server, "HIDS", &key).await;
    });

    // The generator waits for work: nothing is pending yet, so its pull is held open.
    // `isms generator pull` after `after`, waiting up to 20 s, acknowledging what it takes.
    let spawn_pull = |after: &str| {
        let mut pull = harness::isms_command();
        pull.args([
            "generator",
            "pull",
            "--name",
            "HIDS",
            "--after",
            after,
            "--wait",
            "20",
            "--ack",
            "--url",
            &server.base,
            "--key",
            &key,
        ]);
        pull.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let started = std::time::Instant::now();
        let child = pull.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(800));
        (started, child)
    };
    let (started, child) = spawn_pull("0");
    run_test(Duration::from_secs(60), async {
        // The seed's instantiate_alert_generator("HIDS", "TCP_MISSING", "12133", {"port": "80"}).
        let reply = server
            .send(
                Method::POST,
                "/api/generators/HIDS/instances",
                Some(&server.key),
                Some(&json!({"class": "TCP_MISSING", "id": "12133", "arguments": {"port": "80"}})),
            )
            .await;
        assert_eq!(seed_status(&reply, 201), "alert generator instantiated");
        // Arguments the class's syntax refuses: a precise 422, no instance made.
        let bad = server
            .send(
                Method::POST,
                "/api/generators/HIDS/instances",
                Some(&server.key),
                Some(&json!({"class": "TCP_MISSING", "arguments": {"port": "http"}})),
            )
            .await;
        assert_eq!(seed_status(&bad, 422), "Invalid request");
        assert_eq!(
            bad.json()["error"],
            "arguments.port: expected a port, found \"http\""
        );
        // Only the collector's operators instantiate.
        let by_generator = server
            .send(
                Method::POST,
                "/api/generators/HIDS/instances",
                Some(&key),
                Some(&json!({"class": "TCP_MISSING", "arguments": {"port": 22}})),
            )
            .await;
        assert_eq!(seed_status(&by_generator, 403), "Forbidden");
    });
    let output = child.wait_with_output().unwrap();
    let waited = started.elapsed();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(15),
        "the pull should have waited for the instance and returned with it: {waited:?}"
    );
    let change: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        change,
        json!({"id": "12133", "class": "TCP_MISSING", "arguments": {"port": 80},
               "version": 1, "deleted": false, "profile_requested": false})
    );

    let profiled = cli(
        &key,
        &[
            "generator",
            "profile",
            "--name",
            "HIDS",
            "--instance",
            "12133",
            "--events-seen",
            "42",
            "--alerts-raised",
            "1",
            "--last-run",
            "2026-12-01T10:00:00Z",
        ],
    );
    profiled.assert_success("isms generator profile");
    // The generator sends the events its instance raised, as itself.
    let events = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        events.path(),
        "{\"summary\": \"tcp port 80 is not listening\", \"category\": \"hids\"}\n",
    )
    .unwrap();
    cli(
        &key,
        &["generator", "send", events.path().to_str().unwrap()],
    )
    .assert_success("isms generator send");
    run_test(Duration::from_secs(30), async {
        let sent = server
            .search_one("summary:\"tcp port 80 is not listening\"")
            .await;
        assert_eq!(sent["origin"]["key"], "generator:HIDS", "{sent}");
        let instance = server
            .send(
                Method::GET,
                "/api/generators/HIDS/instances/12133",
                Some(&server.key),
                None,
            )
            .await
            .json();
        assert_eq!(instance["instance"]["state"], "applied", "{instance}");
        assert_eq!(instance["instance"]["acknowledged_version"], 1);
        assert_eq!(instance["instance"]["profile"]["events_seen"], 42);
        assert_eq!(instance["instance"]["profile"]["alerts_raised"], 1);
        let listed = server
            .send(
                Method::GET,
                "/api/generators/HIDS/instances",
                Some(&key),
                None,
            )
            .await
            .json();
        assert_eq!(listed["instances"].as_array().unwrap().len(), 1, "{listed}");
    });

    cli(
        &key,
        &["generator", "verify", "--name", "HIDS", "--author", "admin"],
    )
    .assert_success("isms generator verify");
    let mismatch = cli(
        &key,
        &[
            "generator",
            "verify",
            "--name",
            "HIDS",
            "--author",
            "mallory",
        ],
    );
    assert!(!mismatch.status.success());
    assert!(
        mismatch.stderr.contains("Generator does not match (409)"),
        "{}",
        mismatch.stderr
    );

    let audit = cli(
        &server.key,
        &["audit", "--generator", "HIDS", "--json", "--limit", "100"],
    );
    audit.assert_success("isms audit");
    let actions: Vec<String> = audit
        .stdout_text()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for action in [
        "register_generator",
        "instantiate",
        "pull_changes",
        "acknowledge",
        "report_profile",
        "verify_generator",
    ] {
        assert!(
            actions.iter().any(|seen| seen == action),
            "no {action} in {actions:?}"
        );
    }
    let table = cli(
        &server.key,
        &["audit", "--generator", "HIDS", "--outcome", "refused"],
    );
    table.assert_success("isms audit");
    assert!(
        table.stdout_text().starts_with("TIME (UTC)"),
        "{}",
        table.stdout_text()
    );
    assert!(
        table.stdout_text().contains("verify_generator"),
        "{}",
        table.stdout_text()
    );

    // Deleting the class's group removes the instance: a waiting pull is woken with the removal.
    let (started, child) = spawn_pull("1");
    run_test(Duration::from_secs(30), async {
        let deleted = server
            .send(
                Method::DELETE,
                "/api/generators/HIDS/groups/network",
                Some(&server.key),
                None,
            )
            .await;
        assert_eq!(seed_status(&deleted, 200), "Group deleted");
    });
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the removal should have woken the pull: {:?}",
        started.elapsed()
    );
    let removal: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (&removal["id"], &removal["deleted"]),
        (&json!("12133"), &json!(true))
    );

    cli(&key, &["generator", "delete", "--name", "HIDS"]).assert_success("isms generator delete");
    let after = cli(&key, &["generator", "verify", "--name", "HIDS"]);
    assert!(after.stderr.contains("(401)"), "{}", after.stderr);
}

/// The `isms-generator-silent` detections in `state`, once there is one (at most 20 s).
async fn silent_detections(server: &ServerProcess, state: &str) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answer = server
            .get_json(
                "/api/detections",
                &[("rule", "isms-generator-silent"), ("state", state)],
            )
            .await;
        let detections = answer["detections"].as_array().cloned().unwrap_or_default();
        if !detections.is_empty() {
            return detections;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no {state} isms-generator-silent detection within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Liveness (seed 002's AgentAliveEventDetector): a generator with an expected interval that
/// stops calling in raises the built-in `isms-generator-silent` detection, on the collector's
/// clock, held to its own interval; calling in again clears it.
#[test]
fn a_generator_silent_past_its_interval_raises_a_detection_cleared_when_it_calls_again() {
    let mut server = ServerProcess::start(&[("ISMS_DETECT_ENABLED", "on")]);
    let first_contact = run_test(Duration::from_secs(60), async {
        let key = register(
            &server,
            json!({"name": "HIDS", "author": "admin", "expected_interval_seconds": 2}),
        )
        .await;
        let call = || server.send(Method::GET, "/api/generators/HIDS", Some(&key), None);
        let first = call().await;
        assert_eq!(first.status, 200, "{}", first.text);
        assert!(
            first.json()["generator"]["last_contact"].is_string(),
            "{}",
            first.text
        );
        let fired = silent_detections(&server, "fired").await;
        assert_eq!(fired.len(), 1, "{fired:#?}");
        assert_eq!(fired[0]["group"]["details_generator"], "HIDS", "{fired:#?}");
        assert_eq!(
            fired[0]["message"],
            "alert generator HIDS stopped calling in"
        );
        assert_eq!(call().await.status, 200);
        let cleared = silent_detections(&server, "cleared").await;
        assert_eq!(cleared.len(), 1, "{cleared:#?}");
        first.json()["generator"]["last_contact"].clone()
    });
    // The last contact is written down (at most every minute: here the first call's), so it
    // outlives a restart.
    server.stop_gracefully();
    server.start_again();
    run_test(Duration::from_secs(30), async {
        let shown = server.get_json("/api/generators/HIDS", &[]).await;
        assert_eq!(shown["generator"]["last_contact"], first_contact, "{shown}");
    });
}

/// The OpenAPI document is served without a key, and every path and method it names is one the
/// server answers (not "no such endpoint", not 405).
#[test]
fn the_openapi_document_names_only_what_the_server_answers() {
    let server = ServerProcess::start(&[]);
    run_test(Duration::from_secs(60), async {
        let reply = server.get_without_key("/api/openapi.json").await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let document = reply.json();
        assert_eq!(document["openapi"], "3.1.0");
        let paths = document["paths"].as_object().unwrap();
        assert!(paths.len() >= 15, "{}", paths.len());
        let mut checked = 0;
        for (path, operations) in paths {
            let concrete = path
                .replace("{name}", "HIDS")
                .replace("{group}", "network")
                .replace("{class}", "TCP_MISSING")
                .replace("{id}", "1");
            for (method, _) in operations.as_object().unwrap() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                if method.as_str() == "PARAMETERS" {
                    continue;
                }
                let answer = server
                    .send(
                        method.clone(),
                        &concrete,
                        Some(&server.key),
                        Some(&json!({})),
                    )
                    .await;
                assert_ne!(answer.status, 405, "{method} {path}: {}", answer.text);
                assert!(
                    !answer.text.contains("no such endpoint"),
                    "{method} {path} is documented but not served"
                );
                checked += 1;
            }
        }
        assert!(checked >= 25, "{checked}");
    });
}

/// A free port on loopback (reserved, then let go for the listener to take).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("reserve a port")
        .local_addr()
        .unwrap()
        .port()
}

/// The next line the listener printed, within `within`.
fn next_line(lines: &std::sync::mpsc::Receiver<String>, within: Duration) -> Value {
    let line = lines
        .recv_timeout(within)
        .unwrap_or_else(|error| panic!("no change printed within {within:?}: {error}"));
    serde_json::from_str(&line).unwrap_or_else(|error| panic!("{line:?}: {error}"))
}

/// Push delivery between two real processes: the collector pushes the changes of a generator
/// registered with a push URL to `isms generator listen`, signed with the key derived from the
/// generator's key; a push that finds nobody listening is tried again; the listener prints each
/// change once and acknowledges it over the API; pushes not signed with the generator's key are
/// refused by the listener; the signing key is never shown, and only operators choose the URL.
#[test]
fn a_generator_listening_for_pushes_takes_signed_changes_and_acknowledges_them() {
    let server = ServerProcess::start(&[]);
    let port = free_port();
    let push_url = format!("http://127.0.0.1:{port}/push");
    let key = run_test(Duration::from_secs(60), async {
        let key = register(
            &server,
            json!({"name": "PUSHED", "author": "admin", "push_url": push_url}),
        )
        .await;
        register_network_class(&server, "PUSHED", &key).await;
        // Nobody listens yet: the push fails, and is tried again.
        let reply = server
            .send(
                Method::POST,
                "/api/generators/PUSHED/instances",
                Some(&server.key),
                Some(&json!({"class": "TCP_MISSING", "id": "7", "arguments": {"port": "80"}})),
            )
            .await;
        assert_eq!(seed_status(&reply, 201), "alert generator instantiated");
        // The signing key is never shown.
        let shown = server.get_json("/api/generators/PUSHED", &[]).await;
        assert_eq!(shown["generator"]["push_url"], push_url.as_str());
        assert!(
            shown["generator"].get("push_signing_key").is_none(),
            "{shown}"
        );
        // Only an operator chooses where the collector connects to.
        let moved = server
            .send(
                Method::PATCH,
                "/api/generators/PUSHED",
                Some(&key),
                Some(&json!({"push_url": "http://10.1.2.3/elsewhere"})),
            )
            .await;
        assert_eq!(seed_status(&moved, 403), "Forbidden");
        key
    });

    let mut listen = harness::isms_command();
    listen.args([
        "generator",
        "listen",
        "--name",
        "PUSHED",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--url",
        &server.base,
        "--key",
        &key,
    ]);
    listen
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut listener = listen.spawn().unwrap();
    let stdout = listener.stdout.take().unwrap();
    let (sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _listener = KillOnDrop(listener);

    // The retried push reaches the listener (tries at 0, 1, 3, 7 s after the instantiation).
    let first = next_line(&lines, Duration::from_secs(20));
    assert_eq!(
        first,
        json!({"id": "7", "class": "TCP_MISSING", "arguments": {"port": 80},
               "version": 1, "deleted": false, "profile_requested": false})
    );
    run_test(Duration::from_secs(60), async {
        // Acknowledged over the API.
        let mut state = Value::Null;
        for _ in 0..100 {
            let instance = server
                .get_json("/api/generators/PUSHED/instances/7", &[])
                .await;
            state = instance["instance"]["state"].clone();
            if state == "applied" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(state, "applied");
        // A change made while the listener runs is pushed at once.
        let reply = server
            .send(
                Method::PATCH,
                "/api/generators/PUSHED/instances/7",
                Some(&server.key),
                Some(&json!({"arguments": {"port": 443}})),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    });
    let started = std::time::Instant::now();
    let second = next_line(&lines, Duration::from_secs(10));
    assert_eq!(second["version"], 2, "{second}");
    assert_eq!(second["arguments"], json!({"port": 443}));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a change to a listening generator is pushed at once: {:?}",
        started.elapsed()
    );

    run_test(Duration::from_secs(60), async {
        // Pushes the listener refuses: unsigned, signed with another key, signed long ago, and
        // for another generator.
        let http = reqwest::Client::new();
        let body = json!({"generator": "PUSHED", "changes": [{"id": "9", "class": "TCP_MISSING",
            "arguments": {"port": 1}, "version": 99, "deleted": false, "profile_requested": false}]})
        .to_string();
        let now = jiff::Timestamp::now().as_second();
        let own = isms_generator::push::push_signing_key(&key);
        let other = isms_generator::push::push_signing_key("isms_not.the_key");
        let for_other = json!({"generator": "OTHER", "changes": []}).to_string();
        for (signature, body, code, says) in [
            (None, body.clone(), 401, "no isms-signature header"),
            (
                Some(isms_generator::push::sign(&other, now, body.as_bytes())),
                body.clone(),
                401,
                "the signature does not match",
            ),
            (
                Some(isms_generator::push::sign(
                    &own,
                    now - 3600,
                    body.as_bytes(),
                )),
                body.clone(),
                401,
                "at most 300 s are accepted",
            ),
            (
                Some(isms_generator::push::sign(&own, now, for_other.as_bytes())),
                for_other.clone(),
                422,
                "the push is for generator \"OTHER\"",
            ),
        ] {
            let mut request = http.post(&push_url).body(body);
            if let Some(signature) = signature {
                request = request.header("isms-signature", signature);
            }
            let reply = request.send().await.unwrap();
            assert_eq!(reply.status().as_u16(), code);
            let answer: Value = reply.json().await.unwrap();
            let error = answer["error"].as_str().unwrap_or_default();
            assert!(error.contains(says), "{says}: {answer}");
        }
        // The activity log has the failed push and the ones that were taken.
        let log = server
            .get_json(
                "/api/audit",
                &[("generator", "PUSHED"), ("action", "push_changes")],
            )
            .await;
        let entries = log["entries"].as_array().unwrap();
        let outcomes: Vec<&str> = entries
            .iter()
            .map(|entry| entry["outcome"].as_str().unwrap())
            .collect();
        assert!(outcomes.contains(&"failed"), "{log:#}");
        assert!(
            outcomes.iter().filter(|outcome| **outcome == "ok").count() >= 2,
            "{log:#}"
        );
        let failed = entries
            .iter()
            .find(|entry| entry["outcome"] == "failed")
            .unwrap();
        assert!(
            failed["reason"].as_str().unwrap().contains(&push_url),
            "{failed}"
        );
    });
    // No refused push was taken: nothing more was printed.
    assert!(
        lines.recv_timeout(Duration::from_millis(300)).is_err(),
        "a refused push was applied"
    );
}
