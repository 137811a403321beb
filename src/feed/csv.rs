//! CSV and TSV with a header row: delimiter detected, BOM and CRLF tolerated,
//! quoted fields with delimiters and newlines, `#` comment lines.

use std::io::BufRead;

use super::{FeedError, Field, Flow, Item, RawRecord, ReadOptions, field_for_name};

/// Picks the delimiter from the header line: the most frequent of `,` `;` tab `|`.
fn sniff_delimiter(input: &mut dyn BufRead) -> u8 {
    let head = input.fill_buf().unwrap_or(&[]);
    let text = String::from_utf8_lossy(&head[..head.len().min(64 << 10)]);
    let header = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or("");
    [b',', b';', b'\t', b'|']
        .into_iter()
        .max_by_key(|d| (header.bytes().filter(|b| b == d).count(), *d == b','))
        .unwrap_or(b',')
}

pub fn read(
    mut input: Box<dyn BufRead>,
    delimiter: Option<u8>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    // A UTF-8 BOM before the header would become part of the first column name.
    super::skip_bom(&mut input);
    let delimiter = delimiter.unwrap_or_else(|| sniff_delimiter(&mut input));
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .comment(Some(b'#'))
        .flexible(true)
        .has_headers(true)
        .from_reader(input);
    let headers = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_broken(1, &e)),
    };
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Ok(());
    }
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    let fields = map_columns(&names, opts);
    if !fields.iter().flatten().any(|f| f.is_indicator()) {
        return Err(FeedError::Broken {
            line: 1,
            reason: format!(
                "no indicator column in the header {names:?}: name one indicator, value, ioc or summary \
                 (or md5/sha1/sha256, key_name), or map one with the feed rule's `columns`"
            ),
        });
    }
    let mut record = ::csv::ByteRecord::new();
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                match e.kind() {
                    ::csv::ErrorKind::Io(_) => return Err(csv_broken(line, &e)),
                    _ => {
                        // A row the parser cannot split: report it and go on.
                        let item = Item::Bad {
                            position: line,
                            line,
                            input: String::new(),
                            reason: e.to_string(),
                        };
                        if sink(item).is_break() {
                            return Err(FeedError::Stopped);
                        }
                        continue;
                    }
                }
            }
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let item = row(&record, line, &fields, opts);
        if sink(item).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}

/// For each column, the field it fills: the explicit mapping first, then
/// common names.
fn map_columns(names: &[String], opts: &ReadOptions) -> Vec<Option<Field>> {
    names
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
        .collect()
}

fn row(
    record: &::csv::ByteRecord,
    line: u64,
    fields: &[Option<Field>],
    opts: &ReadOptions,
) -> Item {
    let input = || {
        record
            .iter()
            .map(|f| String::from_utf8_lossy(f).into_owned())
            .collect::<Vec<_>>()
            .join(",")
    };
    let bad = |reason: String| Item::Bad {
        position: line,
        line,
        input: super::truncate_input(input()),
        reason,
    };
    if record.len() != fields.len() {
        return bad(format!(
            "{} fields where the header has {}",
            record.len(),
            fields.len()
        ));
    }
    let mut rec = RawRecord {
        position: line,
        line,
        ..RawRecord::default()
    };
    for (raw, field) in record.iter().zip(fields) {
        if raw.len() > opts.max_line_bytes {
            return bad(format!(
                "field longer than {} bytes (watch.max_line_bytes)",
                opts.max_line_bytes
            ));
        }
        let Some(field) = *field else { continue };
        let Ok(s) = std::str::from_utf8(raw) else {
            return bad(format!("invalid UTF-8 in column {field}"));
        };
        if !s.trim().is_empty() {
            rec.set(field, s.to_string());
        }
    }
    Item::Row(rec)
}

fn csv_broken(line: u64, e: &::csv::Error) -> FeedError {
    FeedError::Broken {
        line,
        reason: e.to_string(),
    }
}
