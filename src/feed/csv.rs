//! CSV and TSV with a header row: delimiter detected, BOM and CRLF tolerated,
//! quoted fields with delimiters and newlines, `#` comment lines.

use std::io::BufRead;
use std::rc::Rc;

use super::{
    FeedError, Field, Flow, Item, RawRecord, ReadOptions, RowLimit, RowProgress, field_for_name,
};

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

/// The csv crate's own buffer: the slack between what it took from the
/// [`RowLimit`](super::RowLimit) and what it parsed.
const CSV_BUFFER: usize = 64 << 10;

pub fn read(
    mut input: Box<dyn BufRead>,
    delimiter: Option<u8>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    // A UTF-8 BOM before the header would become part of the first column name.
    super::skip_bom(&mut input);
    let delimiter = delimiter.unwrap_or_else(|| sniff_delimiter(&mut input));
    // The csv crate holds a whole record (a header, a quoted field running to
    // the end of the file) before it hands it over: the limit sits below it.
    // The parser's buffer is slack above the limit: at most the limit again.
    let buffer = CSV_BUFFER.min(opts.max_line_bytes.max(64));
    let max = (opts.max_line_bytes + buffer) as u64;
    let build = |input: Box<dyn BufRead>, progress: &Rc<RowProgress>| {
        ::csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .comment(Some(b'#'))
            .flexible(true)
            .has_headers(false)
            .buffer_capacity(buffer)
            .from_reader(RowLimit {
                inner: input,
                progress: progress.clone(),
                max,
            })
    };
    let mut progress = Rc::new(RowProgress::default());
    let mut reader = build(input, &progress);
    let too_long = |what: &str, line: u64| FeedError::Broken {
        line,
        reason: format!(
            "{what} longer than {} bytes (watch.max_line_bytes): reading stopped there",
            opts.max_line_bytes
        ),
    };
    let mut headers = ::csv::ByteRecord::new();
    match reader.read_byte_record(&mut headers) {
        Ok(_) => {}
        Err(_) if progress.over.get() => return Err(too_long("the header", 1)),
        Err(e) => return Err(csv_broken(1, &e)),
    }
    if headers.is_empty() || headers.iter().all(|h| h.is_empty()) {
        return Ok(());
    }
    let names: Vec<String> = headers
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    drop(headers);
    let fields = map_columns(&names, opts);
    if !fields.iter().flatten().any(|f| f.is_indicator()) {
        let mut shown = super::Echo::new();
        shown.push("[");
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                shown.push(", ");
            }
            shown.push(&format!("{:?}", super::cut(n)));
        }
        shown.push("]");
        return Err(FeedError::Broken {
            line: 1,
            reason: format!(
                "no indicator column in the header {} ({} columns): name one indicator, value, ioc \
                 or summary (or md5/sha1/sha256, key_name), or map one with the feed rule's `columns`",
                shown.into_string(),
                names.len()
            ),
        });
    }
    drop(names);
    progress.mark_at(reader.position().byte());
    let mut record = ::csv::ByteRecord::new();
    // Where the row being read starts, for a row that crosses the limit.
    let mut next_line = reader.position().line();
    // Lines before the current parser's first (it restarts after a long line).
    let mut line_base = 0u64;
    // A row's position is its line, except that a lone `\r` ends a record
    // without ending a line for the csv crate: two rows would share a line,
    // and resume needs positions that only grow (found by fuzzing). The
    // same bytes always give the same positions.
    let mut last_position = 0u64;
    let mut position_of = |line: u64| {
        last_position = line.max(last_position + 1);
        last_position
    };
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(_) if progress.over.get() => {
                let line = line_base + next_line;
                if progress.newline_since_mark() {
                    // A quoted field running over lines: no line end to
                    // start again from.
                    return Err(too_long("a row (a quoted field over several lines)", line));
                }
                // One long line: skip to its end and go on with a fresh
                // parser (what it buffered was all this row's).
                let mut input = reader.into_inner().inner;
                super::skip_line(&mut input).map_err(|e| super::broken(line, &e))?;
                let item = Item::Bad {
                    position: position_of(line),
                    line,
                    input: String::new(),
                    reason: format!(
                        "row or field longer than {} bytes (watch.max_line_bytes)",
                        opts.max_line_bytes
                    ),
                };
                if sink(item).is_break() {
                    return Err(FeedError::Stopped);
                }
                line_base = line;
                progress = Rc::new(RowProgress::default());
                reader = build(input, &progress);
                next_line = reader.position().line();
                continue;
            }
            Err(e) => {
                let line = line_base + e.position().map(|p| p.line()).unwrap_or(next_line);
                match e.kind() {
                    ::csv::ErrorKind::Io(_) => return Err(csv_broken(line, &e)),
                    _ => {
                        // A row the parser cannot split: report it and go on.
                        progress.mark_at(reader.position().byte());
                        next_line = reader.position().line();
                        let item = Item::Bad {
                            position: position_of(line),
                            line,
                            input: String::new(),
                            reason: super::echo_display(&e),
                        };
                        if sink(item).is_break() {
                            return Err(FeedError::Stopped);
                        }
                        continue;
                    }
                }
            }
        }
        progress.mark_at(reader.position().byte());
        let line = line_base + record.position().map(|p| p.line()).unwrap_or(0);
        next_line = reader.position().line();
        let item = row(&record, position_of(line), line, &fields, opts);
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
    position: u64,
    line: u64,
    fields: &[Option<Field>],
    opts: &ReadOptions,
) -> Item {
    let input = || {
        let mut echo = super::Echo::new();
        for (i, f) in record.iter().enumerate() {
            if i > 0 {
                echo.push(",");
            }
            echo.push_lossy(f);
        }
        echo.into_string()
    };
    let bad = |reason: String| Item::Bad {
        position,
        line,
        input: input(),
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
        position,
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
        reason: super::echo_display(e),
    }
}
