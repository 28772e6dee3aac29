//! RFC 5424 severities, the only severities an event carries.

use std::fmt;

use serde_json::Value;

/// An RFC 5424 severity. The derived order follows the RFC numbering, so the most severe level
/// compares as the smallest: `Severity::Emergency < Severity::Debug`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Severity {
    /// 0: system is unusable.
    Emergency,
    /// 1: action must be taken immediately.
    Alert,
    /// 2: critical conditions.
    Critical,
    /// 3: error conditions.
    Error,
    /// 4: warning conditions.
    Warning,
    /// 5: normal but significant condition.
    Notice,
    /// 6: informational messages. The default.
    #[default]
    Info,
    /// 7: debug-level messages.
    Debug,
}

impl Severity {
    /// All severities, most severe first (index = RFC 5424 number).
    pub const ALL: [Severity; 8] = [
        Severity::Emergency,
        Severity::Alert,
        Severity::Critical,
        Severity::Error,
        Severity::Warning,
        Severity::Notice,
        Severity::Info,
        Severity::Debug,
    ];

    /// The stored, upper-case name: "EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING",
    /// "NOTICE", "INFO", "DEBUG".
    pub fn name(self) -> &'static str {
        match self {
            Severity::Emergency => "EMERGENCY",
            Severity::Alert => "ALERT",
            Severity::Critical => "CRITICAL",
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Notice => "NOTICE",
            Severity::Info => "INFO",
            Severity::Debug => "DEBUG",
        }
    }

    /// The RFC 5424 number, 0 (EMERGENCY) to 7 (DEBUG).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The severity with this RFC 5424 number, if it is 0 to 7.
    pub fn from_number(number: u64) -> Option<Severity> {
        usize::try_from(number)
            .ok()
            .and_then(|i| Severity::ALL.get(i).copied())
    }

    /// Reads a severity from a JSON value, case-insensitively and ignoring surrounding spaces:
    /// the eight names; the syslog and logging spellings `informational`, `warn`, `err`, `crit`,
    /// `emerg`, `panic` (EMERGENCY), `fatal` (CRITICAL), `trace` (DEBUG); the Sigma levels `low`
    /// (NOTICE), `medium` (WARNING), `high` (ERROR), `critical`; and the numbers 0 to 7, as JSON
    /// numbers or numeric strings. Anything else is `None`.
    pub fn parse(value: &Value) -> Option<Severity> {
        match value {
            Value::String(text) => Severity::parse_text(text),
            Value::Number(number) => {
                if let Some(u) = number.as_u64() {
                    Severity::from_number(u)
                } else {
                    let f = number.as_f64()?;
                    if f.fract() == 0.0 && (0.0..=7.0).contains(&f) {
                        // Exact: f is an integer between 0 and 7.
                        Severity::from_number(f as u64)
                    } else {
                        None
                    }
                }
            }
            _ => None,
        }
    }

    fn parse_text(text: &str) -> Option<Severity> {
        let text = text.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            return text.parse::<u64>().ok().and_then(Severity::from_number);
        }
        let severity = match text.to_ascii_lowercase().as_str() {
            "emergency" | "emerg" | "panic" => Severity::Emergency,
            "alert" => Severity::Alert,
            "critical" | "crit" | "fatal" => Severity::Critical,
            "error" | "err" | "high" => Severity::Error,
            "warning" | "warn" | "medium" => Severity::Warning,
            "notice" | "low" => Severity::Notice,
            "info" | "informational" => Severity::Info,
            "debug" | "trace" => Severity::Debug,
            _ => return None,
        };
        Some(severity)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_numbers() {
        for (i, severity) in Severity::ALL.into_iter().enumerate() {
            assert_eq!(usize::from(severity.number()), i);
            assert_eq!(Severity::parse(&json!(severity.name())), Some(severity));
            assert_eq!(
                Severity::parse(&json!(severity.name().to_lowercase())),
                Some(severity)
            );
            assert_eq!(Severity::parse(&json!(i)), Some(severity));
            assert_eq!(Severity::parse(&json!(i.to_string())), Some(severity));
            assert_eq!(Severity::parse(&json!(i as f64)), Some(severity));
            assert_eq!(severity.to_string(), severity.name());
        }
        assert!(Severity::Emergency < Severity::Debug);
        assert_eq!(Severity::default(), Severity::Info);
    }

    #[test]
    fn every_alias() {
        let cases = [
            ("informational", Severity::Info),
            ("Info", Severity::Info),
            ("warn", Severity::Warning),
            ("WARN", Severity::Warning),
            ("err", Severity::Error),
            ("crit", Severity::Critical),
            ("emerg", Severity::Emergency),
            ("panic", Severity::Emergency),
            ("fatal", Severity::Critical),
            ("trace", Severity::Debug),
            ("notice", Severity::Notice),
            ("low", Severity::Notice),
            ("medium", Severity::Warning),
            ("High", Severity::Error),
            ("critical", Severity::Critical),
            (" alert ", Severity::Alert),
            ("07", Severity::Debug),
        ];
        for (text, expected) in cases {
            assert_eq!(Severity::parse(&json!(text)), Some(expected), "{text}");
        }
    }

    #[test]
    fn rejects_the_rest() {
        for value in [
            json!("loud"),
            json!(""),
            json!("8"),
            json!("-1"),
            json!("1.5"),
            json!(8),
            json!(-1),
            json!(2.5),
            json!(null),
            json!(true),
            json!(["INFO"]),
            json!({"level": "INFO"}),
        ] {
            assert_eq!(Severity::parse(&value), None, "{value}");
        }
    }
}
