//! The engine on real log lines: sshd, su, useradd and syslog MARK lines as the decoders make them,
//! through every kind, chains, lists, bounds and lateness.
mod common;

use isms_detect::{
    Detection, DetectionState, Engine, EngineOptions, Lists, Rule, RuleColour, parse_rules,
};
use isms_event::{Event, Origin};

/// Decodes syslog lines (RFC 3164, read as of June 2026 in UTC) into events, in order.
fn events(lines: &[&str]) -> Vec<Event> {
    common::decoded_events(lines.iter().copied())
}

fn rules(yaml: &str) -> Vec<Rule> {
    let (rules, errors) = parse_rules(yaml, "test.yml");
    assert!(errors.is_empty(), "{errors:?}");
    rules
}

/// Match rules `rule-0`, `rule-1`, ... of these queries (each must compile).
fn match_rules<Q: AsRef<str>>(queries: &[Q]) -> Vec<Rule> {
    let yaml: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(index, query)| {
            format!(
                "id: rule-{index}\ntitle: t\nkind: match\nmatch: '{}'\n",
                query.as_ref()
            )
        })
        .collect();
    rules(&yaml.join("---\n"))
}

fn engine(yaml: &str) -> Engine {
    Engine::new(
        rules(yaml),
        Lists::default(),
        EngineOptions {
            allowed_lateness_micros: 0,
            max_chain_depth: 5,
        },
    )
}

fn run(engine: &mut Engine, events: &[Event]) -> Vec<Detection> {
    let mut detections = Vec::new();
    for event in events {
        detections.extend(engine.process(event));
    }
    detections
}

fn failed(time: &str, user: &str, source: &str) -> String {
    format!(
        "Jun  1 {time} web1 sshd[1234]: Failed password for {user} from {source} port 40022 ssh2"
    )
}

fn accepted(time: &str, user: &str, source: &str) -> String {
    format!(
        "Jun  1 {time} web1 sshd[1234]: Accepted password for {user} from {source} port 40023 ssh2"
    )
}

const FAILURES_PER_USER: &str = "
id: failures-per-user
title: Repeated login failures for one user
kind: threshold
severity: WARNING
match: 'category:authentication AND details.result:failure'
parameters: {group_by: [details.username], interval: 5m, threshold: 5}
message: '{count} failed logins for {details.username} within {interval}'
";

#[test]
fn a_threshold_fires_once_attaches_further_events_and_clears_when_the_window_empties() {
    let mut engine = engine(FAILURES_PER_USER);
    assert_eq!(engine.statuses()[0].colour, RuleColour::Gray);
    let mut lines: Vec<String> = (0..4)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "203.0.113.5"))
        .collect();
    let first_four = events(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(&mut engine, &first_four).is_empty());
    assert_eq!(engine.statuses()[0].colour, RuleColour::Green);

    lines = vec![
        failed("10:00:05", "root", "203.0.113.5"),
        failed("10:00:06", "root", "198.51.100.9"),
        // Another user does not add to root's count.
        failed("10:00:07", "alice", "203.0.113.5"),
    ];
    let more = events(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let fired = run(&mut engine, &more);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    let detection = &fired[0];
    assert_eq!(detection.state, DetectionState::Fired);
    assert_eq!(&*detection.rule_id, "failures-per-user");
    assert_eq!(
        detection.group,
        vec![("details.username".to_owned(), "root".to_owned())]
    );
    assert_eq!(detection.count, 5);
    assert_eq!(detection.related_event_ids.len(), 5);
    assert_eq!(detection.related_event_ids[0], first_four[0].id);
    assert_eq!(detection.message, "5 failed logins for root within 5m");
    assert_eq!(detection.severity, "WARNING");
    assert_eq!(engine.statuses()[0].colour, RuleColour::Red);
    assert_eq!(engine.statuses()[0].active, 1);

    // Well past the window: root's events have all left it, so it clears with the attached one.
    let later = events(&[
        &accepted("10:06:00", "alice", "10.0.0.1"),
        &failed("10:20:00", "carol", "10.0.0.2"),
    ]);
    let cleared = run(&mut engine, &later);
    assert_eq!(cleared.len(), 1, "{cleared:#?}");
    assert_eq!(cleared[0].state, DetectionState::Cleared);
    assert_eq!(cleared[0].clears.as_deref(), Some(detection.id.as_str()));
    assert_eq!(cleared[0].count, 6, "five that fired it and one attached");
    assert_eq!(cleared[0].related_event_ids.len(), 6);
    assert_eq!(engine.statuses()[0].active, 0);
}

#[test]
fn a_threshold_fires_again_only_after_it_cleared() {
    let mut engine = engine(FAILURES_PER_USER);
    let lines: Vec<String> = (0..30)
        .map(|second| failed(&format!("10:00:{second:02}"), "root", "203.0.113.5"))
        .chain((0..5).map(|second| failed(&format!("10:30:{second:02}"), "root", "203.0.113.5")))
        .collect();
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let states: Vec<(DetectionState, u64)> = detections
        .iter()
        .map(|detection| (detection.state, detection.count))
        .collect();
    assert_eq!(
        states,
        vec![
            (DetectionState::Fired, 5),
            (DetectionState::Cleared, 30),
            (DetectionState::Fired, 5)
        ]
    );
}

#[test]
fn more_than_five_failures_from_one_source_uses_gt_and_the_source_filter() {
    let mut engine = engine(
        "
id: failures-per-source
title: Login failures from one source
kind: threshold
match: 'category:authentication AND details.result:failure'
parameters:
  group_by: [details.sourceipaddress]
  compare: gt
  threshold: 5
  source_addresses: [203.0.113.0/24]
",
    );
    let users = ["root", "admin", "oracle", "test", "guest", "ubuntu", "pi"];
    let mut lines: Vec<String> = users
        .iter()
        .enumerate()
        .map(|(second, user)| failed(&format!("11:00:{second:02}"), user, "203.0.113.77"))
        .collect();
    // Outside the networks watched: never counted.
    lines.extend(
        (0..10).map(|second| failed(&format!("11:00:{:02}", 10 + second), "root", "192.0.2.1")),
    );
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].count, 6, "fires at the sixth: more than five");
    assert_eq!(
        detections[0].group,
        vec![(
            "details.sourceipaddress".to_owned(),
            "203.0.113.77".to_owned()
        )]
    );
}

#[test]
fn a_distinct_count_catches_one_source_trying_many_user_names() {
    let mut engine = engine(
        "
id: many-users-one-source
title: One source tries many user names
kind: distinct_count
match: 'category:authentication AND details.result:failure'
parameters: {group_by: [details.sourceipaddress], field: details.username, threshold: 4, interval: 10m}
",
    );
    let lines = [
        failed("12:00:00", "root", "203.0.113.9"),
        failed("12:00:01", "root", "203.0.113.9"),
        failed("12:00:02", "admin", "203.0.113.9"),
        failed("12:00:03", "admin", "203.0.113.9"),
        failed("12:00:04", "oracle", "203.0.113.9"),
        failed("12:00:05", "root", "198.51.100.1"),
        failed("12:00:06", "git", "203.0.113.9"),
    ];
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].count, 4);
    assert_eq!(
        detections[0].related_event_ids.len(),
        6,
        "every event of the source in the window"
    );
}

const FAILURES_THEN_SUCCESS: &str = "
id: failures-then-success
title: Failures then a success from one source
kind: sequence
match: 'category:authentication'
parameters:
  group_by: [details.sourceipaddress]
  interval: 10m
  steps:
    - {match: 'details.result:failure', count: 3}
    - {match: 'details.result:success'}
";

#[test]
fn a_sequence_needs_its_steps_in_order_within_the_interval() {
    let mut engine = engine(FAILURES_THEN_SUCCESS);
    let lines = [
        // A success first does not count as the end of a later chain.
        accepted("13:00:00", "alice", "203.0.113.20"),
        failed("13:00:01", "alice", "203.0.113.20"),
        failed("13:00:02", "alice", "203.0.113.20"),
        // Only two failures so far: not yet.
        accepted("13:00:03", "alice", "203.0.113.20"),
        failed("13:00:04", "bob", "203.0.113.20"),
        accepted("13:00:05", "bob", "203.0.113.20"),
    ];
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(detections[0].count, 4, "three failures and the success");
    assert!(
        detections[0].message.contains("203.0.113.20"),
        "{}",
        detections[0].message
    );

    // Failures more than the interval before the success do not complete it.
    let mut engine = self::engine(FAILURES_THEN_SUCCESS);
    let lines = [
        failed("14:00:00", "alice", "203.0.113.21"),
        failed("14:00:01", "alice", "203.0.113.21"),
        failed("14:00:02", "alice", "203.0.113.21"),
        accepted("14:10:03", "alice", "203.0.113.21"),
    ];
    assert!(
        run(
            &mut engine,
            &events(&lines.iter().map(String::as_str).collect::<Vec<_>>())
        )
        .is_empty()
    );
}

#[test]
fn an_unordered_sequence_takes_its_steps_in_any_order() {
    let mut engine = engine(
        "
id: su-and-useradd
title: A switch to root and a new user on one host
kind: sequence
parameters:
  group_by: [hostname]
  ordered: false
  steps:
    - {match: 'category:account AND details.action:useradd'}
    - {match: 'processname:su AND details.username:root'}
",
    );
    let lines = [
        "Jun  1 15:00:00 db1 useradd[9]: new user: name=eve, UID=0, GID=0, home=/root, shell=/bin/bash",
        "Jun  1 15:00:30 db1 su[99]: pam_unix(su:session): session opened for user root by alice(uid=1000)",
    ];
    let detections = run(&mut engine, &events(&lines));
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        detections[0].group,
        vec![("hostname".to_owned(), "db1".to_owned())]
    );
}

#[test]
fn absence_fires_for_a_host_that_stops_marking_and_clears_when_it_returns() {
    let mut engine = engine(
        "
id: syslog-mark-missing
title: Syslog MARK missing
kind: absence
severity: ERROR
match: 'MARK'
parameters: {group_by: [hostname], interval: 20m}
",
    );
    let mark = |time: &str, host: &str| format!("Jun  1 {time} {host} -- MARK --");
    let lines = [
        mark("10:00:00", "web1"),
        mark("10:00:00", "web2"),
        mark("10:20:00", "web1"),
        mark("10:40:00", "web1"),
        mark("10:45:00", "web2"),
    ];
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(
        detections[0].hostname.as_deref(),
        Some("web2"),
        "the silent host is the detection's host"
    );
    let seen: Vec<(DetectionState, String, String)> = detections
        .iter()
        .map(|detection| {
            (
                detection.state,
                detection.group[0].1.clone(),
                isms_event::format_time(detection.detected_micros),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                DetectionState::Fired,
                "web2".to_owned(),
                "2026-06-01T10:20:00.000000+00:00".to_owned()
            ),
            (
                DetectionState::Cleared,
                "web2".to_owned(),
                "2026-06-01T10:45:00.000000+00:00".to_owned()
            ),
        ]
    );
}

#[test]
fn absence_also_fires_on_the_clock_when_nothing_arrives_at_all() {
    let mut engine = engine(
        "
id: host-silent
title: Host stopped sending
kind: absence
parameters: {group_by: [hostname], interval: 1m}
",
    );
    let only = events(&[&failed("10:00:00", "root", "10.0.0.1")]);
    assert!(run(&mut engine, &only).is_empty());
    let received = only[0].receivedtimestamp_micros;
    assert!(engine.tick(received + 30_000_000).is_empty());
    let detections = engine.tick(received + 61_000_000);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        detections[0].group,
        vec![("hostname".to_owned(), "web1".to_owned())]
    );
    assert!(
        engine.tick(received + 120_000_000).is_empty(),
        "fires once while silent"
    );
}

#[test]
fn first_seen_fires_for_a_new_source_address_of_a_user_and_remembers_it() {
    let mut engine = engine(
        "
id: new-source-for-user
title: Login from a new address for a user
kind: first_seen
match: 'category:authentication AND details.result:success'
parameters: {group_by: [details.username], fields: [details.sourceipaddress], learning: 1h}
",
    );
    let lines = [
        accepted("08:00:00", "alice", "10.0.0.5"),
        // Still learning: an hour after the first event.
        accepted("08:30:00", "alice", "10.0.0.6"),
        accepted("09:30:00", "alice", "10.0.0.5"),
        accepted("09:31:00", "alice", "203.0.113.50"),
        accepted("09:32:00", "alice", "203.0.113.50"),
        accepted("09:33:00", "bob", "10.0.0.5"),
    ];
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let seen: Vec<String> = detections
        .iter()
        .map(|detection| detection.message.clone())
        .collect();
    assert_eq!(detections.len(), 2, "{seen:?}");
    assert!(
        seen[0].contains("203.0.113.50") && seen[0].contains("alice"),
        "{seen:?}"
    );
    assert!(seen[1].contains("bob"), "{seen:?}");
}

#[test]
fn a_rule_adds_the_scanner_to_the_blocklist_and_a_later_login_from_it_fires() {
    let mut engine = engine(
        "
id: invalid-users-blocklist
title: Invalid users probed
kind: threshold
match: 'details.invaliduser:true'
parameters: {group_by: [details.sourceipaddress], threshold: 3, interval: 1m}
add_to_list: {list: blocklist, field: details.sourceipaddress}
---
id: login-from-blocklisted
title: Login from a blocklisted address
kind: list
severity: CRITICAL
match: 'category:authentication AND details.result:success'
parameters: {field: details.sourceipaddress, list: blocklist}
",
    );
    let invalid = |time: &str, user: &str| {
        format!("Jun  1 {time} web1 sshd[7]: Invalid user {user} from 198.51.100.66 port 5000")
    };
    let lines = [
        accepted("16:00:00", "alice", "198.51.100.66"),
        invalid("16:00:01", "a"),
        invalid("16:00:02", "b"),
        invalid("16:00:03", "c"),
        accepted("16:05:00", "alice", "198.51.100.66"),
    ];
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let rules: Vec<(&str, DetectionState)> = detections
        .iter()
        .map(|detection| (&*detection.rule_id, detection.state))
        .collect();
    // The probe's own count clears once its minute has passed, before the login is looked up.
    assert_eq!(
        rules,
        vec![
            ("invalid-users-blocklist", DetectionState::Fired),
            ("invalid-users-blocklist", DetectionState::Cleared),
            ("login-from-blocklisted", DetectionState::Fired)
        ],
        "{detections:#?}"
    );
    assert!(engine.lists().contains("blocklist", "198.51.100.66"));
    assert_eq!(detections[2].severity, "CRITICAL");
}

#[test]
fn detections_chain_into_rules_on_detections_and_loops_stop_at_the_depth_limit() {
    let mut engine = engine(&format!(
        "{FAILURES_PER_USER}
---
id: brute-force-on-root
title: Brute force against root
kind: match
match: 'category:alert AND details.rule_id:failures-per-user AND details.username:root'
---
id: every-alert
title: Every alert
kind: match
match: 'category:alert'
---
id: every-alert-again
title: Every alert, again
kind: match
match: 'category:alert'
"
    ));
    let lines: Vec<String> = (0..5)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "203.0.113.5"))
        .collect();
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let chain: Vec<(&str, u32)> = detections
        .iter()
        .map(|detection| (&*detection.rule_id, detection.depth))
        .collect();
    // failures-per-user (0) -> brute-force-on-root and the two every-alert rules (1) -> each
    // every-alert rule on the other's detections and on brute-force-on-root's (2) ... a loop between
    // the two that stops at depth 5. No rule sees its own detections.
    assert_eq!(chain[0], ("failures-per-user", 0));
    assert!(chain.contains(&("brute-force-on-root", 1)), "{chain:?}");
    assert!(chain.contains(&("every-alert", 5)), "{chain:?}");
    assert!(chain.iter().all(|&(_, depth)| depth <= 5), "{chain:?}");
    assert!(engine.statistics().chain_stops > 0);
    for detection in &detections {
        if let Some(parent) = detections.iter().find(|parent| {
            detection.depth > 0 && detection.related_event_ids == vec![parent.id.clone()]
        }) {
            assert_ne!(
                parent.rule_id, detection.rule_id,
                "a rule fed its own detection: {chain:?}"
            );
        }
    }
    let root = detections
        .iter()
        .find(|detection| &*detection.rule_id == "brute-force-on-root")
        .unwrap();
    assert_eq!(root.related_event_ids, vec![detections[0].id.clone()]);
}

#[test]
fn a_detection_becomes_an_event_for_the_rules_only_when_some_rule_could_take_it() {
    let lines: Vec<String> = (0..5)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "203.0.113.5"))
        .collect();
    let events = events(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    // Rules only on fields a detection never has: nothing is fed back, no event is made, but the
    // detection has its id, and the event made from it later carries that id.
    let mut lonely = engine(&format!(
        "{FAILURES_PER_USER}
---
id: on-sources
title: On sources
kind: match
match: 'details.sourceport:40022 OR category:authentication AND details.program:/ss.d/'
"
    ));
    let detections = run(&mut lonely, &events);
    assert!(!detections.is_empty());
    for detection in &detections {
        assert!(detection.event.is_none(), "{}", detection.rule_id);
        assert!(!detection.id.is_empty());
        assert_eq!(detection.to_event().id, detection.id);
    }
    // A rule on a group field of a detection (`details.username` of failures-per-user) can take
    // them: they are made into events and fed back.
    let mut chained = engine(&format!(
        "{FAILURES_PER_USER}
---
id: root-anywhere
title: Root anywhere
kind: match
match: 'details.username:root AND NOT details.sourceport:*'
"
    ));
    let detections = run(&mut chained, &events);
    let fed_back = detections
        .iter()
        .find(|detection| &*detection.rule_id == "root-anywhere")
        .expect("the detection was fed back");
    let parent = &detections[0];
    assert_eq!(&*parent.rule_id, "failures-per-user");
    assert_eq!(parent.event.as_ref().unwrap().id, parent.id);
    assert_eq!(fed_back.related_event_ids, vec![parent.id.clone()]);
}

#[test]
fn tracked_entities_are_bounded_and_evictions_counted() {
    let mut engine = engine(
        "
id: bounded
title: Bounded
kind: threshold
match: 'category:authentication'
parameters: {group_by: [details.username], threshold: 100, max_entities: 10}
",
    );
    let lines: Vec<String> = (0..25)
        .map(|index| {
            failed(
                &format!("10:00:{index:02}"),
                &format!("user{index}"),
                "10.0.0.1",
            )
        })
        .collect();
    run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let status = &engine.statuses()[0];
    assert!(status.tracked <= 10, "{status:?}");
    assert!(engine.statistics().evictions >= 15);
}

#[test]
fn events_older_than_the_window_are_counted_as_late_and_ignored() {
    let mut engine = engine(FAILURES_PER_USER);
    let lines = [
        failed("10:10:00", "root", "10.0.0.1"),
        failed("10:00:00", "root", "10.0.0.1"),
        failed("10:09:00", "root", "10.0.0.1"),
    ];
    run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(engine.statistics().late_events, 1);
}

#[test]
fn a_changed_message_keeps_the_state_and_a_changed_parameter_resets_it() {
    let mut engine = engine(FAILURES_PER_USER);
    let lines: Vec<String> = (0..5)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "203.0.113.5"))
        .collect();
    assert_eq!(
        run(
            &mut engine,
            &events(&lines.iter().map(String::as_str).collect::<Vec<_>>())
        )
        .len(),
        1
    );
    engine.set_rules(rules(
        &FAILURES_PER_USER.replace("failed logins", "failures"),
    ));
    assert_eq!(engine.statuses()[0].active, 1);
    engine.set_rules(rules(
        &FAILURES_PER_USER.replace("threshold: 5", "threshold: 6"),
    ));
    assert_eq!(engine.statuses()[0].colour, RuleColour::Gray);
}

#[test]
fn state_survives_a_restart_through_a_snapshot_unless_the_rule_changed() {
    let lines: Vec<String> = (0..5)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "203.0.113.5"))
        .collect();
    let all = events(&lines.iter().map(String::as_str).collect::<Vec<_>>());
    let mut before = engine(FAILURES_PER_USER);
    assert!(run(&mut before, &all[..3]).is_empty());
    let mut saved = Vec::new();
    before.write_snapshot(&mut saved).unwrap();

    let mut after = engine(FAILURES_PER_USER);
    assert_eq!(after.restore(saved.as_slice()).unwrap(), 1);
    assert_eq!(after.statuses()[0].tracked, 1);
    let detections = run(&mut after, &all[3..]);
    assert_eq!(
        detections.len(),
        1,
        "three before the restart and two after make five"
    );
    assert_eq!(detections[0].related_event_ids[0], all[0].id);

    let mut changed = engine(&FAILURES_PER_USER.replace("threshold: 5", "threshold: 4"));
    assert_eq!(changed.restore(saved.as_slice()).unwrap(), 0);
    assert!(run(&mut changed, &all[3..]).is_empty());
}

#[test]
fn hosts_expected_by_a_list_match_their_events_whatever_the_case_and_are_watched_from_the_start() {
    let mut engine = engine(
        "
id: mark-missing
title: Syslog MARK missing
kind: absence
match: 'MARK'
parameters: {group_by: [hostname], interval: 20m, expected_list: mark-hosts}
",
    );
    engine.lists_mut().add("mark-hosts", "WEB1");
    engine.lists_mut().add("mark-hosts", "db9");
    let mark = |time: &str, host: &str| format!("Jun  1 {time} {host} -- MARK --");
    let lines = [
        mark("10:00:00", "WEB1"),
        mark("10:19:00", "WEB1"),
        mark("10:38:00", "Web1"),
        mark("10:57:00", "web1"),
    ];
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    let hosts: Vec<&str> = detections
        .iter()
        .map(|detection| detection.group[0].1.as_str())
        .collect();
    // db9 never marked: it fires once; web1 marks in every spelling and never does.
    assert_eq!(hosts, vec!["db9"], "{detections:#?}");
}

#[test]
fn a_cleared_detection_names_what_the_firing_event_named() {
    let mut engine = engine(&FAILURES_PER_USER.replace(
        "message: '{count} failed logins for {details.username} within {interval}'",
        "message: '{count} failed logins for {details.username} from {details.sourceipaddress}'",
    ));
    let lines: Vec<String> = (0..5)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "203.0.113.5"))
        .chain([failed("10:30:00", "alice", "10.0.0.1")])
        .collect();
    let detections = run(
        &mut engine,
        &events(&lines.iter().map(String::as_str).collect::<Vec<_>>()),
    );
    assert_eq!(detections.len(), 2, "{detections:#?}");
    assert_eq!(
        detections[1].message,
        "cleared: 5 failed logins for root from 203.0.113.5"
    );
    assert_eq!(detections[1].hostname.as_deref(), Some("web1"));
}

mod dispatch {
    //! The engine skips rules an event cannot match (by the equalities their match requires): it
    //! must fire exactly the rules whose match the event satisfies, whatever the case of values,
    //! arrays, ORs and NOTs.
    use std::collections::BTreeSet;

    use isms_event::{Event, Origin};
    use proptest::prelude::*;
    use serde_json::json;

    const FIELDS: [&str; 3] = ["hostname", "details.username", "category"];
    const VALUES: [&str; 4] = ["web1", "Root", "authentication", "bob"];

    /// Wildcard patterns: literals the dispatch files rules under (`*oot*`, `web*`), one too short
    /// to file (`*b*`), and one with no literal at all; regexes filed under the literals every match
    /// holds (a run, each branch of an alternation, a group repeated, letters of `(?i)`) or not.
    const PATTERNS: [&str; 12] = [
        "*oot*",
        "WEB*",
        "*ENTIC*",
        "*b*",
        "*",
        "b?b",
        "/.*oot.*/",
        "/(?i)WE(b|x)1/",
        "/Root|bob/",
        "/[a-z]uthent.*/",
        "/r(oo)+t/",
        "/(ro|bo).*/",
    ];

    fn atom() -> impl Strategy<Value = String> {
        prop_oneof![
            (0..FIELDS.len(), 0..VALUES.len(), any::<bool>()).prop_map(|(field, value, upper)| {
                let value = if upper {
                    VALUES[value].to_uppercase()
                } else {
                    VALUES[value].to_owned()
                };
                format!("{}:{value}", FIELDS[field])
            }),
            (0..FIELDS.len(), 0..PATTERNS.len())
                .prop_map(|(field, pattern)| format!("{}:{}", FIELDS[field], PATTERNS[pattern])),
        ]
    }

    fn clause() -> impl Strategy<Value = String> {
        prop_oneof![
            atom(),
            atom().prop_map(|atom| format!("NOT {atom}")),
            (atom(), atom()).prop_map(|(left, right)| format!("({left} OR {right})")),
        ]
    }

    fn query() -> impl Strategy<Value = String> {
        proptest::collection::vec(clause(), 1..4).prop_map(|clauses| clauses.join(" AND "))
    }

    fn event() -> impl Strategy<Value = serde_json::Value> {
        (0..VALUES.len(), 0..VALUES.len(), 0..VALUES.len(), any::<bool>(), any::<bool>()).prop_map(
            |(host, user, category, upper, array)| {
                let host = if upper { VALUES[host].to_uppercase() } else { VALUES[host].to_owned() };
                let user = if array {
                    json!(["nobody", VALUES[user]])
                } else {
                    json!(VALUES[user])
                };
                json!({"summary": "x", "hostname": host, "category": VALUES[category], "details": {"username": user}})
            },
        )
    }

    proptest! {
        #[test]
        fn only_rules_whose_match_holds_fire_and_all_of_them_do(
            queries in proptest::collection::vec(query(), 1..12),
            raw_events in proptest::collection::vec(event(), 1..20),
        ) {
            let rules = super::match_rules(&queries);
            let origin = Origin { peer: None, endpoint: "test".to_owned(), key_name: None };
            let received = "2026-06-01T00:00:00Z".parse().unwrap();
            let events: Vec<Event> = raw_events
                .into_iter()
                .map(|raw| isms_event::normalize(raw, &origin, received).unwrap())
                .collect();
            let mut expected = BTreeSet::new();
            for event in &events {
                for rule in &rules {
                    if rule.predicate.matches(&event.document) {
                        expected.insert((event.id.clone(), rule.id().to_owned()));
                    }
                }
            }
            let mut engine = crate::common::engine_of(rules);
            let mut fired = BTreeSet::new();
            for event in &events {
                for detection in engine.process(event) {
                    if detection.depth == 0 {
                        fired.insert((detection.related_event_ids[0].clone(), detection.rule_id.to_string()));
                    }
                }
            }
            prop_assert_eq!(fired, expected);
        }
    }
}

#[test]
fn a_scheduled_rule_turns_each_count_that_satisfies_it_into_a_detection() {
    let mut engine = engine(
        "
id: noisy-sources
title: Sources with many failures in the last hour
kind: scheduled
match: 'details.result:failure'
parameters: {schedule: '*/5 * * * *', look_back: 1h, group_by: [details.sourceipaddress], threshold: 5}
message: '{count} failures from {details.sourceipaddress} in the last {interval}'
",
    );
    // Not run per event.
    let lines: Vec<String> = (0..9)
        .map(|second| failed(&format!("10:00:0{second}"), "root", "10.0.0.1"))
        .collect();
    assert!(
        run(
            &mut engine,
            &events(&lines.iter().map(String::as_str).collect::<Vec<_>>())
        )
        .is_empty()
    );
    let scheduled = engine.scheduled_rules();
    assert_eq!(scheduled.len(), 1);
    let (id, query, config) = &scheduled[0];
    assert_eq!(
        (id.as_str(), query.as_str()),
        ("noisy-sources", "details.result:failure")
    );
    let now = 1_780_000_000_000_000;
    let next = config.next_run_after(now).unwrap();
    assert!(
        next > now && next - now <= 300_000_000 && next % 300_000_000 == 0,
        "{next}"
    );
    let detections = engine.scheduled_result(
        "noisy-sources",
        &[("10.0.0.1".to_owned(), 7), ("10.0.0.2".to_owned(), 2)],
        now,
    );
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        detections[0].group,
        vec![("details.sourceipaddress".to_owned(), "10.0.0.1".to_owned())]
    );
    assert_eq!(detections[0].count, 7);
    assert_eq!(
        detections[0].message,
        "7 failures from 10.0.0.1 in the last 1h"
    );
    assert!(
        engine
            .scheduled_result("no-such-rule", &[("x".to_owned(), 9)], now)
            .is_empty()
    );
}

const BYTES_PER_PERSON: &str = "
id: bytes-per-person
title: Bytes sent per person
kind: threshold
match: 'category:transfer'
parameters:
  group_by: [details.person]
  group_by_per_rule:
    - {match: 'details.kind:vpn', group_by: [details.account]}
  aggregate: sum
  field: details.bytes
  condition: {ge: 1000, lt: 5000}
  interval: 10m
";

fn transfer(seconds: i64, details: serde_json::Value) -> Event {
    let origin = Origin {
        peer: None,
        endpoint: "test".to_owned(),
        key_name: None,
    };
    let time = jiff::Timestamp::from_second(1_780_000_000 + seconds).unwrap();
    isms_event::normalize(
        serde_json::json!({"utctimestamp": time.to_string(), "category": "transfer", "details": details}),
        &origin,
        time,
    )
    .unwrap()
}

#[test]
fn an_aggregate_keyed_per_rule_survives_a_restart_and_clears_when_its_sum_leaves_the_range() {
    use serde_json::json;
    let events = [
        transfer(0, json!({"person": "alice", "bytes": 400})),
        // A VPN event names the person `account`.
        transfer(
            10,
            json!({"kind": "vpn", "account": "alice", "bytes": "300"}),
        ),
        transfer(20, json!({"person": "bob", "bytes": 900})),
        transfer(30, json!({"person": "alice", "bytes": "lots"})),
        transfer(40, json!({"person": "alice", "bytes": 300})),
    ];
    let mut before = engine(BYTES_PER_PERSON);
    assert!(run(&mut before, &events[..3]).is_empty());
    let mut saved = Vec::new();
    before.write_snapshot(&mut saved).unwrap();

    let mut after = engine(BYTES_PER_PERSON);
    assert_eq!(after.restore(saved.as_slice()).unwrap(), 1);
    let detections = run(&mut after, &events[3..]);
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        detections[0].group,
        [("details.person".to_owned(), "alice".to_owned())]
    );
    assert_eq!(
        detections[0].related_event_ids,
        [
            events[0].id.clone(),
            events[1].id.clone(),
            events[4].id.clone()
        ],
        "400 + 300 before the restart and 300 after make 1000; `lots` is not a number"
    );
    assert_eq!(detections[0].count, 3);

    // 1000 + 4000 leaves the range (< 5000): cleared at once.
    let more = run(
        &mut after,
        &[transfer(50, json!({"person": "alice", "bytes": 4000}))],
    );
    assert_eq!(more.len(), 1, "{more:#?}");
    assert_eq!(more[0].state, DetectionState::Cleared);

    // Fired again on a fresh engine, then the window empties: cleared by the sweep.
    let mut fresh = engine(BYTES_PER_PERSON);
    let fired = run(
        &mut fresh,
        &[
            transfer(0, json!({"person": "carol", "bytes": 1500})),
            transfer(2000, json!({"person": "dave", "bytes": 1})),
        ],
    );
    let states: Vec<DetectionState> = fired.iter().map(|detection| detection.state).collect();
    assert_eq!(states, [DetectionState::Fired, DetectionState::Cleared]);
    assert_eq!(
        fired[1].detected_micros,
        (1_780_000_000 + 600) * 1_000_000,
        "cleared when carol's 1500 left the 10-minute window"
    );

    let mut changed = engine(&BYTES_PER_PERSON.replace("ge: 1000", "ge: 900"));
    assert_eq!(changed.restore(saved.as_slice()).unwrap(), 0);
}

mod prefilter {
    //! A replay rules out incoming events no rule can match before it builds them: an event the
    //! test rules out must be one the engine, given the built event, would not have fired on.
    use isms_detect::{Engine, EngineOptions, Lists, parse_rules};
    use isms_event::Origin;
    use proptest::prelude::*;
    use serde_json::json;

    const FIELDS: [&str; 6] = [
        "details.image",
        "details.commandline",
        "details.username",
        "details.proc.image",
        "details.image_path",
        "details.eventid",
    ];
    const TESTS: [&str; 10] = [
        "cmd.exe",
        "*\\\\cmd.exe",
        "*whoami*",
        "Power*",
        "/.*net\\\\s+user.*/",
        "/(?i)MIMI(katz|dogz)/",
        "root",
        "4688",
        "*b?b*",
        "1.5",
    ];
    const VALUES: [&str; 9] = [
        "cmd.exe",
        "C:\\Windows\\CMD.EXE",
        "whoami /all",
        "powershell -nop",
        "net  user add",
        "mimikatz",
        "ROOT",
        "bob",
        "notepad",
    ];
    /// Incoming keys: as the rules name them, in capitals, with a dot, aliased (`user` is stored
    /// as `username` unless that is taken), nesting, and a MozDef field (not judged from the text).
    const KEYS: [&str; 9] = [
        "Image",
        "CommandLine",
        "User",
        "user",
        "username",
        "Proc",
        "Image.Path",
        "EventID",
        "summary",
    ];

    fn query() -> impl Strategy<Value = String> {
        (
            proptest::collection::vec((0..FIELDS.len(), 0..TESTS.len()), 1..4),
            any::<bool>(),
        )
            .prop_map(|(tests, all)| {
                tests
                    .into_iter()
                    .map(|(field, test)| format!("{}:{}", FIELDS[field], TESTS[test]))
                    .collect::<Vec<_>>()
                    .join(if all { " AND " } else { " OR " })
            })
    }

    fn scalar() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            4 => (0..VALUES.len()).prop_map(|index| json!(VALUES[index])),
            1 => (0u64..5000).prop_map(|number| json!(number)),
            1 => Just(json!(4688)),
            1 => Just(json!(1.5)),
            1 => Just(json!(-2)),
            1 => Just(json!(null)),
            1 => any::<bool>().prop_map(|value| json!(value)),
        ]
    }

    fn value() -> impl Strategy<Value = serde_json::Value> {
        scalar().prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("Image".to_owned()),
                        Just("IMAGE".to_owned()),
                        Just("other".to_owned())
                    ],
                    inner,
                    0..3
                )
                .prop_map(|members| serde_json::Value::Object(members.into_iter().collect())),
            ]
        })
    }

    fn raw_event() -> impl Strategy<Value = serde_json::Value> {
        proptest::collection::btree_map(
            prop_oneof![9 => (0..KEYS.len() - 1).prop_map(|index| KEYS[index]), 1 => Just(KEYS[KEYS.len() - 1])],
            value(),
            1..6,
        )
        .prop_map(|members| {
            serde_json::Value::Object(
                members
                    .into_iter()
                    .map(|(key, value)| (key.to_owned(), value))
                    .collect(),
            )
        })
    }

    proptest! {
        #[test]
        fn what_the_prefilter_rules_out_no_rule_fires_on(
            queries in proptest::collection::vec(query(), 1..6),
            raw_events in proptest::collection::vec(raw_event(), 1..30),
        ) {
            let rules = super::match_rules(&queries);
            let mut engine = Engine::new(rules, Lists::default(), EngineOptions { allowed_lateness_micros: 0, max_chain_depth: 5 });
            let prefilter = engine.event_prefilter();
            // Every rule needs some literal (`*b?b*` one too short to file the rule under, which
            // still counts here): the test exists.
            prop_assert!(prefilter.is_some());
            let prefilter = prefilter.unwrap();
            let mut scratch = isms_detect::PrefilterScratch::default();
            let origin = Origin { peer: None, endpoint: "test".to_owned(), key_name: None };
            let received = "2026-06-01T00:00:00Z".parse().unwrap();
            for raw in raw_events {
                let details_only = raw.as_object().is_some_and(isms_event::normalizes_to_details_only);
                // The event read from its text is judged as the parsed one is, and only when
                // normalization keeps it as details only.
                let text = serde_json::to_string(&raw).unwrap();
                let judged = prefilter.judge_json_line(&text, &mut scratch, &|_| true);
                let may_match = prefilter.may_match(&raw);
                if details_only {
                    prop_assert_eq!(judged, Some(may_match), "{}", text);
                } else {
                    prop_assert_eq!(judged, None, "{}", text);
                }
                let event = match isms_event::normalize(raw.clone(), &origin, received) {
                    Ok(event) => event,
                    // Only an event with a MozDef field may be refused (and it is never ruled out).
                    Err(_) if !details_only => continue,
                    Err(error) => panic!("{raw} refused: {error}"),
                };
                let detections = engine.process(&event);
                if details_only && !may_match {
                    prop_assert!(detections.is_empty(), "{} ruled out, but {:?} fired", raw, detections.iter().map(|d| &d.rule_id).collect::<Vec<_>>());
                }
            }
        }
    }

    #[test]
    fn a_scratch_moved_to_another_prefilter_forgets_what_it_knew_of_the_first() {
        let prefilter_of = |query: &str| {
            Engine::new(
                super::match_rules(&[query]),
                Lists::default(),
                EngineOptions::default(),
            )
            .event_prefilter()
            .unwrap()
        };
        let on_image = prefilter_of("details.image:*cmd.exe");
        let on_user = prefilter_of("details.username:root OR details.commandline:*whoami*");
        let mut scratch = isms_detect::PrefilterScratch::default();
        let all = |_: &str| true;
        let bob_runs_cmd = r#"{"Image": "cmd.exe", "User": "bob"}"#;
        let root_runs_calc = r#"{"Image": "calc.exe", "User": "root"}"#;
        // Twice over, the scratch going from one prefilter to the other at each line.
        for _ in 0..2 {
            for (prefilter, line, expected) in [
                (&on_image, bob_runs_cmd, true),
                (&on_user, bob_runs_cmd, false),
                (&on_image, root_runs_calc, false),
                (&on_user, root_runs_calc, true),
            ] {
                assert_eq!(
                    prefilter.judge_json_line(line, &mut scratch, &all),
                    Some(expected),
                    "{line}"
                );
            }
        }
    }

    #[test]
    fn a_line_that_is_not_one_object_of_details_is_not_judged_from_its_text() {
        let (rules, errors) = parse_rules(
            "id: r\ntitle: t\nkind: match\nmatch: 'details.image:*\\\\cmd.exe'\n",
            "r.yml",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let engine = Engine::new(rules, Lists::default(), EngineOptions::default());
        let prefilter = engine.event_prefilter().unwrap();
        let mut scratch = isms_detect::PrefilterScratch::default();
        let mut judge = |line: &str, keeps: &dyn Fn(&str) -> bool| {
            prefilter.judge_json_line(line, &mut scratch, keeps)
        };
        let all = |_: &str| true;
        assert_eq!(judge(r#"{"Image": "c:\\cmd.exe"}"#, &all), Some(true));
        assert_eq!(
            judge(
                r#"{"Image": "c:\\calc.exe", "x": [1, {"Image": "cmd.exe"}]}"#,
                &all
            ),
            Some(false)
        );
        // Escapes in keys and values are read as the parser reads them.
        assert_eq!(
            judge(r#"{"Im\u0061ge": "c:\u005ccmd.exe"}"#, &all),
            Some(true)
        );
        for line in [
            "{}",
            "[1, 2]",
            r#"{"Image": "c:\\calc.exe"} trailing"#,
            r#"{"Image": "c:\\calc.exe""#,
            r#"{"Image": "c:\\calc.exe", "summary": "a MozDef field"}"#,
            r#"{"Image": "c:\\calc.exe", "Host": "an alias of hostname"}"#,
        ] {
            assert_eq!(judge(line, &all), None, "{line}");
        }
        // A key the reader's decoder may change the object for.
        assert_eq!(
            judge(r#"{"Image": "c:\\calc.exe", "ts": 1}"#, &|key| key != "ts"),
            None
        );
        // Too deep to walk where a rule looks: not judged (and let through when parsed).
        let deep = format!("{{\"Image\": {}1{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(judge(&deep, &all), None);
        let deep_value: serde_json::Value = serde_json::from_str(&deep).unwrap();
        assert!(prefilter.may_match(&deep_value));
    }

    #[test]
    fn there_is_no_prefilter_when_a_rule_needs_every_event_or_a_field_normalization_fills() {
        for query in [
            "NOT details.image:cmd.exe",
            "hostname:web1",
            "category:authentication OR details.username:root",
        ] {
            let engine = Engine::new(
                super::match_rules(&[query]),
                Lists::default(),
                EngineOptions::default(),
            );
            assert!(engine.event_prefilter().is_none(), "{query}");
        }
        let (rules, _) = parse_rules(
            "id: r\ntitle: t\nkind: threshold\nmatch: 'details.image:cmd.exe'\nparameters: {group_by: [details.username], interval: 5m, threshold: 3}\n",
            "r.yml",
        );
        let engine = Engine::new(rules, Lists::default(), EngineOptions::default());
        assert!(engine.event_prefilter().is_none());
        let (rules, _) = parse_rules(
            "id: r\ntitle: t\nkind: match\nmatch: 'details.image:*\\\\cmd.exe'\n",
            "r.yml",
        );
        let engine = Engine::new(rules, Lists::default(), EngineOptions::default());
        let prefilter = engine.event_prefilter().expect("a match rule on a literal");
        assert!(prefilter.may_match(&serde_json::json!({"Image": "C:\\Windows\\CMD.exe"})));
        assert!(
            !prefilter.may_match(
                &serde_json::json!({"Image": "C:\\Windows\\notepad.exe", "User": "cmd"})
            )
        );
        // A field normalization fills is left to the rule; the other conditions of an AND still
        // rule out, each of them (the user where `User` is stored, and the image).
        let (rules, errors) = parse_rules(
            "id: r\ntitle: t\nkind: match\nmatch: 'category:process AND details.username:root AND details.image:*\\\\cmd.exe'\n",
            "r.yml",
        );
        assert!(errors.is_empty(), "{errors:?}");
        let engine = Engine::new(rules, Lists::default(), EngineOptions::default());
        let prefilter = engine.event_prefilter().expect("two conditions on details");
        let may = |raw: serde_json::Value| prefilter.may_match(&raw);
        assert!(may(
            serde_json::json!({"User": "ROOT", "Image": "c:\\cmd.exe"})
        ));
        assert!(!may(
            serde_json::json!({"User": "bob", "Image": "c:\\cmd.exe"})
        ));
        assert!(!may(
            serde_json::json!({"User": "root", "Image": "c:\\calc.exe"})
        ));
        assert!(!may(
            serde_json::json!({"Image": "c:\\cmd.exe", "Note": "root"})
        ));
    }
}

/// A copy for another thread exists only when no rule keeps state from one event to the next,
/// and it makes the same detections of an event as the engine it was copied from.
#[test]
fn only_rules_without_state_give_a_copy_and_it_makes_the_same_detections() {
    let stateless = engine(
        "
id: failure
title: A failure
kind: match
match: 'details.result:failure'
message: '{details.username} failed'
---
id: blocklisted
title: From a blocklisted address
kind: list
match: 'category:authentication'
parameters: {field: details.sourceipaddress, list: blocklist}
---
id: after-failure
title: After a failure
kind: match
match: 'category:alert AND details.rule_id:failure'
",
    );
    let mut copy = stateless
        .stateless_copy()
        .expect("match and list rules keep no state");
    let mut original = stateless;
    let lines = [
        failed("10:00:00", "alice", "203.0.113.5"),
        failed("10:00:01", "bob", "203.0.113.6"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let events = events(&lines);
    let summary = |detections: Vec<Detection>| -> Vec<(String, String, u32)> {
        detections
            .into_iter()
            .map(|detection| {
                (
                    detection.rule_id.to_string(),
                    detection.message,
                    detection.depth,
                )
            })
            .collect()
    };
    let from_copy = summary(run(&mut copy, &events));
    assert_eq!(from_copy, summary(run(&mut original, &events)));
    assert_eq!(
        from_copy
            .iter()
            .map(|(rule, _, depth)| (rule.as_str(), *depth))
            .collect::<Vec<_>>(),
        [
            ("failure", 0),
            ("after-failure", 1),
            ("failure", 0),
            ("after-failure", 1)
        ]
    );
    // A window, or a list a rule grows, is state.
    for stateful in [
        "id: t\ntitle: t\nkind: threshold\nmatch: 'details.result:failure'\nparameters: {group_by: [details.username], threshold: 3, interval: 1m}\n",
        "id: m\ntitle: m\nkind: match\nmatch: 'details.result:failure'\nadd_to_list: {list: blocklist, field: details.sourceipaddress}\n",
    ] {
        assert!(engine(stateful).stateless_copy().is_none(), "{stateful}");
    }
}

/// With `interval_field`, each key's silence is measured against the interval its own latest
/// event gave (a heartbeat saying when to expect the next one), others against `interval`.
#[test]
fn absence_takes_each_keys_interval_from_its_latest_event() {
    let mut engine = engine(
        "
id: generator-silent
title: Generator silent
kind: absence
match: 'category:generator'
parameters: {group_by: [details.generator], interval: 1h, interval_field: details.expected_interval_seconds}
",
    );
    let contact = |minute: i64, generator: &str, interval: serde_json::Value| {
        let mut raw = serde_json::json!({
            "category": "generator",
            "summary": format!("generator {generator} called in"),
            "utctimestamp": 1_780_308_000 + minute * 60,
            "details": {"generator": generator},
        });
        if !interval.is_null() {
            raw["details"]["expected_interval_seconds"] = interval;
        }
        isms_event::normalize(
            raw,
            &isms_event::Origin {
                peer: None,
                endpoint: "test".into(),
                key_name: None,
            },
            jiff::Timestamp::from_second(1_780_308_000).unwrap(),
        )
        .unwrap()
    };
    let events = [
        contact(0, "HIDS", serde_json::json!(120)),
        contact(0, "NIDS", serde_json::Value::Null),
        contact(0, "WIDS", serde_json::json!("5m")),
        contact(1, "HIDS", serde_json::json!("120")),
        // From here HIDS is silent: past two minutes it fires; NIDS (an hour) and WIDS (five
        // minutes, then heard from) do not.
        contact(4, "WIDS", serde_json::json!("5m")),
        contact(8, "WIDS", serde_json::json!("5m")),
    ];
    let detections = run(&mut engine, &events);
    let fired: Vec<(String, String)> = detections
        .iter()
        .map(|detection| {
            (
                detection.group[0].1.clone(),
                isms_event::format_time(detection.detected_micros),
            )
        })
        .collect();
    assert_eq!(
        fired,
        vec![(
            "HIDS".to_owned(),
            isms_event::format_time((1_780_308_000 + 60 + 120) * 1_000_000)
        )]
    );
}
