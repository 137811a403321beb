//! STIX 2.1: a bundle (`{"type": "bundle", "objects": [..]}`), a JSON array
//! of objects, or objects one per line, read in two passes over the file so
//! that memory stays flat whatever its size and order:
//!
//! 1. the small objects indicators refer to (marking definitions and
//!    identities) are collected, bounded in number;
//! 2. every object is read again, one at a time, and handed over: an
//!    indicator as one row per value its pattern gives, anything else
//!    skipped by type (or, with `stix_observables`, an observable as an
//!    indicator).
//!
//! Positions are `object ordinal << 12 | value index`, so that a resumed
//! read finds the same position for every row even when an object gives
//! fewer rows than before (it expired meanwhile).

mod objects;
pub mod pattern;
mod refs;

use std::io::{self, BufRead};

use super::jsonscan::{Scanner, Stop};
use super::{FeedError, Flow, Item, ReadOptions, read_line_limited};

pub(super) use refs::Refs;

/// Rows one object may give: the low bits of a position.
pub(super) const ROWS_PER_OBJECT: u64 = 1 << 12;

/// How the objects are laid out in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `{"type": "bundle", "objects": [..]}`.
    Bundle,
    /// `[{..}, {..}]`.
    Array,
    /// One object a line.
    Lines,
}

/// One object of the file, as the walk hands it over.
pub(super) struct Element<'a> {
    /// Its ordinal in the file, from 1.
    pub ordinal: u64,
    pub line: u64,
    /// Its bytes; `None` when longer than `max_line_bytes`.
    pub bytes: Option<&'a [u8]>,
}

/// Reads a STIX file: `open` gives the file from its start, once per pass.
pub(super) fn read(
    open: &dyn Fn() -> io::Result<Box<dyn BufRead>>,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<(), FeedError> {
    let unreadable = |e: io::Error| FeedError::Unreadable(e.to_string());
    let layout =
        layout(&mut *open().map_err(unreadable)?, opts.max_line_bytes).map_err(unreadable)?;
    let first = open().map_err(unreadable)?;
    let mut refs = Refs::default();
    // A file that breaks is reported by the second pass, at the break,
    // after the objects before it.
    let _ = walk(first, layout, opts.max_line_bytes, &mut |el| {
        if let Some(bytes) = el.bytes {
            refs.collect(bytes);
        }
        Flow::Continue(())
    });
    let now = time::OffsetDateTime::now_utc();
    let input = open().map_err(unreadable)?;
    walk(input, layout, opts.max_line_bytes, &mut |el| {
        let base = el.ordinal * ROWS_PER_OBJECT;
        for (i, item) in objects::items(&el, &refs, opts, now)
            .into_iter()
            .enumerate()
        {
            let item = item.at(base + i as u64);
            sink(item)?;
        }
        Flow::Continue(())
    })
}

/// The layout, from the start of the file: an array by its bracket; one
/// object a line when the first non-blank line (up to `max` bytes) is a
/// whole object other than a bundle; else a bundle (a bundle on one line
/// included).
fn layout(input: &mut dyn BufRead, max: usize) -> io::Result<Layout> {
    let mut line = Vec::new();
    loop {
        match read_line_limited(input, &mut line, max)? {
            None => return Ok(Layout::Bundle),
            Some(false) => return Ok(Layout::Bundle),
            Some(true) => {
                let text = line.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&line);
                let text = text.trim_ascii();
                if text.is_empty() {
                    continue;
                }
                return Ok(match text.first() {
                    Some(b'[') => Layout::Array,
                    Some(b'{') if !bundle(text) && whole_object(text) => Layout::Lines,
                    _ => Layout::Bundle,
                });
            }
        }
    }
}

/// Whether `line` is one whole JSON object.
fn whole_object(line: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

/// Whether a one-line object is a bundle (a bundle on one line).
fn bundle(line: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<std::borrow::Cow<'a, str>>,
        objects: Option<serde::de::IgnoredAny>,
    }
    serde_json::from_slice::<Top<'_>>(line)
        .is_ok_and(|t| t.kind.as_deref() == Some("bundle") || t.objects.is_some())
}

/// Hands every object of the file to `each`, in order.
fn walk(
    input: Box<dyn BufRead>,
    layout: Layout,
    max: usize,
    each: &mut dyn FnMut(Element<'_>) -> Flow,
) -> Result<(), FeedError> {
    if layout == Layout::Lines {
        return lines(input, max, each);
    }
    let mut w = Walker {
        scan: Scanner::new(input, 1),
        buf: Vec::new(),
        ordinal: 0,
        max,
    };
    let result = match layout {
        Layout::Bundle => w.bundle(each),
        _ => w.array(each),
    };
    Stop::ended(result, w.scan.line())
}

/// Objects one a line; blank lines skipped.
fn lines(
    mut input: Box<dyn BufRead>,
    max: usize,
    each: &mut dyn FnMut(Element<'_>) -> Flow,
) -> Result<(), FeedError> {
    let mut buf = Vec::with_capacity(4096);
    let (mut line, mut ordinal) = (0u64, 0u64);
    loop {
        let fits = match read_line_limited(&mut input, &mut buf, max) {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(super::broken(line + 1, &e)),
        };
        line += 1;
        let bytes = if line == 1 {
            buf.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&buf)
        } else {
            &buf[..]
        };
        if fits && bytes.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        ordinal += 1;
        let el = Element {
            ordinal,
            line,
            bytes: fits.then_some(bytes),
        };
        if each(el).is_break() {
            return Err(FeedError::Stopped);
        }
    }
}

struct Walker<R> {
    scan: Scanner<R>,
    buf: Vec<u8>,
    ordinal: u64,
    max: usize,
}

impl<R: BufRead> Walker<R> {
    /// The bundle object: its `objects` array walked, every other value
    /// skipped unheld.
    fn bundle(&mut self, each: &mut dyn FnMut(Element<'_>) -> Flow) -> Result<(), Stop> {
        self.scan.expect(b'{', "to open the bundle")?;
        let mut found = false;
        if !self.scan.eat(b'}')? {
            loop {
                if self.scan.peek()? != Some(b'"') {
                    return Err(self.scan.syntax("expected a key (a string)".into()).into());
                }
                let fits = self.scan.value(Some(&mut self.buf), 64)?;
                let objects = fits && self.buf == b"\"objects\"";
                self.scan.expect(b':', "after a key")?;
                if objects && !found && self.scan.peek()? == Some(b'[') {
                    found = true;
                    self.array(each)?;
                } else {
                    self.scan.value(None, 0)?;
                }
                if self.scan.eat(b',')? {
                    continue;
                }
                self.scan
                    .expect(b'}', "or ',' after a value in the bundle")?;
                break;
            }
        }
        if let Some(b) = self.scan.peek()? {
            return Err(self
                .scan
                .syntax(format!(
                    "unexpected '{}' after the end of the bundle",
                    b.escape_ascii()
                ))
                .into());
        }
        Ok(())
    }

    /// An array of objects, element by element.
    fn array(&mut self, each: &mut dyn FnMut(Element<'_>) -> Flow) -> Result<(), Stop> {
        self.scan.expect(b'[', "to open the array of objects")?;
        loop {
            if self.scan.eat(b']')? {
                return Ok(());
            }
            self.scan.peek()?;
            let line = self.scan.line();
            let fits = self.scan.value(Some(&mut self.buf), self.max)?;
            self.ordinal += 1;
            let el = Element {
                ordinal: self.ordinal,
                line,
                bytes: fits.then_some(&self.buf[..]),
            };
            if each(el).is_break() {
                return Err(Stop::Sink);
            }
            if self.scan.eat(b',')? {
                continue;
            }
            self.scan
                .expect(b']', "or ',' after an object of the array")?;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_told_by_the_first_non_blank_line() {
        let one =
            r#"{"type":"indicator","id":"indicator--1","pattern":"[url:value = 'http://x/']"}"#;
        for (text, want) in [
            (format!("\n\n{one}\n{one}\n"), Layout::Lines),
            (format!("\u{feff}{one}\n"), Layout::Lines),
            (
                "{\n  \"type\": \"bundle\",\n  \"objects\": []\n}\n".into(),
                Layout::Bundle,
            ),
            (
                r#"{"type":"bundle","id":"bundle--1","objects":[]}"#.into(),
                Layout::Bundle,
            ),
            (format!("[{one},\n{one}]"), Layout::Array),
            (String::new(), Layout::Bundle),
        ] {
            let mut input = text.as_bytes();
            assert_eq!(layout(&mut input, 1 << 20).unwrap(), want, "{text:?}");
        }
    }
}
