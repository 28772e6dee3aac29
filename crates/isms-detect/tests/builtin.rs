//! The built-in rule pack on real log lines: for every built-in rule, the lines of an attack (in
//! the exact wording sshd, PAM, su, sudo and shadow-utils write) make it fire with the right group,
//! count and message, and the everyday lines around them do not.
//!
//! Each test runs the one rule it is about, through the engine with its default options (30 s of
//! allowed lateness), so that another rule's detection cannot pass for it; the last test runs the
//! whole pack over an ordinary day to show the rules do not trip over each other.
mod common;

use std::collections::{BTreeSet, HashSet};

use isms_detect::builtin::{BUILTIN_RULE_FILES, builtin_rules};
use isms_detect::{Detection, DetectionState, Engine, EngineOptions, Lists, Rule};
use isms_event::Event;

/// Every built-in rule id, each with a test below. A rule added to the pack without a test here
/// fails `every_builtin_rule_loads_without_errors_with_a_unique_id_and_a_test`.
const TESTED_RULES: &[&str] = &[
    "isms-auth-failures-per-user",
    "isms-auth-failures-per-source",
    "isms-auth-failures-then-success",
    "isms-auth-invalid-user",
    "isms-auth-root-login-unlisted-host",
    "isms-auth-login-from-blocklist",
    "isms-auth-login-outside-local-networks",
    "isms-priv-su-to-root",
    "isms-priv-sudo-as-root",
    "isms-priv-multiple-account-switch",
    "isms-account-user-created",
    "isms-account-group-created",
    "isms-account-uid0-user",
    "isms-account-added-to-admin-group",
    "isms-syslog-mark-missing",
    "isms-generator-silent",
];

/// Decodes a log (one syslog line per line; leading indentation and blank lines are skipped) into
/// events, in order, as `isms decode` and the file sources do.
fn events(log: &str) -> Vec<Event> {
    common::decoded_events(log.lines().map(str::trim_start))
}

fn pack() -> Vec<Rule> {
    let loaded = builtin_rules();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.rules
}

/// An engine running only the built-in rule `id`, with the server's default options.
fn engine_for(id: &str) -> Engine {
    let rule = pack()
        .into_iter()
        .find(|rule| rule.id() == id)
        .unwrap_or_else(|| panic!("no built-in rule `{id}`"));
    Engine::new(vec![rule], Lists::default(), EngineOptions::default())
}

/// Runs every line of `log` through `engine`; returns all detections made.
fn run(engine: &mut Engine, log: &str) -> Vec<Detection> {
    let mut detections = Vec::new();
    for event in events(log) {
        detections.extend(engine.process(&event));
    }
    detections
}

/// The fired detections among `detections`.
fn fired(detections: &[Detection]) -> Vec<&Detection> {
    detections
        .iter()
        .filter(|detection| detection.state == DetectionState::Fired)
        .collect()
}

fn group(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(field, value)| ((*field).to_owned(), (*value).to_owned()))
        .collect()
}

fn messages(detections: &[Detection]) -> Vec<&str> {
    detections
        .iter()
        .map(|detection| detection.message.as_str())
        .collect()
}

/// What sshd (OpenSSH with PAM, Debian) writes for one password tried with a user name that does
/// not exist: six lines, one of them the failed attempt itself.
fn invalid_user_attempt(time: &str, pid: u32, user: &str, source: &str, port: u16) -> String {
    format!(
        "Jun  1 {time} web1 sshd[{pid}]: Invalid user {user} from {source} port {port}
         Jun  1 {time} web1 sshd[{pid}]: pam_unix(sshd:auth): check pass; user unknown
         Jun  1 {time} web1 sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={source}
         Jun  1 {time} web1 sshd[{pid}]: Failed password for invalid user {user} from {source} port {port} ssh2
         Jun  1 {time} web1 sshd[{pid}]: Received disconnect from {source} port {port}:11: Bye Bye [preauth]
         Jun  1 {time} web1 sshd[{pid}]: Disconnected from invalid user {user} {source} port {port} [preauth]
"
    )
}

#[test]
fn every_builtin_rule_loads_without_errors_with_a_unique_id_and_a_test() {
    let loaded = builtin_rules();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert_eq!(loaded.files, BUILTIN_RULE_FILES.len());
    assert!(BUILTIN_RULE_FILES.len() >= 4);
    // Ids are unique across files: parse every file on its own and count them all.
    let mut every_id = Vec::new();
    for (name, text) in BUILTIN_RULE_FILES {
        let (rules, errors) = isms_detect::parse_rules(text, name);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
        assert!(!rules.is_empty(), "{name} holds no rule");
        every_id.extend(rules.iter().map(|rule| rule.id().to_owned()));
    }
    let unique: HashSet<&String> = every_id.iter().collect();
    assert_eq!(unique.len(), every_id.len(), "duplicate ids: {every_id:?}");
    assert_eq!(loaded.rules.len(), every_id.len());
    for rule in &loaded.rules {
        let definition = &rule.definition;
        assert!(rule.id().starts_with("isms-"), "{}", rule.id());
        assert!(rule.source.starts_with("built-in:"), "{}", rule.source);
        assert!(definition.enabled, "{}", rule.id());
        assert!(
            definition.description.to_lowercase().contains("seed 002"),
            "{}: the description says which seed 002 detector it follows",
            rule.id()
        );
        assert!(!definition.tags.is_empty(), "{}", rule.id());
        assert!(
            definition.tags.iter().all(|tag| tag.starts_with("attack.")),
            "{}: {:?}",
            rule.id(),
            definition.tags
        );
        assert!(definition.message.is_some(), "{} has no message", rule.id());
        assert_ne!(definition.query, "*", "{} matches everything", rule.id());
    }
    let ids: BTreeSet<&str> = loaded.rules.iter().map(Rule::id).collect();
    let tested: BTreeSet<&str> = TESTED_RULES.iter().copied().collect();
    assert_eq!(ids, tested, "every built-in rule has a test here");
}

#[test]
fn five_failed_passwords_for_one_user_fire_once_counting_attempts_not_log_lines() {
    let mut engine = engine_for("isms-auth-failures-per-user");
    // Three passwords tried in one connection, as sshd with PAM logs them: PAM's line for the
    // first, sshd's own line for each, a [preauth] close and PAM's summary of the other two.
    // Eight failure events, three attempts: nothing yet.
    let first_connection = "
        Jun  1 10:00:01 web1 sshd[2001]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root
        Jun  1 10:00:03 web1 sshd[2001]: Failed password for root from 203.0.113.5 port 40022 ssh2
        Jun  1 10:00:07 web1 sshd[2001]: Failed password for root from 203.0.113.5 port 40022 ssh2
        Jun  1 10:00:11 web1 sshd[2001]: Failed password for root from 203.0.113.5 port 40022 ssh2
        Jun  1 10:00:11 web1 sshd[2001]: Connection closed by authenticating user root 203.0.113.5 port 40022 [preauth]
        Jun  1 10:00:11 web1 sshd[2001]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root
        Jun  1 10:01:20 web1 sshd[2040]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.7  user=root
        Jun  1 10:01:22 web1 sshd[2040]: Failed password for root from 198.51.100.7 port 51000 ssh2
    ";
    assert!(run(&mut engine, first_connection).is_empty());
    // The fifth attempt, from another address: the count is per account, whatever the source.
    let detections = run(
        &mut engine,
        "
        Jun  1 10:01:26 web1 sshd[2040]: Failed password for root from 198.51.100.7 port 51000 ssh2
        Jun  1 10:01:30 web1 sshd[2040]: Failed password for root from 198.51.100.7 port 51000 ssh2
        ",
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    let detection = &detections[0];
    assert_eq!(detection.state, DetectionState::Fired);
    assert_eq!(&*detection.rule_id, "isms-auth-failures-per-user");
    assert_eq!(detection.group, group(&[("details.username", "root")]));
    assert_eq!(detection.count, 5);
    assert_eq!(detection.related_event_ids.len(), 5);
    assert_eq!(
        detection.message,
        "5 failed logins for root within 5m (last from 198.51.100.7 on web1)"
    );
    assert_eq!(detection.severity, "WARNING");
    assert!(detection.tags.contains(&"attack.t1110.001".to_owned()));
    assert_eq!(detection.hostname.as_deref(), Some("web1"));
    // Once the window has emptied, a cleared detection closes it, with the attempt attached.
    let later = run(
        &mut engine,
        "Jun  1 10:20:00 web1 sshd[2100]: Accepted publickey for alice from 10.0.0.5 port 50000 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM",
    );
    assert_eq!(later.len(), 1, "{later:#?}");
    assert_eq!(later[0].state, DetectionState::Cleared);
    assert_eq!(later[0].clears.as_deref(), Some(detection.id.as_str()));
    assert_eq!(later[0].count, 6);
    assert!(
        later[0]
            .message
            .starts_with("cleared: 6 failed logins for root within 5m"),
        "{}",
        later[0].message
    );

    // Everyday lines: a user mistyping four times then getting in, a client offering its keys one
    // after another (refused keys of an existing account are not failures), and five different
    // accounts failing once each.
    let mut engine = engine_for("isms-auth-failures-per-user");
    let benign = "
        Jun  1 11:00:01 web1 sshd[3001]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.5  user=alice
        Jun  1 11:00:03 web1 sshd[3001]: Failed password for alice from 10.0.0.5 port 50100 ssh2
        Jun  1 11:00:08 web1 sshd[3001]: Failed password for alice from 10.0.0.5 port 50100 ssh2
        Jun  1 11:00:13 web1 sshd[3001]: Failed password for alice from 10.0.0.5 port 50100 ssh2
        Jun  1 11:00:13 web1 sshd[3001]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.5  user=alice
        Jun  1 11:00:30 web1 sshd[3002]: Failed password for alice from 10.0.0.5 port 50102 ssh2
        Jun  1 11:00:35 web1 sshd[3002]: Accepted password for alice from 10.0.0.5 port 50102 ssh2
        Jun  1 11:01:00 web1 sshd[3003]: Failed publickey for bob from 10.0.0.6 port 50200 ssh2: RSA SHA256:Vg3AHNbWKCsgDaWMYwvmYGk7tyN1ZZmsUpqaBZdYE0I
        Jun  1 11:01:00 web1 sshd[3003]: Failed publickey for bob from 10.0.0.6 port 50200 ssh2: ECDSA SHA256:0k4nGZc0tGZN9bUHp1PkO1kP3nXlLr3PGf9S0KQ1E4E
        Jun  1 11:01:00 web1 sshd[3003]: Failed publickey for bob from 10.0.0.6 port 50200 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
        Jun  1 11:01:01 web1 sshd[3003]: Failed publickey for bob from 10.0.0.6 port 50200 ssh2: RSA SHA256:9f2Q8W6a0bTt2l2bq2c9rZ4a8pW0HfYw2wGmV1y0O2s
        Jun  1 11:01:01 web1 sshd[3003]: Failed publickey for bob from 10.0.0.6 port 50200 ssh2: RSA SHA256:k4x0tq7mJ2o9l3CqW9oH2yC5uYhY1k6m7Z2rU0V3b1A
        Jun  1 11:01:01 web1 sshd[3003]: Accepted publickey for bob from 10.0.0.6 port 50200 ssh2: RSA SHA256:Q2Vp9m0mBqG3t7yq2yZ0c4nP5yX9wQ1k2xR8b7c6d5E
        Jun  1 11:02:00 web1 sshd[3004]: Failed password for carol from 203.0.113.77 port 1001 ssh2
        Jun  1 11:02:01 web1 sshd[3005]: Failed password for dave from 203.0.113.77 port 1002 ssh2
        Jun  1 11:02:02 web1 sshd[3006]: Failed password for erin from 203.0.113.77 port 1003 ssh2
        Jun  1 11:02:03 web1 sshd[3007]: Failed password for frank from 203.0.113.77 port 1004 ssh2
        Jun  1 11:02:04 web1 sshd[3008]: Failed password for grace from 203.0.113.77 port 1005 ssh2
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn more_than_five_failures_from_one_source_fire_at_the_sixth_whatever_the_user_names() {
    let mut engine = engine_for("isms-auth-failures-per-source");
    let mut log = String::new();
    for (index, user) in ["admin", "oracle", "test", "ubuntu", "pi"]
        .iter()
        .enumerate()
    {
        let time = format!("12:00:{:02}", index * 5);
        log.push_str(&invalid_user_attempt(
            &time,
            4000 + index as u32,
            user,
            "198.51.100.23",
            33000 + index as u16,
        ));
    }
    // Five attempts (30 log lines, 20 of them failures of some kind): five is not more than five.
    assert!(run(&mut engine, &log).is_empty());
    let sixth = invalid_user_attempt("12:00:30", 4010, "git", "198.51.100.23", 33010);
    let detections = run(&mut engine, &sixth);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    let detection = &detections[0];
    assert_eq!(&*detection.rule_id, "isms-auth-failures-per-source");
    assert_eq!(
        detection.group,
        group(&[("details.sourceipaddress", "198.51.100.23")])
    );
    assert_eq!(detection.count, 6);
    assert_eq!(
        detection.message,
        "6 failed logins from 198.51.100.23 within 5m (more than 5; last for user git on web1)"
    );

    // Exactly five from one address, six from six addresses, six from one address spread over
    // half an hour: none is more than five within five minutes from one source.
    let mut engine = engine_for("isms-auth-failures-per-source");
    let mut benign = String::new();
    for index in 0..5 {
        benign.push_str(&format!(
            "Jun  1 13:00:{index:02} web1 sshd[5000]: Failed password for root from 203.0.113.40 port 40000 ssh2\n"
        ));
    }
    for index in 0..6 {
        benign.push_str(&format!(
            "Jun  1 13:01:{index:02} web1 sshd[51{index:02}]: Failed password for root from 192.0.2.{} port 40000 ssh2\n",
            10 + index
        ));
    }
    for index in 0..6 {
        benign.push_str(&format!(
            "Jun  1 13:{:02}:00 web1 sshd[52{index:02}]: Failed password for admin from 203.0.113.41 port 40000 ssh2\n",
            10 + index * 6
        ));
    }
    let detections = run(&mut engine, &benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn five_failures_then_a_success_from_one_source_fire_for_the_account_that_got_in() {
    let mut engine = engine_for("isms-auth-failures-then-success");
    let attack = "
        Jun  1 14:00:00 web1 sshd[6001]: Failed password for invalid user admin from 203.0.113.50 port 41000 ssh2
        Jun  1 14:00:04 web1 sshd[6001]: Failed password for root from 203.0.113.50 port 41000 ssh2
        Jun  1 14:00:04 web1 sshd[6001]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.50  user=root
        Jun  1 14:00:09 web1 sshd[6002]: Failed password for root from 203.0.113.50 port 41002 ssh2
        Jun  1 14:01:10 web1 sshd[6003]: Failed password for invalid user test from 203.0.113.50 port 41004 ssh2
        Jun  1 14:02:15 web1 sshd[6004]: Failed password for deploy from 203.0.113.50 port 41006 ssh2
        Jun  1 14:02:21 web1 sshd[6004]: Accepted password for deploy from 203.0.113.50 port 41006 ssh2
        Jun  1 14:02:21 web1 sshd[6004]: pam_unix(sshd:session): session opened for user deploy(uid=1002) by (uid=0)
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    let detection = &detections[0];
    assert_eq!(&*detection.rule_id, "isms-auth-failures-then-success");
    assert_eq!(
        detection.group,
        group(&[("details.sourceipaddress", "203.0.113.50")])
    );
    assert_eq!(detection.count, 6, "five failures and the success");
    assert_eq!(detection.severity, "ERROR");
    assert_eq!(
        detection.message,
        "successful login as deploy from 203.0.113.50 on web1 after 5 or more failed logins from that address within 10m"
    );

    // A person who mistypes three times (sshd and PAM log six failure lines) and gets in; a
    // success more than ten minutes after the failures; a success from another address.
    let mut engine = engine_for("isms-auth-failures-then-success");
    let benign = "
        Jun  1 15:00:01 web1 sshd[7001]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.5  user=alice
        Jun  1 15:00:03 web1 sshd[7001]: Failed password for alice from 10.0.0.5 port 50100 ssh2
        Jun  1 15:00:08 web1 sshd[7001]: Failed password for alice from 10.0.0.5 port 50100 ssh2
        Jun  1 15:00:13 web1 sshd[7001]: Failed password for alice from 10.0.0.5 port 50100 ssh2
        Jun  1 15:00:13 web1 sshd[7001]: Connection closed by authenticating user alice 10.0.0.5 port 50100 [preauth]
        Jun  1 15:00:13 web1 sshd[7001]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=10.0.0.5  user=alice
        Jun  1 15:00:30 web1 sshd[7002]: Accepted password for alice from 10.0.0.5 port 50102 ssh2
        Jun  1 16:00:00 web1 sshd[7003]: Failed password for root from 192.0.2.66 port 1000 ssh2
        Jun  1 16:00:01 web1 sshd[7003]: Failed password for root from 192.0.2.66 port 1000 ssh2
        Jun  1 16:00:02 web1 sshd[7003]: Failed password for root from 192.0.2.66 port 1000 ssh2
        Jun  1 16:00:03 web1 sshd[7004]: Failed password for root from 192.0.2.66 port 1002 ssh2
        Jun  1 16:00:04 web1 sshd[7004]: Failed password for root from 192.0.2.66 port 1002 ssh2
        Jun  1 16:05:00 web1 sshd[7005]: Accepted publickey for root from 10.0.0.9 port 1004 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
        Jun  1 16:10:30 web1 sshd[7006]: Accepted password for root from 192.0.2.66 port 1006 ssh2
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn an_unknown_user_name_fires_once_per_attempt_with_the_name_and_the_source() {
    let mut engine = engine_for("isms-auth-invalid-user");
    // sshd's six lines for one attempt (three of them say `invalid user`), then dropbear's.
    let mut log = invalid_user_attempt("17:00:00", 8001, "oracle", "198.51.100.23", 33012);
    log.push_str(
        "Jun  1 17:00:05 router dropbear[311]: Login attempt for nonexistent user 'pi' from 198.51.100.4:52810\n",
    );
    let detections = run(&mut engine, &log);
    assert_eq!(
        messages(&detections),
        vec![
            "login attempt for unknown user oracle from 198.51.100.23 on web1 (sshd)",
            "login attempt for unknown user pi from 198.51.100.4 on router (dropbear)",
        ]
    );
    assert!(detections.iter().all(|detection| detection.count == 1));
    assert_eq!(detections[0].severity, "NOTICE");

    // Existing accounts, whether the password is right or wrong.
    let mut engine = engine_for("isms-auth-invalid-user");
    let benign = "
        Jun  1 17:10:00 web1 sshd[8002]: Failed password for root from 198.51.100.23 port 33020 ssh2
        Jun  1 17:10:05 web1 sshd[8003]: Accepted publickey for alice from 10.0.0.5 port 50100 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
        Jun  1 17:10:06 router dropbear[312]: Bad password attempt for 'root' from 198.51.100.4:52811
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

const ROOT_LOGINS: &str = "
    Jun  1 09:00:00 db1 sshd[9001]: Accepted publickey for root from 10.0.0.7 port 50500 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
    Jun  1 09:05:00 db1 sshd[9002]: Accepted password for root from 192.0.2.10 port 50501 ssh2
    Jun  1 09:10:00 db1 sshd[9003]: Accepted password for root from 203.0.113.9 port 50502 ssh2
    Jun  1 09:11:00 db1 sshd[9004]: Failed password for root from 198.51.100.9 port 50503 ssh2
    Jun  1 09:12:00 db1 sshd[9005]: Accepted password for alice from 203.0.113.9 port 50504 ssh2
    Jun  1 09:13:00 db1 login[9006]: pam_unix(login:session): session opened for user root(uid=0) by LOGIN(uid=0)
    Jun  1 09:13:00 db1 login[9006]: ROOT LOGIN  on '/dev/tty1'
";

#[test]
fn a_root_login_from_a_host_not_in_root_login_hosts_fires_and_listed_hosts_do_not() {
    let mut engine = engine_for("isms-auth-root-login-unlisted-host");
    engine.lists_mut().add("root-login-hosts", "10.0.0.0/24");
    engine.lists_mut().add("root-login-hosts", "192.0.2.10");
    let detections = run(&mut engine, ROOT_LOGINS);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        &*detections[0].rule_id,
        "isms-auth-root-login-unlisted-host"
    );
    assert_eq!(
        detections[0].message,
        "root logged in on db1 from 203.0.113.9, which is not in list root-login-hosts (sshd, password)"
    );
    assert_eq!(detections[0].hostname.as_deref(), Some("db1"));
}

#[test]
fn every_root_login_with_a_source_fires_while_root_login_hosts_is_missing() {
    let mut engine = engine_for("isms-auth-root-login-unlisted-host");
    let detections = run(&mut engine, ROOT_LOGINS);
    // The console login (no source address) cannot be looked up and does not fire.
    let sources: Vec<&str> = detections
        .iter()
        .map(|detection| {
            detection
                .message
                .split(" from ")
                .nth(1)
                .and_then(|rest| rest.split(',').next())
                .unwrap()
        })
        .collect();
    assert_eq!(sources, vec!["10.0.0.7", "192.0.2.10", "203.0.113.9"]);
}

#[test]
fn a_successful_login_from_a_blocklisted_address_fires_critical() {
    let log = "
        Jun  1 18:00:00 web1 sshd[9101]: Failed password for root from 203.0.113.66 port 40000 ssh2
        Jun  1 18:00:05 web1 sshd[9102]: Accepted password for alice from 10.0.0.5 port 40001 ssh2
        Jun  1 18:00:10 web1 sshd[9103]: Accepted password for backup from 198.51.100.23 port 40002 ssh2
        Jun  1 18:00:15 web1 sshd[9104]: Accepted publickey for git from 2001:db8:bad::7 port 40003 ssh2: RSA SHA256:Q2Vp9m0mBqG3t7yq2yZ0c4nP5yX9wQ1k2xR8b7c6d5E
    ";
    let mut engine = engine_for("isms-auth-login-from-blocklist");
    engine.lists_mut().add("blocklist", "198.51.100.0/24");
    engine.lists_mut().add("blocklist", "203.0.113.66");
    engine.lists_mut().add("blocklist", "2001:db8:bad::/48");
    let detections = run(&mut engine, log);
    assert_eq!(
        messages(&detections),
        vec![
            "backup logged in on web1 from blocklisted address 198.51.100.23 (sshd)",
            "git logged in on web1 from blocklisted address 2001:db8:bad::7 (sshd)",
        ],
        "a failure from a blocklisted address is not a login"
    );
    assert!(
        detections
            .iter()
            .all(|detection| detection.severity == "CRITICAL")
    );

    // Without a blocklist nothing is on it.
    let mut engine = engine_for("isms-auth-login-from-blocklist");
    assert!(run(&mut engine, log).is_empty());
}

#[test]
fn a_login_from_outside_the_local_networks_fires_and_every_login_fires_until_they_are_listed() {
    let log = "
        Jun  1 19:00:00 web1 sshd[9201]: Accepted publickey for alice from 10.1.2.3 port 40000 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
        Jun  1 19:00:05 web1 sshd[9202]: Accepted password for bob from 192.168.1.20 port 40001 ssh2
        Jun  1 19:00:10 web1 sshd[9203]: Accepted password for carol from 2001:db8:1::5 port 40002 ssh2
        Jun  1 19:00:15 web1 sshd[9204]: Accepted password for dave from 203.0.113.80 port 40003 ssh2
        Jun  1 19:00:20 web1 sshd[9205]: Failed password for erin from 203.0.113.81 port 40004 ssh2
        Jun  1 19:00:25 web1 sshd[9206]: Accepted keyboard-interactive/pam for frank from 2001:db8:2::1 port 40005 ssh2
        Jun  1 19:00:30 web1 CRON[9207]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
    ";
    let mut engine = engine_for("isms-auth-login-outside-local-networks");
    for network in ["10.0.0.0/8", "192.168.0.0/16", "2001:db8:1::/48"] {
        engine.lists_mut().add("local-networks", network);
    }
    let detections = run(&mut engine, log);
    assert_eq!(
        messages(&detections),
        vec![
            "dave logged in on web1 from 203.0.113.80, outside the local networks (sshd)",
            "frank logged in on web1 from 2001:db8:2::1, outside the local networks (sshd)",
        ]
    );

    // No local-networks list yet: every login with a source address is "outside".
    let mut engine = engine_for("isms-auth-login-outside-local-networks");
    let detections = run(&mut engine, log);
    assert_eq!(detections.len(), 5, "{:?}", messages(&detections));
}

#[test]
fn su_to_root_by_a_user_fires_once_per_switch() {
    let mut engine = engine_for("isms-priv-su-to-root");
    // shadow-utils su (Ubuntu 12.04: three lines per switch) and util-linux su -l (two lines).
    let attack = "
        Feb 24 00:12:14 precise32 su[4496]: Successful su for root by vagrant
        Feb 24 00:12:14 precise32 su[4496]: + /dev/pts/1 vagrant:root
        Feb 24 00:12:14 precise32 su[4496]: pam_unix(su:session): session opened for user root by vagrant(uid=1000)
        Jun  1 10:00:04 web1 su[7310]: (to root) alice on pts/0
        Jun  1 10:00:04 web1 su[7310]: pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(
        messages(&detections),
        vec![
            "vagrant switched to root with su on precise32 (PAM service su)",
            "alice switched to root with su on web1 (PAM service su-l)",
        ]
    );
    assert!(
        detections[0]
            .tags
            .contains(&"attack.privilege_escalation".to_owned())
    );

    // su to another account, a failed su, root's own su, closing sessions, sudo's and cron's
    // sessions for root.
    let mut engine = engine_for("isms-priv-su-to-root");
    let benign = "
        Jun  1 10:10:00 web1 su[7320]: (to postgres) alice on pts/0
        Jun  1 10:10:00 web1 su[7320]: pam_unix(su:session): session opened for user postgres(uid=113) by alice(uid=1000)
        Jun  1 10:11:00 web1 su[7321]: pam_unix(su:auth): authentication failure; logname=bob uid=1001 euid=0 tty=/dev/pts/1 ruser=bob rhost=  user=root
        Jun  1 10:11:02 web1 su[7321]: FAILED SU (to root) bob on pts/1
        Jun  1 10:12:00 web1 su[7322]: (to root) root on pts/2
        Jun  1 10:12:00 web1 su[7322]: pam_unix(su-l:session): session opened for user root(uid=0) by root(uid=0)
        Jun  1 10:13:00 web1 su[7310]: pam_unix(su-l:session): session closed for user root
        Jun  1 10:14:00 web1 sudo[7330]: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)
        Jun  1 10:15:01 web1 CRON[7340]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn a_sudo_command_run_as_root_fires_with_the_command_and_refusals_do_not() {
    let mut engine = engine_for("isms-priv-sudo-as-root");
    // Ubuntu 12.04's auth.log: the policy line, then PAM's session lines.
    let attack = "
        Feb 24 00:12:37 precise32 sudo:  vagrant : TTY=pts/0 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/cat /var/log/auth.log
        Feb 24 00:12:37 precise32 sudo: pam_unix(sudo:session): session opened for user root by vagrant(uid=1000)
        Feb 24 00:12:37 precise32 sudo: pam_unix(sudo:session): session closed for user root
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        detections[0].message,
        "vagrant ran a command as root with sudo on precise32: /bin/cat /var/log/auth.log"
    );
    assert_eq!(detections[0].severity, "NOTICE");

    // Refused (wrong passwords, not in sudoers), run as another account, run by root itself.
    let mut engine = engine_for("isms-priv-sudo-as-root");
    let benign = "
        Feb 24 00:12:20 precise32 sudo: pam_unix(sudo:auth): authentication failure; logname=vagrant uid=1001 euid=0 tty=/dev/pts/1 ruser=tsg rhost=  user=tsg
        Feb 24 00:12:42 precise32 sudo:      tsg : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls
        Feb 24 00:13:02 precise32 sudo:      tsg : user NOT in sudoers ; TTY=pts/1 ; PWD=/home/vagrant ; USER=root ; COMMAND=/bin/ls
        Jun  1 10:00:10 web1 sudo[101]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=postgres ; COMMAND=/usr/bin/psql
        Jun  1 10:00:20 web1 sudo[102]:     root : TTY=pts/3 ; PWD=/root ; USER=root ; COMMAND=/usr/bin/apt-get update
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn one_person_switching_to_two_accounts_on_a_host_within_an_hour_fires() {
    let mut engine = engine_for("isms-priv-multiple-account-switch");
    let attack = "
        Jun  1 20:00:00 db1 sudo[9301]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl status postgresql
        Jun  1 20:00:00 db1 sudo[9301]: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)
        Jun  1 20:00:01 db1 sudo[9301]: pam_unix(sudo:session): session closed for user root
        Jun  1 20:20:00 db1 sudo[9302]: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)
        Jun  1 20:40:00 db1 su[9303]: (to postgres) alice on pts/0
        Jun  1 20:40:00 db1 su[9303]: pam_unix(su:session): session opened for user postgres(uid=113) by alice(uid=1000)
        Jun  1 20:45:00 db1 su[9304]: pam_unix(su:session): session opened for user bob(uid=1001) by alice(uid=1000)
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    let detection = &detections[0];
    assert_eq!(
        detection.group,
        group(&[("hostname", "db1"), ("details.byuser", "alice")])
    );
    assert_eq!(detection.count, 2);
    assert_eq!(
        detection.related_event_ids.len(),
        3,
        "the session lines of the window"
    );
    assert_eq!(
        detection.message,
        "alice switched to 2 different accounts on db1 within 1h (latest: postgres with su)"
    );

    // One account many times; two accounts on two hosts; two accounts two hours apart; sessions
    // nobody can be named for.
    let mut engine = engine_for("isms-priv-multiple-account-switch");
    let benign = "
        Jun  1 21:00:00 db1 sudo[9401]: pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1001)
        Jun  1 21:05:00 db1 sudo[9402]: pam_unix(sudo:session): session opened for user root(uid=0) by bob(uid=1001)
        Jun  1 21:10:00 db1 su[9403]: pam_unix(su-l:session): session opened for user root(uid=0) by bob(uid=1001)
        Jun  1 21:00:00 db1 sudo[9404]: pam_unix(sudo:session): session opened for user root(uid=0) by carol(uid=1002)
        Jun  1 21:01:00 db2 su[9405]: pam_unix(su:session): session opened for user postgres(uid=113) by carol(uid=1002)
        Jun  1 21:02:00 db1 sudo[9406]: pam_unix(sudo:session): session opened for user root(uid=0) by dave(uid=1003)
        Jun  1 23:30:00 db1 su[9407]: pam_unix(su:session): session opened for user postgres(uid=113) by dave(uid=1003)
        Jun  1 23:31:00 db1 CRON[9408]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
        Jun  1 23:32:00 db1 CRON[9409]: pam_unix(cron:session): session opened for user postgres(uid=113) by (uid=0)
    ";
    let detections = run(&mut engine, benign);
    assert!(fired(&detections).is_empty(), "{:?}", messages(&detections));
}

#[test]
fn a_new_user_account_fires_with_its_uid_home_and_shell() {
    let mut engine = engine_for("isms-account-user-created");
    // useradd -m deploy on Debian 12: its private group, then the user.
    let attack = "
        Jun  1 10:20:00 web1 useradd[5101]: new group: name=deploy, GID=1002
        Jun  1 10:20:00 web1 useradd[5101]: new user: name=deploy, UID=1002, GID=1002, home=/home/deploy, shell=/bin/bash, from=/dev/pts/0
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(
        messages(&detections),
        vec![
            "user deploy created on web1 (uid 1002, gid 1002, home /home/deploy, shell /bin/bash)"
        ]
    );
    assert!(detections[0].tags.contains(&"attack.t1136.001".to_owned()));

    // A useradd that failed, and other account changes.
    let mut engine = engine_for("isms-account-user-created");
    let benign = "
        Oct 11 09:10:48 plinode useradd[25494]: failed adding user 'aol', exit code: 4
        Oct 19 12:54:40 plielk0 usermod[7730]: change user 'acris' expiration from '2001-01-01' to '2243-10-16'
        Jun  1 10:30:00 web1 userdel[5102]: delete user 'olduser'
        Jun  1 10:31:00 web1 passwd[5103]: pam_unix(passwd:chauthtok): password changed for deploy
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn a_new_group_fires_once_for_the_three_lines_groupadd_writes() {
    let mut engine = engine_for("isms-account-group-created");
    // Ubuntu 12.04's auth.log: groupadd tsg.
    let attack = "
        Feb 24 00:12:02 precise32 groupadd[4480]: group added to /etc/group: name=tsg, GID=1003
        Feb 24 00:12:02 precise32 groupadd[4480]: group added to /etc/gshadow: name=tsg
        Feb 24 00:12:02 precise32 groupadd[4480]: new group: name=tsg, GID=1003
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(
        messages(&detections),
        vec!["group tsg created on precise32 (gid 1003)"]
    );

    // useradd's private group goes with its user; groups deleted or changed.
    let mut engine = engine_for("isms-account-group-created");
    let benign = "
        Jun  1 10:20:00 web1 useradd[5101]: new group: name=deploy, GID=1002
        Jun  1 10:20:00 web1 useradd[5101]: new user: name=deploy, UID=1002, GID=1002, home=/home/deploy, shell=/bin/bash, from=/dev/pts/0
        Jun  1 10:40:00 web1 groupdel[5104]: group 'builders' removed from /etc/group
        Jun  1 10:41:00 web1 groupmod[5105]: group changed in /etc/group (group builders/1500, new name: ci)
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn an_account_with_uid_0_fires_critical_when_created_or_changed_to_uid_0() {
    let mut engine = engine_for("isms-account-uid0-user");
    let attack = "
        Jun  1 03:12:00 web1 useradd[6201]: new user: name=sysbackup, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/3
        Jun  1 03:14:00 web1 usermod[6202]: change user 'nagios' UID from '1003' to '0'
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(
        messages(&detections),
        vec![
            "account sysbackup with UID 0 on web1: new user: name=sysbackup, UID=0, GID=0, home=/root, shell=/bin/bash, from=/dev/pts/3",
            "account nagios with UID 0 on web1: change user 'nagios' UID from '1003' to '0'",
        ]
    );
    assert!(
        detections
            .iter()
            .all(|detection| detection.severity == "CRITICAL")
    );

    // Ordinary UIDs, a UID changed away from 0, a UID ending in 0, a GID of 0.
    let mut engine = engine_for("isms-account-uid0-user");
    let benign = "
        Jun  1 03:20:00 web1 useradd[6203]: new user: name=deploy, UID=1002, GID=1002, home=/home/deploy, shell=/bin/bash, from=/dev/pts/0
        Jun  1 03:21:00 web1 usermod[6204]: change user 'toor' UID from '0' to '1010'
        Jun  1 03:22:00 web1 usermod[6205]: change user 'svc' UID from '1004' to '2000'
        Jun  1 03:23:00 web1 usermod[6206]: change user 'svc' GID from '1004' to '0'
        Jun  1 03:24:00 web1 useradd[6207]: failed adding user 'evil', exit code: 4
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

#[test]
fn adding_a_user_to_an_administrators_group_fires_once_per_addition() {
    let mut engine = engine_for("isms-account-added-to-admin-group");
    // usermod -aG sudo sam, and useradd -G wheel: each writes the group and the shadow group.
    let attack = "
        Jun  1 10:30:00 web1 usermod[6301]: add 'sam' to group 'sudo'
        Jun  1 10:30:00 web1 usermod[6301]: add 'sam' to shadow group 'sudo'
        Jun  1 10:31:00 web2 useradd[6302]: new user: name=ops, UID=1005, GID=1005, home=/home/ops, shell=/bin/bash, from=/dev/pts/1
        Jun  1 10:31:00 web2 useradd[6302]: add 'ops' to group 'wheel'
        Jun  1 10:31:00 web2 useradd[6302]: add 'ops' to shadow group 'wheel'
        Jun  1 10:32:00 web3 gpasswd[6310]: user eve added by root to group wheel
        Jun  1 10:32:00 web3 gpasswd[6310]: user eve added by root to shadow group wheel
    ";
    let detections = run(&mut engine, attack);
    assert_eq!(
        messages(&detections),
        vec![
            "user sam added to group sudo on web1 (usermod)",
            "user ops added to group wheel on web2 (useradd)",
            "user eve added to group wheel on web3 (gpasswd)",
        ]
    );
    assert_eq!(detections[0].severity, "WARNING");

    // Other groups.
    let mut engine = engine_for("isms-account-added-to-admin-group");
    let benign = "
        Jun  1 10:40:00 web1 usermod[6303]: add 'sam' to group 'audio'
        Jun  1 10:40:00 web1 usermod[6303]: add 'sam' to shadow group 'audio'
        Jun  1 10:41:00 web1 usermod[6304]: add 'sam' to group 'sudoers-readers'
        Jun  1 10:42:00 web1 groupadd[6305]: new group: name=wheel2, GID=1600
    ";
    let detections = run(&mut engine, benign);
    assert!(detections.is_empty(), "{:?}", messages(&detections));
}

fn mark(time: &str, host: &str) -> String {
    format!("Jun  1 {time} {host} -- MARK --\n")
}

#[test]
fn a_host_that_stops_writing_mark_fires_after_twenty_minutes_and_clears_when_it_marks_again() {
    let mut engine = engine_for("isms-syslog-mark-missing");
    // db1 is expected from the start, though it never marks.
    engine.lists_mut().add("mark-hosts", "db1");
    let mut log = String::new();
    log.push_str(&mark("10:00:00", "web1"));
    log.push_str(&mark("10:00:00", "web2"));
    // Not MARKs: a line that mentions one, and rsyslog's own lines.
    log.push_str("Jun  1 10:05:00 web3 logger: -- MARK -- test from the admin\n");
    log.push_str("Jun  1 10:06:00 web2 rsyslogd: [origin software=\"rsyslogd\" swVersion=\"8.2302.0\" x-pid=\"612\" x-info=\"https://www.rsyslog.com\"] exiting on signal 15.\n");
    log.push_str(&mark("10:20:00", "web1"));
    log.push_str(&mark("10:40:00", "web1"));
    let detections = run(&mut engine, &log);
    let mut silent: Vec<(String, String, String)> = detections
        .iter()
        .map(|detection| {
            assert_eq!(detection.state, DetectionState::Fired);
            (
                detection.group[0].1.clone(),
                isms_event::format_time(detection.detected_micros),
                detection.message.clone(),
            )
        })
        .collect();
    silent.sort();
    assert_eq!(
        silent,
        vec![
            (
                "db1".to_owned(),
                // Expected from the engine's first watermark: 10:00:00 less the 30 s of lateness.
                "2026-06-01T10:19:30.000000+00:00".to_owned(),
                "no syslog MARK from db1 for more than 20m".to_owned()
            ),
            (
                "web2".to_owned(),
                "2026-06-01T10:20:00.000000+00:00".to_owned(),
                "no syslog MARK from web2 for more than 20m".to_owned()
            ),
        ]
    );
    assert!(
        detections
            .iter()
            .all(|detection| detection.severity == "WARNING")
    );

    // rsyslog writes its MARK with its own tag; web2 is back.
    let detections = run(
        &mut engine,
        "Jun  1 10:45:00 web2 rsyslogd: -- MARK --\nJun  1 10:46:00 web1 -- MARK --\n",
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].state, DetectionState::Cleared);
    assert_eq!(detections[0].group, group(&[("hostname", "web2")]));
    assert_eq!(
        detections[0].message,
        "cleared: no syslog MARK from web2 for more than 20m"
    );
}

#[test]
fn a_host_that_stops_writing_mark_fires_on_the_clock_when_nothing_arrives_at_all() {
    let mut engine = engine_for("isms-syslog-mark-missing");
    let marks = format!("{}{}", mark("10:00:00", "web1"), mark("10:20:00", "web1"));
    let events = events(&marks);
    for event in &events {
        assert!(engine.process(event).is_empty());
    }
    // Every event arrived at RECEIVED; the server's clock goes on without any more.
    let received = events[1].receivedtimestamp_micros;
    let minute = 60_000_000;
    assert!(engine.tick(received + 19 * minute).is_empty());
    let detections = engine.tick(received + 21 * minute);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].group, group(&[("hostname", "web1")]));
    assert!(
        engine.tick(received + 60 * minute).is_empty(),
        "fires once while silent"
    );
}

#[test]
fn the_whole_pack_on_an_ordinary_day_fires_only_the_sudo_notice() {
    let mut engine = Engine::new(pack(), Lists::default(), EngineOptions::default());
    for network in ["10.0.0.0/8", "192.168.0.0/16"] {
        engine.lists_mut().add("local-networks", network);
    }
    engine.lists_mut().add("root-login-hosts", "10.0.0.7");
    let mut log = String::new();
    for (index, minute) in [0, 20, 40].iter().enumerate() {
        log.push_str(&mark(&format!("08:{minute:02}:00"), "web1"));
        log.push_str(&format!(
            "Jun  1 08:{minute:02}:01 web1 CRON[{}]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)\n",
            9500 + index
        ));
    }
    log.push_str(
        "
        Jun  1 08:41:00 web1 sshd[9601]: Accepted publickey for alice from 10.0.0.5 port 50100 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
        Jun  1 08:41:00 web1 sshd[9601]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)
        Jun  1 08:42:00 web1 sudo[9602]:    alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/apt-get upgrade
        Jun  1 08:42:00 web1 sudo[9602]: pam_unix(sudo:session): session opened for user root(uid=0) by alice(uid=1000)
        Jun  1 08:45:00 web1 sudo[9602]: pam_unix(sudo:session): session closed for user root
        Jun  1 08:50:00 web1 sshd[9603]: Accepted publickey for root from 10.0.0.7 port 50101 ssh2: ED25519 SHA256:r2TfJ0qWJKZyBZNhTLKdKk8cUEVwE9WErpZ5q7nq2kM
        Jun  1 08:55:00 web1 sshd[9601]: pam_unix(sshd:session): session closed for user alice
        ",
    );
    log.push_str(&mark("09:00:00", "web1"));
    let mut detections = run(&mut engine, &log);
    detections.extend(engine.finish());
    let rules: Vec<&str> = detections
        .iter()
        .map(|detection| &*detection.rule_id)
        .collect();
    assert_eq!(rules, vec!["isms-priv-sudo-as-root"], "{detections:#?}");
    assert_eq!(engine.statistics().chain_stops, 0);
}

/// A generator's contact events, as the collector writes them, held to each generator's own
/// expected interval: silent past it fires (on the clock too), calling in again clears.
#[test]
fn a_generator_silent_past_its_own_interval_fires_and_clears_when_it_calls_again() {
    let mut engine = engine_for("isms-generator-silent");
    let start = 1_780_308_000i64;
    let contact = |second: i64, generator: &str, interval: u64| {
        isms_event::normalize(
            serde_json::json!({
                "category": "generator",
                "source": "isms-registry",
                "summary": format!("alert generator {generator} called in"),
                "utctimestamp": start + second,
                "details": {"action": "contact", "generator": generator, "expected_interval_seconds": interval},
            }),
            &isms_event::Origin {
                peer: None,
                endpoint: "registry".into(),
                key_name: None,
            },
            jiff::Timestamp::from_second(start + second).unwrap(),
        )
        .unwrap()
    };
    let mut detections = Vec::new();
    for event in [
        contact(0, "HIDS", 60),
        contact(0, "NIDS", 3600),
        contact(30, "HIDS", 60),
        // HIDS silent from 30 s: at 91 s it is past its minute; NIDS has an hour.
        contact(200, "NIDS", 3600),
        contact(300, "HIDS", 60),
    ] {
        detections.extend(engine.process(&event));
    }
    let seen: Vec<(DetectionState, String, i64)> = detections
        .iter()
        .map(|detection| {
            (
                detection.state,
                detection.group[0].1.clone(),
                detection.detected_micros / 1_000_000 - start,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (DetectionState::Fired, "HIDS".to_owned(), 90),
            (DetectionState::Cleared, "HIDS".to_owned(), 300),
        ]
    );
    assert_eq!(
        detections[0].message,
        "alert generator HIDS stopped calling in"
    );
    assert_eq!(detections[0].severity, "WARNING");
}
