//! The `[api]` section: where ThreatConnect is, who we are, the secret.

use std::path::Path;

use super::secret::SecretSource;
use super::{ApiConfig, RawApi, SecretEnv, resolve};

/// Validates `[api]`, pushing its problems to `errors`.
pub(super) fn validate(
    a: RawApi,
    base: &Path,
    env: &SecretEnv,
    errors: &mut Vec<String>,
) -> ApiConfig {
    let base_url = a.base_url.clone().unwrap_or_default();
    check_base_url(&base_url, a.allow_insecure_http, errors);
    let access_id = a.access_id.clone().unwrap_or_default();
    if access_id.trim().is_empty() {
        errors.push("api.access_id: missing".into());
    }
    // Only where the key comes from: it is read when it is used.
    let secret = SecretSource::find(&a, base, env);
    let owner = a.owner.clone().unwrap_or_default();
    if owner.trim().is_empty() {
        errors.push("api.owner: missing (the default owner indicators are created in)".into());
    }
    let timeout_secs = a.timeout_secs.unwrap_or(30);
    if timeout_secs == 0 {
        errors.push("api.timeout_secs: must be at least 1".into());
    }
    let ca_file = a.ca_file.map(|p| resolve(base, p));
    if let Some(ca) = &ca_file
        && !ca.is_file()
    {
        errors.push(format!(
            "api.ca_file: {} is not a readable file",
            ca.display()
        ));
    }
    ApiConfig {
        base_url,
        access_id,
        secret,
        owner,
        timeout_secs,
        allow_insecure_http: a.allow_insecure_http,
        ca_file,
        types: a.types,
    }
}

/// `api.base_url`: an https URL (plain http only to loopback, or when
/// allowed), without `/v2`.
fn check_base_url(base_url: &str, allow_insecure_http: bool, errors: &mut Vec<String>) {
    if base_url.is_empty() {
        errors.push("api.base_url: missing (e.g. \"https://api.threatconnect.com\")".into());
        return;
    }
    match url::Url::parse(base_url) {
        Err(e) => errors.push(format!("api.base_url: {base_url:?} is not a URL ({e})")),
        Ok(u) => match u.scheme() {
            "https" => {}
            "http" => {
                if !is_loopback(&u) && !allow_insecure_http {
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
        errors.push("api.base_url: must not include /v2 (it is added to every path)".into());
    }
}

fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}
