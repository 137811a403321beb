//! MISP warninglists: the `lists/<name>/list.json` files of the
//! MISP/misp-warninglists project (CC0), read as MISP reads them.
//!
//! A list has a `name`, a `type` (`string`, `substring`, `hostname`,
//! `cidr` or `regex`; absent means `string`, an array means its first, as
//! MISP does), its entries in `list` (an array of strings, or an object
//! whose keys are the entries and values their comments) and optionally
//! `matching_attributes`, the MISP attribute types it applies to (absent or
//! empty: all). `version` and `description` are not needed here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::matchers::Kinds;
use crate::indicator::IndicatorType;

/// How a list's entries match, MISP's `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ListType {
    /// The whole value equals an entry.
    String,
    /// An entry occurs inside the value.
    Substring,
    /// The host name (a URL's host, an e-mail's domain) is an entry or
    /// under one.
    Hostname,
    /// The address (or the whole network) is inside an entry.
    Cidr,
    /// The value matches an entry, a PCRE-style `/pattern/flags`.
    Regex,
}

impl ListType {
    fn parse(s: &str) -> Option<ListType> {
        Some(match s {
            "string" => ListType::String,
            "substring" => ListType::Substring,
            "hostname" => ListType::Hostname,
            "cidr" => ListType::Cidr,
            "regex" => ListType::Regex,
            _ => return None,
        })
    }

    /// The indicator types a list of this type can match at all.
    pub fn kinds(self) -> Kinds {
        use IndicatorType as T;
        match self {
            ListType::String | ListType::Substring | ListType::Regex => Kinds::ALL,
            ListType::Hostname => Kinds::of(&[T::Host, T::Url, T::EmailAddress]),
            ListType::Cidr => Kinds::of(&[T::Address, T::Cidr, T::Url]),
        }
    }

    /// What an entry of this type is, for a warning about skipped ones.
    pub fn entry_shape(self) -> &'static str {
        match self {
            ListType::String | ListType::Substring => "non-empty strings",
            ListType::Hostname => "domain names",
            ListType::Cidr => "IP addresses or CIDR blocks",
            ListType::Regex => "regular expressions tc-ingest can compile",
        }
    }
}

/// One loaded list.
#[derive(Debug, Clone)]
pub(super) struct Warninglist {
    pub path: PathBuf,
    pub name: String,
    pub kind: ListType,
    pub entries: Vec<String>,
    /// The MISP attribute types of `matching_attributes` (empty: all).
    pub matching_attributes: Vec<String>,
}

impl Warninglist {
    /// The indicator types the list applies to: those its type can match
    /// that share a MISP attribute type with `matching_attributes`.
    pub fn kinds(&self) -> Kinds {
        let by_attributes = if self.matching_attributes.is_empty() {
            Kinds::ALL
        } else {
            self.matching_attributes
                .iter()
                .fold(Kinds::NONE, |k, a| k.union(attribute_kinds(a)))
        };
        by_attributes.intersect(self.kind.kinds())
    }
}

/// The indicator types whose MISP attribute types include `attribute`.
pub(super) fn attribute_kinds(attribute: &str) -> Kinds {
    use IndicatorType as T;
    let kinds: &[IndicatorType] = match attribute {
        "ip-src" | "ip-dst" | "ip-src|port" | "ip-dst|port" | "ip" => &[T::Address, T::Cidr],
        "domain|ip" => &[T::Address, T::Cidr, T::Host],
        "domain" | "hostname" | "hostname|port" => &[T::Host],
        "url" | "uri" | "link" => &[T::Url],
        "email" | "email-src" | "email-dst" | "target-email" | "whois-registrant-email" => {
            &[T::EmailAddress]
        }
        "md5" | "sha1" | "sha256" | "filename|md5" | "filename|sha1" | "filename|sha256"
        | "malware-sample" => &[T::File],
        "AS" => &[T::Asn],
        "mutex" => &[T::Mutex],
        "regkey" | "regkey|value" => &[T::RegistryKey],
        "user-agent" => &[T::UserAgent],
        _ => &[],
    };
    Kinds::of(kinds)
}

#[derive(Deserialize)]
struct RawList {
    name: String,
    #[serde(rename = "type", default)]
    kind: Option<OneOrMany>,
    list: RawEntries,
    #[serde(default)]
    matching_attributes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawEntries {
    Plain(Vec<String>),
    Commented(BTreeMap<String, serde::de::IgnoredAny>),
}

const WHAT: &str = "allowlist.misp_warninglists";

/// Reads and parses one `list.json`.
///
/// # Errors
/// The file and why: unreadable, not a MISP warninglist (with serde's
/// error), or of a type MISP does not have.
pub(super) fn load(path: &Path) -> Result<Warninglist, String> {
    let at = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("{WHAT}: {at}: {e}"))?;
    parse(path, &bytes)
}

/// Parses the bytes of `path`.
///
/// # Errors
/// As [`load`].
pub(super) fn parse(path: &Path, bytes: &[u8]) -> Result<Warninglist, String> {
    let at = path.display();
    let raw: RawList = serde_json::from_slice(bytes)
        .map_err(|e| format!("{WHAT}: {at}: not a MISP warninglist: {e}"))?;
    if raw.name.trim().is_empty() {
        return Err(format!(
            "{WHAT}: {at}: not a MISP warninglist: its name is empty"
        ));
    }
    let type_name = match raw.kind {
        None => "string".to_string(),
        Some(OneOrMany::One(t)) => t,
        Some(OneOrMany::Many(ts)) => ts.into_iter().next().unwrap_or_default(),
    };
    let kind = ListType::parse(&type_name).ok_or_else(|| {
        format!(
            "{WHAT}: {at}: {:?}: unknown warninglist type {type_name:?} (MISP's are string, substring, hostname, cidr and regex)",
            raw.name
        )
    })?;
    let entries = match raw.list {
        RawEntries::Plain(v) => v,
        RawEntries::Commented(m) => m.into_keys().collect(),
    };
    Ok(Warninglist {
        path: path.to_path_buf(),
        name: raw.name,
        kind,
        entries,
        matching_attributes: raw.matching_attributes.unwrap_or_default(),
    })
}

/// The `list.json` files `path` names: the file itself, or every
/// `list.json` under a directory (recursively, sorted by path; symbolic
/// links to directories are not followed).
///
/// # Errors
/// The path and why: unreadable, or a directory without a `list.json`.
pub(super) fn list_files(path: &Path) -> Result<Vec<PathBuf>, String> {
    let at = path.display();
    let meta = std::fs::metadata(path).map_err(|e| format!("{WHAT}: {at}: {e}"))?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    walk(path, &mut out)?;
    out.sort();
    if out.is_empty() {
        return Err(format!("{WHAT}: {at}: no list.json under it"));
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let err = |e: std::io::Error| format!("{WHAT}: {}: {e}", dir.display());
    for entry in std::fs::read_dir(dir).map_err(err)? {
        let entry = entry.map_err(err)?;
        let kind = entry.file_type().map_err(err)?;
        let p = entry.path();
        if kind.is_dir() {
            walk(&p, out)?;
        } else if entry.file_name() == "list.json" && !p.is_dir() {
            out.push(p);
        }
    }
    Ok(())
}

/// A MISP regex entry as a pattern of the `regex` crate: PCRE's delimiters
/// (`/.../`, `#...#`, `~...~`, `!...!`, `@...@`, `%...%`, `|...|`)
/// stripped, flags `i`, `m`, `s`, `x` and `U` kept as inline flags, `u`
/// and `D` dropped (the crate is Unicode-aware and its `$` ends the text
/// already); a bare pattern as it is.
///
/// # Errors
/// A flag with no equivalent (`A`, `S`, `X`, `J`, ...).
pub(super) fn pcre_pattern(entry: &str) -> Result<String, String> {
    let Some(delim) = entry
        .chars()
        .next()
        .filter(|c| matches!(c, '/' | '#' | '~' | '!' | '@' | '%' | '|'))
    else {
        return Ok(entry.to_string());
    };
    let Some(end) = entry.rfind(delim).filter(|&i| i > 0) else {
        return Ok(entry.to_string());
    };
    let (body, flags) = (&entry[1..end], &entry[end + 1..]);
    if !flags.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Ok(entry.to_string());
    }
    let mut inline = String::new();
    for f in flags.chars() {
        match f {
            'i' | 'm' | 's' | 'x' | 'U' if !inline.contains(f) => inline.push(f),
            'i' | 'm' | 's' | 'x' | 'U' | 'u' | 'D' => {}
            other => return Err(format!("the PCRE flag {other:?} has no equivalent")),
        }
    }
    Ok(if inline.is_empty() {
        body.to_string()
    } else {
        format!("(?{inline}){body}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcre_delimiters_and_flags() {
        for (entry, want) in [
            ("/^foo$/i", Ok("(?i)^foo$")),
            ("/^a\\/b$/", Ok("^a\\/b$")),
            ("#x#msu", Ok("(?ms)x")),
            ("^bare$", Ok("^bare$")),
            ("/unterminated", Ok("/unterminated")),
            ("/a/b/", Ok("a/b")),
            ("/a/A", Err(())),
        ] {
            let got = pcre_pattern(entry);
            assert_eq!(got.as_deref().map_err(|_| ()), want, "{entry}");
        }
    }

    #[test]
    fn type_and_list_forms_as_misp_reads_them() {
        let p = Path::new("x/list.json");
        let w = parse(p, br#"{"name":"n","list":{"a":"c1","b":""}}"#).unwrap();
        assert_eq!(w.kind, ListType::String);
        assert_eq!(w.entries, ["a", "b"]);
        let w = parse(p, br#"{"name":"n","type":["cidr"],"list":[]}"#).unwrap();
        assert_eq!(w.kind, ListType::Cidr);
        assert!(w.kinds().contains(IndicatorType::Url));
        let w = parse(
            p,
            br#"{"name":"n","type":"cidr","list":[],"matching_attributes":["ip-dst"]}"#,
        )
        .unwrap();
        assert!(w.kinds().contains(IndicatorType::Cidr));
        assert!(!w.kinds().contains(IndicatorType::Url));
        let e = parse(p, br#"{"name":"n","type":"glob","list":[]}"#).unwrap_err();
        assert!(e.contains(r#"unknown warninglist type "glob""#), "{e}");
    }
}
