//! Feed readers: a file's bytes to [`RawRecord`]s with line numbers, streamed
//! so memory stays flat however large the file is.
//!
//! A reader never stops at a bad row: it hands the row over as
//! [`Item::Bad`] with its line and the reason. Only a file that cannot be
//! read on (a JSON syntax error, a truncated gzip, a decompression bomb) ends
//! early, with [`FeedError::Broken`] naming where; the rows before it have
//! already been handed over.

mod csv;
mod echo;
mod field;
mod format;
mod json;
mod jsonscan;
mod misp;
mod sniff;
pub mod stix;
mod text;

pub use echo::{ECHO_BYTES, Echo, cut, echo_bytes, echo_display};
use echo::{echo_json, floor_char_boundary};
pub use field::{Field, field_for_name, is_value_alias};
pub use format::{Format, format_of};
use format::{SNIFF_BYTES, content_format};

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;
use std::rc::Rc;

/// One row of a feed, before normalization: every field as the feed wrote it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRecord {
    /// Ordinal of the row in the file (1-based, one per row or element): the
    /// unit of resume progress.
    pub position: u64,
    /// The line the row is on, for people.
    pub line: u64,
    pub value: Option<String>,
    pub kind: Option<String>,
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
    pub key_name: Option<String>,
    pub value_name: Option<String>,
    pub value_type: Option<String>,
    pub rating: Option<String>,
    pub confidence: Option<String>,
    pub tags: Vec<String>,
    pub description: Option<String>,
    pub owner: Option<String>,
    /// When the indicator was first and last seen, as the feed wrote it.
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
    pub attributes: Vec<(String, String)>,
    /// Security labels as the feed wrote them: a TLP level (`TLP:AMBER`,
    /// `tlp:amber`) becomes the instance's name for it in `normalize`.
    pub security_labels: Vec<String>,
    /// The source's id of the object the row came from (STIX id, MISP uuid).
    pub external_id: Option<String>,
    /// The source object's version (STIX `modified`, MISP `timestamp`).
    pub modified: Option<String>,
    /// When the source says the indicator stops being valid.
    pub valid_until: Option<String>,
    /// An address range's first and last address, or its first address and
    /// prefix length (DShield's `Start`, `End`, `Netblock`): one CIDR.
    pub range_start: Option<String>,
    pub range_end: Option<String>,
    pub prefix_length: Option<String>,
}

impl RawRecord {
    /// A plain-list row: just a value.
    pub fn value(line: u64, value: impl Into<String>) -> Self {
        Self {
            position: line,
            line,
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// What the row held, for reject reports: at most [`ECHO_BYTES`],
    /// cut while it is built.
    pub fn input(&self) -> String {
        let mut echo = Echo::new();
        let parts = [
            &self.value,
            &self.range_start,
            &self.range_end,
            &self.md5,
            &self.sha1,
            &self.sha256,
            &self.key_name,
            &self.value_name,
            &self.value_type,
        ]
        .into_iter()
        .filter_map(|f| f.as_deref());
        for (i, part) in parts.enumerate() {
            if i > 0 {
                echo.push(" ");
            }
            echo.push(part);
        }
        echo.into_string()
    }

    /// Sets a field. Tags are split (see [`split_tags`]) and added; a source
    /// becomes a `Source` attribute.
    pub fn set(&mut self, field: Field, v: String) {
        let slot = match field {
            Field::Value => &mut self.value,
            Field::Type => &mut self.kind,
            Field::Md5 => &mut self.md5,
            Field::Sha1 => &mut self.sha1,
            Field::Sha256 => &mut self.sha256,
            Field::KeyName => &mut self.key_name,
            Field::ValueName => &mut self.value_name,
            Field::ValueType => &mut self.value_type,
            Field::Rating => &mut self.rating,
            Field::Confidence => &mut self.confidence,
            Field::Description => &mut self.description,
            Field::Owner => &mut self.owner,
            Field::FirstSeen => &mut self.first_seen,
            Field::LastSeen => &mut self.last_seen,
            Field::ExternalId => &mut self.external_id,
            Field::ValidUntil => &mut self.valid_until,
            Field::RangeStart => &mut self.range_start,
            Field::RangeEnd => &mut self.range_end,
            Field::PrefixLength => &mut self.prefix_length,
            Field::SecurityLabel => {
                self.security_labels.extend(split_tags(&v));
                return;
            }
            Field::Tags => {
                self.tags.extend(split_tags(&v));
                return;
            }
            Field::Source => {
                self.attributes.push(("Source".into(), v));
                return;
            }
        };
        *slot = Some(v);
    }
}

/// Tags in one field, separated by `,`, `;` or `|`.
pub fn split_tags(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split([',', ';', '|'])
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Limits and mapping for one read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub max_line_bytes: usize,
    pub max_decompressed_bytes: u64,
    /// Explicit column mapping: our field to the feed's column or key.
    pub columns: BTreeMap<Field, String>,
    /// Format forced by the caller; otherwise by content for STIX and
    /// MISP, then by extension, then sniffing.
    pub format: Option<Format>,
    /// STIX: top-level cyber-observable objects become indicators too (in
    /// STIX they are evidence, not detections).
    pub stix_observables: bool,
    /// MISP: every attribute, not only those marked for detection (`to_ids`).
    pub misp_all_attributes: bool,
    /// Line comment prefixes; empty: the reader's own (`#`; `#` and `;`
    /// for plain lists).
    pub comments: Vec<String>,
    /// The field the rest of a plain list's line after a trailing comment
    /// fills (`192.0.2.0/24 ; SBL123`); `None`: dropped.
    pub trailing: Option<Field>,
    /// Whether a table's first row names its columns; without one,
    /// `columns` gives positions (`"1"`, from 1).
    pub header: bool,
    /// A table's header is its last comment line before the rows.
    pub header_in_comment: bool,
    /// A table's delimiter; `None`: detected.
    pub delimiter: Option<u8>,
    /// A plain list of keyed lines (Tor's `exit-addresses`): only lines
    /// whose first word is this give a value, the word after it; the
    /// others are skipped.
    pub line_key: Option<String>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_line_bytes: 1 << 20,
            max_decompressed_bytes: 8 << 30,
            columns: BTreeMap::new(),
            format: None,
            stix_observables: false,
            misp_all_attributes: false,
            comments: Vec::new(),
            trailing: None,
            header: true,
            header_in_comment: false,
            delimiter: None,
            line_key: None,
        }
    }
}

/// What a reader hands over, row by row.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // rows are the common case: boxing them would cost an allocation each
pub enum Item {
    Row(RawRecord),
    /// An object the format defines but that is no indicator here (a STIX
    /// `malware`, an expired indicator, a MISP attribute not for
    /// detection): counted by `what`, not rejected.
    Skipped {
        position: u64,
        line: u64,
        /// Why, as the report counts it (`stix malware`, `expired`,
        /// `misp-type vulnerability`): short, from a closed set or cut.
        what: String,
        /// The source's id of an object it withdrew (a revoked or expired
        /// STIX indicator, a deleted MISP attribute): what it gave before
        /// is retired.
        withdraws: Option<String>,
    },
    /// An object of a threat-intel format that breaks one of the
    /// format's rules (a pattern we do not take, say): a reject with that
    /// rule, naming the object.
    Refused {
        position: u64,
        line: u64,
        input: String,
        rule: Refusal,
        reason: String,
    },
    /// A row that could not even be split into fields.
    Bad {
        position: u64,
        line: u64,
        /// What the row held, at most [`ECHO_BYTES`].
        input: String,
        reason: String,
    },
}

impl Item {
    /// The item at position `at` (readers that give several items per
    /// object number them from the object's base).
    pub(crate) fn at(mut self, at: u64) -> Self {
        match &mut self {
            Item::Row(r) => r.position = at,
            Item::Skipped { position, .. }
            | Item::Refused { position, .. }
            | Item::Bad { position, .. } => *position = at,
        }
        self
    }

    pub fn position(&self) -> u64 {
        match self {
            Item::Row(r) => r.position,
            Item::Skipped { position, .. }
            | Item::Refused { position, .. }
            | Item::Bad { position, .. } => *position,
        }
    }

    pub fn line(&self) -> u64 {
        match self {
            Item::Row(r) => r.line,
            Item::Skipped { line, .. } | Item::Refused { line, .. } | Item::Bad { line, .. } => {
                *line
            }
        }
    }
}

/// The rule a threat-intel object broke, as [`Item::Refused`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A STIX pattern construct (or object path) we do not turn into
    /// indicators.
    StixUnsupported,
    /// A pattern type other than `stix` (snort, yara, sigma...).
    StixPatternType,
    /// A STIX object that breaks the standard (no `pattern`, a pattern
    /// that does not parse, no `type`).
    StixInvalid,
    /// A MISP event or attribute that breaks MISP's format.
    MispInvalid,
}

/// Why a file could not be read (to the end).
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The file as a whole cannot be read: it goes to `failed/`.
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    /// The file broke at `line`: the rows before were read.
    #[error("the file breaks at line {line}: {reason}")]
    Broken { line: u64, reason: String },
    /// The consumer asked to stop (shutdown).
    #[error("reading stopped")]
    Stopped,
}

/// The consumer's answer to each item: go on, or stop reading.
pub type Flow = std::ops::ControlFlow<()>;

/// Reads the feed at `path` and hands every row to `sink`, in order.
/// Returns the format read.
///
/// # Errors
/// [`FeedError`]: unreadable, broken midway, or stopped by the sink.
pub fn read(
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<Format, FeedError> {
    let file = File::open(path).map_err(|e| FeedError::Unreadable(e.to_string()))?;
    read_from(file, path, opts, sink)
}

/// As [`read`], from an already opened file (the daemon opens without
/// following symlinks) or a spooled standard input. `path` picks the format
/// by extension. The file is read from its start, and again from its start
/// by readers that walk a document twice (STIX and MISP: the objects an
/// indicator refers to may come after it).
///
/// # Errors
/// As [`read`].
pub fn read_from<F: Read + Seek + 'static>(
    file: F,
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<Format, FeedError> {
    let source = Source {
        file: Rc::new(RefCell::new(file)),
        max_decompressed: opts.max_decompressed_bytes,
    };
    let mut input = source
        .open()
        .map_err(|e| FeedError::Unreadable(e.to_string()))?;
    let format = match opts.format {
        Some(f) => f,
        None => {
            let head = input.fill_buf().map_err(|e| broken(0, &e))?;
            let head = &head[..head.len().min(SNIFF_BYTES)];
            content_format(head, path)
        }
    };
    let result = match format {
        Format::Csv => csv::read(input, None, opts, sink),
        Format::Tsv => csv::read(input, Some(b'\t'), opts, sink),
        Format::Json => json::read_array(input, opts, sink),
        Format::Ndjson => json::read_lines(input, opts, sink),
        Format::Text => text::read(input, opts, sink),
        Format::Stix => {
            drop(input);
            stix::read(&|| source.open(), opts, sink)
        }
        Format::Misp => {
            drop(input);
            misp::read(&|| source.open(), opts, sink)
        }
        Format::MispFeedIndex => {
            // One skipped row for the whole file: it is accounted for.
            match sink(Item::Skipped {
                position: 1,
                line: 1,
                what: "misp-feed-index".into(),
                withdraws: None,
            }) {
                Flow::Continue(()) => Ok(()),
                Flow::Break(()) => Err(FeedError::Stopped),
            }
        }
    };
    result.map(|()| format)
}

/// The opened file, which a reader may read again from its start: each
/// [`Source::open`] rewinds it and decompresses anew (a gzip is told by its
/// first bytes).
struct Source<F> {
    file: Rc<RefCell<F>>,
    max_decompressed: u64,
}

/// Reads the shared file (the readers of one file take turns: one pass at a
/// time).
struct Shared<F>(Rc<RefCell<F>>);

impl<F: Read> Read for Shared<F> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

impl<F: Read + Seek + 'static> Source<F> {
    /// The file from its start, decompressed if it is a gzip.
    fn open(&self) -> io::Result<Box<dyn BufRead>> {
        self.file.borrow_mut().rewind()?;
        let mut raw = BufReader::with_capacity(256 << 10, Shared(Rc::clone(&self.file)));
        let gz = raw.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        if !gz {
            return Ok(Box::new(raw));
        }
        let limited = Limit {
            inner: flate2::read::MultiGzDecoder::new(raw),
            left: self.max_decompressed,
            max: self.max_decompressed,
        };
        Ok(Box::new(BufReader::with_capacity(256 << 10, limited)))
    }
}

/// Skips a UTF-8 byte order mark at the start of the input.
fn skip_bom(input: &mut dyn BufRead) {
    if input
        .fill_buf()
        .is_ok_and(|b| b.starts_with(b"\xef\xbb\xbf"))
    {
        input.consume(3);
    }
}

fn broken(line: u64, e: &io::Error) -> FeedError {
    FeedError::Broken {
        line,
        reason: e.to_string(),
    }
}

/// Caps the decompressed size: past the limit reading fails, so a gzip bomb
/// is refused rather than unpacked.
struct Limit<R> {
    inner: R,
    left: u64,
    max: u64,
}

impl<R: Read> Read for Limit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            // One more byte would be over the limit: check there is one.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::other(format!(
                    "decompressed size exceeds the limit of {} bytes (watch.max_decompressed_bytes)",
                    self.max
                ))),
            };
        }
        let cap = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..cap])?;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Reads one line (without its `\n`, and `\r` trimmed) of at most `max`
/// bytes into `buf`. A longer line is skipped to its end and reported as
/// `Ok(Some(false))`; `Ok(None)` at end of input.
fn read_line_limited(
    input: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Option<bool>> {
    buf.clear();
    let mut too_long = false;
    let mut any = false;
    loop {
        let chunk = input.fill_buf()?;
        if chunk.is_empty() {
            break;
        }
        any = true;
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if !too_long {
            if buf.len() + take > max {
                too_long = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        input.consume(if done { take + 1 } else { take });
        if done {
            break;
        }
    }
    if !any {
        return Ok(None);
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(Some(!too_long))
}

#[cfg(test)]
mod tests;
