//! Configuration: TOML read once into [`RawConfig`] (unknown keys refused),
//! then validated into [`Config`]. The secret key lives in [`Secret`], which
//! never prints.
//!
//! By role: `raw` (the TOML as written), this module (the validated form and
//! loading), one validator per section (`api`, `watch`, `delivery`, `feeds`,
//! orchestrated by `validate`), `secret` (the key and where it comes from) and
//! `render` (what `check-config` prints).

mod api;
mod delivery;
mod feeds;
pub mod presets;
mod proxy;
mod pull;
mod queue;
mod raw;
mod render;
mod secret;
mod sources;
mod types;
mod validate;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::feed::{Field, Format};
use crate::indicator::{IndicatorType, TlpNames};
pub use types::{CustomType, RegistryKeyType, TypeNames};

pub use proxy::ApiProxy;
pub use pull::{SourceConfig, SourceKind};
pub use queue::{PostgresQueue, QUEUE_PASSWORD_CREDENTIAL, QueueConfig};
pub use raw::{
    RawAllowlist, RawApi, RawBatch, RawConfig, RawDelivery, RawFeedRule, RawMetrics, RawQueue,
    RawSize, RawSource, RawWatch,
};
pub use render::render;
pub use secret::{
    CredentialKind, CredentialSource, Credentials, NO_CREDENTIALS, SECRET_CREDENTIAL, Secret,
    SecretEnv, SecretSource, TOKEN_CREDENTIAL,
};
pub use sources::{ProxyEnv, Source, TcexEnv};

/// Where the config is read from when neither `--config` nor
/// `$TC_INGEST_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/tc-ingest/tc-ingest.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub watch: WatchConfig,
    pub queue: QueueConfig,
    pub delivery: DeliveryConfig,
    pub batch: BatchConfig,
    pub metrics: MetricsConfig,
    /// The instance's security label name for each TLP level.
    pub security_labels: TlpNames,
    pub feeds: Vec<FeedRule>,
    /// What the daemon fetches itself, into `watch.dir/<name>/`.
    pub sources: Vec<SourceConfig>,
    /// Values that never become indicators (checked when the allowlist is
    /// built: `lifecycle::Allowlist::build`).
    pub allowlist: AllowlistConfig,
}

/// `[allowlist]`, its paths resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AllowlistConfig {
    /// Reserved, private, loopback, link-local, multicast and documentation
    /// networks, the empty input's hashes, reserved names.
    pub builtin: bool,
    /// Exact values, normalized as rows are.
    pub values: Vec<String>,
    /// Networks: addresses and CIDRs inside them.
    pub cidrs: Vec<String>,
    /// Domains and their subdomains (hosts, URL hosts, e-mail domains).
    pub domains: Vec<String>,
    /// Regular expressions on the indicator's summary.
    pub regex: Vec<String>,
    /// MISP warninglists: `list.json` files, or directories holding them.
    pub misp_warninglists: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub base_url: String,
    /// Empty when an API token is used without one.
    pub access_id: String,
    /// Which credential (HMAC secret key or API token) and where it is;
    /// read by `load()` where it is used (`run`, `ping`). `None`: none set.
    pub credentials: Option<CredentialSource>,
    pub owner: String,
    pub timeout_secs: u64,
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    /// Per-indicator delivery uses v3 (one request per indicator) rather
    /// than v2 (create, then a call per tag and attribute).
    pub prefer_v3: bool,
    /// The proxy requests go through (none: direct).
    pub proxy: Option<ApiProxy>,
    pub types: TypeNames,
    /// Where the values that the environment may give came from.
    pub sources: ApiSources,
}

/// Where `base_url`, `access_id` and `owner` came from: the config file or
/// tcex's environment variables (the credentials and the proxy carry their
/// own source).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiSources {
    pub base_url: Source,
    pub access_id: Source,
    pub owner: Source,
}

#[derive(Debug, Clone, Serialize)]
pub struct WatchConfig {
    pub dir: PathBuf,
    pub processing_dir: PathBuf,
    pub done_dir: PathBuf,
    pub failed_dir: PathBuf,
    #[serde(with = "humantime_serde_compat")]
    pub settle: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub rescan: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub done_retention: Duration,
    pub skip_duplicate_files: bool,
    pub max_line_bytes: usize,
    pub max_decompressed_bytes: u64,
    /// Interrupted reads in a row without progress after which a file is
    /// given up (to `failed/`) as one that kills the daemon.
    pub max_stalled_reads: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveryConfig {
    pub workers: usize,
    /// Requests per second across all workers; 0 means no limit (benchmarks).
    pub rate_per_second: u32,
    pub burst: u32,
    pub max_attempts: u32,
    #[serde(with = "humantime_serde_compat")]
    pub backoff_base: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub backoff_max: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub probe_min: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub probe_max: Duration,
    /// The longest a tripped circuit breaker stops all requests before its
    /// probes start (the open period doubles per trip in a row up to this).
    pub circuit_open_max: Duration,
    /// How indicators go to ThreatConnect (ARCHITECTURE.md, "Bulk modes").
    pub mode: DeliveryMode,
    /// When an attribute is looked for before it is sent per indicator.
    pub attribute_check: AttributeCheck,
}

impl Config {
    /// Which API per-indicator delivery uses: v3 in `v3` mode, or with
    /// `api.prefer_v3` when the mode leaves the choice (`auto`, and `batch`
    /// for what goes per indicator).
    pub fn per_indicator(&self) -> PerIndicator {
        match self.delivery.mode {
            DeliveryMode::V3 => PerIndicator::V3,
            DeliveryMode::V2 => PerIndicator::V2,
            DeliveryMode::Auto | DeliveryMode::Batch if self.api.prefer_v3 => PerIndicator::V3,
            DeliveryMode::Auto | DeliveryMode::Batch => PerIndicator::V2,
        }
    }
}

crate::names::named_enum! {
    /// `delivery.attribute_check`: when an attribute is looked for (`GET
    /// .../attributes`) before a per-indicator call adds it. v2 attributes
    /// append, and whether a v3 create of an existing indicator appends its
    /// attributes again is not documented (tc-api.md sections 7 and 8).
    pub enum AttributeCheck ("attribute check") {
        /// Only when an earlier attempt may have added it (an answer lost,
        /// a batch job given up).
        Uncertain => "uncertain",
        /// Always: an indicator fed again (after `queue.dedup_window`, or
        /// with other tags) does not get the same attribute twice, at one
        /// more request per attribute call (v2) or per create with
        /// attributes (v3).
        Always => "always",
    }
}

crate::names::named_enum! {
    /// Which API delivers an indicator that does not go by batch.
    pub enum PerIndicator ("per-indicator API") {
        /// A create, then one call per tag and attribute.
        V2 => "v2",
        /// One `POST /v3/indicators` carrying everything.
        V3 => "v3",
    }
}

crate::names::named_enum! {
    /// `delivery.mode`: which API delivers an owner's jobs.
    pub enum DeliveryMode ("delivery mode") {
        /// Batch while an owner's due backlog is at least
        /// `batch.min_indicators`, else per indicator (v2, or v3 with
        /// `api.prefer_v3`).
        Auto => "auto",
        /// Per indicator: a create, then one call per tag and attribute.
        V2 => "v2",
        /// Per indicator: one create carrying its tags and attributes.
        V3 => "v3",
        /// Every owner's jobs through the batch API.
        Batch => "batch",
    }
}

crate::names::named_enum! {
    /// `batch.attribute_write_type`: how a batch job writes attributes of
    /// indicators that exist (tc-api.md section 5).
    pub enum AttributeWriteType ("attribute write type") {
        Append => "Append",
        Replace => "Replace",
        Singleton => "Singleton",
        Static => "Static",
    }
}

crate::names::named_enum! {
    /// `batch.tag_write_type`: `Append`, or `Replace` (which removes the tags
    /// an indicator had).
    pub enum TagWriteType ("tag write type") {
        Append => "Append",
        Replace => "Replace",
    }
}

crate::names::named_enum! {
    /// `batch.security_label_write_type`: `Append`, or `Replace` (which
    /// removes the security labels, such as TLP, that an indicator had: the
    /// items carry none).
    pub enum SecurityLabelWriteType ("security label write type") {
        Append => "Append",
        Replace => "Replace",
    }
}

/// The `[batch]` section: how the batch API is used.
#[derive(Debug, Clone, Serialize)]
pub struct BatchConfig {
    /// In `auto` mode, the due backlog of an owner from which it goes by batch.
    pub min_indicators: usize,
    /// Indicators per batch job, at most (ThreatConnect's limit is 25,000).
    pub max_indicators: usize,
    /// Bytes per uploaded data file, at most (the instance's limit is learnt
    /// from its refusal, and used from then on when lower).
    pub max_bytes: usize,
    /// Batch jobs at ThreatConnect at once, across owners.
    pub jobs_in_flight: usize,
    /// First wait between status polls of a batch job; it grows 1.5 times
    /// per poll up to `poll_max`.
    #[serde(with = "humantime_serde_compat")]
    pub poll_min: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub poll_max: Duration,
    /// A batch job not completed after this long is given up on: its jobs go
    /// back to pending, to be sent per indicator.
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
    pub attribute_write_type: AttributeWriteType,
    pub tag_write_type: TagWriteType,
    pub security_label_write_type: SecurityLabelWriteType,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
    /// A file holding the bearer token the listener wants (required off
    /// loopback).
    pub token_file: Option<PathBuf>,
}

/// A feed rule: which files it applies to and the defaults it sets.
#[derive(Debug, Clone)]
pub struct FeedRule {
    pub pattern: Option<globset::GlobMatcher>,
    pub dir: Option<PathBuf>,
    pub owner: Option<String>,
    pub kind: Option<IndicatorType>,
    pub tags: Vec<String>,
    pub rating: Option<f64>,
    pub confidence: Option<u8>,
    /// Our field (value, type, tags, ...) to the feed's column name.
    pub columns: BTreeMap<Field, String>,
    /// The format forced on the rule's files.
    pub format: Option<Format>,
    /// Labels for rows that carry none.
    pub security_labels: Vec<String>,
    pub stix_observables: bool,
    pub misp_all_attributes: bool,
    /// Line comment prefixes (empty: the reader's own).
    pub comments: Vec<String>,
    pub trailing: Option<Field>,
    pub header: bool,
    pub header_in_comment: bool,
    pub delimiter: Option<u8>,
    pub line_key: Option<String>,
    /// Each file is the feed's complete current list (a preset says so
    /// for full lists): what a file no longer lists is retired (with a
    /// `name`).
    pub snapshot: bool,
    /// The feed's name: what commands, reports and metrics call it, and
    /// the key of its lifecycle state. Unnamed rules are not tracked.
    pub name: Option<String>,
    pub lifecycle: FeedLifecycle,
}

/// How a named feed's indicators end (issue: retire, expiry, health).
#[derive(Debug, Clone, PartialEq)]
pub struct FeedLifecycle {
    pub retire: crate::names::RetireMode,
    /// The tag `retire = "tag"` adds.
    pub retire_tag: String,
    /// A snapshot that would retire more than this share of the previous
    /// one is held for `retire --confirm`.
    pub max_retire_fraction: f64,
    /// A snapshot with more than this share of its rows rejected is held.
    pub max_reject_fraction: f64,
    /// Retire what no file of the feed listed for this long.
    pub max_age: Option<Duration>,
    /// No file for this long: STALE.
    pub stale_after: Option<Duration>,
}

impl Default for FeedLifecycle {
    fn default() -> Self {
        Self {
            retire: crate::names::RetireMode::Inactive,
            retire_tag: crate::names::DEFAULT_RETIRE_TAG.to_string(),
            max_retire_fraction: 0.25,
            max_reject_fraction: 0.5,
            max_age: None,
            stale_after: None,
        }
    }
}

impl Config {
    /// What the config does that its author may not expect: a snapshot
    /// rule without a name retires nothing.
    pub fn notes(&self) -> Vec<String> {
        self.feeds
            .iter()
            .enumerate()
            .filter(|(_, r)| r.snapshot && r.name.is_none())
            .map(|(i, _)| {
                format!(
                    "feeds[{i}] lists a feed's whole current list (snapshot = true) but has no name: what its files drop is not retired; give it name = \"...\" to retire it"
                )
            })
            .collect()
    }
}

impl FeedRule {
    /// Whether the rule's feed is tracked: its members remembered, its
    /// drops and expiries retired.
    pub fn tracked(&self) -> bool {
        self.name.is_some()
    }
}

impl FeedRule {
    /// Whether the rule applies to a file at `rel` (relative to `watch.dir`).
    /// A pattern without `/` is matched against the file name alone.
    pub fn matches(&self, rel: &Path) -> bool {
        let by_dir = self.dir.as_ref().is_none_or(|d| rel.starts_with(d));
        let by_pattern = self.pattern.as_ref().is_none_or(|g| {
            if g.glob().glob().contains('/') {
                g.is_match(rel)
            } else {
                rel.file_name().is_some_and(|n| g.is_match(n))
            }
        });
        by_dir && by_pattern
    }
}

impl Config {
    /// The config file's path: `--config`, else `$TC_INGEST_CONFIG`, else the default.
    pub fn locate(cli: Option<&Path>) -> PathBuf {
        cli.map(Path::to_path_buf)
            .or_else(|| std::env::var_os("TC_INGEST_CONFIG").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
    }

    /// Reads and validates a config file.
    ///
    /// # Errors
    /// Every problem found, one per line, each naming its key.
    ///
    /// A missing file at the default path is an empty config: every value
    /// then comes from the environment (tcex's names) or its default.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound && path == Path::new(DEFAULT_PATH) =>
            {
                tracing::debug!(
                    path = DEFAULT_PATH,
                    "no config file: the environment and defaults apply"
                );
                String::new()
            }
            Err(e) => {
                return Err(ConfigError(vec![format!(
                    "cannot read config file {}: {e}",
                    path.display()
                )]));
            }
        };
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages and to
    /// resolve relative paths.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        Self::parse_with(text, path, &SecretEnv::from_process())
    }

    /// As [`Config::parse`], with the environment given (tests).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse_with(text: &str, path: &Path, env: &SecretEnv) -> Result<Config, ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| {
            ConfigError(vec![format!(
                "{}: {}",
                path.display(),
                e.to_string().trim()
            )])
        })?;
        let mut errors = Vec::new();
        let raw = raw::from_table(table, &mut errors);
        let base = path.parent().unwrap_or(Path::new("."));
        match raw.validate(base, env) {
            Ok(cfg) if errors.is_empty() => Ok(cfg),
            Ok(_) => Err(ConfigError(errors)),
            Err(ConfigError(more)) => {
                errors.extend(more);
                Err(ConfigError(errors))
            }
        }
    }
}

/// All validation errors of a config, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

/// A duration such as `"24h"` at `key`, `default` when absent.
fn duration(errors: &mut Vec<String>, key: &str, v: &Option<String>, default: &str) -> Duration {
    let s = v.as_deref().unwrap_or(default);
    humantime::parse_duration(s).unwrap_or_else(|e| {
        errors.push(format!(
            "{key}: {s:?} is not a duration such as \"30s\", \"24h\" or \"7d\" ({e})"
        ));
        Duration::ZERO
    })
}

/// A path from the config: relative ones are relative to the config's directory.
fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_absolute() { p } else { base.join(p) }
}

mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_feeds;
#[cfg(test)]
mod tests_queue;
#[cfg(test)]
mod tests_sources;
#[cfg(test)]
mod tests_web;
