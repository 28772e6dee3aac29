//! The built-in decoders, chosen by program name.
//!
//! Dispatch is one `match` on the program (its last path component, postfix's `postfix/...` by its
//! prefix), so a line is only ever looked at by the parser of its own daemon, which tells its
//! message kinds apart by their first bytes. Programs without a decoder of their own still get the
//! program-agnostic ones: PAM (any program may log through PAM) and Snort alerts (sensors relay
//! them under various names).
mod account;
mod cron;
mod dovecot;
mod dropbear;
mod ftp;
pub(crate) mod pam;
mod postfix;
pub(crate) mod snort;
mod sshd;
mod su;
mod sudo;

use crate::decoded::Decoded;

/// The daemon families with a decoder of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Sshd,
    Sudo,
    Su,
    Account,
    Cron,
    Vsftpd,
    Proftpd,
    Dropbear,
    Postfix,
    Dovecot,
    Snort,
    Other,
}

fn family(program: &str) -> Family {
    if program.starts_with("postfix") {
        return Family::Postfix;
    }
    let base = match program.rfind('/') {
        Some(slash) => &program[slash + 1..],
        None => program,
    };
    match base {
        "sshd" | "sshd-session" | "sshd-auth" => Family::Sshd,
        "sudo" => Family::Sudo,
        "su" => Family::Su,
        "useradd" | "userdel" | "usermod" | "groupadd" | "groupdel" | "groupmod" | "gpasswd"
        | "passwd" | "chpasswd" | "chage" | "chfn" | "chsh" | "newusers" | "adduser"
        | "addgroup" | "deluser" | "delgroup" => Family::Account,
        "cron" | "CRON" | "crond" | "CROND" => Family::Cron,
        "vsftpd" => Family::Vsftpd,
        "proftpd" => Family::Proftpd,
        "dropbear" => Family::Dropbear,
        "dovecot" | "dovecot-auth" | "auth" | "auth-worker" | "imap-login" | "pop3-login"
        | "managesieve-login" | "submission-login" | "lmtp" | "imap" | "pop3" => Family::Dovecot,
        "snort" | "snort3" => Family::Snort,
        _ => Family::Other,
    }
}

/// Decodes `message` logged by `program` with the built-in decoders.
pub(crate) fn decode(program: &str, message: &str) -> Option<Decoded> {
    match family(program) {
        Family::Sshd => sshd::decode(message),
        Family::Sudo => sudo::decode(message),
        Family::Su => su::decode(message),
        Family::Account => account::decode(program, message),
        Family::Cron => cron::decode(message),
        Family::Vsftpd => ftp::decode_vsftpd(message),
        Family::Proftpd => ftp::decode_proftpd(message),
        Family::Dropbear => dropbear::decode(message),
        Family::Postfix => postfix::decode(message),
        Family::Dovecot => dovecot::decode(message),
        Family::Snort => snort::decode(message),
        Family::Other => decode_any_program(message),
    }
}

/// The decoders that apply whatever the program: PAM, Snort alerts, and vsftpd's own log file lines
/// (which carry no program name).
fn decode_any_program(message: &str) -> Option<Decoded> {
    let text = message.trim_start();
    if let Some(decoded) = pam::decode(text) {
        return Some(decoded);
    }
    // A relay's tag before the program's own (`pam: gdm-password[1600]: pam_unix(...)`).
    if let Some(at) = text
        .get(..64.min(text.len()))
        .and_then(|head| head.find(": pam_"))
        && let Some(decoded) = pam::decode(&text[at + 2..])
    {
        return Some(decoded);
    }
    if text.starts_with("[pid ") {
        return ftp::decode_vsftpd(text);
    }
    if snort::looks_like_alert(text) {
        return snort::decode(text);
    }
    None
}
