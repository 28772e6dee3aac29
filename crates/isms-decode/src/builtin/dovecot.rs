//! Dovecot: the login processes' session lines (`imap-login: Disconnected (auth failed, 2 attempts
//! in 8 secs): user=<u>, method=PLAIN, rip=ADDR, lip=ADDR, ...`) and the authentication process'
//! passdb lines (`auth-worker(123): pam(user,ADDR): pam_authenticate() failed: ...`). Category
//! `authentication`.
//!
//! Like sshd's `[preauth]` disconnects, a session that ended before the client tried to
//! authenticate (`no auth attempts`, `disconnected during TLS handshake`) is a failure: the client
//! did not get in, and scanners look exactly like that.
//!
//! Dovecot can log the password a client tried (`auth_verbose_passwords`); that part of the reason
//! is dropped, so a mistyped password never ends up in the store.
use crate::builtin::pam;
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "dovecot";

/// Decodes one dovecot message (from `dovecot`, `imap-login`, `auth-worker`, ... programs).
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let (service, text) = strip_prefixes(message.trim());
    let mut decoded = if text.contains("rip=") {
        login_process(text)
    } else {
        passdb(text)
    };
    if decoded.is_none() {
        return pam::decode(text);
    }
    if let (Some(decoded), Some(service)) = (decoded.as_mut(), service) {
        decoded.text("service", service);
    }
    decoded
}

/// Strips `dovecot: `, log levels, `auth-worker(N): `, `conn ...: auth-worker<N>: ` and the
/// `imap-login: ` style service prefix (returned as the service, `imap`).
fn strip_prefixes(mut text: &str) -> (Option<&str>, &str) {
    let mut service = None;
    loop {
        let before = text;
        for prefix in [
            "dovecot: ",
            "Info: ",
            "Warning: ",
            "Warn: ",
            "Error: ",
            "Fatal: ",
            "Debug: ",
            "auth: ",
        ] {
            if let Some(rest) = text.strip_prefix(prefix) {
                text = rest;
            }
        }
        if let Some(at) = text.find(": ") {
            let head = &text[..at];
            if let Some(name) = head.strip_suffix("-login") {
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    service = Some(name);
                    text = &text[at + 2..];
                }
            } else if (head.starts_with("auth-worker(") || head.starts_with("auth("))
                && head.ends_with(')')
                && !head.contains(',')
            {
                text = &text[at + 2..];
            } else if head.starts_with("conn unix:")
                && let Some(worker) = text.find("auth-worker<")
                && let Some(end) = text[worker..].find(">: ")
            {
                text = &text[worker + end + 3..];
            }
        }
        if text.len() == before.len() {
            return (service, text);
        }
    }
}

/// The reason without the password dovecot may have appended.
fn without_password(reason: &str) -> &str {
    for marker in [
        " (given password",
        " (SHA1 of given password",
        " (given password:",
    ] {
        if let Some(at) = reason.find(marker) {
            return reason[..at].trim_end();
        }
    }
    reason
}

/// `STATUS: user=<U>, method=M, rip=ADDR, lip=ADDR, ...`.
fn login_process(text: &str) -> Option<Decoded> {
    let fields_start = ["user=<", "method=", "rip="]
        .iter()
        .filter_map(|key| text.find(key))
        .min()?;
    let status = text[..fields_start].trim_end().trim_end_matches(':');
    let fields = &text[fields_start..];
    let mut decoded = Decoded::builtin(NAME, "authentication");
    // The last `rip=` is the server's: a user name (which comes first) may hold a fake one.
    let rip_at = if fields.starts_with("rip=") {
        0
    } else {
        fields.rfind(", rip=")? + 2
    };
    let (before, after) = fields.split_at(rip_at);
    let mut user_end = before.len();
    if let Some(method_at) = before.rfind("method=") {
        let method = before[method_at + 7..]
            .split([',', ' '])
            .next()
            .unwrap_or("");
        decoded.text_unless_empty("authmethod", &method.to_ascii_lowercase());
        user_end = method_at;
    }
    if let Some(user) = before[..user_end]
        .strip_prefix("user=<")
        .map(|user| user.trim_end().trim_end_matches(','))
        .and_then(|user| user.strip_suffix('>'))
    {
        decoded.text_unless_empty("username", user);
    }
    let mut remote = None;
    let mut local = None;
    for item in after.split(", ") {
        let item = item.split(' ').next().unwrap_or(item);
        if let Some(address) = item.strip_prefix("rip=") {
            remote = remote.or(Some(address));
        } else if let Some(address) = item.strip_prefix("lip=") {
            local = local.or(Some(address));
        }
    }
    let failed = status.contains("auth failed")
        || status.contains("tried to use disallowed")
        || status.contains("tried to use disabled")
        || status.contains("client didn't finish SASL auth")
        || text.ends_with("Authentication Failure:");
    // A client that left before authenticating, like sshd's `[preauth]` disconnects: an attempt
    // that did not get in (a scanner, a TLS prober).
    let left_before = status.contains("no auth attempts")
        || status.contains("before auth was ready")
        || status.contains("during TLS handshake");
    if left_before && !failed {
        decoded.action("disconnect").failure();
    } else if failed {
        decoded.action("login").failure();
        if let Some(at) = status.find(" attempts") {
            let (_, count) = status[..at].rsplit_once(' ')?;
            if let Some(attempts) = scan::parse_count(count) {
                decoded.set("attempts", attempts);
            }
        }
    } else if status == "Login" {
        decoded.action("login").success();
    } else {
        decoded.action("disconnect");
    }
    decoded.text_unless_empty("reason", status);
    if let Some(local) = local {
        decoded.destination(local, None);
    }
    decoded.source(remote?, None).then_some(decoded)
}

/// `DRIVER(USER,ADDR[,SESSION])[<ID>]: MESSAGE` from the authentication process.
fn passdb(text: &str) -> Option<Decoded> {
    let open = text.find('(')?;
    let driver = &text[..open];
    if driver.is_empty()
        || !driver
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return None;
    }
    let inside_and_rest = &text[open + 1..];
    let close = inside_and_rest.find(')')?;
    let arguments = &inside_and_rest[..close];
    let mut after = &inside_and_rest[close + 1..];
    if let Some(id) = after.strip_prefix('<') {
        after = id.split_once('>')?.1;
    }
    let message = after.strip_prefix(": ")?;
    let lower = message.to_ascii_lowercase();
    let failed = [
        "unknown user",
        "password mismatch",
        "pam_authenticate() failed",
        "invalid credentials",
        "authentication failure",
    ]
    .iter()
    .any(|phrase| lower.contains(phrase));
    if !failed {
        return None;
    }
    // USER,ADDR[,SESSION...]: the address is the last field that is an IP address, the user name
    // (which may itself hold commas) everything before it.
    let mut user = arguments;
    let mut address = None;
    let mut end = arguments.len();
    while let Some(comma) = arguments[..end].rfind(',') {
        let field = &arguments[comma + 1..end];
        if scan::is_ip_address(scan::strip_v4_mapped(field)) {
            user = &arguments[..comma];
            address = Some(field);
            break;
        }
        end = comma;
    }
    let message = message
        .split_once(": ")
        .filter(|(level, _)| ["Info", "Warning", "Error", "Debug"].contains(level))
        .map_or(message, |(_, rest)| rest);
    let mut decoded = Decoded::builtin(NAME, "authentication");
    decoded.action("login").failure().text("passdb", driver);
    decoded.text_unless_empty("username", user);
    decoded.text("reason", without_password(message.trim()));
    if let Some(address) = address {
        decoded.source(address, None);
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn login_process_failures_and_successes() {
        let decoded = decode(
            "imap-login: Disconnected (auth failed, 3 attempts in 12 secs): user=<yvonne>, method=PLAIN, rip=203.0.113.80, lip=10.0.0.2, TLS, session=<abc>",
        )
        .unwrap();
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["attempts"], 3);
        assert_eq!(decoded.details["username"], "yvonne");
        assert_eq!(decoded.details["authmethod"], "plain");
        assert_eq!(decoded.details["service"], "imap");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.80");
        assert_eq!(decoded.details["destinationipaddress"], "10.0.0.2");
        let decoded = decode(
            "pop3-login: Login: user=<zack>, method=PLAIN, rip=203.0.113.81, lip=10.0.0.2, mpid=42, TLS",
        )
        .unwrap();
        assert_eq!(decoded.details["result"], "success");
        let decoded = decode(
            "imap-login: Disconnected (auth failed, 1 attempts): user=<a>, rip=6.6.6.6>, method=PLAIN, rip=203.0.113.82, lip=10.0.0.2",
        )
        .unwrap();
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.82");
        // Left before trying to authenticate: like sshd's preauth disconnects.
        let prober = decode(
            "imap-login: Disconnected (no auth attempts in 2 secs): user=<>, rip=203.0.113.83, lip=10.0.0.2, TLS handshaking: SSL_accept() failed",
        )
        .unwrap();
        assert_eq!(prober.details["result"], "failure");
        assert_eq!(prober.details["action"], "disconnect");
        let logout = decode("imap(zack): Logged out in=10 out=20").is_none();
        assert!(logout);
    }

    #[test]
    fn passdb_failures_drop_the_given_password() {
        let decoded = decode(
            "auth-worker(911): sql(ann@example.org,203.0.113.84,<sess>): Password mismatch (given password: hunter2)",
        )
        .unwrap();
        assert_eq!(decoded.details["username"], "ann@example.org");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.84");
        assert_eq!(decoded.details["reason"], "Password mismatch");
        let decoded =
            decode("auth: pam(bo,203.0.113.85): pam_authenticate() failed: Authentication failure")
                .unwrap();
        assert_eq!(decoded.details["passdb"], "pam");
        assert!(decode("auth: Debug: pam(bo,203.0.113.85): lookup service=dovecot").is_none());
        assert!(decode("Dovecot v2.3.21 starting up for imap").is_none());
    }
}
