//! Sigma processing pipelines: the file format's errors, the shipped pipelines on real logs decoded
//! by isms's own decoders (`../shared/data`: sshd lines, audit.log EXECVE records, Zeek and
//! Suricata JSON), Windows event logs as JSON tools write them, a rules directory's own
//! `.pipeline.yml`, and value transformations.
mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use isms_detect::sigma::SigmaFieldMapping;
use isms_detect::sigma_pipeline::{optional_pipeline, parse_pipeline};
use isms_detect::{DetectionState, Rule, parse_rules};
use isms_event::Event;
use serde_json::{Value, json};

/// `../shared/data`: `ISMS_TEST_SHARED_DATA`, else `shared/data` beside an ancestor of this crate.
/// `None` when absent, a failure when `CI` is set.
fn data_root() -> Option<PathBuf> {
    let found = match std::env::var_os("ISMS_TEST_SHARED_DATA") {
        Some(path) => Some(PathBuf::from(path)),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|ancestor| ancestor.join("shared/data"))
            .find(|candidate| candidate.is_dir()),
    };
    match found {
        Some(path) if path.is_dir() => Some(path),
        other if std::env::var_os("CI").is_some() => {
            panic!("the shared test data is missing ({other:?}) and CI is set")
        }
        other => {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr().lock(),
                "skipping: the shared test data is missing ({other:?})"
            );
            None
        }
    }
}

/// The text of a data file (gunzipped when it ends in `.gz`).
fn data_text(root: &Path, relative: &str) -> String {
    let path = root.join(relative);
    let bytes = std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    if relative.ends_with(".gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        text
    } else {
        String::from_utf8(bytes).unwrap()
    }
}

fn sigma_rules(yaml: &str) -> Vec<Rule> {
    let (rules, errors) = parse_rules(yaml, "sigma.yml");
    assert!(errors.is_empty(), "{errors:#?}");
    rules
}

/// How many events make the (single, enabled) rule fire.
fn firings(rules: Vec<Rule>, events: &[Event]) -> usize {
    let mut engine = common::engine_of(rules);
    events
        .iter()
        .map(|event| {
            engine
                .process(event)
                .iter()
                .filter(|detection| detection.state == DetectionState::Fired)
                .count()
        })
        .sum()
}

fn sigma_rule(logsource: &str, detection: &str) -> String {
    format!(
        "title: Test
id: 9c000000-0000-4000-8000-000000000001
logsource: {logsource}
level: high
detection:
{detection}
"
    )
}

#[test]
fn pipeline_errors_name_the_file_the_line_and_the_reason() {
    let error = |text: &str| parse_pipeline(text, "site.pipeline.yml").unwrap_err();

    let bad_yaml = error("name: site\nentries:\n  - fields: {User: [unclosed\n");
    assert_eq!(bad_yaml.origin, "site.pipeline.yml");
    assert!(bad_yaml.line.is_some(), "{bad_yaml}");
    assert!(
        bad_yaml
            .reason
            .starts_with("not a Sigma pipeline: invalid YAML"),
        "{bad_yaml}"
    );

    let bad_query = error(
        "name: site\nentries:\n  - logsource: {service: sshd}\n  - logsource: {service: sudo}\n    conditions:\n      - 'processname:(sudo'\n",
    );
    assert_eq!(bad_query.line, Some(6), "{bad_query}");
    assert!(
        bad_query.to_string().starts_with(
            "site.pipeline.yml:6: entry 2: condition `processname:(sudo` is not a query"
        ),
        "{bad_query}"
    );

    let unknown_transformation = error(
        "name: site\nentries:\n  - values:\n      - {fields: [User], transform: frobnicate}\n",
    );
    assert_eq!(
        unknown_transformation.line,
        Some(4),
        "{unknown_transformation}"
    );
    assert!(
        unknown_transformation
            .reason
            .contains("unknown transformation `frobnicate` (known: lowercase, uppercase, prefix, suffix, replace)"),
        "{unknown_transformation}"
    );

    let unknown_key = error("name: site\nentries:\n  - feilds: {User: details.x}\n");
    assert_eq!(unknown_key.line, Some(3), "{unknown_key}");
    assert!(
        unknown_key.reason.contains("unknown field `feilds`"),
        "{unknown_key}"
    );

    let bad_path = error("name: site\nentries:\n  - fields:\n      User: 'details.user name'\n");
    assert_eq!(bad_path.line, Some(4), "{bad_path}");
    assert!(
        bad_path.reason.contains("is not a field path"),
        "{bad_path}"
    );

    let missing_value =
        error("name: site\nentries:\n  - values: [{fields: [Image], transform: prefix}]\n");
    assert!(
        missing_value
            .reason
            .contains("the `prefix` transformation needs `value`"),
        "{missing_value}"
    );
    let bad_regex = error(
        "name: site\nentries:\n  - values: [{fields: [Image], transform: replace, regex: '(', replacement: x}]\n",
    );
    assert!(bad_regex.reason.contains("regex `(`"), "{bad_regex}");
    let bad_template = error("name: site\nentries:\n  - other_fields: ['details.x']\n");
    assert!(
        bad_template.reason.contains("other_fields"),
        "{bad_template}"
    );
}

#[test]
fn a_rules_directory_pipeline_is_read_as_a_pipeline_and_its_errors_are_reported() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("site.pipeline.yml"),
        "name: site\nlogsource: {product: acme}\nentries:\n  - fields: {User: details.account}\n    conditions: ['processname:acmed']\n",
    )
    .unwrap();
    std::fs::write(
        directory.path().join("rule.yml"),
        sigma_rule(
            "{product: acme}",
            "    selection:\n        User: root\n    condition: selection",
        ),
    )
    .unwrap();
    let loaded = isms_detect::load_directory(directory.path()).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert_eq!(loaded.files, 2);
    assert_eq!(loaded.rules.len(), 1, "the pipeline is not a rule");
    assert_eq!(
        loaded.rules[0].definition.query,
        "processname:acmed AND details.account:root"
    );
    let matching = common::json_event(json!({"program": "acmed", "account": "root"}));
    let other_program = common::json_event(json!({"program": "other", "account": "root"}));
    assert_eq!(firings(loaded.rules, &[matching, other_program]), 1);

    std::fs::write(
        directory.path().join("site.pipeline.yml"),
        "name: site\nentries:\n  - values:\n      - {fields: [User], transform: shout}\n",
    )
    .unwrap();
    let loaded = isms_detect::load_directory(directory.path()).unwrap();
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    let reported = loaded.errors[0].to_string();
    assert!(
        reported.contains("site.pipeline.yml:4: ")
            && reported.contains("unknown transformation `shout`"),
        "{reported}"
    );
    assert_eq!(
        loaded.rules.len(),
        1,
        "the rules still load, without the pipeline"
    );
}

#[test]
fn a_linux_sshd_rule_detects_on_real_sshd_lines_and_not_on_other_programs() {
    let Some(root) = data_root() else { return };
    let log = data_text(&root, "elastic-auth/integrations_test-auth.log");
    let rule = sigma_rule(
        "{product: linux, service: sshd}",
        "    keywords:
        - 'Failed password'
        - 'Invalid user'
    condition: keywords",
    );
    let rules = sigma_rules(&rule);
    assert!(
        rules[0].definition.query.starts_with(
            "((processname:sshd OR processname:sshd-session OR processname:sshd-auth) OR NOT processname:*) AND "
        ),
        "{}",
        rules[0].definition.query
    );
    let expected = log
        .lines()
        .filter(|line| {
            line.contains(" sshd[")
                && (line.contains("Failed password") || line.contains("Invalid user"))
        })
        .count();
    assert!(expected >= 2, "the sample has such lines");
    let events = common::decoded_events(log.lines());
    assert_eq!(firings(rules.clone(), &events), expected);

    // The same words from another program are not sshd's.
    let forged = common::decoded_events([
        "Feb 21 21:56:12 localhost myapp[77]: Invalid user test from 10.0.2.2",
    ]);
    assert_eq!(firings(rules.clone(), &forged), 0);

    // A field of the sshd decoder: the user of a failed password.
    let by_user = sigma_rules(&sigma_rule(
        "{product: linux, service: sshd}",
        "    selection:\n        User: root\n        SourceIp: 89.160.20.156\n    condition: selection",
    ));
    assert_eq!(firings(by_user, &events), 1);
}

#[test]
fn process_creation_and_auditd_rules_detect_on_real_audit_log_execve_records() {
    let Some(root) = data_root() else { return };
    let log = data_text(&root, "auditd/sh_binary_padding_dd_2020-11-10081941.log");
    let events = common::decoded_events(log.lines());
    let process_creation = sigma_rules(&sigma_rule(
        "{product: linux, category: process_creation}",
        "    selection:
        Image|endswith: '/dd'
        CommandLine|contains|all: ['if=/dev/zero', 'count=1']
        CurrentDirectory: '/home/wardog'
        ParentProcessId: 29002
    condition: selection",
    ));
    assert_eq!(
        process_creation[0].definition.query,
        "category:execution AND tags:\"decoder:auditd\" AND details.exe:*\\/dd AND (details.command:*if\\=\\/dev\\/zero* AND details.command:*count\\=1*) AND details.cwd:\"/home/wardog\" AND details.ppid:29002"
    );
    assert_eq!(firings(process_creation, &events), 1);
    let other_image = sigma_rules(&sigma_rule(
        "{product: linux, category: process_creation}",
        "    selection:\n        Image|endswith: '/cat'\n    condition: selection",
    ));
    assert_eq!(firings(other_image, &events), 0);

    let auditd = sigma_rules(&sigma_rule(
        "{product: linux, service: auditd}",
        "    selection:\n        type: EXECVE\n        a0: dd\n        a1|startswith: 'if='\n    condition: selection",
    ));
    assert_eq!(firings(auditd, &events), 1);
}

#[test]
fn windows_event_logs_as_json_match_through_their_system_and_eventdata_fields() {
    // nxlog's im_msvistalog with to_json: flat.
    let nxlog = common::json_event(json!({
        "EventTime": "2026-06-01 10:00:00", "Hostname": "DC01.corp.example",
        "EventID": 4625, "SourceName": "Microsoft-Windows-Security-Auditing",
        "Channel": "Security", "Severity": "INFO", "Category": "Logon",
        "Message": "An account failed to log on.",
        "TargetUserName": "administrator", "LogonType": "10", "IpAddress": "203.0.113.9"
    }));
    // evtx_dump -o json --separate-json-attributes.
    let evtx = common::json_event(json!({"Event": {
        "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
        "System": {
            "Provider_attributes": {"Name": "Microsoft-Windows-Security-Auditing"},
            "EventID": 4625, "Channel": "Security", "Computer": "DC01.corp.example",
            "TimeCreated_attributes": {"SystemTime": "2026-06-01T10:00:00.000000Z"}
        },
        "EventData": {"TargetUserName": "administrator", "LogonType": "10", "IpAddress": "203.0.113.9"}
    }}));
    // winlogbeat 8.
    let winlogbeat = common::json_event(json!({
        "@timestamp": "2026-06-01T10:00:00Z", "message": "An account failed to log on.",
        "winlog": {
            "event_id": "4625", "channel": "Security", "computer_name": "DC01.corp.example",
            "provider_name": "Microsoft-Windows-Security-Auditing",
            "event_data": {"TargetUserName": "administrator", "LogonType": "10", "IpAddress": "203.0.113.9"}
        }
    }));
    let system_only = sigma_rule(
        "{product: windows, service: security}",
        "    selection:
        EventID: 4625
        Channel: Security
        Provider_Name: Microsoft-Windows-Security-Auditing
        Computer: 'DC01*'
    condition: selection",
    );
    for (shape, event) in [
        ("nxlog", &nxlog),
        ("evtx_dump", &evtx),
        ("winlogbeat", &winlogbeat),
    ] {
        assert_eq!(
            firings(sigma_rules(&system_only), std::slice::from_ref(event)),
            1,
            "{shape}: {:#?}",
            event.document
        );
    }

    let with_eventdata = sigma_rule(
        "{product: windows, service: security}",
        "    selection:
        EventID: 4625
        TargetUserName: administrator
        LogonType: 10
    condition: selection",
    );
    // Flat EventData by default.
    assert_eq!(
        firings(sigma_rules(&with_eventdata), std::slice::from_ref(&nxlog)),
        1
    );
    assert_eq!(
        firings(sigma_rules(&with_eventdata), std::slice::from_ref(&evtx)),
        0
    );
    // Nested EventData with the optional pipeline of the tool.
    let with_optional = |name: &str| {
        let optional = Arc::new(optional_pipeline(name).unwrap().unwrap());
        let directory = tempfile::tempdir().unwrap();
        std::fs::write(directory.path().join("rule.yml"), &with_eventdata).unwrap();
        let loaded =
            isms_detect::load_directory_with_pipelines(directory.path(), &[optional]).unwrap();
        assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
        loaded.rules
    };
    assert_eq!(
        firings(with_optional("windows-evtx"), std::slice::from_ref(&evtx)),
        1
    );
    assert_eq!(
        firings(
            with_optional("windows-winlogbeat"),
            std::slice::from_ref(&winlogbeat)
        ),
        1
    );
    assert_eq!(firings(with_optional("windows-evtx"), &[winlogbeat]), 0);

    // The service is a channel: a System event is not a Security one.
    let mut system = nxlog.clone();
    system.document["details"]["channel"] = json!("System");
    assert_eq!(firings(sigma_rules(&with_eventdata), &[system]), 0);
}

#[test]
fn zeek_rules_detect_on_real_zeek_records_decoded_by_isms() {
    let Some(root) = data_root() else { return };
    let dns = data_text(&root, "zeek/zeek-json/dns.json.gz");
    let rdp = data_text(&root, "zeek/zeek-json/rdp.json.gz");
    let dns: Vec<&str> = dns.lines().take(3000).collect();
    let rdp: Vec<&str> = rdp.lines().take(3000).collect();
    let records = |lines: &[&str]| -> Vec<Value> {
        lines
            .iter()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect()
    };
    let dns_records = records(&dns);
    let rdp_records = records(&rdp);
    let mut events = common::decoded_events(dns.iter().copied());
    events.extend(common::decoded_events(rdp.iter().copied()));

    let dns_rule = sigma_rules(&sigma_rule(
        "{product: zeek, service: dns}",
        "    selection:
        query: ise.wrccdc.org
        id.resp_p: 53
        id.orig_h: 10.47.1.100
        qtype_name: A
    condition: selection",
    ));
    let expected = dns_records
        .iter()
        .filter(|record| {
            record["query"] == "ise.wrccdc.org"
                && record["id.resp_p"] == 53
                && record["id.orig_h"] == "10.47.1.100"
                && record["qtype_name"] == "A"
        })
        .count();
    assert!(expected > 0);
    assert_eq!(firings(dns_rule, &events), expected);

    let rdp_rule = sigma_rules(&sigma_rule(
        "{product: zeek, service: rdp}",
        "    selection:\n        result: encrypted\n        id.resp_p: 3389\n    condition: selection",
    ));
    let expected = rdp_records
        .iter()
        .filter(|record| record["result"] == "encrypted" && record["id.resp_p"] == 3389)
        .count();
    assert!(expected > 0);
    assert_eq!(firings(rdp_rule, &events), expected);

    // The service is the log: port 3389 in the dns log is not rdp's.
    let any_port = sigma_rules(&sigma_rule(
        "{product: zeek, service: dns}",
        "    selection:\n        id.resp_p: 3389\n    condition: selection",
    ));
    assert_eq!(firings(any_port, &events), 0);
}

#[test]
fn suricata_rules_detect_on_real_eve_records_decoded_by_isms() {
    let Some(root) = data_root() else { return };
    let eve = data_text(&root, "suricata/eve-docker-desktop-pr13999.json");
    let records: Vec<Value> = eve
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let events = common::decoded_events(eve.lines());

    let alert_rule = sigma_rules(&sigma_rule(
        "{product: suricata, service: alert}",
        "    selection:
        alert.signature|contains: 'invalid response chunk'
        alert.action: allowed
        src_port: 2376
        dest_ip: 192.168.65.1
    condition: selection",
    ));
    let expected = records
        .iter()
        .filter(|record| {
            record["event_type"] == "alert"
                && record["alert"]["signature"]
                    .as_str()
                    .is_some_and(|signature| signature.contains("invalid response chunk"))
                && record["alert"]["action"] == "allowed"
                && record["src_port"] == 2376
                && record["dest_ip"] == "192.168.65.1"
        })
        .count();
    assert!(expected > 0);
    assert_eq!(firings(alert_rule, &events), expected);

    let http_rule = sigma_rules(&sigma_rule(
        "{product: suricata, service: http}",
        "    selection:\n        http.hostname: api.moby.localhost\n        dest_port: 2376\n    condition: selection",
    ));
    let expected = records
        .iter()
        .filter(|record| {
            record["event_type"] == "http"
                && record["http"]["hostname"] == "api.moby.localhost"
                && record["dest_port"] == 2376
        })
        .count();
    assert!(expected > 0);
    assert_eq!(firings(http_rule, &events), expected);
}

#[test]
fn value_transformations_change_the_values_before_the_modifiers() {
    let pipeline = parse_pipeline(
        r"name: site
logsource: {product: acme}
entries:
  - values:
      - {fields: [Image], transform: replace, regex: '\\', replacement: '/'}
      - {fields: [Image], transform: prefix, value: 'C:'}
      - {fields: [Name], transform: uppercase}
      - {fields: [Tag], transform: lowercase}
      - {fields: [Tag], transform: suffix, value: '-prod'}
",
        "site.pipeline.yml",
    )
    .unwrap();
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("rule.yml"),
        sigma_rule(
            "{product: acme}",
            "    selection:
        Image|endswith: '\\Windows\\whoami.exe'
        Name|cased: admin
        Tag|cased: WEB
    condition: selection",
        ),
    )
    .unwrap();
    let loaded =
        isms_detect::load_directory_with_pipelines(directory.path(), &[Arc::new(pipeline)])
            .unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let rules = loaded.rules;
    let event = |image: &str, name: &str, tag: &str| {
        common::json_event(json!({"Image": image, "Name": name, "Tag": tag}))
    };
    assert_eq!(
        firings(
            rules.clone(),
            &[event("C:/Windows/whoami.exe", "ADMIN", "web-prod")]
        ),
        1
    );
    // Cased comparisons see the transformed values: the original case no longer matches.
    assert_eq!(
        firings(
            rules.clone(),
            &[event("C:/Windows/whoami.exe", "admin", "web-prod")]
        ),
        0
    );
    assert_eq!(
        firings(
            rules,
            &[event("C:\\Windows\\whoami.exe", "ADMIN", "web-prod")]
        ),
        0
    );
}

#[test]
fn explicit_renames_still_win_and_mappings_without_pipelines_keep_the_default() {
    let mut mapping = SigmaFieldMapping::default();
    assert_eq!(
        mapping.path_of("CommandLine").dotted(),
        "details.commandline"
    );
    mapping
        .renames
        .insert("CommandLine".into(), "details.cmd".into());
    let linux = rsigma_parser::LogSource {
        product: Some("linux".into()),
        category: Some("process_creation".into()),
        ..Default::default()
    };
    let shipped = SigmaFieldMapping::with_shipped_pipelines();
    assert_eq!(
        shipped
            .for_logsource(&linux)
            .path_of("CommandLine")
            .dotted(),
        "details.command"
    );
    let mut renamed = shipped.clone();
    renamed.renames = mapping.renames.clone();
    assert_eq!(
        renamed
            .for_logsource(&linux)
            .path_of("CommandLine")
            .dotted(),
        "details.cmd"
    );
    // An unmapped field keeps the default.
    assert_eq!(
        shipped
            .for_logsource(&linux)
            .path_of("OriginalFileName")
            .dotted(),
        "details.originalfilename"
    );
}
