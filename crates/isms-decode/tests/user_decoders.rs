//! Operator decoders and merging decoded details into events, through the public API.
use isms_decode::{DecoderError, Decoders, UserDecoderSpec};
use serde_json::{Map, Value, json};

fn spec(name: &str, program: &str, pattern: &str, fields: &[(&str, &str)]) -> UserDecoderSpec {
    UserDecoderSpec {
        name: name.into(),
        program: program.into(),
        pattern: pattern.into(),
        category: "authentication".into(),
        fields: fields
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => panic!("not an object"),
    }
}

#[test]
fn captures_become_details_and_static_fields_apply() {
    let decoders = Decoders::with_user(vec![spec(
        "acme-vpn",
        "acmevpn",
        r"^login failed for (?P<username>\S+) from (?P<sourceipaddress>[0-9.]+):(?P<SourcePort>\d+)",
        &[
            ("details.result", "failure"),
            ("tags", "vpn"),
            ("severity", "WARNING"),
        ],
    )])
    .expect("valid");
    let decoded = decoders
        .decode_message(
            "acmevpn",
            "login failed for kate from 203.0.113.7:5555 (bad otp)",
        )
        .expect("matches");
    assert_eq!(decoded.decoder, "acme-vpn");
    assert_eq!(decoded.category, "authentication");
    assert_eq!(decoded.details["username"], "kate");
    assert_eq!(decoded.details["sourceipaddress"], "203.0.113.7");
    assert_eq!(
        decoded.details["sourceport"], 5555,
        "ports are numbers, names lowercased"
    );
    assert_eq!(decoded.details["result"], "failure");
    assert_eq!(decoded.tags, vec!["vpn".to_owned()]);
    assert_eq!(
        decoded.fields,
        vec![("severity".to_owned(), "WARNING".to_owned())]
    );
    assert!(
        decoders
            .decode_message("othervpn", "login failed for kate from 203.0.113.7:5555")
            .is_none()
    );
    assert!(
        decoders
            .decode_message("acmevpn", "login ok for kate")
            .is_none()
    );
}

#[test]
fn user_decoders_come_before_the_built_in_ones_and_wildcards_apply_everywhere() {
    let decoders = Decoders::with_user(vec![
        spec(
            "sshd-special",
            "sshd",
            r"^Failed password for (?P<username>\S+)",
            &[("details.result", "special")],
        ),
        spec("anywhere", "*", r"^MARK (?P<mark>\w+)$", &[]),
    ])
    .expect("valid");
    let decoded = decoders
        .decode_message(
            "sshd",
            "Failed password for root from 192.0.2.1 port 22 ssh2",
        )
        .expect("matches");
    assert_eq!(decoded.decoder, "sshd-special");
    let builtin = decoders
        .decode_message(
            "sshd",
            "Accepted password for root from 192.0.2.1 port 22 ssh2",
        )
        .expect("falls through to the built-in decoder");
    assert_eq!(builtin.decoder, "sshd");
    assert_eq!(
        decoders
            .decode_message("kernel", "MARK here")
            .expect("wildcard")
            .details["mark"],
        "here"
    );
}

#[test]
fn mistakes_name_the_decoder_and_say_what_is_wrong() {
    let error = Decoders::with_user(vec![spec("broken", "x", r"(?P<user>[a-z", &[])]).unwrap_err();
    assert!(matches!(&error, DecoderError::InvalidPattern { name, .. } if name == "broken"));
    assert!(
        error
            .to_string()
            .starts_with("decoder `broken`: invalid pattern:"),
        "{error}"
    );

    // A short pattern that compiles to far more than the size limit.
    let error = Decoders::with_user(vec![spec("huge", "x", r"(?P<x>\w{5000})", &[])]).unwrap_err();
    assert!(
        matches!(&error, DecoderError::InvalidPattern { name, .. } if name == "huge"),
        "{error}"
    );
    assert!(error.to_string().contains("size limit"), "{error}");
    let long = format!("(?P<x>{})", "a".repeat(isms_decode::USER_PATTERN_MAX_BYTES));
    let error = Decoders::with_user(vec![spec("long", "x", &long, &[])]).unwrap_err();
    assert!(error.to_string().contains("bytes long"), "{error}");

    let error = Decoders::with_user(vec![spec("nocapture", "x", r"failed", &[])]).unwrap_err();
    assert!(
        error.to_string().contains("no named capture group"),
        "{error}"
    );

    let error = Decoders::with_user(vec![spec("badfield", "x", r"(?P<a>a)", &[("origin", "x")])])
        .unwrap_err();
    assert!(
        error.to_string().contains("`origin` cannot be set"),
        "{error}"
    );

    let error = Decoders::with_user(vec![spec("", "x", r"(?P<a>a)", &[])]).unwrap_err();
    assert!(error.to_string().contains("the name is empty"), "{error}");

    let error = Decoders::with_user(vec![
        spec("twice", "x", r"(?P<a>a)", &[]),
        spec("twice", "y", r"(?P<a>a)", &[]),
    ])
    .unwrap_err();
    assert!(error.to_string().contains("same name"), "{error}");
}

#[test]
fn apply_adds_without_replacing_and_tags_once() {
    let decoders = Decoders::builtin();
    let mut event = object(json!({
        "processname": "sshd",
        "summary": "Failed password for root from 192.0.2.50 port 2222 ssh2",
        "category": "sshlog",
        "tags": "imported",
        "details": {"username": "given-by-sender", "note": 1}
    }));
    assert!(decoders.apply(&mut event));
    assert_eq!(
        event["category"], "sshlog",
        "a category the event had is kept"
    );
    assert_eq!(
        event["details"]["username"], "given-by-sender",
        "existing details win"
    );
    assert_eq!(event["details"]["note"], 1);
    assert_eq!(event["details"]["sourceipaddress"], "192.0.2.50");
    assert_eq!(event["details"]["result"], "failure");
    assert_eq!(event["tags"], json!(["imported", "decoder:sshd"]));
    assert!(decoders.apply(&mut event));
    assert_eq!(
        event["tags"],
        json!(["imported", "decoder:sshd"]),
        "not tagged twice"
    );

    let mut plain =
        object(json!({"processname": "sshd", "summary": "Server listening on :: port 22."}));
    assert!(!decoders.apply(&mut plain));
    assert_eq!(plain.len(), 2, "an event nothing decodes is left alone");

    let mut bare = object(
        json!({"summary": "pam_unix(login:auth): authentication failure; logname=LOGIN uid=0 euid=0 tty=tty1 ruser= rhost=  user=ann"}),
    );
    assert!(
        decoders.apply(&mut bare),
        "PAM lines decode whatever the program"
    );
    assert_eq!(bare["category"], "authentication");
    assert_eq!(bare["details"]["username"], "ann");
}

#[test]
fn decoders_are_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Decoders>();
    fn assert_send<T: Send>() {}
    assert_send::<isms_decode::LineDecoder>();
    assert_send::<isms_decode::AuditAssembler>();
}
