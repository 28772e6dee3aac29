//! PAM messages, in whichever program's log they appear (sshd, su, sudo, login, vsftpd, dovecot,
//! cron, passwd...): `pam_unix(SERVICE:TYPE): ...`, the pre-0.99 `(pam_unix) ...`, the bare forms
//! some programs log, and `PAM N more authentication failures`.
//!
//! `authentication failure; logname= uid= euid= tty= ruser= rhost= user=` has two fields a client
//! can fill with spaces and `rhost=` text (`ruser` and `user` are names the client sent), so the
//! remote host is the first `rhost=` value that is followed by the end or by `user=`, and the user
//! name is what is left around it.
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "pam";

/// Decodes a PAM message; `None` when `message` is not one.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = message.trim();
    let (module, service, body) = split_prefix(text)?;
    let mut decoded = decode_body(body)?;
    if let Some(module) = module {
        decoded.text("pammodule", module);
    }
    if let Some(service) = service {
        decoded.text_unless_empty("service", service);
    }
    Some(decoded)
}

/// The module, the PAM service and the message after the module's prefix. Bare bodies (without a
/// prefix) are accepted only for the phrases that can only come from PAM.
fn split_prefix(text: &str) -> Option<(Option<&str>, Option<&str>, &str)> {
    if let Some(rest) = text.strip_prefix("pam_") {
        let name_end = rest
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))?;
        let module = &text[..4 + name_end];
        let after = &rest[name_end..];
        if let Some(inside) = after.strip_prefix('(') {
            let (context, body) = inside.split_once("): ")?;
            let service = context.split_once(':').map(|(service, _)| service);
            return Some((Some(module), service, body));
        }
        let body = after.strip_prefix(": ")?;
        return Some((Some(module), None, body));
    }
    if let Some(body) = text.strip_prefix("(pam_unix) ") {
        return Some((Some("pam_unix"), None, body));
    }
    if let Some(body) = text.strip_prefix("PAM ")
        && body.as_bytes().first().is_some_and(u8::is_ascii_digit)
    {
        return Some((None, None, body));
    }
    let bare = [
        "authentication failure; ",
        "check pass; user unknown",
        "session opened for user ",
        "session closed for user ",
        "password changed for ",
    ];
    if bare.iter().any(|phrase| text.starts_with(phrase))
        || text.as_bytes().first().is_some_and(u8::is_ascii_digit)
            && text.contains(" more authentication failures; ")
    {
        return Some((None, None, text));
    }
    None
}

fn authentication() -> Decoded {
    Decoded::builtin(NAME, "authentication")
}

fn decode_body(body: &str) -> Option<Decoded> {
    if let Some(fields) = body.strip_prefix("authentication failure; ") {
        let mut decoded = authentication();
        decoded.action("login").failure();
        read_auth_fields(&mut decoded, fields);
        return Some(decoded);
    }
    if body == "authentication failure" || body == "Authentication failure" {
        let mut decoded = authentication();
        decoded.action("login").failure();
        return Some(decoded);
    }
    if let Some((count, rest)) = body.split_once(' ')
        && let Some(fields) = rest.strip_prefix("more authentication failures; ")
    {
        let attempts = scan::parse_count(count)?;
        let mut decoded = authentication();
        decoded.action("login").failure().set("attempts", attempts);
        read_auth_fields(&mut decoded, fields);
        return Some(decoded);
    }
    if let Some(rest) = body.strip_prefix("session opened for user ") {
        return Some(session(rest, "session_opened"));
    }
    if let Some(rest) = body.strip_prefix("session closed for user ") {
        return Some(session(rest, "session_closed"));
    }
    if body.starts_with("check pass; user unknown") {
        let mut decoded = authentication();
        decoded
            .action("login")
            .failure()
            .text("reason", "user unknown");
        return Some(decoded);
    }
    if let Some(user) = body.strip_prefix("password changed for ") {
        let mut decoded = Decoded::builtin(NAME, "account");
        decoded
            .action("passwd")
            .success()
            .text("username", user.trim());
        return Some(decoded);
    }
    if let Some(rest) = body.strip_prefix("requirement ") {
        let at = rest.rfind(" not met by user ")?;
        let user = rest[at + 17..].trim_matches('"');
        let mut decoded = authentication();
        decoded.action("login").failure();
        decoded.text("reason", &format!("requirement {} not met", &rest[..at]));
        decoded.text("username", user);
        return Some(decoded);
    }
    if let Some(rest) = body.strip_prefix("auth could not identify password for ") {
        let mut decoded = authentication();
        decoded.action("login").failure();
        decoded.text("username", rest.trim_matches(['[', ']']));
        return Some(decoded);
    }
    None
}

/// `USER[(uid=N)] by [LOGIN][(uid=M)]` or just `USER`.
fn session(rest: &str, action: &'static str) -> Decoded {
    let mut decoded = Decoded::builtin(NAME, "session");
    decoded.action(action);
    let (user, by) = match rest.split_once(" by ") {
        Some((user, by)) => (user, Some(by)),
        None => (rest.trim_end(), None),
    };
    let (user, uid) = split_uid(user);
    decoded.text("username", user);
    if let Some(uid) = uid {
        decoded.text("uid", uid);
    }
    if let Some(by) = by {
        let (by_user, by_uid) = split_uid(by.trim_end());
        decoded.text_unless_empty("byuser", by_user);
        if let Some(uid) = by_uid {
            decoded.text("byuid", uid);
        }
    }
    decoded
}

/// `name(uid=N)`: the name and N.
fn split_uid(text: &str) -> (&str, Option<&str>) {
    match text
        .strip_suffix(')')
        .and_then(|inner| inner.rsplit_once("(uid="))
    {
        Some((name, uid)) => (name, Some(uid)),
        None => (text, None),
    }
}

/// `logname=L uid=U euid=E tty=T ruser=R rhost=H[  user=N]`.
fn read_auth_fields(decoded: &mut Decoded, fields: &str) {
    let token_after = |key: &str| -> Option<&str> {
        let at = fields.find(key)?;
        let value = &fields[at + key.len()..];
        Some(value.split(char::is_whitespace).next().unwrap_or(""))
    };
    if let Some((logname, _)) = scan::between(fields, "logname=", " uid=") {
        decoded.text_unless_empty("logname", logname.trim());
    }
    if let Some(uid) = token_after(" uid=") {
        decoded.text_unless_empty("uid", uid);
    }
    if let Some(tty) = scan::between(fields, "tty=", " ruser=")
        .map(|(tty, _)| tty)
        .or_else(|| token_after("tty="))
    {
        decoded.text_unless_empty("tty", tty.trim());
    }
    let Some(ruser_at) = fields.find("ruser=") else {
        return;
    };
    let after_ruser = &fields[ruser_at + 6..];
    let mut search_from = 0;
    let mut chosen = None;
    while let Some(found) = after_ruser
        .get(search_from..)
        .and_then(|rest| rest.find(" rhost="))
    {
        let at = search_from + found;
        let value_start = at + 7;
        let value_end = after_ruser[value_start..]
            .find(char::is_whitespace)
            .map_or(after_ruser.len(), |end| value_start + end);
        let tail = after_ruser[value_end..].trim_start();
        if tail.is_empty() || tail.starts_with("user=") {
            chosen = Some((at, &after_ruser[value_start..value_end], tail));
            break;
        }
        search_from = at + 1;
    }
    let (ruser, rhost, user) = match chosen {
        Some((at, rhost, tail)) => (
            &after_ruser[..at],
            rhost,
            tail.strip_prefix("user=").map(str::trim),
        ),
        None => (after_ruser.trim_end(), "", None),
    };
    decoded.text_unless_empty("ruser", ruser);
    match user.filter(|user| !user.is_empty()) {
        Some(user) => {
            decoded.text("username", user);
        }
        None if !ruser.is_empty() => {
            decoded.text("username", ruser);
        }
        None => {}
    }
    if !rhost.is_empty() {
        decoded.source(rhost, None);
    }
}

#[cfg(test)]
mod tests {
    use super::decode;
    use serde_json::json;

    #[test]
    fn authentication_failure_reads_every_field() {
        let decoded = decode(
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.7  user=admin",
        )
        .unwrap();
        assert_eq!(decoded.category, "authentication");
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["service"], "sshd");
        assert_eq!(decoded.details["pammodule"], "pam_unix");
        assert_eq!(decoded.details["username"], "admin");
        assert_eq!(decoded.details["tty"], "ssh");
        assert_eq!(decoded.details["sourceipaddress"], "203.0.113.7");
    }

    #[test]
    fn an_rhost_inside_a_user_name_is_not_the_remote_host() {
        let decoded = decode(
            "pam_unix(ftp:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser=bob rhost=6.6.6.6 rhost=198.51.100.20",
        )
        .unwrap();
        assert_eq!(decoded.details["sourceipaddress"], "198.51.100.20");
        assert_eq!(decoded.details["username"], "bob rhost=6.6.6.6");
        let decoded = decode(
            "pam_unix(ftp:auth): authentication failure; logname= uid=0 euid=0 tty=ftp ruser= rhost=198.51.100.21 user=eve rhost=6.6.6.6",
        )
        .unwrap();
        assert_eq!(decoded.details["sourceipaddress"], "198.51.100.21");
        assert_eq!(decoded.details["username"], "eve rhost=6.6.6.6");
    }

    #[test]
    fn sessions_more_failures_and_password_changes() {
        let decoded =
            decode("pam_unix(sudo:session): session opened for user root(uid=0) by dave(uid=1000)")
                .unwrap();
        assert_eq!(decoded.category, "session");
        assert_eq!(decoded.details["action"], "session_opened");
        assert_eq!(decoded.details["username"], "root");
        assert_eq!(decoded.details["byuser"], "dave");
        let decoded = decode("pam_unix(cron:session): session closed for user root").unwrap();
        assert_eq!(decoded.details["action"], "session_closed");
        let decoded = decode(
            "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.1  user=root",
        )
        .unwrap();
        assert_eq!(decoded.details["attempts"], 2);
        assert_eq!(decoded.details["result"], "failure");
        let decoded = decode("pam_unix(passwd:chauthtok): password changed for erin").unwrap();
        assert_eq!(decoded.category, "account");
        assert_eq!(decoded.details["username"], "erin");
        let decoded = decode(
            "pam_succeed_if(sshd:auth): requirement \"uid >= 1000\" not met by user \"root\"",
        )
        .unwrap();
        assert_eq!(decoded.details["username"], "root");
        assert_eq!(decoded.details.get("sourceipaddress"), None);
    }

    #[test]
    fn near_misses_are_not_pam() {
        assert!(decode("pam_unix(sshd:auth): unknown thing happened").is_none());
        assert!(decode("authentication failure for alice").is_none());
        assert!(decode("pam_unix").is_none());
        assert!(decode("PAM service(sshd) ignoring max retries; 5 > 3").is_none());
        assert_eq!(
            decode("pam_unix(su:auth): authentication failure; logname= uid=1 euid=0 tty=pts/0 ruser= rhost=")
                .unwrap()
                .details
                .get("sourceipaddress"),
            None::<&serde_json::Value>
        );
        let _ = json!(null);
    }
}
