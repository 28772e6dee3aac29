//! One line of audit.log: `[node=N ]type=T msg=audit(SECONDS.MILLIS:SERIAL): key=value ...`.
//!
//! The kernel writes strings it cannot trust (a command line, a file name, a process name that may
//! hold spaces, quotes or control characters) as hex without quotes: `proctitle=2F62696E2F7368`,
//! `exe=2F7573...`, EXECVE's `a1=...`. Those are decoded here, so a rule compares `/bin/sh`, not its
//! hex. User-space programs put their own fields inside `msg='...'`; they are read as fields of the
//! record. Newer auditd appends resolved names after a `0x1d` byte (`AUID="root" UID="root"`); they
//! are kept apart as the record's enriched fields.

/// A parsed audit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// The `node=` the record came from (multi-host auditd), if given.
    pub node: Option<String>,
    /// The record type as auditd names it (`SYSCALL`, `EXECVE`, `USER_LOGIN`, ...); a numeric type
    /// (the kernel's `type=1300` form) is named when known.
    pub record_type: String,
    /// Event time: seconds since the Unix epoch.
    pub seconds: i64,
    /// Event time: the milliseconds.
    pub milliseconds: u32,
    /// The event serial shared by the records of one event.
    pub serial: u64,
    /// Fields in order, values unquoted and hex-decoded; a user-space record's `msg='...'` fields
    /// are included.
    pub fields: Vec<(String, String)>,
    /// auditd's resolved names after the `0x1d` separator (`AUID` → `root`).
    pub enriched: Vec<(String, String)>,
    /// The record came from a user-space program (its fields were inside `msg='...'`): such a
    /// record is a whole event by itself.
    pub from_user_space: bool,
}

impl AuditRecord {
    /// The first value of `key`.
    pub fn field(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// The first enriched value of `key` (upper case names: `AUID`, `UID`, `SYSCALL`).
    pub fn enriched_field(&self, key: &str) -> Option<&str> {
        self.enriched
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }
}

/// Fields the kernel hex-encodes when their text is not safe to print.
const UNTRUSTED_FIELDS: &[&str] = &[
    "comm",
    "exe",
    "name",
    "cwd",
    "proctitle",
    "path",
    "cmd",
    "acct",
    "data",
    "key",
    "ocomm",
    "dir",
    "watch",
    "root_dir",
    "grp",
    "new_group",
];

/// Numeric record types printed by the kernel (`audit: type=1300 audit(...)`), named.
const NUMBERED_TYPES: &[(&str, &str)] = &[
    ("1006", "LOGIN"),
    ("1100", "USER_AUTH"),
    ("1101", "USER_ACCT"),
    ("1102", "USER_MGMT"),
    ("1103", "CRED_ACQ"),
    ("1104", "CRED_DISP"),
    ("1105", "USER_START"),
    ("1106", "USER_END"),
    ("1108", "USER_CHAUTHTOK"),
    ("1109", "USER_ERR"),
    ("1110", "CRED_REFR"),
    ("1112", "USER_LOGIN"),
    ("1113", "USER_LOGOUT"),
    ("1114", "ADD_USER"),
    ("1115", "DEL_USER"),
    ("1116", "ADD_GROUP"),
    ("1117", "DEL_GROUP"),
    ("1123", "USER_CMD"),
    ("1130", "SERVICE_START"),
    ("1131", "SERVICE_STOP"),
    ("1300", "SYSCALL"),
    ("1302", "PATH"),
    ("1305", "CONFIG_CHANGE"),
    ("1306", "SOCKADDR"),
    ("1307", "CWD"),
    ("1309", "EXECVE"),
    ("1320", "EOE"),
    ("1326", "SECCOMP"),
    ("1327", "PROCTITLE"),
    ("1400", "AVC"),
];

/// Parses one audit.log line (anything before `type=`, such as a syslog header, is skipped).
/// `None` when the line is not an audit record.
pub fn parse_audit_record(line: &str) -> Option<AuditRecord> {
    let line = line.trim_end_matches(['\n', '\r']);
    let type_at = find_word(line, "type=")?;
    let node = line[..type_at]
        .split_whitespace()
        .find_map(|word| word.strip_prefix("node="))
        .map(str::to_owned);
    let after_type = &line[type_at + 5..];
    let (record_type, rest) = after_type.split_once(' ')?;
    let record_type = NUMBERED_TYPES
        .iter()
        .find(|(number, _)| *number == record_type)
        .map_or(record_type, |(_, name)| name);
    if record_type.is_empty()
        || !record_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'[' | b']'))
    {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest.strip_prefix("msg=").unwrap_or(rest);
    let inside = rest.strip_prefix("audit(")?;
    // `):` normally; DAEMON_CONFIG records of some auditd versions leave the colon out.
    let (stamp, fields_text) = inside.split_once(')')?;
    let fields_text = fields_text.strip_prefix(':').unwrap_or(fields_text);
    let (time, serial) = stamp.split_once(':')?;
    let (seconds, milliseconds) = time.split_once('.').unwrap_or((time, "0"));
    let seconds: i64 = seconds.parse().ok()?;
    let milliseconds: u32 = milliseconds.parse().ok()?;
    let serial: u64 = serial.parse().ok()?;
    let (plain, enriched_text) = fields_text
        .split_once('\u{1d}')
        .unwrap_or((fields_text, ""));
    let mut record = AuditRecord {
        node,
        record_type: record_type.to_owned(),
        seconds,
        milliseconds: milliseconds.min(999),
        serial,
        fields: Vec::new(),
        enriched: Vec::new(),
        from_user_space: false,
    };
    let is_execve = record.record_type == "EXECVE";
    read_fields(
        plain,
        is_execve,
        &mut record.fields,
        &mut record.from_user_space,
        0,
    );
    let mut ignored = false;
    read_fields(enriched_text, false, &mut record.enriched, &mut ignored, 0);
    Some(record)
}

/// The position of `word` at the start of `text` or after a space.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let mut search_from = 0;
    while let Some(found) = text.get(search_from..)?.find(word) {
        let at = search_from + found;
        if at == 0 || text.as_bytes()[at - 1] == b' ' {
            return Some(at);
        }
        search_from = at + word.len();
    }
    None
}

/// Reads `key=value` pairs (values bare, `"quoted"` or `'quoted'`; a `msg='...'` value is read as
/// nested fields) into `fields`.
fn read_fields(
    text: &str,
    is_execve: bool,
    fields: &mut Vec<(String, String)>,
    from_user_space: &mut bool,
    depth: usize,
) {
    let mut rest = text;
    let mut open_parenthesis = false;
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        if rest.is_empty() {
            return;
        }
        let word_end = rest.find([' ', '=']).unwrap_or(rest.len());
        if rest.as_bytes().get(word_end) != Some(&b'=') {
            // A word without a value (`user`, `login`, `:`): skipped.
            rest = &rest[word_end..];
            continue;
        }
        let mut key = &rest[..word_end];
        if let Some(stripped) = key.strip_prefix('(') {
            key = stripped;
            open_parenthesis = true;
        }
        let after = &rest[word_end + 1..];
        let (value, quoted, next) = match after.as_bytes().first() {
            Some(&quote @ (b'"' | b'\'')) => {
                let inside = &after[1..];
                match inside.find(char::from(quote)) {
                    Some(end) => (&inside[..end], Some(quote), &inside[end + 1..]),
                    None => (inside, Some(quote), ""),
                }
            }
            _ => {
                let end = after.find(' ').unwrap_or(after.len());
                let mut value = after[..end].trim_end_matches(',');
                if open_parenthesis && let Some(stripped) = value.strip_suffix(')') {
                    value = stripped;
                    open_parenthesis = false;
                }
                (value, None, &after[end..])
            }
        };
        rest = next;
        if key.is_empty() {
            continue;
        }
        if key == "msg" && quoted == Some(b'\'') && depth == 0 {
            *from_user_space = true;
            read_fields(value, is_execve, fields, from_user_space, depth + 1);
            continue;
        }
        let decoded = if quoted.is_none() && should_decode_hex(key, is_execve) {
            decode_hex(value, key == "proctitle")
        } else {
            None
        };
        fields.push((key.to_owned(), decoded.unwrap_or_else(|| value.to_owned())));
    }
}

fn should_decode_hex(key: &str, is_execve: bool) -> bool {
    if UNTRUSTED_FIELDS.contains(&key) {
        return true;
    }
    // EXECVE arguments: a0, a1, ... and the pieces of a long one: a1[0], a1[1], ...
    is_execve
        && key
            .strip_prefix('a')
            .map(|rest| rest.split('[').next().unwrap_or(rest))
            .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Hex text as a string (invalid UTF-8 replaced); a proctitle's NULs (argument separators) become
/// spaces. `None` when `text` is not hex.
fn decode_hex(text: &str, is_proctitle: bool) -> Option<String> {
    if text.is_empty()
        || !text.len().is_multiple_of(2)
        || !text.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let bytes: Vec<u8> = text
        .as_bytes()
        .chunks_exact(2)
        .map(|pair| (hex_digit(pair[0]) << 4) | hex_digit(pair[1]))
        .collect();
    let mut decoded = String::from_utf8_lossy(&bytes).into_owned();
    if is_proctitle {
        decoded = decoded.replace('\0', " ").trim_end().to_owned();
    }
    Some(decoded)
}

fn hex_digit(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        b'A'..=b'F' => byte - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_audit_record;

    #[test]
    fn hex_fields_are_decoded_and_quoted_ones_kept() {
        let record = parse_audit_record(
            "type=SYSCALL msg=audit(1700000000.123:77): arch=c000003e syscall=59 success=yes comm=\"ls\" exe=2F62696E2F6C73 key=(null)",
        )
        .unwrap();
        assert_eq!(record.record_type, "SYSCALL");
        assert_eq!(record.seconds, 1_700_000_000);
        assert_eq!(record.milliseconds, 123);
        assert_eq!(record.serial, 77);
        assert_eq!(record.field("exe"), Some("/bin/ls"));
        assert_eq!(record.field("comm"), Some("ls"));
        assert_eq!(record.field("key"), Some("(null)"));
        let record = parse_audit_record(
            "type=PROCTITLE msg=audit(1.5:8): proctitle=2F62696E2F7368002D6300696400",
        )
        .unwrap();
        assert_eq!(record.field("proctitle"), Some("/bin/sh -c id"));
        let record = parse_audit_record(
            "type=EXECVE msg=audit(1.5:8): argc=2 a0=\"echo\" a1=6869207468657265",
        )
        .unwrap();
        assert_eq!(record.field("a1"), Some("hi there"));
    }

    #[test]
    fn user_space_messages_and_enrichment() {
        let record = parse_audit_record(
            "node=web1 type=USER_LOGIN msg=audit(1700000001.000:78): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=28696E76616C6964207573657229 exe=\"/usr/sbin/sshd\" hostname=? addr=203.0.113.9 terminal=sshd res=failed'\u{1d}UID=\"root\" AUID=\"unset\"",
        )
        .unwrap();
        assert!(record.from_user_space);
        assert_eq!(record.node.as_deref(), Some("web1"));
        assert_eq!(record.field("acct"), Some("(invalid user)"));
        assert_eq!(record.field("addr"), Some("203.0.113.9"));
        assert_eq!(record.field("res"), Some("failed"));
        assert_eq!(record.enriched_field("UID"), Some("root"));
        let old = parse_audit_record(
            "type=USER_START msg=audit(1170021601.344:297): user pid=13015 uid=0 auid=0 msg='PAM: session open acct=root : exe=\"/usr/sbin/crond\" (hostname=?, addr=?, terminal=cron res=success)'",
        )
        .unwrap();
        assert_eq!(old.field("res"), Some("success"));
        assert_eq!(old.field("hostname"), Some("?"));
        assert_eq!(old.field("acct"), Some("root"));
    }

    #[test]
    fn hex_text_cannot_add_fields() {
        // A program named `x uid=0` (comm is hex because of the space and `=`).
        let record = parse_audit_record(
            "type=SYSCALL msg=audit(1.000:5): arch=c000003e syscall=59 uid=1000 comm=7820756964003D30",
        )
        .unwrap();
        assert_eq!(record.field("uid"), Some("1000"));
        assert_eq!(
            record.fields.iter().filter(|(key, _)| key == "uid").count(),
            1
        );
    }

    #[test]
    fn other_lines_are_not_records() {
        assert!(parse_audit_record("Mar 1 host sshd[1]: Accepted password").is_none());
        assert!(parse_audit_record("type=SYSCALL without a stamp").is_none());
        assert!(parse_audit_record("type= msg=audit(1.1:1): a=b").is_none());
    }
}
