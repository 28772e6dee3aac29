//! Alert message templates: text with `{placeholders}`, filled when a rule fires.
//!
//! A placeholder is either an event field (`{details.username}`, taken from the event that made the
//! rule fire; `{details.byuser|details.username}` writes the first of several that is present) or
//! one of the detection's own values: `{count}`, `{threshold}`, `{interval}`, `{group}`
//! (the group key as `field=value` pairs), `{rule}` (the rule's title), `{rule_id}`, `{severity}`,
//! `{state}` (fired or cleared). `{{` and `}}` write a brace. A template is checked when the rule is
//! loaded, so a typo is an error with the rule's file and not a silent blank at 3 a.m.
use isms_query::FieldPath;
use isms_query::ir::render_scalar;
use serde_json::{Map, Value};

use crate::parameters::KindConfig;

/// Longest template accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 4096;

/// Longest text one field placeholder writes; longer values are cut (with `…`).
const MAX_FIELD_TEXT: usize = 512;

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    /// Fields tried in turn (`{details.byuser|details.username}`); the first present is written.
    Field(Vec<(FieldPath, isms_query::PathId)>),
    Count,
    Threshold,
    Interval,
    Group,
    Rule,
    RuleId,
    Severity,
    State,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// What a detection contributes to its message besides the event's fields.
pub struct MessageValues<'a> {
    pub count: u64,
    pub threshold: Option<u64>,
    pub interval: Option<&'a str>,
    pub group: &'a str,
    pub rule_title: &'a str,
    pub rule_id: &'a str,
    pub severity: &'a str,
    pub state: &'a str,
}

impl Template {
    /// Parses `text`, or says what is wrong and at which character.
    pub fn parse(text: &str) -> Result<Template, String> {
        if text.len() > MAX_TEMPLATE_BYTES {
            return Err(format!(
                "the message template has {} bytes, more than {MAX_TEMPLATE_BYTES}",
                text.len()
            ));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((position, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|&(_, next)| next) == Some('{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek().map(|&(_, next)| next) == Some('}') => {
                    chars.next();
                    literal.push('}');
                }
                '}' => {
                    return Err(format!(
                        "the message template has a lone `}}` at character {position} (write `}}}}` for a brace)"
                    ));
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for (_, c) in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "the message template opens a placeholder at character {position} and never closes it"
                        ));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(placeholder(name.trim()).map_err(|reason| {
                        format!(
                            "the message template's placeholder at character {position}: {reason}"
                        )
                    })?);
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Ok(Template { pieces })
    }

    /// Whether the template writes the detection's state itself (else a cleared detection's message
    /// is prefixed with `cleared: `).
    pub fn mentions_state(&self) -> bool {
        self.pieces.contains(&Piece::State)
    }

    /// The message for `event` (the event that made the rule fire, if any).
    pub fn render(&self, event: Option<&Map<String, Value>>, values: &MessageValues<'_>) -> String {
        match event {
            Some(document) => {
                self.render_with(Some(&mut isms_query::FieldLookups::new(document)), values)
            }
            None => self.render_with(None, values),
        }
    }

    /// [`Template::render`] reading the event's fields through `lookups` (shared with the rules
    /// that matched it: many rules write the same fields in their messages).
    pub fn render_with(
        &self,
        mut lookups: Option<&mut isms_query::FieldLookups<'_>>,
        values: &MessageValues<'_>,
    ) -> String {
        let mut text = String::with_capacity(96);
        for piece in &self.pieces {
            match piece {
                Piece::Text(literal) => text.push_str(literal),
                Piece::Field(paths) => {
                    let found = paths.iter().find_map(|(path, id)| {
                        lookups
                            .as_mut()
                            .and_then(|lookups| lookups.value(path, *id))
                            .and_then(first_scalar)
                    });
                    match found {
                        Some(value) => push_cut(&mut text, &value),
                        None => text.push('-'),
                    }
                }
                Piece::Count => text.push_str(&values.count.to_string()),
                Piece::Threshold => match values.threshold {
                    Some(threshold) => text.push_str(&threshold.to_string()),
                    None => text.push('-'),
                },
                Piece::Interval => text.push_str(values.interval.unwrap_or("-")),
                Piece::Group => text.push_str(if values.group.is_empty() {
                    "-"
                } else {
                    values.group
                }),
                Piece::Rule => text.push_str(values.rule_title),
                Piece::RuleId => text.push_str(values.rule_id),
                Piece::Severity => text.push_str(values.severity),
                Piece::State => text.push_str(values.state),
            }
        }
        text
    }
}

fn first_scalar(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    match value {
        Value::Array(items) => items.iter().find_map(render_scalar),
        other => render_scalar(other),
    }
}

fn push_cut(text: &mut String, value: &str) {
    if value.len() <= MAX_FIELD_TEXT {
        text.push_str(value);
    } else {
        let mut end = MAX_FIELD_TEXT;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        text.push_str(&value[..end]);
        text.push('…');
    }
}

fn placeholder(name: &str) -> Result<Piece, String> {
    Ok(match name {
        "count" => Piece::Count,
        "threshold" => Piece::Threshold,
        "interval" => Piece::Interval,
        "group" => Piece::Group,
        "rule" => Piece::Rule,
        "rule_id" => Piece::RuleId,
        "severity" => Piece::Severity,
        "state" => Piece::State,
        "" => return Err("it is empty".to_owned()),
        fields => {
            let mut paths = Vec::new();
            for field in fields.split('|').map(str::trim) {
                let valid = field.split('.').all(|segment| {
                    !segment.is_empty()
                        && segment
                            .chars()
                            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
                });
                if !valid {
                    return Err(format!(
                        "`{field}` is neither an event field (dotted words such as details.username; several separated by | are tried in turn) nor one of count, threshold, interval, group, rule, rule_id, severity, state"
                    ));
                }
                let path = FieldPath::parse_dotted(field);
                let id = isms_query::path_id(&path);
                paths.push((path, id));
            }
            Piece::Field(paths)
        }
    })
}

/// A default message for a rule (the console's "suggest" button, seed 003): the rule's title, then
/// the group key's fields as placeholders (the user, as the seed always adds), then what the kind
/// counted.
pub fn suggest_message(title: &str, kind: &KindConfig) -> String {
    let escaped_title = title.replace('{', "{{").replace('}', "}}");
    let group: Vec<String> = kind
        .group_by()
        .iter()
        .map(|field| {
            format!(
                "{} {{{}}}",
                field.0.last().map(String::as_str).unwrap_or(""),
                field.dotted()
            )
        })
        .collect();
    let mut message = escaped_title;
    if !group.is_empty() {
        message.push_str(" for ");
        message.push_str(&group.join(", "));
    } else if matches!(kind, KindConfig::Match | KindConfig::List(_)) {
        message
            .push_str(" for user {details.username} from {details.sourceipaddress} on {hostname}");
    }
    match kind {
        KindConfig::Threshold(_) => message.push_str(": {count} events within {interval}"),
        KindConfig::DistinctCount(config) => message.push_str(&format!(
            ": {{count}} distinct {} within {{interval}}",
            config.field.dotted()
        )),
        KindConfig::Sequence(_) => message.push_str(": sequence completed within {interval}"),
        KindConfig::Absence(_) => message.push_str(": nothing heard for {interval}"),
        KindConfig::FirstSeen(config) => message.push_str(&format!(
            ": first {} seen",
            config
                .fields
                .iter()
                .map(|field| format!("{{{}}}", field.dotted()))
                .collect::<Vec<_>>()
                .join(" ")
        )),
        KindConfig::List(config) => message.push_str(&format!(
            ": {} {{{}}} {} list {}",
            config.field.dotted(),
            config.field.dotted(),
            if config.negate { "not in" } else { "in" },
            config.list
        )),
        KindConfig::Scheduled(_) => message.push_str(": {count} events within {interval}"),
        KindConfig::Match => {}
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> MessageValues<'static> {
        MessageValues {
            count: 7,
            threshold: Some(5),
            interval: Some("5m"),
            group: "details.username=root",
            rule_title: "Brute force",
            rule_id: "ssh-brute",
            severity: "WARNING",
            state: "fired",
        }
    }

    #[test]
    fn placeholders_take_event_fields_and_detection_values() {
        let template =
            Template::parse("{count} failures for {details.username} from {details.sourceipaddress} in {interval} ({{x}}) {hostname} {details.byuser|details.username}")
                .unwrap();
        let event =
            serde_json::json!({"details": {"username": "root", "sourceipaddress": "10.0.0.9"}});
        assert_eq!(
            template.render(event.as_object(), &values()),
            "7 failures for root from 10.0.0.9 in 5m ({x}) - root"
        );
    }

    #[test]
    fn broken_templates_say_where() {
        assert!(
            Template::parse("{count")
                .unwrap_err()
                .contains("never closes")
        );
        assert!(Template::parse("a } b").unwrap_err().contains("lone `}`"));
        assert!(
            Template::parse("{details user}")
                .unwrap_err()
                .contains("character 0")
        );
        assert!(Template::parse("{}").unwrap_err().contains("empty"));
        assert!(
            Template::parse(&"x".repeat(5000))
                .unwrap_err()
                .contains("4096")
        );
    }

    #[test]
    fn suggested_messages_are_valid_templates_naming_the_group() {
        let kind = KindConfig::from_parameters(
            "threshold",
            serde_json::json!({"group_by": ["details.username"], "threshold": 5})
                .as_object()
                .unwrap(),
        )
        .unwrap();
        let suggestion = suggest_message("Too many {failures}", &kind);
        let template = Template::parse(&suggestion).unwrap();
        let event = serde_json::json!({"details": {"username": "alice"}});
        assert_eq!(
            template.render(event.as_object(), &values()),
            "Too many {failures} for username alice: 7 events within 5m"
        );
    }
}
