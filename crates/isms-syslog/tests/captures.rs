//! Replays the exact bytes real syslog clients sent (`../shared/data/clients-captured/`, see its
//! README) through the framing and the parser, and checks every field lands where it should.
//!
//! Each UDP capture is one datagram: one message. Each TCP capture is one whole connection: its frames
//! are cut by [`FrameDecoder`] as the TCP receiver does, fed in pieces of every size from 1 byte up,
//! so no split point can change the result.
use std::path::PathBuf;

use isms_syslog::{FrameDecoder, ParseContext, SyslogFormat, SyslogMessage, parse};

/// The capture, or `None` when the shared data is absent (a failure when `CI` is set).
fn capture(name: &str) -> Option<Vec<u8>> {
    let root = match std::env::var_os("ISMS_TEST_SHARED_DATA") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"),
    };
    let path = root.join("clients-captured").join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Some(bytes),
        Err(error) if std::env::var_os("CI").is_some() => {
            panic!(
                "capture {} is missing and CI is set: {error}",
                path.display()
            )
        }
        Err(error) => {
            eprintln!("skipping: capture {} is missing: {error}", path.display());
            None
        }
    }
}

/// Captured on 2026-11-21 around 22:21 UTC on a host called "vm" with a UTC clock.
fn context() -> ParseContext {
    ParseContext::utc("2026-11-21T22:30:00Z".parse().expect("time"))
}

fn datagram(name: &str) -> Option<SyslogMessage> {
    Some(parse(&capture(name)?, &context()))
}

/// The frames of a TCP capture; the same whatever size the reads had.
fn stream(name: &str) -> Option<Vec<SyslogMessage>> {
    let bytes = capture(name)?;
    let mut reference: Option<Vec<Vec<u8>>> = None;
    for piece in [1, 2, 3, 7, 64, bytes.len().max(1)] {
        let mut decoder = FrameDecoder::new(64 * 1024);
        let mut frames = Vec::new();
        for chunk in bytes.chunks(piece) {
            decoder.push(chunk);
            while let Some(frame) = decoder.next_frame() {
                frames.push(frame.expect("a valid frame"));
            }
        }
        while let Some(frame) = decoder.finish() {
            frames.push(frame.expect("a valid frame"));
        }
        match &reference {
            None => reference = Some(frames),
            Some(expected) => assert_eq!(&frames, expected, "{name}: pieces of {piece} bytes"),
        }
    }
    Some(
        reference
            .unwrap_or_default()
            .iter()
            .map(|frame| parse(frame, &context()))
            .collect(),
    )
}

fn time(text: &str) -> Option<jiff::Timestamp> {
    Some(text.parse().expect("time"))
}

#[test]
fn logger_rfc5424_over_udp_with_structured_data_and_msgid() {
    let Some(message) = datagram("logger.udp.01.bin") else {
        return;
    };
    assert_eq!(message.format, SyslogFormat::Rfc5424);
    assert_eq!(message.facility_name(), "auth");
    assert_eq!(message.severity_name(), "INFO");
    assert_eq!(message.timestamp, time("2026-11-21T22:21:23.622526Z"));
    assert_eq!(message.hostname.as_deref(), Some("vm"));
    assert_eq!(message.app_name.as_deref(), Some("sshd"));
    assert_eq!(message.proc_id.as_deref(), Some("3521"));
    assert_eq!(message.structured_data[0].id, "timeQuality");
    assert_eq!(
        message.message,
        "Failed password for root from 10.1.2.3 port 22 ssh2"
    );

    let Some(message) = datagram("logger.udp.03.bin") else {
        return;
    };
    assert_eq!(message.msg_id.as_deref(), Some("ID47"));
    assert_eq!(message.proc_id, None);
    let ids: Vec<&str> = message
        .structured_data
        .iter()
        .map(|element| element.id.as_str())
        .collect();
    assert_eq!(ids, ["timeQuality", "timeQuality@13"]);
    assert_eq!(message.message, "with structured data");
}

#[test]
fn logger_rfc3164_over_udp() {
    let Some(message) = datagram("logger.udp.02.bin") else {
        return;
    };
    assert_eq!(message.format, SyslogFormat::Rfc3164);
    assert_eq!(message.facility_name(), "authpriv");
    assert_eq!(message.severity_name(), "WARNING");
    assert_eq!(message.timestamp, time("2026-11-21T22:21:23Z"));
    assert_eq!(message.hostname.as_deref(), Some("vm"));
    assert_eq!(message.app_name.as_deref(), Some("sshd"));
    assert_eq!(message.proc_id, None);
    assert_eq!(message.message, "Invalid user admin from 10.1.2.3");
}

#[test]
fn logger_over_tcp_terminated_and_octet_counted() {
    let Some(messages) = stream("logger.tcp.01.bin") else {
        return;
    };
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].app_name.as_deref(), Some("sudo"));
    assert!(
        messages[0]
            .message
            .starts_with("alice : TTY=pts/0 ; PWD=/home/alice")
    );
    assert!(messages[0].message.ends_with("COMMAND=/bin/ls"));

    let Some(messages) = stream("logger.tcp.02.bin") else {
        return;
    };
    assert_eq!(messages.len(), 1, "octet counted, no trailing LF");
    assert_eq!(messages[0].app_name.as_deref(), Some("test"));
    assert_eq!(messages[0].message, "octet counted message");
}

#[test]
fn python_sysloghandler_without_time_or_host_and_with_its_nul() {
    let Some(message) = datagram("python-SysLogHandler.udp.01.bin") else {
        return;
    };
    assert_eq!(message.format, SyslogFormat::Bare);
    assert_eq!(message.facility_name(), "auth");
    assert_eq!(message.severity_name(), "WARNING");
    assert_eq!(message.hostname, None);
    assert_eq!(message.timestamp, None);
    assert_eq!(
        message.message,
        "Failed password for root from 10.1.2.3 port 22 ssh2"
    );

    let Some(message) = datagram("python-SysLogHandler.udp.02.bin") else {
        return;
    };
    assert_eq!(message.app_name.as_deref(), Some("myapp"));
    assert_eq!(message.proc_id.as_deref(), Some("3551"));
    assert_eq!(message.message, "ERROR with formatter");

    let Some(message) = datagram("python-SysLogHandler.udp.03.bin") else {
        return;
    };
    assert_eq!(message.app_name.as_deref(), Some("myident"));
    assert_eq!(message.message, "myapp[3551]: INFO with ident");

    let Some(message) = datagram("python-SysLogHandler.udp.04.bin") else {
        return;
    };
    assert_eq!(message.severity_name(), "DEBUG");
    assert!(
        message.message.starts_with("no nul, unicode: é"),
        "{}",
        message.message
    );

    let Some(messages) = stream("python-SysLogHandler.tcp.01.bin") else {
        return;
    };
    let texts: Vec<&str> = messages.iter().map(|m| m.message.as_str()).collect();
    assert_eq!(texts, ["tcp one", "tcp two"], "NUL-delimited frames");
}

#[test]
fn rsyslog_traditional_forward_and_rfc5424_with_its_double_space() {
    for name in [
        "rsyslog-traditional.udp.01.bin",
        "rsyslog-forwardformat.udp.01.bin",
    ] {
        let Some(message) = datagram(name) else {
            return;
        };
        assert_eq!(message.format, SyslogFormat::Rfc3164, "{name}");
        assert_eq!(message.hostname.as_deref(), Some("vm"), "{name}");
        assert_eq!(message.app_name.as_deref(), Some("sshd"), "{name}");
        assert_eq!(message.proc_id.as_deref(), Some("3842"), "{name}");
        assert_eq!(
            message.message,
            "Accepted publickey for bob from 10.0.0.9 port 50022 ssh2: RSA SHA256:abc",
            "{name}"
        );
    }
    let Some(message) = datagram("rsyslog-forwardformat.udp.02.bin") else {
        return;
    };
    assert_eq!(message.timestamp, time("2026-11-21T22:21:32.557121Z"));
    assert_eq!(message.app_name.as_deref(), Some("su"));
    assert_eq!(message.message, "(to root) bob on pts/1");
    let Some(message) = datagram("rsyslog-traditional.udp.02.bin") else {
        return;
    };
    assert_eq!(message.timestamp, time("2026-11-21T22:21:32Z"));

    let Some(messages) = stream("rsyslog-traditional.tcp.01.bin") else {
        return;
    };
    let programs: Vec<Option<&str>> = messages.iter().map(|m| m.app_name.as_deref()).collect();
    assert_eq!(programs, [Some("sshd"), Some("su")]);

    let Some(messages) = stream("rsyslog-rfc5424-octet.tcp.01.bin") else {
        return;
    };
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].format, SyslogFormat::Rfc5424);
    assert_eq!(messages[0].proc_id.as_deref(), Some("3842"));
    assert_eq!(
        messages[0].message,
        "Accepted publickey for bob from 10.0.0.9 port 50022 ssh2: RSA SHA256:abc",
        "the double space after `-` is not part of the message"
    );
    assert_eq!(messages[1].app_name.as_deref(), Some("su"));
    assert_eq!(messages[1].message, "(to root) bob on pts/1");
}

#[test]
fn syslog_ng_network_and_syslog_drivers() {
    for name in [
        "syslog-ng-network.udp.01.bin",
        "syslog-ng-network.udp.02.bin",
    ] {
        let Some(message) = datagram(name) else {
            return;
        };
        assert_eq!(message.format, SyslogFormat::Rfc3164, "{name}");
        assert_eq!(message.timestamp, time("2026-11-21T22:21:59Z"), "{name}");
        assert!(!message.message.ends_with('\n'), "{name}");
    }
    let Some(messages) = stream("syslog-ng-network.tcp.01.bin") else {
        return;
    };
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].proc_id.as_deref(), Some("4701"));
    assert_eq!(messages[1].app_name.as_deref(), Some("useradd"));
    assert_eq!(
        messages[1].message,
        "new user: name=evil, UID=0, GID=0, home=/root, shell=/bin/bash"
    );

    let Some(messages) = stream("syslog-ng-syslog5424.tcp.01.bin") else {
        return;
    };
    assert_eq!(messages.len(), 2, "counts include a trailing LF");
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(message.format, SyslogFormat::Rfc5424);
        assert_eq!(message.structured_data[0].id, "meta");
        assert_eq!(
            message.structured_data[0].params,
            [("sequenceId".to_owned(), (index + 1).to_string())]
        );
        assert!(!message.message.ends_with('\n'));
    }
    assert_eq!(
        messages[0].message,
        "Failed password for invalid user admin from 10.9.8.7 port 4242 ssh2"
    );
}

#[test]
fn every_capture_becomes_an_event_isms_accepts() {
    let names = [
        "logger.udp.01.bin",
        "logger.udp.02.bin",
        "logger.udp.03.bin",
        "python-SysLogHandler.udp.01.bin",
        "python-SysLogHandler.udp.04.bin",
        "rsyslog-forwardformat.udp.01.bin",
        "rsyslog-traditional.udp.02.bin",
        "syslog-ng-network.udp.01.bin",
    ];
    let origin = isms_event::Origin {
        peer: Some("127.0.0.1:40000".into()),
        endpoint: "syslog:udp:5514".into(),
        key_name: None,
    };
    for name in names {
        let Some(message) = datagram(name) else {
            return;
        };
        let raw = message.to_event(Some("127.0.0.1"));
        let event = isms_event::normalize(raw, &origin, context().received)
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        assert_eq!(
            event.document["summary"],
            message.message.as_str(),
            "{name}"
        );
        assert_eq!(
            event.document["severity"],
            message.severity_name(),
            "{name}"
        );
        assert!(event.document["hostname"].is_string(), "{name}");
    }
}
