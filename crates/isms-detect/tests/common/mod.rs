//! What the engine's tests share: log lines made into events the way `isms decode` and the file
//! sources make them.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::sync::Arc;

use isms_decode::{Decoders, LineDecoder};
use isms_event::{Event, Origin};

/// When the test logs were read: RFC 3164 lines carry no year, so `Jun  1` is 2026-06-01.
pub const RECEIVED: &str = "2026-06-02T00:00:00Z";

pub fn test_origin() -> Origin {
    Origin {
        peer: None,
        endpoint: "test".to_owned(),
        key_name: None,
    }
}

/// The events isms's decoders make of log lines (syslog, audit.log, JSON records), in order; blank
/// lines are skipped.
pub fn decoded_events<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<Event> {
    let received = RECEIVED.parse().unwrap();
    let mut decoder = LineDecoder::new(
        Arc::new(Decoders::builtin()),
        isms_syslog::ParseContext {
            received,
            time_zone: jiff::tz::TimeZone::UTC,
        },
    );
    let mut raw = Vec::new();
    for line in lines {
        if !line.trim().is_empty() {
            raw.extend(decoder.push_line(line));
        }
    }
    raw.extend(decoder.finish());
    raw.into_iter()
        .map(|value| isms_event::normalize(value, &test_origin(), received).unwrap())
        .collect()
}

/// A JSON event as an HTTP sender posts it, stored as isms stores it.
pub fn json_event(raw: serde_json::Value) -> Event {
    isms_event::normalize(raw, &test_origin(), RECEIVED.parse().unwrap()).unwrap()
}

/// An engine of `rules` with no lists, nothing allowed to come late and no chains: each event's own
/// detections.
pub fn engine_of(rules: Vec<isms_detect::Rule>) -> isms_detect::Engine {
    isms_detect::Engine::new(
        rules,
        isms_detect::Lists::default(),
        isms_detect::EngineOptions {
            allowed_lateness_micros: 0,
            max_chain_depth: 0,
        },
    )
}
