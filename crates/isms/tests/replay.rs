//! `isms replay` from outside: rules from a directory (good and bad side by side), log files of
//! several formats out of order, the table and JSON output, and the exit status.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use harness::run_isms;
use serde_json::Value;

const RULES: &str = "
id: failures-per-user
title: Repeated login failures for one user
kind: threshold
severity: WARNING
match: 'category:authentication AND details.result:failure'
parameters: {group_by: [details.username], interval: 5m, threshold: 5}
message: '{count} failed logins for {details.username} within {interval}'
---
id: negative-threshold
title: A threshold of -1
kind: threshold
parameters:
  threshold: -1
";

const MORE_RULES: &str = "
id: login-from-blocklisted
title: Login from a blocklisted address
kind: list
severity: CRITICAL
match: 'category:authentication AND details.result:success'
parameters: {field: details.sourceipaddress, list: blocklist}
---
id: not-yaml
title: [unclosed
";

const CHAINED_RULE: &str = "
id: on-a-missing-rule
title: Builds on a rule that is not there
kind: match
match: 'category:alert AND details.rule_id:port-scan'
";

/// `isms replay --json --rules RULES FILE`, which must succeed: its detections and its standard error.
fn replay_json(rules: &std::path::Path, file: &std::path::Path) -> (Vec<Value>, String) {
    let output = run_isms(
        &[
            "replay".as_ref(),
            "--json".as_ref(),
            "--rules".as_ref(),
            rules.as_os_str(),
            file.as_os_str(),
        ],
        &[],
    );
    output.assert_success("isms replay");
    let detections = output
        .stdout_text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    (detections, output.stderr.clone())
}

/// A `rules` directory in `directory` holding `files` (name, content).
fn rules_directory(directory: &std::path::Path, files: &[(&str, &str)]) -> std::path::PathBuf {
    let rules = directory.join("rules");
    std::fs::create_dir(&rules).unwrap();
    for (name, content) in files {
        std::fs::write(rules.join(name), content).unwrap();
    }
    rules
}

fn failed(time: &str, user: &str) -> String {
    format!(
        "Jun  1 {time} web1 sshd[1234]: Failed password for {user} from 203.0.113.5 port 40022 ssh2\n"
    )
}

#[test]
fn replay_runs_rules_over_files_in_event_time_order_and_lists_the_rules_it_could_not_load() {
    let directory = tempfile::tempdir().unwrap();
    let rules = directory.path().join("rules");
    std::fs::create_dir_all(rules.join("more")).unwrap();
    std::fs::write(rules.join("ssh.yml"), RULES).unwrap();
    std::fs::write(rules.join("more/lists.yaml"), MORE_RULES).unwrap();
    std::fs::write(rules.join("more/chained.yml"), CHAINED_RULE).unwrap();
    let lists = directory.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(
        lists.join("blocklist.txt"),
        "# known bad\n198.51.100.0/24\n",
    )
    .unwrap();

    // Root's failures are split over two files given newest first, so only event-time order puts
    // five of them within five minutes; a MozDef JSON array and JSON lines ride along.
    let newer = directory.path().join("auth.log");
    std::fs::write(
        &newer,
        format!(
            "{}{}",
            failed("10:03:00", "root"),
            failed("10:04:00", "root")
        ),
    )
    .unwrap();
    let older = directory.path().join("auth.log.1");
    std::fs::write(
        &older,
        format!(
            "{}{}{}{}",
            failed("10:00:00", "root"),
            failed("10:01:00", "root"),
            failed("10:02:00", "root"),
            failed("09:00:00", "alice")
        ),
    )
    .unwrap();
    let mozdef = directory.path().join("events.json");
    std::fs::write(
        &mozdef,
        r#"[
  {"summary": "Accepted publickey for bob", "category": "authentication", "utctimestamp": "2026-06-01T11:00:00Z",
   "hostname": "web2", "details": {"result": "success", "username": "bob", "sourceipaddress": "198.51.100.7"}}
]"#,
    )
    .unwrap();
    let ndjson = directory.path().join("events.ndjson");
    std::fs::write(
        &ndjson,
        "{\"summary\": \"Accepted password for carol\", \"category\": \"authentication\", \"utctimestamp\": \"2026-06-01T11:30:00Z\", \"details\": {\"result\": \"success\", \"username\": \"carol\", \"sourceipaddress\": \"192.0.2.1\"}}\n",
    )
    .unwrap();

    let output = run_isms(
        &[
            "replay".as_ref(),
            "--rules".as_ref(),
            rules.as_os_str(),
            "--lists".as_ref(),
            lists.as_os_str(),
            "--json".as_ref(),
            newer.as_os_str(),
            older.as_os_str(),
            mozdef.as_os_str(),
            ndjson.as_os_str(),
        ],
        &[],
    );
    output.assert_success("isms replay");
    let detections: Vec<Value> = output
        .stdout_text()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let summary: Vec<(String, String)> = detections
        .iter()
        .map(|detection| {
            (
                detection["rule_id"].as_str().unwrap().to_owned(),
                detection["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("failures-per-user".to_owned(), "fired".to_owned()),
            ("failures-per-user".to_owned(), "cleared".to_owned()),
            ("login-from-blocklisted".to_owned(), "fired".to_owned()),
        ],
        "{detections:#?}"
    );
    assert_eq!(
        detections[0]["message"],
        "5 failed logins for root within 5m"
    );
    assert_eq!(detections[0]["count"], 5);
    assert_eq!(
        detections[0]["related_event_ids"].as_array().unwrap().len(),
        5
    );
    assert_eq!(detections[2]["severity"], "CRITICAL");
    assert_eq!(detections[2]["hostname"], "web2");

    let stderr = &output.stderr;
    assert!(
        stderr.contains("rules: 3 loaded from 3 files, 2 not loaded"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: ")
            && stderr.contains("rule `on-a-missing-rule`: match builds on the detections of rule `port-scan`, which is not loaded"),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "ssh.yml:14: rule `negative-threshold`: parameter `threshold` must be a whole number"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("lists.yaml:") && stderr.contains("invalid YAML"),
        "{stderr}"
    );
    assert!(stderr.contains("replayed 8 events"), "{stderr}");
}

#[test]
fn replay_prints_a_table_and_exits_1_when_nothing_fired_and_2_on_errors() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(directory.path(), &[("ssh.yml", RULES)]);
    let log = directory.path().join("auth.log");
    let five: String = (0..5)
        .map(|minute| failed(&format!("10:0{minute}:00"), "root\u{1b}[31m"))
        .collect();
    std::fs::write(&log, &five).unwrap();

    let output = run_isms(
        &[
            "replay".as_ref(),
            "--rules".as_ref(),
            rules.as_os_str(),
            log.as_os_str(),
        ],
        &[],
    );
    output.assert_success("isms replay (table)");
    let table = output.stdout_text();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("TIME") && header.contains("RULE") && header.ends_with("MESSAGE"),
        "{table}"
    );
    let row = lines.next().unwrap();
    assert!(
        row.contains("fired") && row.contains("failures-per-user"),
        "{table}"
    );
    // Text from events is shown with its control characters made visible.
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(row.contains("root\\u{1b}[31m"), "{table}");

    std::fs::write(&log, failed("10:00:00", "root")).unwrap();
    let output = run_isms(
        &[
            "replay".as_ref(),
            "--rules".as_ref(),
            rules.as_os_str(),
            log.as_os_str(),
        ],
        &[],
    );
    assert_eq!(
        output.status.code(),
        Some(1),
        "nothing fired: {}",
        output.stderr
    );

    let output = run_isms(&["replay".as_ref(), log.as_os_str()], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stderr.contains("no rules"), "{}", output.stderr);

    let missing = directory.path().join("missing");
    let output = run_isms(
        &[
            "replay".as_ref(),
            "--rules".as_ref(),
            missing.as_os_str(),
            log.as_os_str(),
        ],
        &[],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        output.stderr.contains("cannot read the rules directory"),
        "{}",
        output.stderr
    );
}

#[test]
fn lines_out_of_order_in_a_file_are_put_in_event_time_order() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[(
            "sequence.yml",
            "id: failures-then-success
title: Failures then a success
kind: sequence
match: 'category:authentication'
parameters:
  group_by: [details.sourceipaddress]
  steps:
    - {match: 'details.result:failure', count: 2}
    - {match: 'details.result:success'}
",
        )],
    );
    // The success is written first but happened last (a relay that delivers late, a merged log).
    let log = directory.path().join("auth.log");
    std::fs::write(
        &log,
        format!(
            "Jun  1 10:00:09 web1 sshd[7]: Accepted password for root from 203.0.113.5 port 40023 ssh2\n{}{}",
            failed("10:00:01", "root"),
            failed("10:00:02", "root")
        ),
    )
    .unwrap();
    let (detections, stderr) = replay_json(&rules, &log);
    assert_eq!(detections.len(), 1, "{detections:#?}\n{stderr}");
    assert_eq!(detections[0]["count"], 3);
}

#[test]
fn a_line_more_than_five_minutes_behind_a_later_one_is_taken_late_and_counted() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[(
            "failures.yml",
            "id: any-failure\ntitle: Any failure\nkind: match\nmatch: 'details.result:failure'\n",
        )],
    );
    // 10:10:00 passes 10:00:00 on (more than five minutes newer); 10:09:30 comes 30 s behind
    // 10:10:00 (put in its place); 09:59:00 comes behind 10:00:00, already passed on (taken late,
    // and said so).
    let log = directory.path().join("auth.log");
    std::fs::write(
        &log,
        format!(
            "{}{}{}{}",
            failed("10:00:00", "alice"),
            failed("10:10:00", "carol"),
            failed("10:09:30", "bob"),
            failed("09:59:00", "dave"),
        ),
    )
    .unwrap();
    let (detections, stderr) = replay_json(&rules, &log);
    let users: Vec<String> = detections
        .iter()
        .map(|detection| detection["message"].as_str().unwrap().to_owned())
        .collect();
    let position = |user: &str| users.iter().position(|message| message.contains(user));
    assert!(position("bob") < position("carol"), "{users:?}");
    assert_eq!(users.len(), 4, "{users:?}");
    assert!(
        stderr.contains(
            "1 came more than 5 minutes, 65536 events or 32 MiB of detections after later ones"
        ),
        "{stderr}"
    );
}

#[test]
fn events_no_match_rule_can_take_are_counted_as_replayed_and_bad_ones_still_reported() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[(
            "whoami.yml",
            "id: whoami\ntitle: Whoami\nkind: match\nmatch: 'details.image:*\\\\whoami.exe'\n---\nid: zeek\ntitle: From 10.9.8.7\nkind: match\nmatch: 'details.sourceipaddress:10.9.8.7'\n",
        )],
    );
    // Routine events (ruled out unbuilt), one that matches, one normalization refuses (its time):
    // the refused one is reported even though no rule could match it. And a Zeek record, whose
    // keys no rule names as they are sent, but whose decoded event a rule matches.
    let events = directory.path().join("events.jsonl");
    let mut lines = String::new();
    for index in 0..50 {
        lines.push_str(&format!(
            "{{\"Image\": \"C:\\\\Program Files\\\\agent{index}.exe\", \"User\": \"bob\"}}\n"
        ));
    }
    lines.push_str("{\"Image\": \"C:\\\\Windows\\\\System32\\\\WHOAMI.exe\", \"User\": \"eve\"}\n");
    lines.push_str("{\"Image\": \"C:\\\\agent.exe\", \"utctimestamp\": \"yesterday-ish\"}\n");
    lines.push_str("{\"ts\": 1780000000.5, \"uid\": \"C1\", \"id.orig_h\": \"10.9.8.7\", \"id.orig_p\": 50000, \"id.resp_h\": \"10.0.0.1\", \"id.resp_p\": 22}\n");
    std::fs::write(&events, lines).unwrap();
    let (detections, stderr) = replay_json(&rules, &events);
    let fired: Vec<&str> = detections
        .iter()
        .map(|detection| detection["rule_id"].as_str().unwrap())
        .collect();
    assert_eq!(fired, ["zeek", "whoami"], "{detections:#?}");
    assert!(
        stderr.contains("replayed 52 events (1 lines or records not readable"),
        "{stderr}"
    );
    assert!(stderr.contains("events.jsonl:52"), "{stderr}");
}

const SIGMA_RULES: &str = "title: Whoami run
id: 8a000000-0000-4000-8000-000000000001
logsource: {product: windows, category: process_creation}
level: high
detection:
    selection:
        Image|endswith: '\\whoami.exe'
    filter:
        User: 'SYSTEM'
    condition: selection and not filter
---
title: Uses an unknown placeholder
id: 8a000000-0000-4000-8000-000000000002
logsource: {product: windows}
detection:
    selection:
        SourceIp|expand: '%allowed%'
    condition: selection
";

#[test]
fn sigma_rules_run_in_replay_and_sigma_check_lists_what_cannot_be_compiled() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[
            ("windows.yml", SIGMA_RULES),
            ("ssh.yml", RULES.split("---").next().unwrap()),
        ],
    );
    let events = directory.path().join("events.jsonl");
    std::fs::write(
        &events,
        concat!(
            r#"{"utctimestamp": "2026-06-01T10:00:00Z", "Image": "C:\\Windows\\System32\\whoami.exe", "User": "bob"}"#,
            "\n",
            r#"{"utctimestamp": "2026-06-01T10:00:01Z", "Image": "C:\\Windows\\System32\\whoami.exe", "User": "SYSTEM"}"#,
            "\n",
            r#"{"utctimestamp": "2026-06-01T10:00:02Z", "Image": "C:\\Windows\\notepad.exe", "User": "bob"}"#,
            "\n",
        ),
    )
    .unwrap();

    let check = run_isms(&["sigma", "check", rules.to_str().unwrap(), "--show"], &[]);
    let output = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{output}{}", check.stderr);
    assert!(
        output.contains("2 rules compiled from 2 files (1 from Sigma), 1 not"),
        "{output}"
    );
    assert!(
        output.contains("windows.yml:13: rule `sigma-8a000000-0000-4000-8000-000000000002`")
            && output.contains("placeholder %allowed% has no list or pipeline placeholder"),
        "{output}"
    );
    assert!(
        output.contains(
            r"sigma-8a000000-0000-4000-8000-000000000001  match  details.image:*\\whoami.exe AND NOT details.username:SYSTEM"
        ),
        "{output}"
    );

    let replay = run_isms(
        &[
            "replay",
            "--json",
            "--rules",
            rules.to_str().unwrap(),
            events.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(replay.status.code(), Some(0), "{}", replay.stderr);
    let detections: Vec<Value> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(detections.len(), 1, "{detections:#?}");
    assert_eq!(
        detections[0]["rule_id"],
        "sigma-8a000000-0000-4000-8000-000000000001"
    );
    assert_eq!(detections[0]["severity"], "ERROR");
    assert!(
        replay
            .stderr
            .contains("rules: 2 loaded from 2 files, 1 not loaded"),
        "{}",
        replay.stderr
    );

    // Every rule compiles: exit status 0.
    std::fs::write(
        rules.join("windows.yml"),
        SIGMA_RULES.split("---").next().unwrap(),
    )
    .unwrap();
    let clean = run_isms(&["sigma", "check", rules.to_str().unwrap()], &[]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stdout)
    );
}

#[test]
fn sigma_pipelines_from_the_rules_directory_and_the_command_line_map_what_check_shows_and_replay_runs()
 {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[(
            "sshd.yml",
            "title: Root password failure
id: 8c000000-0000-4000-8000-000000000001
logsource: {product: linux, service: sshd}
level: high
detection:
    selection:
        User: root
        Outcome: failure
    condition: selection
",
        )],
    );
    // The directory's own pipeline: not a rule; `Outcome` is where the sshd decoder says it.
    std::fs::write(
        rules.join("site.pipeline.yml"),
        "name: site\nlogsource: {product: linux}\nentries:\n  - fields: {Outcome: details.result}\n",
    )
    .unwrap();
    let check = run_isms(&["sigma", "check", rules.to_str().unwrap(), "--show"], &[]);
    let output = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(0), "{output}{}", check.stderr);
    assert!(
        output.contains("1 rules compiled from 2 files (1 from Sigma), 0 not"),
        "{output}"
    );
    assert!(
        output.contains("Sigma pipelines: shipped linux, windows, zeek, suricata; then site ("),
        "{output}"
    );
    assert!(
        output.contains(
            "sigma-8c000000-0000-4000-8000-000000000001  match  ((processname:sshd OR processname:sshd-session OR processname:sshd-auth) OR NOT processname:*) AND details.username:root AND details.result:failure"
        ),
        "{output}"
    );

    let log = directory.path().join("auth.log");
    std::fs::write(
        &log,
        format!(
            "{}{}Jun  1 10:00:03 web1 sshd[1234]: Accepted password for root from 203.0.113.5 port 40022 ssh2\n",
            failed("10:00:01", "root"),
            failed("10:00:02", "alice")
        ),
    )
    .unwrap();
    let replay = run_isms(
        &[
            "replay",
            "--json",
            "--rules",
            rules.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(replay.status.code(), Some(0), "{}", replay.stderr);
    assert_eq!(
        replay.stdout_text().lines().count(),
        1,
        "{}",
        replay.stdout_text()
    );

    // `--pipeline FILE` comes last and wins; a bad one is an error naming file, line and reason.
    let later = directory.path().join("later.yml");
    std::fs::write(
        &later,
        "name: later\nentries:\n  - fields: {Outcome: details.action}\n",
    )
    .unwrap();
    let check = run_isms(
        &[
            "sigma",
            "check",
            rules.to_str().unwrap(),
            "--show",
            "--pipeline",
            later.to_str().unwrap(),
        ],
        &[],
    );
    let output = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(output.contains("details.action:failure"), "{output}");
    std::fs::write(
        &later,
        "name: later\nentries:\n  - conditions: ['processname:(sshd']\n",
    )
    .unwrap();
    let bad = run_isms(
        &[
            "replay",
            "--rules",
            rules.to_str().unwrap(),
            "--pipeline",
            later.to_str().unwrap(),
            log.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", bad.stderr);
    assert!(
        bad.stderr
            .contains("later.yml:3: entry 1: condition `processname:(sshd` is not a query"),
        "{}",
        bad.stderr
    );
}

const EXPAND_RULES: &str = "title: Login from a blocked address
id: 8e000000-0000-4000-8000-000000000001
logsource: {product: acme}
level: high
detection:
    selection:
        details.sourceipaddress|expand|cidr: '%blocked%'
    condition: selection
";

const SCANNER_RULE: &str = "
id: port-scanner
title: Port scan
kind: match
match: 'category:portscan'
add_to_list: {list: blocked, field: details.sourceipaddress}
";

#[test]
fn expand_placeholders_come_from_the_lists_and_follow_values_rules_add() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[("blocked.yml", EXPAND_RULES), ("scanner.yml", SCANNER_RULE)],
    );
    let lists = directory.path().join("lists");
    std::fs::create_dir(&lists).unwrap();
    std::fs::write(lists.join("blocked.txt"), "198.51.100.0/24\n").unwrap();
    let events = directory.path().join("events.jsonl");
    let line = |second: u32, category: &str, address: &str| {
        format!(
            "{{\"utctimestamp\": \"2026-06-01T10:00:{second:02}Z\", \"summary\": \"{category}\", \"category\": \"{category}\", \"details\": {{\"sourceipaddress\": \"{address}\"}}}}\n"
        )
    };
    std::fs::write(
        &events,
        [
            line(0, "authentication", "198.51.100.7"),
            line(1, "authentication", "192.0.2.9"),
            line(2, "portscan", "192.0.2.9"),
            line(3, "authentication", "192.0.2.9"),
            line(4, "authentication", "192.0.2.10"),
        ]
        .concat(),
    )
    .unwrap();

    // Without the lists the placeholder is unknown: reported with the file, line, id and reason.
    let check = run_isms(&["sigma", "check", rules.to_str().unwrap()], &[]);
    let output = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(1), "{output}{}", check.stderr);
    assert!(
        output.contains("blocked.yml:2: rule `sigma-8e000000-0000-4000-8000-000000000001`")
            && output.contains("placeholder %blocked% has no list or pipeline placeholder"),
        "{output}"
    );
    let check = run_isms(
        &[
            "sigma",
            "check",
            rules.to_str().unwrap(),
            "--lists",
            lists.to_str().unwrap(),
            "--show",
        ],
        &[],
    );
    let output = String::from_utf8_lossy(&check.stdout).into_owned();
    assert_eq!(check.status.code(), Some(0), "{output}{}", check.stderr);
    assert!(
        output.contains(
            "sigma-8e000000-0000-4000-8000-000000000001  match  details.sourceipaddress:cidr(198.51.100.0/24)"
        ),
        "{output}"
    );

    let replay = run_isms(
        &[
            "replay",
            "--json",
            "--rules",
            rules.to_str().unwrap(),
            "--lists",
            lists.to_str().unwrap(),
            events.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(replay.status.code(), Some(0), "{}", replay.stderr);
    let fired: Vec<(String, i64)> = String::from_utf8_lossy(&replay.stdout)
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|detection| {
            (
                detection["rule_id"].as_str().unwrap().to_owned(),
                // The second of the minute of its event.
                detection["last_event_micros"].as_i64().unwrap() / 1_000_000 % 60,
            )
        })
        .collect();
    let blocked = "sigma-8e000000-0000-4000-8000-000000000001";
    assert_eq!(
        fired,
        [
            // 198.51.100.7, from the list file.
            (blocked.to_owned(), 0),
            ("port-scanner".to_owned(), 2),
            // 192.0.2.9 once the scanner rule put it on the list (not before, at 10:00:01).
            (blocked.to_owned(), 3),
        ],
        "{}",
        replay.stderr
    );
    assert!(
        replay.stderr.contains("rules compiled again 1 times"),
        "{}",
        replay.stderr
    );
}

/// JSON lines are decoded on worker threads in blocks of lines, the others by the file's decoder in
/// order: a file of many blocks must replay as one thread reading it would. Its lines mix routine
/// JSON (ruled out unread), matching JSON, syslog text, an audit event whose records straddle a
/// block boundary (the decoder's state carries over), a line normalization refuses and one too
/// long, each reported at its own line number.
#[test]
fn a_file_of_many_blocks_replays_as_one_thread_reading_it_would() {
    let directory = tempfile::tempdir().unwrap();
    let rules = rules_directory(
        directory.path(),
        &[(
            "rules.yml",
            "id: whoami\ntitle: Whoami\nkind: match\nmatch: 'details.image:*\\\\whoami.exe'\n---\nid: id-run\ntitle: id run\nkind: match\nmatch: 'details.comm:id AND details.syscall:execve'\n",
        )],
    );
    // 2026-06-01T00:00:00Z; line N is N seconds later.
    let start = 1_780_272_000i64;
    let time = |number: i64| {
        jiff::Timestamp::from_second(start + number)
            .unwrap()
            .to_string()
    };
    let audit = [
        "type=SYSCALL msg=audit({T}.100:500): arch=c000003e syscall=59 success=yes exit=0 items=2 ppid=10 pid=11 auid=1000 uid=0 gid=0 comm=\"id\" exe=\"/usr/bin/id\" key=\"exec\"",
        "type=EXECVE msg=audit({T}.100:500): argc=2 a0=\"id\" a1=\"-u\"",
        "type=CWD msg=audit({T}.100:500): cwd=\"/root\"",
        "type=PROCTITLE msg=audit({T}.100:500): proctitle=6964002D75",
        "type=EOE msg=audit({T}.100:500): ",
    ];
    let lines_count = 5000i64;
    let mut lines = String::new();
    let mut whoami_lines = Vec::new();
    for number in 1..=lines_count {
        let line = match number {
            // Records 510 to 514: the first block ends at line 512.
            510..=514 => audit[(number - 510) as usize].replace("{T}", &(start + 510).to_string()),
            2345 => format!(
                "{{\"utctimestamp\": \"not a time\", \"Image\": \"C:\\\\agent.exe\", \"n\": {number}}}"
            ),
            3000 => format!("{{\"Image\": \"{}\"}}", "x".repeat(1024 * 1024 + 10)),
            _ if number % 97 == 0 => {
                whoami_lines.push(number);
                format!(
                    "{{\"utctimestamp\": \"{}\", \"Image\": \"C:\\\\Windows\\\\System32\\\\whoami.exe\", \"n\": {number}}}",
                    time(number)
                )
            }
            _ if number % 5 == 0 => {
                let stamp = jiff::Timestamp::from_second(start + number).unwrap();
                format!(
                    "{} web1 cron[{number}]: (root) CMD (run-parts /etc/cron.hourly)",
                    stamp.strftime("%b %e %H:%M:%S")
                )
            }
            _ => format!(
                "{{\"utctimestamp\": \"{}\", \"Image\": \"C:\\\\Program Files\\\\agent.exe\", \"n\": {number}}}",
                time(number)
            ),
        };
        lines.push_str(&line);
        lines.push('\n');
    }
    // Once as JSON lines (decoded on workers), once behind a first line of text (the file then
    // read on one thread): the same detections, each problem at its own line.
    let text_first =
        format!("Jun  1 00:00:00 web1 cron[1]: (root) CMD (run-parts /etc/cron.hourly)\n{lines}");
    for (name, content, shift) in [("json.log", lines, 0), ("text-first.log", text_first, 1)] {
        let events = directory.path().join(name);
        std::fs::write(&events, content).unwrap();
        let (detections, stderr) = replay_json(&rules, &events);
        let whoami: Vec<i64> = detections
            .iter()
            .filter(|detection| detection["rule_id"] == "whoami")
            .map(|detection| (detection["detected_micros"].as_i64().unwrap() / 1_000_000) - start)
            .collect();
        assert_eq!(whoami, whoami_lines, "{name}: {stderr}");
        let id_runs: Vec<&Value> = detections
            .iter()
            .filter(|detection| detection["rule_id"] == "id-run")
            .collect();
        assert_eq!(id_runs.len(), 1, "{name}: {detections:#?}");
        assert_eq!(
            id_runs[0]["detected_micros"].as_i64().unwrap(),
            (start + 510) * 1_000_000 + 100_000
        );
        // The audit event's five lines make one event; two lines are not readable.
        let replayed = lines_count - 2 - 5 + 1 + shift;
        assert!(
            stderr.contains(&format!(
                "replayed {replayed} events (2 lines or records not readable)"
            )),
            "{name}: {stderr}"
        );
        let path = events.display().to_string();
        assert!(
            stderr.contains(&format!("{path}:{}: ", 2345 + shift)),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{path}:{}: line longer than", 3000 + shift)),
            "{stderr}"
        );
    }
}

/// With rules that keep no state, the workers decoding JSON lines run their events through
/// copies of the engine; with one rule that keeps state, the replay's own engine runs every event.
/// Both must print the same detections in the same order (ids aside: they are new each run), chains
/// and the chain depth limit included.
#[test]
fn rules_without_state_run_on_the_workers_as_the_replays_engine_would_run_them() {
    let directory = tempfile::tempdir().unwrap();
    let stateless_rules = "id: whoami\ntitle: Whoami\nkind: match\nmatch: 'details.image:*\\\\whoami.exe'\nmessage: '{details.username} ran whoami'\n---\nid: alice\ntitle: Alice\nkind: match\nseverity: INFO\nmatch: 'details.username:alice'\n---\nid: after-whoami\ntitle: After whoami\nkind: match\nmatch: 'category:alert AND details.rule_id:whoami'\nmessage: 'chained: {summary}'\n";
    let stateful_rule = "id: never\ntitle: Never\nkind: threshold\nmatch: 'details.image:never'\nparameters: {group_by: [details.user], interval: 5m, threshold: 5}\n";
    for name in ["stateless", "stateful"] {
        std::fs::create_dir(directory.path().join(name)).unwrap();
    }
    let stateless = rules_directory(
        &directory.path().join("stateless"),
        &[("rules.yml", stateless_rules)],
    );
    let stateful = rules_directory(
        &directory.path().join("stateful"),
        &[("rules.yml", stateless_rules), ("never.yml", stateful_rule)],
    );
    // Many blocks of lines; every 50th line half a minute behind its neighbours (put back in
    // order); the last without a time of its own (it takes the file's, which is later).
    let start = 1_780_272_000i64;
    let mut lines = String::new();
    for number in 1..=4000i64 {
        let second = if number % 50 == 0 {
            number - 30
        } else {
            number
        };
        let time = jiff::Timestamp::from_second(start + second).unwrap();
        let image = if number % 3 == 0 { "whoami" } else { "cmd" };
        let user = ["alice", "bob", "carol"][(number % 7 % 3) as usize];
        let time_field = if number == 4000 {
            String::new()
        } else {
            format!("\"utctimestamp\": \"{time}\", ")
        };
        lines.push_str(&format!(
            "{{{time_field}\"Image\": \"C:\\\\Windows\\\\{image}.exe\", \"User\": \"{user}\", \"n\": {number}}}\n"
        ));
    }
    let events = directory.path().join("events.jsonl");
    std::fs::write(&events, lines).unwrap();
    let replay = |rules: &std::path::Path, extra: &[&str]| {
        let mut arguments: Vec<&std::ffi::OsStr> = vec!["replay".as_ref(), "--rules".as_ref()];
        arguments.push(rules.as_os_str());
        arguments.extend(extra.iter().map(|argument| std::ffi::OsStr::new(*argument)));
        arguments.push(events.as_os_str());
        let output = run_isms(&arguments, &[]);
        output.assert_success("isms replay");
        // The summary without its timing ("in 0.05 s (80000 events/s)").
        let summary = output
            .stderr
            .lines()
            .find(|line| line.starts_with("replayed "))
            .unwrap_or_else(|| panic!("no summary: {}", output.stderr));
        let (counts, timing) = summary.split_once(" in ").unwrap();
        let summary = format!("{counts}{}", timing.split_once("events/s)").unwrap().1);
        (output.stdout_text().to_owned(), summary)
    };
    // Ids are new in every run; everything else must be the same.
    let without_ids = |text: &str| -> Vec<Value> {
        text.lines()
            .map(|line| {
                let mut detection: Value = serde_json::from_str(line).unwrap();
                let object = detection.as_object_mut().unwrap();
                object.remove("id");
                object.remove("related_event_ids");
                detection
            })
            .collect()
    };
    let (on_workers, on_workers_summary) = replay(&stateless, &["--json"]);
    let (on_engine, on_engine_summary) = replay(&stateful, &["--json"]);
    let on_workers = without_ids(&on_workers);
    assert_eq!(on_workers, without_ids(&on_engine));
    let fired = |rule: &str| {
        on_workers
            .iter()
            .filter(|detection| detection["rule_id"] == rule)
            .count()
    };
    assert_eq!(fired("whoami"), 4000 / 3);
    assert_eq!(fired("after-whoami"), 4000 / 3);
    assert!(fired("alice") > 1000, "{}", fired("alice"));
    // In event-time order, ties in file order: the lines behind their neighbours come earlier.
    let times: Vec<i64> = on_workers
        .iter()
        .map(|detection| detection["detected_micros"].as_i64().unwrap())
        .collect();
    assert!(times.is_sorted(), "detections out of time order");
    assert_eq!(
        on_workers_summary.replace(" through 3 rules", " through 4 rules"),
        on_engine_summary
    );
    // The table, and the chain depth limit: no detection is fed back (each is counted), so the
    // chained ones are not made.
    let (table_on_workers, limited_summary) = replay(&stateless, &["--max-chain-depth", "0"]);
    let (table_on_engine, limited_on_engine) = replay(&stateful, &["--max-chain-depth", "0"]);
    assert_eq!(table_on_workers, table_on_engine);
    assert!(table_on_workers.starts_with("TIME "), "{table_on_workers}");
    assert!(table_on_workers.contains("carol ran whoami"));
    assert!(!table_on_workers.contains("chained"));
    assert!(
        limited_summary.contains(&format!(
            "{} detections not fed back (chain depth limit)",
            on_workers.len() - fired("after-whoami")
        )),
        "{limited_summary}"
    );
    assert_eq!(
        limited_summary.replace(" through 3 rules", " through 4 rules"),
        limited_on_engine
    );
}
