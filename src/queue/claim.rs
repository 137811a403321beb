//! Claiming jobs for delivery and applying what became of them, fenced by
//! the lease token: a result applies only while its claim still holds.

use super::sql::{Conn, Dialect, query};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use sqlx::{AssertSqlSafe, Row};

use super::due::{STARTED, pending_owners};
use super::{
    BatchOwners, Job, JobAction, JobState, JobUpdate, Lease, Queue, Uncertainty, ms, now_ms,
    value_list,
};

/// Leases per statement when many are renewed or delivered at once.
const LEASES_PER_STATEMENT: usize = 500;

/// Items of leases, grouped by lease token and cut into statement-sized
/// chunks of `(id, item)`: a group commit or a renewal holds the jobs of a
/// few claims, and `lease_token = ? AND id IN (...)` is a primary-key lookup.
fn by_token<T>(items: impl IntoIterator<Item = (Lease, T)>) -> Vec<(i64, Vec<(i64, T)>)> {
    let mut groups: BTreeMap<i64, Vec<(i64, T)>> = BTreeMap::new();
    for (l, item) in items {
        groups.entry(l.token).or_default().push((l.id, item));
    }
    let mut chunks = Vec::new();
    for (token, mut all) in groups {
        while !all.is_empty() {
            let rest = all.split_off(all.len().min(LEASES_PER_STATEMENT));
            chunks.push((token, std::mem::replace(&mut all, rest)));
        }
    }
    chunks
}

/// The ids of up to `n` due jobs to claim when some owners go by batch,
/// oldest due first: per owner, its due jobs, or of a batch owner only
/// those that cannot go by batch (`jobs_owner_started`).
async fn due_by_owner(
    conn: &mut Conn,
    n: usize,
    now: i64,
    batching: &BatchOwners,
) -> anyhow::Result<Vec<i64>> {
    let mut due: Vec<(i64, i64)> = Vec::new();
    for owner in pending_owners(conn).await? {
        // The started-job condition is written as in the index's WHERE,
        // which SQLite needs to use a partial index.
        let only_started = if batching.batches(&owner) {
            format!("AND {STARTED}")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT next_attempt_at, id FROM jobs WHERE state = 'pending' {only_started} \
             AND owner = ?1 AND next_attempt_at <= ?2 ORDER BY next_attempt_at, id LIMIT ?3"
        );
        let rows = query(AssertSqlSafe(sql))
            .bind(&owner)
            .bind(now)
            .bind(n as i64)
            .fetch_all(&mut *conn)
            .await
            .context("finding due jobs")?;
        due.extend(
            rows.iter()
                .map(|r| (r.get::<i64, _>(0), r.get::<i64, _>(1))),
        );
    }
    due.sort_unstable();
    due.truncate(n);
    Ok(due.into_iter().map(|(_, id)| id).collect())
}

impl Queue {
    /// Leases up to `n` due jobs of owners that are not held, under a new
    /// lease token, oldest due first. Of the owners that go by batch, only
    /// jobs that cannot (a step done, or a call of unknown outcome) are
    /// taken.
    ///
    /// # Errors
    /// Database errors.
    pub async fn claim(
        &self,
        n: usize,
        lease: Duration,
        batching: &BatchOwners,
    ) -> anyhow::Result<Vec<Job>> {
        let now = now_ms();
        // Random and 63-bit: a token never repeats in practice, so a stale
        // worker can never match a later claim of the same job.
        let token = (fastrand::u64(..) >> 1) as i64;
        let returning = "RETURNING id, owner, type, value, payload, steps_done, attempts, call_uncertain, action";
        let rows = if batching.is_none() {
            // The oldest due jobs, straight off the due index; on a shared
            // queue, skipping those another daemon is claiming. Picked once
            // (MATERIALIZED): PostgreSQL may run a subquery of `IN` again
            // for each row it updates, and a LIMIT under SKIP LOCKED then
            // picks more rows than asked.
            let skip = self.dialect.skip_locked();
            query(AssertSqlSafe(format!(
                "WITH picked AS MATERIALIZED ( \
                   SELECT id FROM jobs WHERE state = 'pending' AND next_attempt_at <= ?3 \
                   AND owner NOT IN (SELECT owner FROM held_owners) \
                   ORDER BY next_attempt_at, id LIMIT ?4{skip}) \
                 UPDATE jobs SET state = 'leased', lease_token = ?1, lease_expires_at = ?2, \
                 updated_at = ?3, leased_by = ?5 WHERE state = 'pending' AND id IN (SELECT id FROM picked) {returning}"
            )))
            .bind(token)
            .bind(now + ms(lease))
            .bind(now)
            .bind(n as i64)
            .bind(&*self.member)
            .fetch_all(&mut *self.writer().await?)
            .await
            .context("claiming jobs")?
        } else {
            // Owner by owner: a batch owner's backlog of fresh jobs (which
            // may be millions) is never read, only its few started ones.
            let mut tx = self.begin_write().await?;
            let ids = due_by_owner(&mut tx, n, now, batching).await?;
            if ids.is_empty() {
                tx.commit().await?;
                return Ok(Vec::new());
            }
            // Anonymous parameters only (never mixed with numbered ones).
            let sql = format!(
                "UPDATE jobs SET state = 'leased', lease_token = ?, lease_expires_at = ?, \
                 updated_at = ?, leased_by = ? WHERE state = 'pending' AND id IN ({}) {returning}",
                value_list("?", ids.len())
            );
            let mut q = query(AssertSqlSafe(sql))
                .persistent(false)
                .bind(token)
                .bind(now + ms(lease))
                .bind(now)
                .bind(&*self.member);
            for id in &ids {
                q = q.bind(id);
            }
            let rows = q.fetch_all(&mut *tx).await.context("claiming jobs")?;
            tx.commit().await.context("claiming jobs")?;
            rows
        };
        let mut jobs: Vec<Job> = rows
            .iter()
            .map(|r| Job {
                lease: Lease {
                    id: r.get(0),
                    token,
                },
                owner: r.get(1),
                kind: r.get(2),
                value: r.get(3),
                payload: r.get(4),
                steps_done: r.get::<i64, _>(5) as u32,
                attempts: r.get::<i64, _>(6) as u32,
                uncertain: Uncertainty::from_column(r.get(7)),
                // The schema's CHECK lists every name.
                action: r.get::<&str, _>(8).parse().unwrap_or(JobAction::Create),
            })
            .collect();
        jobs.sort_by_key(|j| j.lease.id);
        Ok(jobs)
    }

    /// Extends the leases still held with these tokens to `lease` from now,
    /// in one transaction; returns how many were still held.
    ///
    /// # Errors
    /// Database errors.
    pub async fn renew_leases(&self, leases: &[Lease], lease: Duration) -> anyhow::Result<u64> {
        let until = now_ms() + ms(lease);
        let mut changed = 0;
        let mut tx = self.begin_write().await.context("renewing leases")?;
        for (token, chunk) in by_token(leases.iter().map(|l| (*l, ()))) {
            let sql = format!(
                "UPDATE jobs SET lease_expires_at = ? WHERE state = 'leased' AND lease_token = ? \
                 AND id IN ({})",
                value_list("?", chunk.len())
            );
            let mut q = query(AssertSqlSafe(sql))
                .persistent(chunk.len() == LEASES_PER_STATEMENT)
                .bind(until)
                .bind(token);
            for (id, ()) in &chunk {
                q = q.bind(id);
            }
            changed += q
                .execute(&mut *tx)
                .await
                .context("renewing leases")?
                .rows_affected();
        }
        tx.commit().await.context("renewing leases")?;
        Ok(changed)
    }

    /// Applies delivery results in one transaction (a group commit). Each
    /// applies only while its lease still holds; the answer says, per
    /// update, whether it did (false: the lease was taken over, and the
    /// result was dropped).
    ///
    /// # Errors
    /// Database errors.
    pub async fn apply(
        &self,
        updates: &[(Lease, JobUpdate)],
        lease: Duration,
    ) -> anyhow::Result<Vec<bool>> {
        if updates.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let applied = apply_in(&mut tx, updates, now_ms(), lease)
            .await
            .context("recording delivery results")?;
        tx.commit().await.context("committing delivery results")?;
        Ok(applied)
    }

    /// Returns every lease to pending: at daemon start (holding the lock,
    /// every lease is an orphan of a previous run) and at shutdown. Their
    /// current call may have been in flight: it is marked uncertain.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_all_leases(&self) -> anyhow::Result<u64> {
        self.release_leases_of(None).await
    }

    /// Returns this daemon's leases to pending: on SQLite every lease (one
    /// daemon per queue), on a shared queue those of its claims, of this
    /// run or of a run before it that was killed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn release_own_leases(&self) -> anyhow::Result<u64> {
        match self.dialect {
            Dialect::Sqlite => self.release_all_leases().await,
            Dialect::Postgres => self.release_leases_of(Some(&self.member)).await,
        }
    }

    /// Returns leased jobs to pending: every one, or those `holder` claimed.
    async fn release_leases_of(&self, holder: Option<&str>) -> anyhow::Result<u64> {
        let and = if holder.is_some() {
            " AND leased_by = ?2"
        } else {
            ""
        };
        let q = query(AssertSqlSafe(format!(
            "UPDATE jobs SET state = 'pending', lease_expires_at = NULL, lease_token = NULL, \
             call_uncertain = CASE WHEN call_uncertain > 1 THEN call_uncertain ELSE 1 END, updated_at = ?1 \
             WHERE state = 'leased'{and}"
        )))
        .bind(now_ms());
        let q = match holder {
            Some(h) => q.bind(h),
            None => q,
        };
        Ok(q.execute(&mut *self.writer().await?).await?.rows_affected())
    }

    /// Returns expired leases to pending (their holder stopped renewing
    /// them: its call, if any, is uncertain).
    ///
    /// # Errors
    /// Database errors.
    pub async fn reclaim_expired_leases(&self) -> anyhow::Result<u64> {
        Ok(query(
            "UPDATE jobs SET state = 'pending', lease_expires_at = NULL, lease_token = NULL, \
             call_uncertain = CASE WHEN call_uncertain > 1 THEN call_uncertain ELSE 1 END, updated_at = ?1 \
             WHERE state = 'leased' AND lease_expires_at < ?1",
        )
        .bind(now_ms())
        .execute(&mut *self.writer().await?)
        .await?
        .rows_affected())
    }
}

/// One group commit's statements. Delivered jobs, the common case, go in
/// bulk ([`by_token`]), judged by the rows changed: each statement is a
/// round trip to the connection's thread.
async fn apply_in(
    conn: &mut Conn,
    updates: &[(Lease, JobUpdate)],
    now: i64,
    lease: Duration,
) -> anyhow::Result<Vec<bool>> {
    let mut applied = vec![false; updates.len()];
    let delivered = updates
        .iter()
        .enumerate()
        .filter(|(_, (_, u))| matches!(u, JobUpdate::Delivered))
        .map(|(i, (l, _))| (*l, i));
    for (token, chunk) in by_token(delivered) {
        let ids = value_list("?", chunk.len());
        let sql = format!(
            "UPDATE jobs SET state = 'delivered', delivered_at = ?, updated_at = ?, \
             lease_expires_at = NULL, lease_token = NULL, call_uncertain = 0, \
             last_error_class = NULL, last_http_status = NULL, last_error = NULL \
             WHERE state = 'leased' AND lease_token = ? AND id IN ({ids})"
        );
        let mut q = query(AssertSqlSafe(sql))
            .persistent(chunk.len() == LEASES_PER_STATEMENT)
            .bind(now)
            .bind(now)
            .bind(token);
        for (id, _) in &chunk {
            q = q.bind(id);
        }
        let n = q.execute(&mut *conn).await?.rows_affected();
        if n == chunk.len() as u64 {
            for (_, i) in &chunk {
                applied[*i] = true;
            }
            continue;
        }
        // Some leases were taken over: the rows this statement changed are
        // the ones now delivered at `now` (a stale lease's job is leased
        // again, under another token).
        let sql = format!(
            "SELECT id FROM jobs WHERE state = 'delivered' AND delivered_at = ? AND id IN ({ids})"
        );
        let mut q = query(AssertSqlSafe(sql)).persistent(false).bind(now);
        for (id, _) in &chunk {
            q = q.bind(id);
        }
        let done: HashSet<i64> = q
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for (id, i) in &chunk {
            applied[*i] = done.contains(id);
        }
    }
    for (i, (l, u)) in updates.iter().enumerate() {
        let Some(q) = result_statement(u, now, lease) else {
            continue;
        };
        applied[i] = q
            .bind(l.id)
            .bind(l.token)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            > 0;
    }
    Ok(applied)
}

type Statement<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// The statement that records one result other than `Delivered` (those go
/// in bulk), still missing the lease's id and token, bound last; prepared
/// once and kept.
fn result_statement(u: &JobUpdate, now: i64, lease: Duration) -> Option<Statement<'_>> {
    Some(match u {
        JobUpdate::Delivered => return None,
        JobUpdate::Progress { steps_done } => query(
            "UPDATE jobs SET steps_done = ?, attempts = 0, \
             call_uncertain = CASE WHEN call_uncertain = 2 THEN 2 ELSE 0 END, \
             lease_expires_at = ?, updated_at = ? \
             WHERE id = ? AND lease_token = ? AND state = 'leased'",
        )
        .bind(i64::from(*steps_done))
        .bind(now + ms(lease))
        .bind(now),
        JobUpdate::Retry {
            at,
            failed,
            uncertain,
            error,
        } => query(
            "UPDATE jobs SET state = 'pending', next_attempt_at = ?, attempts = attempts + ?, \
             call_uncertain = CASE WHEN call_uncertain = 2 THEN 2 ELSE ? END, lease_expires_at = NULL, lease_token = NULL, \
             updated_at = ?, last_error_class = COALESCE(?, last_error_class), \
             last_http_status = COALESCE(?, last_http_status), last_error = COALESCE(?, last_error) \
             WHERE id = ? AND lease_token = ? AND state = 'leased'",
        )
        .bind(at)
        .bind(i64::from(*failed))
        .bind(i64::from(*uncertain))
        .bind(now)
        .bind(error.as_ref().map(|e| e.class.as_str()))
        .bind(error.as_ref().and_then(|e| e.http_status).map(i64::from))
        .bind(error.as_ref().map(|e| e.message.as_str())),
        JobUpdate::Bury { error } | JobUpdate::Hold { error } => query(
            "UPDATE jobs SET state = ?, attempts = attempts + ?, lease_expires_at = NULL, \
             lease_token = NULL, updated_at = ?, last_error_class = ?, last_http_status = ?, \
             last_error = ? WHERE id = ? AND lease_token = ? AND state = 'leased'",
        )
        .bind(if matches!(u, JobUpdate::Bury { .. }) {
            JobState::Dead.as_str()
        } else {
            JobState::Held.as_str()
        })
        .bind(i64::from(matches!(u, JobUpdate::Bury { .. })))
        .bind(now)
        .bind(error.class.as_str())
        .bind(error.http_status.map(i64::from))
        .bind(error.message.as_str()),
    })
}
