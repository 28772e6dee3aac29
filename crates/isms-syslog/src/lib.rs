//! Syslog for isms: cutting TCP streams into messages and parsing messages into MozDef events.
//!
//! Real deployments send syslog before anything else, from `logger`, rsyslog, syslog-ng, Python's
//! `SysLogHandler` and appliances, each bending RFC 3164 and RFC 5424 its own way. This crate holds the
//! byte-level part, without sockets, so that every quirk is tested against the exact bytes those
//! clients send (`tests/captures.rs` replays `../shared/data/clients-captured/`): [`FrameDecoder`] cuts a
//! TCP stream (octet counting or LF/NUL terminated, recognized per frame), [`parse`] reads one message,
//! and [`SyslogMessage::to_event`] makes the raw event that `isms_event::normalize` turns into a MozDef
//! event. The UDP, TCP and TLS receivers build on these.
mod framing;
mod message;

pub use framing::{FrameDecoder, FrameError};
pub use message::{
    DEFAULT_PRIORITY, FACILITY_NAMES, ParseContext, SEVERITY_NAMES, StructuredElement,
    SyslogFormat, SyslogMessage, infer_year, parse,
};

#[cfg(test)]
mod tests;
