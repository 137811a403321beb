//! Snapshots: what each named feed holds (`feed_members`), reconciled
//! when a snapshot's file finishes (in the transaction that finishes it),
//! or held for `retire --confirm` by a safeguard.

use super::sql::{Conn, Tx, query};
use anyhow::Context;
use sqlx::{AssertSqlSafe, Row};

use super::retire::{Retired, Retiring, queue_retires, start_retiring};
use super::{NewJob, Queue, now_ms, value_list};

/// Rows per multi-row statement (3 binds a row).
const ROWS: usize = 1000;

/// What a finished file of a named feed does to the feed's lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct FeedEnd<'a> {
    pub feed: &'a str,
    /// The file is the feed's whole current list.
    pub snapshot: bool,
    pub retiring: Retiring<'a>,
    pub max_retire_fraction: f64,
    pub max_reject_fraction: f64,
}

/// What reconciling a snapshot did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Not a snapshot: nothing to reconcile.
    NotSnapshot,
    /// The feed's first snapshot: it retires nothing.
    First { members: u64 },
    /// Dropped indicators retired: retire jobs queued, and what was left
    /// alone and superseded ([`Retired`]).
    Retired { done: Retired, members: u64 },
    /// Held for `retire --feed NAME --confirm`: it would retire
    /// `would_retire`.
    Held { would_retire: u64, reason: String },
}

/// A snapshot held for confirmation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HeldSnapshot {
    pub file_id: i64,
    pub reason: String,
    pub would_retire: u64,
    /// Unix ms.
    pub held_at: i64,
}

/// Records that a chunk's jobs are held by `feed`, listed by file `file_id`.
pub(super) async fn hold_members(
    tx: &mut Tx,
    feed: &str,
    file_id: i64,
    jobs: &[NewJob],
    now: i64,
) -> anyhow::Result<()> {
    // Every feed with members is in `feeds`: the look-ups of who else
    // holds an indicator go feed by feed.
    query("INSERT INTO feeds (name, created_at, updated_at) VALUES (?1, ?2, ?2) ON CONFLICT DO NOTHING")
        .bind(feed)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    for batch in jobs.chunks(ROWS) {
        let sql = format!(
            "INSERT INTO feed_members (feed, owner, type, value, generation, last_seen) \
             SELECT c.feed, v.column1, v.column2, v.column3, c.generation, c.now \
             FROM (VALUES {}) AS v, (SELECT ? AS feed, ? AS generation, ? AS now) AS c WHERE true \
             ON CONFLICT (feed, owner, type, value) DO UPDATE SET \
             generation = excluded.generation, last_seen = excluded.last_seen",
            value_list("(?,?,?)", batch.len())
        );
        let mut q = query(AssertSqlSafe(sql)).persistent(batch.len() == ROWS);
        for j in batch {
            q = q
                .bind(j.owner.as_str())
                .bind(j.indicator.kind().tc_name())
                .bind(j.indicator.summary());
        }
        q.bind(feed)
            .bind(file_id)
            .bind(now)
            .execute(&mut **tx)
            .await
            .context("recording what the feed holds")?;
    }
    Ok(())
}

/// Reconciles a finished snapshot `file_id` of `end.feed` in `tx` (the
/// file's own finishing transaction): what the previous snapshots held and
/// this one does not is retired, unless a safeguard holds it.
pub(super) async fn reconcile(
    tx: &mut Conn,
    end: &FeedEnd<'_>,
    file_id: i64,
    failed: Option<&str>,
) -> anyhow::Result<Reconciled> {
    let now = now_ms();
    query("INSERT INTO feeds (name, created_at, updated_at) VALUES (?1, ?2, ?2) ON CONFLICT DO NOTHING")
        .bind(end.feed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    // Its members were recorded under the feed it was read for: a reload
    // that renamed the rule since does not reconcile another feed.
    let read_for: Option<String> = query("SELECT feed FROM files WHERE id = ?")
        .bind(file_id)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    if !end.snapshot || read_for.as_deref() != Some(end.feed) {
        return Ok(Reconciled::NotSnapshot);
    }
    let previous: Option<i64> = query("SELECT snapshot_size FROM feeds WHERE name = ?")
        .bind(end.feed)
        .fetch_one(&mut *tx)
        .await?
        .get(0);
    let (dropped, members) = counts(tx, end.feed, file_id).await?;
    let Some(previous) = previous else {
        // What earlier (failed) files listed is no snapshot's: forgotten.
        query("DELETE FROM feed_members WHERE feed = ? AND generation < ?")
            .bind(end.feed)
            .bind(file_id)
            .execute(&mut *tx)
            .await?;
        set_snapshot(tx, end.feed, file_id, members).await?;
        return Ok(Reconciled::First { members });
    };
    let (read, rejected): (i64, i64) = {
        let r = query("SELECT rows_read, rows_rejected FROM files WHERE id = ?")
            .bind(file_id)
            .fetch_one(&mut *tx)
            .await?;
        (r.get(0), r.get(1))
    };
    let reason = hold_reason(end, failed, read, rejected, dropped, previous);
    if let Some(reason) = reason {
        query(
            "UPDATE feeds SET held_file = ?, held_reason = ?, held_retire = ?, held_at = ?, \
             updated_at = ? WHERE name = ?",
        )
        .bind(file_id)
        .bind(&reason)
        .bind(dropped as i64)
        .bind(now)
        .bind(now)
        .bind(end.feed)
        .execute(&mut *tx)
        .await?;
        return Ok(Reconciled::Held {
            would_retire: dropped,
            reason,
        });
    }
    let done = retire_dropped(tx, end.feed, end.retiring, file_id, "dropped").await?;
    set_snapshot(tx, end.feed, file_id, members).await?;
    Ok(Reconciled::Retired { done, members })
}

/// Why a snapshot is held, if it is.
fn hold_reason(
    end: &FeedEnd<'_>,
    failed: Option<&str>,
    read: i64,
    rejected: i64,
    dropped: u64,
    previous: i64,
) -> Option<String> {
    if dropped == 0 {
        return None;
    }
    if let Some(why) = failed {
        return Some(format!("the file failed ({why})"));
    }
    if read > 0 && rejected as f64 > end.max_reject_fraction * read as f64 {
        return Some(format!(
            "{rejected} of its {read} rows were rejected (over max_reject_fraction {})",
            end.max_reject_fraction
        ));
    }
    if dropped as f64 > end.max_retire_fraction * previous.max(0) as f64 {
        return Some(format!(
            "it would retire {dropped} of the previous snapshot's {previous} (over max_retire_fraction {})",
            end.max_retire_fraction
        ));
    }
    None
}

/// Members of `feed` listed before `file_id` and not by it, and those it listed.
async fn counts(conn: &mut Conn, feed: &str, file_id: i64) -> anyhow::Result<(u64, u64)> {
    let r = query(
        "SELECT CAST(COALESCE(SUM(CASE WHEN generation < ?1 THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN generation >= ?1 THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM feed_members WHERE feed = ?2",
    )
    .bind(file_id)
    .bind(feed)
    .fetch_one(&mut *conn)
    .await?;
    Ok((r.get::<i64, _>(0) as u64, r.get::<i64, _>(1) as u64))
}

async fn set_snapshot(
    conn: &mut Conn,
    feed: &str,
    file_id: i64,
    members: u64,
) -> anyhow::Result<()> {
    query(
        "UPDATE feeds SET snapshot_file = ?, snapshot_size = ?, held_file = NULL, held_reason = NULL, \
         held_retire = NULL, held_at = NULL, updated_at = ? WHERE name = ?",
    )
    .bind(file_id)
    .bind(members as i64)
    .bind(now_ms())
    .bind(feed)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Retires the members of `feed` that file `file_id` did not list.
async fn retire_dropped(
    conn: &mut Conn,
    feed: &str,
    retiring: Retiring<'_>,
    file_id: i64,
    reason: &str,
) -> anyhow::Result<Retired> {
    start_retiring(conn).await?;
    query(
        "INSERT INTO retiring (owner, type, value) \
         SELECT owner, type, value FROM feed_members WHERE feed = ? AND generation < ?",
    )
    .bind(feed)
    .bind(file_id)
    .execute(&mut *conn)
    .await?;
    query("DELETE FROM feed_members WHERE feed = ? AND generation < ?")
        .bind(feed)
        .bind(file_id)
        .execute(&mut *conn)
        .await?;
    queue_retires(conn, Some(feed), retiring, reason, Some(file_id)).await
}

impl Queue {
    /// Records a finished file like [`Queue::file_finish`], and in the
    /// same transaction what it does to its named feed (a snapshot
    /// reconciled, or held).
    ///
    /// # Errors
    /// Database errors.
    pub async fn file_finish_feed(
        &self,
        id: i64,
        finish: super::FileFinish<'_>,
        end: &FeedEnd<'_>,
    ) -> anyhow::Result<Reconciled> {
        self.fully_synced(async |conn| {
            let mut tx = sqlx::Connection::begin_with(conn, self.dialect.begin_write()).await?;
            super::files::record_finish(&mut tx, id, &finish).await?;
            let failed =
                (finish.state != super::FileState::Done).then(|| finish.error.unwrap_or("failed"));
            let r = reconcile(&mut tx, end, id, failed).await?;
            query(
                "UPDATE feeds SET members = (SELECT COUNT(*) FROM feed_members m \
                 WHERE m.feed = feeds.name) WHERE name = ?",
            )
            .bind(end.feed)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(r)
        })
        .await
        .context("recording a finished file and its feed")
    }

    /// Releases the held snapshot of `feed`, file `file_id` (the one the
    /// operator looked at): what it dropped is retired. `None` when that
    /// snapshot is not the one held (none is, or a newer one is).
    ///
    /// # Errors
    /// Database errors.
    pub async fn confirm_held(
        &self,
        feed: &str,
        file_id: i64,
        retiring: Retiring<'_>,
    ) -> anyhow::Result<Option<Retired>> {
        let mut tx = self.begin_write().await?;
        let held: Option<i64> = query("SELECT held_file FROM feeds WHERE name = ?")
            .bind(feed)
            .fetch_optional(&mut *tx)
            .await?
            .and_then(|r| r.get(0));
        if held != Some(file_id) {
            return Ok(None);
        }
        let done = retire_dropped(&mut tx, feed, retiring, file_id, "confirmed").await?;
        let (_, members) = counts(&mut tx, feed, file_id).await?;
        set_snapshot(&mut tx, feed, file_id, members).await?;
        tx.commit().await?;
        Ok(Some(done))
    }

    /// What releasing `feed`'s held snapshot would retire (owner, type,
    /// value; at most `limit`), and how many in all, leaving out what
    /// another feed holds. Empty when none is held.
    ///
    /// # Errors
    /// Database errors.
    pub async fn held_would_retire(
        &self,
        feed: &str,
        limit: u32,
    ) -> anyhow::Result<(Vec<(String, String, String)>, u64)> {
        let sql = "FROM feed_members m, feeds f WHERE f.name = ?1 AND m.feed = f.name \
             AND m.generation < f.held_file AND NOT EXISTS (SELECT 1 FROM feed_members o \
             WHERE o.feed IN (SELECT name FROM feeds WHERE configured != 0 AND name != ?1) \
             AND o.owner = m.owner AND o.type = m.type AND o.value = m.value)";
        let total: i64 = query(AssertSqlSafe(format!("SELECT COUNT(*) {sql}")))
            .bind(feed)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        let rows = query(AssertSqlSafe(format!(
            "SELECT m.owner, m.type, m.value {sql} ORDER BY m.owner, m.type, m.value LIMIT ?2"
        )))
        .bind(feed)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let list = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        Ok((list, total as u64))
    }
}
