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

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use batch::{BatchCandidate, BatchJob, BatchOutcome, BatchState};
pub use feeds::{FeedHealth, FeedOwner, FeedState};
pub use inspect::{FileProgress, JobDetail, RejectDetail};
pub use lifecycle::{FeedEnd, HeldSnapshot, Reconciled};
pub use lock::{DaemonLock, LockHolder};
pub use model::*;
pub use page::{DeadLetter, RecentReject};
pub use retire::{Retired, Retiring};
pub use sources::{SourceAdvance, SourceHealth, SourceState, Validators};

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

/// The queue database.
#[derive(Debug, Clone)]
pub struct Queue {
    pool: SqlitePool,
    path: PathBuf,
    /// Delivery's writes (claims, results, lease renewals) take turns here
    /// rather than in SQLite's busy handler, which sleeps whole
    /// milliseconds: the writer's group commits then wait only as long as
    /// a claim actually takes.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Queue {
    /// Opens (creating if needed) the queue and applies migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or migrated.
    pub async fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite:")
            .expect("static URL")
            .filename(path)
            .create_if_missing(true)
            // Set before the first table exists (later it is a no-op):
            // bigger pages make shallower indexes and fewer WAL frames.
            .page_size(16384)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL for the bulk of commits (chunks of rows, batches of
            // results): in WAL mode a power loss can only roll back the
            // newest commits, never corrupt. Where something is acknowledged
            // (a file leaves processing/) `file_finish` commits with FULL,
            // which syncs the WAL and with it every commit before it. A chunk
            // lost before that point is lost together with the file's
            // progress, so the resumed file reads those rows again.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // 16 MiB of page cache per connection: the indexes a big file
            // touches stay in memory, and the daemon's memory stays bounded.
            .pragma("cache_size", "-16384")
            // Checkpoint every ~40 MB of WAL rather than every 4 MB: a big
            // file's chunks are copied into the database in fewer passes.
            .pragma("wal_autocheckpoint", "10000")
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(opts)
            .await
            .with_context(|| format!("opening queue database {}", path.display()))?;
        sqlx::migrate!("./migrations")
            .run(&pool)
            .await
            .with_context(|| format!("migrating queue database {}", path.display()))?;
        Ok(Self {
            pool,
            path: path.to_path_buf(),
            write_gate: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction, taking the write lock at BEGIN. A deferred one
    /// that reads first fails at once with SQLITE_BUSY_SNAPSHOT when another
    /// connection wrote in between (the busy timeout cannot help there).
    pub(crate) async fn begin_write(
        &self,
    ) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("starting a queue transaction")
    }

    /// Copies the WAL into the database file and truncates it (the
    /// benchmarks measure the file's size after it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn checkpoint(&self) -> anyhow::Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
