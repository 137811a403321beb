//! The proxy that requests to `api.base_url` go through, decided once:
//! `api.proxy`, else tcex's `TC_PROXY_HOST` (with `TC_PROXY_PORT`,
//! `TC_PROXY_USERNAME`, `TC_PROXY_PASSWORD`), else the standard
//! `HTTPS_PROXY` (for an https base URL) or `HTTP_PROXY` (for http), else
//! `ALL_PROXY`. `NO_PROXY` applies to each, with curl's rules (hyper-util's
//! matcher, the one reqwest uses). Deciding here, rather than in reqwest,
//! lets `check-config`, connection errors and `ping` name the proxy.

use std::fmt;

use hyper_util::client::proxy::matcher::Matcher;

use super::sources::Source;
use super::{Secret, SecretEnv};

/// A proxy for the API.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiProxy {
    /// The proxy's URL without credentials (`http://proxy.example:3128/`).
    pub url: url::Url,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub source: Source,
}

impl ApiProxy {
    /// `http://host:port` without credentials or trailing slash.
    pub fn address(&self) -> String {
        self.url.as_str().trim_end_matches('/').to_string()
    }
}

impl fmt::Debug for ApiProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiProxy")
            .field("url", &self.address())
            .field("username", &self.username)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// `proxy http://host:port (api.proxy)`.
impl fmt::Display for ApiProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxy {} ({})", self.address(), self.source.name())
    }
}

/// The proxy for `base_url`, or none; problems go to `errors`, naming the
/// key or variable.
pub(super) fn resolve(
    config: Option<String>,
    base_url: &str,
    env: &SecretEnv,
    errors: &mut Vec<String>,
) -> Option<ApiProxy> {
    let https = base_url.starts_with("https:");
    let (raw, source) = if let Some(p) = config.filter(|p| !p.is_empty()) {
        (p, Source::Config("api.proxy"))
    } else if let Some(host) = &env.tcex.proxy_host {
        let with_port = match &env.tcex.proxy_port {
            Some(port) => format!("{host}:{port}"),
            None => host.clone(),
        };
        (with_port, Source::Env("TC_PROXY_HOST"))
    } else {
        let standard = if https {
            env.proxy.https.as_ref()
        } else {
            env.proxy.http.as_ref()
        };
        let (var, value) = standard.or(env.proxy.all.as_ref())?;
        (value.clone(), Source::Env(var))
    };
    let named = source.name();
    let with_scheme = if raw.contains("://") {
        raw.clone()
    } else {
        format!("http://{raw}")
    };
    let mut url = match url::Url::parse(&with_scheme) {
        Ok(u) => u,
        Err(e) => {
            errors.push(format!(
                "{named}: {raw:?} is not a proxy URL such as \"http://proxy.example:3128\" ({e})"
            ));
            return None;
        }
    };
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        errors.push(format!(
            "{named}: {raw:?}: only http:// and https:// proxies with a host are supported"
        ));
        return None;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let mut username = Some(decode(url.username())).filter(|u| !u.is_empty());
    let mut password = url.password().map(|p| Secret::new(decode(p)));
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if source == Source::Env("TC_PROXY_HOST") {
        username = username.or_else(|| env.tcex.proxy_username.clone());
        password = password.or_else(|| env.tcex.proxy_password.clone());
    }
    if let Some(no) = &env.proxy.no
        && let Ok(target) = base_url.parse::<http::Uri>()
        && Matcher::builder()
            .all(url.as_str())
            .no(no)
            .build()
            .intercept(&target)
            .is_none()
    {
        // NO_PROXY names the API's host: it is reached directly.
        return None;
    }
    Some(ApiProxy {
        url,
        username,
        password,
        source,
    })
}
