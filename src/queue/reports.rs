//! Counts and reports for `status`, `run --once` and maintenance: requeue and prune.

use super::sql::query;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Row};

use super::due::FRESH;

use super::{
    ErrorClass, FileState, JobRow, JobState, Outstanding, Queue, RetryFilter, StateCounts, Stats,
    ms, now_ms,
};

impl Queue {
    /// Requeues buried jobs matching the filter; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn requeue_dead(&self, f: &RetryFilter) -> anyhow::Result<u64> {
        let now = now_ms();
        Ok(query(
            "UPDATE jobs SET state = 'pending', attempts = 0, next_attempt_at = ?1, updated_at = ?1 \
             WHERE state = 'dead' AND (?2 IS NULL OR last_error_class = ?2) AND (?3 IS NULL OR owner = ?3) \
             AND (?4 IS NULL OR file_id IN (SELECT id FROM files WHERE path = ?4 \
                  OR (length(path) > length(?4) AND substr(path, length(path) - length(?4)) = '/' || ?4)))",
        )
        .bind(now)
        .bind(f.class.map(ErrorClass::as_str))
        .bind(f.owner.as_deref())
        .bind(f.file.as_deref())
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected())
    }

    /// Deletes delivered jobs delivered before `age` ago; returns how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn prune_delivered(&self, age: Duration) -> anyhow::Result<u64> {
        Ok(
            query("DELETE FROM jobs WHERE state = 'delivered' AND delivered_at < ?")
                .bind(now_ms() - ms(age))
                .execute(&mut *self.writer().await?)
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
        Ok(query(
            "DELETE FROM rejects WHERE file_id IN (SELECT id FROM files WHERE finished_at < ?)",
        )
        .bind(now_ms() - ms(age))
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected())
    }

    /// What is left to do, read in one snapshot (separate reads could see a
    /// job in neither state while it moves from pending to leased).
    ///
    /// # Errors
    /// Database errors.
    pub async fn outstanding(&self) -> anyhow::Result<Outstanding> {
        // One statement reads one snapshot; each part is one probe of its
        // partial index (`run --once` asks every 100 ms).
        let row = query(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM jobs WHERE state = 'leased') \
               OR EXISTS (SELECT 1 FROM jobs WHERE state = 'batched') THEN 1 ELSE 0 END, \
               (SELECT MIN(next_attempt_at) FROM jobs WHERE state = 'pending' \
                AND owner NOT IN (SELECT owner FROM held_owners))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(Outstanding {
            in_flight: row.get::<i64, _>(0) != 0,
            next_due: row.get(1),
        })
    }

    /// Counts of the states that wait for work, and deliveries since
    /// `since_ms`, each read from its partial index: no table scan, but a
    /// count still reads the whole index of its state (18 ms at 300,000
    /// pending jobs), so it is for the maintenance tick and progress
    /// displays, not for tight loops.
    ///
    /// # Errors
    /// Database errors.
    pub async fn state_counts(&self, since_ms: i64) -> anyhow::Result<StateCounts> {
        let row = query(
            "SELECT \
               (SELECT COUNT(*) FROM jobs WHERE state = 'pending'), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'leased'), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'held'), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'dead'), \
               (SELECT COUNT(*) FROM jobs WHERE delivered_at >= ?), \
               (SELECT COUNT(*) FROM jobs WHERE state = 'batched')",
        )
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        let n = |i: usize| row.get::<i64, _>(i) as u64;
        Ok(StateCounts {
            pending: n(0),
            leased: n(1),
            held: n(2),
            dead: n(3),
            delivered_since: n(4),
            batched: n(5),
        })
    }

    /// Everything `status` shows.
    ///
    /// # Errors
    /// Database errors.
    pub async fn stats(&self) -> anyhow::Result<Stats> {
        let mut s = Stats::default();
        let rows =
            query("SELECT state, owner, type, COUNT(*) FROM jobs GROUP BY state, owner, type")
                .fetch_all(&self.pool)
                .await?;
        for r in &rows {
            let (state, owner, kind, n): (String, String, String, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let state: JobState = state.parse()?;
            let n = n as u64;
            *s.by_state.entry(state).or_default() += n;
            *s.by_owner
                .entry(owner)
                .or_default()
                .entry(state)
                .or_default() += n;
            *s.by_type.entry(kind).or_default().entry(state).or_default() += n;
        }
        for r in query("SELECT COALESCE(last_error_class, 'unknown'), COUNT(*) FROM jobs WHERE state = 'dead' GROUP BY 1")
            .fetch_all(&self.pool)
            .await?
        {
            s.dead_by_class.insert(r.get(0), r.get::<i64, _>(1) as u64);
        }
        s.held_owners = self.held_owners().await?;
        s.pause = self.pause().await?;
        let now = now_ms();
        let oldest: Option<i64> = query("SELECT MIN(created_at) FROM jobs WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        s.oldest_pending_secs = oldest.map(|t| ((now - t).max(0) / 1000) as u64);
        let row = query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN delivered_at >= ?1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
             COUNT(*) FROM jobs WHERE delivered_at >= ?2",
        )
        .bind(now - 60_000)
        .bind(now - 3_600_000)
        .fetch_one(&self.pool)
        .await?;
        s.delivered_last_minute = row.get::<i64, _>(0) as u64;
        s.delivered_last_hour = row.get::<i64, _>(1) as u64;
        for r in query(
            "SELECT state, COUNT(*), CAST(COALESCE(SUM(rows_rejected), 0) AS BIGINT) FROM files GROUP BY state",
        )
        .fetch_all(&self.pool)
        .await?
        {
            let state: FileState = r.get::<String, _>(0).parse()?;
            s.files_by_state.insert(state, r.get::<i64, _>(1) as u64);
            s.rows_rejected += r.get::<i64, _>(2) as u64;
        }
        s.batches = self.open_batches().await?;
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
    pub async fn jobs_in_state(&self, state: JobState) -> anyhow::Result<Vec<JobRow>> {
        let rows = query(
            "SELECT id, owner, type, value, steps_done, attempts, last_error_class, last_http_status, last_error \
             FROM jobs WHERE state = ? ORDER BY id",
        )
        .bind(state.as_str())
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
                last_error_class: r
                    .get::<Option<String>, _>(6)
                    .and_then(|c| c.parse::<ErrorClass>().ok()),
                last_http_status: r.get::<Option<i64>, _>(7).map(|s| s as u16),
                last_error: r.get(8),
            })
            .collect())
    }

    /// Counts jobs (benchmarks and tests).
    ///
    /// # Errors
    /// Database errors.
    pub async fn count(&self, state: Option<JobState>) -> anyhow::Result<u64> {
        Ok(
            query("SELECT COUNT(*) FROM jobs WHERE ?1 IS NULL OR state = ?1")
                .bind(state.map(JobState::as_str))
                .fetch_one(&self.pool)
                .await?
                .get::<i64, _>(0) as u64,
        )
    }
}

impl Queue {
    /// Waiting creates (pending or held) not begun (no call done, none of
    /// unknown outcome: their indicator may exist already) after job
    /// `after`, at most `limit`, in id order: id, type and value (`purge
    /// --allowlisted` walks them).
    ///
    /// # Errors
    /// Database errors.
    pub async fn waiting_values(
        &self,
        after: i64,
        limit: u32,
    ) -> anyhow::Result<Vec<(i64, String, String)>> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT id, type, value FROM jobs WHERE id > ? AND state IN ('pending', 'held') \
             AND {FRESH} ORDER BY id LIMIT ?"
        )))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Deletes those of `ids` still waiting (a job claimed meanwhile is
    /// left to finish); how many.
    ///
    /// # Errors
    /// Database errors.
    pub async fn delete_waiting(&self, ids: &[i64]) -> anyhow::Result<u64> {
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for id in ids {
            n += query(AssertSqlSafe(format!(
                "DELETE FROM jobs WHERE id = ? AND state IN ('pending', 'held') AND {FRESH}"
            )))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }
}
