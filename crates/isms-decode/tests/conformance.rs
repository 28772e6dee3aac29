//! The decoders against real logs and other projects' expectations, read in place from
//! `../shared/data` (see its README): fail2ban's annotated daemon logs, OSSEC's and Wazuh's rule test
//! cases, Elastic's auth.log samples, go-libaudit's golden parses, a real Suricata EVE log and Zeek
//! JSON logs.
//!
//! Each dataset prints its pass rates (to the process' stderr, so they show without
//! `--nocapture`) and asserts a floor: 100 % where the issue asks for it (sshd, pam-generic, the
//! sensor records, the audit goldens), elsewhere the rate reached when the floor was set, so a
//! regression fails. See them with `cargo test -p isms-decode --test conformance -- --nocapture`.
//!
//! Where another project's expectation is a policy of its own rather than a fact about the line
//! (fail2ban not counting a line it expects a later line to count), the line is listed in an
//! exclusion table with the reason, and reported as excluded.
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod common;

use common::{data_root, report};
use isms_decode::{AuditAssembler, Decoders, LineDecoder, parse_audit_record};
use isms_syslog::ParseContext;
use serde_json::{Map, Value};

fn read_text(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

fn read_gzip(path: &Path) -> String {
    let file =
        std::fs::File::open(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut text = String::new();
    flate2::read::GzDecoder::new(file)
        .read_to_string(&mut text)
        .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    text
}

fn context(received: &str) -> ParseContext {
    ParseContext::utc(received.parse().expect("time"))
}

fn line_decoder(received: &str, program: Option<&str>) -> LineDecoder {
    let decoder = LineDecoder::new(Arc::new(Decoders::builtin()), context(received));
    match program {
        Some(program) => decoder.with_default_program(program),
        None => decoder,
    }
}

fn detail<'a>(event: &'a Value, key: &str) -> Option<&'a str> {
    event.get("details")?.get(key)?.as_str()
}

fn percent(passed: usize, total: usize) -> f64 {
    if total == 0 {
        100.0
    } else {
        100.0 * passed as f64 / total as f64
    }
}

/// Passed and total of one kind of check.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    passed: usize,
    total: usize,
}

impl Tally {
    fn add(&mut self, passed: bool) {
        self.total += 1;
        if passed {
            self.passed += 1;
        }
    }

    fn rate(self) -> f64 {
        percent(self.passed, self.total)
    }

    fn text(self) -> String {
        format!("{:>4}/{:<4} {:>6.1}%", self.passed, self.total, self.rate())
    }
}

// ---------------------------------------------------------------------------------------------
// fail2ban
// ---------------------------------------------------------------------------------------------

/// The fail2ban test logs of daemons with a decoder, the program of lines that name none, and the
/// floor (percent of scored lines) each must keep.
const FAIL2BAN_FILES: &[(&str, Option<&str>, f64)] = &[
    ("sshd", Some("sshd"), 100.0),
    ("sshd-journal", Some("sshd"), 100.0),
    ("pam-generic", None, 100.0),
    ("vsftpd", Some("vsftpd"), 100.0),
    ("proftpd", Some("proftpd"), 100.0),
    ("dropbear", Some("dropbear"), 100.0),
    ("postfix", Some("postfix"), 98.0),
    ("dovecot", Some("dovecot"), 100.0),
    ("selinux-ssh", None, 100.0),
];

/// Lines whose fail2ban expectation is fail2ban's counting policy rather than what the line says:
/// (file, text in the line, why). They are decoded but not scored.
const FAIL2BAN_EXCLUDED: &[(&str, &str, &str)] = &[
    (
        "sshd",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.112",
        "fail2ban's sshd filter leaves PAM's failure line to its pam-generic filter (whose test counts such lines) and counts sshd's own line for the attempt",
    ),
    (
        "sshd-journal",
        "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.112",
        "as in sshd",
    ),
    (
        "sshd",
        "Accepted password for known from 192.0.2.11",
        "fail2ban turns a success after failures under other user names into an attack (its gh-2070 heuristic); the line is a successful login",
    ),
    (
        "sshd-journal",
        "Accepted password for known from 192.0.2.11",
        "as in sshd",
    ),
    (
        "pam-generic",
        "pop(pam_unix)[4920]",
        "pam-generic dropped the pre-0.99.2.0 `prog(pam_unix)[pid]:` form, yet fail2ban's vsftpd test expects it matched and OSSEC's pam tests decode it",
    ),
    (
        "selinux-ssh",
        "type=USER_LOGIN",
        "fail2ban counts the USER_ERR record of a failed sshd login, not the USER_LOGIN record beside it that also says res=failed",
    ),
];

/// One annotated line.
struct Annotated {
    line: String,
    expectation: Option<Map<String, Value>>,
    /// fail2ban runs the line's section in aggressive mode (or the filter has no modes).
    aggressive: bool,
}

fn read_fail2ban_log(path: &Path) -> Vec<Annotated> {
    let text = read_text(path);
    let has_modes = text.contains("\"aggressive\"");
    let mut aggressive = !has_modes;
    let mut lines = Vec::new();
    let mut pending: Option<Map<String, Value>> = None;
    for raw in text.lines() {
        if let Some(options) = raw.strip_prefix("# filterOptions:") {
            aggressive = !has_modes || options.contains("\"aggressive\"");
            continue;
        }
        if let Some(json) = raw.strip_prefix("# failJSON:") {
            pending = match serde_json::from_str::<Value>(json.trim()) {
                Ok(Value::Object(map)) => Some(map),
                other => panic!("{}: unreadable failJSON {json}: {other:?}", path.display()),
            };
            continue;
        }
        if raw.starts_with('#') || raw.trim().is_empty() {
            continue;
        }
        lines.push(Annotated {
            line: raw.to_owned(),
            expectation: pending.take(),
            aggressive,
        });
    }
    lines
}

/// Whether fail2ban would check the line in aggressive mode (the mode that counts every failure
/// kind) with the sshd filter.
fn constraint_holds(expectation: &Map<String, Value>) -> bool {
    let Some(constraint) = expectation.get("constraint").and_then(Value::as_str) else {
        return true;
    };
    let compact: String = constraint.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "name=='sshd'" => true,
        "opts.get('mode')=='aggressive'" => true,
        "opts.get('mode')!='aggressive'" => false,
        _ => false,
    }
}

fn same_host(found: &str, expected: &str) -> bool {
    let strip = |host: &str| {
        let lower = host.to_ascii_lowercase();
        lower
            .strip_prefix("::ffff:")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    strip(found) == strip(expected)
}

/// Whether an event is a failure attributed to an address (what fail2ban calls a match).
fn failure_from(event: &Value) -> Option<&str> {
    (detail(event, "result") == Some("failure"))
        .then(|| detail(event, "sourceipaddress").or_else(|| detail(event, "sourcehostname")))
        .flatten()
}

#[derive(Default)]
struct Fail2banScore {
    attacks: Tally,
    normal: Tally,
    excluded: usize,
    /// Negative lines of sections fail2ban runs only in its narrower modes.
    mode_only: usize,
    /// Of those, the ones decoded as a failure from an address anyway.
    mode_only_flagged: usize,
    failures: Vec<String>,
}

fn score_fail2ban_file(path: &Path, program: Option<&str>, name: &str) -> Fail2banScore {
    let lines = read_fail2ban_log(path);
    // fail2ban runs some lines in several modes; the same text may be expected to match in one
    // and not in another. Aggressive mode (the superset) decides: any `match: true` wins.
    let mut merged: HashMap<&str, &Map<String, Value>> = HashMap::new();
    for annotated in &lines {
        let Some(expectation) = &annotated.expectation else {
            continue;
        };
        if !constraint_holds(expectation) {
            continue;
        }
        let is_match = expectation.get("match") == Some(&Value::Bool(true));
        match merged.get(annotated.line.as_str()) {
            Some(previous) if previous.get("match") == Some(&Value::Bool(true)) || !is_match => {}
            _ => {
                merged.insert(&annotated.line, expectation);
            }
        }
    }
    let mut decoder = line_decoder("2005-07-01T00:00:00Z", program);
    let mut score = Fail2banScore::default();
    for annotated in &lines {
        let events = decoder.push_line(&annotated.line);
        let Some(expectation) = &annotated.expectation else {
            continue;
        };
        if !constraint_holds(expectation) {
            continue;
        }
        if FAIL2BAN_EXCLUDED
            .iter()
            .any(|(file, text, _)| *file == name && annotated.line.contains(text))
        {
            score.excluded += 1;
            continue;
        }
        let expectation = merged
            .get(annotated.line.as_str())
            .copied()
            .unwrap_or(expectation);
        let is_match = expectation.get("match") == Some(&Value::Bool(true));
        if !is_match && !annotated.aggressive {
            // Aggressive mode counts every failure kind the narrower modes count, and more: a
            // line those modes leave alone may be one it counts, so only its negatives score.
            score.mode_only += 1;
            if events.iter().any(|event| failure_from(event).is_some()) {
                score.mode_only_flagged += 1;
            }
            continue;
        }
        let host = expectation.get("host").and_then(Value::as_str);
        let user = expectation.get("user").and_then(Value::as_str);
        let passed = if is_match {
            events.iter().any(|event| {
                let failure = detail(event, "result") == Some("failure");
                let host_ok = match host {
                    Some(host) => failure_from(event).is_some_and(|found| same_host(found, host)),
                    None => true,
                };
                let user_ok = match user {
                    Some(user) => detail(event, "username") == Some(user),
                    None => true,
                };
                failure && host_ok && user_ok
            })
        } else {
            !events.iter().any(|event| failure_from(event).is_some())
        };
        if is_match {
            score.attacks.add(passed);
        } else {
            score.normal.add(passed);
        }
        if !passed {
            let got: Vec<String> = events
                .iter()
                .map(|event| {
                    event
                        .get("details")
                        .map(Value::to_string)
                        .unwrap_or_default()
                })
                .collect();
            score.failures.push(format!(
                "  expected match={is_match} host={host:?} user={user:?}\n    line: {}\n    got: {}",
                annotated.line,
                got.join(" | ")
            ));
        }
    }
    score
}

#[test]
fn fail2ban_annotated_logs() {
    let Some(root) = data_root() else {
        return;
    };
    let directory = root.join("fail2ban/fail2ban/tests/files/logs");
    let mut table = vec![format!(
        "fail2ban ({}): attack lines must decode to a failure from the attacker (and user), other lines must not (as in fail2ban's aggressive mode; `mode` = negatives of narrower modes, not scored)",
        directory.display()
    )];
    table.push(format!(
        "  {:<14} {:>18} {:>18} {:>9} {:>9} {:>8}",
        "log", "attack lines", "other lines", "excluded", "mode (*)", "overall"
    ));
    let mut below_floor = Vec::new();
    for (name, program, floor) in FAIL2BAN_FILES {
        let score = score_fail2ban_file(&directory.join(name), *program, name);
        let overall = percent(
            score.attacks.passed + score.normal.passed,
            score.attacks.total + score.normal.total,
        );
        table.push(format!(
            "  {name:<14} {:>18} {:>18} {:>9} {:>9} {overall:>7.1}%",
            score.attacks.text(),
            score.normal.text(),
            score.excluded,
            format!("{} ({})", score.mode_only, score.mode_only_flagged)
        ));
        if overall + 1e-9 < *floor {
            below_floor.push(format!(
                "{name}: {overall:.1}% < floor {floor}%\n{}",
                score.failures.join("\n")
            ));
        } else if !score.failures.is_empty() {
            table.push(format!(
                "    (misses within the floor)\n{}",
                score.failures.join("\n")
            ));
        }
    }
    table.push(
        "  (*) negatives of sections fail2ban runs only in narrower modes, not scored; in parentheses those decoded as a failure from an address".into(),
    );
    for (file, text, reason) in FAIL2BAN_EXCLUDED {
        table.push(format!("  excluded in {file}: `{text}`: {reason}"));
    }
    report(&table.join("\n"));
    assert!(below_floor.is_empty(), "{}", below_floor.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// OSSEC and Wazuh rule tests
// ---------------------------------------------------------------------------------------------

/// What a rule id of OSSEC's and Wazuh's rulesets says about its log lines, for the rules whose
/// meaning is an outcome the decoders report (from the rule descriptions, which the test files'
/// section names repeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// `details.result` failure.
    Failure,
    /// `details.result` success.
    Success,
    /// category `session`.
    Session,
    /// category `account`.
    Account,
    /// category `account`, result failure.
    AccountFailure,
    /// category `ids`.
    Ids,
    /// category `network`.
    Connection,
}

fn rule_outcome(rule: u32) -> Option<Outcome> {
    Some(match rule {
        // sshd: invalid user, login failed, max attempts, denied user; PAM login failed, invalid
        // user, failures; su failed; sudo failed, 3 failures, not in sudoers; FTP, dovecot and
        // unix_chkpwd failures; macOS sshd failures; TCP wrappers and proftpd refusals.
        5710 | 5716 | 5758 | 5718 | 5503 | 5504 | 2501 | 2502 | 5301 | 5302 | 5401 | 5404
        | 5405 | 11204 | 11206 | 11207 | 11403 | 9702 | 9705 | 9770 | 9771 | 5557 | 64251
        | 64253 | 64254 | 64260 | 2503 => Outcome::Failure,
        // sshd success; su to root, su, first su; sudo to root, first sudo; FTP login; macOS
        // sshd success; POP3 login; system user login.
        5715 | 5303 | 5304 | 5305 | 5402 | 5403 | 11205 | 64256 | 2506 | 40101 => Outcome::Success,
        5501 | 5502 => Outcome::Session,
        5901 | 5902 | 5903 | 5904 | 5555 | 2960 | 2961 => Outcome::Account,
        5905 => Outcome::AccountFailure,
        20101 => Outcome::Ids,
        11401 => Outcome::Connection,
        _ => return None,
    })
}

fn meets(event: &Value, outcome: Outcome) -> bool {
    let category = event.get("category").and_then(Value::as_str);
    let result = detail(event, "result");
    match outcome {
        Outcome::Failure => result == Some("failure"),
        Outcome::Success => result == Some("success"),
        Outcome::Session => category == Some("session"),
        Outcome::Account => category == Some("account") && result != Some("failure"),
        Outcome::AccountFailure => category == Some("account") && result == Some("failure"),
        Outcome::Ids => category == Some("ids"),
        Outcome::Connection => category == Some("network"),
    }
}

/// The `log N pass` lines of a rule test file, with their rule id.
fn read_rule_tests(path: &Path) -> Vec<(String, u32, String)> {
    let mut cases = Vec::new();
    let mut section = String::new();
    let mut logs: Vec<String> = Vec::new();
    for line in read_text(path).lines() {
        let line = line.trim_end();
        if let Some(name) = line
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            section = name.to_owned();
            logs.clear();
        } else if let Some(rest) = line.strip_prefix("log ")
            && let Some((kind, text)) = rest.split_once(" = ")
        {
            if kind.ends_with("pass") && !text.trim().is_empty() {
                logs.push(text.to_owned());
            }
        } else if let Some(rule) = line.strip_prefix("rule = ")
            && let Ok(rule) = rule.trim().parse::<u32>()
        {
            for log in logs.drain(..) {
                cases.push((section.clone(), rule, log));
            }
        }
    }
    cases
}

/// A rule test case: (file, section, rule id, log line).
type RuleCase = (String, String, u32, String);

fn ini_cases(files: &[PathBuf]) -> Vec<RuleCase> {
    files
        .iter()
        .flat_map(|file| {
            let name = file
                .file_name()
                .and_then(|name| name.to_str())
                .unwrap_or("?")
                .to_owned();
            read_rule_tests(file)
                .into_iter()
                .map(move |(section, rule, log)| (name.clone(), section, rule, log))
        })
        .collect()
}

/// OSSEC's `contrib/logtesting/N/{log,res}`: a log line and ossec-logtest's output, whose last
/// `Rule id: 'N'` is the rule that fired.
fn logtesting_cases(directory: &Path) -> Vec<RuleCase> {
    let mut cases = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.is_dir())
        .collect();
    entries.sort();
    for case in entries {
        let result = read_text(&case.join("res"));
        let Some(rule) = result
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Rule id: '"))
            .filter_map(|rest| rest.trim_end_matches('\'').parse::<u32>().ok())
            .next_back()
        else {
            continue;
        };
        let name = case
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("?")
            .to_owned();
        for log in read_text(&case.join("log"))
            .lines()
            .filter(|line| !line.trim().is_empty())
        {
            cases.push((
                format!("logtesting/{name}"),
                String::new(),
                rule,
                log.to_owned(),
            ));
        }
    }
    cases
}

/// Scores one rule-test set; returns (scored tally, unscored count, misses).
fn score_rule_tests(cases: Vec<RuleCase>) -> (BTreeMap<String, Tally>, usize, Vec<String>) {
    let mut by_class: BTreeMap<String, Tally> = BTreeMap::new();
    let mut unscored = 0;
    let mut misses = Vec::new();
    {
        for (file, section, rule, log) in cases {
            let Some(outcome) = rule_outcome(rule) else {
                unscored += 1;
                continue;
            };
            // Each case on its own: the test files reuse process ids across unrelated cases.
            let mut decoder = line_decoder("2020-06-01T00:00:00Z", None);
            let mut events = decoder.push_line(&log);
            events.extend(decoder.finish());
            let passed = events.iter().any(|event| meets(event, outcome));
            by_class
                .entry(format!("{outcome:?}"))
                .or_default()
                .add(passed);
            if !passed {
                misses.push(format!(
                    "  {file} [{section}] rule {rule} ({outcome:?}): {log}\n    got: {}",
                    events
                        .iter()
                        .map(|event| format!(
                            "category={} {}",
                            event
                                .get("category")
                                .map(Value::to_string)
                                .unwrap_or_default(),
                            event
                                .get("details")
                                .map(Value::to_string)
                                .unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join(" | ")
                ));
            }
        }
    }
    (by_class, unscored, misses)
}

fn ini_files(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "ini"))
        .collect();
    files.sort();
    files
}

/// Floors (percent of scored lines) of the rule-test sets.
const RULE_TEST_SETS: &[(&str, &str, f64)] = &[
    ("ossec", "ossec/contrib/ossec-testing/tests", 100.0),
    ("ossec logtest", "ossec/contrib/logtesting", 100.0),
    (
        "wazuh (head)",
        "wazuh/head/tools/rules-testing/tests",
        100.0,
    ),
    ("wazuh (2019)", "wazuh/2019", 93.0),
];

#[test]
fn ossec_and_wazuh_rule_tests() {
    let Some(root) = data_root() else {
        return;
    };
    let mut table = vec![
        "OSSEC / Wazuh rule tests: `log pass` lines of rules whose meaning is an outcome (failure, success, session, account change, IDS alert, connection) must decode to it".to_owned(),
    ];
    let mut below_floor = Vec::new();
    for (name, directory, floor) in RULE_TEST_SETS {
        let cases = if directory.ends_with("logtesting") {
            logtesting_cases(&root.join(directory))
        } else {
            ini_cases(&ini_files(&root.join(directory)))
        };
        let (by_class, unscored, misses) = score_rule_tests(cases);
        let total = by_class
            .values()
            .fold(Tally::default(), |sum, tally| Tally {
                passed: sum.passed + tally.passed,
                total: sum.total + tally.total,
            });
        let classes: Vec<String> = by_class
            .iter()
            .map(|(class, tally)| format!("{class} {}/{}", tally.passed, tally.total))
            .collect();
        table.push(format!(
            "  {name:<13} {}   ({}; {unscored} lines of other rules not scored)",
            total.text(),
            classes.join(", ")
        ));
        if total.rate() + 1e-9 < *floor {
            below_floor.push(format!(
                "{name}: {:.1}% < floor {floor}%\n{}",
                total.rate(),
                misses.join("\n")
            ));
        } else if !misses.is_empty() {
            table.push(format!(
                "    (misses within the floor)\n{}",
                misses.join("\n")
            ));
        }
    }
    report(&table.join("\n"));
    assert!(below_floor.is_empty(), "{}", below_floor.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// Elastic's auth.log / secure samples
// ---------------------------------------------------------------------------------------------

/// (text the line holds, category, result, a detail that must be present): every line holding the
/// text must decode so.
const ELASTIC_CHECKS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    (
        "incorrect password attempts",
        "authorization",
        Some("failure"),
        Some("attempts"),
    ),
    (
        "user NOT in sudoers",
        "authorization",
        Some("failure"),
        Some("targetuser"),
    ),
    ("; COMMAND=", "authorization", None, Some("command")),
    (
        "Successful su for",
        "authentication",
        Some("success"),
        Some("targetuser"),
    ),
    (
        "su[4496]: + ",
        "authentication",
        Some("success"),
        Some("targetuser"),
    ),
    ("new user: ", "account", Some("success"), Some("username")),
    ("new group: ", "account", Some("success"), Some("group")),
    ("group added to ", "account", Some("success"), Some("group")),
    (
        "password changed for",
        "account",
        Some("success"),
        Some("username"),
    ),
    (
        "changed password expiry for",
        "account",
        Some("success"),
        Some("username"),
    ),
    ("delete user", "account", Some("success"), Some("username")),
    (
        "change user '",
        "account",
        Some("success"),
        Some("username"),
    ),
    (
        "failed adding user",
        "account",
        Some("failure"),
        Some("username"),
    ),
    ("CRON[", "session", None, Some("username")),
    ("pam_unix(sudo:session)", "session", None, Some("username")),
    ("pam_unix(sshd:session)", "session", None, Some("username")),
    ("pam_unix(su:session)", "session", None, Some("username")),
    (
        "Accepted ",
        "authentication",
        Some("success"),
        Some("sourceipaddress"),
    ),
    (
        "Failed password",
        "authentication",
        Some("failure"),
        Some("sourceipaddress"),
    ),
    (
        "Invalid user",
        "authentication",
        Some("failure"),
        Some("sourceipaddress"),
    ),
    (
        "Did not receive identification string",
        "authentication",
        Some("failure"),
        Some("sourceipaddress"),
    ),
    (
        "authentication failure;",
        "authentication",
        Some("failure"),
        Some("username"),
    ),
    (
        "more authentication failures",
        "authentication",
        Some("failure"),
        Some("attempts"),
    ),
    (
        "PAM: User not known",
        "authentication",
        Some("failure"),
        Some("sourcehostname"),
    ),
];

#[test]
fn elastic_auth_samples() {
    let Some(root) = data_root() else {
        return;
    };
    let directory = root.join("elastic-auth");
    let mut per_program: BTreeMap<String, Tally> = BTreeMap::new();
    let mut checks = Tally::default();
    let mut misses = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|extension| extension == "log"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "the four sample files");
    for file in &files {
        let mut decoder = line_decoder("2020-06-01T00:00:00Z", None);
        for line in read_text(file)
            .lines()
            .filter(|line| !line.trim().is_empty())
        {
            let events = decoder.push_line(line);
            let Some(event) = events.first() else {
                continue;
            };
            let program = event
                .get("processname")
                .and_then(Value::as_str)
                .unwrap_or("(none)")
                .to_owned();
            let decoded = event
                .get("tags")
                .and_then(Value::as_array)
                .is_some_and(|tags| {
                    tags.iter()
                        .any(|tag| tag.as_str().is_some_and(|tag| tag.starts_with("decoder:")))
                });
            per_program.entry(program).or_default().add(decoded);
            for (text, category, result, required) in ELASTIC_CHECKS {
                if !line.contains(text) {
                    continue;
                }
                let passed = event.get("category").and_then(Value::as_str) == Some(*category)
                    && result.is_none_or(|result| detail(event, "result") == Some(result))
                    && required.is_none_or(|key| event["details"].get(key).is_some());
                checks.add(passed);
                if !passed {
                    misses.push(format!(
                        "  `{text}` → {category} {result:?} {required:?}\n    line: {line}\n    got: category={} {}",
                        event.get("category").map(Value::to_string).unwrap_or_default(),
                        event.get("details").map(Value::to_string).unwrap_or_default()
                    ));
                }
            }
        }
    }
    let mut table = vec![format!(
        "elastic-auth ({}): lines decoded per program; checks of category/result/details by line content {}",
        directory.display(),
        checks.text()
    )];
    for (program, tally) in &per_program {
        table.push(format!("  {program:<12} {}", tally.text()));
    }
    report(&table.join("\n"));
    assert!(
        misses.is_empty(),
        "elastic-auth checks failed:\n{}",
        misses.join("\n")
    );
    assert!(
        checks.total >= 60,
        "the checks ran on {} lines only",
        checks.total
    );
    // Every line of the daemons with a decoder is decoded, except the few without an outcome:
    // sshd's subsystem requests and a "last message repeated", sudo's mail and continuation
    // notices, sshd's PAM bookkeeping.
    for (program, minimum) in [
        ("sshd", 80.0),
        ("sudo", 85.0),
        ("su", 100.0),
        ("CRON", 100.0),
    ] {
        let tally = per_program.get(program).copied().unwrap_or_default();
        assert!(
            tally.rate() >= minimum,
            "{program}: {} decoded, below {minimum}%",
            tally.text()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// auditd
// ---------------------------------------------------------------------------------------------

/// Record fields compared with go-libaudit's golden parses (the ones both name alike).
const AUDIT_COMPARED_FIELDS: &[&str] = &[
    "exe",
    "comm",
    "cwd",
    "proctitle",
    "name",
    "acct",
    "cmd",
    "key",
    "terminal",
    "op",
    "pid",
    "uid",
    "ses",
    "auid",
    "cwd",
    "dev",
    "mode",
    "argc",
];

fn golden_array(path: &Path) -> Vec<Value> {
    match serde_json::from_str::<Value>(&read_text(path)) {
        Ok(Value::Array(items)) => items,
        other => panic!("{}: not a JSON array: {other:?}", path.display()),
    }
}

#[test]
fn auditd_golden_parses_and_assembly() {
    let Some(root) = data_root() else {
        return;
    };
    let audit = root.join("auditd");
    let mut table = vec![format!("auditd ({})", audit.display())];

    // 1. Record parsing against go-libaudit's auparse golden files.
    let mut fields = Tally::default();
    let mut syscalls = Tally::default();
    let mut records = Tally::default();
    let mut misses = Vec::new();
    let testdata = audit.join("go-libaudit/auparse/testdata");
    let mut goldens: Vec<PathBuf> = std::fs::read_dir(&testdata)
        .unwrap_or_else(|error| panic!("{}: {error}", testdata.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".log.golden"))
        .collect();
    goldens.sort();
    for golden_path in &goldens {
        let log_path = PathBuf::from(golden_path.to_string_lossy().trim_end_matches(".golden"));
        let lines: Vec<String> = read_text(&log_path)
            .lines()
            .filter(|line| !line.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let golden = golden_array(golden_path);
        assert_eq!(lines.len(), golden.len(), "{}", golden_path.display());
        for (line, expected) in lines.iter().zip(&golden) {
            let parsed = parse_audit_record(line);
            if expected.is_null() {
                // go-libaudit rejects the record (`msg=?`): so must we.
                records.add(parsed.is_none());
                if parsed.is_some() {
                    misses.push(format!("  parsed, want rejected: {line}"));
                }
                continue;
            }
            let same_record = parsed.as_ref().is_some_and(|record| {
                expected["sequence"].as_u64() == Some(record.serial)
                    && expected["record_type"].as_str()
                        == Some(record.record_type.to_ascii_lowercase().as_str())
            });
            records.add(same_record);
            let Some(record) = parsed else {
                misses.push(format!("  not parsed: {line}"));
                continue;
            };
            let data = &expected["data"];
            for key in AUDIT_COMPARED_FIELDS {
                let (Some(want), Some(got)) =
                    (data.get(*key).and_then(Value::as_str), record.field(key))
                else {
                    continue;
                };
                if *key == "auid" || *key == "ses" {
                    // go-libaudit writes 4294967295 as "unset", as the events do (checked below).
                    continue;
                }
                let passed = want == got;
                fields.add(passed);
                if !passed {
                    misses.push(format!("  {key}: want {want:?} got {got:?} in {line}"));
                }
            }
            if let (Some(want), Some(number), Some(arch)) = (
                data.get("syscall").and_then(Value::as_str),
                record
                    .field("syscall")
                    .and_then(|number| number.parse::<u32>().ok()),
                record.field("arch"),
            ) && arch == "c000003e"
            {
                let got = isms_decode::syscall_name(arch, number);
                syscalls.add(got == Some(want));
                if got != Some(want) {
                    misses.push(format!("  syscall {number}: want {want} got {got:?}"));
                }
            }
            if let Some(args) = record.fields.iter().find(|(key, _)| key == "a1")
                && record.record_type == "EXECVE"
                && let Some(want) = data.get("a1").and_then(Value::as_str)
            {
                fields.add(args.1 == want);
                if args.1 != want {
                    misses.push(format!("  EXECVE a1: want {want:?} got {:?}", args.1));
                }
            }
        }
    }
    table.push(format!(
        "  auparse goldens ({} files): records {}, fields {}, x86_64 syscall names {}",
        goldens.len(),
        records.text(),
        fields.text(),
        syscalls.text()
    ));

    // 2. Whole events against go-libaudit's aucoalesce goldens.
    let mut event_checks = Tally::default();
    let coalesce = audit.join("go-libaudit/aucoalesce/testdata");
    let mut yamls: Vec<PathBuf> = std::fs::read_dir(&coalesce)
        .unwrap_or_else(|error| panic!("{}: {error}", coalesce.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "yaml")
        })
        .collect();
    yamls.sort();
    let mut tests_compared = 0;
    for yaml in &yamls {
        let golden_path = PathBuf::from(format!(
            "{}.json.golden",
            yaml.to_string_lossy().trim_end_matches(".yaml")
        ));
        let goldens: HashMap<String, Value> = golden_array(&golden_path)
            .into_iter()
            .filter_map(|item| {
                Some((
                    item["test_name"].as_str()?.to_owned(),
                    item["event"].clone(),
                ))
            })
            .collect();
        for (name, lines) in read_audit_yaml(yaml) {
            let Some(want) = goldens.get(&name) else {
                continue;
            };
            let mut assembler = AuditAssembler::new();
            let mut events = Vec::new();
            for line in &lines {
                events.extend(assembler.push_line(line));
            }
            events.extend(assembler.flush());
            tests_compared += 1;
            let Some(event) = events.first() else {
                misses.push(format!("  {name}: no event"));
                event_checks.add(false);
                continue;
            };
            let details = &event["details"];
            let mut check = |what: &str, passed: bool, got: &Value, want: &Value| {
                event_checks.add(passed);
                if !passed {
                    misses.push(format!("  {name}: {what}: want {want} got {got}"));
                }
            };
            if let Some(sequence) = want.get("sequence") {
                check(
                    "serial",
                    details["serial"] == *sequence,
                    &details["serial"],
                    sequence,
                );
            }
            if let Some(result) = want.get("result").and_then(Value::as_str) {
                let expected = if result == "fail" { "failure" } else { result };
                if expected != "unknown" {
                    check(
                        "result",
                        details["result"] == expected,
                        &details["result"],
                        &Value::from(expected),
                    );
                }
            }
            if let Some(syscall) = want.pointer("/data/syscall") {
                check(
                    "syscall",
                    details["syscall"] == *syscall,
                    &details["syscall"],
                    syscall,
                );
            }
            if let Some(exe) = want.pointer("/process/exe") {
                check("exe", details["exe"] == *exe, &details["exe"], exe);
            }
            if let Some(args) = want.pointer("/process/args") {
                check("args", details["args"] == *args, &details["args"], args);
            }
            if let Some(title) = want.pointer("/process/title") {
                check(
                    "proctitle",
                    details["proctitle"] == *title,
                    &details["proctitle"],
                    title,
                );
            }
            if let Some(auid) = want.pointer("/user/ids/auid") {
                check("auid", details["auid"] == *auid, &details["auid"], auid);
            }
            if let Some(uid) = want.pointer("/user/ids/uid") {
                check("uid", details["uid"] == *uid, &details["uid"], uid);
            }
        }
    }
    table.push(format!(
        "  aucoalesce goldens ({tests_compared} events): serial, result, syscall, exe, args, proctitle, auid, uid {}",
        event_checks.text()
    ));

    // 3. Records of one event are joined, whatever their order.
    let mut grouping = Tally::default();
    for name in [
        "normal.log",
        "out_of_order.log",
        "lost_messages.log",
        "rollover.log",
    ] {
        let text = read_text(&audit.join("go-libaudit/testdata").join(name));
        let mut serials: Vec<u64> = text
            .lines()
            .filter_map(parse_audit_record)
            .map(|record| record.serial)
            .collect();
        serials.sort_unstable();
        serials.dedup();
        let mut assembler = AuditAssembler::new();
        let mut events = Vec::new();
        for line in text.lines() {
            events.extend(assembler.push_line(line));
        }
        events.extend(assembler.flush());
        let mut got: Vec<u64> = events
            .iter()
            .filter_map(|event| event["details"]["serial"].as_u64())
            .collect();
        got.sort_unstable();
        grouping.add(got == serials);
        if got != serials {
            misses.push(format!(
                "  {name}: events for serials {got:?}, want {serials:?}"
            ));
        }
    }
    table.push(format!(
        "  go-libaudit testdata: one event per serial {}",
        grouping.text()
    ));

    // 4. The two captured audit logs: execve events with their command lines.
    let mut commands = Tally::default();
    for name in [
        "sh_arp_cache_2020-11-10074812.log",
        "sh_binary_padding_dd_2020-11-10081941.log",
    ] {
        let mut assembler = AuditAssembler::new();
        let mut events = Vec::new();
        for line in read_text(&audit.join(name)).lines() {
            events.extend(assembler.push_line(line));
        }
        events.extend(assembler.flush());
        for event in &events {
            let details = &event["details"];
            let passed = event["category"] == "execution"
                && details["syscall"] == "execve"
                && details["command"]
                    .as_str()
                    .is_some_and(|command| !command.is_empty())
                && details["proctitle"] == details["command"];
            commands.add(passed);
            if !passed {
                misses.push(format!("  {name}: {event}"));
            }
        }
    }
    table.push(format!(
        "  captured logs: execve events with command = decoded proctitle {}",
        commands.text()
    ));
    report(&table.join("\n"));
    assert!(
        misses.is_empty(),
        "auditd mismatches:\n{}",
        misses.join("\n")
    );
    assert!(fields.total >= 250 && event_checks.total >= 250 && commands.total >= 3);
}

/// go-libaudit's aucoalesce test files: `tests:` then `  NAME: |` and the indented records.
fn read_audit_yaml(path: &Path) -> Vec<(String, Vec<String>)> {
    let mut tests: Vec<(String, Vec<String>)> = Vec::new();
    for line in read_text(path).lines() {
        if let Some(record) = line.strip_prefix("    ") {
            if let Some((_, records)) = tests.last_mut() {
                records.push(record.to_owned());
            }
        } else if let Some(header) = line.strip_prefix("  ")
            && let Some(name) = header.strip_suffix(": |")
        {
            tests.push((name.trim_matches(['"', '\'']).to_owned(), Vec::new()));
        }
    }
    tests
}

// ---------------------------------------------------------------------------------------------
// Suricata and Zeek
// ---------------------------------------------------------------------------------------------

/// Decodes a sensor record and checks it is a sane event: recognized, normalizable, its time and
/// addresses where the record had them.
fn check_sensor_record(
    decoders: &Decoders,
    line: &str,
    problems: &mut Vec<String>,
) -> Option<Value> {
    let Ok(Value::Object(record)) = serde_json::from_str::<Value>(line) else {
        problems.push(format!("  not a JSON object: {line}"));
        return None;
    };
    let Some(event) = decoders.decode_json(&record) else {
        problems.push(format!("  not recognized: {line}"));
        return None;
    };
    let mut problem = |what: &str| problems.push(format!("  {what}: {line}\n    got: {event}"));
    if event.get("utctimestamp").and_then(Value::as_str).is_none() {
        problem("no utctimestamp");
    }
    if event
        .get("summary")
        .and_then(Value::as_str)
        .is_none_or(|summary| summary.len() < 10)
    {
        problem("no summary");
    }
    let has_source = record.contains_key("src_ip") || record.contains_key("id.orig_h");
    if has_source && detail(&event, "sourceipaddress").is_none() {
        problem("no sourceipaddress");
    }
    let has_destination = record.contains_key("dest_ip") || record.contains_key("id.resp_h");
    if has_destination && detail(&event, "destinationipaddress").is_none() {
        problem("no destinationipaddress");
    }
    let origin = isms_event::Origin::default();
    if let Err(error) = isms_event::normalize(event.clone(), &origin, jiff::Timestamp::UNIX_EPOCH) {
        problem(&format!("does not normalize: {error}"));
    }
    Some(event)
}

#[test]
fn suricata_eve_records() {
    let Some(root) = data_root() else {
        return;
    };
    let path = root.join("suricata/eve-docker-desktop-pr13999.json");
    let decoders = Decoders::builtin();
    let mut decoded = Tally::default();
    let mut categories: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    let mut alert_summary = String::new();
    for line in read_text(&path)
        .lines()
        .filter(|line| !line.trim().is_empty())
    {
        let before = problems.len();
        let event = check_sensor_record(&decoders, line, &mut problems);
        decoded.add(event.is_some() && problems.len() == before);
        if let Some(event) = event {
            let category = event["category"].as_str().unwrap_or("?").to_owned();
            if category == "ids" && alert_summary.is_empty() {
                alert_summary = event["summary"].as_str().unwrap_or("").to_owned();
            }
            *categories.entry(category).or_default() += 1;
        }
    }
    report(&format!(
        "suricata ({}): records decoded into sane events {}; categories {categories:?}\n  e.g. {alert_summary}",
        path.display(),
        decoded.text()
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(decoded.total, 5327);
    assert_eq!(categories.get("ids"), Some(&7));
}

#[test]
fn zeek_json_logs() {
    let Some(root) = data_root() else {
        return;
    };
    let directory = root.join("zeek/zeek-json");
    let decoders = Decoders::builtin();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.to_string_lossy().ends_with(".json.gz"))
        .collect();
    files.sort();
    let mut table = vec![format!(
        "zeek ({}): records decoded into sane events",
        directory.display()
    )];
    let mut problems = Vec::new();
    let mut total = Tally::default();
    for file in &files {
        let mut tally = Tally::default();
        let mut categories: BTreeMap<String, usize> = BTreeMap::new();
        for line in read_gzip(file)
            .lines()
            .filter(|line| !line.trim().is_empty())
        {
            let before = problems.len();
            let event = check_sensor_record(&decoders, line, &mut problems);
            let passed = event.is_some() && problems.len() == before;
            tally.add(passed);
            total.add(passed);
            if let Some(event) = event {
                let mut category = event["category"].as_str().unwrap_or("?").to_owned();
                if let Some(result) = detail(&event, "result") {
                    category = format!("{category}/{result}");
                }
                *categories.entry(category).or_default() += 1;
            }
        }
        let name = file
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("?");
        table.push(format!("  {name:<22} {}  {categories:?}", tally.text()));
    }
    table.push(format!("  {:<22} {}", "all", total.text()));
    report(&table.join("\n"));
    problems.truncate(20);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(files.len(), 15, "the 15 Zeek logs of the snapshot");
}
