//! The API secret key: where it may come from, and a type that never prints it.

use std::fmt;
use std::path::{Path, PathBuf};

use super::RawApi;

/// The API secret key. Its `Debug` and `Display` print `[redacted]`, and it
/// is not `Serialize`, so it cannot reach a log, the database or `status`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The key itself, for the HMAC only.
    pub fn expose(&self) -> &str {
        &self.0
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

/// Where secrets may come from besides the file, read once.
#[derive(Debug, Default, Clone)]
pub struct SecretEnv {
    pub env_secret: Option<String>,
    pub credentials_dir: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

impl SecretEnv {
    pub fn from_process() -> Self {
        Self {
            env_secret: std::env::var("TC_API_SECRET_KEY")
                .ok()
                .filter(|s| !s.is_empty()),
            credentials_dir: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            state_dir: std::env::var_os("STATE_DIRECTORY")
                .map(|s| PathBuf::from(s.to_string_lossy().split(':').next().unwrap_or_default())),
        }
    }
}

/// Where the secret key comes from, decided when the config is read; the
/// key itself is read only by [`SecretSource::load`], which only `run`,
/// `ping` and a reload call: queue commands and `check-config` work without
/// it. A new source is one more variant (with its arm in `describe` and
/// `load`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `$TC_API_SECRET_KEY` (its value, taken from the environment at start).
    Env(Secret),
    /// `api.secret_key_file`.
    KeyFile(PathBuf),
    /// The systemd credential `$CREDENTIALS_DIRECTORY/tc-api-secret`.
    Credential(PathBuf),
    /// `api.secret_key`, inline in the config file (for testing).
    Inline(Secret),
    /// None of them is set.
    Missing,
}

impl SecretSource {
    /// The first source set, in order: `$TC_API_SECRET_KEY`,
    /// `api.secret_key_file`, the systemd credential, `api.secret_key`.
    /// Nothing is read here.
    pub(super) fn find(a: &RawApi, base: &Path, env: &SecretEnv) -> Self {
        if let Some(s) = &env.env_secret {
            return Self::Env(Secret::new(s.clone()));
        }
        if let Some(p) = &a.secret_key_file {
            return Self::KeyFile(super::resolve(base, p.clone()));
        }
        if let Some(dir) = &env.credentials_dir {
            let p = dir.join("tc-api-secret");
            if p.exists() {
                return Self::Credential(p);
            }
        }
        if let Some(s) = a.secret_key.as_deref().filter(|s| !s.is_empty()) {
            return Self::Inline(Secret::new(s));
        }
        Self::Missing
    }

    /// Where the key would come from, for `check-config` (never the key).
    pub fn describe(&self) -> String {
        match self {
            Self::Env(_) => "environment TC_API_SECRET_KEY".into(),
            Self::KeyFile(p) => format!("api.secret_key_file {}", p.display()),
            Self::Credential(p) => format!("systemd credential {}", p.display()),
            Self::Inline(_) => "api.secret_key (inline, for testing only)".into(),
            Self::Missing => "none set: `run` and `ping` will refuse to start".into(),
        }
    }

    /// Reads the key. The inline key is warned about here, where it is used.
    ///
    /// # Errors
    /// A message naming the source when the key cannot be read or is empty,
    /// or none is set.
    pub fn load(&self) -> Result<Secret, String> {
        match self {
            Self::Env(s) => Ok(s.clone()),
            Self::KeyFile(p) => from_file(p, "api.secret_key_file"),
            Self::Credential(p) => from_file(p, "systemd credential"),
            Self::Inline(s) => {
                tracing::warn!(
                    "api.secret_key is set inline in the config file: use it for testing only"
                );
                Ok(s.clone())
            }
            Self::Missing => Err("api.secret_key: no secret key: set TC_API_SECRET_KEY, \
                 api.secret_key_file, a systemd credential tc-api-secret, or api.secret_key"
                .into()),
        }
    }
}

/// A secret in a file (one trailing newline ignored), named by `key` in messages.
fn from_file(p: &Path, key: &str) -> Result<Secret, String> {
    let s = std::fs::read_to_string(p)
        .map_err(|e| format!("{key}: cannot read {}: {e}", p.display()))?;
    let s = s.trim_end_matches(['\n', '\r']);
    if s.is_empty() {
        return Err(format!("{key}: {} is empty", p.display()));
    }
    Ok(Secret::new(s))
}
