//! Durations as rules write them: `90s`, `5m`, `1h30m`, `7d`, `2w`, `250ms`.
//!
//! Rules state windows, look-backs and lateness in these; the engine keeps microseconds. A bare number
//! is refused (is `300` seconds or minutes?), and so is anything longer than ten years, which no window
//! needs and which would only overflow arithmetic on event times.

/// The longest duration accepted, in microseconds (ten years of 365 days).
pub const MAX_DURATION_MICROS: i64 = 10 * 365 * 86_400 * 1_000_000;

/// Reads a duration into microseconds, or says what is wrong with it.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("a duration is empty (write e.g. 5m, 90s, 1h30m)".to_owned());
    }
    let mut total: i64 = 0;
    let mut rest = trimmed;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!(
                "`{trimmed}` is not a duration: expected a number at `{rest}` (write e.g. 5m, 90s, 1h30m)"
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{trimmed}` is too long a duration"))?;
        rest = rest[digits..].trim_start();
        let unit_length = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_length];
        rest = rest[unit_length..].trim_start();
        let micros_per_unit: i64 = match unit {
            "ms" => 1_000,
            "s" => 1_000_000,
            "m" => 60_000_000,
            "h" => 3_600_000_000,
            "d" => 86_400_000_000,
            "w" => 7 * 86_400_000_000,
            "" => {
                return Err(format!(
                    "`{trimmed}` has no unit: write ms, s, m, h, d or w after the number (e.g. {number}s)"
                ));
            }
            other => {
                return Err(format!(
                    "`{trimmed}` has the unknown unit `{other}`: use ms, s, m, h, d or w"
                ));
            }
        };
        total = number
            .checked_mul(micros_per_unit)
            .and_then(|part| total.checked_add(part))
            .filter(|&sum| sum <= MAX_DURATION_MICROS)
            .ok_or_else(|| format!("`{trimmed}` is longer than ten years"))?;
    }
    Ok(total)
}

/// The shortest way back to text: `5m`, `1h30m`, `90s`, `250ms`, `0s`.
pub fn format_duration(micros: i64) -> String {
    if micros == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    let mut rest = micros;
    for (unit, size) in [
        ("w", 7 * 86_400_000_000),
        ("d", 86_400_000_000),
        ("h", 3_600_000_000),
        ("m", 60_000_000),
        ("s", 1_000_000),
        ("ms", 1_000),
    ] {
        if rest >= size {
            text.push_str(&format!("{}{unit}", rest / size));
            rest %= size;
        }
    }
    if rest > 0 {
        // Below a millisecond: not written by rules, shown exactly anyway.
        text.push_str(&format!("{rest}us"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_their_units_and_combine() {
        assert_eq!(parse_duration("5m"), Ok(300_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000));
        assert_eq!(parse_duration("1h 30m"), Ok(5_400_000_000));
        assert_eq!(parse_duration("250ms"), Ok(250_000));
        assert_eq!(parse_duration("2w"), Ok(14 * 86_400_000_000));
        assert_eq!(parse_duration("0s"), Ok(0));
    }

    #[test]
    fn a_duration_without_unit_or_with_a_wrong_one_says_so() {
        assert!(parse_duration("300").unwrap_err().contains("no unit"));
        assert!(
            parse_duration("5 minutes")
                .unwrap_err()
                .contains("unknown unit")
        );
        assert!(
            parse_duration("-5m")
                .unwrap_err()
                .contains("expected a number")
        );
        assert!(parse_duration("").unwrap_err().contains("empty"));
        assert!(parse_duration("11000d").unwrap_err().contains("ten years"));
        assert!(parse_duration("99999999999999999999s").is_err());
    }

    #[test]
    fn formatting_gives_back_what_parsing_reads() {
        for text in ["5m", "1h30m", "90s", "250ms", "2w3d", "0s"] {
            let micros = parse_duration(text).unwrap();
            assert_eq!(parse_duration(&format_duration(micros)), Ok(micros));
        }
        assert_eq!(format_duration(90_000_000), "1m30s");
    }
}
