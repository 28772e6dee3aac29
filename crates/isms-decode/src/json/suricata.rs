//! Suricata EVE records (`{"timestamp": ..., "event_type": "alert", "src_ip": ..., "alert": {...}}`).
//!
//! Alerts are category `ids` with a severity from `alert.severity` (Suricata's 1 is the highest:
//! 1 → ERROR, 2 → WARNING, 3 → NOTICE, as isms maps Sigma's high/medium/low); every other record type
//! is `network` at INFO. Nested objects (`alert`, `http`, `tls`, `flow`, ...) stay nested under
//! `details`.
use serde_json::{Map, Value, json};

use super::{
    address_value, clean_key, clean_value, endpoint, flow_text, summary, text_of, utc_time,
};

/// Whether `object` is an EVE record.
pub(super) fn recognizes(object: &Map<String, Value>) -> bool {
    object.get("event_type").is_some_and(Value::is_string) && object.contains_key("timestamp")
}

/// The raw MozDef event of an EVE record.
pub(super) fn decode(object: &Map<String, Value>) -> Value {
    let event_type = object
        .get("event_type")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    let mut details = Map::new();
    for (key, value) in object {
        let name = match key.as_str() {
            "timestamp" => continue,
            "src_ip" => {
                details.insert("sourceipaddress".into(), address_value(value));
                continue;
            }
            "dest_ip" => {
                details.insert("destinationipaddress".into(), address_value(value));
                continue;
            }
            "src_port" => "sourceport".to_owned(),
            "dest_port" => "destinationport".to_owned(),
            // The decoders' own detail names keep their meaning.
            "result" | "action" | "username" => format!("suricata_{key}"),
            other => clean_key(other),
        };
        details.insert(name, clean_value(value, 1));
    }
    let alert = object.get("alert").and_then(Value::as_object);
    let (category, severity) = match (event_type, alert) {
        ("alert", _) => {
            let severity = alert
                .and_then(|alert| alert.get("severity"))
                .and_then(Value::as_u64);
            let name = match severity {
                Some(0 | 1) => "ERROR",
                Some(2) => "WARNING",
                Some(3) => "NOTICE",
                _ => "INFO",
            };
            ("ids", name)
        }
        _ => ("network", "INFO"),
    };
    let flow = flow_text(
        endpoint(object.get("src_ip"), object.get("src_port")),
        endpoint(object.get("dest_ip"), object.get("dest_port")),
    );
    let what = describe(event_type, object);
    let head = format!("suricata {event_type}:");
    let summary = summary(&head, &[what, flow]);
    let mut event = json!({
        "summary": summary,
        "category": category,
        "severity": severity,
        "processname": "suricata",
        "tags": ["suricata", format!("suricata:{event_type}")],
    });
    if let Value::Object(map) = &mut event {
        if let Some(time) = object.get("timestamp").and_then(utc_time) {
            map.insert("utctimestamp".into(), Value::String(time));
        } else if let Some(raw) = object.get("timestamp") {
            details.insert("timestamp".into(), raw.clone());
        }
        if let Some(host) = object.get("host").and_then(Value::as_str) {
            map.insert("hostname".into(), Value::String(host.to_owned()));
        }
        map.insert("details".into(), Value::Object(details));
    }
    event
}

/// The record-type specific words of the summary.
fn describe(event_type: &str, object: &Map<String, Value>) -> String {
    let field = |section: &str, key: &str| -> String {
        object
            .get(section)
            .and_then(|section| section.get(key))
            .map(text_of)
            .unwrap_or_default()
    };
    match event_type {
        "alert" => field("alert", "signature"),
        "http" => {
            let mut text = field("http", "http_method");
            let target = format!("{}{}", field("http", "hostname"), field("http", "url"));
            for part in [target, field("http", "status")] {
                if !part.is_empty() {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(&part);
                }
            }
            text
        }
        "tls" => {
            let sni = field("tls", "sni");
            let name = if sni.is_empty() {
                field("tls", "subject")
            } else {
                sni
            };
            format!("{name} {}", field("tls", "version"))
        }
        "dns" => format!(
            "{} {} {}",
            field("dns", "rrname"),
            field("dns", "rrtype"),
            field("dns", "rcode")
        ),
        "ssh" => {
            let version = |side: &str| {
                object
                    .get("ssh")
                    .and_then(|ssh| ssh.get(side))
                    .and_then(|side| side.get("software_version"))
                    .map(text_of)
                    .unwrap_or_default()
            };
            format!("{} {}", version("client"), version("server"))
        }
        "fileinfo" => field("fileinfo", "filename"),
        "anomaly" => format!("{} {}", field("anomaly", "type"), field("anomaly", "event")),
        _ => object.get("proto").map(text_of).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    fn decode(record: Value) -> Value {
        let Value::Object(map) = record else {
            panic!("not an object")
        };
        assert!(super::recognizes(&map));
        super::decode(&map)
    }

    #[test]
    fn an_alert_is_an_ids_event_with_a_readable_summary() {
        let event = decode(json!({
            "timestamp": "2026-01-02T03:04:05.678901+0100",
            "event_type": "alert",
            "src_ip": "198.51.100.1", "src_port": 4444,
            "dest_ip": "10.0.0.9", "dest_port": 80, "proto": "TCP",
            "alert": {"signature": "LOCAL test rule", "signature_id": 9000001, "severity": 1}
        }));
        assert_eq!(event["category"], "ids");
        assert_eq!(event["severity"], "ERROR");
        assert_eq!(event["utctimestamp"], "2026-01-02T02:04:05.678901+00:00");
        assert_eq!(
            event["summary"],
            "suricata alert: LOCAL test rule 198.51.100.1:4444 -> 10.0.0.9:80"
        );
        assert_eq!(event["details"]["sourceport"], 4444);
        assert_eq!(event["details"]["destinationipaddress"], "10.0.0.9");
        assert_eq!(event["details"]["alert"]["signature_id"], 9000001);
    }

    #[test]
    fn other_records_are_network_events() {
        let event = decode(json!({
            "timestamp": "2026-01-02T03:04:05Z", "event_type": "http",
            "src_ip": "2001:db8::1", "src_port": 5000, "dest_ip": "2001:db8::2", "dest_port": 8080,
            "http": {"hostname": "example.test", "url": "/x", "http_method": "GET", "status": 200},
            "metadata": {"flowints": {"http.anomaly.count": 1}}
        }));
        assert_eq!(event["category"], "network");
        assert_eq!(
            event["summary"],
            "suricata http: GET example.test/x 200 [2001:db8::1]:5000 -> [2001:db8::2]:8080"
        );
        assert_eq!(
            event["details"]["metadata"]["flowints"]["http_anomaly_count"],
            1
        );
    }
}
