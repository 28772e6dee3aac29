//! Linux audit: records joined into events, one MozDef event per audit event.
//!
//! The kernel writes one event as several records (SYSCALL, EXECVE, CWD, PATH, PROCTITLE, ...)
//! sharing `msg=audit(TIME:SERIAL)`, usually closed by an EOE record. Records of different events
//! interleave when several CPUs log at once, and older kernels or audispd relays may never send EOE.
//! So [`AuditAssembler`] keeps a small bounded set of open events and emits one when its EOE
//! arrives, when more than `max_open` are open (oldest first), when a record arrives more than
//! `max_age_seconds` later than it (by the records' own times), when [`AuditAssembler::expire`] is
//! given a time that much later (a source's other lines or its idle clock), or on
//! [`AuditAssembler::flush`].
//! A user-space record (PAM, useradd, sshd: fields inside `msg='...'`) is an event by itself and
//! is emitted at once.
//!
//! The event puts what a rule writer asks about directly under `details`: `syscall` (named, for
//! x86_64), `exe`, `comm`, `command` (EXECVE's arguments joined), `args`, `cwd`, `proctitle`
//! (decoded), `auid`, `uid` and the other ids (`4294967295` as `unset`), `username` (auditd's
//! resolved `AUID`/`UID` names, else the user-space record's `acct`), `result`, `key`, the
//! remote `sourceipaddress` of a user-space record, the socket address of a SOCKADDR record
//! (`destinationipaddress`/`destinationport` for connect), and `paths` (the PATH records).
mod record;
mod syscalls;

use std::collections::VecDeque;

use serde_json::{Map, Value, json};

pub use record::{AuditRecord, parse_audit_record};
pub use syscalls::syscall_name;

/// Default most events held open at once.
const DEFAULT_MAX_OPEN: usize = 64;

/// Default age (seconds of record time) after which an open event without EOE is emitted.
const DEFAULT_MAX_AGE_SECONDS: i64 = 10;

/// Most records joined into one event (a runaway serial cannot grow without bound).
const MAX_RECORDS_PER_EVENT: usize = 256;

/// Joins audit records into events.
#[derive(Debug, Clone)]
pub struct AuditAssembler {
    open: VecDeque<OpenEvent>,
    max_open: usize,
    max_age_seconds: i64,
    newest_seconds: i64,
}

#[derive(Debug, Clone)]
struct OpenEvent {
    node: Option<String>,
    seconds: i64,
    milliseconds: u32,
    serial: u64,
    records: Vec<AuditRecord>,
}

impl OpenEvent {
    fn holds(&self, record: &AuditRecord) -> bool {
        self.serial == record.serial
            && self.seconds == record.seconds
            && self.milliseconds == record.milliseconds
            && self.node == record.node
    }
}

impl Default for AuditAssembler {
    fn default() -> Self {
        AuditAssembler::new()
    }
}

impl AuditAssembler {
    /// An assembler holding at most 64 open events, each for at most 10 seconds of record time.
    pub fn new() -> AuditAssembler {
        AuditAssembler::with_limits(DEFAULT_MAX_OPEN, DEFAULT_MAX_AGE_SECONDS)
    }

    /// An assembler holding at most `max_open` open events (at least 1), emitting an event without
    /// EOE once a record `max_age_seconds` newer has arrived.
    pub fn with_limits(max_open: usize, max_age_seconds: i64) -> AuditAssembler {
        AuditAssembler {
            open: VecDeque::new(),
            max_open: max_open.max(1),
            max_age_seconds: max_age_seconds.max(0),
            newest_seconds: i64::MIN,
        }
    }

    /// How many events are waiting for more records.
    pub fn open_events(&self) -> usize {
        self.open.len()
    }

    /// Reads one audit.log line; returns the events it completed (often none). A line that is not
    /// an audit record is ignored.
    pub fn push_line(&mut self, line: &str) -> Vec<Value> {
        match parse_audit_record(line) {
            Some(record) => self.push_record(record),
            None => Vec::new(),
        }
    }

    /// Adds one parsed record; returns the events it completed.
    pub fn push_record(&mut self, record: AuditRecord) -> Vec<Value> {
        let mut done = Vec::new();
        self.newest_seconds = self.newest_seconds.max(record.seconds);
        let position = self.open.iter().position(|open| open.holds(&record));
        if record.record_type == "EOE" {
            if let Some(position) = position
                && let Some(open) = self.open.remove(position)
            {
                done.push(event_of(&open.records));
            }
        } else if let Some(position) = position {
            if let Some(open) = self.open.get_mut(position)
                && open.records.len() < MAX_RECORDS_PER_EVENT
            {
                open.records.push(record);
            }
        } else if record.from_user_space {
            done.push(event_of(std::slice::from_ref(&record)));
        } else {
            self.open.push_back(OpenEvent {
                node: record.node.clone(),
                seconds: record.seconds,
                milliseconds: record.milliseconds,
                serial: record.serial,
                records: vec![record],
            });
        }
        // Stale and surplus events go out before the ones completed now, oldest first.
        let mut expired = Vec::new();
        let oldest_allowed = self.newest_seconds.saturating_sub(self.max_age_seconds);
        while let Some(position) = self
            .open
            .iter()
            .position(|open| open.seconds < oldest_allowed)
        {
            if let Some(open) = self.open.remove(position) {
                expired.push(event_of(&open.records));
            }
        }
        while self.open.len() > self.max_open {
            if let Some(open) = self.open.pop_front() {
                expired.push(event_of(&open.records));
            }
        }
        expired.extend(done);
        expired
    }

    /// Emits the open events more than `max_age_seconds` older than `now` (the time of the input's
    /// other lines, or the clock while a source is idle): kernel records that never get an EOE
    /// (an AppArmor AVC, a LOGIN) are not held for ever when no further audit record comes.
    pub fn expire(&mut self, now: jiff::Timestamp) -> Vec<Value> {
        let oldest_allowed = now.as_second().saturating_sub(self.max_age_seconds);
        let mut expired = Vec::new();
        while let Some(position) = self
            .open
            .iter()
            .position(|open| open.seconds < oldest_allowed)
        {
            if let Some(open) = self.open.remove(position) {
                expired.push(event_of(&open.records));
            }
        }
        expired
    }

    /// Emits every open event (at the end of the input), oldest first.
    pub fn flush(&mut self) -> Vec<Value> {
        self.open
            .drain(..)
            .map(|open| event_of(&open.records))
            .collect()
    }
}

/// `4294967295` (-1, never set) as go-libaudit and ausearch write it.
fn id_text(value: &str) -> &str {
    if value == "4294967295" || value == "-1" {
        "unset"
    } else {
        value
    }
}

/// Fields that hold user, group or session ids.
const ID_FIELDS: &[&str] = &[
    "auid", "uid", "gid", "euid", "suid", "fsuid", "egid", "sgid", "fsgid", "ses", "ouid", "ogid",
    "old-auid", "old-ses", "old_auid", "old_ses",
];

/// Fields whose `?` or empty value means "not known" and is left out.
fn is_unknown(value: &str) -> bool {
    value.is_empty() || value == "?" || value == "(null)" || value == "(none)"
}

/// Builds the raw MozDef event of one audit event from its records.
fn event_of(records: &[AuditRecord]) -> Value {
    let mut details = Map::new();
    let Some(first) = records.first() else {
        return json!({"summary": "audit: empty event", "category": "audit", "details": {}});
    };
    let primary = records
        .iter()
        .find(|record| record.record_type == "SYSCALL")
        .unwrap_or(first);
    details.insert("serial".into(), Value::from(first.serial));
    details.insert(
        "recordtype".into(),
        Value::String(primary.record_type.clone()),
    );
    details.insert(
        "recordtypes".into(),
        Value::Array(
            records
                .iter()
                .map(|record| Value::String(record.record_type.clone()))
                .collect(),
        ),
    );
    let mut args: Vec<(u32, u32, String)> = Vec::new();
    let mut argc = None;
    let mut paths = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut result = None;
    for record in records {
        match record.record_type.as_str() {
            "EXECVE" => {
                for (key, value) in &record.fields {
                    if key == "argc" {
                        argc = value.parse::<u32>().ok();
                    } else if let Some((index, piece)) = execve_argument_index(key) {
                        args.push((index, piece, value.clone()));
                    }
                }
                continue;
            }
            "PATH" => {
                let path: Map<String, Value> = record
                    .fields
                    .iter()
                    .filter(|(_, value)| !is_unknown(value))
                    .map(|(key, value)| (key.clone(), Value::String(value.clone())))
                    .collect();
                paths.push(Value::Object(path));
                continue;
            }
            "SOCKADDR" => {
                if let Some(address) = record.field("saddr").and_then(socket_address) {
                    let connects = primary
                        .field("syscall")
                        .and_then(|number| number.parse::<u32>().ok())
                        .and_then(|number| {
                            syscall_name(primary.field("arch").unwrap_or(""), number)
                        })
                        .is_some_and(|name| matches!(name, "connect" | "sendto" | "sendmsg"));
                    let (address_key, port_key) = if connects {
                        ("destinationipaddress", "destinationport")
                    } else {
                        ("socketaddress", "socketport")
                    };
                    details.insert("socketfamily".into(), Value::String(address.family.into()));
                    if let Some(ip) = address.address {
                        details.insert(address_key.into(), Value::String(ip));
                    }
                    if let Some(port) = address.port {
                        details.insert(port_key.into(), Value::from(port));
                    }
                    if let Some(path) = address.path {
                        details.insert("socketpath".into(), Value::String(path));
                    }
                }
                continue;
            }
            "EOE" => continue,
            _ => {}
        }
        let arch = record.field("arch").unwrap_or("");
        for (key, value) in &record.fields {
            if is_unknown(value) {
                continue;
            }
            let (name, value): (&str, Value) = match key.as_str() {
                "arch" => (
                    "arch",
                    Value::String(syscalls::arch_name(value).unwrap_or(value).to_owned()),
                ),
                "syscall" => {
                    let name = value
                        .parse::<u32>()
                        .ok()
                        .and_then(|number| syscall_name(arch, number));
                    ("syscall", Value::String(name.unwrap_or(value).to_owned()))
                }
                "key" => {
                    keys.extend(
                        value
                            .split('\u{1}')
                            .filter(|key| !key.is_empty())
                            .map(str::to_owned),
                    );
                    continue;
                }
                "success" => {
                    result.get_or_insert(if value == "yes" { "success" } else { "failure" });
                    ("success", Value::String(value.clone()))
                }
                "res" => {
                    let outcome = match value.as_str() {
                        "success" | "1" | "yes" => "success",
                        _ => "failure",
                    };
                    result.get_or_insert(outcome);
                    ("res", Value::String(value.clone()))
                }
                // The remote end; `hostname` is its name, which sshd often fills with the address.
                "addr" | "hostname" => {
                    let address = crate::scan::strip_v4_mapped(value);
                    if crate::scan::is_ip_address(address) {
                        ("sourceipaddress", Value::String(address.to_owned()))
                    } else if key == "addr" {
                        ("addr", Value::String(value.clone()))
                    } else {
                        ("sourcehostname", Value::String(value.clone()))
                    }
                }
                id if ID_FIELDS.contains(&id) => (id, Value::String(id_text(value).to_owned())),
                other => (other, Value::String(value.clone())),
            };
            details.entry(clean_audit_key(name)).or_insert(value);
        }
        for (key, value) in &record.enriched {
            let key = key.to_ascii_lowercase();
            if let Value::Object(enriched) = details
                .entry("enriched")
                .or_insert_with(|| Value::Object(Map::new()))
            {
                enriched
                    .entry(key)
                    .or_insert_with(|| Value::String(value.clone()));
            }
        }
    }
    if !args.is_empty() {
        args.sort_by_key(|(index, piece, _)| (*index, *piece));
        let mut joined: Vec<String> = Vec::new();
        let mut last_index = None;
        for (index, _, text) in args {
            if last_index == Some(index) {
                if let Some(last) = joined.last_mut() {
                    last.push_str(&text);
                }
            } else {
                joined.push(text);
                last_index = Some(index);
            }
        }
        details.insert("command".into(), Value::String(joined.join(" ")));
        details.insert(
            "args".into(),
            Value::Array(joined.into_iter().map(Value::String).collect()),
        );
    }
    if let Some(argc) = argc {
        details.insert("argc".into(), Value::from(argc));
    }
    if !paths.is_empty() {
        details.insert("paths".into(), Value::Array(paths));
    }
    if let Some(first_key) = keys.first() {
        details.insert("key".into(), Value::String(first_key.clone()));
        if keys.len() > 1 {
            details.insert(
                "keys".into(),
                Value::Array(keys.iter().cloned().map(Value::String).collect()),
            );
        }
    }
    if let Some(result) = result {
        details.insert("result".into(), Value::String(result.into()));
    }
    // An architecture without a table: auditd's own resolution (`SYSCALL=...` after 0x1d).
    let numeric_syscall = details
        .get("syscall")
        .and_then(Value::as_str)
        .is_some_and(|syscall| syscall.bytes().all(|b| b.is_ascii_digit()));
    if numeric_syscall
        && let Some(name) = records
            .iter()
            .find_map(|record| record.enriched_field("SYSCALL"))
    {
        details.insert("syscall".into(), Value::String(name.to_owned()));
    }
    let username = records
        .iter()
        .flat_map(|record| [record.enriched_field("AUID"), record.enriched_field("UID")])
        .flatten()
        .find(|name| !is_unknown(name) && *name != "unset")
        .or_else(|| {
            records
                .iter()
                .filter_map(|record| record.field("acct"))
                .find(|name| !is_unknown(name))
        });
    if let Some(username) = username {
        details.insert("username".into(), Value::String(username.to_owned()));
    }
    let (category, action) = classify(records, primary, &details);
    details.insert("action".into(), Value::String(action));
    let summary = summary_of(primary, &details);
    let mut event = Map::new();
    event.insert(
        "utctimestamp".into(),
        Value::String(isms_event::format_time(
            first
                .seconds
                .saturating_mul(1_000_000)
                .saturating_add(i64::from(first.milliseconds) * 1000),
        )),
    );
    if let Some(node) = &first.node {
        event.insert("hostname".into(), Value::String(node.clone()));
    }
    let process = records
        .iter()
        .find_map(|record| record.field("comm"))
        .or_else(|| {
            records
                .iter()
                .find_map(|record| record.field("exe"))
                .map(|exe| exe.rsplit('/').next().unwrap_or(exe))
        });
    if let Some(process) = process.filter(|process| !is_unknown(process)) {
        event.insert("processname".into(), Value::String(process.to_owned()));
    }
    if let Some(pid) = primary.field("pid").and_then(|pid| pid.parse::<i64>().ok()) {
        event.insert("processid".into(), Value::from(pid));
    }
    event.insert("severity".into(), Value::String("INFO".into()));
    event.insert("category".into(), Value::String(category.into()));
    event.insert("summary".into(), Value::String(summary));
    event.insert("tags".into(), json!(["audit", "decoder:auditd"]));
    event.insert("details".into(), Value::Object(details));
    Value::Object(event)
}

/// Detail keys without dots or upper case, like every other decoder's.
fn clean_audit_key(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c == '.' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `a3` → (3, 0); `a3[1]` → (3, 1) (the pieces of a long argument).
fn execve_argument_index(key: &str) -> Option<(u32, u32)> {
    let rest = key.strip_prefix('a')?;
    match rest.split_once('[') {
        Some((index, piece)) => Some((index.parse().ok()?, piece.strip_suffix(']')?.parse().ok()?)),
        None => Some((rest.parse().ok()?, 0)),
    }
}

fn classify(
    records: &[AuditRecord],
    primary: &AuditRecord,
    details: &Map<String, Value>,
) -> (&'static str, String) {
    if records.iter().any(|record| record.record_type == "EXECVE") {
        return ("execution", "command".into());
    }
    let fixed = match primary.record_type.as_str() {
        "USER_AUTH" | "USER_LOGIN" | "USER_ERR" | "ANOM_LOGIN_FAILURES" => {
            ("authentication", "login")
        }
        "USER_LOGOUT" => ("authentication", "logout"),
        "ADD_USER" => ("account", "useradd"),
        "DEL_USER" => ("account", "userdel"),
        "ADD_GROUP" => ("account", "groupadd"),
        "DEL_GROUP" => ("account", "groupdel"),
        "USER_MGMT" => ("account", "usermod"),
        "GRP_MGMT" => ("account", "groupmod"),
        "USER_CHAUTHTOK" | "GRP_CHAUTHTOK" => ("account", "passwd"),
        "ACCT_LOCK" => ("account", "lock"),
        "ACCT_UNLOCK" => ("account", "unlock"),
        "USER_START" | "LOGIN" => ("session", "session_opened"),
        "USER_END" => ("session", "session_closed"),
        "SYSCALL" => {
            let syscall = details.get("syscall").and_then(Value::as_str);
            return ("audit", syscall.unwrap_or("syscall").to_owned());
        }
        _ => return ("audit", primary.record_type.to_ascii_lowercase()),
    };
    (fixed.0, fixed.1.to_owned())
}

fn summary_of(primary: &AuditRecord, details: &Map<String, Value>) -> String {
    let text = |key: &str| details.get(key).and_then(Value::as_str);
    let mut summary = format!("audit {}", primary.record_type);
    if let Some(syscall) = text("syscall") {
        summary.push(' ');
        summary.push_str(syscall);
    }
    let what = text("command")
        .or_else(|| text("proctitle"))
        .or_else(|| text("op"))
        .or_else(|| text("exe"));
    if let Some(what) = what {
        summary.push_str(": ");
        summary.extend(what.chars().take(300));
    }
    let mut facts = Vec::new();
    for key in [
        "exe",
        "username",
        "auid",
        "uid",
        "sourceipaddress",
        "key",
        "result",
    ] {
        if let Some(value) = text(key)
            && !(key == "exe" && what == Some(value))
        {
            facts.push(format!("{key}={value}"));
        }
    }
    if !facts.is_empty() {
        summary.push_str(" [");
        summary.push_str(&facts.join(" "));
        summary.push(']');
    }
    summary
}

/// A decoded `saddr=` (struct sockaddr as hex).
struct SocketAddress {
    family: &'static str,
    address: Option<String>,
    port: Option<u16>,
    path: Option<String>,
}

fn socket_address(hex: &str) -> Option<SocketAddress> {
    if hex.len() < 4 || !hex.len().is_multiple_of(2) || !hex.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return None;
    }
    let bytes: Vec<u8> = (0..hex.len() / 2)
        .map(|index| u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).unwrap_or(0))
        .collect();
    let family = u16::from_le_bytes([bytes[0], bytes[1]]);
    match family {
        2 if bytes.len() >= 8 => Some(SocketAddress {
            family: "inet",
            port: Some(u16::from_be_bytes([bytes[2], bytes[3]])),
            address: Some(
                std::net::Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]).to_string(),
            ),
            path: None,
        }),
        10 if bytes.len() >= 24 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&bytes[8..24]);
            let address = std::net::Ipv6Addr::from(octets);
            let address = address
                .to_ipv4_mapped()
                .map_or_else(|| address.to_string(), |v4| v4.to_string());
            Some(SocketAddress {
                family: "inet6",
                port: Some(u16::from_be_bytes([bytes[2], bytes[3]])),
                address: Some(address),
                path: None,
            })
        }
        1 => {
            let path: Vec<u8> = bytes[2..].iter().copied().take_while(|b| *b != 0).collect();
            Some(SocketAddress {
                family: "unix",
                port: None,
                address: None,
                path: (!path.is_empty()).then(|| String::from_utf8_lossy(&path).into_owned()),
            })
        }
        16 => Some(SocketAddress {
            family: "netlink",
            port: None,
            address: None,
            path: None,
        }),
        _ => Some(SocketAddress {
            family: "other",
            port: None,
            address: None,
            path: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::AuditAssembler;

    const EXEC: &[&str] = &[
        "type=SYSCALL msg=audit(1700000000.100:500): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=4 items=2 ppid=10 pid=11 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 comm=\"id\" exe=\"/usr/bin/id\" key=\"exec\"",
        "type=EXECVE msg=audit(1700000000.100:500): argc=2 a0=\"id\" a1=\"-u\"",
        "type=CWD msg=audit(1700000000.100:500): cwd=\"/root\"",
        "type=PATH msg=audit(1700000000.100:500): item=0 name=\"/usr/bin/id\" inode=1 dev=08:01 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL",
        "type=PROCTITLE msg=audit(1700000000.100:500): proctitle=6964002D75",
    ];

    #[test]
    fn records_join_on_eoe_into_one_execution_event() {
        let mut assembler = AuditAssembler::new();
        for line in EXEC {
            assert!(assembler.push_line(line).is_empty());
        }
        let events = assembler.push_line("type=EOE msg=audit(1700000000.100:500): ");
        assert_eq!(events.len(), 1);
        let event = &events[0];
        assert_eq!(event["category"], "execution");
        assert_eq!(event["utctimestamp"], "2023-11-14T22:13:20.100000+00:00");
        assert_eq!(event["processname"], "id");
        assert_eq!(event["processid"], 11);
        let details = &event["details"];
        assert_eq!(details["syscall"], "execve");
        assert_eq!(details["arch"], "x86_64");
        assert_eq!(details["command"], "id -u");
        assert_eq!(details["proctitle"], "id -u");
        assert_eq!(details["cwd"], "/root");
        assert_eq!(details["auid"], "1000");
        assert_eq!(details["key"], "exec");
        assert_eq!(details["result"], "success");
        assert_eq!(details["paths"][0]["name"], "/usr/bin/id");
        assert_eq!(assembler.open_events(), 0);
    }

    #[test]
    fn interleaved_events_stay_apart_and_flush_emits_the_rest() {
        let mut assembler = AuditAssembler::new();
        let other = "type=SYSCALL msg=audit(1700000000.100:501): arch=c000003e syscall=42 success=no exit=-111 auid=4294967295 uid=0 comm=\"curl\" exe=\"/usr/bin/curl\"";
        let sockaddr =
            "type=SOCKADDR msg=audit(1700000000.100:501): saddr=02000050C0000201000000000000000000";
        assembler.push_line(EXEC[0]);
        assembler.push_line(other);
        assembler.push_line(EXEC[1]);
        assembler.push_line(sockaddr);
        let events = assembler.flush();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["details"]["command"], "id -u");
        assert_eq!(events[1]["details"]["syscall"], "connect");
        assert_eq!(events[1]["details"]["auid"], "unset");
        assert_eq!(events[1]["details"]["result"], "failure");
        assert_eq!(events[1]["details"]["destinationipaddress"], "192.0.2.1");
        assert_eq!(events[1]["details"]["destinationport"], 80);
    }

    #[test]
    fn limits_emit_old_events_and_user_space_records_are_events_at_once() {
        let mut assembler = AuditAssembler::with_limits(2, 10);
        let line = |serial: u32, seconds: u32| {
            format!(
                "type=SYSCALL msg=audit({seconds}.000:{serial}): arch=c000003e syscall=2 success=yes"
            )
        };
        assert!(assembler.push_line(&line(1, 100)).is_empty());
        assert!(assembler.push_line(&line(2, 100)).is_empty());
        assert_eq!(assembler.push_line(&line(3, 100)).len(), 1);
        assert_eq!(assembler.push_line(&line(4, 200)).len(), 2);
        let login = assembler.push_line(
            "type=USER_LOGIN msg=audit(205.000:9): pid=1 uid=0 auid=4294967295 ses=4294967295 msg='op=login acct=\"root\" exe=\"/usr/sbin/sshd\" hostname=? addr=::ffff:203.0.113.5 terminal=sshd res=failed'",
        );
        assert_eq!(login.len(), 1);
        assert_eq!(login[0]["category"], "authentication");
        assert_eq!(login[0]["details"]["result"], "failure");
        assert_eq!(login[0]["details"]["username"], "root");
        assert_eq!(login[0]["details"]["sourceipaddress"], "203.0.113.5");
    }
}
