//! The `[api]` section: where ThreatConnect is, who we are, the
//! credentials, the proxy. `base_url`, `access_id`, `owner`, the credentials
//! and the proxy may also come from the environment under tcex's names; the
//! config file wins.

use std::path::Path;

use super::secret::{CredentialKind, find_credentials};
use super::sources::pick;
use super::{ApiConfig, ApiSources, RawApi, SecretEnv, resolve};

/// Validates `[api]`, pushing its problems to `errors`.
pub(super) fn validate(
    a: RawApi,
    base: &Path,
    env: &SecretEnv,
    errors: &mut Vec<String>,
) -> ApiConfig {
    let (base_url, base_url_source) = pick(
        a.base_url.clone(),
        "api.base_url",
        env.tcex.api_path.as_ref(),
        "TC_API_PATH",
    );
    check_base_url(&base_url, a.allow_insecure_http, errors);
    let (access_id, access_id_source) = pick(
        a.access_id.clone(),
        "api.access_id",
        env.tcex.access_id.as_ref(),
        "TC_API_ACCESS_ID",
    );
    // Only where the credential is: it is read where it is used.
    let credentials = find_credentials(&a, base, env).unwrap_or_else(|e| {
        errors.push(e);
        None
    });
    let token = credentials
        .as_ref()
        .is_some_and(|c| c.kind == CredentialKind::Token);
    if !token && access_id.trim().is_empty() {
        errors.push(
            "api.access_id: missing (or TC_API_ACCESS_ID; not needed with an API token)".into(),
        );
    }
    let (owner, owner_source) = pick(
        a.owner.clone(),
        "api.owner",
        env.tcex.default_org.as_ref(),
        "API_DEFAULT_ORG",
    );
    if owner.trim().is_empty() {
        errors.push(
            "api.owner: missing (the default owner indicators are created in; or API_DEFAULT_ORG)"
                .into(),
        );
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
    let proxy = super::proxy::resolve(a.proxy, &base_url, env, errors);
    ApiConfig {
        base_url,
        access_id,
        credentials,
        owner,
        timeout_secs,
        allow_insecure_http: a.allow_insecure_http,
        ca_file,
        prefer_v3: a.prefer_v3,
        proxy,
        types: a.types,
        sources: ApiSources {
            base_url: base_url_source,
            access_id: access_id_source,
            owner: owner_source,
        },
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

pub(super) fn is_loopback(u: &url::Url) -> bool {
    match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}
