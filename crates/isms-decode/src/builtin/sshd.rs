//! OpenSSH's sshd (also `sshd-session` and `sshd-auth` since OpenSSH 9.8).
//!
//! Every authentication outcome sshd logs becomes category `authentication` with `details.result`,
//! `details.action` and the remote end; connection notices (`Connection from ...`) are `network`.
//! Messages that show an attempt which never got as far as authenticating (`Connection closed ...
//! [preauth]`, `Did not receive identification string`, `Unable to negotiate`, key exchange errors)
//! are failures too: to a brute-force rule they are attempts that did not get in, which is how
//! fail2ban's aggressive mode counts them.
//!
//! Attackers choose the user name, and sshd prints it unescaped, so the remote address is read from
//! the part of the line the attacker cannot write: for `Failed`/`Accepted` lines, the first
//! ` from HOST port N sshN` that ends the line or is followed by `: ` (sshd's own separator before
//! key details); for lines that end with the address, the end of the line.
use crate::builtin::pam;
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "sshd";

/// Decodes one sshd message (the text after `sshd[pid]: `).
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = strip_log_prefixes(message.trim_end());
    let (text, preauth) = match text.strip_suffix(" [preauth]") {
        Some(inner) => (inner.trim_end(), true),
        None => (text, false),
    };
    let mut decoded = match text.as_bytes().first()? {
        b'A' => accepted(text).or_else(|| reverse_mapping(text)),
        b'F' => failed(text),
        b'I' => invalid_user(text),
        b'U' => user_not_allowed(text).or_else(|| unable_to_negotiate(text)),
        b'D' => did_not_receive(text)
            .or_else(|| disconnected(text, preauth))
            .or_else(|| disconnecting(text, preauth)),
        b'C' => connection_closed(text, preauth)
            .or_else(|| connection_from(text))
            .or_else(|| protocol_error_without_address(text, preauth, "Corrupted MAC on input")),
        b'R' => received_disconnect(text, preauth)
            .or_else(|| root_login_refused(text))
            .or_else(|| protocol_error_without_address(text, preauth, "Read from socket failed"))
            .or_else(|| read_error(text)),
        b'B' => bad_protocol_version(text)
            .or_else(|| protocol_error_without_address(text, preauth, "Bad packet length")),
        b'P' => pam_error(text).or_else(|| postponed(text)),
        b'T' => timeout_before_authentication(text),
        b'm' => maximum_attempts(text),
        b'k' => kex_error(text),
        b'b' => banner_exchange(text),
        b's' => dispatch_fatal(text, preauth),
        b'r' => refused_connect(text).or_else(|| reverse_mapping(text)),
        b'n' => no_matching(text),
        b'S' => ssh_server_notice(text),
        _ => None,
    };
    if decoded.is_none() {
        decoded = pam::decode(text);
    }
    let mut decoded = decoded?;
    if preauth {
        decoded.set("preauth", true);
    }
    Some(decoded)
}

/// `error: `, `fatal: `, Solaris' `[ID 800047 auth.info] ` and a journal's `kernel:[ 970.69]: `
/// before the message proper.
fn strip_log_prefixes(mut text: &str) -> &str {
    loop {
        if let Some(rest) = text
            .strip_prefix("error: ")
            .or_else(|| text.strip_prefix("fatal: "))
        {
            text = rest;
        } else if let Some(rest) = text.strip_prefix("kernel:")
            && let Some(inside) = rest.trim_start().strip_prefix('[')
            && let Some((stamp, after)) = inside.split_once(']')
            && stamp
                .trim()
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'.')
        {
            text = after.strip_prefix(':').unwrap_or(after).trim_start();
        } else if let Some(inside) = text.strip_prefix("[ID ")
            && let Some(close) = inside.find("] ")
            && close < 40
        {
            text = &inside[close + 2..];
        } else {
            return text;
        }
    }
}

fn authentication() -> Decoded {
    Decoded::builtin(NAME, "authentication")
}

/// The remote end and the rest of a `for [invalid user ]USER from HOST port N sshN[: info]` phrase.
struct UserFrom<'a> {
    user: &'a str,
    invalid_user: bool,
    host: &'a str,
    port: Option<u16>,
    protocol: Option<&'a str>,
    info: Option<&'a str>,
}

/// Reads `[invalid user ]USER from HOST[ port N][ sshN][: info]` (the text after `for `), taking the
/// first ` from HOST...` that ends the text or is followed by `: `.
fn user_from(text: &str) -> Option<UserFrom<'_>> {
    let (invalid_user, text) = match text
        .strip_prefix("invalid user ")
        .or_else(|| text.strip_prefix("illegal user "))
    {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut search_from = 0;
    while let Some(found) = text.get(search_from..)?.find(" from ") {
        let at = search_from + found;
        if let Some(mut phrase) = address_phrase(&text[at + 6..])
            && phrase.terminal
        {
            phrase.user_from.user = &text[..at];
            phrase.user_from.invalid_user = invalid_user;
            return Some(phrase.user_from);
        }
        search_from = at + 1;
    }
    None
}

struct AddressPhrase<'a> {
    user_from: UserFrom<'a>,
    terminal: bool,
}

/// `HOST[ port N][ sshN][: info]` at the start of `text`.
fn address_phrase(text: &str) -> Option<AddressPhrase<'_>> {
    let host_end = text.find(' ').unwrap_or(text.len());
    let host = &text[..host_end];
    if !scan::is_host(host) {
        return None;
    }
    let mut rest = &text[host_end..];
    let mut port = None;
    if let Some(after) = rest.strip_prefix(" port ") {
        let (digits, after_digits) = scan::leading_digits(after);
        port = Some(scan::parse_port(digits)?);
        rest = after_digits;
    }
    let mut protocol = None;
    if let Some(after) = rest.strip_prefix(" ssh") {
        let (digits, after_digits) = scan::leading_digits(after);
        if !digits.is_empty() {
            protocol = Some(&rest[1..4 + digits.len()]);
            rest = after_digits;
        }
    }
    let (terminal, info) = if rest.is_empty() {
        (true, None)
    } else if let Some(info) = rest.strip_prefix(": ") {
        (true, Some(info))
    } else {
        (false, None)
    };
    Some(AddressPhrase {
        user_from: UserFrom {
            user: "",
            invalid_user: false,
            host,
            port,
            protocol,
            info,
        },
        terminal,
    })
}

fn apply_user_from(decoded: &mut Decoded, phrase: &UserFrom<'_>) -> bool {
    if !decoded.source(phrase.host, phrase.port) {
        return false;
    }
    decoded.text("username", phrase.user);
    if phrase.invalid_user {
        decoded.set("invaliduser", true);
    }
    if let Some(protocol) = phrase.protocol {
        decoded.text("protocol", protocol);
    }
    if let Some(info) = phrase.info {
        decoded.text_unless_empty("authinfo", info);
        if names_another_source(info) {
            // `for U from A port 1 ssh2: X from B port 2 ssh2`: either the text after A's phrase was
            // injected (old sshd's `ruser`, as fail2ban reads it, A being the source) or the user
            // name was `U from A port 1 ssh2: X` (B being the source). The text cannot tell; A is
            // recorded, and the doubt with it, for rules that want to know.
            decoded.set("sourceambiguous", true);
        }
    }
    true
}

/// Whether `info` (what follows a `from HOST port N sshN: `) holds a second whole address phrase.
fn names_another_source(info: &str) -> bool {
    let mut search_from = 0;
    while let Some(found) = info.get(search_from..).and_then(|rest| rest.find("from ")) {
        let at = search_from + found;
        if address_phrase(&info[at + 5..]).is_some_and(|phrase| phrase.terminal) {
            return true;
        }
        search_from = at + 1;
    }
    false
}

/// The method as sshd names it, without a `/pam` style submethod.
fn method_name(method: &str) -> &str {
    method.split('/').next().unwrap_or(method)
}

/// `Accepted METHOD for USER from HOST port N ssh2[: key]`.
fn accepted(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Accepted ")?;
    let (method, rest) = rest.split_once(" for ")?;
    let phrase = user_from(rest)?;
    let mut decoded = authentication();
    decoded.action("login").success();
    decoded.text("authmethod", method_name(method));
    apply_user_from(&mut decoded, &phrase).then_some(decoded)
}

/// `Failed METHOD for [invalid user ]USER from HOST port N ssh2[: key]`: a failure, except a refused
/// public key of an existing account (see below).
fn failed(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Failed ")?;
    let (method, rest) = rest.split_once(" for ")?;
    if method.contains(' ') {
        return None;
    }
    let phrase = user_from(rest)?;
    let mut decoded = authentication();
    decoded.action("login");
    let method = method_name(method);
    decoded.text("authmethod", method);
    if method == "publickey" && !phrase.invalid_user {
        // Clients offer each of their keys in turn and sshd logs every refused one: for an existing
        // account that is how a key login starts, not a failed attempt (fail2ban gh-1263). Too many
        // of them end in `Too many authentication failures`, which is a failure.
        decoded.text("reason", "key not accepted");
    } else {
        decoded.failure();
    }
    apply_user_from(&mut decoded, &phrase).then_some(decoded)
}

/// `Postponed METHOD for invalid user USER from ...`: an attempt with a user that does not exist.
/// (For an existing user, postponing is a normal step of a login and not decoded.)
fn postponed(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Postponed ")?;
    let (method, rest) = rest.split_once(" for ")?;
    let phrase = user_from(rest)?;
    if !phrase.invalid_user {
        return None;
    }
    let mut decoded = authentication();
    decoded.action("invalid_user").failure();
    decoded.text("authmethod", method_name(method));
    apply_user_from(&mut decoded, &phrase).then_some(decoded)
}

/// `USER from HOST[ port N]` at the end of `text` (no key details follow): the address is the last
/// ` from ` phrase, which the user name cannot reach.
fn user_from_at_end(text: &str) -> Option<(&str, &str, Option<u16>)> {
    let (rest, port) = scan::strip_port_suffix(text);
    let at = rest.rfind(" from ")?;
    let host = &rest[at + 6..];
    scan::is_host(host).then_some((&rest[..at], host, port))
}

/// `Invalid user USER from HOST[ port N]` (`Illegal user` before OpenSSH 3.8).
fn invalid_user(text: &str) -> Option<Decoded> {
    let rest = text
        .strip_prefix("Invalid user ")
        .or_else(|| text.strip_prefix("Illegal user "))?;
    // An empty user name leaves `Invalid user  from ...`: the rest starts with ` from `.
    let (user, host, port) = user_from_at_end(rest)?;
    let mut decoded = authentication();
    decoded.action("invalid_user").failure();
    decoded.text("username", user);
    decoded.set("invaliduser", true);
    decoded.source(host, port).then_some(decoded)
}

/// `User USER from HOST not allowed because REASON` and `User USER not allowed because REASON`.
fn user_not_allowed(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("User ")?;
    let at = rest.rfind(" not allowed because ")?;
    let (who, reason) = (&rest[..at], &rest[at + 21..]);
    let mut decoded = authentication();
    decoded.action("not_allowed").failure();
    decoded.text("reason", reason);
    match who.rfind(" from ") {
        Some(from) if scan::is_host(&who[from + 6..]) => {
            decoded.text("username", &who[..from]);
            decoded.source(&who[from + 6..], None);
        }
        _ => {
            decoded.text("username", who);
        }
    }
    Some(decoded)
}

/// `Unable to negotiate with HOST port N: no matching ... found. Their offer: ...` and the older
/// `Unable to negotiate a key exchange method`.
fn unable_to_negotiate(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Unable to negotiate ")?;
    let mut decoded = authentication();
    decoded.action("negotiation_failed").failure();
    if let Some(with) = rest.strip_prefix("with ") {
        let (address, reason) = with.split_once(": ").unwrap_or((with, ""));
        let (host, port) = scan::strip_port_suffix(address);
        decoded.text_unless_empty("reason", reason);
        return decoded.source(host, port).then_some(decoded);
    }
    decoded.text("reason", rest);
    Some(decoded)
}

/// `Did not receive identification string from HOST[ port N]`.
fn did_not_receive(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Did not receive identification string from ")?;
    let (host, port) = scan::strip_port_suffix(rest);
    let mut decoded = authentication();
    decoded.action("no_identification").failure();
    decoded.source(host, port).then_some(decoded)
}

/// `[authenticating |invalid ]user USER HOST port N` or `HOST port N`: the end of a connection.
fn closed_connection_party(rest: &str) -> Option<(Option<&str>, bool, &str, Option<u16>)> {
    let (rest, port) = scan::strip_port_suffix(rest);
    let (user_part, invalid) = if let Some(after) = rest.strip_prefix("authenticating user ") {
        (Some(after), false)
    } else if let Some(after) = rest.strip_prefix("invalid user ") {
        (Some(after), true)
    } else if let Some(after) = rest.strip_prefix("user ") {
        (Some(after), false)
    } else {
        (None, false)
    };
    match user_part {
        Some(after) => {
            let (user, host) = after.rsplit_once(' ')?;
            Some((Some(user), invalid, host, port))
        }
        None => Some((None, false, rest, port)),
    }
}

fn end_of_connection(
    rest: &str,
    preauth: bool,
    action_after_login: &'static str,
) -> Option<Decoded> {
    let (user, invalid, host, port) = closed_connection_party(rest)?;
    let mut decoded = authentication();
    if let Some(user) = user {
        decoded.text("username", user);
    }
    if invalid {
        decoded.set("invaliduser", true);
    }
    if preauth {
        decoded.action("disconnect").failure();
    } else if user.is_some() && !invalid {
        decoded.action(action_after_login);
    } else {
        decoded.action("disconnect");
    }
    decoded.source(host, port).then_some(decoded)
}

/// `Disconnected from [authenticating |invalid ]user USER HOST port N` (a logout after a login, or a
/// failure before one) and `Disconnected from HOST port N`.
fn disconnected(text: &str, preauth: bool) -> Option<Decoded> {
    let rest = text.strip_prefix("Disconnected from ")?;
    end_of_connection(rest, preauth, "logout")
}

/// `Connection closed by ...` and `Connection reset by ...`.
fn connection_closed(text: &str, preauth: bool) -> Option<Decoded> {
    let rest = text
        .strip_prefix("Connection closed by ")
        .or_else(|| text.strip_prefix("Connection reset by "))?;
    end_of_connection(rest, preauth, "disconnect")
}

/// `Disconnecting: Too many authentication failures[ for USER]` (OpenSSH before 6.8: a failure),
/// `Disconnecting [invalid |authenticating ]user USER HOST port N: REASON` (newer; after "maximum
/// authentication attempts exceeded" it repeats that failure and is not counted again).
fn disconnecting(text: &str, preauth: bool) -> Option<Decoded> {
    let rest = text.strip_prefix("Disconnecting")?;
    let mut decoded = authentication();
    if let Some(reason) = rest.strip_prefix(": ") {
        if let Some(after) = reason.strip_prefix("Too many authentication failures") {
            decoded.action("max_attempts").failure();
            if let Some(user) = after.strip_prefix(" for ") {
                let (invalid, user) = match user.strip_prefix("invalid user ") {
                    Some(user) => (true, user),
                    None => (false, user),
                };
                decoded.text("username", user);
                if invalid {
                    decoded.set("invaliduser", true);
                }
            }
            return Some(decoded);
        }
        decoded.action("disconnect").text("reason", reason);
        if preauth {
            decoded.failure();
        }
        return Some(decoded);
    }
    let rest = rest.strip_prefix(' ')?;
    let (party, reason) = rest.split_once(": ")?;
    let (user, invalid, host, port) = closed_connection_party(party)?;
    if let Some(user) = user {
        decoded.text("username", user);
    }
    if invalid {
        decoded.set("invaliduser", true);
    }
    decoded.text("reason", reason);
    if reason.starts_with("Too many authentication failures") {
        decoded.action("max_attempts");
    } else {
        decoded.action("disconnect").failure();
    }
    decoded.source(host, port).then_some(decoded)
}

/// `Connection from HOST port N on LOCAL port M[ rdomain "..."]` (category `network`).
fn connection_from(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Connection from ")?;
    let rest = match rest.find(" rdomain ") {
        Some(at) => &rest[..at],
        None => rest,
    };
    let (remote, local) = match rest.split_once(" on ") {
        Some((remote, local)) => (remote, Some(local)),
        None => (rest, None),
    };
    let (host, port) = scan::strip_port_suffix(remote);
    let mut decoded = Decoded::builtin(NAME, "network");
    decoded.action("connect");
    if let Some(local) = local {
        let (local_host, local_port) = scan::strip_port_suffix(local);
        decoded.destination(local_host, local_port);
    }
    decoded.source(host, port).then_some(decoded)
}

/// `SSH: Server;Ltype: Version;Remote: HOST-PORT;...` (a patched sshd's connection notice).
fn ssh_server_notice(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("SSH: Server;")?;
    let mut decoded = Decoded::builtin(NAME, "network");
    decoded.action("connect");
    let mut remote = None;
    for item in rest.split(';') {
        let (key, value) = item.split_once(": ")?;
        match key {
            "Remote" => remote = Some(value),
            "Ltype" => {
                decoded.text("sshnotice", value);
            }
            "Client" => {
                decoded.text("client", value);
            }
            "Name" => {
                decoded.text("username", value);
            }
            _ => {}
        }
    }
    let (host, port) = remote?.rsplit_once('-')?;
    decoded
        .source(host, scan::parse_port(port))
        .then_some(decoded)
}

/// `Received disconnect from HOST[ port N]:[ ]CODE: REASON`. A failure before authentication, or when
/// the client gives up on authenticating (code 3 from jsch's "Auth fail", code 14 "no more
/// authentication methods").
fn received_disconnect(text: &str, preauth: bool) -> Option<Decoded> {
    let rest = text.strip_prefix("Received disconnect from ")?;
    let (host, port, after) = match rest.find(" port ") {
        Some(at) => {
            let (digits, after) = scan::leading_digits(&rest[at + 6..]);
            (
                &rest[..at],
                scan::parse_port(digits),
                after.strip_prefix(':')?,
            )
        }
        None => {
            let at = rest.find(": ")?;
            (&rest[..at], None, &rest[at + 1..])
        }
    };
    let after = after.trim_start();
    let (code, reason) = scan::leading_digits(after);
    let reason = reason.strip_prefix(':').unwrap_or(reason).trim_start();
    let mut decoded = authentication();
    decoded.action("disconnect");
    decoded.text_unless_empty("reason", reason);
    if let Some(code) = scan::parse_count(code) {
        decoded.set("disconnectcode", code);
    }
    let gave_up = matches!(code, "3" | "14") || scan::contains_ignore_case(reason, "auth fail");
    if preauth || gave_up {
        decoded.failure();
    }
    decoded.source(host, port).then_some(decoded)
}

/// `ROOT LOGIN REFUSED FROM HOST[ port N]`.
fn root_login_refused(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("ROOT LOGIN REFUSED FROM ")?;
    let (host, port) = scan::strip_port_suffix(rest);
    let mut decoded = authentication();
    decoded
        .action("login_refused")
        .failure()
        .text("username", "root");
    decoded.source(host, port).then_some(decoded)
}

/// A transport error without an address (`Read from socket failed: ...`, `Corrupted MAC on input.`,
/// `Bad packet length N.`): a failure when it cut an attempt short (before authentication).
fn protocol_error_without_address(text: &str, preauth: bool, prefix: &str) -> Option<Decoded> {
    if !text.starts_with(prefix) {
        return None;
    }
    let mut decoded = authentication();
    decoded.action("protocol_error").text("reason", text);
    if preauth {
        decoded.failure();
    }
    Some(decoded)
}

/// `Read error from remote host HOST: REASON`.
fn read_error(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Read error from remote host ")?;
    let (address, reason) = rest.split_once(": ")?;
    let (host, port) = scan::strip_port_suffix(address);
    let mut decoded = authentication();
    decoded.action("protocol_error").text("reason", reason);
    decoded.source(host, port).then_some(decoded)
}

/// `Bad protocol version identification 'TEXT' from HOST[ port N]` (the client's text is quoted but
/// may contain anything; the address is at the end).
fn bad_protocol_version(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Bad protocol version identification ")?;
    let (_, host, port) = user_from_at_end(rest)?;
    let mut decoded = authentication();
    decoded.action("protocol_error").failure();
    decoded.text("reason", "bad protocol version identification");
    decoded.source(host, port).then_some(decoded)
}

/// `PAM: REASON for [illegal user ]USER from HOST[ via LOCAL]` (sshd's own PAM failure notice).
fn pam_error(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("PAM: ")?;
    let (reason, rest) = rest.split_once(" for ")?;
    let rest = match rest.rfind(" via ") {
        Some(at) => &rest[..at],
        None => rest,
    };
    let at = rest.rfind(" from ")?;
    let (user, host) = (&rest[..at], &rest[at + 6..]);
    let (invalid, user) = match user
        .strip_prefix("illegal user ")
        .or_else(|| user.strip_prefix("invalid user "))
    {
        Some(user) => (true, user),
        None => (false, user),
    };
    let mut decoded = authentication();
    decoded.action("login").failure().text("reason", reason);
    decoded.text("username", user);
    if invalid {
        decoded.set("invaliduser", true);
    }
    decoded.source(host, None).then_some(decoded)
}

/// `Timeout before authentication for HOST port N` and `... for connection from HOST to LOCAL,
/// pid = N`.
fn timeout_before_authentication(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("Timeout before authentication for ")?;
    let mut decoded = authentication();
    decoded.action("timeout").failure();
    if let Some(connection) = rest.strip_prefix("connection from ") {
        let host = connection.split(' ').next()?;
        return decoded.source(host, None).then_some(decoded);
    }
    let (host, port) = scan::strip_port_suffix(rest);
    decoded.source(host, port).then_some(decoded)
}

/// `maximum authentication attempts exceeded for [invalid user ]USER from HOST port N ssh2`.
fn maximum_attempts(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("maximum authentication attempts exceeded for ")?;
    let phrase = user_from(rest)?;
    let mut decoded = authentication();
    decoded.action("max_attempts").failure();
    apply_user_from(&mut decoded, &phrase).then_some(decoded)
}

/// `kex_exchange_identification: REASON` (a client that never spoke SSH: a scanner).
fn kex_error(text: &str) -> Option<Decoded> {
    let reason = text.strip_prefix("kex_exchange_identification: ")?;
    let mut decoded = authentication();
    decoded
        .action("protocol_error")
        .failure()
        .text("reason", reason);
    Some(decoded)
}

/// `banner exchange: Connection from HOST port N: REASON`.
fn banner_exchange(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("banner exchange: Connection from ")?;
    let (address, reason) = rest.split_once(": ")?;
    let (host, port) = scan::strip_port_suffix(address);
    let mut decoded = authentication();
    decoded
        .action("protocol_error")
        .failure()
        .text("reason", reason);
    decoded.source(host, port).then_some(decoded)
}

/// `ssh_dispatch_run_fatal: Connection from [authenticating user USER ]HOST port N: REASON`.
fn dispatch_fatal(text: &str, preauth: bool) -> Option<Decoded> {
    let rest = text.strip_prefix("ssh_dispatch_run_fatal: Connection from ")?;
    let (address, reason) = rest.split_once(": ")?;
    let (user, invalid, host, port) = closed_connection_party(address)?;
    let mut decoded = authentication();
    decoded.action("protocol_error").text("reason", reason);
    if let Some(user) = user {
        decoded.text("username", user);
    }
    if invalid {
        decoded.set("invaliduser", true);
    }
    if preauth {
        decoded.failure();
    }
    decoded.source(host, port).then_some(decoded)
}

/// `refused connect from NAME (HOST)` (TCP wrappers): the address in the parentheses.
fn refused_connect(text: &str) -> Option<Decoded> {
    let rest = text.strip_prefix("refused connect from ")?;
    let host = match rest
        .strip_suffix(')')
        .and_then(|inner| inner.rsplit_once(" ("))
    {
        Some((_, host)) => host,
        None => rest,
    };
    let mut decoded = authentication();
    decoded.action("refused_connect").failure();
    decoded.source(host, None).then_some(decoded)
}

/// `Address HOST maps to NAME, but this does not map back to the address - POSSIBLE BREAK-IN
/// ATTEMPT!` and `reverse mapping checking getaddrinfo for NAME [HOST] failed`: a DNS warning, not an
/// outcome.
fn reverse_mapping(text: &str) -> Option<Decoded> {
    let host = if let Some(rest) = text.strip_prefix("Address ") {
        let (host, rest) = rest.split_once(' ')?;
        if !rest.starts_with("maps to ") {
            return None;
        }
        host
    } else {
        let rest = text.strip_prefix("reverse mapping checking getaddrinfo for ")?;
        scan::between(rest, "[", "]")?.0
    };
    let mut decoded = authentication();
    decoded.action("reverse_mapping_mismatch");
    decoded.source(host, None).then_some(decoded)
}

/// `no matching mac found: ...`, `no matching cipher found: ...` (older OpenSSH, address from the
/// connection's earlier lines).
fn no_matching(text: &str) -> Option<Decoded> {
    if !text.starts_with("no matching ") {
        return None;
    }
    let mut decoded = authentication();
    decoded
        .action("negotiation_failed")
        .failure()
        .text("reason", text);
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decode;
    use serde_json::json;

    fn detail(message: &str, key: &str) -> serde_json::Value {
        let decoded = decode(message).unwrap_or_else(|| panic!("{message} did not decode"));
        decoded.details.get(key).cloned().unwrap_or(json!(null))
    }

    #[test]
    fn failed_password_is_an_authentication_failure_with_the_remote_end() {
        let decoded = decode("Failed password for alice from 203.0.113.9 port 50122 ssh2").unwrap();
        assert_eq!(decoded.category, "authentication");
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["action"], "login");
        assert_eq!(decoded.details["authmethod"], "password");
        assert_eq!(decoded.details["username"], "alice");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.9");
        assert_eq!(decoded.details["sourceport"], 50122);
    }

    #[test]
    fn accepted_publickey_is_a_success_with_the_key_details() {
        let message =
            "Accepted publickey for deploy from 2001:db8::7 port 4022 ssh2: ED25519 SHA256:abcDEF";
        assert_eq!(detail(message, "result"), "success");
        assert_eq!(detail(message, "authmethod"), "publickey");
        assert_eq!(detail(message, "sourceipaddress"), "2001:db8::7");
        assert_eq!(detail(message, "authinfo"), "ED25519 SHA256:abcDEF");
    }

    #[test]
    fn invalid_users_and_keyboard_interactive_submethods() {
        let message =
            "Failed keyboard-interactive/pam for invalid user oracle from 198.51.100.4 port 1 ssh2";
        assert_eq!(detail(message, "authmethod"), "keyboard-interactive");
        assert_eq!(detail(message, "invaliduser"), true);
        assert_eq!(detail(message, "username"), "oracle");
        let message = "Invalid user  from 198.51.100.5 port 4000";
        assert_eq!(detail(message, "username"), "");
        assert_eq!(detail(message, "action"), "invalid_user");
        assert_eq!(detail(message, "sourceipaddress"), "198.51.100.5");
    }

    #[test]
    fn a_user_name_carrying_an_address_does_not_move_the_source() {
        // The attacker logs in as "x from 6.6.6.6 port 1 ssh2"; sshd appends the real address.
        let message = "Failed password for invalid user x from 6.6.6.6 port 1 ssh2 from 192.0.2.80 port 40000 ssh2";
        assert_eq!(detail(message, "sourceipaddress"), "192.0.2.80");
        assert_eq!(detail(message, "username"), "x from 6.6.6.6 port 1 ssh2");
        let message = "Invalid user root from 6.6.6.6 from 192.0.2.81 port 22";
        assert_eq!(detail(message, "sourceipaddress"), "192.0.2.81");
        let message =
            "Connection closed by authenticating user a 6.6.6.6 port 9 192.0.2.82 port 3 [preauth]";
        assert_eq!(detail(message, "sourceipaddress"), "192.0.2.82");
        assert_eq!(detail(message, "username"), "a 6.6.6.6 port 9");
        let message = "error: PAM: Authentication failure for b from 6.6.6.6 from 192.0.2.83";
        assert_eq!(detail(message, "sourceipaddress"), "192.0.2.83");
    }

    #[test]
    fn two_whole_address_phrases_are_flagged_as_ambiguous() {
        // Either a user name "x from 6.6.6.6 port 1 ssh2: y" sent from 192.0.2.84, or text injected
        // after the real phrase: the first address is kept (as fail2ban reads it) and the doubt noted.
        let message = "Failed password for invalid user x from 6.6.6.6 port 1 ssh2: y from 192.0.2.84 port 40000 ssh2";
        assert_eq!(detail(message, "sourceipaddress"), "6.6.6.6");
        assert_eq!(detail(message, "sourceambiguous"), json!(true));
        let plain = "Accepted publickey for alice from 192.0.2.85 port 22 ssh2: ED25519 SHA256:abc";
        assert_eq!(detail(plain, "sourceipaddress"), "192.0.2.85");
        assert_eq!(detail(plain, "sourceambiguous"), json!(null));
    }

    #[test]
    fn preauth_disconnects_fail_and_logouts_do_not() {
        let message = "Connection closed by 192.0.2.9 port 40022 [preauth]";
        assert_eq!(detail(message, "result"), "failure");
        assert_eq!(detail(message, "preauth"), true);
        assert_eq!(
            detail("Connection closed by 192.0.2.9 port 40022", "result"),
            json!(null)
        );
        let message = "Disconnected from user carol 192.0.2.10 port 51000";
        assert_eq!(detail(message, "action"), "logout");
        assert_eq!(detail(message, "result"), json!(null));
        let message = "Received disconnect from 192.0.2.11 port 5000:11: disconnected by user";
        assert_eq!(detail(message, "result"), json!(null));
        assert_eq!(detail(message, "disconnectcode"), 11);
    }

    #[test]
    fn near_misses_do_not_decode_as_outcomes() {
        assert!(decode("Failed to release session: No such file").is_none());
        assert!(decode("Accepted the offer").is_none());
        let key_offer =
            decode("Failed publickey for deploy from 192.0.2.2 port 4 ssh2: RSA SHA256:x").unwrap();
        assert_eq!(key_offer.result(), None);
        assert_eq!(
            detail(
                "Failed publickey for invalid user x from 192.0.2.3 port 4 ssh2: RSA SHA256:y",
                "result"
            ),
            "failure"
        );
        assert!(decode("Server listening on 0.0.0.0 port 22.").is_none());
        assert!(
            decode("Postponed publickey for git from 192.0.2.1 port 57904 ssh2 [preauth]")
                .is_none()
        );
        let warning = decode(
            "Address 192.0.2.4 maps to x.example, but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!",
        )
        .unwrap();
        assert_eq!(warning.result(), None);
        assert_eq!(warning.details["sourceipaddress"], "192.0.2.4");
    }

    #[test]
    fn pre_authentication_probes_are_failures() {
        assert_eq!(
            detail(
                "Did not receive identification string from 192.0.2.12 port 5",
                "result"
            ),
            "failure"
        );
        assert_eq!(
            detail(
                "Unable to negotiate with 192.0.2.13 port 6: no matching cipher found. Their offer: x",
                "sourceport"
            ),
            6
        );
        assert_eq!(
            detail(
                "error: maximum authentication attempts exceeded for root from 192.0.2.14 port 7 ssh2 [preauth]",
                "action"
            ),
            "max_attempts"
        );
        assert_eq!(
            detail(
                "refused connect from probe.example (192.0.2.15)",
                "sourceipaddress"
            ),
            "192.0.2.15"
        );
    }
}
