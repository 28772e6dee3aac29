//! Postfix (`postfix/smtpd`, `postfix/postscreen`, `postfix/submission/smtpd`, ...).
//!
//! SASL authentication failures (`warning: NAME[ADDR]: SASL LOGIN authentication failed: ...`) and
//! sessions that ended with failed AUTH commands (`disconnect from ... auth=0/1`) are category
//! `authentication`. Refused mail transactions (`reject: RCPT from ...`), protocol abuse (`improper
//! command pipelining`, `too many errors`, postscreen's `PREGREET`, `HANGUP`, `COMMAND ... LIMIT`)
//! and probes (`lost connection after CONNECT`) are category `mail` with `result` failure: each is
//! a client refused or misbehaving, what a rule about abusive senders counts. The client address is
//! postfix's `NAME[ADDR]`, never text the client sent.
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "postfix";

/// Decodes one postfix message.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = message.trim();
    if let Some(rest) = text.strip_prefix("warning: ") {
        return sasl_failure(rest).or_else(|| rate_limit(rest));
    }
    reject(text)
        .or_else(|| after_command(text))
        .or_else(|| disconnect(text))
        .or_else(|| postscreen(text))
        .or_else(|| connect(text))
}

/// `NAME[ADDR]` or `NAME[ADDR]:PORT` at the start of `text`: the address, the port and the rest.
fn client(text: &str) -> Option<(&str, Option<u16>, &str)> {
    let open = text.find('[')?;
    let close = open + text[open..].find(']')?;
    let address = &text[open + 1..close];
    let rest = &text[close + 1..];
    if let Some(after) = rest.strip_prefix(':') {
        let (digits, after_digits) = scan::leading_digits(after);
        if !digits.is_empty() {
            return Some((address, scan::parse_port(digits), after_digits));
        }
    }
    Some((address, None, rest))
}

fn mail() -> Decoded {
    Decoded::builtin(NAME, "mail")
}

/// `NAME[ADDR][:PORT]: SASL METHOD authentication failed: REASON[, sasl_username=U]`.
fn sasl_failure(text: &str) -> Option<Decoded> {
    let (address, port, rest) = client(text)?;
    let rest = rest.strip_prefix(": SASL ")?;
    let (method, reason) = rest.split_once(" authentication failed:")?;
    let reason = reason.trim();
    let mut decoded = Decoded::builtin(NAME, "authentication");
    decoded
        .action("login")
        .text("authmethod", &method.to_ascii_lowercase());
    let (reason, user) = match reason.rsplit_once(", sasl_username=") {
        Some((reason, user)) => (reason, Some(user)),
        None => (reason, None),
    };
    decoded.text_unless_empty("reason", reason);
    if let Some(user) = user {
        decoded.text("username", user);
    }
    // A lost connection to the authentication service is the server's problem, not the client's.
    if !reason.starts_with("Connection lost to authentication server") {
        decoded.failure();
    }
    decoded.source(address, port).then_some(decoded)
}

/// `Connection rate limit exceeded: N from NAME[ADDR] for service S` and the other anvil limits.
fn rate_limit(text: &str) -> Option<Decoded> {
    let at = text.find(" rate limit exceeded: ")?;
    let rest = &text[at..];
    let from = rest.find(" from ")?;
    let (address, port, _) = client(&rest[from + 6..])?;
    let mut decoded = mail();
    decoded
        .action("rate_limit")
        .failure()
        .text("reason", &text[..at + 20]);
    decoded.source(address, port).then_some(decoded)
}

/// `QUEUEID: reject: VERB from NAME[ADDR]: CODE ...; from=<s> to=<r> proto=P helo=<h>` (also
/// `milter-reject:` and postscreen's `NOQUEUE: reject: RCPT from [ADDR]:PORT: ...`).
fn reject(text: &str) -> Option<Decoded> {
    let at = text.find("reject: ")?;
    let head = &text[..at];
    if !(head.ends_with(": ") || head.ends_with(": milter-")) {
        return None;
    }
    let rest = &text[at + 8..];
    let (verb, rest) = rest.split_once(" from ")?;
    let (address, port, rest) = client(rest)?;
    let reason = rest.strip_prefix(": ").unwrap_or(rest);
    let mut decoded = mail();
    decoded.action("reject").failure().text("smtpcommand", verb);
    let (reason, envelope) = match reason.split_once("; from=<") {
        Some((reason, envelope)) => (reason, Some(envelope)),
        None => (reason, None),
    };
    let (code, rest) = reason.split_once(' ').unwrap_or((reason, ""));
    if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) {
        decoded.text("smtpcode", code);
        decoded.text_unless_empty("reason", rest);
    } else {
        decoded.text_unless_empty("reason", reason);
    }
    if let Some(envelope) = envelope {
        if let Some((sender, _)) = envelope.split_once('>') {
            decoded.text_unless_empty("sender", sender);
        }
        if let Some((recipient, _)) = scan::between(envelope, "to=<", ">") {
            decoded.text_unless_empty("recipient", recipient);
        }
        if let Some((helo, _)) = scan::between(envelope, "helo=<", ">") {
            decoded.text_unless_empty("helo", helo);
        }
    }
    decoded.source(address, port).then_some(decoded)
}

/// `improper command pipelining after CMD from ...`, `too many errors after CMD from ...`, `lost
/// connection after CMD from ...` (a failure only for a client that left before any mail command:
/// a probe; leaving during AUTH is counted by its `disconnect` line, during DATA it is ordinary).
fn after_command(text: &str) -> Option<Decoded> {
    let text = text.strip_prefix("NOQUEUE: ").unwrap_or(text);
    let (action, rest, always_failure) =
        if let Some(rest) = text.strip_prefix("improper command pipelining after ") {
            ("pipelining", rest, true)
        } else if let Some(rest) = text.strip_prefix("too many errors after ") {
            ("too_many_errors", rest, true)
        } else if let Some(rest) = text.strip_prefix("lost connection after ") {
            ("lost_connection", rest, false)
        } else if let Some(rest) = text.strip_prefix("SSL_accept error from ") {
            let (address, port, _) = client(rest)?;
            let mut decoded = mail();
            decoded
                .action("lost_connection")
                .text("smtpcommand", "STARTTLS");
            return decoded.source(address, port).then_some(decoded);
        } else {
            return None;
        };
    let (command, rest) = rest.split_once(" from ")?;
    let (address, port, _) = client(rest)?;
    let mut decoded = mail();
    decoded.action(action).text("smtpcommand", command);
    if always_failure
        || matches!(
            command,
            "CONNECT" | "STARTTLS" | "EHLO" | "HELO" | "UNKNOWN"
        )
    {
        decoded.failure();
    }
    decoded.source(address, port).then_some(decoded)
}

/// `disconnect from NAME[ADDR] ehlo=1 auth=0/1 ... commands=2/3`: failed AUTH commands make it an
/// authentication failure.
fn disconnect(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("disconnect from ")?;
    let (address, port, counters) = client(rest)?;
    let mut decoded = mail();
    decoded.action("disconnect");
    for counter in counters.split_whitespace() {
        let Some(auth) = counter.strip_prefix("auth=") else {
            continue;
        };
        let (succeeded, attempted) = auth.split_once('/').unwrap_or((auth, auth));
        if let (Some(succeeded), Some(attempted)) =
            (scan::parse_count(succeeded), scan::parse_count(attempted))
            && succeeded < attempted
        {
            decoded.category = "authentication".into();
            decoded
                .action("login")
                .failure()
                .set("attempts", attempted - succeeded);
        }
    }
    decoded.source(address, port).then_some(decoded)
}

/// postscreen: `PREGREET N after S from [ADDR]:PORT: ...`, `HANGUP after S from [ADDR]:PORT ...`,
/// `COMMAND TIME LIMIT from [ADDR]:PORT ...`, `COMMAND COUNT LIMIT from ...`.
fn postscreen(text: &str) -> Option<Decoded> {
    let action = if text.starts_with("PREGREET ") {
        "pregreet"
    } else if text.starts_with("HANGUP ") {
        "hangup"
    } else if text.starts_with("COMMAND TIME LIMIT ")
        || text.starts_with("COMMAND COUNT LIMIT ")
        || text.starts_with("COMMAND LENGTH LIMIT ")
    {
        "command_limit"
    } else {
        return None;
    };
    let at = text.find(" from ")?;
    let (address, port, _) = client(&text[at + 6..])?;
    let mut decoded = mail();
    decoded.action(action).failure();
    decoded.source(address, port).then_some(decoded)
}

/// `connect from NAME[ADDR]` (and postscreen's `CONNECT from [ADDR]:PORT to [ADDR]:PORT`).
fn connect(text: &str) -> Option<Decoded> {
    let rest = text
        .strip_prefix("connect from ")
        .or_else(|| text.strip_prefix("CONNECT from "))?;
    let (address, port, _) = client(rest)?;
    let mut decoded = Decoded::builtin(NAME, "network");
    decoded.action("connect");
    decoded.source(address, port).then_some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn sasl_failures_are_authentication_failures() {
        let decoded = decode(
            "warning: unknown[203.0.113.70]:51000: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username=info@example.org",
        )
        .unwrap();
        assert_eq!(decoded.category, "authentication");
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["authmethod"], "login");
        assert_eq!(decoded.details["username"], "info@example.org");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.70");
        assert_eq!(decoded.details["sourceport"], 51000);
        let lost = decode(
            "warning: unknown[203.0.113.71]: SASL PLAIN authentication failed: Connection lost to authentication server",
        )
        .unwrap();
        assert_eq!(lost.result(), None);
    }

    #[test]
    fn rejects_and_disconnects() {
        let decoded = decode(
            "NOQUEUE: reject: RCPT from mx.example[203.0.113.72]: 554 5.7.1 <a@b>: Relay access denied; from=<s@x> to=<a@b> proto=ESMTP helo=<mx.example>",
        )
        .unwrap();
        assert_eq!(decoded.category, "mail");
        assert_eq!(decoded.details["smtpcode"], "554");
        assert_eq!(decoded.details["sender"], "s@x");
        assert_eq!(decoded.details["recipient"], "a@b");
        let decoded =
            decode("disconnect from unknown[203.0.113.73] ehlo=1 auth=0/2 quit=1 commands=2/4")
                .unwrap();
        assert_eq!(decoded.category, "authentication");
        assert_eq!(decoded.details["attempts"], 2);
        let crafted = decode(
            "NOQUEUE: reject: RCPT from unknown[203.0.113.75]: 554 5.7.1 <a@b>: Relay access denied; from=<x[6.6.6.6]@y> to=<a@b> proto=ESMTP helo=<[6.6.6.6]>",
        )
        .unwrap();
        assert_eq!(crafted.details["sourceipaddress"], "203.0.113.75");
        let fine = decode("disconnect from mx.example[203.0.113.74] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5").unwrap();
        assert_eq!(fine.result(), None);
        assert!(decode("warning: database /etc/aliases.db is older than source file").is_none());
    }
}
