//! `[[sources]]`: what the daemon fetches itself (TAXII 2.1 collections,
//! HTTP(S) documents, MISP feeds) into `watch.dir/<name>/`. A source may
//! name a preset (the catalog of public feeds): it sets the kind, the URL
//! and a polite interval, and the feed rule that reads what is fetched
//! (`dir = "<name>"`, the preset's keys) unless one is written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::{SecretEnv, duration, resolve};

crate::names::named_enum! {
    /// What a source fetches.
    pub enum SourceKind ("source kind") {
        Taxii => "taxii",
        Http => "http",
        Misp => "misp",
    }
}

/// One validated source.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    /// taxii: the API root; http: the document; misp: the feed's base.
    pub url: String,
    /// taxii: the collection id.
    pub collection: Option<String>,
    #[serde(with = "super::humantime_serde_compat")]
    pub interval: Duration,
    pub username: Option<String>,
    /// The basic-auth password's file (or systemd credential).
    pub password_file: Option<PathBuf>,
    /// One `Name: value` line sent with every request.
    pub header_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// Per fetched document (a TAXII page, an HTTP document, a MISP event).
    pub max_bytes: u64,
    #[serde(with = "super::humantime_serde_compat")]
    pub stale_after: Duration,
    /// taxii, first poll: how far back; `None` for everything.
    #[serde(skip)]
    pub initial_lookback: Option<Duration>,
    pub page_size: u32,
    /// Longest wait for the next bytes of an answer.
    #[serde(with = "super::humantime_serde_compat")]
    pub read_timeout: Duration,
    /// An HTTP(S) proxy to fetch through (none by default).
    pub proxy: Option<String>,
    pub preset: Option<String>,
}

/// Characters a source name may hold (it is also a directory name).
pub(super) fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Every preset source's keys (see [`expand`]), on the TOML before it is
/// read.
pub(super) fn expand_presets(table: &mut toml::Table, errors: &mut Vec<String>) {
    let Some(toml::Value::Array(sources)) = table.get_mut("sources") else {
        return;
    };
    let mut sources = std::mem::take(sources);
    let mut feeds = match table.remove("feeds") {
        Some(toml::Value::Array(f)) => f,
        Some(other) => {
            // Not an array: reported when read; left as it is.
            table.insert("feeds".into(), other);
            table.insert("sources".into(), toml::Value::Array(sources));
            return;
        }
        None => Vec::new(),
    };
    let before = feeds.len();
    expand(&mut sources, &mut feeds, errors);
    for rule in &mut feeds[before..] {
        if let toml::Value::Table(t) = rule {
            let _ = super::presets::expand(t);
        }
    }
    if !feeds.is_empty() {
        table.insert("feeds".into(), toml::Value::Array(feeds));
    }
    table.insert("sources".into(), toml::Value::Array(sources));
}

/// The keys of a feed rule a source may carry: they go to the rule that
/// reads its directory.
const RULE_KEYS: [&str; 6] = [
    "snapshot",
    "retire",
    "retire_tag",
    "max_retire_fraction",
    "max_reject_fraction",
    "max_age",
];

/// A preset source's keys: kind, URL, interval (those written win). A
/// source with a preset or lifecycle keys gets the feed rule reading its
/// directory when none is written, named as the source; its lifecycle
/// keys go to that rule.
fn expand(sources: &mut [toml::Value], feeds: &mut Vec<toml::Value>, errors: &mut Vec<String>) {
    for (i, source) in sources.iter_mut().enumerate() {
        let toml::Value::Table(t) = source else {
            continue;
        };
        let moved: toml::Table = RULE_KEYS
            .iter()
            .filter_map(|k| t.remove(*k).map(|v| ((*k).to_string(), v)))
            .collect();
        let preset = match t.get("preset").and_then(toml::Value::as_str) {
            None => None,
            Some(name) => match super::presets::find(name) {
                Some(p) => Some(p),
                None => {
                    let known: Vec<&str> = super::presets::PRESETS.iter().map(|p| p.name).collect();
                    errors.push(format!(
                        "sources[{i}].preset: unknown preset {name:?}; known: {}",
                        known.join(", ")
                    ));
                    continue;
                }
            },
        };
        if let Some(preset) = preset {
            t.entry("kind").or_insert_with(|| "http".into());
            t.entry("interval")
                .or_insert_with(|| preset.interval.into());
            if !preset.fetch.is_empty() {
                t.entry("url").or_insert_with(|| preset.fetch.into());
            }
        }
        if preset.is_none() && moved.is_empty() {
            continue;
        }
        let Some(dir) = t.get("name").and_then(toml::Value::as_str) else {
            continue;
        };
        let ruled = feeds.iter_mut().find_map(|f| match f {
            toml::Value::Table(f)
                if f.get("dir")
                    .and_then(toml::Value::as_str)
                    .is_some_and(|d| d.trim_matches('/') == dir) =>
            {
                Some(f)
            }
            _ => None,
        });
        let rule = match ruled {
            Some(r) => r,
            None => {
                let mut rule = toml::Table::new();
                rule.insert("dir".into(), dir.into());
                if let Some(p) = preset {
                    rule.insert("preset".into(), p.name.into());
                }
                feeds.push(toml::Value::Table(rule));
                match feeds.last_mut() {
                    Some(toml::Value::Table(r)) => r,
                    _ => unreachable!("just pushed a table"),
                }
            }
        };
        rule.entry("name").or_insert_with(|| dir.into());
        for (k, v) in moved {
            if rule.contains_key(&k) {
                errors.push(format!(
                    "sources[{i}].{k}: also set on the feed rule of its directory {dir:?}: set it in one place"
                ));
            } else {
                rule.insert(k, v);
            }
        }
    }
}

/// Validates `[[sources]]`.
pub(super) fn validate(
    raw: Vec<super::RawSource>,
    base: &Path,
    env: &SecretEnv,
    allow_insecure_http: bool,
    errors: &mut Vec<String>,
) -> Vec<SourceConfig> {
    let mut out: Vec<SourceConfig> = Vec::new();
    for (i, s) in raw.into_iter().enumerate() {
        let key = format!("sources[{i}]");
        let Some(c) = source(&key, s, base, env, allow_insecure_http, errors) else {
            continue;
        };
        if out.iter().any(|o| o.name == c.name) {
            errors.push(format!(
                "{key}.name: {:?} is used by another source",
                c.name
            ));
            continue;
        }
        out.push(c);
    }
    out
}

fn source(
    key: &str,
    s: super::RawSource,
    base: &Path,
    env: &SecretEnv,
    allow_insecure_http: bool,
    errors: &mut Vec<String>,
) -> Option<SourceConfig> {
    let before = errors.len();
    let name = s.name.clone().unwrap_or_default();
    if !name_ok(&name) {
        errors.push(format!(
            "{key}.name: {name:?} must be 1 to 64 of a-z, 0-9 and - (it names the source's directory)"
        ));
    }
    let kind = kind(key, s.kind.as_deref(), errors);
    let t = timing(key, &s, kind, errors);
    let url = s.url.unwrap_or_default();
    check_url(key, &url, allow_insecure_http, errors);
    check_proxy(key, s.proxy.as_deref(), errors);
    match (kind, &s.collection) {
        (SourceKind::Taxii, None) => errors.push(format!(
            "{key}.collection: missing (the collection's id; `tc-ingest sources discover URL` lists them)"
        )),
        (SourceKind::Http | SourceKind::Misp, Some(_)) => {
            errors.push(format!("{key}.collection: only for kind = \"taxii\""));
        }
        _ => {}
    }
    let page_size = match s.page_size {
        None => 1000,
        Some(n) if (1..=10_000).contains(&n) => u32::try_from(n).unwrap_or(1000),
        Some(n) => {
            errors.push(format!("{key}.page_size: {n} is not between 1 and 10000"));
            1000
        }
    };
    let max_bytes = size(key, s.max_bytes.clone(), errors);
    let file = |p: Option<PathBuf>| p.map(|p| resolve(base, p));
    // Secrets only from files: the config's, or a systemd credential
    // `tc-source-<name>-password` / `-header`.
    let credential = |what: &str| {
        env.credentials_dir
            .as_ref()
            .map(|d| d.join(format!("tc-source-{name}-{what}")))
            .filter(|p| p.is_file())
    };
    let password_file = file(s.password_file).or_else(|| credential("password"));
    let header_file = file(s.header_file).or_else(|| credential("header"));
    if s.username.is_some() != password_file.is_some() {
        errors.push(format!(
            "{key}: username and password_file go together (or the systemd credential tc-source-{name}-password)"
        ));
    }
    let client_cert_file = file(s.client_cert_file);
    let client_key_file = file(s.client_key_file);
    if client_cert_file.is_some() != client_key_file.is_some() {
        errors.push(format!(
            "{key}: client_cert_file and client_key_file go together"
        ));
    }
    (errors.len() == before).then(|| SourceConfig {
        name,
        kind,
        url,
        collection: s.collection,
        interval: t.interval,
        username: s.username,
        password_file,
        header_file,
        client_cert_file,
        client_key_file,
        ca_file: file(s.ca_file),
        max_bytes,
        stale_after: t.stale_after,
        initial_lookback: t.initial_lookback,
        page_size,
        read_timeout: t.read_timeout,
        proxy: s.proxy,
        preset: s.preset,
    })
}

fn kind(key: &str, kind: Option<&str>, errors: &mut Vec<String>) -> SourceKind {
    match kind.map(str::parse::<SourceKind>) {
        Some(Ok(k)) => k,
        Some(Err(e)) => {
            errors.push(format!("{key}.kind: {e}"));
            SourceKind::Http
        }
        None => {
            errors.push(format!("{key}.kind: missing (taxii, http or misp)"));
            SourceKind::Http
        }
    }
}

fn check_proxy(key: &str, proxy: Option<&str>, errors: &mut Vec<String>) {
    let Some(p) = proxy else { return };
    match url::Url::parse(p) {
        Ok(u) if !u.username().is_empty() || u.password().is_some() => errors.push(format!(
            "{key}.proxy: credentials in the proxy URL are refused (they would be shown and logged)"
        )),
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => errors.push(format!(
            "{key}.proxy: {p:?} is not an http:// or https:// URL"
        )),
    }
}

/// A source's durations.
struct Timing {
    interval: Duration,
    stale_after: Duration,
    initial_lookback: Option<Duration>,
    read_timeout: Duration,
}

fn timing(key: &str, s: &super::RawSource, kind: SourceKind, errors: &mut Vec<String>) -> Timing {
    let default_interval = if kind == SourceKind::Taxii {
        "15m"
    } else {
        "1h"
    };
    let interval = duration(
        errors,
        &format!("{key}.interval"),
        &s.interval,
        default_interval,
    );
    if interval < Duration::from_secs(1) {
        errors.push(format!("{key}.interval: must be at least 1s"));
    }
    let stale_after = match &s.stale_after {
        Some(_) => duration(errors, &format!("{key}.stale_after"), &s.stale_after, "0s"),
        None => interval.saturating_mul(3),
    };
    let initial_lookback = match s.initial_lookback.as_deref() {
        Some("all") => None,
        _ => Some(duration(
            errors,
            &format!("{key}.initial_lookback"),
            &s.initial_lookback,
            "30d",
        )),
    };
    let read_timeout = duration(
        errors,
        &format!("{key}.read_timeout"),
        &s.read_timeout,
        "30s",
    );
    if read_timeout < Duration::from_secs(1) {
        errors.push(format!("{key}.read_timeout: must be at least 1s"));
    }
    Timing {
        interval,
        stale_after,
        initial_lookback,
        read_timeout,
    }
}

/// `max_bytes`: bytes, or text such as `"1GB"`; default 1 GiB.
fn size(key: &str, v: Option<super::RawSize>, errors: &mut Vec<String>) -> u64 {
    let n = match v {
        None => 1 << 30,
        Some(super::RawSize::Bytes(n)) => n,
        Some(super::RawSize::Text(t)) => match t.parse::<bytesize::ByteSize>() {
            Ok(b) => b.as_u64(),
            Err(e) => {
                errors.push(format!(
                    "{key}.max_bytes: {t:?} is not a size such as \"1GB\" ({e})"
                ));
                return 0;
            }
        },
    };
    if n == 0 {
        errors.push(format!("{key}.max_bytes: must be more than 0"));
    }
    n
}

/// An https URL, or plain http to loopback (or with the API's insecure
/// switch), as for the API.
fn check_url(key: &str, url: &str, allow_insecure_http: bool, errors: &mut Vec<String>) {
    match url::Url::parse(url) {
        Err(e) if url.is_empty() => errors.push(format!("{key}.url: missing ({e})")),
        Err(e) => errors.push(format!("{key}.url: {url:?} is not a URL ({e})")),
        Ok(u) if !u.username().is_empty() || u.password().is_some() => errors.push(format!(
            "{key}.url: credentials in the URL are refused; use username and password_file"
        )),
        Ok(u) => match u.scheme() {
            "https" => {}
            "http" if super::api::is_loopback(&u) || allow_insecure_http => {}
            "http" => errors.push(format!(
                "{key}.url: {url:?} is plain http; use https, or set api.allow_insecure_http = true"
            )),
            s => errors.push(format!("{key}.url: scheme {s:?} is not http or https")),
        },
    }
}
