//! The map from a source's object ids (STIX ids, MISP attribute uuids) to the
//! indicators they gave, with the newest version seen of each object.

use super::sql::{Tx, query};
use std::borrow::Cow;
use std::collections::HashMap;

use sqlx::{AssertSqlSafe, Row};

use super::{NewJob, value_list};

/// Ids per look-up statement.
const IDS_PER_QUERY: usize = 500;

/// `jobs` without those older than a version of their object already seen
/// (an older `modified` arriving after a newer one): what the chunk
/// should queue.
pub(super) async fn newer_than_seen<'a>(
    tx: &mut Tx,
    jobs: &'a [NewJob],
) -> anyhow::Result<Cow<'a, [NewJob]>> {
    let versioned: Vec<&str> = jobs
        .iter()
        .filter(|j| j.payload.external_modified.is_some())
        .filter_map(|j| j.payload.external_id.as_deref())
        .collect();
    // Versions are per owner: an object sent to two owners is two
    // indicators.
    let key = |j: &NewJob| -> Option<(String, String)> {
        Some((j.payload.external_id.clone()?, j.owner.clone()))
    };
    if versioned.is_empty() {
        return Ok(Cow::Borrowed(jobs));
    }
    let mut newest: HashMap<(String, String), String> = HashMap::new();
    for ids in versioned.chunks(IDS_PER_QUERY) {
        let sql = format!(
            "SELECT external_id, owner, MAX(modified) FROM external_ids \
             WHERE external_id IN ({}) AND modified IS NOT NULL GROUP BY external_id, owner",
            value_list("?", ids.len())
        );
        let mut q = query(AssertSqlSafe(sql));
        for id in ids {
            q = q.bind(*id);
        }
        for row in q.fetch_all(&mut **tx).await? {
            newest.insert((row.get(0), row.get(1)), row.get(2));
        }
    }
    // A newer version later in the same chunk wins too.
    for j in jobs {
        if let (Some(k), Some(m)) = (key(j), &j.payload.external_modified)
            && newest.get(&k).is_none_or(|seen| seen < m)
        {
            newest.insert(k, m.clone());
        }
    }
    let is_stale = |j: &NewJob| match (key(j), &j.payload.external_modified) {
        (Some(k), Some(m)) => newest.get(&k).is_some_and(|seen| seen > m),
        _ => false,
    };
    Ok(Cow::Owned(
        jobs.iter().filter(|j| !is_stale(j)).cloned().collect(),
    ))
}

/// Records which indicators the chunk's source objects gave, keeping the
/// newest version seen of each.
pub(super) async fn record(
    tx: &mut Tx,
    jobs: &[NewJob],
    file_id: Option<i64>,
    now: i64,
) -> anyhow::Result<()> {
    let mapped: Vec<&NewJob> = jobs
        .iter()
        .filter(|j| j.payload.external_id.is_some())
        .collect();
    // Seven binds a row, well under SQLite's limit.
    for batch in mapped.chunks(IDS_PER_QUERY) {
        let sql = format!(
            "INSERT INTO external_ids (external_id, owner, type, value, modified, expires, \
             file_id, updated_at) VALUES {} \
             ON CONFLICT (external_id, owner, type, value) DO UPDATE SET \
             modified = CASE WHEN external_ids.modified IS NULL \
             OR excluded.modified > external_ids.modified \
             THEN excluded.modified ELSE external_ids.modified END, \
             expires = CASE WHEN external_ids.modified IS NULL \
             OR excluded.modified >= external_ids.modified \
             THEN excluded.expires ELSE external_ids.expires END, \
             file_id = excluded.file_id, updated_at = excluded.updated_at",
            value_list("(?,?,?,?,?,?,?,?)", batch.len())
        );
        let mut q = query(AssertSqlSafe(sql));
        for j in batch {
            q = q
                .bind(j.payload.external_id.as_deref())
                .bind(j.owner.as_str())
                .bind(j.indicator.kind().tc_name())
                .bind(j.indicator.summary())
                .bind(j.payload.external_modified.as_deref())
                .bind(j.payload.external_expires.as_deref())
                .bind(file_id)
                .bind(now);
        }
        q.execute(&mut **tx)
            .await
            .map_err(|e| anyhow::anyhow!("recording external ids: {e}"))?;
    }
    Ok(())
}
