//! Retire jobs: queued for a set of indicators gathered in a temporary
//! table (what a snapshot dropped, what aged out or expired, what the
//! source withdrew), left alone where another feed of the owner still
//! holds them; and indicators that come back after a retirement.

use super::sql::{Conn, Tx, query};
use std::collections::{HashMap, HashSet};

use anyhow::Context;
use sqlx::{AssertSqlSafe, Row};

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
    /// Left alone: another feed of the owner still holds them, or a
    /// source listed them again.
    pub kept: u64,
    /// Creates of them from the same feed, not yet sent: deleted.
    pub superseded: u64,
}

/// The temporary table of indicators about to be retired (per connection).
pub(super) async fn start_retiring(conn: &mut Conn) -> anyhow::Result<()> {
    query(
        "CREATE TEMP TABLE IF NOT EXISTS retiring (owner TEXT NOT NULL, type TEXT NOT NULL, \
         value TEXT NOT NULL, PRIMARY KEY (owner, type, value))",
    )
    .execute(&mut *conn)
    .await?;
    query("DELETE FROM retiring").execute(&mut *conn).await?;
    Ok(())
}

/// A retire job waits this long after a create of its indicator that was
/// in flight when it was queued (leased, in a batch job, or begun), and a
/// create that brings back an indicator whose retire job was in flight
/// waits as long: each call lands after the other.
pub const IN_FLIGHT_DEFER: std::time::Duration = std::time::Duration::from_secs(600);

/// The waiting creates of the indicators in `retiring`, read state by
/// state through the partial indexes: `started` (in flight: leased, in a
/// batch job, or a call done or of unknown outcome), and the rest, `of
/// feed` when they came from a file of `feed`.
const CREATES: &str = "SELECT j.id, j.owner, j.type, j.value, \
     CASE WHEN j.state IN ('leased', 'batched') OR j.steps_done > 0 OR j.call_uncertain != 0 \
       THEN 1 ELSE 0 END AS started, \
     CASE WHEN j.file_id IN (SELECT id FROM files WHERE feed = ?1) THEN 1 ELSE 0 END AS of_feed \
     FROM jobs j JOIN retiring r ON r.owner = j.owner AND r.type = j.type AND r.value = j.value \
     WHERE j.action = 'create' AND j.state = ";

/// Queues a retire job for each indicator in `retiring` (`feed`: the
/// one retiring it, `None`: a source's withdrawal or expiry), except:
/// - one already retired, or being retired (`retired`);
/// - one another configured named feed of its owner holds (`kept`);
/// - one a create from another file waits for: a source listed it again
///   (`kept`).
///
/// A waiting create of it from the same feed's files, nothing of it sent,
/// is superseded: deleted (`superseded`). One in flight delays the retire
/// job by [`IN_FLIGHT_DEFER`]. The rest are recorded in `retired`.
pub(super) async fn queue_retires(
    conn: &mut Conn,
    feed: Option<&str>,
    retiring: Retiring<'_>,
    reason: &str,
    file_id: Option<i64>,
) -> anyhow::Result<Retired> {
    query(
        "DELETE FROM retiring AS r WHERE EXISTS (SELECT 1 FROM retired x \
         WHERE x.owner = r.owner AND x.type = r.type AND x.value = r.value)",
    )
    .execute(&mut *conn)
    .await?;
    let mut kept = query(
        "DELETE FROM retiring AS r WHERE EXISTS (SELECT 1 FROM feed_members m \
         WHERE m.feed IN (SELECT name FROM feeds WHERE configured != 0 AND (?1 IS NULL OR name != ?1)) \
         AND m.owner = r.owner AND m.type = r.type AND m.value = r.value)",
    )
    .bind(feed)
    .execute(&mut *conn)
    .await
    .context("keeping what other feeds hold")?
    .rows_affected();
    let (listed_again, superseded, deferred) = settle_waiting_creates(conn, feed).await?;
    kept += listed_again;
    let now = now_ms();
    let queued = query(
        "INSERT INTO jobs (owner, type, value, payload, action, state, file_id, \
         next_attempt_at, created_at, updated_at) \
         SELECT owner, type, value, ?1, ?2, \
         CASE WHEN owner IN (SELECT owner FROM held_owners) THEN 'held' ELSE 'pending' END, \
         ?3, ?4, ?4, ?4 FROM retiring",
    )
    .bind(retiring.payload())
    .bind(retiring.action.as_str())
    .bind(file_id)
    .bind(now)
    .execute(&mut *conn)
    .await
    .context("queuing retire jobs")?
    .rows_affected();
    for (owner, kind, value) in &deferred {
        query(
            "UPDATE jobs SET next_attempt_at = ? WHERE action != 'create' AND state = 'pending' \
             AND owner = ? AND type = ? AND value = ?",
        )
        .bind(now + super::ms(IN_FLIGHT_DEFER))
        .bind(owner)
        .bind(kind)
        .bind(value)
        .execute(&mut *conn)
        .await?;
    }
    query(
        "INSERT INTO retired (owner, type, value, feed, reason, action, retired_at) \
         SELECT owner, type, value, ?, ?, ?, ? FROM retiring WHERE true \
         ON CONFLICT (owner, type, value) DO UPDATE SET feed = excluded.feed, \
         reason = excluded.reason, action = excluded.action, retired_at = excluded.retired_at",
    )
    .bind(feed)
    .bind(reason)
    .bind(retiring.action.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    query(
        "DELETE FROM expiries WHERE (owner, type, value) IN \
         (SELECT owner, type, value FROM retiring)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(Retired {
        queued,
        kept,
        superseded,
    })
}

/// The creates waiting for the indicators in `retiring`: one from
/// another file takes its indicator out (a source listed it again: the
/// first count); one of `feed`'s files, nothing of it sent, is deleted
/// (the second); one in flight makes its retire job wait (the set).
async fn settle_waiting_creates(
    conn: &mut Conn,
    feed: Option<&str>,
) -> anyhow::Result<(u64, u64, HashSet<(String, String, String)>)> {
    let (mut listed_again, mut superseded) = (0, 0);
    let mut deferred = HashSet::new();
    for w in waiting_creates(conn, feed).await? {
        if w.started {
            deferred.insert((w.owner, w.kind, w.value));
        } else if w.of_feed {
            superseded += query("DELETE FROM jobs WHERE id = ?")
                .bind(w.id)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        } else {
            listed_again +=
                query("DELETE FROM retiring WHERE owner = ? AND type = ? AND value = ?")
                    .bind(w.owner)
                    .bind(w.kind)
                    .bind(w.value)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
        }
    }
    Ok((listed_again, superseded, deferred))
}

/// A create waiting for an indicator being retired.
struct WaitingCreate {
    id: i64,
    owner: String,
    kind: String,
    value: String,
    started: bool,
    of_feed: bool,
}

/// The creates waiting for the indicators in `retiring`, one state at
/// a time (each a scan of that state's partial index: the backlog, never
/// the delivered jobs).
async fn waiting_creates(
    conn: &mut Conn,
    feed: Option<&str>,
) -> anyhow::Result<Vec<WaitingCreate>> {
    let mut out = Vec::new();
    for state in ["'pending'", "'held'", "'leased'", "'batched'"] {
        let rows = query(AssertSqlSafe(format!("{CREATES}{state}")))
            .bind(feed)
            .fetch_all(&mut *conn)
            .await
            .context("finding creates of what is retired")?;
        out.extend(rows.iter().map(|r| WaitingCreate {
            id: r.get(0),
            owner: r.get(1),
            kind: r.get(2),
            value: r.get(3),
            started: r.get::<i64, _>(4) != 0,
            of_feed: r.get::<i64, _>(5) != 0,
        }));
    }
    Ok(out)
}

/// Of `jobs`, the positions of those whose indicator tc-ingest retired,
/// with how: they come back. Costs one probe when nothing was ever
/// retired.
pub(super) async fn coming_back(
    tx: &mut Tx,
    jobs: &[NewJob],
) -> anyhow::Result<HashMap<usize, JobAction>> {
    let mut back = HashMap::new();
    let any: i64 = query("SELECT CASE WHEN EXISTS (SELECT 1 FROM retired) THEN 1 ELSE 0 END")
        .fetch_one(&mut **tx)
        .await?
        .get(0);
    if any == 0 {
        return Ok(back);
    }
    for (n, batch) in jobs.chunks(ROWS).enumerate() {
        let sql = format!(
            "SELECT v.column4, r.action FROM (VALUES {}) AS v JOIN retired r \
             ON r.owner = v.column1 AND r.type = v.column2 AND r.value = v.column3",
            value_list("(?,?,?,?)", batch.len())
        );
        let mut q = query(AssertSqlSafe(sql)).persistent(false);
        for (i, j) in batch.iter().enumerate() {
            q = q
                .bind(j.owner.as_str())
                .bind(j.indicator.kind().tc_name())
                .bind(j.indicator.summary())
                .bind((n * ROWS + i) as i64);
        }
        for r in q.fetch_all(&mut **tx).await? {
            let action = r.get::<&str, _>(1).parse().unwrap_or(JobAction::Deactivate);
            back.insert(r.get::<i64, _>(0) as usize, action);
        }
    }
    Ok(back)
}

/// The indicators of `jobs` (just queued, `file_id`'s) are listed again:
/// no longer retired, and their retire jobs are dropped: one not yet sent
/// or buried is never sent, and one in flight (leased) can record nothing
/// (its row is gone), while the create waits [`IN_FLIGHT_DEFER`] so that
/// it lands after that call.
pub(super) async fn brought_back(
    tx: &mut Tx,
    jobs: &[NewJob],
    file_id: Option<i64>,
) -> anyhow::Result<()> {
    let later = now_ms() + super::ms(IN_FLIGHT_DEFER);
    for j in jobs {
        let key = (
            j.owner.as_str(),
            j.indicator.kind().tc_name(),
            j.indicator.summary(),
        );
        let bind = |sql| query(sql).bind(key.0).bind(key.1).bind(key.2);
        bind("DELETE FROM retired WHERE owner = ? AND type = ? AND value = ?")
            .execute(&mut **tx)
            .await?;
        let in_flight = bind(
            "DELETE FROM jobs WHERE action != 'create' AND state != 'delivered' \
             AND owner = ? AND type = ? AND value = ? \
             RETURNING CASE WHEN state = 'leased' THEN 1 ELSE 0 END",
        )
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .any(|r| r.get::<i64, _>(0) != 0);
        if in_flight {
            bind(
                "UPDATE jobs SET next_attempt_at = ?4 WHERE action = 'create' AND state = 'pending' \
                 AND owner = ?1 AND type = ?2 AND value = ?3 AND file_id IS NOT DISTINCT FROM ?5",
            )
            .bind(later)
            .bind(file_id)
            .execute(&mut **tx)
            .await?;
        }
    }
    Ok(())
}

/// Records when the source says the chunk's indicators stop being valid.
pub(super) async fn record_expiries(
    tx: &mut Tx,
    jobs: &[NewJob],
    feed: Option<&str>,
) -> anyhow::Result<()> {
    for j in jobs {
        let Some(at) = j.payload.external_expires.as_deref().and_then(unix_ms) else {
            continue;
        };
        query(
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
    tx: &mut Tx,
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
        // Only the file's owner's: an object is one indicator per owner.
        let sql = format!(
            "INSERT INTO retiring (owner, type, value) \
             SELECT owner, type, value FROM external_ids WHERE external_id IN ({}) \
             AND (? IS NULL OR owner = (SELECT owner FROM files WHERE id = ?)) \
             ON CONFLICT DO NOTHING",
            value_list("?", batch.len())
        );
        let mut q = query(AssertSqlSafe(sql)).persistent(false);
        for id in batch {
            q = q.bind(id.as_str());
        }
        q = q.bind(file_id).bind(file_id);
        q.execute(&mut **tx).await?;
    }
    forget_members(tx, feed).await?;
    queue_retires(tx, feed, retiring, "withdrawn", file_id).await
}

/// `feed` no longer holds the indicators in `retiring`.
pub(super) async fn forget_members(conn: &mut Conn, feed: Option<&str>) -> anyhow::Result<()> {
    if let Some(feed) = feed {
        query(
            "DELETE FROM feed_members WHERE feed = ? AND (owner, type, value) IN \
             (SELECT owner, type, value FROM retiring)",
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
        query(
            "INSERT INTO retiring (owner, type, value) \
             SELECT owner, type, value FROM feed_members WHERE feed = ? AND last_seen < ?",
        )
        .bind(feed)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        forget_members(&mut tx, Some(feed)).await?;
        let done = queue_retires(&mut tx, Some(feed), retiring, "max_age", None).await?;
        query(
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
        let due: i64 = query(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM expiries WHERE expires_at <= ?) THEN 1 ELSE 0 END",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?
        .get(0);
        let due = due != 0;
        if !due {
            return Ok(Retired::default());
        }
        let mut tx = self.begin_write().await?;
        let feeds: Vec<Option<String>> =
            query("SELECT DISTINCT feed FROM expiries WHERE expires_at <= ?")
                .bind(now)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
        let mut all = Retired::default();
        for feed in feeds {
            start_retiring(&mut tx).await?;
            query(
                "INSERT INTO retiring (owner, type, value) SELECT owner, type, value \
                 FROM expiries WHERE expires_at <= ? AND feed IS NOT DISTINCT FROM ?",
            )
            .bind(now)
            .bind(feed.as_deref())
            .execute(&mut *tx)
            .await?;
            // What another feed holds stays, and its expiry is spent.
            query("DELETE FROM expiries WHERE expires_at <= ? AND feed IS NOT DISTINCT FROM ?")
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
        Ok(query("SELECT swept_at FROM feeds WHERE name = ?")
            .bind(feed)
            .fetch_optional(&self.pool)
            .await?
            .and_then(|r| r.get(0)))
    }
}
