//! Account lifecycle from shadow-utils (useradd, userdel, usermod, groupadd, groupdel, groupmod,
//! gpasswd, passwd, chpasswd, chage, chfn, chsh): category `account`, `action` the tool's verb,
//! `username` / `group` the account changed, `result` success unless the tool says it failed.
use crate::builtin::pam;
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "account";

/// Decodes one message of `program` (one of the shadow-utils tools).
pub(crate) fn decode(program: &str, message: &str) -> Option<Decoded> {
    let text = message.trim();
    lifecycle(program, text).or_else(|| pam::decode(text))
}

fn event(action: &'static str) -> Decoded {
    let mut decoded = Decoded::builtin(NAME, "account");
    decoded.action(action).success();
    decoded
}

/// `name=x, UID=1, GID=2, home=/h, shell=/s, from=/dev/pts/0` into details (the first of each).
fn read_assignments(decoded: &mut Decoded, text: &str, name_key: &str) {
    for item in text.split(", ") {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        let key = match key {
            "name" => name_key,
            "UID" | "uid" => "uid",
            "GID" | "gid" => "gid",
            "home" => "home",
            "shell" => "shell",
            "from" => "tty",
            _ => continue,
        };
        // The first value counts: a later home= or shell= cannot name another account.
        if !decoded.details.contains_key(key) {
            decoded.text(key, value.trim());
        }
    }
}

/// The first `'quoted'` value after `prefix`.
fn quoted_after<'a>(text: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    scan::quoted(text.strip_prefix(prefix)?)
}

fn lifecycle(program: &str, text: &str) -> Option<Decoded> {
    if let Some(rest) = text.strip_prefix("new user: ") {
        let mut decoded = event("useradd");
        read_assignments(&mut decoded, rest, "username");
        return Some(decoded);
    }
    if let Some(rest) = text
        .strip_prefix("new group: ")
        .or_else(|| text.strip_prefix("group added to "))
    {
        let rest = rest.split_once(": ").map_or(rest, |(_, after)| after);
        let mut decoded = event("groupadd");
        read_assignments(&mut decoded, rest, "group");
        return Some(decoded);
    }
    if let Some(rest) = text.strip_prefix("failed adding user ") {
        let mut decoded = event("useradd");
        decoded.failure();
        if let Some((user, reason)) = scan::quoted(rest) {
            decoded.text("username", user);
            decoded.text_unless_empty("reason", reason.trim_start_matches([',', ' ']));
        }
        return Some(decoded);
    }
    if let Some((user, _)) = quoted_after(text, "delete user ") {
        let mut decoded = event("userdel");
        decoded.text("username", user);
        return Some(decoded);
    }
    if let Some((group, rest)) =
        quoted_after(text, "removed group ").or_else(|| quoted_after(text, "removed shadow group "))
    {
        let mut decoded = event("groupdel");
        decoded.text("group", group);
        if let Some((owner, _)) = quoted_after(rest, " owned by ") {
            decoded.text("username", owner);
        }
        return Some(decoded);
    }
    if let Some((group, _)) = quoted_after(text, "group ")
        && text.contains("' removed")
    {
        let mut decoded = event("groupdel");
        decoded.text("group", group);
        return Some(decoded);
    }
    if let Some((user, rest)) = quoted_after(text, "add ") {
        let rest = rest
            .strip_prefix(" to shadow group ")
            .or_else(|| rest.strip_prefix(" to group "))?;
        let (group, _) = scan::quoted(rest)?;
        let mut decoded = event("add_to_group");
        decoded.text("username", user).text("group", group);
        return Some(decoded);
    }
    if let Some((user, rest)) = quoted_after(text, "user ")
        .or_else(|| text.strip_prefix("user ")?.split_once(' '))
        .filter(|(user, _)| !user.is_empty())
        && let Some(rest) = rest.trim_start().strip_prefix("added by ")
    {
        // gpasswd: `user 'U' added by root to group 'G'`, and as shadow-utils writes it, unquoted:
        // `user U added by root to group G` (and `... to shadow group G` for /etc/gshadow).
        let mut decoded = event("add_to_group");
        decoded.text("username", user);
        if let Some((by, rest)) = rest.split_once(' ') {
            decoded.text("byuser", by);
            let group = rest
                .strip_prefix("to group ")
                .or_else(|| rest.strip_prefix("to shadow group "));
            if let Some(group) = group {
                let group = match scan::quoted(group) {
                    Some((quoted, _)) => quoted,
                    None => group.split_whitespace().next().unwrap_or(""),
                };
                decoded.text_unless_empty("group", group);
            }
        }
        return Some(decoded);
    }
    if let Some((user, rest)) = quoted_after(text, "change user ") {
        let mut decoded = event("usermod");
        decoded.text("username", user);
        decoded.text_unless_empty("change", rest.trim());
        return Some(decoded);
    }
    if let Some((user, _)) = quoted_after(text, "lock user ") {
        let mut decoded = event("usermod");
        decoded.text("username", user).text("change", "lock");
        return Some(decoded);
    }
    if let Some((user, _)) = quoted_after(text, "unlock user ") {
        let mut decoded = event("usermod");
        decoded.text("username", user).text("change", "unlock");
        return Some(decoded);
    }
    if let Some(rest) = text.strip_prefix("group changed in ") {
        let mut decoded = event("groupmod");
        decoded.text("change", rest);
        return Some(decoded);
    }
    if let Some(user) = text.strip_prefix("changed password expiry for ") {
        let mut decoded = event("chage");
        decoded.text("username", user);
        return Some(decoded);
    }
    if let Some((user, _)) = quoted_after(text, "changed user ") {
        // chfn / chsh: `changed user 'U' information` / `changed user 'U' shell`
        let mut decoded = event(if program == "chsh" { "chsh" } else { "chfn" });
        decoded.text("username", user);
        return Some(decoded);
    }
    if let Some((user, rest)) = quoted_after(text, "password for ")
        && rest.starts_with(" changed")
    {
        let mut decoded = event("passwd");
        decoded.text("username", user);
        if let Some((by, _)) = quoted_after(rest, " changed by ") {
            decoded.text("byuser", by);
        }
        return Some(decoded);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn creations_deletions_and_changes() {
        let decoded = decode(
            "useradd",
            "new user: name=quinn, UID=1007, GID=1007, home=/home/quinn, shell=/bin/zsh, from=/dev/pts/2",
        )
        .unwrap();
        assert_eq!(decoded.category, "account");
        assert_eq!(decoded.details["action"], "useradd");
        assert_eq!(decoded.details["username"], "quinn");
        assert_eq!(decoded.details["uid"], "1007");
        assert_eq!(decoded.details["shell"], "/bin/zsh");
        let decoded = decode("groupadd", "new group: name=builders, GID=1500").unwrap();
        assert_eq!(decoded.details["action"], "groupadd");
        assert_eq!(decoded.details["group"], "builders");
        let decoded = decode("userdel", "delete user 'rita'").unwrap();
        assert_eq!(decoded.details["action"], "userdel");
        let decoded = decode("usermod", "add 'sam' to group 'wheel'").unwrap();
        assert_eq!(decoded.details["group"], "wheel");
        for line in [
            "user 'sam' added by root to group 'wheel'",
            "user sam added by root to group wheel",
            "user sam added by root to shadow group wheel",
        ] {
            let decoded = decode("gpasswd", line).unwrap();
            assert_eq!(decoded.details["action"], "add_to_group", "{line}");
            assert_eq!(decoded.details["username"], "sam", "{line}");
            assert_eq!(decoded.details["byuser"], "root", "{line}");
            assert_eq!(decoded.details["group"], "wheel", "{line}");
        }
        let decoded = decode("chage", "changed password expiry for tom").unwrap();
        assert_eq!(decoded.details["action"], "chage");
        let decoded = decode(
            "passwd",
            "pam_unix(passwd:chauthtok): password changed for uma",
        )
        .unwrap();
        assert_eq!(decoded.details["action"], "passwd");
    }

    #[test]
    fn a_failed_creation_is_a_failure_and_near_misses_do_not_match() {
        let decoded = decode("useradd", "failed adding user 'vic', exit code: 9").unwrap();
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["username"], "vic");
        assert!(decode("useradd", "new users are welcome").is_none());
        assert!(decode("usermod", "add sugar to coffee").is_none());
        // A home or shell cannot rename the account: the first name= and UID= count.
        let decoded = decode(
            "useradd",
            "new user: name=eve, UID=1005, GID=1005, home=/x, name=root, UID=0, shell=/bin/sh",
        )
        .unwrap();
        assert_eq!(decoded.details["username"], "eve");
        assert_eq!(decoded.details["uid"], "1005");
    }
}
