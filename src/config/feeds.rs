//! The `[[feeds]]` rules: which files each applies to, its defaults, and its
//! column mapping (checked against [`Field`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{FeedRule, RawFeedRule};
use crate::feed::{Field, Format};
use crate::indicator::IndicatorType;

/// Validates every `[[feeds]]` rule, pushing their problems to `errors`.
pub(super) fn validate(rules: Vec<RawFeedRule>, errors: &mut Vec<String>) -> Vec<FeedRule> {
    rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(&format!("feeds[{i}]"), r, errors))
        .collect()
}

/// One rule, named `key` (`feeds[0]`) in messages.
fn rule(key: &str, r: RawFeedRule, errors: &mut Vec<String>) -> FeedRule {
    if r.pattern.is_none() && r.dir.is_none() {
        errors.push(format!(
            "{key}: needs `match` (a glob) or `dir` (a subdirectory of watch.dir)"
        ));
    }
    let pattern = r
        .pattern
        .as_deref()
        .and_then(|p| match globset::Glob::new(p) {
            Ok(g) => Some(g.compile_matcher()),
            Err(e) => {
                errors.push(format!("{key}.match: {p:?} is not a glob ({e})"));
                None
            }
        });
    let kind = r.kind.as_deref().and_then(|t| {
        let k = IndicatorType::parse_alias(t);
        if k.is_none() {
            errors.push(format!("{key}.type: unknown indicator type {t:?}"));
        }
        k
    });
    if let Some(rt) = r.rating
        && !(0.0..=5.0).contains(&rt)
    {
        errors.push(format!("{key}.rating: {rt} is not from 0 to 5"));
    }
    if let Some(c) = r.confidence
        && c > 100
    {
        errors.push(format!("{key}.confidence: {c} is not from 0 to 100"));
    }
    let columns = columns(key, r.columns, errors);
    if let Err(e) = crate::indicator::clean_tags(r.tags.iter()) {
        errors.push(format!("{key}.tags: {e}"));
    }
    if let Err(e) = crate::indicator::clean_tags(r.security_labels.iter()) {
        errors.push(format!("{key}.security_labels: {e}"));
    }
    let format = r.format.as_deref().and_then(|f| {
        let format = Format::parse(f);
        if format.is_none() {
            errors.push(format!(
                "{key}.format: unknown format {f:?}; known: {}",
                Format::NAMES.join(", ")
            ));
        }
        format
    });
    FeedRule {
        pattern,
        dir: r.dir.map(PathBuf::from),
        owner: r.owner,
        kind,
        tags: r.tags,
        rating: r.rating,
        confidence: r.confidence,
        columns,
        format,
        security_labels: r.security_labels,
        stix_observables: r.stix_observables,
        misp_all_attributes: r.misp_all_attributes,
    }
}

/// `columns`: each key must name a [`Field`]; unknown ones are errors.
fn columns(
    key: &str,
    raw: BTreeMap<String, String>,
    errors: &mut Vec<String>,
) -> BTreeMap<Field, String> {
    let mut out = BTreeMap::new();
    for (name, column) in raw {
        match Field::parse(&name) {
            Some(field) => {
                out.insert(field, column);
            }
            None => {
                let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
                errors.push(format!(
                    "{key}.columns.{name}: unknown field; known: {}",
                    known.join(", ")
                ));
            }
        }
    }
    out
}
