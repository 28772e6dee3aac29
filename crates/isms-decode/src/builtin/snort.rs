//! Snort alerts: the fast format (`[**] [1:2000:1] Message [**] [Classification: X] [Priority: 2]
//! {TCP} 1.2.3.4:5 -> 6.7.8.9:80`, with its `MM/DD-hh:mm:ss.ffffff` time and an optional `[Drop]`),
//! the syslog output (`[1:2000:1] Message [Classification: X] [Priority: 2]: {TCP} ...`) and a full
//! alert joined onto one line. Category `ids`; the severity follows the priority (1 high → ERROR,
//! 2 → WARNING, 3 → NOTICE, lower → INFO), as isms maps Sigma's levels.
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "snort";

/// Whether `text` can be a Snort alert at all (the cheap test before [`decode`]).
pub(crate) fn looks_like_alert(text: &str) -> bool {
    text.contains(" -> ") && text.contains("] ")
}

/// Decodes one Snort alert line.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = message.trim();
    let (id_start, id, after_id) = signature_id(text)?;
    let (gid, sid, rev) = id;
    let head = &text[..id_start];
    let mut decoded = Decoded::builtin(NAME, "ids");
    decoded.action(if head.contains("[Drop]") {
        "drop"
    } else {
        "alert"
    });
    decoded.set("gid", gid).set("sid", sid).set("rev", rev);
    let signature_end = [" [**]", " [Classification: ", " [Priority: ", ": {", " {"]
        .iter()
        .filter_map(|marker| after_id.find(marker))
        .min()
        .unwrap_or(after_id.len());
    let signature = after_id[..signature_end].trim();
    decoded.text_unless_empty("signature", signature);
    let rest = &after_id[signature_end..];
    if let Some((classification, _)) = scan::between(rest, "[Classification: ", "]") {
        decoded.text("classification", classification);
    }
    let mut priority = None;
    if let Some((value, _)) = scan::between(rest, "[Priority: ", "]") {
        priority = scan::parse_count(value.trim());
        if let Some(priority) = priority {
            decoded.set("priority", priority);
        }
    }
    let severity = match priority {
        Some(0 | 1) => "ERROR",
        Some(2) => "WARNING",
        Some(3) => "NOTICE",
        _ => "INFO",
    };
    decoded.fields.push(("severity".into(), severity.into()));
    // `{PROTO} SRC[:PORT] -> DST[:PORT]`, or a full alert's `SRC:PORT -> DST:PORT` without braces.
    let (protocol, flow) = match rest.rfind('{') {
        Some(open) => {
            let (protocol, flow) = rest[open + 1..].split_once('}')?;
            (Some(protocol), flow.trim())
        }
        None => (None, rest),
    };
    let arrow = flow.find(" -> ")?;
    let source = flow[..arrow].rsplit(' ').next()?;
    let destination = flow[arrow + 4..].split(' ').next()?;
    if let Some(protocol) = protocol {
        decoded.text("protocol", protocol);
    } else if let Some(protocol) = flow[arrow..]
        .split_whitespace()
        .find(|word| matches!(*word, "TCP" | "UDP" | "ICMP"))
    {
        decoded.text("protocol", protocol);
    }
    let (source_host, source_port) = scan::split_host_port(source);
    let (destination_host, destination_port) = scan::split_host_port(destination);
    if !decoded.source(source_host, source_port) {
        return None;
    }
    decoded.destination(destination_host, destination_port);
    Some(decoded)
}

/// The first `[GID:SID:REV]`: where it starts, the three numbers and the text after it.
fn signature_id(text: &str) -> Option<(usize, (u64, u64, u64), &str)> {
    let mut search_from = 0;
    while let Some(found) = text.get(search_from..)?.find('[') {
        let start = search_from + found;
        let inside = &text[start + 1..];
        if let Some(close) = inside.find(']') {
            let mut numbers = inside[..close].split(':').map(scan::parse_count);
            if let (Some(Some(gid)), Some(Some(sid)), Some(Some(rev)), None) = (
                numbers.next(),
                numbers.next(),
                numbers.next(),
                numbers.next(),
            ) {
                let after = &inside[close + 1..];
                return Some((
                    start,
                    (gid, sid, rev),
                    after.strip_prefix(' ').unwrap_or(after),
                ));
            }
        }
        search_from = start + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn fast_alerts_and_syslog_alerts() {
        let decoded = decode(
            "11/02-08:15:01.250000  [**] [1:1000042:3] LOCAL test probe [**] [Classification: Attempted Information Leak] [Priority: 2] {TCP} 198.51.100.90:44000 -> 10.0.0.5:443",
        )
        .unwrap();
        assert_eq!(decoded.category, "ids");
        assert_eq!(decoded.details["sid"], 1000042);
        assert_eq!(decoded.details["signature"], "LOCAL test probe");
        assert_eq!(
            decoded.details["classification"],
            "Attempted Information Leak"
        );
        assert_eq!(decoded.details["protocol"], "TCP");
        assert_eq!(decoded.details["sourceipaddress"], "198.51.100.90");
        assert_eq!(decoded.details["destinationport"], 443);
        assert_eq!(
            decoded.fields,
            vec![("severity".to_owned(), "WARNING".to_owned())]
        );
        let decoded = decode(
            "[1:2000:1] LOCAL ping [Classification: Misc activity] [Priority: 3]: {ICMP} 198.51.100.91 -> 10.0.0.6",
        )
        .unwrap();
        assert_eq!(decoded.details["protocol"], "ICMP");
        assert_eq!(decoded.details["destinationipaddress"], "10.0.0.6");
        // A full alert's lines joined by a shipper: no braces, the protocol after the addresses.
        let decoded = decode(
            "[**] [1:2100498:7] GPL ATTACK_RESPONSE id check returned root [**] [Classification: Potentially Bad Traffic] [Priority: 2] 11/02-08:15:01.250000 198.51.100.92:80 -> 10.0.0.7:51000 TCP TTL:64 TOS:0x0 ID:1 IpLen:20 DgmLen:40",
        )
        .unwrap();
        assert_eq!(decoded.details["protocol"], "TCP");
        assert_eq!(decoded.details["sourceport"], 80);
        assert_eq!(decoded.details["destinationipaddress"], "10.0.0.7");
        assert!(decode("[**] not an alert [**] 1 -> 2").is_none());
        let failed_sensor_text =
            decode("[1:2:3] msg [Priority: 1]: {TCP} not-an-address! -> 10.0.0.1:80");
        assert!(failed_sensor_text.is_none());
    }
}
