//! The SQLite retry queue: the only module with SQL.
//!
//! Schema in `migrations/`, applied at open. WAL lets `status`, `enqueue`
//! and `sqlite3` read and write beside the daemon; only the daemon takes the
//! lock file, so only one daemon owns a queue.

//!
//! By role: `lock` (one daemon per queue), `files` (feed files and their
//! rejects), `chunk` (a chunk of rows in one transaction), `claim` (leases
//! and results), `batch` (batch jobs and their jobs), `owners` (held owners,
//! pause, heartbeat), `reports` (counts, requeue, prune), `inspect`
//! (per-file progress, `why`, dry runs); `model` holds the types.

mod batch;
mod chunk;
mod claim;
mod cluster;
mod copy;
mod due;
mod external;
mod feeds;
mod files;
mod inspect;
mod lifecycle;
mod lock;
mod model;
mod owners;
mod page;
mod reports;
mod retire;
mod sources;
mod sql;
mod target;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::AnyPool;

pub use sql::Dialect;
pub use target::{PgTarget, Target};

pub use batch::{BatchCandidate, BatchJob, BatchOutcome, BatchState};
pub use cluster::{DaemonRow, LIVE_WITHIN, Member, Superseded, hostname};
pub use feeds::{FeedHealth, FeedOwner, FeedState};
pub use inspect::{FileProgress, JobDetail, RejectDetail};
pub use lifecycle::{FeedEnd, HeldSnapshot, Reconciled};
pub use lock::{DaemonLock, LockHolder};
pub use model::*;
pub use page::{DeadLetter, RecentReject};
pub use retire::{Retired, Retiring};
pub use sources::{SourceAdvance, SourceHealth, SourceState, Validators, source_role};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(crate) fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// `n` comma-separated copies of `one` (`?`, or a row such as `(?,?,?)`):
/// the value list of a multi-value statement.
fn value_list(one: &str, n: usize) -> String {
    let mut s = String::with_capacity((one.len() + 1) * n);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push_str(one);
    }
    s
}

/// A log filter directive for what the database driver logs that is not
/// the operator's news: PostgreSQL's notices ("relation ... already exists,
/// skipping" at each migration check).
pub const QUIET_LOGS: &str = "sqlx::postgres::notice=warn";

/// The queue database.
#[derive(Debug, Clone)]
pub struct Queue {
    pool: AnyPool,
    dialect: Dialect,
    /// The SQLite file, or the PostgreSQL URL without its password.
    location: String,
    path: Option<PathBuf>,
    /// The daemon this handle works for (`daemons.id`; the host's name
    /// outside a daemon): it resumes and cleans up only the files it took
    /// (`files.taken_by`) and returns only its own leases (`jobs.leased_by`).
    member: std::sync::Arc<str>,
    /// The write turn: every write of this handle and its clones (intake's
    /// chunks, delivery's claims and results, maintenance) takes it, in
    /// order ([`sql::Turn`]).
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Queue {
    /// Opens (creating if needed) the SQLite queue at `path` and applies
    /// migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        Self::connect(&Target::Sqlite(path.to_path_buf())).await
    }

    /// Opens the queue `target` names (a SQLite file is created if
    /// needed) and applies migrations.
    ///
    /// # Errors
    /// When the database cannot be reached, opened or migrated.
    pub async fn connect(target: &Target) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let (pool, dialect) = match target {
            Target::Sqlite(path) => (target::open_sqlite(path).await?, Dialect::Sqlite),
            Target::Postgres(pg) => (target::open_postgres(pg).await?, Dialect::Postgres),
        };
        Ok(Self {
            pool,
            dialect,
            location: target.to_string(),
            path: match target {
                Target::Sqlite(p) => Some(p.clone()),
                Target::Postgres(_) => None,
            },
            member: cluster::hostname().into(),
            write_turn: Default::default(),
        })
    }

    /// The SQLite file (none for PostgreSQL).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where the queue is, for people: the SQLite file, or the PostgreSQL
    /// URL without its password.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// This handle working for the daemon `member` (its `daemons.id`).
    #[must_use]
    pub fn working_for(mut self, member: &str) -> Self {
        self.member = member.into();
        self
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// A write transaction (see [`Dialect::begin_write`]), begun in this
    /// handle's write turn ([`sql::Turn`]). On SQLite a BEGIN that found
    /// the write lock held through the whole busy timeout (another process
    /// writing: `retry`, `enqueue`, the `sqlite3` shell) is tried again
    /// rather than failing the task: up to `BUSY_TRIES` times.
    pub(crate) async fn begin_write(&self) -> anyhow::Result<sql::Tx> {
        const BUSY_TRIES: u32 = 6;
        let turn = self.write_turn.clone().lock_owned().await;
        let mut tries = 0;
        loop {
            match self.pool.begin_with(self.dialect.begin_write()).await {
                Ok(tx) => return Ok(sql::Turn::new(tx, turn)),
                Err(e) if tries + 1 < BUSY_TRIES && is_busy(&e) => {
                    tries += 1;
                    tracing::warn!(tries, "the queue's write lock stayed busy: trying again");
                }
                Err(e) => return Err(e).context("starting a queue transaction"),
            }
        }
    }

    /// A connection for one write statement outside a transaction, in this
    /// handle's write turn ([`sql::Turn`]).
    pub(crate) async fn writer(&self) -> anyhow::Result<sql::Writer> {
        let turn = self.write_turn.clone().lock_owned().await;
        Ok(sql::Turn::new(self.pool.acquire().await?, turn))
    }

    /// Copies the WAL into the database file and truncates it (the
    /// benchmarks measure the file's size after it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        if self.dialect != Dialect::Sqlite {
            return Ok(());
        }
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// SQLite's "database is locked" (SQLITE_BUSY, code 5).
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "5")
}
