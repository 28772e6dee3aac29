//! The one table of field aliases.

/// Where an alias sends its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AliasTarget {
    /// A MozDef top-level field, e.g. `Top("summary")`.
    Top(&'static str),
    /// A key inside `details`, e.g. `Details("sourceipaddress")`.
    Details(&'static str),
    /// The value (an object) is merged into `details`; keys `details` already has are kept
    /// under a numbered name (`key_1`, ...).
    MergeIntoDetails,
}

/// One alias: a lowercased key that means the same as a MozDef field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FieldAlias {
    /// The key as sent (after lowercasing and `.` → `_`).
    pub from: &'static str,
    /// Where its value goes.
    pub to: AliasTarget,
}

const fn top(from: &'static str, to: &'static str) -> FieldAlias {
    FieldAlias {
        from,
        to: AliasTarget::Top(to),
    }
}

const fn details(from: &'static str, to: &'static str) -> FieldAlias {
    FieldAlias {
        from,
        to: AliasTarget::Details(to),
    }
}

/// Every alias, in the order they are tried. For one target, the first alias present in the
/// event wins; a target that already has a (non-null) value is never overwritten, and the alias
/// key then stays in `details` under its own name.
///
/// Entries with a [`AliasTarget::Details`] target apply both to top-level keys and to keys inside
/// `details`.
pub static FIELD_ALIASES: &[FieldAlias] = &[
    top("message", "summary"),
    top("msg", "summary"),
    top("program", "processname"),
    top("process", "processname"),
    top("pid", "processid"),
    top("host", "hostname"),
    top("type", "category"),
    top("@timestamp", "timestamp"),
    top("time", "timestamp"),
    top("level", "severity"),
    top("tag", "tags"),
    FieldAlias {
        from: "fields",
        to: AliasTarget::MergeIntoDetails,
    },
    details("srcip", "sourceipaddress"),
    details("src_ip", "sourceipaddress"),
    details("sourceip", "sourceipaddress"),
    details("source_ip", "sourceipaddress"),
    details("sourceipaddress", "sourceipaddress"),
    details("dstip", "destinationipaddress"),
    details("dst_ip", "destinationipaddress"),
    details("destinationip", "destinationipaddress"),
    details("destination_ip", "destinationipaddress"),
    details("destinationipaddress", "destinationipaddress"),
    details("srcport", "sourceport"),
    details("src_port", "sourceport"),
    details("sourceport", "sourceport"),
    details("dstport", "destinationport"),
    details("dst_port", "destinationport"),
    details("destport", "destinationport"),
    details("destinationport", "destinationport"),
    details("user", "username"),
    details("user_name", "username"),
    details("username", "username"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::MOZDEF_FIELDS;

    #[test]
    fn table_is_consistent() {
        for (i, alias) in FIELD_ALIASES.iter().enumerate() {
            assert_eq!(alias.from, alias.from.to_lowercase(), "{alias:?}");
            assert!(!alias.from.contains('.'), "{alias:?}");
            assert!(
                !MOZDEF_FIELDS.contains(&alias.from),
                "{alias:?} shadows a MozDef field"
            );
            assert!(
                FIELD_ALIASES[..i].iter().all(|a| a.from != alias.from),
                "{alias:?} is listed twice"
            );
            if let AliasTarget::Top(target) = alias.to {
                assert!(MOZDEF_FIELDS.contains(&target), "{alias:?}");
            }
        }
    }
}
