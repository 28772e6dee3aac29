//! Sigma rules compiled onto the engine: each value modifier and condition form the compiler
//! handles, on JSON events normalized as isms stores them; and every rule it cannot use reported
//! with its file, id and reason while the others load.
mod common;

use isms_detect::{Engine, EngineOptions, Lists, Rule, parse_rules};
use isms_event::Event;
use serde_json::{Value, json};

fn event(raw: Value) -> Event {
    common::json_event(raw)
}

fn sigma_rules(yaml: &str) -> Vec<Rule> {
    let (rules, errors) = parse_rules(yaml, "sigma.yml");
    assert!(errors.is_empty(), "{errors:#?}");
    rules
}

/// Whether the single rule of `yaml` fires on the event made of `raw`.
fn fires(yaml: &str, raw: Value) -> bool {
    let mut engine = common::engine_of(sigma_rules(yaml));
    !engine.process(&event(raw)).is_empty()
}

fn rule(detection: &str) -> String {
    format!(
        "title: Test rule
id: 5f1c0f0e-0000-4000-8000-000000000001
status: test
level: high
tags: [attack.execution, attack.t1059]
logsource: {{product: windows, category: process_creation}}
detection:
{detection}
"
    )
}

#[test]
fn a_sigma_rule_becomes_a_match_rule_with_its_metadata() {
    let rules = sigma_rules(&rule(
        "    selection:\n        Image|endswith: '\\whoami.exe'\n    condition: selection",
    ));
    assert_eq!(rules.len(), 1);
    let definition = &rules[0].definition;
    assert_eq!(definition.id, "sigma-5f1c0f0e-0000-4000-8000-000000000001");
    assert_eq!(definition.title, "Test rule");
    assert_eq!(definition.kind, "match");
    assert_eq!(definition.severity, "ERROR", "level high");
    assert!(definition.tags.contains(&"attack.t1059".to_owned()));
    assert_eq!(definition.query, r"details.image:*\\whoami.exe");
}

#[test]
fn strings_compare_whole_and_case_insensitively_with_wildcards() {
    let yaml =
        rule("    selection:\n        CommandLine: 'net user * /add'\n    condition: selection");
    assert!(fires(&yaml, json!({"CommandLine": "NET USER bob /ADD"})));
    assert!(!fires(
        &yaml,
        json!({"CommandLine": "net user bob /add now"})
    ));
    assert!(!fires(
        &yaml,
        json!({"commandline_other": "net user bob /add"})
    ));
    // An escaped wildcard is a literal character.
    let literal = rule("    selection:\n        Title: 'what\\?'\n    condition: selection");
    assert!(fires(&literal, json!({"Title": "what?"})));
    assert!(!fires(&literal, json!({"Title": "whatx"})));
}

#[test]
fn contains_startswith_endswith_and_all() {
    let yaml = rule(
        "    selection:
        CommandLine|contains|all: ['-nop', 'hidden']
        Image|startswith: 'C:\\Windows\\'
        ParentImage|endswith:
            - '\\cmd.exe'
            - '\\explorer.exe'
    condition: selection",
    );
    let base = json!({
        "CommandLine": "powershell -NoP -W Hidden -nop",
        "Image": "c:\\windows\\system32\\powershell.exe",
        "ParentImage": "C:\\Windows\\explorer.exe"
    });
    assert!(fires(&yaml, base.clone()));
    let mut one_of_all = base.clone();
    one_of_all["CommandLine"] = json!("powershell -nop");
    assert!(!fires(&yaml, one_of_all), "|all needs every value");
    let mut other_parent = base.clone();
    other_parent["ParentImage"] = json!("C:\\Windows\\services.exe");
    assert!(!fires(&yaml, other_parent));
    let mut other_image = base;
    other_image["Image"] = json!("D:\\Windows\\x.exe");
    assert!(!fires(&yaml, other_image));
}

#[test]
fn conditions_and_or_not_and_selectors() {
    let yaml = rule(
        "    selection_img:
        Image|endswith: '\\rundll32.exe'
    selection_cli:
        CommandLine|contains: 'javascript:'
    filter_main:
        User: 'SYSTEM'
    _helper:
        Hostname: 'never'
    condition: 1 of selection_* and not filter_main",
    );
    assert!(fires(
        &yaml,
        json!({"Image": "C:\\rundll32.exe", "User": "bob"})
    ));
    assert!(fires(&yaml, json!({"CommandLine": "x javascript:alert"})));
    assert!(!fires(
        &yaml,
        json!({"Image": "C:\\rundll32.exe", "User": "system"})
    ));
    assert!(!fires(
        &yaml,
        json!({"Image": "C:\\other.exe", "User": "bob"})
    ));

    let all_of_them = rule(
        "    a:
        EventID: 4624
    b:
        LogonType: 10
    _not_counted:
        EventID: 1
    condition: all of them",
    );
    assert!(fires(
        &all_of_them,
        json!({"EventID": 4624, "LogonType": 10})
    ));
    assert!(!fires(
        &all_of_them,
        json!({"EventID": 4624, "LogonType": 3})
    ));

    let two_of = rule(
        "    a:
        A: 1
    b:
        B: 1
    c:
        C: 1
    condition: 2 of a or 2 of them",
    );
    assert!(fires(&two_of, json!({"A": 1, "C": 1})));
    assert!(!fires(&two_of, json!({"B": 1})));

    let list_of_maps = rule(
        "    selection:
        - EventID: 1
          Image|endswith: '.scr'
        - EventID: 2
    condition: selection",
    );
    assert!(fires(
        &list_of_maps,
        json!({"EventID": 1, "Image": "a.scr"})
    ));
    assert!(fires(&list_of_maps, json!({"EventID": 2})));
    assert!(!fires(
        &list_of_maps,
        json!({"EventID": 1, "Image": "a.exe"})
    ));
}

#[test]
fn numbers_comparisons_null_exists_neq_and_keywords() {
    let numbers = rule(
        "    selection:
        DestinationPort|gte: 1024
        DestinationPort|lt: 2048
        Retries|neq: 0
    condition: selection",
    );
    assert!(fires(
        &numbers,
        json!({"DestinationPort": 1500, "Retries": 2})
    ));
    assert!(!fires(
        &numbers,
        json!({"DestinationPort": 2048, "Retries": 2})
    ));
    assert!(!fires(
        &numbers,
        json!({"DestinationPort": 1500, "Retries": 0})
    ));

    let null_and_exists = rule(
        "    selection:
        ParentImage: null
        Signature|exists: true
        Signed|exists: false
    condition: selection",
    );
    assert!(fires(&null_and_exists, json!({"Signature": "x"})));
    assert!(!fires(
        &null_and_exists,
        json!({"Signature": "x", "ParentImage": "p"})
    ));
    assert!(!fires(
        &null_and_exists,
        json!({"Signature": "x", "Signed": true})
    ));

    let keywords = rule(
        "    keywords:
        - 'Failed password'
        - 'authentication failure'
    condition: keywords",
    );
    assert!(fires(
        &keywords,
        json!({"summary": "sshd: Failed password for root"})
    ));
    assert!(!fires(
        &keywords,
        json!({"summary": "Accepted password for root"})
    ));
}

#[test]
fn regex_cased_windash_base64_and_utf16() {
    let regex = rule(
        "    selection:
        CommandLine|re: 'Invoke-(Expression|WebRequest)'
        Url|re|i: '^https?://'
    condition: selection",
    );
    assert!(fires(
        &regex,
        json!({"CommandLine": "x Invoke-Expression y", "Url": "HTTP://a"})
    ));
    assert!(
        !fires(
            &regex,
            json!({"CommandLine": "x invoke-expression y", "Url": "http://a"})
        ),
        "re is case-sensitive without |i"
    );
    assert!(!fires(
        &regex,
        json!({"CommandLine": "Invoke-Expression", "Url": "ftp://a"})
    ));

    let cased = rule("    selection:\n        Name|cased: 'Admin*'\n    condition: selection");
    assert!(fires(&cased, json!({"Name": "Administrator"})));
    assert!(!fires(&cased, json!({"Name": "administrator"})));

    let windash = rule(
        "    selection:\n        CommandLine|windash|contains: ' -enc '\n    condition: selection",
    );
    assert!(fires(
        &windash,
        json!({"CommandLine": "powershell /enc AAAA"})
    ));
    assert!(fires(
        &windash,
        json!({"CommandLine": "powershell \u{2013}enc AAAA"})
    ));
    assert!(!fires(
        &windash,
        json!({"CommandLine": "powershell enc AAAA"})
    ));

    // "http://" in base64 at the three alignments, found inside longer base64 text.
    let base64 = rule(
        "    selection:\n        CommandLine|base64offset|contains: 'http://'\n    condition: selection",
    );
    for prefix in ["", "a", "ab"] {
        let encoded = encode_base64(format!("{prefix}http://evil").as_bytes());
        assert!(
            fires(&base64, json!({"CommandLine": format!("-enc {encoded}")})),
            "offset {} ({encoded})",
            prefix.len()
        );
    }
    assert!(!fires(
        &base64,
        json!({"CommandLine": encode_base64(b"https://x")})
    ));

    let plain_base64 =
        rule("    selection:\n        Data|base64: 'ping'\n    condition: selection");
    assert!(fires(&plain_base64, json!({"Data": "cGluZw=="})));
    assert!(!fires(&plain_base64, json!({"Data": "ping"})));

    let wide = rule(
        "    selection:\n        Payload|wide|base64offset|contains: 'cmd'\n    condition: selection",
    );
    let utf16: Vec<u8> = "run cmd now"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    assert!(fires(&wide, json!({"Payload": encode_base64(&utf16)})));
}

/// Base64 written out independently of the compiler's encoder.
fn encode_base64(bytes: &[u8]) -> String {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0;
    let mut text = String::new();
    for byte in bytes {
        bits = (bits << 8) | u32::from(*byte);
        count += 8;
        while count >= 6 {
            count -= 6;
            text.push(alphabet[((bits >> count) & 63) as usize] as char);
        }
    }
    if count > 0 {
        text.push(alphabet[((bits << (6 - count)) & 63) as usize] as char);
    }
    while !text.len().is_multiple_of(4) {
        text.push('=');
    }
    text
}

#[test]
fn rules_that_cannot_be_compiled_are_reported_and_the_others_load() {
    let file = format!(
        "{}---
title: Uses expand
id: 5f1c0f0e-0000-4000-8000-000000000002
logsource: {{product: linux}}
detection:
    selection:
        SourceIp|expand: '%allowed%'
    condition: selection
---
title: Names a missing detection
id: 5f1c0f0e-0000-4000-8000-000000000003
logsource: {{product: linux}}
detection:
    selection:
        A: 1
    condition: selection and not filter
---
title: Unknown modifier
id: 5f1c0f0e-0000-4000-8000-000000000004
logsource: {{product: linux}}
detection:
    selection:
        A|sometimes: 1
    condition: selection
---
title: Many failed logins
id: 5f1c0f0e-0000-4000-8000-000000000005
correlation:
    type: value_sum
    rules: [5f1c0f0e-0000-4000-8000-000000000001]
    group-by: [User]
    timespan: 5m
    window: tumbling
    condition: {{gte: 5, field: Bytes}}
",
        rule("    selection:\n        EventID: 1\n    condition: selection")
    );
    let (rules, errors) = parse_rules(&file, "mixed.yml");
    assert_eq!(rules.len(), 1, "{errors:#?}");
    let reasons: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let has = |needle: &str| reasons.iter().any(|reason| reason.contains(needle));
    assert!(
        has("placeholder %allowed% has no list or pipeline placeholder"),
        "{reasons:#?}"
    );
    assert!(
        has("sigma-5f1c0f0e-0000-4000-8000-000000000002"),
        "{reasons:#?}"
    );
    assert!(has("`filter`"), "{reasons:#?}");
    assert!(
        has(
            "rule `sigma-5f1c0f0e-0000-4000-8000-000000000004`: not a Sigma rule: Unknown modifier 'sometimes'"
        ),
        "{reasons:#?}"
    );
    assert!(
        has("the `tumbling` window is not supported yet"),
        "{reasons:#?}"
    );
    assert!(
        reasons.iter().all(|reason| reason.contains("mixed.yml")),
        "{reasons:#?}"
    );
}

#[test]
fn sigma_and_native_rules_load_side_by_side_from_one_directory() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(
        directory.path().join("native.yml"),
        "id: native-one\ntitle: Native\nkind: match\nmatch: 'details.eventid:4625'\n",
    )
    .unwrap();
    std::fs::write(
        directory.path().join("sigma.yml"),
        rule("    selection:\n        EventID: 4624\n    condition: selection"),
    )
    .unwrap();
    let loaded = isms_detect::load_directory(directory.path()).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let mut ids: Vec<&str> = loaded.rules.iter().map(Rule::id).collect();
    ids.sort();
    assert_eq!(
        ids,
        ["native-one", "sigma-5f1c0f0e-0000-4000-8000-000000000001"]
    );
}

/// Events at `seconds` after a fixed time, each with the given fields.
fn timed(seconds: i64, fields: Value) -> Event {
    let mut raw = fields;
    let time = jiff::Timestamp::from_second(1_780_000_000 + seconds).unwrap();
    raw["utctimestamp"] = json!(time.to_string());
    event(raw)
}

/// Rule ids of the fired (not cleared) detections of `rules` over `events`.
fn fired(rules: Vec<Rule>, events: &[Event]) -> Vec<String> {
    let mut engine = common::engine_of(rules);
    let mut fired = Vec::new();
    for event in events {
        for detection in engine.process(event) {
            if detection.state == isms_detect::DetectionState::Fired {
                fired.push(detection.rule_id.to_string());
            }
        }
    }
    fired
}

const LOGIN_RULE: &str = "title: Login
id: 6e000000-0000-4000-8000-000000000001
name: login
logsource: {product: linux, service: sshd}
detection:
    selection:
        EventType: login
    condition: selection
";

#[test]
fn a_filter_in_another_file_adds_its_exclusion_to_the_rules_it_names() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("login.yml"), LOGIN_RULE).unwrap();
    std::fs::write(
        directory.path().join("filter.yml"),
        "title: Not the backup account
id: 6e000000-0000-4000-8000-0000000000f1
logsource: {product: linux}
filter:
    rules: [login]
    selection:
        User: backup
    condition: not selection
",
    )
    .unwrap();
    let loaded = isms_detect::load_directory(directory.path()).unwrap();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    let events = [
        timed(0, json!({"EventType": "login", "User": "backup"})),
        timed(1, json!({"EventType": "login", "User": "alice"})),
    ];
    assert_eq!(
        fired(loaded.rules, &events),
        ["sigma-6e000000-0000-4000-8000-000000000001"]
    );
}

#[test]
fn correlations_run_on_the_windowed_kinds() {
    let event_count = format!(
        "{LOGIN_RULE}---
title: Many logins
id: 6e000000-0000-4000-8000-0000000000c1
correlation:
    type: event_count
    rules: [login]
    group-by: [User]
    timespan: 5m
    condition: {{gte: 3}}
level: high
"
    );
    let rules = sigma_rules(&event_count);
    let correlation = rules
        .iter()
        .find(|rule| rule.definition.kind == "threshold")
        .expect("event_count became a threshold rule");
    assert_eq!(correlation.definition.severity, "ERROR");
    assert_eq!(
        correlation.definition.parameters["group_by"],
        json!(["details.username"])
    );
    let base = rules
        .iter()
        .find(|rule| rule.definition.kind == "match")
        .unwrap();
    assert!(
        !base.definition.enabled,
        "without generate, the login rule alerts only through the correlation"
    );
    let login = |seconds, user: &str| timed(seconds, json!({"EventType": "login", "User": user}));
    let events = [
        login(0, "admin"),
        login(10, "admin"),
        login(20, "bob"),
        login(30, "admin"),
        login(40, "admin"),
        login(1000, "bob"),
        login(1010, "bob"),
    ];
    assert_eq!(
        fired(rules, &events),
        ["sigma-6e000000-0000-4000-8000-0000000000c1"],
        "admin's third login within 5 minutes fires once; bob's logins are too far apart"
    );

    let generate = event_count.replace("level: high\n", "level: high\ngenerate: true\n");
    let rules = sigma_rules(&generate);
    assert!(rules.iter().all(|rule| rule.definition.enabled));

    let value_count = format!(
        "{LOGIN_RULE}---
title: One source, many users
id: 6e000000-0000-4000-8000-0000000000c2
correlation:
    type: value_count
    rules: [login]
    group-by: [SourceIp]
    timespan: 1m
    condition: {{gte: 3, field: User}}
"
    );
    let from = |seconds, user: &str| {
        timed(
            seconds,
            json!({"EventType": "login", "User": user, "SourceIp": "192.0.2.7"}),
        )
    };
    let events = [from(0, "a"), from(1, "a"), from(2, "b"), from(3, "c")];
    assert_eq!(
        fired(sigma_rules(&value_count), &events),
        ["sigma-6e000000-0000-4000-8000-0000000000c2"]
    );

    let temporal = format!(
        "{LOGIN_RULE}---
title: Sudo
id: 6e000000-0000-4000-8000-000000000002
name: sudo
logsource: {{product: linux}}
detection:
    selection:
        EventType: sudo
    condition: selection
---
title: Login then sudo
id: 6e000000-0000-4000-8000-0000000000c3
correlation:
    type: temporal_ordered
    rules: [login, sudo]
    group-by: [User]
    timespan: 10m
"
    );
    let events = [
        timed(0, json!({"EventType": "sudo", "User": "eve"})),
        timed(5, json!({"EventType": "login", "User": "eve"})),
        timed(6, json!({"EventType": "login", "User": "mallory"})),
        timed(9, json!({"EventType": "sudo", "User": "mallory"})),
    ];
    assert_eq!(
        fired(sigma_rules(&temporal), &events),
        ["sigma-6e000000-0000-4000-8000-0000000000c3"],
        "only mallory logged in before sudo (eve's sudo came first; her login then has no sudo)"
    );
}

#[test]
fn a_correlation_naming_a_missing_rule_is_reported() {
    let (rules, errors) = parse_rules(
        "title: Many
id: 6e000000-0000-4000-8000-0000000000c9
correlation:
    type: event_count
    rules: [no-such-rule]
    group-by: [User]
    timespan: 5m
    condition: {gte: 3}
",
        "missing.yml",
    );
    assert!(rules.is_empty());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let reason = errors[0].to_string();
    assert!(
        reason.contains("missing.yml:2")
            && reason.contains("it names rule `no-such-rule`, which is not loaded"),
        "{reason}"
    );
}

/// The query a Sigma rule's single detection compiles to.
fn query_of(detection: &str) -> String {
    let rules = sigma_rules(&rule(detection));
    assert_eq!(rules.len(), 1);
    rules[0].definition.query.clone()
}

#[test]
fn cidr_matches_addresses_inside_any_of_the_networks() {
    let yaml = rule(
        "    selection:
        SourceIp|cidr:
            - '10.0.0.0/8'
            - '2001:DB8::/32'
            - '192.168.1.5'
    condition: selection",
    );
    assert_eq!(
        query_of(
            "    selection:\n        SourceIp|cidr: ['10.0.0.0/8', '2001:DB8::/32', '192.168.1.5']\n    condition: selection"
        ),
        "details.sourceipaddress:cidr(10.0.0.0/8) OR details.sourceipaddress:cidr(2001:db8::/32) OR details.sourceipaddress:cidr(192.168.1.5/32)"
    );
    for (address, inside) in [
        ("10.1.2.3", true),
        ("11.0.0.1", false),
        ("2001:db8::7", true),
        ("2001:db9::7", false),
        ("192.168.1.5", true),
        ("192.168.1.6", false),
        ("::ffff:10.1.2.3", false),
        ("not an address", false),
    ] {
        assert_eq!(
            fires(&yaml, json!({"SourceIp": address})),
            inside,
            "{address}"
        );
    }
    assert!(fires(&yaml, json!({"SourceIp": ["x", "10.0.0.1"]})));
    assert!(!fires(&yaml, json!({"DestinationIp": "10.0.0.1"})));

    let outside = rule(
        "    selection:
        User: bob
    internal:
        SourceIp|cidr: '10.0.0.0/8'
    condition: selection and not internal",
    );
    assert!(fires(
        &outside,
        json!({"User": "bob", "SourceIp": "8.8.8.8"})
    ));
    assert!(!fires(
        &outside,
        json!({"User": "bob", "SourceIp": "10.9.9.9"})
    ));
    let neither = rule(
        "    selection:
        SourceIp|cidr|neq: '10.0.0.0/8'
    condition: selection",
    );
    assert!(fires(&neither, json!({"SourceIp": "8.8.8.8"})));
    assert!(!fires(&neither, json!({"SourceIp": "10.0.0.8"})));
    assert!(!fires(&neither, json!({"User": "bob"})));
}

#[test]
fn fieldref_compares_two_fields_of_the_event() {
    let yaml = rule(
        "    selection:
        User|fieldref: TargetUserName
    condition: selection",
    );
    assert_eq!(
        query_of("    selection:\n        User|fieldref: TargetUserName\n    condition: selection"),
        "details.username:fieldref(details.targetusername)"
    );
    assert!(fires(
        &yaml,
        json!({"User": "Admin", "TargetUserName": "ADMIN"})
    ));
    assert!(!fires(
        &yaml,
        json!({"User": "Admin", "TargetUserName": "guest"})
    ));
    assert!(!fires(&yaml, json!({"User": "Admin"})));
    assert!(!fires(&yaml, json!({"TargetUserName": "Admin"})));
    // Values compare as text: a number equals its text.
    assert!(fires(
        &yaml,
        json!({"User": 4625, "TargetUserName": "4625"})
    ));
    // Any value of each side.
    assert!(fires(
        &yaml,
        json!({"User": ["x", "bob"], "TargetUserName": "BOB"})
    ));
    // The referenced name is mapped like any Sigma field (`SourceIp` lands in
    // `details.sourceipaddress`), and `neq` asks for a different value.
    let different = rule(
        "    selection:
        DestinationIp|fieldref|neq: SourceIp
    condition: selection",
    );
    assert!(fires(
        &different,
        json!({"DestinationIp": "10.0.0.1", "SourceIp": "10.0.0.2"})
    ));
    assert!(!fires(
        &different,
        json!({"DestinationIp": "10.0.0.1", "SourceIp": "10.0.0.1"})
    ));
}

#[test]
fn time_part_modifiers_read_the_field_as_a_utc_time() {
    let at = |modifier: &str, value: &str, time: Value| -> bool {
        fires(
            &rule(&format!(
                "    selection:\n        CreationUtcTime|{modifier}: {value}\n    condition: selection"
            )),
            json!({ "CreationUtcTime": time }),
        )
    };
    // 2024-12-30T23:15:00Z: Monday of ISO week 1 of 2025.
    let time = json!("2024-12-31T01:15:00+02:00");
    assert!(at("minute", "15", time.clone()));
    assert!(at("hour", "23", time.clone()));
    assert!(!at("hour", "1", time.clone()));
    assert!(at("day", "30", time.clone()));
    assert!(at("week", "1", time.clone()));
    assert!(at("month", "12", time.clone()));
    assert!(at("year", "2024", time.clone()));
    assert!(at("hour", "[3, 23]", time.clone()));
    assert!(!at("hour", "[3, 4]", time.clone()));
    assert!(at("hour|neq", "3", time.clone()));
    assert!(at("hour", "'23'", time.clone()));
    // Epoch seconds as a number, and text that is no time.
    assert!(at("hour", "13", json!(1_706_621_083)));
    assert!(!at("hour", "0", json!("soon")));
    assert_eq!(
        query_of("    selection:\n        CreationUtcTime|week: 53\n    condition: selection"),
        "details.creationutctime:week(53)"
    );
}

#[test]
fn bad_network_fieldref_and_time_part_values_and_combinations_are_refused() {
    let refused = |detection: &str| -> String {
        let (rules, errors) = parse_rules(&rule(detection), "bad.yml");
        assert!(rules.is_empty(), "{detection}");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors[0].to_string()
    };
    let item = |field: &str, value: &str| {
        refused(&format!(
            "    selection:\n        {field}: {value}\n    condition: selection"
        ))
    };
    for (field, value, reason) in [
        (
            "SourceIp|cidr",
            "'10.0.0.0/33'",
            "`SourceIp|cidr`: `10.0.0.0/33` is not a network: the prefix length 33 is longer than the 32 bits of an IPv4 address",
        ),
        (
            "SourceIp|cidr",
            "['10.0.0.0/8', '300.1.1.1/8']",
            "`300.1.1.1/8` is not a network: \"300.1.1.1\" is not an IP address",
        ),
        (
            "SourceIp|cidr",
            "'10.1.0.0/8'",
            "`10.1.0.0/8` is not a network: host bits are set past the prefix (the network is 10.0.0.0/8)",
        ),
        ("SourceIp|cidr", "'intranet'", "`intranet` is not a network"),
        ("SourceIp|cidr", "8", "`8` is not a network"),
        (
            "SourceIp|cidr|contains",
            "'10.0.0.0/8'",
            "the modifiers `cidr` and `contains` cannot be combined",
        ),
        (
            "SourceIp|cidr|cased",
            "'10.0.0.0/8'",
            "the modifiers `cidr` and `cased` cannot be combined",
        ),
        (
            "User|fieldref|base64",
            "TargetUser",
            "the modifiers `fieldref` and `base64` cannot be combined",
        ),
        (
            "User|fieldref|cidr",
            "TargetUser",
            "the modifiers `cidr` and `fieldref` cannot be combined",
        ),
        (
            "User|fieldref|contains",
            "TargetUser",
            "`fieldref` with `contains` is not supported yet",
        ),
        (
            "User|fieldref",
            "'Target*'",
            "a field reference is a field name, without wildcards",
        ),
        (
            "User|fieldref",
            "null",
            "`null` is not a field name to refer to",
        ),
        (
            "Time|hour",
            "24",
            "`hour` needs an integer from 0 to 23, not `24`",
        ),
        (
            "Time|week",
            "0",
            "`week` needs an integer from 1 to 53, not `0`",
        ),
        (
            "Time|month",
            "1.5",
            "`month` needs an integer from 1 to 12, not `1.5`",
        ),
        (
            "Time|day",
            "'first'",
            "`day` needs an integer from 1 to 31, not `first`",
        ),
        (
            "Time|hour|minute",
            "3",
            "the modifiers `minute` and `hour` cannot be combined",
        ),
        (
            "Time|hour|gte",
            "3",
            "the modifiers `hour` and `gte` cannot be combined",
        ),
        (
            "Time|year|re",
            "2024",
            "the modifiers `year` and `re` cannot be combined",
        ),
    ] {
        let error = item(field, value);
        assert!(error.contains(reason), "{field}: {value}: {error}");
    }
}

#[test]
fn bad_sigma_input_is_refused_with_the_reason_and_bounded() {
    let refused = |detection: &str| -> String {
        let (rules, errors) = parse_rules(&rule(detection), "bad.yml");
        assert!(rules.is_empty(), "{detection}");
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors[0].to_string()
    };
    let reason = refused("    selection:\n        A|base64|re: 'x'\n    condition: selection");
    assert!(
        reason.contains("the modifiers `re` and `base64` cannot be combined")
            && reason.contains("bad.yml:2")
            && reason.contains("sigma-5f1c0f0e-0000-4000-8000-000000000001"),
        "{reason}"
    );
    let reason =
        refused("    selection:\n        A|contains|endswith: 'x'\n    condition: selection");
    assert!(reason.contains("`contains` and `endswith`"), "{reason}");
    let reason = refused("    selection:\n        A|i: 'x'\n    condition: selection");
    assert!(reason.contains("needs `re`"), "{reason}");
    let reason = refused("    selection:\n        A|gt: 'x'\n    condition: selection");
    assert!(reason.contains("needs a number"), "{reason}");
    let reason = refused("    selection:\n        A|re: '(unclosed'\n    condition: selection");
    assert!(reason.contains("invalid regex"), "{reason}");
    let reason =
        refused("    selection:\n        A|expand: '%placeholder%'\n    condition: selection");
    assert!(
        reason.contains("placeholder %placeholder% has no list or pipeline placeholder"),
        "{reason}"
    );

    // YAML aliases that would expand a billion times are refused by the YAML reader's limit.
    let mut laughs = String::from(
        "title: laughs\nid: 7e000000-0000-4000-8000-000000000001\nlogsource: {product: x}\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for level in 1..10 {
        let previous = format!("*a{}", level - 1);
        laughs.push_str(&format!(
            "a{level}: &a{level} [{}]\n",
            vec![previous; 10].join(", ")
        ));
    }
    laughs.push_str("detection:\n    selection:\n        Field: *a9\n    condition: selection\n");
    let (rules, errors) = parse_rules(&laughs, "laughs.yml");
    assert!(rules.is_empty());
    assert!(
        errors
            .iter()
            .any(|error| error.to_string().contains("repetition limit exceeded")),
        "{errors:#?}"
    );

    // A rule file over the size bound is refused unread; the good file beside it loads.
    let directory = tempfile::tempdir().unwrap();
    let mut big = rule("    selection:\n        A: 1\n    condition: selection");
    big.push_str(&format!(
        "description: '{}'\n",
        "x".repeat(10 * 1024 * 1024)
    ));
    std::fs::write(directory.path().join("big.yml"), big).unwrap();
    std::fs::write(directory.path().join("good.yml"), LOGIN_RULE).unwrap();
    let loaded = isms_detect::load_directory(directory.path()).unwrap();
    assert_eq!(loaded.rules.len(), 1);
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    assert!(
        loaded.errors[0].to_string().contains("big.yml"),
        "{}",
        loaded.errors[0]
    );
}

#[test]
fn windash_with_too_many_option_dashes_is_refused_not_expanded_without_bound() {
    let (rules, errors) = parse_rules(
        &rule(
            "    selection:\n        CommandLine|windash|contains: '-a -b -c -d -e*-f -g -h'\n    condition: selection",
        ),
        "windash.yml",
    );
    assert!(rules.is_empty());
    assert!(
        errors[0]
            .to_string()
            .contains("windash would write this value in more than 125 ways"),
        "{errors:#?}"
    );
    // Three dashes (125 ways) still compile.
    let (rules, errors) = parse_rules(
        &rule(
            "    selection:\n        CommandLine|windash|contains: '-a -b -c'\n    condition: selection",
        ),
        "windash.yml",
    );
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(rules.len(), 1);
}

/// Every detection of `rules` over `events` as `(rule id, state, group text)`, detections fed back
/// to the rules (correlations of correlations build on them).
fn detections_of(rules: Vec<Rule>, events: &[Event]) -> Vec<(String, &'static str, String)> {
    let mut engine = Engine::new(
        rules,
        Lists::default(),
        EngineOptions {
            allowed_lateness_micros: 0,
            max_chain_depth: 3,
        },
    );
    let mut found = Vec::new();
    for event in events {
        for detection in engine.process(event) {
            found.push((
                detection.rule_id.to_string(),
                detection.state.name(),
                detection.group_text(),
            ));
        }
    }
    found
}

fn correlation_rule(rules: &[Rule]) -> &Rule {
    rules
        .iter()
        .find(|rule| rule.definition.kind != "match")
        .expect("the correlation loaded")
}

const COUNT_ID: &str = "sigma-6e000000-0000-4000-8000-0000000000d1";

fn login_count(condition: &str) -> String {
    format!(
        "{LOGIN_RULE}---
title: Logins in a range
id: 6e000000-0000-4000-8000-0000000000d1
correlation:
    type: event_count
    rules: [login]
    group-by: [User]
    timespan: 5m
    condition: {condition}
"
    )
}

#[test]
fn a_condition_range_fires_when_the_count_enters_it_and_clears_when_it_leaves() {
    let rules = sigma_rules(&login_count("{gte: 2, lte: 3}"));
    assert_eq!(
        correlation_rule(&rules).definition.parameters["condition"],
        json!({"ge": 2, "le": 3})
    );
    let login = |seconds| timed(seconds, json!({"EventType": "login", "User": "admin"}));
    let events: Vec<Event> = (0..5).map(|index| login(index * 10)).collect();
    let states: Vec<(String, &str)> = detections_of(rules, &events)
        .into_iter()
        .map(|(rule, state, _)| (rule, state))
        .collect();
    assert_eq!(
        states,
        [
            (COUNT_ID.to_owned(), "fired"),
            (COUNT_ID.to_owned(), "cleared")
        ],
        "fires at the second login (2 in range), stays active at the third, clears at the fourth (4 > 3)"
    );

    // A range that cannot hold never fires.
    let empty = sigma_rules(&login_count("{gt: 3, lt: 4}"));
    assert!(detections_of(empty, &events).is_empty());
}

#[test]
fn eq_and_neq_compare_the_count_exactly() {
    let login = |seconds| timed(seconds, json!({"EventType": "login", "User": "admin"}));
    let events: Vec<Event> = (0..4).map(|index| login(index * 10)).collect();
    let eq = sigma_rules(&login_count("{eq: 3}"));
    assert_eq!(
        correlation_rule(&eq).definition.parameters["compare"],
        json!("eq")
    );
    let states: Vec<&str> = detections_of(eq, &events)
        .into_iter()
        .map(|(_, state, _)| state)
        .collect();
    assert_eq!(
        states,
        ["fired", "cleared"],
        "the third login fires, the fourth clears"
    );
    // neq 1: one login is not enough; the second fires and further ones keep it active.
    let neq = sigma_rules(&login_count("{neq: 1}"));
    let fired = detections_of(neq, &events);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].1, "fired");

    // value_count takes ranges too.
    let value_count = format!(
        "{LOGIN_RULE}---
title: A few users from one source
id: 6e000000-0000-4000-8000-0000000000d2
correlation:
    type: value_count
    rules: [login]
    group-by: [SourceIp]
    timespan: 1m
    condition: {{gte: 2, lt: 4, field: User}}
"
    );
    let from = |seconds, user: &str| {
        timed(
            seconds,
            json!({"EventType": "login", "User": user, "SourceIp": "192.0.2.7"}),
        )
    };
    let events = [
        from(0, "a"),
        from(1, "b"),
        from(2, "c"),
        from(3, "d"),
        from(4, "e"),
    ];
    let states: Vec<&str> = detections_of(sigma_rules(&value_count), &events)
        .into_iter()
        .map(|(_, state, _)| state)
        .collect();
    assert_eq!(states, ["fired", "cleared"], "2 users fire, the 4th clears");
}

fn aggregate(kind: &str, condition: &str) -> String {
    format!(
        "title: Transfer
id: 6e000000-0000-4000-8000-000000000010
name: transfer
logsource: {{product: linux}}
detection:
    selection:
        EventType: transfer
    condition: selection
---
title: Aggregated transfers
id: 6e000000-0000-4000-8000-0000000000e1
correlation:
    type: {kind}
    rules: [transfer]
    group-by: [SourceIp]
    timespan: 10m
    condition: {condition}
"
    )
}

/// The index (in `amounts`) of each event at which the aggregate correlation fired.
fn fired_at(yaml: &str, amounts: &[Value]) -> Vec<usize> {
    let mut engine = common::engine_of(sigma_rules(yaml));
    let mut fired = Vec::new();
    for (index, amount) in amounts.iter().enumerate() {
        let event = timed(
            index as i64,
            json!({"EventType": "transfer", "SourceIp": "192.0.2.9", "Bytes": amount}),
        );
        for detection in engine.process(&event) {
            if detection.state == isms_detect::DetectionState::Fired {
                fired.push(index);
            }
        }
    }
    fired
}

#[test]
fn value_sum_adds_the_numbers_of_the_window_and_ignores_what_is_not_a_number() {
    let yaml = aggregate("value_sum", "{gte: 1000, field: Bytes}");
    let rules = sigma_rules(&yaml);
    let parameters = &correlation_rule(&rules).definition.parameters;
    assert_eq!(parameters["aggregate"], json!("sum"));
    assert_eq!(parameters["field"], json!("details.bytes"));
    assert_eq!(parameters["condition"], json!({"ge": 1000}));
    // 400 + "500" (a number as text counts) + "n/a" (not a number: ignored) + 99 = 999, + 1 = 1000.
    assert_eq!(
        fired_at(
            &yaml,
            &[json!(400), json!("500"), json!("n/a"), json!(99), json!(1)]
        ),
        [4]
    );
    // A range: the sum must stay at most 1000.
    let ranged = aggregate("value_sum", "{gte: 500, lte: 1000, field: Bytes}");
    assert_eq!(fired_at(&ranged, &[json!(600), json!(600)]), [0]);
}

#[test]
fn value_avg_median_and_percentile_compare_their_statistic_of_the_window() {
    // Averages: 50, then (50 + 200) / 2 = 125.
    assert_eq!(
        fired_at(
            &aggregate("value_avg", "{gt: 100, field: Bytes}"),
            &[json!(50), json!(200)]
        ),
        [1]
    );
    // Medians: 1, then 50.5 (between 1 and 100), then 100.
    assert_eq!(
        fired_at(
            &aggregate("value_median", "{gte: 50, lt: 60, field: Bytes}"),
            &[json!(1), json!(100), json!(100)]
        ),
        [1]
    );
    // The 90th percentile of 10, 20, ..., 90 is 82; with 100 it is 91.
    let values: Vec<Value> = (1..=10).map(|tens| json!(tens * 10)).collect();
    let yaml = aggregate(
        "value_percentile",
        "{gte: 90, field: Bytes, percentile: 90}",
    );
    let rules = sigma_rules(&yaml);
    assert_eq!(
        correlation_rule(&rules).definition.parameters["percentile"],
        json!(90)
    );
    assert_eq!(fired_at(&yaml, &values), [9]);
}

const VPN_RULE: &str = "title: VPN connection
id: 6e000000-0000-4000-8000-000000000003
name: vpn
logsource: {product: network}
detection:
    selection:
        EventType: vpn
    condition: selection
";

#[test]
fn aliases_group_the_events_of_each_rule_by_their_own_field() {
    let yaml = format!(
        "{LOGIN_RULE}---
{VPN_RULE}---
title: Login and VPN by one person
id: 6e000000-0000-4000-8000-0000000000f2
correlation:
    type: event_count
    rules: [login, vpn]
    group-by: [person]
    aliases:
        person:
            login: User
            vpn: Account
    timespan: 5m
    condition: {{gte: 2}}
"
    );
    let rules = sigma_rules(&yaml);
    let parameters = &correlation_rule(&rules).definition.parameters;
    assert_eq!(parameters["group_by"], json!(["details.person"]));
    assert_eq!(
        parameters["group_by_per_rule"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["group_by"].clone())
            .collect::<Vec<_>>(),
        [json!(["details.username"]), json!(["details.account"])]
    );
    let events = [
        timed(0, json!({"EventType": "login", "User": "bob"})),
        timed(1, json!({"EventType": "vpn", "Account": "carol"})),
        timed(2, json!({"EventType": "login", "User": "alice"})),
        timed(3, json!({"EventType": "vpn", "Account": "alice"})),
    ];
    assert_eq!(
        detections_of(rules, &events),
        [(
            "sigma-6e000000-0000-4000-8000-0000000000f2".to_owned(),
            "fired",
            "details.person=alice".to_owned()
        )],
        "alice's login and VPN connection are one person's; bob's and carol's are not"
    );

    // Temporal correlations key each step by its rule's field too.
    let temporal = yaml
        .replace("type: event_count", "type: temporal_ordered")
        .replace("    condition: {gte: 2}\n", "");
    let fired = detections_of(sigma_rules(&temporal), &events);
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(fired[0].2, "details.person=alice");

    // An alias must map every rule.
    let (_, errors) = parse_rules(
        &yaml.replace("            vpn: Account\n", ""),
        "aliases.yml",
    );
    assert!(
        errors.iter().any(|error| error
            .to_string()
            .contains("alias `person` gives no field for rule `vpn`")),
        "{errors:#?}"
    );
}

const INNER_CORRELATION: &str = "title: Two logins
id: 6e000000-0000-4000-8000-0000000000a1
name: two_logins
correlation:
    type: event_count
    rules: [login]
    group-by: [User]
    timespan: 5m
    condition: {gte: 2}
";

#[test]
fn a_correlation_counts_the_detections_of_the_correlation_it_names() {
    let yaml = format!(
        "{LOGIN_RULE}---
{INNER_CORRELATION}---
title: Repeated bursts of logins
id: 6e000000-0000-4000-8000-0000000000a2
correlation:
    type: event_count
    rules: [two_logins]
    group-by: [User]
    timespan: 1h
    condition: {{gte: 2}}
"
    );
    let rules = sigma_rules(&yaml);
    let outer = rules
        .iter()
        .find(|rule| rule.id() == "sigma-6e000000-0000-4000-8000-0000000000a2")
        .unwrap();
    assert_eq!(
        outer.definition.parameters["group_by"],
        json!(["details.username"])
    );
    assert!(
        outer
            .definition
            .query
            .contains("sigma-6e000000-0000-4000-8000-0000000000a1"),
        "{}",
        outer.definition.query
    );
    let login = |seconds, user: &str| timed(seconds, json!({"EventType": "login", "User": user}));
    let events = [
        login(0, "alice"),
        login(10, "alice"),
        login(20, "bob"),
        login(30, "bob"),
        // Long after: the first bursts have cleared; alice bursts again, bob logs in once.
        login(1000, "alice"),
        login(1010, "alice"),
        login(1020, "bob"),
    ];
    let outer_fired: Vec<String> = detections_of(rules, &events)
        .into_iter()
        .filter(|(rule, state, _)| {
            rule == "sigma-6e000000-0000-4000-8000-0000000000a2" && *state == "fired"
        })
        .map(|(_, _, group)| group)
        .collect();
    assert_eq!(
        outer_fired,
        ["details.username=alice"],
        "alice burst twice within the hour, bob once"
    );
}

#[test]
fn correlations_naming_each_other_in_a_cycle_are_refused() {
    let yaml = format!(
        "{LOGIN_RULE}---
title: First
id: 6e000000-0000-4000-8000-0000000000b1
name: first
correlation:
    type: event_count
    rules: [second]
    group-by: [User]
    timespan: 5m
    condition: {{gte: 2}}
---
title: Second
id: 6e000000-0000-4000-8000-0000000000b2
name: second
correlation:
    type: event_count
    rules: [first, login]
    group-by: [User]
    timespan: 5m
    condition: {{gte: 2}}
"
    );
    let (rules, errors) = parse_rules(&yaml, "cycle.yml");
    assert_eq!(rules.len(), 1, "only the login rule loads: {errors:#?}");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    for error in &errors {
        let reason = error.to_string();
        assert!(
            reason.contains("cycle (first → second → first)"),
            "{reason}"
        );
    }

    // Grouping by a field the named correlation does not group by is refused too.
    let (_, errors) = parse_rules(
        &format!(
            "{LOGIN_RULE}---
{INNER_CORRELATION}---
title: By source
id: 6e000000-0000-4000-8000-0000000000b3
correlation:
    type: event_count
    rules: [two_logins]
    group-by: [SourceIp]
    timespan: 1h
    condition: {{gte: 2}}
"
        ),
        "group.yml",
    );
    assert!(
        errors.iter().any(|error| error
            .to_string()
            .contains("it groups by `SourceIp`, which correlation `two_logins` does not group by")),
        "{errors:#?}"
    );
}
