//! FTP servers: vsftpd's own log lines (`[pid N] [USER] FAIL LOGIN: Client "ADDR"`) and proftpd's
//! (`SERVER (NAME[ADDR]) - USER u (Login failed): ...`). Logins are category `authentication`.
//!
//! The client address is printed by the server, not typed by the client, so it is read at the place
//! the server puts it: vsftpd's last `Client "..."`, proftpd's first `(NAME[ADDR])` (a user name can
//! contain a second one, which comes later).
use crate::builtin::pam;
use crate::decoded::Decoded;
use crate::scan;

/// Decodes one vsftpd message.
pub(crate) fn decode_vsftpd(message: &str) -> Option<Decoded> {
    let text = message.trim();
    vsftpd_line(text).or_else(|| pam::decode(text))
}

fn vsftpd_line(text: &str) -> Option<Decoded> {
    let mut rest = text;
    if let Some(after) = rest.strip_prefix("[pid ") {
        let (_, after) = after.split_once("] ")?;
        rest = after;
    }
    if let Some(client) = rest.strip_prefix("CONNECT: Client ") {
        let (address, _) = scan::quoted(client)?;
        let mut decoded = Decoded::builtin("vsftpd", "network");
        decoded.action("connect");
        return decoded.source(address, None).then_some(decoded);
    }
    let user_part = rest.strip_prefix('[')?;
    let at = user_part.rfind(" LOGIN: Client ")?;
    let (head, client) = (&user_part[..at], &user_part[at + 15..]);
    let (user, outcome_word) = head.rsplit_once("] ")?;
    let (address, after) = scan::quoted(client)?;
    let mut decoded = Decoded::builtin("vsftpd", "authentication");
    decoded.action("login").text("username", user);
    match outcome_word {
        "FAIL" => decoded.failure(),
        "OK" => decoded.success(),
        _ => return None,
    };
    if let Some((reason, _)) = after.strip_prefix(", ").and_then(scan::quoted) {
        decoded.text_unless_empty("reason", reason);
    }
    decoded.source(address, None).then_some(decoded)
}

/// Decodes one proftpd message.
pub(crate) fn decode_proftpd(message: &str) -> Option<Decoded> {
    let text = message.trim();
    proftpd_line(text)
        .or_else(|| proftpd_refused(text))
        .or_else(|| pam::decode(text))
}

/// `SERVER (NAME[ADDR]) - MESSAGE` or `SERVER (NAME[ADDR]): MESSAGE`.
fn proftpd_line(text: &str) -> Option<Decoded> {
    let open = text.find(" (")?;
    let inside = &text[open + 2..];
    let close = inside.find("]) ").or_else(|| inside.find("]):"))?;
    let bracket = inside[..close].rfind('[')?;
    let address = &inside[bracket + 1..close];
    let after = &inside[close + 2..];
    let body = after
        .strip_prefix(" - ")
        .or_else(|| after.strip_prefix(": "))?
        .trim_end();
    let mut decoded = Decoded::builtin("proftpd", "authentication");
    if let Some(rest) = body
        .strip_prefix("USER ")
        .or_else(|| body.strip_prefix("ANON "))
    {
        if let Some(at) = rest.find(": no such user found") {
            decoded.action("invalid_user").failure();
            decoded.text("username", &rest[..at]);
        } else if let Some(at) = rest.find(" (Login failed)") {
            decoded.action("login").failure();
            decoded.text("username", &rest[..at]);
            if let Some(reason) = rest[at + 15..].strip_prefix(": ") {
                decoded.text_unless_empty("reason", reason);
            }
        } else if let Some(user) = rest
            .strip_suffix(": Login successful.")
            .or_else(|| rest.strip_suffix(": Login successful"))
        {
            decoded.action("login").success();
            decoded.text("username", user);
        } else {
            return None;
        }
    } else if let Some(rest) = body.strip_prefix("SECURITY VIOLATION: ") {
        let user = rest
            .strip_suffix(" login attempted.")
            .or_else(|| rest.strip_suffix(" login attempted"))?;
        decoded
            .action("login_refused")
            .failure()
            .text("username", user);
    } else if let Some(rest) = body.strip_prefix("Maximum login attempts (") {
        let (count, _) = rest.split_once(')')?;
        decoded.action("max_attempts").failure();
        if let Some(attempts) = scan::parse_count(count) {
            decoded.set("attempts", attempts);
        }
    } else if body.starts_with("Connection from ") && body.ends_with(" denied.") {
        decoded.action("connection_denied").failure();
    } else if body == "FTP session opened." {
        decoded.category = "session".into();
        decoded.action("session_opened");
    } else if body == "FTP session closed." {
        decoded.category = "session".into();
        decoded.action("session_closed");
    } else {
        return None;
    }
    decoded.source(address, None).then_some(decoded)
}

/// `refused connect from HOST (ADDR)` (TCP wrappers).
fn proftpd_refused(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("refused connect from ")?;
    let address = match rest
        .strip_suffix(')')
        .and_then(|inner| inner.rsplit_once(" ("))
    {
        Some((_, address)) => address,
        None => rest,
    };
    let mut decoded = Decoded::builtin("proftpd", "authentication");
    decoded.action("refused_connect").failure();
    decoded.source(address, None).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsftpd_logins_and_a_user_name_holding_a_fake_client() {
        let decoded =
            decode_vsftpd("[pid 4411] [wendy] FAIL LOGIN: Client \"::ffff:203.0.113.40\"").unwrap();
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["username"], "wendy");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.40");
        let decoded =
            decode_vsftpd("[pid 4412] [xavier] OK LOGIN: Client \"203.0.113.41\"").unwrap();
        assert_eq!(decoded.details["result"], "success");
        let decoded = decode_vsftpd(
            "[pid 4413] [a] FAIL LOGIN: Client \"6.6.6.6\"] FAIL LOGIN: Client \"203.0.113.42\"",
        )
        .unwrap();
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.42");
        assert!(
            decode_vsftpd("[pid 4414] [yan] OK UPLOAD: Client \"203.0.113.43\", \"/f\"").is_none()
        );
    }

    #[test]
    fn proftpd_failures_successes_and_the_first_address_wins() {
        let decoded = decode_proftpd(
            "ftp.example (client.example[203.0.113.50]): USER zoe (Login failed): Incorrect password",
        )
        .unwrap();
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["username"], "zoe");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.50");
        let decoded = decode_proftpd(
            "ftp.example (203.0.113.51[203.0.113.51]) - USER amy: Login successful.",
        )
        .unwrap();
        assert_eq!(decoded.details["result"], "success");
        let decoded = decode_proftpd(
            "ftp.example (::ffff:203.0.113.52[::ffff:203.0.113.52]): USER x (y[6.6.6.6]): no such user found from z [6.6.6.6] to 10.0.0.1:21",
        )
        .unwrap();
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.52");
        assert!(decode_proftpd("ftp.example (a[203.0.113.53]) - Preparing to chroot").is_none());
    }
}
