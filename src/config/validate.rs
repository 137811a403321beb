//! [`RawConfig::validate`]: each section checked by its own function, which
//! pushes every problem it finds, so one run reports them all.

use std::path::{Path, PathBuf};

use super::{
    AllowlistConfig, Config, ConfigError, MetricsConfig, RawConfig, RawMetrics, SecretEnv, resolve,
};

impl RawConfig {
    /// # Errors
    /// Every problem found, each naming its key.
    pub fn validate(self, base: &Path, env: &SecretEnv) -> Result<Config, ConfigError> {
        let mut errors = Vec::new();
        let api = super::api::validate(self.api, base, env, &mut errors);
        let state = env
            .state_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/var/lib/tc-ingest"));
        let watch = super::watch::validate(self.watch, base, &state, &mut errors);
        let queue = super::queue::validate(self.queue, base, &state, env, &mut errors);
        let delivery = super::delivery::validate(self.delivery, &mut errors);
        let batch = super::delivery::validate_batch(self.batch, &mut errors);
        let metrics = metrics(self.metrics, base, &mut errors);
        let feeds = super::feeds::validate(self.feeds, &mut errors);
        let security_labels = tlp_names(self.security_labels, &mut errors);
        let allowlist = AllowlistConfig {
            builtin: self.allowlist.builtin.unwrap_or(false),
            misp_warninglists: (self.allowlist.misp_warninglists.into_iter())
                .map(|p| resolve(base, p))
                .collect(),
            values: self.allowlist.values,
            cidrs: self.allowlist.cidrs,
            domains: self.allowlist.domains,
            regex: self.allowlist.regex,
        };
        let sources = super::pull::validate(
            self.sources,
            base,
            env,
            api.allow_insecure_http,
            &mut errors,
        );
        for (i, rule) in feeds.iter().enumerate() {
            if let Some(n) = &rule.name
                && sources.iter().any(|s| &s.name == n)
                && rule.dir.as_deref() != Some(Path::new(n))
            {
                errors.push(format!(
                    "feeds[{i}].name: {n:?} names a source, and this rule does not read its directory"
                ));
            }
        }
        if !errors.is_empty() {
            return Err(ConfigError(errors));
        }
        Ok(Config {
            api,
            watch,
            queue,
            delivery,
            batch,
            metrics,
            security_labels,
            feeds,
            sources,
            allowlist,
        })
    }
}

fn metrics(m: RawMetrics, base: &Path, errors: &mut Vec<String>) -> MetricsConfig {
    let listen: Option<std::net::SocketAddr> = match m.listen.as_deref() {
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
    };
    if let Some(a) = listen
        && !a.ip().is_loopback()
        && m.token_file.is_none()
    {
        errors.push(format!(
            "metrics.listen: {a} is not a loopback address, and the status and metrics would be \
             open to the network: set metrics.token_file (a file holding a bearer token), or \
             listen on 127.0.0.1"
        ));
    }
    MetricsConfig {
        listen,
        token_file: m.token_file.map(|p| resolve(base, p)),
    }
}

/// `[security_labels]`: a name for each TLP level, the documented one by
/// default.
fn tlp_names(
    raw: super::raw::RawSecurityLabels,
    errors: &mut Vec<String>,
) -> crate::indicator::TlpNames {
    let mut names = crate::indicator::TlpNames::default();
    for (t, key, given) in [
        (crate::indicator::Tlp::Clear, "clear", raw.clear),
        (crate::indicator::Tlp::White, "white", raw.white),
        (crate::indicator::Tlp::Green, "green", raw.green),
        (crate::indicator::Tlp::Amber, "amber", raw.amber),
        (
            crate::indicator::Tlp::AmberStrict,
            "amber_strict",
            raw.amber_strict,
        ),
        (crate::indicator::Tlp::Red, "red", raw.red),
    ] {
        let Some(name) = given else { continue };
        match crate::indicator::clean_tags(std::iter::once(&name)) {
            Ok(clean) if clean.len() == 1 => names.set(t, clean[0].clone()),
            Ok(_) => errors.push(format!("security_labels.{key}: empty")),
            Err(e) => errors.push(format!("security_labels.{key}: {e}")),
        }
    }
    names
}
