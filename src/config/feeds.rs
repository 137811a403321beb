//! The `[[feeds]]` rules: which files each applies to, its defaults, and its
//! column mapping (checked against [`Field`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawColumn;
use super::{FeedLifecycle, FeedRule, RawFeedRule};
use crate::feed::{Field, Format};
use crate::indicator::IndicatorType;
use crate::names::RetireMode;

/// Validates every `[[feeds]]` rule, pushing their problems to `errors`.
pub(super) fn validate(rules: Vec<RawFeedRule>, errors: &mut Vec<String>) -> Vec<FeedRule> {
    let rules: Vec<FeedRule> = rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| rule(&format!("feeds[{i}]"), r, errors))
        .collect();
    for (i, r) in rules.iter().enumerate() {
        if let Some(n) = &r.name
            && rules[..i].iter().any(|o| o.name.as_ref() == Some(n))
        {
            errors.push(format!(
                "feeds[{i}].name: {n:?} is the name of another feed rule"
            ));
        }
    }
    rules
}

/// The lifecycle keys of a rule, checked.
fn lifecycle(key: &str, r: &RawFeedRule, errors: &mut Vec<String>) -> FeedLifecycle {
    let mut l = FeedLifecycle::default();
    if let Some(m) = &r.retire {
        match m.parse::<RetireMode>() {
            Ok(m) => l.retire = m,
            Err(e) => errors.push(format!("{key}.retire: {e}")),
        }
    }
    if let Some(t) = &r.retire_tag {
        match crate::indicator::clean_tags(std::iter::once(t)) {
            Ok(t) if t.len() == 1 => l.retire_tag = t[0].clone(),
            Ok(_) => errors.push(format!("{key}.retire_tag: empty")),
            Err(e) => errors.push(format!("{key}.retire_tag: {e}")),
        }
    }
    for (name, given, slot) in [
        (
            "max_retire_fraction",
            r.max_retire_fraction,
            &mut l.max_retire_fraction,
        ),
        (
            "max_reject_fraction",
            r.max_reject_fraction,
            &mut l.max_reject_fraction,
        ),
    ] {
        match given {
            Some(f) if (0.0..=1.0).contains(&f) => *slot = f,
            Some(f) => errors.push(format!("{key}.{name}: {f} is not from 0 to 1")),
            None => {}
        }
    }
    for (name, given, slot) in [
        ("max_age", &r.max_age, &mut l.max_age),
        ("stale_after", &r.stale_after, &mut l.stale_after),
    ] {
        if let Some(d) = given {
            match humantime::parse_duration(d) {
                Ok(d) if d >= Duration::from_secs(1) => *slot = Some(d),
                Ok(_) => errors.push(format!("{key}.{name}: {d:?} is under a second")),
                Err(e) => errors.push(format!(
                    "{key}.{name}: {d:?} is not a duration such as \"12h\" or \"30d\" ({e})"
                )),
            }
        }
    }
    let needs_name = [
        (
            r.snapshot && (r.retire.is_some() || r.max_retire_fraction.is_some()),
            "snapshot",
        ),
        (r.max_age.is_some(), "max_age"),
        (r.stale_after.is_some(), "stale_after"),
    ];
    if r.name.is_none()
        && let Some((_, what)) = needs_name.iter().find(|(set, _)| *set)
    {
        errors.push(format!(
            "{key}.name: missing: a rule with `{what}` needs a name (its state is kept under it)"
        ));
    }
    if let Some(n) = &r.name
        && (!super::pull::name_ok(n) || n == "none")
    {
        errors.push(format!(
            "{key}.name: {n:?} must be 1 to 64 of a-z, 0-9 and -, and not \"none\" (commands and metrics use it)"
        ));
    }
    l
}

/// One rule, named `key` (`feeds[0]`) in messages.
fn rule(key: &str, mut r: RawFeedRule, errors: &mut Vec<String>) -> FeedRule {
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
    let shape = shape(key, &mut r, errors);
    let lifecycle = lifecycle(key, &r, errors);
    FeedRule {
        pattern,
        dir: r.dir.map(PathBuf::from),
        owner: r.owner,
        kind,
        tags: r.tags,
        rating: r.rating,
        confidence: r.confidence,
        columns: shape.columns,
        format: shape.format,
        security_labels: r.security_labels,
        stix_observables: r.stix_observables,
        misp_all_attributes: r.misp_all_attributes,
        comments: shape.comments,
        trailing: shape.trailing,
        header: shape.header,
        header_in_comment: r.header_in_comment,
        delimiter: shape.delimiter,
        line_key: r.line_key,
        snapshot: r.snapshot,
        name: r.name,
        lifecycle,
    }
}

/// How a rule's files are read: their format and layout.
struct Shape {
    columns: BTreeMap<Field, String>,
    format: Option<Format>,
    comments: Vec<String>,
    trailing: Option<Field>,
    header: bool,
    delimiter: Option<u8>,
}

/// The rule's format and layout keys, checked (taken out of `r`).
fn shape(key: &str, r: &mut RawFeedRule, errors: &mut Vec<String>) -> Shape {
    let header = r.header.unwrap_or(true);
    let columns = columns(key, std::mem::take(&mut r.columns), header, errors);
    let trailing = r.trailing.as_deref().and_then(|t| {
        let f = Field::parse(t);
        if f.is_none() {
            errors.push(format!("{key}.trailing: unknown field {t:?}"));
        }
        f
    });
    let delimiter = r.delimiter.as_deref().and_then(|d| match d {
        "," | ";" | "|" => Some(d.as_bytes()[0]),
        "tab" | "\t" => Some(b'\t'),
        other => {
            errors.push(format!(
                "{key}.delimiter: {other:?} is not one of \",\", \";\", \"|\", \"tab\""
            ));
            None
        }
    });
    let comments = r.comment.take().unwrap_or_default();
    if comments.iter().any(|c| c.trim().is_empty()) {
        errors.push(format!(
            "{key}.comment: an empty prefix would make every line a comment"
        ));
    }
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
    Shape {
        columns,
        format,
        comments,
        trailing,
        header,
        delimiter,
    }
}

/// `columns`: each key must name a [`Field`]; unknown ones are errors.
/// With a header, each column is a name; without one, a position from 1
/// (kept as its digits).
fn columns(
    key: &str,
    raw: BTreeMap<String, RawColumn>,
    header: bool,
    errors: &mut Vec<String>,
) -> BTreeMap<Field, String> {
    let mut out = BTreeMap::new();
    for (name, column) in raw {
        let column = match (column, header) {
            (RawColumn::Name(n), true) => n,
            (RawColumn::Position(p), false) if (1..=4096).contains(&p) => p.to_string(),
            (RawColumn::Position(p), false) => {
                errors.push(format!(
                    "{key}.columns.{name}: position {p} (they count from 1, up to 4096)"
                ));
                continue;
            }
            (RawColumn::Name(n), false) => {
                errors.push(format!(
                    "{key}.columns.{name}: {n:?} is a name, but the rule says header = false: give the column's position (from 1)"
                ));
                continue;
            }
            (RawColumn::Position(p), true) => {
                errors.push(format!(
                    "{key}.columns.{name}: {p} is a position: set header = false for a table without a header, or give the column's name"
                ));
                continue;
            }
        };
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
