//! Claiming jobs for delivery and applying what became of them.

use std::time::Duration;

use anyhow::Context;
use sqlx::{AssertSqlSafe, Row};

use super::{Job, JobUpdate, Queue, ms, now_ms};

impl Queue {
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
}
