//! Reading and writing event times.
//!
//! Every time the project writes is [`format_time`]: RFC 3339 in UTC with exactly six fractional
//! digits and an explicit `+00:00` offset, so stored times sort as text and compare as text.
//! Every time it reads goes through [`parse_time`] or [`parse_time_value`], which accept what log
//! shippers actually send (see the table in the crate documentation).

use jiff::Timestamp;
use jiff::civil::Time;
use jiff::fmt::temporal::Pieces;
use jiff::tz::Offset;
use serde_json::Value;

use crate::util::{kind_of, truncate};

/// Why a text or JSON value is not a time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeError {
    /// The text was empty or only whitespace.
    #[error("the time is empty")]
    Empty,
    /// The text is neither RFC 3339 / ISO 8601 nor an epoch number.
    #[error(
        "cannot read {text:?} as a time ({reason}); expected RFC 3339 / ISO 8601 such as \
         2014-01-30T13:24:43+00:00, or a number of seconds, milliseconds, microseconds or \
         nanoseconds since the Unix epoch"
    )]
    Unrecognized {
        /// The offending text (cut to a reasonable length).
        text: String,
        /// What the parser objected to.
        reason: String,
    },
    /// The text is a time, but outside the supported range.
    #[error("the time {text:?} is outside the supported range (years -9999 to 9999)")]
    OutOfRange {
        /// The offending text (cut to a reasonable length).
        text: String,
    },
    /// The JSON value is neither a string nor a number.
    #[error("expected a time as a string or a number, found {found}")]
    WrongType {
        /// What was found instead, e.g. "an array".
        found: &'static str,
    },
}

/// Maximum number of characters of user input quoted back in an error.
const QUOTE_LIMIT: usize = 100;

/// Parses a time written as text.
///
/// Accepted, after trimming surrounding whitespace:
/// - RFC 3339 / ISO 8601 with an offset: `2014-02-14T11:48:19.035762739-05:00`, `...Z`, `+0500`,
///   a space instead of `T`, a comma before the fraction, up to nine fractional digits;
/// - the same without an offset, which is read as UTC; a date alone is midnight UTC;
/// - an RFC 9557 time zone annotation (`[America/New_York]`) when no offset is given, if the time
///   zone database is available;
/// - RFC 2822 (`Fri, 14 Feb 2014 11:48:19 -0500`);
/// - a decimal number (optionally signed, with a fraction or an exponent): seconds since the Unix
///   epoch if its magnitude is below 1e11, milliseconds below 1e14, microseconds below 1e17,
///   otherwise nanoseconds. Digits beyond the nanosecond are dropped.
pub fn parse_time(text: &str) -> Result<Timestamp, TimeError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(TimeError::Empty);
    }
    if let Some(result) = parse_epoch(text) {
        return result;
    }
    let iso_error = match parse_iso(text) {
        Ok(timestamp) => return Ok(timestamp),
        Err(error) => error,
    };
    if let Ok(timestamp) = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(text) {
        return Ok(timestamp);
    }
    Err(iso_error)
}

/// Parses a time given as a JSON value: a string (see [`parse_time`]) or a number (epoch, with
/// the same magnitude rule as numeric strings).
pub fn parse_time_value(value: &Value) -> Result<Timestamp, TimeError> {
    match value {
        Value::String(text) => parse_time(text),
        Value::Number(number) => {
            let text = if let Some(i) = number.as_i64() {
                i.to_string()
            } else if let Some(u) = number.as_u64() {
                u.to_string()
            } else if let Some(f) = number.as_f64() {
                // Rust prints every finite f64 as a plain decimal (no exponent), exactly enough
                // digits to round-trip.
                format!("{f}")
            } else {
                number.to_string()
            };
            match parse_epoch(&text) {
                Some(result) => result,
                None => Err(TimeError::Unrecognized {
                    text: truncate(&text, QUOTE_LIMIT),
                    reason: "not a decimal number".to_owned(),
                }),
            }
        }
        other => Err(TimeError::WrongType {
            found: kind_of(other),
        }),
    }
}

/// Formats microseconds since the Unix epoch the way every stored time is written:
/// `2014-01-30T13:24:43.123456+00:00`. Always UTC, always six fractional digits.
///
/// Values outside the supported range (years -9999 to 9999) are clamped to its ends, so this
/// never fails. Years outside 0000–9999 use the signed six-digit ISO 8601 form (`-000001`), which
/// [`parse_time`] reads back.
pub fn format_time(micros: i64) -> String {
    let timestamp = Timestamp::from_microsecond(micros).unwrap_or(if micros < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    let dt = Offset::UTC.to_datetime(timestamp);
    let year = i32::from(dt.year());
    // Written by hand into a fixed buffer: this runs twice per event on the ingest path.
    let mut text = DigitWriter::default();
    if (0..=9999).contains(&year) {
        text.digits(year.unsigned_abs(), 4);
    } else {
        text.byte(if year < 0 { b'-' } else { b'+' });
        text.digits(year.unsigned_abs(), 6);
    }
    for (separator, value) in [
        (b'-', dt.month() as u32),
        (b'-', dt.day() as u32),
        (b'T', dt.hour() as u32),
        (b':', dt.minute() as u32),
        (b':', dt.second() as u32),
    ] {
        text.byte(separator);
        text.digits(value, 2);
    }
    text.byte(b'.');
    text.digits(dt.subsec_nanosecond().unsigned_abs() / 1000, 6);
    for byte in *b"+00:00" {
        text.byte(byte);
    }
    text.into_string()
}

/// ASCII text of at most [`DigitWriter::CAPACITY`] bytes (the longest time,
/// `-009999-01-02T01:59:59.000000+00:00`, has 35), written without growing a `String`.
struct DigitWriter {
    bytes: [u8; DigitWriter::CAPACITY],
    length: usize,
}

impl Default for DigitWriter {
    fn default() -> DigitWriter {
        DigitWriter {
            bytes: [0; DigitWriter::CAPACITY],
            length: 0,
        }
    }
}

impl DigitWriter {
    const CAPACITY: usize = 40;

    fn byte(&mut self, byte: u8) {
        self.bytes[self.length] = byte;
        self.length += 1;
    }

    /// `value` in decimal, zero-padded to `width` digits. Every caller's value fits its width (jiff's
    /// years stop at 9999, sub-second micros below 1,000,000).
    fn digits(&mut self, mut value: u32, width: usize) {
        debug_assert!(
            u64::from(value) < 10u64.pow(width as u32),
            "{value} wider than {width} digits"
        );
        for slot in self.bytes[self.length..self.length + width]
            .iter_mut()
            .rev()
        {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        self.length += width;
    }

    fn into_string(self) -> String {
        // Only ASCII digits and separators were written, so this never falls back to the empty text.
        std::str::from_utf8(&self.bytes[..self.length])
            .unwrap_or_default()
            .to_owned()
    }
}

/// Microseconds since the Unix epoch (sub-microsecond digits are truncated toward zero).
pub fn micros_of(timestamp: Timestamp) -> i64 {
    timestamp.as_microsecond()
}

/// RFC 3339 / ISO 8601 / RFC 9557 text. Without an offset or a time zone the text is UTC.
fn parse_iso(text: &str) -> Result<Timestamp, TimeError> {
    let unrecognized = |reason: String| TimeError::Unrecognized {
        text: truncate(text, QUOTE_LIMIT),
        reason,
    };
    let out_of_range = |_| TimeError::OutOfRange {
        text: truncate(text, QUOTE_LIMIT),
    };
    let pieces = Pieces::parse(text).map_err(|e| unrecognized(e.to_string()))?;
    let datetime = pieces
        .date()
        .to_datetime(pieces.time().unwrap_or(Time::midnight()));
    if let Some(offset) = pieces.to_numeric_offset() {
        return offset.to_timestamp(datetime).map_err(out_of_range);
    }
    match pieces.to_time_zone() {
        Ok(Some(zone)) => zone.to_timestamp(datetime).map_err(out_of_range),
        Ok(None) => Offset::UTC.to_timestamp(datetime).map_err(out_of_range),
        Err(e) => Err(unrecognized(e.to_string())),
    }
}

/// True if `text` would be read as an epoch number rather than as a calendar time.
pub(crate) fn is_epoch_text(text: &str) -> bool {
    parse_epoch(text.trim()).is_some()
}

/// If `text` is a decimal number (`[+-]digits[.digits][e[+-]digits]`), converts it exactly (no
/// floating point) with the magnitude rule; `None` if it is not a number at all.
fn parse_epoch(text: &str) -> Option<Result<Timestamp, TimeError>> {
    let bytes = text.as_bytes();
    let mut at = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let int_start = at;
    while at < bytes.len() && bytes[at].is_ascii_digit() {
        at += 1;
    }
    let int_digits = &text[int_start..at];
    let mut frac_digits = "";
    if at < bytes.len() && bytes[at] == b'.' {
        at += 1;
        let frac_start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        frac_digits = &text[frac_start..at];
    }
    if int_digits.is_empty() && frac_digits.is_empty() {
        return None;
    }
    let mut exponent: i64 = 0;
    if at < bytes.len() && (bytes[at] == b'e' || bytes[at] == b'E') {
        at += 1;
        let exp_negative = match bytes.get(at) {
            Some(b'-') => {
                at += 1;
                true
            }
            Some(b'+') => {
                at += 1;
                false
            }
            _ => false,
        };
        let exp_start = at;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            exponent = exponent
                .saturating_mul(10)
                .saturating_add(i64::from(bytes[at] - b'0'));
            at += 1;
        }
        if at == exp_start {
            return None;
        }
        if exp_negative {
            exponent = -exponent;
        }
    }
    if at != bytes.len() {
        return None;
    }

    let out_of_range = || TimeError::OutOfRange {
        text: truncate(text, QUOTE_LIMIT),
    };
    // value = digits × 10^scale, with `digits` free of leading zeros.
    let all_digits = format!("{int_digits}{frac_digits}");
    let digits = all_digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(Ok(Timestamp::UNIX_EPOCH));
    }
    let count = i64::try_from(digits.len()).unwrap_or(i64::MAX);
    let frac_len = i64::try_from(frac_digits.len()).unwrap_or(i64::MAX);
    let scale = exponent.saturating_sub(frac_len);
    // The integer part of the value has `magnitude` digits: value < 10^k  <=>  magnitude <= k.
    let magnitude = count.saturating_add(scale);
    let unit_exponent = match magnitude {
        ..=11 => 9,   // seconds
        12..=14 => 6, // milliseconds
        15..=17 => 3, // microseconds
        _ => 0,       // nanoseconds
    };
    let nanos_digits = magnitude.saturating_add(unit_exponent);
    if nanos_digits > 25 {
        return Some(Err(out_of_range()));
    }
    let shift = scale.saturating_add(unit_exponent);
    let nanos_text = if shift >= 0 {
        // nanos_digits <= 25, so shift is small here.
        let zeros = usize::try_from(shift).unwrap_or(0);
        format!("{digits}{}", "0".repeat(zeros))
    } else {
        let keep = nanos_digits;
        if keep <= 0 {
            String::from("0")
        } else {
            let keep = usize::try_from(keep).unwrap_or(0);
            digits[..keep.min(digits.len())].to_owned()
        }
    };
    let Ok(mut nanos) = nanos_text.parse::<i128>() else {
        return Some(Err(out_of_range()));
    };
    if negative {
        nanos = -nanos;
    }
    Some(Timestamp::from_nanosecond(nanos).map_err(|_| out_of_range()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn micros(text: &str) -> i64 {
        micros_of(parse_time(text).unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    fn iso(text: &str) -> String {
        format_time(micros(text))
    }

    const T: i64 = 1_391_088_283_000_000; // 2014-01-30T13:24:43Z

    #[test]
    fn rfc3339_with_offsets() {
        assert_eq!(micros("2014-01-30T13:24:43+00:00"), T);
        assert_eq!(micros("2014-01-30T13:24:43Z"), T);
        assert_eq!(micros("2014-01-30T13:24:43z"), T);
        assert_eq!(micros("2014-01-30T14:24:43+01:00"), T);
        assert_eq!(micros("2014-01-30T14:24:43+0100"), T);
        assert_eq!(micros("2014-01-30T08:24:43-05:00"), T);
        assert_eq!(micros("2014-01-30T13:24:43-00:00"), T);
        assert_eq!(
            iso("2014-02-14T11:48:19.035762739-05:00"),
            "2014-02-14T16:48:19.035762+00:00"
        );
        assert_eq!(micros("2014-01-30T13:24:43.5Z"), T + 500_000);
        assert_eq!(micros("2014-01-30T13:24:43,25Z"), T + 250_000);
    }

    #[test]
    fn space_separator_and_whitespace() {
        assert_eq!(micros("2014-01-30 13:24:43+00:00"), T);
        assert_eq!(micros("  2014-01-30 13:24:43.000001Z\n"), T + 1);
        assert_eq!(micros("2014-01-30t13:24:43Z"), T);
    }

    #[test]
    fn without_offset_is_utc() {
        assert_eq!(micros("2014-01-30T13:24:43"), T);
        assert_eq!(micros("2014-01-30 13:24:43.123456"), T + 123_456);
        assert_eq!(
            micros("2014-01-30"),
            T - (13 * 3600 + 24 * 60 + 43) * 1_000_000
        );
    }

    #[test]
    fn offset_annotation() {
        assert_eq!(micros("2014-01-30T14:24:43[+01:00]"), T);
        assert_eq!(micros("2014-01-30T14:24:43+01:00[Europe/Paris]"), T);
    }

    #[test]
    fn rfc2822() {
        assert_eq!(micros("Thu, 30 Jan 2014 08:24:43 -0500"), T);
    }

    #[test]
    fn epoch_magnitudes() {
        assert_eq!(micros("1391088283"), T);
        assert_eq!(micros("1391088283.5"), T + 500_000);
        assert_eq!(micros("1391088283123"), T + 123_000);
        assert_eq!(micros("1391088283123.5"), T + 123_500);
        assert_eq!(micros("1391088283123456"), T + 123_456);
        assert_eq!(micros("1391088283123456789"), T + 123_456);
        assert_eq!(micros("1.391088283e9"), T);
        assert_eq!(micros("0"), 0);
        assert_eq!(micros("0.000001"), 1);
        assert_eq!(micros("-1.5"), -1_500_000);
        assert_eq!(micros("+60"), 60_000_000);
        // Boundaries: 99_999_999_999 is seconds, 100_000_000_000 is milliseconds.
        assert_eq!(micros("99999999999"), 99_999_999_999_000_000);
        assert_eq!(micros("100000000000"), 100_000_000_000_000);
        assert_eq!(micros("99999999999999"), 99_999_999_999_999_000);
        assert_eq!(micros("100000000000000"), 100_000_000_000_000);
        assert_eq!(micros("99999999999999999"), 99_999_999_999_999_999);
        assert_eq!(micros("100000000000000000"), 100_000_000_000_000);
    }

    #[test]
    fn epoch_json_numbers() {
        let at = |v: Value| micros_of(parse_time_value(&v).unwrap());
        assert_eq!(at(json!(1391088283)), T);
        assert_eq!(at(json!(1391088283123u64)), T + 123_000);
        assert_eq!(at(json!(1391088283.25)), T + 250_000);
        assert_eq!(at(json!(1391088283123.0)), T + 123_000);
        assert_eq!(at(json!("1391088283")), T);
        assert_eq!(at(json!(-86400)), -86_400_000_000);
        assert!(matches!(
            parse_time_value(&json!(1e300)),
            Err(TimeError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_time_value(&json!(1e25)),
            Err(TimeError::OutOfRange { .. })
        ));
        // The largest integers are nanoseconds, well inside the range.
        assert_eq!(at(json!(u64::MAX)), 18_446_744_073_709_551);
        assert_eq!(at(json!(i64::MIN)), -9_223_372_036_854_775);
    }

    #[test]
    fn wrong_values() {
        assert_eq!(parse_time(""), Err(TimeError::Empty));
        assert_eq!(parse_time("   "), Err(TimeError::Empty));
        for bad in [
            "yesterday",
            "2014-02-30T00:00:00Z",
            "2014-01-30T25:00:00Z",
            "1.2.3",
            "-",
            ".",
            "1e",
            "12abc",
            "2014-01-30T13:24:43.1234567891Z",
        ] {
            assert!(
                matches!(parse_time(bad), Err(TimeError::Unrecognized { .. })),
                "{bad}: {:?}",
                parse_time(bad)
            );
        }
        assert!(matches!(
            parse_time("1e999999999999999999999"),
            Err(TimeError::OutOfRange { .. })
        ));
        assert_eq!(parse_time("1e-999999999999999999999").map(micros_of), Ok(0));
        assert!(matches!(
            parse_time("99999-01-01T00:00:00Z"),
            Err(TimeError::Unrecognized { .. } | TimeError::OutOfRange { .. })
        ));
        for value in [json!(null), json!(true), json!([1]), json!({"a": 1})] {
            assert!(matches!(
                parse_time_value(&value),
                Err(TimeError::WrongType { .. })
            ));
        }
        let message = parse_time("yesterday").unwrap_err().to_string();
        assert!(
            message.starts_with("cannot read \"yesterday\" as a time"),
            "{message}"
        );
    }

    #[test]
    fn format_is_fixed_width_utc() {
        assert_eq!(format_time(T), "2014-01-30T13:24:43.000000+00:00");
        assert_eq!(format_time(T + 123_456), "2014-01-30T13:24:43.123456+00:00");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000000+00:00");
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999999+00:00");
        // Clamped to the ends of jiff's range.
        assert_eq!(format_time(i64::MAX), "9999-12-30T22:00:00.999999+00:00");
        assert_eq!(format_time(i64::MIN), "-009999-01-02T01:59:59.000000+00:00");
    }

    #[test]
    fn format_round_trips() {
        for m in [
            0,
            1,
            -1,
            T,
            T + 999_999,
            253_402_207_200_999_999,
            -62_135_596_800_000_000,
        ] {
            assert_eq!(micros(&format_time(m)), m, "{}", format_time(m));
        }
        let before_year_zero = -62_167_219_200_000_001;
        assert_eq!(micros(&format_time(before_year_zero)), before_year_zero);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn format_then_parse_is_identity(
                m in Timestamp::MIN.as_microsecond()..=Timestamp::MAX.as_microsecond()
            ) {
                prop_assert_eq!(micros_of(parse_time(&format_time(m)).unwrap()), m);
            }

            #[test]
            fn any_text_never_panics(text in ".{0,64}") {
                let _ = parse_time(&text);
            }

            #[test]
            fn numberish_text_never_panics(text in "[-+]?[0-9]{0,30}(\\.[0-9]{0,30})?([eE][-+]?[0-9]{0,25})?") {
                let _ = parse_time(&text);
            }

            #[test]
            fn any_float_never_panics(f in proptest::num::f64::ANY) {
                if let Some(n) = serde_json::Number::from_f64(f) {
                    let _ = parse_time_value(&Value::Number(n));
                }
            }
        }
    }
}
