//! What is due, and for whom: the owners with pending jobs, and the SQL
//! fragments that tell a job whose delivery has not started (it may go by
//! batch) from one that has, or that retires (it goes per indicator). Shared by the claim
//! and the batch forming, so the two read the backlog alike.

use super::sql::{Conn, query};
use anyhow::Context;
use sqlx::Row;

/// A job nothing of whose delivery started: it may go by batch.
pub(super) const FRESH: &str = "steps_done = 0 AND call_uncertain = 0 AND action = 'create'";

/// A job whose delivery started (a step done, or a call of unknown
/// outcome), or that retires an indicator: it goes per indicator. Written exactly as the WHERE of the
/// index `jobs_owner_started` (migration 0006), which SQLite needs to use it.
pub(super) const STARTED: &str = "(steps_done > 0 OR call_uncertain != 0 OR action != 'create')";

/// Owners with pending jobs and not held, in order: a skip-scan of
/// `jobs_owner_due`, one index probe per owner.
pub(super) async fn pending_owners(conn: &mut Conn) -> anyhow::Result<Vec<String>> {
    let rows = query(
        "WITH RECURSIVE o(owner) AS ( \
           SELECT (SELECT MIN(owner) FROM jobs WHERE state = 'pending') \
           UNION ALL \
           SELECT (SELECT MIN(owner) FROM jobs WHERE state = 'pending' AND owner > o.owner) \
           FROM o WHERE o.owner IS NOT NULL) \
         SELECT owner FROM o WHERE owner IS NOT NULL \
         AND owner NOT IN (SELECT owner FROM held_owners)",
    )
    .fetch_all(&mut *conn)
    .await
    .context("listing the owners of pending jobs")?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
