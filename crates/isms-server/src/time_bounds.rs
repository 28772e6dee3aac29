//! Time bounds in query strings: `now`, relative (`-15m`, `now-2h`, `7d`), or absolute times.
//!
//! People type relative times; scripts send absolute ones. Both are accepted wherever a time bound is
//! (`from`, `to` of the search API, `isms search --from`).

/// Parses a time bound relative to `now_micros`; the error says what forms are accepted.
pub fn parse_time_bound(text: &str, now_micros: i64) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("now") {
        return Ok(now_micros);
    }
    let relative = trimmed.strip_prefix("now").unwrap_or(trimmed);
    if let Some(offset) = parse_relative(relative) {
        return Ok(now_micros.saturating_add(offset));
    }
    isms_event::parse_time(trimmed).map(isms_event::micros_of).map_err(|error| {
        format!("{text:?} is not a time: use \"now\", a relative time like \"-15m\" or \"now-2h\" (units s, m, h, d, w), or a date such as 2024-05-01T12:00:00Z ({error})")
    })
}

/// `-15m` → minus 15 minutes in µs; `+1h`, `1h` → plus.
fn parse_relative(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'-' => (-1i64, &text[1..]),
        b'+' => (1, &text[1..]),
        _ => (1, text),
    };
    parse_duration_micros(rest)?.checked_mul(sign)
}

/// A duration such as `30s`, `5m`, `1h`, `1d` or `2w`, in microseconds; `None` unless it is a whole
/// non-negative number followed by one of those units.
pub fn parse_duration_micros(text: &str) -> Option<i64> {
    let unit = text.chars().last()?;
    let amount: i64 = text[..text.len() - unit.len_utf8()]
        .parse()
        .ok()
        .filter(|amount| *amount >= 0)?;
    let unit_micros: i64 = match unit {
        's' => 1_000_000,
        'm' => 60_000_000,
        'h' => 3_600_000_000,
        'd' => 86_400_000_000,
        'w' => 604_800_000_000,
        _ => return None,
    };
    amount.checked_mul(unit_micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_bounds() {
        let now = 1_000_000_000_000_000;
        assert_eq!(parse_time_bound("now", now), Ok(now));
        assert_eq!(parse_time_bound("-15m", now), Ok(now - 900_000_000));
        assert_eq!(parse_time_bound("now-2h", now), Ok(now - 7_200_000_000));
        assert_eq!(parse_time_bound("1d", now), Ok(now + 86_400_000_000));
        assert_eq!(parse_time_bound("1970-01-01T00:00:01Z", now), Ok(1_000_000));
        assert!(
            parse_time_bound("yesterday", now)
                .unwrap_err()
                .contains("is not a time")
        );
        assert!(parse_time_bound("-99999999999999w", now).is_err());
    }
}
