//! A table's columns: from its header row, from the comment line before
//! its rows, or by position.

use std::io::BufRead;

use super::{Next, Records};
use crate::feed::{FeedError, Field, ReadOptions, field_for_name};

/// What a table's columns are, and the first row when it was read to
/// find that out.
pub(super) struct Columns {
    pub(super) fields: Vec<Option<Field>>,
    pub(super) first_row: Option<(u64, Vec<Vec<u8>>)>,
}

/// The table's columns: by position (`header = false`), from the last
/// comment line before the rows (`header_in_comment`, or when the first
/// row names no indicator column but that comment does: abuse.ch and
/// DataPlane write their header so), or from the first row. `None` when
/// the file is empty (or its header is); a header without an indicator
/// column breaks the file.
pub(super) fn columns(
    records: &mut Records,
    opts: &ReadOptions,
    comment_header: Option<Vec<String>>,
    too_long: impl Fn(&str, u64) -> FeedError,
) -> Result<Option<Columns>, FeedError> {
    if !opts.header {
        return Ok(Some(Columns {
            fields: by_position(opts),
            first_row: None,
        }));
    }
    let from_comment = comment_header.map(|names| (map_columns(&names, opts), names));
    if opts.header_in_comment {
        let Some((fields, names)) = from_comment else {
            return Err(FeedError::Broken {
                line: 1,
                reason: "header_in_comment: no comment line before the first row".into(),
            });
        };
        return checked(fields, &names).map(|fields| {
            Some(Columns {
                fields,
                first_row: None,
            })
        });
    }
    let (line, names) = match records.next(true) {
        Err(e) => return Err(crate::feed::broken(1, &e)),
        Ok(Next::End) => return Ok(None),
        Ok(Next::TooLong { line, .. }) => return Err(too_long("the header", line)),
        Ok(Next::Record { line, ends }) => (line, records.fields(ends)),
    };
    let names: Vec<String> = names
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    if names.iter().all(String::is_empty) {
        return Ok(None);
    }
    let fields = map_columns(&names, opts);
    // The comment is the header when it names an indicator column and the
    // first row does not, or when both do, with as many columns, and the
    // first row is not the same names again (a data row may hold a word
    // such as `url`: ThreatFox's type column).
    let same = |c: &[String]| {
        c.len() == names.len()
            && c.iter()
                .zip(&names)
                .all(|(a, b)| a.eq_ignore_ascii_case(b.trim()))
    };
    if let Some((comment_fields, _)) = from_comment.filter(|(f, c)| {
        has_indicator(f) && (!has_indicator(&fields) || (c.len() == names.len() && !same(c)))
    }) {
        // The first row is a row: the header was the comment before it.
        let values = names.into_iter().map(String::into_bytes).collect();
        return Ok(Some(Columns {
            fields: comment_fields,
            first_row: Some((line, values)),
        }));
    }
    checked(fields, &names).map(|fields| {
        Some(Columns {
            fields,
            first_row: None,
        })
    })
}

fn has_indicator(fields: &[Option<Field>]) -> bool {
    fields.iter().flatten().any(|f| f.is_indicator())
}

/// The header's fields, if one names an indicator column.
fn checked(fields: Vec<Option<Field>>, names: &[String]) -> Result<Vec<Option<Field>>, FeedError> {
    if has_indicator(&fields) {
        Ok(fields)
    } else {
        Err(no_indicator_column(names))
    }
}

/// The fields of a table without a header: `columns` gives positions.
fn by_position(opts: &ReadOptions) -> Vec<Option<Field>> {
    let mut fields = Vec::new();
    for (field, column) in &opts.columns {
        if let Ok(p) = column.parse::<usize>()
            && (1..=4096).contains(&p)
        {
            if fields.len() < p {
                fields.resize(p, None);
            }
            fields[p - 1] = Some(*field);
        }
    }
    if !has_indicator(&fields) {
        // Nothing said: the first column is the value.
        if fields.is_empty() {
            fields.push(None);
        }
        fields[0].get_or_insert(Field::Value);
    }
    fields
}

/// The comment character: the first of the rule's prefixes, else `#`.
pub(super) fn comment_byte(opts: &ReadOptions) -> u8 {
    opts.comments
        .first()
        .and_then(|c| c.bytes().next())
        .unwrap_or(b'#')
}

/// Reads the comment lines (starting with `comment`) before the first row:
/// how many, and the last non-empty one without its comment marks.
pub(super) fn leading_comments(
    input: &mut Box<dyn BufRead>,
    comment: u8,
    max: usize,
) -> std::io::Result<(u64, Option<Vec<u8>>)> {
    let (mut lines, mut last) = (0u64, None);
    let mut buf = Vec::new();
    while input.fill_buf()?.first() == Some(&comment) {
        let Some(fits) = crate::feed::read_line_limited(input.as_mut(), &mut buf, max)? else {
            break;
        };
        lines += 1;
        let text = buf.trim_ascii();
        let text = text
            .iter()
            .position(|&b| b != comment)
            .map_or(&[][..], |i| text[i..].trim_ascii());
        if fits && !text.is_empty() {
            last = Some(text.to_vec());
        }
    }
    Ok((lines, last))
}

/// One line split as a record (quotes as CSV has them), each field trimmed.
pub(super) fn split_record(line: &[u8], delimiter: u8) -> Vec<String> {
    let mut core = ::csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .build();
    let mut out = vec![0u8; line.len() + 1];
    let mut ends = vec![0usize; line.len() + 1];
    let mut input = line.to_vec();
    input.push(b'\n');
    let (_, _, _, n) = core.read_record(&input, &mut out, &mut ends);
    let mut start = 0;
    ends[..n]
        .iter()
        .map(|&end| {
            let f = String::from_utf8_lossy(&out[start..end]).trim().to_string();
            start = end;
            f
        })
        .collect()
}

/// A header naming no indicator column, shown cut.
fn no_indicator_column(names: &[String]) -> FeedError {
    let mut shown = crate::feed::Echo::new();
    shown.push("[");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            shown.push(", ");
        }
        shown.push(&format!("{:?}", crate::feed::cut(n)));
    }
    shown.push("]");
    FeedError::Broken {
        line: 1,
        reason: format!(
            "no indicator column in the header {} ({} columns): name one indicator, value, ioc \
             or summary (or md5/sha1/sha256, key_name), or map one with the feed rule's `columns`; \
             a feed whose header is a comment line takes `header_in_comment = true`, one without \
             a header `header = false` with columns by position; a known public feed, its \
             `preset` (tc-ingest presets)",
            shown.into_string(),
            names.len()
        ),
    }
}

/// For each column, the field it fills: the explicit mapping first, then
/// common names.
fn map_columns(names: &[String], opts: &ReadOptions) -> Vec<Option<Field>> {
    let mut fields: Vec<Option<Field>> = names
        .iter()
        .map(|name| {
            let explicit = opts
                .columns
                .iter()
                .find(|(_, col)| col.trim().eq_ignore_ascii_case(name.trim()))
                .map(|(field, _)| *field);
            explicit.or_else(|| {
                // A column claimed by an explicit mapping is not also guessed.
                if opts
                    .columns
                    .values()
                    .any(|c| c.eq_ignore_ascii_case(name.trim()))
                {
                    None
                } else {
                    field_for_name(name).filter(|f| !opts.columns.contains_key(f))
                }
            })
        })
        .collect();
    // A column named by what it holds gives way to one named as the value.
    let named_value = names
        .iter()
        .zip(&fields)
        .any(|(n, f)| *f == Some(Field::Value) && !crate::feed::is_value_alias(n));
    if named_value {
        for (n, f) in names.iter().zip(fields.iter_mut()) {
            if *f == Some(Field::Value) && crate::feed::is_value_alias(n) && !explicit(n, opts) {
                *f = None;
            }
        }
    }
    // One column per field: the first that names it (an explicit mapping
    // is found first, as it names the column exactly).
    let mut seen = std::collections::HashSet::new();
    for f in &mut fields {
        if let Some(field) = *f
            && !seen.insert(field)
            && field != Field::Tags
        {
            *f = None;
        }
    }
    fields
}

/// Whether the rule's `columns` names the column `name`.
fn explicit(name: &str, opts: &ReadOptions) -> bool {
    opts.columns
        .values()
        .any(|c| c.trim().eq_ignore_ascii_case(name.trim()))
}
