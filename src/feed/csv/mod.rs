//! CSV, TSV and `|` tables: delimiter detected, BOM and CRLF tolerated,
//! quoted fields with delimiters and newlines, comment lines; the columns
//! from a header row, a header in a comment line, or positions (`header`).

use std::io::BufRead;

mod header;
mod quotes;

use header::{Columns, columns, comment_byte, leading_comments, split_record};
use quotes::QuoteAfterSpace;

use super::{FeedError, Field, Flow, Item, RawRecord, ReadOptions};

/// Picks the delimiter from the first line that is no comment: the most
/// frequent of `,` `;` tab `|`.
fn sniff_delimiter(input: &mut dyn BufRead, comment: u8) -> u8 {
    let head = input.fill_buf().unwrap_or(&[]);
    let text = String::from_utf8_lossy(&head[..head.len().min(64 << 10)]);
    let header = text
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with(comment as char))
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
    /// Lines read before the parser saw any (a header in a comment).
    offset: u64,
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
            self.line = self.core.line() + self.offset;
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
                    if stop_at_limit || self.line > first_out.unwrap_or(start) {
                        return Ok(Next::TooLong {
                            line: start,
                            multiline: true,
                        });
                    }
                }
                R::Record if over => {
                    let multiline = self.line > first_out.unwrap_or(start) + 1;
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

/// The parser over `input` past its byte order mark and leading comment
/// lines: with the delimiter (given, the rule's, or detected) and the last
/// of those comments (the header, in some feeds).
fn open(
    mut input: Box<dyn BufRead>,
    delimiter: Option<u8>,
    opts: &ReadOptions,
) -> Result<(Records, u8, Option<Vec<u8>>), FeedError> {
    // A UTF-8 BOM before the header would become part of the first column name.
    super::skip_bom(&mut input);
    let comment = comment_byte(opts);
    let delimiter = delimiter
        .or(opts.delimiter)
        .unwrap_or_else(|| sniff_delimiter(&mut input, comment));
    // The comment lines before the first row: the last may be the header.
    let (skipped, last_comment) = leading_comments(&mut input, comment, opts.max_line_bytes)
        .map_err(|e| super::broken(1, &e))?;
    // Quoted fields after a delimiter and a space (ThreatFox's `"a", "b"`),
    // when the first row shows them: a CSV parser takes a quote only at a
    // field's first byte.
    let spaced = input.fill_buf().is_ok_and(|head| {
        let first = head.split(|&b| b == b'\n').next().unwrap_or(head);
        memchr::memmem::find(first, &[b'"', delimiter, b' ', b'"']).is_some()
    });
    let input: Box<dyn BufRead> = if spaced {
        Box::new(std::io::BufReader::with_capacity(
            64 << 10,
            QuoteAfterSpace::new(input, delimiter),
        ))
    } else {
        input
    };
    let records = Records {
        core: ::csv_core::ReaderBuilder::new()
            .delimiter(delimiter)
            .comment(Some(comment))
            .build(),
        input,
        line: skipped + 1,
        offset: skipped,
        fields: vec![0; 1024],
        ends: vec![0; 64],
        max_bytes: opts.max_line_bytes,
        max_fields: (opts.max_line_bytes / 8).max(1024),
    };
    Ok((records, delimiter, last_comment))
}

pub fn read(
    input: Box<dyn BufRead>,
    delimiter: Option<u8>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    let (mut records, delimiter, last_comment) = open(input, delimiter, opts)?;
    let max_fields = records.max_fields;
    let too_long = |what: &str, line: u64| FeedError::Broken {
        line,
        reason: format!(
            "{what} longer than {} bytes or {} fields (watch.max_line_bytes): reading stopped there",
            opts.max_line_bytes, max_fields
        ),
    };
    let comment_header = last_comment.map(|c| split_record(&c, delimiter));
    let Some(Columns { fields, first_row }) =
        columns(&mut records, opts, comment_header, too_long)?
    else {
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
    let table = Table {
        fields: &fields,
        realign: matches!(delimiter, b'|' | b'\t'),
    };
    let mut first_row = first_row;
    loop {
        let next = match first_row.take() {
            Some((line, values)) => {
                let record: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
                let item = row(&record, position_of(line), line, &table, opts);
                if sink(item).is_break() {
                    return Err(FeedError::Stopped);
                }
                continue;
            }
            None => records.next(false),
        };
        let item = match next {
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
            Ok(Next::Record { line, ends }) => {
                row(&records.fields(ends), position_of(line), line, &table, opts)
            }
        };
        if sink(item).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}

/// Which field each of a row's `n` values fills, by index. A row of a
/// table without a header fills what its positions give. A row with more
/// values than the header has columns holds a stray delimiter in a
/// free-text column: the first column no field is taken from (else the
/// first description): columns before it are counted from the left, those
/// after it from the right, so the indicator column is not shifted. Fewer
/// values than columns: `None`.
fn align(
    n: usize,
    fields: &[Option<Field>],
    header: bool,
    realign: bool,
) -> Option<Vec<(usize, Field)>> {
    let mapped = |i: usize| fields[i].map(|f| (i, f));
    if !header || n == fields.len() {
        return Some((0..fields.len().min(n)).filter_map(mapped).collect());
    }
    if n < fields.len() || !realign {
        return None;
    }
    let extra = n - fields.len();
    let free = fields
        .iter()
        .position(Option::is_none)
        .or_else(|| fields.iter().position(|f| *f == Some(Field::Description)))?;
    Some(
        (0..fields.len())
            .filter_map(|i| {
                let at = if i <= free { i } else { i + extra };
                // The free column keeps its first piece.
                fields[i].map(|f| (at, f))
            })
            .collect(),
    )
}

/// A table's columns, and whether a row with a stray delimiter is
/// realigned (`|` and tab tables, whose free text is not quoted; in a
/// comma or semicolon CSV it is a quoting mistake: refused).
struct Table<'a> {
    fields: &'a [Option<Field>],
    realign: bool,
}

fn row(record: &[&[u8]], position: u64, line: u64, table: &Table<'_>, opts: &ReadOptions) -> Item {
    let fields = table.fields;
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
    let Some(columns) = align(record.len(), fields, opts.header, table.realign) else {
        return bad(format!(
            "{} fields where the header has {}",
            record.len(),
            fields.len()
        ));
    };
    let mut rec = RawRecord {
        position,
        line,
        ..RawRecord::default()
    };
    for (i, field) in columns {
        let raw = record[i];
        let Ok(s) = std::str::from_utf8(raw) else {
            return bad(format!("invalid UTF-8 in column {field}"));
        };
        let t = s.trim();
        if !t.is_empty() {
            rec.set(field, t.to_string());
        }
    }
    Item::Row(rec)
}
