//! The indicator types ThreatConnect knows, and a normalized indicator.
//!
//! An [`Indicator`] is only built by `normalize` (or read back from the queue,
//! where only normalized values are ever written), so its summary is already in
//! the exact form ThreatConnect accepts.

use std::fmt;

use serde::{Deserialize, Serialize};

/// ThreatConnect's indicator types (tc-api.md section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IndicatorType {
    Address,
    EmailAddress,
    File,
    Host,
    Url,
    Asn,
    Cidr,
    Mutex,
    RegistryKey,
    UserAgent,
}

impl IndicatorType {
    pub const ALL: [IndicatorType; 10] = [
        IndicatorType::Address,
        IndicatorType::EmailAddress,
        IndicatorType::File,
        IndicatorType::Host,
        IndicatorType::Url,
        IndicatorType::Asn,
        IndicatorType::Cidr,
        IndicatorType::Mutex,
        IndicatorType::RegistryKey,
        IndicatorType::UserAgent,
    ];

    /// ThreatConnect's own name of the type, as it appears in batch files and in
    /// the `type` column of the queue.
    pub fn tc_name(self) -> &'static str {
        match self {
            IndicatorType::Address => "Address",
            IndicatorType::EmailAddress => "EmailAddress",
            IndicatorType::File => "File",
            IndicatorType::Host => "Host",
            IndicatorType::Url => "URL",
            IndicatorType::Asn => "ASN",
            IndicatorType::Cidr => "CIDR",
            IndicatorType::Mutex => "Mutex",
            IndicatorType::RegistryKey => "Registry Key",
            IndicatorType::UserAgent => "User Agent",
        }
    }

    /// The inverse of [`IndicatorType::tc_name`], exact spelling only.
    pub fn from_tc_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.tc_name() == name)
    }

    /// The JSON key of the entity in a create answer (`data.<entity>`).
    pub fn entity(self) -> &'static str {
        match self {
            IndicatorType::Address => "address",
            IndicatorType::EmailAddress => "emailAddress",
            IndicatorType::File => "file",
            IndicatorType::Host => "host",
            IndicatorType::Url => "url",
            IndicatorType::Asn => "asn",
            IndicatorType::Cidr => "cidrBlock",
            IndicatorType::Mutex => "mutex",
            IndicatorType::RegistryKey => "registryKey",
            IndicatorType::UserAgent => "userAgent",
        }
    }

    /// Parses a type name as feeds spell it (case-insensitive): common aliases
    /// such as `ip-dst`, `domain`, `md5`, `regkey`, plus ThreatConnect's names.
    pub fn parse_alias(name: &str) -> Option<Self> {
        let lower = name.trim().to_ascii_lowercase();
        let squashed: String = lower
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .collect();
        Some(match squashed.as_str() {
            "ip" | "ipv4" | "ipv6" | "ipdst" | "ipsrc" | "address" | "ipaddress" | "ip:port" => {
                IndicatorType::Address
            }
            "domain" | "hostname" | "fqdn" | "host" | "domainname" => IndicatorType::Host,
            "url" | "uri" | "link" => IndicatorType::Url,
            "email" | "emailsrc" | "emaildst" | "emailaddress" => IndicatorType::EmailAddress,
            "md5" | "sha1" | "sha256" | "hash" | "file" | "filehash" | "md5hash" | "sha1hash"
            | "sha256hash" => IndicatorType::File,
            "asn" | "as" | "asnumber" => IndicatorType::Asn,
            "cidr" | "netblock" | "iprange" | "cidrblock" | "subnet" => IndicatorType::Cidr,
            "registry" | "regkey" | "registrykey" => IndicatorType::RegistryKey,
            "useragent" | "ua" => IndicatorType::UserAgent,
            "mutex" => IndicatorType::Mutex,
            _ => return None,
        })
    }
}

impl fmt::Display for IndicatorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tc_name())
    }
}

/// The separator ThreatConnect uses between the parts of a File or Registry Key summary.
pub const SUMMARY_SEPARATOR: &str = " : ";

/// A normalized indicator: its type and its summary in ThreatConnect's form.
///
/// For a File the summary is its hashes joined by `" : "` in md5, sha1, sha256
/// order (absent ones left out); for a Registry Key it is
/// `"<Key Name> : <Value Name> : <Value Type>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Indicator {
    kind: IndicatorType,
    summary: String,
}

/// The hashes of one File indicator.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileHashes {
    pub md5: Option<String>,
    pub sha1: Option<String>,
    pub sha256: Option<String>,
}

/// The three fields of a Registry Key indicator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryParts<'a> {
    pub key_name: &'a str,
    pub value_name: &'a str,
    pub value_type: &'a str,
}

impl Indicator {
    /// Wraps a summary that is already normalized: the normalizer's output, or
    /// a value read back from the queue (which only ever stores normalized ones).
    pub fn from_normalized(kind: IndicatorType, summary: String) -> Self {
        Self { kind, summary }
    }

    pub fn kind(&self) -> IndicatorType {
        self.kind
    }

    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The hashes of a File, read back from its summary by their lengths.
    pub fn file_hashes(&self) -> FileHashes {
        let mut hashes = FileHashes::default();
        for part in self.summary.split(SUMMARY_SEPARATOR) {
            let slot = match part.len() {
                32 => &mut hashes.md5,
                40 => &mut hashes.sha1,
                64 => &mut hashes.sha256,
                _ => continue,
            };
            *slot = Some(part.to_string());
        }
        hashes
    }

    /// The three fields of a Registry Key. The key comes before the first
    /// separator and the type after the last, so a value name may itself
    /// contain `" : "`.
    pub fn registry_parts(&self) -> RegistryParts<'_> {
        let s = self.summary.as_str();
        let (key_name, rest) = s.split_once(SUMMARY_SEPARATOR).unwrap_or((s, ""));
        let (value_name, value_type) = rest.rsplit_once(SUMMARY_SEPARATOR).unwrap_or((rest, ""));
        RegistryParts {
            key_name,
            value_name,
            value_type,
        }
    }

    /// The identifier that stands for the indicator in a URL path
    /// (`/v2/indicators/<branch>/<identifier>/tags/...`): the value itself, one
    /// hash for a File (sha256 first, as the SDK does), and the three fields
    /// joined by `" : "` for a Registry Key.
    pub fn path_identifier(&self) -> &str {
        match self.kind {
            IndicatorType::File => self
                .path_identifiers()
                .first()
                .copied()
                .unwrap_or(&self.summary),
            _ => &self.summary,
        }
    }

    /// Every identifier that can stand for the indicator in a URL path, the
    /// preferred first: a File's hashes by strength (sha256, sha1, md5), the
    /// one identifier of anything else.
    pub fn path_identifiers(&self) -> Vec<&str> {
        match self.kind {
            IndicatorType::File => {
                let parts: Vec<&str> = self.summary.split(SUMMARY_SEPARATOR).collect();
                let mut by_strength = parts.clone();
                by_strength.sort_by_key(|p| std::cmp::Reverse(p.len()));
                by_strength
            }
            _ => vec![&self.summary],
        }
    }

    /// The indicator as its `i`th path identifier names it (a File by that
    /// hash alone), for the calls after its create: a File that existed
    /// under one of its hashes (v2's 400 "a File with this MD5 already
    /// exists") may not be found under another.
    pub fn named_by(&self, i: usize) -> Option<Indicator> {
        match i {
            0 => Some(self.clone()),
            i => {
                let id = self.path_identifiers().get(i)?.to_string();
                Some(Indicator::from_normalized(self.kind, id))
            }
        }
    }
}

/// An attribute added to an indicator after its creation (a `Description`, say).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attribute {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// Everything sent for one indicator besides its value: the optional create
/// fields, then the tags and attributes, each a separate call after the create.
/// Stored as JSON in the queue's `payload` column.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rating: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
    /// When the indicator was first and last seen, RFC 3339 in UTC
    /// (`2026-10-04T12:34:56Z`). ThreatConnect v3 fields: v2 does not send them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<Attribute>,
    /// Security labels by the instance's names (`TLP:AMBER`): a v2 call
    /// each after the attributes, in the v3 body, in the batch item.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_labels: Vec<String>,
    /// The source's own id of the object the indicator came from (a STIX
    /// id, a MISP attribute uuid). Never sent: ThreatConnect keeps no
    /// external id for indicators, so the queue keeps the map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// The source object's version (STIX `modified`, MISP `timestamp`),
    /// RFC 3339 UTC: v3 and batch `externalLastModified`. A newer version
    /// of the same object is an update, not a duplicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_modified: Option<String>,
    /// When the source says the indicator stops being valid (STIX
    /// `valid_until`), RFC 3339 UTC: v3 and batch `externalDateExpires`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_expires: Option<String>,
    /// `Some(true)`: retired, listed again (v2: a last step, tc-api.md s. 9).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<bool>,
}

impl Payload {
    /// How many API calls deliver the indicator: the create, one per tag,
    /// attribute and security label, and the status change (`active`), in
    /// that order (newer kinds last: old jobs count their steps as before).
    pub fn steps(&self) -> usize {
        let status = usize::from(self.active.is_some());
        1 + self.tags.len() + self.attributes.len() + self.security_labels.len() + status
    }

    /// The security label that step `n` adds, if it is a label step.
    pub fn label_of_step(&self, n: usize) -> Option<&str> {
        n.checked_sub(1 + self.tags.len() + self.attributes.len())
            .and_then(|i| self.security_labels.get(i))
            .map(String::as_str)
    }
}

/// A Traffic Light Protocol level (TLP 1.0 and 2.0), as STIX markings and
/// MISP tags carry it. The instance's label name for each is configured
/// (`[security_labels]`); [`Tlp::default_label`] is ThreatConnect's
/// documented default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tlp {
    Clear,
    White,
    Green,
    Amber,
    AmberStrict,
    Red,
}

impl Tlp {
    pub const ALL: [Tlp; 6] = [
        Tlp::Clear,
        Tlp::White,
        Tlp::Green,
        Tlp::Amber,
        Tlp::AmberStrict,
        Tlp::Red,
    ];

    /// The level as TLP writes it after `TLP:`, lower case (`amber+strict`).
    pub fn level(self) -> &'static str {
        match self {
            Tlp::Clear => "clear",
            Tlp::White => "white",
            Tlp::Green => "green",
            Tlp::Amber => "amber",
            Tlp::AmberStrict => "amber+strict",
            Tlp::Red => "red",
        }
    }

    /// ThreatConnect's documented label name (`TLP:AMBER+STRICT`).
    pub fn default_label(self) -> &'static str {
        match self {
            Tlp::Clear => "TLP:CLEAR",
            Tlp::White => "TLP:WHITE",
            Tlp::Green => "TLP:GREEN",
            Tlp::Amber => "TLP:AMBER",
            Tlp::AmberStrict => "TLP:AMBER+STRICT",
            Tlp::Red => "TLP:RED",
        }
    }

    /// A level as written (`amber+strict`, `AMBER`, `tlp:green`, `TLP:CLEAR`,
    /// `amber strict`), case and a `tlp:` prefix ignored.
    pub fn parse(s: &str) -> Option<Tlp> {
        let s = s.trim().to_ascii_lowercase();
        let s = s.strip_prefix("tlp:").unwrap_or(&s).trim();
        let s = s.replace(['_', ' ', '-'], "+");
        Tlp::ALL.into_iter().find(|t| t.level() == s)
    }

    /// How restrictive: of several levels on one object, the most
    /// restrictive applies (white and clear are the same level).
    pub fn rank(self) -> u8 {
        match self {
            Tlp::Clear | Tlp::White => 0,
            Tlp::Green => 1,
            Tlp::Amber => 2,
            Tlp::AmberStrict => 3,
            Tlp::Red => 4,
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    /// The most restrictive of `levels`.
    pub fn strictest(levels: impl IntoIterator<Item = Tlp>) -> Option<Tlp> {
        levels.into_iter().max_by_key(|t| t.rank())
    }
}

/// The instance's security label name for each TLP level (names compare
/// exactly and differ between instances: an older one has no `TLP:CLEAR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlpNames([String; 6]);

impl Default for TlpNames {
    fn default() -> Self {
        Self(Tlp::ALL.map(|t| t.default_label().to_string()))
    }
}

impl TlpNames {
    pub fn name(&self, t: Tlp) -> &str {
        &self.0[t.index()]
    }

    pub fn set(&mut self, t: Tlp, name: String) {
        self.0[t.index()] = name;
    }

    /// A label as a feed wrote it: a TLP level by the instance's name for
    /// it, anything else as it is.
    pub fn label(&self, written: &str) -> String {
        match Tlp::parse(written) {
            Some(t) => self.name(t).to_string(),
            None => written.trim().to_string(),
        }
    }
}

/// Longest tag ThreatConnect accepts.
pub const MAX_TAG_CHARS: usize = 128;

/// A tag ThreatConnect cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTag {
    #[error("tag {0:?} is longer than {MAX_TAG_CHARS} characters")]
    TooLong(String),
    /// `.` or `..`: a v2 path segment that URL parsing resolves away
    /// (`%2E` too), so its tag call would go to another resource.
    #[error("tag {0:?} is only dots: ThreatConnect's API paths cannot name it")]
    DotSegment(String),
}

/// Whether `s` is a path segment that URL parsing resolves away.
pub fn is_dot_segment(s: &str) -> bool {
    matches!(s, "." | "..")
}

/// Tags trimmed, empty ones dropped, duplicates (ignoring case) removed, each
/// at most [`MAX_TAG_CHARS`] characters and not only dots. Feed rules (in
/// `config`) and rows (in `normalize`) follow the same rules.
///
/// # Errors
/// The first tag that breaks a rule.
pub fn clean_tags<'a>(raw: impl Iterator<Item = &'a String>) -> Result<Vec<String>, BadTag> {
    let mut out: Vec<String> = Vec::new();
    for t in raw {
        let t = t.trim();
        if t.is_empty() {
            continue;
        }
        if t.chars().count() > MAX_TAG_CHARS {
            return Err(BadTag::TooLong(t.to_string()));
        }
        if is_dot_segment(t) {
            return Err(BadTag::DotSegment(t.to_string()));
        }
        if !out.iter().any(|o| o.eq_ignore_ascii_case(t)) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

pub const HIVES: [&str; 9] = [
    "HKEY_CLASSES_ROOT",
    "HKEY_CURRENT_CONFIG",
    "HKEY_CURRENT_USER",
    "HKEY_CURRENT_USER_LOCAL_SETTINGS",
    "HKEY_LOCAL_MACHINE",
    "HKEY_PERFORMANCE_DATA",
    "HKEY_PERFORMANCE_NLSTEXT",
    "HKEY_PERFORMANCE_TEXT",
    "HKEY_USERS",
];

pub const VALUE_TYPES: [&str; 11] = [
    "REG_NONE",
    "REG_BINARY",
    "REG_DWORD",
    "REG_DWORD_LITTLE_ENDIAN",
    "REG_DWORD_BIG_ENDIAN",
    "REG_EXPAND_SZ",
    "REG_LINK",
    "REG_MULTI_SZ",
    "REG_QWORD",
    "REG_QWORD_LITTLE_ENDIAN",
    "REG_SZ",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_json_without_seen_fields_is_unchanged() {
        let p = Payload {
            rating: Some(3.0),
            tags: vec!["a".into()],
            ..Payload::default()
        };
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, r#"{"rating":3.0,"tags":["a"]}"#);
        let back: Payload = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        let seen = Payload {
            first_seen: Some("2026-10-04T12:34:56Z".into()),
            ..p
        };
        let json = serde_json::to_string(&seen).unwrap();
        assert!(
            json.contains(r#""first_seen":"2026-10-04T12:34:56Z""#),
            "{json}"
        );
        assert!(!json.contains("last_seen"), "{json}");
        assert_eq!(serde_json::from_str::<Payload>(&json).unwrap(), seen);
    }

    #[test]
    fn tlp_levels_parse_as_written_and_the_strictest_wins() {
        for (text, want) in [
            ("amber+strict", Some(Tlp::AmberStrict)),
            ("TLP:AMBER+STRICT", Some(Tlp::AmberStrict)),
            ("tlp:amber strict", Some(Tlp::AmberStrict)),
            ("Tlp:Clear", Some(Tlp::Clear)),
            ("WHITE", Some(Tlp::White)),
            ("tlp:ex:chr", None),
            ("", None),
        ] {
            assert_eq!(Tlp::parse(text), want, "{text:?}");
        }
        for t in Tlp::ALL {
            assert_eq!(Tlp::parse(t.default_label()), Some(t));
        }
        assert_eq!(
            Tlp::strictest([Tlp::Green, Tlp::Red, Tlp::Amber]),
            Some(Tlp::Red)
        );
        assert_eq!(Tlp::strictest([]), None);
    }

    #[test]
    fn label_steps_come_after_tags_and_attributes() {
        let p = Payload {
            tags: vec!["t".into()],
            attributes: vec![Attribute {
                kind: "Description".into(),
                value: "d".into(),
            }],
            security_labels: vec!["TLP:RED".into()],
            ..Payload::default()
        };
        assert_eq!(p.steps(), 4);
        assert_eq!(p.label_of_step(2), None);
        assert_eq!(p.label_of_step(3), Some("TLP:RED"));
        assert_eq!(p.label_of_step(4), None);
    }

    #[test]
    fn tags_are_trimmed_deduplicated_and_limited() {
        let raw = [" a ".to_string(), "A".into(), String::new(), "b".into()];
        assert_eq!(clean_tags(raw.iter()).unwrap(), vec!["a", "b"]);
        let long = ["x".repeat(MAX_TAG_CHARS + 1)];
        let e = clean_tags(long.iter()).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("tag {:?} is longer than 128 characters", long[0])
        );
        for dots in [".", " .. "] {
            let e = clean_tags([dots.to_string()].iter()).unwrap_err();
            assert_eq!(e, BadTag::DotSegment(dots.trim().into()));
        }
        assert_eq!(clean_tags(["...".to_string()].iter()).unwrap(), ["..."]);
    }

    #[test]
    fn every_tc_name_round_trips_and_parses_as_alias() {
        for t in IndicatorType::ALL {
            assert_eq!(IndicatorType::from_tc_name(t.tc_name()), Some(t));
            assert_eq!(IndicatorType::parse_alias(t.tc_name()), Some(t), "{t}");
        }
    }

    #[test]
    fn registry_parts_split_on_first_and_last_separator() {
        let ind = Indicator::from_normalized(
            IndicatorType::RegistryKey,
            "HKEY_LOCAL_MACHINE\\Run : a : b : REG_SZ".into(),
        );
        let p = ind.registry_parts();
        assert_eq!(p.key_name, "HKEY_LOCAL_MACHINE\\Run");
        assert_eq!(p.value_name, "a : b");
        assert_eq!(p.value_type, "REG_SZ");
    }

    #[test]
    fn file_hashes_are_read_back_by_length() {
        let md5 = "d41d8cd98f00b204e9800998ecf8427e";
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let ind = Indicator::from_normalized(IndicatorType::File, format!("{md5} : {sha256}"));
        let h = ind.file_hashes();
        assert_eq!(h.md5.as_deref(), Some(md5));
        assert_eq!(h.sha1, None);
        assert_eq!(h.sha256.as_deref(), Some(sha256));
        assert_eq!(ind.path_identifier(), sha256);
        assert_eq!(ind.path_identifiers(), [sha256, md5]);
        let by_md5 = ind.named_by(1).unwrap();
        assert_eq!(by_md5.path_identifier(), md5);
        assert_eq!(by_md5.summary(), md5);
        assert!(ind.named_by(2).is_none());
    }
}
