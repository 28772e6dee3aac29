//! The syslog receivers' fast path makes the same events as the general one.
//!
//! `Decoders::event_of` on `SyslogMessage::into_fields` (typed fields, decoded in place) must store
//! exactly what `normalize_delivered` makes of `SyslogMessage::to_event` after `Decoders::apply`
//! (JSON, decoded through the map): every field, the details' key rules and aliases, the tags, the
//! times, the errors. Checked on every line of the real logs in `../shared/data` (fail2ban's daemon
//! logs, Elastic's auth samples) and every syslog capture, on messages built to reach the corners
//! (structured data keys with capitals and dots, repeated parameters, a PROCID that is not a number,
//! invalid UTF-8, years far off), under user decoders that take both paths, and on random bytes.
//!
//! The same for files: `LineDecoder::push_line_typed` and `LineEvent::into_event` (replay, file
//! tailing) against `LineDecoder::push_line` and `normalize_delivered` (`isms decode`), whole files
//! through one decoder each so that the loose headers and the sshd connection memory are covered.
mod common;

use std::path::{Path, PathBuf};

use common::data_root;
use std::sync::Arc;

use isms_decode::{Decoders, LineDecoder, UserDecoderSpec};
use isms_event::{Delivery, Origin, normalize_delivered};
use isms_syslog::{ParseContext, SyslogMessage, parse};
use proptest::prelude::*;
use serde_json::Value;

/// Built-in decoders plus user decoders that exercise both paths: one only adds details (with an
/// alias key, `srcip`, and a capture in capitals), one sets top-level fields and a summary.
fn decoders() -> Decoders {
    let spec =
        |name: &str, program: &str, pattern: &str, fields: &[(&str, &str)]| UserDecoderSpec {
            name: name.to_owned(),
            program: program.to_owned(),
            pattern: pattern.to_owned(),
            category: "custom".to_owned(),
            fields: fields
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        };
    Decoders::with_user(vec![
        spec(
            "gateway",
            "gatewayd",
            r"^login (?P<UserName>\S+) from (?P<srcip>\S+)",
            &[("details.result", "failure"), ("tags", "gateway")],
        ),
        spec(
            "rewriter",
            "*",
            r"^rewrite me (?P<word>\w+)",
            &[
                ("severity", "WARNING"),
                ("summary", "rewritten"),
                ("hostname", "decoder-host"),
            ],
        ),
    ])
    .expect("valid user decoders")
}

fn delivery() -> Delivery {
    Delivery::new(
        &Origin {
            peer: Some("10.1.2.3:5514".into()),
            endpoint: "syslog:tcp:5514".into(),
            key_name: None,
        },
        "2026-12-01T08:00:00Z".parse().expect("time"),
    )
}

/// Both paths for one message; panics with the message on any difference.
fn assert_paths_agree(decoders: &Decoders, delivery: &Delivery, message: &SyslogMessage) {
    let fast = decoders.event_of(message.clone().into_fields(Some("10.1.2.3")), delivery);
    let mut raw = message.to_event(Some("10.1.2.3"));
    if let Value::Object(event) = &mut raw {
        decoders.apply(event);
    }
    let general = normalize_delivered(raw, delivery);
    assert_events_agree(fast, general, &message);
}

/// Two line decoders, one per path, over the same lines; panics with the line on any difference.
struct LinePaths {
    typed: LineDecoder,
    general: LineDecoder,
    delivery: Delivery,
}

impl LinePaths {
    fn new(decoders: &Decoders) -> LinePaths {
        let decoders = Arc::new(decoders.clone());
        let line_decoder = || {
            LineDecoder::new(decoders.clone(), context())
                .with_sender_host("sender.example")
                .with_default_program("vsftpd")
        };
        LinePaths {
            typed: line_decoder(),
            general: line_decoder(),
            delivery: delivery(),
        }
    }

    fn push(&mut self, line: &str) {
        let typed = self.typed.push_line_typed(line);
        let general = self.general.push_line(line);
        assert_eq!(
            typed.len(),
            general.len(),
            "event counts differ for {line:?}"
        );
        for (typed, general) in typed.into_iter().zip(general) {
            assert_events_agree(
                typed.into_event(&self.delivery),
                normalize_delivered(general, &self.delivery),
                &line,
            );
        }
    }
}

fn assert_events_agree(
    fast: Result<isms_event::Event, isms_event::NormalizeError>,
    general: Result<isms_event::Event, isms_event::NormalizeError>,
    message: &dyn std::fmt::Debug,
) {
    match (fast, general) {
        (Ok(mut fast), Ok(mut general)) => {
            // The id is new each time; everything else must be equal.
            fast.document.remove("id");
            general.document.remove("id");
            assert_eq!(
                fast.document, general.document,
                "documents differ for {message:?}"
            );
            assert_eq!(fast.utctimestamp_micros, general.utctimestamp_micros);
            assert_eq!(
                fast.receivedtimestamp_micros,
                general.receivedtimestamp_micros
            );
        }
        (Err(fast), Err(general)) => assert_eq!(fast.to_string(), general.to_string()),
        (fast, general) => panic!(
            "one path refused {message:?}: fast {:?}, general {:?}",
            fast.map(|event| event.document),
            general.map(|event| event.document)
        ),
    }
}

fn context() -> ParseContext {
    ParseContext::utc("2026-12-01T08:00:00Z".parse().expect("time"))
}

fn files_under(directory: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, files);
        } else {
            files.push(path);
        }
    }
}

#[test]
fn real_log_lines_and_captures_make_the_same_event_both_ways() {
    let Some(root) = data_root() else {
        return;
    };
    let decoders = decoders();
    let delivery = delivery();
    let context = context();
    let mut files = Vec::new();
    files_under(&root.join("fail2ban/fail2ban/tests/files/logs"), &mut files);
    files_under(&root.join("elastic-auth"), &mut files);
    files.retain(|path| path.extension().is_none_or(|extension| extension == "log"));
    let mut lines = 0;
    for file in &files {
        let bytes = std::fs::read(file).expect("read a log");
        let mut line_paths = LinePaths::new(&decoders);
        for line in bytes.split(|byte| *byte == b'\n') {
            assert_paths_agree(&decoders, &delivery, &parse(line, &context));
            line_paths.push(&String::from_utf8_lossy(line));
            lines += 1;
        }
    }
    // The captures: each file is one datagram or one TCP stream; its frames are close enough to
    // lines for this check (every shape of header the senders make).
    let mut captures = Vec::new();
    files_under(&root.join("clients-captured"), &mut captures);
    for capture in captures
        .iter()
        .filter(|path| path.extension().is_some_and(|extension| extension == "bin"))
    {
        let bytes = std::fs::read(capture).expect("read a capture");
        for frame in bytes.split(|byte| *byte == b'\n' || *byte == 0) {
            assert_paths_agree(&decoders, &delivery, &parse(frame, &context));
            lines += 1;
        }
    }
    assert!(
        lines > 3_000,
        "expected the thousands of real lines, found {lines} in {} files",
        files.len()
    );
}

#[test]
fn corner_cases_make_the_same_event_both_ways() {
    let decoders = decoders();
    let delivery = delivery();
    let context = context();
    let messages: &[&[u8]] = &[
        b"<34>1 2026-11-21T10:00:00Z host app worker-1 ID47 - a PROCID that is not a number",
        b"<34>1 2026-11-21T10:00:00Z host app 123 ID47 [exampleSDID@32473 iut=\"3\" Event.Source=\"App\" A=\"1\" a=\"2\"][exampleSDID@32473 again=\"yes\"][Other x=\"y\"] with structured data",
        b"<34>1 2026-11-21T10:00:00.123456+05:30 host app - - - an offset",
        b"<34>1 0001-01-01T00:00:00Z host app - - - the first year",
        b"<34>1 9999-12-31T23:59:59.999999Z host app - - - the last microsecond",
        b"<13>1 - - - - - ",
        b"<13>",
        b"",
        b"   ",
        b"<86>Nov 30 23:59:59 web1 sshd[4242]: Failed password for invalid user admin from 203.0.113.9 port 5022 ssh2",
        b"<86>Dec  1 07:59:59 web1 sshd[4242]: Accepted publickey for alice from 2001:db8::1 port 40000 ssh2: ED25519 SHA256:abc",
        b"<38>Dec  1 07:59:59 web1 gatewayd[7]: login Bob from 198.51.100.7 failed",
        b"<38>Dec  1 07:59:59 web1 other[7]: rewrite me please",
        b"<38>Dec  1 07:59:59 web1 sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls",
        b"<38>Dec  1 07:59:59 web1 su: pam_unix(su:auth): authentication failure; logname=bob uid=1000 euid=0 tty=pts/1 ruser=bob rhost=  user=root",
        b"<14>Dec  1 07:59:59 web1 app: \xff\xfe invalid UTF-8 \xc3",
        b"no header at all, just text",
        b"Dec  1 07:59:59 web1 sshd[1]: Invalid user oracle from 192.0.2.4 port 22",
    ];
    let mut lines = LinePaths::new(&decoders);
    for message in messages {
        assert_paths_agree(&decoders, &delivery, &parse(message, &context));
        lines.push(&String::from_utf8_lossy(message));
    }
    // Loose headers of log files, and sshd lines joined by process.
    for line in [
        "2013-11-16 21:59:30,121 fail2ban.actions: WARNING [ssh] Ban 192.0.2.1",
        "Fri Jan 19 12:20:33 2007 [pid 27202] [anonymous] FAIL LOGIN: Client \"198.51.100.10\"",
        "@400000004c3b2a4b1e5d6a9c sshd[77]: Failed password for root from 192.0.2.8 port 22 ssh2",
        "Jan  1 00:00:00 host dovecot: Info: imap-login: Aborted login (auth failed, 1 attempts): user=<bob>, method=PLAIN, rip=192.0.2.9, lip=10.0.0.1",
        "Jan  1 00:00:00 host proftpd[12] host (192.0.2.10[192.0.2.10]): USER bob: no such user found from 192.0.2.10",
        "[sshd] Accepted password for carol from 192.0.2.11 port 22 ssh2",
        "Dec  1 07:59:59 web1 sshd[9]: Disconnecting: Too many authentication failures [preauth]",
        "Dec  1 07:59:59 web1 sshd[9]: Failed password for dave from 192.0.2.12 port 22 ssh2",
        "Dec  1 07:59:59 web1 sshd[9]: Disconnecting: Too many authentication failures [preauth]",
        "{\"summary\": \"a JSON line\", \"details\": {\"x\": 1}}",
        "type=SYSCALL msg=audit(1700000000.000:10): arch=c000003e syscall=59 success=yes exit=0 comm=\"ls\"",
        "type=EOE msg=audit(1700000000.000:10):",
    ] {
        lines.push(line);
    }
}

proptest! {
    #[test]
    fn random_messages_make_the_same_event_both_ways(
        prefix in prop::sample::select(vec![
            "<38>Dec  1 07:59:59 web1 sshd[42]: ",
            "<38>1 2026-12-01T07:59:59.5Z web1 gatewayd 42 - [a B.c=\"d\"] ",
            "<13>",
            "",
        ]),
        body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut bytes = prefix.as_bytes().to_vec();
        bytes.extend(body);
        assert_paths_agree(&decoders(), &delivery(), &parse(&bytes, &context()));
        LinePaths::new(&decoders()).push(&String::from_utf8_lossy(&bytes));
    }
}
