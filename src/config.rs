//! Configuration: TOML read once into [`RawConfig`] (unknown keys refused),
//! then validated into [`Config`]. The secret key lives in [`Secret`], which
//! never prints.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::api::TypeNames;
use crate::feed::Field;
use crate::indicator::IndicatorType;

/// Where the config is read from when neither `--config` nor
/// `$TC_INGEST_CONFIG` says.
pub const DEFAULT_PATH: &str = "/etc/tc-ingest/tc-ingest.toml";

/// The API secret key. Its `Debug` and `Display` print `[redacted]`, and it
/// is not `Serialize`, so it cannot reach a log, the database or `status`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key itself, for the HMAC only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

// ---------------------------------------------------------------- raw form

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
    pub metrics: RawMetrics,
    #[serde(default)]
    pub feeds: Vec<RawFeedRule>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub base_url: Option<String>,
    pub access_id: Option<String>,
    pub secret_key: Option<String>,
    pub secret_key_file: Option<PathBuf>,
    pub owner: Option<String>,
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub allow_insecure_http: bool,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub types: TypeNames,
}

impl fmt::Debug for RawApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawApi")
            .field("base_url", &self.base_url)
            .field("access_id", &self.access_id)
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    pub path: Option<PathBuf>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetrics {
    pub listen: Option<String>,
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
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

// ---------------------------------------------------------- validated form

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
    pub secret: Secret,
    /// Where the secret came from (for `check-config`), never the secret.
    pub secret_source: String,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigError(vec![format!(
                "{}: {}",
                path.display(),
                e.to_string().trim()
            )])
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        raw.validate(base, &SecretEnv::from_process())
    }
}

/// Where secrets may come from besides the file, read once.
#[derive(Debug, Default, Clone)]
pub struct SecretEnv {
    pub env_secret: Option<String>,
    pub credentials_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

impl SecretEnv {
    pub fn from_process() -> Self {
        Self {
            env_secret: std::env::var("TC_API_SECRET_KEY")
                .ok()
                .filter(|s| !s.is_empty()),
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            state_dir: std::env::var_os("STATE_DIRECTORY")
                .map(|s| PathBuf::from(s.to_string_lossy().split(':').next().unwrap_or_default())),
        }
    }
}

/// All validation errors of a config, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

fn duration(errors: &mut Vec<String>, key: &str, v: &Option<String>, default: &str) -> Duration {
    let s = v.as_deref().unwrap_or(default);
    humantime::parse_duration(s).unwrap_or_else(|e| {
        errors.push(format!(
            "{key}: {s:?} is not a duration such as \"30s\", \"24h\" or \"7d\" ({e})"
        ));
        Duration::ZERO
    })
}

impl RawConfig {
    /// # Errors
    /// Every problem found, each naming its key.
    pub fn validate(self, base: &Path, env: &SecretEnv) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };

        // api
        let a = self.api;
        let base_url = a.base_url.clone().unwrap_or_default();
        if base_url.is_empty() {
            errors.push("api.base_url: missing (e.g. \"https://api.threatconnect.com\")".into());
        } else {
            match url::Url::parse(&base_url) {
                Err(e) => errors.push(format!("api.base_url: {base_url:?} is not a URL ({e})")),
                Ok(u) => match u.scheme() {
                    "https" => {}
                    "http" => {
                        let loopback = match u.host() {
                            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                            Some(url::Host::Domain(d)) => d == "localhost",
                            None => false,
                        };
                        if !loopback && !a.allow_insecure_http {
                            errors.push(format!(
                                "api.base_url: {base_url:?} is plain http; ThreatConnect answers 403 without TLS. \
                                 Use https, or set api.allow_insecure_http = true"
                            ));
                        }
                    }
                    s => errors.push(format!("api.base_url: scheme {s:?} is not http or https")),
                },
            }
            if base_url.contains("/v2") {
                errors
                    .push("api.base_url: must not include /v2 (it is added to every path)".into());
            }
        }
        let access_id = a.access_id.clone().unwrap_or_default();
        if access_id.trim().is_empty() {
            errors.push("api.access_id: missing".into());
        }
        let (secret, secret_source) = match read_secret(&a, base, env) {
            Ok(s) => s,
            Err(e) => {
                errors.push(e);
                (Secret::new(""), String::new())
            }
        };
        let owner = a.owner.clone().unwrap_or_default();
        if owner.trim().is_empty() {
            errors.push("api.owner: missing (the default owner indicators are created in)".into());
        }
        let timeout_secs = a.timeout_secs.unwrap_or(30);
        if timeout_secs == 0 {
            errors.push("api.timeout_secs: must be at least 1".into());
        }
        let ca_file = a.ca_file.clone().map(resolve);
        if let Some(ca) = &ca_file
            && !ca.is_file()
        {
            errors.push(format!(
                "api.ca_file: {} is not a readable file",
                ca.display()
            ));
        }

        // paths
        let state = env
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/tc-ingest"));
        let w = self.watch;
        let dir = w.dir.map(resolve).unwrap_or_else(|| state.join("incoming"));
        let sibling = dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| state.clone());
        let processing_dir = w
            .processing_dir
            .map(resolve)
            .unwrap_or_else(|| sibling.join("processing"));
        let done_dir = w
            .done_dir
            .map(resolve)
            .unwrap_or_else(|| sibling.join("done"));
        let failed_dir = w
            .failed_dir
            .map(resolve)
            .unwrap_or_else(|| sibling.join("failed"));
        for (key, p) in [
            ("watch.processing_dir", &processing_dir),
            ("watch.done_dir", &done_dir),
            ("watch.failed_dir", &failed_dir),
        ] {
            if p.starts_with(&dir) {
                errors.push(format!(
                    "{key}: {} must not be inside watch.dir",
                    p.display()
                ));
            }
        }
        let watch = WatchConfig {
            settle: Duration::from_millis(w.settle_ms.unwrap_or(2000)),
            rescan: Duration::from_secs(w.rescan_secs.unwrap_or(30).max(1)),
            done_retention: duration(&mut errors, "watch.done_retention", &w.done_retention, "7d"),
            skip_duplicate_files: w.skip_duplicate_files.unwrap_or(true),
            max_line_bytes: w.max_line_bytes.unwrap_or(1 << 20),
            max_decompressed_bytes: w.max_decompressed_bytes.unwrap_or(8 << 30),
            dir,
            processing_dir,
            done_dir,
            failed_dir,
        };
        if watch.max_line_bytes < 64 {
            errors.push("watch.max_line_bytes: must be at least 64".into());
        }

        let q = self.queue;
        let queue = QueueConfig {
            path: q
                .path
                .map(resolve)
                .unwrap_or_else(|| state.join("queue.db")),
            dedup_window: duration(&mut errors, "queue.dedup_window", &q.dedup_window, "24h"),
            delivered_retention: duration(
                &mut errors,
                "queue.delivered_retention",
                &q.delivered_retention,
                "7d",
            ),
            lease: Duration::from_secs(q.lease_secs.unwrap_or(120).max(1)),
        };

        let d = self.delivery;
        let delivery = DeliveryConfig {
            workers: d.workers.unwrap_or(8),
            rate_per_second: d.rate_per_second.unwrap_or(20),
            burst: d.burst.unwrap_or(5).max(1),
            max_attempts: d.max_attempts.unwrap_or(10),
            backoff_base: Duration::from_millis(d.backoff_base_ms.unwrap_or(1000)),
            backoff_max: Duration::from_secs(d.backoff_max_secs.unwrap_or(600)),
            shutdown_grace: Duration::from_secs(d.shutdown_grace_secs.unwrap_or(10)),
            probe_min: Duration::from_secs(d.probe_min_secs.unwrap_or(60).max(1)),
            probe_max: Duration::from_secs(d.probe_max_secs.unwrap_or(900).max(1)),
        };
        if delivery.workers == 0 || delivery.workers > 256 {
            errors.push("delivery.workers: must be from 1 to 256".into());
        }
        if delivery.max_attempts == 0 {
            errors.push("delivery.max_attempts: must be at least 1".into());
        }
        if delivery.probe_max < delivery.probe_min {
            errors.push(
                "delivery.probe_max_secs: must not be less than delivery.probe_min_secs".into(),
            );
        }

        let metrics = MetricsConfig {
            listen: match self.metrics.listen.as_deref() {
                None | Some("") => None,
                Some(s) => match s.parse() {
                    Ok(a) => Some(a),
                    Err(_) => {
                        errors.push(format!(
                            "metrics.listen: {s:?} is not an address such as \"127.0.0.1:9184\""
                        ));
                        None
                    }
                },
            },
        };

        let mut feeds = Vec::new();
        for (i, r) in self.feeds.into_iter().enumerate() {
            let key = format!("feeds[{i}]");
            if r.pattern.is_none() && r.dir.is_none() {
                errors.push(format!(
                    "{key}: needs `match` (a glob) or `dir` (a subdirectory of watch.dir)"
                ));
            }
            let pattern = r
                .pattern
                .as_deref()
                .and_then(|p| match globset::Glob::new(p) {
                    Ok(g) => Some(g.compile_matcher()),
                    Err(e) => {
                        errors.push(format!("{key}.match: {p:?} is not a glob ({e})"));
                        None
                    }
                });
            let kind = r.kind.as_deref().and_then(|t| {
                let k = IndicatorType::parse_alias(t);
                if k.is_none() {
                    errors.push(format!("{key}.type: unknown indicator type {t:?}"));
                }
                k
            });
            if let Some(rt) = r.rating
                && !(0.0..=5.0).contains(&rt)
            {
                errors.push(format!("{key}.rating: {rt} is not from 0 to 5"));
            }
            if let Some(c) = r.confidence
                && c > 100
            {
                errors.push(format!("{key}.confidence: {c} is not from 0 to 100"));
            }
            let mut columns = BTreeMap::new();
            for (name, column) in r.columns {
                match Field::parse(&name) {
                    Some(field) => {
                        columns.insert(field, column);
                    }
                    None => {
                        let known: Vec<&str> = Field::ALL.iter().map(|f| f.as_str()).collect();
                        errors.push(format!(
                            "{key}.columns.{name}: unknown field; known: {}",
                            known.join(", ")
                        ));
                    }
                }
            }
            if let Err(e) = crate::indicator::clean_tags(r.tags.iter()) {
                errors.push(format!("{key}.tags: {e}"));
            }
            feeds.push(FeedRule {
                pattern,
                dir: r.dir.map(PathBuf::from),
                owner: r.owner,
                kind,
                tags: r.tags,
                rating: r.rating,
                confidence: r.confidence,
                columns,
            });
        }

        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            api: ApiConfig {
                base_url,
                access_id,
                secret,
                secret_source,
                owner,
                timeout_secs,
                allow_insecure_http: a.allow_insecure_http,
                ca_file,
                types: a.types,
            },
            watch,
            queue,
            delivery,
            metrics,
            feeds,
        })
    }
}

/// The secret, in order: `$TC_API_SECRET_KEY`, `api.secret_key_file`, the
/// systemd credential `$CREDENTIALS_DIRECTORY/tc-api-secret`, `api.secret_key`.
fn read_secret(a: &RawApi, base: &Path, env: &SecretEnv) -> Result<(Secret, String), String> {
    let from_file = |p: &Path, key: &str| -> Result<(Secret, String), String> {
        let s = std::fs::read_to_string(p)
            .map_err(|e| format!("{key}: cannot read {}: {e}", p.display()))?;
        let s = s.trim_end_matches(['\n', '\r']);
        if s.is_empty() {
            return Err(format!("{key}: {} is empty", p.display()));
        }
        Ok((Secret::new(s), format!("{key} {}", p.display())))
    };
    if let Some(s) = &env.env_secret {
        return Ok((
            Secret::new(s.clone()),
            "environment TC_API_SECRET_KEY".into(),
        ));
    }
    if let Some(p) = &a.secret_key_file {
        let p = if p.is_absolute() {
            p.clone()
        } else {
            base.join(p)
        };
        return from_file(&p, "api.secret_key_file");
    }
    if let Some(dir) = &env.credentials_dir {
        let p = dir.join("tc-api-secret");
        if p.exists() {
            return from_file(&p, "systemd credential");
        }
    }
    if let Some(s) = a.secret_key.as_deref().filter(|s| !s.is_empty()) {
        tracing::warn!("api.secret_key is set inline in the config file: use it for testing only");
        return Ok((
            Secret::new(s),
            "api.secret_key (inline, for testing only)".into(),
        ));
    }
    Err(
        "api.secret_key: no secret key: set TC_API_SECRET_KEY, api.secret_key_file, \
         a systemd credential tc-api-secret, or api.secret_key"
            .into(),
    )
}

/// The effective config as `check-config` prints it: TOML, the secret redacted.
pub fn render(cfg: &Config) -> String {
    #[derive(Serialize)]
    struct ApiView<'a> {
        base_url: &'a str,
        access_id: &'a str,
        secret_key: &'a str,
        secret_source: &'a str,
        owner: &'a str,
        timeout_secs: u64,
        allow_insecure_http: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        ca_file: Option<&'a Path>,
        types: &'a TypeNames,
    }
    #[derive(Serialize)]
    struct FeedView<'a> {
        #[serde(rename = "match", skip_serializing_if = "Option::is_none")]
        pattern: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        dir: Option<&'a Path>,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a str>,
        #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
        kind: Option<&'a str>,
        tags: &'a [String],
        #[serde(skip_serializing_if = "Option::is_none")]
        rating: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        confidence: Option<u8>,
        /// By field name (fields order by name, so the order is as written).
        columns: BTreeMap<&'static str, &'a str>,
    }
    #[derive(Serialize)]
    struct View<'a> {
        api: ApiView<'a>,
        watch: &'a WatchConfig,
        queue: &'a QueueConfig,
        delivery: &'a DeliveryConfig,
        metrics: &'a MetricsConfig,
        feeds: Vec<FeedView<'a>>,
    }
    let view = View {
        api: ApiView {
            base_url: &cfg.api.base_url,
            access_id: &cfg.api.access_id,
            secret_key: "[redacted]",
            secret_source: &cfg.api.secret_source,
            owner: &cfg.api.owner,
            timeout_secs: cfg.api.timeout_secs,
            allow_insecure_http: cfg.api.allow_insecure_http,
            ca_file: cfg.api.ca_file.as_deref(),
            types: &cfg.api.types,
        },
        watch: &cfg.watch,
        queue: &cfg.queue,
        delivery: &cfg.delivery,
        metrics: &cfg.metrics,
        feeds: cfg
            .feeds
            .iter()
            .map(|f| FeedView {
                pattern: f.pattern.as_ref().map(|g| g.glob().glob()),
                dir: f.dir.as_deref(),
                owner: f.owner.as_deref(),
                kind: f.kind.map(IndicatorType::tc_name),
                tags: &f.tags,
                rating: f.rating,
                confidence: f.confidence,
                columns: f
                    .columns
                    .iter()
                    .map(|(field, column)| (field.as_str(), column.as_str()))
                    .collect(),
            })
            .collect(),
    };
    toml::to_string_pretty(&view).unwrap_or_else(|e| format!("# cannot render config: {e}"))
}

mod humantime_serde_compat {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[api]
base_url = "https://api.threatconnect.com"
access_id = "12345"
secret_key = "inline-secret"
owner = "Example Org"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
        raw.validate(Path::new("/etc/tc-ingest"), &SecretEnv::default())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.api.secret.expose(), "inline-secret");
        assert_eq!(c.queue.path, PathBuf::from("/var/lib/tc-ingest/queue.db"));
        assert_eq!(c.watch.dir, PathBuf::from("/var/lib/tc-ingest/incoming"));
        assert_eq!(c.watch.done_dir, PathBuf::from("/var/lib/tc-ingest/done"));
        assert_eq!(c.delivery.workers, 8);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = parse(&format!("{MINIMAL}\nbogus_key = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus_key"), "{e}");
        let e = parse("[delivery]\nworkerz = 3\n").unwrap_err().to_string();
        assert!(e.contains("workerz"), "{e}");
    }

    #[test]
    fn every_error_is_reported_with_its_key() {
        let e = parse(
            "[api]\nbase_url = \"http://tc.example.com\"\n[delivery]\nworkers = 0\n[[feeds]]\nmatch = \"*.csv\"\ntype = \"nonsense\"\n",
        )
        .unwrap_err()
        .0;
        let all = e.join("\n");
        for key in [
            "api.base_url",
            "api.access_id",
            "api.secret_key",
            "api.owner",
            "delivery.workers",
            "feeds[0].type",
        ] {
            assert!(all.contains(key), "{key} missing from:\n{all}");
        }
    }

    #[test]
    fn plain_http_only_for_loopback_or_opt_in() {
        let with = |url: &str, extra: &str| {
            parse(
                &MINIMAL
                    .replace("https://api.threatconnect.com", url)
                    .replace("[api]", &format!("[api]\n{extra}")),
            )
        };
        assert!(with("http://127.0.0.1:8080", "").is_ok());
        assert!(with("http://[::1]:8080/api", "").is_ok());
        assert!(with("http://localhost:8080", "").is_ok());
        assert!(with("http://tc.internal", "").is_err());
        assert!(with("http://tc.internal", "allow_insecure_http = true").is_ok());
    }

    #[test]
    fn secret_order_env_file_credential_inline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "from-file\n").unwrap();
        std::fs::write(dir.path().join("tc-api-secret"), "from-credential").unwrap();
        let raw = || -> RawConfig {
            toml::from_str(&format!("{MINIMAL}secret_key_file = \"secret\"\n")).unwrap()
        };
        let env = SecretEnv {
            env_secret: Some("from-env".into()),
            credentials_dir: Some(dir.path().into()),
            state_dir: None,
        };
        let c = raw().validate(dir.path(), &env).unwrap();
        assert_eq!(c.api.secret.expose(), "from-env");
        let env = SecretEnv {
            env_secret: None,
            ..env
        };
        let c = raw().validate(dir.path(), &env).unwrap();
        assert_eq!(c.api.secret.expose(), "from-file");
        let no_file: RawConfig = toml::from_str(MINIMAL).unwrap();
        let c = no_file.validate(dir.path(), &env).unwrap();
        assert_eq!(c.api.secret.expose(), "from-credential");
    }

    #[test]
    fn secret_never_prints() {
        let c = parse(MINIMAL).unwrap();
        let debug = format!("{c:?}");
        let rendered = render(&c);
        for text in [&debug, &rendered] {
            assert!(!text.contains("inline-secret"), "{text}");
        }
        assert!(rendered.contains("[redacted]"));
        assert_eq!(format!("{}", c.api.secret), "[redacted]");
    }

    #[test]
    fn feed_rules_match_names_and_dirs() {
        let c = parse(&format!(
            "{MINIMAL}\n[[feeds]]\nmatch = \"*.csv\"\nowner = \"A\"\n[[feeds]]\ndir = \"abuse\"\n[[feeds]]\nmatch = \"x/**/*.txt\"\n"
        ))
        .unwrap();
        assert!(c.feeds[0].matches(Path::new("sub/feed.csv")));
        assert!(!c.feeds[0].matches(Path::new("feed.txt")));
        assert!(c.feeds[1].matches(Path::new("abuse/a.txt")));
        assert!(!c.feeds[1].matches(Path::new("other/a.txt")));
        assert!(c.feeds[2].matches(Path::new("x/y/a.txt")));
    }

    #[test]
    fn columns_name_fields_and_unknown_ones_list_the_known() {
        let e = parse(&format!(
            "{MINIMAL}\n[[feeds]]\nmatch = \"*.csv\"\ncolumns = {{ frist_seen = \"x\" }}\n"
        ))
        .unwrap_err()
        .0;
        assert_eq!(
            e,
            vec![
                "feeds[0].columns.frist_seen: unknown field; known: value, type, rating, confidence, \
                 tags, description, owner, md5, sha1, sha256, key_name, value_name, value_type, \
                 source, first_seen, last_seen"
            ]
        );
    }
}

#[cfg(test)]
mod example {
    use super::*;

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../config/tc-ingest.example.toml");
        let raw: RawConfig = toml::from_str(text).unwrap();
        let env = SecretEnv {
            env_secret: Some("from-env".into()),
            ..SecretEnv::default()
        };
        let c = raw.validate(Path::new("/etc/tc-ingest"), &env).unwrap();
        assert_eq!(c.feeds.len(), 2);
        assert_eq!(c.api.types, TypeNames::default());
        assert!(c.feeds[0].matches(Path::new("abuse-ch/today.csv")));
    }
}
