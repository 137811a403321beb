//! One MISP attribute to the items it gives, with what its event gives
//! every attribute (tags, TLP, info, creator, threat level).

use serde::Deserialize;
use serde_json::Value;

use super::{EventHead, refused, types};
use crate::feed::{Item, RawRecord, ReadOptions};

/// An attribute as MISP writes it (other keys ignored).
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct Attribute {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<Value>,
    uuid: Option<String>,
    to_ids: Option<Value>,
    deleted: Option<Value>,
    comment: Option<String>,
    timestamp: Option<Value>,
    first_seen: Option<String>,
    last_seen: Option<String>,
    #[serde(rename = "Tag")]
    tags: Vec<Tag>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Tag {
    name: Option<String>,
}

/// MISP writes booleans as `true`, `1`, `"1"` or `"true"`.
fn truthy(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_u64() == Some(1),
        Some(Value::String(s)) => s == "1" || s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

pub(super) fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// One attribute to its items: skipped (deleted, not for detection, a type
/// with no indicator), refused (not an attribute), or a row per value.
pub(super) fn attribute(
    a: Attribute,
    head: Option<&EventHead>,
    line: u64,
    opts: &ReadOptions,
) -> Vec<Item> {
    let skipped = |what: String| {
        vec![Item::Skipped {
            position: 0,
            line,
            what,
            withdraws: None,
        }]
    };
    let (Some(kind), Some(value)) = (a.kind.as_deref(), a.value.as_ref().and_then(text)) else {
        return vec![refused(
            line,
            String::new(),
            "an attribute without a type or a value".into(),
        )];
    };
    if truthy(a.deleted.as_ref()) {
        return vec![Item::Skipped {
            position: 0,
            line,
            what: "deleted".into(),
            withdraws: a.uuid.clone(),
        }];
    }
    if !opts.misp_all_attributes && !truthy(a.to_ids.as_ref()) {
        return skipped("not-for-detection".into());
    }
    let Some(values) = types::values(kind, &value) else {
        return skipped(format!("misp-type {}", crate::feed::cut(kind)));
    };
    let common = common(&a, head, line);
    values
        .into_iter()
        .map(|(field_kind, v)| {
            let mut rec = common.clone();
            types::fill(&mut rec, field_kind, v);
            Item::Row(rec)
        })
        .collect()
}

/// What every row of an attribute carries.
fn common(a: &Attribute, head: Option<&EventHead>, line: u64) -> RawRecord {
    let event_tags = head.map(|h| h.tags.as_slice()).unwrap_or_default();
    let own_tags: Vec<&str> = a.tags.iter().filter_map(|t| t.name.as_deref()).collect();
    // A TLP level (`tlp:amber`); other `tlp:` tags (`tlp:ex:chr`) stay tags.
    let is_tlp = |t: &str| {
        t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tlp:"))
            && crate::indicator::Tlp::parse(t).is_some()
    };
    let tlp_of = |tags: &[&str]| {
        crate::indicator::Tlp::strictest(
            tags.iter()
                .filter(|t| is_tlp(t))
                .filter_map(|t| crate::indicator::Tlp::parse(t)),
        )
    };
    let event_refs: Vec<&str> = event_tags.iter().map(String::as_str).collect();
    // An attribute's own TLP wins over its event's.
    let tlp = tlp_of(&own_tags).or_else(|| tlp_of(&event_refs));
    let mut rec = RawRecord {
        line,
        tags: event_refs
            .iter()
            .chain(own_tags.iter())
            .filter(|t| !is_tlp(t))
            .map(|t| (*t).to_string())
            .collect(),
        description: a
            .comment
            .clone()
            .filter(|c| !c.trim().is_empty())
            .or_else(|| head.and_then(|h| h.info.clone())),
        first_seen: a.first_seen.clone(),
        last_seen: a.last_seen.clone(),
        external_id: a.uuid.clone(),
        modified: a.timestamp.as_ref().and_then(text),
        rating: head
            .and_then(|h| h.threat_level.as_deref())
            .and_then(rating_of_threat_level)
            .map(str::to_string),
        security_labels: tlp
            .map(|t| t.default_label().to_string())
            .into_iter()
            .collect(),
        ..RawRecord::default()
    };
    if let Some(org) = head.and_then(|h| h.org.clone()) {
        rec.attributes.push(("Source".into(), org));
    }
    rec
}

/// MISP's threat level (1 high, 2 medium, 3 low, 4 undefined) as a
/// ThreatConnect rating (4 High, 3 Moderate, 2 Low; undefined: none).
fn rating_of_threat_level(level: &str) -> Option<&'static str> {
    match level.trim() {
        "1" => Some("4"),
        "2" => Some("3"),
        "3" => Some("2"),
        _ => None,
    }
}
