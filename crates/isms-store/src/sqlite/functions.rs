//! SQL functions isms adds to its reading connections.
//!
//! `isms_summary_matches(summary, kind, argument)` decides a full-text test on one stored summary
//! exactly as the in-memory matcher does (`isms_query::matcher::summary_has_word` and friends), so the
//! SQL executor needs no tokenizer of its own: kind 0 is a word, 1 a word prefix, 2 a phrase whose
//! words are joined by U+001F (which no word can hold). Summary words used to live in an FTS5 table
//! whose tokenizer had to be kept in step with the matcher's; they are now tokens of the term index
//! (`terms.rs`), and this function is the exact row test beside them.
//!
//! `isms_in_network(text, network)` is 1 when `text` is an IP address inside `network` (`10.0.0.0/8`),
//! by `isms_query::network::text_is_in_network`; `isms_time_part(text, component)` is the component
//! (`minute`, `hour`, `day`, `week`, `month`, `year`) of `text` read as a UTC time, by
//! `isms_query::ir::TimeComponent::of_text`, or NULL when `text` is not a time. SQLite has no IP
//! type and cannot read the time formats `isms_event::parse_time` accepts; calling the matcher's own
//! code is what keeps the two executors from disagreeing on CIDR and time-part tests.
//!
//! SQLite calls the functions through its C interface, hence the `unsafe` below: they only read the
//! arguments SQLite hands over for the duration of the call and never let a panic cross into C.
use std::ffi::{c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

/// Separates the words of a phrase in the function's `argument`.
pub(crate) const PHRASE_SEPARATOR: char = '\u{1f}';

/// The `kind` argument of `isms_summary_matches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub(crate) enum TextKind {
    Word = 0,
    Prefix = 1,
    Phrase = 2,
}

/// A scalar function as SQLite calls it.
type ScalarFunction =
    unsafe extern "C" fn(*mut ffi::sqlite3_context, c_int, *mut *mut ffi::sqlite3_value);

/// The functions: name, number of arguments, implementation.
const FUNCTIONS: [(&std::ffi::CStr, c_int, ScalarFunction); 3] = [
    (c"isms_summary_matches", 3, summary_matches),
    (c"isms_in_network", 2, in_network),
    (c"isms_time_part", 2, time_part),
];

/// Registers the functions on a connection.
pub(super) async fn register(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let database = handle.as_raw_handle().as_ptr();
    for (name, argument_count, function) in FUNCTIONS {
        // SAFETY: `database` is the connection's open handle, held locked for this call; the name
        // is a NUL-terminated constant and the callback matches SQLite's scalar function signature.
        let code = unsafe {
            ffi::sqlite3_create_function_v2(
                database,
                name.as_ptr(),
                argument_count,
                ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
                std::ptr::null_mut::<c_void>(),
                Some(function),
                None,
                None,
                None,
            )
        };
        if code != ffi::SQLITE_OK {
            return Err(sqlx::Error::Configuration(
                format!(
                    "cannot register the SQL function {} (SQLite code {code})",
                    name.to_string_lossy()
                )
                .into(),
            ));
        }
    }
    Ok(())
}

/// `isms_in_network(text, network)`: `None` when the network is not one (the SQL compiler only
/// passes networks that parse).
fn decide_in_network(text: Option<&str>, network: Option<&str>) -> Option<bool> {
    let network: isms_query::network::IpNetwork = network?.parse().ok()?;
    Some(text.is_some_and(|text| isms_query::network::text_is_in_network(text, &network)))
}

/// `isms_time_part(text, component)`: `Err` for an unknown component, `Ok(None)` (NULL) when the
/// text is not a time.
fn decide_time_part(text: Option<&str>, component: Option<&str>) -> Result<Option<i64>, ()> {
    let component = component
        .and_then(isms_query::ir::TimeComponent::from_name)
        .ok_or(())?;
    Ok(text.and_then(|text| component.of_text(text)))
}

unsafe extern "C" fn in_network(
    context: *mut ffi::sqlite3_context,
    argument_count: c_int,
    arguments: *mut *mut ffi::sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if argument_count != 2 || arguments.is_null() {
            return None;
        }
        // SAFETY: SQLite passes `argument_count` (2) valid values for the duration of this call.
        unsafe { decide_in_network(text_argument(*arguments), text_argument(*arguments.add(1))) }
    }));
    // SAFETY: `context` is the current call's context.
    unsafe {
        match outcome {
            Ok(Some(inside)) => ffi::sqlite3_result_int(context, c_int::from(inside)),
            Ok(None) => {
                let message = c"isms_in_network: expected (text, a network such as 10.0.0.0/8)";
                ffi::sqlite3_result_error(context, message.as_ptr(), -1);
            }
            Err(_) => {
                let message = c"isms_in_network: internal error";
                ffi::sqlite3_result_error(context, message.as_ptr(), -1);
            }
        }
    }
}

unsafe extern "C" fn time_part(
    context: *mut ffi::sqlite3_context,
    argument_count: c_int,
    arguments: *mut *mut ffi::sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if argument_count != 2 || arguments.is_null() {
            return Err(());
        }
        // SAFETY: SQLite passes `argument_count` (2) valid values for the duration of this call.
        unsafe { decide_time_part(text_argument(*arguments), text_argument(*arguments.add(1))) }
    }));
    // SAFETY: `context` is the current call's context.
    unsafe {
        match outcome {
            Ok(Ok(Some(value))) => ffi::sqlite3_result_int64(context, value),
            Ok(Ok(None)) => ffi::sqlite3_result_null(context),
            Ok(Err(())) => {
                let message = c"isms_time_part: expected (text, minute|hour|day|week|month|year)";
                ffi::sqlite3_result_error(context, message.as_ptr(), -1);
            }
            Err(_) => {
                let message = c"isms_time_part: internal error";
                ffi::sqlite3_result_error(context, message.as_ptr(), -1);
            }
        }
    }
}

/// Decides one call; `None` when the arguments are not what the store writes.
fn decide(summary: Option<&str>, kind: i64, argument: Option<&str>) -> Option<bool> {
    let (Some(summary), Some(argument)) = (summary, argument) else {
        return Some(false);
    };
    Some(match kind {
        kind if kind == TextKind::Word as i64 => {
            isms_query::matcher::summary_has_word(summary, argument)
        }
        kind if kind == TextKind::Prefix as i64 => {
            isms_query::matcher::summary_has_prefix(summary, argument)
        }
        kind if kind == TextKind::Phrase as i64 => {
            let words: Vec<&str> = argument.split(PHRASE_SEPARATOR).collect();
            isms_query::matcher::summary_has_phrase(summary, &words)
        }
        _ => return None,
    })
}

/// The text of an argument; `None` for NULL, non-text values and invalid UTF-8.
///
/// # Safety
/// `value` must be an argument SQLite passed to the current call.
unsafe fn text_argument<'a>(value: *mut ffi::sqlite3_value) -> Option<&'a str> {
    // SAFETY: per the caller's contract; the text pointer stays valid until the call returns.
    unsafe {
        if ffi::sqlite3_value_type(value) != ffi::SQLITE_TEXT {
            return None;
        }
        let pointer = ffi::sqlite3_value_text(value);
        let length = usize::try_from(ffi::sqlite3_value_bytes(value)).ok()?;
        if pointer.is_null() {
            return (length == 0).then_some("");
        }
        std::str::from_utf8(std::slice::from_raw_parts(pointer, length)).ok()
    }
}

unsafe extern "C" fn summary_matches(
    context: *mut ffi::sqlite3_context,
    argument_count: c_int,
    arguments: *mut *mut ffi::sqlite3_value,
) {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if argument_count != 3 || arguments.is_null() {
            return None;
        }
        // SAFETY: SQLite passes `argument_count` (3) valid values for the duration of this call.
        unsafe {
            let summary = text_argument(*arguments);
            let kind = ffi::sqlite3_value_int64(*arguments.add(1));
            let argument = text_argument(*arguments.add(2));
            decide(summary, kind, argument)
        }
    }));
    // SAFETY: `context` is the current call's context.
    unsafe {
        match outcome {
            Ok(Some(matched)) => ffi::sqlite3_result_int(context, c_int::from(matched)),
            Ok(None) => {
                let message = c"isms_summary_matches: expected (summary, kind 0-2, text)";
                ffi::sqlite3_result_error(context, message.as_ptr(), -1);
            }
            Err(_) => {
                let message = c"isms_summary_matches: internal error";
                ffi::sqlite3_result_error(context, message.as_ptr(), -1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decides_like_the_matcher() {
        let summary = "Failed password for ROOT from 10.0.0.1";
        assert_eq!(decide(Some(summary), 0, Some("root")), Some(true));
        assert_eq!(decide(Some(summary), 0, Some("roo")), Some(false));
        assert_eq!(decide(Some(summary), 1, Some("pass")), Some(true));
        assert_eq!(
            decide(Some(summary), 2, Some("password\u{1f}for")),
            Some(true)
        );
        assert_eq!(
            decide(Some(summary), 2, Some("for\u{1f}password")),
            Some(false)
        );
        assert_eq!(decide(None, 0, Some("root")), Some(false));
        assert_eq!(decide(Some(summary), 7, Some("root")), None);
    }

    #[test]
    fn networks_and_time_parts_are_decided_by_the_matchers_code() {
        assert_eq!(
            decide_in_network(Some("10.1.2.3"), Some("10.0.0.0/8")),
            Some(true)
        );
        assert_eq!(
            decide_in_network(Some("::ffff:10.1.2.3"), Some("10.0.0.0/8")),
            Some(false)
        );
        assert_eq!(decide_in_network(None, Some("10.0.0.0/8")), Some(false));
        assert_eq!(
            decide_in_network(Some("10.1.2.3"), Some("10.0.0.0/33")),
            None
        );
        assert_eq!(
            decide_time_part(Some("2024-01-30T13:24:43+01:00"), Some("hour")),
            Ok(Some(12))
        );
        assert_eq!(decide_time_part(Some("noon"), Some("hour")), Ok(None));
        assert_eq!(decide_time_part(None, Some("week")), Ok(None));
        assert_eq!(decide_time_part(Some("1"), Some("second")), Err(()));
    }
}
