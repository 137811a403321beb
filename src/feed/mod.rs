//! Feed readers: a file's bytes to [`RawRecord`]s with line numbers, streamed
//! so memory stays flat however large the file is.
//!
//! A reader never stops at a bad row: it hands the row over as
//! [`Item::Bad`] with its line and the reason. Only a file that cannot be
//! read on (a JSON syntax error, a truncated gzip, a decompression bomb) ends
//! early, with [`FeedError::Broken`] naming where; the rows before it have
//! already been handed over.

mod csv;
mod field;
mod json;
mod jsonscan;
mod text;

pub use field::{Field, field_for_name};

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

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

/// File formats, chosen by extension with content sniffing as a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    Json,
    Ndjson,
    Text,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Text => "text",
        }
    }

    /// By the extension (under a `.gz`), if it says.
    pub fn from_path(path: &Path) -> Option<Format> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit_once('.')?.1;
        Some(match ext {
            "csv" => Format::Csv,
            "tsv" | "tab" => Format::Tsv,
            "json" => Format::Json,
            "ndjson" | "jsonl" => Format::Ndjson,
            "txt" | "list" | "lst" => Format::Text,
            _ => return None,
        })
    }

    /// By the first bytes of the (decompressed) content.
    pub fn sniff(head: &[u8]) -> Format {
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}');
        let first_line = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            .unwrap_or("")
            .trim();
        if text.trim_start().starts_with('[') {
            Format::Json
        } else if first_line.starts_with('{') {
            // One object per line, or one object holding the array.
            if first_line.ends_with('}')
                && serde_json::from_str::<serde_json::Value>(first_line).is_ok()
            {
                Format::Ndjson
            } else {
                Format::Json
            }
        } else if first_line.contains(['\t']) {
            Format::Tsv
        } else if first_line.contains([',', ';', '|'])
            && field_for_name(first_line.split([',', ';', '|']).next().unwrap_or("")).is_some()
        {
            Format::Csv
        } else {
            Format::Text
        }
    }
}

/// Limits and mapping for one read.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub max_line_bytes: usize,
    pub max_decompressed_bytes: u64,
    /// Explicit column mapping: our field to the feed's column or key.
    pub columns: BTreeMap<Field, String>,
    /// Format forced by the caller; otherwise by extension, then sniffing.
    pub format: Option<Format>,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            max_line_bytes: 1 << 20,
            max_decompressed_bytes: 8 << 30,
            columns: BTreeMap::new(),
            format: None,
        }
    }
}

/// What a reader hands over, row by row.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // rows are the common case: boxing them would cost an allocation each
pub enum Item {
    Row(RawRecord),
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
    pub fn position(&self) -> u64 {
        match self {
            Item::Row(r) => r.position,
            Item::Bad { position, .. } => *position,
        }
    }

    pub fn line(&self) -> u64 {
        match self {
            Item::Row(r) => r.line,
            Item::Bad { line, .. } => *line,
        }
    }
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
/// following symlinks) or standard input. `path` picks the format by
/// extension.
///
/// # Errors
/// As [`read`].
pub fn read_from(
    file: impl Read + 'static,
    path: &Path,
    opts: &ReadOptions,
    sink: &mut dyn FnMut(Item) -> Flow,
) -> Result<Format, FeedError> {
    let mut raw = BufReader::with_capacity(256 << 10, file);
    let head = raw
        .fill_buf()
        .map_err(|e| FeedError::Unreadable(e.to_string()))?;
    let gz = head.starts_with(&[0x1f, 0x8b]);
    let input: Box<dyn BufRead> = if gz {
        let limited = Limit {
            inner: flate2::read::MultiGzDecoder::new(raw),
            left: opts.max_decompressed_bytes,
            max: opts.max_decompressed_bytes,
        };
        Box::new(BufReader::with_capacity(256 << 10, limited))
    } else {
        Box::new(raw)
    };
    let mut input = input;
    let format = match opts.format.or_else(|| Format::from_path(path)) {
        Some(f) => f,
        None => {
            let head = input.fill_buf().map_err(|e| broken(0, &e))?;
            Format::sniff(&head[..head.len().min(4096)])
        }
    };
    let result = match format {
        Format::Csv => csv::read(input, None, opts, sink),
        Format::Tsv => csv::read(input, Some(b'\t'), opts, sink),
        Format::Json => json::read_array(input, opts, sink),
        Format::Ndjson => json::read_lines(input, opts, sink),
        Format::Text => text::read(input, opts, sink),
    };
    result.map(|()| format)
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

/// The most of a feed's own bytes any reason, reject, errors report or log
/// line repeats.
pub const ECHO_BYTES: usize = 512;

/// A string that keeps at most [`ECHO_BYTES`] of what is pushed or written
/// into it, cut at a character boundary, and never allocates more: echoes
/// of input are cut while they are built, not after.
#[derive(Debug, Default)]
pub struct Echo {
    s: String,
    full: bool,
}

impl Echo {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends what still fits of `part`.
    pub fn push(&mut self, part: &str) {
        if self.full {
            return;
        }
        let room = ECHO_BYTES - self.s.len();
        if part.len() <= room {
            self.s.push_str(part);
        } else {
            self.s.push_str(&part[..floor_char_boundary(part, room)]);
            self.full = true;
        }
    }

    /// Appends what still fits of `bytes`, invalid UTF-8 replaced.
    pub fn push_lossy(&mut self, bytes: &[u8]) {
        let head = &bytes[..bytes.len().min(ECHO_BYTES - self.s.len())];
        self.push(&String::from_utf8_lossy(head));
    }

    pub fn into_string(self) -> String {
        self.s
    }
}

impl std::fmt::Write for Echo {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.push(s);
        // Stop a formatter that would go on writing into a full echo.
        if self.full {
            Err(std::fmt::Error)
        } else {
            Ok(())
        }
    }
}

impl io::Write for Echo {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.full {
            return Err(io::Error::other("echo full"));
        }
        // serde_json writes whole UTF-8 sequences, so a lossy push of a
        // piece cut at the end only loses the cut character.
        self.push_lossy(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `s` cut to at most [`ECHO_BYTES`] bytes.
pub fn cut(s: &str) -> String {
    let mut e = Echo::new();
    e.push(s);
    e.into_string()
}

/// Bytes of input, as a reject shows them: cut, invalid UTF-8 replaced.
pub fn echo_bytes(bytes: &[u8]) -> String {
    let mut e = Echo::new();
    e.push_lossy(bytes);
    e.into_string()
}

/// Any displayable thing, cut while it is formatted.
pub fn echo_display(v: &dyn std::fmt::Display) -> String {
    let mut e = Echo::new();
    let _ = std::fmt::write(&mut e, format_args!("{v}"));
    e.into_string()
}

/// A JSON value as a reject shows it, cut while it is serialized.
fn echo_json(v: &impl serde::Serialize) -> String {
    let mut e = Echo::new();
    let _ = serde_json::to_writer(&mut e, v);
    e.into_string()
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
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
