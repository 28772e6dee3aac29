//! Dropbear SSH: `Bad password attempt for 'USER' from ADDR:PORT`, `Login attempt for nonexistent
//! user from ADDR:PORT`, `Exit before auth ...`, `Password auth succeeded for 'USER' from ADDR:PORT`.
//! Category `authentication`; the address is the last ` from ` (a quoted user name may contain one).
use crate::builtin::pam;
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "dropbear";

/// Decodes one dropbear message.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = strip_own_prefix(message.trim());
    line(text).or_else(|| pam::decode(text))
}

/// Dropbear run under systemd repeats its pid and time: `[825] Jul 10 23:53:52 `.
fn strip_own_prefix(text: &str) -> &str {
    let Some(inside) = text.strip_prefix('[') else {
        return text;
    };
    let Some((pid, rest)) = inside.split_once("] ") else {
        return text;
    };
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return text;
    }
    // `Mmm dd hh:mm:ss ` (16 bytes, the day may be space padded).
    let bytes = rest.as_bytes();
    if bytes.len() > 16
        && bytes[..3].iter().all(u8::is_ascii_alphabetic)
        && bytes[3] == b' '
        && bytes[9] == b':'
        && bytes[12] == b':'
        && bytes[15] == b' '
    {
        return &rest[16..];
    }
    rest
}

fn authentication() -> Decoded {
    Decoded::builtin(NAME, "authentication")
}

/// ` from ADDR:PORT` at the end.
fn trailing_address(text: &str) -> Option<(&str, &str, Option<u16>)> {
    let at = text.rfind(" from ")?;
    let (host, port) = scan::split_host_port(&text[at + 6..]);
    Some((&text[..at], host, port))
}

fn line(text: &str) -> Option<Decoded> {
    if let Some(rest) = scan::strip_prefix_ignore_case(text, "Bad password attempt for ") {
        let (user, host, port) = trailing_address(rest)?;
        let mut decoded = authentication();
        decoded
            .action("login")
            .failure()
            .text("authmethod", "password");
        decoded.text("username", user.trim_matches('\''));
        return decoded.source(host, port).then_some(decoded);
    }
    if let Some(rest) = scan::strip_prefix_ignore_case(text, "Login attempt for nonexistent user") {
        let (user, host, port) = trailing_address(rest)?;
        let mut decoded = authentication();
        decoded
            .action("invalid_user")
            .failure()
            .set("invaliduser", true);
        decoded.text_unless_empty("username", user.trim().trim_matches('\''));
        return decoded.source(host, port).then_some(decoded);
    }
    if let Some(rest) = text.strip_prefix("Exit before auth") {
        return exit_before_auth(rest);
    }
    for (prefix, method) in [
        ("Password auth succeeded for ", "password"),
        ("Pubkey auth succeeded for ", "publickey"),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            let (who, host, port) = trailing_address(rest)?;
            let (user, _) = scan::quoted(who)?;
            let mut decoded = authentication();
            decoded.action("login").success().text("authmethod", method);
            decoded.text("username", user);
            return decoded.source(host, port).then_some(decoded);
        }
    }
    if let Some(rest) = text.strip_prefix("Child connection from ") {
        let (host, port) = scan::split_host_port(rest);
        let mut decoded = Decoded::builtin(NAME, "network");
        decoded.action("connect");
        return decoded.source(host, port).then_some(decoded);
    }
    None
}

/// `Exit before auth (user 'U', N fails): REASON - user 'U' from ADDR:PORT` and the newer
/// `Exit before auth from <ADDR:PORT>: (user 'U', N fails): REASON`.
fn exit_before_auth(rest: &str) -> Option<Decoded> {
    let mut decoded = authentication();
    let mut address = None;
    let mut rest = rest;
    if let Some(after) = rest.strip_prefix(" from <") {
        let (inside, after) = after.split_once(">: ")?;
        address = Some(scan::split_host_port(inside));
        rest = after;
    } else {
        rest = rest
            .strip_prefix(' ')
            .or_else(|| rest.strip_prefix(':'))?
            .trim_start();
        if let Some((before, host, port)) = trailing_address(rest) {
            address = Some((host, port));
            rest = before;
        }
    }
    let mut fails = None;
    if let Some(inside) = rest.strip_prefix("(user ") {
        let (user, after) = scan::quoted(inside)?;
        decoded.text("username", user);
        let after = after.strip_prefix(", ")?;
        let (count, after) = scan::leading_digits(after);
        fails = scan::parse_count(count);
        rest = after
            .strip_prefix(" fails): ")
            .or_else(|| after.strip_prefix(" fail): "))
            .unwrap_or(after);
    }
    let reason = rest.split(" - user ").next().unwrap_or(rest);
    decoded.text_unless_empty("reason", reason);
    if let Some(fails) = fails {
        decoded.set("attempts", fails);
    }
    if reason.starts_with("Max auth tries reached") {
        decoded.action("max_attempts").failure();
    } else if fails.is_some_and(|fails| fails > 0) {
        decoded.action("disconnect").failure();
    } else {
        decoded.action("disconnect");
    }
    if let Some((host, port)) = address {
        decoded.source(host, port);
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn failures_successes_and_injected_addresses() {
        let decoded = decode("Bad password attempt for 'root' from 198.51.100.60:40222").unwrap();
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["username"], "root");
        assert_eq!(decoded.details["sourceipaddress"], "198.51.100.60");
        assert_eq!(decoded.details["sourceport"], 40222);
        let decoded =
            decode("Bad password attempt for 'a' from 6.6.6.6:1' from 198.51.100.61:40223")
                .unwrap();
        assert_eq!(decoded.details["sourceipaddress"], "198.51.100.61");
        let decoded = decode(
            "Exit before auth from <198.51.100.62:5000>: (user 'admin', 10 fails): Max auth tries reached - user 'admin'",
        )
        .unwrap();
        assert_eq!(decoded.details["attempts"], 10);
        assert_eq!(decoded.details["sourceipaddress"], "198.51.100.62");
        let decoded = decode("Password auth succeeded for 'pi' from 198.51.100.63:5001").unwrap();
        assert_eq!(decoded.details["result"], "success");
        assert!(decode("Early exit: Terminated by signal").is_none());
    }
}
