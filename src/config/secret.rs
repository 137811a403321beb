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

/// Where a secret comes from (named by `check-config` and messages; its
/// `Display` never shows the secret). Inline and environment values are
/// held, as [`Secret`]s, from the moment the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file named in the config file under `key` (`api.secret_key_file`,
    /// `api.token_file`).
    File { key: &'static str, path: PathBuf },
    /// Inline in the config file under `key` (`api.secret_key`,
    /// `api.token`): for testing only.
    Inline { key: &'static str, value: Secret },
    /// A systemd credential: `$CREDENTIALS_DIRECTORY/<name>`.
    Credential { name: &'static str, path: PathBuf },
    /// An environment variable (tcex's `TC_API_SECRET_KEY`, `TC_TOKEN`).
    Env { var: &'static str, value: Secret },
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File { key, path } => write!(f, "{key} {}", path.display()),
            SecretSource::Inline { key, .. } => write!(f, "{key} (inline, for testing only)"),
            SecretSource::Credential { name, path } => {
                write!(f, "systemd credential {name} ({})", path.display())
            }
            SecretSource::Env { var, .. } => write!(f, "environment {var}"),
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

/// Which credential the config names and where it is: decided when the
/// config is read, read only by [`CredentialSource::load`], which only
/// `run`, `ping` and a reload call (queue commands and `check-config` work
/// without it). A new source is one more [`SecretSource`] variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    pub kind: CredentialKind,
    pub source: SecretSource,
}

/// HMAC secret key or API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    Hmac,
    Token,
}

impl CredentialSource {
    /// `hmac` or `token`.
    pub fn scheme(&self) -> &'static str {
        match self.kind {
            CredentialKind::Hmac => "hmac",
            CredentialKind::Token => "token",
        }
    }

    /// Reads the credential. The inline one is warned about here, where it
    /// is used.
    ///
    /// # Errors
    /// A message naming the source when it cannot be read or is empty.
    pub fn load(&self) -> Result<Credentials, String> {
        let secret = match &self.source {
            SecretSource::File { key, path } => from_file(path, key)?,
            SecretSource::Credential { name, path } => {
                from_file(path, &format!("systemd credential {name}"))?
            }
            SecretSource::Inline { key, value } => {
                tracing::warn!(
                    key,
                    "a credential is set inline in the config file: use it for testing only"
                );
                value.clone()
            }
            SecretSource::Env { value, .. } => value.clone(),
        };
        let source = self.source.clone();
        Ok(match self.kind {
            CredentialKind::Hmac => Credentials::Hmac { secret, source },
            CredentialKind::Token => Credentials::Token {
                token: secret,
                source,
            },
        })
    }
}

/// The message when no credential is set.
pub const NO_CREDENTIALS: &str = "api.secret_key: no credentials: set api.secret_key_file (or \
     api.token_file for an API token), a systemd credential tc-api-secret (or tc-api-token), or \
     the environment TC_API_SECRET_KEY (or TC_TOKEN)";

/// Where the credentials come from, in order: the systemd credentials
/// (`tc-api-token`, then `tc-api-secret`: the unit decides what the daemon
/// gets), then the config file (a token, or a secret key: a file before an
/// inline value; both a token and a key is an error), then the environment
/// (`TC_TOKEN`, then `TC_API_SECRET_KEY`, as tcex). `None`: none is set.
/// Nothing is read here.
///
/// # Errors
/// When the config file sets both a token and a secret key.
pub(super) fn find_credentials(
    a: &RawApi,
    base: &Path,
    env: &SecretEnv,
) -> Result<Option<CredentialSource>, String> {
    let found = |kind, source| Ok(Some(CredentialSource { kind, source }));
    if let Some(dir) = &env.credentials_dir {
        for (name, kind) in [
            (TOKEN_CREDENTIAL, CredentialKind::Token),
            (SECRET_CREDENTIAL, CredentialKind::Hmac),
        ] {
            let path = dir.join(name);
            if path.exists() {
                return found(kind, SecretSource::Credential { name, path });
            }
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
        (Some(_), Some(_)) => Err(
            "api.token: a token (api.token or api.token_file) and a secret key \
             (api.secret_key or api.secret_key_file) are both set: keep one"
                .into(),
        ),
        (Some(source), None) => found(CredentialKind::Token, source),
        (None, Some(source)) => found(CredentialKind::Hmac, source),
        (None, None) => {
            if let Some(t) = &env.env_token {
                let value = t.clone();
                return found(
                    CredentialKind::Token,
                    SecretSource::Env {
                        var: "TC_TOKEN",
                        value,
                    },
                );
            }
            if let Some(s) = &env.env_secret {
                let value = s.clone();
                let var = "TC_API_SECRET_KEY";
                return found(CredentialKind::Hmac, SecretSource::Env { var, value });
            }
            Ok(None)
        }
    }
}

/// A credential in the config file: its file, else its inline value.
fn in_config(
    base: &Path,
    file: &Option<PathBuf>,
    file_key: &'static str,
    inline: &Option<String>,
    inline_key: &'static str,
) -> Option<SecretSource> {
    if let Some(p) = file {
        return Some(SecretSource::File {
            key: file_key,
            path: super::resolve(base, p.clone()),
        });
    }
    inline
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| SecretSource::Inline {
            key: inline_key,
            value: Secret::new(s),
        })
}

/// A secret in a file (one trailing newline ignored), named `what` in messages.
pub(super) fn from_file(path: &Path, what: &str) -> Result<Secret, String> {
    let s = std::fs::read_to_string(path)
        .map_err(|e| format!("{what}: cannot read {}: {e}", path.display()))?;
    let s = s.trim_end_matches(['\n', '\r']);
    if s.is_empty() {
        return Err(format!("{what}: {} is empty", path.display()));
    }
    Ok(Secret::new(s))
}
