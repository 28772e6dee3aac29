//! Decoders seen from outside: `isms decode` on log lines (built-in and an operator's decoders file,
//! and a broken file reported by line), and a running server decoding what syslog brings.
// Shared with `server.rs`; this file uses only part of it.
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use harness::{ServerProcess, run_isms, run_test};
use serde_json::Value;

const VPN_DECODERS: &str = r#"
[[decoder]]
name = "vpn-login-failure"
program = "openvpn"
pattern = 'TLS Auth Error: user (?P<username>\S+) from (?P<sourceipaddress>[0-9.]+)'
category = "authentication"
fields = { "details.result" = "failure", tags = "vpn" }
"#;

const LINES: &str = "Nov 30 10:00:00 web01 sshd[42]: Failed password for invalid user admin from 203.0.113.9 port 51234 ssh2\n\
Nov 30 10:00:01 gw01 openvpn[7]: TLS Auth Error: user mallory from 198.51.100.4 rejected\n\
Nov 30 10:00:02 web01 myapp[9]: nothing any decoder knows\n";

fn decoded_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect()
}

#[test]
fn isms_decode_prints_events_from_built_in_and_operator_decoders() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let decoders = directory.path().join("decoders.toml");
    std::fs::write(&decoders, VPN_DECODERS).expect("write decoders");
    let input = directory.path().join("auth.log");
    std::fs::write(&input, LINES).expect("write lines");
    let output = run_isms(
        &[
            "decode".as_ref(),
            "--decoders".as_ref(),
            decoders.as_os_str(),
            input.as_os_str(),
        ],
        &[],
    );
    output.assert_success("isms decode");
    let events = decoded_lines(&output.stdout_text());
    assert_eq!(events.len(), 3, "one event per line");
    assert_eq!(events[0]["category"], "authentication");
    assert_eq!(events[0]["details"]["result"], "failure");
    assert_eq!(events[0]["details"]["username"], "admin");
    assert_eq!(events[0]["details"]["sourceipaddress"], "203.0.113.9");
    assert_eq!(events[1]["category"], "authentication");
    assert_eq!(events[1]["details"]["username"], "mallory");
    assert_eq!(events[1]["details"]["sourceipaddress"], "198.51.100.4");
    assert_eq!(events[1]["details"]["result"], "failure");
    assert!(
        events[1]["tags"]
            .as_array()
            .is_some_and(|tags| tags.iter().any(|tag| tag == "vpn")),
        "{}",
        events[1]
    );
    assert!(events[2].get("category").is_none(), "{}", events[2]);
    assert_eq!(events[2]["summary"], "nothing any decoder knows");

    // Without the operator's file the VPN line is not decoded.
    let plain = run_isms(&["decode".as_ref(), input.as_os_str()], &[]);
    plain.assert_success("isms decode without decoders");
    assert!(
        decoded_lines(&plain.stdout_text())[1]
            .get("category")
            .is_none()
    );
}

#[test]
fn a_broken_decoders_file_is_reported_with_its_line_and_what_is_wrong() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let typo = directory.path().join("typo.toml");
    std::fs::write(
        &typo,
        "[[decoder]]\nname = \"x\"\nprogram = \"p\"\npatern = 'a'\ncategory = \"c\"\n",
    )
    .expect("write");
    let output = run_isms(
        &["decode".as_ref(), "--decoders".as_ref(), typo.as_os_str()],
        &[],
    );
    assert!(!output.status.success());
    assert!(output.stderr.contains("line 4"), "{}", output.stderr);
    assert!(output.stderr.contains("patern"), "{}", output.stderr);

    let bad_regex = directory.path().join("regex.toml");
    std::fs::write(
        &bad_regex,
        "[[decoder]]\nname = \"broken\"\nprogram = \"p\"\npattern = '(?P<user>unclosed'\ncategory = \"c\"\n",
    )
    .expect("write");
    let output = run_isms(
        &[
            "decode".as_ref(),
            "--decoders".as_ref(),
            bad_regex.as_os_str(),
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("broken"),
        "names the decoder: {}",
        output.stderr
    );

    // The server refuses to start with it, saying which key.
    let output = run_isms(
        &["config", "check"],
        &[("ISMS_DECODERS_FILE", &typo.display().to_string())],
    );
    assert!(!output.status.success());
    assert!(output.stderr.contains("decoders.file"), "{}", output.stderr);
}

#[test]
fn syslog_messages_are_decoded_before_they_are_stored() {
    run_test(Duration::from_secs(30), async {
        let directory = tempfile::tempdir().expect("temporary directory");
        let decoders = directory.path().join("decoders.toml");
        std::fs::write(&decoders, VPN_DECODERS).expect("write decoders");
        let server =
            ServerProcess::start(&[("ISMS_DECODERS_FILE", &decoders.display().to_string())]);
        let udp = server.syslog_udp.expect("udp receiver");
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("socket");
        for line in LINES.lines() {
            socket
                .send_to(format!("<38>{line}").as_bytes(), udp)
                .expect("send");
        }
        let query = "category:authentication AND details.result:failure";
        let mut users: Vec<String> = server
            .wait_for_exactly(query, 2)
            .await
            .iter()
            .map(|event| {
                event["details"]["username"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        users.sort();
        assert_eq!(users, ["admin", "mallory"]);
        assert_eq!(server.count("details.sourceipaddress:203.0.113.9").await, 1);
    });
}
