//! Credentials: the HMAC secret key or an API token, where each may come
//! from ([`SecretSource`]), and a type that never prints them ([`Secret`]).

use std::fmt;
use std::path::{Path, PathBuf};

use super::RawApi;
use super::sources::{ProxyEnv, TcexEnv};

/// The systemd credential holding the HMAC secret key.
pub const SECRET_CREDENTIAL: &str = "tc-api-secret";
/// The systemd credential holding an API token.
pub const TOKEN_CREDENTIAL: &str = "tc-api-token";

/// A secret value (the API secret key, a token, a proxy password). Its
/// `Debug` and `Display` print `[redacted]`, and it is not `Serialize`, so it
/// cannot reach a log, the database or `status`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The value itself, for the request headers only (`api/client.rs`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Where a secret was read from (for `check-config` and messages), never
/// the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file named in the config file under `key` (`api.secret_key_file`,
    /// `api.token_file`).
    File { key: &'static str, path: PathBuf },
    /// Inline in the config file under `key` (`api.secret_key`,
    /// `api.token`): for testing only.
    Inline { key: &'static str },
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>`.
    Credential { name: &'static str, path: PathBuf },
    /// An environment variable (tcex's `TC_API_SECRET_KEY`, `TC_TOKEN`).
    Env { var: &'static str },
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File { key, path } => write!(f, "{key} {}", path.display()),
            SecretSource::Inline { key } => write!(f, "{key} (inline, for testing only)"),
            SecretSource::Credential { name, path } => {
                write!(f, "systemd credential {name} ({})", path.display())
            }
            SecretSource::Env { var } => write!(f, "environment {var}"),
        }
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// ThreatConnect's HMAC signature, `TC <access id>:<signature>`, with
    /// `api.access_id` and this secret key.
    Hmac {
        secret: Secret,
        source: SecretSource,
    },
    /// An API token: `TC-Token <token>`.
    Token { token: Secret, source: SecretSource },
}

impl Credentials {
    pub fn source(&self) -> &SecretSource {
        match self {
            Credentials::Hmac { source, .. } | Credentials::Token { source, .. } => source,
        }
    }

    /// `"hmac"` or `"token"`, as `check-config` prints it.
    pub fn scheme(&self) -> &'static str {
        match self {
            Credentials::Hmac { .. } => "hmac",
            Credentials::Token { .. } => "token",
        }
    }
}

/// What the process environment holds for the config, read once (tests
/// build it by hand).
#[derive(Debug, Default, Clone)]
pub struct SecretEnv {
    /// `TC_API_SECRET_KEY` (tcex's name).
    pub env_secret: Option<Secret>,
    /// `TC_TOKEN` (tcex's name).
    pub env_token: Option<Secret>,
    pub credentials_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
    /// tcex's other variables (`TC_API_PATH`, ...).
    pub tcex: TcexEnv,
    /// `HTTPS_PROXY`, `NO_PROXY` and the like.
    pub proxy: ProxyEnv,
}

impl SecretEnv {
    pub fn from_process() -> Self {
        Self {
            env_secret: super::sources::var("TC_API_SECRET_KEY").map(Secret::new),
            env_token: super::sources::var("TC_TOKEN").map(Secret::new),
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            state_dir: std::env::var_os("STATE_DIRECTORY")
                .map(|s| PathBuf::from(s.to_string_lossy().split(':').next().unwrap_or_default())),
            tcex: TcexEnv::from_process(),
            proxy: ProxyEnv::from_process(),
        }
    }
}

/// The credentials, from the first place that has any:
///
/// 1. the systemd credentials `tc-api-token`, then `tc-api-secret` (present
///    only when the unit's `LoadCredential=` hands them over: the unit says
///    where the unprivileged daemon gets them);
/// 2. the config file: `api.token_file` or `api.token`, or
///    `api.secret_key_file` then `api.secret_key` (a token and a secret
///    both in the file is an error);
/// 3. the environment, under tcex's names: `TC_TOKEN`, then
///    `TC_API_SECRET_KEY` (the token wins, as in tcex).
///
/// # Errors
/// The message, naming `api.secret_key` or the key that failed, when none
/// is usable.
pub(super) fn read_credentials(
    a: &RawApi,
    base: &Path,
    env: &SecretEnv,
) -> Result<Credentials, String> {
    if let Some(dir) = &env.credentials_dir {
        if let Some(r) = credential(dir, TOKEN_CREDENTIAL) {
            return r.map(|(token, source)| Credentials::Token { token, source });
        }
        if let Some(r) = credential(dir, SECRET_CREDENTIAL) {
            return r.map(|(secret, source)| Credentials::Hmac { secret, source });
        }
    }
    let token = in_config(base, &a.token_file, "api.token_file", &a.token, "api.token");
    let secret = in_config(
        base,
        &a.secret_key_file,
        "api.secret_key_file",
        &a.secret_key,
        "api.secret_key",
    );
    match (token, secret) {
        (Some(_), Some(_)) => {
            return Err(
                "api.token: a token (api.token or api.token_file) and a secret key \
                 (api.secret_key or api.secret_key_file) are both set: keep one"
                    .into(),
            );
        }
        (Some(source), None) => {
            return read(source).map(|(token, source)| Credentials::Token { token, source });
        }
        (None, Some(source)) => {
            return read(source).map(|(secret, source)| Credentials::Hmac { secret, source });
        }
        (None, None) => {}
    }
    if let Some(t) = &env.env_token {
        return Ok(Credentials::Token {
            token: t.clone(),
            source: SecretSource::Env { var: "TC_TOKEN" },
        });
    }
    if let Some(s) = &env.env_secret {
        return Ok(Credentials::Hmac {
            secret: s.clone(),
            source: SecretSource::Env {
                var: "TC_API_SECRET_KEY",
            },
        });
    }
    Err(
        "api.secret_key: no credentials: set api.secret_key_file (or api.token_file for an API token), \
         a systemd credential tc-api-secret (or tc-api-token), or the environment \
         TC_API_SECRET_KEY (or TC_TOKEN)"
            .into(),
    )
}

/// A secret as the config file gives it, before it is read.
enum InConfig {
    File { key: &'static str, path: PathBuf },
    Inline { key: &'static str, value: String },
}

/// Which config key gives a secret: the file key before the inline one.
/// Empty inline values count as unset.
fn in_config(
    base: &Path,
    file: &Option<PathBuf>,
    file_key: &'static str,
    inline: &Option<String>,
    inline_key: &'static str,
) -> Option<InConfig> {
    if let Some(p) = file {
        return Some(InConfig::File {
            key: file_key,
            path: super::resolve(base, p.clone()),
        });
    }
    inline
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| InConfig::Inline {
            key: inline_key,
            value: s.to_string(),
        })
}

/// The value of a config source: read from its file, or given inline.
fn read(given: InConfig) -> Result<(Secret, SecretSource), String> {
    match given {
        InConfig::File { key, path } => {
            Ok((from_file(&path, key)?, SecretSource::File { key, path }))
        }
        InConfig::Inline { key, value } => {
            tracing::warn!(
                key,
                "a credential is set inline in the config file: use it for testing only"
            );
            Ok((Secret::new(value), SecretSource::Inline { key }))
        }
    }
}

/// A systemd credential.
fn credential(dir: &Path, name: &'static str) -> Option<Result<(Secret, SecretSource), String>> {
    let path = dir.join(name);
    path.exists().then(|| {
        let secret = from_file(&path, &format!("systemd credential {name}"))?;
        Ok((secret, SecretSource::Credential { name, path }))
    })
}

/// A secret in a file (one trailing newline ignored), named by `what` in messages.
fn from_file(path: &Path, what: &str) -> Result<Secret, String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    let s = s.trim_end_matches(['\n', '\r']);
    if s.is_empty() {
        return Err(format!("{what}: {} is empty", path.display()));
    }
    Ok(Secret::new(s))
}
