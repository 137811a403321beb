//! Normalization: a raw feed value to an indicator in ThreatConnect's exact
//! form, or a [`Reject`] that names the rule it broke.
//!
//! Pure functions, no I/O: the rules of tc-api.md section 6, plus the tolerance
//! messy feeds need (defanging, wrapping quotes, invisible characters, type
//! guessing). Normalizing an accepted value again returns it unchanged.

mod asn;
mod defang;
mod detect;
mod hash;
mod host;
mod net;
mod registry;
mod reject;
mod timestamp;

use std::borrow::Cow;

pub use crate::indicator::{HIVES, VALUE_TYPES};
pub use defang::{clean, refang};
pub use detect::detect;
pub use reject::{Reject, RejectRule};
pub use timestamp::timestamp;

use crate::feed::RawRecord;
pub use crate::indicator::MAX_TAG_CHARS;
use crate::indicator::{
    Attribute, BadTag, FileHashes, Indicator, IndicatorType, Payload, TlpNames,
};

/// Settings a feed rule applies to every row; a row's own values win.
#[derive(Debug, Clone, Default)]
pub struct FeedDefaults {
    pub kind: Option<IndicatorType>,
    pub tags: Vec<String>,
    pub rating: Option<f64>,
    pub confidence: Option<u8>,
    /// The rule's security labels, for rows that carry none.
    pub security_labels: Vec<String>,
    /// The instance's names of the TLP levels.
    pub tlp_names: TlpNames,
}

/// One accepted row.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub indicator: Indicator,
    /// The row's own owner, when it names one.
    pub owner: Option<String>,
    pub payload: Payload,
}

/// Longest free-text value (Mutex, User Agent) accepted.
const MAX_TEXT_CHARS: usize = 2048;

/// Normalizes one value, of the given type or of the type detected from it.
///
/// # Errors
/// A [`Reject`] naming the broken rule, or `cannot-determine-type`.
pub fn value(raw: &str, kind: Option<IndicatorType>) -> Result<Indicator, Reject> {
    let cleaned = clean(raw);
    let kind = match kind {
        Some(k) => k,
        None => detect(&refang(&cleaned)).ok_or_else(|| cannot_determine(&cleaned))?,
    };
    typed_value(kind, &cleaned)
}

fn cannot_determine(s: &str) -> Reject {
    Reject::new(
        RejectRule::CannotDetermineType,
        format!("cannot determine indicator type of {s:?} (give a type)"),
    )
}

/// Normalizes a cleaned value of a known type.
fn typed_value(kind: IndicatorType, cleaned: &str) -> Result<Indicator, Reject> {
    if cleaned.is_empty() {
        return Err(Reject::new(
            RejectRule::EmptyValue,
            "the value is empty".into(),
        ));
    }
    let summary = match kind {
        IndicatorType::Mutex | IndicatorType::UserAgent => text(kind, cleaned)?,
        _ => {
            let s = refang(cleaned);
            match kind {
                IndicatorType::Address => net::address(&s)?,
                IndicatorType::Cidr => net::cidr(&s)?,
                IndicatorType::Host => host::host(&s)?,
                IndicatorType::Url => host::url(&s)?,
                IndicatorType::EmailAddress => host::email(&s)?,
                IndicatorType::Asn => asn::asn(&s)?,
                IndicatorType::RegistryKey => registry::from_summary(&s)?,
                IndicatorType::File => {
                    let mut hashes = FileHashes::default();
                    hash::parse_summary(&mut hashes, &s)?;
                    hash::summary(&hashes).ok_or_else(|| {
                        Reject::new(RejectRule::InvalidHash, "no hash in the value".into())
                    })?
                }
                IndicatorType::Mutex | IndicatorType::UserAgent => unreachable!("handled above"),
            }
        }
    };
    Ok(Indicator::from_normalized(kind, summary))
}

fn text(kind: IndicatorType, s: &str) -> Result<String, Reject> {
    if s.chars().any(char::is_control) {
        return Err(Reject::new(
            RejectRule::ControlCharacters,
            format!("{kind} {s:?} contains control characters"),
        ));
    }
    if s.chars().count() > MAX_TEXT_CHARS {
        return Err(Reject::new(
            RejectRule::ValueTooLong,
            format!("{kind} is longer than {MAX_TEXT_CHARS} characters"),
        ));
    }
    if crate::indicator::is_dot_segment(s) {
        return Err(Reject::new(
            RejectRule::DotSegment,
            format!("{kind} {s:?} is only dots: ThreatConnect's API paths cannot name it"),
        ));
    }
    Ok(s.to_string())
}

/// Normalizes one feed row: its indicator, owner, rating, confidence, tags and
/// attributes, with the feed's defaults under the row's own values.
///
/// # Errors
/// A [`Reject`] naming the field and the rule.
pub fn record(rec: &RawRecord, defaults: &FeedDefaults) -> Result<Normalized, Reject> {
    let kind = match present(&rec.kind) {
        Some(name) => Some(IndicatorType::parse_alias(name).ok_or_else(|| {
            Reject::new(
                RejectRule::UnknownType,
                format!("unknown indicator type {name:?}"),
            )
        })?),
        None => defaults.kind,
    };
    // A feed that says `ip:port` (ThreatFox) gives the address with its
    // port: the address is the indicator.
    let without_port;
    let rec = match (present(&rec.kind), present(&rec.value)) {
        (Some(k), Some(v)) if k.eq_ignore_ascii_case("ip:port") => {
            without_port = RawRecord {
                value: Some(net::without_port(v).to_string()),
                ..rec.clone()
            };
            &without_port
        }
        _ => rec,
    };
    let indicator = record_indicator(rec, kind)?;
    let rating = match present(&rec.rating) {
        Some(r) => Some(rating(r)?),
        None => defaults.rating,
    };
    let confidence = match present(&rec.confidence) {
        Some(c) => Some(confidence(c)?),
        None => defaults.confidence,
    };
    let row_tags: Vec<String> = rec
        .tags
        .iter()
        .map(|t| strip_controls(t, false).into_owned())
        .collect();
    let tags = tags(defaults.tags.iter().chain(row_tags.iter()))?;
    let first_seen = present(&rec.first_seen)
        .map(|s| timestamp("first_seen", s))
        .transpose()?;
    let last_seen = present(&rec.last_seen)
        .map(|s| timestamp("last_seen", s))
        .transpose()?;
    let security_labels = security_labels(rec, defaults)?;
    let external_modified = present(&rec.modified)
        .map(|s| timestamp("modified", s))
        .transpose()?;
    let external_expires = present(&rec.valid_until)
        .map(|s| timestamp("valid_until", s))
        .transpose()?;
    Ok(Normalized {
        indicator,
        owner: present(&rec.owner)
            .map(|o| strip_controls(o, false).trim().to_string())
            .filter(|o| !o.is_empty()),
        payload: Payload {
            rating,
            confidence,
            first_seen,
            last_seen,
            tags,
            attributes: record_attributes(rec),
            security_labels,
            external_id: present(&rec.external_id).map(|i| strip_controls(i, false).into_owned()),
            external_modified,
            external_expires,
            active: None,
        },
    })
}

/// The reject rule of a threat-intel object a reader refused.
pub fn refusal_rule(r: crate::feed::Refusal) -> RejectRule {
    use crate::feed::Refusal;
    match r {
        Refusal::StixUnsupported => RejectRule::StixUnsupported,
        Refusal::StixPatternType => RejectRule::StixPatternType,
        Refusal::StixInvalid => RejectRule::StixInvalid,
        Refusal::MispInvalid => RejectRule::MispInvalid,
    }
}

/// The row's security labels, else the rule's; a TLP level by the
/// instance's name for it. A label follows the rules of a tag (it is a
/// path segment of a v2 call too).
fn security_labels(rec: &RawRecord, defaults: &FeedDefaults) -> Result<Vec<String>, Reject> {
    let written = if rec.security_labels.is_empty() {
        &defaults.security_labels
    } else {
        &rec.security_labels
    };
    let named: Vec<String> = written
        .iter()
        .map(|l| defaults.tlp_names.label(&strip_controls(l, false)))
        .collect();
    tags(named.iter()).map_err(|r| Reject::new(r.rule, format!("security label: {}", r.message)))
}

/// A field's value trimmed, when it has one.
fn present(f: &Option<String>) -> Option<&str> {
    f.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Control characters in names and free text: the rule for tags, owners and
/// attributes (descriptions included).
///
/// Every character `char::is_control` names (C0 with NUL, DEL, C1) is
/// removed from tags, owners and attribute types; attribute values keep
/// tab, line feed and carriage return (a description may have lines) and
/// lose the others. Removing rather than refusing keeps the indicator,
/// whose value has its own rule (`control-characters` for Mutex and User
/// Agent, the type's syntax for the rest). A tag or attribute left empty is
/// dropped like an empty one.
pub fn strip_controls(s: &str, keep_whitespace: bool) -> Cow<'_, str> {
    let drop = |c: char| c.is_control() && !(keep_whitespace && matches!(c, '\t' | '\n' | '\r'));
    if s.chars().any(drop) {
        Cow::Owned(s.chars().filter(|&c| !drop(c)).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// The row's description first, then its other attributes, empty and
/// repeated ones left out; control characters removed (see
/// [`strip_controls`]).
fn record_attributes(rec: &RawRecord) -> Vec<Attribute> {
    let mut attributes = Vec::new();
    if let Some(d) = present(&rec.description) {
        let d = strip_controls(d, true);
        let d = d.trim();
        if !d.is_empty() {
            attributes.push(Attribute {
                kind: "Description".into(),
                value: d.to_string(),
            });
        }
    }
    for (k, v) in &rec.attributes {
        let (k, v) = (strip_controls(k, false), strip_controls(v, true));
        let (k, v) = (k.trim(), v.trim());
        if !k.is_empty() && !v.is_empty() && !attributes.iter().any(|a| a.kind == k && a.value == v)
        {
            attributes.push(Attribute {
                kind: k.to_string(),
                value: v.to_string(),
            });
        }
    }
    attributes
}

/// The indicator of a row: from its hash columns, its registry columns, or
/// its value.
fn record_indicator(rec: &RawRecord, kind: Option<IndicatorType>) -> Result<Indicator, Reject> {
    fn cleaned(f: &Option<String>) -> Option<Cow<'_, str>> {
        f.as_deref().map(clean).filter(|s| !s.is_empty())
    }
    let hash_columns: Vec<Cow<'_, str>> = [&rec.md5, &rec.sha1, &rec.sha256]
        .into_iter()
        .filter_map(cleaned)
        .collect();
    let value = cleaned(&rec.value);
    if !hash_columns.is_empty() && matches!(kind, None | Some(IndicatorType::File)) {
        let mut hashes = FileHashes::default();
        for h in &hash_columns {
            hash::add_hash(&mut hashes, h)?;
        }
        if let Some(v) = &value {
            hash::parse_summary(&mut hashes, v)?;
        }
        let summary = hash::summary(&hashes).expect("at least one hash");
        return Ok(Indicator::from_normalized(IndicatorType::File, summary));
    }
    if let Some(key) = cleaned(&rec.key_name)
        && matches!(kind, None | Some(IndicatorType::RegistryKey))
    {
        let summary =
            registry::registry_key(&key, rec.value_name.as_deref(), rec.value_type.as_deref())?;
        return Ok(Indicator::from_normalized(
            IndicatorType::RegistryKey,
            summary,
        ));
    }
    let Some(v) = value else {
        if let Some(start) = cleaned(&rec.range_start) {
            let summary = net::range(
                &start,
                rec.range_end.as_deref(),
                rec.prefix_length.as_deref(),
            )?;
            return Ok(Indicator::from_normalized(IndicatorType::Cidr, summary));
        }
        return Err(Reject::new(
            RejectRule::EmptyValue,
            "the row has no indicator value".into(),
        ));
    };
    if kind == Some(IndicatorType::RegistryKey)
        && (rec.value_name.is_some() || rec.value_type.is_some())
    {
        let summary = registry::registry_key(
            &refang(&v),
            rec.value_name.as_deref(),
            rec.value_type.as_deref(),
        )?;
        return Ok(Indicator::from_normalized(
            IndicatorType::RegistryKey,
            summary,
        ));
    }
    let kind = match kind {
        Some(k) => k,
        None => detect(&refang(&v)).ok_or_else(|| cannot_determine(&v))?,
    };
    typed_value(kind, &v)
}

/// A rating from 0 to 5 (fractions allowed).
///
/// # Errors
/// When it is not a number in range.
pub fn rating(s: &str) -> Result<f64, Reject> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=5.0).contains(&r) => Ok(r),
        _ => Err(Reject::new(
            RejectRule::InvalidRating,
            format!("rating {s:?} is not a number from 0 to 5"),
        )),
    }
}

/// A confidence from 0 to 100, an integer.
///
/// # Errors
/// When it is not an integer in range.
pub fn confidence(s: &str) -> Result<u8, Reject> {
    let parsed = s.parse::<u8>().ok().or_else(|| {
        s.parse::<f64>()
            .ok()
            .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 100.0)
            .map(|f| f as u8)
    });
    match parsed {
        Some(c) if c <= 100 => Ok(c),
        _ => Err(Reject::new(
            RejectRule::InvalidConfidence,
            format!("confidence {s:?} is not an integer from 0 to 100"),
        )),
    }
}

/// Tags trimmed, empty ones dropped, duplicates (ignoring case) removed, each
/// at most 128 characters and not only dots (see
/// [`crate::indicator::clean_tags`]).
///
/// # Errors
/// When a tag is too long, or only dots.
pub fn tags<'a>(raw: impl Iterator<Item = &'a String>) -> Result<Vec<String>, Reject> {
    crate::indicator::clean_tags(raw).map_err(|e| {
        let rule = match e {
            BadTag::TooLong(_) => RejectRule::TagTooLong,
            BadTag::DotSegment(_) => RejectRule::DotSegment,
        };
        Reject::new(rule, e.to_string())
    })
}

#[cfg(test)]
mod tests;
