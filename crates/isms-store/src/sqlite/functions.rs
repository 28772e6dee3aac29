//! SQL functions isms adds to its reading connections.
//!
//! `isms_summary_matches(summary, kind, argument)` decides a full-text test on one stored summary
//! exactly as the in-memory matcher does (`isms_query::matcher::summary_has_word` and friends), so the
//! SQL executor needs no tokenizer of its own: kind 0 is a word, 1 a word prefix, 2 a phrase whose
//! words are joined by U+001F (which no word can hold). Summary words used to live in an FTS5 table
//! whose tokenizer had to be kept in step with the matcher's; they are now tokens of the term index
//! (`terms.rs`), and this function is the exact row test beside them.
//!
//! SQLite calls the function through its C interface, hence the `unsafe` below: it only reads the
//! arguments SQLite hands over for the duration of the call and never lets a panic cross into C.
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

/// Registers the functions on a connection.
pub(super) async fn register(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = connection.lock_handle().await?;
    let database = handle.as_raw_handle().as_ptr();
    // SAFETY: `database` is the connection's open handle, held locked for this call; the name is a
    // NUL-terminated constant and the callback matches SQLite's scalar function signature.
    let code = unsafe {
        ffi::sqlite3_create_function_v2(
            database,
            c"isms_summary_matches".as_ptr(),
            3,
            ffi::SQLITE_UTF8 | ffi::SQLITE_DETERMINISTIC | ffi::SQLITE_INNOCUOUS,
            std::ptr::null_mut::<c_void>(),
            Some(summary_matches),
            None,
            None,
            None,
        )
    };
    if code == ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(sqlx::Error::Configuration(
            format!("cannot register the SQL function isms_summary_matches (SQLite code {code})")
                .into(),
        ))
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
}
