//! The effective config as `check-config` prints it: a config file with
//! every key spelled as the file spells it (`settle_ms`, `backoff_base_ms`,
//! durations as `"7d"`), so the output is a file `check-config` accepts
//! again. The secret is never printed: a comment says where it comes from.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::{BatchConfig, Config, CredentialKind, FeedRule, SecretSource, TypeNames};
use crate::indicator::{IndicatorType, Tlp, TlpNames};

#[derive(Serialize)]
struct ApiView<'a> {
    base_url: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    access_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_key_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<&'a Path>,
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
struct WatchView<'a> {
    dir: &'a Path,
    processing_dir: &'a Path,
    done_dir: &'a Path,
    failed_dir: &'a Path,
    settle_ms: u64,
    rescan_secs: u64,
    done_retention: String,
    skip_duplicate_files: bool,
    max_line_bytes: usize,
    max_decompressed_bytes: u64,
    max_stalled_reads: u32,
}

#[derive(Serialize)]
struct QueueView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<&'a Path>,
    /// A PostgreSQL queue: its URL (no password), the password's file
    /// and the TLS settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sslmode: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_root_cert: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_client_cert: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ssl_client_key: Option<&'a Path>,
    dedup_window: String,
    delivered_retention: String,
    lease_secs: u64,
}

#[derive(Serialize)]
struct DeliveryView {
    workers: usize,
    rate_per_second: u32,
    burst: u32,
    max_attempts: u32,
    backoff_base_ms: u64,
    backoff_max_secs: u64,
    shutdown_grace_secs: u64,
    probe_min_secs: u64,
    probe_max_secs: u64,
    circuit_open_max_secs: u64,
    mode: &'static str,
    attribute_check: &'static str,
}

#[derive(Serialize)]
struct BatchView {
    min_indicators: usize,
    max_indicators: usize,
    max_bytes: usize,
    jobs_in_flight: usize,
    poll_min_ms: u64,
    poll_max_ms: u64,
    timeout_secs: u64,
    attribute_write_type: &'static str,
    tag_write_type: &'static str,
    security_label_write_type: &'static str,
}

#[derive(Serialize)]
struct MetricsView {
    #[serde(skip_serializing_if = "Option::is_none")]
    listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_file: Option<String>,
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
    columns: BTreeMap<&'static str, ColumnView<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    comment: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    trailing: Option<&'static str>,
    header: bool,
    header_in_comment: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    delimiter: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_key: Option<&'a str>,
    snapshot: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// The lifecycle keys, for a named rule (the only kind they apply to).
    #[serde(skip_serializing_if = "Option::is_none")]
    retire: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retire_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_retire_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_reject_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_age: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_after: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    security_labels: &'a [String],
    stix_observables: bool,
    misp_all_attributes: bool,
}

/// A column by name, or (in a table without a header) by position.
#[derive(Serialize)]
#[serde(untagged)]
enum ColumnView<'a> {
    Name(&'a str),
    Position(u64),
}

/// `[security_labels]`: the instance's name of each TLP level.
#[derive(Serialize)]
struct LabelsView<'a> {
    clear: &'a str,
    white: &'a str,
    green: &'a str,
    amber: &'a str,
    amber_strict: &'a str,
    red: &'a str,
}

#[derive(Serialize)]
struct View<'a> {
    api: ApiView<'a>,
    watch: WatchView<'a>,
    queue: QueueView<'a>,
    delivery: DeliveryView,
    batch: BatchView,
    metrics: MetricsView,
    security_labels: LabelsView<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowlist: Option<&'a super::AllowlistConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    feeds: Vec<FeedView<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources: Vec<SourceView<'a>>,
}

/// A `[[sources]]` table, its preset expanded (the feed rule it implied
/// is among `feeds`).
#[derive(Serialize)]
struct SourceView<'a> {
    name: &'a str,
    kind: &'a str,
    url: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    collection: Option<&'a str>,
    interval: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    header_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_cert_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_key_file: Option<&'a Path>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca_file: Option<&'a Path>,
    max_bytes: u64,
    stale_after: String,
    initial_lookback: String,
    page_size: u32,
    read_timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy: Option<&'a str>,
    /// Shown for what it set; the keys it set are written out beside it.
    #[serde(skip_serializing_if = "Option::is_none")]
    preset: Option<&'a str>,
}

fn source_view(s: &super::SourceConfig) -> SourceView<'_> {
    SourceView {
        name: &s.name,
        kind: s.kind.as_str(),
        url: &s.url,
        collection: s.collection.as_deref(),
        interval: duration(s.interval),
        username: s.username.as_deref(),
        password_file: s.password_file.as_deref(),
        header_file: s.header_file.as_deref(),
        client_cert_file: s.client_cert_file.as_deref(),
        client_key_file: s.client_key_file.as_deref(),
        ca_file: s.ca_file.as_deref(),
        max_bytes: s.max_bytes,
        stale_after: duration(s.stale_after),
        initial_lookback: s.initial_lookback.map_or("all".into(), duration),
        page_size: s.page_size,
        read_timeout: duration(s.read_timeout),
        proxy: s.proxy.as_deref(),
        preset: s.preset.as_deref(),
    }
}

/// The effective config as `check-config` prints it: TOML that reads back
/// to the same config, the secret only named by where it comes from.
pub fn render(cfg: &Config) -> String {
    // A credential in a file is named by its key; any other source is only
    // described in the comments (re-reading the output finds it again).
    let file_of = |kind: CredentialKind| match &cfg.api.credentials {
        Some(c) if c.kind == kind => match &c.source {
            SecretSource::File { path, .. } => Some(path.as_path()),
            _ => None,
        },
        _ => None,
    };
    let w = &cfg.watch;
    let d = &cfg.delivery;
    let view = View {
        api: ApiView {
            base_url: &cfg.api.base_url,
            access_id: &cfg.api.access_id,
            secret_key_file: file_of(CredentialKind::Hmac),
            token_file: file_of(CredentialKind::Token),
            owner: &cfg.api.owner,
            timeout_secs: cfg.api.timeout_secs,
            allow_insecure_http: cfg.api.allow_insecure_http,
            ca_file: cfg.api.ca_file.as_deref(),
            prefer_v3: cfg.api.prefer_v3,
            proxy: cfg.api.proxy.as_ref().map(|p| p.address()),
            types: &cfg.api.types,
        },
        watch: WatchView {
            dir: &w.dir,
            processing_dir: &w.processing_dir,
            done_dir: &w.done_dir,
            failed_dir: &w.failed_dir,
            settle_ms: w.settle.as_millis() as u64,
            rescan_secs: w.rescan.as_secs(),
            done_retention: duration(w.done_retention),
            skip_duplicate_files: w.skip_duplicate_files,
            max_line_bytes: w.max_line_bytes,
            max_decompressed_bytes: w.max_decompressed_bytes,
            max_stalled_reads: w.max_stalled_reads,
        },
        queue: queue_view(&cfg.queue),
        delivery: DeliveryView {
            workers: d.workers,
            rate_per_second: d.rate_per_second,
            burst: d.burst,
            max_attempts: d.max_attempts,
            backoff_base_ms: d.backoff_base.as_millis() as u64,
            backoff_max_secs: d.backoff_max.as_secs(),
            shutdown_grace_secs: d.shutdown_grace.as_secs(),
            probe_min_secs: d.probe_min.as_secs(),
            probe_max_secs: d.probe_max.as_secs(),
            circuit_open_max_secs: d.circuit_open_max.as_secs(),
            mode: d.mode.as_str(),
            attribute_check: d.attribute_check.as_str(),
        },
        batch: batch_view(&cfg.batch),
        metrics: MetricsView {
            listen: cfg.metrics.listen.map(|a| a.to_string()),
            token_file: (cfg.metrics.token_file.as_ref()).map(|p| p.display().to_string()),
        },
        security_labels: labels_view(&cfg.security_labels),
        allowlist: (cfg.allowlist != super::AllowlistConfig::default()).then_some(&cfg.allowlist),
        feeds: cfg.feeds.iter().map(feed_view).collect(),
        sources: cfg.sources.iter().map(source_view).collect(),
    };
    let body =
        toml::to_string_pretty(&view).unwrap_or_else(|e| format!("# cannot render config: {e}\n"));
    format!(
        "# The effective configuration (tc-ingest check-config).\n{}\n{body}",
        sources(cfg)
    )
}

/// Where each `[api]` value comes from, as TOML comments (so the output
/// still parses). Credentials are not read here.
fn sources(cfg: &Config) -> String {
    let api = &cfg.api;
    let credentials = match &api.credentials {
        Some(c) if c.kind == CredentialKind::Hmac => format!("HMAC secret key from {}", c.source),
        Some(c) => format!("API token from {}", c.source),
        None => "none set: `run` and `ping` will refuse to start".into(),
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
    out
}

fn queue_view(q: &super::QueueConfig) -> QueueView<'_> {
    let pg = q.postgres.as_ref();
    QueueView {
        path: q.sqlite_path(),
        url: pg.map(|p| p.url.as_str()),
        password_file: pg.and_then(|p| match &p.password {
            Some(SecretSource::File { path, .. }) => Some(path.as_path()),
            _ => None,
        }),
        sslmode: pg.and_then(|p| p.sslmode.as_deref()),
        ssl_root_cert: pg.and_then(|p| p.ssl_root_cert.as_deref()),
        ssl_client_cert: pg.and_then(|p| p.ssl_client_cert.as_deref()),
        ssl_client_key: pg.and_then(|p| p.ssl_client_key.as_deref()),
        dedup_window: duration(q.dedup_window),
        delivered_retention: duration(q.delivered_retention),
        lease_secs: q.lease.as_secs(),
    }
}

fn batch_view(b: &BatchConfig) -> BatchView {
    BatchView {
        min_indicators: b.min_indicators,
        max_indicators: b.max_indicators,
        max_bytes: b.max_bytes,
        jobs_in_flight: b.jobs_in_flight,
        poll_min_ms: b.poll_min.as_millis() as u64,
        poll_max_ms: b.poll_max.as_millis() as u64,
        timeout_secs: b.timeout.as_secs(),
        attribute_write_type: b.attribute_write_type.as_str(),
        tag_write_type: b.tag_write_type.as_str(),
        security_label_write_type: b.security_label_write_type.as_str(),
    }
}

/// A duration as the config writes it: `7d`, `24h`, `1h 30m`, `1500ms`.
fn duration(d: Duration) -> String {
    const UNITS: [(&str, u128); 5] = [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ];
    let mut left = d.as_millis();
    if left == 0 {
        return "0s".into();
    }
    let mut parts = Vec::new();
    for (name, ms) in UNITS {
        if left >= ms {
            parts.push(format!("{}{name}", left / ms));
            left %= ms;
        }
    }
    parts.join(" ")
}

fn feed_view(f: &FeedRule) -> FeedView<'_> {
    let (l, named) = (&f.lifecycle, f.name.is_some());
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
            .map(|(field, column)| {
                let view = match column.parse::<u64>() {
                    Ok(p) if !f.header => ColumnView::Position(p),
                    _ => ColumnView::Name(column),
                };
                (field.as_str(), view)
            })
            .collect(),
        comment: &f.comments,
        trailing: f.trailing.map(crate::feed::Field::as_str),
        header: f.header,
        header_in_comment: f.header_in_comment,
        delimiter: f.delimiter.map(|d| match d {
            b'\t' => "tab",
            b';' => ";",
            b'|' => "|",
            _ => ",",
        }),
        line_key: f.line_key.as_deref(),
        snapshot: f.snapshot,
        name: f.name.as_deref(),
        retire: named.then_some(l.retire.as_str()),
        retire_tag: named.then_some(&*l.retire_tag),
        max_retire_fraction: named.then_some(l.max_retire_fraction),
        max_reject_fraction: named.then_some(l.max_reject_fraction),
        max_age: l.max_age.map(duration),
        stale_after: l.stale_after.map(duration),
        format: f.format.map(crate::feed::Format::name),
        security_labels: &f.security_labels,
        stix_observables: f.stix_observables,
        misp_all_attributes: f.misp_all_attributes,
    }
}

fn labels_view(names: &TlpNames) -> LabelsView<'_> {
    LabelsView {
        clear: names.name(Tlp::Clear),
        white: names.name(Tlp::White),
        green: names.name(Tlp::Green),
        amber: names.name(Tlp::Amber),
        amber_strict: names.name(Tlp::AmberStrict),
        red: names.name(Tlp::Red),
    }
}

#[cfg(test)]
mod tests {
    use super::duration;
    use std::time::Duration;

    #[test]
    fn durations_render_as_the_config_writes_them() {
        for (secs, text) in [(604_800, "7d"), (86_400, "1d"), (5400, "1h 30m"), (0, "0s")] {
            assert_eq!(duration(Duration::from_secs(secs)), text);
            assert_eq!(
                humantime::parse_duration(text).unwrap(),
                Duration::from_secs(secs)
            );
        }
        assert_eq!(duration(Duration::from_millis(1500)), "1s 500ms");
    }
}
