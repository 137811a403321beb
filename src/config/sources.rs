//! Values of `[api]` that may also come from the environment, under the
//! names ThreatConnect's SDK (tcex) uses, or the standard proxy variables.
//! The config file wins; [`Source`] records where each value came from, for
//! `check-config`.

use std::fmt;

use super::Secret;

/// Where a value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config file, under this key.
    Config(&'static str),
    /// This environment variable.
    Env(&'static str),
    /// Neither: the default applies (or the value is missing).
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Config(key) => write!(f, "config file ({key})"),
            Source::Env(var) => write!(f, "environment {var}"),
            Source::Default => f.write_str("default"),
        }
    }
}

impl Source {
    /// The key or variable alone (`api.proxy`, `HTTPS_PROXY`), for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Source::Config(key) => key,
            Source::Env(var) => var,
            Source::Default => "default",
        }
    }
}

/// An environment variable, unset when empty.
pub(super) fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|s| !s.is_empty())
}

/// tcex's variables, read once (the secrets `TC_API_SECRET_KEY` and
/// `TC_TOKEN` are in [`SecretEnv`](super::SecretEnv) itself).
#[derive(Debug, Default, Clone)]
pub struct TcexEnv {
    /// `TC_API_PATH`: the base URL (`api.base_url`).
    pub api_path: Option<String>,
    /// `TC_API_ACCESS_ID` (`api.access_id`).
    pub access_id: Option<String>,
    /// `API_DEFAULT_ORG`: the default owner (`api.owner`).
    pub default_org: Option<String>,
    /// `TC_PROXY_HOST`, `TC_PROXY_PORT`, `TC_PROXY_USERNAME`,
    /// `TC_PROXY_PASSWORD`: a proxy (`api.proxy`).
    pub proxy_host: Option<String>,
    pub proxy_port: Option<String>,
    pub proxy_username: Option<String>,
    pub proxy_password: Option<Secret>,
}

impl TcexEnv {
    pub fn from_process() -> Self {
        Self {
            api_path: var("TC_API_PATH"),
            access_id: var("TC_API_ACCESS_ID"),
            default_org: var("API_DEFAULT_ORG"),
            proxy_host: var("TC_PROXY_HOST"),
            proxy_port: var("TC_PROXY_PORT"),
            proxy_username: var("TC_PROXY_USERNAME"),
            proxy_password: var("TC_PROXY_PASSWORD").map(Secret::new),
        }
    }
}

/// The standard proxy variables as curl reads them, read once.
#[derive(Debug, Default, Clone)]
pub struct ProxyEnv {
    /// `HTTPS_PROXY` or `https_proxy`, and which one it was.
    pub https: Option<(&'static str, String)>,
    /// `HTTP_PROXY` or `http_proxy`.
    pub http: Option<(&'static str, String)>,
    /// `ALL_PROXY` or `all_proxy`.
    pub all: Option<(&'static str, String)>,
    /// `NO_PROXY` or `no_proxy`: hosts, domains (and their subdomains), IP
    /// addresses and networks reached directly; `*` for all.
    pub no: Option<String>,
}

impl ProxyEnv {
    pub fn from_process() -> Self {
        let first =
            |names: [&'static str; 2]| names.into_iter().find_map(|n| var(n).map(|v| (n, v)));
        Self {
            https: first(["HTTPS_PROXY", "https_proxy"]),
            http: first(["HTTP_PROXY", "http_proxy"]),
            all: first(["ALL_PROXY", "all_proxy"]),
            no: first(["NO_PROXY", "no_proxy"]).map(|(_, v)| v),
        }
    }
}

/// The config file's value at `key`, else the environment's at `var`.
pub(super) fn pick(
    config: Option<String>,
    key: &'static str,
    env: Option<&String>,
    var: &'static str,
) -> (String, Source) {
    match (config.filter(|s| !s.is_empty()), env) {
        (Some(v), _) => (v, Source::Config(key)),
        (None, Some(v)) => (v.clone(), Source::Env(var)),
        (None, None) => (String::new(), Source::Default),
    }
}
