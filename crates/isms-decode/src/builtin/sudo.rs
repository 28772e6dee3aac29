//! sudo's policy log: `USER : [REASON ; ]TTY=t ; PWD=p ; USER=target ; [KEY=v ; ]COMMAND=cmd`.
//!
//! Category `authorization`: sudo decides whether USER may run a command as another user. A line
//! with only key=value items is a command that ran (success); a leading reason (`3 incorrect
//! password attempts`, `user NOT in sudoers`, `command not allowed`, `a password is required`) is a
//! refusal (failure). `COMMAND=` is always last and runs to the end of the line, so a command that
//! itself contains ` ; ` stays whole. sudo's PAM lines go to the PAM decoder.
use crate::builtin::pam;
use crate::decoded::Decoded;
use crate::scan;

const NAME: &str = "sudo";

/// Decodes one sudo message.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = message.trim();
    policy_line(text).or_else(|| pam::decode(text))
}

fn policy_line(text: &str) -> Option<Decoded> {
    let (user, rest) = text.split_once(" : ")?;
    if user.is_empty() || user.contains(' ') {
        return None;
    }
    let mut decoded = Decoded::builtin(NAME, "authorization");
    decoded.text("username", user);
    let mut reason = None;
    let mut saw_item = false;
    let mut remaining = rest;
    loop {
        if let Some(command) = remaining.strip_prefix("COMMAND=") {
            decoded.text("command", command);
            saw_item = true;
            break;
        }
        let (item, next) = match remaining.split_once(" ; ") {
            Some((item, next)) => (item, Some(next)),
            None => (remaining, None),
        };
        match item.split_once('=') {
            Some((key, value))
                if !key.is_empty() && key.bytes().all(|b| b.is_ascii_uppercase()) =>
            {
                saw_item = true;
                match key {
                    "TTY" => decoded.text("tty", value),
                    "PWD" => decoded.text("pwd", value),
                    "USER" => decoded.text("targetuser", value),
                    "GROUP" => decoded.text("targetgroup", value),
                    "TSID" => decoded.text("tsid", value),
                    "ENV" => decoded.text("environment", value),
                    _ => &mut decoded,
                };
            }
            _ if !saw_item && reason.is_none() => reason = Some(item),
            _ => return None,
        }
        match next {
            Some(next) => remaining = next,
            None => break,
        }
    }
    if !saw_item {
        return None;
    }
    match reason {
        None => {
            decoded.action("command").success();
        }
        Some(reason) => {
            decoded.action("command").failure().text("reason", reason);
            let (count, after) = scan::leading_digits(reason);
            if after.starts_with(" incorrect password attempt")
                && let Some(attempts) = scan::parse_count(count)
            {
                decoded.set("attempts", attempts);
            }
        }
    }
    Some(decoded)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn a_command_that_ran_is_an_authorization_success() {
        let decoded = decode(
            "   frank : TTY=pts/3 ; PWD=/srv/app ; USER=root ; COMMAND=/usr/bin/systemctl restart app ; echo done",
        )
        .unwrap();
        assert_eq!(decoded.category, "authorization");
        assert_eq!(decoded.details["result"], "success");
        assert_eq!(decoded.details["username"], "frank");
        assert_eq!(decoded.details["targetuser"], "root");
        assert_eq!(decoded.details["tty"], "pts/3");
        assert_eq!(decoded.details["pwd"], "/srv/app");
        assert_eq!(
            decoded.details["command"],
            "/usr/bin/systemctl restart app ; echo done"
        );
    }

    #[test]
    fn refusals_are_failures_with_the_reason() {
        let decoded = decode(
            "gina : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/gina ; USER=root ; COMMAND=/bin/bash",
        )
        .unwrap();
        assert_eq!(decoded.details["result"], "failure");
        assert_eq!(decoded.details["attempts"], 3);
        let decoded = decode(
            "hal : user NOT in sudoers ; TTY=pts/2 ; PWD=/tmp ; USER=root ; COMMAND=/bin/id",
        )
        .unwrap();
        assert_eq!(decoded.details["reason"], "user NOT in sudoers");
        assert_eq!(decoded.details["result"], "failure");
    }

    #[test]
    fn a_user_name_cannot_smuggle_fields_and_near_misses_do_not_match() {
        assert!(decode("evil user : TTY=pts/0 ; USER=root ; COMMAND=/bin/id").is_none());
        assert!(
            decode("unable to execute /usr/sbin/sendmail: No such file or directory").is_none()
        );
        assert!(decode("ivy : (command continued) more text").is_none());
        let pam = decode(
            "pam_unix(sudo:auth): authentication failure; logname=ivy uid=1000 euid=0 tty=/dev/pts/0 ruser=ivy rhost=  user=ivy",
        )
        .unwrap();
        assert_eq!(pam.decoder, "pam");
    }
}
