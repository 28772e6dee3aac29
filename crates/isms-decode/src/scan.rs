//! Small text scanners shared by the decoders.
//!
//! The built-in decoders are hand-written parsers rather than regexes: the formats are fixed by the
//! daemons' source code, a literal prefix tells them apart, and the fields that an attacker controls
//! (user names, client strings) are read from the side the attacker cannot reach (usually the end of
//! the line). These helpers hold the pieces every parser needs, none of which allocate.
use std::net::{IpAddr, Ipv4Addr};

/// Longest host name or address accepted as a remote end.
const MAX_HOST_CHARS: usize = 255;

/// `::ffff:1.2.3.4` (an IPv4 client on an IPv6 socket) as `1.2.3.4`; anything else unchanged.
pub(crate) fn strip_v4_mapped(host: &str) -> &str {
    let lower = host.get(..7);
    if lower.is_some_and(|prefix| prefix.eq_ignore_ascii_case("::ffff:")) {
        let rest = &host[7..];
        if rest.parse::<Ipv4Addr>().is_ok() {
            return rest;
        }
    }
    host
}

/// Whether `text` can be a host: an IP address or a DNS-ish name (letters, digits, `.`, `-`, `_`,
/// `:` and `%` for IPv6 scopes), with at least one letter or digit.
pub(crate) fn is_host(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_HOST_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'%'))
        && text.bytes().any(|b| b.is_ascii_alphanumeric())
}

/// Whether `text` is an IPv4 or IPv6 address.
pub(crate) fn is_ip_address(text: &str) -> bool {
    text.parse::<IpAddr>().is_ok()
}

/// A decimal port number.
pub(crate) fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A decimal count (attempts, failures).
pub(crate) fn parse_count(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The leading run of ASCII digits and the text after it.
pub(crate) fn leading_digits(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

/// `... port N` at the end of `text`: the text before it and the port. Without it, the whole text.
pub(crate) fn strip_port_suffix(text: &str) -> (&str, Option<u16>) {
    if let Some(at) = text.rfind(" port ")
        && let Some(port) = parse_port(&text[at + 6..])
    {
        return (&text[..at], Some(port));
    }
    (text, None)
}

/// `host:port` as written by daemons that append the port with a colon: `1.2.3.4:22`,
/// `::ffff:1.2.3.4:60495`, `[2001:db8::1]:22`. Returns the host and the port; without a port the
/// whole text is the host.
pub(crate) fn split_host_port(text: &str) -> (&str, Option<u16>) {
    if let Some(inside) = text.strip_prefix('[')
        && let Some((host, rest)) = inside.split_once(']')
    {
        return (host, rest.strip_prefix(':').and_then(parse_port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => match parse_port(port) {
            // A bare IPv6 address also ends in `:digits`; only split when the rest is a host on its
            // own (an IPv4 address, a mapped one, or a name without colons).
            Some(port)
                if !host.contains(':')
                    || strip_v4_mapped(host) != host
                    || host.parse::<std::net::Ipv6Addr>().is_ok()
                        && text.parse::<std::net::Ipv6Addr>().is_err() =>
            {
                (host, Some(port))
            }
            _ => (text, None),
        },
        _ => (text, None),
    }
}

/// The text after `prefix`, compared ASCII case-insensitively.
pub(crate) fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Whether `needle` occurs in `text`, compared ASCII case-insensitively.
pub(crate) fn contains_ignore_case(text: &str, needle: &str) -> bool {
    let needle = needle.as_bytes();
    if needle.is_empty() {
        return true;
    }
    text.as_bytes()
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// The value between `open` and the next `close` after it, and the text after `close`.
pub(crate) fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<(&'a str, &'a str)> {
    let start = text.find(open)? + open.len();
    let rest = &text[start..];
    let end = rest.find(close)?;
    Some((&rest[..end], &rest[end + close.len()..]))
}

/// A `'quoted'` (or `"quoted"`) value at the start of `text`: the value and the text after the
/// closing quote.
pub(crate) fn quoted(text: &str) -> Option<(&str, &str)> {
    let quote = text.chars().next().filter(|c| matches!(c, '\'' | '"'))?;
    let inside = &text[1..];
    let end = inside.find(quote)?;
    Some((&inside[..end], &inside[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_splits_every_form_daemons_write() {
        assert_eq!(split_host_port("1.2.3.4:22"), ("1.2.3.4", Some(22)));
        assert_eq!(
            split_host_port("::ffff:198.51.100.215:60495"),
            ("::ffff:198.51.100.215", Some(60495))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:22"),
            ("2001:db8::1", Some(22))
        );
        assert_eq!(split_host_port("2001:db8::1"), ("2001:db8::1", None));
        assert_eq!(split_host_port("example.com:25"), ("example.com", Some(25)));
        assert_eq!(split_host_port("example.com"), ("example.com", None));
    }

    #[test]
    fn mapped_addresses_become_ipv4_and_hosts_are_checked() {
        assert_eq!(strip_v4_mapped("::ffff:1.2.3.4"), "1.2.3.4");
        assert_eq!(strip_v4_mapped("::FFFF:1.2.3.4"), "1.2.3.4");
        assert_eq!(strip_v4_mapped("::ffff:zz"), "::ffff:zz");
        assert!(is_host("2001:db8::1"));
        assert!(is_host("example.com"));
        assert!(!is_host(""));
        assert!(!is_host("a b"));
        assert!(!is_host("..."));
        assert!(!is_host("x'"));
    }

    #[test]
    fn port_suffix_and_case_insensitive_helpers() {
        assert_eq!(strip_port_suffix("1.2.3.4 port 22"), ("1.2.3.4", Some(22)));
        assert_eq!(strip_port_suffix("1.2.3.4"), ("1.2.3.4", None));
        assert_eq!(strip_port_suffix("x port 99999"), ("x port 99999", None));
        assert!(contains_ignore_case("SASL Login authentication", "login"));
        assert_eq!(strip_prefix_ignore_case("FAILED su", "failed "), Some("su"));
        assert_eq!(strip_prefix_ignore_case("é", "ab"), None);
    }
}
