//! One chunk of a feed file: its jobs, rejects and progress in one transaction.

use super::sql::{Tx, query};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use anyhow::Context;
use sqlx::{AssertSqlSafe, Row};

use super::{
    ChunkResult, FileChunk, JobAction, JobState, NewJob, NewReject, Queue, ms, now_ms, value_list,
};
use crate::indicator::IndicatorType;

/// Rows per multi-row INSERT: 7 binds a row stays well under SQLite's limit of 32766.
const INSERT_ROWS: usize = 1000;

impl Queue {
    /// Commits one chunk of a file in one transaction: its jobs (minus
    /// duplicates), its rejects, and the file's progress, so a crash leaves
    /// either all of the chunk or none of it. Kept whole (a little over 80
    /// lines) so the transaction's extent is visible at once.
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
        let chunk = FileChunk {
            jobs,
            rejects,
            skipped: &[],
            filtered: &[],
            feed: None,
            withdrawn: &[],
            retiring: super::Retiring::default(),
            rows_read,
            last_position,
        };
        self.commit_file_chunk(file_id, &chunk, dedup_window).await
    }

    /// As [`Queue::commit_chunk`], with the rows skipped by reason. Jobs
    /// from a source object (`payload.external_id`) are mapped to it in
    /// `external_ids`, and one older than a version of the object already
    /// seen is dropped as a duplicate.
    ///
    /// # Errors
    /// Database errors.
    pub async fn commit_file_chunk(
        &self,
        file_id: Option<i64>,
        chunk: &FileChunk<'_>,
        dedup_window: Duration,
    ) -> anyhow::Result<ChunkResult> {
        let FileChunk { jobs, rejects, .. } = *chunk;
        let now = now_ms();
        let window_start = now - ms(dedup_window);
        let mut tx = self
            .begin_write()
            .await
            .context("starting a queue transaction")?;

        // Jobs of a held owner wait as `held` from the start.
        let held: HashSet<String> = query("SELECT owner FROM held_owners")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let current = super::external::newer_than_seen(&mut tx, jobs).await?;
        let stale = jobs.len() - current.len();
        // Indicators tc-ingest retired that are listed again come back
        // active, whatever the deduplication window says.
        let back = super::retire::coming_back(&mut tx, &current).await?;
        let (current, returning) = split_returning(current, &back);
        let jobs = &current[..];
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
        for batch in returning.chunks(INSERT_ROWS) {
            // Only a job still waiting makes one of these a duplicate.
            let q = insert_jobs(batch, &mut seen, &held, now, i64::MAX, file_id);
            queued += q
                .execute(&mut *tx)
                .await
                .context("inserting jobs")?
                .rows_affected();
        }
        if !returning.is_empty() {
            super::retire::brought_back(&mut tx, &returning, file_id).await?;
        }
        if let Some(fid) = file_id {
            insert_rejects(&mut tx, fid, rejects).await?;
        }
        let duplicates = (jobs.len() + returning.len() + stale) as u64 - queued;
        for part in [jobs, &returning[..]] {
            super::external::record(&mut tx, part, file_id, now).await?;
            super::retire::record_expiries(&mut tx, part, chunk.feed).await?;
        }
        if let (Some(feed), Some(fid)) = (chunk.feed, file_id) {
            super::lifecycle::hold_members(&mut tx, feed, fid, chunk.jobs, now).await?;
        }
        let withdrawn = super::retire::withdraw(
            &mut tx,
            chunk.withdrawn,
            chunk.feed,
            chunk.retiring,
            file_id,
        )
        .await?;
        if let Some(fid) = file_id {
            record_progress(&mut tx, fid, chunk, queued, duplicates).await?;
        }
        tx.commit().await.context("committing a chunk")?;
        Ok(ChunkResult {
            queued,
            duplicates,
            retired: withdrawn.queued,
        })
    }
}

/// A chunk's rejects, for file `fid`.
async fn insert_rejects(tx: &mut Tx, fid: i64, rejects: &[NewReject]) -> anyhow::Result<()> {
    for batch in rejects.chunks(INSERT_ROWS) {
        let sql = format!(
            "INSERT INTO rejects (file_id, line, input, rule, reason) VALUES {}",
            value_list("(?,?,?,?,?)", batch.len())
        );
        let mut q = query(AssertSqlSafe(sql)).persistent(batch.len() == INSERT_ROWS);
        for r in batch {
            q = q
                .bind(fid)
                .bind(r.line as i64)
                .bind(no_nul(&r.input))
                .bind(r.rule.as_str())
                .bind(no_nul(&r.reason));
        }
        q.execute(&mut **tx).await.context("inserting rejects")?;
    }
    Ok(())
}

/// A file's counts and position after a chunk, and its skipped and
/// filtered rows by reason.
async fn record_progress(
    tx: &mut Tx,
    fid: i64,
    chunk: &FileChunk<'_>,
    queued: u64,
    duplicates: u64,
) -> anyhow::Result<()> {
    let sum = |counts: &[(String, u64)]| counts.iter().map(|(_, n)| n).sum::<u64>() as i64;
    query(
        "UPDATE files SET rows_read = rows_read + ?, rows_queued = rows_queued + ?, \
         rows_rejected = rows_rejected + ?, rows_duplicate = rows_duplicate + ?, \
         rows_skipped = rows_skipped + ?, rows_filtered = rows_filtered + ?, \
         last_position = CASE WHEN last_position > ?7 THEN last_position ELSE ?7 END WHERE id = ?8",
    )
    .bind(chunk.rows_read as i64)
    .bind(queued as i64)
    .bind(chunk.rejects.len() as i64)
    .bind(duplicates as i64)
    .bind(sum(chunk.skipped))
    .bind(sum(chunk.filtered))
    .bind(chunk.last_position as i64)
    .bind(fid)
    .execute(&mut **tx)
    .await
    .context("recording file progress")?;
    for (table, counts) in [
        ("file_skips", chunk.skipped),
        ("file_filters", chunk.filtered),
    ] {
        for (what, n) in counts {
            let sql = format!(
                "INSERT INTO {table} (file_id, what, count) VALUES (?, ?, ?) \
                 ON CONFLICT (file_id, what) DO UPDATE SET count = {table}.count + excluded.count"
            );
            query(AssertSqlSafe(sql))
                .bind(fid)
                .bind(what.as_str())
                .bind(*n as i64)
                .execute(&mut **tx)
                .await
                .with_context(|| format!("counting rows in {table}"))?;
        }
    }
    Ok(())
}

/// The jobs of indicators coming back (`back`: their positions, and how
/// they were retired), set apart, and the rest. One that was deactivated
/// is marked `"active": true`; one deleted or tagged is created as any.
fn split_returning<'a>(
    jobs: Cow<'a, [NewJob]>,
    back: &HashMap<usize, JobAction>,
) -> (Cow<'a, [NewJob]>, Vec<NewJob>) {
    if back.is_empty() {
        return (jobs, Vec::new());
    }
    let (mut returning, mut rest) = (Vec::new(), Vec::new());
    for (i, j) in jobs.iter().enumerate() {
        if let Some(action) = back.get(&i) {
            let mut j = j.clone();
            if *action == JobAction::Deactivate {
                j.payload.active = Some(true);
            }
            returning.push(j);
        } else {
            rest.push(j.clone());
        }
    }
    (Cow::Owned(rest), returning)
}

type Statement<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

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
) -> Statement<'q> {
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
         SELECT v.column1, v.column2, v.column3, v.column4, c.file_id, CAST(v.column5 AS BIGINT), \
         CAST(v.column6 AS BIGINT), v.column7, c.now, c.now, c.now FROM (VALUES ",
    );
    sql.push_str(&value_list("(?,?,?,?,?,?,?)", rows.len()));
    if rows.is_empty() {
        sql.push_str("(NULL,NULL,NULL,NULL,NULL,NULL,NULL)");
    }
    sql.push_str(
        ") AS v, (SELECT CAST(? AS BIGINT) AS now, CAST(? AS BIGINT) AS since, CAST(? AS BIGINT) AS file_id) AS c \
         WHERE v.column1 IS NOT NULL AND NOT EXISTS ( \
         SELECT 1 FROM jobs j WHERE j.dedup_key = CAST(v.column6 AS BIGINT) \
         AND j.value = v.column3 AND j.owner = v.column1 AND j.type = v.column2 AND j.payload = v.column4 \
         AND (j.state IN ('pending', 'leased', 'batched', 'held') OR (j.state = 'delivered' AND j.delivered_at > c.since)))",
    );
    // Only full-size statements are kept prepared: one of every remainder
    // size would fill the statement cache (and memory).
    let mut q = query(AssertSqlSafe(sql)).persistent(rows.len() == INSERT_ROWS);
    for (job, payload, key) in rows {
        q = q
            .bind(job.owner.as_str())
            .bind(job.indicator.kind().tc_name())
            .bind(job.indicator.summary())
            .bind(payload)
            .bind(job.line.map(|l| l as i64))
            .bind(key)
            .bind(if held.contains(&job.owner) {
                JobState::Held.as_str()
            } else {
                JobState::Pending.as_str()
            });
    }
    q.bind(now).bind(since).bind(file_id)
}

/// `text` with each NUL as U+FFFD: PostgreSQL's text holds no NUL, and a
/// rejected row's input may have one (the file's report keeps it as read).
fn no_nul(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}
