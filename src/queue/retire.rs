//! Retire jobs: queued for a set of indicators gathered in a temporary
//! table (what a snapshot dropped, what aged out or expired, what the
//! source withdrew), left alone where another feed of the owner still
//! holds them; and indicators that come back after a retirement.

use std::collections::HashSet;

use anyhow::Context;
use sqlx::{AssertSqlSafe, Row, Sqlite, SqliteConnection, Transaction};

use super::{NewJob, Queue, now_ms, value_list};
use crate::names::JobAction;

/// Rows per multi-row statement (at most 4 binds a row).
const ROWS: usize = 1000;

/// How an indicator is retired: the job's action, and for
/// [`JobAction::Tag`] the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retiring<'a> {
    pub action: JobAction,
    pub tag: &'a str,
}

impl Default for Retiring<'_> {
    fn default() -> Self {
        Self {
            action: JobAction::Deactivate,
            tag: crate::names::DEFAULT_RETIRE_TAG,
        }
    }
}

impl Retiring<'_> {
    /// The retire job's payload: the tag to add, or nothing.
    fn payload(&self) -> String {
        match self.action {
            JobAction::Tag => serde_json::json!({ "tags": [self.tag] }).to_string(),
            _ => "{}".into(),
        }
    }
}

/// What retiring a set of indicators did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retired {
    /// Retire jobs queued.
    pub queued: u64,
    /// Left alone: another feed of the owner still holds them.
    pub kept: u64,
}

/// The temporary table of indicators about to be retired (per connection).
pub(super) async fn start_retiring(conn: &mut SqliteConnection) -> anyhow::Result<()> {
    sqlx::query(
        "CREATE TEMP TABLE IF NOT EXISTS retiring (owner TEXT NOT NULL, type TEXT NOT NULL, \
         value TEXT NOT NULL, PRIMARY KEY (owner, type, value)) WITHOUT ROWID",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM temp.retiring")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Queues a retire job for each indicator in `temp.retiring` that no
/// other feed of its owner holds (`feed`: the one retiring it; `None`:
/// any feed's holding keeps it) and that is not being retired already;
/// records them in `retired`.
pub(super) async fn queue_retires(
    conn: &mut SqliteConnection,
    feed: Option<&str>,
    retiring: Retiring<'_>,
    reason: &str,
    file_id: Option<i64>,
) -> anyhow::Result<Retired> {
    let kept = sqlx::query(
        "DELETE FROM temp.retiring AS r WHERE EXISTS (SELECT 1 FROM feed_members m \
         WHERE m.feed IN (SELECT name FROM feeds WHERE ?1 IS NULL OR name != ?1) \
         AND m.owner = r.owner AND m.type = r.type AND m.value = r.value)",
    )
    .bind(feed)
    .execute(&mut *conn)
    .await
    .context("keeping what other feeds hold")?
    .rows_affected();
    sqlx::query(
        "DELETE FROM temp.retiring AS r WHERE EXISTS (SELECT 1 FROM jobs j \
         WHERE j.action != 'create' AND j.owner = r.owner AND j.type = r.type AND j.value = r.value \
         AND j.state IN ('pending', 'leased', 'held'))",
    )
    .execute(&mut *conn)
    .await?;
    let now = now_ms();
    let queued = sqlx::query(
        "INSERT INTO jobs (owner, type, value, payload, action, state, file_id, \
         next_attempt_at, created_at, updated_at) \
         SELECT owner, type, value, ?1, ?2, \
         CASE WHEN owner IN (SELECT owner FROM held_owners) THEN 'held' ELSE 'pending' END, \
         ?3, ?4, ?4, ?4 FROM temp.retiring",
    )
    .bind(retiring.payload())
    .bind(retiring.action.as_str())
    .bind(file_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("queuing retire jobs")?
    .rows_affected();
    sqlx::query(
        "INSERT OR REPLACE INTO retired (owner, type, value, feed, reason, action, retired_at) \
         SELECT owner, type, value, ?, ?, ?, ? FROM temp.retiring",
    )
    .bind(feed)
    .bind(reason)
    .bind(retiring.action.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM expiries WHERE (owner, type, value) IN \
         (SELECT owner, type, value FROM temp.retiring)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(Retired { queued, kept })
}

/// Of `jobs`, the positions of those whose indicator tc-ingest retired:
/// they come back active. Costs one probe when nothing was ever retired.
pub(super) async fn coming_back(
    tx: &mut Transaction<'static, Sqlite>,
    jobs: &[NewJob],
) -> anyhow::Result<HashSet<usize>> {
    let mut back = HashSet::new();
    let any: bool = sqlx::query("SELECT EXISTS (SELECT 1 FROM retired)")
        .fetch_one(&mut **tx)
        .await?
        .get(0);
    if !any {
        return Ok(back);
    }
    for (n, batch) in jobs.chunks(ROWS).enumerate() {
        let sql = format!(
            "SELECT v.column4 FROM (VALUES {}) AS v JOIN retired r \
             ON r.owner = v.column1 AND r.type = v.column2 AND r.value = v.column3",
            value_list("(?,?,?,?)", batch.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (i, j) in batch.iter().enumerate() {
            q = q
                .bind(j.owner.as_str())
                .bind(j.indicator.kind().tc_name())
                .bind(j.indicator.summary())
                .bind((n * ROWS + i) as i64);
        }
        for r in q.fetch_all(&mut **tx).await? {
            back.insert(r.get::<i64, _>(0) as usize);
        }
    }
    Ok(back)
}

/// The indicators of `jobs` are listed again: no longer retired, and a
/// retire job of theirs not yet sent is dropped.
pub(super) async fn brought_back(
    tx: &mut Transaction<'static, Sqlite>,
    jobs: &[NewJob],
) -> anyhow::Result<()> {
    for j in jobs {
        for sql in [
            "DELETE FROM retired WHERE owner = ? AND type = ? AND value = ?",
            "DELETE FROM jobs WHERE action != 'create' AND state IN ('pending', 'held') \
             AND owner = ? AND type = ? AND value = ?",
        ] {
            sqlx::query(sql)
                .bind(j.owner.as_str())
                .bind(j.indicator.kind().tc_name())
                .bind(j.indicator.summary())
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

/// Records when the source says the chunk's indicators stop being valid.
pub(super) async fn record_expiries(
    tx: &mut Transaction<'static, Sqlite>,
    jobs: &[NewJob],
    feed: Option<&str>,
) -> anyhow::Result<()> {
    for j in jobs {
        let Some(at) = j.payload.external_expires.as_deref().and_then(unix_ms) else {
            continue;
        };
        sqlx::query(
            "INSERT INTO expiries (owner, type, value, expires_at, feed) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (owner, type, value) DO UPDATE SET expires_at = excluded.expires_at, \
             feed = excluded.feed",
        )
        .bind(j.owner.as_str())
        .bind(j.indicator.kind().tc_name())
        .bind(j.indicator.summary())
        .bind(at)
        .bind(feed)
        .execute(&mut **tx)
        .await
        .context("recording an expiry")?;
    }
    Ok(())
}

/// RFC 3339 to Unix ms.
fn unix_ms(s: &str) -> Option<i64> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Retires what the source withdrew (a revoked STIX object, a deleted
/// MISP attribute, an expired one): the indicators its ids gave.
pub(super) async fn withdraw(
    tx: &mut Transaction<'static, Sqlite>,
    external_ids: &[String],
    feed: Option<&str>,
    retiring: Retiring<'_>,
    file_id: Option<i64>,
) -> anyhow::Result<Retired> {
    if external_ids.is_empty() {
        return Ok(Retired::default());
    }
    start_retiring(tx).await?;
    for batch in external_ids.chunks(ROWS) {
        let sql = format!(
            "INSERT OR IGNORE INTO temp.retiring (owner, type, value) \
             SELECT owner, type, value FROM external_ids WHERE external_id IN ({})",
            value_list("?", batch.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for id in batch {
            q = q.bind(id.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    forget_members(tx, feed).await?;
    queue_retires(tx, feed, retiring, "withdrawn", file_id).await
}

/// `feed` no longer holds the indicators in `temp.retiring`.
pub(super) async fn forget_members(
    conn: &mut SqliteConnection,
    feed: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(feed) = feed {
        sqlx::query(
            "DELETE FROM feed_members WHERE feed = ? AND (owner, type, value) IN \
             (SELECT owner, type, value FROM temp.retiring)",
        )
        .bind(feed)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

impl Queue {
    /// Retires what `feed` has not listed since `cutoff` (Unix ms): its
    /// `max_age` sweep. Idempotent: what it retires leaves the feed.
    ///
    /// # Errors
    /// Database errors.
    pub async fn sweep_aged(
        &self,
        feed: &str,
        cutoff: i64,
        retiring: Retiring<'_>,
    ) -> anyhow::Result<Retired> {
        let mut tx = self.begin_write().await?;
        start_retiring(&mut tx).await?;
        sqlx::query(
            "INSERT INTO temp.retiring (owner, type, value) \
             SELECT owner, type, value FROM feed_members WHERE feed = ? AND last_seen < ?",
        )
        .bind(feed)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        forget_members(&mut tx, Some(feed)).await?;
        let done = queue_retires(&mut tx, Some(feed), retiring, "max_age", None).await?;
        sqlx::query(
            "INSERT INTO feeds (name, swept_at, created_at, updated_at) VALUES (?1, ?2, ?2, ?2) \
             ON CONFLICT (name) DO UPDATE SET swept_at = ?2, updated_at = ?2",
        )
        .bind(feed)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Retires the indicators whose source-given end of validity has come,
    /// each as its feed says (`retiring_for`; `None` for a file of no
    /// named feed).
    ///
    /// # Errors
    /// Database errors.
    pub async fn sweep_expired<'a>(
        &self,
        now: i64,
        retiring_for: impl Fn(Option<&str>) -> Retiring<'a>,
    ) -> anyhow::Result<Retired> {
        // One probe of the index, without the write lock, most of the time.
        let due: bool = sqlx::query("SELECT EXISTS (SELECT 1 FROM expiries WHERE expires_at <= ?)")
            .bind(now)
            .fetch_one(&self.pool)
            .await?
            .get(0);
        if !due {
            return Ok(Retired::default());
        }
        let mut tx = self.begin_write().await?;
        let feeds: Vec<Option<String>> =
            sqlx::query("SELECT DISTINCT feed FROM expiries WHERE expires_at <= ?")
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        let mut all = Retired::default();
        for feed in feeds {
            start_retiring(&mut tx).await?;
            sqlx::query(
                "INSERT INTO temp.retiring (owner, type, value) SELECT owner, type, value \
                 FROM expiries WHERE expires_at <= ? AND feed IS ?",
            )
            .bind(now)
            .bind(feed.as_deref())
            .execute(&mut *tx)
            .await?;
            // What another feed holds stays, and its expiry is spent.
            sqlx::query("DELETE FROM expiries WHERE expires_at <= ? AND feed IS ?")
                .bind(now)
                .bind(feed.as_deref())
                .execute(&mut *tx)
                .await?;
            forget_members(&mut tx, feed.as_deref()).await?;
            let done = queue_retires(
                &mut tx,
                feed.as_deref(),
                retiring_for(feed.as_deref()),
                "expired",
                None,
            )
            .await?;
            all.queued += done.queued;
            all.kept += done.kept;
        }
        tx.commit().await?;
        Ok(all)
    }

    /// When `feed` was last swept for `max_age` (Unix ms).
    ///
    /// # Errors
    /// Database errors.
    pub async fn feed_swept_at(&self, feed: &str) -> anyhow::Result<Option<i64>> {
        Ok(sqlx::query("SELECT swept_at FROM feeds WHERE name = ?")
            .bind(feed)
            .fetch_optional(&self.pool)
            .await?
            .and_then(|r| r.get(0)))
    }
}
