//! Reads for people: per-file progress (`status`), everything known about
//! one indicator (`why`), and what `retry`/`purge` would change.

use super::sql::{DbRow, query};
use std::collections::BTreeMap;

use sqlx::Row;

use super::{ErrorClass, FileState, JobState, Queue, RetryFilter, ms, now_ms};
use crate::normalize::RejectRule;

/// A feed file's progress, for `status`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FileProgress {
    pub id: i64,
    pub path: String,
    pub state: FileState,
    pub rows_read: u64,
    pub rows_queued: u64,
    pub rows_rejected: u64,
    pub rows_duplicate: u64,
    /// Rows skipped (no indicator here), by reason, most first.
    pub skipped: Vec<(String, u64)>,
    /// Rows the allowlist filtered, by what matched, most first.
    pub filtered: Vec<(String, u64)>,
    /// Its jobs still to deliver (pending, leased or held).
    pub waiting: u64,
    pub delivered: u64,
    pub dead: u64,
    pub error: Option<String>,
    /// Unix ms.
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// A job as `why` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDetail {
    pub id: i64,
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub payload: String,
    pub state: JobState,
    pub steps_done: u32,
    pub attempts: u32,
    /// Unix ms.
    pub next_attempt_at: i64,
    /// `None` also for a class this build does not know (a row written by
    /// hand): `why` then shows the job without it.
    pub last_error_class: Option<ErrorClass>,
    pub last_http_status: Option<u16>,
    pub last_error: Option<String>,
    pub file_id: Option<i64>,
    pub file_path: Option<String>,
    pub source_line: Option<u64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
    /// Create, or retire.
    pub action: super::JobAction,
}

/// A retirement `why` shows: what retired an indicator (`retired`).
#[derive(Debug, Clone, PartialEq)]
pub struct Retirement {
    pub owner: String,
    pub kind: String,
    pub value: String,
    pub feed: Option<String>,
    /// dropped, confirmed, max_age, expired, withdrawn.
    pub reason: String,
    pub action: String,
    /// Unix ms.
    pub at: i64,
}

/// A rejected row as `why` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectDetail {
    pub file_id: i64,
    pub file_path: String,
    pub line: u64,
    pub input: String,
    pub rule: RejectRule,
    pub reason: String,
}

const JOB_COLUMNS: &str = "j.id, j.owner, j.type, j.value, j.payload, j.state, j.steps_done, \
    j.attempts, j.next_attempt_at, j.last_error_class, j.last_http_status, j.last_error, \
    j.file_id, f.path, j.source_line, j.created_at, j.updated_at, j.delivered_at, j.action";

fn job_detail(r: &DbRow) -> anyhow::Result<JobDetail> {
    Ok(JobDetail {
        id: r.get(0),
        owner: r.get(1),
        kind: r.get(2),
        value: r.get(3),
        payload: r.get(4),
        state: r.get::<String, _>(5).parse()?,
        steps_done: r.get::<i64, _>(6) as u32,
        attempts: r.get::<i64, _>(7) as u32,
        next_attempt_at: r.get(8),
        last_error_class: r.get::<Option<String>, _>(9).and_then(|c| c.parse().ok()),
        last_http_status: r.get::<Option<i64>, _>(10).map(|s| s as u16),
        last_error: r.get(11),
        file_id: r.get(12),
        file_path: r.get(13),
        source_line: r.get::<Option<i64>, _>(14).map(|l| l as u64),
        created_at: r.get(15),
        updated_at: r.get(16),
        delivered_at: r.get(17),
        action: r.get::<String, _>(18).parse()?,
    })
}

impl Queue {
    /// The retirements of indicators whose summary is one of `values`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn retirements(&self, values: &[&str]) -> anyhow::Result<Vec<Retirement>> {
        let mut out = Vec::new();
        for v in values {
            let rows = query(
                "SELECT owner, type, value, feed, reason, action, retired_at FROM retired \
                 WHERE value = ? ORDER BY owner, type",
            )
            .bind(v)
            .fetch_all(&self.pool)
            .await?;
            out.extend(rows.iter().map(|r| Retirement {
                owner: r.get(0),
                kind: r.get(1),
                value: r.get(2),
                feed: r.get(3),
                reason: r.get(4),
                action: r.get(5),
                at: r.get(6),
            }));
        }
        Ok(out)
    }

    /// A file's counts by reason in `table` (`file_skips`,
    /// `file_filters`), most first.
    async fn reasons(&self, table: &str, file_id: i64) -> anyhow::Result<Vec<(String, u64)>> {
        let sql =
            format!("SELECT what, count FROM {table} WHERE file_id = ? ORDER BY count DESC, what");
        Ok(query(sqlx::AssertSqlSafe(sql))
            .bind(file_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| (r.get(0), r.get::<i64, _>(1) as u64))
            .collect())
    }

    /// The newest `limit` files and every file still being read, newest
    /// first, with their jobs counted by state.
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_progress(&self, limit: u64) -> anyhow::Result<Vec<FileProgress>> {
        let rows = query(
            "SELECT id, path, state, rows_read, rows_queued, rows_rejected, rows_duplicate, error, \
             started_at, finished_at, rows_skipped, rows_filtered FROM files \
             WHERE id IN (SELECT id FROM files ORDER BY id DESC LIMIT ?) OR state = 'processing' \
             ORDER BY id DESC",
        )
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.get(0);
            let n = |i: usize| r.get::<i64, _>(i) as u64;
            let mut p = FileProgress {
                id,
                path: r.get(1),
                state: r.get::<String, _>(2).parse()?,
                rows_read: n(3),
                rows_queued: n(4),
                rows_rejected: n(5),
                rows_duplicate: n(6),
                skipped: Vec::new(),
                filtered: Vec::new(),
                waiting: 0,
                delivered: 0,
                dead: 0,
                error: r.get(7),
                started_at: r.get(8),
                finished_at: r.get(9),
            };
            for c in query("SELECT state, COUNT(*) FROM jobs WHERE file_id = ? GROUP BY state")
                .bind(id)
                .fetch_all(&self.pool)
                .await?
            {
                let k = c.get::<i64, _>(1) as u64;
                match c.get::<String, _>(0).parse::<JobState>()? {
                    JobState::Delivered => p.delivered += k,
                    JobState::Dead => p.dead += k,
                    _ => p.waiting += k,
                }
            }
            if n(10) > 0 {
                p.skipped = self.reasons("file_skips", id).await?;
            }
            if n(11) > 0 {
                p.filtered = self.reasons("file_filters", id).await?;
            }
            out.push(p);
        }
        Ok(out)
    }

    /// A job by id.
    ///
    /// # Errors
    /// Database errors.
    pub async fn job_detail(&self, id: i64) -> anyhow::Result<Option<JobDetail>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j LEFT JOIN files f ON f.id = j.file_id WHERE j.id = ?"
        );
        query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_detail)
            .transpose()
    }

    /// Jobs whose value is one of `values` (newest first, at most 20). The
    /// value is not indexed: this reads the whole table, which `why` may.
    ///
    /// # Errors
    /// Database errors.
    pub async fn jobs_with_value(&self, values: &[&str]) -> anyhow::Result<Vec<JobDetail>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j LEFT JOIN files f ON f.id = j.file_id \
             WHERE j.value IN ({}) ORDER BY j.id DESC LIMIT 20",
            super::value_list("?", values.len())
        );
        let mut q = query(sqlx::AssertSqlSafe(sql));
        for v in values {
            q = q.bind(*v);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(job_detail)
            .collect()
    }

    /// The jobs from line `line` of file `file_id`.
    ///
    /// # Errors
    /// Database errors.
    pub async fn jobs_at_line(&self, file_id: i64, line: u64) -> anyhow::Result<Vec<JobDetail>> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs j LEFT JOIN files f ON f.id = j.file_id \
             WHERE j.file_id = ? AND j.source_line = ? ORDER BY j.id"
        );
        query(sqlx::AssertSqlSafe(sql))
            .bind(file_id)
            .bind(line as i64)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(job_detail)
            .collect()
    }

    /// Recorded files whose path is `name`, or whose path ends in `/name`
    /// (exactly: no pattern), newest first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn files_named(&self, name: &str) -> anyhow::Result<Vec<(i64, String)>> {
        Ok(query(
            "SELECT id, path FROM files WHERE path = ?1 \
             OR (length(path) > length(?1) AND substr(path, length(path) - length(?1)) = '/' || ?1) \
             ORDER BY id DESC",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
    }

    /// Rejected rows: those at `line` of `file_id`, or (without a file)
    /// those whose input is one of `inputs`; at most 20.
    ///
    /// # Errors
    /// Database errors.
    pub async fn reject_details(
        &self,
        at: Option<(i64, u64)>,
        inputs: &[&str],
    ) -> anyhow::Result<Vec<RejectDetail>> {
        let rows = match at {
            Some((file_id, line)) => {
                query(
                    "SELECT r.file_id, f.path, r.line, r.input, r.rule, r.reason FROM rejects r \
                     JOIN files f ON f.id = r.file_id WHERE r.file_id = ? AND r.line = ? LIMIT 20",
                )
                .bind(file_id)
                .bind(line as i64)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                let sql = format!(
                    "SELECT r.file_id, f.path, r.line, r.input, r.rule, r.reason FROM rejects r \
                     JOIN files f ON f.id = r.file_id WHERE r.input IN ({}) ORDER BY r.id DESC LIMIT 20",
                    super::value_list("?", inputs.len())
                );
                let mut q = query(sqlx::AssertSqlSafe(sql));
                for v in inputs {
                    q = q.bind(*v);
                }
                q.fetch_all(&self.pool).await?
            }
        };
        rows.iter()
            .map(|r| {
                Ok(RejectDetail {
                    file_id: r.get(0),
                    file_path: r.get(1),
                    line: r.get::<i64, _>(2) as u64,
                    input: r.get(3),
                    rule: r.get::<String, _>(4).parse()?,
                    reason: r.get(5),
                })
            })
            .collect()
    }

    /// The buried jobs `retry` would requeue, by class.
    ///
    /// # Errors
    /// Database errors.
    pub async fn dead_matching(&self, f: &RetryFilter) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(query(
            "SELECT COALESCE(last_error_class, 'unknown'), COUNT(*) FROM jobs \
             WHERE state = 'dead' AND (?1 IS NULL OR last_error_class = ?1) AND (?2 IS NULL OR owner = ?2) \
             AND (?3 IS NULL OR file_id IN (SELECT id FROM files WHERE path = ?3 \
                  OR (length(path) > length(?3) AND substr(path, length(path) - length(?3)) = '/' || ?3))) \
             GROUP BY 1",
        )
        .bind(f.class.map(ErrorClass::as_str))
        .bind(f.owner.as_deref())
        .bind(f.file.as_deref())
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| (r.get(0), r.get::<i64, _>(1) as u64))
        .collect())
    }

    /// The age of the oldest pending job (reads every pending row).
    ///
    /// # Errors
    /// Database errors.
    pub async fn oldest_pending(&self) -> anyhow::Result<Option<std::time::Duration>> {
        let oldest: Option<i64> = query("SELECT MIN(created_at) FROM jobs WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(oldest.map(|t| std::time::Duration::from_millis((now_ms() - t).max(0) as u64)))
    }

    /// How many delivered jobs `purge` would delete.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delivered_before(&self, age: std::time::Duration) -> anyhow::Result<u64> {
        Ok(
            query("SELECT COUNT(*) FROM jobs WHERE state = 'delivered' AND delivered_at < ?")
                .bind(now_ms() - ms(age))
                .fetch_one(&self.pool)
                .await?
                .get::<i64, _>(0) as u64,
        )
    }
}
