use super::*;
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};

fn at(text: &str) -> ParseContext {
    ParseContext::utc(text.parse::<Timestamp>().expect("time"))
}

fn frames(decoder: &mut FrameDecoder) -> Vec<Result<String, FrameError>> {
    let mut out = Vec::new();
    while let Some(frame) = decoder.next_frame() {
        out.push(frame.map(|bytes| String::from_utf8(bytes).expect("utf-8")));
    }
    out
}

#[test]
fn octet_counted_and_terminated_frames_mix_and_split_anywhere() {
    let stream = b"11 <13>1 - - -\n<14>line one\n<15>nul one\x00<16>crlf\r\n";
    // Every split point of the stream gives the same frames.
    for split in 0..stream.len() {
        let mut decoder = FrameDecoder::new(1000);
        decoder.push(&stream[..split]);
        let mut got = frames(&mut decoder);
        decoder.push(&stream[split..]);
        got.extend(frames(&mut decoder));
        assert_eq!(
            got,
            vec![
                Ok("<13>1 - - -".to_owned()),
                Ok("<14>line one".to_owned()),
                Ok("<15>nul one".to_owned()),
                Ok("<16>crlf\r".to_owned()),
            ],
            "split at {split}"
        );
    }
}

#[test]
fn a_last_unterminated_message_is_delivered_at_the_end_an_unfinished_count_is_not() {
    let mut decoder = FrameDecoder::new(1000);
    decoder.push(b"<13>no newline at the end");
    assert_eq!(decoder.next_frame(), None);
    assert_eq!(
        decoder.finish(),
        Some(Ok(b"<13>no newline at the end".to_vec()))
    );
    let mut decoder = FrameDecoder::new(1000);
    decoder.push(b"30 <13>cut short");
    assert_eq!(decoder.finish(), None);
}

#[test]
fn an_oversized_frame_is_reported_and_skipped_without_losing_the_next() {
    let mut decoder = FrameDecoder::new(10);
    decoder.push(b"20 <13>0123456789abcdef<13>ok\n");
    assert_eq!(
        frames(&mut decoder),
        vec![
            Err(FrameError::TooLong {
                length: 20,
                limit: 10
            }),
            Ok("<13>ok".to_owned())
        ]
    );
    // A terminated frame too long, arriving in pieces: reported once, skipped to its terminator.
    let mut decoder = FrameDecoder::new(10);
    decoder.push(b"<13>0123456789");
    decoder.push(b"abcdefgh");
    decoder.push(b"ij\n<14>next\n");
    let got = frames(&mut decoder);
    assert!(matches!(got[0], Err(FrameError::TooLong { limit: 10, .. })));
    assert_eq!(got[1..], [Ok("<14>next".to_owned())]);
}

#[test]
fn a_count_that_is_no_number_ends_the_stream() {
    let mut decoder = FrameDecoder::new(100);
    decoder.push(b"12x <13>hello\n<14>after\n");
    assert!(matches!(
        decoder.next_frame(),
        Some(Err(FrameError::BadCount { .. }))
    ));
    assert_eq!(decoder.next_frame(), None);
    assert_eq!(decoder.finish(), None);
}

#[test]
fn rfc5424_fields_structured_data_escapes_and_nil_values() {
    let mut bytes = br#"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Appli\"cation\\x\]" eventID="1011"][b@1 k="v"] "#.to_vec();
    bytes.extend_from_slice(b"\xEF\xBB\xBFAn application event");
    let message = parse(&bytes, &at("2003-10-11T22:14:20Z"));
    assert_eq!(message.format, SyslogFormat::Rfc5424);
    assert_eq!((message.facility, message.severity), (20, 5));
    assert_eq!(message.facility_name(), "local4");
    assert_eq!(message.severity_name(), "NOTICE");
    assert_eq!(
        message.timestamp,
        Some("2003-10-11T22:14:15.003Z".parse().unwrap())
    );
    assert_eq!(message.hostname.as_deref(), Some("mymachine.example.com"));
    assert_eq!(message.app_name.as_deref(), Some("evntslog"));
    assert_eq!(message.proc_id, None);
    assert_eq!(message.msg_id.as_deref(), Some("ID47"));
    assert_eq!(message.structured_data.len(), 2);
    assert_eq!(
        message.structured_data[0].params,
        vec![
            ("iut".to_owned(), "3".to_owned()),
            ("eventSource".to_owned(), "Appli\"cation\\x]".to_owned()),
            ("eventID".to_owned(), "1011".to_owned()),
        ]
    );
    assert_eq!(message.message, "An application event");
}

#[test]
fn a_missing_or_impossible_priority_makes_a_bare_message_with_the_default() {
    for text in [
        "no priority at all",
        "<192>too big",
        "<x>not a number",
        "<>empty",
    ] {
        let message = parse(text.as_bytes(), &at("2026-01-01T00:00:00Z"));
        assert_eq!(message.format, SyslogFormat::Bare, "{text}");
        assert_eq!(
            (message.facility * 8 + message.severity),
            DEFAULT_PRIORITY,
            "{text}"
        );
        assert_eq!(message.message, text);
    }
}

#[test]
fn bsd_times_take_the_receipt_year_except_across_new_year_and_the_source_time_zone() {
    let december_message = b"<13>Dec 31 23:59:58 host prog: late";
    let message = parse(december_message, &at("2027-01-01T00:00:03Z"));
    assert_eq!(
        message.timestamp,
        Some("2026-12-31T23:59:58Z".parse().unwrap())
    );
    let january_message = b"<13>Jan  1 00:00:01 host prog: early clock";
    let message = parse(january_message, &at("2026-12-31T23:59:59Z"));
    assert_eq!(
        message.timestamp,
        Some("2027-01-01T00:00:01Z".parse().unwrap())
    );
    let message = parse(
        b"<13>Jun  5 10:00:00 host prog: mid-year",
        &at("2026-06-05T08:00:05Z"),
    );
    assert_eq!(
        message.timestamp,
        Some("2026-06-05T10:00:00Z".parse().unwrap())
    );
    let berlin_summer = ParseContext {
        received: "2026-06-05T08:00:05Z".parse().unwrap(),
        time_zone: TimeZone::fixed(Offset::constant(2)),
    };
    let message = parse(b"<13>Jun  5 10:00:00 host prog: local time", &berlin_summer);
    assert_eq!(
        message.timestamp,
        Some("2026-06-05T08:00:00Z".parse().unwrap())
    );
}

#[test]
fn bsd_tags_hosts_and_their_absence() {
    let context = at("2026-11-21T22:30:00Z");
    let message = parse(b"<86>Nov 21 22:21:32 vm sshd[3842]: Accepted", &context);
    assert_eq!(message.hostname.as_deref(), Some("vm"));
    assert_eq!(message.app_name.as_deref(), Some("sshd"));
    assert_eq!(message.proc_id.as_deref(), Some("3842"));
    assert_eq!(message.message, "Accepted");
    // No host name before the tag.
    let message = parse(b"<86>Nov 21 22:21:32 sshd[1]: no host", &context);
    assert_eq!(message.hostname, None);
    assert_eq!(message.app_name.as_deref(), Some("sshd"));
    // No tag: the text after the host is the message.
    let message = parse(b"<86>Nov 21 22:21:32 vm just words here", &context);
    assert_eq!(message.hostname.as_deref(), Some("vm"));
    assert_eq!(message.app_name, None);
    assert_eq!(message.message, "just words here");
    // A time that is not one: the whole text after PRI is the message.
    let message = parse(b"<86>Nov 99 22:21:32 vm x: y", &context);
    assert_eq!(message.format, SyslogFormat::Bare);
    assert_eq!(message.timestamp, None);
}

#[test]
fn the_event_carries_the_mozdef_fields() {
    let message = parse(
        b"<38>1 2026-11-21T22:21:23.622526+00:00 vm sshd 3521 - [timeQuality tzKnown=\"1\"] Failed password",
        &at("2026-11-21T22:21:24Z"),
    );
    let event = message.to_event(Some("127.0.0.1"));
    assert_eq!(event["summary"], "Failed password");
    assert_eq!(event["hostname"], "vm");
    assert_eq!(event["processname"], "sshd");
    assert_eq!(event["processid"], 3521);
    assert_eq!(event["severity"], "INFO");
    assert_eq!(event["utctimestamp"], "2026-11-21T22:21:23.622526+00:00");
    assert_eq!(event["details"]["facility"], "auth");
    assert_eq!(
        event["details"]["structureddata"]["timeQuality"]["tzKnown"],
        "1"
    );
    let bare = parse(b"<36>Failed", &at("2026-11-21T22:21:24Z")).to_event(Some("10.0.0.1"));
    assert_eq!(
        bare["hostname"], "10.0.0.1",
        "the sender stands in for a missing host"
    );
    assert!(bare.get("utctimestamp").is_none());
}

proptest::proptest! {
    #[test]
    fn parsing_never_panics_and_frames_never_exceed_the_limit(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        limit in 1usize..64,
    ) {
        let _ = parse(&bytes, &at("2026-01-01T00:00:00Z"));
        let mut decoder = FrameDecoder::new(limit);
        decoder.push(&bytes);
        while let Some(frame) = decoder.next_frame() {
            if let Ok(frame) = frame {
                proptest::prop_assert!(frame.len() <= limit);
            }
        }
    }
}

#[test]
fn a_log_file_line_without_priority_still_has_its_header_read() {
    let message = parse(
        b"Mar 12 06:25:14 web01 sshd[4141]: Failed password for root from 10.0.0.9 port 2201 ssh2",
        &at("2026-03-12T06:25:15Z"),
    );
    assert_eq!(message.format, SyslogFormat::Rfc3164);
    assert_eq!((message.facility * 8 + message.severity), DEFAULT_PRIORITY);
    assert_eq!(message.hostname.as_deref(), Some("web01"));
    assert_eq!(message.app_name.as_deref(), Some("sshd"));
    assert_eq!(message.proc_id.as_deref(), Some("4141"));
    assert_eq!(
        message.message,
        "Failed password for root from 10.0.0.9 port 2201 ssh2"
    );
    let high_precision = parse(
        b"2026-03-12T06:25:14.123456+01:00 web01 su[77]: pam_unix(su:auth): authentication failure",
        &at("2026-03-12T06:25:15Z"),
    );
    assert_eq!(
        high_precision.timestamp,
        Some("2026-03-12T05:25:14.123456Z".parse().unwrap())
    );
    assert_eq!(high_precision.app_name.as_deref(), Some("su"));
}

#[test]
fn bytes_that_are_not_utf8_are_replaced_and_the_message_flagged() {
    let message = parse(
        b"<13>Jan  1 00:00:01 host prog: bad \xff\xfe byte",
        &at("2026-01-01T00:00:05Z"),
    );
    assert!(message.invalid_utf8);
    assert_eq!(message.message, "bad \u{fffd}\u{fffd} byte");
    let event = message.to_event(None);
    assert_eq!(
        event["details"]["invalidutf8"],
        serde_json::Value::Bool(true)
    );
    let clean = parse(
        b"<13>Jan  1 00:00:01 host prog: fine",
        &at("2026-01-01T00:00:05Z"),
    );
    assert!(!clean.invalid_utf8);
    assert!(clean.to_event(None)["details"].get("invalidutf8").is_none());
}

#[test]
fn a_procid_that_is_not_a_number_is_kept_as_a_detail_and_the_message_is_stored() {
    // RFC 5424 allows any printable text as PROCID; MozDef's processid is a number.
    let message = parse(
        b"<14>1 2026-11-21T22:21:23Z vm worker worker-7 - - job done",
        &at("2026-11-21T22:21:24Z"),
    );
    let event = message.to_event(None);
    assert!(event.get("processid").is_none(), "{event}");
    assert_eq!(event["details"]["procid"], "worker-7");
    let origin = isms_event::Origin {
        peer: None,
        endpoint: "syslog:tcp:5514".into(),
        key_name: None,
    };
    let stored = isms_event::normalize(event, &origin, Timestamp::now()).expect("stored");
    assert_eq!(stored.document["details"]["procid"], "worker-7");
    assert_eq!(stored.document["processname"], "worker");
}
