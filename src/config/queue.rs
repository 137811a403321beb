//! `[queue]`: a SQLite file (`path`, the default) or a PostgreSQL database
//! shared by several daemons (`url`, its password and TLS settings).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::secret::{SecretSource, from_file};
use super::{RawQueue, SecretEnv, duration, resolve};
use crate::queue::{PgTarget, Target};

/// The systemd credential holding the PostgreSQL queue's password.
pub const QUEUE_PASSWORD_CREDENTIAL: &str = "tc-queue-password";

const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

#[derive(Debug, Clone, Serialize)]
pub struct QueueConfig {
    /// The SQLite file, when `url` is not set.
    pub path: PathBuf,
    /// A PostgreSQL queue instead.
    pub postgres: Option<PostgresQueue>,
    #[serde(with = "super::humantime_serde_compat")]
    pub dedup_window: Duration,
    #[serde(with = "super::humantime_serde_compat")]
    pub delivered_retention: Duration,
    #[serde(with = "super::humantime_serde_compat")]
    pub lease: Duration,
}

/// `queue.url` and what goes with it. The password is only found here
/// (nothing is read until [`QueueConfig::target`]).
#[derive(Debug, Clone, Serialize)]
pub struct PostgresQueue {
    /// The URL without any password it held.
    pub url: String,
    #[serde(skip)]
    pub password: Option<SecretSource>,
    pub sslmode: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
    pub ssl_client_cert: Option<PathBuf>,
    pub ssl_client_key: Option<PathBuf>,
}

impl QueueConfig {
    /// The SQLite file, if the queue is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.postgres.is_none().then_some(self.path.as_path())
    }

    /// Where the queue is, its password read (the inline one warned
    /// about here, where it is used).
    ///
    /// # Errors
    /// A message naming the password's source when it cannot be read.
    pub fn target(&self) -> Result<Target, String> {
        let Some(pg) = &self.postgres else {
            return Ok(Target::Sqlite(self.path.clone()));
        };
        let password = match &pg.password {
            None => None,
            Some(SecretSource::File { key, path }) => Some(from_file(path, key)?),
            Some(SecretSource::Credential { name, path }) => {
                Some(from_file(path, &format!("systemd credential {name}"))?)
            }
            Some(SecretSource::Inline { key, value }) => {
                tracing::warn!(
                    key,
                    "a credential is set inline in the config file: use it for testing only"
                );
                Some(value.clone())
            }
            Some(SecretSource::Env { value, .. }) => Some(value.clone()),
        };
        Ok(Target::Postgres(PgTarget {
            url: url::Url::parse(&pg.url).map_err(|e| format!("queue.url: {e}"))?,
            password: password.map(|p| p.expose().to_string()),
            sslmode: pg.sslmode.clone(),
            ssl_root_cert: pg.ssl_root_cert.clone(),
            ssl_client_cert: pg.ssl_client_cert.clone(),
            ssl_client_key: pg.ssl_client_key.clone(),
        }))
    }

    /// Where the queue is, for people (no password).
    pub fn location(&self) -> String {
        match &self.postgres {
            None => self.path.display().to_string(),
            Some(pg) => pg.url.clone(),
        }
    }
}

pub(super) fn validate(
    q: RawQueue,
    base: &Path,
    state: &Path,
    env: &SecretEnv,
    errors: &mut Vec<String>,
) -> QueueConfig {
    if q.path.is_some() && q.url.is_some() {
        errors.push(
            "queue.url: set either queue.path (a SQLite file) or queue.url (PostgreSQL), not both"
                .into(),
        );
    }
    let postgres = q
        .url
        .as_deref()
        .and_then(|u| postgres(&q, u, base, env, errors));
    if postgres.is_none() {
        for (key, set) in [
            ("password_file", q.password_file.is_some()),
            ("sslmode", q.sslmode.is_some()),
            ("ssl_root_cert", q.ssl_root_cert.is_some()),
            ("ssl_client_cert", q.ssl_client_cert.is_some()),
            ("ssl_client_key", q.ssl_client_key.is_some()),
        ] {
            if set && q.url.is_none() {
                errors.push(format!(
                    "queue.{key}: only for a PostgreSQL queue (queue.url)"
                ));
            }
        }
    }
    QueueConfig {
        path: q
            .path
            .map(|p| resolve(base, p))
            .unwrap_or_else(|| state.join("queue.db")),
        postgres,
        dedup_window: duration(errors, "queue.dedup_window", &q.dedup_window, "24h"),
        delivered_retention: duration(
            errors,
            "queue.delivered_retention",
            &q.delivered_retention,
            "7d",
        ),
        lease: Duration::from_secs(q.lease_secs.unwrap_or(120).max(1)),
    }
}

fn postgres(
    q: &RawQueue,
    raw_url: &str,
    base: &Path,
    env: &SecretEnv,
    errors: &mut Vec<String>,
) -> Option<PostgresQueue> {
    let mut url = match url::Url::parse(raw_url) {
        Ok(u) if matches!(u.scheme(), "postgres" | "postgresql") && u.has_host() => u,
        Ok(_) => {
            errors.push("queue.url: a PostgreSQL URL: postgres://user@host:5432/database".into());
            return None;
        }
        // The URL may hold a password: the message does not quote it.
        Err(e) => {
            errors.push(format!("queue.url: not a URL ({e})"));
            return None;
        }
    };
    let inline = url.password().map(|p| {
        percent_encoding::percent_decode_str(p)
            .decode_utf8_lossy()
            .into_owned()
    });
    let _ = url.set_password(None);
    if url.query_pairs().any(|(k, _)| k == "password") {
        errors.push(
            "queue.url: a password belongs in queue.password_file (or the systemd credential \
             tc-queue-password), not in the URL's parameters"
                .into(),
        );
    }
    let credential = env
        .credentials_dir
        .as_ref()
        .map(|d| d.join(QUEUE_PASSWORD_CREDENTIAL))
        .filter(|p| p.exists());
    let password = if let Some(path) = credential {
        Some(SecretSource::Credential {
            name: QUEUE_PASSWORD_CREDENTIAL,
            path,
        })
    } else if let Some(p) = &q.password_file {
        Some(SecretSource::File {
            key: "queue.password_file",
            path: resolve(base, p.clone()),
        })
    } else {
        inline
            .filter(|p| !p.is_empty())
            .map(|p| SecretSource::Inline {
                key: "queue.url",
                value: super::Secret::new(p),
            })
    };
    if let Some(m) = &q.sslmode
        && !SSLMODES.contains(&m.as_str())
    {
        errors.push(format!(
            "queue.sslmode: {m:?} is not one of {}",
            SSLMODES.join(", ")
        ));
    }
    Some(PostgresQueue {
        url: url.to_string(),
        password,
        sslmode: q.sslmode.clone(),
        ssl_root_cert: q.ssl_root_cert.clone().map(|p| resolve(base, p)),
        ssl_client_cert: q.ssl_client_cert.clone().map(|p| resolve(base, p)),
        ssl_client_key: q.ssl_client_key.clone().map(|p| resolve(base, p)),
    })
}
