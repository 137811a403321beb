//! Where the queue lives and how it is opened: a SQLite file (the default,
//! one host) or a PostgreSQL database (several daemons sharing one queue).
//! Both are migrated at open, each from its own form of the same
//! migrations (`migrations/sqlite/`, `migrations/postgres/`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};

/// The queue's database.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    Postgres(PgTarget),
}

/// A PostgreSQL queue: the URL as configured (any password in it moved to
/// `password`) and the TLS settings.
#[derive(Clone, PartialEq, Eq)]
pub struct PgTarget {
    pub url: url::Url,
    pub password: Option<String>,
    /// libpq's `sslmode`: disable, allow, prefer, require, verify-ca,
    /// verify-full.
    pub sslmode: Option<String>,
    pub ssl_root_cert: Option<PathBuf>,
    pub ssl_client_cert: Option<PathBuf>,
    pub ssl_client_key: Option<PathBuf>,
}

impl PgTarget {
    /// The URL sqlx connects with: the password and TLS settings as its
    /// parameters. Never shown or logged.
    fn connect_url(&self) -> url::Url {
        let mut url = self.url.clone();
        if let Some(pw) = &self.password {
            let _ = url.set_password(Some(pw));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(m) = &self.sslmode {
                q.append_pair("sslmode", m);
            }
            for (key, path) in [
                ("sslrootcert", &self.ssl_root_cert),
                ("sslcert", &self.ssl_client_cert),
                ("sslkey", &self.ssl_client_key),
            ] {
                if let Some(p) = path {
                    q.append_pair(key, &p.to_string_lossy());
                }
            }
            q.append_pair("application_name", "tc-ingest");
        }
        url
    }

    /// The URL for people: no password.
    pub fn display_url(&self) -> String {
        let mut url = self.url.clone();
        let _ = url.set_password(None);
        url.to_string()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite(p) => write!(f, "{}", p.display()),
            Target::Postgres(pg) => f.write_str(&pg.display_url()),
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({self})")
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("url", &self.display_url())
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("sslmode", &self.sslmode)
            .finish_non_exhaustive()
    }
}

/// The SQLite settings every connection starts with. `page_size` comes
/// first: it counts only before the first table exists.
const SQLITE_PRAGMAS: &[&str] = &[
    // Bigger pages make shallower indexes and fewer WAL frames.
    "PRAGMA page_size = 16384",
    "PRAGMA journal_mode = WAL",
    // NORMAL for the bulk of commits (chunks of rows, batches of results):
    // in WAL mode a power loss can only roll back the newest commits, never
    // corrupt. Where something is acknowledged (a file leaves processing/)
    // `file_finish` commits with FULL, which syncs the WAL and with it every
    // commit before it. A chunk lost before that point is lost together with
    // the file's progress, so the resumed file reads those rows again.
    "PRAGMA synchronous = NORMAL",
    "PRAGMA busy_timeout = 10000",
    // 16 MiB of page cache per connection: the indexes a big file touches
    // stay in memory, and the daemon's memory stays bounded.
    "PRAGMA cache_size = -16384",
    // Checkpoint every ~40 MB of WAL rather than every 4 MB: a big file's
    // chunks are copied into the database in fewer passes.
    "PRAGMA wal_autocheckpoint = 10000",
    "PRAGMA foreign_keys = ON",
];

pub(super) async fn open_sqlite(path: &Path) -> anyhow::Result<AnyPool> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut url = url::Url::parse("sqlite://").expect("static URL");
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    url.set_path(&abs.to_string_lossy());
    url.query_pairs_mut().append_pair("mode", "rwc");
    let opts: AnyConnectOptions = sqlx::ConnectOptions::from_url(&url)?;
    let pool = AnyPoolOptions::new()
        .max_connections(2)
        .after_connect(|conn, _| {
            Box::pin(async move {
                for pragma in SQLITE_PRAGMAS {
                    conn.execute(*pragma).await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await
        .with_context(|| format!("opening queue database {}", path.display()))?;
    sqlx::migrate!("./migrations/sqlite")
        .run(&pool)
        .await
        .with_context(|| format!("migrating queue database {}", path.display()))?;
    Ok(pool)
}

/// Connections per daemon: delivery's claims and results, intake's chunks,
/// the maintenance tick and the listener's reads each hold one at a time.
const PG_CONNECTIONS: u32 = 8;

pub(super) async fn open_postgres(pg: &PgTarget) -> anyhow::Result<AnyPool> {
    let shown = pg.display_url();
    let opts: AnyConnectOptions = sqlx::ConnectOptions::from_url(&pg.connect_url())?;
    let pool = AnyPoolOptions::new()
        .max_connections(PG_CONNECTIONS)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(opts)
        .await
        .with_context(|| format!("connecting to the queue database {shown}"))?;
    // sqlx takes an advisory lock around the migrations, so daemons that
    // start together on an empty database migrate it one at a time.
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .with_context(|| format!("migrating queue database {shown}"))?;
    Ok(pool)
}
