//! cron (Debian's `CRON`, cronie's `crond`, `cron`): `(USER) CMD (COMMAND)` is a job that ran,
//! category `execution` like an audited execve (a rule about "what ran as root" reads both);
//! `(USER) REPLACE (USER)`, `(USER) BEGIN EDIT`, `(USER) DELETE` are crontab changes, category
//! `configuration`. cron's PAM session lines go to the PAM decoder (category `session`).
use crate::builtin::pam;
use crate::decoded::Decoded;

const NAME: &str = "cron";

/// Decodes one cron message.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = message.trim();
    job_or_edit(text).or_else(|| pam::decode(text))
}

fn job_or_edit(text: &str) -> Option<Decoded> {
    let inside = text.strip_prefix('(')?;
    let (user, rest) = inside.split_once(") ")?;
    if user.is_empty() || user.contains(' ') {
        return None;
    }
    if let Some(command) = rest.strip_prefix("CMD (") {
        let command = command.strip_suffix(')').unwrap_or(command);
        let mut decoded = Decoded::builtin(NAME, "execution");
        decoded
            .action("command")
            .text("username", user)
            .text("command", command);
        return Some(decoded);
    }
    let verb = rest.split([' ', '(']).next().unwrap_or("");
    let action = match verb {
        "REPLACE" => "crontab_replace",
        "BEGIN" => "crontab_edit",
        "END" => "crontab_edit",
        "DELETE" => "crontab_delete",
        "LIST" => "crontab_list",
        _ => return None,
    };
    let mut decoded = Decoded::builtin(NAME, "configuration");
    decoded.action(action).text("username", user);
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn jobs_edits_and_near_misses() {
        let decoded =
            decode("(backup) CMD (/usr/local/bin/backup --full > /dev/null 2>&1)").unwrap();
        assert_eq!(decoded.category, "execution");
        assert_eq!(decoded.details["username"], "backup");
        assert_eq!(
            decoded.details["command"],
            "/usr/local/bin/backup --full > /dev/null 2>&1"
        );
        let decoded = decode("(root) REPLACE (root)").unwrap();
        assert_eq!(decoded.details["action"], "crontab_replace");
        let decoded =
            decode("pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)")
                .unwrap();
        assert_eq!(decoded.category, "session");
        assert!(decode("(CRON) INFO (pidfile fd = 3)").is_none());
        // The command is the user's own text; the user is cron's.
        let decoded = decode("(alice) CMD (true) (root) CMD (x)").unwrap();
        assert_eq!(decoded.details["username"], "alice");
        assert!(decode("(root) MAIL (mailed 1 byte of output)").is_none());
    }
}
