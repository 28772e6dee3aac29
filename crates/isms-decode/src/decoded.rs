//! What a decoder found in one message, before it is merged into an event.
//!
//! Kept separate from the event so the hot path ([`crate::Decoders::decode_message`]) builds only
//! the few fields a decoder read, and the caller decides how they land in an event
//! ([`crate::Decoders::apply`] merges them without deleting anything the event already had).
use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::scan;

/// The result of decoding one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// Which decoder matched: a built-in name (`sshd`, `pam`, `sudo`, ...) or a user decoder's name.
    /// [`crate::Decoders::apply`] records it as the tag `decoder:<name>`.
    pub decoder: Cow<'static, str>,
    /// The event category: `authentication`, `authorization`, `session`, `account`, `execution`,
    /// `mail`, `network`, `ids`, `audit`, or a user decoder's own.
    pub category: Cow<'static, str>,
    /// Spelled-out details (`username`, `sourceipaddress`, `result`, `action`, ...).
    pub details: Map<String, Value>,
    /// A replacement summary, when the decoder has a better one than the message text (rare).
    pub summary: Option<String>,
    /// Tags to add to the event (besides `decoder:<name>`).
    pub tags: Vec<String>,
    /// Other top-level fields to set, from a user decoder's static fields (e.g. `severity`).
    pub fields: Vec<(String, String)>,
}

/// An authentication or authorization outcome, as `details.result` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

impl Decoded {
    /// A built-in decoder's result with no details yet.
    pub(crate) fn builtin(decoder: &'static str, category: &'static str) -> Decoded {
        Decoded {
            decoder: Cow::Borrowed(decoder),
            category: Cow::Borrowed(category),
            details: Map::new(),
            summary: None,
            tags: Vec::new(),
            fields: Vec::new(),
        }
    }

    /// Sets a detail (replacing an earlier value of the same name).
    pub(crate) fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Decoded {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Sets a text detail.
    pub(crate) fn text(&mut self, key: &str, value: &str) -> &mut Decoded {
        self.set(key, Value::String(value.to_owned()))
    }

    /// Sets a text detail unless the value is empty.
    pub(crate) fn text_unless_empty(&mut self, key: &str, value: &str) -> &mut Decoded {
        if !value.is_empty() {
            self.text(key, value);
        }
        self
    }

    /// `details.action`.
    pub(crate) fn action(&mut self, action: &'static str) -> &mut Decoded {
        self.set("action", Value::String(action.to_owned()))
    }

    /// `details.result`.
    pub(crate) fn outcome(&mut self, outcome: Outcome) -> &mut Decoded {
        self.set("result", Value::String(outcome.name().to_owned()))
    }

    /// `details.result = failure`.
    pub(crate) fn failure(&mut self) -> &mut Decoded {
        self.outcome(Outcome::Failure)
    }

    /// `details.result = success`.
    pub(crate) fn success(&mut self) -> &mut Decoded {
        self.outcome(Outcome::Success)
    }

    /// The result this decode carries, if any.
    pub(crate) fn result(&self) -> Option<&str> {
        self.details.get("result").and_then(Value::as_str)
    }

    /// The remote end: `details.sourceipaddress` when `host` is an IP address (an IPv4-mapped IPv6
    /// address is written as IPv4), `details.sourcehostname` when it is a host name, and
    /// `details.sourceport`. Returns false (and sets nothing) when `host` is not a plausible host.
    pub(crate) fn source(&mut self, host: &str, port: Option<u16>) -> bool {
        self.endpoint(
            host,
            port,
            "sourceipaddress",
            "sourcehostname",
            "sourceport",
        )
    }

    /// The local end, as [`Decoded::source`] does it for the remote one.
    pub(crate) fn destination(&mut self, host: &str, port: Option<u16>) -> bool {
        self.endpoint(
            host,
            port,
            "destinationipaddress",
            "destinationhostname",
            "destinationport",
        )
    }

    fn endpoint(
        &mut self,
        host: &str,
        port: Option<u16>,
        address_key: &str,
        name_key: &str,
        port_key: &str,
    ) -> bool {
        let host = scan::strip_v4_mapped(host);
        if !scan::is_host(host) {
            return false;
        }
        if scan::is_ip_address(host) {
            self.text(address_key, host);
        } else {
            self.text(name_key, host);
        }
        if let Some(port) = port {
            self.set(port_key, port);
        }
        true
    }
}
