//! What a rule produces: a detection, and the event it becomes.
//!
//! Every detection is also an event (category `alert`) so that it is stored, searched and shown like
//! any other, and so that it re-enters detection: rules can build on other rules' output (seed 002's
//! login → remote login → outside-domain login chain).
use std::sync::Arc;

use isms_event::{Event, Origin, Severity, format_time};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Most related event ids a detection keeps; the rest are counted (seed 003: 50).
pub const MAX_RELATED_EVENTS: usize = 50;

/// Whether a detection opens or closes an entity's active state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectionState {
    /// The rule fired.
    Fired,
    /// An active entity no longer satisfies its rule (its count fell back, or an absent key was
    /// heard from again).
    Cleared,
}

impl DetectionState {
    pub fn name(self) -> &'static str {
        match self {
            DetectionState::Fired => "fired",
            DetectionState::Cleared => "cleared",
        }
    }
}

/// One detection.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// The id of its event (made when the detection is, so that a detection's event, made only
    /// when something needs it, always has the same id).
    pub id: String,
    /// For a cleared detection, the id of the detection it clears.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clears: Option<String>,
    /// The rule's id, title and tags, shared with the rule (a rule may fire millions of times).
    pub rule_id: Arc<str>,
    pub rule_title: Arc<str>,
    pub kind: &'static str,
    pub severity: &'static str,
    pub tags: Arc<[String]>,
    pub state: DetectionState,
    /// The group key, field by field (empty for rules without one).
    pub group: Vec<(String, String)>,
    /// Events counted: the window's count when it fired, plus events attached while active.
    pub count: u64,
    /// Ids of the events that made it, oldest first, at most [`MAX_RELATED_EVENTS`].
    pub related_event_ids: Vec<String>,
    /// Related events beyond those kept.
    pub related_events_more: u64,
    /// Event time of the first and last related event, microseconds (absence: the last event heard).
    pub first_event_micros: Option<i64>,
    pub last_event_micros: Option<i64>,
    /// Event time at which it fired or cleared.
    pub detected_micros: i64,
    pub message: String,
    /// How many detections led to this one (0: it came from events).
    pub depth: u32,
    /// The host of the event that made it fire, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The detection as an event ([`Detection::to_event`]) when the engine made it to feed it back
    /// to the rules; `None` when no rule could take it (callers then make it themselves).
    #[serde(skip)]
    pub event: Option<Event>,
}

impl Detection {
    /// The group key as `field=value` pairs, for messages and tables.
    pub fn group_text(&self) -> String {
        group_text(&self.group)
    }

    /// The detection as a MozDef event: category `alert`, the message as summary, the rule's
    /// severity and tags, and in `details` the rule, group key (`details.group`, its dots made `_`
    /// as normalization does with keys; a group field under `details.` is also copied to its own
    /// place, so `details.username` of a detection is the user it is about), count, related events
    /// and depth. Its id is the detection's (a new one if the detection has none).
    pub fn to_event(&self) -> Event {
        let mut group = Map::new();
        for (field, value) in &self.group {
            group.insert(field.clone(), Value::String(value.clone()));
        }
        let mut details = json!({
            "rule_id": self.rule_id,
            "rule_title": self.rule_title,
            "kind": self.kind,
            "state": self.state.name(),
            "group": group,
            "count": self.count,
            "related_event_ids": self.related_event_ids,
            "related_events_more": self.related_events_more,
            "depth": self.depth,
        });
        let details_map = details.as_object_mut().expect("an object");
        // The group's values also where events keep them (details.username, details.sourceipaddress),
        // so a rule on detections groups and matches by the same fields as a rule on events.
        for (field, value) in &self.group {
            if let Some(name) = field.strip_prefix("details.")
                && !name.contains('.')
                && !details_map.contains_key(name)
            {
                details_map.insert(name.to_owned(), Value::String(value.clone()));
            }
        }
        if let Some(clears) = &self.clears {
            details_map.insert("clears".to_owned(), Value::String(clears.clone()));
        }
        if let Some(first) = self.first_event_micros {
            details_map.insert(
                "first_event_time".to_owned(),
                Value::String(format_time(first)),
            );
        }
        if let Some(last) = self.last_event_micros {
            details_map.insert(
                "last_event_time".to_owned(),
                Value::String(format_time(last)),
            );
        }
        let origin = Origin {
            peer: None,
            endpoint: "detect".to_owned(),
            key_name: None,
        };
        let received = jiff::Timestamp::from_microsecond(self.detected_micros)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        // Typed fields, not JSON normalized: the same event (`EventFields::into_event` is held to
        // `normalize` of `EventFields::to_json`), at a fraction of the cost per detection.
        let fields = isms_event::EventFields {
            summary: Some(self.message.clone()),
            hostname: self.hostname.clone(),
            processname: Some("isms-detect".to_owned()),
            processid: None,
            severity: self.severity(),
            category: Some("alert".to_owned()),
            source: Some("isms-detect".to_owned()),
            utctimestamp_micros: Some(self.detected_micros),
            tags: self.tags.to_vec(),
            details: match details {
                Value::Object(map) => map,
                _ => unreachable!("details is built as an object"),
            },
        };
        let mut event = match fields.into_event(&isms_event::Delivery::new(&origin, received)) {
            Ok(event) => event,
            Err(error) => {
                // Not expected (the fields are the engine's own), but a detection is never dropped
                // for it: the rule, group and count are kept in a plain event.
                tracing::error!(rule = %self.rule_id, %error, "detection event not normalizable; stored in a reduced form");
                let reduced = json!({
                    "utctimestamp": format_time(self.detected_micros),
                    "category": "alert",
                    "source": "isms-detect",
                    "severity": self.severity,
                    "summary": format!("{}: {}", self.rule_title, self.group_text()),
                    "details": {"rule_id": self.rule_id, "state": self.state.name(), "count": self.count},
                });
                isms_event::normalize(reduced, &origin, received)
                    .expect("the reduced detection event holds only plain text and numbers")
            }
        };
        if !self.id.is_empty() {
            event.id.clone_from(&self.id);
            event
                .document
                .insert("id".to_owned(), Value::String(self.id.clone()));
        }
        event
    }

    /// The severity as the event model's type.
    pub fn severity(&self) -> Severity {
        Severity::parse(&Value::String(self.severity.to_owned())).unwrap_or_default()
    }
}

/// `field=value, field=value`.
pub fn group_text(group: &[(String, String)]) -> String {
    group
        .iter()
        .map(|(field, value)| format!("{field}={value}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detection's event as raw JSON, the way it was built before the typed path.
    fn raw_form(detection: &Detection) -> Value {
        let mut group = Map::new();
        for (field, value) in &detection.group {
            group.insert(field.clone(), Value::String(value.clone()));
        }
        let mut details = json!({
            "rule_id": detection.rule_id,
            "rule_title": detection.rule_title,
            "kind": detection.kind,
            "state": detection.state.name(),
            "group": group,
            "count": detection.count,
            "related_event_ids": detection.related_event_ids,
            "related_events_more": detection.related_events_more,
            "depth": detection.depth,
        });
        for (field, value) in &detection.group {
            if let Some(name) = field.strip_prefix("details.") {
                details[name] = Value::String(value.clone());
            }
        }
        if let Some(clears) = &detection.clears {
            details["clears"] = Value::String(clears.clone());
        }
        details["first_event_time"] =
            Value::String(format_time(detection.first_event_micros.unwrap()));
        details["last_event_time"] =
            Value::String(format_time(detection.last_event_micros.unwrap()));
        json!({
            "utctimestamp": format_time(detection.detected_micros),
            "category": "alert",
            "source": "isms-detect",
            "processname": "isms-detect",
            "severity": detection.severity,
            "summary": detection.message,
            "tags": detection.tags,
            "details": details,
            "hostname": detection.hostname,
        })
    }

    #[test]
    fn a_detection_event_is_what_normalization_makes_of_its_json() {
        let detection = Detection {
            id: String::new(),
            clears: Some("0190-earlier".to_owned()),
            rule_id: "ssh-Brute".into(),
            rule_title: "SSH brute force".into(),
            kind: "threshold",
            severity: "ERROR",
            tags: vec!["ssh".to_owned(), "sigma:abc".to_owned()].into(),
            state: DetectionState::Cleared,
            group: vec![
                ("details.sourceipaddress".to_owned(), "10.0.0.1".to_owned()),
                ("hostname".to_owned(), "Web1".to_owned()),
            ],
            count: 7,
            related_event_ids: vec!["a".to_owned(), "b".to_owned()],
            related_events_more: 5,
            first_event_micros: Some(1_700_000_000_000_000),
            last_event_micros: Some(1_700_000_060_000_000),
            detected_micros: 1_700_000_061_123_456,
            message: "7 failures from 10.0.0.1".to_owned(),
            depth: 1,
            hostname: Some("Web1".to_owned()),
            event: None,
        };
        let typed = detection.to_event();
        let origin = Origin {
            peer: None,
            endpoint: "detect".to_owned(),
            key_name: None,
        };
        let received = jiff::Timestamp::from_microsecond(detection.detected_micros).unwrap();
        let normalized = isms_event::normalize(raw_form(&detection), &origin, received).unwrap();
        let mut typed_document = typed.document.clone();
        let mut normalized_document = normalized.document.clone();
        typed_document.remove("id");
        normalized_document.remove("id");
        assert_eq!(typed_document, normalized_document);
        assert_eq!(typed.utctimestamp_micros, normalized.utctimestamp_micros);
        assert_eq!(
            typed.receivedtimestamp_micros,
            normalized.receivedtimestamp_micros
        );
        assert_eq!(typed.document["category"], "alert");
        let with_id = Detection {
            id: "01a231c3-627a-7d65-af4b-43d4b87a4c6c".to_owned(),
            ..detection.clone()
        };
        let event = with_id.to_event();
        assert_eq!(event.id, with_id.id);
        assert_eq!(event.document["id"], with_id.id.as_str());
        assert_eq!(typed.document["details"]["sourceipaddress"], "10.0.0.1");
    }
}
