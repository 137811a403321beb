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

/// The secret and where it came from, in order: `$TC_API_SECRET_KEY`,
/// `api.secret_key_file`, the systemd credential
/// `$CREDENTIALS_DIRECTORY/tc-api-secret`, `api.secret_key`.
///
/// # Errors
/// The message for `api.secret_key` (or the file's key) when none is usable.
pub(super) fn read_secret(
    a: &RawApi,
    base: &Path,
    env: &SecretEnv,
) -> Result<(Secret, String), String> {
    if let Some(s) = &env.env_secret {
        return Ok((
            Secret::new(s.clone()),
            "environment TC_API_SECRET_KEY".into(),
        ));
    }
    if let Some(p) = &a.secret_key_file {
        return from_file(&super::resolve(base, p.clone()), "api.secret_key_file");
    }
    if let Some(dir) = &env.credentials_dir {
        let p = dir.join("tc-api-secret");
        if p.exists() {
            return from_file(&p, "systemd credential");
        }
    }
    if let Some(s) = a.secret_key.as_deref().filter(|s| !s.is_empty()) {
        tracing::warn!("api.secret_key is set inline in the config file: use it for testing only");
        return Ok((
            Secret::new(s),
            "api.secret_key (inline, for testing only)".into(),
        ));
    }
    Err(
        "api.secret_key: no secret key: set TC_API_SECRET_KEY, api.secret_key_file, \
         a systemd credential tc-api-secret, or api.secret_key"
            .into(),
    )
}

/// A secret in a file (one trailing newline ignored), named by `key` in messages.
fn from_file(p: &Path, key: &str) -> Result<(Secret, String), String> {
    let s = std::fs::read_to_string(p)
        .map_err(|e| format!("{key}: cannot read {}: {e}", p.display()))?;
    let s = s.trim_end_matches(['\n', '\r']);
    if s.is_empty() {
        return Err(format!("{key}: {} is empty", p.display()));
    }
    Ok((Secret::new(s), format!("{key} {}", p.display())))
}
