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

/// A CSV parser (csv-core) over the input that never holds more than the
/// limit: the csv crate would grow its record buffer to hold a whole header
/// or a quoted field running to the end of the file; here the buffer stops
/// at `max_line_bytes` and the rest of that record is parsed into nothing.
struct Records {
    core: ::csv_core::Reader,
    input: Box<dyn BufRead>,
    /// The parser's line after the last record: where the next one starts.
    line: u64,
    fields: Vec<u8>,
    ends: Vec<usize>,
    /// Bytes a record's fields may hold, and how many fields it may have
    /// (each field costs a word: at most the byte limit again).
    max_bytes: usize,
    max_fields: usize,
}

/// What [`Records::next`] found.
enum Next {
    /// A record starting at `line`, in `fields`/`ends` (`ends` long).
    Record {
        line: u64,
        ends: usize,
    },
    /// A record past the limit, starting at `line`, skipped to its end
    /// (`multiline`: its fields ran over line ends, so it may be a quote
    /// that never closes).
    TooLong {
        line: u64,
        multiline: bool,
    },
    End,
}

impl Records {
    /// The next record. With `stop_at_limit` a record past the limit is
    /// not parsed on to its end (the header: the file fails anyway).
    fn next(&mut self, stop_at_limit: bool) -> std::io::Result<Next> {
        use ::csv_core::ReadRecordResult as R;
        let start = self.line;
        // The line where the record's own bytes began (after comments).
        let mut first_out = None;
        let (mut outlen, mut endlen) = (0, 0);
        let mut over = false;
        let mut scratch = [0u8; 4096];
        let mut scratch_ends = [0usize; 64];
        loop {
            let buf = self.input.fill_buf()?;
            // One line at a time, so that `first_out` is the line the
            // record's bytes begin on, not a comment line before it.
            let input = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => &buf[..=i],
                None => buf,
            };
            let (res, nin, nout, nend) = if over {
                self.core
                    .read_record(input, &mut scratch, &mut scratch_ends)
            } else {
                self.core
                    .read_record(input, &mut self.fields[outlen..], &mut self.ends[endlen..])
            };
            self.input.consume(nin);
            if first_out.is_none() && (nout > 0 || nend > 0) {
                first_out = Some(self.line);
            }
            self.line = self.core.line();
            if !over {
                outlen += nout;
                endlen += nend;
            }
            match res {
                R::InputEmpty => {}
                R::OutputFull | R::OutputEndsFull if over => {}
                R::OutputFull | R::OutputEndsFull if self.grow(&res) => {}
                R::OutputFull | R::OutputEndsFull => {
                    // Past the limit: parse the rest of this record into
                    // nothing, so the next one starts where it should.
                    over = true;
                    if first_out.is_none() {
                        first_out = Some(self.line);
                    }
                    if stop_at_limit || self.core.line() > first_out.unwrap_or(start) {
                        return Ok(Next::TooLong {
                            line: start,
                            multiline: true,
                        });
                    }
                }
                R::Record if over => {
                    let multiline = self.core.line() > first_out.unwrap_or(start) + 1;
                    return Ok(Next::TooLong {
                        line: start,
                        multiline,
                    });
                }
                R::End if over => {
                    return Ok(Next::TooLong {
                        line: start,
                        multiline: false,
                    });
                }
                R::Record => {
                    return Ok(Next::Record {
                        line: start,
                        ends: endlen,
                    });
                }
                R::End => return Ok(Next::End),
            }
        }
    }

    /// Grows the buffer `res` found full, up to its limit; false at the
    /// limit.
    fn grow(&mut self, res: &::csv_core::ReadRecordResult) -> bool {
        use ::csv_core::ReadRecordResult as R;
        match res {
            R::OutputFull if self.fields.len() < self.max_bytes => {
                let n = (self.fields.len() * 2).clamp(1024, self.max_bytes);
                self.fields.resize(n, 0);
                true
            }
            R::OutputEndsFull if self.ends.len() < self.max_fields => {
                let n = (self.ends.len() * 2).clamp(64, self.max_fields);
                self.ends.resize(n, 0);
                true
            }
            _ => false,
        }
    }

    /// The fields of the record [`Records::next`] returned.
    fn fields(&self, ends: usize) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends[..ends]
            .iter()
            .map(|&end| {
                let f = &self.fields[start..end];
                start = end;
                f
            })
            .collect()
    }
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
    let mut records = Records {
        core: ::csv_core::ReaderBuilder::new()
            .delimiter(delimiter)
            .comment(Some(b'#'))
            .build(),
        input,
        line: 1,
        fields: vec![0; 1024],
        ends: vec![0; 64],
        max_bytes: opts.max_line_bytes,
        max_fields: (opts.max_line_bytes / 8).max(1024),
    };
    let max_fields = records.max_fields;
    let too_long = |what: &str, line: u64| FeedError::Broken {
        line,
        reason: format!(
            "{what} longer than {} bytes or {} fields (watch.max_line_bytes): reading stopped there",
            opts.max_line_bytes, max_fields
        ),
    };
    let Some(fields) = header(&mut records, opts, too_long)? else {
        return Ok(());
    };
    // A row's position is its line, except that a lone `\r` ends a record
    // without ending a line for the parser: two rows would share a line,
    // and resume needs positions that only grow (found by fuzzing). The
    // same bytes always give the same positions.
    let mut last_position = 0u64;
    let mut position_of = |line: u64| {
        last_position = line.max(last_position + 1);
        last_position
    };
    loop {
        let item = match records.next(false) {
            Err(e) => return Err(super::broken(records.line, &e)),
            Ok(Next::End) => return Ok(()),
            Ok(Next::TooLong {
                line,
                multiline: true,
            }) => {
                // Likely a quote that never closes: what follows cannot be
                // trusted to be rows.
                return Err(too_long("a row (a quoted field over several lines)", line));
            }
            Ok(Next::TooLong { line, .. }) => Item::Bad {
                position: position_of(line),
                line,
                input: String::new(),
                reason: format!(
                    "row or field longer than {} bytes or {} fields (watch.max_line_bytes)",
                    opts.max_line_bytes, max_fields
                ),
            },
            Ok(Next::Record { line, ends }) => row(
                &records.fields(ends),
                position_of(line),
                line,
                &fields,
                opts,
            ),
        };
        if sink(item).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}

/// The header's fields, or `None` when the file is empty (or its header
/// is): a header without an indicator column breaks the file.
fn header(
    records: &mut Records,
    opts: &ReadOptions,
    too_long: impl Fn(&str, u64) -> FeedError,
) -> Result<Option<Vec<Option<Field>>>, FeedError> {
    let names: Vec<String> = match records.next(true) {
        Err(e) => return Err(super::broken(1, &e)),
        Ok(Next::End) => return Ok(None),
        Ok(Next::TooLong { line, .. }) => return Err(too_long("the header", line)),
        Ok(Next::Record { ends, .. }) => records
            .fields(ends)
            .iter()
            .map(|h| String::from_utf8_lossy(h).into_owned())
            .collect(),
    };
    if names.iter().all(String::is_empty) {
        return Ok(None);
    }
    let fields = map_columns(&names, opts);
    if !fields.iter().flatten().any(|f| f.is_indicator()) {
        return Err(no_indicator_column(&names));
    }
    Ok(Some(fields))
}

/// A header naming no indicator column, shown cut.
fn no_indicator_column(names: &[String]) -> FeedError {
    let mut shown = super::Echo::new();
    shown.push("[");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            shown.push(", ");
        }
        shown.push(&format!("{:?}", super::cut(n)));
    }
    shown.push("]");
    FeedError::Broken {
        line: 1,
        reason: format!(
            "no indicator column in the header {} ({} columns): name one indicator, value, ioc \
             or summary (or md5/sha1/sha256, key_name), or map one with the feed rule's `columns`",
            shown.into_string(),
            names.len()
        ),
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
    record: &[&[u8]],
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
