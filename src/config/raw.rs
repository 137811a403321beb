//! The config as TOML has it: every key optional, unknown keys refused.
//! [`RawConfig::validate`](super::RawConfig::validate) turns it into a
//! [`Config`](super::Config).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

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
    pub feeds: Vec<RawFeedRule>,
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
    pub circuit_open_max_secs: Option<u64>,
    pub mode: Option<String>,
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
    /// Field names as written: checked against [`crate::feed::Field`] by
    /// validation.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}
