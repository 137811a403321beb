//! The second pass: one STIX object to the items it gives. An indicator
//! gives a row per value its pattern yields (and a reject naming what it
//! does not take); an observable gives one row with `stix_observables`;
//! every other object is skipped by its type.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::pattern::{self, Found};
use super::{Element, ROWS_PER_OBJECT, Refs};
use crate::feed::{Item, RawRecord, ReadOptions, Refusal, echo_bytes};

/// The properties of a STIX object we read (others are ignored).
#[derive(Deserialize, Default)]
#[serde(default)]
struct Object {
    #[serde(rename = "type")]
    kind: Option<String>,
    id: Option<String>,
    modified: Option<String>,
    revoked: Option<bool>,
    created_by_ref: Option<String>,
    object_marking_refs: Vec<String>,
    // Indicators.
    pattern: Option<String>,
    pattern_type: Option<String>,
    valid_from: Option<String>,
    valid_until: Option<String>,
    confidence: Option<u8>,
    labels: Vec<String>,
    indicator_types: Vec<String>,
    name: Option<String>,
    description: Option<String>,
    // Observables.
    value: Option<String>,
    hashes: BTreeMap<String, String>,
    number: Option<u64>,
    key: Option<String>,
    values: Vec<RegistryValue>,
    extensions: Option<Value>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RegistryValue {
    name: Option<String>,
    data_type: Option<String>,
}

/// The observable types that can stand for an indicator.
const OBSERVABLES: [&str; 10] = [
    "ipv4-addr",
    "ipv6-addr",
    "domain-name",
    "url",
    "email-addr",
    "file",
    "autonomous-system",
    "mutex",
    "windows-registry-key",
    "network-traffic",
];

/// The items of one object, in order (positions are set by the caller).
pub(super) fn items(
    el: &Element<'_>,
    refs: &Refs,
    opts: &ReadOptions,
    now: OffsetDateTime,
) -> Vec<Item> {
    let line = el.line;
    let refused = |rule, input: String, reason: String| Item::Refused {
        position: 0,
        line,
        input,
        rule,
        reason,
    };
    let Some(bytes) = el.bytes else {
        return vec![Item::Bad {
            position: 0,
            line,
            input: String::new(),
            reason: format!(
                "a STIX object longer than {} bytes (watch.max_line_bytes)",
                opts.max_line_bytes
            ),
        }];
    };
    let not_stix = |e: &serde_json::Error| {
        refused(
            Refusal::StixInvalid,
            echo_bytes(bytes),
            format!("not a STIX object: {}", crate::feed::echo_display(e)),
        )
    };
    // One parse for the common case (an object whose properties have the
    // standard's types); the type alone for the others, which are skipped
    // or refused by it.
    let parsed = serde_json::from_slice::<Object>(bytes);
    let kind = match &parsed {
        Ok(o) => o.kind.clone(),
        Err(_) => match serde_json::from_slice::<Head<'_>>(bytes) {
            Ok(h) => h.kind.map(std::borrow::Cow::into_owned),
            Err(e) => return vec![not_stix(&e)],
        },
    };
    let Some(kind) = kind else {
        return vec![refused(
            Refusal::StixInvalid,
            echo_bytes(bytes),
            "a STIX object without `type`".into(),
        )];
    };
    let wanted =
        kind == "indicator" || (opts.stix_observables && OBSERVABLES.contains(&kind.as_str()));
    if !wanted {
        return vec![skipped(line, format!("stix {kind}"))];
    }
    let o = match parsed {
        Ok(o) => o,
        Err(e) => return vec![not_stix(&e)],
    };
    if kind == "indicator" {
        return indicator(o, line, refs, now);
    }
    observable(o, &kind, line, refs)
}

fn skipped(line: u64, what: String) -> Item {
    Item::Skipped {
        position: 0,
        line,
        what,
        withdraws: None,
    }
}

/// A skipped object the source withdrew: what its id gave is retired.
fn withdrawn(line: u64, what: &str, id: Option<String>) -> Item {
    Item::Skipped {
        position: 0,
        line,
        what: what.into(),
        withdraws: id,
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// An indicator object: checked (revoked, expired, pattern type), its
/// pattern parsed, a row per value found.
fn indicator(o: Object, line: u64, refs: &Refs, now: OffsetDateTime) -> Vec<Item> {
    let id = o.id.clone().unwrap_or_default();
    let refused = |rule, reason: String| Item::Refused {
        position: 0,
        line,
        input: crate::feed::cut(&id),
        rule,
        reason,
    };
    if o.revoked == Some(true) {
        return vec![withdrawn(line, "revoked", o.id)];
    }
    if o.valid_until
        .as_deref()
        .and_then(|v| OffsetDateTime::parse(v, &Rfc3339).ok())
        .is_some_and(|until| until <= now)
    {
        return vec![withdrawn(line, "expired", o.id)];
    }
    match o.pattern_type.as_deref() {
        Some("stix") | None => {}
        Some(other) => {
            return vec![refused(
                Refusal::StixPatternType,
                format!(
                    "{id}: pattern_type {:?} is not a STIX pattern (only \"stix\" is read)",
                    crate::feed::cut(other)
                ),
            )];
        }
    }
    let Some(text) = o.pattern.as_deref() else {
        return vec![refused(
            Refusal::StixInvalid,
            format!("{id}: an indicator without a pattern"),
        )];
    };
    let parsed = match pattern::parse(text) {
        Ok(p) => p,
        Err(e) => {
            return vec![refused(
                Refusal::StixInvalid,
                format!(
                    "{id}: the pattern does not parse: {}",
                    crate::feed::echo_display(&e)
                ),
            )];
        }
    };
    let found = pattern::extract(&parsed);
    let common = common(&o, refs, line);
    let max = ROWS_PER_OBJECT as usize - 1;
    let mut items: Vec<Item> = found
        .found
        .into_iter()
        .take(max)
        .map(|f| Item::Row(row(f, common.clone())))
        .collect();
    for ignored in found.ignored.iter().take(max.saturating_sub(items.len())) {
        items.push(skipped(line, format!("stix ignored {ignored}")));
    }
    if !found.unsupported.is_empty() || items.len() >= max {
        let mut what = found.unsupported.join(", ");
        if items.len() >= max {
            what.push_str(" (more values than one indicator may give: the rest are left out)");
        }
        items.push(refused(
            Refusal::StixUnsupported,
            crate::feed::cut(&format!("{id}: not taken: {what}")),
        ));
    }
    items
}

/// What every row of an object carries: its id, version, labels, source.
fn common(o: &Object, refs: &Refs, line: u64) -> RawRecord {
    let tlp = o.object_marking_refs.iter().filter_map(|m| refs.tlp(m));
    let strictest = tlp.max_by_key(|l| crate::indicator::Tlp::parse(l).map(|t| t.rank()));
    let mut rec = RawRecord {
        line,
        confidence: o.confidence.map(|c| c.to_string()),
        tags: o
            .labels
            .iter()
            .chain(o.indicator_types.iter())
            .cloned()
            .collect(),
        description: o.description.clone().or_else(|| o.name.clone()),
        first_seen: o.valid_from.clone(),
        external_id: o.id.clone(),
        modified: o.modified.clone(),
        valid_until: o.valid_until.clone(),
        security_labels: strictest.map(str::to_string).into_iter().collect(),
        ..RawRecord::default()
    };
    if let Some(name) = o.created_by_ref.as_deref().and_then(|r| refs.identity(r)) {
        rec.attributes.push(("Source".into(), name.to_string()));
    }
    rec
}

/// One value a pattern gave, on top of the object's common fields.
fn row(found: Found, mut rec: RawRecord) -> RawRecord {
    let (kind, value) = match found {
        Found::Address(v) => (if v.contains('/') { "CIDR" } else { "Address" }, v),
        Found::Cidr(v) => ("CIDR", v),
        Found::Host(v) => ("Host", v),
        Found::Url(v) => ("URL", v),
        Found::Email(v) => ("EmailAddress", v),
        Found::Asn(v) => ("ASN", v),
        Found::Mutex(v) => ("Mutex", v),
        Found::UserAgent(v) => ("User Agent", v),
        Found::File { md5, sha1, sha256 } => {
            rec.kind = Some("File".into());
            (rec.md5, rec.sha1, rec.sha256) = (md5, sha1, sha256);
            return rec;
        }
        Found::RegistryKey {
            key,
            value_name,
            data_type,
        } => {
            rec.kind = Some("Registry Key".into());
            (rec.key_name, rec.value_name, rec.value_type) = (Some(key), value_name, data_type);
            return rec;
        }
    };
    rec.kind = Some(kind.into());
    rec.value = Some(value);
    rec
}

/// A top-level observable taken as an indicator (`stix_observables`).
fn observable(o: Object, kind: &str, line: u64, refs: &Refs) -> Vec<Item> {
    let found = match kind {
        "ipv4-addr" | "ipv6-addr" => o.value.clone().map(Found::Address),
        "domain-name" => o.value.clone().map(Found::Host),
        "url" => o.value.clone().map(Found::Url),
        "email-addr" => o.value.clone().map(Found::Email),
        "autonomous-system" => o.number.map(|n| Found::Asn(n.to_string())),
        "mutex" => o.name.clone().map(Found::Mutex),
        "file" => file_hashes(&o.hashes),
        "windows-registry-key" => o.key.clone().map(|key| {
            let first = o.values.first();
            Found::RegistryKey {
                key,
                value_name: first.and_then(|v| v.name.clone()),
                data_type: first.and_then(|v| v.data_type.clone()),
            }
        }),
        _ => user_agent(o.extensions.as_ref()).map(Found::UserAgent),
    };
    let Some(found) = found else {
        return vec![skipped(line, format!("stix {kind} without a value"))];
    };
    let mut common = common(&o, refs, line);
    // An observable has no description of its own.
    common.description = None;
    vec![Item::Row(row(found, common))]
}

/// A file observable's MD5, SHA-1 and SHA-256 (names in any case).
fn file_hashes(hashes: &BTreeMap<String, String>) -> Option<Found> {
    let get = |want: &str| {
        hashes
            .iter()
            .find(|(k, _)| k.to_ascii_uppercase().replace('-', "") == want)
            .map(|(_, v)| v.clone())
    };
    let (md5, sha1, sha256) = (get("MD5"), get("SHA1"), get("SHA256"));
    (md5.is_some() || sha1.is_some() || sha256.is_some()).then_some(Found::File {
        md5,
        sha1,
        sha256,
    })
}

/// A network-traffic observable's HTTP request User-Agent.
fn user_agent(extensions: Option<&Value>) -> Option<String> {
    extensions?
        .get("http-request-ext")?
        .get("request_header")?
        .get("User-Agent")?
        .as_str()
        .map(str::to_string)
}
