//! Fuzz target: any bytes as one syslog message, through everything a receiver does with it.
//!
//! `isms_syslog::parse` reads bytes from anyone who can reach a UDP port, so it must never panic, and
//! what it makes must still be a valid event. The first [`HEADER`] bytes choose the parse context (the
//! receipt time decides the year of an RFC 3164 time, the time zone how it is read), so the fuzzer also
//! reaches new year, daylight saving gaps and folds, and the ends of the time range; the rest is the
//! message. Checked: severity ≤ 7, facility ≤ 23, a message without a header has no time or host, the
//! raw event serializes and reads back the same, and normalization (the receiver's next step) either
//! refuses it or makes a document that is valid JSON.
//!
//! Header: byte 0 = bits 0–2 time zone (see [`time_zone`]), bit 3 receipt time anywhere in the time
//! range (else within 2020–2031), bit 4 no sender address; bytes 1–8 = receipt time in seconds
//! (little-endian i64, wrapped into the range).
#![no_main]

use isms_event::{Delivery, Origin, normalize_delivered};
use isms_syslog::{ParseContext, SyslogFormat, parse};
use jiff::Timestamp;
use jiff::tz::{Offset, TimeZone};
use libfuzzer_sys::fuzz_target;

/// Bytes before the message that choose the context.
const HEADER: usize = 9;

fuzz_target!(|data: &[u8]| {
    let (context, sender) = context_of(data);
    let bytes = data.get(HEADER..).unwrap_or_default();
    let message = parse(bytes, &context);

    assert!(message.severity <= 7, "severity {}", message.severity);
    assert!(message.facility <= 23, "facility {}", message.facility);
    if message.format == SyslogFormat::Bare {
        assert!(message.timestamp.is_none() && message.hostname.is_none());
    }
    assert_eq!(message, parse(bytes, &context), "parsing is deterministic");

    let raw = message.to_event(sender);
    let text = serde_json::to_string(&raw).expect("the raw event serializes");
    let back: serde_json::Value = serde_json::from_str(&text).expect("and reads back");
    assert_eq!(back, raw);

    let origin = Origin {
        peer: sender.map(|host| format!("{host}:514")),
        endpoint: "syslog:udp:514".into(),
        key_name: None,
    };
    if let Ok(event) = normalize_delivered(raw, &Delivery::new(&origin, context.received)) {
        let line = event.to_json_line();
        serde_json::from_str::<serde_json::Value>(&line).expect("the stored document is JSON");
    }
});

fn context_of(data: &[u8]) -> (ParseContext, Option<&'static str>) {
    let flags = data.first().copied().unwrap_or(0);
    let mut seconds = [0u8; 8];
    let given = data.get(1..HEADER).unwrap_or_default();
    seconds[..given.len()].copy_from_slice(given);
    let seconds = i64::from_le_bytes(seconds);
    let (low, high) = if flags & 0x08 != 0 {
        (Timestamp::MIN.as_second(), Timestamp::MAX.as_second())
    } else {
        (1_577_836_800, 1_956_528_000) // 2020-01-01 to 2032-01-01
    };
    let span = (high - low + 1) as i128;
    let second = low + (i128::from(seconds).rem_euclid(span)) as i64;
    let received = Timestamp::from_second(second).expect("within the range");
    let sender = (flags & 0x10 == 0).then_some("192.0.2.7");
    (
        ParseContext {
            received,
            time_zone: time_zone(flags & 0x07),
        },
        sender,
    )
}

/// UTC, fixed offsets (the receiver's kind, up to the extremes) and zones with daylight saving time
/// (gaps and folds for the local times of RFC 3164).
fn time_zone(choice: u8) -> TimeZone {
    let posix = |rule: &str| TimeZone::posix(rule).expect("a valid POSIX time zone");
    match choice {
        0 => TimeZone::UTC,
        1 => TimeZone::fixed(Offset::from_seconds(2 * 3600).expect("offset")),
        2 => TimeZone::fixed(Offset::from_seconds(-(5 * 3600 + 1800)).expect("offset")),
        3 => TimeZone::fixed(Offset::MAX),
        4 => TimeZone::fixed(Offset::MIN),
        5 => posix("EST5EDT,M3.2.0,M11.1.0"),
        6 => posix("CET-1CEST,M3.5.0,M10.5.0/3"),
        _ => posix("AEST-10AEDT,M10.1.0,M4.1.0/3"),
    }
}
