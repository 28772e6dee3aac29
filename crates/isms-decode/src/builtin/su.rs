//! su: the shadow-utils, util-linux, BSD and older Linux wordings of "USER became TARGET" and "USER
//! failed to become TARGET".
//!
//! Category `authentication` (su asks for the target user's password), `action` `su`, `username` the
//! user who ran su and `targetuser` the account asked for. The target is whatever the user typed,
//! so each wording is split from the side su itself writes (the user, the terminal).
use crate::builtin::pam;
use crate::decoded::{Decoded, Outcome};
use crate::scan;

const NAME: &str = "su";

/// Decodes one su message.
pub(crate) fn decode(message: &str) -> Option<Decoded> {
    let text = message.trim();
    switch(text).or_else(|| pam::decode(text))
}

fn result(outcome: Outcome, user: &str, target: &str, tty: Option<&str>) -> Decoded {
    let mut decoded = Decoded::builtin(NAME, "authentication");
    decoded.action("su").outcome(outcome);
    decoded.text_unless_empty("username", user);
    decoded.text_unless_empty("targetuser", target);
    if let Some(tty) = tty {
        decoded.text_unless_empty("tty", tty);
    }
    decoded
}

fn switch(text: &str) -> Option<Decoded> {
    // shadow-utils: `Successful su for TARGET by USER`, `FAILED su for TARGET by USER`.
    if let Some(rest) = text.strip_prefix("Successful su for ") {
        let (target, user) = rest.rsplit_once(" by ")?;
        return Some(result(Outcome::Success, user, target, None));
    }
    if let Some(rest) = scan::strip_prefix_ignore_case(text, "FAILED su for ") {
        let (target, user) = rest.rsplit_once(" by ")?;
        return Some(result(Outcome::Failure, user, target, None));
    }
    // shadow-utils: `+ TTY USER:TARGET` (success) and `- TTY USER:TARGET` (failure).
    if let Some((sign, rest)) = text
        .strip_prefix("+ ")
        .map(|rest| (Outcome::Success, rest))
        .or_else(|| text.strip_prefix("- ").map(|rest| (Outcome::Failure, rest)))
    {
        let (tty, users) = rest.split_once(' ')?;
        let (user, target) = users.split_once(':')?;
        return Some(result(sign, user, target, Some(tty)));
    }
    // Debian's su: `(to TARGET) USER on TTY`; a failure is `FAILED SU (to TARGET) USER on TTY`.
    let (outcome, rest) = match text.strip_prefix("FAILED SU (to ") {
        Some(rest) => (Outcome::Failure, Some(rest)),
        None => (Outcome::Success, text.strip_prefix("(to ")),
    };
    if let Some(rest) = rest {
        let (head, tty) = rest.rsplit_once(" on ").unwrap_or((rest, ""));
        let (target, user) = head.rsplit_once(") ")?;
        return Some(result(outcome, user, target, Some(tty)));
    }
    // BSD: `BAD SU USER to TARGET on TTY`; `USER to TARGET on TTY` (success).
    if let Some(rest) = text.strip_prefix("BAD SU ") {
        let (user, rest) = rest.split_once(" to ")?;
        let (target, tty) = rest.rsplit_once(" on ").unwrap_or((rest, ""));
        return Some(result(Outcome::Failure, user, target, Some(tty)));
    }
    // Older Linux: `failed: TTY changing from USER to TARGET`.
    if let Some(rest) = text.strip_prefix("failed: ") {
        let (tty, rest) = rest.split_once(" changing from ")?;
        let (user, target) = rest.split_once(" to ")?;
        return Some(result(Outcome::Failure, user, target, Some(tty)));
    }
    // Some distributions' su: `Authentication failed for TARGET`.
    if let Some(target) = text.strip_prefix("Authentication failed for ") {
        return Some(result(Outcome::Failure, "", target, None));
    }
    // util-linux: `pam_authenticate: Authentication failure` (who and whom are in the PAM line).
    if let Some(reason) = text.strip_prefix("pam_authenticate: ") {
        let mut decoded = result(Outcome::Failure, "", "", None);
        decoded.text("reason", reason);
        return Some(decoded);
    }
    // `USER to TARGET on TTY`
    let (user, rest) = text.split_once(" to ")?;
    let (target, tty) = rest.rsplit_once(" on ")?;
    if user.contains(' ') || target.contains(' ') || !tty.starts_with("/dev/") {
        return None;
    }
    Some(result(Outcome::Success, user, target, Some(tty)))
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn every_wording_gives_user_target_and_outcome() {
        let cases = [
            ("Successful su for root by jack", "success", "jack", "root"),
            ("FAILED su for root by jack", "failure", "jack", "root"),
            ("+ pts/4 kim:root", "success", "kim", "root"),
            ("- pts/4 kim:root", "failure", "kim", "root"),
            ("(to postgres) lee on pts/1", "success", "lee", "postgres"),
            ("FAILED SU (to root) lee on pts/1", "failure", "lee", "root"),
            ("BAD SU max to root on /dev/ttyp2", "failure", "max", "root"),
            (
                "failed: ttyq1 changing from ned to root",
                "failure",
                "ned",
                "root",
            ),
            ("olga to root on /dev/ttyp5", "success", "olga", "root"),
            ("Authentication failed for root", "failure", "", "root"),
        ];
        for (line, result, user, target) in cases {
            let decoded = decode(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(decoded.category, "authentication", "{line}");
            assert_eq!(decoded.details["result"], result, "{line}");
            if !user.is_empty() {
                assert_eq!(decoded.details["username"], user, "{line}");
            }
            assert_eq!(decoded.details["targetuser"], target, "{line}");
        }
    }

    #[test]
    fn a_typed_target_cannot_pass_for_the_user() {
        // `su "nobody by root"` run by mallory.
        let decoded = decode("FAILED su for nobody by root by mallory").unwrap();
        assert_eq!(decoded.details["username"], "mallory");
        assert_eq!(decoded.details["targetuser"], "nobody by root");
        let decoded = decode("FAILED SU (to x) root) mallory on pts/3").unwrap();
        assert_eq!(decoded.details["username"], "mallory");
        assert_eq!(decoded.details["targetuser"], "x) root");
    }

    #[test]
    fn pam_failures_and_near_misses() {
        assert_eq!(
            decode("pam_authenticate: Authentication failure")
                .unwrap()
                .details["result"],
            "failure"
        );
        assert_eq!(
            decode("pam_unix(su:session): session opened for user root by pat(uid=1000)")
                .unwrap()
                .category,
            "session"
        );
        assert!(decode("Switching to another user").is_none());
        assert!(decode("go to the shop on monday").is_none());
    }
}
