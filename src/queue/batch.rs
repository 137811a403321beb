//! Batch jobs (`batch_jobs`): which jobs go into one, its steps as they are
//! made durable, and what becomes of its jobs. A job in a batch job is in
//! state `batched` with `batch_ref` naming it; only jobs whose delivery has
//! not started (no step done, no call of unknown outcome) go by batch.

use super::sql::{DbRow, Tx, query, query_scalar};
use anyhow::Context;
use serde::Serialize;
use sqlx::{AssertSqlSafe, Row};

use super::due::{FRESH, pending_owners};
use super::{ErrorClass, Queue, Uncertainty, now_ms, value_list};

crate::names::named_enum! {
    /// Where a batch job is (`batch_jobs.state`), in the order they happen.
    pub enum BatchState ("batch job state") {
        /// Its jobs are chosen; ThreatConnect's job is not created yet.
        New => "new",
        /// ThreatConnect's job exists (`tc_batch_id`); no upload tried.
        Created => "created",
        /// An upload was tried: whether it arrived is checked before another.
        Uploading => "uploading",
        /// ThreatConnect acknowledged the data: only polled from now on.
        Uploaded => "uploaded",
        Done => "done",
        Failed => "failed",
    }
}

/// A batch job as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchJob {
    pub id: i64,
    pub owner: String,
    pub state: BatchState,
    pub tc_batch_id: Option<i64>,
    pub items: u64,
    pub data_bytes: u64,
    pub tc_status: Option<String>,
    pub upload_attempts: u32,
    pub polls: u32,
    /// Unix ms.
    pub created_at: i64,
    pub uploaded_at: Option<i64>,
}

/// A job as a batch item is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchCandidate {
    pub id: i64,
    pub kind: String,
    pub value: String,
    pub payload: String,
}

/// What became of a finished batch job's jobs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOutcome {
    /// Refused items: the job and ThreatConnect's reason (buried, class validation).
    pub refused: Vec<(i64, String)>,
    /// Not processed: back to pending, with `unprocessed_reason` recorded.
    pub unprocessed: Vec<i64>,
    pub unprocessed_reason: String,
    /// Perhaps processed (an error that names no item, or counts that do
    /// not add up): back to pending as calls of unknown outcome, to go per
    /// indicator at once, with `uncertain_reason` recorded.
    pub uncertain: Vec<i64>,
    pub uncertain_reason: String,
    /// How long unprocessed jobs wait before they are tried again (ms).
    pub retry_in_ms: i64,
    /// The numbers ThreatConnect gave, for the record.
    pub error_count: u64,
    pub success_count: u64,
    pub unprocess_count: u64,
}

const COLUMNS: &str = "id, owner, state, tc_batch_id, items, data_bytes, tc_status, \
                       upload_attempts, polls, created_at, uploaded_at";

fn batch_job(r: &DbRow) -> anyhow::Result<BatchJob> {
    Ok(BatchJob {
        id: r.get(0),
        owner: r.get(1),
        state: r.get::<&str, _>(2).parse()?,
        tc_batch_id: r.get(3),
        items: r.get::<i64, _>(4) as u64,
        data_bytes: r.get::<i64, _>(5) as u64,
        tc_status: r.get(6),
        upload_attempts: r.get::<i64, _>(7) as u32,
        polls: r.get::<i64, _>(8) as u32,
        created_at: r.get(9),
        uploaded_at: r.get(10),
    })
}

impl Queue {
    /// Per owner not held, how many due jobs could go by batch, counted up
    /// to `enough`: the dispatcher asks before its claims, so this reads at
    /// most `enough` rows per owner (`jobs_owner_due`), never a whole
    /// backlog.
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_backlog(&self, enough: u64) -> anyhow::Result<Vec<(String, u64)>> {
        let mut conn = self.pool.acquire().await?;
        let now = now_ms();
        let mut backlog = Vec::new();
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM jobs WHERE state = 'pending' \
             AND owner = ?1 AND next_attempt_at <= ?2 AND {FRESH} LIMIT ?3) AS ready"
        );
        for owner in pending_owners(&mut conn).await? {
            let n: i64 = query_scalar(AssertSqlSafe(sql.clone()))
                .bind(&owner)
                .bind(now)
                .bind(enough.min(i64::MAX as u64) as i64)
                .fetch_one(&mut *conn)
                .await?;
            if n > 0 {
                backlog.push((owner, n as u64));
            }
        }
        Ok(backlog)
    }

    /// Up to `n` of `owner`'s jobs that could go by batch, oldest due first.
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_candidates(
        &self,
        owner: &str,
        n: usize,
    ) -> anyhow::Result<Vec<BatchCandidate>> {
        let sql = format!(
            "SELECT id, type, value, payload FROM jobs WHERE state = 'pending' \
             AND next_attempt_at <= ?1 AND {FRESH} \
             AND owner NOT IN (SELECT owner FROM held_owners) AND owner = ?2 \
             ORDER BY next_attempt_at, id LIMIT ?3"
        );
        let rows = query(AssertSqlSafe(sql))
            .bind(now_ms())
            .bind(owner)
            .bind(n as i64)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(candidate).collect())
    }

    /// Makes a batch job of those of `ids` still pending (state `new`), in
    /// one transaction; `None` when none was. Its items are then exactly
    /// [`Queue::batch_items`].
    ///
    /// # Errors
    /// Database errors.
    pub async fn form_batch(
        &self,
        owner: &str,
        ids: &[i64],
        data_bytes: usize,
    ) -> anyhow::Result<Option<BatchJob>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let id: i64 = query_scalar(
            "INSERT INTO batch_jobs (owner, items, data_bytes, created_at) VALUES (?, ?, ?, ?) \
             RETURNING id",
        )
        .bind(owner)
        .bind(ids.len() as i64)
        .bind(data_bytes as i64)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let mut taken = 0;
        for chunk in ids.chunks(500) {
            // Still batchable: the dispatcher may have claimed one since it
            // was chosen, and given it back with a step done.
            let sql = format!(
                "UPDATE jobs SET state = 'batched', batch_ref = ?, updated_at = ? \
                 WHERE state = 'pending' AND {FRESH} \
                 AND next_attempt_at <= ? AND id IN ({})",
                value_list("?", chunk.len())
            );
            let mut q = query(AssertSqlSafe(sql)).bind(id).bind(now).bind(now);
            for j in chunk {
                q = q.bind(j);
            }
            taken += q.execute(&mut *tx).await?.rows_affected();
        }
        if taken == 0 {
            return Ok(None); // the transaction rolls back
        }
        query("UPDATE batch_jobs SET items = ? WHERE id = ?")
            .bind(taken as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let row = query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM batch_jobs WHERE id = ?"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await.context("forming a batch job")?;
        Ok(Some(batch_job(&row)?))
    }

    /// The jobs of a batch job in item order (by id): its data file is
    /// built from them, the same after a restart.
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_items(&self, batch: i64) -> anyhow::Result<Vec<BatchCandidate>> {
        let rows = query(
            "SELECT id, type, value, payload FROM jobs WHERE state = 'batched' AND batch_ref = ? \
             ORDER BY id",
        )
        .bind(batch)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(candidate).collect())
    }

    /// Batch jobs not done or failed, oldest first (resumed at start).
    ///
    /// # Errors
    /// Database errors.
    pub async fn open_batches(&self) -> anyhow::Result<Vec<BatchJob>> {
        let rows = query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM batch_jobs WHERE state NOT IN ('done', 'failed') ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_job).collect()
    }

    /// Records ThreatConnect's id of the job (state `created`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_created(&self, batch: i64, tc_batch_id: i64) -> anyhow::Result<()> {
        self.set_batch(
            "UPDATE batch_jobs SET state = 'created', tc_batch_id = ?1 WHERE id = ?2",
            tc_batch_id,
            batch,
        )
        .await
    }

    /// Records that an upload is about to be tried (state `uploading`):
    /// after a crash, its arrival is checked before another.
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_uploading(&self, batch: i64) -> anyhow::Result<()> {
        self.set_batch(
            "UPDATE batch_jobs SET state = 'uploading', upload_attempts = upload_attempts + ?1 \
             WHERE id = ?2",
            1,
            batch,
        )
        .await
    }

    /// Records that ThreatConnect has the data (state `uploaded`).
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_uploaded(&self, batch: i64) -> anyhow::Result<()> {
        self.set_batch(
            "UPDATE batch_jobs SET state = 'uploaded', uploaded_at = ?1 WHERE id = ?2",
            now_ms(),
            batch,
        )
        .await
    }

    /// Records a poll's answer.
    ///
    /// # Errors
    /// Database errors.
    pub async fn batch_polled(&self, batch: i64, tc_status: &str) -> anyhow::Result<()> {
        query("UPDATE batch_jobs SET tc_status = ?, polls = polls + 1 WHERE id = ?")
            .bind(tc_status)
            .bind(batch)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// A step that must be on disk before the next call (its id before the
    /// upload, `uploading` before the upload is sent): committed with
    /// synchronous=FULL, so that not even a power loss forgets it.
    async fn set_batch(&self, sql: &'static str, value: i64, batch: i64) -> anyhow::Result<()> {
        self.fully_synced(async |conn| {
            query(sql)
                .bind(value)
                .bind(batch)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
        .context("recording a batch job's step")
    }

    /// Applies a completed batch job in one transaction: refused items'
    /// jobs are buried with ThreatConnect's reason, unprocessed ones go back
    /// to pending, every other job of it is delivered.
    ///
    /// # Errors
    /// Database errors.
    pub async fn finish_batch(&self, batch: i64, outcome: &BatchOutcome) -> anyhow::Result<()> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for (job, reason) in &outcome.refused {
            query(
                "UPDATE jobs SET state = 'dead', last_error_class = ?, last_http_status = NULL, \
                 last_error = ?, updated_at = ? WHERE id = ? AND state = 'batched' AND batch_ref = ?",
            )
            .bind(ErrorClass::Validation.as_str())
            .bind(reason)
            .bind(now)
            .bind(job)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        }
        // Unprocessed jobs count an attempt and wait `retry_in`; from their
        // third, they go per indicator (an item that stops every batch job it
        // is in must not stop them forever). Perhaps-processed ones go per
        // indicator at once, every attribute looked for first (2).
        let sets = [
            (
                &outcome.unprocessed,
                Uncertainty::None,
                now + outcome.retry_in_ms,
                &outcome.unprocessed_reason,
            ),
            (
                &outcome.uncertain,
                Uncertainty::Batch,
                now,
                &outcome.uncertain_reason,
            ),
        ];
        for (ids, uncertain, due, reason) in sets {
            return_to_pending(&mut tx, batch, ids, uncertain, due, now, reason).await?;
        }
        query(
            "UPDATE jobs SET state = 'delivered', delivered_at = ?1, updated_at = ?1, \
             attempts = 0, last_error_class = NULL, last_http_status = NULL, last_error = NULL \
             WHERE state = 'batched' AND batch_ref = ?2",
        )
        .bind(now)
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        query(
            "UPDATE batch_jobs SET state = 'done', tc_status = 'Completed', finished_at = ?, \
             error_count = ?, success_count = ?, unprocess_count = ?, error = ? WHERE id = ?",
        )
        .bind(now)
        .bind(outcome.error_count as i64)
        .bind(outcome.success_count as i64)
        .bind(outcome.unprocess_count as i64)
        .bind((!outcome.unprocessed.is_empty()).then_some(&outcome.unprocessed_reason))
        .bind(batch)
        .execute(&mut *tx)
        .await?;
        tx.commit()
            .await
            .context("recording a batch job's results")?;
        Ok(())
    }

    /// Gives a batch job up (state `failed`, `error` says why) and returns
    /// its jobs to pending, due at `due` (Unix ms), at least as uncertain as
    /// `uncertain` ([`Uncertainty::Batch`] when ThreatConnect may have
    /// processed it all the same: they go per indicator, where every
    /// attribute is looked for before it is sent, never by batch).
    /// `class`, when given, is recorded on the jobs (and counts an attempt).
    ///
    /// # Errors
    /// Database errors.
    pub async fn abandon_batch(
        &self,
        batch: i64,
        error: &str,
        uncertain: Uncertainty,
        class: Option<ErrorClass>,
        due: i64,
    ) -> anyhow::Result<u64> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let n = query(
            "UPDATE jobs SET state = 'pending', next_attempt_at = ?1, updated_at = ?2, \
             call_uncertain = CASE WHEN call_uncertain > ?3 THEN call_uncertain ELSE ?3 END, \
             attempts = attempts + CASE WHEN ?4 IS NULL THEN 0 ELSE 1 END, \
             last_error_class = COALESCE(?4, last_error_class), \
             last_error = CASE WHEN ?4 IS NULL THEN last_error ELSE ?5 END \
             WHERE state = 'batched' AND batch_ref = ?6",
        )
        .bind(due)
        .bind(now)
        .bind(uncertain.column())
        .bind(class.map(ErrorClass::as_str))
        .bind(error)
        .bind(batch)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        query("UPDATE batch_jobs SET state = 'failed', finished_at = ?, error = ? WHERE id = ?")
            .bind(now)
            .bind(error)
            .bind(batch)
            .execute(&mut *tx)
            .await?;
        tx.commit().await.context("giving a batch job up")?;
        Ok(n)
    }
}

fn candidate(r: &DbRow) -> BatchCandidate {
    BatchCandidate {
        id: r.get(0),
        kind: r.get(1),
        value: r.get(2),
        payload: r.get(3),
    }
}

impl Queue {
    /// Buries a pending job whose row does not parse (inserted by hand), so
    /// that batch mode, which cannot send it, does not leave it waiting.
    ///
    /// # Errors
    /// Database errors.
    pub async fn bury_invalid(&self, job: i64, message: &str) -> anyhow::Result<()> {
        query(
            "UPDATE jobs SET state = 'dead', last_error_class = ?, last_error = ?, updated_at = ? \
             WHERE id = ? AND state = 'pending'",
        )
        .bind(ErrorClass::InvalidJob.as_str())
        .bind(message)
        .bind(now_ms())
        .bind(job)
        .execute(&mut *self.writer().await?)
        .await?;
        Ok(())
    }
}

/// Returns a completed batch job's `ids` to pending, due at `due`, at least
/// as uncertain as `uncertain`, counting an attempt: from the third, they
/// go per indicator (an item that stops every batch job it is in must not
/// stop them forever).
async fn return_to_pending(
    tx: &mut Tx,
    batch: i64,
    ids: &[i64],
    uncertain: Uncertainty,
    due: i64,
    now: i64,
    reason: &str,
) -> anyhow::Result<()> {
    for chunk in ids.chunks(500) {
        let sql = format!(
            "UPDATE jobs SET state = 'pending', next_attempt_at = ?1, updated_at = ?2, \
             last_error_class = ?3, last_error = ?4, attempts = attempts + 1, \
             call_uncertain = CASE WHEN ?5 > CASE WHEN attempts + 1 >= 3 THEN ?6 ELSE ?7 END \
               THEN ?5 ELSE CASE WHEN attempts + 1 >= 3 THEN ?6 ELSE ?7 END END \
             WHERE state = 'batched' AND batch_ref = ?8 AND id IN ({})",
            value_list("?", chunk.len())
        );
        let mut q = query(AssertSqlSafe(sql))
            .bind(due)
            .bind(now)
            .bind(ErrorClass::BatchFailed.as_str())
            .bind(reason)
            .bind(uncertain.column())
            .bind(Uncertainty::Call.column())
            .bind(Uncertainty::None.column())
            .bind(batch);
        for j in chunk {
            q = q.bind(j);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}
