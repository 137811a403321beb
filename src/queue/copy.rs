//! `tc-ingest queue migrate`: a SQLite queue copied into an empty
//! PostgreSQL one, table by table, row for row (pending work, dead letters,
//! files and their rejects, source and lifecycle state). Leases of the
//! SQLite queue's last run go back to pending, as a restart would do.

use anyhow::{Context, bail};
use futures::TryStreamExt;
use sqlx::{AssertSqlSafe, Row};

use super::sql::{DbRow, Dialect, query};
use super::{Queue, value_list};

/// The tables copied, parents before children. Not copied: `daemons` and
/// `roles` (the SQLite queue's daemon does not run on the new queue).
pub const TABLES: &[&str] = &[
    "files",
    "rejects",
    "file_skips",
    "file_filters",
    "batch_jobs",
    "jobs",
    "held_owners",
    "daemon_state",
    "external_ids",
    "sources",
    "source_events",
    "feeds",
    "feed_members",
    "retired",
    "expiries",
    "delivery_hours",
];

/// Rows per INSERT.
const ROWS: usize = 200;

/// A column of the target and how its values are bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Real,
    Text,
    Bytes,
}

/// One value read from the source, as the target's column wants it.
enum Value {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

fn read(r: &DbRow, i: usize, kind: Kind) -> anyhow::Result<Value> {
    let int = || r.try_get::<Option<i64>, _>(i);
    let text = || r.try_get::<Option<String>, _>(i);
    Ok(match kind {
        Kind::Int => Value::Int(match int() {
            Ok(v) => v,
            Err(_) => text()?.map(|t| t.parse()).transpose()?,
        }),
        Kind::Real => Value::Real(match r.try_get::<Option<f64>, _>(i) {
            Ok(v) => v,
            Err(_) => int()?.map(|v| v as f64),
        }),
        Kind::Text => Value::Text(match text() {
            Ok(v) => v,
            Err(_) => int()?.map(|v| v.to_string()),
        }),
        Kind::Bytes => Value::Bytes(r.try_get(i)?),
    })
}

impl Queue {
    /// The columns of `table` in this (PostgreSQL) queue, in order.
    async fn columns(&self, table: &str) -> anyhow::Result<Vec<(String, Kind)>> {
        let rows = query(
            "SELECT CAST(column_name AS TEXT), CAST(data_type AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let kind = match r.get::<String, _>(1).as_str() {
                    "bigint" | "integer" | "smallint" => Kind::Int,
                    "double precision" | "real" | "numeric" => Kind::Real,
                    "bytea" => Kind::Bytes,
                    _ => Kind::Text,
                };
                (r.get(0), kind)
            })
            .collect())
    }

    /// Rows in the queue's tables, all together (0: an empty queue).
    ///
    /// # Errors
    /// Database errors.
    pub async fn rows_in_tables(&self) -> anyhow::Result<u64> {
        let mut n = 0u64;
        for table in TABLES {
            let c: i64 = query(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                .fetch_one(&self.pool)
                .await?
                .get(0);
            n += c as u64;
        }
        Ok(n)
    }

    /// Copies every table of `from` (a SQLite queue, at the same schema
    /// version) into this empty PostgreSQL queue in one transaction; the
    /// rows copied per table.
    ///
    /// # Errors
    /// This queue is not PostgreSQL or not empty; database errors.
    pub async fn copy_from(&self, from: &Queue) -> anyhow::Result<Vec<(&'static str, u64)>> {
        if self.dialect != Dialect::Postgres {
            bail!("the queue to migrate into is not a PostgreSQL queue (queue.url)");
        }
        let already = self.rows_in_tables().await?;
        if already > 0 {
            bail!(
                "the PostgreSQL queue is not empty ({already} rows): migrate into an empty database"
            );
        }
        let mut tx = self.pool.begin().await?;
        let mut counts = Vec::new();
        for &table in TABLES {
            let columns = self.columns(table).await?;
            let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
            let list = names.join(", ");
            let row = format!("({})", value_list("?", columns.len()));
            let mut rows =
                query(AssertSqlSafe(format!("SELECT {list} FROM {table}"))).fetch(&from.pool);
            let mut batch: Vec<Vec<Value>> = Vec::with_capacity(ROWS);
            let mut copied = 0u64;
            loop {
                let next = rows
                    .try_next()
                    .await
                    .with_context(|| format!("reading {table}"))?;
                if let Some(r) = &next {
                    let values = (columns.iter().enumerate())
                        .map(|(i, (_, kind))| read(r, i, *kind))
                        .collect::<anyhow::Result<Vec<_>>>()
                        .with_context(|| format!("reading a row of {table}"))?;
                    batch.push(values);
                }
                if batch.len() == ROWS || (next.is_none() && !batch.is_empty()) {
                    let sql = format!(
                        "INSERT INTO {table} ({list}) VALUES {}",
                        value_list(&row, batch.len())
                    );
                    let mut q = query(AssertSqlSafe(sql)).persistent(batch.len() == ROWS);
                    for v in batch.drain(..).flatten() {
                        q = match v {
                            Value::Int(v) => q.bind(v),
                            Value::Real(v) => q.bind(v),
                            Value::Text(v) => q.bind(v),
                            Value::Bytes(v) => q.bind(v),
                        };
                    }
                    copied += q
                        .execute(&mut *tx)
                        .await
                        .with_context(|| format!("writing {table}"))?
                        .rows_affected();
                }
                if next.is_none() {
                    break;
                }
            }
            counts.push((table, copied));
        }
        // Identity columns go on after the ids copied.
        let identities = query(
            "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
        )
        .fetch_all(&mut *tx)
        .await?;
        for r in &identities {
            let (table, column): (String, String) = (r.get(0), r.get(1));
            query(AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                 COALESCE((SELECT MAX({column}) FROM {table}), 0) + 1, false)"
            )))
            .fetch_one(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.release_all_leases().await?;
        Ok(counts)
    }
}
