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
mod raw;
mod render;
mod secret;
mod types;
mod validate;
mod watch;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::feed::Field;
use crate::indicator::IndicatorType;
pub use types::{CustomType, RegistryKeyType, TypeNames};

pub use raw::{RawApi, RawConfig, RawDelivery, RawFeedRule, RawMetrics, RawQueue, RawWatch};
pub use render::render;
pub use secret::{Secret, SecretEnv, SecretSource};

/// Where the config is read from when neither `--config` nor
/// `$TC_INGEST_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/tc-ingest/tc-ingest.toml";

#[derive(Debug, Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub watch: WatchConfig,
    pub queue: QueueConfig,
    pub delivery: DeliveryConfig,
    pub metrics: MetricsConfig,
    pub feeds: Vec<FeedRule>,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub base_url: String,
    pub access_id: String,
    /// Where the secret key comes from; read by `secret.load()` where it is used.
    pub secret: SecretSource,
    pub owner: String,
    pub timeout_secs: u64,
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    pub types: TypeNames,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct QueueConfig {
    pub path: PathBuf,
    #[serde(with = "humantime_serde_compat")]
    pub dedup_window: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub delivered_retention: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub lease: Duration,
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
}

#[derive(Debug, Clone, Serialize)]
pub struct MetricsConfig {
    pub listen: Option<SocketAddr>,
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
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError(vec![format!(
                "cannot read config file {}: {e}",
                path.display()
            )])
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages and to
    /// resolve relative paths.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
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
        match raw.validate(base, &SecretEnv::from_process()) {
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
