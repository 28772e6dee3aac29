//! No input makes a decoder panic: random text, and random text spliced into the shapes the
//! decoders parse (so the generator reaches past their first literal checks), through every entry
//! point.
use std::sync::Arc;

use isms_decode::{AuditAssembler, Decoders, LineDecoder, parse_audit_record};
use isms_syslog::ParseContext;
use proptest::prelude::*;
use serde_json::{Map, Value};

const PROGRAMS: &[&str] = &[
    "sshd",
    "sudo",
    "su",
    "useradd",
    "usermod",
    "groupadd",
    "passwd",
    "CRON",
    "vsftpd",
    "proftpd",
    "dropbear",
    "postfix/smtpd",
    "dovecot",
    "imap-login",
    "snort",
    "login",
    "",
    "*",
];

/// Fragments of the formats, to be spliced with random text.
const FRAGMENTS: &[&str] = &[
    "Failed password for ",
    "Accepted publickey for ",
    "invalid user ",
    " from ",
    " port ",
    " ssh2",
    ": ",
    " [preauth]",
    "Invalid user ",
    "Connection closed by ",
    "authenticating user ",
    "Received disconnect from ",
    "PAM: Authentication failure for ",
    " via ",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=",
    " rhost=",
    " user=",
    "session opened for user ",
    "(uid=",
    ")",
    " : TTY=",
    " ; COMMAND=",
    " ; USER=",
    "+ pts/0 ",
    "(to ",
    "new user: name=",
    ", UID=",
    "delete user '",
    "'",
    "(root) CMD (",
    "[pid 1] [",
    "] FAIL LOGIN: Client \"",
    "\"",
    " (",
    "[",
    "]): USER ",
    " (Login failed): ",
    "Bad password attempt for '",
    "Exit before auth from <",
    ">: (user '",
    ", 3 fails): ",
    "warning: unknown[",
    "]: SASL LOGIN authentication failed: ",
    "NOQUEUE: reject: RCPT from ",
    "disconnect from x[",
    " auth=0/",
    "imap-login: Disconnected (auth failed, ",
    " attempts): user=<",
    ">, method=PLAIN, rip=",
    ", lip=",
    "auth-worker(1): pam(",
    ",",
    "): unknown user",
    "[**] [1:",
    ":1] ",
    " [Priority: ",
    "] {TCP} ",
    " -> ",
    "type=SYSCALL msg=audit(",
    ".1:",
    "): arch=c000003e syscall=",
    " proctitle=",
    " msg='",
    "\u{1d}AUID=\"",
    "type=EXECVE msg=audit(1.1:1): argc=2 a0=",
    "a1[0]=",
    "SSH: Server;Ltype: Version;Remote: ",
    "-",
    "Mar  1 00:00:00 host ",
    "sshd[12]: ",
    "@4000000065a1b2c300000000 ",
    "2024-01-01 00:00:00,5 ",
    "Fri Jan 19 12:20:33 2007 ",
    "[Time 2006.12.28 15:53:55 UTC] [Sender sshd] [Message ",
    "] [Level 3]",
    "é",
    "\u{0}",
];

fn spliced() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(FRAGMENTS).prop_map(str::to_owned),
            "[ -~]{0,12}",
            "\\PC{0,6}",
            "[0-9.:a-f]{1,20}",
        ],
        0..14,
    )
    .prop_map(|parts| parts.concat())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![spliced(), "\\PC{0,200}", any::<String>()]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_.]{1,10}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn sensor_record() -> impl Strategy<Value = Map<String, Value>> {
    let keys = prop::sample::select(vec![
        "event_type",
        "timestamp",
        "ts",
        "uid",
        "id.orig_h",
        "id.orig_p",
        "id.resp_h",
        "src_ip",
        "dest_port",
        "alert",
        "_path",
        "auth_success",
        "success",
        "result",
        "command",
        "reply_code",
        "client",
        "host",
        "port_num",
        "id",
        "fingerprint",
        "note",
        "msg",
    ]);
    prop::collection::vec((keys, json_value()), 0..10).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect()
    })
}

fn context() -> ParseContext {
    ParseContext::utc("2026-01-01T00:00:00Z".parse().expect("time"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn decode_message_never_panics(program in prop::sample::select(PROGRAMS), message in text()) {
        let decoders = Decoders::builtin();
        let _ = decoders.decode_message(program, &message);
        let mut event = Map::new();
        event.insert("processname".into(), Value::from(program));
        event.insert("summary".into(), Value::from(message));
        let _ = decoders.apply(&mut event);
    }

    #[test]
    fn line_decoder_and_audit_never_panic(lines in prop::collection::vec(text(), 1..8)) {
        let mut decoder = LineDecoder::new(Arc::new(Decoders::builtin()), context());
        let mut assembler = AuditAssembler::with_limits(2, 1);
        for line in &lines {
            let _ = decoder.push_line(line);
            let _ = parse_audit_record(line);
            let _ = assembler.push_line(line);
        }
        let _ = decoder.finish();
        let _ = assembler.flush();
    }

    #[test]
    fn decode_json_never_panics(record in sensor_record()) {
        let decoders = Decoders::builtin();
        if let Some(event) = decoders.decode_json(&record) {
            prop_assert!(event.is_object());
        }
    }

    #[test]
    fn apply_never_panics_on_odd_events(event in prop::collection::btree_map("[a-z]{1,12}", json_value(), 0..6), summary in text()) {
        let decoders = Decoders::builtin();
        let mut event: Map<String, Value> = event.into_iter().collect();
        event.insert("processname".into(), Value::from("sshd"));
        event.insert("summary".into(), Value::from(summary));
        let _ = decoders.apply(&mut event);
    }
}
