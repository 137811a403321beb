//! The config as TOML has it: every key optional, unknown keys refused.
//! [`RawConfig::validate`](super::RawConfig::validate) turns it into a
//! [`Config`](super::Config).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::TypeNames;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub api: RawApi,
    #[serde(default)]
    pub watch: RawWatch,
    #[serde(default)]
    pub queue: RawQueue,
    #[serde(default)]
    pub delivery: RawDelivery,
    #[serde(default)]
    pub batch: RawBatch,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub security_labels: RawSecurityLabels,
    #[serde(default)]
    pub feeds: Vec<RawFeedRule>,
    #[serde(default)]
    pub sources: Vec<RawSource>,
    #[serde(default)]
    pub allowlist: RawAllowlist,
}

/// `[allowlist]`: values that never become indicators.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAllowlist {
    pub builtin: Option<bool>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub cidrs: Vec<String>,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub regex: Vec<String>,
    #[serde(default)]
    pub misp_warninglists: Vec<PathBuf>,
}

/// `[[sources]]`: one source the daemon fetches.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    pub collection: Option<String>,
    pub interval: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub header_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub max_bytes: Option<RawSize>,
    pub stale_after: Option<String>,
    pub initial_lookback: Option<String>,
    pub page_size: Option<i64>,
    pub read_timeout: Option<String>,
    pub proxy: Option<String>,
    pub preset: Option<String>,
}

/// A size: bytes, or text such as `"1GB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(u64),
    Text(String),
}

/// A column of a feed rule: by name, or by position (from 1).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawColumn {
    Name(String),
    Position(i64),
}

/// `[security_labels]`: the instance's label name for each TLP level.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityLabels {
    pub clear: Option<String>,
    pub white: Option<String>,
    pub green: Option<String>,
    pub amber: Option<String>,
    pub amber_strict: Option<String>,
    pub red: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub base_url: Option<String>,
    pub access_id: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    /// An API token (`TC-Token`), instead of the HMAC secret: for testing only.
    pub token: Option<String>,
    /// A file holding the API token.
    pub token_file: Option<PathBuf>,
    pub owner: Option<String>,
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// `http://[user:password@]host:port`: the proxy to reach the API through.
    pub proxy: Option<String>,
    #[serde(default)]
    pub prefer_v3: bool,
    #[serde(default)]
    pub types: TypeNames,
}

impl fmt::Debug for RawApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawApi")
            .field("base_url", &self.base_url)
            .field("access_id", &self.access_id)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWatch {
    pub dir: Option<PathBuf>,
    pub processing_dir: Option<PathBuf>,
    pub done_dir: Option<PathBuf>,
    pub failed_dir: Option<PathBuf>,
    pub settle_ms: Option<u64>,
    pub rescan_secs: Option<u64>,
    pub done_retention: Option<String>,
    pub skip_duplicate_files: Option<bool>,
    pub max_line_bytes: Option<usize>,
    pub max_decompressed_bytes: Option<u64>,
    pub max_stalled_reads: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub path: Option<PathBuf>,
    pub url: Option<String>,
    pub password_file: Option<PathBuf>,
    pub sslmode: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
    pub ssl_client_cert: Option<PathBuf>,
    pub ssl_client_key: Option<PathBuf>,
    pub dedup_window: Option<String>,
    pub delivered_retention: Option<String>,
    pub lease_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDelivery {
    pub workers: Option<usize>,
    pub rate_per_second: Option<u32>,
    pub burst: Option<u32>,
    pub max_attempts: Option<u32>,
    pub backoff_base_ms: Option<u64>,
    pub backoff_max_secs: Option<u64>,
    pub shutdown_grace_secs: Option<u64>,
    pub probe_min_secs: Option<u64>,
    pub probe_max_secs: Option<u64>,
    pub circuit_open_max_secs: Option<u64>,
    pub mode: Option<String>,
    pub attribute_check: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBatch {
    pub min_indicators: Option<usize>,
    pub max_indicators: Option<usize>,
    pub max_bytes: Option<usize>,
    pub jobs_in_flight: Option<usize>,
    pub poll_min_ms: Option<u64>,
    pub poll_max_ms: Option<u64>,
    pub timeout_secs: Option<u64>,
    pub attribute_write_type: Option<String>,
    pub tag_write_type: Option<String>,
    pub security_label_write_type: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeedRule {
    #[serde(rename = "match")]
    pub pattern: Option<String>,
    pub dir: Option<String>,
    pub owner: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub rating: Option<f64>,
    pub confidence: Option<u8>,
    /// Field names as written: checked against [`crate::feed::Field`] by
    /// validation; each to a column name, or a position (from 1) in a table
    /// without a header.
    #[serde(default)]
    pub columns: BTreeMap<String, RawColumn>,
    /// Line comment prefixes (default `#`, and `;` for plain lists); a
    /// table takes the first character of the first.
    pub comment: Option<Vec<String>>,
    /// The field the rest of a line after a trailing comment fills (plain
    /// lists: `192.0.2.0/24 ; SBL123`).
    pub trailing: Option<String>,
    /// A delimited table's first row names its columns (default true).
    pub header: Option<bool>,
    /// The header is the last comment line before the rows (abuse.ch).
    #[serde(default)]
    pub header_in_comment: bool,
    /// A table's delimiter: `,`, `;`, `|`, or `tab` (default: detected).
    pub delimiter: Option<String>,
    /// Plain lists of keyed lines: the key whose lines give values.
    pub line_key: Option<String>,
    /// Each file is the feed's complete current list.
    #[serde(default)]
    pub snapshot: bool,
    /// The feed's name (commands, reports, metrics); needed to retire.
    pub name: Option<String>,
    /// How what the feed dropped is retired: inactive, delete, tag.
    pub retire: Option<String>,
    /// The tag `retire = "tag"` adds.
    pub retire_tag: Option<String>,
    /// A snapshot retiring more than this share of the previous one is held.
    pub max_retire_fraction: Option<f64>,
    /// A snapshot whose rows were rejected past this share is held.
    pub max_reject_fraction: Option<f64>,
    /// An indicator no file of the feed listed for this long is retired.
    pub max_age: Option<String>,
    /// No file for this long: the feed is STALE.
    pub stale_after: Option<String>,
    /// Forces a format: csv, tsv, json, ndjson, text, stix, misp.
    pub format: Option<String>,
    /// Security labels for rows that carry none (`TLP:AMBER`).
    #[serde(default)]
    pub security_labels: Vec<String>,
    /// STIX: top-level observables become indicators too.
    #[serde(default)]
    pub stix_observables: bool,
    /// MISP: every attribute, not only those marked for detection.
    #[serde(default)]
    pub misp_all_attributes: bool,
}

/// The config from parsed TOML, every key of the wrong type or unknown
/// reported (not only the first, as serde would): a section that does not
/// deserialize is tried key by key, and the keys that fail are reported
/// and left out, so validation still sees (and checks) the rest.
pub(super) fn from_table(mut table: toml::Table, errors: &mut Vec<String>) -> RawConfig {
    // A rule's preset: its keys, under the rule's own.
    if let Some(toml::Value::Array(rules)) = table.get_mut("feeds") {
        for (i, rule) in rules.iter_mut().enumerate() {
            if let toml::Value::Table(t) = rule
                && let Err(e) = super::presets::expand(t)
            {
                errors.push(format!("feeds[{i}].preset: {e}"));
                t.remove("preset");
            }
        }
    }
    super::pull::expand_presets(&mut table, errors);
    if let Ok(raw) = RawConfig::deserialize(toml::Value::Table(table.clone())) {
        return raw;
    }
    let mut good = toml::Table::new();
    for (section, value) in table {
        let kept = match (section.as_str(), value) {
            ("api", toml::Value::Table(t)) => Some(keep_valid::<RawApi>("api", t, errors)),
            ("watch", toml::Value::Table(t)) => Some(keep_valid::<RawWatch>("watch", t, errors)),
            ("queue", toml::Value::Table(t)) => Some(keep_valid::<RawQueue>("queue", t, errors)),
            ("delivery", toml::Value::Table(t)) => {
                Some(keep_valid::<RawDelivery>("delivery", t, errors))
            }
            ("metrics", toml::Value::Table(t)) => {
                Some(keep_valid::<RawMetrics>("metrics", t, errors))
            }
            ("batch", toml::Value::Table(t)) => Some(keep_valid::<RawBatch>("batch", t, errors)),
            ("security_labels", toml::Value::Table(t)) => Some(keep_valid::<RawSecurityLabels>(
                "security_labels",
                t,
                errors,
            )),
            ("allowlist", toml::Value::Table(t)) => {
                Some(keep_valid::<RawAllowlist>("allowlist", t, errors))
            }
            ("feeds", toml::Value::Array(rules)) => {
                let rules = keep_valid_tables::<RawFeedRule>("feeds", rules, errors);
                good.insert(section, rules);
                continue;
            }
            ("sources", toml::Value::Array(sources)) => {
                let sources = keep_valid_tables::<RawSource>("sources", sources, errors);
                good.insert(section, sources);
                continue;
            }
            ("sources", _) => {
                errors.push("sources: must be an array of tables ([[sources]])".into());
                None
            }
            (
                "api" | "watch" | "queue" | "delivery" | "batch" | "metrics" | "security_labels"
                | "allowlist",
                _,
            ) => {
                errors.push(format!("{section}: must be a table ([{section}])"));
                None
            }
            ("feeds", _) => {
                errors.push("feeds: must be an array of tables ([[feeds]])".into());
                None
            }
            _ => {
                errors.push(format!(
                    "{section}: unknown key (known: api, watch, queue, delivery, batch, metrics, security_labels, allowlist, feeds, sources)"
                ));
                None
            }
        };
        if let Some(t) = kept {
            good.insert(section, toml::Value::Table(t));
        }
    }
    RawConfig::deserialize(toml::Value::Table(good)).unwrap_or_else(|e| {
        errors.push(e.to_string().trim().to_string());
        RawConfig::default()
    })
}

/// An array of tables (`[[feeds]]`, `[[sources]]`), each kept as
/// [`keep_valid`] keeps a table.
fn keep_valid_tables<T: DeserializeOwned>(
    section: &str,
    tables: Vec<toml::Value>,
    errors: &mut Vec<String>,
) -> toml::Value {
    let tables = tables
        .into_iter()
        .enumerate()
        .map(|(i, t)| match t {
            toml::Value::Table(t) => {
                toml::Value::Table(keep_valid::<T>(&format!("{section}[{i}]"), t, errors))
            }
            _ => {
                errors.push(format!("{section}[{i}]: must be a table ([[{section}]])"));
                toml::Value::Table(toml::Table::new())
            }
        })
        .collect();
    toml::Value::Array(tables)
}

/// The keys of `t` that deserialize as part of a `T`; the others are
/// reported as `prefix.key: why`.
fn keep_valid<T: DeserializeOwned>(
    prefix: &str,
    t: toml::Table,
    errors: &mut Vec<String>,
) -> toml::Table {
    if T::deserialize(toml::Value::Table(t.clone())).is_ok() {
        return t;
    }
    let mut good = toml::Table::new();
    for (key, value) in t {
        let one = toml::Table::from_iter([(key.clone(), value.clone())]);
        match T::deserialize(toml::Value::Table(one)) {
            Ok(_) => {
                good.insert(key, value);
            }
            Err(e) => errors.push(format!("{prefix}.{key}: {}", e.to_string().trim())),
        }
    }
    good
}
