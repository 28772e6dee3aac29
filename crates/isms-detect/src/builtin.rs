//! The built-in rule pack, shipped inside the binary (`rules/builtin/*.yml` of this crate).
use crate::rule::{LoadedRules, add_unique, parse_rules};

/// The built-in rule files, by name.
pub const BUILTIN_RULE_FILES: &[(&str, &str)] = &[
    (
        "authentication.yml",
        include_str!("../rules/builtin/authentication.yml"),
    ),
    (
        "privilege.yml",
        include_str!("../rules/builtin/privilege.yml"),
    ),
    (
        "accounts.yml",
        include_str!("../rules/builtin/accounts.yml"),
    ),
    ("syslog.yml", include_str!("../rules/builtin/syslog.yml")),
    (
        "generators.yml",
        include_str!("../rules/builtin/generators.yml"),
    ),
];

/// Every built-in rule. They are tested to compile, so errors here are bugs.
pub fn builtin_rules() -> LoadedRules {
    let mut loaded = LoadedRules::default();
    for (name, text) in BUILTIN_RULE_FILES {
        loaded.files += 1;
        let (rules, errors) = parse_rules(text, &format!("built-in:{name}"));
        loaded.errors.extend(errors);
        for rule in rules {
            add_unique(&mut loaded, rule);
        }
    }
    loaded
}
