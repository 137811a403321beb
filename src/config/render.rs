//! The effective config as `check-config` prints it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::TypeNames;
use super::{
    BatchConfig, Config, Credentials, DeliveryConfig, FeedRule, MetricsConfig, QueueConfig,
    WatchConfig,
};
use crate::indicator::IndicatorType;

#[derive(Serialize)]
struct ApiView<'a> {
    base_url: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    access_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    owner: &'a str,
    timeout_secs: u64,
    allow_insecure_http: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<&'a Path>,
    prefer_v3: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<String>,
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
    batch: &'a BatchConfig,
    metrics: &'a MetricsConfig,
    feeds: Vec<FeedView<'a>>,
}

/// The effective config as `check-config` prints it: TOML, the secret
/// redacted, after comments saying where each `[api]` value came from.
pub fn render(cfg: &Config) -> String {
    let redacted = Some("[redacted]");
    let (secret_key, token) = match &cfg.api.credentials {
        Credentials::Hmac { .. } => (redacted, None),
        Credentials::Token { .. } => (None, redacted),
    };
    let view = View {
        api: ApiView {
            base_url: &cfg.api.base_url,
            access_id: &cfg.api.access_id,
            secret_key,
            token,
            owner: &cfg.api.owner,
            timeout_secs: cfg.api.timeout_secs,
            allow_insecure_http: cfg.api.allow_insecure_http,
            ca_file: cfg.api.ca_file.as_deref(),
            prefer_v3: cfg.api.prefer_v3,
            proxy: cfg.api.proxy.as_ref().map(|p| p.address()),
            types: &cfg.api.types,
        },
        watch: &cfg.watch,
        queue: &cfg.queue,
        delivery: &cfg.delivery,
        batch: &cfg.batch,
        metrics: &cfg.metrics,
        feeds: cfg.feeds.iter().map(feed_view).collect(),
    };
    let toml =
        toml::to_string_pretty(&view).unwrap_or_else(|e| format!("# cannot render config: {e}"));
    format!("{}{toml}", sources(cfg))
}

/// Where each `[api]` value came from, as TOML comments (so the output
/// still parses).
fn sources(cfg: &Config) -> String {
    let api = &cfg.api;
    let credentials = match &api.credentials {
        Credentials::Hmac { source, .. } => format!("HMAC secret key from {source}"),
        Credentials::Token { source, .. } => format!("API token from {source}"),
    };
    let proxy = match &api.proxy {
        Some(p) => format!("{} from {}", p.address(), p.source),
        None => "none (direct)".into(),
    };
    let lines = [
        ("base_url", api.sources.base_url.to_string()),
        ("access_id", api.sources.access_id.to_string()),
        ("owner", api.sources.owner.to_string()),
        ("credentials", credentials),
        ("proxy", proxy),
    ];
    let mut out = String::from(
        "# Where the [api] values come from (the config file wins over the environment):\n",
    );
    for (name, source) in lines {
        out.push_str(&format!("#   {name:<12} {source}\n"));
    }
    out.push('\n');
    out
}

fn feed_view(f: &FeedRule) -> FeedView<'_> {
    FeedView {
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
    }
}
