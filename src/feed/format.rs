//! Which reader a file goes to: a STIX bundle or a MISP event by its
//! content, whatever its name; the rest by extension, then sniffing.

use std::io::{self, BufRead, BufReader, Read, Seek};
use std::path::Path;

use super::{ReadOptions, field_for_name, sniff};

/// File formats: a STIX bundle or MISP event by its content, whatever the
/// file is named; the rest by extension, with content sniffing as a fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Tsv,
    Json,
    Ndjson,
    Text,
    /// A STIX 2.1 bundle, or STIX objects one per line.
    Stix,
    /// MISP events (`{"Event": ..}`, a bare event, a `response`, a list).
    Misp,
    /// A MISP feed's `manifest.json` or `hashes.csv`: an index of the
    /// feed, no indicators: skipped whole.
    MispFeedIndex,
}

impl Format {
    /// The formats a feed rule's `format` may force (every one a file is
    /// read as: not the MISP feed index, which is skipped).
    pub const RULE_FORMATS: [Format; 7] = [
        Format::Csv,
        Format::Tsv,
        Format::Json,
        Format::Ndjson,
        Format::Text,
        Format::Stix,
        Format::Misp,
    ];

    /// The names a feed rule's `format` takes.
    pub const NAMES: [&'static str; 7] = ["csv", "tsv", "json", "ndjson", "text", "stix", "misp"];

    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
            Format::Text => "text",
            Format::Stix => "stix",
            Format::Misp => "misp",
            Format::MispFeedIndex => "misp-feed-index",
        }
    }

    /// A format as [`Format::name`] writes it (the queue's `files.format`).
    pub fn from_name(name: &str) -> Option<Format> {
        Format::parse(name).or((name == "misp-feed-index").then_some(Format::MispFeedIndex))
    }

    /// A feed rule's `format`.
    pub fn parse(name: &str) -> Option<Format> {
        Format::RULE_FORMATS.into_iter().find(|f| f.name() == name)
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
            // `.txt` says little: a list, or a table (DShield's, DataPlane's).
            "list" | "lst" => Format::Text,
            _ => return None,
        })
    }

    /// By the first bytes of the (decompressed) content.
    pub fn sniff(head: &[u8]) -> Format {
        let text = String::from_utf8_lossy(head);
        let text = text.trim_start_matches('\u{feff}');
        let first_line = text
            .lines()
            .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with(['#', ';']))
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
        } else if first_line.contains(['\t'])
            && field_for_name(first_line.split('\t').next().unwrap_or("")).is_some()
        {
            // A tab table with a header (DShield's `Start ...`); a list
            // whose values have tab-separated notes stays a list.
            Format::Tsv
        } else if first_line.matches(" | ").count() >= 2 {
            // A table padded around `|` (DataPlane): a list's values (URLs,
            // addresses) hold no ` | `.
            Format::Csv
        } else if first_line.contains([',', ';', '|'])
            && field_for_name(first_line.split([',', ';', '|']).next().unwrap_or("")).is_some()
        {
            Format::Csv
        } else {
            Format::Text
        }
    }
}

/// The format `read_from` would read `file` as: forced by `opts`, else
/// told by its content (under a gzip) and name. The file is left rewound.
///
/// # Errors
/// Read errors.
pub fn format_of<F: Read + Seek>(
    file: &mut F,
    path: &Path,
    opts: &ReadOptions,
) -> io::Result<Format> {
    if let Some(f) = opts.format {
        return Ok(f);
    }
    file.rewind()?;
    let mut raw = BufReader::with_capacity(256 << 10, &mut *file);
    let gz = raw.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    if gz {
        flate2::read::MultiGzDecoder::new(raw)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .ok();
    } else {
        raw.take(SNIFF_BYTES as u64).read_to_end(&mut head)?;
    }
    file.rewind()?;
    Ok(content_format(&head, path))
}

/// The format of a file starting with `head`: a threat-intel document by
/// its content; else by the name (a `.json` holding one object a line is
/// NDJSON all the same: Spamhaus's lists); else sniffed.
pub(super) fn content_format(head: &[u8], path: &Path) -> Format {
    let sniffed = || Format::sniff(&head[..head.len().min(4096)]);
    match sniff::document(head).or_else(|| Format::from_path(path)) {
        Some(Format::Json) if sniff::object_lines(head) => Format::Ndjson,
        Some(f) => f,
        None => sniffed(),
    }
}

/// How much of a file's start the format is told from.
pub(super) const SNIFF_BYTES: usize = 64 << 10;
