//! `ping`: one signed `GET /v2/owners`, the owners it lists beside those
//! the config writes to, and on failure what to check.

use std::sync::Arc;

use super::load_config;
use crate::api::client::Owner;
use crate::api::{Client, Clock, Outcome};
use crate::cli::ConfigArg;
use crate::config::{Config, CredentialKind};
use crate::exit;
use crate::names::ErrorClass;

pub(super) async fn ping(arg: &ConfigArg) -> anyhow::Result<u8> {
    let cfg = load_config(arg)?;
    let client = Client::new(&cfg.api, Arc::new(Clock::default()))?;
    match client.owners().await {
        Ok(owners) => Ok(report_owners(&cfg, &owners)),
        Err(outcome) => {
            explain_failure(&cfg, &outcome);
            Ok(exit::ERROR)
        }
    }
}

/// Prints who we are and the owners visible, marking those the config
/// writes to; `PARTIAL` when one of those is missing.
fn report_owners(cfg: &Config, owners: &[Owner]) -> u8 {
    // Every owner the config writes to: api.owner, then each feed rule's.
    let mut wanted: Vec<(String, String)> = vec![("api.owner".into(), cfg.api.owner.clone())];
    for (i, rule) in cfg.feeds.iter().enumerate() {
        if let Some(o) = &rule.owner {
            wanted.push((format!("feeds[{i}].owner"), o.clone()));
        }
    }
    let who = match &cfg.api.credentials {
        Some(c) if c.kind == CredentialKind::Token => {
            format!("the API token from {}", c.source)
        }
        _ => format!("access id {}", cfg.api.access_id),
    };
    let via = cfg
        .api
        .proxy
        .as_ref()
        .map(|p| format!(" through the {p}"))
        .unwrap_or_default();
    println!("connected to {}{via} with {who}", cfg.api.base_url);
    println!("owners visible to this API user:");
    for o in owners {
        let keys: Vec<&str> = wanted
            .iter()
            .filter(|(_, name)| *name == o.name)
            .map(|(k, _)| k.as_str())
            .collect();
        let mark = if keys.is_empty() {
            String::new()
        } else {
            format!("  ({})", keys.join(", "))
        };
        println!("  {:>6}  {:<14} {}{mark}", o.id, o.kind, o.name);
    }
    let mut code = exit::OK;
    for (key, name) in &wanted {
        if !owners.iter().any(|o| &o.name == name) {
            println!(
                "warning: {key} {name:?} is not among them: its indicators would be held \
                 (grant the API user access to it, or fix the name)"
            );
            code = exit::PARTIAL;
        }
    }
    code
}

/// What failed, and what to check: the proxy, the base path, the clock.
fn explain_failure(cfg: &Config, outcome: &Outcome) {
    eprintln!("ping failed: {} ({})", outcome.class(), outcome.message());
    if let Some(advice) = outcome.advice() {
        eprintln!("what to check: {advice}");
    }
    if let (ErrorClass::Transport, Some(proxy)) = (outcome.class(), &cfg.api.proxy) {
        eprintln!(
            "the request went through the {proxy}: check that it runs, accepts us, and \
             allows CONNECT to {}; or change {} (NO_PROXY={} reaches it directly)",
            host_port(&cfg.api.base_url),
            proxy.source.name(),
            url::Url::parse(&cfg.api.base_url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .unwrap_or_default(),
        );
    }
    if outcome.class() == ErrorClass::NotFound {
        let base = cfg.api.base_url.trim_end_matches('/');
        if base.ends_with("/api") {
            eprintln!(
                "hint: {base}/v2/owners was not found: public cloud (api.threatconnect.com) \
                 takes api.base_url without /api"
            );
        } else {
            eprintln!(
                "hint: {base}/v2/owners was not found: sandbox, dedicated and on-premise \
                 instances need /api at the end of api.base_url (\"{base}/api\")"
            );
        }
    }
    if let Some(t) = outcome.server_date() {
        let skew = t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
            - crate::api::sign::unix_now();
        eprintln!("the server's clock is {skew:+} s from ours");
    }
}

/// `host:port` of a URL (the port defaulted by its scheme).
fn host_port(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| url.to_string())
}
