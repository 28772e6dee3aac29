//! Sigma `|expand`: `%name%` placeholders filled from named lists and from pipelines'
//! `placeholders`, compiled into one alternative per combination, with the other modifiers applied
//! to each; unknown placeholders and too many combinations refused with file, id and reason while
//! the other rules load.
mod common;

use std::path::Path;
use std::sync::Arc;

use isms_detect::{Lists, LoadedRules, Rule};
use isms_event::Event;
use serde_json::{Value, json};

fn event(raw: Value) -> Event {
    common::json_event(raw)
}

fn sigma_rule(number: u32, detection: &str) -> String {
    format!(
        "title: Expand rule {number}
id: 6a000000-0000-4000-8000-{number:012}
logsource: {{product: acme}}
detection:
{detection}
"
    )
}

fn sigma_id(number: u32) -> String {
    format!("sigma-6a000000-0000-4000-8000-{number:012}")
}

/// A rules directory and a lists directory with these files; the rules loaded with those lists.
struct Setup {
    rules: tempfile::TempDir,
    lists: tempfile::TempDir,
}

impl Setup {
    fn new(rule_files: &[(&str, String)], list_files: &[(&str, &str)]) -> Setup {
        let setup = Setup {
            rules: tempfile::tempdir().unwrap(),
            lists: tempfile::tempdir().unwrap(),
        };
        for (name, text) in rule_files {
            std::fs::write(setup.rules.path().join(name), text).unwrap();
        }
        for (name, text) in list_files {
            std::fs::write(setup.lists.path().join(name), text).unwrap();
        }
        setup
    }

    fn lists(&self) -> Lists {
        let mut lists = Lists::default();
        assert!(lists.load_directory(self.lists.path()).unwrap().is_empty());
        lists
    }

    fn load(&self) -> LoadedRules {
        isms_detect::load_directory_with_lists(self.rules.path(), &[], &Arc::new(self.lists()))
            .unwrap()
    }

    fn rules_path(&self, name: &str) -> String {
        self.rules.path().join(name).display().to_string()
    }
}

fn loaded_without_errors(setup: &Setup) -> Vec<Rule> {
    let loaded = setup.load();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    loaded.rules
}

/// Which of `raws` make a rule of `rules` fire (by index).
fn firing(rules: Vec<Rule>, raws: &[Value]) -> Vec<usize> {
    let mut engine = common::engine_of(rules);
    raws.iter()
        .enumerate()
        .filter(|(_, raw)| !engine.process(&event((*raw).clone())).is_empty())
        .map(|(index, _)| index)
        .collect()
}

#[test]
fn a_list_placeholder_fires_on_each_entry_and_no_other_value() {
    let setup = Setup::new(
        &[(
            "admins.yml",
            sigma_rule(
                1,
                "    selection:\n        User|expand: '%admins%'\n    condition: selection",
            ),
        )],
        &[("admins.txt", "# who administers\nalice\nBob\n")],
    );
    let loaded = setup.load();
    assert!(loaded.errors.is_empty(), "{:#?}", loaded.errors);
    assert_eq!(
        loaded.expand_placeholders.iter().collect::<Vec<_>>(),
        ["admins"]
    );
    let raws = [
        json!({"User": "alice"}),
        json!({"User": "BOB"}),
        json!({"User": "carol"}),
        json!({"User": "alice2"}),
        json!({"Other": "alice"}),
    ];
    assert_eq!(firing(loaded.rules, &raws), [0, 1]);
}

#[test]
fn a_placeholder_inside_a_longer_value_takes_the_other_modifiers() {
    let setup = Setup::new(
        &[(
            "profile.yml",
            sigma_rule(
                2,
                "    selection:\n        TargetFilename|expand|endswith: '\\Users\\%user%\\ntuser.dat'\n    condition: selection",
            ),
        )],
        &[("user.list", "alice\nbob\n")],
    );
    let raws = [
        json!({"TargetFilename": "C:\\Users\\alice\\ntuser.dat"}),
        json!({"TargetFilename": "D:\\backup\\Users\\BOB\\NTUSER.DAT"}),
        json!({"TargetFilename": "C:\\Users\\carol\\ntuser.dat"}),
        json!({"TargetFilename": "C:\\Users\\alice\\ntuser.dat.bak"}),
        json!({"TargetFilename": "C:\\Users\\%user%\\ntuser.dat"}),
    ];
    assert_eq!(firing(loaded_without_errors(&setup), &raws), [0, 1]);
}

#[test]
fn several_placeholders_make_every_combination_and_wildcards_stay() {
    let setup = Setup::new(
        &[(
            "registry.yml",
            sigma_rule(
                3,
                "    selection:\n        RegistryKey|expand: 'HKLM\\SOFTWARE\\%vendor%\\\\*\\%product%'\n    condition: selection",
            ),
        )],
        &[
            ("vendor.txt", "acme\ninitech\n"),
            ("product.txt", "widget\nstapler\n"),
        ],
    );
    let raws = [
        json!({"RegistryKey": "HKLM\\SOFTWARE\\Acme\\v1\\Widget"}),
        json!({"RegistryKey": "HKLM\\SOFTWARE\\initech\\v2\\stapler"}),
        json!({"RegistryKey": "HKLM\\SOFTWARE\\acme\\v1\\stapler"}),
        json!({"RegistryKey": "HKLM\\SOFTWARE\\other\\v1\\widget"}),
        json!({"RegistryKey": "HKLM\\SOFTWARE\\acme\\widget"}),
    ];
    let rules = loaded_without_errors(&setup);
    assert_eq!(firing(rules, &raws), [0, 1, 2]);
}

#[test]
fn a_list_of_addresses_and_networks_works_with_cidr_and_neq_means_none_of_them() {
    let setup = Setup::new(
        &[
            (
                "blocked.yml",
                sigma_rule(
                    4,
                    "    selection:\n        SourceIp|expand|cidr: '%blocked%'\n    condition: selection",
                ),
            ),
            (
                "outside.yml",
                sigma_rule(
                    5,
                    "    selection:\n        User|expand|neq: '%admins%'\n    condition: selection",
                ),
            ),
        ],
        &[
            // A list takes a network with host bits set as the network; so does the rule.
            ("blocked.txt", "203.0.113.7\n10.1.0.0/8\n2001:db8::/32\n"),
            ("admins.txt", "alice\nbob\n"),
        ],
    );
    let rules = loaded_without_errors(&setup);
    let (blocked, outside): (Vec<Rule>, Vec<Rule>) =
        rules.into_iter().partition(|rule| rule.id() == sigma_id(4));
    let raws = [
        json!({"SourceIp": "203.0.113.7"}),
        json!({"SourceIp": "10.200.3.4"}),
        json!({"SourceIp": "2001:db8::1"}),
        json!({"SourceIp": "203.0.113.8"}),
        json!({"SourceIp": "11.0.0.1"}),
    ];
    assert_eq!(firing(blocked, &raws), [0, 1, 2]);
    let raws = [
        json!({"User": "alice"}),
        json!({"User": "carol"}),
        json!({"User": "BOB"}),
        json!({"Other": "x"}),
    ];
    assert_eq!(firing(outside, &raws), [1]);
}

#[test]
fn a_pipeline_placeholder_fills_a_value_and_wins_over_a_list_of_the_same_name() {
    let setup = Setup::new(
        &[
            (
                "site.pipeline.yml",
                "name: site\nentries:\n  - logsource: {product: acme}\n    placeholders:\n      admins: [root, toor]\n      ports: [22, 2222]\n"
                    .to_owned(),
            ),
            (
                "admins.yml",
                sigma_rule(
                    6,
                    "    selection:\n        User|expand: '%admins%'\n        Port|expand: '%ports%'\n    condition: selection",
                ),
            ),
        ],
        &[("admins.txt", "alice\n")],
    );
    let raws = [
        json!({"User": "root", "Port": 22}),
        json!({"User": "TOOR", "Port": "2222"}),
        json!({"User": "alice", "Port": 22}),
        json!({"User": "root", "Port": 23}),
    ];
    assert_eq!(firing(loaded_without_errors(&setup), &raws), [0, 1]);
}

#[test]
fn a_pipeline_placeholder_applies_only_to_its_log_source() {
    let setup = Setup::new(
        &[
            (
                "site.pipeline.yml",
                "name: site\nentries:\n  - logsource: {product: other}\n    placeholders:\n      admins: [root]\n".to_owned(),
            ),
            (
                "admins.yml",
                sigma_rule(
                    7,
                    "    selection:\n        User|expand: '%admins%'\n    condition: selection",
                ),
            ),
        ],
        &[],
    );
    let loaded = setup.load();
    assert!(loaded.rules.is_empty());
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    assert!(
        loaded.errors[0]
            .reason
            .contains("placeholder %admins% has no list or pipeline placeholder"),
        "{}",
        loaded.errors[0]
    );
}

#[test]
fn an_unknown_placeholder_is_refused_with_file_id_and_reason_and_the_others_load() {
    let setup = Setup::new(
        &[
            (
                "good.yml",
                sigma_rule(
                    8,
                    "    selection:\n        User|expand: '%admins%'\n    condition: selection",
                ),
            ),
            (
                "unknown.yml",
                sigma_rule(
                    9,
                    "    selection:\n        Image|expand|endswith: '\\%tools%.exe'\n    condition: selection",
                ),
            ),
        ],
        &[("admins.txt", "alice\n")],
    );
    let loaded = setup.load();
    assert_eq!(
        loaded.rules.iter().map(Rule::id).collect::<Vec<_>>(),
        [sigma_id(8)]
    );
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    let error = &loaded.errors[0];
    assert_eq!(error.origin, setup.rules_path("unknown.yml"));
    assert_eq!(error.rule_id.as_deref(), Some(sigma_id(9).as_str()));
    assert_eq!(error.line, Some(2));
    assert!(
        error
            .reason
            .contains("placeholder %tools% has no list or pipeline placeholder"),
        "{error}"
    );
    assert_eq!(
        loaded.expand_placeholders.iter().collect::<Vec<_>>(),
        ["admins", "tools"]
    );
}

#[test]
fn too_many_combinations_are_refused_and_an_empty_list_matches_nothing() {
    let many: String = (0..17).map(|number| format!("value{number}\n")).collect();
    let setup = Setup::new(
        &[
            (
                "many.yml",
                sigma_rule(
                    10,
                    "    selection:\n        Path|expand: '%first%\\%second%'\n    condition: selection",
                ),
            ),
            (
                "empty.yml",
                sigma_rule(
                    11,
                    "    selection:\n        User|expand: '%nobody%'\n    condition: selection",
                ),
            ),
        ],
        &[
            ("first.txt", many.as_str()),
            ("second.txt", many.as_str()),
            ("nobody.txt", "# no one yet\n"),
        ],
    );
    let loaded = setup.load();
    assert_eq!(loaded.errors.len(), 1, "{:#?}", loaded.errors);
    let error = &loaded.errors[0];
    assert_eq!(error.rule_id.as_deref(), Some(sigma_id(10).as_str()));
    assert!(
        error
            .reason
            .contains("%first%, %second% make more than 256 alternatives"),
        "{error}"
    );
    let raws = [json!({"User": "alice"}), json!({"User": ""})];
    assert_eq!(firing(loaded.rules, &raws), Vec::<usize>::new());
}

#[test]
fn expand_with_modifiers_its_values_cannot_be_made_of_is_refused_naming_the_pair() {
    let setup = Setup::new(&[], &[("admins.txt", "alice\n")]);
    for (number, (field, value, reason)) in [
        (
            "A|expand|re",
            "'%admins%'",
            "`expand` and `re` cannot be combined",
        ),
        (
            "A|expand|fieldref",
            "'%admins%'",
            "`expand` and `fieldref` cannot be combined",
        ),
        (
            "A|expand|gt",
            "'%admins%'",
            "`expand` and `gt` cannot be combined",
        ),
        (
            "A|expand|hour",
            "'%admins%'",
            "`expand` and `hour` cannot be combined",
        ),
        (
            "A|expand|cased",
            "'%admins%'",
            "placeholder %admins% is a list, whose text entries are kept in lower case",
        ),
        ("A|expand|cidr", "'%admins%'", "`alice` is not a network"),
    ]
    .into_iter()
    .enumerate()
    {
        let number = 20 + number as u32;
        std::fs::write(
            setup.rules.path().join("bad.yml"),
            sigma_rule(
                number,
                &format!("    selection:\n        {field}: {value}\n    condition: selection"),
            ),
        )
        .unwrap();
        let loaded = setup.load();
        assert!(loaded.rules.is_empty(), "{field}");
        assert_eq!(loaded.errors.len(), 1, "{field}: {:#?}", loaded.errors);
        assert!(
            loaded.errors[0].reason.contains(reason),
            "{field}: {}",
            loaded.errors[0]
        );
    }
}

#[test]
fn expansion_follows_the_lists_it_is_loaded_with() {
    let setup = Setup::new(
        &[(
            "admins.yml",
            sigma_rule(
                12,
                "    selection:\n        User|expand: '%admins%'\n    condition: selection",
            ),
        )],
        &[("admins.txt", "alice\n")],
    );
    let raws = [json!({"User": "alice"}), json!({"User": "dave"})];
    assert_eq!(firing(loaded_without_errors(&setup), &raws), [0]);
    let mut lists = setup.lists();
    lists.add("admins", "dave");
    let reloaded = isms_detect::load_directory_with_lists(
        Path::new(setup.rules.path()),
        &[],
        &Arc::new(lists),
    )
    .unwrap();
    assert_eq!(firing(reloaded.rules, &raws), [0, 1]);
}
