//! The SQLite retry queue: the only module with SQL.
//!
//! Schema in `migrations/`, applied at open. WAL lets `status`, `enqueue`
//! and `sqlite3` read and write beside the daemon; only the daemon takes the
//! lock file, so only one daemon owns a queue.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, Write as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Row};

use crate::indicator::{Indicator, IndicatorType, Payload};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// The queue database.
#[derive(Debug, Clone)]
pub struct Queue {
    pool: SqlitePool,
    path: PathBuf,
}

/// The daemon's exclusive claim on a queue; released on drop.
#[derive(Debug)]
pub struct DaemonLock {
    _file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock next to the queue file (`queue.db.lock`), writing our
    /// pid into it.
    ///
    /// # Errors
    /// When another daemon holds it (its pid in the message), or on I/O errors.
    pub fn acquire(queue_path: &Path) -> anyhow::Result<Self> {
        let path = lock_path(queue_path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                let who = match pid.trim() {
                    "" => "another process".to_string(),
                    p => format!("another tc-ingest daemon (pid {p})"),
                };
                bail!(
                    "the queue {} is in use by {who}: only one daemon may own a queue (lock file {})",
                    queue_path.display(),
                    path.display()
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{}", std::process::id())?;
        file.sync_all()?;
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lock_path(queue_path: &Path) -> PathBuf {
    let mut s = queue_path.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A new job, ready to insert.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub owner: String,
    pub indicator: Indicator,
    pub payload: Payload,
    pub line: Option<u64>,
}

impl NewJob {
    fn payload_json(&self) -> String {
        serde_json::to_string(&self.payload).expect("payload serializes")
    }

    /// Same owner, type, value and payload give the same key.
    fn dedup_key(&self, payload_json: &str) -> i64 {
        let mut h = Sha256::new();
        for part in [
            self.owner.as_str(),
            self.indicator.kind().tc_name(),
            self.indicator.summary(),
            payload_json,
        ] {
            h.update(part.as_bytes());
            h.update([0u8]);
        }
        let digest = h.finalize();
        i64::from_le_bytes(digest[..8].try_into().expect("8 bytes"))
    }
}

/// A row refused before queuing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewReject {
    pub line: u64,
    pub input: String,
    pub rule: String,
    pub reason: String,
}

/// A job as claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub payload: String,
    pub steps_done: u32,
    pub attempts: u32,
}

impl Job {
    /// The typed indicator and payload. A row inserted by hand may not parse.
    ///
    /// # Errors
    /// A message saying what is wrong with the row.
    pub fn parse(&self) -> Result<(Indicator, Payload), String> {
        let kind = IndicatorType::from_tc_name(&self.kind).ok_or_else(|| {
            format!(
                "unknown type {:?} (use ThreatConnect's type name)",
                self.kind
            )
        })?;
        let payload: Payload = serde_json::from_str(&self.payload)
            .map_err(|e| format!("invalid payload JSON: {e}"))?;
        Ok((
            Indicator::from_normalized(kind, self.value.clone()),
            payload,
        ))
    }
}

/// What became of a claimed job.
#[derive(Debug, Clone, PartialEq)]
pub enum JobUpdate {
    Delivered {
        id: i64,
    },
    /// Try again at `at`; `count_attempt` is false for errors that are not the
    /// job's fault (a paused or held owner, clock correction).
    Reschedule {
        id: i64,
        steps_done: u32,
        at: i64,
        count_attempt: bool,
        error: Option<JobError>,
    },
    Bury {
        id: i64,
        steps_done: u32,
        error: JobError,
    },
    /// The owner is held: park the job as `held` until the owner is released.
    Hold {
        id: i64,
        steps_done: u32,
        error: JobError,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobError {
    pub class: String,
    pub http_status: Option<u16>,
    pub message: String,
}

/// Why delivery is paused, as shown by `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pause {
    pub class: String,
    pub reason: String,
    /// Unix ms.
    pub since: i64,
}

/// A held owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOwner {
    pub owner: String,
    pub class: String,
    pub reason: String,
    pub held_at: i64,
}

/// A file as the queue records it.
#[derive(Debug, Clone, PartialEq)]
pub struct FileRow {
    pub id: i64,
    pub path: String,
    pub processing_path: Option<String>,
    pub sha256: String,
    pub state: String,
    pub owner: String,
    pub rows_read: u64,
    pub rows_queued: u64,
    pub rows_rejected: u64,
    pub rows_duplicate: u64,
    pub last_position: u64,
    pub error: Option<String>,
}

/// A new file to record.
#[derive(Debug, Clone)]
pub struct NewFile<'a> {
    pub path: &'a str,
    pub processing_path: Option<&'a str>,
    pub sha256: &'a str,
    pub size_bytes: u64,
    pub owner: &'a str,
}

/// What one committed chunk did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkResult {
    pub queued: u64,
    pub duplicates: u64,
}

/// Which buried jobs `retry` requeues.
#[derive(Debug, Clone, Default)]
pub struct RetryFilter {
    pub class: Option<String>,
    pub owner: Option<String>,
    /// Matches the file's recorded path exactly or by its final name.
    pub file: Option<String>,
}

/// What [`Queue::outstanding`] found: leased jobs, and when the next
/// pending job of an owner that is not held falls due (Unix ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outstanding {
    pub leased: u64,
    pub next_due: Option<i64>,
}

/// The cheap counts of [`Queue::state_counts`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateCounts {
    /// pending, leased, held and dead (delivered is not counted here).
    pub by_state: BTreeMap<String, u64>,
    pub delivered_since: u64,
}

/// Counts for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stats {
    pub by_state: BTreeMap<String, u64>,
    pub by_owner: BTreeMap<String, BTreeMap<String, u64>>,
    pub by_type: BTreeMap<String, BTreeMap<String, u64>>,
    pub dead_by_class: BTreeMap<String, u64>,
    pub held_owners: Vec<HeldOwner>,
    pub pause: Option<Pause>,
    /// Age in seconds of the oldest pending job.
    pub oldest_pending_secs: Option<u64>,
    pub delivered_last_minute: u64,
    pub delivered_last_hour: u64,
    pub files_by_state: BTreeMap<String, u64>,
    pub rows_rejected: u64,
    /// The daemon's last heartbeat (JSON it wrote), if any.
    pub heartbeat: Option<serde_json::Value>,
}

/// Rows per multi-row INSERT: 7 binds a row stays well under SQLite's limit of 32766.
const INSERT_ROWS: usize = 1000;

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
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction, taking the write lock at BEGIN. A deferred one
    /// that reads first fails at once with SQLITE_BUSY_SNAPSHOT when another
    /// connection wrote in between (the busy timeout cannot help there).
    async fn begin_write(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .context("starting a queue transaction")
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    // ------------------------------------------------------------- files

    /// Records a file taken in.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_begin(&self, f: &NewFile<'_>) -> anyhow::Result<i64> {
        let id = sqlx::query(
            "INSERT INTO files (path, processing_path, sha256, size_bytes, owner, started_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(f.path)
        .bind(f.processing_path)
        .bind(f.sha256)
        .bind(f.size_bytes as i64)
        .bind(f.owner)
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await
        .context("recording a feed file")?
        .get::<i64, _>(0);
        Ok(id)
    }

    /// The unfinished record of the file at `processing_path`, to resume it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_in_progress(&self, processing_path: &str) -> anyhow::Result<Option<FileRow>> {
        let row = sqlx::query(
            "SELECT * FROM files WHERE processing_path = ? AND state = 'processing' ORDER BY id DESC LIMIT 1",
        )
        .bind(processing_path)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| file_row(&r)))
    }

    /// A finished file with this content, if one was taken before.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_done_with_sha(&self, sha256: &str) -> anyhow::Result<Option<FileRow>> {
        let row = sqlx::query(
            "SELECT * FROM files WHERE sha256 = ? AND state = 'done' ORDER BY id DESC LIMIT 1",
        )
        .bind(sha256)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| file_row(&r)))
    }

    /// # Errors
    /// Database errors.
    pub async fn file(&self, id: i64) -> anyhow::Result<FileRow> {
        let row = sqlx::query("SELECT * FROM files WHERE id = ?")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(file_row(&row))
    }

    /// Marks a file finished: `done`, `failed` or `skipped`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_finish(
        &self,
        id: i64,
        state: &str,
        format: Option<&str>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        // The acknowledgement point: commit with synchronous=FULL so this
        // commit, and every chunk before it, is on disk before the caller
        // moves the file out of processing/.
        let mut conn = self.pool.acquire().await?;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await?;
        let result = sqlx::query(
            "UPDATE files SET state = ?, format = COALESCE(?, format), error = ?, finished_at = ?, processing_path = NULL WHERE id = ?",
        )
        .bind(state)
        .bind(format)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *conn)
        .await;
        sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut *conn)
            .await?;
        result.context("recording a finished file")?;
        Ok(())
    }

    /// The first `limit` rejects of a file, in file order.
    ///
    /// # Errors
    /// Database errors.
    pub async fn rejects(&self, file_id: i64, limit: u64) -> anyhow::Result<Vec<NewReject>> {
        let mut out = Vec::new();
        self.for_each_reject(file_id, limit, |r| {
            out.push(r);
            Ok(())
        })
        .await?;
        Ok(out)
    }

    /// Streams the rejects of a file, in file order, to `f` (a file's
    /// rejects can be millions: they are never all in memory).
    ///
    /// # Errors
    /// Database errors, or the first error `f` returns.
    pub async fn for_each_reject(
        &self,
        file_id: i64,
        limit: u64,
        mut f: impl FnMut(NewReject) -> std::io::Result<()>,
    ) -> anyhow::Result<()> {
        use futures::TryStreamExt;
        let mut rows = sqlx::query(
            "SELECT line, input, rule, reason FROM rejects WHERE file_id = ? ORDER BY id LIMIT ?",
        )
        .bind(file_id)
        .bind(limit.min(i64::MAX as u64) as i64)
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await? {
            f(NewReject {
                line: r.get::<i64, _>(0) as u64,
                input: r.get(1),
                rule: r.get(2),
                reason: r.get(3),
            })?;
        }
        Ok(())
    }

    /// Commits one chunk of a file in one transaction: its jobs (minus
    /// duplicates), its rejects, and the file's progress, so a crash leaves
    /// either all of the chunk or none of it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn commit_chunk(
        &self,
        file_id: Option<i64>,
        jobs: &[NewJob],
        rejects: &[NewReject],
        rows_read: u64,
        last_position: u64,
        dedup_window: Duration,
    ) -> anyhow::Result<ChunkResult> {
        let now = now_ms();
        let window_start = now - ms(dedup_window);
        let mut tx = self
            .begin_write()
            .await
            .context("starting a queue transaction")?;

        // Jobs of a held owner wait as `held` from the start.
        let held: HashSet<String> = sqlx::query("SELECT owner FROM held_owners")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Repeats within the chunk are dropped here; repeats of earlier
        // chunks and of the queue by the NOT EXISTS of the statement.
        let mut seen: HashSet<(i64, &str, IndicatorType, &str, String)> =
            HashSet::with_capacity(jobs.len());
        let mut batches = jobs.chunks(INSERT_ROWS);
        let mut queued = 0u64;
        let mut next = batches
            .next()
            .map(|b| insert_jobs(b, &mut seen, &held, now, window_start, file_id));
        // The next statement's values are bound while SQLite runs the current
        // one (on sqlx's worker thread): the writer never waits for us.
        while let Some(query) = next.take() {
            let following = batches.next();
            let (result, built) = futures::join!(query.execute(&mut *tx), async {
                following.map(|b| insert_jobs(b, &mut seen, &held, now, window_start, file_id))
            });
            queued += result.context("inserting jobs")?.rows_affected();
            next = built;
        }
        if let Some(fid) = file_id {
            for batch in rejects.chunks(INSERT_ROWS) {
                let mut sql = String::from(
                    "INSERT INTO rejects (file_id, line, input, rule, reason) VALUES ",
                );
                for i in 0..batch.len() {
                    if i > 0 {
                        sql.push(',');
                    }
                    sql.push_str("(?,?,?,?,?)");
                }
                let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(batch.len() == INSERT_ROWS);
                for r in batch {
                    q = q
                        .bind(fid)
                        .bind(r.line as i64)
                        .bind(r.input.as_str())
                        .bind(r.rule.as_str())
                        .bind(r.reason.as_str());
                }
                q.execute(&mut *tx).await.context("inserting rejects")?;
            }
        }
        let duplicates = jobs.len() as u64 - queued;
        if let Some(fid) = file_id {
            sqlx::query(
                "UPDATE files SET rows_read = rows_read + ?, rows_queued = rows_queued + ?, \
                 rows_rejected = rows_rejected + ?, rows_duplicate = rows_duplicate + ?, \
                 last_position = MAX(last_position, ?) WHERE id = ?",
            )
            .bind(rows_read as i64)
            .bind(queued as i64)
            .bind(rejects.len() as i64)
            .bind(duplicates as i64)
            .bind(last_position as i64)
            .bind(fid)
            .execute(&mut *tx)
            .await
            .context("recording file progress")?;
        }
        tx.commit().await.context("committing a chunk")?;
        Ok(ChunkResult { queued, duplicates })
    }

    // -------------------------------------------------------------- jobs

    /// Leases up to `n` due jobs of owners that are not held.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim(&self, n: usize, lease: Duration) -> anyhow::Result<Vec<Job>> {
        let now = now_ms();
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'leased', lease_expires_at = ?1, updated_at = ?2 WHERE id IN ( \
               SELECT id FROM jobs WHERE state = 'pending' AND next_attempt_at <= ?2 \
               AND owner NOT IN (SELECT owner FROM held_owners) \
               ORDER BY next_attempt_at, id LIMIT ?3) \
             RETURNING id, owner, type, value, payload, steps_done, attempts",
        )
        .bind(now + ms(lease))
        .bind(now)
        .bind(n as i64)
        .fetch_all(&self.pool)
        .await
        .context("claiming jobs")?;
        let mut jobs: Vec<Job> = rows
            .iter()
            .map(|r| Job {
                id: r.get(0),
                owner: r.get(1),
                kind: r.get(2),
                value: r.get(3),
                payload: r.get(4),
                steps_done: r.get::<i64, _>(5) as u32,
                attempts: r.get::<i64, _>(6) as u32,
            })
            .collect();
        jobs.sort_by_key(|j| j.id);
        Ok(jobs)
    }

    /// Applies delivery results in one transaction.
    ///
    /// # Errors
    /// Database errors.
    pub async fn apply(&self, updates: &[JobUpdate]) -> anyhow::Result<()> {
        if updates.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        // The common case, delivered jobs, in one statement per thousand.
        let delivered: Vec<i64> = updates
            .iter()
            .filter_map(|u| match u {
                JobUpdate::Delivered { id } => Some(*id),
                _ => None,
            })
            .collect();
        for ids in delivered.chunks(1000) {
            let mut sql = String::from(
                "UPDATE jobs SET state = 'delivered', delivered_at = ?, updated_at = ?, lease_expires_at = NULL, \
                 last_error_class = NULL, last_http_status = NULL, last_error = NULL WHERE id IN (",
            );
            for i in 0..ids.len() {
                sql.push_str(if i == 0 { "?" } else { ",?" });
            }
            sql.push(')');
            let mut q = sqlx::query(AssertSqlSafe(sql))
                .persistent(ids.len() == 1000)
                .bind(now)
                .bind(now);
            for id in ids {
                q = q.bind(id);
            }
            q.execute(&mut *tx)
                .await
                .context("recording delivered jobs")?;
        }
        for u in updates {
            let q = match u {
                JobUpdate::Delivered { .. } => continue,
                JobUpdate::Reschedule {
                    id,
                    steps_done,
                    at,
                    count_attempt,
                    error,
                } => sqlx::query(
                    "UPDATE jobs SET state = 'pending', steps_done = ?1, next_attempt_at = ?2, \
                     attempts = attempts + ?3, lease_expires_at = NULL, updated_at = ?4, \
                     last_error_class = COALESCE(?5, last_error_class), last_http_status = COALESCE(?6, last_http_status), \
                     last_error = COALESCE(?7, last_error) WHERE id = ?8",
                )
                .bind(*steps_done as i64)
                .bind(at)
                .bind(i64::from(*count_attempt))
                .bind(now)
                .bind(error.as_ref().map(|e| e.class.as_str()))
                .bind(error.as_ref().and_then(|e| e.http_status).map(i64::from))
                .bind(error.as_ref().map(|e| e.message.as_str()))
                .bind(id),
                JobUpdate::Bury { id, steps_done, error } => sqlx::query(
                    "UPDATE jobs SET state = 'dead', steps_done = ?1, attempts = attempts + 1, lease_expires_at = NULL, \
                     updated_at = ?2, last_error_class = ?3, last_http_status = ?4, last_error = ?5 WHERE id = ?6",
                )
                .bind(*steps_done as i64)
                .bind(now)
                .bind(error.class.as_str())
                .bind(error.http_status.map(i64::from))
                .bind(error.message.as_str())
                .bind(id),
                JobUpdate::Hold { id, steps_done, error } => sqlx::query(
                    "UPDATE jobs SET state = 'held', steps_done = ?1, lease_expires_at = NULL, updated_at = ?2, \
                     last_error_class = ?3, last_http_status = ?4, last_error = ?5 WHERE id = ?6",
                )
                .bind(*steps_done as i64)
                .bind(now)
                .bind(error.class.as_str())
                .bind(error.http_status.map(i64::from))
                .bind(error.message.as_str())
                .bind(id),
            };
            q.execute(&mut *tx)
                .await
                .context("recording a delivery result")?;
        }
        tx.commit().await.context("committing delivery results")?;
        Ok(())
    }

    /// Returns every lease to pending: at daemon start (holding the lock,
    /// every lease is an orphan of a previous run) and at shutdown.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_all_leases(&self) -> anyhow::Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = 'pending', lease_expires_at = NULL, updated_at = ?1 WHERE state = 'leased'",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Returns expired leases to pending.
    ///
    /// # Errors
    /// Database errors.
    pub async fn reclaim_expired_leases(&self) -> anyhow::Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET state = 'pending', lease_expires_at = NULL, updated_at = ?1 \
             WHERE state = 'leased' AND lease_expires_at < ?1",
        )
        .bind(now_ms())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Holds an owner: its pending jobs wait as `held` and none are claimed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn hold_owner(&self, owner: &str, class: &str, reason: &str) -> anyhow::Result<bool> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let new = sqlx::query(
            "INSERT OR IGNORE INTO held_owners (owner, class, reason, held_at) VALUES (?, ?, ?, ?)",
        )
        .bind(owner)
        .bind(class)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        sqlx::query(
            "UPDATE jobs SET state = 'held', updated_at = ? WHERE owner = ? AND state = 'pending'",
        )
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(new)
    }

    /// Releases a held owner: its jobs are due again now.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_owner(&self, owner: &str) -> anyhow::Result<u64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM held_owners WHERE owner = ?")
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "UPDATE jobs SET state = 'pending', next_attempt_at = ?, updated_at = ? WHERE owner = ? AND state = 'held'",
        )
        .bind(now)
        .bind(now)
        .bind(owner)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// # Errors
    /// Database errors.
    pub async fn held_owners(&self) -> anyhow::Result<Vec<HeldOwner>> {
        let rows =
            sqlx::query("SELECT owner, class, reason, held_at FROM held_owners ORDER BY owner")
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .iter()
            .map(|r| HeldOwner {
                owner: r.get(0),
                class: r.get(1),
                reason: r.get(2),
                held_at: r.get(3),
            })
            .collect())
    }

    /// Owners with jobs waiting to be delivered (pending, leased or held).
    ///
    /// # Errors
    /// Database errors.
    pub async fn owners_with_work(&self) -> anyhow::Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT owner FROM jobs WHERE state IN ('pending', 'leased', 'held')",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// Records (or clears) why delivery is paused.
    ///
    /// # Errors
    /// Database errors.
    pub async fn set_pause(&self, pause: Option<&Pause>) -> anyhow::Result<()> {
        self.set_state(
            "pause",
            pause.map(|p| serde_json::to_string(p).expect("pause serializes")),
        )
        .await
    }

    /// # Errors
    /// Database errors.
    pub async fn pause(&self) -> anyhow::Result<Option<Pause>> {
        Ok(self
            .get_state("pause")
            .await?
            .and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// Writes the daemon's heartbeat (a JSON object) for `status`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn heartbeat(&self, value: &serde_json::Value) -> anyhow::Result<()> {
        self.set_state("heartbeat", Some(value.to_string())).await
    }

    async fn set_state(&self, key: &str, value: Option<String>) -> anyhow::Result<()> {
        match value {
            Some(v) => {
                sqlx::query(
                    "INSERT INTO daemon_state (key, value, updated_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (key) DO UPDATE SET value = ?2, updated_at = ?3",
                )
                .bind(key)
                .bind(v)
                .bind(now_ms())
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM daemon_state WHERE key = ?")
                    .bind(key)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn get_state(&self, key: &str) -> anyhow::Result<Option<String>> {
        Ok(sqlx::query("SELECT value FROM daemon_state WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.get(0)))
    }

    /// Requeues buried jobs matching the filter; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn requeue_dead(&self, f: &RetryFilter) -> anyhow::Result<u64> {
        let now = now_ms();
        Ok(sqlx::query(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1 \
             WHERE state = 'dead' AND (?2 IS NULL OR last_error_class = ?2) AND (?3 IS NULL OR owner = ?3) \
             AND (?4 IS NULL OR file_id IN (SELECT id FROM files WHERE path = ?4 OR path LIKE '%/' || ?4))",
        )
        .bind(now)
        .bind(f.class.as_deref())
        .bind(f.owner.as_deref())
        .bind(f.file.as_deref())
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Deletes delivered jobs delivered before `age` ago; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune_delivered(&self, age: Duration) -> anyhow::Result<u64> {
        Ok(
            sqlx::query("DELETE FROM jobs WHERE state = 'delivered' AND delivered_at < ?")
                .bind(now_ms() - ms(age))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Deletes the rejects of files finished more than `age` ago (their
    /// errors reports in `done/` go at the same age); the files' rows and
    /// counts stay. Returns how many rejects.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune_rejects(&self, age: Duration) -> anyhow::Result<u64> {
        Ok(sqlx::query(
            "DELETE FROM rejects WHERE file_id IN (SELECT id FROM files WHERE finished_at < ?)",
        )
        .bind(now_ms() - ms(age))
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// What is left to do, read in one snapshot (separate reads could see a
    /// job in neither state while it moves from pending to leased).
    ///
    /// # Errors
    /// Database errors.
    pub async fn outstanding(&self) -> anyhow::Result<Outstanding> {
        // One statement reads one snapshot; each part uses its partial index.
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM jobs WHERE state = 'leased'), \
               (SELECT MIN(next_attempt_at) FROM jobs WHERE state = 'pending' \
                AND owner NOT IN (SELECT owner FROM held_owners))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Outstanding {
            leased: row.get::<i64, _>(0) as u64,
            next_due: row.get(1),
        })
    }

    /// Counts of the states that wait for work, and deliveries since
    /// `since_ms`: cheap however large the queue, because each is read from
    /// its partial index (the maintenance tick and `run --once` call this
    /// every few moments).
    ///
    /// # Errors
    /// Database errors.
    pub async fn state_counts(&self, since_ms: i64) -> anyhow::Result<StateCounts> {
        let row = sqlx::query(
            "SELECT \
               (SELECT COUNT(*) FROM jobs WHERE state = 'pending'), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'leased'), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'held'), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'dead'), \
               (SELECT COUNT(*) FROM jobs WHERE delivered_at >= ?)",
        )
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        let mut by_state = BTreeMap::new();
        for (i, k) in ["pending", "leased", "held", "dead"]
            .into_iter()
            .enumerate()
        {
            by_state.insert(k.to_string(), row.get::<i64, _>(i) as u64);
        }
        Ok(StateCounts {
            by_state,
            delivered_since: row.get::<i64, _>(4) as u64,
        })
    }

    /// Everything `status` shows.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let mut s = Stats::default();
        let rows = sqlx::query(
            "SELECT state, owner, type, COUNT(*) FROM jobs GROUP BY state, owner, type",
        )
        .fetch_all(&self.pool)
        .await?;
        for r in &rows {
            let (state, owner, kind, n): (String, String, String, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let n = n as u64;
            *s.by_state.entry(state.clone()).or_default() += n;
            *s.by_owner
                .entry(owner)
                .or_default()
                .entry(state.clone())
                .or_default() += n;
            *s.by_type.entry(kind).or_default().entry(state).or_default() += n;
        }
        for r in sqlx::query("SELECT COALESCE(last_error_class, 'unknown'), COUNT(*) FROM jobs WHERE state = 'dead' GROUP BY 1")
            .fetch_all(&self.pool)
            .await?
        {
            s.dead_by_class.insert(r.get(0), r.get::<i64, _>(1) as u64);
        }
        s.held_owners = self.held_owners().await?;
        s.pause = self.pause().await?;
        let now = now_ms();
        let oldest: Option<i64> =
            sqlx::query("SELECT MIN(created_at) FROM jobs WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await?
                .get(0);
        s.oldest_pending_secs = oldest.map(|t| ((now - t).max(0) / 1000) as u64);
        let row = sqlx::query(
            "SELECT COALESCE(SUM(delivered_at >= ?1), 0), COUNT(*) FROM jobs WHERE delivered_at >= ?2",
        )
        .bind(now - 60_000)
        .bind(now - 3_600_000)
        .fetch_one(&self.pool)
        .await?;
        s.delivered_last_minute = row.get::<i64, _>(0) as u64;
        s.delivered_last_hour = row.get::<i64, _>(1) as u64;
        for r in sqlx::query(
            "SELECT state, COUNT(*), COALESCE(SUM(rows_rejected), 0) FROM files GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?
        {
            s.files_by_state.insert(r.get(0), r.get::<i64, _>(1) as u64);
            s.rows_rejected += r.get::<i64, _>(2) as u64;
        }
        s.heartbeat = self
            .get_state("heartbeat")
            .await?
            .and_then(|v| serde_json::from_str(&v).ok());
        Ok(s)
    }

    /// The jobs of one state (tests and the demo report).
    ///
    /// # Errors
    /// Database errors.
    pub async fn jobs_in_state(&self, state: &str) -> anyhow::Result<Vec<JobRow>> {
        let rows = sqlx::query(
            "SELECT id, owner, type, value, steps_done, attempts, last_error_class, last_http_status, last_error \
             FROM jobs WHERE state = ? ORDER BY id",
        )
        .bind(state)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| JobRow {
                id: r.get(0),
                owner: r.get(1),
                kind: r.get(2),
                value: r.get(3),
                steps_done: r.get::<i64, _>(4) as u32,
                attempts: r.get::<i64, _>(5) as u32,
                last_error_class: r.get(6),
                last_http_status: r.get::<Option<i64>, _>(7).map(|s| s as u16),
                last_error: r.get(8),
            })
            .collect())
    }

    /// Counts jobs (benchmarks and tests).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count(&self, state: Option<&str>) -> anyhow::Result<u64> {
        Ok(
            sqlx::query("SELECT COUNT(*) FROM jobs WHERE ?1 IS NULL OR state = ?1")
                .bind(state)
                .fetch_one(&self.pool)
                .await?
                .get::<i64, _>(0) as u64,
        )
    }

    /// Runs raw SQL (tests simulate crashes and hand-inserted rows with it).
    ///
    /// # Errors
    /// Database errors.
    pub async fn execute_raw(&self, sql: &str) -> anyhow::Result<u64> {
        Ok(sqlx::raw_sql(AssertSqlSafe(sql.to_string()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// One multi-row INSERT of jobs not seen before in this chunk (`seen`), each
/// skipped by the statement itself when the queue already holds it pending
/// or delivered since `since`.
fn insert_jobs<'q>(
    batch: &'q [NewJob],
    seen: &mut HashSet<(i64, &'q str, IndicatorType, &'q str, String)>,
    held: &HashSet<String>,
    now: i64,
    since: i64,
    file_id: Option<i64>,
) -> SqliteQuery<'q> {
    // Anonymous parameters only: SQLite looks numbered ones up by a linear
    // scan, which makes a statement with thousands of them quadratic. They
    // number in text order: the rows, then the constants. The key only finds
    // candidates in its index; equal content is what makes a duplicate.
    let mut rows = Vec::with_capacity(batch.len());
    for job in batch {
        let payload = job.payload_json();
        let key = job.dedup_key(&payload);
        if seen.insert((
            key,
            job.owner.as_str(),
            job.indicator.kind(),
            job.indicator.summary(),
            payload.clone(),
        )) {
            rows.push((job, payload, key));
        }
    }
    let mut sql = String::with_capacity(800 + rows.len() * 16);
    sql.push_str(
        "INSERT INTO jobs (owner, type, value, payload, file_id, source_line, dedup_key, state, \
         next_attempt_at, created_at, updated_at) \
         SELECT v.column1, v.column2, v.column3, v.column4, c.file_id, v.column5, v.column6, v.column7, \
         c.now, c.now, c.now FROM (VALUES ",
    );
    for i in 0..rows.len() {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?,?,?)"
        });
    }
    if rows.is_empty() {
        sql.push_str("(NULL,NULL,NULL,NULL,NULL,NULL,NULL)");
    }
    sql.push_str(
        ") AS v, (SELECT ? AS now, ? AS since, ? AS file_id) AS c WHERE v.column1 IS NOT NULL AND NOT EXISTS ( \
         SELECT 1 FROM jobs j WHERE j.dedup_key = v.column6 \
         AND j.value = v.column3 AND j.owner = v.column1 AND j.type = v.column2 AND j.payload = v.column4 \
         AND (j.state IN ('pending', 'leased', 'held') OR (j.state = 'delivered' AND j.delivered_at > c.since)))",
    );
    // Only full-size statements are kept prepared: one of every remainder
    // size would fill the statement cache (and memory).
    let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(rows.len() == INSERT_ROWS);
    for (job, payload, key) in rows {
        q = q
            .bind(job.owner.as_str())
            .bind(job.indicator.kind().tc_name())
            .bind(job.indicator.summary())
            .bind(payload)
            .bind(job.line.map(|l| l as i64))
            .bind(key)
            .bind(if held.contains(&job.owner) {
                "held"
            } else {
                "pending"
            });
    }
    q.bind(now).bind(since).bind(file_id)
}

/// A job row for reports and tests.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: i64,
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub steps_done: u32,
    pub attempts: u32,
    pub last_error_class: Option<String>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
}

fn file_row(r: &sqlx::sqlite::SqliteRow) -> FileRow {
    FileRow {
        id: r.get("id"),
        path: r.get("path"),
        processing_path: r.get("processing_path"),
        sha256: r.get("sha256"),
        state: r.get("state"),
        owner: r.get("owner"),
        rows_read: r.get::<i64, _>("rows_read") as u64,
        rows_queued: r.get::<i64, _>("rows_queued") as u64,
        rows_rejected: r.get::<i64, _>("rows_rejected") as u64,
        rows_duplicate: r.get::<i64, _>("rows_duplicate") as u64,
        last_position: r.get::<i64, _>("last_position") as u64,
        error: r.get("error"),
    }
}
